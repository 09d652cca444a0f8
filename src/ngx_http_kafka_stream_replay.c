
/*
 * Replays (kafka_stream_replay).  A request that names a start (?since=,
 * ?offset=, or ?at= for a snapshot) gets a consumer of its own: a legacy
 * consumer with small fetch and queue limits, so that it holds about one
 * fetch of the log.  The lookups that block in librdkafka run in nginx's
 * thread pool (src/..._replay_task.c), as does the destruction of the
 * handle; the messages come through a pipe, as the worker's own
 * consumer's do, and each frame waits on a timer until it is due by its
 * Kafka timestamp and the speed.  The frames go to the request's viewer
 * (src/..._live.c), spaced by ?fps= (src/..._rate.c) and, with ?width=,
 * through a rendition of the viewer's own (src/..._rendition.c); at the
 * live end the viewer joins its live group, or, with ?until=, its stream
 * ends.
 *
 * The top of the module's layers: it calls the viewers, the consumer's
 * pipe and properties (src/..._consumer.c), the frames and the log, and
 * sets on its viewer the hooks through which the viewer reaches it.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kafka_stream.h"


#if (NGX_THREADS)

/* a replay this late starts its clock afresh instead of rushing, ms */
#define NGX_HTTP_KAFKA_STREAM_REPLAY_LATE   1000


static ngx_int_t ngx_http_kafka_stream_replay_headers(ngx_http_request_t *r,
    ngx_http_kafka_stream_replay_t *rp);
static ngx_int_t ngx_http_kafka_stream_replay_partition(
    ngx_http_kafka_stream_loc_conf_t *kslcf, ngx_str_t *key);
static ngx_int_t ngx_http_kafka_stream_replay_consumer(
    ngx_http_kafka_stream_replay_t *rp);
static void ngx_http_kafka_stream_replay_looked_up(ngx_event_t *ev);
static void ngx_http_kafka_stream_replay_begin(
    ngx_http_kafka_stream_replay_t *rp);
static void ngx_http_kafka_stream_replay_wakeup(ngx_event_t *ev);
static void ngx_http_kafka_stream_replay_read(
    ngx_http_kafka_stream_replay_t *rp);
static ngx_int_t ngx_http_kafka_stream_replay_message(
    ngx_http_kafka_stream_replay_t *rp, rd_kafka_message_t *msg);
static ngx_uint_t ngx_http_kafka_stream_replay_due(
    ngx_http_kafka_stream_replay_t *rp);
static void ngx_http_kafka_stream_replay_pace_handler(ngx_event_t *ev);
static void ngx_http_kafka_stream_replay_show(
    ngx_http_kafka_stream_replay_t *rp);
static void ngx_http_kafka_stream_replay_rate_pass(void *data,
    ngx_http_kafka_stream_frame_t *f);
static void ngx_http_kafka_stream_replay_present(
    ngx_http_kafka_stream_replay_t *rp, ngx_http_kafka_stream_frame_t *f);
static void ngx_http_kafka_stream_replay_made(
    ngx_http_kafka_stream_rendition_t *rd, ngx_http_kafka_stream_frame_t *f);
static void ngx_http_kafka_stream_replay_snapshot(
    ngx_http_kafka_stream_replay_t *rp, ngx_http_kafka_stream_frame_t *f);
static ngx_int_t ngx_http_kafka_stream_replay_rendition(
    ngx_http_kafka_stream_viewer_t *v);
static void ngx_http_kafka_stream_replay_size(
    ngx_http_kafka_stream_viewer_t *v, ngx_http_kafka_stream_frame_t *f);
static ngx_http_kafka_stream_frame_t *ngx_http_kafka_stream_replay_shown(
    ngx_http_kafka_stream_replay_t *rp);
static ngx_int_t ngx_http_kafka_stream_replay_end(
    ngx_http_kafka_stream_replay_t *rp, int64_t end);
static void ngx_http_kafka_stream_replay_live(
    ngx_http_kafka_stream_replay_t *rp);
static void ngx_http_kafka_stream_replay_finish(
    ngx_http_kafka_stream_replay_t *rp);
static void ngx_http_kafka_stream_replay_finished(
    ngx_http_kafka_stream_replay_t *rp);
static void ngx_http_kafka_stream_replay_release(
    ngx_http_kafka_stream_replay_t *rp);
static void ngx_http_kafka_stream_replay_stop(
    ngx_http_kafka_stream_replay_t *rp);
static void ngx_http_kafka_stream_replay_close(
    ngx_http_kafka_stream_replay_t *rp);
static void ngx_http_kafka_stream_replay_destroyed(ngx_event_t *ev);
static void ngx_http_kafka_stream_replay_free(
    ngx_http_kafka_stream_replay_t *rp);


ngx_int_t
ngx_http_kafka_stream_replay_start(ngx_http_request_t *r,
    ngx_http_kafka_stream_loc_conf_t *kslcf,
    ngx_http_kafka_stream_replay_args_t *ra,
    ngx_http_kafka_stream_view_args_t *va)
{
    ngx_int_t                           rc;
    ngx_str_t                           key, reason;
    ngx_pool_t                         *pool;
    ngx_http_kafka_stream_group_t      *g;
    ngx_http_kafka_stream_viewer_t     *v;
    ngx_http_kafka_stream_replay_t     *rp;
    ngx_http_kafka_stream_worker_t     *w;
    ngx_http_kafka_stream_main_conf_t  *kmcf;

    w = ngx_http_kafka_stream_worker;
    kmcf = w->conf;

    if (w->nreplays >= kmcf->replay_max) {
        ngx_str_set(&reason, "too many replays in this worker "
                    "(kafka_stream_replay_max)");
        return ngx_http_kafka_stream_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                            &reason);
    }

    rc = ngx_http_kafka_stream_key(r, kslcf, &key);
    if (rc != NGX_OK) {
        return rc;
    }

    v = ngx_http_kafka_stream_viewer(r, kslcf);
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v->pending = 1;

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rp = ngx_pcalloc(pool, sizeof(ngx_http_kafka_stream_replay_t));
    if (rp == NULL) {
        ngx_destroy_pool(pool);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rp->pool = pool;
    rp->pipe[0] = -1;
    rp->pipe[1] = -1;

    ngx_queue_insert_tail(&w->replays, &rp->queue);
    w->nreplays++;
    w->slot->replays = w->nreplays;

    /* the viewer's cleanup releases the replay */

    v->replay = rp;
    v->replay_headers = ngx_http_kafka_stream_replay_headers;
    v->replay_shown = ngx_http_kafka_stream_replay_shown;
    v->replay_release = ngx_http_kafka_stream_replay_release;

    rp->viewer = v;
    rp->conf = kslcf;
    rp->topic = kslcf->source->topic;
    rp->since = ra->since;
    rp->until = ra->until;
    rp->at = ra->at;
    rp->offset = ra->offset;
    rp->speed = ra->speed;
    rp->anchor_ts = -1;
    rp->snapshot = (kslcf->type == NGX_HTTP_KAFKA_STREAM_SNAPSHOT);

    rp->key.len = key.len;
    rp->key.data = ngx_pnalloc(pool, key.len + 1);
    if (rp->key.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(rp->key.data, key.data, key.len);

    if (ra->partition != -1) {
        rp->partition = (int32_t) ra->partition;

    } else if (kslcf->partition != NGX_HTTP_KAFKA_STREAM_ALL) {
        rp->partition = (int32_t) kslcf->partition;

    } else {
        rp->partition = (int32_t) ngx_http_kafka_stream_replay_partition(
                                                             kslcf, &rp->key);
    }

    if (!rp->snapshot) {
        kslcf->viewers++;
        (void) ngx_atomic_fetch_add(&kslcf->source->counters->viewers, 1);
        v->counted = 1;
    }

    rp->pace.handler = ngx_http_kafka_stream_replay_pace_handler;
    rp->pace.data = rp;
    rp->pace.log = ngx_cycle->log;
    rp->pace.cancelable = 1;

    /*
     * ?fps= counts real seconds: at twice the speed, frames twice as far
     * apart in Kafka time.  Once live, the viewer's own rate takes over.
     */

    ngx_http_kafka_stream_rate_init(&rp->rate,
                                    (ngx_msec_t) (va->interval * rp->speed
                                                  / 1000),
                                    va->interval,
                                    ngx_http_kafka_stream_replay_rate_pass,
                                    rp, ngx_cycle->log);
    ngx_http_kafka_stream_viewer_rate(v, va);

    /* ?width=: the replay's frames made by a rendition of its own */

    g = ngx_http_kafka_stream_group(kslcf->source, rp->key.data, rp->key.len,
                                    1);
    if (g == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v->ask_width = va->width;
    v->ask_height = va->height;

    if (ngx_http_kafka_stream_view_sized(kslcf, va)) {
        if (g->latest) {
            v->width = ngx_http_kafka_stream_size_pick(kslcf, va->width,
                                                       va->height, g->latest);
        } else {
            v->undecided = 1;
        }
    }

    ngx_http_kafka_stream_group_release(kslcf->source, g);

    if (v->width && ngx_http_kafka_stream_replay_rendition(v) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rp->task = ngx_thread_task_alloc(pool, 0);
    if (rp->task == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rp->task->ctx = rp;
    rp->task->event.data = rp;
    rp->task->event.log = ngx_cycle->log;

    if (ngx_http_kafka_stream_replay_consumer(rp) != NGX_OK) {
        ngx_str_set(&reason, "no Kafka consumer for the replay (see the log)");
        return ngx_http_kafka_stream_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                            &reason);
    }

    rp->task->handler = ngx_http_kafka_stream_replay_lookup;
    rp->task->event.handler = ngx_http_kafka_stream_replay_looked_up;

    if (ngx_thread_task_post(kmcf->thread_pool, rp->task) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rp->busy = 1;

    /* a client that leaves during the lookup is noticed */

    r->read_event_handler = ngx_http_test_reading;

    r->main->count++;

    return NGX_DONE;
}


/* where the replay starts, as the lookup found it, and how fast */

static ngx_int_t
ngx_http_kafka_stream_replay_headers(ngx_http_request_t *r,
    ngx_http_kafka_stream_replay_t *rp)
{
    ngx_table_elt_t  *part, *offset, *speed;

    part = ngx_http_kafka_stream_header(r, "X-Replay-Partition");
    offset = ngx_http_kafka_stream_header(r, "X-Replay-Offset");
    speed = ngx_http_kafka_stream_header(r, "X-Replay-Speed");

    if (part == NULL || offset == NULL || speed == NULL) {
        return NGX_ERROR;
    }

    part->value.len = ngx_sprintf(part->value.data, "%D", rp->partition)
                      - part->value.data;
    offset->value.len = ngx_sprintf(offset->value.data, "%L", rp->offset)
                        - offset->value.data;
    speed->value.len = ngx_sprintf(speed->value.data, "%L.%03L",
                                   rp->speed / 1000, rp->speed % 1000)
                       - speed->value.data;

    return NGX_OK;
}


/*
 * Without ?partition= a location of all partitions replays the key's
 * partition (kafka_stream_partitioner); with "all", or before the topic's
 * partitions are counted, the one where the worker last saw a frame of
 * the key (or any frame, without a key), else partition 0.
 */

static ngx_int_t
ngx_http_kafka_stream_replay_partition(ngx_http_kafka_stream_loc_conf_t *kslcf,
    ngx_str_t *key)
{
    ngx_int_t                        p;
    ngx_queue_t                     *q;
    ngx_http_kafka_stream_group_t   *g;
    ngx_http_kafka_stream_source_t  *src;

    src = kslcf->source;

    p = ngx_http_kafka_stream_key_partition(src->topic,
                                            kslcf->partitioner->place, key);
    if (p != NGX_DECLINED) {
        return p;
    }

    if (key->len == 0) {
        return src->all->latest ? src->all->latest->partition : 0;
    }

    for (q = ngx_queue_head(&src->groups);
         q != ngx_queue_sentinel(&src->groups);
         q = ngx_queue_next(q))
    {
        g = ngx_queue_data(q, ngx_http_kafka_stream_group_t, queue);

        if (g->key.len == key->len
            && ngx_memcmp(g->key.data, key->data, key->len) == 0)
        {
            return g->latest ? g->latest->partition : 0;
        }
    }

    return 0;
}


/*
 * The replay's consumer.  Creating it does not block (librdkafka starts
 * its threads and returns); its destruction does, and goes to a thread.
 */

static ngx_int_t
ngx_http_kafka_stream_replay_consumer(ngx_http_kafka_stream_replay_t *rp)
{
    char                               errstr[512];
    ngx_uint_t                         i;
    rd_kafka_conf_t                   *conf;
    rd_kafka_queue_t                  *main_queue;
    ngx_http_kafka_stream_main_conf_t *kmcf;

    /* the worker's consumer says it all once; kafka_stream_option wins */

    static ngx_keyval_t  quiet[] = {
        { ngx_string("log_level"), ngx_string("3") },
        { ngx_null_string, ngx_null_string }
    };

    /* these win over kafka_stream_option, which is for live consumers */

    static ngx_keyval_t  props[] = {
        /* what a replay holds: one fetch (fetch.message.max.bytes, at
           least the largest frame) and a megabyte queued */
        { ngx_string("queued.min.messages"), ngx_string("16") },
        { ngx_string("queued.max.messages.kbytes"), ngx_string("1024") },
        { ngx_string("statistics.interval.ms"), ngx_string("0") },
        /* the end of the log is where the replay may become live */
        { ngx_string("enable.partition.eof"), ngx_string("true") },
        /* and the end is an empty fetch: with a wait longer than the
           time between frames every fetch brings one and a replay that
           caught up never goes live */
        { ngx_string("fetch.wait.max.ms"), ngx_string("10") },
        /* a replay overtaken by retention goes on from the oldest frame */
        { ngx_string("auto.offset.reset"), ngx_string("earliest") },
        { ngx_null_string, ngx_null_string }
    };

    kmcf = ngx_http_kafka_stream_worker->conf;

    conf = ngx_http_kafka_stream_rdconf(ngx_cycle->log, kmcf, quiet);
    if (conf == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; props[i].key.len; i++) {
        if (rd_kafka_conf_set(conf, (char *) props[i].key.data,
                              (char *) props[i].value.data,
                              errstr, sizeof(errstr))
            != RD_KAFKA_CONF_OK)
        {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "kafka stream: replay consumer: %s", errstr);
            rd_kafka_conf_destroy(conf);
            return NGX_ERROR;
        }
    }

    rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_ERROR|RD_KAFKA_EVENT_LOG);

    rp->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (rp->rk == NULL) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "kafka stream: replay consumer: rd_kafka_new() "
                      "failed: %s", errstr);
        rd_kafka_conf_destroy(conf);
        return NGX_ERROR;
    }

    rp->events = rd_kafka_queue_new(rp->rk);
    rp->messages = rd_kafka_queue_new(rp->rk);

    if (rp->events == NULL || rp->messages == NULL) {
        return NGX_ERROR;
    }

    /* errors and logs apart from the messages, which may wait their turn */

    main_queue = rd_kafka_queue_get_main(rp->rk);
    rd_kafka_queue_forward(main_queue, rp->events);
    rd_kafka_queue_destroy(main_queue);

    (void) rd_kafka_set_log_queue(rp->rk, rp->events);

    rp->rkt = rd_kafka_topic_new(rp->rk, (char *) rp->topic->name.data, NULL);
    if (rp->rkt == NULL) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "kafka stream: replay consumer: rd_kafka_topic_new() "
                      "failed: %s", rd_kafka_err2str(rd_kafka_last_error()));
        return NGX_ERROR;
    }

    rp->wakeup = ngx_http_kafka_stream_pipe(rp->pipe,
                                          ngx_http_kafka_stream_replay_wakeup,
                                          rp, NGX_LOG_ERR);
    if (rp->wakeup == NULL) {
        return NGX_ERROR;
    }

    rd_kafka_queue_io_event_enable(rp->events, rp->pipe[1], "1", 1);
    rd_kafka_queue_io_event_enable(rp->messages, rp->pipe[1], "1", 1);

    return NGX_OK;
}


/* back in the event loop: answer, or start the replay */

static void
ngx_http_kafka_stream_replay_looked_up(ngx_event_t *ev)
{
    ngx_int_t                        rc;
    ngx_connection_t                *c;
    ngx_http_request_t              *r;
    ngx_http_kafka_stream_frame_t   *f;
    ngx_http_kafka_stream_replay_t  *rp;

    rp = ev->data;
    rp->busy = 0;

    if (rp->viewer == NULL) {
        /* the request went away meanwhile */
        ngx_http_kafka_stream_replay_stop(rp);
        return;
    }

    r = rp->viewer->request;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    if (rp->status) {
        ngx_http_finalize_request(r,
                 ngx_http_kafka_stream_refuse(r, rp->status, &rp->reason));
        ngx_http_run_posted_requests(c);
        return;
    }

    if (rp->snapshot) {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        f = NULL;

        /* the lookup took only a complete image */

        if (rp->found) {
            f = ngx_http_kafka_stream_frame(rp->found,
                                            ngx_http_kafka_stream_sniff(
                                                rp->found->payload,
                                                rp->found->len));
        }

        if (f && rp->viewer->undecided) {
            ngx_http_kafka_stream_replay_size(rp->viewer, f);
        }

        if (f && rp->viewer->rendition) {

            /* made at the size asked, then answered as a live snapshot */

            f->refs++;
            ngx_http_kafka_stream_replay_snapshot(rp, f);
            ngx_http_kafka_stream_frame_release(f);
            ngx_http_run_posted_requests(c);
            return;
        }

        if (f) {
            f->refs++;
            rc = ngx_http_kafka_stream_snapshot(r, f);
            ngx_http_kafka_stream_frame_release(f);
        }

        ngx_http_finalize_request(r, rc);
        ngx_http_run_posted_requests(c);
        return;
    }

    ngx_http_kafka_stream_replay_begin(rp);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_kafka_stream_replay_begin(ngx_http_kafka_stream_replay_t *rp)
{
    ngx_int_t                        rc;
    ngx_http_request_t              *r;
    ngx_http_kafka_stream_viewer_t  *v;

    v = rp->viewer;
    r = v->request;

    rc = ngx_http_kafka_stream_open(v);

    if (rc != NGX_OK || r->header_only) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "kafka stream: replay of \"%V\" [%D] from offset %L, "
                  "speed %L.%03L", &rp->topic->name, rp->partition,
                  rp->offset, rp->speed / 1000, rp->speed % 1000);

    rp->position = rp->offset - 1;

    /* even at the end of the log: its end-of-partition makes it live */

    if (rd_kafka_consume_start_queue(rp->rkt, rp->partition, rp->offset,
                                     rp->messages)
        == -1)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "kafka stream: cannot replay \"%V\" [%D]: %s",
                      &rp->topic->name, rp->partition,
                      rd_kafka_err2str(rd_kafka_last_error()));
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    rp->started = 1;

    ngx_http_kafka_stream_replay_read(rp);
}


static void
ngx_http_kafka_stream_replay_wakeup(ngx_event_t *ev)
{
    ngx_connection_t                *c;
    rd_kafka_event_t                *rev;
    ngx_http_kafka_stream_replay_t  *rp;

    c = ev->data;
    rp = c->data;

    ngx_http_kafka_stream_pipe_read(c);

    while ((rev = rd_kafka_queue_poll(rp->events, 0)) != NULL) {

        if (rd_kafka_event_type(rev) == RD_KAFKA_EVENT_LOG) {
            ngx_http_kafka_stream_log(rev);

        } else if (rd_kafka_event_type(rev) == RD_KAFKA_EVENT_ERROR
                   && ngx_http_kafka_stream_log_allowed())
        {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "kafka stream: replay of \"%V\" [%D]: %s",
                          &rp->topic->name, rp->partition,
                          rd_kafka_event_error_string(rev));
        }

        rd_kafka_event_destroy(rev);
    }

    if (rp->started && rp->viewer && !rp->busy) {
        ngx_http_kafka_stream_replay_read(rp);
    }
}


/*
 * Takes messages until one is to be shown later, or none is left; shows
 * those that are due.  At most one frame waits in the replay, and the
 * consumer fetches no further than its small queue: the log is read at
 * the pace of the replay, not ahead of it.
 */

static void
ngx_http_kafka_stream_replay_read(ngx_http_kafka_stream_replay_t *rp)
{
    ngx_int_t            rc;
    rd_kafka_message_t  *msg;

    for ( ;; ) {

        if (rp->viewer == NULL || rp->viewer->failed || rp->next) {
            return;
        }

        msg = rd_kafka_consume_queue(rp->messages, 0);

        if (msg == NULL) {
            return;
        }

        rc = ngx_http_kafka_stream_replay_message(rp, msg);

        rd_kafka_message_destroy(msg);

        if (rc == NGX_DONE) {
            return;
        }

        if (rp->next) {
            if (!ngx_http_kafka_stream_replay_due(rp)) {
                return;
            }

            ngx_http_kafka_stream_replay_show(rp);
        }
    }
}


/*
 * NGX_OK, with rp->next set if the message is a frame to show; NGX_DONE
 * when the replay ended or went live.
 */

static ngx_int_t
ngx_http_kafka_stream_replay_message(ngx_http_kafka_stream_replay_t *rp,
    rd_kafka_message_t *msg)
{
    int                             type;
    ngx_http_kafka_stream_frame_t  *f;

    if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        return ngx_http_kafka_stream_replay_end(rp, msg->offset);
    }

    if (msg->err) {
        if (ngx_http_kafka_stream_log_allowed()) {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "kafka stream: replay of \"%V\" [%D]: %s",
                          &rp->topic->name, rp->partition,
                          rd_kafka_message_errstr(msg));
        }

        return NGX_OK;
    }

    rp->position = msg->offset;

    if (rp->until != -1 && rd_kafka_message_timestamp(msg, NULL) > rp->until)
    {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "kafka stream: replay of \"%V\" [%D] reached its end "
                      "(until) at offset %L", &rp->topic->name, rp->partition,
                      msg->offset);

        ngx_http_kafka_stream_replay_finish(rp);
        return NGX_DONE;
    }

    if (rp->key.len
        && (msg->key_len != rp->key.len
            || ngx_memcmp(msg->key, rp->key.data, rp->key.len) != 0))
    {
        return NGX_OK;
    }

    /* the same checks as for the live frames: the bytes are Kafka's */

    type = (msg->len > rp->conf->max_frame_size)
           ? NGX_HTTP_KAFKA_STREAM_NOT_IMAGE
           : ngx_http_kafka_stream_sniff(msg->payload, msg->len);

    if (type == NGX_HTTP_KAFKA_STREAM_NOT_IMAGE) {
        ngx_http_kafka_stream_skipped(msg, rp->conf->max_frame_size);
        return NGX_OK;
    }

    f = ngx_http_kafka_stream_frame(msg, type);
    if (f == NULL) {
        return NGX_OK;
    }

    f->refs++;
    rp->next = f;

    return NGX_OK;
}


/*
 * Whether the frame read is due.  The clock runs from the first frame:
 * a frame is due when as much time has passed, divided by the speed, as
 * lies between its timestamp and the first one's.  A replay held up for
 * longer (a slow viewer, a slow broker) starts its clock afresh rather
 * than rushing through what it missed.
 */

static ngx_uint_t
ngx_http_kafka_stream_replay_due(ngx_http_kafka_stream_replay_t *rp)
{
    int64_t  wait;

    if (rp->anchor_ts == -1) {
        rp->anchor = ngx_current_msec;
        rp->anchor_ts = rp->next->timestamp;
        return 1;
    }

    wait = (rp->next->timestamp - rp->anchor_ts) * 1000 / rp->speed
           - (ngx_msec_int_t) (ngx_current_msec - rp->anchor);

    if (wait > 0) {
        /* a day at most: after a longer gap the timer comes round again */
        ngx_add_timer(&rp->pace, (ngx_msec_t) ngx_min(wait, 86400000));
        return 0;
    }

    if (wait < -NGX_HTTP_KAFKA_STREAM_REPLAY_LATE) {
        rp->anchor = ngx_current_msec;
        rp->anchor_ts = rp->next->timestamp;
    }

    return 1;
}


static void
ngx_http_kafka_stream_replay_pace_handler(ngx_event_t *ev)
{
    ngx_http_kafka_stream_replay_t  *rp;

    rp = ev->data;

    if (rp->viewer == NULL) {
        return;
    }

    if (rp->next == NULL) {
        /* at the end of the log, waiting for the worker's consumer */
        (void) ngx_http_kafka_stream_replay_end(rp, rp->end);
        return;
    }

    if (!ngx_http_kafka_stream_replay_due(rp)) {
        return;
    }

    ngx_http_kafka_stream_replay_show(rp);
    ngx_http_kafka_stream_replay_read(rp);
}


static void
ngx_http_kafka_stream_replay_show(ngx_http_kafka_stream_replay_t *rp)
{
    ngx_http_kafka_stream_frame_t  *f;

    f = rp->next;
    rp->next = NULL;

    /* ?fps= first: a frame held back is not made at another size either */

    if (ngx_http_kafka_stream_rate_admit(&rp->rate, f)) {
        ngx_http_kafka_stream_replay_present(rp, f);
    }

    ngx_http_kafka_stream_frame_release(f);
}


/* a frame the rate held goes after all: nothing newer came in time */

static void
ngx_http_kafka_stream_replay_rate_pass(void *data,
    ngx_http_kafka_stream_frame_t *f)
{
    ngx_http_kafka_stream_replay_t *rp = data;

    if (rp->viewer) {
        ngx_http_kafka_stream_replay_present(rp, f);
    }
}


/* to the viewer, or first to its rendition, which comes back to made() */

static void
ngx_http_kafka_stream_replay_present(ngx_http_kafka_stream_replay_t *rp,
    ngx_http_kafka_stream_frame_t *f)
{
    if (rp->viewer->undecided) {
        ngx_http_kafka_stream_replay_size(rp->viewer, f);
    }

    if (rp->viewer->rendition) {
        ngx_http_kafka_stream_rendition_source(rp->viewer->rendition, f);
        return;
    }

    ngx_http_kafka_stream_frame_drop(&rp->shown);
    rp->shown = f;
    f->refs++;

    ngx_http_kafka_stream_offer(rp->viewer, f);
}


/*
 * The made hook of a replay's own rendition: its one viewer gets it ("f"
 * is NULL when the frame could not be made).
 */

static void
ngx_http_kafka_stream_replay_made(ngx_http_kafka_stream_rendition_t *rd,
    ngx_http_kafka_stream_frame_t *f)
{
    ngx_http_kafka_stream_viewer_t  *v;

    v = ngx_queue_data(ngx_queue_head(&rd->viewers),
                       ngx_http_kafka_stream_viewer_t, queue);

    if (f) {
        if (v->replay) {
            ngx_http_kafka_stream_frame_drop(&v->replay->shown);
            v->replay->shown = f;
            f->refs++;
        }

        ngx_http_kafka_stream_offer(v, f);
    }

    /* ?until= came while this was being made: now the stream ends */

    if (v->replay && v->replay->ending && rd->pending == NULL) {
        v->replay->ending = 0;
        ngx_http_kafka_stream_replay_finished(v->replay);
    }
}


/* a rendition of the viewer's own, for the replay's frames at its size */

static ngx_int_t
ngx_http_kafka_stream_replay_rendition(ngx_http_kafka_stream_viewer_t *v)
{
    ngx_http_kafka_stream_rendition_t  *rd;

    rd = ngx_http_kafka_stream_rendition(v->conf->source, NULL, v->width,
                                         v->conf->quality,
                                         ngx_http_kafka_stream_replay_made);
    if (rd == NULL) {
        return NGX_ERROR;
    }

    ngx_queue_insert_tail(&rd->viewers, &v->queue);
    ngx_http_kafka_stream_rendition_join(rd);
    v->rendition = rd;

    return NGX_OK;
}


/* a size asked for before the key had a frame: the first decides it */

static void
ngx_http_kafka_stream_replay_size(ngx_http_kafka_stream_viewer_t *v,
    ngx_http_kafka_stream_frame_t *f)
{
    v->undecided = 0;
    v->width = ngx_http_kafka_stream_size_pick(v->conf, v->ask_width,
                                               v->ask_height, f);

    if (v->width && ngx_http_kafka_stream_replay_rendition(v) != NGX_OK) {
        /* no memory for it: the source's frames rather than none */
        v->width = 0;
    }
}


/*
 * A snapshot at a time (?at=) and a size: the viewer waits, as for a live
 * snapshot, for the first frame its rendition makes, and not for long.
 */

static void
ngx_http_kafka_stream_replay_snapshot(ngx_http_kafka_stream_replay_t *rp,
    ngx_http_kafka_stream_frame_t *f)
{
    ngx_http_kafka_stream_viewer_t  *v;

    v = rp->viewer;
    v->snapshot = 1;

    ngx_add_timer(&v->resend, NGX_HTTP_KAFKA_STREAM_SNAPSHOT_WAIT);

    ngx_http_kafka_stream_rendition_source(v->rendition, f);
}


static ngx_http_kafka_stream_frame_t *
ngx_http_kafka_stream_replay_shown(ngx_http_kafka_stream_replay_t *rp)
{
    return rp->shown;
}


/*
 * The consumer reached the end of the log, "end" being the next offset.
 * The live frames are the next ones once the worker's consumer reads the
 * partition and has taken nothing there that the replay has not.  If it
 * has, the replay reads on and comes here again; if it has not started
 * on the partition yet (it would start at the latest message, maybe past
 * "end"), the replay looks again a moment later, and meanwhile shows
 * what comes itself.  NGX_DONE when the replay ended or went live.
 */

static ngx_int_t
ngx_http_kafka_stream_replay_end(ngx_http_kafka_stream_replay_t *rp,
    int64_t end)
{
    int64_t  last;

    last = (rp->partition < NGX_HTTP_KAFKA_STREAM_MAX_PARTS)
           ? rp->topic->parts[rp->partition].last : -1;

    if (end <= rp->position || last >= end) {
        return NGX_OK;
    }

    if (last == -1) {
        /* about to hand over: the worker reads the partition from now on */

        if (rp->viewer) {
            ngx_http_kafka_stream_need(&rp->viewer->need, rp->topic,
                                       rp->partition, NULL, NULL);
        }

        rp->end = end;
        ngx_add_timer(&rp->pace, NGX_HTTP_KAFKA_STREAM_TICK);
        return NGX_OK;
    }

    rp->position = end - 1;

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "kafka stream: replay of \"%V\" [%D] reached the live end "
                  "at offset %L", &rp->topic->name, rp->partition, end);

    if (rp->until != -1) {
        ngx_http_kafka_stream_replay_finish(rp);

    } else {
        ngx_http_kafka_stream_replay_live(rp);
    }

    return NGX_DONE;
}


/* the viewer of a replay that reached the live end becomes a live one */

static void
ngx_http_kafka_stream_replay_live(ngx_http_kafka_stream_replay_t *rp)
{
    ngx_str_t                        key;
    ngx_uint_t                       shown;
    ngx_http_kafka_stream_group_t   *g;
    ngx_http_kafka_stream_viewer_t  *v;

    v = rp->viewer;

    g = ngx_http_kafka_stream_group(v->conf->source, rp->key.data,
                                    rp->key.len, 1);
    if (g == NULL) {
        v->failed = 1;

        if (!v->send.posted) {
            ngx_post_event(&v->send, &ngx_posted_events);
        }

        return;
    }

    if (ngx_http_kafka_stream_join(v, g) != NGX_OK) {
        v->failed = 1;

        if (!v->send.posted) {
            ngx_post_event(&v->send, &ngx_posted_events);
        }

        ngx_http_kafka_stream_group_release(v->conf->source, g);
        return;
    }

    /*
     * From the replay's partition to what the location reads for the key
     * (a key outlives the replay's pool in the request's); should the copy
     * fail, the replay's partition is read still, where the key was.
     */

    key.len = rp->key.len;
    key.data = ngx_pstrdup(v->request->pool, &rp->key);

    if (key.data || key.len == 0) {
        ngx_http_kafka_stream_need_release(&v->need);
        ngx_http_kafka_stream_watch(v, &key);
    }

    v->floor = 1;
    v->floor_partition = rp->partition;
    v->floor_offset = rp->position;

    shown = (rp->shown != NULL);

    v->replay = NULL;
    ngx_http_kafka_stream_replay_release(rp);

    /* nothing to replay after all: the frame current now, as live */

    if (v->rendition) {
        if (!shown && v->rendition->latest) {
            ngx_http_kafka_stream_offer(v, v->rendition->latest);
        }

        ngx_http_kafka_stream_rendition_want(v->rendition);

    } else if (!shown && g->latest) {
        ngx_http_kafka_stream_offer(v, g->latest);
    }
}


/* ?until= reached: the closing boundary once the last frame is out */

static void
ngx_http_kafka_stream_replay_finish(ngx_http_kafka_stream_replay_t *rp)
{
    ngx_http_kafka_stream_frame_t      *f;
    ngx_http_kafka_stream_rendition_t  *rd;

    /* the last frame ?fps= held back is the last one shown */

    f = rp->rate.held;

    if (f) {
        rp->rate.held = NULL;
        ngx_http_kafka_stream_replay_present(rp, f);
        ngx_http_kafka_stream_frame_release(f);
    }

    /* and one being made at the size comes before the end */

    rd = rp->viewer->rendition;

    if (rd && (rd->busy || rd->pending)) {
        rp->ending = 1;
        return;
    }

    ngx_http_kafka_stream_replay_finished(rp);
}


static void
ngx_http_kafka_stream_replay_finished(ngx_http_kafka_stream_replay_t *rp)
{
    ngx_http_kafka_stream_viewer_t  *v;

    v = rp->viewer;

    v->finish = 1;
    v->replay = NULL;
    ngx_http_kafka_stream_replay_release(rp);

    if (v->resend.timer_set) {
        ngx_del_timer(&v->resend);
    }

    if (!v->send.posted) {
        ngx_post_event(&v->send, &ngx_posted_events);
    }
}


/* the viewer is done with the replay */

static void
ngx_http_kafka_stream_replay_release(ngx_http_kafka_stream_replay_t *rp)
{
    rp->viewer = NULL;

    /* a task in a thread still uses it: its handler comes back here */

    if (rp->busy) {
        return;
    }

    ngx_http_kafka_stream_replay_stop(rp);
}


/*
 * What the event loop holds goes at once; the consumer is destroyed in a
 * thread, where its threads are joined.  While the worker exits, the
 * thread pool is gone already: exit_process destroys what is left.
 */

static void
ngx_http_kafka_stream_replay_stop(ngx_http_kafka_stream_replay_t *rp)
{
    ngx_http_kafka_stream_worker_t  *w;

    w = ngx_http_kafka_stream_worker;

    ngx_http_kafka_stream_replay_close(rp);

    if (rp->rk == NULL) {
        ngx_http_kafka_stream_replay_free(rp);
        return;
    }

    if (w->exiting) {
        return;
    }

    rp->task->handler = ngx_http_kafka_stream_replay_destroy;
    rp->task->event.handler = ngx_http_kafka_stream_replay_destroyed;

    if (ngx_thread_task_post(w->conf->thread_pool, rp->task) == NGX_OK) {
        rp->busy = 1;
        return;
    }

    /* it cannot wait in a full queue: the worker blocks once, and says so */

    ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                  "kafka stream: a replay consumer is destroyed in the "
                  "event loop");

    ngx_http_kafka_stream_replay_destroy(rp, ngx_cycle->log);
    ngx_http_kafka_stream_replay_free(rp);
}


/* the replay's timer, frames, messages and pipe */

static void
ngx_http_kafka_stream_replay_close(ngx_http_kafka_stream_replay_t *rp)
{
    if (rp->pace.timer_set) {
        ngx_del_timer(&rp->pace);
    }

    ngx_http_kafka_stream_rate_free(&rp->rate);
    ngx_http_kafka_stream_frame_drop(&rp->next);
    ngx_http_kafka_stream_frame_drop(&rp->shown);

    if (rp->found) {
        rd_kafka_message_destroy(rp->found);
        rp->found = NULL;
    }

    if (rp->wakeup) {
        rd_kafka_queue_io_event_enable(rp->events, -1, NULL, 0);
        rd_kafka_queue_io_event_enable(rp->messages, -1, NULL, 0);
    }

    ngx_http_kafka_stream_pipe_close(&rp->wakeup, rp->pipe);
}


static void
ngx_http_kafka_stream_replay_destroyed(ngx_event_t *ev)
{
    ngx_http_kafka_stream_replay_free(ev->data);
}


static void
ngx_http_kafka_stream_replay_free(ngx_http_kafka_stream_replay_t *rp)
{
    ngx_http_kafka_stream_worker_t  *w;

    w = ngx_http_kafka_stream_worker;

    ngx_queue_remove(&rp->queue);
    w->nreplays--;
    w->slot->replays = w->nreplays;

    ngx_destroy_pool(rp->pool);
}


/*
 * The worker exits (the consumer's exit_process): replays whose
 * consumers the thread pool did not destroy, or whose tasks finished
 * after the event loop's last turn.  Every task has ended: the pool's
 * threads are joined.
 */

void
ngx_http_kafka_stream_replay_exit(ngx_http_kafka_stream_worker_t *w,
    ngx_log_t *log)
{
    ngx_queue_t                     *q;
    ngx_http_kafka_stream_replay_t  *rp;

    while (!ngx_queue_empty(&w->replays)) {
        q = ngx_queue_head(&w->replays);
        rp = ngx_queue_data(q, ngx_http_kafka_stream_replay_t, queue);

        ngx_http_kafka_stream_replay_close(rp);

        if (rp->rk) {
            ngx_http_kafka_stream_replay_destroy(rp, log);
        }

        ngx_http_kafka_stream_replay_free(rp);
    }
}

#endif /* NGX_THREADS */
