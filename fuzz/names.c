
/*
 * libFuzzer target: configuration values (topic names, boundaries) and
 * the JSON escaping of message keys in the status.  An accepted name or
 * boundary holds no byte that could break a header line or the status;
 * an escaped key holds only printable ASCII and no quote.
 */


#include <stdlib.h>

#include "ngx_http_kafka_stream_parse.h"


static void
fuzz_printable(const unsigned char *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (p[i] < 0x21 || p[i] >= 0x7f || p[i] == '"' || p[i] == '\\') {
            abort();
        }
    }
}


int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    size_t          n, i;
    unsigned char  *out;

    if (ngx_http_kafka_stream_valid_topic(data, size)) {
        fuzz_printable(data, size);
    }

    if (ngx_http_kafka_stream_valid_boundary(data, size)) {
        fuzz_printable(data, size);
    }

    out = malloc(6 * size + 1);
    if (out == NULL) {
        return 0;
    }

    n = ngx_http_kafka_stream_escape_json(out, data, size);

    if (n > 6 * size) {
        abort();
    }

    for (i = 0; i < n; i++) {
        if (out[i] < 0x20 || out[i] >= 0x7f || out[i] == '"') {
            abort();
        }
    }

    free(out);

    return 0;
}
