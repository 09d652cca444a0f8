/*
 * scale: libswscale conversion of decoded frames to the pixel format the
 * encoder wants (RGB24 for PNG, full-range YUV 4:2:0 for JPEG), with an
 * optional resize.
 */

#ifndef KSP_SCALE_H
#define KSP_SCALE_H

#include <libavutil/frame.h>
#include <libavutil/pixfmt.h>

typedef struct scaler scaler_t;

/* The output size for a WIDTHxHEIGHT source asked to become REQ_W x REQ_H:
 * 0x0 keeps the source size, one side 0 keeps the aspect ratio. */
void scale_target_size(int src_w, int src_h, int req_w, int req_h,
                       int *w, int *h);

scaler_t *scaler_new(enum AVPixelFormat dst_format, int req_w, int req_h);

/* Returns SRC itself when it already has the wanted format and size, else
 * a frame owned by the scaler, valid until the next call; NULL on error,
 * with the reason in ERR. */
AVFrame *scaler_convert(scaler_t *s, AVFrame *src,
                              char *err, size_t errlen);

void scaler_free(scaler_t *s);

#endif
