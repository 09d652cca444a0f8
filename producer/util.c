/*
 * util: error lines, stop flag and clocks shared by all stages.
 */

#define _GNU_SOURCE

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "util.h"

atomic_int ksp_stop;
atomic_int ksp_progress_drawn;


void
ksp_error(const char *fmt, ...)
{
    char     line[1024];
    va_list  ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);

    /* One write so that lines from several threads do not interleave;
     * "\r\033[K" erases a progress line that may be on the terminal. */
    fprintf(stderr, "%s%s: %s\n",
            atomic_load(&ksp_progress_drawn) ? "\r\033[K" : "",
            KSP_NAME, line);
}


int64_t
ksp_mono_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}


int64_t
ksp_wall_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


static pthread_mutex_t  sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t   sleep_cond;


void
ksp_util_init(void)
{
    pthread_condattr_t  attr;

    /* timed waits against the monotonic clock: pacing must not follow
     * changes of the wall clock */
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&sleep_cond, &attr);
    pthread_condattr_destroy(&attr);
}


int
ksp_sleep_until(int64_t deadline_ns)
{
    struct timespec  ts;
    int              rc = 0, stopped;

    ts.tv_sec = deadline_ns / 1000000000;
    ts.tv_nsec = deadline_ns % 1000000000;

    pthread_mutex_lock(&sleep_lock);
    while (!(stopped = atomic_load(&ksp_stop)) && rc != ETIMEDOUT) {
        /* an absolute deadline: early wake-ups cause no drift */
        rc = pthread_cond_timedwait(&sleep_cond, &sleep_lock, &ts);
    }
    pthread_mutex_unlock(&sleep_lock);

    return stopped != 0;
}


int
ksp_request_stop(void)
{
    int  level;

    pthread_mutex_lock(&sleep_lock);
    level = atomic_fetch_add(&ksp_stop, 1) + 1;
    pthread_cond_broadcast(&sleep_cond);
    pthread_mutex_unlock(&sleep_lock);
    return level;
}
