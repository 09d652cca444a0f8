/*
 * kafka-stream-topics: the few administrative requests the broker
 * launcher, the demo and the tests make of a Kafka cluster, through
 * librdkafka's Admin API, in milliseconds instead of a JVM start each.
 *
 *     kafka-stream-topics -b BROKERS wait [-n N]
 *     kafka-stream-topics -b BROKERS create NAME[:P[:R]] ... [-c K=V] [-e]
 *     kafka-stream-topics -b BROKERS delete NAME ...
 *     kafka-stream-topics -b BROKERS describe NAME
 *
 * "wait" returns once the cluster answers metadata with N brokers (and
 * every topic it lists has a leader for each partition); "create" returns
 * once every partition of the new topics has a leader, so that a producer
 * or consumer started next finds them.  Exit status 0 on success, 1 with
 * a one-line reason on standard error otherwise.
 */

#define _GNU_SOURCE

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>


#define MAX_CONFIGS  32


typedef struct {
    const char  *name;
    const char  *value;
} topic_config_t;


static const char  *brokers;
static int          timeout_ms = 30000;
static int          quiet;
static int          exist_ok;    /* create: an existing topic is fine */


static long long
now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


static void
usage(FILE *out)
{
    fprintf(out,
        "usage: kafka-stream-topics -b BROKERS [-T SECONDS] COMMAND ...\n"
        "\n"
        "  wait [-n N]                   until N brokers (default 1) serve\n"
        "  create NAME[:P[:R]] ... [-c KEY=VALUE ...] [-e]\n"
        "                                topics with P partitions (1) and\n"
        "                                replication factor R (1), topic\n"
        "                                configuration KEY=VALUE; -e: one\n"
        "                                that exists already is fine\n"
        "  delete NAME ...               delete topics\n"
        "  describe NAME                 a line per partition: leader,\n"
        "                                replicas, in-sync replicas\n"
        "\n"
        "  -b, --brokers LIST    bootstrap servers (host:port,...)\n"
        "  -T, --timeout SEC     give up after SEC seconds (default 30)\n"
        "  -q, --quiet           no librdkafka log lines\n");
}


static void
log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void) rk;

    if (!quiet && level <= 4) {
        fprintf(stderr, "kafka-stream-topics: %s: %s\n", fac, buf);
    }
}


static rd_kafka_t *
client(void)
{
    char              errstr[512];
    rd_kafka_t       *rk;
    rd_kafka_conf_t  *conf;

    conf = rd_kafka_conf_new();

    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK
        || rd_kafka_conf_set(conf, "reconnect.backoff.max.ms", "500",
                             errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
    {
        fprintf(stderr, "kafka-stream-topics: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }

    rd_kafka_conf_set_log_cb(conf, log_cb);

    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "kafka-stream-topics: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
    }

    return rk;
}


/*
 * 1 when the cluster lists at least nbrokers brokers and each of the
 * topics named (all it knows when names is NULL) exists with a leader for
 * every partition; 0 when not yet.
 */

static int
cluster_ready(rd_kafka_t *rk, int nbrokers, char **names, int nnames,
    int wait_ms)
{
    int                            i, j, k, found;
    rd_kafka_resp_err_t            err;
    const rd_kafka_metadata_t     *md;
    const rd_kafka_metadata_topic_t  *t;

    err = rd_kafka_metadata(rk, 1, NULL, &md, wait_ms);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return 0;
    }

    if (md->broker_cnt < nbrokers) {
        rd_kafka_metadata_destroy(md);
        return 0;
    }

    for (i = 0; i < md->topic_cnt; i++) {
        t = &md->topics[i];

        for (j = 0; j < t->partition_cnt; j++) {
            if (t->partitions[j].leader < 0) {
                for (k = 0; k < nnames; k++) {
                    if (strcmp(names[k], t->topic) == 0) {
                        break;
                    }
                }

                if (names == NULL || k < nnames) {
                    rd_kafka_metadata_destroy(md);
                    return 0;
                }
            }
        }
    }

    for (k = 0; k < nnames; k++) {
        found = 0;

        for (i = 0; i < md->topic_cnt; i++) {
            if (strcmp(names[k], md->topics[i].topic) == 0
                && md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR
                && md->topics[i].partition_cnt > 0)
            {
                found = 1;
                break;
            }
        }

        if (!found) {
            rd_kafka_metadata_destroy(md);
            return 0;
        }
    }

    rd_kafka_metadata_destroy(md);
    return 1;
}


static int
wait_ready(rd_kafka_t *rk, int nbrokers, char **names, int nnames)
{
    long long  deadline, left;

    deadline = now_ms() + timeout_ms;

    for ( ;; ) {
        left = deadline - now_ms();
        if (left <= 0) {
            return 0;
        }

        if (cluster_ready(rk, nbrokers, names, nnames,
                          left < 2000 ? (int) left : 2000))
        {
            return 1;
        }

        usleep(50 * 1000);
    }
}


/* the result event of an admin request, or NULL after the timeout */

static rd_kafka_event_t *
admin_result(rd_kafka_queue_t *q)
{
    rd_kafka_event_t  *ev;

    ev = rd_kafka_queue_poll(q, timeout_ms + 5000);
    if (ev == NULL) {
        fprintf(stderr, "kafka-stream-topics: %s: no answer in %d s\n",
                brokers, timeout_ms / 1000);
        return NULL;
    }

    if (rd_kafka_event_error(ev)) {
        fprintf(stderr, "kafka-stream-topics: %s\n",
                rd_kafka_event_error_string(ev));
        rd_kafka_event_destroy(ev);
        return NULL;
    }

    return ev;
}


/* 0 when every topic result is fine, else 1 after saying which is not */

static int
topic_results(const rd_kafka_topic_result_t **res, size_t n,
    const char *verb)
{
    int     failed;
    size_t  i;

    failed = 0;

    for (i = 0; i < n; i++) {
        if (exist_ok && rd_kafka_topic_result_error(res[i])
                        == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
        {
            continue;
        }

        if (rd_kafka_topic_result_error(res[i])) {
            fprintf(stderr, "kafka-stream-topics: cannot %s %s: %s\n", verb,
                    rd_kafka_topic_result_name(res[i]),
                    rd_kafka_topic_result_error_string(res[i]));
            failed = 1;
        }
    }

    return failed;
}


static int
create_topics(rd_kafka_t *rk, char **specs, int n, topic_config_t *configs,
    int nconfigs)
{
    int                      i, j, rc, partitions, replicas;
    char                    *p, errstr[512];
    size_t                   nres;
    rd_kafka_event_t        *ev;
    rd_kafka_queue_t        *q;
    rd_kafka_NewTopic_t    **topics;
    rd_kafka_AdminOptions_t *opts;
    const rd_kafka_topic_result_t  **res;

    topics = calloc(n, sizeof(rd_kafka_NewTopic_t *));
    if (topics == NULL) {
        perror("kafka-stream-topics");
        return 1;
    }

    rc = 1;

    for (i = 0; i < n; i++) {
        partitions = 1;
        replicas = 1;

        p = strchr(specs[i], ':');
        if (p != NULL) {
            *p++ = '\0';
            partitions = atoi(p);
            p = strchr(p, ':');
            if (p != NULL) {
                replicas = atoi(p + 1);
            }
        }

        if (specs[i][0] == '\0' || partitions < 1 || replicas < 1) {
            fprintf(stderr, "kafka-stream-topics: bad topic %s: "
                    "NAME[:PARTITIONS[:REPLICAS]], each at least 1\n",
                    specs[i]);
            goto done;
        }

        topics[i] = rd_kafka_NewTopic_new(specs[i], partitions, replicas,
                                          errstr, sizeof(errstr));
        if (topics[i] == NULL) {
            fprintf(stderr, "kafka-stream-topics: %s: %s\n", specs[i],
                    errstr);
            goto done;
        }

        for (j = 0; j < nconfigs; j++) {
            if (rd_kafka_NewTopic_set_config(topics[i], configs[j].name,
                                             configs[j].value))
            {
                fprintf(stderr, "kafka-stream-topics: cannot set %s\n",
                        configs[j].name);
                goto done;
            }
        }
    }

    q = rd_kafka_queue_new(rk);
    opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, errstr,
                                                sizeof(errstr));
    rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, errstr,
                                              sizeof(errstr));

    rd_kafka_CreateTopics(rk, topics, n, opts, q);

    ev = admin_result(q);
    if (ev != NULL) {
        res = rd_kafka_CreateTopics_result_topics(
                  rd_kafka_event_CreateTopics_result(ev), &nres);
        rc = topic_results(res, nres, "create");
        rd_kafka_event_destroy(ev);
    }

    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_queue_destroy(q);

    if (rc == 0 && !wait_ready(rk, 1, specs, n)) {
        fprintf(stderr, "kafka-stream-topics: the topics have no leader "
                "after %d s\n", timeout_ms / 1000);
        rc = 1;
    }

done:

    for (i = 0; i < n; i++) {
        if (topics[i] != NULL) {
            rd_kafka_NewTopic_destroy(topics[i]);
        }
    }

    free(topics);
    return rc;
}


static int
delete_topics(rd_kafka_t *rk, char **names, int n)
{
    int                       i, rc;
    char                      errstr[512];
    size_t                    nres;
    rd_kafka_event_t         *ev;
    rd_kafka_queue_t         *q;
    rd_kafka_DeleteTopic_t  **topics;
    rd_kafka_AdminOptions_t  *opts;
    const rd_kafka_topic_result_t  **res;

    topics = calloc(n, sizeof(rd_kafka_DeleteTopic_t *));
    if (topics == NULL) {
        perror("kafka-stream-topics");
        return 1;
    }

    for (i = 0; i < n; i++) {
        topics[i] = rd_kafka_DeleteTopic_new(names[i]);
    }

    q = rd_kafka_queue_new(rk);
    opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DELETETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, errstr,
                                                sizeof(errstr));
    rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, errstr,
                                              sizeof(errstr));

    rd_kafka_DeleteTopics(rk, topics, n, opts, q);

    rc = 1;
    ev = admin_result(q);
    if (ev != NULL) {
        res = rd_kafka_DeleteTopics_result_topics(
                  rd_kafka_event_DeleteTopics_result(ev), &nres);
        rc = topic_results(res, nres, "delete");
        rd_kafka_event_destroy(ev);
    }

    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_queue_destroy(q);
    rd_kafka_DeleteTopic_destroy_array(topics, n);
    free(topics);

    return rc;
}


static void
print_ids(const char *what, const int32_t *ids, int n)
{
    int  i;

    printf(" %s ", what);

    for (i = 0; i < n; i++) {
        printf("%s%d", i ? "," : "", (int) ids[i]);
    }
}


static int
describe_topic(rd_kafka_t *rk, const char *name)
{
    int                            i;
    rd_kafka_topic_t              *rkt;
    rd_kafka_resp_err_t            err;
    const rd_kafka_metadata_t     *md;
    const rd_kafka_metadata_partition_t  *p;

    rkt = rd_kafka_topic_new(rk, name, NULL);
    if (rkt == NULL) {
        fprintf(stderr, "kafka-stream-topics: %s: %s\n", name,
                rd_kafka_err2str(rd_kafka_last_error()));
        return 1;
    }

    err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
    rd_kafka_topic_destroy(rkt);

    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "kafka-stream-topics: %s: %s\n", name,
                rd_kafka_err2str(err));
        return 1;
    }

    if (md->topic_cnt != 1 || md->topics[0].err) {
        fprintf(stderr, "kafka-stream-topics: %s: %s\n", name,
                rd_kafka_err2str(md->topic_cnt ? md->topics[0].err
                                 : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART));
        rd_kafka_metadata_destroy(md);
        return 1;
    }

    for (i = 0; i < md->topics[0].partition_cnt; i++) {
        p = &md->topics[0].partitions[i];
        printf("partition %d leader %d", (int) p->id, (int) p->leader);
        print_ids("replicas", p->replicas, p->replica_cnt);
        print_ids("isr", p->isrs, p->isr_cnt);
        printf("\n");
    }

    rd_kafka_metadata_destroy(md);
    return 0;
}


int
main(int argc, char **argv)
{
    int              c, rc, nbrokers, nconfigs, nnames;
    char            *cmd, **names, *eq;
    rd_kafka_t      *rk;
    topic_config_t   configs[MAX_CONFIGS];

    static const struct option  longopts[] = {
        { "brokers", required_argument, NULL, 'b' },
        { "timeout", required_argument, NULL, 'T' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    while ((c = getopt_long(argc, argv, "+b:T:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            brokers = optarg;
            break;
        case 'T':
            timeout_ms = atoi(optarg) * 1000;
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

    if (brokers == NULL || optind >= argc || timeout_ms <= 0) {
        usage(stderr);
        return 2;
    }

    cmd = argv[optind++];
    nbrokers = 1;
    nconfigs = 0;

    /* the command's own options: -n N (wait), -c KEY=VALUE (create) */

    optind--;
    argv[optind] = cmd;
    argc -= optind;
    argv += optind;
    optind = 0;    /* glibc: start getopt afresh */

    while ((c = getopt(argc, argv, "n:c:e")) != -1) {
        switch (c) {
        case 'e':
            exist_ok = 1;
            break;
        case 'n':
            nbrokers = atoi(optarg);
            break;
        case 'c':
            eq = strchr(optarg, '=');
            if (eq == NULL || nconfigs == MAX_CONFIGS) {
                fprintf(stderr, "kafka-stream-topics: bad -c %s: "
                        "KEY=VALUE, at most %d\n", optarg, MAX_CONFIGS);
                return 2;
            }
            *eq = '\0';
            configs[nconfigs].name = optarg;
            configs[nconfigs++].value = eq + 1;
            break;
        default:
            usage(stderr);
            return 2;
        }
    }

    names = argv + optind;
    nnames = argc - optind;

    rk = client();
    if (rk == NULL) {
        return 1;
    }

    if (strcmp(cmd, "wait") == 0 && nnames == 0) {
        rc = !wait_ready(rk, nbrokers, NULL, 0);
        if (rc) {
            fprintf(stderr, "kafka-stream-topics: %s: %d broker(s) not "
                    "serving after %d s\n", brokers, nbrokers,
                    timeout_ms / 1000);
        }

    } else if (strcmp(cmd, "create") == 0 && nnames > 0) {
        rc = create_topics(rk, names, nnames, configs, nconfigs);

    } else if (strcmp(cmd, "delete") == 0 && nnames > 0) {
        rc = delete_topics(rk, names, nnames);

    } else if (strcmp(cmd, "describe") == 0 && nnames == 1) {
        rc = describe_topic(rk, names[0]);

    } else {
        usage(stderr);
        rc = 2;
    }

    rd_kafka_destroy(rk);
    return rc;
}
