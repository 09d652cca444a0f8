
/*
 * The module's log, on the Kafka side: librdkafka's own lines in nginx's
 * error log, and the limit on warnings that keeps a broker outage or a
 * stream of bad messages from flooding it.  The bottom layer: it calls
 * nothing else of the module; the consumer (src/..._consumer.c), the
 * frames (src/..._frame.c) and the replays (src/..._replay.c) log
 * through it.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kafka_stream.h"


#define NGX_HTTP_KAFKA_STREAM_LOG_WINDOW    10
#define NGX_HTTP_KAFKA_STREAM_LOG_BURST     5


/* the warnings of the current window, in this worker process */

typedef struct {
    time_t                          window;
    ngx_uint_t                      lines;
    ngx_uint_t                      suppressed;
} ngx_http_kafka_stream_log_t;


static ngx_http_kafka_stream_log_t  ngx_http_kafka_stream_log_state;


/* a line of librdkafka's (a log event), at nginx's level for it */

void
ngx_http_kafka_stream_log(rd_kafka_event_t *ev)
{
    int          level;
    ngx_uint_t   nlevel;
    const char  *fac, *str;

    if (rd_kafka_event_log(ev, &fac, &str, &level) != 0) {
        return;
    }

    if (level <= 3) {
        nlevel = NGX_LOG_ERR;

    } else if (level == 4) {
        nlevel = NGX_LOG_WARN;

    } else if (level == 5) {
        nlevel = NGX_LOG_NOTICE;

    } else if (level == 6) {
        nlevel = NGX_LOG_INFO;

    } else {
        nlevel = NGX_LOG_DEBUG;
    }

    /* a broker outage makes librdkafka repeat itself: keep the log sane */

    if (nlevel <= NGX_LOG_WARN && !ngx_http_kafka_stream_log_allowed()) {
        return;
    }

    ngx_log_error(nlevel, ngx_cycle->log, 0, "kafka stream: librdkafka %s: %s",
                  fac, str);
}


/* at most a few warnings per window, and a count of the rest */

ngx_uint_t
ngx_http_kafka_stream_log_allowed(void)
{
    ngx_http_kafka_stream_log_t  *l;

    l = &ngx_http_kafka_stream_log_state;

    if (ngx_time() - l->window >= NGX_HTTP_KAFKA_STREAM_LOG_WINDOW) {

        if (l->suppressed) {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "kafka stream: %ui similar messages suppressed "
                          "in the last %d seconds",
                          l->suppressed, NGX_HTTP_KAFKA_STREAM_LOG_WINDOW);
        }

        l->window = ngx_time();
        l->lines = 0;
        l->suppressed = 0;
    }

    if (l->lines < NGX_HTTP_KAFKA_STREAM_LOG_BURST) {
        l->lines++;
        return 1;
    }

    l->suppressed++;

    return 0;
}
