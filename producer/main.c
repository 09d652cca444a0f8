/*
 * kafka-stream-producer: any video into Kafka, one PNG or JPEG image per
 * frame, paced like the source.
 *
 * main.c: options, signals, and the three parts of the loop:
 *   the reader (this thread) decodes inputs and numbers the frames on one
 *   timeline, the pool's encoder threads scale and encode them, and the
 *   sender thread paces them against the monotonic clock and hands them
 *   to librdkafka in order.
 */

#define _GNU_SOURCE

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswscale/swscale.h>
#include <librdkafka/rdkafka.h>
#include <png.h>

#include "input.h"
#include "pool.h"
#include "publish.h"
#include "util.h"

#define MAX_PROPS  256

typedef struct {
    publish_opts_t   kafka;
    encode_opts_t    enc;
    int              width, height;     /* --size, 0 = keep */
    double           fps;               /* --fps, 0 = the source's */
    int              pace;
    int64_t          loops;             /* 0 = forever */
    int64_t          max_frames;        /* 0 = all */
    int              threads;
    int              progress;          /* -1 auto, 0 off, 1 forced */
    int              quiet;
    const char      *input_format;      /* NULL: probe */
    double           io_timeout;        /* seconds; 0: none */
    char           **inputs;
    int              ninputs;
} options_t;

/* what the reader and the sender share */
typedef struct {
    const options_t  *o;
    pool_t           *pool;
    publisher_t      *pub;
    atomic_int        fatal;            /* the sender gives up */
    atomic_llong      total_media_ns;   /* for the ETA, or 0 */
    int64_t           start_ns;
    int64_t           encode_failed;
} run_t;

static char  *props[MAX_PROPS];

/* argv with "--loop N" joined, all strings our own copies; options and
 * inputs point into it for the whole run */
static char **args;


static void
usage(FILE *out)
{
    fprintf(out,
"usage: " KSP_NAME " [options] INPUT...\n"
"\n"
"Decodes each INPUT (a file, an rtsp:// or http:// URL, a device: anything\n"
"FFmpeg opens; several play one after another) and sends every video frame\n"
"as one Kafka message holding a PNG or JPEG image, paced like the source.\n"
"\n"
"Input:\n"
"      --input-format NAME\n"
"                         FFmpeg input format or device of the INPUTs\n"
"                         (v4l2, x11grab, lavfi, ...); default: probe, and\n"
"                         v4l2 for /dev/video*\n"
"      --io-timeout SEC   give up on an input that sends nothing for SEC\n"
"                         seconds: a camera that hangs (default 10; 0 waits\n"
"                         for ever)\n"
"\n"
"Kafka:\n"
"  -b, --brokers LIST     bootstrap brokers (default $KAFKA_BROKERS, else\n"
"                         localhost:9092)\n"
"  -t, --topic NAME       topic (default dbtech)\n"
"  -k, --key KEY          message key: the camera/stream id viewers filter\n"
"                         on (without a key all frames go to one partition)\n"
"  -X NAME=VALUE          any librdkafka property, repeatable (TLS, SASL,\n"
"                         message.timeout.ms (default 10000 here),\n"
"                         message.max.bytes, ...)\n"
"\n"
"Images:\n"
"  -f, --format png|jpeg  image format (default png)\n"
"  -q, --quality N        JPEG quality as ffmpeg's -q:v: 1 best .. 31\n"
"                         (default 3)\n"
"      --png-level N      zlib level 0..9 (default 1: on video frames it\n"
"                         takes 2-3x less CPU than zlib's usual 6 for files\n"
"                         only ~10%% larger, and PNG stays lossless)\n"
"      --png-filter NAME  none|sub|up|avg|paeth|all (default up: measured\n"
"                         as fast as none and ~10%% smaller; 'all' is 1.5-2x\n"
"                         slower at level 1)\n"
"  -s, --size WxH         scale frames; 0 for one side keeps the aspect\n"
"                         ratio (e.g. 640x0)\n"
"\n"
"Timing:\n"
"  -r, --fps N            send N frames per second (default: follow the\n"
"                         source's timestamps)\n"
"      --no-pace          send as fast as frames are encoded\n"
"  -l, --loop [N]         play the inputs N times (forever without N)\n"
"  -n, --max-frames N     stop after N frames\n"
"  -j, --threads N        parallel encoders (default: number of cores);\n"
"                         frames are sent in order whatever N is\n"
"\n"
"Output:\n"
"      --progress         progress even when stderr is not a terminal (one\n"
"                         line a second; a terminal gets a live line anyway)\n"
"      --quiet            neither progress line nor summary, only errors\n"
"  -v, --verbose          also FFmpeg's and librdkafka's own log lines\n"
"  -h, --help             this text\n"
"      --version          versions of the program and its libraries\n"
"\n"
"Each message: value = the image; key = --key; timestamp = time of sending;\n"
"headers content-type, frame (index from 0), pts-ms (position on the\n"
"stream's timeline), width, height.\n"
"\n"
"Exit status: 0 when every frame was delivered; 1 when an input failed or\n"
"a frame could not be delivered; 2 for a usage error.  SIGINT/SIGTERM stop\n"
"reading and flush what is queued (a second signal stops the flush).\n");
}


static void
version(void)
{
    printf("%s %s\n", KSP_NAME, KSP_VERSION);
    printf("libavformat %s, libavcodec %s, libswscale %s, libpng %s,"
           " librdkafka %s\n",
           AV_STRINGIFY(LIBAVFORMAT_VERSION), AV_STRINGIFY(LIBAVCODEC_VERSION),
           AV_STRINGIFY(LIBSWSCALE_VERSION), png_get_libpng_ver(NULL),
           rd_kafka_version_str());
}


static _Noreturn void
usage_error(const char *fmt, ...)
{
    va_list  ap;

    fprintf(stderr, "%s: ", KSP_NAME);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help' for more information.\n", KSP_NAME);
    exit(2);
}


static int64_t
parse_int(const char *opt, const char *s, int64_t min, int64_t max)
{
    char      *end;
    long long  v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        usage_error("%s: '%s' is not a number from %" PRId64 " to %" PRId64,
                    opt, s, min, max);
    }
    return v;
}


static void
parse_size(const char *s, int *w, int *h)
{
    char  *end, *end2;
    long   a, b;

    errno = 0;
    a = strtol(s, &end, 10);
    if (errno == 0 && end != s && (*end == 'x' || *end == 'X')) {
        b = strtol(end + 1, &end2, 10);
        if (errno == 0 && end2 != end + 1 && *end2 == '\0'
            && a >= 0 && b >= 0 && a <= 16384 && b <= 16384 && a + b > 0)
        {
            *w = (int) a;
            *h = (int) b;
            return;
        }
    }
    usage_error("--size: '%s' is not WxH (e.g. 640x360, or 640x0 to keep"
                " the aspect ratio)", s);
}


static int
parse_filter(const char *s)
{
    static const struct { const char *name; int mask; } filters[] = {
        { "none", PNG_FILTER_NONE }, { "sub", PNG_FILTER_SUB },
        { "up", PNG_FILTER_UP }, { "avg", PNG_FILTER_AVG },
        { "paeth", PNG_FILTER_PAETH }, { "all", PNG_ALL_FILTERS },
    };

    for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++) {
        if (strcmp(s, filters[i].name) == 0) {
            return filters[i].mask;
        }
    }
    usage_error("--png-filter: '%s' is none, sub, up, avg, paeth or all", s);
}


static int
all_digits(const char *s)
{
    if (*s == '\0') {
        return 0;
    }
    for ( ; *s; s++) {
        if (!isdigit((unsigned char) *s)) {
            return 0;
        }
    }
    return 1;
}


/*
 * "--loop N" and "-l N": getopt only takes an optional argument when it is
 * attached ("--loop=N", "-lN"), so join a following number to the option
 * before getopt sees it.  A number is never taken for an INPUT here.
 */
static char **
join_loop_count(int argc, char **argv, int *count)
{
    char  **av;
    int     j = 0;

    av = calloc(argc + 1, sizeof(char *));
    if (av == NULL) {
        ksp_error("out of memory");
        exit(1);
    }

    for (int i = 0; i < argc; i++) {
        if ((strcmp(argv[i], "--loop") == 0 || strcmp(argv[i], "-l") == 0)
            && i + 1 < argc && all_digits(argv[i + 1]))
        {
            if (asprintf(&av[j++], "%s%s%s", argv[i],
                         argv[i][1] == '-' ? "=" : "", argv[i + 1]) < 0)
            {
                ksp_error("out of memory");
                exit(1);
            }
            i++;
            continue;
        }
        if (strcmp(argv[i], "--") == 0) {
            while (i < argc) {
                av[j++] = strdup(argv[i++]);
            }
            break;
        }
        /* getopt's own messages start with argv[0]: make it our name */
        av[j++] = strdup(i == 0 ? KSP_NAME : argv[i]);
    }
    for (int k = 0; k < j; k++) {
        if (av[k] == NULL) {
            ksp_error("out of memory");
            exit(1);
        }
    }
    av[j] = NULL;
    *count = j;
    return av;
}


static void
free_args(void)
{
    for (char **a = args; a != NULL && *a != NULL; a++) {
        free(*a);
    }
    free(args);
    args = NULL;
}


enum {
    OPT_PNG_LEVEL = 256, OPT_PNG_FILTER, OPT_NO_PACE, OPT_PROGRESS,
    OPT_QUIET, OPT_VERSION, OPT_INPUT_FORMAT, OPT_IO_TIMEOUT
};

static const struct option  long_options[] = {
    { "brokers",    required_argument, NULL, 'b' },
    { "topic",      required_argument, NULL, 't' },
    { "key",        required_argument, NULL, 'k' },
    { "format",     required_argument, NULL, 'f' },
    { "quality",    required_argument, NULL, 'q' },
    { "png-level",  required_argument, NULL, OPT_PNG_LEVEL },
    { "png-filter", required_argument, NULL, OPT_PNG_FILTER },
    { "size",       required_argument, NULL, 's' },
    { "fps",        required_argument, NULL, 'r' },
    { "no-pace",    no_argument,       NULL, OPT_NO_PACE },
    { "loop",       optional_argument, NULL, 'l' },
    { "max-frames", required_argument, NULL, 'n' },
    { "threads",    required_argument, NULL, 'j' },
    { "progress",   no_argument,       NULL, OPT_PROGRESS },
    { "quiet",      no_argument,       NULL, OPT_QUIET },
    { "verbose",    no_argument,       NULL, 'v' },
    { "help",       no_argument,       NULL, 'h' },
    { "version",    no_argument,       NULL, OPT_VERSION },
    { "input-format", required_argument, NULL, OPT_INPUT_FORMAT },
    { "io-timeout", required_argument, NULL, OPT_IO_TIMEOUT },
    { NULL, 0, NULL, 0 }
};


static void
defaults(options_t *o)
{
    const char  *env = getenv("KAFKA_BROKERS");
    long         cores = sysconf(_SC_NPROCESSORS_ONLN);

    memset(o, 0, sizeof(*o));
    o->kafka.brokers = (env != NULL && *env != '\0') ? env : "localhost:9092";
    o->kafka.topic = "dbtech";
    o->kafka.props = props;
    o->enc.format = KSP_PNG;
    o->enc.quality = 3;
    o->enc.png_level = 1;
    o->enc.png_filter = PNG_FILTER_UP;
    o->pace = 1;
    o->loops = 1;
    o->threads = cores > 0 ? (int) (cores < 64 ? cores : 64) : 1;
    o->progress = -1;
    o->io_timeout = 10;
}


static void
parse_option(options_t *o, int c, const char *arg)
{
    double  d;
    char   *end;

    switch (c) {
    case 'b': o->kafka.brokers = arg; break;
    case 't':
        if (*arg == '\0') {
            usage_error("--topic: the name is empty");
        }
        o->kafka.topic = arg;
        break;
    case 'k': o->kafka.key = arg; break;
    case 'f':
        if (strcmp(arg, "png") == 0) {
            o->enc.format = KSP_PNG;
        } else if (strcmp(arg, "jpeg") == 0 || strcmp(arg, "jpg") == 0) {
            o->enc.format = KSP_JPEG;
        } else {
            usage_error("--format: '%s' is neither png nor jpeg", arg);
        }
        break;
    case 'q': o->enc.quality = (int) parse_int("--quality", arg, 1, 31); break;
    case OPT_PNG_LEVEL:
        o->enc.png_level = (int) parse_int("--png-level", arg, 0, 9);
        break;
    case OPT_PNG_FILTER: o->enc.png_filter = parse_filter(arg); break;
    case 's': parse_size(arg, &o->width, &o->height); break;
    case 'r':
        errno = 0;
        d = strtod(arg, &end);
        if (errno != 0 || end == arg || *end != '\0' || !(d > 0 && d <= 1000)) {
            usage_error("--fps: '%s' is not a rate from 0 to 1000", arg);
        }
        o->fps = d;
        break;
    case OPT_NO_PACE: o->pace = 0; break;
    case 'l':
        o->loops = arg ? parse_int("--loop", arg, 1, INT64_MAX) : 0;
        break;
    case 'n': o->max_frames = parse_int("--max-frames", arg, 1, INT64_MAX);
        break;
    case 'j': o->threads = (int) parse_int("--threads", arg, 1, 64); break;
    case 'X':
        if (o->kafka.nprops == MAX_PROPS) {
            usage_error("-X: more than %d properties", MAX_PROPS);
        }
        props[o->kafka.nprops++] = (char *) arg;
        break;
    case OPT_INPUT_FORMAT:
        if (!input_format_exists(arg)) {
            usage_error("--input-format: FFmpeg has no input format '%s'",
                        arg);
        }
        o->input_format = arg;
        break;
    case OPT_IO_TIMEOUT:
        errno = 0;
        d = strtod(arg, &end);
        if (errno != 0 || end == arg || *end != '\0' || !(d >= 0 && d <= 86400))
        {
            usage_error("--io-timeout: '%s' is not a number of seconds from 0"
                        " to 86400", arg);
        }
        o->io_timeout = d;
        break;
    case OPT_PROGRESS: o->progress = 1; break;
    case OPT_QUIET: o->quiet = 1; break;
    case 'v': o->kafka.verbose = 1; break;
    case 'h': usage(stdout); exit(0);
    case OPT_VERSION: version(); exit(0);
    default:
        /* getopt has said what is wrong */
        fprintf(stderr, "Try '%s --help' for more information.\n", KSP_NAME);
        exit(2);
    }
}


static void
parse_options(options_t *o, int argc, char **argv)
{
    char  **av;
    int     ac, c;

    av = args = join_loop_count(argc, argv, &ac);
    defaults(o);

    while ((c = getopt_long(ac, av, "b:t:k:f:q:s:r:l::n:j:X:vh",
                            long_options, NULL)) != -1)
    {
        parse_option(o, c, optarg);
    }

    if (optind >= ac) {
        usage_error("no INPUT given");
    }
    o->inputs = av + optind;
    o->ninputs = ac - optind;

    if (o->fps > 0 && !o->pace) {
        usage_error("--fps and --no-pace contradict each other");
    }
}


/* Progress line and summary */

typedef struct {
    int      on;
    int      tty;       /* redraw one line; else one line per second */
    int64_t  last_ns;
    int64_t  last_delivered;
    double   fps;
} progress_t;

static progress_t  progress;


static void
progress_draw(run_t *r, int64_t media_ns, int force)
{
    publish_stats_t  s;
    int64_t          now = ksp_mono_ns(), total, eta;
    double           dt, rate;
    char             etabuf[32] = "";

    if (!progress.on
        || (!force && now - progress.last_ns
                      < (progress.tty ? 500000000 : 1000000000)))
    {
        return;
    }

    s = publisher_stats(r->pub);
    dt = (now - progress.last_ns) / 1e9;
    if (progress.last_ns != 0 && dt > 0) {
        progress.fps = (s.delivered - progress.last_delivered) / dt;
    }
    progress.last_ns = now;
    progress.last_delivered = s.delivered;

    /* media time advanced per second of wall time gives the ETA, paced
     * or not; only when the end is known (one input, finite loops) */
    total = atomic_load(&r->total_media_ns);
    rate = media_ns / (double) (now - r->start_ns);
    if (total > 0 && rate > 0 && media_ns <= total) {
        eta = (int64_t) ((total - media_ns) / rate / 1e9);
        snprintf(etabuf, sizeof(etabuf), ", ETA %" PRId64 ":%02d",
                 eta / 60, (int) (eta % 60));
    }

    fprintf(stderr, "%s%" PRId64 " frames sent, %.1f fps, %.1f MB, %"
            PRId64 " failed%s%s", progress.tty ? "\r" : "", s.delivered,
            progress.fps, s.bytes / 1e6, s.failed + r->encode_failed, etabuf,
            progress.tty ? "\033[K" : "\n");
    atomic_store(&ksp_progress_drawn, progress.tty);
}


static void
progress_clear(void)
{
    if (atomic_load(&ksp_progress_drawn)) {
        fprintf(stderr, "\r\033[K");
        atomic_store(&ksp_progress_drawn, 0);
    }
}


/* The sender thread: pacing and publishing, in sequence */

/*
 * Waits until the frame's place on the timeline.  Deadlines are absolute
 * (start + media time), so sleeping late or waking early never adds up to
 * drift.  A sender more than a second behind (a stalled source, encoding
 * slower than real time) moves the start instead of bursting to catch up.
 */
static int
pace(run_t *r, const job_t *job, int64_t *t0)
{
    int64_t  now = ksp_mono_ns(), deadline, wake;

    if (*t0 == INT64_MIN) {
        *t0 = now - job->media_ns;
    }
    deadline = *t0 + job->media_ns;

    if (now - deadline > 1000000000) {
        *t0 += now - deadline;
        return 0;
    }

    while (now < deadline) {
        /* serve delivery reports and the progress line while waiting */
        publisher_poll(r->pub);
        progress_draw(r, job->media_ns, 0);

        wake = deadline - now > 100000000 ? now + 100000000 : deadline;
        if (ksp_sleep_until(wake)) {
            return -1;
        }
        now = ksp_mono_ns();
    }
    return 0;
}


static void
send_job(run_t *r, job_t *job, int64_t *t0)
{
    frame_meta_t  m;

    if (atomic_load(&ksp_stop) || atomic_load(&r->fatal)) {
        return;     /* stopping: frames not yet sent are dropped */
    }

    if (job->failed) {
        if (r->encode_failed++ == 0) {
            ksp_error("frame %" PRId64 ": cannot encode: %s", job->index,
                      job->err);
        }
        return;
    }

    if (r->o->pace && pace(r, job, t0) != 0) {
        return;
    }

    m.index = job->index;
    m.pts_ms = job->media_ns / 1000000;
    m.width = job->width;
    m.height = job->height;

    publisher_send(r->pub, job->data, job->len, &m);
    job->data = NULL;       /* librdkafka's now, or freed */

    if (publisher_fatal(r->pub)) {
        atomic_store(&r->fatal, 1);
    }
}


static void *
sender_main(void *arg)
{
    run_t   *r = arg;
    job_t   *job;
    int64_t  t0 = INT64_MIN;

    while ((job = pool_get_done(r->pool)) != NULL) {
        send_job(r, job, &t0);
        progress_draw(r, job->media_ns, 0);
        pool_put_back(r->pool, job);
    }
    return NULL;
}


/* The reader: inputs, loops, and the timeline */

typedef struct {
    int64_t  next_index;
    int64_t  offset_ns;     /* where the current input starts */
    int64_t  last_ns;
    int64_t  frame_ns;
    int      have_last;
} timeline_t;


/*
 * A frame's place on one timeline for the whole run: each input (and each
 * loop) continues where the previous one ended.  With --fps, the frame
 * index alone decides, computed from the index so rounding cannot add up.
 */
static int64_t
timeline_place(timeline_t *tl, int64_t pts_us, double src_fps, double fps)
{
    int64_t  t;

    if (fps > 0) {
        t = (int64_t) llround(tl->next_index * 1e9 / fps);
        tl->frame_ns = (int64_t) (1e9 / fps);
    } else {
        tl->frame_ns = (int64_t) (1e9 / src_fps);
        if (pts_us == INT64_MIN) {
            t = tl->have_last ? tl->last_ns + tl->frame_ns : tl->offset_ns;
        } else {
            t = tl->offset_ns + pts_us * 1000;
        }
        if (tl->have_last && t <= tl->last_ns) {
            /* timestamps went backwards or repeat: keep time moving */
            t = tl->last_ns + tl->frame_ns;
        }
    }

    tl->next_index++;
    tl->last_ns = t;
    tl->have_last = 1;
    return t;
}


static int
should_stop(run_t *r, const timeline_t *tl)
{
    return atomic_load(&ksp_stop) || atomic_load(&r->fatal)
           || (r->o->max_frames > 0 && tl->next_index >= r->o->max_frames);
}


/* Returns 0 when the input played (to its end or a stop), -1 on error. */
static int
play_input(run_t *r, const char *url, timeline_t *tl)
{
    input_t  *in;
    AVFrame  *frame;
    job_t    *job;
    int64_t   pts_us, duration;
    int       rc = 0;

    in = input_open(url, r->o->input_format, 0, r->o->io_timeout);
    if (in == NULL) {
        return atomic_load(&ksp_stop) ? 0 : -1;
    }

    duration = input_duration_us(in);
    if (r->o->ninputs == 1 && r->o->loops > 0 && duration > 0) {
        atomic_store(&r->total_media_ns, duration * 1000 * r->o->loops);
    }

    frame = av_frame_alloc();
    if (frame == NULL) {
        ksp_error("out of memory");
        input_close(in);
        return -1;
    }

    while (!should_stop(r, tl)) {
        rc = input_read(in, frame, &pts_us);
        if (rc != 0) {
            break;
        }

        job = pool_get_free(r->pool);
        if (job == NULL) {
            av_frame_unref(frame);
            break;
        }

        av_frame_move_ref(job->frame, frame);
        job->index = tl->next_index;
        job->media_ns = timeline_place(tl, pts_us, input_fps(in), r->o->fps);
        pool_submit(r->pool, job);
    }

    if (tl->have_last) {
        tl->offset_ns = tl->last_ns + tl->frame_ns;
    }

    av_frame_free(&frame);
    input_close(in);
    return rc < 0 ? -1 : 0;
}


/* Plays every input, o->loops times; returns the number of failures. */
static int
read_all(run_t *r)
{
    timeline_t   tl = { 0 };
    const options_t  *o = r->o;
    char        *skip;
    int          nfailed = 0;
    int64_t      before, first;

    skip = calloc(o->ninputs, 1);
    if (skip == NULL) {
        ksp_error("out of memory");
        return 1;
    }

    for (int64_t pass = 0; o->loops == 0 || pass < o->loops; pass++) {
        before = tl.next_index;

        for (int i = 0; i < o->ninputs && !should_stop(r, &tl); i++) {
            if (skip[i]) {
                continue;
            }
            first = tl.next_index;
            if (play_input(r, o->inputs[i], &tl) != 0) {
                nfailed++;
                /* an input that never gave a frame is not tried again on
                 * the next loop; one that broke off (a live stream) is */
                skip[i] = tl.next_index == first;
            }
        }

        if (should_stop(r, &tl) || tl.next_index == before) {
            break;  /* a pass without a single frame would loop forever */
        }
    }

    free(skip);
    return nfailed;
}


/* Signals: one thread waits for them, all others have them blocked, so no
 * library call is ever interrupted and no handler needs to be async-safe. */

static void *
signal_main(void *arg)
{
    sigset_t  *set = arg;
    int        sig;

    for ( ;; ) {
        if (sigwait(set, &sig) != 0) {
            continue;
        }
        if (ksp_request_stop() >= 3) {
            _exit(1);       /* asked three times */
        }
    }
    return NULL;
}


static void
summary(run_t *r, int64_t failed)
{
    publish_stats_t  s = publisher_stats(r->pub);
    double           secs = (ksp_mono_ns() - r->start_ns) / 1e9;

    fprintf(stderr, "%s: %" PRId64 " frames sent, %" PRId64 " failed,"
            " %.1f MB, %.1f s, %.1f fps\n", KSP_NAME, s.delivered, failed,
            s.bytes / 1e6, secs, secs > 0 ? s.delivered / secs : 0.0);
}


int
main(int argc, char **argv)
{
    static sigset_t  sigs;
    options_t        o;
    run_t            r;
    pthread_t        sender, sigthread;
    int64_t          failed;
    int              rc, bad_inputs;

    /* before any thread exists, librdkafka's included, so all inherit it */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    ksp_util_init();
    input_init();

    parse_options(&o, argc, argv);

    av_log_set_level(o.kafka.verbose ? AV_LOG_WARNING : AV_LOG_QUIET);

    rc = pthread_create(&sigthread, NULL, signal_main, &sigs);
    if (rc != 0) {
        ksp_error("cannot start a thread: %s", strerror(rc));
        return 1;
    }
    pthread_detach(sigthread);

    memset(&r, 0, sizeof(r));
    r.o = &o;
    o.kafka.content_type = encoder_content_type(o.enc.format);

    rc = publisher_new(&r.pub, &o.kafka);
    if (rc != 0) {
        if (rc == 2) {
            fprintf(stderr, "Try '%s --help' for more information.\n",
                    KSP_NAME);
        }
        return rc;
    }

    r.pool = pool_new(o.threads, &o.enc, o.width, o.height);
    if (r.pool == NULL) {
        publisher_free(r.pub);
        return 1;
    }

    progress.tty = isatty(STDERR_FILENO);
    progress.on = !o.quiet && (o.progress == 1 || progress.tty);
    r.start_ns = ksp_mono_ns();

    rc = pthread_create(&sender, NULL, sender_main, &r);
    if (rc != 0) {
        ksp_error("cannot start a thread: %s", strerror(rc));
        pool_close(r.pool);
        pool_free(r.pool);
        publisher_free(r.pub);
        return 1;
    }

    bad_inputs = read_all(&r);

    pool_close(r.pool);
    pthread_join(sender, NULL);
    pool_free(r.pool);

    publisher_flush(r.pub);

    failed = publisher_stats(r.pub).failed + r.encode_failed;
    progress_clear();
    if (!o.quiet) {
        summary(&r, failed);
    }

    rc = (bad_inputs > 0 || failed > 0 || atomic_load(&r.fatal)) ? 1 : 0;
    publisher_free(r.pub);
    free_args();
    return rc;
}
