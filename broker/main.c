/*
 * kafka-stream-broker: an embedded development Kafka cluster.
 *
 * Wraps librdkafka's mock cluster (rdkafka_mock.h), which speaks the real
 * Kafka protocol on real TCP ports, in a small program that the demo and
 * the test suite start instead of an Apache Kafka broker.  It creates the
 * requested topics, prints the bootstrap address, and runs until SIGTERM
 * or SIGINT.
 *
 * With --control, commands read from standard input steer the cluster
 * while it runs, for fault tests:
 *
 *     down BROKER|-1          disconnect a broker (or all of them)
 *     up BROKER|-1            let it accept connections again
 *     leader TOPIC PART ID    move a partition's leader
 *     rtt BROKER|-1 MS        add round-trip delay
 *
 * Each command is answered with "ok" or "error: ..." on standard output.
 */

#define _GNU_SOURCE

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>


#define MAX_TOPICS  64


typedef struct {
    char  *name;
    int    partitions;
} topic_spec_t;


static volatile sig_atomic_t  stop;


static void
on_signal(int signo)
{
    (void) signo;
    stop = 1;
}


static void
usage(FILE *out)
{
    fprintf(out,
        "usage: kafka-stream-broker [options]\n"
        "\n"
        "Runs librdkafka's mock Kafka cluster on loopback until SIGTERM or\n"
        "SIGINT, for development and tests.\n"
        "\n"
        "  -b, --brokers N          number of brokers (default 1)\n"
        "  -t, --topic NAME[:P[:R]] create a topic with P partitions and\n"
        "                           replication factor R (default dbtech:1:1;\n"
        "                           repeatable)\n"
        "  -o, --address-file PATH  also write the bootstrap address there\n"
        "  -c, --control            read control commands from stdin\n"
        "                           (down/up BROKER, leader TOPIC PART ID,\n"
        "                           rtt BROKER MS)\n"
        "  -q, --quiet              do not print the address on stdout\n"
        "  -h, --help               this text\n"
        "\n"
        "The bootstrap address (random ports) is printed as the first line\n"
        "of standard output: \"bootstrap <host:port,...>\".\n");
}


static int
parse_topic(char *arg, topic_spec_t *t, int *replication)
{
    char  *p, *r, *end;

    t->name = arg;
    t->partitions = 1;
    *replication = 1;

    p = strchr(arg, ':');
    if (p == NULL) {
        return *arg ? 0 : -1;
    }

    *p++ = '\0';
    r = strchr(p, ':');
    if (r != NULL) {
        *r++ = '\0';
        *replication = (int) strtol(r, &end, 10);
        if (*end != '\0' || *replication < 1) {
            return -1;
        }
    }

    t->partitions = (int) strtol(p, &end, 10);
    if (*end != '\0' || t->partitions < 1 || *arg == '\0') {
        return -1;
    }

    return 0;
}


static void
control(rd_kafka_mock_cluster_t *mc, char *line)
{
    char                 topic[256];
    int                  id, part, ms, n;
    rd_kafka_resp_err_t  err;

    if (sscanf(line, "down %d", &id) == 1) {
        err = rd_kafka_mock_broker_set_down(mc, id);

    } else if (sscanf(line, "up %d", &id) == 1) {
        err = rd_kafka_mock_broker_set_up(mc, id);

    } else if (sscanf(line, "rtt %d %d", &id, &ms) == 2) {
        err = rd_kafka_mock_broker_set_rtt(mc, id, ms);

    } else if ((n = sscanf(line, "leader %255s %d %d", topic, &part, &id))
               == 3)
    {
        err = rd_kafka_mock_partition_set_leader(mc, topic, part, id);

    } else {
        printf("error: unknown command: %s", line);
        fflush(stdout);
        return;
    }

    if (err) {
        printf("error: %s\n", rd_kafka_err2str(err));
    } else {
        printf("ok\n");
    }

    fflush(stdout);
}


int
main(int argc, char **argv)
{
    int                       c, i, nbrokers, ntopics, quiet, ctl, repl;
    int                       repls[MAX_TOPICS];
    char                      errstr[512], line[512], *end;
    const char               *addr, *addr_file;
    FILE                     *f;
    rd_kafka_t               *rk;
    rd_kafka_conf_t          *conf;
    struct pollfd             pfd;
    sigset_t                  block, orig;
    struct sigaction          sa;
    rd_kafka_mock_cluster_t  *mc;
    rd_kafka_resp_err_t       err;
    topic_spec_t              topics[MAX_TOPICS];

    static const struct option  options[] = {
        { "brokers",      required_argument, NULL, 'b' },
        { "topic",        required_argument, NULL, 't' },
        { "address-file", required_argument, NULL, 'o' },
        { "control",      no_argument,       NULL, 'c' },
        { "quiet",        no_argument,       NULL, 'q' },
        { "help",         no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    nbrokers = 1;
    ntopics = 0;
    quiet = 0;
    ctl = 0;
    addr_file = NULL;

    while ((c = getopt_long(argc, argv, "b:t:o:cqh", options, NULL)) != -1) {
        switch (c) {
        case 'b':
            nbrokers = (int) strtol(optarg, &end, 10);
            if (*end != '\0' || nbrokers < 1 || nbrokers > 32) {
                fprintf(stderr, "kafka-stream-broker: invalid --brokers "
                        "\"%s\": expected 1..32\n", optarg);
                return 2;
            }
            break;

        case 't':
            if (ntopics == MAX_TOPICS) {
                fprintf(stderr, "kafka-stream-broker: too many topics\n");
                return 2;
            }
            if (parse_topic(optarg, &topics[ntopics], &repl) != 0) {
                fprintf(stderr, "kafka-stream-broker: invalid --topic "
                        "\"%s\": expected NAME[:PARTITIONS[:REPLICAS]]\n",
                        optarg);
                return 2;
            }
            repls[ntopics++] = repl;
            break;

        case 'o':
            addr_file = optarg;
            break;

        case 'c':
            ctl = 1;
            break;

        case 'q':
            quiet = 1;
            break;

        case 'h':
            usage(stdout);
            return 0;

        default:
            usage(stderr);
            return 2;
        }
    }

    if (optind != argc) {
        usage(stderr);
        return 2;
    }

    if (ntopics == 0) {
        topics[0].name = "dbtech";
        topics[0].partitions = 1;
        repls[0] = 1;
        ntopics = 1;
    }

    /* the mock cluster needs a client instance to live in */

    conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr))
        != RD_KAFKA_CONF_OK)
    {
        fprintf(stderr, "kafka-stream-broker: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }

    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "kafka-stream-broker: %s\n", errstr);
        return 1;
    }

    mc = rd_kafka_mock_cluster_new(rk, nbrokers);
    if (mc == NULL) {
        fprintf(stderr, "kafka-stream-broker: cannot create mock cluster\n");
        rd_kafka_destroy(rk);
        return 1;
    }

    for (i = 0; i < ntopics; i++) {
        if (repls[i] > nbrokers) {
            fprintf(stderr, "kafka-stream-broker: topic \"%s\": replication "
                    "factor %d exceeds %d brokers\n",
                    topics[i].name, repls[i], nbrokers);
            goto failed;
        }

        err = rd_kafka_mock_topic_create(mc, topics[i].name,
                                         topics[i].partitions, repls[i]);
        if (err) {
            fprintf(stderr, "kafka-stream-broker: topic \"%s\": %s\n",
                    topics[i].name, rd_kafka_err2str(err));
            goto failed;
        }
    }

    addr = rd_kafka_mock_cluster_bootstraps(mc);

    if (addr_file != NULL) {
        f = fopen(addr_file, "w");
        if (f == NULL || fprintf(f, "%s\n", addr) < 0 || fclose(f) != 0) {
            fprintf(stderr, "kafka-stream-broker: %s: %s\n",
                    addr_file, strerror(errno));
            goto failed;
        }
    }

    if (!quiet) {
        printf("bootstrap %s\n", addr);
        fflush(stdout);
    }

    /*
     * the signals stay blocked except inside ppoll(), so one that arrives
     * between the check of "stop" and the wait is not lost
     */

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &orig);

    pfd.fd = STDIN_FILENO;
    pfd.events = POLLIN;

    while (!stop) {
        if (ppoll(&pfd, ctl ? 1 : 0, NULL, &orig) <= 0) {
            continue;
        }

        if (fgets(line, sizeof(line), stdin) == NULL) {
            /* the controlling side went away: keep serving */
            ctl = 0;
            continue;
        }

        control(mc, line);
    }

    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);

    return 0;

failed:

    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);

    return 1;
}
