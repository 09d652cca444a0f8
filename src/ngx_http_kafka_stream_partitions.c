
/*
 * Which partitions a worker reads: those its viewers need, no others.
 *
 * A viewer (a live stream, a snapshot waiting for its frame, a replay
 * about to hand over to live) says what it needs with a need: a
 * partition, a key (which the producers' partitioner put on one
 * partition: kafka_stream_partitioner), or every partition of a topic.
 * A viewer of several keys holds a need for each.  A partition that gains
 * its first need starts at once, kafka_stream_catchup messages back from
 * the end of the log, so that the latest frame of each key it carries is
 * among them; one that loses its last need lingers (kafka_stream_linger),
 * then stops, and the frames the worker kept from it go.  A topic's
 * partitions are counted from the statistics (every second) and, at the
 * worker's start, from a metadata request in the thread pool; nothing
 * starts before (see wanted()).
 *
 * Nothing here waits for librdkafka.  rd_kafka_consume_start_queue() only
 * queues an operation for librdkafka's main thread.  rd_kafka_consume_stop()
 * waits for that thread to answer, so it runs in nginx's thread pool; a
 * partition needed again while it stops starts once the stop is done (a
 * start queued while a partition stops is lost: librdkafka refuses it in
 * that state).  rd_kafka_pause_partitions() and _resume_partitions() wait
 * as the stop does, and a seek queued while a partition is paused is lost
 * on resume: they would not help.  Messages of a partition that stops,
 * still in the queue, are dropped by librdkafka (its version barrier) and,
 * should one slip through, by the consumer (the partition is not HOT).
 *
 *     COLD ---need---> HOT ---last need gone---> LINGER
 *      ^                ^                          |
 *      |                +----------need------------+
 *      |                                           | linger over: the
 *      |                                           v frames go
 *      +----stopped (started again if needed)-- STOPPING
 *
 * Between the consumer and the frames: the consumer (src/..._consumer.c)
 * asks here whether a message's partition is read, tells the statistics'
 * partition counts and runs the tick; the viewers (src/..._live.c,
 * src/..._replay.c) hold needs.  Nothing here calls up to them: it calls
 * librdkafka, the frames (what a stopped partition leaves) and the log.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kafka_stream.h"


/* partitions stopped by one task in the thread pool */
#define NGX_HTTP_KAFKA_STREAM_STOPS         64

/* the metadata request at a worker's start, milliseconds */
#define NGX_HTTP_KAFKA_STREAM_METADATA_TIME 2000


#if (NGX_THREADS)

typedef struct {
    ngx_http_kafka_stream_topic_t  *topic;
    rd_kafka_topic_t               *rkt;
    int32_t                         partition;
} ngx_http_kafka_stream_stop_t;


typedef struct {
    ngx_uint_t                      n;
    ngx_http_kafka_stream_stop_t    stops[NGX_HTTP_KAFKA_STREAM_STOPS];
} ngx_http_kafka_stream_stops_t;


typedef struct {
    rd_kafka_t                     *rk;
    ngx_array_t                    *topics;     /* the configuration's */
    ngx_uint_t                     *counts;     /* found, or 0 */
    rd_kafka_resp_err_t            *errs;       /* a topic's */
    rd_kafka_resp_err_t             err;
} ngx_http_kafka_stream_metadata_t;

#endif


static void ngx_http_kafka_stream_place(ngx_http_kafka_stream_need_t *n);
static void ngx_http_kafka_stream_update(ngx_http_kafka_stream_topic_t *t,
    ngx_int_t p);
static ngx_uint_t ngx_http_kafka_stream_wanted(
    ngx_http_kafka_stream_topic_t *t, ngx_int_t p);
static void ngx_http_kafka_stream_start_partition(
    ngx_http_kafka_stream_topic_t *t, ngx_int_t p);
static void ngx_http_kafka_stream_consumed(ngx_http_kafka_stream_topic_t *t,
    ngx_int_t p, ngx_uint_t on);
static void ngx_http_kafka_stream_counted(ngx_http_kafka_stream_topic_t *t,
    ngx_uint_t count);
#if (NGX_THREADS)
static void ngx_http_kafka_stream_stop(void *data, ngx_log_t *log);
static void ngx_http_kafka_stream_stopped(ngx_event_t *ev);
static void ngx_http_kafka_stream_metadata(void *data, ngx_log_t *log);
static void ngx_http_kafka_stream_metadata_done(ngx_event_t *ev);
#endif


/* librdkafka's partitioners, by their names in its "partitioner" property */

ngx_http_kafka_stream_partitioner_t  ngx_http_kafka_stream_partitioners[] = {
    { ngx_string("murmur2"), rd_kafka_msg_partitioner_murmur2 },
    { ngx_string("murmur2_random"), rd_kafka_msg_partitioner_murmur2_random },
    { ngx_string("consistent"), rd_kafka_msg_partitioner_consistent },
    { ngx_string("consistent_random"),
      rd_kafka_msg_partitioner_consistent_random },
    { ngx_string("fnv1a"), rd_kafka_msg_partitioner_fnv1a },
    { ngx_string("fnv1a_random"), rd_kafka_msg_partitioner_fnv1a_random },
    /* a key may be on any partition: all of them are read */
    { ngx_string("random"), NULL },
    { ngx_string("all"), NULL },
    { ngx_null_string, NULL }
};


/*
 * A viewer needs "partition" of t, or where "place" puts "key", or (both
 * unset: partition ..._ALL, place NULL) every partition.  The key's bytes
 * must stay until the need is released: the key is placed again if the
 * topic gains partitions.
 */

void
ngx_http_kafka_stream_need(ngx_http_kafka_stream_need_t *n,
    ngx_http_kafka_stream_topic_t *t, ngx_int_t partition,
    ngx_http_kafka_stream_partitioner_pt place, ngx_str_t *key)
{
    ngx_int_t  p;

    if (n->active) {
        return;
    }

    n->active = 1;
    n->topic = t;
    n->partition = partition;
    n->place = NULL;
    n->placed = -1;

    if (partition != NGX_HTTP_KAFKA_STREAM_ALL) {
        if (partition >= 0 && partition < NGX_HTTP_KAFKA_STREAM_MAX_PARTS) {
            n->placed = partition;
            t->parts[partition].needs++;
            ngx_http_kafka_stream_update(t, partition);
        }

        return;
    }

    if (place && key && key->len) {
        n->place = place;
        n->key = *key;
        ngx_queue_insert_tail(&t->keyed, &n->queue);
        ngx_http_kafka_stream_place(n);
        return;
    }

    if (t->all++ == 0) {
        for (p = 0; p < (ngx_int_t) t->count; p++) {
            ngx_http_kafka_stream_update(t, p);
        }
    }
}


void
ngx_http_kafka_stream_need_release(ngx_http_kafka_stream_need_t *n)
{
    ngx_int_t                       p;
    ngx_http_kafka_stream_topic_t  *t;

    if (!n->active) {
        return;
    }

    n->active = 0;
    t = n->topic;

    if (n->place) {
        ngx_queue_remove(&n->queue);

    } else if (n->partition == NGX_HTTP_KAFKA_STREAM_ALL) {
        if (--t->all == 0) {
            for (p = 0; p < (ngx_int_t) t->count; p++) {
                ngx_http_kafka_stream_update(t, p);
            }
        }

        return;
    }

    if (n->placed != -1) {
        t->parts[n->placed].needs--;
        ngx_http_kafka_stream_update(t, n->placed);
        n->placed = -1;
    }
}


/* a key's partition, once the topic's partitions are counted */

static void
ngx_http_kafka_stream_place(ngx_http_kafka_stream_need_t *n)
{
    int32_t                         p;
    ngx_int_t                       old;
    ngx_http_kafka_stream_topic_t  *t;

    t = n->topic;

    if (t->count == 0) {
        return;
    }

    p = n->place(t->rkt, n->key.data, n->key.len, (int32_t) t->count,
                 NULL, NULL);

    if (p < 0 || p >= (int32_t) t->count || p == n->placed) {
        return;
    }

    old = n->placed;

    n->placed = p;
    t->parts[p].needs++;
    ngx_http_kafka_stream_update(t, p);

    if (old != -1) {
        t->parts[old].needs--;
        ngx_http_kafka_stream_update(t, old);
    }
}


/* the partition where a key is: for a replay that names no partition */

ngx_int_t
ngx_http_kafka_stream_key_partition(ngx_http_kafka_stream_topic_t *t,
    ngx_http_kafka_stream_partitioner_pt place, ngx_str_t *key)
{
    int32_t  p;

    if (place == NULL || key->len == 0 || t->count == 0) {
        return NGX_DECLINED;
    }

    p = place(t->rkt, key->data, key->len, (int32_t) t->count, NULL, NULL);

    return (p >= 0 && p < (int32_t) t->count) ? p : NGX_DECLINED;
}


/*
 * Nothing starts before the topic's partitions are counted (the metadata
 * at the worker's start, in milliseconds): a partition started before
 * librdkafka knows its leader waits half a second to look its offsets up,
 * and what was produced meanwhile would count as its catch-up, of which
 * the viewers see only the newest frame.
 */

static ngx_uint_t
ngx_http_kafka_stream_wanted(ngx_http_kafka_stream_topic_t *t, ngx_int_t p)
{
    return t->count
           && (t->parts[p].needs || (t->all && p < (ngx_int_t) t->count));
}


/* what a change of needs makes of a partition */

static void
ngx_http_kafka_stream_update(ngx_http_kafka_stream_topic_t *t, ngx_int_t p)
{
    ngx_uint_t                          wanted;
    ngx_http_kafka_stream_worker_t     *w;
    ngx_http_kafka_stream_partition_t  *part;

    w = ngx_http_kafka_stream_worker;
    part = &t->parts[p];
    wanted = ngx_http_kafka_stream_wanted(t, p);

    switch (part->state) {

    case NGX_HTTP_KAFKA_STREAM_COLD:
        if (wanted && !w->exiting) {
            ngx_http_kafka_stream_start_partition(t, p);
        }
        break;

    case NGX_HTTP_KAFKA_STREAM_HOT:
        if (!wanted) {
            part->state = NGX_HTTP_KAFKA_STREAM_LINGER;
            part->idle = ngx_current_msec;
            w->lingering++;
        }
        break;

    case NGX_HTTP_KAFKA_STREAM_LINGER:
        if (wanted) {
            part->state = NGX_HTTP_KAFKA_STREAM_HOT;
            w->lingering--;
        }
        break;

    default: /* NGX_HTTP_KAFKA_STREAM_STOPPING */

        if (wanted && !part->again) {
            part->again = 1;
            ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                          "kafka stream: \"%V\" [%i] is needed again while "
                          "it stops: it starts once stopped", &t->name, p);
        }
        break;
    }
}


/*
 * kafka_stream_catchup messages back from the end: the latest frame of
 * each key of the partition, which the consumer takes as a catch-up (the
 * viewers get the newest of each key, not every one).
 */

static void
ngx_http_kafka_stream_start_partition(ngx_http_kafka_stream_topic_t *t,
    ngx_int_t p)
{
    ngx_http_kafka_stream_worker_t     *w;
    ngx_http_kafka_stream_partition_t  *part;

    w = ngx_http_kafka_stream_worker;
    part = &t->parts[p];

    if (rd_kafka_consume_start_queue(t->rkt, (int32_t) p,
                                     RD_KAFKA_OFFSET_TAIL(w->conf->catchup),
                                     w->queue)
        == -1)
    {
        /* the tick tries again */
        w->retry = 1;

        if (ngx_http_kafka_stream_log_allowed()) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "kafka stream: cannot consume \"%V\" [%i]: %s",
                          &t->name, p,
                          rd_kafka_err2str(rd_kafka_last_error()));
        }

        return;
    }

    part->state = NGX_HTTP_KAFKA_STREAM_HOT;
    part->catchup = 1;
    part->started = ngx_current_msec;
    part->last = -1;
    ngx_http_kafka_stream_consumed(t, p, 1);

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "kafka stream: consuming \"%V\" [%i]", &t->name, p);
}


/* the worker's count, and its bit in the slot, for the status */

static void
ngx_http_kafka_stream_consumed(ngx_http_kafka_stream_topic_t *t, ngx_int_t p,
    ngx_uint_t on)
{
    u_char                          *bits;
    ngx_http_kafka_stream_worker_t  *w;

    w = ngx_http_kafka_stream_worker;
    bits = ngx_http_kafka_stream_consuming(w->conf, w->slot, t->index);

    if (on) {
        bits[p / 8] |= (u_char) (1 << (p % 8));
        w->slot->partitions++;

    } else {
        bits[p / 8] &= (u_char) ~(1 << (p % 8));
        w->slot->partitions--;
    }
}


/* from the statistics: partition p of a topic exists */

void
ngx_http_kafka_stream_partition_seen(ngx_http_kafka_stream_topic_t *t,
    ngx_int_t p)
{
    if (p >= 0 && (ngx_uint_t) p >= t->seen) {
        t->seen = p + 1;
    }
}


/* after the statistics: the partitions seen are counted */

void
ngx_http_kafka_stream_partitions_seen(ngx_http_kafka_stream_worker_t *w)
{
    ngx_uint_t                       i;
    ngx_http_kafka_stream_topic_t  **topics;

    topics = w->conf->topics.elts;

    for (i = 0; i < w->conf->topics.nelts; i++) {
        if (topics[i]->seen > topics[i]->count) {
            ngx_http_kafka_stream_counted(topics[i], topics[i]->seen);
        }

        topics[i]->seen = 0;
    }
}


/* a topic has "count" partitions (more than known: they never shrink) */

static void
ngx_http_kafka_stream_counted(ngx_http_kafka_stream_topic_t *t,
    ngx_uint_t count)
{
    ngx_int_t                      p, old;
    ngx_uint_t                     level;
    ngx_queue_t                   *q;
    ngx_http_kafka_stream_need_t  *n;

    if (count > NGX_HTTP_KAFKA_STREAM_MAX_PARTS) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "kafka stream: \"%V\" has %ui partitions: only the "
                      "first %d are read", &t->name, count,
                      NGX_HTTP_KAFKA_STREAM_MAX_PARTS);
        count = NGX_HTTP_KAFKA_STREAM_MAX_PARTS;
    }

    if (count <= t->count) {
        return;
    }

    /* more than before: keys may have moved, the operator should know */

    level = t->count ? NGX_LOG_NOTICE : NGX_LOG_INFO;

    ngx_log_error(level, ngx_cycle->log, 0,
                  "kafka stream: \"%V\" has %ui partitions", &t->name, count);

    old = t->count;
    t->count = count;

    /* the partitions named before the count: they start now */

    if (old == 0) {
        for (p = 0; p < NGX_HTTP_KAFKA_STREAM_MAX_PARTS; p++) {
            if (t->parts[p].needs) {
                ngx_http_kafka_stream_update(t, p);
            }
        }
    }

    /* keys move when partitions are added: each is placed again */

    for (q = ngx_queue_head(&t->keyed);
         q != ngx_queue_sentinel(&t->keyed);
         q = ngx_queue_next(q))
    {
        n = ngx_queue_data(q, ngx_http_kafka_stream_need_t, queue);
        ngx_http_kafka_stream_place(n);
    }

    if (t->all) {
        for (p = old; p < (ngx_int_t) count; p++) {
            ngx_http_kafka_stream_update(t, p);
        }
    }
}


/*
 * The consumer's question for each message: is its partition read?  NULL
 * when not (a partition that stops, or one past the ones the worker keeps
 * state for); else its state, where the offset taken is noted.
 */

ngx_http_kafka_stream_partition_t *
ngx_http_kafka_stream_partition_read(ngx_http_kafka_stream_topic_t *t,
    int32_t p)
{
    ngx_http_kafka_stream_partition_t  *part;

    if (p < 0 || p >= NGX_HTTP_KAFKA_STREAM_MAX_PARTS) {
        return NULL;
    }

    part = &t->parts[p];

    if (part->state != NGX_HTTP_KAFKA_STREAM_HOT
        && part->state != NGX_HTTP_KAFKA_STREAM_LINGER)
    {
        return NULL;
    }

    return part;
}


/* the worker's start: its topics' state, the always read sources */

ngx_int_t
ngx_http_kafka_stream_partitions_init(ngx_cycle_t *cycle,
    ngx_http_kafka_stream_worker_t *w)
{
    ngx_uint_t                          i, p;
    ngx_http_kafka_stream_topic_t     **topics, *t;
    ngx_http_kafka_stream_source_t    **sources;
#if (NGX_THREADS)
    ngx_thread_task_t                  *task;
    ngx_http_kafka_stream_metadata_t   *md;
#endif

    topics = w->conf->topics.elts;

    for (i = 0; i < w->conf->topics.nelts; i++) {
        t = topics[i];

        t->parts = ngx_pcalloc(cycle->pool,
                               NGX_HTTP_KAFKA_STREAM_MAX_PARTS
                               * sizeof(ngx_http_kafka_stream_partition_t));
        if (t->parts == NULL) {
            return NGX_ERROR;
        }

        for (p = 0; p < NGX_HTTP_KAFKA_STREAM_MAX_PARTS; p++) {
            t->parts[p].last = -1;
        }

        ngx_queue_init(&t->keyed);
        t->count = 0;
        t->seen = 0;
        t->all = 0;
    }

#if (NGX_THREADS)

    if (w->conf->thread_pool) {
        w->stop = ngx_thread_task_alloc(cycle->pool,
                                        sizeof(ngx_http_kafka_stream_stops_t));
        if (w->stop == NULL) {
            return NGX_ERROR;
        }

        w->stop->handler = ngx_http_kafka_stream_stop;
        w->stop->event.handler = ngx_http_kafka_stream_stopped;
        w->stop->event.data = w;
        w->stop->event.log = cycle->log;

        /* the partitions at once, not after the first statistics */

        task = ngx_thread_task_alloc(cycle->pool,
                                     sizeof(ngx_http_kafka_stream_metadata_t));
        if (task == NULL) {
            return NGX_ERROR;
        }

        md = task->ctx;
        md->rk = w->rk;
        md->topics = &w->conf->topics;
        md->counts = ngx_pcalloc(cycle->pool,
                                 w->conf->topics.nelts * sizeof(ngx_uint_t));
        md->errs = ngx_pcalloc(cycle->pool, w->conf->topics.nelts
                                            * sizeof(rd_kafka_resp_err_t));
        if (md->counts == NULL || md->errs == NULL) {
            return NGX_ERROR;
        }

        task->handler = ngx_http_kafka_stream_metadata;
        task->event.handler = ngx_http_kafka_stream_metadata_done;
        task->event.data = task;
        task->event.log = cycle->log;

        if (ngx_thread_task_post(w->conf->thread_pool, task) != NGX_OK) {
            return NGX_ERROR;
        }
    }

#endif

    /* kafka_stream_always_consume: needs for the worker's whole life */

    sources = w->conf->sources.elts;

    for (i = 0; i < w->conf->sources.nelts; i++) {
        if (sources[i]->always) {
            ngx_http_kafka_stream_need(&sources[i]->always_need,
                                       sources[i]->topic,
                                       sources[i]->partition, NULL, NULL);
        }
    }

    return NGX_OK;
}


/*
 * From the worker's tick: starts that failed are tried again, and the
 * partitions whose linger is over stop.
 */

void
ngx_http_kafka_stream_partitions_tick(ngx_http_kafka_stream_worker_t *w)
{
    ngx_uint_t                          i, p;
    ngx_http_kafka_stream_topic_t     **topics, *t;
    ngx_http_kafka_stream_partition_t  *part;
#if (NGX_THREADS)
    ngx_msec_t                          linger;
    ngx_http_kafka_stream_stops_t      *stops;
#endif

    topics = w->conf->topics.elts;

    if (w->retry) {
        w->retry = 0;

        for (i = 0; i < w->conf->topics.nelts; i++) {
            t = topics[i];

            for (p = 0; p < NGX_HTTP_KAFKA_STREAM_MAX_PARTS; p++) {
                if (t->parts[p].state == NGX_HTTP_KAFKA_STREAM_COLD
                    && ngx_http_kafka_stream_wanted(t, p))
                {
                    ngx_http_kafka_stream_start_partition(t, p);
                }
            }
        }
    }

#if (NGX_THREADS)

    /* without a thread pool partitions are never stopped: see init */

    if (w->lingering == 0 || w->stop == NULL || w->stopping) {
        return;
    }

    linger = w->conf->linger;
    stops = w->stop->ctx;
    stops->n = 0;

    for (i = 0; i < w->conf->topics.nelts; i++) {
        t = topics[i];

        for (p = 0;
             p < NGX_HTTP_KAFKA_STREAM_MAX_PARTS
             && stops->n < NGX_HTTP_KAFKA_STREAM_STOPS;
             p++)
        {
            part = &t->parts[p];

            if (part->state == NGX_HTTP_KAFKA_STREAM_LINGER
                && ngx_current_msec - part->idle >= linger)
            {
                stops->stops[stops->n].topic = t;
                stops->stops[stops->n].rkt = t->rkt;
                stops->stops[stops->n].partition = (int32_t) p;
                stops->n++;
            }
        }
    }

    if (stops->n == 0) {
        return;
    }

    /* a full queue: the next tick tries again */

    if (ngx_thread_task_post(w->conf->thread_pool, w->stop) != NGX_OK) {
        return;
    }

    w->stopping = 1;

    for (i = 0; i < stops->n; i++) {
        t = stops->stops[i].topic;
        p = stops->stops[i].partition;
        part = &t->parts[p];

        part->state = NGX_HTTP_KAFKA_STREAM_STOPPING;
        part->again = 0;
        part->catchup = 0;
        part->last = -1;
        w->lingering--;

        ngx_http_kafka_stream_consumed(t, p, 0);

        /* its frames were current only while it was read */
        ngx_http_kafka_stream_forget(w->conf, t, p);

        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "kafka stream: no longer consuming \"%V\" [%ui]",
                      &t->name, p);
    }

#else

    (void) part;

#endif
}


#if (NGX_THREADS)

/* in a thread: each waits for librdkafka's main thread */

static void
ngx_http_kafka_stream_stop(void *data, ngx_log_t *log)
{
    ngx_http_kafka_stream_stops_t *stops = data;

    ngx_uint_t  i;

    for (i = 0; i < stops->n; i++) {
        (void) rd_kafka_consume_stop(stops->stops[i].rkt,
                                     stops->stops[i].partition);
    }
}


static void
ngx_http_kafka_stream_stopped(ngx_event_t *ev)
{
    ngx_uint_t                          i;
    ngx_http_kafka_stream_stop_t       *s;
    ngx_http_kafka_stream_stops_t      *stops;
    ngx_http_kafka_stream_worker_t     *w;

    w = ev->data;
    stops = w->stop->ctx;

    w->stopping = 0;

    for (i = 0; i < stops->n; i++) {
        s = &stops->stops[i];
        s->topic->parts[s->partition].state = NGX_HTTP_KAFKA_STREAM_COLD;

        /* a viewer that came meanwhile: it starts now */
        ngx_http_kafka_stream_update(s->topic, s->partition);
    }

    stops->n = 0;
}


/* in a thread: the partitions of the topics, as the cluster says now */

static void
ngx_http_kafka_stream_metadata(void *data, ngx_log_t *log)
{
    ngx_http_kafka_stream_metadata_t *md = data;

    int                               j;
    ngx_uint_t                        i;
    const struct rd_kafka_metadata   *meta;
    ngx_http_kafka_stream_topic_t   **topics;

    md->err = rd_kafka_metadata(md->rk, 0, NULL, &meta,
                                NGX_HTTP_KAFKA_STREAM_METADATA_TIME);
    if (md->err) {
        return;
    }

    topics = md->topics->elts;

    for (j = 0; j < meta->topic_cnt; j++) {
        for (i = 0; i < md->topics->nelts; i++) {
            if (ngx_strcmp(topics[i]->name.data, meta->topics[j].topic) != 0)
            {
                continue;
            }

            md->errs[i] = meta->topics[j].err;

            if (meta->topics[j].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                md->counts[i] = (ngx_uint_t) meta->topics[j].partition_cnt;
            }
        }
    }

    rd_kafka_metadata_destroy(meta);
}


static void
ngx_http_kafka_stream_metadata_done(ngx_event_t *ev)
{
    ngx_thread_task_t                 *task = ev->data;

    ngx_uint_t                         i;
    ngx_http_kafka_stream_topic_t    **topics;
    ngx_http_kafka_stream_metadata_t  *md;

    md = task->ctx;

    if (md->err) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "kafka stream: no metadata at start (%s): the "
                      "partitions are counted from the statistics",
                      rd_kafka_err2str(md->err));
        return;
    }

    topics = md->topics->elts;

    for (i = 0; i < md->topics->nelts; i++) {
        if (md->counts[i]) {
            ngx_http_kafka_stream_counted(topics[i], md->counts[i]);

        } else if (md->errs[i]) {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "kafka stream: topic \"%V\": %s",
                          &topics[i]->name, rd_kafka_err2str(md->errs[i]));
        }
    }
}

#endif
