
/*
 * The image pipeline of renditions: a PNG or JPEG frame in, a smaller JPEG
 * out.  Plain C on libjpeg-turbo's TurboJPEG API and libpng, with no event
 * loop and no state between calls, so that it runs in any thread of
 * nginx's thread pool, and so that the fuzz target in fuzz/ drives it
 * alone.  The input bytes are never trusted: a corrupt or hostile image
 * makes a call return -1 with a reason, having freed all it took.
 */


#ifndef _NGX_HTTP_KAFKA_STREAM_SCALE_H_INCLUDED_
#define _NGX_HTTP_KAFKA_STREAM_SCALE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


/*
 * Sources larger than this are refused, whatever size is asked of them: a
 * few bytes can claim a picture of any size, and a progressive JPEG holds
 * all its coefficients while it decodes (16 Mpx at 4:2:0: 48 MB), as does
 * an interlaced PNG its pixels.  4K (8.3 Mpx) and 12 Mpx cameras fit.
 */
#define NGX_HTTP_KAFKA_STREAM_SCALE_MAX_SIDE    16384
#define NGX_HTTP_KAFKA_STREAM_SCALE_MAX_PIXELS  (16 * 1024 * 1024)

#define NGX_HTTP_KAFKA_STREAM_SCALE_ERROR_LEN   128


typedef struct {
    /* in */
    int             width;        /* the picture's width, <= the source's */
    int             quality;      /* JPEG quality, 1..100 */
    uint64_t        max_pixels;   /* 0: ..._SCALE_MAX_PIXELS */

    /* out: a JPEG, freed by ngx_http_kafka_stream_scale_free() */
    unsigned char  *data;
    size_t          len;
    int             height;       /* from the source's aspect ratio */
    int             source_width;
    int             source_height;
    char            error[NGX_HTTP_KAFKA_STREAM_SCALE_ERROR_LEN];
} ngx_http_kafka_stream_scale_t;


int ngx_http_kafka_stream_image_size(const unsigned char *p, size_t len,
    int type, int *width, int *height);
int ngx_http_kafka_stream_scaled_height(int width, int height, int to);
int ngx_http_kafka_stream_scale(const unsigned char *p, size_t len, int type,
    ngx_http_kafka_stream_scale_t *s);
void ngx_http_kafka_stream_scale_free(ngx_http_kafka_stream_scale_t *s);


#endif /* _NGX_HTTP_KAFKA_STREAM_SCALE_H_INCLUDED_ */
