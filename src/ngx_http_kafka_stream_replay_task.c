
/*
 * A replay's tasks in nginx's thread pool: what blocks in librdkafka.
 * The lookup finds where the replay starts (the first offset at ?since=,
 * or ?offset= checked against the log) or, for a snapshot at ?at=, the
 * message to show, with watermarks, offsets for times and single
 * messages, all within NGX_HTTP_KAFKA_STREAM_LOOKUP_TIME.  The
 * destruction of the replay's consumer joins librdkafka's threads.  A
 * task uses only the replay's own fields, which the event loop leaves
 * alone while "busy" is set.  The replay (src/..._replay.c) posts the
 * tasks and takes their answers back in the event loop; they call
 * nothing else of the module's but the parser.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kafka_stream.h"


#if (NGX_THREADS)

/* all a replay's lookups in the thread pool together, milliseconds */
#define NGX_HTTP_KAFKA_STREAM_LOOKUP_TIME   5000
/* messages looked at first, backwards, for a key's frame at a time */
#define NGX_HTTP_KAFKA_STREAM_KEY_WINDOW    64


static ngx_int_t ngx_http_kafka_stream_replay_seek(
    ngx_http_kafka_stream_replay_t *rp, int64_t ts, int64_t deadline,
    int64_t *offset);
static rd_kafka_message_t *ngx_http_kafka_stream_replay_fetch(
    ngx_http_kafka_stream_replay_t *rp, int64_t from, int64_t to,
    int64_t deadline);
static void ngx_http_kafka_stream_replay_fail(
    ngx_http_kafka_stream_replay_t *rp, ngx_uint_t status, const char *fmt,
    ...);
static int64_t ngx_http_kafka_stream_replay_clock(void);


/*
 * In a thread of the pool: where the replay starts, or the snapshot's
 * message.  Only the replay's own fields are used here; the event loop
 * leaves them alone while "busy" is set.
 */

void
ngx_http_kafka_stream_replay_lookup(void *data, ngx_log_t *log)
{
    ngx_http_kafka_stream_replay_t *rp = data;

    int64_t               low, high, deadline, t, offset, end, from, span;
    u_char                oldest[NGX_HTTP_KAFKA_STREAM_TIME_LEN];
    rd_kafka_message_t   *msg;
    rd_kafka_resp_err_t   err;

    deadline = ngx_http_kafka_stream_replay_clock()
               + NGX_HTTP_KAFKA_STREAM_LOOKUP_TIME;

    err = rd_kafka_query_watermark_offsets(rp->rk,
                                           (char *) rp->topic->name.data,
                                           rp->partition, &low, &high,
                                           NGX_HTTP_KAFKA_STREAM_LOOKUP_TIME);

    if (err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION
        || err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
    {
        ngx_http_kafka_stream_replay_fail(rp, NGX_HTTP_RANGE_NOT_SATISFIABLE,
                                          "partition: \"%V\" has no "
                                          "partition %D", &rp->topic->name,
                                          rp->partition);
        return;
    }

    if (err) {
        ngx_http_kafka_stream_replay_fail(rp, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "Kafka did not answer: %s",
                                          rd_kafka_err2str(err));
        return;
    }

    rp->low = low;
    rp->high = high;

    if (rp->offset != -1) {
        if (rp->offset < low || rp->offset > high) {
            ngx_http_kafka_stream_replay_fail(rp,
                                         NGX_HTTP_RANGE_NOT_SATISFIABLE,
                                         "offset: out of range: partition "
                                         "%D goes from %L to its live end "
                                         "at %L", rp->partition, low, high);
        }

        return;
    }

    if (low == high) {
        ngx_http_kafka_stream_replay_fail(rp, NGX_HTTP_RANGE_NOT_SATISFIABLE,
                                          "%s: partition %D holds no frames",
                                          rp->snapshot ? "at" : "since",
                                          rp->partition);
        return;
    }

    /* a time before the oldest message is before the retained log */

    msg = ngx_http_kafka_stream_replay_fetch(rp, low, -1, deadline);
    if (msg == NULL) {
        return;
    }

    t = rd_kafka_message_timestamp(msg, NULL);
    rd_kafka_message_destroy(msg);

    if ((rp->snapshot ? rp->at : rp->since) < t) {
        (void) ngx_http_kafka_stream_format_time(oldest, t);
        ngx_http_kafka_stream_replay_fail(rp, NGX_HTTP_RANGE_NOT_SATISFIABLE,
                                          "%s: the time is before the "
                                          "retained log, which starts at %*s",
                                          rp->snapshot ? "at" : "since",
                                          (size_t) sizeof(oldest), oldest);
        return;
    }

    if (!rp->snapshot) {
        (void) ngx_http_kafka_stream_replay_seek(rp, rp->since, deadline,
                                                 &rp->offset);
        return;
    }

    /* the frame current at "at": the last one of the key not after it */

    if (ngx_http_kafka_stream_replay_seek(rp, rp->at + 1, deadline, &offset)
        != NGX_OK)
    {
        return;
    }

    end = offset - 1;

    for (span = NGX_HTTP_KAFKA_STREAM_KEY_WINDOW; end >= low; span *= 8) {
        from = ngx_max(low, end - span + 1);

        rp->found = ngx_http_kafka_stream_replay_fetch(rp, from, end,
                                                       deadline);

        if (rp->found || rp->status) {
            return;
        }

        end = from - 1;
    }

    ngx_http_kafka_stream_replay_fail(rp, NGX_HTTP_NOT_FOUND,
                                      "at: no frame%s at or before that time",
                                      rp->key.len ? " of that key" : "");
}


/*
 * The first offset whose message has a timestamp of "ts" or later, or
 * the end of the log.  Kafka looks it up by its time index; a broker that
 * cannot (librdkafka's mock cluster answers -1 to every time) has its log
 * bisected, which assumes timestamps in order.
 */

static ngx_int_t
ngx_http_kafka_stream_replay_seek(ngx_http_kafka_stream_replay_t *rp,
    int64_t ts, int64_t deadline, int64_t *offset)
{
    int64_t                            lo, hi, mid, left;
    rd_kafka_message_t                *msg;
    rd_kafka_resp_err_t                err;
    rd_kafka_topic_partition_t        *part;
    rd_kafka_topic_partition_list_t   *parts;

    parts = rd_kafka_topic_partition_list_new(1);
    part = rd_kafka_topic_partition_list_add(parts,
                                             (char *) rp->topic->name.data,
                                             rp->partition);
    part->offset = ts;

    left = deadline - ngx_http_kafka_stream_replay_clock();

    err = rd_kafka_offsets_for_times(rp->rk, parts,
                                     (int) ngx_max(left, 1));

    if (err == RD_KAFKA_RESP_ERR_NO_ERROR && part->err == 0) {
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "kafka stream: time %L of \"%s\" is offset %L by "
                       "Kafka's time index (-1: after the log)", ts,
                       part->topic, part->offset);
    }

    if (err == RD_KAFKA_RESP_ERR_NO_ERROR && part->err == 0
        && part->offset >= 0)
    {
        *offset = ngx_max(rp->low, ngx_min(part->offset, rp->high));
        rd_kafka_topic_partition_list_destroy(parts);
        return NGX_OK;
    }

    rd_kafka_topic_partition_list_destroy(parts);

    if (err == RD_KAFKA_RESP_ERR__TIMED_OUT) {
        ngx_http_kafka_stream_replay_fail(rp, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "Kafka did not answer: %s",
                                          rd_kafka_err2str(err));
        return NGX_ERROR;
    }

    /* nothing that late, or a broker that cannot tell: the newest message */

    msg = ngx_http_kafka_stream_replay_fetch(rp, rp->high - 1, -1, deadline);
    if (msg == NULL) {
        return NGX_ERROR;
    }

    if (rd_kafka_message_timestamp(msg, NULL) < ts) {
        rd_kafka_message_destroy(msg);
        *offset = rp->high;
        return NGX_OK;
    }

    rd_kafka_message_destroy(msg);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "kafka stream: time %L of \"%V\" by bisection", ts,
                   &rp->topic->name);

    /* the first message at or after "hi" is always late enough */

    lo = rp->low;
    hi = rp->high - 1;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;

        msg = ngx_http_kafka_stream_replay_fetch(rp, mid, -1, deadline);
        if (msg == NULL) {
            return NGX_ERROR;
        }

        if (rd_kafka_message_timestamp(msg, NULL) >= ts) {
            hi = mid;

        } else {
            lo = msg->offset + 1;
        }

        rd_kafka_message_destroy(msg);
    }

    *offset = lo;

    return NGX_OK;
}


/*
 * In a thread: the first message at or after "from", or, if "to" is not
 * -1, the last message from "from" to "to" that the snapshot could show:
 * of the key, a complete image, not after "at".
 */

static rd_kafka_message_t *
ngx_http_kafka_stream_replay_fetch(ngx_http_kafka_stream_replay_t *rp,
    int64_t from, int64_t to, int64_t deadline)
{
    int64_t              left, offset;
    rd_kafka_message_t  *msg, *found;

    if (rd_kafka_consume_start(rp->rkt, rp->partition, from) == -1) {
        ngx_http_kafka_stream_replay_fail(rp, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "cannot read partition %D: %s",
                                     rp->partition,
                                     rd_kafka_err2str(rd_kafka_last_error()));
        return NULL;
    }

    found = NULL;

    for ( ;; ) {
        left = deadline - ngx_http_kafka_stream_replay_clock();

        if (left <= 0) {
            ngx_http_kafka_stream_replay_fail(rp,
                                         NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "Kafka did not answer in time");
            break;
        }

        msg = rd_kafka_consume(rp->rkt, rp->partition, (int) left);

        if (msg == NULL) {
            continue;
        }

        /* an offset reset, the end of the log: the next message will do */

        if (msg->err) {
            rd_kafka_message_destroy(msg);
            continue;
        }

        if (to == -1) {
            found = msg;
            break;
        }

        offset = msg->offset;

        if (offset > to) {
            rd_kafka_message_destroy(msg);
            break;
        }

        if ((rp->key.len == 0
             || (msg->key_len == rp->key.len
                 && ngx_memcmp(msg->key, rp->key.data, rp->key.len) == 0))
            && msg->len <= rp->conf->max_frame_size
            && ngx_http_kafka_stream_sniff(msg->payload, msg->len)
               != NGX_HTTP_KAFKA_STREAM_NOT_IMAGE
            && rd_kafka_message_timestamp(msg, NULL) <= rp->at)
        {
            if (found) {
                rd_kafka_message_destroy(found);
            }

            found = msg;

        } else {
            rd_kafka_message_destroy(msg);
        }

        if (offset == to) {
            break;
        }
    }

    (void) rd_kafka_consume_stop(rp->rkt, rp->partition);

    if (rp->status && found) {
        rd_kafka_message_destroy(found);
        found = NULL;
    }

    return found;
}


/* in a thread: the answer to the request, with its one line of reason */

static void
ngx_http_kafka_stream_replay_fail(ngx_http_kafka_stream_replay_t *rp,
    ngx_uint_t status, const char *fmt, ...)
{
    va_list  args;

    if (rp->status) {
        return;
    }

    rp->reason.data = ngx_pnalloc(rp->pool,
                                  NGX_HTTP_KAFKA_STREAM_REPLAY_REASON);
    if (rp->reason.data == NULL) {
        rp->status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return;
    }

    va_start(args, fmt);
    rp->reason.len = ngx_vslprintf(rp->reason.data,
                                   rp->reason.data
                                   + NGX_HTTP_KAFKA_STREAM_REPLAY_REASON,
                                   fmt, args)
                     - rp->reason.data;
    va_end(args);

    rp->status = status;
}


/* a thread has no ngx_current_msec */

static int64_t
ngx_http_kafka_stream_replay_clock(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


/* in a thread (or in exit_process): rd_kafka_destroy() joins threads */

void
ngx_http_kafka_stream_replay_destroy(void *data, ngx_log_t *log)
{
    ngx_http_kafka_stream_replay_t *rp = data;

    if (rp->started) {
        (void) rd_kafka_consume_stop(rp->rkt, rp->partition);
        rp->started = 0;
    }

    if (rp->messages) {
        rd_kafka_queue_destroy(rp->messages);
        rp->messages = NULL;
    }

    if (rp->events) {
        rd_kafka_queue_destroy(rp->events);
        rp->events = NULL;
    }

    if (rp->rkt) {
        rd_kafka_topic_destroy(rp->rkt);
        rp->rkt = NULL;
    }

    rd_kafka_destroy_flags(rp->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    rp->rk = NULL;
}

#endif /* NGX_THREADS */
