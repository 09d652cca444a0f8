/*
 * fleet-load: a camera fleet for the benchmark, without decoding video.
 *
 *     fleet-load -b BROKERS -t TOPIC -n CAMERAS -i IMAGE [-r FPS]
 *                [-k PREFIX] [-d SECONDS] [-X prop=value]...
 *
 * Sends the image IMAGE (a JPEG or PNG file) as the frames of CAMERAS
 * cameras, keyed PREFIX1 .. PREFIXn ("cam" by default), FPS frames per
 * second each (25 by default), for SECONDS seconds or until SIGTERM or
 * SIGINT.  The sends are spread evenly over each second, as many
 * independent cameras would be, not sent in bursts.  The partitioner is
 * kafka-stream-producer's default, murmur2 (Kafka's Java hashing of the
 * key); -X sets any librdkafka producer property, that one included.
 *
 * At the end it prints one line: "sent N frames, F failed, P partitions
 * used, at most K cameras in one partition".  Exit status 0, or 1 when a
 * frame could not be delivered.
 */

#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>


#define MAX_CAMERAS  4096
#define MAX_PARTS    4096


static volatile sig_atomic_t  stop;
static long                   delivered, failed;
static int                    partition_of[MAX_CAMERAS];


static void
on_signal(int sig)
{
    (void) sig;
    stop = 1;
}


static void
on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    intptr_t  camera = (intptr_t) m->_private;

    (void) rk;
    (void) opaque;

    if (m->err) {
        if (failed++ == 0) {
            fprintf(stderr, "fleet-load: delivery failed: %s\n",
                    rd_kafka_err2str(m->err));
        }
        return;
    }

    delivered++;
    partition_of[camera] = m->partition;
}


static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static char *
read_file(const char *path, size_t *len)
{
    FILE  *f;
    char  *buf;
    long   size;

    f = fopen(path, "rb");
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) <= 0
        || fseek(f, 0, SEEK_SET) != 0)
    {
        fprintf(stderr, "fleet-load: %s: %s\n", path, strerror(errno));
        if (f) {
            fclose(f);
        }
        return NULL;
    }

    buf = malloc(size);
    if (buf == NULL || fread(buf, 1, size, f) != (size_t) size) {
        fprintf(stderr, "fleet-load: cannot read %s\n", path);
        free(buf);
        fclose(f);
        return NULL;
    }

    fclose(f);
    *len = size;
    return buf;
}


static int
usage(void)
{
    fprintf(stderr, "usage: fleet-load -b BROKERS -t TOPIC -n CAMERAS "
            "-i IMAGE [-r FPS] [-k PREFIX] [-d SECONDS] "
            "[-X prop=value]...\n");
    return 2;
}


int
main(int argc, char **argv)
{
    int                i, n, fps, used, most, per[MAX_PARTS];
    char               errstr[512], key[256], *image, *eq;
    size_t             image_len;
    double             start, end, duration, interval, next;
    long               sent;
    const char        *brokers, *topic, *path, *prefix;
    rd_kafka_t        *rk;
    rd_kafka_conf_t   *conf;
    rd_kafka_topic_t  *rkt;

    brokers = topic = path = NULL;
    prefix = "cam";
    n = 0;
    fps = 25;
    duration = 0;

    conf = rd_kafka_conf_new();

    if (rd_kafka_conf_set(conf, "partitioner", "murmur2", errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK
        || rd_kafka_conf_set(conf, "linger.ms", "2", errstr, sizeof(errstr))
           != RD_KAFKA_CONF_OK
        || rd_kafka_conf_set(conf, "message.max.bytes", "16000000", errstr,
                             sizeof(errstr)) != RD_KAFKA_CONF_OK)
    {
        fprintf(stderr, "fleet-load: %s\n", errstr);
        return 1;
    }

    for (i = 1; i < argc; i++) {
        if (i + 1 >= argc || argv[i][0] != '-' || argv[i][2] != '\0') {
            return usage();
        }

        switch (argv[i][1]) {
        case 'b': brokers = argv[++i]; break;
        case 't': topic = argv[++i]; break;
        case 'i': path = argv[++i]; break;
        case 'k': prefix = argv[++i]; break;
        case 'n': n = atoi(argv[++i]); break;
        case 'r': fps = atoi(argv[++i]); break;
        case 'd': duration = atof(argv[++i]); break;
        case 'X':
            eq = strchr(argv[++i], '=');
            if (eq == NULL) {
                return usage();
            }
            *eq = '\0';
            if (rd_kafka_conf_set(conf, argv[i], eq + 1, errstr,
                                  sizeof(errstr)) != RD_KAFKA_CONF_OK)
            {
                fprintf(stderr, "fleet-load: %s\n", errstr);
                return 2;
            }
            break;
        default:
            return usage();
        }
    }

    if (brokers == NULL || topic == NULL || path == NULL
        || n < 1 || n > MAX_CAMERAS || fps < 1 || fps > 1000)
    {
        return usage();
    }

    image = read_file(path, &image_len);
    if (image == NULL) {
        return 1;
    }

    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK)
    {
        fprintf(stderr, "fleet-load: %s\n", errstr);
        return 2;
    }

    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);

    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "fleet-load: %s\n", errstr);
        return 1;
    }

    rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (rkt == NULL) {
        fprintf(stderr, "fleet-load: %s\n",
                rd_kafka_err2str(rd_kafka_last_error()));
        return 1;
    }

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    for (i = 0; i < n; i++) {
        partition_of[i] = -1;
    }

    /* one frame every 1/(n * fps) s, the cameras in turn */

    interval = 1.0 / ((double) n * fps);
    start = now();
    end = duration > 0 ? start + duration : 0;
    next = start;
    sent = 0;

    while (!stop && (end == 0 || now() < end)) {
        i = (int) (sent % n);
        snprintf(key, sizeof(key), "%s%d", prefix, i + 1);

        while (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, 0, image,
                                image_len, key, strlen(key),
                                (void *) (intptr_t) i) == -1)
        {
            if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL
                || stop)
            {
                break;
            }
            rd_kafka_poll(rk, 10);
        }

        sent++;
        next += interval;

        rd_kafka_poll(rk, 0);

        while (!stop && now() < next) {
            double  wait = next - now();
            struct timespec  ts;

            if (wait > 0.001) {
                rd_kafka_poll(rk, (int) (wait * 1000));
                continue;
            }

            ts.tv_sec = 0;
            ts.tv_nsec = (long) (wait * 1e9);
            nanosleep(&ts, NULL);
        }
    }

    rd_kafka_flush(rk, 10000);

    memset(per, 0, sizeof(per));
    used = 0;
    most = 0;

    for (i = 0; i < n; i++) {
        if (partition_of[i] < 0 || partition_of[i] >= MAX_PARTS) {
            continue;
        }
        if (per[partition_of[i]]++ == 0) {
            used++;
        }
        if (per[partition_of[i]] > most) {
            most = per[partition_of[i]];
        }
    }

    printf("sent %ld frames, %ld failed, %d partitions used, at most %d "
           "cameras in one partition\n", delivered, failed + (sent - delivered
           - failed), used, most);

    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    free(image);

    return (failed || delivered != sent) ? 1 : 0;
}
