
/*
 * Renditions: a group's frames at another size (kafka_stream_sizes,
 * ?width=, ?height=).  A rendition is one size of one group, made while
 * someone watches it: each source frame is made once, in nginx's thread
 * pool (src/..._scale.c), into a frame of the ordinary kind, which every
 * viewer of that size shares by reference as live viewers share the
 * source's.  At most one frame is being made per rendition; a newer source
 * frame replaces the one waiting to be made (counted as skipped), so a
 * rendition that cannot keep up falls behind by one frame at most and
 * never queues.  A source frame no wider than the size is passed on as it
 * is.  The last viewer to leave retires the rendition: its frames go at
 * once, its memory (a pool of its own, task included) when no task runs.
 *
 * Also here, for the layers above: a request's ?fps=, ?width= and
 * ?height= (view_args) and the size they choose (size_pick), so that any
 * kind of viewer (live, replay, one of several groups) chooses alike.
 *
 * Above the consumer (the worker's state), the frames, the answers (a
 * query argument) and the scaler; below the viewers and the replays,
 * which set the "made" hook each made frame is handed to.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kafka_stream.h"


/* the aspect ratio assumed for ?height= of a picture of unknown size */
#define NGX_HTTP_KAFKA_STREAM_ASPECT_W  16
#define NGX_HTTP_KAFKA_STREAM_ASPECT_H  9


#if (NGX_THREADS)
static void ngx_http_kafka_stream_rendition_start(
    ngx_http_kafka_stream_rendition_t *rd, ngx_http_kafka_stream_frame_t *f);
static void ngx_http_kafka_stream_rendition_make(void *data, ngx_log_t *log);
static void ngx_http_kafka_stream_rendition_made(ngx_event_t *ev);
#endif
static void ngx_http_kafka_stream_rendition_publish(
    ngx_http_kafka_stream_rendition_t *rd, ngx_http_kafka_stream_frame_t *f);
static void ngx_http_kafka_stream_rendition_drop(
    ngx_http_kafka_stream_rendition_t *rd);
static void ngx_http_kafka_stream_rendition_free(
    ngx_http_kafka_stream_rendition_t *rd);
static ngx_int_t ngx_http_kafka_stream_view_number(ngx_http_request_t *r,
    char *name, int64_t max, int64_t *n, ngx_str_t *reason);


/*
 * ?fps=, ?width=, ?height=: NGX_OK, or NGX_HTTP_BAD_REQUEST with the
 * reason.  A location without kafka_stream_sizes ignores the sizes.
 */

ngx_int_t
ngx_http_kafka_stream_view_args(ngx_http_request_t *r,
    ngx_http_kafka_stream_loc_conf_t *kslcf,
    ngx_http_kafka_stream_view_args_t *va)
{
    int64_t    milli;
    ngx_int_t  rc;
    ngx_str_t  value;

    va->interval = 0;
    va->width = 0;
    va->height = 0;
    ngx_str_null(&va->reason);

    rc = ngx_http_kafka_stream_arg(r, "fps", &value);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_OK) {
        if (ngx_http_kafka_stream_parse_decimal(value.data, value.len,
                                                1000000, &milli)
            != 0
            || milli == 0)
        {
            ngx_str_set(&va->reason, "fps: not a number of frames a second "
                        "above 0 (25, 2, 0.5 ...)");
            return NGX_HTTP_BAD_REQUEST;
        }

        /* thousandths of a frame a second: the spacing, in milliseconds */
        va->interval = (ngx_msec_t) (1000000 / milli);
    }

    if (kslcf->sizes == NULL) {
        return NGX_OK;
    }

    rc = ngx_http_kafka_stream_view_number(r, "width",
                                           NGX_HTTP_KAFKA_STREAM_SCALE_MAX_SIDE,
                                           &va->width, &va->reason);
    if (rc != NGX_OK && rc != NGX_DECLINED) {
        return rc;
    }

    rc = ngx_http_kafka_stream_view_number(r, "height",
                                           NGX_HTTP_KAFKA_STREAM_SCALE_MAX_SIDE,
                                           &va->height, &va->reason);
    if (rc != NGX_OK && rc != NGX_DECLINED) {
        return rc;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_kafka_stream_view_number(ngx_http_request_t *r, char *name,
    int64_t max, int64_t *n, ngx_str_t *reason)
{
    ngx_int_t  rc;
    ngx_str_t  value;

    rc = ngx_http_kafka_stream_arg(r, name, &value);

    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_kafka_stream_parse_number(value.data, value.len, max, n)
        != 0
        || *n == 0)
    {
        reason->data = ngx_pnalloc(r->pool,
                                   NGX_HTTP_KAFKA_STREAM_REPLAY_REASON);
        if (reason->data == NULL) {
            return NGX_ERROR;
        }

        reason->len = ngx_sprintf(reason->data, "%s: not a number of pixels "
                                  "(1 to %L)", name, max)
                      - reason->data;

        return NGX_HTTP_BAD_REQUEST;
    }

    return NGX_OK;
}


/* whether a request asks for a size this location can make */

ngx_uint_t
ngx_http_kafka_stream_view_sized(ngx_http_kafka_stream_loc_conf_t *kslcf,
    ngx_http_kafka_stream_view_args_t *va)
{
    return kslcf->sizes && (va->width || va->height);
}


/*
 * The size a viewer gets of frames like "f", 0 for the source's own: the
 * largest of the location's sizes that is not larger than asked (the
 * smallest if all are), unless the frame itself is no larger than asked.
 * ?height= becomes a width by the frame's aspect ratio; with both, the
 * picture fits in the box.  A viewer decides it once, at the first frame
 * it is to get.
 */

ngx_uint_t
ngx_http_kafka_stream_size_pick(ngx_http_kafka_stream_loc_conf_t *kslcf,
    int64_t width, int64_t height, ngx_http_kafka_stream_frame_t *f)
{
    int          w, h;
    int64_t      want;
    ngx_uint_t   i, pick, *sizes;

    if (kslcf->sizes == NULL || (width == 0 && height == 0)) {
        return 0;
    }

    if (ngx_http_kafka_stream_frame_size(f, &w, &h) != NGX_OK) {
        /* a picture of no size the header tells: the aspect assumed */
        w = 0;
        h = 0;
    }

    want = width ? width : NGX_MAX_INT32_VALUE;

    if (height) {
        want = ngx_min(want,
                       ngx_max(1, w ? height * w / h
                                    : height * NGX_HTTP_KAFKA_STREAM_ASPECT_W
                                      / NGX_HTTP_KAFKA_STREAM_ASPECT_H));
    }

    if (w && want >= w) {
        return 0;
    }

    /* sorted, smallest first */

    sizes = kslcf->sizes->elts;
    pick = sizes[0];

    for (i = 1; i < kslcf->sizes->nelts; i++) {
        if ((int64_t) sizes[i] <= want) {
            pick = sizes[i];
        }
    }

    return pick;
}


/*
 * The group's rendition of that size and quality, made if there is none:
 * NULL when out of memory.  A rendition of no group (g == NULL) is a
 * viewer's own, a replay's.  "made" is where its frames go.
 */

ngx_http_kafka_stream_rendition_t *
ngx_http_kafka_stream_rendition(ngx_http_kafka_stream_source_t *src,
    ngx_http_kafka_stream_group_t *g, ngx_uint_t width, ngx_uint_t quality,
    ngx_http_kafka_stream_made_pt made)
{
    ngx_uint_t                          i, *sizes;
    ngx_pool_t                         *pool;
    ngx_http_kafka_stream_worker_t     *w;
    ngx_http_kafka_stream_rendition_t  *rd;

    w = ngx_http_kafka_stream_worker;

    if (g) {
        rd = ngx_http_kafka_stream_rendition_find(g, width, quality);

        if (rd) {
            return rd;
        }
    }

    /* kafka_stream_sizes gave the source the size, and its counters */

    sizes = src->sizes.elts;

    for (i = 0; i < src->sizes.nelts; i++) {
        if (sizes[i] == width) {
            break;
        }
    }

    if (i == src->sizes.nelts) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "kafka stream: no counters for the size %ui", width);
        return NULL;
    }

    /* a pool of its own: a task in a thread may outlive group and viewers */

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        return NULL;
    }

    rd = ngx_pcalloc(pool, sizeof(ngx_http_kafka_stream_rendition_t));
    if (rd == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

#if (NGX_THREADS)
    rd->task = ngx_thread_task_alloc(pool, 0);
    if (rd->task == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    rd->task->ctx = rd;
    rd->task->handler = ngx_http_kafka_stream_rendition_make;
    rd->task->event.handler = ngx_http_kafka_stream_rendition_made;
    rd->task->event.data = rd;
    rd->task->event.log = ngx_cycle->log;
#endif

    rd->pool = pool;
    rd->source = src;
    rd->width = width;
    rd->quality = quality;
    rd->counters = &src->size_counters[i];
    rd->made = made;
    ngx_queue_init(&rd->viewers);
    ngx_queue_init(&rd->walls);

    if (g) {
        rd->group = g;
        ngx_queue_insert_tail(&g->renditions, &rd->queue);
    }

    ngx_queue_insert_tail(&w->renditions, &rd->link);
    w->slot->renditions = ++w->nrenditions;

    return rd;
}


/* the group's rendition of that size and quality, if someone watches it */

ngx_http_kafka_stream_rendition_t *
ngx_http_kafka_stream_rendition_find(ngx_http_kafka_stream_group_t *g,
    ngx_uint_t width, ngx_uint_t quality)
{
    ngx_queue_t                        *q;
    ngx_http_kafka_stream_rendition_t  *rd;

    for (q = ngx_queue_head(&g->renditions);
         q != ngx_queue_sentinel(&g->renditions);
         q = ngx_queue_next(q))
    {
        rd = ngx_queue_data(q, ngx_http_kafka_stream_rendition_t, queue);

        if (rd->width == width && rd->quality == quality) {
            return rd;
        }
    }

    return NULL;
}


/* a viewer joins; frames come once it asks for them (want()) */

void
ngx_http_kafka_stream_rendition_join(ngx_http_kafka_stream_rendition_t *rd)
{
    rd->nviewers++;
    (void) ngx_atomic_fetch_add(&rd->counters->viewers, 1);
}


/* a viewer leaves; the last one retires the rendition */

void
ngx_http_kafka_stream_rendition_leave(ngx_http_kafka_stream_rendition_t *rd)
{
    (void) ngx_atomic_fetch_add(&rd->counters->viewers, -1);

    if (--rd->nviewers) {
        return;
    }

    if (rd->group) {
        ngx_queue_remove(&rd->queue);
        rd->group = NULL;
    }

    rd->retired = 1;

    if (rd->pending) {
        (void) ngx_atomic_fetch_add(&rd->counters->skipped, 1);
    }

    ngx_http_kafka_stream_rendition_drop(rd);

    if (!rd->busy) {
        ngx_http_kafka_stream_rendition_free(rd);
    }

    /* else the task's end frees it */
}


/*
 * Whether the rendition's latest frame is of the group's latest: what a
 * snapshot at this size may answer with at once.
 */

ngx_uint_t
ngx_http_kafka_stream_rendition_current(ngx_http_kafka_stream_rendition_t *rd)
{
    ngx_http_kafka_stream_frame_t  *f, *latest;

    f = rd->latest;
    latest = rd->group ? rd->group->latest : NULL;

    return f && latest && f->partition == latest->partition
           && f->offset == latest->offset;
}


/*
 * A new viewer wants the group's latest frame at this size: made unless
 * it is, or is being made, or waits to be.
 */

void
ngx_http_kafka_stream_rendition_want(ngx_http_kafka_stream_rendition_t *rd)
{
    if (rd->group == NULL || rd->group->latest == NULL || rd->busy
        || ngx_http_kafka_stream_rendition_current(rd))
    {
        return;
    }

    ngx_http_kafka_stream_rendition_source(rd, rd->group->latest);
}


/* a new frame of a group: each of its sizes that is watched makes it */

void
ngx_http_kafka_stream_renditions_source(ngx_http_kafka_stream_group_t *g,
    ngx_http_kafka_stream_frame_t *f)
{
    ngx_queue_t                        *q, *next;
    ngx_http_kafka_stream_rendition_t  *rd;

    /* a made hook may end a viewer, and with it a rendition */

    for (q = ngx_queue_head(&g->renditions);
         q != ngx_queue_sentinel(&g->renditions);
         q = next)
    {
        next = ngx_queue_next(q);
        rd = ngx_queue_data(q, ngx_http_kafka_stream_rendition_t, queue);

        ngx_http_kafka_stream_rendition_source(rd, f);
    }
}


/*
 * A source frame for a rendition: passed on when it is no wider than the
 * size, else made now or next; a frame still waiting to be made gives its
 * place to this newer one.
 */

void
ngx_http_kafka_stream_rendition_source(ngx_http_kafka_stream_rendition_t *rd,
    ngx_http_kafka_stream_frame_t *f)
{
    int  w, h;

    if (rd->retired) {
        return;
    }

    if (ngx_http_kafka_stream_frame_size(f, &w, &h) == NGX_OK
        && (ngx_uint_t) w <= rd->width)
    {
        /* what is being made is older than this: it is not to be shown */

        if (rd->busy) {
            rd->stale = 1;
        }

        if (rd->pending) {
            ngx_http_kafka_stream_frame_drop(&rd->pending);
            (void) ngx_atomic_fetch_add(&rd->counters->skipped, 1);
        }

        (void) ngx_atomic_fetch_add(&rd->counters->passed, 1);

        ngx_http_kafka_stream_rendition_publish(rd, f);
        return;
    }

#if (NGX_THREADS)

    if (rd->busy) {
        if (rd->pending) {
            ngx_http_kafka_stream_frame_release(rd->pending);
            (void) ngx_atomic_fetch_add(&rd->counters->skipped, 1);
        }

        f->refs++;
        rd->pending = f;
        return;
    }

    f->refs++;
    ngx_http_kafka_stream_rendition_start(rd, f);

#endif
}


#if (NGX_THREADS)

/* the task makes "f", whose reference it takes */

static void
ngx_http_kafka_stream_rendition_start(ngx_http_kafka_stream_rendition_t *rd,
    ngx_http_kafka_stream_frame_t *f)
{
    ngx_http_kafka_stream_main_conf_t  *kmcf;

    kmcf = ngx_http_kafka_stream_worker->conf;

    rd->making = f;
    rd->stale = 0;

    ngx_memzero(&rd->scale, sizeof(ngx_http_kafka_stream_scale_t));
    rd->scale.width = (int) rd->width;
    rd->scale.quality = (int) rd->quality;

    if (ngx_thread_task_post(kmcf->thread_pool, rd->task) != NGX_OK) {
        /* the pool's queue is full (thread_pool max_queue): not made */
        (void) ngx_atomic_fetch_add(&rd->counters->failed, 1);
        ngx_http_kafka_stream_frame_drop(&rd->making);
        return;
    }

    rd->busy = 1;
    (void) ngx_atomic_fetch_add(&ngx_http_kafka_stream_worker->slot->making,
                                1);
}


/*
 * In a thread of the pool.  Only the rendition's "making", "scale" and
 * "cpu" are used here, and the source frame's bytes, which nothing
 * changes; the event loop leaves them alone while "busy" is set.
 */

static void
ngx_http_kafka_stream_rendition_make(void *data, ngx_log_t *log)
{
    ngx_http_kafka_stream_rendition_t *rd = data;

    struct timespec                 start, end;
    ngx_http_kafka_stream_frame_t  *f;

    f = rd->making;

    (void) clock_gettime(CLOCK_THREAD_CPUTIME_ID, &start);

    /* f->kind was set when the frame was made: nothing here writes f */

    rd->rc = ngx_http_kafka_stream_scale(f->image.data, f->image.len,
                                         f->kind, &rd->scale);

    (void) clock_gettime(CLOCK_THREAD_CPUTIME_ID, &end);

    rd->cpu = (uint64_t) (end.tv_sec - start.tv_sec) * 1000000
              + (end.tv_nsec - start.tv_nsec) / 1000;
}


/* back in the event loop */

static void
ngx_http_kafka_stream_rendition_made(ngx_event_t *ev)
{
    ngx_http_kafka_stream_rendition_t  *rd;
    ngx_http_kafka_stream_frame_t      *src, *f;

    rd = ev->data;

    rd->busy = 0;
    (void) ngx_atomic_fetch_add(&ngx_http_kafka_stream_worker->slot->making,
                                -1);
    src = rd->making;
    rd->making = NULL;

    (void) ngx_atomic_fetch_add(&rd->counters->cpu_usec, rd->cpu);

    if (rd->rc != 0) {
        (void) ngx_atomic_fetch_add(&rd->counters->failed, 1);

        if (ngx_http_kafka_stream_log_allowed()) {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "kafka stream: frame at \"%V\" [%D] offset %O "
                          "not made %ui pixels wide: %s",
                          &rd->source->topic->name, src->partition,
                          (off_t) src->offset, rd->width, rd->scale.error);
        }

        /* nothing came of it: the layer above may be waiting for it */

        if (!rd->retired && rd->pending == NULL && rd->made) {
            rd->made(rd, NULL);
        }

    } else if (rd->retired || rd->stale) {
        (void) ngx_atomic_fetch_add(&rd->counters->skipped, 1);

    } else {
        (void) ngx_atomic_fetch_add(&rd->counters->made, 1);
        (void) ngx_atomic_fetch_add(&rd->counters->bytes_made, rd->scale.len);

        f = ngx_http_kafka_stream_frame_make(rd->scale.data, rd->scale.len,
                                             NGX_HTTP_KAFKA_STREAM_JPEG,
                                             src->timestamp, src->partition,
                                             src->offset);
        if (f) {
            ngx_http_kafka_stream_rendition_publish(rd, f);
        }
    }

    ngx_http_kafka_stream_scale_free(&rd->scale);
    ngx_http_kafka_stream_frame_release(src);

    if (rd->retired) {
        ngx_http_kafka_stream_rendition_free(rd);
        return;
    }

    if (rd->pending) {
        f = rd->pending;
        rd->pending = NULL;
        ngx_http_kafka_stream_rendition_start(rd, f);
    }
}

#endif


/* the rendition's newest frame, to its viewers through the hook above */

static void
ngx_http_kafka_stream_rendition_publish(ngx_http_kafka_stream_rendition_t *rd,
    ngx_http_kafka_stream_frame_t *f)
{
    if (rd->latest) {
        ngx_http_kafka_stream_frame_release(rd->latest);
    }

    rd->latest = f;
    f->refs++;

    if (rd->made) {
        rd->made(rd, f);
    }
}


/* the frames a rendition holds, but the one a task reads */

static void
ngx_http_kafka_stream_rendition_drop(ngx_http_kafka_stream_rendition_t *rd)
{
    ngx_http_kafka_stream_frame_drop(&rd->latest);
    ngx_http_kafka_stream_frame_drop(&rd->pending);
}


static void
ngx_http_kafka_stream_rendition_free(ngx_http_kafka_stream_rendition_t *rd)
{
    ngx_http_kafka_stream_worker_t  *w;

    w = ngx_http_kafka_stream_worker;

    ngx_queue_remove(&rd->link);
    w->slot->renditions = --w->nrenditions;

    ngx_destroy_pool(rd->pool);
}


/*
 * The worker exits: the thread pool has stopped, every task has ended,
 * but the handlers of the last ones never ran.  What is left goes.
 */

void
ngx_http_kafka_stream_rendition_exit(ngx_http_kafka_stream_worker_t *w)
{
    ngx_uint_t                          n;
    ngx_queue_t                        *q;
    ngx_http_kafka_stream_rendition_t  *rd;

    n = w->nrenditions;

    if (n) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "kafka stream: %ui rendition(s) freed at exit", n);
    }

    while (!ngx_queue_empty(&w->renditions)) {
        q = ngx_queue_head(&w->renditions);
        rd = ngx_queue_data(q, ngx_http_kafka_stream_rendition_t, link);

        if (rd->group) {
            ngx_queue_remove(&rd->queue);
            rd->group = NULL;
        }

        ngx_http_kafka_stream_rendition_drop(rd);
        ngx_http_kafka_stream_frame_drop(&rd->making);
        ngx_http_kafka_stream_scale_free(&rd->scale);
        ngx_http_kafka_stream_rendition_free(rd);
    }
}
