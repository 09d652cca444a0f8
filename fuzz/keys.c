
/*
 * libFuzzer target: message keys in a wall's X-Key lines and in ?keys=.
 * An escaped key holds only A-Z a-z 0-9 - . _ ~ and %XX, and unescapes
 * to the key, byte for byte; whatever ?keys= holds, unescaping it either
 * fails or gives no more bytes than it had.
 */


#include <stdlib.h>
#include <string.h>

#include "ngx_http_kafka_stream_parse.h"


static int
fuzz_unreserved(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z')
           || (ch >= '0' && ch <= '9')
           || ch == '-' || ch == '.' || ch == '_' || ch == '~';
}


static int
fuzz_hex(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'F');
}


int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    size_t          n, m, i;
    unsigned char  *esc, *back;

    esc = malloc(3 * size + 1);
    back = malloc(3 * size + 1);

    if (esc == NULL || back == NULL) {
        free(esc);
        free(back);
        return 0;
    }

    n = ngx_http_kafka_stream_escape_key(esc, data, size);

    if (n > 3 * size) {
        abort();
    }

    for (i = 0; i < n; i++) {
        if (esc[i] == '%') {
            if (i + 2 >= n || !fuzz_hex(esc[i + 1]) || !fuzz_hex(esc[i + 2])) {
                abort();
            }

            i += 2;
            continue;
        }

        if (!fuzz_unreserved(esc[i])) {
            abort();
        }
    }

    if (ngx_http_kafka_stream_unescape_key(back, esc, n, &m) != 0
        || m != size || memcmp(back, data, size) != 0)
    {
        abort();
    }

    /* the input as a ?keys= value */

    if (ngx_http_kafka_stream_unescape_key(back, data, size, &m) == 0
        && m > size)
    {
        abort();
    }

    free(esc);
    free(back);

    return 0;
}
