/*
 * mjpeg-load: opens N viewer connections to a multipart/x-mixed-replace
 * stream (what ngx_http_kafka_stream_module serves), validates every part
 * and reports frame rates, latency and errors.
 *
 * Exit codes: 0 all good; 1 an invalid part, a connection that failed or
 * broke off, a viewer below --expect-frames; 2 usage.
 */

#include "mjpeg_load.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>


#define ML_VIEWERS_MAX     1000000


static void ml_verror(const char *fmt, va_list args);
static void ml_usage(FILE *out);
static void ml_usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
static double ml_arg_double(const char *opt, const char *arg, double min,
    double max);
static uint64_t ml_arg_count(const char *opt, const char *arg, uint64_t min,
    uint64_t max);
static void ml_parse_url(ml_conf_t *conf, const char *url);
static void ml_resolve(ml_conf_t *conf);
static void ml_request(ml_conf_t *conf);
static void ml_raise_nofile(unsigned viewers);
static void *ml_calloc(size_t n, size_t size);


enum {
    ML_OPT_RAMP = 256,
    ML_OPT_RAMP_TIME,
    ML_OPT_SLOW,
    ML_OPT_SLOW_RATE,
    ML_OPT_EXPECT_FRAMES,
    ML_OPT_MAX_FRAMES,
    ML_OPT_ABORT_MID_FRAME,
    ML_OPT_CYCLES,
    ML_OPT_JSON,
    ML_OPT_PER_VIEWER
};


static const struct option  ml_options[] = {
    { "connections",     required_argument, NULL, 'c' },
    { "duration",        required_argument, NULL, 'd' },
    { "ramp",            required_argument, NULL, ML_OPT_RAMP },
    { "ramp-time",       required_argument, NULL, ML_OPT_RAMP_TIME },
    { "slow",            required_argument, NULL, ML_OPT_SLOW },
    { "slow-rate",       required_argument, NULL, ML_OPT_SLOW_RATE },
    { "expect-frames",   required_argument, NULL, ML_OPT_EXPECT_FRAMES },
    { "max-frames",      required_argument, NULL, ML_OPT_MAX_FRAMES },
    { "abort-mid-frame", no_argument,       NULL, ML_OPT_ABORT_MID_FRAME },
    { "cycles",          required_argument, NULL, ML_OPT_CYCLES },
    { "json",            no_argument,       NULL, ML_OPT_JSON },
    { "per-viewer",      required_argument, NULL, ML_OPT_PER_VIEWER },
    { "verbose",         no_argument,       NULL, 'v' },
    { "help",            no_argument,       NULL, 'h' },
    { NULL, 0, NULL, 0 }
};


int
main(int argc, char **argv)
{
    int           c, rc;
    double        ramp_time;
    unsigned      i;
    ml_run_t     *run;
    ml_conf_t    *conf, cf;
    ml_viewer_t  *v;

    conf = &cf;
    memset(conf, 0, sizeof(ml_conf_t));

    conf->viewers = 1;
    conf->duration = 10;
    conf->expect_frames = -1;
    conf->cycles = 1;
    ramp_time = -1;

    while ((c = getopt_long(argc, argv, "c:d:vh", ml_options, NULL)) != -1) {

        switch (c) {

        case 'c':
            conf->viewers = ml_arg_count("-c", optarg, 1, ML_VIEWERS_MAX);
            break;

        case 'd':
            conf->duration = ml_arg_double("--duration", optarg, 0.001,
                                           1e7);
            break;

        case ML_OPT_RAMP:
            conf->ramp = ml_arg_double("--ramp", optarg, 0, 1e9);
            break;

        case ML_OPT_RAMP_TIME:
            ramp_time = ml_arg_double("--ramp-time", optarg, 0, 1e7);
            break;

        case ML_OPT_SLOW:
            conf->slow = ml_arg_count("--slow", optarg, 0, ML_VIEWERS_MAX);
            break;

        case ML_OPT_SLOW_RATE:
            conf->slow_rate = ml_arg_double("--slow-rate", optarg, 1, 1e12);
            break;

        case ML_OPT_EXPECT_FRAMES:
            conf->expect_frames = ml_arg_count("--expect-frames", optarg, 0,
                                               INT64_MAX);
            break;

        case ML_OPT_MAX_FRAMES:
            conf->max_frames = ml_arg_count("--max-frames", optarg, 1,
                                            UINT64_MAX);
            break;

        case ML_OPT_ABORT_MID_FRAME:
            conf->abort_mid_frame = 1;
            break;

        case ML_OPT_CYCLES:
            conf->cycles = ml_arg_count("--cycles", optarg, 1, UINT32_MAX);
            break;

        case ML_OPT_JSON:
            conf->json = 1;
            break;

        case ML_OPT_PER_VIEWER:
            conf->per_viewer = optarg;
            break;

        case 'v':
            conf->verbose = 1;
            break;

        case 'h':
            ml_usage(stdout);
            return 0;

        default:
            ml_usage(stderr);
            return 2;
        }
    }

    if (optind != argc - 1) {
        ml_usage_error("one URL is needed");
    }

    if (conf->slow > conf->viewers) {
        ml_usage_error("--slow %u is more than the %u viewers", conf->slow,
                       conf->viewers);
    }

    if (conf->slow > 0 && conf->slow_rate == 0) {
        ml_usage_error("--slow needs --slow-rate BYTES_PER_S");
    }

    if (ramp_time >= 0) {
        if (conf->ramp > 0) {
            ml_usage_error("--ramp and --ramp-time exclude each other");
        }

        /* the viewers start evenly over ramp_time, the first at once */

        conf->ramp = (ramp_time > 0) ? conf->viewers / ramp_time : 0;
    }

    /* --cycles: each connection reads a bit, by default one frame */

    if (conf->cycles > 1 && conf->max_frames == 0 && !conf->abort_mid_frame)
    {
        conf->max_frames = 1;
    }

    conf->url = argv[optind];
    ml_parse_url(conf, conf->url);
    ml_resolve(conf);
    ml_request(conf);
    ml_raise_nofile(conf->viewers);

    if (conf->ramp > 0 && (conf->viewers - 1) / conf->ramp > conf->duration)
    {
        fprintf(stderr, "mjpeg-load: warning: the ramp takes %.1f s, longer "
                "than --duration %.1f s\n", (conf->viewers - 1) / conf->ramp,
                conf->duration);
    }

    run = ml_calloc(1, sizeof(ml_run_t));
    run->conf = conf;
    run->viewers = ml_calloc(conf->viewers, sizeof(ml_viewer_t));
    run->retry = ml_calloc(conf->viewers, sizeof(ml_viewer_t *));
    run->lat_hist = ml_calloc(ML_LAT_BUCKETS, sizeof(uint32_t));

    for (i = 0; i < conf->viewers; i++) {
        v = &run->viewers[i];
        v->run = run;
        v->id = i;
        v->fd = -1;
        v->slow = (i < conf->slow);
        v->first_frame = -1;
    }

    ml_run(run);

    rc = ml_report(run);

    free(run->first);
    free(run->lat_hist);
    free(run->retry);
    free(run->viewers);
    free(run);
    free(conf->request);
    free(conf->path);
    free(conf->port);
    free(conf->host);

    return rc;
}


void
ml_fatal(const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    ml_verror(fmt, args);
    va_end(args);

    exit(1);
}


static void
ml_verror(const char *fmt, va_list args)
{
    fprintf(stderr, "mjpeg-load: ");
    vfprintf(stderr, fmt, args);
    fprintf(stderr, "\n");
}


static void
ml_usage(FILE *out)
{
    fprintf(out,
        "usage: mjpeg-load [options] http://host[:port]/path\n"
        "\n"
        "Opens viewer connections to a multipart/x-mixed-replace stream,\n"
        "validates every part (JPEG SOI/EOI, PNG chunks and CRCs up to IEND,\n"
        "Content-Length against the next boundary) and prints a summary.\n"
        "\n"
        "  -c, --connections N    viewers (default 1)\n"
        "  -d, --duration S       run for S seconds (default 10); the run\n"
        "                         also ends once every viewer is done\n"
        "      --ramp R           start R viewers per second (default: all\n"
        "                         at once)\n"
        "      --ramp-time S      start the viewers evenly over S seconds\n"
        "      --slow M           the first M viewers read slowly...\n"
        "      --slow-rate B      ...at most B bytes per second each\n"
        "      --expect-frames N  fail unless every normal viewer gets N\n"
        "                         frames\n"
        "      --max-frames N     a viewer leaves after N frames\n"
        "      --abort-mid-frame  a viewer leaves in the middle of a part\n"
        "                         (of the one after --max-frames, if set)\n"
        "      --cycles K         each viewer connects K times, reading one\n"
        "                         frame (or --max-frames) each time\n"
        "      --json             print the summary as JSON\n"
        "      --per-viewer FILE  write one CSV line per viewer to FILE\n"
        "  -v, --verbose          print each response's and part's headers\n"
        "  -h, --help             this text\n"
        "\n"
        "Exit status: 0 all good; 1 an invalid part, a failed or broken\n"
        "connection, a viewer the ramp never started, or --expect-frames\n"
        "not met; 2 usage.\n");
}


static void
ml_usage_error(const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    ml_verror(fmt, args);
    va_end(args);

    fprintf(stderr, "(mjpeg-load -h for help)\n");

    exit(2);
}


static double
ml_arg_double(const char *opt, const char *arg, double min, double max)
{
    char    *last;
    double   d;

    errno = 0;
    d = strtod(arg, &last);

    if (errno != 0 || last == arg || *last != '\0' || !isfinite(d)
        || d < min || d > max)
    {
        ml_usage_error("%s: \"%s\" is not a number from %g to %g", opt, arg,
                       min, max);
    }

    return d;
}


static uint64_t
ml_arg_count(const char *opt, const char *arg, uint64_t min, uint64_t max)
{
    char                *last;
    unsigned long long   n;

    errno = 0;
    n = strtoull(arg, &last, 10);

    if (errno != 0 || last == arg || *last != '\0' || arg[0] == '-'
        || n < min || n > max)
    {
        ml_usage_error("%s: \"%s\" is not a whole number from %llu to %llu",
                       opt, arg, (unsigned long long) min,
                       (unsigned long long) max);
    }

    return n;
}


/* http://host[:port][/path], host may be [an:ipv6::address] */

static void
ml_parse_url(ml_conf_t *conf, const char *url)
{
    size_t       len;
    const char  *p, *host, *host_end, *port, *path;

    if (strncasecmp(url, "http://", 7) != 0) {
        ml_usage_error("%s: only http:// URLs are supported", url);
    }

    host = url + 7;

    if (*host == '[') {
        host_end = strchr(++host, ']');
        if (host_end == NULL) {
            ml_usage_error("%s: no ']' after the IPv6 address", url);
        }

        p = host_end + 1;

    } else {
        host_end = host + strcspn(host, ":/");
        p = host_end;
    }

    if (host_end == host) {
        ml_usage_error("%s: no host", url);
    }

    port = "80";
    len = 2;

    if (*p == ':') {
        port = ++p;
        len = strcspn(port, "/");

        if (len == 0 || len > 5 || strspn(port, "0123456789") < len
            || atoi(port) < 1 || atoi(port) > 65535)
        {
            ml_usage_error("%s: bad port", url);
        }

        p += len;

    } else if (*p != '/' && *p != '\0') {
        ml_usage_error("%s: bad host", url);
    }

    path = (*p == '\0') ? "/" : p;

    if (strpbrk(path, " \r\n") != NULL) {
        ml_usage_error("%s: spaces or line breaks in the path", url);
    }

    conf->host = strndup(host, host_end - host);
    conf->port = strndup(port, len);
    conf->path = strdup(path);

    if (conf->host == NULL || conf->port == NULL || conf->path == NULL) {
        ml_fatal("strdup: %s", strerror(errno));
    }
}


static void
ml_resolve(ml_conf_t *conf)
{
    int               rc;
    struct addrinfo   hints, *res;

    memset(&hints, 0, sizeof(struct addrinfo));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;

    rc = getaddrinfo(conf->host, conf->port, &hints, &res);
    if (rc != 0) {
        ml_fatal("%s: %s", conf->host, gai_strerror(rc));
    }

    memcpy(&conf->addr, res->ai_addr, res->ai_addrlen);
    conf->addrlen = res->ai_addrlen;

    freeaddrinfo(res);
}


static void
ml_request(ml_conf_t *conf)
{
    int  n, ipv6, port80;

    /* the Host header keeps an IPv6 address in brackets */

    ipv6 = (strchr(conf->host, ':') != NULL);
    port80 = (strcmp(conf->port, "80") == 0);

    n = asprintf(&conf->request,
                 "GET %s HTTP/1.1\r\n"
                 "Host: %s%s%s%s%s\r\n"
                 "User-Agent: mjpeg-load\r\n"
                 "Accept: multipart/x-mixed-replace, */*\r\n"
                 "Connection: close\r\n"
                 "\r\n",
                 conf->path, ipv6 ? "[" : "", conf->host, ipv6 ? "]" : "",
                 port80 ? "" : ":", port80 ? "" : conf->port);

    if (n == -1) {
        ml_fatal("asprintf: out of memory");
    }

    conf->request_len = n;
}


/* every viewer needs a descriptor: raise the soft limit, up to the hard */

static void
ml_raise_nofile(unsigned viewers)
{
    rlim_t         need;
    struct rlimit  rl;

    need = (rlim_t) viewers + 64;

    if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
        ml_fatal("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
    }

    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        rl.rlim_cur = (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
                      ? rl.rlim_max : need;

        if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
            ml_fatal("setrlimit(RLIMIT_NOFILE): %s", strerror(errno));
        }
    }

    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        fprintf(stderr, "mjpeg-load: warning: only %llu file descriptors "
                "(hard limit) for %u viewers\n",
                (unsigned long long) rl.rlim_cur, viewers);
    }
}


static void *
ml_calloc(size_t n, size_t size)
{
    void  *p;

    p = calloc(n, size);
    if (p == NULL) {
        ml_fatal("calloc: %s", strerror(errno));
    }

    return p;
}
