/*
 * util: what every stage of the producer shares: the program name in
 * messages, the stop flag set by signals, and monotonic/wall clocks.
 */

#ifndef KSP_UTIL_H
#define KSP_UTIL_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>

#define KSP_NAME     "kafka-stream-producer"

/* the project's version (the module's NGX_HTTP_KAFKA_STREAM_VERSION),
 * passed by the Makefile */
#ifndef KSP_VERSION
#error "KSP_VERSION is not defined: build the producer with make"
#endif

/* 1 after the first SIGINT/SIGTERM: stop reading, flush, exit.
 * 2 after the second: stop flushing too. */
extern atomic_int ksp_stop;

/* One line on stderr, prefixed with the program name.  Safe to call from
 * any thread: the progress line is cleared first so they do not mix. */
void ksp_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Set by main when a live progress line is being drawn on stderr. */
extern atomic_int ksp_progress_drawn;

int64_t ksp_mono_ns(void);
int64_t ksp_wall_ms(void);



/* Sleeps until the CLOCK_MONOTONIC time DEADLINE_NS; returns early (1)
 * when ksp_request_stop() is called, else 0. */
int ksp_sleep_until(int64_t deadline_ns);

/* Raises the stop level and wakes ksp_sleep_until().  Not for signal
 * handlers: main calls it from a thread that waits for the signals. */
int ksp_request_stop(void);

void ksp_util_init(void);
#endif
