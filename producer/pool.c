/*
 * pool: the ring of frame slots and the encoder threads.
 *
 * Job seq lives in slot seq % nslots.  The reader fills slots in sequence,
 * encoders take them in sequence (but finish in any order), and the
 * publisher waits for exactly the next sequence number: so output order
 * equals input order whatever the number of threads.  The ring bounds the
 * memory used and lets the reader run a few frames ahead of the pacing.
 */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"
#include "scale.h"
#include "util.h"

enum { SLOT_FREE, SLOT_QUEUED, SLOT_BUSY, SLOT_DONE };

typedef struct {
    pool_t     *pool;
    pthread_t   tid;
    scaler_t   *scaler;
    encoder_t  *encoder;
} worker_t;

struct pool {
    pthread_mutex_t  lock;
    pthread_cond_t   cond_free;
    pthread_cond_t   cond_work;
    pthread_cond_t   cond_done;

    job_t           *slots;
    size_t           nslots;
    uint64_t         next_submit;
    uint64_t         next_encode;
    uint64_t         next_publish;
    int              closed;

    worker_t        *workers;
    int              nworkers;
};


static void
encode_job(worker_t *w, job_t *job)
{
    AVFrame  *f;

    if (atomic_load(&ksp_stop)) {
        /* stopping: the publisher drops unsent frames, so skip the work */
        return;
    }

    f = scaler_convert(w->scaler, job->frame, job->err, sizeof(job->err));
    if (f == NULL) {
        job->failed = 1;
        return;
    }

    if (encoder_encode(w->encoder, f, &job->data, &job->len,
                       job->err, sizeof(job->err)) != 0)
    {
        job->failed = 1;
        return;
    }

    job->width = f->width;
    job->height = f->height;
}


static void *
worker_main(void *arg)
{
    worker_t  *w = arg;
    pool_t    *p = w->pool;
    job_t     *job;

    pthread_mutex_lock(&p->lock);

    for ( ;; ) {
        while (p->next_encode == p->next_submit && !p->closed) {
            pthread_cond_wait(&p->cond_work, &p->lock);
        }
        if (p->next_encode == p->next_submit) {
            break;
        }

        job = &p->slots[p->next_encode % p->nslots];
        p->next_encode++;
        job->state = SLOT_BUSY;
        pthread_mutex_unlock(&p->lock);

        encode_job(w, job);

        pthread_mutex_lock(&p->lock);
        job->state = SLOT_DONE;
        pthread_cond_broadcast(&p->cond_done);
    }

    pthread_mutex_unlock(&p->lock);
    return NULL;
}


static int
start_workers(pool_t *p, int threads, const encode_opts_t *eo,
              int req_w, int req_h)
{
    worker_t  *w;
    int        rc;

    p->workers = calloc(threads, sizeof(worker_t));
    if (p->workers == NULL) {
        ksp_error("out of memory");
        return -1;
    }

    for (int i = 0; i < threads; i++) {
        w = &p->workers[i];
        w->pool = p;
        w->scaler = scaler_new(encoder_pix_fmt(eo->format), req_w, req_h);
        w->encoder = encoder_new(eo);
        if (w->scaler == NULL || w->encoder == NULL) {
            ksp_error("out of memory");
            goto failed;
        }

        rc = pthread_create(&w->tid, NULL, worker_main, w);
        if (rc != 0) {
            ksp_error("cannot start an encoder thread: %s", strerror(rc));
            goto failed;
        }
        p->nworkers++;
    }

    return 0;

failed:
    /* the running workers are freed by pool_free() */
    scaler_free(w->scaler);
    encoder_free(w->encoder);
    return -1;
}


pool_t *
pool_new(int threads, const encode_opts_t *eo, int req_w, int req_h)
{
    pool_t  *p;

    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        ksp_error("out of memory");
        return NULL;
    }

    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond_free, NULL);
    pthread_cond_init(&p->cond_work, NULL);
    pthread_cond_init(&p->cond_done, NULL);

    /* each encoder busy, as many encoded and waiting, and some slack for
     * the reader to stay ahead of the paced publisher */
    p->nslots = (size_t) threads * 2 + 4;
    p->slots = calloc(p->nslots, sizeof(job_t));
    if (p->slots == NULL) {
        ksp_error("out of memory");
        goto failed;
    }

    for (size_t i = 0; i < p->nslots; i++) {
        p->slots[i].frame = av_frame_alloc();
        if (p->slots[i].frame == NULL) {
            ksp_error("out of memory");
            goto failed;
        }
    }

    if (start_workers(p, threads, eo, req_w, req_h) != 0) {
        goto failed;
    }

    return p;

failed:
    pool_close(p);      /* lets the workers already started end */
    pool_free(p);
    return NULL;
}


job_t *
pool_get_free(pool_t *p)
{
    job_t  *job;

    pthread_mutex_lock(&p->lock);
    job = &p->slots[p->next_submit % p->nslots];
    while (job->state != SLOT_FREE && !atomic_load(&ksp_stop)) {
        pthread_cond_wait(&p->cond_free, &p->lock);
    }
    if (atomic_load(&ksp_stop)) {
        job = NULL;
    } else {
        job->seq = p->next_submit;
        job->data = NULL;
        job->len = 0;
        job->failed = 0;
        job->err[0] = '\0';
    }
    pthread_mutex_unlock(&p->lock);
    return job;
}


void
pool_submit(pool_t *p, job_t *job)
{
    pthread_mutex_lock(&p->lock);
    job->state = SLOT_QUEUED;
    p->next_submit++;
    pthread_cond_signal(&p->cond_work);
    pthread_mutex_unlock(&p->lock);
}


void
pool_close(pool_t *p)
{
    pthread_mutex_lock(&p->lock);
    p->closed = 1;
    pthread_cond_broadcast(&p->cond_work);
    pthread_cond_broadcast(&p->cond_done);
    pthread_mutex_unlock(&p->lock);
}


job_t *
pool_get_done(pool_t *p)
{
    job_t  *job;

    pthread_mutex_lock(&p->lock);
    for ( ;; ) {
        if (p->next_publish == p->next_submit && p->closed) {
            job = NULL;
            break;
        }
        job = &p->slots[p->next_publish % p->nslots];
        if (p->next_publish < p->next_submit && job->state == SLOT_DONE) {
            p->next_publish++;
            break;
        }
        pthread_cond_wait(&p->cond_done, &p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return job;
}


void
pool_put_back(pool_t *p, job_t *job)
{
    free(job->data);
    job->data = NULL;
    av_frame_unref(job->frame);

    pthread_mutex_lock(&p->lock);
    job->state = SLOT_FREE;
    pthread_cond_broadcast(&p->cond_free);
    pthread_mutex_unlock(&p->lock);
}


void
pool_free(pool_t *p)
{
    if (p == NULL) {
        return;
    }

    for (int i = 0; i < p->nworkers; i++) {
        pthread_join(p->workers[i].tid, NULL);
        scaler_free(p->workers[i].scaler);
        encoder_free(p->workers[i].encoder);
    }
    free(p->workers);

    if (p->slots != NULL) {
        for (size_t i = 0; i < p->nslots; i++) {
            free(p->slots[i].data);
            av_frame_free(&p->slots[i].frame);
        }
        free(p->slots);
    }

    pthread_cond_destroy(&p->cond_free);
    pthread_cond_destroy(&p->cond_work);
    pthread_cond_destroy(&p->cond_done);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
