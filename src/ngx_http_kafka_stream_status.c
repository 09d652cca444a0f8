
/*
 * The status.  Every worker counts in a slot of its own in a shared
 * zone, per source (ngx_http_kafka_stream_counters_t) and per size of a
 * source (ngx_http_kafka_stream_size_counters_t); the zone is sized
 * in postconfiguration, made here, and read by the location with
 * kafka_stream_status, which sums the workers and answers JSON, or
 * Prometheus text when asked for.  After the slots, each source's keys,
 * as the workers saw them.  It reads the worker's state
 * (src/..._consumer.c) and the key groups (src/..._frame.c) and answers
 * through src/..._response.c; the content handler calls it, and
 * postconfiguration gives the zone its init.  The consumer counts in its
 * slot through the two accessors in the header.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kafka_stream.h"


typedef struct {
    char                           *name;
    char                           *type;
    char                           *help;
    size_t                          offset;
    ngx_uint_t                      usec;   /* shown as seconds */
} ngx_http_kafka_stream_metric_t;


/* the counters of each size of a source, as Prometheus metrics */

static ngx_http_kafka_stream_metric_t  ngx_http_kafka_stream_size_metrics[] = {
    { "size_viewers", "gauge", "viewers of a size (kafka_stream_sizes)",
      offsetof(ngx_http_kafka_stream_size_counters_t, viewers), 0 },
    { "size_frames_made_total", "counter",
      "frames made at a size in the thread pool",
      offsetof(ngx_http_kafka_stream_size_counters_t, made), 0 },
    { "size_frames_passed_total", "counter",
      "frames no larger than a size, sent as they are",
      offsetof(ngx_http_kafka_stream_size_counters_t, passed), 0 },
    { "size_skipped_total", "counter",
      "frames not made at a size because a newer one came first",
      offsetof(ngx_http_kafka_stream_size_counters_t, skipped), 0 },
    { "size_failed_total", "counter",
      "frames that could not be made at a size",
      offsetof(ngx_http_kafka_stream_size_counters_t, failed), 0 },
    { "size_cpu_seconds_total", "counter",
      "CPU time spent making frames at a size",
      offsetof(ngx_http_kafka_stream_size_counters_t, cpu_usec), 1 },
    { "size_bytes_made_total", "counter",
      "bytes of the frames made at a size",
      offsetof(ngx_http_kafka_stream_size_counters_t, bytes_made), 0 },
    { NULL, NULL, NULL, 0, 0 }
};


static ngx_buf_t *ngx_http_kafka_stream_status_json(ngx_http_request_t *r,
    ngx_http_kafka_stream_main_conf_t *kmcf);
static ngx_buf_t *ngx_http_kafka_stream_status_prometheus(
    ngx_http_request_t *r, ngx_http_kafka_stream_main_conf_t *kmcf);
static size_t ngx_http_kafka_stream_consuming_size(
    ngx_http_kafka_stream_main_conf_t *kmcf,
    ngx_http_kafka_stream_slot_t *slot);
static u_char *ngx_http_kafka_stream_consuming_json(u_char *p,
    ngx_http_kafka_stream_main_conf_t *kmcf,
    ngx_http_kafka_stream_slot_t *slot);
static void ngx_http_kafka_stream_sum(ngx_http_kafka_stream_main_conf_t *kmcf,
    ngx_uint_t index, ngx_http_kafka_stream_counters_t *sum);
static void ngx_http_kafka_stream_sum_size(
    ngx_http_kafka_stream_main_conf_t *kmcf, ngx_uint_t index,
    ngx_http_kafka_stream_size_counters_t *sum);
static u_char *ngx_http_kafka_stream_sizes_json(u_char *p,
    ngx_http_kafka_stream_main_conf_t *kmcf,
    ngx_http_kafka_stream_source_t *src);
static u_char *ngx_http_kafka_stream_sizes_prometheus(u_char *p,
    ngx_http_kafka_stream_main_conf_t *kmcf, ngx_str_t *partition,
    ngx_http_kafka_stream_source_t *src, ngx_uint_t metric);


/* status: JSON, or Prometheus text when asked for */

ngx_int_t
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
        sum->walls += c->walls;
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


static ngx_buf_t *
ngx_http_kafka_stream_status_json(ngx_http_request_t *r,
    ngx_http_kafka_stream_main_conf_t *kmcf)
{
    u_char                             *p;
    size_t                              size;
    ngx_buf_t                          *b;
    ngx_uint_t                          i, j, up, first;
    ngx_slab_pool_t                    *shpool;
    ngx_http_kafka_stream_slot_t       *slot;
    ngx_http_kafka_stream_keys_t       *keys;
    ngx_http_kafka_stream_source_t    **sources, *src;
    ngx_http_kafka_stream_counters_t    sum, *c, wsum;

    shpool = (ngx_slab_pool_t *) kmcf->shm_zone->shm.addr;
    sources = kmcf->sources.elts;

    size = sizeof("{\"version\":\"\",\"workers\":[],\"streams\":[]}\n")
           + sizeof(NGX_HTTP_KAFKA_STREAM_VERSION);

    for (i = 0; i < NGX_HTTP_KAFKA_STREAM_MAX_SLOTS; i++) {
        slot = ngx_http_kafka_stream_slot(kmcf, shpool->data, i);

        if (slot->pid) {
            size += 224 + 10 * NGX_ATOMIC_T_LEN
                    + ngx_http_kafka_stream_consuming_size(kmcf, slot);
        }
    }

    for (i = 0; i < kmcf->sources.nelts; i++) {
        src = sources[i];
        size += 256 + src->topic->name.len + 11 * NGX_ATOMIC_T_LEN
                + src->sizes.nelts * (128 + 8 * NGX_ATOMIC_T_LEN)
                + NGX_HTTP_KAFKA_STREAM_KEYS_LISTED
                  * (3 + 6 * NGX_HTTP_KAFKA_STREAM_KEY_LISTED);
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
                        "\"partitions\":%uA,\"bytes_in\":%uA,"
                        "\"viewers\":%uA,"
                        "\"frames_in\":%uA,\"skipped\":%uA,"
                        "\"parts_sent\":%uA,\"drops\":%uA,"
                        "\"renditions\":%uA,\"making\":%uA,\"consuming\":",
                        first ? "" : ",", slot->pid, slot->brokers_up,
                        slot->partitions, slot->bytes_in, wsum.viewers,
                        wsum.frames_in, wsum.skipped, wsum.parts_sent,
                        wsum.drops, slot->renditions, slot->making);

        p = ngx_http_kafka_stream_consuming_json(p, kmcf, slot);
        *p++ = '}';
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

        p = ngx_sprintf(p, "\"viewers\":%uA,\"walls\":%uA,"
                        "\"frames_in\":%uA,\"bytes_in\":%uA,"
                        "\"parts_sent\":%uA,\"drops\":%uA,\"skipped\":%uA,",
                        sum.viewers, sum.walls, sum.frames_in, sum.bytes_in,
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

        p = ngx_sprintf(p, "\"broker\":\"%s\",", up ? "up" : "down");

        p = ngx_http_kafka_stream_sizes_json(p, kmcf, src);

        p = ngx_cpymem(p, "\"keys\":[", sizeof("\"keys\":[") - 1);

        /* keys seen in Kafka by any worker, not the ones viewers asked for */

        keys = ngx_http_kafka_stream_keys(kmcf, shpool->data, i);

        ngx_shmtx_lock(&shpool->mutex);

        for (j = 0; j < keys->n; j++) {
            *p++ = j ? ',' : '"';

            if (j) {
                *p++ = '"';
            }

            p += ngx_http_kafka_stream_escape_json(p, keys->keys[j].data,
                                                   keys->keys[j].len);
            *p++ = '"';
        }

        ngx_shmtx_unlock(&shpool->mutex);

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
    ngx_uint_t                          i, k, up, replays, renditions;
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
        { "walls", "gauge", "walls connected (a response of many keys each)",
          offsetof(ngx_http_kafka_stream_counters_t, walls) },
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

    size = 640 + 512;

    for (i = 0; i < NGX_HTTP_KAFKA_STREAM_MAX_SLOTS; i++) {
        slot = ngx_http_kafka_stream_slot(kmcf, shpool->data, i);

        if (slot->pid) {
            size += 2 * (64 + 2 * NGX_ATOMIC_T_LEN);
        }
    }

    for (i = 0; metrics[i].name; i++) {
        size += 128 + kmcf->sources.nelts * (128 + NGX_ATOMIC_T_LEN);
    }

    size += 8 * 256;

    for (i = 0; i < kmcf->sources.nelts; i++) {
        size += 8 * sources[i]->topic->name.len
                + sources[i]->sizes.nelts * 8
                  * (160 + sources[i]->topic->name.len + NGX_ATOMIC_T_LEN);
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

    for (i = 0; kmcf->nsizes && ngx_http_kafka_stream_size_metrics[i].name;
         i++)
    {
        p = ngx_sprintf(p, "# HELP kafka_stream_%s %s\n"
                        "# TYPE kafka_stream_%s %s\n",
                        ngx_http_kafka_stream_size_metrics[i].name,
                        ngx_http_kafka_stream_size_metrics[i].help,
                        ngx_http_kafka_stream_size_metrics[i].name,
                        ngx_http_kafka_stream_size_metrics[i].type);

        for (k = 0; k < kmcf->sources.nelts; k++) {
            src = sources[k];

            if (src->partition == NGX_HTTP_KAFKA_STREAM_ALL) {
                ngx_str_set(&partition, "all");

            } else {
                partition.data = num;
                partition.len = ngx_sprintf(num, "%i", src->partition) - num;
            }

            p = ngx_http_kafka_stream_sizes_prometheus(p, kmcf, &partition,
                                                       src, i);
        }
    }

    up = 0;
    replays = 0;
    renditions = 0;

    for (i = 0; i < NGX_HTTP_KAFKA_STREAM_MAX_SLOTS; i++) {
        slot = ngx_http_kafka_stream_slot(kmcf, shpool->data, i);

        if (slot->pid) {
            up = ngx_max(up, slot->brokers_up);
            replays += slot->replays;
            renditions += slot->renditions;
        }
    }

    p = ngx_sprintf(p, "# HELP kafka_stream_renditions sizes being made "
                    "for viewers (all workers)\n"
                    "# TYPE kafka_stream_renditions gauge\n"
                    "kafka_stream_renditions %ui\n", renditions);

    p = ngx_sprintf(p, "# HELP kafka_stream_replays replay consumers "
                    "(all workers)\n"
                    "# TYPE kafka_stream_replays gauge\n"
                    "kafka_stream_replays %ui\n"
                    "# HELP kafka_stream_brokers_up brokers connected "
                    "(the best worker)\n"
                    "# TYPE kafka_stream_brokers_up gauge\n"
                    "kafka_stream_brokers_up %ui\n", replays, up);

    /* per worker: what it reads from Kafka, which follows its viewers */

    for (k = 0; k < 2; k++) {
        p = ngx_cpymem(p, k ? "# HELP kafka_stream_worker_bytes_received_total "
                              "bytes the worker read from Kafka\n"
                              "# TYPE kafka_stream_worker_bytes_received_total "
                              "counter\n"
                            : "# HELP kafka_stream_worker_partitions "
                              "partitions the worker reads\n"
                              "# TYPE kafka_stream_worker_partitions gauge\n",
                       k ? sizeof("# HELP kafka_stream_worker_bytes_received_"
                                  "total bytes the worker read from Kafka\n"
                                  "# TYPE kafka_stream_worker_bytes_received_"
                                  "total counter\n") - 1
                         : sizeof("# HELP kafka_stream_worker_partitions "
                                  "partitions the worker reads\n"
                                  "# TYPE kafka_stream_worker_partitions "
                                  "gauge\n") - 1);

        for (i = 0; i < NGX_HTTP_KAFKA_STREAM_MAX_SLOTS; i++) {
            slot = ngx_http_kafka_stream_slot(kmcf, shpool->data, i);

            if (slot->pid == 0) {
                continue;
            }

            p = ngx_sprintf(p, k ? "kafka_stream_worker_bytes_received_total"
                                   "{pid=\"%uA\"} %uA\n"
                                 : "kafka_stream_worker_partitions"
                                   "{pid=\"%uA\"} %uA\n",
                            slot->pid, k ? slot->bytes_in : slot->partitions);
        }
    }

    b->last = p;

    return b;
}


/* a worker's partitions being read, as JSON: {"topic":[0,5],...} */

static size_t
ngx_http_kafka_stream_consuming_size(ngx_http_kafka_stream_main_conf_t *kmcf,
    ngx_http_kafka_stream_slot_t *slot)
{
    size_t                           size;
    u_char                          *bits;
    ngx_uint_t                       i, b;
    ngx_http_kafka_stream_topic_t  **topics;

    topics = kmcf->topics.elts;
    size = 2;

    for (i = 0; i < kmcf->topics.nelts; i++) {
        bits = ngx_http_kafka_stream_consuming(kmcf, slot, i);
        size += topics[i]->name.len + 6;

        for (b = 0; b < NGX_HTTP_KAFKA_STREAM_MAX_PARTS / 8; b++) {
            /* up to 8 of "1023," */
            size += bits[b] ? 8 * 5 : 0;
        }
    }

    return size;
}


static u_char *
ngx_http_kafka_stream_consuming_json(u_char *p,
    ngx_http_kafka_stream_main_conf_t *kmcf, ngx_http_kafka_stream_slot_t *slot)
{
    u_char                          *bits;
    ngx_uint_t                       i, n, first, one;
    ngx_http_kafka_stream_topic_t  **topics;

    topics = kmcf->topics.elts;
    first = 1;

    *p++ = '{';

    for (i = 0; i < kmcf->topics.nelts; i++) {
        bits = ngx_http_kafka_stream_consuming(kmcf, slot, i);
        one = 1;

        for (n = 0; n < NGX_HTTP_KAFKA_STREAM_MAX_PARTS; n++) {
            if (!(bits[n / 8] & (1 << (n % 8)))) {
                continue;
            }

            if (one) {
                /* topic names are checked: nothing to escape */
                p = ngx_sprintf(p, "%s\"%V\":[%ui", first ? "" : ",",
                                &topics[i]->name, n);
                first = 0;
                one = 0;

            } else {
                p = ngx_sprintf(p, ",%ui", n);
            }
        }

        if (!one) {
            *p++ = ']';
        }
    }

    *p++ = '}';

    return p;
}


ngx_int_t
ngx_http_kafka_stream_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    size_t                              size;
    ngx_slab_pool_t                    *shpool;
    ngx_http_kafka_stream_main_conf_t  *kmcf;

    kmcf = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    size = NGX_HTTP_KAFKA_STREAM_MAX_SLOTS * kmcf->slot_size
           + kmcf->sources.nelts * sizeof(ngx_http_kafka_stream_keys_t);

    shpool->data = ngx_slab_calloc(shpool, size);
    if (shpool->data == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the figures of one size of a source, summed over the workers */

static void
ngx_http_kafka_stream_sum_size(ngx_http_kafka_stream_main_conf_t *kmcf,
    ngx_uint_t index, ngx_http_kafka_stream_size_counters_t *sum)
{
    ngx_uint_t                              i;
    ngx_slab_pool_t                        *shpool;
    ngx_http_kafka_stream_slot_t           *slot;
    ngx_http_kafka_stream_size_counters_t  *c;

    ngx_memzero(sum, sizeof(ngx_http_kafka_stream_size_counters_t));

    shpool = (ngx_slab_pool_t *) kmcf->shm_zone->shm.addr;

    for (i = 0; i < NGX_HTTP_KAFKA_STREAM_MAX_SLOTS; i++) {
        slot = ngx_http_kafka_stream_slot(kmcf, shpool->data, i);

        if (slot->pid == 0) {
            continue;
        }

        /* each worker makes the sizes its own viewers watch */

        c = ngx_http_kafka_stream_size_counters(kmcf, slot, index);

        sum->viewers += c->viewers;
        sum->made += c->made;
        sum->passed += c->passed;
        sum->skipped += c->skipped;
        sum->failed += c->failed;
        sum->cpu_usec += c->cpu_usec;
        sum->bytes_made += c->bytes_made;
    }
}


/* "sizes":[{"width":320,...},...], of a source */

static u_char *
ngx_http_kafka_stream_sizes_json(u_char *p,
    ngx_http_kafka_stream_main_conf_t *kmcf,
    ngx_http_kafka_stream_source_t *src)
{
    ngx_uint_t                             i, *sizes;
    ngx_http_kafka_stream_size_counters_t  sum;

    p = ngx_cpymem(p, "\"sizes\":[", sizeof("\"sizes\":[") - 1);

    sizes = src->sizes.elts;

    for (i = 0; i < src->sizes.nelts; i++) {
        ngx_http_kafka_stream_sum_size(kmcf, src->first_size + i, &sum);

        p = ngx_sprintf(p, "%s{\"width\":%ui,\"viewers\":%uA,"
                        "\"frames_made\":%uA,\"frames_passed\":%uA,"
                        "\"skipped\":%uA,\"failed\":%uA,"
                        "\"cpu_ms\":%uA.%03uA,\"bytes_made\":%uA}",
                        i ? "," : "", sizes[i], sum.viewers, sum.made,
                        sum.passed, sum.skipped, sum.failed,
                        sum.cpu_usec / 1000, sum.cpu_usec % 1000,
                        sum.bytes_made);
    }

    return ngx_cpymem(p, "],", 2);
}


/* one metric of each size of a source, in Prometheus lines */

static u_char *
ngx_http_kafka_stream_sizes_prometheus(u_char *p,
    ngx_http_kafka_stream_main_conf_t *kmcf, ngx_str_t *partition,
    ngx_http_kafka_stream_source_t *src, ngx_uint_t metric)
{
    ngx_uint_t                             i, *sizes;
    ngx_atomic_uint_t                      n;
    ngx_http_kafka_stream_metric_t        *m;
    ngx_http_kafka_stream_size_counters_t  sum;

    m = &ngx_http_kafka_stream_size_metrics[metric];
    sizes = src->sizes.elts;

    for (i = 0; i < src->sizes.nelts; i++) {
        ngx_http_kafka_stream_sum_size(kmcf, src->first_size + i, &sum);

        n = *(ngx_atomic_t *) ((u_char *) &sum + m->offset);

        p = ngx_sprintf(p, "kafka_stream_%s{topic=\"%V\",partition=\"%V\","
                        "width=\"%ui\"} ", m->name, &src->topic->name,
                        partition, sizes[i]);

        p = m->usec ? ngx_sprintf(p, "%uA.%06uA\n", n / 1000000, n % 1000000)
                    : ngx_sprintf(p, "%uA\n", n);
    }

    return p;
}
