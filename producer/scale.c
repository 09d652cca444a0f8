/*
 * scale: pixel format conversion and resizing with libswscale.
 *
 * The context is kept between frames and rebuilt only when the source
 * changes size or format (which streams may do mid-way).
 */

#include <stdio.h>
#include <stdlib.h>

#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>

#include "scale.h"

struct scaler {
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


AVFrame *
scaler_convert(scaler_t *s, AVFrame *src, char *err, size_t errlen)
{
    int  w, h, rc;

    scale_target_size(src->width, src->height, s->req_w, s->req_h, &w, &h);
    if (src->format == s->dst_format && w == src->width && h == src->height) {
        return src;
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
