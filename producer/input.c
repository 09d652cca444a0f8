/*
 * input: libavformat demuxing and libavcodec decoding of one video stream.
 *
 * Frames come out in presentation order with a timestamp relative to the
 * first frame, which is what pacing and the pts-ms header need.  Decoding
 * errors in single packets are skipped as ffmpeg does (a damaged packet
 * should not end a live stream); an input of which not one frame decodes
 * is reported as an error.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavdevice/avdevice.h>
#include <libavformat/avformat.h>

#include "input.h"
#include "util.h"

struct input {
    const char       *url;
    AVFormatContext  *fmt;
    AVCodecContext   *dec;
    AVPacket         *pkt;
    int               stream;
    int               draining;
    int64_t           first_ts;
    AVRational        time_base;
    double            fps;
    int64_t           frames;
    int64_t           errors;
    int64_t           errors_in_row;
    int               last_error;
    int64_t           io_timeout_ns;    /* 0: wait for ever */
    int64_t           io_deadline_ns;   /* for the blocking call under way */
    int               timed_out;
};

/* this many damaged packets in a row, and the decoder is taken as failed */
#define MAX_ERRORS_IN_ROW  500


/*
 * libavformat polls this while it waits for the network: it lets a blocking
 * read give up on SIGINT/SIGTERM, and on a server that accepted and then
 * stays silent (a hung camera), which no protocol notices on its own.
 */
static int
on_interrupt(void *opaque)
{
    input_t  *in = opaque;

    if (atomic_load(&ksp_stop)) {
        return 1;
    }

    if (in->io_deadline_ns != 0 && ksp_mono_ns() > in->io_deadline_ns) {
        in->timed_out = 1;
        return 1;
    }

    return 0;
}


/* Each blocking libavformat call gets the whole timeout for itself. */
static void
arm_timeout(input_t *in)
{
    in->io_deadline_ns = in->io_timeout_ns ? ksp_mono_ns() + in->io_timeout_ns
                                           : 0;
}


static const char *
timeout_text(input_t *in, char *buf, size_t size)
{
    snprintf(buf, size, "no data for %.3g s (--io-timeout)",
             (double) in->io_timeout_ns / 1e9);
    return buf;
}


static const char *
av_err(int err, char *buf, size_t size)
{
    av_strerror(err, buf, size);
    return buf;
}


static int
open_decoder(input_t *in, int threads)
{
    AVStream       *st = in->fmt->streams[in->stream];
    const AVCodec  *codec;
    char            e[AV_ERROR_MAX_STRING_SIZE];
    int             err;

    codec = avcodec_find_decoder(st->codecpar->codec_id);
    if (codec == NULL) {
        ksp_error("%s: no decoder for video codec %s", in->url,
                  avcodec_get_name(st->codecpar->codec_id));
        return -1;
    }

    in->dec = avcodec_alloc_context3(codec);
    if (in->dec == NULL) {
        ksp_error("%s: out of memory", in->url);
        return -1;
    }

    err = avcodec_parameters_to_context(in->dec, st->codecpar);
    if (err < 0) {
        ksp_error("%s: decoder %s: %s", in->url, codec->name,
                  av_err(err, e, sizeof(e)));
        return -1;
    }

    in->dec->thread_count = threads;
    in->dec->pkt_timebase = st->time_base;

    err = avcodec_open2(in->dec, codec, NULL);
    if (err < 0) {
        ksp_error("%s: cannot open decoder %s: %s", in->url, codec->name,
                  av_err(err, e, sizeof(e)));
        return -1;
    }

    return 0;
}


void
input_init(void)
{
    avdevice_register_all();
    avformat_network_init();
}


int
input_format_exists(const char *name)
{
    return av_find_input_format(name) != NULL;
}


input_t *
input_open(const char *url, const char *format, int decoder_threads,
    double io_timeout)
{
    const AVInputFormat  *ifmt = NULL;
    input_t     *in;
    AVStream    *st;
    AVRational   rate;
    char         e[AV_ERROR_MAX_STRING_SIZE];
    int          err;

    in = calloc(1, sizeof(*in));
    if (in == NULL) {
        ksp_error("%s: out of memory", url);
        return NULL;
    }

    in->url = url;
    in->first_ts = AV_NOPTS_VALUE;
    in->io_timeout_ns = (int64_t) (io_timeout * 1e9);

    in->fmt = avformat_alloc_context();
    in->pkt = av_packet_alloc();
    if (in->fmt == NULL || in->pkt == NULL) {
        ksp_error("%s: out of memory", url);
        goto failed;
    }
    in->fmt->interrupt_callback.callback = on_interrupt;
    in->fmt->interrupt_callback.opaque = in;

    /* a camera cannot be probed like a file: /dev/video* means V4L2 */
    if (format == NULL && strncmp(url, "/dev/video", 10) == 0) {
        format = "v4l2";
    }
    if (format != NULL) {
        ifmt = av_find_input_format(format);
        if (ifmt == NULL) {
            ksp_error("%s: unknown input format '%s'", url, format);
            goto failed;
        }
    }

    arm_timeout(in);
    err = avformat_open_input(&in->fmt, url, ifmt, NULL);
    if (err < 0) {
        /* avformat_open_input frees the context on failure; a stop
         * request interrupting it is no error of the input */
        if (!atomic_load(&ksp_stop)) {
            ksp_error("%s: cannot open: %s", url,
                      in->timed_out ? timeout_text(in, e, sizeof(e))
                                    : av_err(err, e, sizeof(e)));
        }
        goto failed;
    }

    arm_timeout(in);
    err = avformat_find_stream_info(in->fmt, NULL);
    if (err < 0) {
        if (!atomic_load(&ksp_stop)) {
            ksp_error("%s: cannot read stream info: %s", url,
                      in->timed_out ? timeout_text(in, e, sizeof(e))
                                    : av_err(err, e, sizeof(e)));
        }
        goto failed;
    }

    in->stream = av_find_best_stream(in->fmt, AVMEDIA_TYPE_VIDEO, -1, -1,
                                     NULL, 0);
    if (in->stream < 0
        || (in->fmt->streams[in->stream]->disposition
            & AV_DISPOSITION_ATTACHED_PIC))
    {
        ksp_error("%s: no video stream (%s)", url,
                  in->fmt->iformat->long_name ? in->fmt->iformat->long_name
                                              : in->fmt->iformat->name);
        goto failed;
    }

    st = in->fmt->streams[in->stream];
    in->time_base = st->time_base;

    /* Only the chosen stream is demuxed: the others cost nothing then. */
    for (unsigned i = 0; i < in->fmt->nb_streams; i++) {
        if ((int) i != in->stream) {
            in->fmt->streams[i]->discard = AVDISCARD_ALL;
        }
    }

    rate = av_guess_frame_rate(in->fmt, st, NULL);
    in->fps = (rate.num > 0 && rate.den > 0) ? av_q2d(rate) : 25.0;

    if (open_decoder(in, decoder_threads) != 0) {
        goto failed;
    }

    return in;

failed:
    input_close(in);
    return NULL;
}


/* A damaged packet or frame is skipped, as ffmpeg does: a live stream
 * should not end on one bad packet. */
static void
note_error(input_t *in, int err)
{
    in->errors++;
    in->errors_in_row++;
    in->last_error = err;
}


static int
read_packet(input_t *in)
{
    char  e[AV_ERROR_MAX_STRING_SIZE];
    int   err;

    for ( ;; ) {
        arm_timeout(in);
        err = av_read_frame(in->fmt, in->pkt);

        if (in->timed_out) {
            ksp_error("%s: read error: %s", in->url,
                      timeout_text(in, e, sizeof(e)));
            return AVERROR_EXIT;
        }

        if (err == AVERROR_EOF || err == AVERROR_EXIT
            || (err < 0 && atomic_load(&ksp_stop)))
        {
            /* enter draining mode: the decoder returns what it holds */
            in->draining = 1;
            err = avcodec_send_packet(in->dec, NULL);
            if (err < 0) {
                note_error(in, err);
            }
            return 0;
        }

        if (err < 0) {
            ksp_error("%s: read error: %s", in->url,
                      av_err(err, e, sizeof(e)));
            return err;
        }

        if (in->pkt->stream_index != in->stream) {
            av_packet_unref(in->pkt);
            continue;
        }

        err = avcodec_send_packet(in->dec, in->pkt);
        av_packet_unref(in->pkt);
        if (err < 0 && err != AVERROR(EAGAIN)) {
            note_error(in, err);
        }
        return 0;
    }
}


static int
end_of_input(input_t *in)
{
    char  e[AV_ERROR_MAX_STRING_SIZE];

    if (in->frames == 0 && in->errors > 0) {
        ksp_error("%s: no frame could be decoded: %s", in->url,
                  av_err(in->last_error, e, sizeof(e)));
        return -1;
    }
    if (in->errors > 0) {
        /* a warning: the frames that did decode were sent */
        ksp_error("%s: %" PRId64 " damaged packets skipped (%s)", in->url,
                  in->errors, av_err(in->last_error, e, sizeof(e)));
    }
    return 1;
}


int
input_read(input_t *in, AVFrame *frame, int64_t *pts_us)
{
    char     e[AV_ERROR_MAX_STRING_SIZE];
    int64_t  ts;
    int      err;

    for ( ;; ) {
        err = avcodec_receive_frame(in->dec, frame);

        if (err == 0) {
            break;
        }

        if (err == AVERROR_EOF) {
            return end_of_input(in);
        }

        if (err != AVERROR(EAGAIN)) {
            /* with frame threads, a damaged packet is reported here */
            note_error(in, err);
            if (in->errors_in_row >= MAX_ERRORS_IN_ROW) {
                ksp_error("%s: decoder %s failed: %s", in->url,
                          in->dec->codec->name, av_err(err, e, sizeof(e)));
                return -1;
            }
            continue;
        }

        if (in->draining) {
            return end_of_input(in);
        }

        if (in->errors_in_row >= MAX_ERRORS_IN_ROW) {
            ksp_error("%s: decoder %s failed: %s", in->url,
                      in->dec->codec->name,
                      av_err(in->last_error, e, sizeof(e)));
            return -1;
        }

        if (read_packet(in) < 0) {
            return -1;
        }
    }

    in->frames++;
    in->errors_in_row = 0;

    ts = frame->best_effort_timestamp;
    if (ts == AV_NOPTS_VALUE) {
        *pts_us = INT64_MIN;
        return 0;
    }

    if (in->first_ts == AV_NOPTS_VALUE) {
        in->first_ts = ts;
    }

    *pts_us = av_rescale_q(ts - in->first_ts, in->time_base, AV_TIME_BASE_Q);
    return 0;
}


double
input_fps(const input_t *in)
{
    return in->fps;
}


int64_t
input_duration_us(const input_t *in)
{
    if (in->fmt->duration == AV_NOPTS_VALUE || in->fmt->duration <= 0) {
        return -1;
    }
    return in->fmt->duration;
}


void
input_close(input_t *in)
{
    if (in == NULL) {
        return;
    }
    avcodec_free_context(&in->dec);
    avformat_close_input(&in->fmt);
    av_packet_free(&in->pkt);
    free(in);
}
