
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

#if (NGX_THREADS)
#include <ngx_thread_pool.h>
#endif

#include <netinet/tcp.h>

#include <librdkafka/rdkafka.h>

#include "ngx_http_kafka_stream_parse.h"


#define NGX_HTTP_KAFKA_STREAM_VERSION       "0.1.0"

#define NGX_HTTP_KAFKA_STREAM_OFF           0
#define NGX_HTTP_KAFKA_STREAM_LIVE          1
#define NGX_HTTP_KAFKA_STREAM_SNAPSHOT      2
#define NGX_HTTP_KAFKA_STREAM_STATUS        3

#define NGX_HTTP_KAFKA_STREAM_ALL           -1

#define NGX_HTTP_KAFKA_STREAM_BOUNDARY      "kafka-stream-frame"

/*
 * Frames from this size up are kept in a memfd, so that sendfile() sends
 * them from the same pages to every viewer.  Measured on loopback at 120
 * kB: 18 us of CPU a part against 23 by writev(); making the memfd costs
 * 55 us a frame, which 11 viewers pay back (a frame on the heap of more
 * than glibc's mmap threshold, 128 kB, costs as much); below 32 kB a copy
 * costs no more than referencing the pages.
 */
#if (NGX_LINUX && NGX_HAVE_SENDFILE && defined MFD_CLOEXEC)
#define NGX_HTTP_KAFKA_STREAM_IN_FILE       1
#define NGX_HTTP_KAFKA_STREAM_FILE_MIN      32768
#endif

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

/* all a replay's lookups in the thread pool together, milliseconds */
#define NGX_HTTP_KAFKA_STREAM_LOOKUP_TIME   5000
/* messages looked at first, backwards, for a key's frame at a time */
#define NGX_HTTP_KAFKA_STREAM_KEY_WINDOW    64
/* a replay this late starts its clock afresh instead of rushing, ms */
#define NGX_HTTP_KAFKA_STREAM_REPLAY_LATE   1000
#define NGX_HTTP_KAFKA_STREAM_REPLAY_REASON 256

/* glibc's default, made fixed: see ngx_http_kafka_stream_malloc_tune() */
#define NGX_HTTP_KAFKA_STREAM_MMAP_THRESHOLD (128 * 1024)


typedef struct ngx_http_kafka_stream_source_s  ngx_http_kafka_stream_source_t;
typedef struct ngx_http_kafka_stream_viewer_s  ngx_http_kafka_stream_viewer_t;
typedef struct ngx_http_kafka_stream_replay_s  ngx_http_kafka_stream_replay_t;


typedef struct {
    ngx_uint_t                      refs;
    int64_t                         offset;
    int32_t                         partition;
    ngx_msec_t                      received;
    ngx_str_t                       header;    /* the part's header lines */
    ngx_str_t                       image;
    ngx_str_t                       type;      /* "image/png" */
    int64_t                         timestamp; /* Kafka, milliseconds */
#if (NGX_HTTP_KAFKA_STREAM_IN_FILE)
    /*
     * A large frame lives in a memfd mapped at header.data: the part
     * header, the image and the default separator, one after the other.
     */
    ngx_fd_t                        fd;        /* or NGX_INVALID_FILE */
    size_t                          mapped;
#endif
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
    ngx_atomic_t                    replays;      /* consumers of replays */
    /* ngx_http_kafka_stream_counters_t  sources[nsources]; */
} ngx_http_kafka_stream_slot_t;


typedef struct {
    ngx_str_t                       name;
    rd_kafka_topic_t               *rkt;
    ngx_uint_t                      all;        /* some source wants all */
    u_char                          wanted[NGX_HTTP_KAFKA_STREAM_MAX_PARTS];
    u_char                          started[NGX_HTTP_KAFKA_STREAM_MAX_PARTS];
    u_char                          live[NGX_HTTP_KAFKA_STREAM_MAX_PARTS];
    /* offset of the last message the worker took from each, or -1 */
    int64_t                         last[NGX_HTTP_KAFKA_STREAM_MAX_PARTS];
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
    ngx_uint_t                      replay_max;
    ngx_shm_zone_t                 *shm_zone;
#if (NGX_THREADS)
    ngx_thread_pool_t              *thread_pool;
#endif
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
    ngx_flag_t                      replay;
    ngx_uint_t                      replay_max_speed;

    /* made from the boundary: "--b" CRLF, CRLF "--b" CRLF, CRLF "--b--" */
    ngx_str_t                       opening;
    ngx_str_t                       separator;
    ngx_str_t                       closing;
    /* the default boundary, which a frame's memfd holds after the image */
    ngx_flag_t                      separator_in_frame;

    ngx_uint_t                      viewers;    /* in this worker */
} ngx_http_kafka_stream_loc_conf_t;


struct ngx_http_kafka_stream_viewer_s {
    ngx_http_request_t             *request;
    ngx_http_kafka_stream_loc_conf_t  *conf;
    ngx_http_kafka_stream_group_t  *group;
    ngx_http_kafka_stream_replay_t *replay;     /* while replaying */
    ngx_queue_t                     queue;      /* in group->viewers */
    ngx_queue_t                     link;       /* in worker->viewers */

    ngx_http_kafka_stream_frame_t  *sending;    /* on the wire */
    ngx_http_kafka_stream_frame_t  *waiting;    /* next to send */
    ngx_http_kafka_stream_frame_t  *last;       /* last one sent */

    ngx_event_t                     send;       /* posted on a new frame */
    ngx_event_t                     resend;     /* idle re-send timer */

    ngx_buf_t                       bufs[3];
    ngx_chain_t                     chain[3];
#if (NGX_HTTP_KAFKA_STREAM_IN_FILE)
    ngx_file_t                      file;       /* a frame's memfd */
#endif

    /* after a replay: the live frames it already sent are not sent again */
    int64_t                         floor_offset;
    int32_t                         floor_partition;

    unsigned                        snapshot:1;
    unsigned                        failed:1;
    unsigned                        counted:1;
    unsigned                        listed:1;
    unsigned                        pending:1;  /* no response header yet */
    unsigned                        finish:1;   /* end once all is sent */
    unsigned                        floor:1;
};


/* a replay's query arguments: times in milliseconds, -1 when not given */

typedef struct {
    int64_t                         since;
    int64_t                         until;
    int64_t                         at;
    int64_t                         offset;
    ngx_int_t                       partition;
    int64_t                         speed;      /* thousandths */
    ngx_str_t                       reason;     /* why they are refused */
} ngx_http_kafka_stream_replay_args_t;


/*
 * One replay: its own consumer and read position.  It lives in a pool of
 * its own, apart from the request, because a task in the thread pool may
 * still use it after the request is gone.
 */

struct ngx_http_kafka_stream_replay_s {
    ngx_queue_t                     queue;      /* in worker->replays */
    ngx_pool_t                     *pool;
    ngx_http_kafka_stream_viewer_t *viewer;     /* NULL once it left */
    ngx_http_kafka_stream_loc_conf_t  *conf;
    ngx_http_kafka_stream_topic_t  *topic;

    rd_kafka_t                     *rk;
    rd_kafka_topic_t               *rkt;
    rd_kafka_queue_t               *messages;   /* the partition's */
    rd_kafka_queue_t               *events;     /* errors and logs */
    ngx_connection_t               *wakeup;
    ngx_fd_t                        pipe[2];

#if (NGX_THREADS)
    ngx_thread_task_t              *task;
#endif
    ngx_event_t                     pace;       /* the next frame is due */

    ngx_http_kafka_stream_frame_t  *next;       /* read, not yet due */
    ngx_http_kafka_stream_frame_t  *shown;      /* for the idle re-send */
    rd_kafka_message_t             *found;      /* a snapshot's message */

    ngx_str_t                       key;
    int32_t                         partition;
    int64_t                         offset;     /* where it starts */
    int64_t                         position;   /* last message taken */
    int64_t                         end;        /* of the log, last seen */
    int64_t                         since;
    int64_t                         until;
    int64_t                         at;
    int64_t                         speed;
    int64_t                         low;        /* the log, at the lookup */
    int64_t                         high;

    ngx_msec_t                      anchor;     /* the pacing clock: */
    int64_t                         anchor_ts;  /* this timestamp then */

    ngx_uint_t                      status;     /* the lookup's answer */
    ngx_str_t                       reason;

    unsigned                        busy:1;     /* a task is in a thread */
    unsigned                        started:1;  /* consuming */
    unsigned                        snapshot:1;
};


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
    ngx_queue_t                     replays;    /* all with a consumer */
    ngx_uint_t                      nreplays;
    ngx_uint_t                      brokers_up;
    ngx_uint_t                      exiting;    /* in exit_process */

    time_t                          log_window;
    ngx_uint_t                      log_lines;
    ngx_uint_t                      log_suppressed;
} ngx_http_kafka_stream_worker_t;


static ngx_int_t ngx_http_kafka_stream_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_kafka_stream_start(ngx_http_request_t *r,
    ngx_http_kafka_stream_loc_conf_t *kslcf);
static ngx_int_t ngx_http_kafka_stream_open(ngx_http_kafka_stream_viewer_t *v);
static ngx_int_t ngx_http_kafka_stream_refuse(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *reason);
static ngx_int_t ngx_http_kafka_stream_key(ngx_http_request_t *r,
    ngx_http_kafka_stream_loc_conf_t *kslcf, ngx_str_t *key);
static ngx_http_kafka_stream_viewer_t *ngx_http_kafka_stream_viewer(
    ngx_http_request_t *r, ngx_http_kafka_stream_loc_conf_t *kslcf);
static void ngx_http_kafka_stream_join(ngx_http_kafka_stream_viewer_t *v,
    ngx_http_kafka_stream_group_t *g);
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
static ngx_table_elt_t *ngx_http_kafka_stream_header(ngx_http_request_t *r,
    char *key);
static ngx_int_t ngx_http_kafka_stream_no_cache(ngx_http_request_t *r);
static ngx_int_t ngx_http_kafka_stream_respond(ngx_http_request_t *r,
    ngx_buf_t *b);
static void ngx_http_kafka_stream_frame_release(
    ngx_http_kafka_stream_frame_t *f);
static void ngx_http_kafka_stream_frame_drop(
    ngx_http_kafka_stream_frame_t **f);
static void ngx_http_kafka_stream_frame_cleanup(void *data);
#if (NGX_HTTP_KAFKA_STREAM_IN_FILE)
static ngx_http_kafka_stream_frame_t *ngx_http_kafka_stream_frame_file(
    rd_kafka_message_t *msg, u_char *header, size_t len);
static void ngx_http_kafka_stream_frame_unmap(u_char *p, size_t size,
    ngx_fd_t fd);
#endif

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
static ngx_connection_t *ngx_http_kafka_stream_pipe(ngx_fd_t *fds,
    ngx_event_handler_pt handler, void *data, ngx_uint_t level);
static void ngx_http_kafka_stream_pipe_read(ngx_connection_t *c);
static void ngx_http_kafka_stream_pipe_close(ngx_connection_t **c,
    ngx_fd_t *fds);
static void ngx_http_kafka_stream_skipped(rd_kafka_message_t *msg,
    size_t max_frame_size);
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
static void ngx_http_kafka_stream_replay_lookup(void *data, ngx_log_t *log);
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
static void ngx_http_kafka_stream_replay_destroy(void *data, ngx_log_t *log);
static void ngx_http_kafka_stream_replay_destroyed(ngx_event_t *ev);
static void ngx_http_kafka_stream_replay_free(
    ngx_http_kafka_stream_replay_t *rp);
#endif


static ngx_int_t ngx_http_kafka_stream_init_process(ngx_cycle_t *cycle);
static void ngx_http_kafka_stream_malloc_tune(ngx_log_t *log);
static void ngx_http_kafka_stream_exit_process(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_kafka_stream_consumer(ngx_cycle_t *cycle,
    ngx_http_kafka_stream_worker_t *w);
static void ngx_http_kafka_stream_free_frames(
    ngx_http_kafka_stream_main_conf_t *kmcf);
static rd_kafka_conf_t *ngx_http_kafka_stream_rdconf(ngx_log_t *log,
    ngx_http_kafka_stream_main_conf_t *kmcf, ngx_keyval_t *more);

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


static ngx_http_kafka_stream_worker_t  *ngx_http_kafka_stream_worker;

#if (NGX_HTTP_KAFKA_STREAM_IN_FILE)
/* what follows the image in a frame's memfd: kafka_stream_boundary's default */
static ngx_str_t  ngx_http_kafka_stream_trailer =
    ngx_string(CRLF "--" NGX_HTTP_KAFKA_STREAM_BOUNDARY CRLF);
#endif

/* tells configuration generations apart in the shared zone's name */
static ngx_uint_t  ngx_http_kafka_stream_generation;


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



static ngx_int_t
ngx_http_kafka_stream_start(ngx_http_request_t *r,
    ngx_http_kafka_stream_loc_conf_t *kslcf)
{
    ngx_int_t                        rc;
    ngx_str_t                        key;
    ngx_http_kafka_stream_group_t   *g;
    ngx_http_kafka_stream_source_t  *src;
    ngx_http_kafka_stream_viewer_t  *v;

    src = kslcf->source;

    rc = ngx_http_kafka_stream_key(r, kslcf, &key);
    if (rc != NGX_OK) {
        return rc;
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

    v = ngx_http_kafka_stream_viewer(r, kslcf);
    if (v == NULL) {
        ngx_http_kafka_stream_group_release(src, g);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_kafka_stream_join(v, g);

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

    rc = ngx_http_kafka_stream_open(v);

    if (rc != NGX_OK || r->header_only) {
        return rc;
    }

    r->main->count++;

    if (g->latest) {
        ngx_http_kafka_stream_offer(v, g->latest);

    } else if (kslcf->idle_resend) {
        ngx_add_timer(&v->resend, kslcf->idle_resend);
    }

    return NGX_DONE;
}


/* the key the request asks for (kafka_stream_key), empty for all */

static ngx_int_t
ngx_http_kafka_stream_key(ngx_http_request_t *r,
    ngx_http_kafka_stream_loc_conf_t *kslcf, ngx_str_t *key)
{
    ngx_str_null(key);

    if (kslcf->key) {
        if (ngx_http_complex_value(r, kslcf->key, key) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (key->len > NGX_HTTP_KAFKA_STREAM_MAX_KEY) {
            return NGX_HTTP_REQUEST_URI_TOO_LARGE;
        }
    }

    return NGX_OK;
}


/*
 * The request's viewer, listed in the worker; from then on the request
 * pool's cleanup undoes whatever is done for it.
 */

static ngx_http_kafka_stream_viewer_t *
ngx_http_kafka_stream_viewer(ngx_http_request_t *r,
    ngx_http_kafka_stream_loc_conf_t *kslcf)
{
    ngx_pool_cleanup_t              *cln;
    ngx_http_kafka_stream_viewer_t  *v;

    v = ngx_pcalloc(r->pool, sizeof(ngx_http_kafka_stream_viewer_t));
    if (v == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    v->request = r;
    v->conf = kslcf;

    ngx_http_set_ctx(r, v, ngx_http_kafka_stream_module);

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

#if (NGX_HTTP_KAFKA_STREAM_IN_FILE)
    /* each part sets the fd of its frame's memfd */
    ngx_str_set(&v->file.name, "kafka stream frame");
    v->file.log = r->connection->log;
#endif

    return v;
}


/* a viewer starts receiving a group's frames */

static void
ngx_http_kafka_stream_join(ngx_http_kafka_stream_viewer_t *v,
    ngx_http_kafka_stream_group_t *g)
{
    /* a keyed group with its first viewer is no longer an idle one */

    if (g->nviewers++ == 0 && !g->all) {
        v->conf->source->idle_groups--;
    }

    ngx_queue_insert_tail(&g->viewers, &v->queue);
    v->group = g;
}


/*
 * The response header and the opening boundary of a stream: NGX_OK when
 * frames may follow, else what the request is to be finished with.
 */

static ngx_int_t
ngx_http_kafka_stream_open(ngx_http_kafka_stream_viewer_t *v)
{
    int                                lowat;
    ngx_int_t                          rc;
    ngx_table_elt_t                   *h;
    ngx_http_request_t                *r;
    ngx_http_kafka_stream_loc_conf_t  *kslcf;

    r = v->request;
    kslcf = v->conf;

    v->pending = 0;

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

    if (ngx_http_kafka_stream_no_cache(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* a proxy in front (nginx itself, for one) must not buffer the stream */

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "X-Accel-Buffering");
    ngx_str_set(&h->value, "no");

    r->allow_ranges = 0;

#if (NGX_THREADS)

    if (v->replay
        && ngx_http_kafka_stream_replay_headers(r, v->replay) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

#endif

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

    rc = ngx_http_output_filter(r, &v->chain[0]);

    return (rc == NGX_ERROR) ? NGX_ERROR : NGX_OK;
}


/* a refused request: the status and the reason in one line of text */

static ngx_int_t
ngx_http_kafka_stream_refuse(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *reason)
{
    ngx_buf_t  *b;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "kafka stream: %ui: %V", status, reason);

    b = ngx_create_temp_buf(r->pool, reason->len + 1);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, reason->data, reason->len);
    *b->last++ = LF;

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "text/plain");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    if (ngx_http_kafka_stream_no_cache(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_kafka_stream_respond(r, b);
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

    ngx_http_kafka_stream_frame_drop(&v->sending);
    ngx_http_kafka_stream_frame_drop(&v->waiting);

#if (NGX_THREADS)

    if (v->replay) {
        ngx_http_kafka_stream_replay_release(v->replay);
        v->replay = NULL;
    }

#endif
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
            && (oldest == NULL
                || (ngx_msec_int_t) (g->updated - oldest->updated) < 0))
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
    ngx_http_kafka_stream_frame_t   *f;
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

    if (v->finish) {
        return;
    }

    /* nothing new for a while: send the latest frame again */

#if (NGX_THREADS)
    f = v->replay ? v->replay->shown : v->group->latest;
#else
    f = v->group->latest;
#endif

    /*
     * Just after a replay the live consumer may not yet have what the
     * replay sent last: its latest frame would step back in time.
     */

    if (f && v->floor && f->partition == v->floor_partition
        && f->offset < v->floor_offset)
    {
        f = NULL;
    }

    if (f) {
        if (v->sending == NULL && v->waiting == NULL) {
            ngx_http_kafka_stream_offer(v, f);
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
        return;
    }

    /* a replay that ended: the closing boundary once all is out */

    if (v->finish && v->sending == NULL && v->waiting == NULL
        && ngx_http_kafka_stream_flushed(v->request))
    {
        ngx_http_kafka_stream_close(v);
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

    if (v->conf->idle_resend && !v->finish) {
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

#if (NGX_HTTP_KAFKA_STREAM_IN_FILE)

    if (f->fd != NGX_INVALID_FILE && v->conf->separator_in_frame) {

        /*
         * The whole part, separator included, as one buffer that is both
         * in memory and in the memfd: sendfile() sends it where the
         * connection allows (sendfile on, no SSL), the memory otherwise.
         * One buffer makes one sendfile() a part; a header in a buffer of
         * its own would cost a writev() and a small segment more.
         */

        v->file.fd = f->fd;

        b->pos = f->header.data;
        b->last = f->header.data + f->mapped;
        b->memory = 1;

        b->in_file = 1;
        b->file = &v->file;
        b->file_pos = 0;
        b->file_last = b->last - b->pos;
        b->flush = 1;

        v->chain[0].buf = b;
        v->chain[0].next = NULL;

        return ngx_http_output_filter(v->request, v->chain);
    }

#endif

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
    ngx_str_t            reason;
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

    /* a replay still looking for its start: no response header yet */

    if (v->pending) {
        ngx_str_set(&reason, "the server is shutting down");
        ngx_http_finalize_request(r,
                        ngx_http_kafka_stream_refuse(r,
                                        NGX_HTTP_SERVICE_UNAVAILABLE, &reason));
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
    ngx_buf_t           *b;
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

    h = ngx_http_kafka_stream_header(r, "X-Timestamp");
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->value.len = ngx_sprintf(h->value.data, "%L.%03L", f->timestamp / 1000,
                               f->timestamp % 1000)
                   - h->value.data;

    if (ngx_http_kafka_stream_no_cache(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = f->image.data;
    b->last = f->image.data + f->image.len;
    b->memory = 1;

    return ngx_http_kafka_stream_respond(r, b);
}


/* a response header, with room for a number as its value */

static ngx_table_elt_t *
ngx_http_kafka_stream_header(ngx_http_request_t *r, char *key)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NULL;
    }

    h->value.data = ngx_pnalloc(r->pool, NGX_INT64_LEN + 4);
    if (h->value.data == NULL) {
        return NULL;
    }

    h->hash = 1;
    h->key.len = ngx_strlen(key);
    h->key.data = (u_char *) key;
    h->value.len = 0;

    return h;
}


/* "Cache-Control: no-cache, no-store": every answer is of the moment */

static ngx_int_t
ngx_http_kafka_stream_no_cache(ngx_http_request_t *r)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-cache, no-store");

    return NGX_OK;
}


/* the header and a body of one buffer */

static ngx_int_t
ngx_http_kafka_stream_respond(ngx_http_request_t *r, ngx_buf_t *b)
{
    ngx_int_t    rc;
    ngx_chain_t  out;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static void
ngx_http_kafka_stream_frame_release(ngx_http_kafka_stream_frame_t *f)
{
    if (--f->refs) {
        return;
    }

#if (NGX_HTTP_KAFKA_STREAM_IN_FILE)
    if (f->fd != NGX_INVALID_FILE) {
        ngx_http_kafka_stream_frame_unmap(f->header.data, f->mapped, f->fd);
    }
#endif

    ngx_free(f);
}


/* releases a frame one holds, if any */

static void
ngx_http_kafka_stream_frame_drop(ngx_http_kafka_stream_frame_t **f)
{
    if (*f) {
        ngx_http_kafka_stream_frame_release(*f);
        *f = NULL;
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
    ngx_str_t                           format;
    ngx_buf_t                          *b;
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

    return ngx_http_kafka_stream_respond(r, b);
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
    ngx_uint_t                          i, k, up, replays;
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

    size = 640;

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
    replays = 0;

    for (i = 0; i < NGX_HTTP_KAFKA_STREAM_MAX_SLOTS; i++) {
        slot = ngx_http_kafka_stream_slot(kmcf, shpool->data, i);

        if (slot->pid) {
            up = ngx_max(up, slot->brokers_up);
            replays += slot->replays;
        }
    }

    p = ngx_sprintf(p, "# HELP kafka_stream_replays replay consumers "
                    "(all workers)\n"
                    "# TYPE kafka_stream_replays gauge\n"
                    "kafka_stream_replays %ui\n"
                    "# HELP kafka_stream_brokers_up brokers connected "
                    "(the best worker)\n"
                    "# TYPE kafka_stream_brokers_up gauge\n"
                    "kafka_stream_brokers_up %ui\n", replays, up);

    b->last = p;

    return b;
}


/* the Kafka side, in the worker */

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

static ngx_connection_t *
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

static void
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

static void
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
                && msg->partition < NGX_HTTP_KAFKA_STREAM_MAX_PARTS)
            {
                /* where replays become live viewers */
                t->last[msg->partition] = msg->offset;

                if (!t->live[msg->partition]) {
                    t->live[msg->partition] = 1;
                    catchup = 1;
                }
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
            ngx_http_kafka_stream_skipped(msg, src->max_frame_size);
            continue;
        }

        if (f == NULL) {
            type = ngx_http_kafka_stream_sniff(msg->payload, msg->len);

            if (type == NGX_HTTP_KAFKA_STREAM_NOT_IMAGE) {
                c->skipped++;
                ngx_http_kafka_stream_skipped(msg, src->max_frame_size);

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
    ngx_queue_t                     *q;
    ngx_http_kafka_stream_viewer_t  *v;

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
        v = ngx_queue_data(q, ngx_http_kafka_stream_viewer_t, queue);

        /* a viewer that came from a replay has had this frame already */

        if (v->floor && f->partition == v->floor_partition) {
            if (f->offset <= v->floor_offset) {
                continue;
            }

            v->floor = 0;
        }

        ngx_http_kafka_stream_offer(v, f);
    }
}


/* why a message is not shown: too large, or not a complete image */

static void
ngx_http_kafka_stream_skipped(rd_kafka_message_t *msg, size_t max_frame_size)
{
    if (!ngx_http_kafka_stream_log_allowed()) {
        return;
    }

    if (msg->len > max_frame_size) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "kafka stream: message of %uz bytes at \"%s\" [%D] "
                      "offset %O is larger than kafka_stream_max_frame_size "
                      "%uz, skipped", msg->len, rd_kafka_topic_name(msg->rkt),
                      msg->partition, (off_t) msg->offset, max_frame_size);
        return;
    }

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "kafka stream: message of %uz bytes at \"%s\" [%D] "
                  "offset %O is not a complete PNG or JPEG image, skipped",
                  msg->len, rd_kafka_topic_name(msg->rkt), msg->partition,
                  (off_t) msg->offset);
}


/* one copy of the message, with its part header made once for all */

static ngx_http_kafka_stream_frame_t *
ngx_http_kafka_stream_frame(rd_kafka_message_t *msg, int type)
{
    u_char                         *p;
    size_t                          len;
    int64_t                         ts;
    ngx_time_t                     *tp;
    rd_kafka_timestamp_type_t       tstype;
    ngx_http_kafka_stream_frame_t  *f;
    u_char                          part[NGX_HTTP_KAFKA_STREAM_PART_HEADER_MAX];

    ts = rd_kafka_message_timestamp(msg, &tstype);

    if (ts < 0) {
        tp = ngx_timeofday();
        ts = (int64_t) tp->sec * 1000 + tp->msec;
    }

    len = ngx_http_kafka_stream_part_header(part, type, msg->len, ts);

    f = NULL;

#if (NGX_HTTP_KAFKA_STREAM_IN_FILE)
    if (msg->len >= NGX_HTTP_KAFKA_STREAM_FILE_MIN) {
        f = ngx_http_kafka_stream_frame_file(msg, part, len);
    }
#endif

    if (f == NULL) {
        f = ngx_alloc(sizeof(ngx_http_kafka_stream_frame_t) + len + msg->len,
                      ngx_cycle->log);
        if (f == NULL) {
            return NULL;
        }

        p = (u_char *) f + sizeof(ngx_http_kafka_stream_frame_t);

        f->header.data = p;
        p = ngx_cpymem(p, part, len);
        ngx_memcpy(p, msg->payload, msg->len);

#if (NGX_HTTP_KAFKA_STREAM_IN_FILE)
        f->fd = NGX_INVALID_FILE;
#endif
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

    f->header.len = len;
    f->image.data = f->header.data + len;
    f->image.len = msg->len;

    return f;
}


#if (NGX_HTTP_KAFKA_STREAM_IN_FILE)

/*
 * A frame in a memfd: the part header, the image and the default
 * separator, written, then mapped for the viewers that are sent from
 * memory.  Written rather than copied into the mapping, the pages take
 * no faults, and a viewer served by sendfile() never touches them.
 * NULL if the worker is out of descriptors or memory: the frame is then
 * kept on the heap as a small one is, and viewers get it all the same.
 */

static ngx_http_kafka_stream_frame_t *
ngx_http_kafka_stream_frame_file(rd_kafka_message_t *msg, u_char *header,
    size_t len)
{
    u_char                         *p;
    size_t                          size;
    ssize_t                         n;
    ngx_fd_t                        fd;
    ngx_err_t                       err;
    const char                     *failed;
    struct iovec                    iov[3];
    ngx_http_kafka_stream_frame_t  *f;

    size = len + msg->len + ngx_http_kafka_stream_trailer.len;

    fd = memfd_create("kafka-stream-frame", MFD_CLOEXEC);

    if (fd == NGX_INVALID_FILE) {
        err = ngx_errno;
        failed = "memfd_create()";
        goto failed;
    }

    iov[0].iov_base = header;
    iov[0].iov_len = len;
    iov[1].iov_base = msg->payload;
    iov[1].iov_len = msg->len;
    iov[2].iov_base = ngx_http_kafka_stream_trailer.data;
    iov[2].iov_len = ngx_http_kafka_stream_trailer.len;

    n = writev(fd, iov, 3);

    if (n != (ssize_t) size) {
        err = (n == -1) ? ngx_errno : 0;
        failed = "writev()";
        goto close;
    }

    p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);

    if (p == MAP_FAILED) {
        err = ngx_errno;
        failed = "mmap()";
        goto close;
    }

    f = ngx_alloc(sizeof(ngx_http_kafka_stream_frame_t), ngx_cycle->log);
    if (f == NULL) {
        ngx_http_kafka_stream_frame_unmap(p, size, fd);
        return NULL;
    }

    f->fd = fd;
    f->mapped = size;
    f->header.data = p;

    return f;

close:

    (void) close(fd);

failed:

    if (ngx_http_kafka_stream_log_allowed()) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, err,
                      "kafka stream: %s of a frame's memfd failed, "
                      "the frame is copied to each viewer", failed);
    }

    return NULL;
}


static void
ngx_http_kafka_stream_frame_unmap(u_char *p, size_t size, ngx_fd_t fd)
{
    if (munmap(p, size) == -1) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, ngx_errno,
                      "kafka stream: munmap() of a frame failed");
    }

    if (close(fd) == -1) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, ngx_errno,
                      "kafka stream: close() of a frame's memfd failed");
    }
}

#endif


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


/*
 * In a thread of the pool: where the replay starts, or the snapshot's
 * message.  Only the replay's own fields are used here; the event loop
 * leaves them alone while "busy" is set.
 */

static void
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


/* in a thread (or in exit_process): rd_kafka_destroy() joins threads */

static void
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

#endif /* NGX_THREADS */


/* worker process */

static ngx_int_t
ngx_http_kafka_stream_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                          i, p;
    ngx_slab_pool_t                    *shpool;
    ngx_http_kafka_stream_topic_t     **topics;
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
    w->slot = slot;
    w->pipe[0] = -1;
    w->pipe[1] = -1;
    ngx_queue_init(&w->viewers);
    ngx_queue_init(&w->replays);

    topics = kmcf->topics.elts;

    for (i = 0; i < kmcf->topics.nelts; i++) {
        for (p = 0; p < NGX_HTTP_KAFKA_STREAM_MAX_PARTS; p++) {
            topics[i]->last[p] = -1;
        }
    }

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
    ngx_uint_t                         i, p;
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


/* the module's defaults, then "more" ones, then kafka_stream_option */

static rd_kafka_conf_t *
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


static void
ngx_http_kafka_stream_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                       i;
    ngx_queue_t                     *q;
    ngx_http_kafka_stream_topic_t  **topics;
    ngx_http_kafka_stream_worker_t  *w;
    ngx_http_kafka_stream_viewer_t  *v;
#if (NGX_THREADS)
    ngx_http_kafka_stream_replay_t  *rp;
#endif

    w = ngx_http_kafka_stream_worker;

    if (w == NULL) {
        return;
    }

    /* the thread pool has stopped (its exit_process ran first) */

    w->exiting = 1;

    /* on a fast shutdown the viewers are still here */

    while (!ngx_queue_empty(&w->viewers)) {
        q = ngx_queue_head(&w->viewers);
        v = ngx_queue_data(q, ngx_http_kafka_stream_viewer_t, link);

        ngx_queue_remove(q);
        v->listed = 0;

        ngx_http_finalize_request(v->request, NGX_ERROR);
    }

#if (NGX_THREADS)

    /*
     * Replays whose consumers the thread pool did not destroy, or whose
     * tasks finished after the event loop's last turn.  Every task has
     * ended: the pool's threads are joined.
     */

    while (!ngx_queue_empty(&w->replays)) {
        q = ngx_queue_head(&w->replays);
        rp = ngx_queue_data(q, ngx_http_kafka_stream_replay_t, queue);

        ngx_http_kafka_stream_replay_close(rp);

        if (rp->rk) {
            ngx_http_kafka_stream_replay_destroy(rp, cycle->log);
        }

        ngx_http_kafka_stream_replay_free(rp);
    }

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
