/*
 * publish: one Kafka message per encoded frame with librdkafka, through
 * an idempotent producer, with delivery reports counted.
 */

#ifndef KSP_PUBLISH_H
#define KSP_PUBLISH_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char   *brokers;
    const char   *topic;
    const char   *key;          /* NULL: no key */
    const char   *content_type;
    char        **props;        /* -X name=value, in order */
    int           nprops;
    int           verbose;
} publish_opts_t;

typedef struct {
    int64_t  delivered;
    int64_t  failed;
    int64_t  bytes;             /* image bytes delivered */
    int64_t  in_flight;
} publish_stats_t;

typedef struct {
    int64_t  index;
    int64_t  pts_ms;
    int      width;
    int      height;
} frame_meta_t;

typedef struct publisher publisher_t;

/* Returns 0, 2 for a configuration error (bad -X), 1 for any other error;
 * the reason is already printed. */
int publisher_new(publisher_t **out, const publish_opts_t *opts);

/* Queues DATA (malloc()ed; it becomes librdkafka's or is freed here).
 * Returns 0 when queued, -1 when it was not (counted as failed unless a
 * stop request cut short the wait for room in a full queue). */
int publisher_send(publisher_t *p, uint8_t *data, size_t len,
                   const frame_meta_t *m);

/* Serves delivery reports. */
void publisher_poll(publisher_t *p);

/* True when streaming on is pointless: a fatal producer error, a frame
 * over the size limit, or no broker ever reached before messages failed. */
int publisher_fatal(const publisher_t *p);

/* Waits for queued messages, at most message.timeout.ms (and less when a
 * second signal arrives); what is still undelivered then counts as failed. */
void publisher_flush(publisher_t *p);

publish_stats_t publisher_stats(const publisher_t *p);

void publisher_free(publisher_t *p);

#endif
