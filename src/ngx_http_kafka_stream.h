
/*
 * ngx_http_kafka_stream_module: what its files share.  The types and
 * constants that more than one file needs, and the functions each file
 * offers the others, grouped by the file that defines them, from the
 * bottom layer up (the layers: the top of ngx_http_kafka_stream_module.c).
 * Where a lower layer calls a higher one, it calls a hook the higher one
 * set: ngx_http_kafka_stream_hooks_t in the worker, replay_* in a viewer.
 */


#ifndef _NGX_HTTP_KAFKA_STREAM_H_INCLUDED_
#define _NGX_HTTP_KAFKA_STREAM_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#if (NGX_THREADS)
#include <ngx_thread_pool.h>
#endif

#include <librdkafka/rdkafka.h>

#include "ngx_http_kafka_stream_parse.h"
#include "ngx_http_kafka_stream_scale.h"


#define NGX_HTTP_KAFKA_STREAM_VERSION       "0.1.0"

#define NGX_HTTP_KAFKA_STREAM_OFF           0
#define NGX_HTTP_KAFKA_STREAM_LIVE          1
#define NGX_HTTP_KAFKA_STREAM_SNAPSHOT      2
#define NGX_HTTP_KAFKA_STREAM_STATUS        3
#define NGX_HTTP_KAFKA_STREAM_WALL          4

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

/* longer keys are not cached per key: only unfiltered viewers see them */
#define NGX_HTTP_KAFKA_STREAM_MAX_KEY       4096

#define NGX_HTTP_KAFKA_STREAM_MAX_SLOTS     256
#define NGX_HTTP_KAFKA_STREAM_MAX_PARTS     1024

#define NGX_HTTP_KAFKA_STREAM_TICK          100
#define NGX_HTTP_KAFKA_STREAM_SNAPSHOT_WAIT 3000
/* how long a catch-up may hold its frames back from the viewers */
#define NGX_HTTP_KAFKA_STREAM_CATCHUP_WAIT  500

/* kafka_stream_sizes: how many a location lists, the narrowest */
#define NGX_HTTP_KAFKA_STREAM_MAX_SIZES     16
#define NGX_HTTP_KAFKA_STREAM_MIN_SIZE      8

#define NGX_HTTP_KAFKA_STREAM_REPLAY_REASON 256

/* a partition as a worker reads it (src/..._partitions.c) */
#define NGX_HTTP_KAFKA_STREAM_COLD          0
#define NGX_HTTP_KAFKA_STREAM_HOT           1
#define NGX_HTTP_KAFKA_STREAM_LINGER        2
#define NGX_HTTP_KAFKA_STREAM_STOPPING      3


typedef struct ngx_http_kafka_stream_source_s  ngx_http_kafka_stream_source_t;
typedef struct ngx_http_kafka_stream_viewer_s  ngx_http_kafka_stream_viewer_t;
typedef struct ngx_http_kafka_stream_replay_s  ngx_http_kafka_stream_replay_t;
typedef struct ngx_http_kafka_stream_worker_s  ngx_http_kafka_stream_worker_t;
typedef struct ngx_http_kafka_stream_rendition_s
    ngx_http_kafka_stream_rendition_t;


typedef struct {
    ngx_uint_t                      refs;
    int64_t                         offset;
    int32_t                         partition;
    ngx_msec_t                      received;
    ngx_str_t                       header;    /* the part's header lines */
    ngx_str_t                       image;
    ngx_str_t                       type;      /* "image/png" */
    int                             kind;      /* ..._PNG or ..._JPEG */
    int                             width;     /* from the image's header */
    int                             height;    /*   once asked; -1: not yet */
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


/*
 * A viewer's ?fps= (src/..._rate.c): frames spaced by their Kafka
 * timestamps; the newest too early is held, and let through by the timer
 * if nothing newer comes in time.
 */

typedef void (*ngx_http_kafka_stream_rate_pt)(void *data,
    ngx_http_kafka_stream_frame_t *f);

typedef struct {
    ngx_msec_t                      interval;  /* Kafka time; 0: no limit */
    ngx_msec_t                      hold;      /* a held waits, wall time */
    int64_t                         last;      /* let through, or -1 */
    ngx_http_kafka_stream_frame_t  *held;      /* too early, the newest */
    ngx_msec_t                      held_at;
    ngx_event_t                     timer;
    ngx_http_kafka_stream_rate_pt   pass;      /* a held frame goes */
    void                           *data;
} ngx_http_kafka_stream_rate_t;


/* viewers that asked for one key (or for all frames: key.len == 0) */

typedef struct {
    ngx_queue_t                     queue;     /* in source->groups */
    ngx_queue_t                     viewers;   /* of the source's size */
    ngx_queue_t                     renditions;  /* its other sizes */
    ngx_queue_t                     walls;     /* the walls' cameras of it */
    ngx_uint_t                      nviewers;  /* of every size, cameras */
    ngx_http_kafka_stream_source_t *source;
    ngx_str_t                       key;
    unsigned                        all:1;
    /* a catch-up changed "latest": its viewers get it after the drain */
    unsigned                        caught:1;
    /* the key is in the source's list in the shared zone */
    unsigned                        listed:1;
    /* a camera of the walls of every key (src/..._wall.c) */
    unsigned                        walled:1;
    ngx_http_kafka_stream_frame_t  *latest;
    ngx_msec_t                      updated;
} ngx_http_kafka_stream_group_t;


/* counters, one set per source in every worker's slot of the shared zone */

typedef struct {
    ngx_atomic_t                    viewers;
    ngx_atomic_t                    walls;
    ngx_atomic_t                    frames_in;
    ngx_atomic_t                    bytes_in;
    ngx_atomic_t                    parts_sent;
    ngx_atomic_t                    drops;
    ngx_atomic_t                    skipped;
    ngx_atomic_t                    last_offset;
    ngx_atomic_t                    latest_msec;  /* ngx_current_msec */
} ngx_http_kafka_stream_counters_t;


/* and one set per size of a source (kafka_stream_sizes), after those */

typedef struct {
    ngx_atomic_t                    viewers;
    ngx_atomic_t                    made;       /* frames made at the size */
    ngx_atomic_t                    passed;     /* no larger: sent as is */
    ngx_atomic_t                    skipped;    /* a newer one came first */
    ngx_atomic_t                    failed;     /* not decoded, or no room */
    ngx_atomic_t                    cpu_usec;   /* in the thread pool */
    ngx_atomic_t                    bytes_made;
} ngx_http_kafka_stream_size_counters_t;


typedef struct {
    ngx_atomic_t                    pid;
    ngx_atomic_t                    brokers_up;
    ngx_atomic_t                    partitions;   /* being consumed */
    ngx_atomic_t                    started;
    ngx_atomic_t                    replays;      /* consumers of replays */
    ngx_atomic_t                    renditions;   /* sizes being made */
    ngx_atomic_t                    making;       /* their tasks running */
    ngx_atomic_t                    bytes_in;     /* read from Kafka */
    /* ngx_http_kafka_stream_counters_t  sources[nsources]; */
    /* ngx_http_kafka_stream_size_counters_t  sizes[nsizes]; */
    /* u_char  consuming[ntopics][NGX_HTTP_KAFKA_STREAM_MAX_PARTS / 8]; */
} ngx_http_kafka_stream_slot_t;


/* where a producer puts a key: librdkafka's partitioners (rdkafka.h) */

typedef int32_t (*ngx_http_kafka_stream_partitioner_pt)(
    const rd_kafka_topic_t *rkt, const void *key, size_t keylen,
    int32_t partition_cnt, void *rkt_opaque, void *msg_opaque);

typedef struct {
    ngx_str_t                       name;
    /* NULL: a key may be anywhere, every partition is read */
    ngx_http_kafka_stream_partitioner_pt  place;
} ngx_http_kafka_stream_partitioner_t;


/* a partition of a topic, as this worker reads it */

typedef struct {
    int64_t                         last;      /* offset last taken, or -1 */
    ngx_msec_t                      idle;      /* its last need went then */
    ngx_msec_t                      started;   /* its catch-up began then */
    ngx_uint_t                      needs;     /* needs placed on it */
    unsigned                        state:2;   /* ..._COLD, _HOT ... */
    unsigned                        catchup:1; /* not yet at the log's end */
    unsigned                        taken:1;   /* messages in this drain */
    unsigned                        again:1;   /* needed while it stops */
} ngx_http_kafka_stream_partition_t;


typedef struct {
    ngx_str_t                       name;
    rd_kafka_topic_t               *rkt;
    ngx_uint_t                      index;      /* in the configuration */

    /* worker state (src/..._partitions.c) */
    ngx_uint_t                      count;      /* partitions; 0: unknown */
    ngx_uint_t                      seen;       /* in these statistics */
    ngx_uint_t                      all;        /* needs of all partitions */
    ngx_queue_t                     keyed;      /* needs placed by a key */
    ngx_http_kafka_stream_partition_t  *parts;  /* MAX_PARTS of them */
    unsigned                        gone:1;     /* deleted, not yet back */
} ngx_http_kafka_stream_topic_t;


/*
 * The made hook: a rendition's new frame for the layer above, or NULL
 * when the frame it was making could not be made.  It must not end a
 * viewer there and then (offer() does not).
 */

typedef void (*ngx_http_kafka_stream_made_pt)(
    ngx_http_kafka_stream_rendition_t *rd, ngx_http_kafka_stream_frame_t *f);


/* a partition catching up in this drain (src/..._consumer.c) */

typedef struct {
    ngx_http_kafka_stream_topic_t  *topic;
    int32_t                         partition;
} ngx_http_kafka_stream_catching_t;


/*
 * What a viewer needs read: a partition, where a partitioner puts a key,
 * or every partition of a topic (src/..._partitions.c).  A viewer of
 * several keys holds one for each.
 */

typedef struct {
    ngx_queue_t                     queue;     /* in topic->keyed */
    ngx_http_kafka_stream_topic_t  *topic;
    ngx_int_t                       partition; /* or ..._ALL */
    ngx_str_t                       key;
    ngx_http_kafka_stream_partitioner_pt  place;
    ngx_int_t                       placed;    /* counted there, or -1 */
    unsigned                        active:1;
} ngx_http_kafka_stream_need_t;


struct ngx_http_kafka_stream_source_s {
    ngx_uint_t                      index;
    ngx_http_kafka_stream_topic_t  *topic;
    ngx_int_t                       partition;  /* or ..._ALL */
    size_t                          max_frame_size;
    ngx_array_t                     sizes;      /* of ngx_uint_t, any order */
    ngx_uint_t                      first_size; /* its counters' index */
    ngx_flag_t                      always;     /* read from start to exit */

    /* worker state */
    ngx_queue_t                     groups;
    ngx_http_kafka_stream_group_t  *all;
    ngx_uint_t                      idle_groups;
    ngx_queue_t                     walls;      /* of every key */
    ngx_http_kafka_stream_counters_t  *counters;
    ngx_http_kafka_stream_size_counters_t  *size_counters;
    ngx_http_kafka_stream_need_t    always_need;
};


/*
 * One size of a group's frames (src/..._rendition.c), made in the thread
 * pool while someone watches it, shared by its viewers.  It lives in a
 * pool of its own, apart from the group and the requests, because the
 * task in a thread may outlast them.
 */

struct ngx_http_kafka_stream_rendition_s {
    ngx_queue_t                     queue;      /* in group->renditions */
    ngx_queue_t                     link;       /* in worker->renditions */
    ngx_pool_t                     *pool;
    ngx_http_kafka_stream_source_t *source;
    ngx_http_kafka_stream_group_t  *group;      /* NULL: a replay's own */
    ngx_uint_t                      width;
    ngx_uint_t                      quality;
    ngx_http_kafka_stream_size_counters_t  *counters;

    ngx_queue_t                     viewers;
    ngx_uint_t                      nviewers;  /* viewers and cameras */
    ngx_queue_t                     walls;      /* the walls' cameras of it */
    ngx_http_kafka_stream_made_pt   made;       /* set by the layer above */

    ngx_http_kafka_stream_frame_t  *latest;     /* made, or passed on */
    ngx_http_kafka_stream_frame_t  *making;     /* the task's source */
    ngx_http_kafka_stream_frame_t  *pending;    /* the next to make */

#if (NGX_THREADS)
    ngx_thread_task_t              *task;
#endif
    /* the task's answer */
    ngx_http_kafka_stream_scale_t   scale;
    int                             rc;
    uint64_t                        cpu;        /* microseconds */

    unsigned                        busy:1;     /* a task is in a thread */
    unsigned                        stale:1;    /* what it makes is old */
    unsigned                        retired:1;  /* no viewers any more */
};


/* a request's ?fps=, ?width=, ?height= */

typedef struct {
    ngx_msec_t                      interval;  /* 1/fps, ms; 0: every one */
    int64_t                         width;     /* 0: not asked */
    int64_t                         height;
    ngx_str_t                       reason;    /* why they are refused */
} ngx_http_kafka_stream_view_args_t;


typedef struct {
    ngx_str_t                       brokers;
    ngx_array_t                    *options;    /* of ngx_keyval_t */
    ngx_array_t                     topics;     /* of *topic_t */
    ngx_array_t                     sources;    /* of *source_t */
    size_t                          max_frame_size;
    size_t                          slot_size;
    ngx_uint_t                      nsizes;    /* of all sources */
    ngx_uint_t                      status;    /* a status location exists */
    ngx_uint_t                      replay_max;
    ngx_msec_t                      linger;
    ngx_uint_t                      catchup;
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
    ngx_uint_t                      wall_keys;  /* cameras of a wall */
    ngx_array_t                    *sizes;      /* of ngx_uint_t, ascending */
    ngx_uint_t                      quality;
    ngx_http_kafka_stream_partitioner_t  *partitioner;
    ngx_flag_t                      always;

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
    ngx_http_kafka_stream_rendition_t  *rendition;  /* of "width" */
    ngx_uint_t                      width;      /* 0: the source's size */
    int64_t                         ask_width;  /* ?width=, ?height= */
    int64_t                         ask_height;
    ngx_queue_t                     queue;      /* in its group's or its
                                                   rendition's viewers */
    ngx_queue_t                     link;       /* in worker->viewers */

    ngx_http_kafka_stream_frame_t  *sending;    /* on the wire */
    ngx_http_kafka_stream_frame_t  *waiting;    /* next to send */
    ngx_http_kafka_stream_frame_t  *last;       /* last one sent */

    ngx_http_kafka_stream_need_t    need;       /* what it reads */

    /*
     * Set with "replay" by the replay (src/..._replay.c), which sits
     * above the viewers: what a viewer asks of its replay.
     */
    ngx_int_t                     (*replay_headers)(ngx_http_request_t *r,
                                       ngx_http_kafka_stream_replay_t *rp);
    ngx_http_kafka_stream_frame_t *(*replay_shown)(
                                       ngx_http_kafka_stream_replay_t *rp);
    void                          (*replay_release)(
                                       ngx_http_kafka_stream_replay_t *rp);

    ngx_event_t                     send;       /* posted on a new frame */
    ngx_event_t                     resend;     /* idle re-send timer */
    ngx_http_kafka_stream_rate_t    rate;       /* ?fps= */

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
    unsigned                        undecided:1;  /* its size: at a frame */
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
    ngx_http_kafka_stream_rate_t    rate;       /* ?fps=, at the speed */

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
    unsigned                        ending:1;   /* ?until=, once made */
};


/*
 * The consumer's calls up a layer, to the viewers (src/..._live.c) and
 * the replays (src/..._replay.c): the module gives them at init_process.
 */

typedef struct {
    /* a new frame for a group: it becomes the latest, its viewers get it */
    void                          (*publish)(
                                      ngx_http_kafka_stream_group_t *g,
                                      ngx_http_kafka_stream_frame_t *f);
    /* a graceful shutdown (the tick noticed it): every stream ends */
    void                          (*shutdown)(
                                      ngx_http_kafka_stream_worker_t *w);
    /* the worker exits (exit_process): the viewers, the replays left */
    void                          (*exit_viewers)(
                                      ngx_http_kafka_stream_worker_t *w);
#if (NGX_THREADS)
    void                          (*exit_replays)(
                                      ngx_http_kafka_stream_worker_t *w,
                                      ngx_log_t *log);
#endif
} ngx_http_kafka_stream_hooks_t;


/* per worker process: the consumer's */

struct ngx_http_kafka_stream_worker_s {
    rd_kafka_t                     *rk;
    rd_kafka_queue_t               *queue;
    ngx_connection_t               *wakeup;     /* read end of the pipe */
    ngx_fd_t                        pipe[2];
    ngx_event_t                     tick;
    ngx_http_kafka_stream_main_conf_t  *conf;
    ngx_http_kafka_stream_slot_t   *slot;
    ngx_queue_t                     viewers;    /* all, for shutdown */
    ngx_queue_t                     walls;      /* all, for shutdown */
    ngx_queue_t                     replays;    /* all with a consumer */
    ngx_uint_t                      nreplays;
    ngx_queue_t                     renditions; /* all, retired included */
    ngx_uint_t                      nrenditions;
    ngx_uint_t                      brokers_up;
    ngx_uint_t                      exiting;    /* in exit_process */
    const ngx_http_kafka_stream_hooks_t  *hooks;  /* the layers above */

    /* the partitions it reads (src/..._partitions.c) */
    ngx_uint_t                      lingering;  /* partitions in LINGER */
    ngx_uint_t                      retry;      /* a start failed */
    ngx_array_t                     catching;   /* partitions caught up on
                                                   in this drain */
#if (NGX_THREADS)
    ngx_thread_task_t              *stop;       /* stops partitions */
    ngx_uint_t                      stopping;   /* it is in a thread */
#endif
};


/*
 * The keys of a source's frames, as any worker saw them since the start
 * (the first NGX_HTTP_KAFKA_STREAM_KEYS_LISTED, truncated): the status
 * lists them, the viewer page offers them.  In the shared zone after the
 * slots, under the zone's mutex.
 */

#define NGX_HTTP_KAFKA_STREAM_KEYS_LISTED   64
#define NGX_HTTP_KAFKA_STREAM_KEY_LISTED    256

typedef struct {
    size_t                          len;
    u_char                          data[NGX_HTTP_KAFKA_STREAM_KEY_LISTED];
} ngx_http_kafka_stream_key_t;

typedef struct {
    ngx_uint_t                      n;
    ngx_http_kafka_stream_key_t     keys[NGX_HTTP_KAFKA_STREAM_KEYS_LISTED];
} ngx_http_kafka_stream_keys_t;


/* a worker's slot in the shared zone, and its counters of a source */

static ngx_inline ngx_http_kafka_stream_slot_t *
ngx_http_kafka_stream_slot(ngx_http_kafka_stream_main_conf_t *kmcf,
    void *slots, ngx_uint_t n)
{
    return (ngx_http_kafka_stream_slot_t *)
               ((u_char *) slots + n * kmcf->slot_size);
}


static ngx_inline ngx_http_kafka_stream_counters_t *
ngx_http_kafka_stream_counters(ngx_http_kafka_stream_slot_t *slot,
    ngx_uint_t index)
{
    return (ngx_http_kafka_stream_counters_t *)
               ((u_char *) slot + sizeof(ngx_http_kafka_stream_slot_t))
           + index;
}


/* a source's size counters, after the sources' counters */

static ngx_inline ngx_http_kafka_stream_size_counters_t *
ngx_http_kafka_stream_size_counters(ngx_http_kafka_stream_main_conf_t *kmcf,
    ngx_http_kafka_stream_slot_t *slot, ngx_uint_t index)
{
    return (ngx_http_kafka_stream_size_counters_t *)
               (ngx_http_kafka_stream_counters(slot, kmcf->sources.nelts))
           + index;
}


/* a source's keys, after the slots */

static ngx_inline ngx_http_kafka_stream_keys_t *
ngx_http_kafka_stream_keys(ngx_http_kafka_stream_main_conf_t *kmcf,
    void *slots, ngx_uint_t index)
{
    return (ngx_http_kafka_stream_keys_t *)
               ((u_char *) slots
                + NGX_HTTP_KAFKA_STREAM_MAX_SLOTS * kmcf->slot_size)
           + index;
}


/* a worker's partitions of a topic being read, one bit each */

static ngx_inline u_char *
ngx_http_kafka_stream_consuming(ngx_http_kafka_stream_main_conf_t *kmcf,
    ngx_http_kafka_stream_slot_t *slot, ngx_uint_t topic)
{
    return (u_char *) ngx_http_kafka_stream_size_counters(kmcf, slot,
                                                          kmcf->nsizes)
           + topic * (NGX_HTTP_KAFKA_STREAM_MAX_PARTS / 8);
}


/* src/ngx_http_kafka_stream_log.c */

ngx_uint_t ngx_http_kafka_stream_log_allowed(void);
void ngx_http_kafka_stream_log(rd_kafka_event_t *ev);


/* src/ngx_http_kafka_stream_response.c */

ngx_int_t ngx_http_kafka_stream_refuse(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *reason);
ngx_table_elt_t *ngx_http_kafka_stream_header(ngx_http_request_t *r,
    char *key);
ngx_int_t ngx_http_kafka_stream_no_cache(ngx_http_request_t *r);
ngx_int_t ngx_http_kafka_stream_respond(ngx_http_request_t *r, ngx_buf_t *b);
ngx_int_t ngx_http_kafka_stream_arg(ngx_http_request_t *r, char *name,
    ngx_str_t *value);


/* src/ngx_http_kafka_stream_frame.c */

ngx_http_kafka_stream_frame_t *ngx_http_kafka_stream_frame(
    rd_kafka_message_t *msg, int type);
ngx_http_kafka_stream_frame_t *ngx_http_kafka_stream_frame_make(
    u_char *image, size_t size, int type, int64_t timestamp,
    int32_t partition, int64_t offset);
ngx_int_t ngx_http_kafka_stream_frame_size(ngx_http_kafka_stream_frame_t *f,
    int *width, int *height);
void ngx_http_kafka_stream_frame_release(ngx_http_kafka_stream_frame_t *f);
void ngx_http_kafka_stream_frame_drop(ngx_http_kafka_stream_frame_t **f);
void ngx_http_kafka_stream_frame_cleanup(void *data);
void ngx_http_kafka_stream_skipped(rd_kafka_message_t *msg,
    size_t max_frame_size);
ngx_http_kafka_stream_group_t *ngx_http_kafka_stream_group(
    ngx_http_kafka_stream_source_t *src, u_char *key, size_t len,
    ngx_uint_t create);
void ngx_http_kafka_stream_group_release(ngx_http_kafka_stream_source_t *src,
    ngx_http_kafka_stream_group_t *g);
void ngx_http_kafka_stream_free_frames(
    ngx_http_kafka_stream_main_conf_t *kmcf);
ngx_uint_t ngx_http_kafka_stream_group_keep(ngx_http_kafka_stream_group_t *g,
    ngx_http_kafka_stream_frame_t *f);
void ngx_http_kafka_stream_forget(ngx_http_kafka_stream_main_conf_t *kmcf,
    ngx_http_kafka_stream_topic_t *t, ngx_int_t partition);


/* src/ngx_http_kafka_stream_partitions.c */

extern ngx_http_kafka_stream_partitioner_t
    ngx_http_kafka_stream_partitioners[];

void ngx_http_kafka_stream_need(ngx_http_kafka_stream_need_t *n,
    ngx_http_kafka_stream_topic_t *t, ngx_int_t partition,
    ngx_http_kafka_stream_partitioner_pt place, ngx_str_t *key);
void ngx_http_kafka_stream_need_release(ngx_http_kafka_stream_need_t *n);
ngx_int_t ngx_http_kafka_stream_key_partition(
    ngx_http_kafka_stream_topic_t *t,
    ngx_http_kafka_stream_partitioner_pt place, ngx_str_t *key);
ngx_int_t ngx_http_kafka_stream_partitions_init(ngx_cycle_t *cycle,
    ngx_http_kafka_stream_worker_t *w);
void ngx_http_kafka_stream_partitions_tick(ngx_http_kafka_stream_worker_t *w);
void ngx_http_kafka_stream_partition_seen(ngx_http_kafka_stream_topic_t *t,
    ngx_int_t p);
void ngx_http_kafka_stream_partitions_seen(ngx_http_kafka_stream_worker_t *w);
ngx_http_kafka_stream_partition_t *ngx_http_kafka_stream_partition_read(
    ngx_http_kafka_stream_topic_t *t, int32_t p);


/* src/ngx_http_kafka_stream_consumer.c */

ngx_int_t ngx_http_kafka_stream_worker_init(ngx_cycle_t *cycle,
    const ngx_http_kafka_stream_hooks_t *hooks);
void ngx_http_kafka_stream_exit_process(ngx_cycle_t *cycle);
rd_kafka_conf_t *ngx_http_kafka_stream_rdconf(ngx_log_t *log,
    ngx_http_kafka_stream_main_conf_t *kmcf, ngx_keyval_t *more);
ngx_connection_t *ngx_http_kafka_stream_pipe(ngx_fd_t *fds,
    ngx_event_handler_pt handler, void *data, ngx_uint_t level);
void ngx_http_kafka_stream_pipe_read(ngx_connection_t *c);
void ngx_http_kafka_stream_pipe_close(ngx_connection_t **c, ngx_fd_t *fds);

extern ngx_http_kafka_stream_worker_t  *ngx_http_kafka_stream_worker;


/* src/ngx_http_kafka_stream_rate.c */

void ngx_http_kafka_stream_rate_init(ngx_http_kafka_stream_rate_t *rt,
    ngx_msec_t interval, ngx_msec_t wall, ngx_http_kafka_stream_rate_pt pass,
    void *data, ngx_log_t *log);
ngx_uint_t ngx_http_kafka_stream_rate_admit(ngx_http_kafka_stream_rate_t *rt,
    ngx_http_kafka_stream_frame_t *f);
void ngx_http_kafka_stream_rate_free(ngx_http_kafka_stream_rate_t *rt);


/* src/ngx_http_kafka_stream_rendition.c */

ngx_int_t ngx_http_kafka_stream_view_args(ngx_http_request_t *r,
    ngx_http_kafka_stream_loc_conf_t *kslcf,
    ngx_http_kafka_stream_view_args_t *va);
ngx_uint_t ngx_http_kafka_stream_view_sized(
    ngx_http_kafka_stream_loc_conf_t *kslcf,
    ngx_http_kafka_stream_view_args_t *va);
ngx_uint_t ngx_http_kafka_stream_size_pick(
    ngx_http_kafka_stream_loc_conf_t *kslcf, int64_t width, int64_t height,
    ngx_http_kafka_stream_frame_t *f);
ngx_http_kafka_stream_rendition_t *ngx_http_kafka_stream_rendition(
    ngx_http_kafka_stream_source_t *src, ngx_http_kafka_stream_group_t *g,
    ngx_uint_t width, ngx_uint_t quality, ngx_http_kafka_stream_made_pt made);
ngx_http_kafka_stream_rendition_t *ngx_http_kafka_stream_rendition_find(
    ngx_http_kafka_stream_group_t *g, ngx_uint_t width, ngx_uint_t quality);
void ngx_http_kafka_stream_rendition_join(
    ngx_http_kafka_stream_rendition_t *rd);
void ngx_http_kafka_stream_rendition_leave(
    ngx_http_kafka_stream_rendition_t *rd);
void ngx_http_kafka_stream_rendition_want(
    ngx_http_kafka_stream_rendition_t *rd);
ngx_uint_t ngx_http_kafka_stream_rendition_current(
    ngx_http_kafka_stream_rendition_t *rd);
void ngx_http_kafka_stream_rendition_source(
    ngx_http_kafka_stream_rendition_t *rd, ngx_http_kafka_stream_frame_t *f);
void ngx_http_kafka_stream_renditions_source(ngx_http_kafka_stream_group_t *g,
    ngx_http_kafka_stream_frame_t *f);
void ngx_http_kafka_stream_rendition_exit(ngx_http_kafka_stream_worker_t *w);


/* src/ngx_http_kafka_stream_live.c */

ngx_int_t ngx_http_kafka_stream_start(ngx_http_request_t *r,
    ngx_http_kafka_stream_loc_conf_t *kslcf,
    ngx_http_kafka_stream_view_args_t *va);
ngx_int_t ngx_http_kafka_stream_key(ngx_http_request_t *r,
    ngx_http_kafka_stream_loc_conf_t *kslcf, ngx_str_t *key);
ngx_http_kafka_stream_viewer_t *ngx_http_kafka_stream_viewer(
    ngx_http_request_t *r, ngx_http_kafka_stream_loc_conf_t *kslcf);
ngx_int_t ngx_http_kafka_stream_join(ngx_http_kafka_stream_viewer_t *v,
    ngx_http_kafka_stream_group_t *g);
void ngx_http_kafka_stream_viewer_rate(ngx_http_kafka_stream_viewer_t *v,
    ngx_http_kafka_stream_view_args_t *va);
void ngx_http_kafka_stream_watch(ngx_http_kafka_stream_viewer_t *v,
    ngx_str_t *key);
ngx_int_t ngx_http_kafka_stream_open(ngx_http_kafka_stream_viewer_t *v);
ngx_int_t ngx_http_kafka_stream_multipart(ngx_http_request_t *r,
    ngx_http_kafka_stream_loc_conf_t *kslcf);
ngx_int_t ngx_http_kafka_stream_begin(ngx_http_request_t *r,
    ngx_http_kafka_stream_loc_conf_t *kslcf,
    ngx_http_event_handler_pt writer, ngx_buf_t *b, ngx_chain_t *cl);
ngx_int_t ngx_http_kafka_stream_writable(ngx_http_request_t *r);
ngx_int_t ngx_http_kafka_stream_write_wait(ngx_http_request_t *r,
    ngx_int_t rc);
ngx_int_t ngx_http_kafka_stream_flushed(ngx_http_request_t *r);
void ngx_http_kafka_stream_end(ngx_http_request_t *r,
    ngx_http_kafka_stream_loc_conf_t *kslcf, ngx_buf_t *b, ngx_chain_t *cl);
void ngx_http_kafka_stream_publish(ngx_http_kafka_stream_group_t *g,
    ngx_http_kafka_stream_frame_t *f);
void ngx_http_kafka_stream_made(ngx_http_kafka_stream_rendition_t *rd,
    ngx_http_kafka_stream_frame_t *f);
void ngx_http_kafka_stream_offer(ngx_http_kafka_stream_viewer_t *v,
    ngx_http_kafka_stream_frame_t *f);
void ngx_http_kafka_stream_close_viewers(ngx_http_kafka_stream_worker_t *w);
void ngx_http_kafka_stream_finalize_viewers(
    ngx_http_kafka_stream_worker_t *w);
ngx_int_t ngx_http_kafka_stream_snapshot(ngx_http_request_t *r,
    ngx_http_kafka_stream_frame_t *f);


/* src/ngx_http_kafka_stream_wall.c */

ngx_int_t ngx_http_kafka_stream_wall_start(ngx_http_request_t *r,
    ngx_http_kafka_stream_loc_conf_t *kslcf,
    ngx_http_kafka_stream_view_args_t *va);
void ngx_http_kafka_stream_wall_publish(ngx_http_kafka_stream_group_t *g,
    ngx_http_kafka_stream_frame_t *f);
void ngx_http_kafka_stream_wall_shutdown(ngx_http_kafka_stream_worker_t *w);
void ngx_http_kafka_stream_wall_exit(ngx_http_kafka_stream_worker_t *w);


/* src/ngx_http_kafka_stream_status.c */

ngx_int_t ngx_http_kafka_stream_status(ngx_http_request_t *r);
ngx_int_t ngx_http_kafka_stream_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);


#if (NGX_THREADS)

/* src/ngx_http_kafka_stream_replay_task.c */

void ngx_http_kafka_stream_replay_lookup(void *data, ngx_log_t *log);
void ngx_http_kafka_stream_replay_destroy(void *data, ngx_log_t *log);


/* src/ngx_http_kafka_stream_replay_args.c */

ngx_int_t ngx_http_kafka_stream_replay_args(ngx_http_request_t *r,
    ngx_http_kafka_stream_loc_conf_t *kslcf,
    ngx_http_kafka_stream_replay_args_t *ra);


/* src/ngx_http_kafka_stream_replay.c */

ngx_int_t ngx_http_kafka_stream_replay_start(ngx_http_request_t *r,
    ngx_http_kafka_stream_loc_conf_t *kslcf,
    ngx_http_kafka_stream_replay_args_t *ra,
    ngx_http_kafka_stream_view_args_t *va);
void ngx_http_kafka_stream_replay_exit(ngx_http_kafka_stream_worker_t *w,
    ngx_log_t *log);

#endif


/* ngx_http_kafka_stream_module.c */

extern ngx_module_t  ngx_http_kafka_stream_module;


#endif /* _NGX_HTTP_KAFKA_STREAM_H_INCLUDED_ */
