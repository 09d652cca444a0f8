/*
 * publish: librdkafka producer for the frames.
 *
 * Idempotence keeps retries from duplicating or reordering frames.
 * produce() never blocks: a full local queue is waited out with a bound,
 * and every message either gets a delivery report or is purged at the end,
 * so each frame is counted once, as delivered or as failed.
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "publish.h"
#include "util.h"

struct publisher {
    rd_kafka_t       *rk;
    rd_kafka_topic_t *rkt;
    publish_opts_t    opts;
    int64_t           timeout_ms;       /* message.timeout.ms */
    int64_t           max_bytes;        /* message.max.bytes */
    char              brokers[512];
    publish_stats_t   stats;
    int               fatal;
    int64_t           fatal_after;      /* frames, for tests; or -1 */
    int               unreachable;      /* failed before any delivery */
    int               failing;          /* last report was a failure */
    rd_kafka_resp_err_t  last_err;
    char              broker_error[512];
};


/* A frame over the size limit is a configuration problem: say what to do. */
static void
report_too_large(publisher_t *p, int64_t index, size_t len)
{
    ksp_error("frame %" PRId64 " is %zu bytes, over the producer's limit of"
              " %" PRId64 " bytes (message.max.bytes): use --format jpeg or"
              " a smaller --size WxH (or raise -X message.max.bytes=N where"
              " the broker allows it)", index, len, p->max_bytes);
    p->fatal = 1;
}


static void
report_failure(publisher_t *p, const rd_kafka_message_t *m)
{
    int64_t  index = (int64_t) (intptr_t) m->_private;

    if (p->failing && m->err == p->last_err) {
        return;     /* the same outage: counted, not repeated */
    }

    /* within the producer's limit, so over the topic's: the broker's
     * answer does not say how far over */
    if (m->err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
        ksp_error("frame %" PRId64 " is %zu bytes, more than topic '%s'"
                  " takes (its max.message.bytes): use --format jpeg or a"
                  " smaller --size WxH, or raise the topic's"
                  " max.message.bytes", index, m->len, p->opts.topic);
        p->fatal = 1;
        return;
    }

    if (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE
        || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
    {
        /* purged by publisher_flush() when its time was up */
        if (!p->unreachable) {
            ksp_error("frame %" PRId64 " and later ones were not delivered"
                      " when the flush ended", index);
        }
        return;
    }

    if (m->err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT) {
        ksp_error("cannot deliver frame %" PRId64 " to topic '%s' at %s:"
                  " %s after message.timeout.ms=%" PRId64 "%s%s",
                  index, p->opts.topic, p->brokers, rd_kafka_err2str(m->err),
                  p->timeout_ms, p->broker_error[0] ? "; broker error: " : "",
                  p->broker_error);
    } else {
        ksp_error("cannot deliver frame %" PRId64 " to topic '%s' at %s: %s",
                  index, p->opts.topic, p->brokers, rd_kafka_err2str(m->err));
    }

    if (p->stats.delivered == 0) {
        /* nothing ever got through: more frames would only fail too, and
         * waiting for the queued ones to time out tells nothing new */
        p->fatal = 1;
        p->unreachable = 1;
    }
}


static void
on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    publisher_t  *p = opaque;

    (void) rk;
    p->stats.in_flight--;

    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (p->failing) {
            ksp_error("delivering to topic '%s' again", p->opts.topic);
            p->failing = 0;
        }
        p->stats.delivered++;
        p->stats.bytes += (int64_t) m->len;
        return;
    }

    p->stats.failed++;
    report_failure(p, m);
    p->failing = 1;
    p->last_err = m->err;
}


static void
on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    publisher_t  *p = opaque;
    char          fatal[512];

    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        err = rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
        ksp_error("fatal Kafka producer error: %s: %s",
                  rd_kafka_err2name(err), fatal);
        p->fatal = 1;
        return;
    }

    /* kept to explain a later delivery failure */
    snprintf(p->broker_error, sizeof(p->broker_error), "%s", reason);
    if (p->opts.verbose) {
        ksp_error("kafka: %s", reason);
    }
}


static void
on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    publisher_t  *p = rd_kafka_opaque(rk);

    /* Connection failures are reported once through the delivery reports
     * instead of librdkafka's line every retry; -v shows them all. */
    if (p != NULL && p->opts.verbose) {
        ksp_error("kafka %d %s: %s", level, fac, buf);
    }
}


static int
set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char  errstr[512];

    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr))
        != RD_KAFKA_CONF_OK)
    {
        ksp_error("-X %s=%s: %s", name, value, errstr);
        return -1;
    }
    return 0;
}


static int
apply_props(rd_kafka_conf_t *conf, const publish_opts_t *o)
{
    char  name[256];
    const char  *eq;

    for (int i = 0; i < o->nprops; i++) {
        eq = strchr(o->props[i], '=');
        if (eq == NULL || eq == o->props[i]
            || (size_t) (eq - o->props[i]) >= sizeof(name))
        {
            ksp_error("-X %s: expected name=value", o->props[i]);
            return -1;
        }
        memcpy(name, o->props[i], eq - o->props[i]);
        name[eq - o->props[i]] = '\0';
        if (set(conf, name, eq + 1) != 0) {
            return -1;
        }
    }
    return 0;
}


static int64_t
conf_number(rd_kafka_conf_t *conf, const char *name, int topic_level)
{
    char    buf[64];
    size_t  size = sizeof(buf);
    rd_kafka_conf_res_t  res;

    if (topic_level) {
        res = rd_kafka_topic_conf_get(
                  rd_kafka_conf_get_default_topic_conf(conf), name, buf, &size);
    } else {
        res = rd_kafka_conf_get(conf, name, buf, &size);
    }
    return res == RD_KAFKA_CONF_OK ? strtoll(buf, NULL, 10) : -1;
}


static rd_kafka_conf_t *
make_conf(publisher_t *p, const publish_opts_t *o)
{
    rd_kafka_conf_t  *conf;
    size_t            size;

    conf = rd_kafka_conf_new();

    /* Our defaults first, so that -X can override every one of them.
     * - idempotence: retries neither duplicate nor reorder frames;
     * - a 10 s delivery timeout: an unreachable broker is reported soon;
     * - "murmur2" partitioning: a key goes where Kafka's Java producer
     *   puts it (nginx finds it there: kafka_stream_partitioner), and
     *   frames without a key all go to one partition (librdkafka's
     *   default spreads them, losing their order);
     * - a local queue of 128 MiB instead of 1 GiB: frames are large;
     * - reconnect within a second of a broker's return, not up to 10 s
     *   later: each second of a video outage costs many frames. */
    if (set(conf, "bootstrap.servers", o->brokers) != 0
        || set(conf, "enable.idempotence", "true") != 0
        || set(conf, "message.timeout.ms", "10000") != 0
        || set(conf, "partitioner", "murmur2") != 0
        || set(conf, "queue.buffering.max.kbytes", "131072") != 0
        || set(conf, "linger.ms", "0") != 0
        || set(conf, "reconnect.backoff.max.ms", "1000") != 0
        || set(conf, "log.connection.close", "false") != 0
        || apply_props(conf, o) != 0)
    {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }

    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);

    p->timeout_ms = conf_number(conf, "message.timeout.ms", 1);
    p->max_bytes = conf_number(conf, "message.max.bytes", 0);
    size = sizeof(p->brokers);
    if (rd_kafka_conf_get(conf, "bootstrap.servers", p->brokers, &size)
        != RD_KAFKA_CONF_OK)
    {
        snprintf(p->brokers, sizeof(p->brokers), "%s", o->brokers);
    }

    return conf;
}


int
publisher_new(publisher_t **out, const publish_opts_t *opts)
{
    publisher_t      *p;
    rd_kafka_conf_t  *conf;
    char              errstr[512];
    const char       *env;
    int               rc = 2;

    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        ksp_error("out of memory");
        return 1;
    }
    p->opts = *opts;

    /*
     * KSP_TEST_FATAL_AFTER=N: a fatal error after N frames, as librdkafka
     * raises on its own only in rare broker states (t/producer/errors.t)
     */
    env = getenv("KSP_TEST_FATAL_AFTER");
    p->fatal_after = env != NULL ? strtoll(env, NULL, 10) : -1;

    conf = make_conf(p, opts);
    if (conf == NULL) {
        goto failed;
    }

    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (p->rk == NULL) {
        /* rd_kafka_new keeps CONF only on success */
        rd_kafka_conf_destroy(conf);
        ksp_error("cannot create the Kafka producer: %s", errstr);
        goto failed;
    }

    /* A topic handle now starts the metadata lookup while the input is
     * still being opened, instead of with the first frame. */
    p->rkt = rd_kafka_topic_new(p->rk, opts->topic, NULL);
    if (p->rkt == NULL) {
        ksp_error("topic '%s': %s", opts->topic,
                  rd_kafka_err2str(rd_kafka_last_error()));
        rc = 1;
        goto failed;
    }

    *out = p;
    return 0;

failed:
    if (p->rk != NULL) {
        rd_kafka_destroy(p->rk);
    }
    free(p);
    return rc;
}


static rd_kafka_headers_t *
make_headers(const publisher_t *p, const frame_meta_t *m)
{
    rd_kafka_headers_t  *h;
    char                 v[32];

    h = rd_kafka_headers_new(5);
    rd_kafka_header_add(h, "content-type", -1, p->opts.content_type, -1);
    snprintf(v, sizeof(v), "%" PRId64, m->index);
    rd_kafka_header_add(h, "frame", -1, v, -1);
    snprintf(v, sizeof(v), "%" PRId64, m->pts_ms);
    rd_kafka_header_add(h, "pts-ms", -1, v, -1);
    snprintf(v, sizeof(v), "%d", m->width);
    rd_kafka_header_add(h, "width", -1, v, -1);
    snprintf(v, sizeof(v), "%d", m->height);
    rd_kafka_header_add(h, "height", -1, v, -1);
    return h;
}


static rd_kafka_resp_err_t
produce(publisher_t *p, uint8_t *data, size_t len, const frame_meta_t *m,
        rd_kafka_headers_t *h)
{
    const char  *key = p->opts.key;
    size_t       keylen = key != NULL ? strlen(key) : 0;

    return rd_kafka_producev(
        p->rk,
        RD_KAFKA_V_RKT(p->rkt),
        RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
        RD_KAFKA_V_VALUE(data, len),
        RD_KAFKA_V_KEY(key, keylen),
        RD_KAFKA_V_TIMESTAMP(ksp_wall_ms()),
        RD_KAFKA_V_HEADERS(h),
        RD_KAFKA_V_OPAQUE((void *) (intptr_t) m->index),
        RD_KAFKA_V_END);
}


int
publisher_send(publisher_t *p, uint8_t *data, size_t len,
               const frame_meta_t *m)
{
    rd_kafka_headers_t   *h;
    rd_kafka_resp_err_t   err;
    int64_t               give_up;

    h = make_headers(p, m);
    give_up = ksp_mono_ns() + (p->timeout_ms + 1000) * 1000000;

    for ( ;; ) {
        err = produce(p, data, len, m, h);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            break;
        }
        /* The local queue drains by deliveries or by timeouts, both
         * within message.timeout.ms: wait for room, but not forever. */
        rd_kafka_poll(p->rk, 100);
        if (atomic_load(&ksp_stop) || p->fatal || ksp_mono_ns() > give_up) {
            break;
        }
    }

    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        p->stats.in_flight++;

        if (p->fatal_after >= 0 && p->stats.in_flight > p->fatal_after) {
            p->fatal_after = -1;
            rd_kafka_test_fatal_error(
                p->rk, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                "raised by KSP_TEST_FATAL_AFTER");
        }

        rd_kafka_poll(p->rk, 0);
        return 0;
    }

    /* on failure, the value and the headers are still ours */
    rd_kafka_headers_destroy(h);
    free(data);

    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && atomic_load(&ksp_stop)) {
        return -1;      /* stopping: never queued, so dropped, not failed */
    }

    p->stats.failed++;

    if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
        report_too_large(p, m->index, len);
    } else if (!p->failing || err != p->last_err) {
        ksp_error("cannot queue frame %" PRId64 " for topic '%s': %s",
                  m->index, p->opts.topic, rd_kafka_err2str(err));
        p->failing = 1;
        p->last_err = err;
    }
    return -1;
}


void
publisher_poll(publisher_t *p)
{
    rd_kafka_poll(p->rk, 0);
}


int
publisher_fatal(const publisher_t *p)
{
    return p->fatal;
}


void
publisher_flush(publisher_t *p)
{
    int64_t  deadline;

    deadline = ksp_mono_ns() + (p->timeout_ms + 1000) * 1000000;

    /*
     * After a fatal error (librdkafka 2.0.2 raises one when an idempotent
     * producer finds its sequence numbers rewound, as after the whole
     * cluster restarted) nothing more is delivered: waiting out
     * message.timeout.ms would only delay the exit that lets a service
     * manager start a fresh producer.
     */

    while (rd_kafka_outq_len(p->rk) > 0
           && !p->unreachable
           && !p->fatal
           && ksp_mono_ns() < deadline
           && atomic_load(&ksp_stop) < 2)
    {
        rd_kafka_flush(p->rk, 100);
    }

    if (rd_kafka_outq_len(p->rk) > 0) {
        /* purged messages get delivery reports with an error: counted */
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE
                              | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(p->rk, 1000);
        rd_kafka_poll(p->rk, 0);
    }
}


publish_stats_t
publisher_stats(const publisher_t *p)
{
    return p->stats;
}


void
publisher_free(publisher_t *p)
{
    if (p == NULL) {
        return;
    }
    rd_kafka_topic_destroy(p->rkt);
    rd_kafka_destroy(p->rk);
    free(p);
}
