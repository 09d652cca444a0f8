/*
 * pool: encoder threads that work on a ring of frame slots, so that N
 * frames are scaled and encoded at once while the publisher still sends
 * them in the order they were decoded.
 *
 *   reader:    pool_get_free -> fill job -> pool_submit
 *   encoders:  take queued jobs in turn, scale + encode them
 *   publisher: pool_get_done (strictly in sequence) -> send -> pool_put_back
 */

#ifndef KSP_POOL_H
#define KSP_POOL_H

#include <stddef.h>
#include <stdint.h>

#include <libavutil/frame.h>

#include "encode.h"

typedef struct {
    uint64_t   seq;
    int        state;

    /* filled by the reader */
    AVFrame   *frame;
    int64_t    index;       /* the "frame" header */
    int64_t    media_ns;    /* position on the pacing timeline */

    /* filled by the encoder */
    uint8_t   *data;        /* malloc()ed image, or NULL */
    size_t     len;
    int        width;
    int        height;
    int        failed;
    char       err[256];
} job_t;

typedef struct pool pool_t;

pool_t *pool_new(int threads, const encode_opts_t *eo, int req_w, int req_h);

/* The slot for the next frame, or NULL once a stop was requested. */
job_t *pool_get_free(pool_t *p);
void pool_submit(pool_t *p, job_t *job);

/* No more jobs will be submitted. */
void pool_close(pool_t *p);

/* The next job in submission order once it is encoded; NULL when the pool
 * is closed and every job was handed out. */
job_t *pool_get_done(pool_t *p);

/* Frees what the job still owns and makes its slot free. */
void pool_put_back(pool_t *p, job_t *job);

/* Joins the threads (call after pool_close) and frees everything. */
void pool_free(pool_t *p);

#endif
