/*
 * scale: pixel format conversion and resizing with libswscale.
 *
 * The context is kept between frames and rebuilt only when the source
 * changes size or format (which streams may do mid-way).
 */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <libavutil/common.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>

#include "scale.h"

struct scaler {
    uint8_t              luma[256];     /* limited to full range */
    uint8_t              chroma[256];
    struct SwsContext   *sws;
    enum AVPixelFormat   dst_format;
    int                  req_w, req_h;
    int                  src_w, src_h;
    enum AVPixelFormat   src_format;
    AVFrame             *out;
};


void
scale_target_size(int src_w, int src_h, int req_w, int req_h, int *w, int *h)
{
    if (req_w <= 0 && req_h <= 0) {
        *w = src_w;
        *h = src_h;
    } else if (req_h <= 0) {
        *w = req_w;
        *h = (int) ((int64_t) src_h * req_w * 2 + src_w) / (2 * src_w);
    } else if (req_w <= 0) {
        *w = (int) ((int64_t) src_w * req_h * 2 + src_h) / (2 * src_h);
        *h = req_h;
    } else {
        *w = req_w;
        *h = req_h;
    }

    if (*w < 1) {
        *w = 1;
    }
    if (*h < 1) {
        *h = 1;
    }
}


scaler_t *
scaler_new(enum AVPixelFormat dst_format, int req_w, int req_h)
{
    scaler_t  *s;

    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }

    s->out = av_frame_alloc();
    if (s->out == NULL) {
        free(s);
        return NULL;
    }

    /* BT.601/709 studio swing: Y 16..235 and C 16..240 to 0..255 */
    for (int v = 0; v < 256; v++) {
        s->luma[v] = av_clip_uint8((int) lrint((v - 16) * 255.0 / 219.0));
        s->chroma[v] = av_clip_uint8(
                           (int) lrint((v - 128) * 255.0 / 224.0 + 128));
    }

    s->dst_format = dst_format;
    s->req_w = req_w;
    s->req_h = req_h;
    s->src_format = AV_PIX_FMT_NONE;
    return s;
}


static int
reconfigure(scaler_t *s, const AVFrame *src, char *err, size_t errlen)
{
    int  w, h, rc;

    scale_target_size(src->width, src->height, s->req_w, s->req_h, &w, &h);

    sws_freeContext(s->sws);
    av_frame_unref(s->out);

    /* Bilinear keeps swscale's fast unscaled paths when only the pixel
     * format changes and is sharp enough for downscaling video frames. */
    s->sws = sws_getContext(src->width, src->height, src->format,
                            w, h, s->dst_format, SWS_BILINEAR,
                            NULL, NULL, NULL);
    if (s->sws == NULL) {
        snprintf(err, errlen, "swscale cannot convert %s %dx%d to %s %dx%d",
                 av_get_pix_fmt_name(src->format), src->width, src->height,
                 av_get_pix_fmt_name(s->dst_format), w, h);
        return -1;
    }

    s->out->format = s->dst_format;
    s->out->width = w;
    s->out->height = h;
    rc = av_frame_get_buffer(s->out, 0);
    if (rc < 0) {
        av_strerror(rc, err, errlen);
        return -1;
    }

    s->src_w = src->width;
    s->src_h = src->height;
    s->src_format = src->format;
    return 0;
}


static void
map_plane(uint8_t *dst, int dst_stride, const uint8_t *src, int src_stride,
          int w, int h, const uint8_t *table)
{
    for (int y = 0; y < h; y++) {
        const uint8_t  *in = src + (ptrdiff_t) y * src_stride;
        uint8_t        *out = dst + (ptrdiff_t) y * dst_stride;

        for (int x = 0; x < w; x++) {
            out[x] = table[in[x]];
        }
    }
}


/*
 * The JPEG path's common case, a yuv420p frame kept at its size: only the
 * range changes (JPEG is full range), and a table lookup per byte does
 * that several times faster than libswscale's general path.
 */
static AVFrame *
expand_range(scaler_t *s, const AVFrame *src, char *err, size_t errlen)
{
    int  rc, cw, ch;

    if (s->out->width != src->width || s->out->height != src->height
        || s->out->format != AV_PIX_FMT_YUVJ420P)
    {
        av_frame_unref(s->out);
        s->out->format = AV_PIX_FMT_YUVJ420P;
        s->out->width = src->width;
        s->out->height = src->height;
        rc = av_frame_get_buffer(s->out, 0);
        if (rc < 0) {
            av_strerror(rc, err, errlen);
            return NULL;
        }
    }

    cw = (src->width + 1) / 2;
    ch = (src->height + 1) / 2;
    map_plane(s->out->data[0], s->out->linesize[0], src->data[0],
              src->linesize[0], src->width, src->height, s->luma);
    map_plane(s->out->data[1], s->out->linesize[1], src->data[1],
              src->linesize[1], cw, ch, s->chroma);
    map_plane(s->out->data[2], s->out->linesize[2], src->data[2],
              src->linesize[2], cw, ch, s->chroma);
    return s->out;
}


AVFrame *
scaler_convert(scaler_t *s, AVFrame *src, char *err, size_t errlen)
{
    int  w, h, rc;

    scale_target_size(src->width, src->height, s->req_w, s->req_h, &w, &h);
    if (src->format == s->dst_format && w == src->width && h == src->height) {
        return src;
    }

    if (src->format == AV_PIX_FMT_YUV420P
        && s->dst_format == AV_PIX_FMT_YUVJ420P
        && w == src->width && h == src->height
        && src->color_range != AVCOL_RANGE_JPEG)
    {
        return expand_range(s, src, err, errlen);
    }

    if (s->sws == NULL || src->width != s->src_w || src->height != s->src_h
        || src->format != s->src_format)
    {
        if (reconfigure(s, src, err, errlen) != 0) {
            return NULL;
        }
    }

    rc = sws_scale(s->sws, (const uint8_t * const *) src->data,
                   src->linesize, 0, src->height,
                   s->out->data, s->out->linesize);
    if (rc <= 0) {
        snprintf(err, errlen, "swscale failed to convert a %dx%d frame",
                 src->width, src->height);
        return NULL;
    }

    return s->out;
}


void
scaler_free(scaler_t *s)
{
    if (s == NULL) {
        return;
    }
    sws_freeContext(s->sws);
    av_frame_free(&s->out);
    free(s);
}
