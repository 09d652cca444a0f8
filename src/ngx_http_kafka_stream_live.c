
/*
 * The viewers.  A viewer is a request of a kafka_stream location (or of
 * a snapshot location while no frame is there yet, or a replay's once
 * its stream opens); it joins the group of the key it asked for
 * (src/..._frame.c).  A new frame is offered to every viewer of the
 * group (publish(), which the consumer calls through its hook) and
 * replaces the one the viewer has waiting: at most one frame on the wire
 * and one waiting, the newest wins, so a slow viewer neither grows
 * memory nor delays anyone else.  A part is the frame's header, image
 * and the next boundary, from the shared buffer or the frame's memfd;
 * when nothing new comes the latest frame is sent again
 * (kafka_stream_idle_resend).  A graceful shutdown ends every stream
 * with its closing boundary.  The snapshot: one frame as an ordinary
 * response.
 *
 * Above the consumer and the frames.  The replay (src/..._replay.c)
 * sits above: it feeds its viewer with offer(), and the viewer reaches
 * its replay only through the hooks the replay sets on it.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <netinet/tcp.h>

#include "ngx_http_kafka_stream.h"


static void ngx_http_kafka_stream_cleanup(void *data);
static void ngx_http_kafka_stream_unlink(ngx_http_kafka_stream_viewer_t *v);
static void ngx_http_kafka_stream_fan_out(ngx_queue_t *viewers,
    ngx_http_kafka_stream_frame_t *f);
static void ngx_http_kafka_stream_rate_pass(void *data,
    ngx_http_kafka_stream_frame_t *f);
static ngx_uint_t ngx_http_kafka_stream_resize_viewer(
    ngx_http_kafka_stream_viewer_t *v, ngx_http_kafka_stream_frame_t *f);
static void ngx_http_kafka_stream_send_handler(ngx_event_t *ev);
static void ngx_http_kafka_stream_resend_handler(ngx_event_t *ev);
static void ngx_http_kafka_stream_writer(ngx_http_request_t *r);
static void ngx_http_kafka_stream_send(ngx_http_kafka_stream_viewer_t *v);
static ngx_int_t ngx_http_kafka_stream_push(ngx_http_kafka_stream_viewer_t *v);
static ngx_int_t ngx_http_kafka_stream_wait(ngx_http_kafka_stream_viewer_t *v,
    ngx_int_t rc);
static ngx_int_t ngx_http_kafka_stream_send_frame(
    ngx_http_kafka_stream_viewer_t *v, ngx_http_kafka_stream_frame_t *f);
static void ngx_http_kafka_stream_close(ngx_http_kafka_stream_viewer_t *v);


/*
 * A live stream, or a snapshot: the request's viewer joins its key's
 * group, or the rendition of the size it asked for (?width=, ?height=).
 */

ngx_int_t
ngx_http_kafka_stream_start(ngx_http_request_t *r,
    ngx_http_kafka_stream_loc_conf_t *kslcf,
    ngx_http_kafka_stream_view_args_t *va)
{
    ngx_int_t                           rc;
    ngx_str_t                           key;
    ngx_uint_t                          width;
    ngx_http_kafka_stream_group_t      *g;
    ngx_http_kafka_stream_source_t     *src;
    ngx_http_kafka_stream_viewer_t     *v;
    ngx_http_kafka_stream_frame_t      *f;
    ngx_http_kafka_stream_rendition_t  *rd;

    src = kslcf->source;

    rc = ngx_http_kafka_stream_key(r, kslcf, &key);
    if (rc != NGX_OK) {
        return rc;
    }

    g = ngx_http_kafka_stream_group(src, key.data, key.len, 1);
    if (g == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the size asked for, by the newest frame; or by the first to come */

    width = 0;

    if (ngx_http_kafka_stream_view_sized(kslcf, va) && g->latest) {
        width = ngx_http_kafka_stream_size_pick(kslcf, va->width, va->height,
                                                g->latest);
    }

    if (kslcf->type == NGX_HTTP_KAFKA_STREAM_SNAPSHOT && g->latest) {

        /* the latest frame, if it is at hand at that size */

        f = g->latest;

        if (width) {
            rd = ngx_http_kafka_stream_rendition_find(g, width,
                                                      kslcf->quality);
            f = (rd && ngx_http_kafka_stream_rendition_current(rd))
                ? rd->latest : NULL;
        }

        if (f) {
            rc = ngx_http_kafka_stream_snapshot(r, f);
            ngx_http_kafka_stream_group_release(src, g);
            return rc;
        }
    }

    v = ngx_http_kafka_stream_viewer(r, kslcf);
    if (v == NULL) {
        ngx_http_kafka_stream_group_release(src, g);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v->width = width;
    v->ask_width = va->width;
    v->ask_height = va->height;
    v->undecided = (ngx_http_kafka_stream_view_sized(kslcf, va)
                    && g->latest == NULL);

    if (ngx_http_kafka_stream_join(v, g) != NGX_OK) {
        ngx_http_kafka_stream_group_release(src, g);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rd = v->rendition;

    /* the partitions of its frames are read while it stays */

    if (kslcf->type == NGX_HTTP_KAFKA_STREAM_SNAPSHOT || !r->header_only) {
        ngx_http_kafka_stream_watch(v, &key);
    }

    if (kslcf->type == NGX_HTTP_KAFKA_STREAM_SNAPSHOT) {

        /* no frame yet (at that size): wait for the first one, for a while */

        v->snapshot = 1;
        ngx_add_timer(&v->resend, NGX_HTTP_KAFKA_STREAM_SNAPSHOT_WAIT);

        if (rd) {
            ngx_http_kafka_stream_rendition_want(rd);
        }

        r->main->count++;
        return NGX_DONE;
    }

    ngx_http_kafka_stream_viewer_rate(v, va);

    kslcf->viewers++;
    (void) ngx_atomic_fetch_add(&src->counters->viewers, 1);
    v->counted = 1;

    rc = ngx_http_kafka_stream_open(v);

    if (rc != NGX_OK || r->header_only) {
        return rc;
    }

    r->main->count++;

    f = rd ? rd->latest : g->latest;

    if (f && ngx_http_kafka_stream_rate_admit(&v->rate, f)) {
        ngx_http_kafka_stream_offer(v, f);

    } else if (kslcf->idle_resend) {
        ngx_add_timer(&v->resend, kslcf->idle_resend);
    }

    /* the newest frame at this size, unless it is there or on its way */

    if (rd) {
        ngx_http_kafka_stream_rendition_want(rd);
    }

    return NGX_DONE;
}


/* the key the request asks for (kafka_stream_key), empty for all */

ngx_int_t
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

ngx_http_kafka_stream_viewer_t *
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


/*
 * What the viewer's frames need read: its key's partition, the
 * location's partition, or all of them (src/..._partitions.c); "key"
 * must last as long as the viewer.
 */

void
ngx_http_kafka_stream_watch(ngx_http_kafka_stream_viewer_t *v,
    ngx_str_t *key)
{
    ngx_http_kafka_stream_loc_conf_t  *kslcf;

    kslcf = v->conf;

    ngx_http_kafka_stream_need(&v->need, kslcf->source->topic,
                               kslcf->partition, kslcf->partitioner->place,
                               key);
}


/*
 * A viewer starts receiving a group's frames, at its size ("width", else
 * the source's): NGX_ERROR when a rendition cannot be made.  A replay's
 * viewer that comes live leaves the rendition of its own it had.
 */

ngx_int_t
ngx_http_kafka_stream_join(ngx_http_kafka_stream_viewer_t *v,
    ngx_http_kafka_stream_group_t *g)
{
    ngx_http_kafka_stream_rendition_t  *rd;

    rd = NULL;

    if (v->width) {
        rd = ngx_http_kafka_stream_rendition(v->conf->source, g, v->width,
                                             v->conf->quality,
                                             ngx_http_kafka_stream_made);
        if (rd == NULL) {
            return NGX_ERROR;
        }
    }

    if (v->rendition) {
        ngx_queue_remove(&v->queue);
        ngx_http_kafka_stream_rendition_leave(v->rendition);
        v->rendition = NULL;
    }

    /* a keyed group with its first viewer is no longer an idle one */

    if (g->nviewers++ == 0 && !g->all) {
        v->conf->source->idle_groups--;
    }

    if (rd) {
        ngx_queue_insert_tail(&rd->viewers, &v->queue);
        ngx_http_kafka_stream_rendition_join(rd);
        v->rendition = rd;

    } else {
        ngx_queue_insert_tail(&g->viewers, &v->queue);
    }

    v->group = g;

    return NGX_OK;
}


/*
 * ?fps=: the viewer's frames at most that often, by Kafka time; a frame
 * held back goes when nothing newer comes for as long (a second at least)
 */

void
ngx_http_kafka_stream_viewer_rate(ngx_http_kafka_stream_viewer_t *v,
    ngx_http_kafka_stream_view_args_t *va)
{
    ngx_http_kafka_stream_rate_init(&v->rate, va->interval, va->interval,
                                    ngx_http_kafka_stream_rate_pass, v,
                                    v->request->connection->log);
}


/*
 * The response header and the opening boundary of a stream: NGX_OK when
 * frames may follow, else what the request is to be finished with.
 */

ngx_int_t
ngx_http_kafka_stream_open(ngx_http_kafka_stream_viewer_t *v)
{
    ngx_http_request_t  *r;

    r = v->request;

    v->pending = 0;

    if (ngx_http_kafka_stream_multipart(r, v->conf) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

#if (NGX_THREADS)

    if (v->replay && v->replay_headers(r, v->replay) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

#endif

    return ngx_http_kafka_stream_begin(r, v->conf,
                                       ngx_http_kafka_stream_writer,
                                       &v->bufs[0], &v->chain[0]);
}


/* the response header lines of a stream, of a viewer's or a wall's */

ngx_int_t
ngx_http_kafka_stream_multipart(ngx_http_request_t *r,
    ngx_http_kafka_stream_loc_conf_t *kslcf)
{
    ngx_table_elt_t  *h;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_type_len = sizeof("multipart/x-mixed-replace; "
                                             "boundary=") - 1
                                      + kslcf->boundary.len;
    r->headers_out.content_type.len = r->headers_out.content_type_len;
    r->headers_out.content_type.data =
                       ngx_pnalloc(r->pool, r->headers_out.content_type_len);
    if (r->headers_out.content_type.data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(r->headers_out.content_type.data,
                "multipart/x-mixed-replace; boundary=%V", &kslcf->boundary);

    if (ngx_http_kafka_stream_no_cache(r) != NGX_OK) {
        return NGX_ERROR;
    }

    /* a proxy in front (nginx itself, for one) must not buffer the stream */

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "X-Accel-Buffering");
    ngx_str_set(&h->value, "no");

    r->allow_ranges = 0;

    return NGX_OK;
}


/*
 * Sends the response header, then the opening boundary from "b": NGX_OK
 * when parts may follow, written from "writer" on write events; else
 * what the request is to be finished with.
 */

ngx_int_t
ngx_http_kafka_stream_begin(ngx_http_request_t *r,
    ngx_http_kafka_stream_loc_conf_t *kslcf,
    ngx_http_event_handler_pt writer, ngx_buf_t *b, ngx_chain_t *cl)
{
    int        lowat;
    ngx_int_t  rc;

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
    r->write_event_handler = writer;

    ngx_memzero(b, sizeof(ngx_buf_t));

    b->pos = kslcf->opening.data;
    b->last = kslcf->opening.data + kslcf->opening.len;
    b->memory = 1;
    b->flush = 1;
    cl->buf = b;
    cl->next = NULL;

    rc = ngx_http_output_filter(r, cl);

    return (rc == NGX_ERROR) ? NGX_ERROR : NGX_OK;
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

    ngx_http_kafka_stream_rate_free(&v->rate);

    ngx_http_kafka_stream_frame_drop(&v->sending);
    ngx_http_kafka_stream_frame_drop(&v->waiting);

    ngx_http_kafka_stream_need_release(&v->need);

#if (NGX_THREADS)

    if (v->replay) {
        v->replay_release(v->replay);
        v->replay = NULL;
    }

#endif
}


/* stop receiving frames */

static void
ngx_http_kafka_stream_unlink(ngx_http_kafka_stream_viewer_t *v)
{
    ngx_http_kafka_stream_rendition_t  *rd;

    rd = v->rendition;

    if (rd) {
        ngx_queue_remove(&v->queue);
        v->rendition = NULL;
        ngx_http_kafka_stream_rendition_leave(rd);

    } else if (v->group) {
        ngx_queue_remove(&v->queue);
    }

    /* a replay's viewer has a group only once it came live */

    if (v->group == NULL) {
        return;
    }

    if (--v->group->nviewers == 0 && !v->group->all) {
        v->conf->source->idle_groups++;
    }

    ngx_http_kafka_stream_group_release(v->conf->source, v->group);
    v->group = NULL;
}


/*
 * A frame for a group: it becomes the latest (it may be already, after a
 * catch-up: see ngx_http_kafka_stream_group_keep()), its viewers get it.
 */

void
ngx_http_kafka_stream_publish(ngx_http_kafka_stream_group_t *g,
    ngx_http_kafka_stream_frame_t *f)
{
    if (g->latest != f) {
        if (g->latest) {
            ngx_http_kafka_stream_frame_release(g->latest);
        }

        g->latest = f;
        f->refs++;
    }

    g->updated = ngx_current_msec;
    g->caught = 0;

    ngx_http_kafka_stream_fan_out(&g->viewers, f);

    /* the sizes someone watches make it, and come back through made() */

    if (!ngx_queue_empty(&g->renditions)) {
        ngx_http_kafka_stream_renditions_source(g, f);
    }
}


/*
 * A rendition's new frame (its "made" hook), to the viewers of that size;
 * the walls' hook calls it too (src/..._wall.c)
 */

void
ngx_http_kafka_stream_made(ngx_http_kafka_stream_rendition_t *rd,
    ngx_http_kafka_stream_frame_t *f)
{
    if (f) {
        ngx_http_kafka_stream_fan_out(&rd->viewers, f);
    }
}


static void
ngx_http_kafka_stream_fan_out(ngx_queue_t *viewers,
    ngx_http_kafka_stream_frame_t *f)
{
    ngx_queue_t                     *q, *next;
    ngx_http_kafka_stream_viewer_t  *v;

    for (q = ngx_queue_head(viewers);
         q != ngx_queue_sentinel(viewers);
         q = next)
    {
        next = ngx_queue_next(q);
        v = ngx_queue_data(q, ngx_http_kafka_stream_viewer_t, queue);

        /* its size, by its first frame: a rendition's viewer gets it there */

        if (v->undecided && ngx_http_kafka_stream_resize_viewer(v, f)) {
            continue;
        }

        /* a viewer that came from a replay has had this frame already */

        if (v->floor && f->partition == v->floor_partition) {
            if (f->offset <= v->floor_offset) {
                continue;
            }

            v->floor = 0;
        }

        /* ?fps=: too early, held */

        if (!ngx_http_kafka_stream_rate_admit(&v->rate, f)) {
            continue;
        }

        ngx_http_kafka_stream_offer(v, f);
    }
}


/*
 * A viewer that asked for a size before any frame came decides it by the
 * first: 1 when it goes to a rendition (which makes "f" next, as its
 * group's newest), 0 when it stays with the source's frames.
 */

static ngx_uint_t
ngx_http_kafka_stream_resize_viewer(ngx_http_kafka_stream_viewer_t *v,
    ngx_http_kafka_stream_frame_t *f)
{
    ngx_http_kafka_stream_rendition_t  *rd;

    v->undecided = 0;
    v->width = ngx_http_kafka_stream_size_pick(v->conf, v->ask_width,
                                               v->ask_height, f);
    if (v->width == 0) {
        return 0;
    }

    rd = ngx_http_kafka_stream_rendition(v->conf->source, v->group, v->width,
                                         v->conf->quality,
                                         ngx_http_kafka_stream_made);
    if (rd == NULL) {
        /* no memory for it: the source's frames rather than none */
        v->width = 0;
        return 0;
    }

    ngx_queue_remove(&v->queue);
    ngx_queue_insert_tail(&rd->viewers, &v->queue);
    ngx_http_kafka_stream_rendition_join(rd);
    v->rendition = rd;

    return 1;
}


/* a frame the rate held goes after all: nothing newer came */

static void
ngx_http_kafka_stream_rate_pass(void *data, ngx_http_kafka_stream_frame_t *f)
{
    ngx_http_kafka_stream_viewer_t  *v = data;

    ngx_http_set_log_request(v->request->connection->log, v->request);

    ngx_http_kafka_stream_offer(v, f);
}


/*
 * A new frame for a viewer: it replaces one that still waits.  An idle
 * viewer starts on it at once, so that a burst of frames from one fetch
 * reaches every viewer that can take it.
 */

void
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

    if (v->rendition && v->replay == NULL) {
        f = v->rendition->latest;

    } else {
#if (NGX_THREADS)
        f = v->replay ? v->replay_shown(v->replay) : v->group->latest;
#else
        f = v->group->latest;
#endif
    }

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
    ngx_http_kafka_stream_viewer_t  *v;

    if (ngx_http_kafka_stream_writable(r) != NGX_OK) {
        return;
    }

    v = ngx_http_get_module_ctx(r, ngx_http_kafka_stream_module);

    ngx_http_kafka_stream_send(v);
}


/*
 * A stream's write event: NGX_OK when it may write, NGX_DECLINED while
 * limit_rate holds it back, NGX_ERROR when it timed out (and is finished).
 */

ngx_int_t
ngx_http_kafka_stream_writable(ngx_http_request_t *r)
{
    ngx_event_t       *wev;
    ngx_connection_t  *c;

    c = r->connection;
    wev = c->write;

    if (wev->timedout) {
        if (!wev->delayed) {
            ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                          "client timed out");
            c->timedout = 1;
            ngx_http_finalize_request(r, NGX_ERROR);
            return NGX_ERROR;
        }

        /* limit_rate's delay is over */

        wev->timedout = 0;
        wev->delayed = 0;
    }

    return wev->delayed ? NGX_DECLINED : NGX_OK;
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
    if (rc == NGX_OK && v->conf->idle_resend && !v->finish) {
        ngx_add_timer(&v->resend, v->conf->idle_resend);
    }

    return ngx_http_kafka_stream_write_wait(v->request, rc);
}


/*
 * After a stream wrote what it could (rc: NGX_OK all of it, NGX_AGAIN
 * not all): a write event and send_timeout for the rest, or neither.
 */

ngx_int_t
ngx_http_kafka_stream_write_wait(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_event_t               *wev;
    ngx_http_core_loc_conf_t  *clcf;

    wev = r->connection->write;
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (rc == NGX_AGAIN) {
        if (!wev->delayed) {
            ngx_add_timer(wev, clcf->send_timeout);
        }

        return ngx_handle_write_event(wev, clcf->send_lowat);
    }

    if (wev->timer_set && !wev->delayed) {
        ngx_del_timer(wev);
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


ngx_int_t
ngx_http_kafka_stream_flushed(ngx_http_request_t *r)
{
    return r->out == NULL && !r->buffered && !r->connection->buffered;
}


/* ends a stream with the closing boundary, or a snapshot wait with 503 */

static void
ngx_http_kafka_stream_close(ngx_http_kafka_stream_viewer_t *v)
{
    ngx_str_t            reason;
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

    /* a part on the wire: no closing boundary after half a part */

    if (v->sending) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    ngx_http_kafka_stream_end(r, v->conf, &v->bufs[0], &v->chain[0]);
}


/*
 * The closing boundary, from "b", and the end of the request.  A stream
 * that cannot take it at once is closed without it: waiting for it would
 * hold an exiting worker.
 */

void
ngx_http_kafka_stream_end(ngx_http_request_t *r,
    ngx_http_kafka_stream_loc_conf_t *kslcf, ngx_buf_t *b, ngx_chain_t *cl)
{
    ngx_int_t  rc;

    if (!ngx_http_kafka_stream_flushed(r)) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    ngx_memzero(b, sizeof(ngx_buf_t));

    b->pos = kslcf->closing.data;
    b->last = kslcf->closing.data + kslcf->closing.len;
    b->memory = 1;
    b->last_buf = 1;

    cl->buf = b;
    cl->next = NULL;

    rc = ngx_http_output_filter(r, cl);

    if (rc != NGX_OK || !ngx_http_kafka_stream_flushed(r)) {
        rc = NGX_ERROR;
    }

    ngx_http_finalize_request(r, rc);
}


/*
 * A graceful shutdown, which the consumer's tick noticed: every stream
 * ends now, so that old workers leave at once on reload.
 */

void
ngx_http_kafka_stream_close_viewers(ngx_http_kafka_stream_worker_t *w)
{
    ngx_queue_t                     *q;
    ngx_http_kafka_stream_viewer_t  *v;
    ngx_connection_t                *c;

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


/* the worker exits: on a fast shutdown the viewers are still here */

void
ngx_http_kafka_stream_finalize_viewers(ngx_http_kafka_stream_worker_t *w)
{
    ngx_queue_t                     *q;
    ngx_http_kafka_stream_viewer_t  *v;

    while (!ngx_queue_empty(&w->viewers)) {
        q = ngx_queue_head(&w->viewers);
        v = ngx_queue_data(q, ngx_http_kafka_stream_viewer_t, link);

        ngx_queue_remove(q);
        v->listed = 0;

        ngx_http_finalize_request(v->request, NGX_ERROR);
    }

    /* what is left: renditions whose last tasks ended unseen */

    ngx_http_kafka_stream_rendition_exit(w);
}


/* one image as an ordinary response */

ngx_int_t
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
