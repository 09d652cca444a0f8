
/*
 * libFuzzer target: the image pipeline of renditions on any bytes, as a
 * PNG or as a JPEG.  A call either fails with a reason or makes a JPEG of
 * exactly the size it promised; the header parser agrees with the
 * decoders on every picture that decodes.  ASan and LeakSanitizer check
 * that every path frees what it took.
 */


#include <stdlib.h>
#include <string.h>

#include <turbojpeg.h>

#include "ngx_http_kafka_stream_parse.h"
#include "ngx_http_kafka_stream_scale.h"


/* small enough for thousands of runs a second, large enough for 1/8 */
#define FUZZ_MAX_PIXELS  (512 * 512)


int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    int                            type, w, h, sw, sh, sub, cs, pick, known;
    tjhandle                       tj;
    ngx_http_kafka_stream_scale_t  s;

    type = (size >= 8 && memcmp(data, "\x89PNG", 4) == 0)
           ? NGX_HTTP_KAFKA_STREAM_PNG : NGX_HTTP_KAFKA_STREAM_JPEG;

    known = (ngx_http_kafka_stream_image_size(data, size, type, &sw, &sh)
             == 0);

    if (!known) {
        sw = 64;
        sh = 64;
    }

    /* the last byte picks the width: every DCT scale gets its turn */
    pick = size ? data[size - 1] : 0;

    memset(&s, 0, sizeof(s));
    s.width = 1 + (int) ((int64_t) sw * (pick + 1) / 257);
    s.quality = 1 + pick % 100;
    s.max_pixels = FUZZ_MAX_PIXELS;

    if (ngx_http_kafka_stream_scale(data, size, type, &s) != 0) {
        if (s.data != NULL || s.error[0] == '\0') {
            abort();
        }

        return 0;
    }

    if ((known && (s.source_width != sw || s.source_height != sh))
        || s.height != ngx_http_kafka_stream_scaled_height(s.source_width,
                                                           s.source_height,
                                                           s.width))
    {
        abort();
    }

    /* what was made is a JPEG of the size promised */

    if (ngx_http_kafka_stream_sniff(s.data, s.len)
        != NGX_HTTP_KAFKA_STREAM_JPEG)
    {
        abort();
    }

    tj = tjInitDecompress();
    if (tj == NULL
        || tjDecompressHeader3(tj, s.data, s.len, &w, &h, &sub, &cs) != 0
        || w != s.width || h != s.height)
    {
        abort();
    }

    tjDestroy(tj);
    ngx_http_kafka_stream_scale_free(&s);

    return 0;
}
