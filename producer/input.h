/*
 * input: open anything libavformat can (file, rtsp://, http://, ...), pick
 * its best video stream and decode it with libavcodec's send/receive API.
 */

#ifndef KSP_INPUT_H
#define KSP_INPUT_H

#include <stdint.h>

#include <libavutil/frame.h>

typedef struct input input_t;

/* Registers libavdevice's inputs (v4l2, lavfi, x11grab, ...) and the
 * network protocols. */
void input_init(void);

/* True when libavformat knows the input format NAME. */
int input_format_exists(const char *name);

/* Opens URL (with the input format FORMAT, or NULL to probe) and its video
 * decoder.  Any one open or read that waits more than IO_TIMEOUT seconds
 * for data (0: no limit) fails.  On failure prints one line naming the
 * input and the reason and returns NULL. */
input_t *input_open(const char *url, const char *format,
                    int decoder_threads, double io_timeout);

/* Decodes the next frame into FRAME (which must be unreferenced).
 * *pts_us is its presentation time in microseconds from the first frame of
 * the input, or INT64_MIN when the input gives none.
 * Returns 0 for a frame, 1 at the end of the input (or on stop), -1 on an
 * error, already reported. */
int input_read(input_t *in, AVFrame *frame, int64_t *pts_us);

/* The stream's frame rate as far as the container tells, else 25. */
double input_fps(const input_t *in);

/* Duration in microseconds, or -1 when unknown (live streams). */
int64_t input_duration_us(const input_t *in);

void input_close(input_t *in);

#endif
