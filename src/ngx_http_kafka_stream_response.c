
/*
 * Answers of one buffer, and the header lines they share: a refusal
 * with its one line of reason, "Cache-Control: no-cache, no-store", a
 * header with room for a number; and a query argument, unescaped.  The
 * bottom of the request side: it calls nothing else of the module; the
 * streams and the snapshot (src/..._live.c), the status
 * (src/..._status.c), the replays and the content handler answer
 * through it.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kafka_stream.h"


/* a refused request: the status and the reason in one line of text */

ngx_int_t
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


/* a response header, with room for a number as its value */

ngx_table_elt_t *
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

ngx_int_t
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

ngx_int_t
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


/* a query argument, unescaped: NGX_OK, or NGX_DECLINED when it is absent */

ngx_int_t
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
