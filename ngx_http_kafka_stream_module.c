
/*
 * ngx_http_kafka_stream_module: live images from Apache Kafka to browsers.
 *
 * Every worker process runs one librdkafka consumer for all topics the
 * configuration names, and reads a partition only while a viewer needs
 * it: a keyed location needs the partition its key is on, an unfiltered
 * one all of them.  Messages are images (PNG or JPEG, one per message);
 * each location answers with multipart/x-mixed-replace, one part per
 * image, to all of its viewers at once.
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
 *
 * A viewer may ask for fewer frames (?fps=) and a smaller picture
 * (?width=, ?height=, among the location's kafka_stream_sizes): each size
 * of a group's frames is made once per frame in the thread pool, while
 * someone watches it, and shared by its viewers as the source's frames
 * are.
 *
 * Where each part lives: this file holds the directives, configuration,
 * the content handler that dispatches, init_process and the ngx_module_t;
 * the rest is in src/, ngx_http_kafka_stream_<part>.c, from the top
 * layer down (a file calls only those below it):
 *
 *   replay        replays: their own consumers, pacing, the live end
 *   replay_args   a replay's query arguments
 *   replay_task   a replay's tasks in the thread pool: the lookup of its
 *                 start, the destruction of its consumer
 *   wall          walls: many keys in one response (kafka_stream_wall),
 *                 an X-Key line per part, newest frame wins per key
 *   live          viewers: fan-out, newest frame wins, idle re-send, the
 *                 end of streams; the snapshot
 *   status        the counters' shared zone, JSON and Prometheus
 *   rendition     a group's frames at a size, made in the thread pool
 *                 and shared; a request's ?fps=, ?width=, ?height=
 *   rate          a viewer's ?fps=: frames spaced by Kafka time
 *   consumer      the worker's start and exit, its consumer, the wake-up
 *                 pipe, drain, the catch-up of a partition that starts,
 *                 statistics, the tick
 *   partitions    which partitions a worker reads: its viewers' needs,
 *                 keys placed by the producers' partitioner, the linger,
 *                 starts, and stops (in the thread pool)
 *   frame         frames: copied once, in a memfd when large,
 *                 reference-counted, grouped by key; why one is skipped
 *   response      answers of one buffer, and the headers they share
 *   log           librdkafka's lines, the limit on warnings
 *   parse         pure functions: images, statistics, names, times
 *   scale         pure: a PNG or JPEG to a smaller JPEG (libjpeg-turbo,
 *                 libpng), for any thread
 *
 * ngx_http_kafka_stream.h holds the shared types and prototypes.  A lower
 * layer reaches a higher one only through a hook the higher one set: the
 * consumer calls the walls, the viewers and the replays through the hooks
 * given at init_process (ngx_http_kafka_stream_hooks below), a viewer its
 * replay through the replay_* hooks the replay sets on it, a rendition its
 * viewers through the "made" hook of whoever made the rendition.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kafka_stream.h"


static ngx_int_t ngx_http_kafka_stream_handler(ngx_http_request_t *r);
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
static char *ngx_http_kafka_stream_partitioner(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_kafka_stream_boundary(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_kafka_stream_sizes(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_kafka_stream_add_sizes(ngx_conf_t *cf,
    ngx_http_kafka_stream_loc_conf_t *kslcf);


static char *ngx_http_kafka_stream_quality(ngx_conf_t *cf, void *post,
    void *data);


static ngx_conf_post_t  ngx_http_kafka_stream_quality_post = {
    ngx_http_kafka_stream_quality
};


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

    { ngx_string("kafka_stream_wall"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_kafka_stream,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      (void *) NGX_HTTP_KAFKA_STREAM_WALL },

    { ngx_string("kafka_stream_wall_keys"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_kafka_stream_loc_conf_t, wall_keys),
      NULL },

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

    { ngx_string("kafka_stream_partitioner"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_kafka_stream_partitioner,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("kafka_stream_always_consume"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_kafka_stream_loc_conf_t, always),
      NULL },

    { ngx_string("kafka_stream_linger"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_kafka_stream_main_conf_t, linger),
      NULL },

    { ngx_string("kafka_stream_catchup"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_kafka_stream_main_conf_t, catchup),
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

    { ngx_string("kafka_stream_sizes"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_kafka_stream_sizes,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_kafka_stream_loc_conf_t, sizes),
      NULL },

    { ngx_string("kafka_stream_quality"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_kafka_stream_loc_conf_t, quality),
      &ngx_http_kafka_stream_quality_post },

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
 * viewers, the walls and the replays, and names nothing of theirs;
 * init_process gives it these.  The walls' calls take the frames and the
 * end of the worker to the walls, then pass them on to the viewers.
 */

static const ngx_http_kafka_stream_hooks_t  ngx_http_kafka_stream_hooks = {
    ngx_http_kafka_stream_wall_publish,
    ngx_http_kafka_stream_wall_shutdown,
    ngx_http_kafka_stream_wall_exit,
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
    ngx_http_kafka_stream_view_args_t     va;
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

    if ((kslcf->type == NGX_HTTP_KAFKA_STREAM_LIVE
         || kslcf->type == NGX_HTTP_KAFKA_STREAM_WALL)
        && kslcf->max_viewers
        && kslcf->viewers >= kslcf->max_viewers)
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "kafka stream: %ui viewers reached "
                      "(kafka_stream_max_viewers)", kslcf->viewers);
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    /* ?fps=, ?width=, ?height=: live, replay, snapshot and wall alike */

    rc = ngx_http_kafka_stream_view_args(r, kslcf, &va);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return ngx_http_kafka_stream_refuse(r, rc, &va.reason);
    }

    if (rc != NGX_OK) {
        return rc;
    }

    if (kslcf->type == NGX_HTTP_KAFKA_STREAM_WALL) {
        return ngx_http_kafka_stream_wall_start(r, kslcf, &va);
    }

#if (NGX_THREADS)

    if (kslcf->replay) {
        rc = ngx_http_kafka_stream_replay_args(r, kslcf, &ra);

        if (rc == NGX_OK) {
            return ngx_http_kafka_stream_replay_start(r, kslcf, &ra, &va);
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

    return ngx_http_kafka_stream_start(r, kslcf, &va);
}


/* the worker's consumer, given the layers above it */

static ngx_int_t
ngx_http_kafka_stream_init_process(ngx_cycle_t *cycle)
{
    return ngx_http_kafka_stream_worker_init(cycle,
                                             &ngx_http_kafka_stream_hooks);
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
     *     kmcf->thread_pool = NULL;
     */

    kmcf->replay_max = NGX_CONF_UNSET_UINT;
    kmcf->linger = NGX_CONF_UNSET_MSEC;
    kmcf->catchup = NGX_CONF_UNSET_UINT;

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

    /* a page reloaded, a viewer that reconnects: the partition is still read */
    ngx_conf_init_msec_value(kmcf->linger, 5000);

    /*
     * A key's latest frame is among the last K messages of a partition
     * that K keys share at the same rate; murmur2 puts at most 25 of
     * 1,000 cameras on one of 64 partitions, 21 of 200 on one of 16.
     */
    ngx_conf_init_uint_value(kmcf->catchup, 32);

    if (kmcf->catchup == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"kafka_stream_catchup\" must not be zero");
        return NGX_CONF_ERROR;
    }

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
    kslcf->wall_keys = NGX_CONF_UNSET_UINT;
    kslcf->sizes = NGX_CONF_UNSET_PTR;
    kslcf->quality = NGX_CONF_UNSET_UINT;
    kslcf->partitioner = NGX_CONF_UNSET_PTR;
    kslcf->always = NGX_CONF_UNSET;

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
    ngx_conf_merge_uint_value(conf->wall_keys, prev->wall_keys, 64);
    ngx_conf_merge_ptr_value(conf->sizes, prev->sizes, NULL);
    ngx_conf_merge_uint_value(conf->quality, prev->quality, 75);
    /* kafka-stream-producer's default: murmur2, Kafka's hashing of keys */
    ngx_conf_merge_ptr_value(conf->partitioner, prev->partitioner,
                             &ngx_http_kafka_stream_partitioners[0]);
    ngx_conf_merge_value(conf->always, prev->always, 0);

    if (conf->type != NGX_HTTP_KAFKA_STREAM_LIVE
        && conf->type != NGX_HTTP_KAFKA_STREAM_SNAPSHOT
        && conf->type != NGX_HTTP_KAFKA_STREAM_WALL)
    {
        return NGX_CONF_OK;
    }

    if (conf->wall_keys == 0 || conf->wall_keys > 1024) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"kafka_stream_wall_keys\" must be from 1 to "
                           "1024");
        return NGX_CONF_ERROR;
    }

    /* a wall shows the live frames of many keys: no replay, no one key */

    if (conf->type == NGX_HTTP_KAFKA_STREAM_WALL) {
        conf->replay = 0;
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

#if (NGX_THREADS)

    kmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_kafka_stream_module);

    /*
     * What blocks in librdkafka goes there: stopping a partition nobody
     * watches, a replay's lookups, the end of a replay's consumer; and
     * making a frame at a size, milliseconds of CPU.
     */

    if (kmcf->thread_pool == NULL) {
        kmcf->thread_pool = ngx_thread_pool_add(cf, NULL);
        if (kmcf->thread_pool == NULL) {
            return NGX_CONF_ERROR;
        }
    }

#else

    if (conf->replay || conf->sizes) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\" needs nginx built with threads "
                           "(--with-threads)",
                           conf->replay ? "kafka_stream_replay"
                                        : "kafka_stream_sizes");
        return NGX_CONF_ERROR;
    }

#endif

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

    if (ngx_http_kafka_stream_add_source(cf, conf) != NGX_OK
        || ngx_http_kafka_stream_add_sizes(cf, conf) != NGX_OK)
    {
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
        t->index = kmcf->topics.nelts;

        tp = ngx_array_push(&kmcf->topics);
        if (tp == NULL) {
            return NGX_ERROR;
        }

        *tp = t;
    }

    sp = kmcf->sources.elts;

    for (i = 0; i < kmcf->sources.nelts; i++) {
        src = sp[i];

        if (src->topic == t && src->partition == kslcf->partition) {
            src->max_frame_size = ngx_max(src->max_frame_size,
                                          kslcf->max_frame_size);
            src->always |= kslcf->always;
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
    src->always = kslcf->always;

    if (ngx_array_init(&src->sizes, cf->pool, 4, sizeof(ngx_uint_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

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
    ngx_uint_t                          i;
    ngx_http_kafka_stream_source_t    **sources;
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

    /* each source's sizes have their counters after all the sources' */

    sources = kmcf->sources.elts;
    kmcf->nsizes = 0;

    for (i = 0; i < kmcf->sources.nelts; i++) {
        sources[i]->first_size = kmcf->nsizes;
        kmcf->nsizes += sources[i]->sizes.nelts;
    }

    /* a slot: counters, each source's and each size's, the partitions read */

    kmcf->slot_size = sizeof(ngx_http_kafka_stream_slot_t)
                      + kmcf->sources.nelts
                        * sizeof(ngx_http_kafka_stream_counters_t)
                      + kmcf->nsizes
                        * sizeof(ngx_http_kafka_stream_size_counters_t)
                      + kmcf->topics.nelts
                        * (NGX_HTTP_KAFKA_STREAM_MAX_PARTS / 8);

    size = 8 * ngx_pagesize
           + 2 * ngx_align(NGX_HTTP_KAFKA_STREAM_MAX_SLOTS * kmcf->slot_size
                           + kmcf->sources.nelts
                             * sizeof(ngx_http_kafka_stream_keys_t),
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

    if (kslcf->type != NGX_HTTP_KAFKA_STREAM_SNAPSHOT
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


/* where the producers put a key: a partitioner of librdkafka's, or all */

static char *
ngx_http_kafka_stream_partitioner(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_kafka_stream_loc_conf_t *kslcf = conf;

    ngx_str_t                            *value;
    ngx_http_kafka_stream_partitioner_t  *p;

    if (kslcf->partitioner != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (p = ngx_http_kafka_stream_partitioners; p->name.len; p++) {
        if (p->name.len == value[1].len
            && ngx_strncmp(p->name.data, value[1].data, value[1].len) == 0)
        {
            kslcf->partitioner = p;
            return NGX_CONF_OK;
        }
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"%V\": expected murmur2, "
                       "murmur2_random, consistent, consistent_random, "
                       "fnv1a, fnv1a_random, random or all",
                       &value[1], &cmd->name);

    return NGX_CONF_ERROR;
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


/*
 * kafka_stream_sizes off | WIDTH...: the widths a location makes, kept
 * ascending; each between 8 and the largest picture the scaler takes.
 */

static char *
ngx_http_kafka_stream_sizes(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_kafka_stream_loc_conf_t *kslcf = conf;

    ngx_int_t    n;
    ngx_str_t   *value;
    ngx_uint_t   i, j, *w;

    if (kslcf->sizes != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        kslcf->sizes = NULL;
        return NGX_CONF_OK;
    }

    if (cf->args->nelts - 1 > NGX_HTTP_KAFKA_STREAM_MAX_SIZES) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": at most %d sizes", &cmd->name,
                           NGX_HTTP_KAFKA_STREAM_MAX_SIZES);
        return NGX_CONF_ERROR;
    }

    kslcf->sizes = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                    sizeof(ngx_uint_t));
    if (kslcf->sizes == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        n = ngx_atoi(value[i].data, value[i].len);

        if (n < NGX_HTTP_KAFKA_STREAM_MIN_SIZE
            || n > NGX_HTTP_KAFKA_STREAM_SCALE_MAX_SIDE)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\" in \"%V\": expected "
                               "\"off\" or widths in pixels from %d to %d",
                               &value[i], &cmd->name,
                               NGX_HTTP_KAFKA_STREAM_MIN_SIZE,
                               NGX_HTTP_KAFKA_STREAM_SCALE_MAX_SIDE);
            return NGX_CONF_ERROR;
        }

        /* in order, each once */

        w = kslcf->sizes->elts;

        for (j = 0; j < kslcf->sizes->nelts; j++) {
            if (w[j] >= (ngx_uint_t) n) {
                break;
            }
        }

        if (j < kslcf->sizes->nelts && w[j] == (ngx_uint_t) n) {
            continue;
        }

        if (ngx_array_push(kslcf->sizes) == NULL) {
            return NGX_CONF_ERROR;
        }

        w = kslcf->sizes->elts;
        ngx_memmove(&w[j + 1], &w[j],
                    (kslcf->sizes->nelts - 1 - j) * sizeof(ngx_uint_t));
        w[j] = (ngx_uint_t) n;
    }

    return NGX_CONF_OK;
}


/* a location's sizes are its source's too, each with its counters */

static ngx_int_t
ngx_http_kafka_stream_add_sizes(ngx_conf_t *cf,
    ngx_http_kafka_stream_loc_conf_t *kslcf)
{
    ngx_uint_t                       i, j, *w, *have;
    ngx_http_kafka_stream_source_t  *src;

    if (kslcf->sizes == NULL) {
        return NGX_OK;
    }

    src = kslcf->source;
    w = kslcf->sizes->elts;

    for (i = 0; i < kslcf->sizes->nelts; i++) {
        have = src->sizes.elts;

        for (j = 0; j < src->sizes.nelts && have[j] < w[i]; j++) {
            /* void */
        }

        if (j < src->sizes.nelts && have[j] == w[i]) {
            continue;
        }

        /* ascending, as the status shows them */

        if (ngx_array_push(&src->sizes) == NULL) {
            return NGX_ERROR;
        }

        have = src->sizes.elts;
        ngx_memmove(&have[j + 1], &have[j],
                    (src->sizes.nelts - 1 - j) * sizeof(ngx_uint_t));
        have[j] = w[i];
    }

    return NGX_OK;
}


/* nginx's own bounds check would not name the directive */

static char *
ngx_http_kafka_stream_quality(ngx_conf_t *cf, void *post, void *data)
{
    ngx_uint_t  *q = data;

    if (*q < 1 || *q > 100) {
        return "must be between 1 and 100";
    }

    return NGX_CONF_OK;
}
