
/*
 * A viewer's frame rate (?fps=N): at most one frame per 1/N second of
 * Kafka time (a replay at speed S: S/N).  A frame that comes too soon
 * after the last one let through is held, the newest held replacing the
 * older, so the cost of a frame not sent is that of the swap; the first
 * frame that is due goes at once.
 * A held frame is still let through once no newer frame has come for 1/N
 * second of wall time, and a second at least (the source slowed down or
 * stopped): the viewer never misses the latest picture, and a consumer
 * that takes its frames in bursts (a broker that was slow) does not break
 * the spacing.  Timestamps that go back further than a few seconds (a
 * producer restarted with another clock) start the spacing afresh.
 *
 * A leaf: frames in, frames out through the callback its owner sets.  A
 * viewer of one group has one; a viewer of several groups (a wall of
 * cameras) has one for each.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kafka_stream.h"


/* a frame this much older than the last let through restarts the clock */
#define NGX_HTTP_KAFKA_STREAM_RATE_RESET  5000
/* the least a held frame waits for a newer one, milliseconds */
#define NGX_HTTP_KAFKA_STREAM_RATE_HOLD   1000


static void ngx_http_kafka_stream_rate_handler(ngx_event_t *ev);


/*
 * "interval": Kafka time between frames (0: no limit); "wall": the same
 * in wall time (at another speed than 1, a replay's differs)
 */

void
ngx_http_kafka_stream_rate_init(ngx_http_kafka_stream_rate_t *rt,
    ngx_msec_t interval, ngx_msec_t wall, ngx_http_kafka_stream_rate_pt pass,
    void *data, ngx_log_t *log)
{
    rt->interval = interval;
    rt->hold = ngx_max(wall, NGX_HTTP_KAFKA_STREAM_RATE_HOLD);
    rt->last = -1;
    rt->held = NULL;
    rt->pass = pass;
    rt->data = data;

    ngx_memzero(&rt->timer, sizeof(ngx_event_t));
    rt->timer.handler = ngx_http_kafka_stream_rate_handler;
    rt->timer.data = rt;
    rt->timer.log = log;
    rt->timer.cancelable = 1;
}


/*
 * 1 when the frame goes now (the caller sends it), 0 when it is held.
 * Without a rate every frame goes.
 */

ngx_uint_t
ngx_http_kafka_stream_rate_admit(ngx_http_kafka_stream_rate_t *rt,
    ngx_http_kafka_stream_frame_t *f)
{
    int64_t  ts;

    if (rt->interval == 0) {
        return 1;
    }

    ts = f->timestamp;

    if (rt->last == -1
        || ts >= rt->last + (int64_t) rt->interval
        || ts < rt->last - NGX_HTTP_KAFKA_STREAM_RATE_RESET)
    {
        rt->last = ts;
        ngx_http_kafka_stream_frame_drop(&rt->held);
        return 1;
    }

    /* too soon: the newest held wins */

    if (rt->held) {
        ngx_http_kafka_stream_frame_release(rt->held);
    }

    f->refs++;
    rt->held = f;
    rt->held_at = ngx_current_msec;

    if (!rt->timer.timer_set) {
        ngx_add_timer(&rt->timer, rt->hold);
    }

    return 0;
}


/* the held frame and the timer go: the viewer leaves */

void
ngx_http_kafka_stream_rate_free(ngx_http_kafka_stream_rate_t *rt)
{
    if (rt->timer.timer_set) {
        ngx_del_timer(&rt->timer);
    }

    ngx_http_kafka_stream_frame_drop(&rt->held);
}


static void
ngx_http_kafka_stream_rate_handler(ngx_event_t *ev)
{
    ngx_msec_t                      held;
    ngx_http_kafka_stream_rate_t   *rt;
    ngx_http_kafka_stream_frame_t  *f;

    rt = ev->data;

    if (rt->held == NULL) {
        return;
    }

    held = ngx_current_msec - rt->held_at;

    if (held < rt->hold) {
        /* replaced meanwhile: it has not waited its turn yet */
        ngx_add_timer(&rt->timer, rt->hold - held);
        return;
    }

    f = rt->held;
    rt->held = NULL;

    if (f->timestamp > rt->last) {
        rt->last = f->timestamp;
    }

    rt->pass(rt->data, f);

    ngx_http_kafka_stream_frame_release(f);
}
