/*
 * The summary of a run, as text or as JSON (for bench scripts), and the
 * optional per-viewer CSV.  Percentiles are nearest-rank; latencies come
 * from a histogram of ML_LAT_BUCKET ms steps and are given as the upper
 * edge of their step, never above the largest latency seen.
 *
 * The JSON object, on one line:
 *
 *   url, viewers, slow_viewers, slow_rate (B/s), duration_s, elapsed_s
 *   connections: attempted, connected (got a 200 multipart response),
 *       failed, disconnected_early, not_started (viewers), ended_by_server,
 *       closed_after_max_frames, aborted_mid_frame -- counted per
 *       connection, so with --cycles K up to viewers x K
 *   frames (valid parts), invalid_parts, frames_without_timestamp
 *   fps_normal, fps_slow: {viewers, min, median, max} or null -- frames
 *       per second of each viewer over the time it had a stream
 *   bytes (all read, headers included), mb_per_s (10^6 bytes / elapsed)
 *   latency_ms: {samples, p50, p99, max, negative} or null -- receive
 *       time of a part's last byte minus its X-Timestamp; negative counts
 *       those below -1 ms (clocks that disagree)
 *   first_frame_ms: {samples, p50, max} or null -- from connect() to the
 *       first valid frame, per connection
 *   expect_frames (or null), viewers_below_expected, exit_code
 */

#include "mjpeg_load.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>


typedef struct {
    size_t          n;
    double          min;
    double          median;
    double          max;
} ml_dist_t;


typedef struct {
    uint64_t        attempted;
    uint64_t        connected;
    uint64_t        failed;
    uint64_t        early;
    uint64_t        ended;
    uint64_t        closed;
    uint64_t        aborted;
    uint64_t        frames;
    uint64_t        invalid;
    uint64_t        untimed;
    uint64_t        bytes;
    ml_dist_t       fps_normal;
    ml_dist_t       fps_slow;
    ml_dist_t       first;
    double          lat_p50;
    double          lat_p99;
    unsigned        below_expected;
    int             exit_code;
} ml_summary_t;


static void ml_summarize(ml_run_t *run, ml_summary_t *s);
static void ml_fps(ml_run_t *run, int slow, ml_dist_t *d);
static void ml_dist(double *values, size_t n, ml_dist_t *d);
static int ml_cmp_double(const void *a, const void *b);
static double ml_latency_pct(ml_run_t *run, double pct);
static void ml_print_text(ml_run_t *run, ml_summary_t *s);
static void ml_print_dist_text(const char *name, ml_dist_t *d);
static void ml_print_json(ml_run_t *run, ml_summary_t *s);
static void ml_print_dist_json(const char *name, ml_dist_t *d);
static void ml_json_string(const char *s);
static int ml_write_csv(ml_run_t *run, const char *path);


int
ml_report(ml_run_t *run)
{
    ml_summary_t  s;

    ml_summarize(run, &s);

    if (run->conf->per_viewer != NULL
        && ml_write_csv(run, run->conf->per_viewer) != 0)
    {
        s.exit_code = 1;
    }

    if (run->conf->json) {
        ml_print_json(run, &s);

    } else {
        ml_print_text(run, &s);
    }

    if (fflush(stdout) == EOF) {
        fprintf(stderr, "mjpeg-load: stdout: %s\n", strerror(errno));
        return 1;
    }

    return s.exit_code;
}


static void
ml_summarize(ml_run_t *run, ml_summary_t *s)
{
    unsigned      i;
    ml_conf_t    *conf;
    ml_viewer_t  *v;

    conf = run->conf;

    memset(s, 0, sizeof(ml_summary_t));

    for (i = 0; i < conf->viewers; i++) {
        v = &run->viewers[i];

        s->attempted += v->connects;
        s->connected += v->connected;
        s->failed += v->failed;
        s->early += v->early;
        s->ended += v->ended;
        s->closed += v->closed;
        s->aborted += v->aborted;
        s->frames += v->frames;
        s->invalid += v->invalid;
        s->untimed += v->untimed;
        s->bytes += v->bytes;

        if (!v->slow && conf->expect_frames >= 0
            && v->frames < (uint64_t) conf->expect_frames)
        {
            s->below_expected++;
        }
    }

    ml_fps(run, 0, &s->fps_normal);
    ml_fps(run, 1, &s->fps_slow);
    ml_dist(run->first, run->nfirst, &s->first);

    s->lat_p50 = ml_latency_pct(run, 0.50);
    s->lat_p99 = ml_latency_pct(run, 0.99);

    s->exit_code = (s->invalid > 0 || s->failed > 0 || s->early > 0
                    || run->not_started > 0 || s->below_expected > 0);
}


/* frames per second of each viewer while it had a stream */

static void
ml_fps(ml_run_t *run, int slow, ml_dist_t *d)
{
    size_t        n;
    unsigned      i;
    double       *fps;
    ml_viewer_t  *v;

    fps = malloc(run->conf->viewers * sizeof(double));
    if (fps == NULL) {
        ml_fatal("malloc: %s", strerror(errno));
    }

    n = 0;

    for (i = 0; i < run->conf->viewers; i++) {
        v = &run->viewers[i];

        if (v->slow == slow && v->connected > 0 && v->active > 0) {
            fps[n++] = v->frames / v->active;
        }
    }

    ml_dist(fps, n, d);

    free(fps);
}


static void
ml_dist(double *values, size_t n, ml_dist_t *d)
{
    d->n = n;

    if (n == 0) {
        d->min = d->median = d->max = 0;
        return;
    }

    qsort(values, n, sizeof(double), ml_cmp_double);

    d->min = values[0];
    d->median = values[(n + 1) / 2 - 1];
    d->max = values[n - 1];
}


static int
ml_cmp_double(const void *a, const void *b)
{
    double  x, y;

    x = *(const double *) a;
    y = *(const double *) b;

    return (x > y) - (x < y);
}


static double
ml_latency_pct(ml_run_t *run, double pct)
{
    size_t    i;
    uint64_t  rank, sum;

    if (run->lat_n == 0) {
        return 0;
    }

    rank = (uint64_t) ceil(pct * run->lat_n);

    if (rank == 0) {
        rank = 1;
    }

    sum = 0;

    for (i = 0; i < ML_LAT_BUCKETS; i++) {
        sum += run->lat_hist[i];

        if (sum >= rank) {
            return fmin((i + 1) * ML_LAT_BUCKET, run->lat_max);
        }
    }

    return run->lat_max;
}


static void
ml_print_text(ml_run_t *run, ml_summary_t *s)
{
    ml_conf_t  *conf;

    conf = run->conf;

    printf("url             %s\n", conf->url);
    printf("viewers         %u", conf->viewers);

    if (conf->slow > 0) {
        printf(" (%u slow at %.0f B/s)", conf->slow, conf->slow_rate);
    }

    printf(", ran %.2f s of %.2f s\n", run->elapsed, conf->duration);

    printf("connections     %llu attempted, %llu connected, %llu failed, "
           "%llu disconnected early, %u not started\n",
           (unsigned long long) s->attempted,
           (unsigned long long) s->connected,
           (unsigned long long) s->failed, (unsigned long long) s->early,
           run->not_started);
    printf("closed          %llu ended by the server, %llu after "
           "--max-frames, %llu mid-frame\n",
           (unsigned long long) s->ended, (unsigned long long) s->closed,
           (unsigned long long) s->aborted);
    printf("frames          %llu valid, %llu invalid, %llu without "
           "X-Timestamp\n",
           (unsigned long long) s->frames, (unsigned long long) s->invalid,
           (unsigned long long) s->untimed);

    ml_print_dist_text("frames/s normal", &s->fps_normal);

    if (conf->slow > 0) {
        ml_print_dist_text("frames/s slow", &s->fps_slow);
    }

    printf("delivered       %.3f MB/s (%llu bytes)\n",
           run->elapsed > 0 ? s->bytes / run->elapsed / 1e6 : 0.0,
           (unsigned long long) s->bytes);

    if (run->lat_n > 0) {
        printf("latency         p50 %.1f ms, p99 %.1f ms, max %.1f ms "
               "(%llu frames", s->lat_p50, s->lat_p99, run->lat_max,
               (unsigned long long) run->lat_n);

        if (run->lat_negative > 0) {
            printf(", %llu negative: clock skew?",
                   (unsigned long long) run->lat_negative);
        }

        printf(")\n");

    } else {
        printf("latency         -\n");
    }

    if (s->first.n > 0) {
        printf("first frame     p50 %.1f ms, max %.1f ms\n", s->first.median,
               s->first.max);

    } else {
        printf("first frame     -\n");
    }

    if (conf->expect_frames >= 0) {
        printf("expect-frames   %lld: %s (%u normal viewers below)\n",
               (long long) conf->expect_frames,
               s->below_expected ? "FAILED" : "ok", s->below_expected);
    }

    printf("result          %s\n", s->exit_code ? "FAILED" : "ok");
}


static void
ml_print_dist_text(const char *name, ml_dist_t *d)
{
    if (d->n == 0) {
        printf("%-15s -\n", name);
        return;
    }

    printf("%-15s min %.2f, median %.2f, max %.2f (%zu viewers)\n", name,
           d->min, d->median, d->max, d->n);
}


static void
ml_print_json(ml_run_t *run, ml_summary_t *s)
{
    ml_conf_t  *conf;

    conf = run->conf;

    printf("{\"url\":");
    ml_json_string(conf->url);
    printf(",\"viewers\":%u,\"slow_viewers\":%u,\"slow_rate\":%.0f,"
           "\"duration_s\":%.3f,\"elapsed_s\":%.3f,",
           conf->viewers, conf->slow, conf->slow_rate, conf->duration,
           run->elapsed);

    printf("\"connections\":{\"attempted\":%llu,\"connected\":%llu,"
           "\"failed\":%llu,\"disconnected_early\":%llu,"
           "\"not_started\":%u,\"ended_by_server\":%llu,"
           "\"closed_after_max_frames\":%llu,\"aborted_mid_frame\":%llu},",
           (unsigned long long) s->attempted,
           (unsigned long long) s->connected,
           (unsigned long long) s->failed, (unsigned long long) s->early,
           run->not_started, (unsigned long long) s->ended,
           (unsigned long long) s->closed,
           (unsigned long long) s->aborted);

    printf("\"frames\":%llu,\"invalid_parts\":%llu,"
           "\"frames_without_timestamp\":%llu,",
           (unsigned long long) s->frames, (unsigned long long) s->invalid,
           (unsigned long long) s->untimed);

    ml_print_dist_json("fps_normal", &s->fps_normal);
    ml_print_dist_json("fps_slow", &s->fps_slow);

    printf("\"bytes\":%llu,\"mb_per_s\":%.3f,",
           (unsigned long long) s->bytes,
           run->elapsed > 0 ? s->bytes / run->elapsed / 1e6 : 0.0);

    if (run->lat_n > 0) {
        printf("\"latency_ms\":{\"samples\":%llu,\"p50\":%.3f,\"p99\":%.3f,"
               "\"max\":%.3f,\"negative\":%llu},",
               (unsigned long long) run->lat_n, s->lat_p50, s->lat_p99,
               run->lat_max, (unsigned long long) run->lat_negative);

    } else {
        printf("\"latency_ms\":null,");
    }

    if (s->first.n > 0) {
        printf("\"first_frame_ms\":{\"samples\":%zu,\"p50\":%.3f,"
               "\"max\":%.3f},", s->first.n, s->first.median, s->first.max);

    } else {
        printf("\"first_frame_ms\":null,");
    }

    if (conf->expect_frames >= 0) {
        printf("\"expect_frames\":%lld,", (long long) conf->expect_frames);

    } else {
        printf("\"expect_frames\":null,");
    }

    printf("\"viewers_below_expected\":%u,\"exit_code\":%d}\n",
           s->below_expected, s->exit_code);
}


static void
ml_print_dist_json(const char *name, ml_dist_t *d)
{
    if (d->n == 0) {
        printf("\"%s\":null,", name);
        return;
    }

    printf("\"%s\":{\"viewers\":%zu,\"min\":%.3f,\"median\":%.3f,"
           "\"max\":%.3f},", name, d->n, d->min, d->median, d->max);
}


static void
ml_json_string(const char *s)
{
    putchar('"');

    for ( /* void */ ; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\') {
            printf("\\%c", *s);

        } else if ((unsigned char) *s < 0x20) {
            printf("\\u%04x", (unsigned char) *s);

        } else {
            putchar(*s);
        }
    }

    putchar('"');
}


static int
ml_write_csv(ml_run_t *run, const char *path)
{
    FILE         *f;
    unsigned      i;
    const char   *p;
    ml_viewer_t  *v;

    f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "mjpeg-load: %s: %s\n", path, strerror(errno));
        return -1;
    }

    fprintf(f, "viewer,slow,connects,connected,failed,disconnected_early,"
            "ended,frames,invalid,bytes,active_s,fps,first_frame_ms,"
            "latency_min_ms,latency_avg_ms,latency_max_ms,http_status,"
            "error\n");

    for (i = 0; i < run->conf->viewers; i++) {
        v = &run->viewers[i];

        fprintf(f, "%u,%d,%u,%u,%u,%u,%u,%llu,%llu,%llu,%.3f,%.3f,",
                v->id, v->slow, v->connects, v->connected, v->failed,
                v->early, v->ended, (unsigned long long) v->frames,
                (unsigned long long) v->invalid,
                (unsigned long long) v->bytes, v->active,
                v->active > 0 ? v->frames / v->active : 0.0);

        if (v->first_frame >= 0) {
            fprintf(f, "%.3f,", v->first_frame);

        } else {
            fprintf(f, ",");
        }

        if (v->lat_n > 0) {
            fprintf(f, "%.3f,%.3f,%.3f,", v->lat_min, v->lat_sum / v->lat_n,
                    v->lat_max);

        } else {
            fprintf(f, ",,,");
        }

        /* the message is quoted the CSV way: "" for a quote */

        fprintf(f, "%d,\"", v->status);

        for (p = v->error; *p != '\0'; p++) {
            if (*p == '"') {
                fputc('"', f);
            }

            fputc(*p, f);
        }

        fprintf(f, "\"\n");
    }

    if (ferror(f) || fclose(f) == EOF) {
        fprintf(stderr, "mjpeg-load: %s: write error\n", path);
        return -1;
    }

    return 0;
}
