/*
 * The viewers: one non-blocking connection each, all in one epoll loop in
 * one thread.  Level-triggered, one read per readiness event, so that a
 * fast viewer does not starve the others.
 *
 * Slow viewers read through a token bucket: they earn slow_rate bytes a
 * second and never read more than they have earned.  When a slow viewer is
 * out of tokens its socket leaves epoll (so its unread bytes do not wake
 * the loop), and a 10 ms tick puts it back once it may read again.  Its
 * small SO_RCVBUF makes the server see the slow reader quickly.
 */

#include "mjpeg_load.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>


#define ML_V_IDLE          0       /* not started yet */
#define ML_V_CONNECTING    1
#define ML_V_SENDING       2
#define ML_V_READING       3
#define ML_V_RETRY         4       /* waits to reconnect (--cycles) */
#define ML_V_DONE          5

/* how a connection ended */
#define ML_END_FAILED      0       /* no stream: connect, HTTP, headers */
#define ML_END_EARLY       1       /* the stream broke off */
#define ML_END_ENDED       2       /* the server sent the final boundary */
#define ML_END_CLOSED      3       /* we left after --max-frames */
#define ML_END_ABORTED     4       /* we left mid-part, --abort-mid-frame */
#define ML_END_RUN_OVER    5       /* the duration is over */

#define ML_SLOW_TICK       0.010   /* s */
#define ML_EVENTS          512
#define ML_MESSAGES        20      /* error lines before they are counted */


static volatile sig_atomic_t  ml_quit;


static void ml_on_signal(int signo);
static void ml_start_due(ml_run_t *run);
static void ml_connect(ml_run_t *run, ml_viewer_t *v);
static void ml_event(ml_run_t *run, ml_viewer_t *v);
static void ml_connected(ml_run_t *run, ml_viewer_t *v);
static void ml_send(ml_run_t *run, ml_viewer_t *v);
static void ml_read(ml_run_t *run, ml_viewer_t *v);
static void ml_stream_over(ml_run_t *run, ml_viewer_t *v, const char *why);
static void ml_close(ml_run_t *run, ml_viewer_t *v, int how,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void ml_slow_refill(ml_run_t *run, ml_viewer_t *v);
static void ml_slow_tick(ml_run_t *run);
static int ml_on_response(void *data, ml_stream_t *st);
static int ml_on_headers(void *data, ml_stream_t *st);
static int ml_on_part(void *data, ml_stream_t *st, ml_part_t *part);
static void ml_latency_add(ml_run_t *run, ml_viewer_t *v, double ms);
static void ml_first_add(ml_run_t *run, double ms);
static void ml_message(ml_run_t *run, ml_viewer_t *v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void ml_print_block(ml_viewer_t *v, const char *what, u_char *p,
    size_t len);


void
ml_run(ml_run_t *run)
{
    int                  i, n, timeout;
    double               next, end;
    unsigned             k;
    ml_conf_t           *conf;
    ml_viewer_t         *v;
    struct sigaction     sa;
    struct epoll_event   events[ML_EVENTS];

    conf = run->conf;

    memset(&sa, 0, sizeof(struct sigaction));
    sa.sa_handler = ml_on_signal;

    if (sigaction(SIGINT, &sa, NULL) == -1
        || sigaction(SIGTERM, &sa, NULL) == -1)
    {
        ml_fatal("sigaction: %s", strerror(errno));
    }

    sa.sa_handler = SIG_IGN;

    if (sigaction(SIGPIPE, &sa, NULL) == -1) {
        ml_fatal("sigaction: %s", strerror(errno));
    }

    run->ep = epoll_create1(EPOLL_CLOEXEC);
    if (run->ep == -1) {
        ml_fatal("epoll_create1: %s", strerror(errno));
    }

    run->start = ml_mono();
    run->now = run->start;
    end = run->start + conf->duration;

    for ( ;; ) {
        ml_start_due(run);

        if (ml_quit || run->now >= end) {
            break;
        }

        if (run->started == conf->viewers && run->running == 0) {
            break;
        }

        /* sleep until the duration ends, a viewer is due, or a tick */

        next = end;

        if (run->started < conf->viewers && conf->ramp > 0) {
            next = fmin(next, run->start + run->started / conf->ramp);
        }

        if (run->nretry > 0) {
            next = run->now;
        }

        if (run->npaused > 0) {
            next = fmin(next, run->now + ML_SLOW_TICK);
        }

        timeout = (int) ceil(fmin(next - run->now, 1) * 1000);

        n = epoll_wait(run->ep, events, ML_EVENTS, timeout < 0 ? 0 : timeout);

        if (n == -1) {
            if (errno == EINTR) {
                run->now = ml_mono();
                continue;
            }

            ml_fatal("epoll_wait: %s", strerror(errno));
        }

        run->now = ml_mono();

        for (i = 0; i < n; i++) {
            ml_event(run, events[i].data.ptr);
        }

        if (run->npaused > 0) {
            ml_slow_tick(run);
        }
    }

    /* the run is over: whoever still watches stops here */

    run->now = ml_mono();
    run->elapsed = run->now - run->start;

    for (k = 0; k < conf->viewers; k++) {
        v = &run->viewers[k];

        switch (v->state) {

        case ML_V_IDLE:
            run->not_started++;
            break;

        case ML_V_CONNECTING:
        case ML_V_SENDING:
            ml_close(run, v, ML_END_FAILED,
                     "no connection before the end of the run");
            break;

        case ML_V_READING:
            if (v->responded) {
                ml_stream_cut(&v->stream);
                ml_close(run, v, ML_END_RUN_OVER, NULL);

            } else {
                ml_close(run, v, ML_END_FAILED,
                         "no response header before the end of the run");
            }

            break;

        default:
            break;
        }
    }

    if (run->suppressed > 0) {
        fprintf(stderr, "mjpeg-load: %u more messages not shown\n",
                run->suppressed);
    }

    if (close(run->ep) == -1) {
        fprintf(stderr, "mjpeg-load: close: %s\n", strerror(errno));
    }
}


double
ml_mono(void)
{
    struct timespec  ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1) {
        ml_fatal("clock_gettime: %s", strerror(errno));
    }

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


double
ml_wall(void)
{
    struct timespec  ts;

    if (clock_gettime(CLOCK_REALTIME, &ts) == -1) {
        ml_fatal("clock_gettime: %s", strerror(errno));
    }

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static void
ml_on_signal(int signo)
{
    (void) signo;

    ml_quit = 1;
}


/* starts the viewers that the ramp lets in by now, and the reconnects */

static void
ml_start_due(ml_run_t *run)
{
    unsigned      due, n, i;
    ml_conf_t    *conf;
    ml_viewer_t  *v;

    conf = run->conf;

    if (ml_quit || run->now >= run->start + conf->duration) {
        return;
    }

    due = conf->viewers;

    if (conf->ramp > 0) {
        due = (unsigned) fmin(conf->viewers,
                              floor((run->now - run->start) * conf->ramp) + 1);
    }

    while (run->started < due) {
        v = &run->viewers[run->started++];
        run->running++;
        v->refilled = run->now;
        ml_connect(run, v);
    }

    /*
     * A reconnect that fails at once queues itself again, at an index no
     * higher than the one being read, so the loop may reuse the array.
     */

    n = run->nretry;
    run->nretry = 0;

    for (i = 0; i < n; i++) {
        ml_connect(run, run->retry[i]);
    }
}


static void
ml_connect(ml_run_t *run, ml_viewer_t *v)
{
    int                  fd, size;
    ml_conf_t           *conf;
    struct epoll_event   ev;

    conf = run->conf;

    v->connects++;
    v->conn_start = run->now;
    v->conn_frames = 0;
    v->responded = 0;
    v->sent = 0;
    v->state = ML_V_CONNECTING;

    ml_stream_init(&v->stream);
    v->stream.on_response = ml_on_response;
    v->stream.on_headers = ml_on_headers;
    v->stream.on_part = ml_on_part;
    v->stream.data = v;
    v->stream.abort_next = conf->abort_mid_frame && conf->max_frames == 0;

    fd = socket(conf->addr.ss_family,
                SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd == -1) {
        ml_close(run, v, ML_END_FAILED, "socket: %s", strerror(errno));
        return;
    }

    v->fd = fd;

    if (v->slow) {
        /* a small window: the server sees the slow reader soon */

        size = (conf->slow_rate < 16384) ? (int) conf->slow_rate : 16384;

        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(int))
            == -1)
        {
            ml_close(run, v, ML_END_FAILED, "setsockopt(SO_RCVBUF): %s",
                     strerror(errno));
            return;
        }
    }

    if (connect(fd, (struct sockaddr *) &conf->addr, conf->addrlen) == -1
        && errno != EINPROGRESS)
    {
        ml_close(run, v, ML_END_FAILED, "connect: %s", strerror(errno));
        return;
    }

    ev.events = EPOLLOUT;
    ev.data.ptr = v;

    if (epoll_ctl(run->ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
        ml_close(run, v, ML_END_FAILED, "epoll_ctl: %s", strerror(errno));
        return;
    }
}


static void
ml_event(ml_run_t *run, ml_viewer_t *v)
{
    switch (v->state) {

    case ML_V_CONNECTING:
        ml_connected(run, v);
        break;

    case ML_V_SENDING:
        ml_send(run, v);
        break;

    case ML_V_READING:
        ml_read(run, v);
        break;

    default:
        break;
    }
}


static void
ml_connected(ml_run_t *run, ml_viewer_t *v)
{
    int        err;
    socklen_t  len;

    len = sizeof(int);

    if (getsockopt(v->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1) {
        err = errno;
    }

    if (err != 0) {
        ml_close(run, v, ML_END_FAILED, "connect: %s", strerror(err));
        return;
    }

    v->state = ML_V_SENDING;

    ml_send(run, v);
}


static void
ml_send(ml_run_t *run, ml_viewer_t *v)
{
    ssize_t              n;
    ml_conf_t           *conf;
    struct epoll_event   ev;

    conf = run->conf;

    n = send(v->fd, conf->request + v->sent, conf->request_len - v->sent,
             MSG_NOSIGNAL);

    if (n == -1) {
        if (errno == EAGAIN || errno == EINTR) {
            return;
        }

        ml_close(run, v, ML_END_FAILED, "send: %s", strerror(errno));
        return;
    }

    v->sent += n;

    if (v->sent < conf->request_len) {
        return;
    }

    ev.events = EPOLLIN;
    ev.data.ptr = v;

    if (epoll_ctl(run->ep, EPOLL_CTL_MOD, v->fd, &ev) == -1) {
        ml_close(run, v, ML_END_FAILED, "epoll_ctl: %s", strerror(errno));
        return;
    }

    v->state = ML_V_READING;
}


static void
ml_read(ml_run_t *run, ml_viewer_t *v)
{
    int           rc;
    char          why[128];
    size_t        size;
    ssize_t       n;
    ml_stream_t  *st;

    st = &v->stream;
    size = sizeof(run->buf);

    if (v->slow) {
        ml_slow_refill(run, v);

        if (v->tokens < 1) {
            if (epoll_ctl(run->ep, EPOLL_CTL_DEL, v->fd, NULL) == -1) {
                ml_close(run, v, ML_END_EARLY, "epoll_ctl: %s",
                         strerror(errno));
                return;
            }

            v->paused = 1;
            run->npaused++;
            return;
        }

        if ((double) size > v->tokens) {
            size = (size_t) v->tokens;
        }
    }

    n = recv(v->fd, run->buf, size, 0);

    if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }

    if (n <= 0) {
        (void) snprintf(why, sizeof(why), "%s%s",
                        (n == 0) ? "connection closed by the server"
                                 : "recv: ",
                        (n == 0) ? "" : strerror(errno));

        ml_stream_eof(st);
        ml_stream_over(run, v, why);
        return;
    }

    v->bytes += n;

    if (v->slow) {
        v->tokens -= n;
    }

    st->now = ml_wall();

    rc = ml_stream_parse(st, run->buf, n);

    switch (rc) {

    case ML_AGAIN:
        return;

    case ML_DONE:
        ml_stream_over(run, v,
                       "the response body ended without the final boundary");
        return;

    case ML_STOP:
        ml_close(run, v, st->abort_next ? ML_END_ABORTED : ML_END_CLOSED,
                 NULL);
        return;

    default: /* ML_ERROR */
        if (st->status != 0) {
            v->status = st->status;
        }

        ml_close(run, v, v->responded ? ML_END_EARLY : ML_END_FAILED,
                 "%s", st->error);
        return;
    }
}


/* the server ended the stream, with its final boundary or not */

static void
ml_stream_over(ml_run_t *run, ml_viewer_t *v, const char *why)
{
    if (!v->responded) {
        ml_close(run, v, ML_END_FAILED, "%s before the response header",
                 why);

    } else if (v->stream.final) {
        ml_close(run, v, ML_END_ENDED, NULL);

    } else {
        ml_close(run, v, ML_END_EARLY, "%s", why);
    }
}


/*
 * Ends the viewer's connection and counts how it ended; with --cycles left
 * the viewer connects again on the next turn of the loop.
 */

static void
ml_close(ml_run_t *run, ml_viewer_t *v, int how, const char *fmt, ...)
{
    va_list     args;
    char        msg[256];
    ml_conf_t  *conf;

    conf = run->conf;

    if (v->fd != -1) {
        if (close(v->fd) == -1) {
            fprintf(stderr, "mjpeg-load: close: %s\n", strerror(errno));
        }

        v->fd = -1;
    }

    if (v->paused) {
        v->paused = 0;
        run->npaused--;
    }

    if (v->responded) {
        v->active += ml_mono() - v->responded_at;
    }

    switch (how) {

    case ML_END_FAILED:
        v->failed++;
        break;

    case ML_END_EARLY:
        v->early++;
        break;

    case ML_END_ENDED:
        v->ended++;
        break;

    case ML_END_CLOSED:
        v->closed++;
        break;

    case ML_END_ABORTED:
        v->aborted++;
        break;

    default:
        break;
    }

    if (fmt != NULL) {
        va_start(args, fmt);
        (void) vsnprintf(msg, sizeof(msg), fmt, args);
        va_end(args);

        ml_message(run, v, "%s", msg);
    }

    if (how != ML_END_RUN_OVER && v->connects < conf->cycles
        && !ml_quit && run->now < run->start + conf->duration)
    {
        v->state = ML_V_RETRY;
        run->retry[run->nretry++] = v;
        return;
    }

    v->state = ML_V_DONE;
    run->running--;
}


static void
ml_slow_refill(ml_run_t *run, ml_viewer_t *v)
{
    double  burst;

    /* at most a tenth of a second's worth at once */

    burst = fmax(run->conf->slow_rate / 10, 1);

    v->tokens += (run->now - v->refilled) * run->conf->slow_rate;
    v->refilled = run->now;

    if (v->tokens > burst) {
        v->tokens = burst;
    }
}


static void
ml_slow_tick(ml_run_t *run)
{
    unsigned             i;
    ml_viewer_t         *v;
    struct epoll_event   ev;

    for (i = 0; i < run->conf->slow && run->npaused > 0; i++) {
        v = &run->viewers[i];

        if (!v->paused) {
            continue;
        }

        ml_slow_refill(run, v);

        if (v->tokens < 1) {
            continue;
        }

        v->paused = 0;
        run->npaused--;

        ev.events = EPOLLIN;
        ev.data.ptr = v;

        if (epoll_ctl(run->ep, EPOLL_CTL_ADD, v->fd, &ev) == -1) {
            ml_close(run, v, ML_END_EARLY, "epoll_ctl: %s", strerror(errno));
        }
    }
}


static int
ml_on_response(void *data, ml_stream_t *st)
{
    ml_viewer_t  *v;

    v = data;

    v->responded = 1;
    v->responded_at = ml_mono();
    v->connected++;
    v->status = st->status;

    if (v->run->conf->verbose) {
        ml_print_block(v, "response", st->hdr, st->hlen);
    }

    return ML_AGAIN;
}


static int
ml_on_headers(void *data, ml_stream_t *st)
{
    char          what[32];
    ml_viewer_t  *v;

    v = data;

    if (v->run->conf->verbose) {
        (void) snprintf(what, sizeof(what), "part %llu",
                        (unsigned long long) st->part.index);
        ml_print_block(v, what, st->hdr, st->hlen);
    }

    return ML_AGAIN;
}


static int
ml_on_part(void *data, ml_stream_t *st, ml_part_t *part)
{
    double        ms;
    ml_run_t     *run;
    ml_conf_t    *conf;
    ml_viewer_t  *v;

    v = data;
    run = v->run;
    conf = run->conf;

    if (part->error != NULL) {
        v->invalid++;
        ml_message(run, v, "part %llu (%s, %lld bytes): invalid: %s",
                   (unsigned long long) part->index,
                   ml_image_type_name(part->type), (long long) part->length,
                   part->error);
        return ML_AGAIN;
    }

    v->frames++;
    v->conn_frames++;

    if (v->conn_frames == 1) {
        ms = (run->now - v->conn_start) * 1000;
        ml_first_add(run, ms);

        if (v->first_frame < 0) {
            v->first_frame = ms;
        }
    }

    if (part->timestamp > 0) {
        ml_latency_add(run, v, (part->received - part->timestamp) * 1000);

    } else {
        v->untimed++;
    }

    if (conf->verbose) {
        fprintf(stderr, "mjpeg-load: viewer %u: part %llu: valid %s, "
                "%lld bytes\n", v->id, (unsigned long long) part->index,
                ml_image_type_name(part->type), (long long) part->length);
    }

    if (conf->max_frames > 0 && v->conn_frames >= conf->max_frames) {
        if (conf->abort_mid_frame) {
            st->abort_next = 1;
            return ML_AGAIN;
        }

        return ML_STOP;
    }

    return ML_AGAIN;
}


static void
ml_latency_add(ml_run_t *run, ml_viewer_t *v, double ms)
{
    size_t  i;

    if (v->lat_n == 0 || ms < v->lat_min) {
        v->lat_min = ms;
    }

    if (v->lat_n == 0 || ms > v->lat_max) {
        v->lat_max = ms;
    }

    v->lat_sum += ms;
    v->lat_n++;

    if (run->lat_n == 0 || ms > run->lat_max) {
        run->lat_max = ms;
    }

    run->lat_n++;

    /*
     * X-Timestamp has milliseconds, so a latency down to -1 ms is rounding;
     * below that the clocks disagree.  Either way it counts as zero here.
     */

    if (ms < 0) {
        if (ms < -1) {
            run->lat_negative++;
        }

        i = 0;

    } else if (ms >= ML_LAT_BUCKETS * ML_LAT_BUCKET) {
        run->lat_over++;
        return;

    } else {
        i = (size_t) (ms / ML_LAT_BUCKET);
    }

    run->lat_hist[i]++;
}


static void
ml_first_add(ml_run_t *run, double ms)
{
    size_t   cap;
    double  *first;

    if (run->nfirst == run->first_cap) {
        cap = (run->first_cap > 0) ? run->first_cap * 2 : 1024;

        first = realloc(run->first, cap * sizeof(double));
        if (first == NULL) {
            ml_fatal("realloc: %s", strerror(errno));
        }

        run->first = first;
        run->first_cap = cap;
    }

    run->first[run->nfirst++] = ms;
}


/* error lines: the first few, then only counted (all with --verbose) */

static void
ml_message(ml_run_t *run, ml_viewer_t *v, const char *fmt, ...)
{
    va_list  args;
    char     msg[256];

    va_start(args, fmt);
    (void) vsnprintf(msg, sizeof(msg), fmt, args);
    va_end(args);

    if (v->error[0] == '\0') {
        (void) snprintf(v->error, sizeof(v->error), "%s", msg);
    }

    if (run->messages++ < ML_MESSAGES || run->conf->verbose) {
        fprintf(stderr, "mjpeg-load: viewer %u: %s\n", v->id, msg);

    } else {
        run->suppressed++;
    }
}


/* --verbose: a header block, one line at a time */

static void
ml_print_block(ml_viewer_t *v, const char *what, u_char *p, size_t len)
{
    u_char  *end, *nl;
    size_t   n;

    end = p + len;

    while (p < end) {
        nl = memchr(p, '\n', end - p);
        n = (nl != NULL) ? (size_t) (nl - p) : (size_t) (end - p);

        if (n > 0 && p[n - 1] == '\r') {
            n--;
        }

        if (n > 0) {
            fprintf(stderr, "mjpeg-load: viewer %u: %s: %.*s\n", v->id, what,
                    (int) n, (char *) p);
        }

        if (nl == NULL) {
            break;
        }

        p = nl + 1;
    }
}
