
/*
 * ngx_http_kafka_stream_module: live images from Apache Kafka to browsers.
 *
 * Every worker process runs one librdkafka consumer for all topics and
 * partitions the configuration names.  Messages are images (PNG or JPEG,
 * one per message); each location answers with multipart/x-mixed-replace,
 * one part per image, to all of its viewers at once.
 *
 * The consumer is made in init_process, after fork: librdkafka's threads
 * would not survive fork(), so the master never creates a handle.  Its
 * queue wakes the event loop through a pipe (rd_kafka_queue_io_event_enable)
 * registered as an ordinary read event; nothing in the worker ever waits
 * for librdkafka.
 *
 * A frame is copied once out of librdkafka into a reference-counted buffer
 * and shared by every viewer; per viewer there is at most one frame on the
 * wire and one waiting, and a newer frame replaces the waiting one, so a
 * slow viewer neither grows memory nor delays anyone else.
 *
 * A replay (kafka_stream_replay) reads the retained log from a point the
 * request names, with a small consumer of its own, and paces the frames
 * by their Kafka timestamps on nginx timers.  What blocks in librdkafka
 * (looking offsets up, destroying a handle) runs in nginx's thread pool;
 * at the live end the viewer joins its live group.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kafka_stream.h"


/* a replay this late starts its clock afresh instead of rushing, ms */
#define NGX_HTTP_KAFKA_STREAM_REPLAY_LATE   1000


static ngx_int_t ngx_http_kafka_stream_handler(ngx_http_request_t *r);


#if (NGX_THREADS)
static ngx_int_t ngx_http_kafka_stream_replay_args(ngx_http_request_t *r,
    ngx_http_kafka_stream_loc_conf_t *kslcf,
    ngx_http_kafka_stream_replay_args_t *ra);
static ngx_int_t ngx_http_kafka_stream_value_arg(ngx_http_request_t *r,
    char *name, int64_t now, int64_t max, int64_t *v, ngx_str_t *reason);
static ngx_int_t ngx_http_kafka_stream_arg(ngx_http_request_t *r,
    char *name, ngx_str_t *value);
static ngx_int_t ngx_http_kafka_stream_replay_start(ngx_http_request_t *r,
    ngx_http_kafka_stream_loc_conf_t *kslcf,
    ngx_http_kafka_stream_replay_args_t *ra);
static ngx_int_t ngx_http_kafka_stream_replay_headers(ngx_http_request_t *r,
    ngx_http_kafka_stream_replay_t *rp);
static ngx_int_t ngx_http_kafka_stream_replay_partition(
    ngx_http_kafka_stream_source_t *src, ngx_str_t *key);
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
static ngx_http_kafka_stream_frame_t *ngx_http_kafka_stream_replay_shown(
    ngx_http_kafka_stream_replay_t *rp);
static ngx_int_t ngx_http_kafka_stream_replay_end(
    ngx_http_kafka_stream_replay_t *rp, int64_t end);
static void ngx_http_kafka_stream_replay_live(
    ngx_http_kafka_stream_replay_t *rp);
static void ngx_http_kafka_stream_replay_finish(
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
static void ngx_http_kafka_stream_replay_exit(
    ngx_http_kafka_stream_worker_t *w, ngx_log_t *log);
#endif


static ngx_int_t ngx_http_kafka_stream_init_process(ngx_cycle_t *cycle);

static ngx_int_t ngx_http_kafka_stream_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_kafka_stream_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_kafka_stream_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_kafka_stream_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_kafka_stream_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static ngx_int_t ngx_http_kafka_stream_add_source(ngx_conf_t *cf,
    ngx_http_kafka_stream_loc_conf_t *kslcf);
static char *ngx_http_kafka_stream(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_kafka_stream_status_set(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_kafka_stream_option(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_kafka_stream_partition(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_kafka_stream_boundary(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);


static ngx_command_t  ngx_http_kafka_stream_commands[] = {

    { ngx_string("kafka_stream_brokers"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_kafka_stream_main_conf_t, brokers),
      NULL },

    { ngx_string("kafka_stream_option"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_kafka_stream_option,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("kafka_stream"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_kafka_stream,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      (void *) NGX_HTTP_KAFKA_STREAM_LIVE },

    { ngx_string("kafka_stream_snapshot"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_kafka_stream,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      (void *) NGX_HTTP_KAFKA_STREAM_SNAPSHOT },

    { ngx_string("kafka_stream_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_kafka_stream_status_set,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("kafka_stream_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_kafka_stream_loc_conf_t, key),
      NULL },

    { ngx_string("kafka_stream_partition"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_kafka_stream_partition,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("kafka_stream_max_viewers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_kafka_stream_loc_conf_t, max_viewers),
      NULL },

    { ngx_string("kafka_stream_max_frame_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_kafka_stream_loc_conf_t, max_frame_size),
      NULL },

    { ngx_string("kafka_stream_notsent_lowat"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_kafka_stream_loc_conf_t, notsent_lowat),
      NULL },

    { ngx_string("kafka_stream_idle_resend"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_kafka_stream_loc_conf_t, idle_resend),
      NULL },

    { ngx_string("kafka_stream_boundary"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_kafka_stream_boundary,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_kafka_stream_loc_conf_t, boundary),
      NULL },

    { ngx_string("kafka_stream_replay"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_kafka_stream_loc_conf_t, replay),
      NULL },

    { ngx_string("kafka_stream_replay_max"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_kafka_stream_main_conf_t, replay_max),
      NULL },

    { ngx_string("kafka_stream_replay_max_speed"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_kafka_stream_loc_conf_t, replay_max_speed),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_kafka_stream_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_kafka_stream_postconfiguration, /* postconfiguration */

    ngx_http_kafka_stream_create_main_conf, /* create main configuration */
    ngx_http_kafka_stream_init_main_conf,  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_kafka_stream_create_loc_conf, /* create location configuration */
    ngx_http_kafka_stream_merge_loc_conf   /* merge location configuration */
};


ngx_module_t  ngx_http_kafka_stream_module = {
    NGX_MODULE_V1,
    &ngx_http_kafka_stream_module_ctx,     /* module context */
    ngx_http_kafka_stream_commands,        /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_kafka_stream_init_process,    /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_kafka_stream_exit_process,    /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* tells configuration generations apart in the shared zone's name */
static ngx_uint_t  ngx_http_kafka_stream_generation;


/*
 * What the consumer (src/..._consumer.c) calls up to: it sits below the
 * viewers and the replays, and names nothing of theirs.
 */

static const ngx_http_kafka_stream_hooks_t  ngx_http_kafka_stream_hooks = {
    ngx_http_kafka_stream_publish,
    ngx_http_kafka_stream_close_viewers,
    ngx_http_kafka_stream_finalize_viewers,
#if (NGX_THREADS)
    ngx_http_kafka_stream_replay_exit,
#endif
};


/* the request side */

static ngx_int_t
ngx_http_kafka_stream_handler(ngx_http_request_t *r)
{
    ngx_int_t                             rc;
    ngx_http_kafka_stream_loc_conf_t     *kslcf;
#if (NGX_THREADS)
    ngx_http_kafka_stream_replay_args_t   ra;
#endif

    kslcf = ngx_http_get_module_loc_conf(r, ngx_http_kafka_stream_module);

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    if (kslcf->type == NGX_HTTP_KAFKA_STREAM_STATUS) {
        return ngx_http_kafka_stream_status(r);
    }

    if (ngx_http_kafka_stream_worker == NULL || ngx_exiting) {
        /* no consumer (see the log at startup), or the worker is leaving */
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    if (kslcf->type == NGX_HTTP_KAFKA_STREAM_LIVE
        && kslcf->max_viewers
        && kslcf->viewers >= kslcf->max_viewers)
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "kafka stream: %ui viewers reached "
                      "(kafka_stream_max_viewers)", kslcf->viewers);
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

#if (NGX_THREADS)

    if (kslcf->replay) {
        rc = ngx_http_kafka_stream_replay_args(r, kslcf, &ra);

        if (rc == NGX_OK) {
            return ngx_http_kafka_stream_replay_start(r, kslcf, &ra);
        }

        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return ngx_http_kafka_stream_refuse(r, rc, &ra.reason);
        }

        if (rc != NGX_DECLINED) {
            return rc;
        }

        /* no replay asked for: live, as without kafka_stream_replay */
    }

#endif

    return ngx_http_kafka_stream_start(r, kslcf);
}


/* the worker's consumer, given the layers above it */

static ngx_int_t
ngx_http_kafka_stream_init_process(ngx_cycle_t *cycle)
{
    return ngx_http_kafka_stream_worker_init(cycle,
                                             &ngx_http_kafka_stream_hooks);
}


#if (NGX_THREADS)

/*
 * Replays.  A request that names a start (?since=, ?offset=, or ?at= for
 * a snapshot) gets a consumer of its own: a legacy consumer with small
 * fetch and queue limits, so that it holds about one fetch of the log.
 * The lookups that block in librdkafka (watermarks, offsets for times,
 * single messages) run in nginx's thread pool, as does the destruction
 * of the handle; the messages come through a pipe, as the worker's own
 * consumer's do, and each frame waits on a timer until it is due.
 */


/* NGX_OK for a replay, NGX_DECLINED for none, or an HTTP status to refuse */

static ngx_int_t
ngx_http_kafka_stream_replay_args(ngx_http_request_t *r,
    ngx_http_kafka_stream_loc_conf_t *kslcf,
    ngx_http_kafka_stream_replay_args_t *ra)
{
    int64_t      now, n;
    ngx_int_t    rc;
    ngx_str_t    speed;
    ngx_time_t  *tp;

    ra->since = -1;
    ra->until = -1;
    ra->at = -1;
    ra->offset = -1;
    ra->partition = -1;
    ra->speed = 1000;
    ngx_str_null(&ra->reason);

    tp = ngx_timeofday();
    now = (int64_t) tp->sec * 1000 + tp->msec;

    if (kslcf->type == NGX_HTTP_KAFKA_STREAM_SNAPSHOT) {
        rc = ngx_http_kafka_stream_value_arg(r, "at", now, 0, &ra->at,
                                             &ra->reason);
        if (rc != NGX_OK) {
            return rc;
        }

        if (ra->at > now) {
            ngx_str_set(&ra->reason, "at: the time is in the future");
            return NGX_HTTP_RANGE_NOT_SATISFIABLE;
        }

    } else {
        rc = ngx_http_kafka_stream_value_arg(r, "since", now, 0, &ra->since,
                                             &ra->reason);
        if (rc == NGX_ERROR || rc == NGX_HTTP_BAD_REQUEST) {
            return rc;
        }

        rc = ngx_http_kafka_stream_value_arg(r, "offset", 0,
                                             NGX_MAX_OFF_T_VALUE - 1,
                                             &ra->offset, &ra->reason);
        if (rc == NGX_ERROR || rc == NGX_HTTP_BAD_REQUEST) {
            return rc;
        }

        if (ra->since == -1 && ra->offset == -1) {
            return NGX_DECLINED;
        }

        if (ra->since != -1 && ra->offset != -1) {
            ngx_str_set(&ra->reason, "since and offset exclude each other");
            return NGX_HTTP_BAD_REQUEST;
        }

        rc = ngx_http_kafka_stream_value_arg(r, "until", now, 0, &ra->until,
                                             &ra->reason);
        if (rc == NGX_ERROR || rc == NGX_HTTP_BAD_REQUEST) {
            return rc;
        }

        rc = ngx_http_kafka_stream_arg(r, "speed", &speed);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_OK) {
            if (ngx_http_kafka_stream_parse_decimal(speed.data, speed.len,
                                                    NGX_MAX_INT32_VALUE,
                                                    &ra->speed)
                != 0
                || ra->speed == 0)
            {
                ngx_str_set(&ra->reason, "speed: not a positive number "
                            "(1, 2, 0.5 ...)");
                return NGX_HTTP_BAD_REQUEST;
            }

            /* capped, not refused: a page may offer more than one allows */

            ra->speed = ngx_min(ra->speed,
                                (int64_t) kslcf->replay_max_speed * 1000);
        }

        if (ra->since != -1 && ra->until != -1 && ra->since > ra->until) {
            ngx_str_set(&ra->reason, "since is after until");
            return NGX_HTTP_BAD_REQUEST;
        }

        if (ra->since > now) {
            ngx_str_set(&ra->reason, "since: the time is in the future");
            return NGX_HTTP_RANGE_NOT_SATISFIABLE;
        }
    }

    n = -1;

    rc = ngx_http_kafka_stream_value_arg(r, "partition", 0,
                                         NGX_MAX_INT32_VALUE, &n,
                                         &ra->reason);
    if (rc == NGX_ERROR || rc == NGX_HTTP_BAD_REQUEST) {
        return rc;
    }

    if (n != -1) {
        if (kslcf->partition != NGX_HTTP_KAFKA_STREAM_ALL
            && n != kslcf->partition)
        {
            ngx_str_set(&ra->reason, "partition: this location serves "
                        "another partition");
            return NGX_HTTP_BAD_REQUEST;
        }

        /* the live consumer reads no further: it could not take over */

        if (n >= NGX_HTTP_KAFKA_STREAM_MAX_PARTS) {
            ngx_str_set(&ra->reason, "partition: out of range");
            return NGX_HTTP_RANGE_NOT_SATISFIABLE;
        }

        ra->partition = (ngx_int_t) n;
    }

    return NGX_OK;
}


/*
 * A time ("now" given) or a number (up to "max"): NGX_OK, NGX_DECLINED if
 * the argument is absent, NGX_HTTP_BAD_REQUEST with the reason, NGX_ERROR.
 */

static ngx_int_t
ngx_http_kafka_stream_value_arg(ngx_http_request_t *r, char *name,
    int64_t now, int64_t max, int64_t *v, ngx_str_t *reason)
{
    int        rc;
    ngx_str_t  value;

    rc = ngx_http_kafka_stream_arg(r, name, &value);

    if (rc != NGX_OK) {
        return rc;
    }

    rc = now ? ngx_http_kafka_stream_parse_time(value.data, value.len, now, v)
             : ngx_http_kafka_stream_parse_number(value.data, value.len, max,
                                                  v);
    if (rc == 0) {
        return NGX_OK;
    }

    reason->data = ngx_pnalloc(r->pool, NGX_HTTP_KAFKA_STREAM_REPLAY_REASON);
    if (reason->data == NULL) {
        return NGX_ERROR;
    }

    reason->len = ngx_sprintf(reason->data, "%s: %s", name,
                              now ? "not a time (unix seconds, -seconds "
                                    "before now, or RFC 3339)"
                                  : "not a number (0, 1, 2 ...)")
                  - reason->data;

    return NGX_HTTP_BAD_REQUEST;
}


/* a query argument, unescaped: NGX_OK, or NGX_DECLINED when it is absent */

static ngx_int_t
ngx_http_kafka_stream_arg(ngx_http_request_t *r, char *name, ngx_str_t *value)
{
    u_char     *dst, *src;
    ngx_str_t   raw;

    if (ngx_http_arg(r, (u_char *) name, ngx_strlen(name), &raw) != NGX_OK) {
        return NGX_DECLINED;
    }

    dst = ngx_pnalloc(r->pool, raw.len + 1);
    if (dst == NULL) {
        return NGX_ERROR;
    }

    value->data = dst;
    src = raw.data;

    ngx_unescape_uri(&dst, &src, raw.len, 0);

    value->len = dst - value->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_kafka_stream_replay_start(ngx_http_request_t *r,
    ngx_http_kafka_stream_loc_conf_t *kslcf,
    ngx_http_kafka_stream_replay_args_t *ra)
{
    ngx_int_t                           rc;
    ngx_str_t                           key, reason;
    ngx_pool_t                         *pool;
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
                                                      kslcf->source, &rp->key);
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
 * Without ?partition= a location of all partitions replays the one where
 * the worker last saw a frame of the key (or any frame, without a key),
 * else partition 0.
 */

static ngx_int_t
ngx_http_kafka_stream_replay_partition(ngx_http_kafka_stream_source_t *src,
    ngx_str_t *key)
{
    ngx_queue_t                    *q;
    ngx_http_kafka_stream_group_t  *g;

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

    ngx_http_kafka_stream_frame_drop(&rp->shown);
    rp->shown = f;

    ngx_http_kafka_stream_offer(rp->viewer, f);
}


/* what the viewer shows again while nothing new comes */

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

    last = rp->topic->last[rp->partition];

    if (end <= rp->position || last >= end) {
        return NGX_OK;
    }

    if (last == -1) {
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

    ngx_http_kafka_stream_join(v, g);

    v->floor = 1;
    v->floor_partition = rp->partition;
    v->floor_offset = rp->position;

    shown = (rp->shown != NULL);

    v->replay = NULL;
    ngx_http_kafka_stream_replay_release(rp);

    /* nothing to replay after all: the frame current now, as live */

    if (!shown && g->latest) {
        ngx_http_kafka_stream_offer(v, g->latest);
    }
}


/* ?until= reached: the closing boundary once the last frame is out */

static void
ngx_http_kafka_stream_replay_finish(ngx_http_kafka_stream_replay_t *rp)
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

static void
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


/* configuration */

static void *
ngx_http_kafka_stream_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_kafka_stream_main_conf_t  *kmcf;

    kmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_kafka_stream_main_conf_t));
    if (kmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     kmcf->brokers = { 0, NULL };
     *     kmcf->options = NULL;
     *     kmcf->max_frame_size = 0;
     *     kmcf->status = 0;
     *     kmcf->shm_zone = NULL;
     *     kmcf->thread_pool = NULL;
     */

    kmcf->replay_max = NGX_CONF_UNSET_UINT;

    if (ngx_array_init(&kmcf->topics, cf->pool, 4,
                       sizeof(ngx_http_kafka_stream_topic_t *))
        != NGX_OK
        || ngx_array_init(&kmcf->sources, cf->pool, 4,
                          sizeof(ngx_http_kafka_stream_source_t *))
           != NGX_OK)
    {
        return NULL;
    }

    ngx_http_kafka_stream_generation++;

    return kmcf;
}


static char *
ngx_http_kafka_stream_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_kafka_stream_main_conf_t *kmcf = conf;

    ngx_conf_init_uint_value(kmcf->replay_max, 8);

    return NGX_CONF_OK;
}


static void *
ngx_http_kafka_stream_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_kafka_stream_loc_conf_t  *kslcf;

    kslcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_kafka_stream_loc_conf_t));
    if (kslcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     kslcf->type = NGX_HTTP_KAFKA_STREAM_OFF;
     *     kslcf->topic = { 0, NULL };
     *     kslcf->source = NULL;
     *     kslcf->boundary = { 0, NULL };
     *     kslcf->opening = { 0, NULL };
     *     kslcf->separator = { 0, NULL };
     *     kslcf->closing = { 0, NULL };
     *     kslcf->viewers = 0;
     */

    kslcf->key = NGX_CONF_UNSET_PTR;
    kslcf->partition = NGX_CONF_UNSET;
    kslcf->max_viewers = NGX_CONF_UNSET_UINT;
    kslcf->max_frame_size = NGX_CONF_UNSET_SIZE;
    kslcf->notsent_lowat = NGX_CONF_UNSET_SIZE;
    kslcf->idle_resend = NGX_CONF_UNSET_MSEC;
    kslcf->replay = NGX_CONF_UNSET;
    kslcf->replay_max_speed = NGX_CONF_UNSET_UINT;

    return kslcf;
}


static char *
ngx_http_kafka_stream_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_kafka_stream_loc_conf_t *prev = parent;
    ngx_http_kafka_stream_loc_conf_t *conf = child;

    u_char                             *p;
#if (NGX_THREADS)
    ngx_http_kafka_stream_main_conf_t  *kmcf;
#endif

    ngx_conf_merge_ptr_value(conf->key, prev->key, NULL);
    ngx_conf_merge_value(conf->partition, prev->partition,
                         NGX_HTTP_KAFKA_STREAM_ALL);
    ngx_conf_merge_uint_value(conf->max_viewers, prev->max_viewers, 0);
    ngx_conf_merge_size_value(conf->max_frame_size, prev->max_frame_size,
                              8 * 1024 * 1024);
    ngx_conf_merge_size_value(conf->notsent_lowat, prev->notsent_lowat,
                              16384);
    ngx_conf_merge_msec_value(conf->idle_resend, prev->idle_resend, 1000);
    ngx_conf_merge_str_value(conf->boundary, prev->boundary,
                             NGX_HTTP_KAFKA_STREAM_BOUNDARY);
    ngx_conf_merge_value(conf->replay, prev->replay, 0);
    ngx_conf_merge_uint_value(conf->replay_max_speed, prev->replay_max_speed,
                              8);

    if (conf->type != NGX_HTTP_KAFKA_STREAM_LIVE
        && conf->type != NGX_HTTP_KAFKA_STREAM_SNAPSHOT)
    {
        return NGX_CONF_OK;
    }

    if (conf->max_frame_size == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"kafka_stream_max_frame_size\" must not be zero");
        return NGX_CONF_ERROR;
    }

    if (conf->replay_max_speed == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"kafka_stream_replay_max_speed\" must not be "
                           "zero");
        return NGX_CONF_ERROR;
    }

    if (conf->replay) {
#if (NGX_THREADS)
        kmcf = ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_kafka_stream_module);

        /* lookups and the end of replay consumers block: they go there */

        if (kmcf->thread_pool == NULL) {
            kmcf->thread_pool = ngx_thread_pool_add(cf, NULL);
            if (kmcf->thread_pool == NULL) {
                return NGX_CONF_ERROR;
            }
        }
#else
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"kafka_stream_replay\" needs nginx built with "
                           "threads (--with-threads)");
        return NGX_CONF_ERROR;
#endif
    }

    /* "--b" CRLF, then CRLF "--b" CRLF after every frame, CRLF "--b--" CRLF */

    p = ngx_pnalloc(cf->pool, 3 * (conf->boundary.len + 8));
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    conf->separator.data = p;
    p = ngx_sprintf(p, CRLF "--%V" CRLF, &conf->boundary);
    conf->separator.len = p - conf->separator.data;

    conf->separator_in_frame =
        (conf->boundary.len == sizeof(NGX_HTTP_KAFKA_STREAM_BOUNDARY) - 1
         && ngx_strncmp(conf->boundary.data, NGX_HTTP_KAFKA_STREAM_BOUNDARY,
                        conf->boundary.len) == 0);

    conf->opening.data = conf->separator.data + 2;
    conf->opening.len = conf->separator.len - 2;

    conf->closing.data = p;
    p = ngx_sprintf(p, CRLF "--%V--" CRLF, &conf->boundary);
    conf->closing.len = p - conf->closing.data;

    if (ngx_http_kafka_stream_add_source(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* locations that read the same topic and partition share a source */

static ngx_int_t
ngx_http_kafka_stream_add_source(ngx_conf_t *cf,
    ngx_http_kafka_stream_loc_conf_t *kslcf)
{
    ngx_uint_t                           i;
    ngx_http_kafka_stream_topic_t      **tp, *t;
    ngx_http_kafka_stream_source_t     **sp, *src;
    ngx_http_kafka_stream_main_conf_t   *kmcf;

    kmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_kafka_stream_module);

    kmcf->max_frame_size = ngx_max(kmcf->max_frame_size,
                                   kslcf->max_frame_size);

    t = NULL;
    tp = kmcf->topics.elts;

    for (i = 0; i < kmcf->topics.nelts; i++) {
        if (tp[i]->name.len == kslcf->topic.len
            && ngx_strncmp(tp[i]->name.data, kslcf->topic.data,
                           kslcf->topic.len) == 0)
        {
            t = tp[i];
            break;
        }
    }

    if (t == NULL) {
        t = ngx_pcalloc(cf->pool, sizeof(ngx_http_kafka_stream_topic_t));
        if (t == NULL) {
            return NGX_ERROR;
        }

        t->name = kslcf->topic;

        tp = ngx_array_push(&kmcf->topics);
        if (tp == NULL) {
            return NGX_ERROR;
        }

        *tp = t;
    }

    if (kslcf->partition == NGX_HTTP_KAFKA_STREAM_ALL) {
        t->all = 1;

    } else {
        t->wanted[kslcf->partition] = 1;
    }

    sp = kmcf->sources.elts;

    for (i = 0; i < kmcf->sources.nelts; i++) {
        src = sp[i];

        if (src->topic == t && src->partition == kslcf->partition) {
            src->max_frame_size = ngx_max(src->max_frame_size,
                                          kslcf->max_frame_size);
            kslcf->source = src;
            return NGX_OK;
        }
    }

    src = ngx_pcalloc(cf->pool, sizeof(ngx_http_kafka_stream_source_t));
    if (src == NULL) {
        return NGX_ERROR;
    }

    src->index = kmcf->sources.nelts;
    src->topic = t;
    src->partition = kslcf->partition;
    src->max_frame_size = kslcf->max_frame_size;

    sp = ngx_array_push(&kmcf->sources);
    if (sp == NULL) {
        return NGX_ERROR;
    }

    *sp = src;
    kslcf->source = src;

    return NGX_OK;
}


static ngx_int_t
ngx_http_kafka_stream_postconfiguration(ngx_conf_t *cf)
{
    size_t                              size;
    ngx_str_t                           name;
    rd_kafka_conf_t                    *conf;
    ngx_http_kafka_stream_main_conf_t  *kmcf;

    kmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_kafka_stream_module);

    if (!kmcf->status && kmcf->sources.nelts == 0) {
        return NGX_OK;
    }

    if (kmcf->sources.nelts && kmcf->brokers.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"kafka_stream_brokers\" is required when "
                      "\"kafka_stream\" or \"kafka_stream_snapshot\" is used");
        return NGX_ERROR;
    }

    if (kmcf->brokers.len) {

        /* the whole set of properties, as the workers will use them */

        conf = ngx_http_kafka_stream_rdconf(cf->log, kmcf, NULL);
        if (conf == NULL) {
            return NGX_ERROR;
        }

        rd_kafka_conf_destroy(conf);
    }

    kmcf->slot_size = sizeof(ngx_http_kafka_stream_slot_t)
                      + kmcf->sources.nelts
                        * sizeof(ngx_http_kafka_stream_counters_t);

    size = 8 * ngx_pagesize
           + 2 * ngx_align(NGX_HTTP_KAFKA_STREAM_MAX_SLOTS * kmcf->slot_size,
                           ngx_pagesize);

    /*
     * A zone of its own for each configuration: after a reload the old
     * workers keep counting in theirs, with their own layout.
     */

    name.data = ngx_pnalloc(cf->pool, sizeof("kafka_stream_") + NGX_INT_T_LEN);
    if (name.data == NULL) {
        return NGX_ERROR;
    }

    name.len = ngx_sprintf(name.data, "kafka_stream_%ui",
                           ngx_http_kafka_stream_generation)
               - name.data;

    kmcf->shm_zone = ngx_shared_memory_add(cf, &name, size,
                                           &ngx_http_kafka_stream_module);
    if (kmcf->shm_zone == NULL) {
        return NGX_ERROR;
    }

    kmcf->shm_zone->init = ngx_http_kafka_stream_init_zone;
    kmcf->shm_zone->data = kmcf;

    return NGX_OK;
}


static char *
ngx_http_kafka_stream(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_kafka_stream_loc_conf_t *kslcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    if (kslcf->type != NGX_HTTP_KAFKA_STREAM_OFF) {
        return "is duplicate";
    }

    value = cf->args->elts;

    /* Kafka's legal topic names; they also go into the status as they are */

    if (!ngx_http_kafka_stream_valid_topic(value[1].data, value[1].len)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid topic name \"%V\" in \"%V\": expected 1 "
                           "to 249 of the characters a-z, A-Z, 0-9, \".\", "
                           "\"_\" and \"-\"", &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    kslcf->type = (ngx_uint_t) cmd->post;
    kslcf->topic = value[1];

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_kafka_stream_handler;

    /*
     * An endless chunked body is refused by some clients; MJPEG servers
     * answer close-delimited, and so does this one, unless the location
     * asked for chunked before.
     */

    if (kslcf->type == NGX_HTTP_KAFKA_STREAM_LIVE
        && clcf->chunked_transfer_encoding == NGX_CONF_UNSET)
    {
        clcf->chunked_transfer_encoding = 0;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_kafka_stream_status_set(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_kafka_stream_loc_conf_t *kslcf = conf;

    ngx_http_core_loc_conf_t           *clcf;
    ngx_http_kafka_stream_main_conf_t  *kmcf;

    if (kslcf->type != NGX_HTTP_KAFKA_STREAM_OFF) {
        return "is duplicate";
    }

    kslcf->type = NGX_HTTP_KAFKA_STREAM_STATUS;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_kafka_stream_handler;

    /* the counters' zone is made in postconfiguration */

    kmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_kafka_stream_module);
    kmcf->status = 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_kafka_stream_option(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_kafka_stream_main_conf_t *kmcf = conf;

    char              errstr[512];
    ngx_str_t        *value;
    ngx_keyval_t     *kv;
    rd_kafka_conf_t  *rdconf;

    value = cf->args->elts;

    if (kmcf->options == NULL) {
        kmcf->options = ngx_array_create(cf->pool, 4, sizeof(ngx_keyval_t));
        if (kmcf->options == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    /* librdkafka's own judgement, in its own words, at "nginx -t" */

    rdconf = rd_kafka_conf_new();

    if (rd_kafka_conf_set(rdconf, (char *) value[1].data,
                          (char *) value[2].data, errstr, sizeof(errstr))
        != RD_KAFKA_CONF_OK)
    {
        rd_kafka_conf_destroy(rdconf);
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"%V\" \"%V\" \"%V\": %s",
                           &cmd->name, &value[1], &value[2], errstr);
        return NGX_CONF_ERROR;
    }

    rd_kafka_conf_destroy(rdconf);

    kv = ngx_array_push(kmcf->options);
    if (kv == NULL) {
        return NGX_CONF_ERROR;
    }

    kv->key = value[1];
    kv->value = value[2];

    return NGX_CONF_OK;
}


static char *
ngx_http_kafka_stream_partition(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_kafka_stream_loc_conf_t *kslcf = conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    if (kslcf->partition != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "all", 3) == 0) {
        kslcf->partition = NGX_HTTP_KAFKA_STREAM_ALL;
        return NGX_CONF_OK;
    }

    n = ngx_atoi(value[1].data, value[1].len);

    if (n == NGX_ERROR || n >= NGX_HTTP_KAFKA_STREAM_MAX_PARTS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\": expected \"all\" "
                           "or a partition number from 0 to %d",
                           &value[1], &cmd->name,
                           NGX_HTTP_KAFKA_STREAM_MAX_PARTS - 1);
        return NGX_CONF_ERROR;
    }

    kslcf->partition = n;

    return NGX_CONF_OK;
}


static char *
ngx_http_kafka_stream_boundary(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t  *value;

    value = cf->args->elts;

    if (!ngx_http_kafka_stream_valid_boundary(value[1].data, value[1].len)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\": expected 1 to 70 "
                           "letters, digits or any of '()+_,-./:=?",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    return ngx_conf_set_str_slot(cf, cmd, conf);
}
