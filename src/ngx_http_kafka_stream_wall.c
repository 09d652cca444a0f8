
/*
 * Walls: the live frames of many cameras (keys) in one response, so that
 * a page shows a whole wall of them over one connection.  A wall is a
 * request of a kafka_stream_wall location: every key its worker has seen
 * on the location's partitions, keys that appear later joining, or the
 * keys of ?keys=a,b,c.  Each part starts with an "X-Key:" line, the key
 * percent-encoded (every byte but A-Z a-z 0-9 - . _ ~ as %XX), made once
 * per camera of the wall; the frame's own header, image and boundary
 * follow, shared with every viewer as they are.
 *
 * Each camera of a wall has a slot for one frame waiting; a newer frame
 * of that camera replaces it (newest frame wins, per camera).  Cameras
 * with a frame waiting queue in the order their frame began to wait, and
 * when the socket has taken all that was written, the wall writes one
 * part of each of them, in that order, in one go: a camera that sends
 * 25 frames a second has one part in a round as a quiet one has, so it
 * can delay a quiet camera's frame by one part at most.  Parts on the
 * wire stay there until the kernel has them; the kernel holds little
 * (TCP_NOTSENT_LOWAT), so a slow reader's wall shows each camera's
 * newest frame, one round late at most.
 *
 * The consumer gives frames to the walls through the module's publish
 * hook, which passes them on to the viewers (src/..._live.c); the end of
 * the worker too.  A camera counts as a viewer of its key's group, so the
 * group and its latest frame stay while a wall shows it.  A wall needs
 * read what its cameras show, as a viewer does (src/..._partitions.c):
 * each key of ?keys= its partition (a need per camera), a wall of every
 * key all partitions (one need); a partition that starts for it catches
 * up, and the newest frame of each key found there comes to the wall at
 * once.
 *
 * ?width=, ?height= and ?fps= apply to every camera of a wall, as to a
 * viewer (src/..._rendition.c, src/..._rate.c): a camera takes its key's
 * rendition of the size picked by its first frame, shared with the
 * viewers and the other walls' cameras of that key and size (the
 * renditions' "made" hook is the walls' then, which hands the frame to
 * the viewers, then to the cameras), and each camera has a rate of its
 * own.  Beside the
 * viewers: it uses their response header and the end of a stream, and
 * the frames and groups (src/..._frame.c) below.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kafka_stream.h"


#define NGX_HTTP_KAFKA_STREAM_KEY_HEADER  "X-Key: "


typedef struct ngx_http_kafka_stream_wall_s  ngx_http_kafka_stream_wall_t;


/* a camera of a wall: one key's group, its waiting frame, its part */

typedef struct {
    ngx_queue_t                     queue;     /* in group->walls */
    ngx_queue_t                     ready;     /* in wall->ready */
    ngx_queue_t                     flight;    /* in wall->flight */
    ngx_http_kafka_stream_wall_t   *wall;
    ngx_http_kafka_stream_group_t  *group;

    ngx_http_kafka_stream_frame_t  *waiting;   /* next to send */
    ngx_http_kafka_stream_frame_t  *sending;   /* on the wire */
    ngx_msec_t                      sent;      /* its last part, then */

    ngx_http_kafka_stream_rendition_t  *rendition;  /* of its size */
    ngx_queue_t                     sized;     /* in rendition->walls */
    ngx_http_kafka_stream_rate_t    rate;      /* ?fps= */
    unsigned                        undecided:1;  /* its size: at a frame */

    ngx_str_t                       line;      /* "X-Key: ..." CRLF */

    ngx_http_kafka_stream_need_t    need;      /* its key's partition */

    ngx_buf_t                       bufs[4];
    ngx_chain_t                     chain[4];
#if (NGX_HTTP_KAFKA_STREAM_IN_FILE)
    ngx_file_t                      file;      /* its frame's memfd */
#endif
} ngx_http_kafka_stream_camera_t;


struct ngx_http_kafka_stream_wall_s {
    ngx_http_request_t             *request;
    ngx_http_kafka_stream_loc_conf_t  *conf;
    ngx_queue_t                     link;      /* in worker->walls */
    ngx_queue_t                     every;     /* in source->walls */

    ngx_array_t                     cameras;   /* of camera_t * */
    ngx_queue_t                     ready;     /* cameras, a frame waiting */
    ngx_queue_t                     flight;    /* cameras, a part out */

    ngx_event_t                     send;      /* posted on a new frame */
    ngx_event_t                     resend;    /* idle re-send timer */

    ngx_buf_t                       buf;       /* the boundaries */
    ngx_chain_t                     out;

    ngx_http_kafka_stream_need_t    need;      /* a wall of every key */

    ngx_http_kafka_stream_view_args_t  view;   /* ?fps=, ?width=, ?height= */

    unsigned                        all:1;     /* every key, in every */
    unsigned                        counted:1;
    unsigned                        listed:1;
};


static ngx_int_t ngx_http_kafka_stream_wall_keys(ngx_http_request_t *r,
    ngx_http_kafka_stream_wall_t *w, ngx_str_t *reason);
static ngx_http_kafka_stream_wall_t *ngx_http_kafka_stream_wall(
    ngx_http_request_t *r, ngx_http_kafka_stream_loc_conf_t *kslcf,
    ngx_http_kafka_stream_view_args_t *va);
static ngx_int_t ngx_http_kafka_stream_wall_add(ngx_http_kafka_stream_wall_t *w,
    ngx_http_kafka_stream_group_t *g);
static void ngx_http_kafka_stream_wall_watch(ngx_http_kafka_stream_wall_t *w);
static void ngx_http_kafka_stream_wall_cleanup(void *data);
static ngx_uint_t ngx_http_kafka_stream_wall_resize(
    ngx_http_kafka_stream_camera_t *c, ngx_http_kafka_stream_frame_t *f);
static void ngx_http_kafka_stream_wall_made(
    ngx_http_kafka_stream_rendition_t *rd, ngx_http_kafka_stream_frame_t *f);
static void ngx_http_kafka_stream_wall_rate_pass(void *data,
    ngx_http_kafka_stream_frame_t *f);
static void ngx_http_kafka_stream_wall_admit(
    ngx_http_kafka_stream_camera_t *c, ngx_http_kafka_stream_frame_t *f);
static void ngx_http_kafka_stream_wall_offer(
    ngx_http_kafka_stream_camera_t *c, ngx_http_kafka_stream_frame_t *f);
static ngx_http_kafka_stream_frame_t *ngx_http_kafka_stream_wall_latest(
    ngx_http_kafka_stream_camera_t *c);
static void ngx_http_kafka_stream_wall_send_handler(ngx_event_t *ev);
static void ngx_http_kafka_stream_wall_resend_handler(ngx_event_t *ev);
static void ngx_http_kafka_stream_wall_writer(ngx_http_request_t *r);
static void ngx_http_kafka_stream_wall_send(ngx_http_kafka_stream_wall_t *w);
static ngx_int_t ngx_http_kafka_stream_wall_push(
    ngx_http_kafka_stream_wall_t *w);
static ngx_chain_t **ngx_http_kafka_stream_wall_part(
    ngx_http_kafka_stream_camera_t *c, ngx_chain_t **last);
static void ngx_http_kafka_stream_wall_close(ngx_http_kafka_stream_wall_t *w);


/* a wall's request: its cameras, the response header, the latest frames */

ngx_int_t
ngx_http_kafka_stream_wall_start(ngx_http_request_t *r,
    ngx_http_kafka_stream_loc_conf_t *kslcf,
    ngx_http_kafka_stream_view_args_t *va)
{
    ngx_int_t                         rc;
    ngx_str_t                         reason;
    ngx_uint_t                        i;
    ngx_queue_t                      *q;
    ngx_http_kafka_stream_group_t    *g;
    ngx_http_kafka_stream_source_t   *src;
    ngx_http_kafka_stream_frame_t    *f;
    ngx_http_kafka_stream_camera_t  **cams, *c;
    ngx_http_kafka_stream_wall_t     *w;

    src = kslcf->source;

    w = ngx_http_kafka_stream_wall(r, kslcf, va);
    if (w == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_kafka_stream_wall_keys(r, w, &reason);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return ngx_http_kafka_stream_refuse(r, rc, &reason);
    }

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {

        /* every key seen, and those to come (wall_publish) */

        w->all = 1;
        ngx_queue_insert_tail(&src->walls, &w->every);

        for (q = ngx_queue_head(&src->groups);
             q != ngx_queue_sentinel(&src->groups)
             && w->cameras.nelts < kslcf->wall_keys;
             q = ngx_queue_next(q))
        {
            g = ngx_queue_data(q, ngx_http_kafka_stream_group_t, queue);

            /* a key seen since the start, even if its partition stopped */

            if (!g->latest && !g->walled) {
                continue;
            }

            g->walled = 1;

            if (ngx_http_kafka_stream_wall_add(w, g) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }
    }

    kslcf->viewers++;
    (void) ngx_atomic_fetch_add(&src->counters->walls, 1);
    w->counted = 1;

    if (ngx_http_kafka_stream_multipart(r, kslcf) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_kafka_stream_begin(r, kslcf,
                                     ngx_http_kafka_stream_wall_writer,
                                     &w->buf, &w->out);

    if (rc != NGX_OK || r->header_only) {
        return rc;
    }

    /* a stream now: the end of the worker ends it */

    ngx_queue_insert_tail(&ngx_http_kafka_stream_worker->walls, &w->link);
    w->listed = 1;

    r->main->count++;

    ngx_http_kafka_stream_wall_watch(w);

    /*
     * The wall fills at once with each camera's latest frame, at its size
     * if it is made already; else the rendition makes it now (want()).
     */

    cams = w->cameras.elts;

    for (i = 0; i < w->cameras.nelts; i++) {
        c = cams[i];
        f = c->group->latest;

        if (f == NULL) {
            continue;
        }

        if (c->undecided) {
            (void) ngx_http_kafka_stream_wall_resize(c, f);
        }

        if (c->rendition) {
            if (!ngx_http_kafka_stream_rendition_current(c->rendition)) {
                continue;
            }

            f = c->rendition->latest;
        }

        ngx_http_kafka_stream_wall_admit(c, f);
    }

    if (ngx_queue_empty(&w->ready) && kslcf->idle_resend) {
        ngx_add_timer(&w->resend, kslcf->idle_resend);
    }

    return NGX_DONE;
}


/*
 * ?keys=a,b,c: each key percent-decoded, a camera each.  NGX_DECLINED
 * without the argument (every key), NGX_OK, NGX_ERROR, or 400 with the
 * reason why.
 */

static ngx_int_t
ngx_http_kafka_stream_wall_keys(ngx_http_request_t *r,
    ngx_http_kafka_stream_wall_t *w, ngx_str_t *reason)
{
    size_t                           n;
    u_char                          *p, *last, *comma, *key;
    ngx_str_t                        arg;
    ngx_uint_t                       i, dup;
    ngx_http_kafka_stream_group_t   *g;
    ngx_http_kafka_stream_source_t  *src;
    ngx_http_kafka_stream_camera_t **cams;

    if (ngx_http_arg(r, (u_char *) "keys", 4, &arg) != NGX_OK) {
        return NGX_DECLINED;
    }

    src = w->conf->source;

    /* a decoded key is never longer than its encoding */

    key = ngx_pnalloc(r->pool, arg.len);
    if (key == NULL && arg.len) {
        return NGX_ERROR;
    }

    p = arg.data;
    last = arg.data + arg.len;

    for ( ;; ) {
        comma = ngx_strlchr(p, last, ',');
        if (comma == NULL) {
            comma = last;
        }

        if (comma == p) {
            ngx_str_set(reason, "keys: a key is empty (keys=a,b,c: each "
                                "one percent-encoded)");
            return NGX_HTTP_BAD_REQUEST;
        }

        if (ngx_http_kafka_stream_unescape_key(key, p, comma - p, &n) != 0) {
            ngx_str_set(reason, "keys: malformed percent-encoding (a \"%\" "
                                "must be followed by two hex digits)");
            return NGX_HTTP_BAD_REQUEST;
        }

        if (n > NGX_HTTP_KAFKA_STREAM_MAX_KEY) {
            reason->data = ngx_pnalloc(r->pool, 64);
            if (reason->data == NULL) {
                return NGX_ERROR;
            }

            reason->len = ngx_sprintf(reason->data,
                                      "keys: a key is longer than %d bytes",
                                      NGX_HTTP_KAFKA_STREAM_MAX_KEY)
                          - reason->data;
            return NGX_HTTP_BAD_REQUEST;
        }

        g = ngx_http_kafka_stream_group(src, key, n, 1);
        if (g == NULL) {
            return NGX_ERROR;
        }

        /* a key asked for twice is one camera */

        dup = 0;
        cams = w->cameras.elts;

        for (i = 0; i < w->cameras.nelts; i++) {
            if (cams[i]->group == g) {
                dup = 1;
                break;
            }
        }

        if (!dup) {
            if (w->cameras.nelts == w->conf->wall_keys) {
                ngx_http_kafka_stream_group_release(src, g);

                reason->data = ngx_pnalloc(r->pool, 96);
                if (reason->data == NULL) {
                    return NGX_ERROR;
                }

                reason->len = ngx_sprintf(reason->data,
                                          "keys: more than %ui keys "
                                          "(kafka_stream_wall_keys)",
                                          w->conf->wall_keys)
                              - reason->data;
                return NGX_HTTP_BAD_REQUEST;
            }

            if (ngx_http_kafka_stream_wall_add(w, g) != NGX_OK) {
                ngx_http_kafka_stream_group_release(src, g);
                return NGX_ERROR;
            }
        }

        if (comma == last) {
            return NGX_OK;
        }

        p = comma + 1;
    }
}


/* the request's wall; the request pool's cleanup undoes what is done for it */

static ngx_http_kafka_stream_wall_t *
ngx_http_kafka_stream_wall(ngx_http_request_t *r,
    ngx_http_kafka_stream_loc_conf_t *kslcf,
    ngx_http_kafka_stream_view_args_t *va)
{
    ngx_pool_cleanup_t            *cln;
    ngx_http_kafka_stream_wall_t  *w;

    w = ngx_pcalloc(r->pool, sizeof(ngx_http_kafka_stream_wall_t));
    if (w == NULL) {
        return NULL;
    }

    if (ngx_array_init(&w->cameras, r->pool, 16,
                       sizeof(ngx_http_kafka_stream_camera_t *))
        != NGX_OK)
    {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    w->request = r;
    w->conf = kslcf;
    w->view = *va;
    ngx_queue_init(&w->ready);
    ngx_queue_init(&w->flight);

    ngx_http_set_ctx(r, w, ngx_http_kafka_stream_module);

    cln->handler = ngx_http_kafka_stream_wall_cleanup;
    cln->data = w;

    w->send.handler = ngx_http_kafka_stream_wall_send_handler;
    w->send.data = w;
    w->send.log = r->connection->log;

    w->resend.handler = ngx_http_kafka_stream_wall_resend_handler;
    w->resend.data = w;
    w->resend.log = r->connection->log;
    w->resend.cancelable = 1;

    return w;
}


/* a camera: the wall shows the group's frames from now on */

static ngx_int_t
ngx_http_kafka_stream_wall_add(ngx_http_kafka_stream_wall_t *w,
    ngx_http_kafka_stream_group_t *g)
{
    u_char                           *p;
    ngx_pool_t                       *pool;
    ngx_http_kafka_stream_camera_t   *c, **cp;

    pool = w->request->pool;

    cp = ngx_array_push(&w->cameras);
    if (cp == NULL) {
        return NGX_ERROR;
    }

    c = ngx_pcalloc(pool, sizeof(ngx_http_kafka_stream_camera_t)
                          + sizeof(NGX_HTTP_KAFKA_STREAM_KEY_HEADER) - 1
                          + 3 * g->key.len + 2);
    if (c == NULL) {
        w->cameras.nelts--;
        return NGX_ERROR;
    }

    *cp = c;

    /* the part's first header line, made once for all its frames */

    c->line.data = (u_char *) c + sizeof(ngx_http_kafka_stream_camera_t);
    p = ngx_cpymem(c->line.data, NGX_HTTP_KAFKA_STREAM_KEY_HEADER,
                   sizeof(NGX_HTTP_KAFKA_STREAM_KEY_HEADER) - 1);
    p += ngx_http_kafka_stream_escape_key(p, g->key.data, g->key.len);
    *p++ = CR;
    *p++ = LF;
    c->line.len = p - c->line.data;

    c->wall = w;
    c->group = g;

    /* its size is picked by its first frame, as a viewer's is */

    c->undecided = ngx_http_kafka_stream_view_sized(w->conf, &w->view);

    ngx_http_kafka_stream_rate_init(&c->rate, w->view.interval,
                                    w->view.interval,
                                    ngx_http_kafka_stream_wall_rate_pass, c,
                                    w->request->connection->log);

#if (NGX_HTTP_KAFKA_STREAM_IN_FILE)
    ngx_str_set(&c->file.name, "kafka stream frame");
    c->file.log = w->request->connection->log;
#endif

    /* a watched group is not an idle one: it and its frame stay */

    if (g->nviewers++ == 0) {
        g->source->idle_groups--;
    }

    ngx_queue_insert_tail(&g->walls, &c->queue);

    return NGX_OK;
}


/*
 * What the wall's cameras need read: all partitions (or the location's
 * one) for a wall of every key, else each key's partition.  A key's
 * bytes stay in its group while the camera holds it.
 */

static void
ngx_http_kafka_stream_wall_watch(ngx_http_kafka_stream_wall_t *w)
{
    ngx_uint_t                          i;
    ngx_http_kafka_stream_loc_conf_t   *kslcf;
    ngx_http_kafka_stream_camera_t    **cams;

    kslcf = w->conf;

    if (w->all) {
        ngx_http_kafka_stream_need(&w->need, kslcf->source->topic,
                                   kslcf->partition, NULL, NULL);
        return;
    }

    cams = w->cameras.elts;

    for (i = 0; i < w->cameras.nelts; i++) {
        ngx_http_kafka_stream_need(&cams[i]->need, kslcf->source->topic,
                                   kslcf->partition,
                                   kslcf->partitioner->place,
                                   &cams[i]->group->key);
    }
}


static void
ngx_http_kafka_stream_wall_cleanup(void *data)
{
    ngx_http_kafka_stream_wall_t *w = data;

    ngx_uint_t                        i;
    ngx_http_kafka_stream_group_t    *g;
    ngx_http_kafka_stream_camera_t  **cams, *c;

    cams = w->cameras.elts;

    for (i = 0; i < w->cameras.nelts; i++) {
        c = cams[i];
        g = c->group;

        ngx_queue_remove(&c->queue);
        ngx_http_kafka_stream_need_release(&c->need);
        ngx_http_kafka_stream_rate_free(&c->rate);

        if (c->rendition) {
            ngx_queue_remove(&c->sized);
            ngx_http_kafka_stream_rendition_leave(c->rendition);
            c->rendition = NULL;
        }

        if (--g->nviewers == 0) {
            g->source->idle_groups++;
        }

        ngx_http_kafka_stream_group_release(g->source, g);

        ngx_http_kafka_stream_frame_drop(&c->waiting);
        ngx_http_kafka_stream_frame_drop(&c->sending);
    }

    w->cameras.nelts = 0;

    if (w->all) {
        ngx_queue_remove(&w->every);
        w->all = 0;
    }

    ngx_http_kafka_stream_need_release(&w->need);

    if (w->listed) {
        ngx_queue_remove(&w->link);
        w->listed = 0;
    }

    if (w->counted) {
        w->conf->viewers--;
        (void) ngx_atomic_fetch_add(&w->conf->source->counters->walls, -1);
        w->counted = 0;
    }

    if (w->send.posted) {
        ngx_delete_posted_event(&w->send);
    }

    if (w->resend.timer_set) {
        ngx_del_timer(&w->resend);
    }
}


/*
 * The consumer's publish hook: a frame for a group goes to its viewers,
 * then to the cameras of walls that show it.  A key's first frame (or the
 * first of a catch-up, see ngx_http_kafka_stream_group_keep()) makes it a
 * camera of every wall of every key of its source, with room left.
 */

void
ngx_http_kafka_stream_wall_publish(ngx_http_kafka_stream_group_t *g,
    ngx_http_kafka_stream_frame_t *f)
{
    ngx_queue_t                     *q;
    ngx_http_kafka_stream_wall_t    *w;
    ngx_http_kafka_stream_camera_t  *c;

    if (!g->all && !g->walled) {
        g->walled = 1;

        for (q = ngx_queue_head(&g->source->walls);
             q != ngx_queue_sentinel(&g->source->walls);
             q = ngx_queue_next(q))
        {
            w = ngx_queue_data(q, ngx_http_kafka_stream_wall_t, every);

            if (w->cameras.nelts < w->conf->wall_keys
                && ngx_http_kafka_stream_wall_add(w, g) != NGX_OK)
            {
                ngx_log_error(NGX_LOG_ERR, w->request->connection->log, 0,
                              "kafka stream: no memory for a wall's camera");
            }
        }
    }

    ngx_http_kafka_stream_publish(g, f);

    for (q = ngx_queue_head(&g->walls);
         q != ngx_queue_sentinel(&g->walls);
         q = ngx_queue_next(q))
    {
        c = ngx_queue_data(q, ngx_http_kafka_stream_camera_t, queue);

        /* a camera of a size gets the frame from its rendition, made */

        if (c->undecided && ngx_http_kafka_stream_wall_resize(c, f)) {
            continue;
        }

        if (c->rendition == NULL) {
            ngx_http_kafka_stream_wall_admit(c, f);
        }
    }
}


/*
 * A camera whose wall asked for a size picks it by its first frame: 1
 * when it takes the rendition of that size (which makes "f" next, the
 * group's newest, unless it has or makes it), 0 when it stays with the
 * source's frames (no smaller size asked for, or no memory for one).
 */

static ngx_uint_t
ngx_http_kafka_stream_wall_resize(ngx_http_kafka_stream_camera_t *c,
    ngx_http_kafka_stream_frame_t *f)
{
    ngx_uint_t                          width;
    ngx_http_kafka_stream_wall_t       *w;
    ngx_http_kafka_stream_rendition_t  *rd;

    w = c->wall;
    c->undecided = 0;

    width = ngx_http_kafka_stream_size_pick(w->conf, w->view.width,
                                            w->view.height, f);
    if (width == 0) {
        return 0;
    }

    rd = ngx_http_kafka_stream_rendition(w->conf->source, c->group, width,
                                         w->conf->quality,
                                         ngx_http_kafka_stream_wall_made);
    if (rd == NULL) {
        return 0;
    }

    /* made by a viewer's first: its viewers get what it makes all the same */

    rd->made = ngx_http_kafka_stream_wall_made;

    ngx_queue_insert_tail(&rd->walls, &c->sized);
    ngx_http_kafka_stream_rendition_join(rd);
    c->rendition = rd;

    ngx_http_kafka_stream_rendition_want(rd);

    return 1;
}


/* the renditions' "made" hook: a frame at a size, to viewers and cameras */

static void
ngx_http_kafka_stream_wall_made(ngx_http_kafka_stream_rendition_t *rd,
    ngx_http_kafka_stream_frame_t *f)
{
    ngx_queue_t                     *q;
    ngx_http_kafka_stream_camera_t  *c;

    /*
     * Without cameras, the viewers only: a viewer that ends there may take
     * the rendition with it.  A camera holds it, so the cameras' turn is
     * safe after the viewers'.
     */

    if (ngx_queue_empty(&rd->walls)) {
        ngx_http_kafka_stream_made(rd, f);
        return;
    }

    ngx_http_kafka_stream_made(rd, f);

    if (f == NULL) {
        return;
    }

    for (q = ngx_queue_head(&rd->walls);
         q != ngx_queue_sentinel(&rd->walls);
         q = ngx_queue_next(q))
    {
        c = ngx_queue_data(q, ngx_http_kafka_stream_camera_t, sized);
        ngx_http_kafka_stream_wall_admit(c, f);
    }
}


/* ?fps=: a frame too early is held; the newest held goes in time */

static void
ngx_http_kafka_stream_wall_admit(ngx_http_kafka_stream_camera_t *c,
    ngx_http_kafka_stream_frame_t *f)
{
    if (ngx_http_kafka_stream_rate_admit(&c->rate, f)) {
        ngx_http_kafka_stream_wall_offer(c, f);
    }
}


static void
ngx_http_kafka_stream_wall_rate_pass(void *data,
    ngx_http_kafka_stream_frame_t *f)
{
    ngx_http_kafka_stream_camera_t *c = data;

    ngx_http_kafka_stream_wall_offer(c, f);
}


/*
 * A new frame for a camera: it replaces the one that still waits, which
 * keeps its place in the queue.  The wall writes from a posted event,
 * after the frames of this fetch are in; a wall with parts on the wire
 * goes on from its write event.
 */

static void
ngx_http_kafka_stream_wall_offer(ngx_http_kafka_stream_camera_t *c,
    ngx_http_kafka_stream_frame_t *f)
{
    ngx_http_kafka_stream_wall_t  *w;

    w = c->wall;

    if (c->waiting) {
        ngx_http_kafka_stream_frame_release(c->waiting);
        (void) ngx_atomic_fetch_add(&w->conf->source->counters->drops, 1);

    } else {
        ngx_queue_insert_tail(&w->ready, &c->ready);
    }

    f->refs++;
    c->waiting = f;

    if (ngx_queue_empty(&w->flight) && !w->send.posted) {
        ngx_post_event(&w->send, &ngx_posted_events);
    }
}


static void
ngx_http_kafka_stream_wall_send_handler(ngx_event_t *ev)
{
    ngx_connection_t              *c;
    ngx_http_kafka_stream_wall_t  *w;

    w = ev->data;
    c = w->request->connection;

    ngx_http_set_log_request(c->log, w->request);

    ngx_http_kafka_stream_wall_send(w);

    ngx_http_run_posted_requests(c);
}


/* a camera's newest frame at its size, for the idle re-send */

static ngx_http_kafka_stream_frame_t *
ngx_http_kafka_stream_wall_latest(ngx_http_kafka_stream_camera_t *c)
{
    return c->rendition ? c->rendition->latest : c->group->latest;
}


/* nothing went for a while: the camera sent longest ago, again */

static void
ngx_http_kafka_stream_wall_resend_handler(ngx_event_t *ev)
{
    ngx_uint_t                        i;
    ngx_http_kafka_stream_wall_t     *w;
    ngx_http_kafka_stream_camera_t  **cams, *c, *oldest;

    w = ev->data;

    oldest = NULL;
    cams = w->cameras.elts;

    for (i = 0; i < w->cameras.nelts; i++) {
        c = cams[i];

        if (ngx_http_kafka_stream_wall_latest(c) == NULL
            || c->waiting || c->sending)
        {
            continue;
        }

        if (oldest == NULL || (ngx_msec_int_t) (c->sent - oldest->sent) < 0) {
            oldest = c;
        }
    }

    if (oldest) {
        ngx_http_kafka_stream_wall_offer(oldest,
                                     ngx_http_kafka_stream_wall_latest(oldest));

    } else if (ngx_queue_empty(&w->ready)) {
        ngx_add_timer(&w->resend, w->conf->idle_resend);
    }
}


static void
ngx_http_kafka_stream_wall_writer(ngx_http_request_t *r)
{
    ngx_http_kafka_stream_wall_t  *w;

    if (ngx_http_kafka_stream_writable(r) != NGX_OK) {
        return;
    }

    w = ngx_http_get_module_ctx(r, ngx_http_kafka_stream_module);

    ngx_http_kafka_stream_wall_send(w);
}


static void
ngx_http_kafka_stream_wall_send(ngx_http_kafka_stream_wall_t *w)
{
    ngx_int_t  rc;

    rc = ngx_http_kafka_stream_wall_push(w);

    if (rc == NGX_OK && w->conf->idle_resend) {
        ngx_add_timer(&w->resend, w->conf->idle_resend);
    }

    if (rc != NGX_ERROR) {
        rc = ngx_http_kafka_stream_write_wait(w->request, rc);
    }

    if (rc == NGX_ERROR) {
        ngx_http_finalize_request(w->request, NGX_ERROR);
    }
}


/*
 * Once what went before is out, a round: one part of every camera with a
 * frame waiting, oldest waiting first, in one write.  NGX_OK when all is
 * out, NGX_AGAIN when the socket is full.
 */

static ngx_int_t
ngx_http_kafka_stream_wall_push(ngx_http_kafka_stream_wall_t *w)
{
    ngx_queue_t                     *q;
    ngx_chain_t                     *out, **last;
    ngx_http_request_t              *r;
    ngx_http_kafka_stream_camera_t  *c;

    r = w->request;

    for ( ;; ) {

        if (!ngx_http_kafka_stream_flushed(r)) {
            if (ngx_http_output_filter(r, NULL) == NGX_ERROR) {
                return NGX_ERROR;
            }

            if (!ngx_http_kafka_stream_flushed(r)) {
                return NGX_AGAIN;
            }
        }

        while (!ngx_queue_empty(&w->flight)) {
            q = ngx_queue_head(&w->flight);
            c = ngx_queue_data(q, ngx_http_kafka_stream_camera_t, flight);

            ngx_queue_remove(q);
            ngx_http_kafka_stream_frame_drop(&c->sending);
            (void) ngx_atomic_fetch_add(
                                  &w->conf->source->counters->parts_sent, 1);
        }

        if (ngx_queue_empty(&w->ready)) {
            return NGX_OK;
        }

        out = NULL;
        last = &out;

        while (!ngx_queue_empty(&w->ready)) {
            q = ngx_queue_head(&w->ready);
            c = ngx_queue_data(q, ngx_http_kafka_stream_camera_t, ready);

            ngx_queue_remove(q);
            ngx_queue_insert_tail(&w->flight, &c->flight);

            c->sending = c->waiting;
            c->waiting = NULL;
            c->sent = ngx_current_msec;

            last = ngx_http_kafka_stream_wall_part(c, last);
        }

        if (ngx_http_output_filter(r, out) == NGX_ERROR) {
            return NGX_ERROR;
        }
    }
}


/*
 * A camera's part, linked after "last": its key line, then the frame's
 * header, image and the next boundary, all pointing into what is shared.
 */

static ngx_chain_t **
ngx_http_kafka_stream_wall_part(ngx_http_kafka_stream_camera_t *c,
    ngx_chain_t **last)
{
    ngx_uint_t                          i, n;
    ngx_buf_t                          *b;
    ngx_http_kafka_stream_frame_t      *f;
    ngx_http_kafka_stream_loc_conf_t   *kslcf;

    f = c->sending;
    kslcf = c->wall->conf;

    b = c->bufs;
    ngx_memzero(b, 4 * sizeof(ngx_buf_t));

    b[0].pos = c->line.data;
    b[0].last = c->line.data + c->line.len;
    b[0].memory = 1;

#if (NGX_HTTP_KAFKA_STREAM_IN_FILE)

    if (f->fd != NGX_INVALID_FILE && kslcf->separator_in_frame) {

        /* the rest of the part from the frame's memfd, as viewers have it */

        c->file.fd = f->fd;

        b[1].pos = f->header.data;
        b[1].last = f->header.data + f->mapped;
        b[1].memory = 1;
        b[1].in_file = 1;
        b[1].file = &c->file;
        b[1].file_pos = 0;
        b[1].file_last = f->mapped;
        b[1].flush = 1;

        n = 2;
        goto link;
    }

#endif

    b[1].pos = f->header.data;
    b[1].last = f->header.data + f->header.len;
    b[1].memory = 1;

    b[2].pos = f->image.data;
    b[2].last = f->image.data + f->image.len;
    b[2].memory = 1;

    b[3].pos = kslcf->separator.data;
    b[3].last = kslcf->separator.data + kslcf->separator.len;
    b[3].memory = 1;
    b[3].flush = 1;

    n = 4;

#if (NGX_HTTP_KAFKA_STREAM_IN_FILE)
link:
#endif

    for (i = 0; i < n; i++) {
        c->chain[i].buf = &b[i];
        c->chain[i].next = NULL;
        *last = &c->chain[i];
        last = &c->chain[i].next;
    }

    return last;
}


/* ends a wall with the closing boundary, unless a part is on the wire */

static void
ngx_http_kafka_stream_wall_close(ngx_http_kafka_stream_wall_t *w)
{
    if (w->resend.timer_set) {
        ngx_del_timer(&w->resend);
    }

    if (!ngx_queue_empty(&w->flight)) {
        ngx_http_finalize_request(w->request, NGX_ERROR);
        return;
    }

    ngx_http_kafka_stream_end(w->request, w->conf, &w->buf, &w->out);
}


/*
 * The consumer's shutdown hook (a graceful shutdown): every wall ends
 * now, then every viewer's stream.
 */

void
ngx_http_kafka_stream_wall_shutdown(ngx_http_kafka_stream_worker_t *wk)
{
    ngx_queue_t                   *q;
    ngx_connection_t              *c;
    ngx_http_kafka_stream_wall_t  *w;

    while (!ngx_queue_empty(&wk->walls)) {
        q = ngx_queue_head(&wk->walls);
        w = ngx_queue_data(q, ngx_http_kafka_stream_wall_t, link);

        ngx_queue_remove(q);
        w->listed = 0;

        c = w->request->connection;
        ngx_http_set_log_request(c->log, w->request);

        ngx_http_kafka_stream_wall_close(w);
        ngx_http_run_posted_requests(c);
    }

    ngx_http_kafka_stream_close_viewers(wk);
}


/* the exit hook: on a fast shutdown the walls are still here */

void
ngx_http_kafka_stream_wall_exit(ngx_http_kafka_stream_worker_t *wk)
{
    ngx_queue_t                   *q;
    ngx_http_kafka_stream_wall_t  *w;

    while (!ngx_queue_empty(&wk->walls)) {
        q = ngx_queue_head(&wk->walls);
        w = ngx_queue_data(q, ngx_http_kafka_stream_wall_t, link);

        ngx_queue_remove(q);
        w->listed = 0;

        ngx_http_finalize_request(w->request, NGX_ERROR);
    }

    ngx_http_kafka_stream_finalize_viewers(wk);
}
