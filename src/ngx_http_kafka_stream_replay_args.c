
/*
 * A replay's query arguments: ?since=, ?until=, ?offset=, ?speed= and
 * ?partition= on a stream, ?at= on a snapshot, each checked, with the
 * one line of reason a refusal (400, 416) gives.  The content handler
 * asks here whether a request is a replay before it starts one
 * (src/..._replay.c); this calls only the parser.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kafka_stream.h"


#if (NGX_THREADS)

static ngx_int_t ngx_http_kafka_stream_value_arg(ngx_http_request_t *r,
    char *name, int64_t now, int64_t max, int64_t *v, ngx_str_t *reason);


/* NGX_OK for a replay, NGX_DECLINED for none, or an HTTP status to refuse */

ngx_int_t
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


#endif /* NGX_THREADS */
