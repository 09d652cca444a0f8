/*
 * encode: PNG through libpng into a growing memory buffer, JPEG through
 * libavcodec's mjpeg encoder.  Each encoder thread owns one encoder_t, so
 * nothing here is shared between threads.
 */

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <png.h>

#include "encode.h"

typedef struct {
    uint8_t  *data;
    size_t    len;
    size_t    cap;
} membuf_t;

struct encoder {
    encode_opts_t    opts;
    AVCodecContext  *jpeg;
    AVPacket        *pkt;
    int64_t          pts;
    char            *err;       /* where libpng's error callback writes */
    size_t           errlen;
};


enum AVPixelFormat
encoder_pix_fmt(ksp_format_t format)
{
    /* mjpeg wants full-range ("J") YUV; libswscale converts the range. */
    return format == KSP_JPEG ? AV_PIX_FMT_YUVJ420P : AV_PIX_FMT_RGB24;
}


const char *
encoder_content_type(ksp_format_t format)
{
    return format == KSP_JPEG ? "image/jpeg" : "image/png";
}


encoder_t *
encoder_new(const encode_opts_t *opts)
{
    encoder_t  *enc;

    enc = calloc(1, sizeof(*enc));
    if (enc == NULL) {
        return NULL;
    }
    enc->opts = *opts;
    return enc;
}


/* PNG */

static void
png_on_write(png_structp png, png_bytep data, size_t len)
{
    membuf_t  *b = png_get_io_ptr(png);
    uint8_t   *p;
    size_t     cap;

    if (b->len + len > b->cap) {
        cap = b->cap * 2;
        while (cap < b->len + len) {
            cap *= 2;
        }
        p = realloc(b->data, cap);
        if (p == NULL) {
            png_error(png, "out of memory for the encoded image");
        }
        b->data = p;
        b->cap = cap;
    }

    memcpy(b->data + b->len, data, len);
    b->len += len;
}


static void
png_on_flush(png_structp png)
{
    (void) png;
}


static void
png_on_error(png_structp png, png_const_charp msg)
{
    encoder_t  *enc = png_get_error_ptr(png);

    snprintf(enc->err, enc->errlen, "libpng: %s", msg);
    png_longjmp(png, 1);
}


static void
png_on_warning(png_structp png, png_const_charp msg)
{
    (void) png;
    (void) msg;
}


static int
encode_png(encoder_t *enc, const AVFrame *frame, membuf_t *b)
{
    png_structp  png;
    png_infop    info;

    png = png_create_write_struct(PNG_LIBPNG_VER_STRING, enc, png_on_error,
                                  png_on_warning);
    if (png == NULL) {
        snprintf(enc->err, enc->errlen, "libpng: cannot create a writer");
        return -1;
    }

    /* before setjmp: locals changed after it are unreliable after longjmp */
    info = png_create_info_struct(png);
    if (info == NULL) {
        png_destroy_write_struct(&png, NULL);
        snprintf(enc->err, enc->errlen, "libpng: cannot create an info struct");
        return -1;
    }

    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }

    png_set_write_fn(png, b, png_on_write, png_on_flush);
    png_set_IHDR(png, info, frame->width, frame->height, 8,
                 PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, enc->opts.png_level);
    png_set_filter(png, PNG_FILTER_TYPE_BASE, enc->opts.png_filter);
    png_write_info(png, info);

    for (int y = 0; y < frame->height; y++) {
        png_write_row(png, frame->data[0] + (ptrdiff_t) y * frame->linesize[0]);
    }

    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return 0;
}


/* JPEG */

static int
open_jpeg(encoder_t *enc, const AVFrame *frame)
{
    const AVCodec  *codec;
    int             rc;

    avcodec_free_context(&enc->jpeg);

    codec = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
    if (codec == NULL) {
        snprintf(enc->err, enc->errlen, "libavcodec has no mjpeg encoder");
        return -1;
    }

    enc->jpeg = avcodec_alloc_context3(codec);
    if (enc->jpeg == NULL) {
        snprintf(enc->err, enc->errlen, "out of memory");
        return -1;
    }

    enc->jpeg->width = frame->width;
    enc->jpeg->height = frame->height;
    enc->jpeg->pix_fmt = frame->format;
    enc->jpeg->time_base = (AVRational) { 1, 25 };
    enc->jpeg->flags |= AV_CODEC_FLAG_QSCALE;
    enc->jpeg->global_quality = enc->opts.quality * FF_QP2LAMBDA;
    /* frames are encoded in parallel by our own threads, one per core */
    enc->jpeg->thread_count = 1;

    rc = avcodec_open2(enc->jpeg, codec, NULL);
    if (rc < 0) {
        av_strerror(rc, enc->err, enc->errlen);
        avcodec_free_context(&enc->jpeg);
        return -1;
    }
    return 0;
}


static int
encode_jpeg(encoder_t *enc, AVFrame *frame, membuf_t *b)
{
    int  rc;

    if (enc->jpeg == NULL || enc->jpeg->width != frame->width
        || enc->jpeg->height != frame->height)
    {
        if (open_jpeg(enc, frame) != 0) {
            return -1;
        }
    }

    if (enc->pkt == NULL) {
        enc->pkt = av_packet_alloc();
        if (enc->pkt == NULL) {
            snprintf(enc->err, enc->errlen, "out of memory");
            return -1;
        }
    }

    /* The encoder wants increasing timestamps; ours only see some frames. */
    frame->pts = enc->pts++;
    frame->quality = enc->jpeg->global_quality;
    frame->pict_type = AV_PICTURE_TYPE_NONE;

    rc = avcodec_send_frame(enc->jpeg, frame);
    if (rc == 0) {
        rc = avcodec_receive_packet(enc->jpeg, enc->pkt);
    }
    if (rc < 0) {
        av_strerror(rc, enc->err, enc->errlen);
        return -1;
    }

    b->data = malloc(enc->pkt->size);
    if (b->data == NULL) {
        av_packet_unref(enc->pkt);
        snprintf(enc->err, enc->errlen, "out of memory");
        return -1;
    }
    memcpy(b->data, enc->pkt->data, enc->pkt->size);
    b->len = enc->pkt->size;
    av_packet_unref(enc->pkt);
    return 0;
}


int
encoder_encode(encoder_t *enc, AVFrame *frame, uint8_t **data, size_t *len,
               char *err, size_t errlen)
{
    membuf_t  b = { NULL, 0, 0 };
    int       rc;

    enc->err = err;
    enc->errlen = errlen;

    if (enc->opts.format == KSP_PNG) {
        /* a first guess that fast levels rarely exceed: half the raw size */
        b.cap = (size_t) frame->width * frame->height * 3 / 2 + 4096;
        b.data = malloc(b.cap);
        if (b.data == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        rc = encode_png(enc, frame, &b);
    } else {
        rc = encode_jpeg(enc, frame, &b);
    }

    if (rc != 0) {
        free(b.data);
        return -1;
    }

    *data = b.data;
    *len = b.len;
    return 0;
}


void
encoder_free(encoder_t *enc)
{
    if (enc == NULL) {
        return;
    }
    avcodec_free_context(&enc->jpeg);
    av_packet_free(&enc->pkt);
    free(enc);
}
