/*
 * encode: one frame into one image file in memory: PNG with libpng, or
 * JPEG with libavcodec's mjpeg encoder.
 */

#ifndef KSP_ENCODE_H
#define KSP_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include <libavutil/frame.h>
#include <libavutil/pixfmt.h>

typedef enum {
    KSP_PNG,
    KSP_JPEG
} ksp_format_t;

typedef struct {
    ksp_format_t  format;
    int           quality;      /* JPEG: ffmpeg's qscale, 1 best .. 31 */
    int           png_level;    /* zlib level 0..9 */
    int           png_filter;   /* libpng PNG_FILTER_* mask */
} encode_opts_t;

typedef struct encoder encoder_t;

encoder_t *encoder_new(const encode_opts_t *opts);

/* The pixel format FRAME must have for encoder_encode(). */
enum AVPixelFormat encoder_pix_fmt(ksp_format_t format);
const char *encoder_content_type(ksp_format_t format);

/* Encodes FRAME; *data is malloc()ed and becomes the caller's.
 * Returns 0, or -1 with the library's reason in ERR. */
int encoder_encode(encoder_t *enc, AVFrame *frame, uint8_t **data,
                   size_t *len, char *err, size_t errlen);

void encoder_free(encoder_t *enc);

#endif
