
/*
 * libFuzzer target: image sniffing and part headers, on any bytes a Kafka
 * message may carry.  A part header must never contain a byte of the
 * message, and must always be well formed.
 */


#include <stdlib.h>
#include <string.h>

#include "ngx_http_kafka_stream_parse.h"


int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    int            type;
    size_t         n, i;
    int64_t        ts;
    unsigned char  header[NGX_HTTP_KAFKA_STREAM_PART_HEADER_MAX];

    type = ngx_http_kafka_stream_sniff(data, size);

    if (type == NGX_HTTP_KAFKA_STREAM_NOT_IMAGE) {
        return 0;
    }

    ts = 0;
    memcpy(&ts, data, size < sizeof(ts) ? size : sizeof(ts));

    n = ngx_http_kafka_stream_part_header(header, type, size, ts);

    if (n < 4 || n >= sizeof(header)
        || memcmp(header + n - 4, "\r\n\r\n", 4) != 0)
    {
        abort();
    }

    /* header lines are printable ASCII but for their CRLFs */

    for (i = 0; i < n; i++) {
        if ((header[i] < 0x20 || header[i] >= 0x7f)
            && header[i] != '\r' && header[i] != '\n')
        {
            abort();
        }
    }

    return 0;
}
