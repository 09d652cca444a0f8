
/*
 * The image pipeline of renditions (see ngx_http_kafka_stream_scale.h).
 *
 * A JPEG is decoded by libjpeg-turbo straight to the smallest of its DCT
 * scales (1/8 to 8/8) that is not smaller than the picture asked for, as
 * Y, Cb and Cr planes: no colour conversion either way, and at 1/2, 1/4
 * or 1/8 of the source's width no resampling at all.  What remains is
 * resampled by area (each output pixel the mean of the source area it
 * covers, in fixed point), plane by plane, and encoded from the planes.
 * JPEGs that have no such planes (RGB, CMYK, odd sampling) take the same
 * way through packed RGB.  A PNG is read row by row into the resampler,
 * so that only a few rows of it are ever held (all of it only when it is
 * interlaced); its alpha is laid over black, and it leaves as a 4:2:0 JPEG
 * (grey stays grey).
 *
 * Whatever a call takes is in its ngx_http_kafka_stream_job_t and freed
 * in one place, whichever way the call ends, libpng's longjmp() included.
 */


#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>
#include <turbojpeg.h>

#include "ngx_http_kafka_stream_parse.h"
#include "ngx_http_kafka_stream_scale.h"


/* the weights of one axis sum to 1 << 12 */
#define NGX_HTTP_KAFKA_STREAM_WEIGHT_BITS  12
#define NGX_HTTP_KAFKA_STREAM_WEIGHT_ONE   (1 << 12)

/* a progressive JPEG of more scans than this is refused (CPU) */
#define NGX_HTTP_KAFKA_STREAM_DECODE_FLAGS  TJFLAG_LIMITSCANS


typedef const unsigned char *(*ngx_http_kafka_stream_row_pt)(void *data,
    int row);


/* a picture in memory, for ngx_http_kafka_stream_packed_row() */

typedef struct {
    const unsigned char            *start;
    size_t                          stride;
} ngx_http_kafka_stream_rows_t;


/* which source pixels make each output pixel along one axis, and how much */

typedef struct {
    int                            *start;
    int                            *count;
    uint16_t                       *weight;   /* [n * max] */
    int                             max;      /* source pixels per output */
} ngx_http_kafka_stream_axis_t;


/*
 * One plane's resampling: the source rows come in order through a
 * callback; each is resampled across at once into a ring of the last
 * "y.max" of them (8.8 fixed point), from which the output rows are
 * summed down.  The scale is that of the whole picture, which a plane's
 * own sample counts may not give exactly: a subsampled chroma plane of an
 * odd width, say, has half a sample more than half the picture.
 */

typedef struct {
    /* set by the caller */
    int                             src_width;    /* samples */
    int                             src_height;
    int                             width;        /* output samples */
    int                             height;
    int                             scale_x[2];   /* source : output */
    int                             scale_y[2];
    int                             channels;     /* interleaved: 1 or 3 */
    size_t                          stride;       /* output row, bytes */

    ngx_http_kafka_stream_axis_t    x;
    ngx_http_kafka_stream_axis_t    y;
    uint16_t                       *ring;
    uint32_t                       *sum;
    int                             fetched;      /* source rows so far */
} ngx_http_kafka_stream_resize_t;


typedef struct {
    ngx_http_kafka_stream_scale_t  *s;
    const unsigned char            *in;
    size_t                          len;

    tjhandle                        decoder;
    tjhandle                        encoder;
    ngx_http_kafka_stream_resize_t  resize[3];

    /* decoded source: JPEG planes or packed pixels, interlaced PNG */
    unsigned char                  *decoded;

    /* PNG */
    png_structp                     png;
    png_infop                       info;
    size_t                          pos;
    unsigned char                 **rows;         /* interlaced: all */
    unsigned char                  *row;          /* as libpng gives it */
    unsigned char                  *pixels;       /* grey or RGB */
    int                             png_channels;
    int                             interlaced;

    unsigned char                  *out;          /* the picture */
    int                             planar;       /* out: Y, Cb, Cr */
} ngx_http_kafka_stream_job_t;


static int ngx_http_kafka_stream_scale_jpeg(ngx_http_kafka_stream_job_t *j);
static int ngx_http_kafka_stream_jpeg_planes(ngx_http_kafka_stream_job_t *j,
    int sw, int sh, int subsamp);
static int ngx_http_kafka_stream_jpeg_packed(ngx_http_kafka_stream_job_t *j,
    int sw, int sh, int cmyk);
static const unsigned char *ngx_http_kafka_stream_packed_row(void *data,
    int row);
static int ngx_http_kafka_stream_scale_png(ngx_http_kafka_stream_job_t *j);
static int ngx_http_kafka_stream_png_read(ngx_http_kafka_stream_job_t *j,
    int *gray);
static void ngx_http_kafka_stream_png_data(png_structp png, png_bytep data,
    size_t len);
static void ngx_http_kafka_stream_png_error(png_structp png,
    png_const_charp msg);
static void ngx_http_kafka_stream_png_warning(png_structp png,
    png_const_charp msg);
static const unsigned char *ngx_http_kafka_stream_png_row(void *data,
    int row);
static int ngx_http_kafka_stream_encode(ngx_http_kafka_stream_job_t *j,
    int subsamp);
static void ngx_http_kafka_stream_resize_init(
    ngx_http_kafka_stream_resize_t *r, int sw, int sh, int dw, int dh,
    int channels);
static int ngx_http_kafka_stream_resize(ngx_http_kafka_stream_job_t *j,
    ngx_http_kafka_stream_resize_t *r, ngx_http_kafka_stream_row_pt get,
    void *data, unsigned char *dst);
static int ngx_http_kafka_stream_axis(ngx_http_kafka_stream_axis_t *a,
    int n, int m, const int *scale);
static void ngx_http_kafka_stream_pad(unsigned char *plane, size_t stride,
    int width, int height, int padded_width, int padded_height);
static void ngx_http_kafka_stream_across(ngx_http_kafka_stream_resize_t *r,
    const unsigned char *src, uint16_t *dst);
static int ngx_http_kafka_stream_check_size(ngx_http_kafka_stream_job_t *j,
    int width, int height);
static int ngx_http_kafka_stream_fail(ngx_http_kafka_stream_job_t *j,
    const char *what, const char *why);
static int ngx_http_kafka_stream_tj_fail(ngx_http_kafka_stream_job_t *j,
    tjhandle h, const char *what);
static void *ngx_http_kafka_stream_alloc(size_t n, size_t size);


/*
 * A picture's size from its header alone: for a PNG its IHDR, for a JPEG
 * its first SOFn, found by walking the marker segments before it.  Cheap
 * enough for the event loop.  Returns 0, or -1 if there is none.
 */

int
ngx_http_kafka_stream_image_size(const unsigned char *p, size_t len,
    int type, int *width, int *height)
{
    size_t          i, n;
    unsigned        w, h;
    unsigned char   m;

    if (type == NGX_HTTP_KAFKA_STREAM_PNG) {

        /* signature, IHDR's length and name, then width and height */

        if (len < 24 || memcmp(p + 12, "IHDR", 4) != 0) {
            return -1;
        }

        w = ((unsigned) p[16] << 24) | (p[17] << 16) | (p[18] << 8) | p[19];
        h = ((unsigned) p[20] << 24) | (p[21] << 16) | (p[22] << 8) | p[23];

    } else if (type == NGX_HTTP_KAFKA_STREAM_JPEG) {

        if (len < 4 || p[0] != 0xff || p[1] != 0xd8) {
            return -1;
        }

        i = 2;

        for ( ;; ) {
            if (i >= len || p[i] != 0xff) {
                return -1;
            }

            while (i < len && p[i] == 0xff) {   /* fill bytes */
                i++;
            }

            if (i >= len) {
                return -1;
            }

            m = p[i++];

            if (m == 0x01 || (m >= 0xd0 && m <= 0xd7)) {
                continue;                       /* TEM, RSTn: no length */
            }

            if (m == 0x00 || m == 0xd8 || m == 0xd9 || m == 0xda
                || i + 2 > len)
            {
                return -1;                      /* no frame header */
            }

            n = ((size_t) p[i] << 8) | p[i + 1];

            if (n < 2 || i + n > len) {
                return -1;
            }

            if (m >= 0xc0 && m <= 0xcf
                && m != 0xc4 && m != 0xc8 && m != 0xcc)
            {
                /* SOFn: length, precision, height, width */

                if (n < 8) {
                    return -1;
                }

                h = ((unsigned) p[i + 3] << 8) | p[i + 4];
                w = ((unsigned) p[i + 5] << 8) | p[i + 6];
                break;
            }

            i += n;
        }

    } else {
        return -1;
    }

    if (w == 0 || h == 0 || w > INT_MAX || h > INT_MAX) {
        return -1;
    }

    *width = (int) w;
    *height = (int) h;

    return 0;
}


/* the height of a picture "to" pixels wide, in the source's aspect ratio */

int
ngx_http_kafka_stream_scaled_height(int width, int height, int to)
{
    int64_t  h;

    h = ((int64_t) height * to + width / 2) / width;

    return (h < 1) ? 1 : (int) h;
}


int
ngx_http_kafka_stream_scale(const unsigned char *p, size_t len, int type,
    ngx_http_kafka_stream_scale_t *s)
{
    int                          rc, i;
    ngx_http_kafka_stream_job_t  j;

    memset(&j, 0, sizeof(ngx_http_kafka_stream_job_t));
    j.s = s;
    j.in = p;
    j.len = len;

    s->data = NULL;
    s->len = 0;
    s->height = 0;
    s->source_width = 0;
    s->source_height = 0;
    s->error[0] = '\0';

    if (s->quality < 1 || s->quality > 100) {
        return ngx_http_kafka_stream_fail(&j, "quality", "not in 1..100");
    }

    if (s->width < 1 || s->width > NGX_HTTP_KAFKA_STREAM_SCALE_MAX_SIDE) {
        return ngx_http_kafka_stream_fail(&j, "width", "out of range");
    }

    if (type == NGX_HTTP_KAFKA_STREAM_JPEG) {
        rc = ngx_http_kafka_stream_scale_jpeg(&j);

    } else if (type == NGX_HTTP_KAFKA_STREAM_PNG) {
        rc = ngx_http_kafka_stream_scale_png(&j);

    } else {
        rc = ngx_http_kafka_stream_fail(&j, "image", "neither PNG nor JPEG");
    }

    if (j.png) {
        png_destroy_read_struct(&j.png, j.info ? &j.info : NULL, NULL);
    }

    if (j.decoder) {
        tjDestroy(j.decoder);
    }

    if (j.encoder) {
        tjDestroy(j.encoder);
    }

    for (i = 0; i < 3; i++) {
        free(j.resize[i].x.start);
        free(j.resize[i].y.start);
        free(j.resize[i].ring);
        free(j.resize[i].sum);
    }

    free(j.decoded);
    free(j.rows);
    free(j.row);
    free(j.pixels);
    free(j.out);

    if (rc != 0) {
        ngx_http_kafka_stream_scale_free(s);
    }

    return rc;
}


void
ngx_http_kafka_stream_scale_free(ngx_http_kafka_stream_scale_t *s)
{
    if (s->data) {
        tjFree(s->data);
        s->data = NULL;
    }

    s->len = 0;
}


static int
ngx_http_kafka_stream_scale_jpeg(ngx_http_kafka_stream_job_t *j)
{
    int                             sw, sh, w, h, subsamp, cs, i, n;
    tjscalingfactor                *sf, best;
    ngx_http_kafka_stream_scale_t  *s;

    s = j->s;

    j->decoder = tjInitDecompress();
    if (j->decoder == NULL) {
        return ngx_http_kafka_stream_fail(j, "tjInitDecompress()",
                                          tjGetErrorStr2(NULL));
    }

    /*
     * libjpeg-turbo names no sampling it has no planes for (and refuses
     * the header then): such a JPEG is still decoded, to RGB
     */

    if (tjDecompressHeader3(j->decoder, j->in, j->len, &w, &h, &subsamp, &cs)
        != 0)
    {
        if (ngx_http_kafka_stream_image_size(j->in, j->len,
                                             NGX_HTTP_KAFKA_STREAM_JPEG,
                                             &w, &h)
            != 0)
        {
            return ngx_http_kafka_stream_tj_fail(j, j->decoder,
                                                 "tjDecompressHeader3()");
        }

        subsamp = -1;
        cs = TJCS_RGB;
    }

    if (ngx_http_kafka_stream_check_size(j, w, h) != 0) {
        return -1;
    }

    /* the smallest DCT scale not smaller than the picture, or 1/1 */

    sf = tjGetScalingFactors(&n);
    if (sf == NULL) {
        return ngx_http_kafka_stream_tj_fail(j, NULL, "tjGetScalingFactors()");
    }

    best.num = 1;
    best.denom = 1;

    for (i = 0; i < n; i++) {
        if (sf[i].num <= sf[i].denom
            && TJSCALED(w, sf[i]) >= s->width
            && TJSCALED(h, sf[i]) >= s->height
            && (int64_t) sf[i].num * best.denom
               < (int64_t) best.num * sf[i].denom)
        {
            best = sf[i];
        }
    }

    sw = TJSCALED(w, best);
    sh = TJSCALED(h, best);

    if ((cs == TJCS_YCbCr || cs == TJCS_GRAY) && subsamp >= 0) {
        return ngx_http_kafka_stream_jpeg_planes(j, sw, sh, subsamp);
    }

    return ngx_http_kafka_stream_jpeg_packed(j, sw, sh,
                                             cs == TJCS_CMYK
                                             || cs == TJCS_YCCK);
}


/*
 * Y, Cb and Cr (or Y alone) in, resampled, out: no colour conversion.
 * TurboJPEG's planes are padded to whole chroma samples (a 4:2:0 picture
 * 639 wide has a Y plane 640 wide): the picture is resampled within them
 * and the padding repeats its last column and row, as an encoder would.
 */

static int
ngx_http_kafka_stream_jpeg_planes(ngx_http_kafka_stream_job_t *j, int sw,
    int sh, int subsamp)
{
    int                              i, nplanes, pw, ph, dw, dh;
    size_t                           size, offset[3], out_offset[3], out_size;
    unsigned char                   *planes[3];
    ngx_http_kafka_stream_rows_t     rows;
    ngx_http_kafka_stream_scale_t   *s;
    ngx_http_kafka_stream_resize_t  *r;

    s = j->s;
    nplanes = (subsamp == TJSAMP_GRAY) ? 1 : 3;

    size = 0;
    out_size = 0;

    for (i = 0; i < nplanes; i++) {
        offset[i] = size;
        size += (size_t) tjPlaneWidth(i, sw, subsamp)
                * tjPlaneHeight(i, sh, subsamp);

        out_offset[i] = out_size;
        out_size += (size_t) tjPlaneWidth(i, s->width, subsamp)
                    * tjPlaneHeight(i, s->height, subsamp);
    }

    j->decoded = malloc(size);
    j->out = malloc(out_size);

    if (j->decoded == NULL || j->out == NULL) {
        return ngx_http_kafka_stream_fail(j, "planes", "out of memory");
    }

    for (i = 0; i < nplanes; i++) {
        planes[i] = j->decoded + offset[i];
    }

    if (tjDecompressToYUVPlanes(j->decoder, j->in, j->len, planes, sw, NULL,
                                sh, NGX_HTTP_KAFKA_STREAM_DECODE_FLAGS)
        != 0
        && tjGetErrorCode(j->decoder) != TJERR_WARNING)
    {
        return ngx_http_kafka_stream_tj_fail(j, j->decoder,
                                             "tjDecompressToYUVPlanes()");
    }

    j->planar = 1;

    if (sw == s->width && sh == s->height) {
        /* a DCT scale made the picture: nothing left to do but encode */
        memcpy(j->out, j->decoded, out_size);
        return ngx_http_kafka_stream_encode(j, subsamp);
    }

    for (i = 0; i < nplanes; i++) {
        r = &j->resize[i];
        pw = tjPlaneWidth(i, s->width, subsamp);
        ph = tjPlaneHeight(i, s->height, subsamp);

        if (i == 0) {
            /* the picture itself, within the plane's padding */
            dw = s->width;
            dh = s->height;
            ngx_http_kafka_stream_resize_init(r, sw, sh, dw, dh, 1);

        } else {
            dw = pw;
            dh = ph;
            ngx_http_kafka_stream_resize_init(r, tjPlaneWidth(i, sw, subsamp),
                                             tjPlaneHeight(i, sh, subsamp),
                                             dw, dh, 1);
            r->scale_x[0] = sw;
            r->scale_x[1] = s->width;
            r->scale_y[0] = sh;
            r->scale_y[1] = s->height;
        }

        r->stride = pw;
        rows.start = planes[i];
        rows.stride = tjPlaneWidth(i, sw, subsamp);

        if (ngx_http_kafka_stream_resize(j, r,
                                         ngx_http_kafka_stream_packed_row,
                                         &rows, j->out + out_offset[i])
            != 0)
        {
            return -1;
        }

        ngx_http_kafka_stream_pad(j->out + out_offset[i], pw, dw, dh, pw, ph);
    }

    return ngx_http_kafka_stream_encode(j, subsamp);
}


/* RGB, CMYK and odd samplings: through packed RGB, out as 4:2:0 */

static int
ngx_http_kafka_stream_jpeg_packed(ngx_http_kafka_stream_job_t *j, int sw,
    int sh, int cmyk)
{
    int                             x, y, k, pixel;
    unsigned char                  *p, *q;
    ngx_http_kafka_stream_rows_t    rows;
    ngx_http_kafka_stream_scale_t  *s;

    s = j->s;
    pixel = cmyk ? 4 : 3;

    j->decoded = ngx_http_kafka_stream_alloc(sh, (size_t) sw * pixel);
    j->out = ngx_http_kafka_stream_alloc(s->height, (size_t) s->width * 3);

    if (j->decoded == NULL || j->out == NULL) {
        return ngx_http_kafka_stream_fail(j, "pixels", "out of memory");
    }

    if (tjDecompress2(j->decoder, j->in, j->len, j->decoded, sw, sw * pixel,
                      sh, cmyk ? TJPF_CMYK : TJPF_RGB,
                      NGX_HTTP_KAFKA_STREAM_DECODE_FLAGS)
        != 0
        && tjGetErrorCode(j->decoder) != TJERR_WARNING)
    {
        return ngx_http_kafka_stream_tj_fail(j, j->decoder, "tjDecompress2()");
    }

    if (cmyk) {
        /*
         * CMYK JPEGs are Adobe's, stored inverted (255: no ink): a channel
         * times black is the light left; packed to RGB in place
         */

        p = j->decoded;
        q = j->decoded;

        for (y = 0; y < sh; y++) {
            for (x = 0; x < sw; x++) {
                k = p[3];
                q[0] = (unsigned char) ((p[0] * k + 127) / 255);
                q[1] = (unsigned char) ((p[1] * k + 127) / 255);
                q[2] = (unsigned char) ((p[2] * k + 127) / 255);
                p += 4;
                q += 3;
            }
        }
    }

    rows.start = j->decoded;
    rows.stride = (size_t) sw * 3;

    ngx_http_kafka_stream_resize_init(&j->resize[0], sw, sh, s->width,
                                      s->height, 3);

    if (ngx_http_kafka_stream_resize(j, &j->resize[0],
                                     ngx_http_kafka_stream_packed_row,
                                     &rows, j->out)
        != 0)
    {
        return -1;
    }

    return ngx_http_kafka_stream_encode(j, TJSAMP_420);
}


static const unsigned char *
ngx_http_kafka_stream_packed_row(void *data, int row)
{
    ngx_http_kafka_stream_rows_t  *rows;

    rows = data;

    return rows->start + (size_t) row * rows->stride;
}


static int
ngx_http_kafka_stream_scale_png(ngx_http_kafka_stream_job_t *j)
{
    int  gray;

    j->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, j,
                                    ngx_http_kafka_stream_png_error,
                                    ngx_http_kafka_stream_png_warning);
    if (j->png == NULL) {
        return ngx_http_kafka_stream_fail(j, "png_create_read_struct()",
                                          "out of memory");
    }

    j->info = png_create_info_struct(j->png);
    if (j->info == NULL) {
        return ngx_http_kafka_stream_fail(j, "png_create_info_struct()",
                                          "out of memory");
    }

    if (ngx_http_kafka_stream_png_read(j, &gray) != 0) {
        return -1;
    }

    return ngx_http_kafka_stream_encode(j, gray ? TJSAMP_GRAY : TJSAMP_420);
}


/*
 * Everything libpng does happens here, below its setjmp(): what is taken
 * lives in the job, which outlives a longjmp() back to it.
 */

static int
ngx_http_kafka_stream_png_read(ngx_http_kafka_stream_job_t *j, int *gray)
{
    int                             depth, type, interlace, channels, y;
    png_uint_32                     w, h;
    ngx_http_kafka_stream_scale_t  *s;

    s = j->s;

    if (setjmp(png_jmpbuf(j->png))) {
        return -1;
    }

    png_set_read_fn(j->png, j, ngx_http_kafka_stream_png_data);
    png_set_user_limits(j->png, NGX_HTTP_KAFKA_STREAM_SCALE_MAX_SIDE,
                        NGX_HTTP_KAFKA_STREAM_SCALE_MAX_SIDE);
    png_set_chunk_malloc_max(j->png, 1024 * 1024);

    /* no ancillary chunk but tRNS changes the picture: none is read */
    png_set_keep_unknown_chunks(j->png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);

    /*
     * Kafka checks every record batch (CRC-32C) on its way here: the PNG's
     * own checksums would only be computed again (7% of a 720p frame's
     * time); a picture that fails them is still decoded within bounds
     */
    png_set_crc_action(j->png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
#ifdef PNG_IGNORE_ADLER32
    (void) png_set_option(j->png, PNG_IGNORE_ADLER32, PNG_OPTION_ON);
#endif

    png_read_info(j->png, j->info);

    png_get_IHDR(j->png, j->info, &w, &h, &depth, &type, &interlace,
                 NULL, NULL);

    if (ngx_http_kafka_stream_check_size(j, (int) w, (int) h) != 0) {
        return -1;
    }

    /* 8 bits a channel, palettes and tRNS to colours and alpha */

    png_set_expand(j->png);
    png_set_scale_16(j->png);

    j->interlaced = (interlace != PNG_INTERLACE_NONE);

    if (j->interlaced) {
        (void) png_set_interlace_handling(j->png);
    }

    png_read_update_info(j->png, j->info);

    j->png_channels = png_get_channels(j->png, j->info);

    if (j->png_channels < 1 || j->png_channels > 4
        || png_get_bit_depth(j->png, j->info) != 8
        || png_get_rowbytes(j->png, j->info) != w * j->png_channels)
    {
        return ngx_http_kafka_stream_fail(j, "PNG", "unexpected row format");
    }

    channels = (j->png_channels <= 2) ? 1 : 3;
    *gray = (channels == 1);

    j->row = ngx_http_kafka_stream_alloc(w, j->png_channels);
    j->pixels = ngx_http_kafka_stream_alloc(w, channels);
    j->out = ngx_http_kafka_stream_alloc(s->height, (size_t) s->width
                                                    * channels);

    if (j->row == NULL || j->pixels == NULL || j->out == NULL) {
        return ngx_http_kafka_stream_fail(j, "PNG rows", "out of memory");
    }

    if (j->interlaced) {
        /* its passes fill the whole picture before any row is complete */

        j->decoded = ngx_http_kafka_stream_alloc(h, w * j->png_channels);
        j->rows = ngx_http_kafka_stream_alloc(h, sizeof(unsigned char *));

        if (j->decoded == NULL || j->rows == NULL) {
            return ngx_http_kafka_stream_fail(j, "PNG", "out of memory");
        }

        for (y = 0; y < (int) h; y++) {
            j->rows[y] = j->decoded + (size_t) y * w * j->png_channels;
        }

        png_read_image(j->png, j->rows);
    }

    ngx_http_kafka_stream_resize_init(&j->resize[0], w, h, s->width,
                                      s->height, channels);

    return ngx_http_kafka_stream_resize(j, &j->resize[0],
                                        ngx_http_kafka_stream_png_row, j,
                                        j->out);
}


static void
ngx_http_kafka_stream_png_data(png_structp png, png_bytep data, size_t len)
{
    ngx_http_kafka_stream_job_t  *j;

    j = png_get_io_ptr(png);

    if (len > j->len - j->pos) {
        png_error(png, "truncated");
    }

    memcpy(data, j->in + j->pos, len);
    j->pos += len;
}


static void
ngx_http_kafka_stream_png_error(png_structp png, png_const_charp msg)
{
    ngx_http_kafka_stream_job_t  *j;

    j = png_get_error_ptr(png);

    (void) ngx_http_kafka_stream_fail(j, "libpng", msg);

    png_longjmp(png, 1);
}


static void
ngx_http_kafka_stream_png_warning(png_structp png, png_const_charp msg)
{
    /* the picture is still made; nothing to tell */
}


/*
 * The next row of a PNG, grey or RGB, with its alpha laid over black:
 * colour times alpha, which is also what averaging the covered area
 * after the fact would give for the visible picture.
 */

static const unsigned char *
ngx_http_kafka_stream_png_row(void *data, int row)
{
    int                           x, w, n;
    unsigned char                *p, *q, *src;
    ngx_http_kafka_stream_job_t  *j;

    j = data;
    w = png_get_image_width(j->png, j->info);
    n = j->png_channels;

    if (j->interlaced) {
        src = j->decoded + (size_t) row * w * n;

    } else {
        png_read_row(j->png, j->row, NULL);
        src = j->row;
    }

    if (n == 1 || n == 3) {
        return src;
    }

    p = src;
    q = j->pixels;

    if (n == 2) {
        for (x = 0; x < w; x++) {
            *q++ = (unsigned char) ((p[0] * p[1] + 127) / 255);
            p += 2;
        }

    } else {
        for (x = 0; x < w; x++) {
            q[0] = (unsigned char) ((p[0] * p[3] + 127) / 255);
            q[1] = (unsigned char) ((p[1] * p[3] + 127) / 255);
            q[2] = (unsigned char) ((p[2] * p[3] + 127) / 255);
            p += 4;
            q += 3;
        }
    }

    return j->pixels;
}


/* j->out holds the picture, as planes or packed grey or RGB pixels */

static int
ngx_http_kafka_stream_encode(ngx_http_kafka_stream_job_t *j, int subsamp)
{
    int                             i, rc;
    unsigned long                   len;
    unsigned char                  *jpeg;
    const unsigned char            *planes[3];
    ngx_http_kafka_stream_scale_t  *s;

    s = j->s;

    j->encoder = tjInitCompress();
    if (j->encoder == NULL) {
        return ngx_http_kafka_stream_fail(j, "tjInitCompress()",
                                          tjGetErrorStr2(NULL));
    }

    jpeg = NULL;
    len = 0;

    if (j->planar) {
        planes[0] = j->out;
        planes[1] = NULL;
        planes[2] = NULL;

        if (subsamp != TJSAMP_GRAY) {
            for (i = 1; i < 3; i++) {
                planes[i] = planes[i - 1]
                            + (size_t) tjPlaneWidth(i - 1, s->width, subsamp)
                              * tjPlaneHeight(i - 1, s->height, subsamp);
            }
        }

        rc = tjCompressFromYUVPlanes(j->encoder, planes, s->width, NULL,
                                     s->height, subsamp, &jpeg, &len,
                                     s->quality, 0);

    } else {
        rc = tjCompress2(j->encoder, j->out, s->width, 0, s->height,
                         (subsamp == TJSAMP_GRAY) ? TJPF_GRAY : TJPF_RGB,
                         &jpeg, &len, subsamp, s->quality, 0);
    }

    if (rc != 0) {
        if (jpeg) {
            tjFree(jpeg);
        }

        return ngx_http_kafka_stream_tj_fail(j, j->encoder, "tjCompress()");
    }

    s->data = jpeg;
    s->len = len;

    return 0;
}


/* a plane sw x sh to dw x dh, at the scale those give, rows packed */

static void
ngx_http_kafka_stream_resize_init(ngx_http_kafka_stream_resize_t *r, int sw,
    int sh, int dw, int dh, int channels)
{
    r->src_width = sw;
    r->src_height = sh;
    r->width = dw;
    r->height = dh;
    r->scale_x[0] = sw;
    r->scale_x[1] = dw;
    r->scale_y[0] = sh;
    r->scale_y[1] = dh;
    r->channels = channels;
    r->stride = (size_t) dw * channels;
}


/* fetches each source row once, in order, and writes the output rows */

static int
ngx_http_kafka_stream_resize(ngx_http_kafka_stream_job_t *j,
    ngx_http_kafka_stream_resize_t *r, ngx_http_kafka_stream_row_pt get,
    void *data, unsigned char *dst)
{
    int                   y, k, n, first, last;
    size_t                row, i;
    uint16_t             *h, w;
    uint32_t             *sum;
    const unsigned char  *src;

    row = (size_t) r->width * r->channels;

    if (ngx_http_kafka_stream_axis(&r->x, r->src_width, r->width,
                                   r->scale_x)
        != 0
        || ngx_http_kafka_stream_axis(&r->y, r->src_height, r->height,
                                      r->scale_y)
           != 0)
    {
        return ngx_http_kafka_stream_fail(j, "resampling", "out of memory");
    }

    r->ring = ngx_http_kafka_stream_alloc(r->y.max, row * sizeof(uint16_t));
    r->sum = ngx_http_kafka_stream_alloc(row, sizeof(uint32_t));

    if (r->ring == NULL || r->sum == NULL) {
        return ngx_http_kafka_stream_fail(j, "resampling", "out of memory");
    }

    sum = r->sum;
    r->fetched = 0;

    for (y = 0; y < r->height; y++) {
        first = r->y.start[y];
        last = first + r->y.count[y];

        while (r->fetched < last) {
            src = get(data, r->fetched);
            if (src == NULL) {
                return -1;
            }

            ngx_http_kafka_stream_across(r, src,
                                   r->ring + (r->fetched % r->y.max) * row);
            r->fetched++;
        }

        memset(sum, 0, row * sizeof(uint32_t));

        for (k = first, n = 0; k < last; k++, n++) {
            w = r->y.weight[(size_t) y * r->y.max + n];
            h = r->ring + (k % r->y.max) * row;

            for (i = 0; i < row; i++) {
                sum[i] += (uint32_t) w * h[i];
            }
        }

        /* 8.8 times 0.12 fixed point, rounded */

        for (i = 0; i < row; i++) {
            dst[i] = (unsigned char) ((sum[i] + (1 << 19)) >> 20);
        }

        dst += r->stride;
    }

    return 0;
}


/*
 * Output sample i covers source samples [i * a / b, (i + 1) * a / b) for
 * a scale of a : b; in units of 1/b of a source sample that is
 * [i * a, (i + 1) * a), and source sample k is [k * b, (k + 1) * b).  Each
 * weight is an overlap over all the output sample covers of the n source
 * samples there are.
 */

static int
ngx_http_kafka_stream_axis(ngx_http_kafka_stream_axis_t *a, int n, int m,
    const int *scale)
{
    int        i, k, first, last, big, total;
    int64_t    lo, hi, end, from, to, b;
    uint16_t  *w;

    b = scale[1];
    end = (int64_t) n * b;
    a->max = (scale[0] + scale[1] - 1) / scale[1] + 1;

    /* one allocation: start[m], count[m], then the weights */

    a->start = ngx_http_kafka_stream_alloc(m, 2 * sizeof(int)
                                              + a->max * sizeof(uint16_t));
    if (a->start == NULL) {
        return -1;
    }

    a->count = a->start + m;
    a->weight = (uint16_t *) (a->count + m);

    for (i = 0; i < m; i++) {
        lo = (int64_t) i * scale[0];
        hi = lo + scale[0];

        if (hi > end) {
            hi = end;
        }

        if (lo > end - 1) {
            lo = end - 1;
        }

        first = (int) (lo / b);
        last = (int) ((hi - 1) / b);

        a->start[i] = first;
        a->count[i] = last - first + 1;

        w = a->weight + (size_t) i * a->max;
        total = 0;
        big = 0;

        for (k = first; k <= last; k++) {
            from = (lo > k * b) ? lo : k * b;
            to = (hi < (k + 1) * b) ? hi : (k + 1) * b;

            w[k - first] = (uint16_t) (((to - from)
                                        * NGX_HTTP_KAFKA_STREAM_WEIGHT_ONE
                                        + (hi - lo) / 2) / (hi - lo));
            total += w[k - first];

            if (w[k - first] > w[big]) {
                big = k - first;
            }
        }

        /* rounding may leave the sum a little off 1: the largest takes it */
        w[big] += NGX_HTTP_KAFKA_STREAM_WEIGHT_ONE - total;
    }

    return 0;
}


/* a plane's padding repeats its picture's last column and row */

static void
ngx_http_kafka_stream_pad(unsigned char *plane, size_t stride, int width,
    int height, int padded_width, int padded_height)
{
    int             y;
    unsigned char  *p;

    if (width < padded_width) {
        for (y = 0; y < height; y++) {
            p = plane + (size_t) y * stride;
            memset(p + width, p[width - 1], padded_width - width);
        }
    }

    for (y = height; y < padded_height; y++) {
        memcpy(plane + (size_t) y * stride,
               plane + (size_t) (height - 1) * stride, padded_width);
    }
}


/* one source row resampled across, to 8.8 fixed point */

static void
ngx_http_kafka_stream_across(ngx_http_kafka_stream_resize_t *r,
    const unsigned char *src, uint16_t *dst)
{
    int                    x, k, n, c;
    uint32_t               s0, s1, s2;
    const uint16_t        *w;
    const unsigned char   *p;

    c = r->channels;

    for (x = 0; x < r->width; x++) {
        n = r->x.count[x];
        w = r->x.weight + (size_t) x * r->x.max;
        p = src + (size_t) r->x.start[x] * c;

        if (c == 1) {
            s0 = 0;

            for (k = 0; k < n; k++) {
                s0 += (uint32_t) w[k] * p[k];
            }

            *dst++ = (uint16_t) ((s0 + 8) >> 4);
            continue;
        }

        s0 = 0;
        s1 = 0;
        s2 = 0;

        for (k = 0; k < n; k++) {
            s0 += (uint32_t) w[k] * p[0];
            s1 += (uint32_t) w[k] * p[1];
            s2 += (uint32_t) w[k] * p[2];
            p += 3;
        }

        *dst++ = (uint16_t) ((s0 + 8) >> 4);
        *dst++ = (uint16_t) ((s1 + 8) >> 4);
        *dst++ = (uint16_t) ((s2 + 8) >> 4);
    }
}


/*
 * The source's size against the limits, and the picture's height; a
 * picture is never larger than its source.
 */

static int
ngx_http_kafka_stream_check_size(ngx_http_kafka_stream_job_t *j, int width,
    int height)
{
    uint64_t                        max;
    ngx_http_kafka_stream_scale_t  *s;

    s = j->s;
    max = s->max_pixels ? s->max_pixels
                        : NGX_HTTP_KAFKA_STREAM_SCALE_MAX_PIXELS;

    if (width < 1 || height < 1
        || width > NGX_HTTP_KAFKA_STREAM_SCALE_MAX_SIDE
        || height > NGX_HTTP_KAFKA_STREAM_SCALE_MAX_SIDE
        || (uint64_t) width * height > max)
    {
        snprintf(s->error, sizeof(s->error),
                 "source of %dx%d pixels is too large", width, height);
        return -1;
    }

    if (s->width > width) {
        snprintf(s->error, sizeof(s->error),
                 "source of %d pixels wide is narrower than %d", width,
                 s->width);
        return -1;
    }

    s->source_width = width;
    s->source_height = height;
    s->height = ngx_http_kafka_stream_scaled_height(width, height, s->width);

    return 0;
}


static int
ngx_http_kafka_stream_fail(ngx_http_kafka_stream_job_t *j, const char *what,
    const char *why)
{
    /* the first reason stays: it is the cause, later ones its effects */

    if (j->s->error[0] == '\0') {
        snprintf(j->s->error, sizeof(j->s->error), "%s: %s", what,
                 why ? why : "failed");
    }

    return -1;
}


static int
ngx_http_kafka_stream_tj_fail(ngx_http_kafka_stream_job_t *j, tjhandle h,
    const char *what)
{
    return ngx_http_kafka_stream_fail(j, what, tjGetErrorStr2(h));
}


/* n * size bytes, or NULL when that overflows */

static void *
ngx_http_kafka_stream_alloc(size_t n, size_t size)
{
    if (n == 0 || size == 0 || n > SIZE_MAX / size) {
        return NULL;
    }

    return malloc(n * size);
}
