
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
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <netinet/tcp.h>

#include <librdkafka/rdkafka.h>

#include "ngx_http_kafka_stream_parse.h"


#define NGX_HTTP_KAFKA_STREAM_VERSION       "0.1.0"

#define NGX_HTTP_KAFKA_STREAM_OFF           0
#define NGX_HTTP_KAFKA_STREAM_LIVE          1
#define NGX_HTTP_KAFKA_STREAM_SNAPSHOT      2
#define NGX_HTTP_KAFKA_STREAM_STATUS        3

#define NGX_HTTP_KAFKA_STREAM_ALL           -1

/* keyed groups kept per source for frames whose key no viewer asked for */
#define NGX_HTTP_KAFKA_STREAM_MAX_IDLE_KEYS 64
/* longer keys are not cached per key: only unfiltered viewers see them */
#define NGX_HTTP_KAFKA_STREAM_MAX_KEY       4096

#define NGX_HTTP_KAFKA_STREAM_MAX_SLOTS     256
#define NGX_HTTP_KAFKA_STREAM_MAX_PARTS     1024

#define NGX_HTTP_KAFKA_STREAM_TICK          100
#define NGX_HTTP_KAFKA_STREAM_SNAPSHOT_WAIT 3000
#define NGX_HTTP_KAFKA_STREAM_LOG_WINDOW    10
#define NGX_HTTP_KAFKA_STREAM_LOG_BURST     5


typedef struct ngx_http_kafka_stream_source_s  ngx_http_kafka_stream_source_t;


typedef struct {
    ngx_uint_t                      refs;
    int64_t                         offset;
    int32_t                         partition;
    ngx_msec_t                      received;
    ngx_str_t                       header;    /* the part's header lines */
    ngx_str_t                       image;
    ngx_str_t                       type;      /* "image/png" */
    int64_t                         timestamp; /* Kafka, milliseconds */
} ngx_http_kafka_stream_frame_t;


/* viewers that asked for one key (or for all frames: key.len == 0) */

typedef struct {
    ngx_queue_t                     queue;     /* in source->groups */
    ngx_queue_t                     viewers;
    ngx_uint_t                      nviewers;
    ngx_str_t                       key;
    unsigned                        all:1;
    ngx_http_kafka_stream_frame_t  *latest;
    ngx_msec_t                      updated;
} ngx_http_kafka_stream_group_t;


/* counters, one set per source in every worker's slot of the shared zone */

typedef struct {
    ngx_atomic_t                    viewers;
    ngx_atomic_t                    frames_in;
    ngx_atomic_t                    bytes_in;
    ngx_atomic_t                    parts_sent;
    ngx_atomic_t                    drops;
    ngx_atomic_t                    skipped;
    ngx_atomic_t                    last_offset;
    ngx_atomic_t                    latest_msec;  /* ngx_current_msec */
} ngx_http_kafka_stream_counters_t;


typedef struct {
    ngx_atomic_t                    pid;
    ngx_atomic_t                    brokers_up;
    ngx_atomic_t                    partitions;   /* being consumed */
    ngx_atomic_t                    started;
    /* ngx_http_kafka_stream_counters_t  sources[nsources]; */
} ngx_http_kafka_stream_slot_t;


typedef struct {
    ngx_str_t                       name;
    rd_kafka_topic_t               *rkt;
    ngx_uint_t                      all;        /* some source wants all */
    u_char                          wanted[NGX_HTTP_KAFKA_STREAM_MAX_PARTS];
    u_char                          started[NGX_HTTP_KAFKA_STREAM_MAX_PARTS];
    u_char                          live[NGX_HTTP_KAFKA_STREAM_MAX_PARTS];
} ngx_http_kafka_stream_topic_t;


struct ngx_http_kafka_stream_source_s {
    ngx_uint_t                      index;
    ngx_http_kafka_stream_topic_t  *topic;
    ngx_int_t                       partition;  /* or ..._ALL */
    size_t                          max_frame_size;

    /* worker state */
    ngx_queue_t                     groups;
    ngx_http_kafka_stream_group_t  *all;
    ngx_uint_t                      idle_groups;
    ngx_http_kafka_stream_counters_t  *counters;
};


typedef struct {
    ngx_str_t                       brokers;
    ngx_array_t                    *options;    /* of ngx_keyval_t */
    ngx_array_t                     topics;     /* of *topic_t */
    ngx_array_t                     sources;    /* of *source_t */
    size_t                          max_frame_size;
    size_t                          slot_size;
    ngx_uint_t                      status;    /* a status location exists */
    ngx_shm_zone_t                 *shm_zone;
} ngx_http_kafka_stream_main_conf_t;


typedef struct {
    ngx_uint_t                      type;
    ngx_str_t                       topic;
    ngx_http_kafka_stream_source_t *source;
    ngx_http_complex_value_t       *key;
    ngx_int_t                       partition;
    ngx_uint_t                      max_viewers;
    size_t                          max_frame_size;
    size_t                          notsent_lowat;
    ngx_msec_t                      idle_resend;
    ngx_str_t                       boundary;

    /* made from the boundary: "--b" CRLF, CRLF "--b" CRLF, CRLF "--b--" */
    ngx_str_t                       opening;
    ngx_str_t                       separator;
    ngx_str_t                       closing;

    ngx_uint_t                      viewers;    /* in this worker */
} ngx_http_kafka_stream_loc_conf_t;


typedef struct {
    ngx_http_request_t             *request;
    ngx_http_kafka_stream_loc_conf_t  *conf;
    ngx_http_kafka_stream_group_t  *group;
    ngx_queue_t                     queue;      /* in group->viewers */
    ngx_queue_t                     link;       /* in worker->viewers */

    ngx_http_kafka_stream_frame_t  *sending;    /* on the wire */
    ngx_http_kafka_stream_frame_t  *waiting;    /* next to send */
    ngx_http_kafka_stream_frame_t  *last;       /* last one sent */

    ngx_event_t                     send;       /* posted on a new frame */
    ngx_event_t                     resend;     /* idle re-send timer */

    ngx_buf_t                       bufs[3];
    ngx_chain_t                     chain[3];

    unsigned                        snapshot:1;
    unsigned                        failed:1;
    unsigned                        counted:1;
    unsigned                        listed:1;
} ngx_http_kafka_stream_viewer_t;


/* per worker process */

typedef struct {
    rd_kafka_t                     *rk;
    rd_kafka_queue_t               *queue;
    ngx_connection_t               *wakeup;     /* read end of the pipe */
    ngx_fd_t                        pipe[2];
    ngx_event_t                     tick;
    ngx_http_kafka_stream_main_conf_t  *conf;
    ngx_http_kafka_stream_slot_t   *slot;
    ngx_queue_t                     viewers;    /* all, for shutdown */
    ngx_uint_t                      brokers_up;

    time_t                          log_window;
    ngx_uint_t                      log_lines;
    ngx_uint_t                      log_suppressed;
} ngx_http_kafka_stream_worker_t;


static ngx_int_t ngx_http_kafka_stream_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_kafka_stream_start(ngx_http_request_t *r,
    ngx_http_kafka_stream_loc_conf_t *kslcf);
static void ngx_http_kafka_stream_cleanup(void *data);
static void ngx_http_kafka_stream_unlink(ngx_http_kafka_stream_viewer_t *v);
static ngx_http_kafka_stream_group_t *ngx_http_kafka_stream_group(
    ngx_http_kafka_stream_source_t *src, u_char *key, size_t len,
    ngx_uint_t create);
static void ngx_http_kafka_stream_group_release(
    ngx_http_kafka_stream_source_t *src, ngx_http_kafka_stream_group_t *g);
static void ngx_http_kafka_stream_offer(ngx_http_kafka_stream_viewer_t *v,
    ngx_http_kafka_stream_frame_t *f);
static void ngx_http_kafka_stream_send_handler(ngx_event_t *ev);
static void ngx_http_kafka_stream_resend_handler(ngx_event_t *ev);
static void ngx_http_kafka_stream_writer(ngx_http_request_t *r);
static void ngx_http_kafka_stream_send(ngx_http_kafka_stream_viewer_t *v);
static ngx_int_t ngx_http_kafka_stream_push(ngx_http_kafka_stream_viewer_t *v);
static ngx_int_t ngx_http_kafka_stream_wait(ngx_http_kafka_stream_viewer_t *v,
    ngx_int_t rc);
static ngx_int_t ngx_http_kafka_stream_send_frame(
    ngx_http_kafka_stream_viewer_t *v, ngx_http_kafka_stream_frame_t *f);
static ngx_int_t ngx_http_kafka_stream_flushed(ngx_http_request_t *r);
static void ngx_http_kafka_stream_close(ngx_http_kafka_stream_viewer_t *v);
static ngx_int_t ngx_http_kafka_stream_snapshot(ngx_http_request_t *r,
    ngx_http_kafka_stream_frame_t *f);
static void ngx_http_kafka_stream_frame_release(
    ngx_http_kafka_stream_frame_t *f);
static void ngx_http_kafka_stream_frame_cleanup(void *data);

static ngx_int_t ngx_http_kafka_stream_status(ngx_http_request_t *r);
static ngx_buf_t *ngx_http_kafka_stream_status_json(ngx_http_request_t *r,
    ngx_http_kafka_stream_main_conf_t *kmcf);
static ngx_buf_t *ngx_http_kafka_stream_status_prometheus(
    ngx_http_request_t *r, ngx_http_kafka_stream_main_conf_t *kmcf);
static void ngx_http_kafka_stream_sum(ngx_http_kafka_stream_main_conf_t *kmcf,
    ngx_uint_t index, ngx_http_kafka_stream_counters_t *sum);
static ngx_http_kafka_stream_slot_t *ngx_http_kafka_stream_slot(
    ngx_http_kafka_stream_main_conf_t *kmcf, void *slots, ngx_uint_t n);
static ngx_http_kafka_stream_counters_t *ngx_http_kafka_stream_counters(
    ngx_http_kafka_stream_slot_t *slot, ngx_uint_t index);

static void ngx_http_kafka_stream_wakeup_handler(ngx_event_t *ev);
static void ngx_http_kafka_stream_drain(void);
static void ngx_http_kafka_stream_message(rd_kafka_message_t *msg);
static void ngx_http_kafka_stream_publish(ngx_http_kafka_stream_group_t *g,
    ngx_http_kafka_stream_frame_t *f, ngx_uint_t catchup);
static void ngx_http_kafka_stream_log(rd_kafka_event_t *ev);
static ngx_http_kafka_stream_frame_t *ngx_http_kafka_stream_frame(
    rd_kafka_message_t *msg, int type);
static void ngx_http_kafka_stream_stats(const char *json, size_t len);
static void ngx_http_kafka_stream_partition_found(void *data,
    const unsigned char *topic, size_t len, long partition);
static void ngx_http_kafka_stream_start_partition(
    ngx_http_kafka_stream_topic_t *t, ngx_int_t partition);
static void ngx_http_kafka_stream_tick_handler(ngx_event_t *ev);
static ngx_uint_t ngx_http_kafka_stream_log_allowed(void);


static ngx_int_t ngx_http_kafka_stream_init_process(ngx_cycle_t *cycle);
static void ngx_http_kafka_stream_exit_process(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_kafka_stream_consumer(ngx_cycle_t *cycle,
    ngx_http_kafka_stream_worker_t *w);
static void ngx_http_kafka_stream_free_frames(
    ngx_http_kafka_stream_main_conf_t *kmcf);
static rd_kafka_conf_t *ngx_http_kafka_stream_rdconf(ngx_log_t *log,
    ngx_http_kafka_stream_main_conf_t *kmcf);

static ngx_int_t ngx_http_kafka_stream_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_kafka_stream_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_kafka_stream_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_kafka_stream_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_kafka_stream_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static ngx_int_t ngx_http_kafka_stream_add_source(ngx_conf_t *cf,
    ngx_http_kafka_stream_loc_conf_t *kslcf);
static ngx_int_t ngx_http_kafka_stream_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
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


static ngx_http_kafka_stream_worker_t  *ngx_http_kafka_stream_worker;

/* tells configuration generations apart in the shared zone's name */
static ngx_uint_t  ngx_http_kafka_stream_generation;


/* consumer properties suited to live video; kafka_stream_option wins */

static ngx_keyval_t  ngx_http_kafka_stream_defaults[] = {
    { ngx_string("fetch.wait.max.ms"), ngx_string("10") },
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


/* the request side */

static ngx_int_t
ngx_http_kafka_stream_handler(ngx_http_request_t *r)
{
    ngx_int_t                          rc;
    ngx_http_kafka_stream_loc_conf_t  *kslcf;

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

    return ngx_http_kafka_stream_start(r, kslcf);
}



static ngx_int_t
ngx_http_kafka_stream_start(ngx_http_request_t *r,
    ngx_http_kafka_stream_loc_conf_t *kslcf)
{
    int                              lowat;
    ngx_int_t                        rc;
    ngx_str_t                        key;
    ngx_table_elt_t                 *h;
    ngx_pool_cleanup_t              *cln;
    ngx_http_kafka_stream_group_t   *g;
    ngx_http_kafka_stream_source_t  *src;
    ngx_http_kafka_stream_viewer_t  *v;

    src = kslcf->source;

    ngx_str_null(&key);

    if (kslcf->key) {
        if (ngx_http_complex_value(r, kslcf->key, &key) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (key.len > NGX_HTTP_KAFKA_STREAM_MAX_KEY) {
            return NGX_HTTP_REQUEST_URI_TOO_LARGE;
        }
    }

    g = ngx_http_kafka_stream_group(src, key.data, key.len, 1);
    if (g == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (kslcf->type == NGX_HTTP_KAFKA_STREAM_SNAPSHOT && g->latest) {
        rc = ngx_http_kafka_stream_snapshot(r, g->latest);
        ngx_http_kafka_stream_group_release(src, g);
        return rc;
    }

    v = ngx_pcalloc(r->pool, sizeof(ngx_http_kafka_stream_viewer_t));
    if (v == NULL) {
        ngx_http_kafka_stream_group_release(src, g);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ngx_http_kafka_stream_group_release(src, g);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* from here on the cleanup undoes whatever was done */

    v->request = r;
    v->conf = kslcf;
    v->group = g;

    ngx_http_set_ctx(r, v, ngx_http_kafka_stream_module);

    /* a keyed group with its first viewer is no longer an idle one */

    if (g->nviewers++ == 0 && !g->all) {
        src->idle_groups--;
    }

    ngx_queue_insert_tail(&g->viewers, &v->queue);

    ngx_queue_insert_tail(&ngx_http_kafka_stream_worker->viewers, &v->link);
    v->listed = 1;

    cln->handler = ngx_http_kafka_stream_cleanup;
    cln->data = v;

    v->send.handler = ngx_http_kafka_stream_send_handler;
    v->send.data = v;
    v->send.log = r->connection->log;

    v->resend.handler = ngx_http_kafka_stream_resend_handler;
    v->resend.data = v;
    v->resend.log = r->connection->log;
    v->resend.cancelable = 1;

    if (kslcf->type == NGX_HTTP_KAFKA_STREAM_SNAPSHOT) {

        /* no frame yet: wait for the first one, for a while */

        v->snapshot = 1;
        ngx_add_timer(&v->resend, NGX_HTTP_KAFKA_STREAM_SNAPSHOT_WAIT);

        r->main->count++;
        return NGX_DONE;
    }

    kslcf->viewers++;
    (void) ngx_atomic_fetch_add(&src->counters->viewers, 1);
    v->counted = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_type_len = sizeof("multipart/x-mixed-replace; "
                                             "boundary=") - 1
                                      + kslcf->boundary.len;
    r->headers_out.content_type.len = r->headers_out.content_type_len;
    r->headers_out.content_type.data =
                       ngx_pnalloc(r->pool, r->headers_out.content_type_len);
    if (r->headers_out.content_type.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_sprintf(r->headers_out.content_type.data,
                "multipart/x-mixed-replace; boundary=%V", &kslcf->boundary);

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-cache, no-store");

    /* a proxy in front (nginx itself, for one) must not buffer the stream */

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "X-Accel-Buffering");
    ngx_str_set(&h->value, "no");

    r->allow_ranges = 0;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    /*
     * Without a cap the kernel queues megabytes for a slow reader, "newest
     * frame wins" never acts, and the viewer's delay grows without bound.
     */

    if (kslcf->notsent_lowat && r->stream == NULL) {
        lowat = (int) kslcf->notsent_lowat;

        if (setsockopt(r->connection->fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT,
                       (const void *) &lowat, sizeof(int))
            == -1)
        {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, ngx_socket_errno,
                          "setsockopt(TCP_NOTSENT_LOWAT) failed, ignored");
        }
    }

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_kafka_stream_writer;

    v->bufs[0].pos = kslcf->opening.data;
    v->bufs[0].last = kslcf->opening.data + kslcf->opening.len;
    v->bufs[0].memory = 1;
    v->bufs[0].flush = 1;
    v->chain[0].buf = &v->bufs[0];
    v->chain[0].next = NULL;

    r->main->count++;

    rc = ngx_http_output_filter(r, &v->chain[0]);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (g->latest) {
        ngx_http_kafka_stream_offer(v, g->latest);

    } else if (kslcf->idle_resend) {
        ngx_add_timer(&v->resend, kslcf->idle_resend);
    }

    return NGX_DONE;
}


static void
ngx_http_kafka_stream_cleanup(void *data)
{
    ngx_http_kafka_stream_viewer_t  *v = data;

    ngx_http_kafka_stream_unlink(v);

    if (v->listed) {
        ngx_queue_remove(&v->link);
        v->listed = 0;
    }

    if (v->counted) {
        v->conf->viewers--;
        (void) ngx_atomic_fetch_add(&v->conf->source->counters->viewers, -1);
        v->counted = 0;
    }

    if (v->send.posted) {
        ngx_delete_posted_event(&v->send);
    }

    if (v->resend.timer_set) {
        ngx_del_timer(&v->resend);
    }

    if (v->sending) {
        ngx_http_kafka_stream_frame_release(v->sending);
        v->sending = NULL;
    }

    if (v->waiting) {
        ngx_http_kafka_stream_frame_release(v->waiting);
        v->waiting = NULL;
    }
}


/* stop receiving frames */

static void
ngx_http_kafka_stream_unlink(ngx_http_kafka_stream_viewer_t *v)
{
    if (v->group == NULL) {
        return;
    }

    ngx_queue_remove(&v->queue);

    if (--v->group->nviewers == 0 && !v->group->all) {
        v->conf->source->idle_groups++;
    }

    ngx_http_kafka_stream_group_release(v->conf->source, v->group);
    v->group = NULL;
}


/*
 * Finds the group for a key; "create" is 1 for a viewer, which always gets
 * one, and 2 for a message, whose key is cached only while there is room.
 */

static ngx_http_kafka_stream_group_t *
ngx_http_kafka_stream_group(ngx_http_kafka_stream_source_t *src, u_char *key,
    size_t len, ngx_uint_t create)
{
    ngx_queue_t                    *q;
    ngx_http_kafka_stream_group_t  *g, *oldest;

    if (len == 0) {
        return src->all;
    }

    oldest = NULL;

    for (q = ngx_queue_head(&src->groups);
         q != ngx_queue_sentinel(&src->groups);
         q = ngx_queue_next(q))
    {
        g = ngx_queue_data(q, ngx_http_kafka_stream_group_t, queue);

        if (g->key.len == len && ngx_memcmp(g->key.data, key, len) == 0) {
            return g;
        }

        if (g->nviewers == 0
            && (oldest == NULL || (ngx_msec_int_t) (g->updated - oldest->updated)
                                  < 0))
        {
            oldest = g;
        }
    }

    if (create == 2
        && src->idle_groups >= NGX_HTTP_KAFKA_STREAM_MAX_IDLE_KEYS)
    {
        if (oldest == NULL) {
            return NULL;
        }

        /* the least recently seen key without viewers makes room */

        ngx_queue_remove(&oldest->queue);
        src->idle_groups--;

        if (oldest->latest) {
            ngx_http_kafka_stream_frame_release(oldest->latest);
        }

        ngx_free(oldest);
    }

    g = ngx_alloc(sizeof(ngx_http_kafka_stream_group_t) + len,
                  ngx_cycle->log);
    if (g == NULL) {
        return NULL;
    }

    g->key.data = (u_char *) g + sizeof(ngx_http_kafka_stream_group_t);
    g->key.len = len;
    ngx_memcpy(g->key.data, key, len);

    ngx_queue_init(&g->viewers);
    g->nviewers = 0;
    g->all = 0;
    g->latest = NULL;
    g->updated = ngx_current_msec;

    ngx_queue_insert_tail(&src->groups, &g->queue);
    src->idle_groups++;

    return g;
}


/* called when a viewer of the group leaves or was never added */

static void
ngx_http_kafka_stream_group_release(ngx_http_kafka_stream_source_t *src,
    ngx_http_kafka_stream_group_t *g)
{
    if (g->all || g->nviewers) {
        return;
    }

    /* keep the key's latest frame for the next viewer while there is room */

    if (g->latest && src->idle_groups <= NGX_HTTP_KAFKA_STREAM_MAX_IDLE_KEYS) {
        return;
    }

    ngx_queue_remove(&g->queue);
    src->idle_groups--;

    if (g->latest) {
        ngx_http_kafka_stream_frame_release(g->latest);
    }

    ngx_free(g);
}


/*
 * A new frame for a viewer: it replaces one that still waits.  An idle
 * viewer starts on it at once, so that a burst of frames from one fetch
 * reaches every viewer that can take it.
 */

static void
ngx_http_kafka_stream_offer(ngx_http_kafka_stream_viewer_t *v,
    ngx_http_kafka_stream_frame_t *f)
{
    ngx_int_t  rc;

    if (v->waiting) {
        ngx_http_kafka_stream_frame_release(v->waiting);
        (void) ngx_atomic_fetch_add(&v->conf->source->counters->drops, 1);
    }

    f->refs++;
    v->waiting = f;

    if (v->snapshot) {
        if (!v->send.posted) {
            ngx_post_event(&v->send, &ngx_posted_events);
        }

        return;
    }

    /* a viewer with a frame on the wire goes on from its write event */

    if (v->sending || v->failed) {
        return;
    }

    rc = ngx_http_kafka_stream_push(v);

    if (rc != NGX_ERROR) {
        rc = ngx_http_kafka_stream_wait(v, rc);
    }

    /*
     * The request is finished from a posted event, not here: finishing it
     * in the middle of the fan-out loop could take other viewers with it.
     */

    if (rc == NGX_ERROR) {
        v->failed = 1;

        if (!v->send.posted) {
            ngx_post_event(&v->send, &ngx_posted_events);
        }
    }
}


static void
ngx_http_kafka_stream_send_handler(ngx_event_t *ev)
{
    ngx_connection_t                *c;
    ngx_http_request_t              *r;
    ngx_http_kafka_stream_frame_t   *f;
    ngx_http_kafka_stream_viewer_t  *v;

    v = ev->data;
    r = v->request;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    if (v->snapshot) {
        f = v->waiting;
        v->waiting = NULL;

        ngx_http_kafka_stream_unlink(v);

        if (v->resend.timer_set) {
            ngx_del_timer(&v->resend);
        }

        ngx_http_finalize_request(r, ngx_http_kafka_stream_snapshot(r, f));
        ngx_http_kafka_stream_frame_release(f);

    } else {
        ngx_http_kafka_stream_send(v);
    }

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_kafka_stream_resend_handler(ngx_event_t *ev)
{
    ngx_connection_t                *c;
    ngx_http_request_t              *r;
    ngx_http_kafka_stream_viewer_t  *v;

    v = ev->data;
    r = v->request;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    if (v->snapshot) {
        ngx_http_kafka_stream_close(v);
        ngx_http_run_posted_requests(c);
        return;
    }

    /* nothing new for a while: send the latest frame again */

    if (v->group->latest) {
        if (v->sending == NULL && v->waiting == NULL) {
            ngx_http_kafka_stream_offer(v, v->group->latest);
        }

    } else {
        ngx_add_timer(&v->resend, v->conf->idle_resend);
    }
}


static void
ngx_http_kafka_stream_writer(ngx_http_request_t *r)
{
    ngx_event_t                     *wev;
    ngx_connection_t                *c;
    ngx_http_kafka_stream_viewer_t  *v;

    c = r->connection;
    wev = c->write;

    if (wev->timedout) {
        if (!wev->delayed) {
            ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                          "client timed out");
            c->timedout = 1;
            ngx_http_finalize_request(r, NGX_ERROR);
            return;
        }

        /* limit_rate's delay is over */

        wev->timedout = 0;
        wev->delayed = 0;
    }

    if (wev->delayed) {
        return;
    }

    v = ngx_http_get_module_ctx(r, ngx_http_kafka_stream_module);

    ngx_http_kafka_stream_send(v);
}


static void
ngx_http_kafka_stream_send(ngx_http_kafka_stream_viewer_t *v)
{
    ngx_int_t  rc;

    rc = v->failed ? NGX_ERROR : ngx_http_kafka_stream_push(v);

    if (rc != NGX_ERROR) {
        rc = ngx_http_kafka_stream_wait(v, rc);
    }

    if (rc == NGX_ERROR) {
        ngx_http_finalize_request(v->request, NGX_ERROR);
    }
}


/*
 * Pushes what is queued, then the waiting frame, as far as the socket
 * takes them: NGX_OK when all is out, NGX_AGAIN when the socket is full.
 * It never finishes the request, so it is safe inside the fan-out loop.
 */

static ngx_int_t
ngx_http_kafka_stream_push(ngx_http_kafka_stream_viewer_t *v)
{
    ngx_http_request_t  *r;

    r = v->request;

    for ( ;; ) {

        if (!ngx_http_kafka_stream_flushed(r)) {
            if (ngx_http_output_filter(r, NULL) == NGX_ERROR) {
                return NGX_ERROR;
            }

            if (!ngx_http_kafka_stream_flushed(r)) {
                return NGX_AGAIN;
            }
        }

        if (v->sending) {
            ngx_http_kafka_stream_frame_release(v->sending);
            v->sending = NULL;
            (void) ngx_atomic_fetch_add(
                                  &v->conf->source->counters->parts_sent, 1);
        }

        if (v->waiting == NULL) {
            return NGX_OK;
        }

        v->sending = v->waiting;
        v->waiting = NULL;

        if (ngx_http_kafka_stream_send_frame(v, v->sending) == NGX_ERROR) {
            return NGX_ERROR;
        }
    }
}


/* the timers for what push() left: send_timeout, or the idle re-send */

static ngx_int_t
ngx_http_kafka_stream_wait(ngx_http_kafka_stream_viewer_t *v, ngx_int_t rc)
{
    ngx_event_t               *wev;
    ngx_http_core_loc_conf_t  *clcf;

    wev = v->request->connection->write;
    clcf = ngx_http_get_module_loc_conf(v->request, ngx_http_core_module);

    if (rc == NGX_AGAIN) {
        if (!wev->delayed) {
            ngx_add_timer(wev, clcf->send_timeout);
        }

        return ngx_handle_write_event(wev, clcf->send_lowat);
    }

    if (wev->timer_set && !wev->delayed) {
        ngx_del_timer(wev);
    }

    if (v->conf->idle_resend) {
        ngx_add_timer(&v->resend, v->conf->idle_resend);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_kafka_stream_send_frame(ngx_http_kafka_stream_viewer_t *v,
    ngx_http_kafka_stream_frame_t *f)
{
    ngx_buf_t  *b;

    /* the buffers point into the shared frame: nothing is copied */

    b = v->bufs;
    ngx_memzero(b, 3 * sizeof(ngx_buf_t));

    b[0].pos = f->header.data;
    b[0].last = f->header.data + f->header.len;
    b[0].memory = 1;

    b[1].pos = f->image.data;
    b[1].last = f->image.data + f->image.len;
    b[1].memory = 1;

    /* the next boundary right away, so the part is complete on the wire */

    b[2].pos = v->conf->separator.data;
    b[2].last = v->conf->separator.data + v->conf->separator.len;
    b[2].memory = 1;
    b[2].flush = 1;

    v->chain[0].buf = &b[0];
    v->chain[0].next = &v->chain[1];
    v->chain[1].buf = &b[1];
    v->chain[1].next = &v->chain[2];
    v->chain[2].buf = &b[2];
    v->chain[2].next = NULL;

    return ngx_http_output_filter(v->request, v->chain);
}


static ngx_int_t
ngx_http_kafka_stream_flushed(ngx_http_request_t *r)
{
    return r->out == NULL && !r->buffered && !r->connection->buffered;
}


/* ends a stream with the closing boundary, or a snapshot wait with 503 */

static void
ngx_http_kafka_stream_close(ngx_http_kafka_stream_viewer_t *v)
{
    ngx_int_t            rc;
    ngx_buf_t           *b;
    ngx_table_elt_t     *h;
    ngx_http_request_t  *r;

    r = v->request;

    ngx_http_kafka_stream_unlink(v);

    if (v->resend.timer_set) {
        ngx_del_timer(&v->resend);
    }

    if (v->snapshot) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h != NULL) {
            h->hash = 1;
            ngx_str_set(&h->key, "Retry-After");
            ngx_str_set(&h->value, "1");
        }

        ngx_http_finalize_request(r, NGX_HTTP_SERVICE_UNAVAILABLE);
        return;
    }

    /*
     * A viewer that cannot take the closing boundary at once is closed
     * without it: waiting for it would hold an exiting worker.
     */

    if (v->sending || !ngx_http_kafka_stream_flushed(r)) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    b = &v->bufs[0];
    ngx_memzero(b, sizeof(ngx_buf_t));

    b->pos = v->conf->closing.data;
    b->last = v->conf->closing.data + v->conf->closing.len;
    b->memory = 1;
    b->last_buf = 1;

    v->chain[0].buf = b;
    v->chain[0].next = NULL;

    rc = ngx_http_output_filter(r, &v->chain[0]);

    if (rc != NGX_OK || !ngx_http_kafka_stream_flushed(r)) {
        rc = NGX_ERROR;
    }

    ngx_http_finalize_request(r, rc);
}


/* one image as an ordinary response */

static ngx_int_t
ngx_http_kafka_stream_snapshot(ngx_http_request_t *r,
    ngx_http_kafka_stream_frame_t *f)
{
    u_char              *p;
    ngx_int_t            rc;
    ngx_buf_t           *b;
    ngx_chain_t          out;
    ngx_table_elt_t     *h;
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the frame stays while the response may still point into it */

    f->refs++;
    cln->handler = ngx_http_kafka_stream_frame_cleanup;
    cln->data = f;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = f->image.len;
    r->headers_out.content_type = f->type;
    r->headers_out.content_type_len = f->type.len;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN + 4);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "X-Timestamp");
    h->value.data = p;
    h->value.len = ngx_sprintf(p, "%L.%03L", f->timestamp / 1000,
                               f->timestamp % 1000)
                   - p;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-cache, no-store");

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = f->image.data;
    b->last = f->image.data + f->image.len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static void
ngx_http_kafka_stream_frame_release(ngx_http_kafka_stream_frame_t *f)
{
    if (--f->refs == 0) {
        ngx_free(f);
    }
}


static void
ngx_http_kafka_stream_frame_cleanup(void *data)
{
    ngx_http_kafka_stream_frame_release(data);
}


/* status: JSON, or Prometheus text when asked for */

static ngx_int_t
ngx_http_kafka_stream_status(ngx_http_request_t *r)
{
    ngx_int_t                           rc;
    ngx_str_t                           format;
    ngx_buf_t                          *b;
    ngx_chain_t                         out;
    ngx_uint_t                          prometheus;
    ngx_http_kafka_stream_main_conf_t  *kmcf;

    kmcf = ngx_http_get_module_main_conf(r, ngx_http_kafka_stream_module);

    prometheus = 0;

    if (ngx_http_arg(r, (u_char *) "format", 6, &format) == NGX_OK) {
        prometheus = (format.len == 10
                      && ngx_strncmp(format.data, "prometheus", 10) == 0);

#if (NGX_HTTP_HEADERS)
    } else if (r->headers_in.accept) {
        prometheus =
            (ngx_strlcasestrn(r->headers_in.accept->value.data,
                              r->headers_in.accept->value.data
                              + r->headers_in.accept->value.len,
                              (u_char *) "text/plain", 10 - 1)
             != NULL
             && ngx_strlcasestrn(r->headers_in.accept->value.data,
                                 r->headers_in.accept->value.data
                                 + r->headers_in.accept->value.len,
                                 (u_char *) "application/json", 16 - 1)
                == NULL);
#endif
    }

    if (prometheus) {
        b = ngx_http_kafka_stream_status_prometheus(r, kmcf);
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4");

    } else {
        b = ngx_http_kafka_stream_status_json(r, kmcf);
        ngx_str_set(&r->headers_out.content_type, "application/json");
    }

    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;

    if (b->last == b->pos) {
        r->header_only = 1;
    }

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* the figures of one source summed over the workers */

static void
ngx_http_kafka_stream_sum(ngx_http_kafka_stream_main_conf_t *kmcf,
    ngx_uint_t index, ngx_http_kafka_stream_counters_t *sum)
{
    ngx_uint_t                         i;
    ngx_slab_pool_t                   *shpool;
    ngx_http_kafka_stream_slot_t      *slot;
    ngx_http_kafka_stream_counters_t  *c;

    ngx_memzero(sum, sizeof(ngx_http_kafka_stream_counters_t));

    shpool = (ngx_slab_pool_t *) kmcf->shm_zone->shm.addr;

    for (i = 0; i < NGX_HTTP_KAFKA_STREAM_MAX_SLOTS; i++) {
        slot = ngx_http_kafka_stream_slot(kmcf, shpool->data, i);

        if (slot->pid == 0) {
            continue;
        }

        c = ngx_http_kafka_stream_counters(slot, index);

        /* every worker consumes the topic itself: take the largest */

        sum->viewers += c->viewers;
        sum->parts_sent += c->parts_sent;
        sum->drops += c->drops;
        sum->frames_in = ngx_max(sum->frames_in, c->frames_in);
        sum->bytes_in = ngx_max(sum->bytes_in, c->bytes_in);
        sum->skipped = ngx_max(sum->skipped, c->skipped);
        sum->last_offset = ngx_max(sum->last_offset, c->last_offset);

        if (c->latest_msec
            && (sum->latest_msec == 0
                || (ngx_msec_int_t) (c->latest_msec - sum->latest_msec) > 0))
        {
            sum->latest_msec = c->latest_msec;
        }
    }
}


static ngx_http_kafka_stream_slot_t *
ngx_http_kafka_stream_slot(ngx_http_kafka_stream_main_conf_t *kmcf,
    void *slots, ngx_uint_t n)
{
    return (ngx_http_kafka_stream_slot_t *)
               ((u_char *) slots + n * kmcf->slot_size);
}


static ngx_http_kafka_stream_counters_t *
ngx_http_kafka_stream_counters(ngx_http_kafka_stream_slot_t *slot,
    ngx_uint_t index)
{
    return (ngx_http_kafka_stream_counters_t *)
               ((u_char *) slot + sizeof(ngx_http_kafka_stream_slot_t))
           + index;
}


#define NGX_HTTP_KAFKA_STREAM_STATUS_KEYS   256   /* bytes of a key shown */
#define NGX_HTTP_KAFKA_STREAM_STATUS_NKEYS  64    /* keys shown */


static ngx_buf_t *
ngx_http_kafka_stream_status_json(ngx_http_request_t *r,
    ngx_http_kafka_stream_main_conf_t *kmcf)
{
    u_char                             *p;
    size_t                              size, len;
    ngx_buf_t                          *b;
    ngx_uint_t                          i, j, up, first;
    ngx_queue_t                        *q;
    ngx_slab_pool_t                    *shpool;
    ngx_http_kafka_stream_slot_t       *slot;
    ngx_http_kafka_stream_group_t      *g;
    ngx_http_kafka_stream_source_t    **sources, *src;
    ngx_http_kafka_stream_counters_t    sum, *c, wsum;

    shpool = (ngx_slab_pool_t *) kmcf->shm_zone->shm.addr;
    sources = kmcf->sources.elts;

    size = sizeof("{\"version\":\"\",\"workers\":[],\"streams\":[]}\n")
           + sizeof(NGX_HTTP_KAFKA_STREAM_VERSION)
           + NGX_HTTP_KAFKA_STREAM_MAX_SLOTS * (128 + 6 * NGX_ATOMIC_T_LEN);

    for (i = 0; i < kmcf->sources.nelts; i++) {
        src = sources[i];
        size += 256 + src->topic->name.len + 10 * NGX_ATOMIC_T_LEN;

        if (ngx_http_kafka_stream_worker == NULL) {
            continue;
        }

        size += NGX_HTTP_KAFKA_STREAM_STATUS_NKEYS
                * (3 + 6 * NGX_HTTP_KAFKA_STREAM_STATUS_KEYS);
    }

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NULL;
    }

    p = ngx_sprintf(b->last, "{\"version\":\"%s\",\"workers\":[",
                    NGX_HTTP_KAFKA_STREAM_VERSION);

    up = 0;
    first = 1;

    for (i = 0; i < NGX_HTTP_KAFKA_STREAM_MAX_SLOTS; i++) {
        slot = ngx_http_kafka_stream_slot(kmcf, shpool->data, i);

        if (slot->pid == 0) {
            continue;
        }

        ngx_memzero(&wsum, sizeof(ngx_http_kafka_stream_counters_t));

        for (j = 0; j < kmcf->sources.nelts; j++) {
            c = ngx_http_kafka_stream_counters(slot, j);
            wsum.viewers += c->viewers;
            wsum.frames_in += c->frames_in;
            wsum.parts_sent += c->parts_sent;
            wsum.drops += c->drops;
            wsum.skipped += c->skipped;
        }

        up = ngx_max(up, slot->brokers_up);

        p = ngx_sprintf(p, "%s{\"pid\":%uA,\"brokers_up\":%uA,"
                        "\"partitions\":%uA,\"viewers\":%uA,"
                        "\"frames_in\":%uA,\"skipped\":%uA,"
                        "\"parts_sent\":%uA,\"drops\":%uA}",
                        first ? "" : ",", slot->pid, slot->brokers_up,
                        slot->partitions, wsum.viewers, wsum.frames_in,
                        wsum.skipped, wsum.parts_sent, wsum.drops);
        first = 0;
    }

    p = ngx_cpymem(p, "],\"streams\":[", sizeof("],\"streams\":[") - 1);

    for (i = 0; i < kmcf->sources.nelts; i++) {
        src = sources[i];

        ngx_http_kafka_stream_sum(kmcf, i, &sum);

        p = ngx_sprintf(p, "%s{\"topic\":\"%V\",", i ? "," : "",
                        &src->topic->name);

        if (src->partition == NGX_HTTP_KAFKA_STREAM_ALL) {
            p = ngx_cpymem(p, "\"partition\":\"all\",",
                           sizeof("\"partition\":\"all\",") - 1);

        } else {
            p = ngx_sprintf(p, "\"partition\":%i,", src->partition);
        }

        p = ngx_sprintf(p, "\"viewers\":%uA,\"frames_in\":%uA,"
                        "\"bytes_in\":%uA,\"parts_sent\":%uA,\"drops\":%uA,"
                        "\"skipped\":%uA,",
                        sum.viewers, sum.frames_in, sum.bytes_in,
                        sum.parts_sent, sum.drops, sum.skipped);

        if (sum.latest_msec) {
            p = ngx_sprintf(p, "\"last_offset\":%uA,\"latest_age_ms\":%M,",
                            sum.last_offset,
                            (ngx_msec_t) (ngx_current_msec - sum.latest_msec));

        } else {
            p = ngx_cpymem(p, "\"last_offset\":null,\"latest_age_ms\":null,",
                           sizeof("\"last_offset\":null,"
                                  "\"latest_age_ms\":null,") - 1);
        }

        p = ngx_sprintf(p, "\"broker\":\"%s\",\"keys\":[",
                        up ? "up" : "down");

        if (ngx_http_kafka_stream_worker) {
            first = 1;
            j = 0;

            for (q = ngx_queue_head(&src->groups);
                 q != ngx_queue_sentinel(&src->groups)
                 && j < NGX_HTTP_KAFKA_STREAM_STATUS_NKEYS;
                 q = ngx_queue_next(q))
            {
                g = ngx_queue_data(q, ngx_http_kafka_stream_group_t, queue);

                /* keys seen in Kafka, not the ones viewers asked for */

                if (g->latest == NULL) {
                    continue;
                }

                j++;

                len = ngx_min(g->key.len, NGX_HTTP_KAFKA_STREAM_STATUS_KEYS);

                *p++ = first ? '"' : ',';

                if (!first) {
                    *p++ = '"';
                }

                p += ngx_http_kafka_stream_escape_json(p, g->key.data, len);
                *p++ = '"';
                first = 0;
            }
        }

        p = ngx_cpymem(p, "]}", 2);
    }

    p = ngx_cpymem(p, "]}\n", 3);

    b->last = p;

    return b;
}


static ngx_buf_t *
ngx_http_kafka_stream_status_prometheus(ngx_http_request_t *r,
    ngx_http_kafka_stream_main_conf_t *kmcf)
{
    u_char                             *p;
    size_t                              size;
    ngx_buf_t                          *b;
    ngx_str_t                           partition;
    ngx_uint_t                          i, k, up;
    ngx_slab_pool_t                    *shpool;
    ngx_http_kafka_stream_slot_t       *slot;
    ngx_http_kafka_stream_source_t    **sources, *src;
    ngx_http_kafka_stream_counters_t    sum;
    u_char                              num[NGX_INT_T_LEN];

    static struct {
        char        *name;
        char        *type;
        char        *help;
        size_t       offset;
    } metrics[] = {
        { "viewers", "gauge", "viewers connected",
          offsetof(ngx_http_kafka_stream_counters_t, viewers) },
        { "frames_received_total", "counter", "frames received from Kafka",
          offsetof(ngx_http_kafka_stream_counters_t, frames_in) },
        { "bytes_received_total", "counter", "image bytes received",
          offsetof(ngx_http_kafka_stream_counters_t, bytes_in) },
        { "parts_sent_total", "counter", "frames sent to viewers",
          offsetof(ngx_http_kafka_stream_counters_t, parts_sent) },
        { "drops_total", "counter",
          "frames replaced before a slow viewer took them",
          offsetof(ngx_http_kafka_stream_counters_t, drops) },
        { "skipped_total", "counter",
          "messages skipped (not an image, or too large)",
          offsetof(ngx_http_kafka_stream_counters_t, skipped) },
        { "last_offset", "gauge", "offset of the latest frame",
          offsetof(ngx_http_kafka_stream_counters_t, last_offset) },
        { NULL, NULL, NULL, 0 }
    };

    shpool = (ngx_slab_pool_t *) kmcf->shm_zone->shm.addr;
    sources = kmcf->sources.elts;

    size = 512;

    for (i = 0; metrics[i].name; i++) {
        size += 128 + kmcf->sources.nelts * (128 + NGX_ATOMIC_T_LEN);
    }

    for (i = 0; i < kmcf->sources.nelts; i++) {
        size += 8 * sources[i]->topic->name.len;
    }

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NULL;
    }

    p = b->last;

    for (i = 0; metrics[i].name; i++) {
        p = ngx_sprintf(p, "# HELP kafka_stream_%s %s\n"
                        "# TYPE kafka_stream_%s %s\n",
                        metrics[i].name, metrics[i].help,
                        metrics[i].name, metrics[i].type);

        for (k = 0; k < kmcf->sources.nelts; k++) {
            src = sources[k];

            ngx_http_kafka_stream_sum(kmcf, k, &sum);

            if (src->partition == NGX_HTTP_KAFKA_STREAM_ALL) {
                ngx_str_set(&partition, "all");

            } else {
                partition.data = num;
                partition.len = ngx_sprintf(num, "%i", src->partition) - num;
            }

            p = ngx_sprintf(p, "kafka_stream_%s{topic=\"%V\","
                            "partition=\"%V\"} %uA\n",
                            metrics[i].name, &src->topic->name, &partition,
                            *(ngx_atomic_t *) ((u_char *) &sum
                                               + metrics[i].offset));
        }
    }

    up = 0;

    for (i = 0; i < NGX_HTTP_KAFKA_STREAM_MAX_SLOTS; i++) {
        slot = ngx_http_kafka_stream_slot(kmcf, shpool->data, i);

        if (slot->pid) {
            up = ngx_max(up, slot->brokers_up);
        }
    }

    p = ngx_sprintf(p, "# HELP kafka_stream_brokers_up brokers connected "
                    "(the best worker)\n"
                    "# TYPE kafka_stream_brokers_up gauge\n"
                    "kafka_stream_brokers_up %ui\n", up);

    b->last = p;

    return b;
}


/* the Kafka side, in the worker */

static void
ngx_http_kafka_stream_wakeup_handler(ngx_event_t *ev)
{
    u_char             buf[64];
    ssize_t            n;
    ngx_connection_t  *c;

    c = ev->data;

    /*
     * librdkafka writes to the pipe only when the queue goes from empty to
     * non-empty: empty the pipe first, then the queue, and nothing is missed.
     */

    do {
        n = read(c->fd, buf, sizeof(buf));
    } while (n > 0);

    if (n == -1 && ngx_errno != NGX_EAGAIN && ngx_errno != NGX_EINTR) {
        ngx_log_error(NGX_LOG_ALERT, ev->log, ngx_errno,
                      "kafka stream: read() from the wakeup pipe failed");
    }

    ngx_http_kafka_stream_drain();
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
}


static void
ngx_http_kafka_stream_message(rd_kafka_message_t *msg)
{
    int                                type;
    ngx_uint_t                         i, catchup;
    const char                        *topic;
    ngx_http_kafka_stream_topic_t     *t;
    ngx_http_kafka_stream_frame_t     *f;
    ngx_http_kafka_stream_group_t     *g;
    ngx_http_kafka_stream_source_t   **sources, *src;
    ngx_http_kafka_stream_counters_t  *c;

    if (msg->err) {
        if (ngx_http_kafka_stream_log_allowed()) {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "kafka stream: consumer error on \"%s\" [%D]: %s",
                          msg->rkt ? rd_kafka_topic_name(msg->rkt) : "-",
                          msg->partition, rd_kafka_message_errstr(msg));
        }

        return;
    }

    topic = rd_kafka_topic_name(msg->rkt);
    sources = ngx_http_kafka_stream_worker->conf->sources.elts;

    /*
     * The first message of a partition is its last one from before this
     * worker started: with several partitions it may be older than what
     * the others already gave, and must not replace a newer frame.
     */

    catchup = 0;

    for (i = 0; i < ngx_http_kafka_stream_worker->conf->sources.nelts; i++) {
        t = sources[i]->topic;

        if (ngx_strcmp(t->name.data, topic) == 0) {
            if (msg->partition >= 0
                && msg->partition < NGX_HTTP_KAFKA_STREAM_MAX_PARTS
                && !t->live[msg->partition])
            {
                t->live[msg->partition] = 1;
                catchup = 1;
            }

            break;
        }
    }

    f = NULL;

    for (i = 0; i < ngx_http_kafka_stream_worker->conf->sources.nelts; i++) {
        src = sources[i];

        if (ngx_strcmp(src->topic->name.data, topic) != 0
            || (src->partition != NGX_HTTP_KAFKA_STREAM_ALL
                && src->partition != msg->partition))
        {
            continue;
        }

        c = src->counters;

        if (msg->len > src->max_frame_size) {
            c->skipped++;

            if (ngx_http_kafka_stream_log_allowed()) {
                ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                              "kafka stream: message of %uz bytes at "
                              "\"%s\" [%D] offset %O is larger than "
                              "kafka_stream_max_frame_size %uz, skipped",
                              msg->len, topic, msg->partition,
                              (off_t) msg->offset, src->max_frame_size);
            }

            continue;
        }

        if (f == NULL) {
            type = ngx_http_kafka_stream_sniff(msg->payload, msg->len);

            if (type == NGX_HTTP_KAFKA_STREAM_NOT_IMAGE) {
                c->skipped++;

                if (ngx_http_kafka_stream_log_allowed()) {
                    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                                  "kafka stream: message of %uz bytes at "
                                  "\"%s\" [%D] offset %O is not a complete "
                                  "PNG or JPEG image, skipped",
                                  msg->len, topic, msg->partition,
                                  (off_t) msg->offset);
                }

                /* the other sources would see the same bytes */

                for (i++; i < ngx_http_kafka_stream_worker->conf->sources.nelts;
                     i++)
                {
                    src = sources[i];

                    if (ngx_strcmp(src->topic->name.data, topic) == 0
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
        }

        c->frames_in++;
        c->bytes_in += msg->len;
        c->last_offset = msg->offset;
        c->latest_msec = ngx_current_msec;

        /* holds a reference while the groups are updated */
        f->refs++;

        ngx_http_kafka_stream_publish(src->all, f, catchup);

        if (msg->key_len && msg->key_len <= NGX_HTTP_KAFKA_STREAM_MAX_KEY) {
            g = ngx_http_kafka_stream_group(src, msg->key, msg->key_len, 2);

            if (g) {
                ngx_http_kafka_stream_publish(g, f, catchup);
            }
        }

        ngx_http_kafka_stream_frame_release(f);
    }
}


static void
ngx_http_kafka_stream_publish(ngx_http_kafka_stream_group_t *g,
    ngx_http_kafka_stream_frame_t *f, ngx_uint_t catchup)
{
    ngx_queue_t  *q;

    if (catchup && g->latest && g->latest->timestamp > f->timestamp) {
        return;
    }

    if (g->latest) {
        ngx_http_kafka_stream_frame_release(g->latest);
    }

    g->latest = f;
    g->updated = ngx_current_msec;
    f->refs++;

    for (q = ngx_queue_head(&g->viewers);
         q != ngx_queue_sentinel(&g->viewers);
         q = ngx_queue_next(q))
    {
        ngx_http_kafka_stream_offer(
                  ngx_queue_data(q, ngx_http_kafka_stream_viewer_t, queue), f);
    }
}


/* one copy of the message, with its part header made once for all */

static ngx_http_kafka_stream_frame_t *
ngx_http_kafka_stream_frame(rd_kafka_message_t *msg, int type)
{
    u_char                         *p;
    int64_t                         ts;
    ngx_time_t                     *tp;
    rd_kafka_timestamp_type_t       tstype;
    ngx_http_kafka_stream_frame_t  *f;

    f = ngx_alloc(sizeof(ngx_http_kafka_stream_frame_t)
                  + NGX_HTTP_KAFKA_STREAM_PART_HEADER_MAX + msg->len,
                  ngx_cycle->log);
    if (f == NULL) {
        return NULL;
    }

    ts = rd_kafka_message_timestamp(msg, &tstype);

    if (ts < 0) {
        tp = ngx_timeofday();
        ts = (int64_t) tp->sec * 1000 + tp->msec;
    }

    f->refs = 0;
    f->offset = msg->offset;
    f->partition = msg->partition;
    f->received = ngx_current_msec;
    f->timestamp = ts;

    if (type == NGX_HTTP_KAFKA_STREAM_PNG) {
        ngx_str_set(&f->type, "image/png");

    } else {
        ngx_str_set(&f->type, "image/jpeg");
    }

    p = (u_char *) f + sizeof(ngx_http_kafka_stream_frame_t);

    f->header.data = p;
    f->header.len = ngx_http_kafka_stream_part_header(p, type, msg->len, ts);

    f->image.data = p + f->header.len;
    f->image.len = msg->len;
    ngx_memcpy(f->image.data, msg->payload, msg->len);

    return f;
}


static void
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
        if (topics[i]->all
            && topics[i]->name.len == len
            && ngx_strncmp(topics[i]->name.data, topic, len) == 0)
        {
            ngx_http_kafka_stream_start_partition(topics[i], partition);
            return;
        }
    }
}


static void
ngx_http_kafka_stream_start_partition(ngx_http_kafka_stream_topic_t *t,
    ngx_int_t partition)
{
    ngx_http_kafka_stream_worker_t  *w;

    w = ngx_http_kafka_stream_worker;

    if (partition >= NGX_HTTP_KAFKA_STREAM_MAX_PARTS) {
        if (ngx_http_kafka_stream_log_allowed()) {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "kafka stream: partition %i of \"%V\" ignored: "
                          "only the first %d are consumed",
                          partition, &t->name,
                          NGX_HTTP_KAFKA_STREAM_MAX_PARTS);
        }

        return;
    }

    if (t->started[partition]) {
        return;
    }

    /* the latest message is there at once, even while nothing is produced */

    if (rd_kafka_consume_start_queue(t->rkt, (int32_t) partition,
                                     RD_KAFKA_OFFSET_TAIL(1), w->queue)
        == -1)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "kafka stream: cannot consume \"%V\" [%i]: %s",
                      &t->name, partition,
                      rd_kafka_err2str(rd_kafka_last_error()));
        return;
    }

    t->started[partition] = 1;
    w->slot->partitions++;

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "kafka stream: consuming \"%V\" [%i]", &t->name, partition);
}


/*
 * Runs every NGX_HTTP_KAFKA_STREAM_TICK while the worker lives: it is how
 * the worker learns of a graceful shutdown (nginx has no hook for it), and
 * it ends every stream then, so that old workers leave at once on reload.
 */

static void
ngx_http_kafka_stream_tick_handler(ngx_event_t *ev)
{
    ngx_queue_t                     *q;
    ngx_http_kafka_stream_viewer_t  *v;
    ngx_http_kafka_stream_worker_t  *w;
    ngx_connection_t                *c;

    w = ev->data;

    if (!ngx_exiting) {
        ngx_add_timer(ev, NGX_HTTP_KAFKA_STREAM_TICK);
        return;
    }

    while (!ngx_queue_empty(&w->viewers)) {
        q = ngx_queue_head(&w->viewers);
        v = ngx_queue_data(q, ngx_http_kafka_stream_viewer_t, link);

        ngx_queue_remove(q);
        v->listed = 0;

        c = v->request->connection;
        ngx_http_set_log_request(c->log, v->request);

        ngx_http_kafka_stream_close(v);
        ngx_http_run_posted_requests(c);
    }
}


/* at most a few warnings per window, and a count of the rest */

static ngx_uint_t
ngx_http_kafka_stream_log_allowed(void)
{
    ngx_http_kafka_stream_worker_t  *w;

    w = ngx_http_kafka_stream_worker;

    if (ngx_time() - w->log_window >= NGX_HTTP_KAFKA_STREAM_LOG_WINDOW) {

        if (w->log_suppressed) {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "kafka stream: %ui similar messages suppressed "
                          "in the last %d seconds",
                          w->log_suppressed, NGX_HTTP_KAFKA_STREAM_LOG_WINDOW);
        }

        w->log_window = ngx_time();
        w->log_lines = 0;
        w->log_suppressed = 0;
    }

    if (w->log_lines < NGX_HTTP_KAFKA_STREAM_LOG_BURST) {
        w->log_lines++;
        return 1;
    }

    w->log_suppressed++;

    return 0;
}


/* worker process */

static ngx_int_t
ngx_http_kafka_stream_init_process(ngx_cycle_t *cycle)
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

    shpool = (ngx_slab_pool_t *) kmcf->shm_zone->shm.addr;
    slot = ngx_http_kafka_stream_slot(kmcf, shpool->data, ngx_worker);

    /* a worker that replaces a crashed one starts from zero */
    ngx_memzero(slot, kmcf->slot_size);

    w = ngx_pcalloc(cycle->pool, sizeof(ngx_http_kafka_stream_worker_t));
    if (w == NULL) {
        return NGX_ERROR;
    }

    w->conf = kmcf;
    w->slot = slot;
    w->pipe[0] = -1;
    w->pipe[1] = -1;
    ngx_queue_init(&w->viewers);

    sources = kmcf->sources.elts;

    for (i = 0; i < kmcf->sources.nelts; i++) {
        src = sources[i];

        ngx_queue_init(&src->groups);
        src->idle_groups = 0;
        src->counters = ngx_http_kafka_stream_counters(slot, i);

        src->all = ngx_pcalloc(cycle->pool,
                               sizeof(ngx_http_kafka_stream_group_t));
        if (src->all == NULL) {
            return NGX_ERROR;
        }

        ngx_queue_init(&src->all->viewers);
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


static ngx_int_t
ngx_http_kafka_stream_consumer(ngx_cycle_t *cycle,
    ngx_http_kafka_stream_worker_t *w)
{
    char                               errstr[512];
    ngx_uint_t                         i, p;
    rd_kafka_conf_t                   *conf;
    rd_kafka_queue_t                  *main_queue;
    ngx_connection_t                  *c;
    ngx_http_kafka_stream_topic_t    **topics, *t;
    ngx_http_kafka_stream_main_conf_t *kmcf;

    kmcf = w->conf;

    conf = ngx_http_kafka_stream_rdconf(cycle->log, kmcf);
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

    if (pipe(w->pipe) == -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno, "pipe() failed");
        goto failed;
    }

    if (ngx_nonblocking(w->pipe[0]) == -1
        || ngx_nonblocking(w->pipe[1]) == -1)
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_socket_errno,
                      ngx_nonblocking_n " failed");
        goto failed;
    }

    c = ngx_get_connection(w->pipe[0], cycle->log);
    if (c == NULL) {
        goto failed;
    }

    w->wakeup = c;

    c->read->handler = ngx_http_kafka_stream_wakeup_handler;
    c->read->log = cycle->log;
    c->write->log = cycle->log;
    c->data = w;

    if (ngx_add_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
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

        /*
         * Every topic has a partition 0: "all" starts there at once, and
         * the statistics report the others within statistics.interval.ms.
         */

        for (p = 0; p < NGX_HTTP_KAFKA_STREAM_MAX_PARTS; p++) {
            if (t->wanted[p] || (p == 0 && t->all)) {
                ngx_http_kafka_stream_start_partition(t, p);
            }
        }
    }

    /* frames may already be there */
    ngx_http_kafka_stream_drain();

    return NGX_OK;

failed:

    ngx_http_kafka_stream_exit_process(cycle);

    return NGX_ERROR;
}


static rd_kafka_conf_t *
ngx_http_kafka_stream_rdconf(ngx_log_t *log,
    ngx_http_kafka_stream_main_conf_t *kmcf)
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


static void
ngx_http_kafka_stream_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                       i;
    ngx_queue_t                     *q;
    ngx_http_kafka_stream_topic_t  **topics;
    ngx_http_kafka_stream_worker_t  *w;
    ngx_http_kafka_stream_viewer_t  *v;

    w = ngx_http_kafka_stream_worker;

    if (w == NULL) {
        return;
    }

    /* on a fast shutdown the viewers are still here */

    while (!ngx_queue_empty(&w->viewers)) {
        q = ngx_queue_head(&w->viewers);
        v = ngx_queue_data(q, ngx_http_kafka_stream_viewer_t, link);

        ngx_queue_remove(q);
        v->listed = 0;

        ngx_http_finalize_request(v->request, NGX_ERROR);
    }

    if (w->tick.timer_set) {
        ngx_del_timer(&w->tick);
    }

    if (w->queue) {
        rd_kafka_queue_io_event_enable(w->queue, -1, NULL, 0);
    }

    if (w->wakeup) {
        ngx_close_connection(w->wakeup);
        w->wakeup = NULL;
        w->pipe[0] = -1;
    }

    if (w->pipe[0] != -1) {
        (void) close(w->pipe[0]);
    }

    if (w->pipe[1] != -1) {
        (void) close(w->pipe[1]);
    }

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


/* the cached frames and key groups, for a clean exit */

static void
ngx_http_kafka_stream_free_frames(ngx_http_kafka_stream_main_conf_t *kmcf)
{
    ngx_uint_t                        i;
    ngx_queue_t                      *q;
    ngx_http_kafka_stream_group_t    *g;
    ngx_http_kafka_stream_source_t  **sources, *src;

    sources = kmcf->sources.elts;

    for (i = 0; i < kmcf->sources.nelts; i++) {
        src = sources[i];

        while (!ngx_queue_empty(&src->groups)) {
            q = ngx_queue_head(&src->groups);
            g = ngx_queue_data(q, ngx_http_kafka_stream_group_t, queue);

            ngx_queue_remove(q);

            if (g->latest) {
                ngx_http_kafka_stream_frame_release(g->latest);
            }

            ngx_free(g);
        }

        src->idle_groups = 0;

        if (src->all && src->all->latest) {
            ngx_http_kafka_stream_frame_release(src->all->latest);
            src->all->latest = NULL;
        }
    }
}


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
     */

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

    return kslcf;
}


static char *
ngx_http_kafka_stream_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_kafka_stream_loc_conf_t *prev = parent;
    ngx_http_kafka_stream_loc_conf_t *conf = child;

    u_char  *p;

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
                             "kafka-stream-frame");

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

    /* "--b" CRLF, then CRLF "--b" CRLF after every frame, CRLF "--b--" CRLF */

    p = ngx_pnalloc(cf->pool, 3 * (conf->boundary.len + 8));
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    conf->separator.data = p;
    p = ngx_sprintf(p, CRLF "--%V" CRLF, &conf->boundary);
    conf->separator.len = p - conf->separator.data;

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

        conf = ngx_http_kafka_stream_rdconf(cf->log, kmcf);
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


static ngx_int_t
ngx_http_kafka_stream_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    size_t                              size;
    ngx_slab_pool_t                    *shpool;
    ngx_http_kafka_stream_main_conf_t  *kmcf;

    kmcf = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    size = NGX_HTTP_KAFKA_STREAM_MAX_SLOTS * kmcf->slot_size;

    shpool->data = ngx_slab_calloc(shpool, size);
    if (shpool->data == NULL) {
        return NGX_ERROR;
    }

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
