/*
 * libFuzzer target: the times, offsets and speeds of replay requests
 * (?since=, ?until=, ?at=, ?offset=, ?speed=).  An accepted time lies
 * between 1970 and 9999 and survives a round trip through the RFC 3339
 * form the module writes in its error lines; accepted numbers stay
 * within their bounds.
 */


#include <stdlib.h>
#include <string.h>

#include "ngx_http_kafka_stream_parse.h"


#define FUZZ_NOW  1700000000000LL


int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    size_t         n;
    int64_t        ms, again, v;
    unsigned char  buf[NGX_HTTP_KAFKA_STREAM_TIME_LEN];

    if (ngx_http_kafka_stream_parse_time(data, size, FUZZ_NOW, &ms) == 0) {

        if (ms < 0 || ms > NGX_HTTP_KAFKA_STREAM_TIME_MAX) {
            abort();
        }

        n = ngx_http_kafka_stream_format_time(buf, ms);

        if (n != NGX_HTTP_KAFKA_STREAM_TIME_LEN
            || ngx_http_kafka_stream_parse_time(buf, n, FUZZ_NOW, &again)
               != 0
            || again != ms)
        {
            abort();
        }
    }

    if (ngx_http_kafka_stream_parse_number(data, size, 1000000, &v) == 0
        && (v < 0 || v > 1000000))
    {
        abort();
    }

    if (ngx_http_kafka_stream_parse_decimal(data, size, 64000, &v) == 0
        && (v < 0 || v > 64000 || memchr(data, '-', size) != NULL))
    {
        abort();
    }

    return 0;
}
