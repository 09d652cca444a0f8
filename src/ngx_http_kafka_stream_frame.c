
/*
 * Frames and their key groups.  A message that passed the checks (a
 * complete PNG or JPEG, not too large; skipped() says why one did not)
 * is copied once, with its part header, into a buffer of its own or,
 * from NGX_HTTP_KAFKA_STREAM_FILE_MIN up, into a memfd that sendfile()
 * sends from; every viewer that shows it holds a reference.  Each source
 * groups its frames by key: the group keeps the key's latest frame and
 * its viewers, and a few keys nobody watches yet are kept for the next
 * viewer.  Near the bottom of the module's layers: it calls only the log
 * (src/..._log.c) and the parser; the consumer, the viewers and the
 * replays take frames and groups from here.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kafka_stream.h"


/* keyed groups kept per source for frames whose key no viewer asked for */
#define NGX_HTTP_KAFKA_STREAM_MAX_IDLE_KEYS 64


#if (NGX_HTTP_KAFKA_STREAM_IN_FILE)

static ngx_http_kafka_stream_frame_t *ngx_http_kafka_stream_frame_file(
    u_char *image, size_t len, u_char *header, size_t header_len);
static void ngx_http_kafka_stream_frame_unmap(u_char *p, size_t size,
    ngx_fd_t fd);


/* what follows the image in a frame's memfd: kafka_stream_boundary's default */
static ngx_str_t  ngx_http_kafka_stream_trailer =
    ngx_string(CRLF "--" NGX_HTTP_KAFKA_STREAM_BOUNDARY CRLF);

#endif


/* one copy of the message, with its part header made once for all */

ngx_http_kafka_stream_frame_t *
ngx_http_kafka_stream_frame(rd_kafka_message_t *msg, int type)
{
    int64_t                     ts;
    ngx_time_t                 *tp;
    rd_kafka_timestamp_type_t   tstype;

    ts = rd_kafka_message_timestamp(msg, &tstype);

    if (ts < 0) {
        tp = ngx_timeofday();
        ts = (int64_t) tp->sec * 1000 + tp->msec;
    }

    return ngx_http_kafka_stream_frame_make(msg->payload, msg->len, type, ts,
                                            msg->partition, msg->offset);
}


/*
 * A frame of these image bytes, taken from Kafka or made here (a
 * rendition's, src/..._rendition.c): the same kind either way.
 */

ngx_http_kafka_stream_frame_t *
ngx_http_kafka_stream_frame_make(u_char *image, size_t size, int type,
    int64_t timestamp, int32_t partition, int64_t offset)
{
    u_char                         *p;
    size_t                          len;
    ngx_http_kafka_stream_frame_t  *f;
    u_char                          part[NGX_HTTP_KAFKA_STREAM_PART_HEADER_MAX];

    len = ngx_http_kafka_stream_part_header(part, type, size, timestamp);

    f = NULL;

#if (NGX_HTTP_KAFKA_STREAM_IN_FILE)
    if (size >= NGX_HTTP_KAFKA_STREAM_FILE_MIN) {
        f = ngx_http_kafka_stream_frame_file(image, size, part, len);
    }
#endif

    if (f == NULL) {
        f = ngx_alloc(sizeof(ngx_http_kafka_stream_frame_t) + len + size,
                      ngx_cycle->log);
        if (f == NULL) {
            return NULL;
        }

        p = (u_char *) f + sizeof(ngx_http_kafka_stream_frame_t);

        f->header.data = p;
        p = ngx_cpymem(p, part, len);
        ngx_memcpy(p, image, size);

#if (NGX_HTTP_KAFKA_STREAM_IN_FILE)
        f->fd = NGX_INVALID_FILE;
#endif
    }

    f->refs = 0;
    f->offset = offset;
    f->partition = partition;
    f->received = ngx_current_msec;
    f->timestamp = timestamp;
    f->kind = type;
    f->width = -1;
    f->height = -1;

    if (type == NGX_HTTP_KAFKA_STREAM_PNG) {
        ngx_str_set(&f->type, "image/png");

    } else {
        ngx_str_set(&f->type, "image/jpeg");
    }

    f->header.len = len;
    f->image.data = f->header.data + len;
    f->image.len = size;

    return f;
}



/*
 * The picture's size, from its header: read once per frame, when a size
 * is first asked of it (a rendition, a viewer choosing its size), not for
 * frames nobody scales.  NGX_DECLINED: the header does not tell.
 */

ngx_int_t
ngx_http_kafka_stream_frame_size(ngx_http_kafka_stream_frame_t *f,
    int *width, int *height)
{
    if (f->width < 0) {
        if (ngx_http_kafka_stream_image_size(f->image.data, f->image.len,
                                             f->kind, &f->width, &f->height)
            != 0)
        {
            f->width = 0;
            f->height = 0;
        }
    }

    if (f->width == 0) {
        return NGX_DECLINED;
    }

    *width = f->width;
    *height = f->height;

    return NGX_OK;
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
ngx_http_kafka_stream_frame_file(u_char *image, size_t len, u_char *header,
    size_t header_len)
{
    u_char                         *p;
    size_t                          size;
    ssize_t                         n;
    ngx_fd_t                        fd;
    ngx_err_t                       err;
    const char                     *failed;
    struct iovec                    iov[3];
    ngx_http_kafka_stream_frame_t  *f;

    size = header_len + len + ngx_http_kafka_stream_trailer.len;

    fd = memfd_create("kafka-stream-frame", MFD_CLOEXEC);

    if (fd == NGX_INVALID_FILE) {
        err = ngx_errno;
        failed = "memfd_create()";
        goto failed;
    }

    iov[0].iov_base = header;
    iov[0].iov_len = header_len;
    iov[1].iov_base = image;
    iov[1].iov_len = len;
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


void
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

void
ngx_http_kafka_stream_frame_drop(ngx_http_kafka_stream_frame_t **f)
{
    if (*f) {
        ngx_http_kafka_stream_frame_release(*f);
        *f = NULL;
    }
}


void
ngx_http_kafka_stream_frame_cleanup(void *data)
{
    ngx_http_kafka_stream_frame_release(data);
}


/* why a message is not shown: too large, or not a complete image */

void
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


/*
 * Finds the group for a key; "create" is 1 for a viewer, which always gets
 * one, and 2 for a message, whose key is cached only while there is room.
 */

ngx_http_kafka_stream_group_t *
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
    ngx_queue_init(&g->walls);
    g->source = src;
    ngx_queue_init(&g->renditions);
    g->nviewers = 0;
    g->all = 0;
    g->caught = 0;
    g->listed = 0;
    g->walled = 0;
    g->latest = NULL;
    g->updated = ngx_current_msec;

    ngx_queue_insert_tail(&src->groups, &g->queue);
    src->idle_groups++;

    return g;
}


/* called when a viewer of the group leaves or was never added */

void
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


/* the cached frames and key groups, for a clean exit */

void
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


/*
 * A frame of a partition catching up (src/..._partitions.c): it becomes
 * the group's latest unless that one is newer, as the partitions of a
 * source catch up in no particular order; the consumer offers it to the
 * viewers after the drain, so that they get the newest of the catch-up
 * and not each one.  1 if it was kept.
 */

ngx_uint_t
ngx_http_kafka_stream_group_keep(ngx_http_kafka_stream_group_t *g,
    ngx_http_kafka_stream_frame_t *f)
{
    if (g->latest && g->latest->timestamp > f->timestamp) {
        return 0;
    }

    if (g->latest) {
        ngx_http_kafka_stream_frame_release(g->latest);
    }

    g->latest = f;
    g->updated = ngx_current_msec;
    f->refs++;

    /* a key new to the walls of every key becomes a camera of theirs */

    if (g->nviewers
        || (!g->all && !g->walled && !ngx_queue_empty(&g->source->walls)))
    {
        g->caught = 1;
    }

    return 1;
}


/*
 * The worker no longer reads a partition: what it kept from there is
 * stale from now on.  The frames go, and so do the groups of keys that
 * nobody watches.
 */

void
ngx_http_kafka_stream_forget(ngx_http_kafka_stream_main_conf_t *kmcf,
    ngx_http_kafka_stream_topic_t *t, ngx_int_t partition)
{
    ngx_uint_t                        i;
    ngx_queue_t                      *q, *next;
    ngx_http_kafka_stream_group_t    *g;
    ngx_http_kafka_stream_source_t  **sources, *src;

    sources = kmcf->sources.elts;

    for (i = 0; i < kmcf->sources.nelts; i++) {
        src = sources[i];

        if (src->topic != t
            || (src->partition != NGX_HTTP_KAFKA_STREAM_ALL
                && src->partition != partition))
        {
            continue;
        }

        if (src->all->latest && src->all->latest->partition == partition) {
            ngx_http_kafka_stream_frame_release(src->all->latest);
            src->all->latest = NULL;
            src->all->caught = 0;
        }

        for (q = ngx_queue_head(&src->groups);
             q != ngx_queue_sentinel(&src->groups);
             q = next)
        {
            next = ngx_queue_next(q);
            g = ngx_queue_data(q, ngx_http_kafka_stream_group_t, queue);

            if (g->latest == NULL || g->latest->partition != partition) {
                continue;
            }

            ngx_http_kafka_stream_frame_release(g->latest);
            g->latest = NULL;
            g->caught = 0;

            if (g->nviewers == 0) {
                ngx_queue_remove(q);
                src->idle_groups--;
                ngx_free(g);
            }
        }
    }
}
