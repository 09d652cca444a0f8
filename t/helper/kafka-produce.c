/*
 * kafka-produce: a test helper that produces messages whose keys, values
 * and header values may hold any bytes (NUL, CR, LF), which kcat's command
 * line cannot carry.  Used by t/helper/KafkaStream/Test.pm.
 *
 *     kafka-produce [-T] [-X prop=value]... BROKERS TOPIC PARTITION < records
 *
 * PARTITION -1 lets the partitioner choose (murmur2, as kafka-stream-producer
 * does; -X partitioner=... for another).  Standard input is a sequence
 * of records, each made of fields with a 32-bit big-endian length in front
 * (0xffffffff stands for NULL):
 *
 *     key, value, header count N, then N times: header name, header value
 *
 * The header count is a bare 32-bit number.  With -T every record starts
 * with its message timestamp (CreateTime, milliseconds since the epoch) as
 * a bare 64-bit big-endian number; 0 stands for the time of sending.  The
 * messages are produced in
 * order, and the program returns only when every one was delivered (exit
 * status 0) or failed (exit status 1, the reason on standard error).
 */

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>


#define NULL_LEN  0xffffffffu


/*
 * delivered at once, in order, and failing in bounded time; a key goes
 * where kafka-stream-producer puts it, and nginx looks for it
 */

static const char  *defaults[][2] = {
    { "partitioner", "murmur2" },
    { "linger.ms", "0" },
    { "max.in.flight.requests.per.connection", "1" },
    { "message.timeout.ms", "30000" },
    { "message.max.bytes", "16000000" },
};

static int  failed;
static int  timestamps;


static void
on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    if (m->err) {
        fprintf(stderr, "kafka-produce: delivery failed: %s\n",
                rd_kafka_err2str(m->err));
        failed = 1;
    }
}


/* returns 1 on a length, 0 on a clean end of input, -1 on a short read */

static int
read_len(uint32_t *len)
{
    uint32_t  n;
    size_t    got;

    got = fread(&n, 1, sizeof(n), stdin);
    if (got == 0 && feof(stdin)) {
        return 0;
    }

    if (got != sizeof(n)) {
        return -1;
    }

    *len = ntohl(n);
    return 1;
}


/* reads a record's timestamp (-T) */

static int
read_timestamp(int64_t *ts)
{
    int            i;
    uint64_t       v;
    unsigned char  b[8];

    if (fread(b, 1, sizeof(b), stdin) != sizeof(b)) {
        return -1;
    }

    for (v = 0, i = 0; i < 8; i++) {
        v = (v << 8) | b[i];
    }

    *ts = (int64_t) v;
    return 0;
}


/* reads one field; *data is NULL for a NULL field, else malloc()ed */

static int
read_field(char **data, size_t *size)
{
    uint32_t  len;

    if (read_len(&len) != 1) {
        return -1;
    }

    *data = NULL;
    *size = 0;

    if (len == NULL_LEN) {
        return 0;
    }

    /* one more byte so that an empty field is not a NULL pointer */
    *data = malloc((size_t) len + 1);
    if (*data == NULL) {
        return -1;
    }

    if (len > 0 && fread(*data, 1, len, stdin) != len) {
        free(*data);
        return -1;
    }

    (*data)[len] = '\0';
    *size = len;
    return 0;
}


static int
produce_one(rd_kafka_t *rk, const char *topic, int32_t partition)
{
    int                   rc;
    char                 *key, *value, *name, *hval;
    size_t                klen, vlen, nlen, hlen;
    int64_t               ts;
    uint32_t              i, nheaders;
    rd_kafka_headers_t   *hdrs;
    rd_kafka_resp_err_t   err;

    key = NULL;
    value = NULL;
    hdrs = NULL;
    rc = -1;
    ts = 0;

    if (timestamps && read_timestamp(&ts) != 0) {
        fprintf(stderr, "kafka-produce: malformed timestamp on stdin\n");
        return -1;
    }

    if (read_field(&key, &klen) != 0 || read_field(&value, &vlen) != 0
        || read_len(&nheaders) != 1)
    {
        fprintf(stderr, "kafka-produce: malformed record on stdin\n");
        goto done;
    }

    hdrs = rd_kafka_headers_new(nheaders);
    if (hdrs == NULL) {
        goto done;
    }

    for (i = 0; i < nheaders; i++) {
        if (read_field(&name, &nlen) != 0) {
            fprintf(stderr, "kafka-produce: malformed header on stdin\n");
            goto done;
        }

        if (name == NULL || read_field(&hval, &hlen) != 0) {
            fprintf(stderr, "kafka-produce: malformed header on stdin\n");
            free(name);
            goto done;
        }

        err = rd_kafka_header_add(hdrs, name, nlen, hval, hval ? hlen : 0);
        free(name);
        free(hval);

        if (err) {
            fprintf(stderr, "kafka-produce: header: %s\n",
                    rd_kafka_err2str(err));
            goto done;
        }
    }

    /* librdkafka owns the headers once the message is accepted */

    err = rd_kafka_producev(rk,
                            RD_KAFKA_V_TOPIC(topic),
                            RD_KAFKA_V_PARTITION(partition),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_KEY(key, klen),
                            RD_KAFKA_V_VALUE(value, vlen),
                            RD_KAFKA_V_HEADERS(hdrs),
                            RD_KAFKA_V_TIMESTAMP(ts),
                            RD_KAFKA_V_END);
    if (err) {
        fprintf(stderr, "kafka-produce: %s\n", rd_kafka_err2str(err));
        goto done;
    }

    hdrs = NULL;
    rc = 0;

done:

    if (hdrs != NULL) {
        rd_kafka_headers_destroy(hdrs);
    }

    free(key);
    free(value);

    return rc;
}


int
main(int argc, char **argv)
{
    int                 i, c, n;
    char               *eq, *end, errstr[512];
    long                partition;
    rd_kafka_t         *rk;
    rd_kafka_conf_t    *conf;
    rd_kafka_resp_err_t err;

    conf = rd_kafka_conf_new();

    for (i = 0; i < (int) (sizeof(defaults) / sizeof(defaults[0])); i++) {
        if (rd_kafka_conf_set(conf, defaults[i][0], defaults[i][1],
                              errstr, sizeof(errstr))
            != RD_KAFKA_CONF_OK)
        {
            fprintf(stderr, "kafka-produce: %s\n", errstr);
            return 1;
        }
    }

    while ((c = getopt(argc, argv, "TX:")) != -1) {
        if (c == 'T') {
            timestamps = 1;
            continue;
        }

        eq = (c == 'X') ? strchr(optarg, '=') : NULL;
        if (eq == NULL) {
            fprintf(stderr, "usage: kafka-produce [-T] [-X prop=value]... "
                    "BROKERS TOPIC PARTITION < records\n");
            return 2;
        }

        *eq = '\0';
        if (rd_kafka_conf_set(conf, optarg, eq + 1, errstr, sizeof(errstr))
            != RD_KAFKA_CONF_OK)
        {
            fprintf(stderr, "kafka-produce: %s\n", errstr);
            return 2;
        }
    }

    if (argc - optind != 3) {
        fprintf(stderr, "usage: kafka-produce [-T] [-X prop=value]... "
                "BROKERS TOPIC PARTITION < records\n");
        return 2;
    }

    partition = strtol(argv[optind + 2], &end, 10);
    if (*end != '\0' || partition < -1 || partition > INT32_MAX) {
        fprintf(stderr, "kafka-produce: bad partition \"%s\"\n",
                argv[optind + 2]);
        return 2;
    }

    if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[optind],
                          errstr, sizeof(errstr))
        != RD_KAFKA_CONF_OK)
    {
        fprintf(stderr, "kafka-produce: %s\n", errstr);
        return 2;
    }

    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);

    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "kafka-produce: %s\n", errstr);
        return 1;
    }

    n = 0;

    while (!failed) {
        c = getc(stdin);
        if (c == EOF) {
            break;
        }

        ungetc(c, stdin);

        if (produce_one(rk, argv[optind + 1], (int32_t) partition) != 0) {
            failed = 1;
            break;
        }

        n++;
        rd_kafka_poll(rk, 0);
    }

    /* waits for every delivery report: this is what makes it synchronous */

    err = rd_kafka_flush(rk, 60000);
    if (err) {
        fprintf(stderr, "kafka-produce: flush: %s\n", rd_kafka_err2str(err));
        failed = 1;
    }

    rd_kafka_destroy(rk);

    if (n == 0 && !failed) {
        fprintf(stderr, "kafka-produce: no record on stdin\n");
        return 1;
    }

    return failed ? 1 : 0;
}
