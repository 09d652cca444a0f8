
/*
 * The worker's Kafka consumer, with the worker's start and exit.  Every
 * worker process makes one in init_process, after fork (librdkafka's
 * threads would not survive fork()), for all the topics the configuration
 * names, and destroys it in exit_process; which partitions it reads, and
 * when, is up to src/..._partitions.c.  Its queue wakes the event loop
 * through a pipe registered as a read event, and drain() takes what is
 * there without ever waiting; each message is checked and made a frame
 * (src/..._frame.c) once for all the sources that read it.  A partition
 * that starts catches up from a few messages back: those frames only
 * update the groups, and the viewers get the newest of each key after
 * the drain.  The statistics tell which brokers are up and which
 * partitions a topic has; a tick stops partitions nobody needs and
 * notices a graceful shutdown.
 * The viewers and the replays sit above the consumer: it reaches them
 * only through the hooks the module gives it at init_process
 * (ngx_http_kafka_stream_hooks_t).  The replays use its pipe and its
 * librdkafka properties for their own consumers.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kafka_stream.h"


/* glibc's default, made fixed: see ngx_http_kafka_stream_malloc_tune() */
#define NGX_HTTP_KAFKA_STREAM_MMAP_THRESHOLD (128 * 1024)


static void ngx_http_kafka_stream_malloc_tune(ngx_log_t *log);
static ngx_int_t ngx_http_kafka_stream_consumer(ngx_cycle_t *cycle,
    ngx_http_kafka_stream_worker_t *w);
static void ngx_http_kafka_stream_wakeup_handler(ngx_event_t *ev);
static void ngx_http_kafka_stream_drain(void);
static void ngx_http_kafka_stream_message(rd_kafka_message_t *msg);
static void ngx_http_kafka_stream_topic_gone(rd_kafka_event_t *ev);
static void ngx_http_kafka_stream_list_key(ngx_http_kafka_stream_worker_t *w,
    ngx_http_kafka_stream_source_t *src, ngx_http_kafka_stream_group_t *g);
static void ngx_http_kafka_stream_caught_up(ngx_http_kafka_stream_worker_t *w);
static void ngx_http_kafka_stream_publish_caught(
    ngx_http_kafka_stream_worker_t *w, ngx_http_kafka_stream_group_t *g);
static void ngx_http_kafka_stream_stats(const char *json, size_t len);
static void ngx_http_kafka_stream_partition_found(void *data,
    const unsigned char *topic, size_t len, long partition);
static void ngx_http_kafka_stream_tick_handler(ngx_event_t *ev);


/* the worker's consumer and what hangs on it; NULL without one */
ngx_http_kafka_stream_worker_t  *ngx_http_kafka_stream_worker;


/* consumer properties suited to live video; kafka_stream_option wins */

static ngx_keyval_t  ngx_http_kafka_stream_defaults[] = {
    /*
     * a broker answers a fetch as soon as a frame is there, so the wait
     * adds no latency: it says how often an idle worker asks each broker,
     * 2 times a second rather than 100 with 10 ms (bench/RESULTS.md, 3)
     */
    { ngx_string("fetch.wait.max.ms"), ngx_string("500") },
    { ngx_string("enable.partition.eof"), ngx_string("false") },
    { ngx_string("allow.auto.create.topics"), ngx_string("false") },
    { ngx_string("enable.auto.commit"), ngx_string("false") },
    { ngx_string("auto.offset.reset"), ngx_string("latest") },
    { ngx_string("statistics.interval.ms"), ngx_string("1000") },
    /* back within a second of a broker's return, not up to 10 s later */
    { ngx_string("reconnect.backoff.max.ms"), ngx_string("1000") },
    { ngx_string("client.id"), ngx_string("nginx-kafka-stream") },
    { ngx_null_string, ngx_null_string }
};


/*
 * The worker's start (init_process): its slot in the zone, the sources'
 * groups and the consumer.  "hooks" are the layers above, which the
 * consumer calls through them.
 */

ngx_int_t
ngx_http_kafka_stream_worker_init(ngx_cycle_t *cycle,
    const ngx_http_kafka_stream_hooks_t *hooks)
{
    ngx_uint_t                          i;
    ngx_slab_pool_t                    *shpool;
    ngx_http_kafka_stream_slot_t       *slot;
    ngx_http_kafka_stream_source_t    **sources, *src;
    ngx_http_kafka_stream_worker_t     *w;
    ngx_http_kafka_stream_main_conf_t  *kmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    kmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_kafka_stream_module);

    if (kmcf == NULL || kmcf->shm_zone == NULL) {
        return NGX_OK;
    }

    if (ngx_worker >= NGX_HTTP_KAFKA_STREAM_MAX_SLOTS) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "kafka stream: more than %d workers are not supported",
                      NGX_HTTP_KAFKA_STREAM_MAX_SLOTS);
        return NGX_OK;
    }

    ngx_http_kafka_stream_malloc_tune(cycle->log);

    shpool = (ngx_slab_pool_t *) kmcf->shm_zone->shm.addr;
    slot = ngx_http_kafka_stream_slot(kmcf, shpool->data, ngx_worker);

    /* a worker that replaces a crashed one starts from zero */
    ngx_memzero(slot, kmcf->slot_size);

    w = ngx_pcalloc(cycle->pool, sizeof(ngx_http_kafka_stream_worker_t));
    if (w == NULL) {
        return NGX_ERROR;
    }

    w->conf = kmcf;
    w->hooks = hooks;
    w->slot = slot;
    w->pipe[0] = -1;
    w->pipe[1] = -1;
    ngx_queue_init(&w->viewers);
    ngx_queue_init(&w->walls);
    ngx_queue_init(&w->replays);
    ngx_queue_init(&w->renditions);

    if (ngx_array_init(&w->catching, cycle->pool, 8,
                       sizeof(ngx_http_kafka_stream_catching_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    sources = kmcf->sources.elts;

    for (i = 0; i < kmcf->sources.nelts; i++) {
        src = sources[i];

        ngx_queue_init(&src->groups);
        ngx_queue_init(&src->walls);
        src->idle_groups = 0;
        src->counters = ngx_http_kafka_stream_counters(slot, i);
        src->size_counters = ngx_http_kafka_stream_size_counters(kmcf, slot,
                                                           src->first_size);

        src->all = ngx_pcalloc(cycle->pool,
                               sizeof(ngx_http_kafka_stream_group_t));
        if (src->all == NULL) {
            return NGX_ERROR;
        }

        ngx_queue_init(&src->all->viewers);
        ngx_queue_init(&src->all->walls);
        src->all->source = src;
        ngx_queue_init(&src->all->renditions);
        src->all->all = 1;
    }

    /*
     * Without a consumer the worker still serves: streams answer 503 and
     * the reason is in the log.  nginx itself must not fail to start for
     * an unreachable or misconfigured Kafka.
     */

    ngx_http_kafka_stream_worker = w;

    if (ngx_http_kafka_stream_consumer(cycle, w) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                      "kafka stream: consumer not started, "
                      "streams answer 503");
        return NGX_OK;
    }

    slot->pid = ngx_pid;
    slot->started = ngx_time();

    w->tick.handler = ngx_http_kafka_stream_tick_handler;
    w->tick.data = w;
    w->tick.log = cycle->log;
    ngx_add_timer(&w->tick, NGX_HTTP_KAFKA_STREAM_TICK);

    return NGX_OK;
}


/*
 * librdkafka reads each fetch response into one buffer of the response's
 * size, in the thread of the broker it came from.  Live, a response holds
 * a frame or two; after a broker outage the frames produced meanwhile
 * come at once, in responses of megabytes.  glibc serves those with
 * mmap(), and freeing one raises its dynamic mmap threshold to that size
 * (up to 32 MB): from then on the backlog after the next outage is
 * allocated from the heaps of librdkafka's threads, whose freed memory
 * stays mapped once fragmented.  The workers' RSS grew by a step after
 * every outage (the soak, stress/run).  A fixed threshold keeps large
 * buffers in mmap(), returned to the system when freed.  An administrator
 * who sets MALLOC_MMAP_THRESHOLD_ and passes it with "env" keeps theirs.
 */

static void
ngx_http_kafka_stream_malloc_tune(ngx_log_t *log)
{
#if (NGX_LINUX && defined M_MMAP_THRESHOLD)

    if (getenv("MALLOC_MMAP_THRESHOLD_") != NULL) {
        return;
    }

    /* an allocator other than glibc's (a sanitizer's) says no: harmless */

    if (mallopt(M_MMAP_THRESHOLD, NGX_HTTP_KAFKA_STREAM_MMAP_THRESHOLD) == 0) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "kafka stream: mallopt(M_MMAP_THRESHOLD) not taken");
    }

#endif
}


static ngx_int_t
ngx_http_kafka_stream_consumer(ngx_cycle_t *cycle,
    ngx_http_kafka_stream_worker_t *w)
{
    char                               errstr[512];
    ngx_uint_t                         i;
    rd_kafka_conf_t                   *conf;
    rd_kafka_queue_t                  *main_queue;
    ngx_http_kafka_stream_topic_t    **topics, *t;
    ngx_http_kafka_stream_main_conf_t *kmcf;

    kmcf = w->conf;

    conf = ngx_http_kafka_stream_rdconf(cycle->log, kmcf, NULL);
    if (conf == NULL) {
        return NGX_ERROR;
    }

    rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_ERROR
                                   |RD_KAFKA_EVENT_STATS
                                   |RD_KAFKA_EVENT_LOG);

    w->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (w->rk == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "kafka stream: rd_kafka_new() failed: %s", errstr);
        rd_kafka_conf_destroy(conf);
        return NGX_ERROR;
    }

    w->queue = rd_kafka_queue_new(w->rk);
    if (w->queue == NULL) {
        goto failed;
    }

    /* errors, statistics and logs come on the same queue as the frames */

    main_queue = rd_kafka_queue_get_main(w->rk);
    rd_kafka_queue_forward(main_queue, w->queue);
    rd_kafka_queue_destroy(main_queue);

    if (rd_kafka_set_log_queue(w->rk, w->queue) != RD_KAFKA_RESP_ERR_NO_ERROR)
    {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "kafka stream: librdkafka logs stay on stderr");
    }

    w->wakeup = ngx_http_kafka_stream_pipe(w->pipe,
                                           ngx_http_kafka_stream_wakeup_handler,
                                           w, NGX_LOG_EMERG);
    if (w->wakeup == NULL) {
        goto failed;
    }

    rd_kafka_queue_io_event_enable(w->queue, w->pipe[1], "1", 1);

    topics = kmcf->topics.elts;

    for (i = 0; i < kmcf->topics.nelts; i++) {
        t = topics[i];

        t->rkt = rd_kafka_topic_new(w->rk, (char *) t->name.data, NULL);
        if (t->rkt == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "kafka stream: rd_kafka_topic_new(\"%V\") "
                          "failed: %s", &t->name,
                          rd_kafka_err2str(rd_kafka_last_error()));
            goto failed;
        }

    }

    /* no partition is read before a viewer needs it (or always_consume) */

    if (ngx_http_kafka_stream_partitions_init(cycle, w) != NGX_OK) {
        goto failed;
    }

    /* frames may already be there */
    ngx_http_kafka_stream_drain();

    return NGX_OK;

failed:

    ngx_http_kafka_stream_exit_process(cycle);

    return NGX_ERROR;
}


/* the module's defaults, then "more" ones, then kafka_stream_option */

rd_kafka_conf_t *
ngx_http_kafka_stream_rdconf(ngx_log_t *log,
    ngx_http_kafka_stream_main_conf_t *kmcf, ngx_keyval_t *more)
{
    char              errstr[512];
    u_char            size[NGX_SIZE_T_LEN + 1];
    ngx_uint_t        i;
    ngx_keyval_t     *kv;
    rd_kafka_conf_t  *conf;

    conf = rd_kafka_conf_new();

    /* fetch a whole frame: the largest one any location accepts, and more */

    (void) ngx_sprintf(size, "%uz%Z",
                       ngx_max(kmcf->max_frame_size + 65536, 1048576));

    if (rd_kafka_conf_set(conf, "bootstrap.servers",
                          (char *) kmcf->brokers.data, errstr, sizeof(errstr))
        != RD_KAFKA_CONF_OK
        || rd_kafka_conf_set(conf, "fetch.message.max.bytes", (char *) size,
                             errstr, sizeof(errstr))
           != RD_KAFKA_CONF_OK
        || rd_kafka_conf_set(conf, "log.queue", "true", errstr,
                             sizeof(errstr))
           != RD_KAFKA_CONF_OK)
    {
        goto failed;
    }

    for (kv = ngx_http_kafka_stream_defaults; kv->key.len; kv++) {
        if (rd_kafka_conf_set(conf, (char *) kv->key.data,
                              (char *) kv->value.data, errstr, sizeof(errstr))
            != RD_KAFKA_CONF_OK)
        {
            goto failed;
        }
    }

    for (kv = more; kv && kv->key.len; kv++) {
        if (rd_kafka_conf_set(conf, (char *) kv->key.data,
                              (char *) kv->value.data, errstr, sizeof(errstr))
            != RD_KAFKA_CONF_OK)
        {
            goto failed;
        }
    }

    if (kmcf->options) {
        kv = kmcf->options->elts;

        for (i = 0; i < kmcf->options->nelts; i++) {
            if (rd_kafka_conf_set(conf, (char *) kv[i].key.data,
                                  (char *) kv[i].value.data,
                                  errstr, sizeof(errstr))
                != RD_KAFKA_CONF_OK)
            {
                goto failed;
            }
        }
    }

    return conf;

failed:

    ngx_log_error(NGX_LOG_EMERG, log, 0, "kafka stream: %s", errstr);
    rd_kafka_conf_destroy(conf);

    return NULL;
}


void
ngx_http_kafka_stream_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                       i;
    ngx_http_kafka_stream_topic_t  **topics;
    ngx_http_kafka_stream_worker_t  *w;

    w = ngx_http_kafka_stream_worker;

    if (w == NULL) {
        return;
    }

    /* the thread pool has stopped (its exit_process ran first) */

    w->exiting = 1;

    /* on a fast shutdown the viewers are still here */

    w->hooks->exit_viewers(w);

#if (NGX_THREADS)
    w->hooks->exit_replays(w, cycle->log);
#endif

    if (w->tick.timer_set) {
        ngx_del_timer(&w->tick);
    }

    if (w->queue) {
        rd_kafka_queue_io_event_enable(w->queue, -1, NULL, 0);
    }

    ngx_http_kafka_stream_pipe_close(&w->wakeup, w->pipe);

    ngx_http_kafka_stream_free_frames(w->conf);

    topics = w->conf->topics.elts;

    for (i = 0; i < w->conf->topics.nelts; i++) {
        if (topics[i]->rkt) {
            rd_kafka_topic_destroy(topics[i]->rkt);
            topics[i]->rkt = NULL;
        }
    }

    if (w->queue) {
        rd_kafka_queue_destroy(w->queue);
    }

    if (w->rk) {
        rd_kafka_destroy_flags(w->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    }

    w->slot->pid = 0;

    ngx_http_kafka_stream_worker = NULL;
}


/* the consumer's queue has something */

static void
ngx_http_kafka_stream_wakeup_handler(ngx_event_t *ev)
{
    ngx_http_kafka_stream_pipe_read(ev->data);
    ngx_http_kafka_stream_drain();
}


/*
 * A pipe whose read end is a read event: librdkafka writes to the other
 * end when a queue has something (rd_kafka_queue_io_event_enable).  On
 * failure nothing is left open.
 */

ngx_connection_t *
ngx_http_kafka_stream_pipe(ngx_fd_t *fds, ngx_event_handler_pt handler,
    void *data, ngx_uint_t level)
{
    ngx_connection_t  *c;

    if (pipe(fds) == -1) {
        ngx_log_error(level, ngx_cycle->log, ngx_errno, "pipe() failed");
        fds[0] = -1;
        fds[1] = -1;
        return NULL;
    }

    c = NULL;

    if (ngx_nonblocking(fds[0]) == -1 || ngx_nonblocking(fds[1]) == -1) {
        ngx_log_error(level, ngx_cycle->log, ngx_socket_errno,
                      ngx_nonblocking_n " failed");
        goto failed;
    }

    c = ngx_get_connection(fds[0], ngx_cycle->log);
    if (c == NULL) {
        goto failed;
    }

    c->read->handler = handler;
    c->read->log = ngx_cycle->log;
    c->write->log = ngx_cycle->log;
    c->data = data;

    if (ngx_add_event(c->read, NGX_READ_EVENT, 0) == NGX_OK) {
        return c;
    }

failed:

    ngx_http_kafka_stream_pipe_close(&c, fds);

    return NULL;
}


/*
 * librdkafka writes to the pipe only when a queue goes from empty to
 * non-empty: empty the pipe first, then the queue, and nothing is missed.
 */

void
ngx_http_kafka_stream_pipe_read(ngx_connection_t *c)
{
    u_char   buf[64];
    ssize_t  n;

    do {
        n = read(c->fd, buf, sizeof(buf));
    } while (n > 0);

    if (n == -1 && ngx_errno != NGX_EAGAIN && ngx_errno != NGX_EINTR) {
        ngx_log_error(NGX_LOG_ALERT, c->log, ngx_errno,
                      "kafka stream: read() from the wakeup pipe failed");
    }
}


/* after rd_kafka_queue_io_event_enable(..., -1, ...): nobody writes now */

void
ngx_http_kafka_stream_pipe_close(ngx_connection_t **c, ngx_fd_t *fds)
{
    if (*c) {
        ngx_close_connection(*c);
        *c = NULL;
        fds[0] = -1;
    }

    if (fds[0] != -1) {
        (void) close(fds[0]);
        fds[0] = -1;
    }

    if (fds[1] != -1) {
        (void) close(fds[1]);
        fds[1] = -1;
    }
}


static void
ngx_http_kafka_stream_drain(void)
{
    ngx_uint_t                       level;
    const char                      *json;
    rd_kafka_event_t                *ev;
    rd_kafka_resp_err_t              err;
    const rd_kafka_message_t        *msg;
    ngx_http_kafka_stream_worker_t  *w;

    w = ngx_http_kafka_stream_worker;

    while ((ev = rd_kafka_queue_poll(w->queue, 0)) != NULL) {

        switch (rd_kafka_event_type(ev)) {

        case RD_KAFKA_EVENT_FETCH:
            while ((msg = rd_kafka_event_message_next(ev)) != NULL) {
                ngx_http_kafka_stream_message((rd_kafka_message_t *) msg);
            }
            break;

        case RD_KAFKA_EVENT_LOG:
            ngx_http_kafka_stream_log(ev);
            break;

        case RD_KAFKA_EVENT_STATS:
            json = rd_kafka_event_stats(ev);
            ngx_http_kafka_stream_stats(json, ngx_strlen(json));
            break;

        case RD_KAFKA_EVENT_ERROR:
            err = rd_kafka_event_error(ev);

            if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
                w->brokers_up = 0;
                w->slot->brokers_up = 0;
            }

            if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
                || err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC
                || err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION)
            {
                ngx_http_kafka_stream_topic_gone(ev);
            }

            level = rd_kafka_event_error_is_fatal(ev) ? NGX_LOG_ERR
                                                      : NGX_LOG_WARN;

            if (ngx_http_kafka_stream_log_allowed()) {
                ngx_log_error(level, ngx_cycle->log, 0, "kafka stream: %s",
                              rd_kafka_event_error_string(ev));
            }
            break;

        default:
            break;
        }

        rd_kafka_event_destroy(ev);
    }

    ngx_http_kafka_stream_caught_up(w);
}


static void
ngx_http_kafka_stream_message(rd_kafka_message_t *msg)
{
    int                                  type;
    ngx_uint_t                           i, catchup;
    const char                          *name;
    ngx_http_kafka_stream_topic_t      **topics, *t;
    ngx_http_kafka_stream_frame_t       *f;
    ngx_http_kafka_stream_group_t       *g;
    ngx_http_kafka_stream_worker_t      *w;
    ngx_http_kafka_stream_source_t     **sources, *src;
    ngx_http_kafka_stream_counters_t    *c;
    ngx_http_kafka_stream_catching_t    *e;
    ngx_http_kafka_stream_partition_t   *part;
    ngx_http_kafka_stream_main_conf_t   *kmcf;

    w = ngx_http_kafka_stream_worker;
    kmcf = w->conf;

    if (msg->err) {
        if (ngx_http_kafka_stream_log_allowed()) {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "kafka stream: consumer error on \"%s\" [%D]: %s",
                          msg->rkt ? rd_kafka_topic_name(msg->rkt) : "-",
                          msg->partition, rd_kafka_message_errstr(msg));
        }

        return;
    }

    /* what the worker read from Kafka, shown or not */
    w->slot->bytes_in += msg->len + msg->key_len;

    name = rd_kafka_topic_name(msg->rkt);
    topics = kmcf->topics.elts;
    t = NULL;

    for (i = 0; i < kmcf->topics.nelts; i++) {
        if (ngx_strcmp(topics[i]->name.data, name) == 0) {
            t = topics[i];
            break;
        }
    }

    if (t == NULL) {
        return;
    }

    if (t->gone) {
        t->gone = 0;
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "kafka stream: topic \"%V\" is back: frames again "
                      "from [%D] offset %O", &t->name, msg->partition,
                      (off_t) msg->offset);
    }

    /* what was still queued for a partition that stops is dropped */

    part = ngx_http_kafka_stream_partition_read(t, msg->partition);
    if (part == NULL) {
        return;
    }

    /* where replays become live viewers */
    part->last = msg->offset;

    /*
     * A partition that starts reads back from the end of its log to find
     * the latest frame of each key: those frames only update the groups,
     * and the viewers get the newest after the drain (caught_up()).
     */

    if (part->catchup && !part->taken) {
        e = ngx_array_push(&w->catching);

        if (e == NULL) {
            part->catchup = 0;

        } else {
            part->taken = 1;
            e->topic = t;
            e->partition = msg->partition;
        }
    }

    catchup = part->catchup;

    sources = kmcf->sources.elts;
    f = NULL;

    for (i = 0; i < kmcf->sources.nelts; i++) {
        src = sources[i];

        if (src->topic != t
            || (src->partition != NGX_HTTP_KAFKA_STREAM_ALL
                && src->partition != msg->partition))
        {
            continue;
        }

        c = src->counters;

        if (msg->len > src->max_frame_size) {
            c->skipped++;
            ngx_http_kafka_stream_skipped(msg, src->max_frame_size);
            continue;
        }

        if (f == NULL) {
            type = ngx_http_kafka_stream_sniff(msg->payload, msg->len);

            if (type == NGX_HTTP_KAFKA_STREAM_NOT_IMAGE) {
                c->skipped++;
                ngx_http_kafka_stream_skipped(msg, src->max_frame_size);

                /* the other sources would see the same bytes */

                for (i++; i < kmcf->sources.nelts; i++) {
                    src = sources[i];

                    if (src->topic == t
                        && (src->partition == NGX_HTTP_KAFKA_STREAM_ALL
                            || src->partition == msg->partition))
                    {
                        src->counters->skipped++;
                    }
                }

                return;
            }

            f = ngx_http_kafka_stream_frame(msg, type);
            if (f == NULL) {
                return;
            }

            /*
             * A reference held until every source has had the frame: a
             * group that refuses it (an older frame in the catch-up)
             * takes none, and the frame must outlive that for the next
             * source of the topic.
             */

            f->refs++;
        }

        c->frames_in++;
        c->bytes_in += msg->len;
        c->last_offset = msg->offset;
        c->latest_msec = ngx_current_msec;

        g = NULL;

        if (msg->key_len && msg->key_len <= NGX_HTTP_KAFKA_STREAM_MAX_KEY) {
            g = ngx_http_kafka_stream_group(src, msg->key, msg->key_len, 2);

            if (g && !g->listed) {
                ngx_http_kafka_stream_list_key(w, src, g);
            }
        }

        if (catchup) {
            (void) ngx_http_kafka_stream_group_keep(src->all, f);

            if (g) {
                (void) ngx_http_kafka_stream_group_keep(g, f);
            }

        } else {
            w->hooks->publish(src->all, f);

            if (g) {
                w->hooks->publish(g, f);
            }
        }
    }

    if (f) {
        ngx_http_kafka_stream_frame_release(f);
    }
}


/*
 * A topic deleted while it is read (or not created yet): its viewers
 * stay, as through a broker outage, with the last frame they had.  Once
 * the topic is created again the worker's consumer finds it by itself
 * (librdkafka resumes each partition at the new end, its old offset being
 * out of range) and the frames flow to the same viewers.  Said once, not
 * per partition and poll.
 */

static void
ngx_http_kafka_stream_topic_gone(rd_kafka_event_t *ev)
{
    ngx_uint_t                          i;
    rd_kafka_topic_partition_t         *tp;
    ngx_http_kafka_stream_topic_t     **topics;
    ngx_http_kafka_stream_main_conf_t  *kmcf;

    tp = rd_kafka_event_topic_partition(ev);
    if (tp == NULL) {
        return;
    }

    kmcf = ngx_http_kafka_stream_worker->conf;
    topics = kmcf->topics.elts;

    for (i = 0; i < kmcf->topics.nelts; i++) {
        if (!topics[i]->gone
            && ngx_strcmp(topics[i]->name.data, tp->topic) == 0)
        {
            topics[i]->gone = 1;
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "kafka stream: topic \"%V\" does not exist: its "
                          "viewers stay connected and get its frames once "
                          "it is created", &topics[i]->name);
            break;
        }
    }

    rd_kafka_topic_partition_destroy(tp);
}


/*
 * A key the worker sees in the source's frames for the first time: into
 * the source's list in the shared zone (the status, any worker's), where
 * it stays when the worker no longer reads its partition.  Once per group
 * and worker: the list is checked under the zone's mutex.
 */

static void
ngx_http_kafka_stream_list_key(ngx_http_kafka_stream_worker_t *w,
    ngx_http_kafka_stream_source_t *src, ngx_http_kafka_stream_group_t *g)
{
    size_t                         len;
    ngx_uint_t                     i;
    ngx_slab_pool_t               *shpool;
    ngx_http_kafka_stream_key_t   *k;
    ngx_http_kafka_stream_keys_t  *keys;

    g->listed = 1;

    shpool = (ngx_slab_pool_t *) w->conf->shm_zone->shm.addr;
    keys = ngx_http_kafka_stream_keys(w->conf, shpool->data, src->index);
    len = ngx_min(g->key.len, NGX_HTTP_KAFKA_STREAM_KEY_LISTED);

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < keys->n; i++) {
        if (keys->keys[i].len == len
            && ngx_memcmp(keys->keys[i].data, g->key.data, len) == 0)
        {
            goto done;
        }
    }

    if (keys->n < NGX_HTTP_KAFKA_STREAM_KEYS_LISTED) {
        k = &keys->keys[keys->n++];
        k->len = len;
        ngx_memcpy(k->data, g->key.data, len);
    }

done:

    ngx_shmtx_unlock(&shpool->mutex);
}


/*
 * After a drain: a partition that read up to the end of its log is live
 * from now on, and the viewers of the groups a catch-up changed get their
 * latest frame, the newest of each key and not every one.  The end of the
 * log is librdkafka's high watermark of the last fetch, which it keeps
 * (no request, no wait).
 */

static void
ngx_http_kafka_stream_caught_up(ngx_http_kafka_stream_worker_t *w)
{
    int64_t                              low, high;
    ngx_uint_t                           i, wait;
    ngx_queue_t                         *q;
    ngx_http_kafka_stream_group_t       *g;
    ngx_http_kafka_stream_source_t     **sources;
    ngx_http_kafka_stream_catching_t    *e;
    ngx_http_kafka_stream_partition_t   *part;

    if (w->catching.nelts == 0) {
        return;
    }

    e = w->catching.elts;
    wait = 0;

    for (i = 0; i < w->catching.nelts; i++) {
        part = &e[i].topic->parts[e[i].partition];
        part->taken = 0;

        if (rd_kafka_get_watermark_offsets(w->rk,
                                           (char *) e[i].topic->name.data,
                                           e[i].partition, &low, &high)
            != RD_KAFKA_RESP_ERR_NO_ERROR
            || part->last >= high - 1)
        {
            part->catchup = 0;

        } else if (ngx_current_msec - part->started
                   < NGX_HTTP_KAFKA_STREAM_CATCHUP_WAIT)
        {
            wait = 1;
        }
    }

    w->catching.nelts = 0;

    /*
     * A catch-up that one fetch did not bring whole waits for the rest:
     * the first messages of its window may be frames of long ago (a
     * camera that sent PNG before it sent JPEG), and the viewers are to
     * get the newest of the window, not of its beginning.  For a moment
     * only: a log whose end is never reached (transaction markers after
     * the last message) must not keep the frames back.
     */

    if (wait) {
        return;
    }

    sources = w->conf->sources.elts;

    for (i = 0; i < w->conf->sources.nelts; i++) {
        ngx_http_kafka_stream_publish_caught(w, sources[i]->all);

        for (q = ngx_queue_head(&sources[i]->groups);
             q != ngx_queue_sentinel(&sources[i]->groups);
             q = ngx_queue_next(q))
        {
            g = ngx_queue_data(q, ngx_http_kafka_stream_group_t, queue);
            ngx_http_kafka_stream_publish_caught(w, g);
        }
    }
}


static void
ngx_http_kafka_stream_publish_caught(ngx_http_kafka_stream_worker_t *w,
    ngx_http_kafka_stream_group_t *g)
{
    ngx_http_kafka_stream_frame_t  *f;

    if (!g->caught) {
        return;
    }

    g->caught = 0;
    f = g->latest;

    if (f == NULL) {
        return;
    }

    /* publish() keeps it the latest: a reference meanwhile all the same */

    f->refs++;
    w->hooks->publish(g, f);
    ngx_http_kafka_stream_frame_release(f);
}


/* brokers and partitions, from the statistics (see the scanner) */

static void
ngx_http_kafka_stream_stats(const char *json, size_t len)
{
    ngx_uint_t                       up;
    ngx_http_kafka_stream_worker_t  *w;

    w = ngx_http_kafka_stream_worker;

    up = ngx_http_kafka_stream_scan_stats((const unsigned char *) json, len,
                                          ngx_http_kafka_stream_partition_found,
                                          w);

    /* partitions added to a topic: the keys are placed anew */
    ngx_http_kafka_stream_partitions_seen(w);

    if (up == w->brokers_up) {
        return;
    }

    if (up == 0) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "kafka stream: no broker connected");

    } else if (w->brokers_up == 0) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "kafka stream: %ui broker(s) connected", up);
    }

    w->brokers_up = up;
    w->slot->brokers_up = up;
}


static void
ngx_http_kafka_stream_partition_found(void *data, const unsigned char *topic,
    size_t len, long partition)
{
    ngx_uint_t                        i;
    ngx_http_kafka_stream_topic_t   **topics;
    ngx_http_kafka_stream_worker_t   *w = data;

    topics = w->conf->topics.elts;

    for (i = 0; i < w->conf->topics.nelts; i++) {
        if (topics[i]->name.len == len
            && ngx_strncmp(topics[i]->name.data, topic, len) == 0)
        {
            ngx_http_kafka_stream_partition_seen(topics[i], partition);
            return;
        }
    }
}


/*
 * Runs every NGX_HTTP_KAFKA_STREAM_TICK while the worker lives: it stops
 * the partitions whose linger is over, and it is how the worker learns of
 * a graceful shutdown (nginx has no hook for it); it ends every stream
 * then, so that old workers leave at once on reload.
 */

static void
ngx_http_kafka_stream_tick_handler(ngx_event_t *ev)
{
    ngx_http_kafka_stream_worker_t  *w;

    w = ev->data;

    if (!ngx_exiting) {
        ngx_http_kafka_stream_partitions_tick(w);
        ngx_add_timer(ev, NGX_HTTP_KAFKA_STREAM_TICK);
        return;
    }

    w->hooks->shutdown(w);
}
