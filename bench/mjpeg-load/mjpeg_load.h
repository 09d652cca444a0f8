/*
 * mjpeg-load: viewers of a multipart/x-mixed-replace stream, for benchmarks
 * and tests of ngx_http_kafka_stream_module.  Shared declarations.
 */

#ifndef _MJPEG_LOAD_H_INCLUDED_
#define _MJPEG_LOAD_H_INCLUDED_


#define _GNU_SOURCE

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>


#define ML_AGAIN           0       /* parser: wants more bytes */
#define ML_DONE            1       /* parser: the stream is over */
#define ML_STOP            2       /* parser: the caller asked to stop */
#define ML_ERROR          -1

#define ML_HEADER_MAX      8192    /* a response's or a part's headers */
#define ML_BOUNDARY_MAX    70      /* RFC 2046 */
#define ML_PART_MAX        (256 * 1024 * 1024)

#define ML_IMAGE_NONE      0
#define ML_IMAGE_JPEG      1
#define ML_IMAGE_PNG       2


/* image.c: validates a part's bytes as they arrive */

typedef struct {
    int             type;
    int             state;
    uint64_t        length;        /* the part's Content-Length */
    uint64_t        pos;           /* bytes fed so far */
    uint32_t        need;          /* bytes left in the current field */
    uint32_t        crc;
    uint32_t        chunks;
    u_char          field[8];      /* a chunk header or CRC being read */
    u_char          head[2];
    u_char          tail[2];
    const char     *error;
    char            errbuf[96];
} ml_image_t;


void ml_image_start(ml_image_t *img, int type, uint64_t length);
void ml_image_feed(ml_image_t *img, const u_char *p, size_t n);
const char *ml_image_finish(ml_image_t *img);


/* stream.c: HTTP response, chunked coding and multipart parts */

typedef struct {
    uint64_t        index;         /* 0 for the first part of a stream */
    int             type;          /* ML_IMAGE_* */
    int64_t         length;        /* Content-Length */
    uint64_t        seen;          /* body bytes so far */
    double          timestamp;     /* X-Timestamp, or -1 */
    double          received;      /* wall clock at its last byte */
    const char     *error;         /* NULL while the part is valid */
    ml_image_t      image;
} ml_part_t;


typedef struct ml_stream_s  ml_stream_t;

typedef int (*ml_stream_pt)(void *data, ml_stream_t *st);
typedef int (*ml_part_pt)(void *data, ml_stream_t *st, ml_part_t *part);

struct ml_stream_s {
    ml_stream_pt    on_response;   /* the response header was accepted */
    ml_stream_pt    on_headers;    /* a part's headers are in hdr */
    ml_part_pt      on_part;       /* a part is complete (or invalid) */
    void           *data;

    double          now;           /* wall clock of the bytes being fed */

    int             http_state;
    int             status;
    unsigned        chunked:1;
    unsigned        final:1;       /* "--boundary--" was seen */
    unsigned        pending:1;     /* part read, its boundary not yet */
    unsigned        abort_next:1;  /* stop in the middle of a part */
    int64_t         body_left;     /* Content-Length left, or -1 */

    int             ch_state;
    unsigned        ch_digits;
    uint64_t        ch_size;
    size_t          ch_line;

    int             mp_state;
    size_t          match;         /* bytes of delim matched */
    unsigned        empty:1;       /* a part opened with no header yet */
    unsigned        tail;          /* what follows "--boundary" */
    uint64_t        parts;
    uint64_t        boundaries;    /* boundary lines seen */
    uint64_t        body_bytes;
    ml_part_t       part;

    size_t          delim_len;
    u_char          delim[ML_BOUNDARY_MAX + 5];   /* "\r\n--" boundary */

    const char     *error;
    char            errbuf[128];

    size_t          line_start;
    size_t          hlen;
    u_char          hdr[ML_HEADER_MAX];
};


void ml_stream_init(ml_stream_t *st);
int ml_stream_parse(ml_stream_t *st, const u_char *p, size_t n);
void ml_stream_eof(ml_stream_t *st);
void ml_stream_cut(ml_stream_t *st);
const char *ml_image_type_name(int type);


/* loop.c: the viewers and the event loop */

#define ML_LAT_BUCKET      0.1     /* ms */
#define ML_LAT_BUCKETS     1000000 /* up to 100 s */


typedef struct {
    /* options */
    const char     *url;
    char           *host;
    char           *port;
    char           *path;
    unsigned        viewers;
    unsigned        slow;
    double          slow_rate;     /* bytes per second */
    double          duration;
    double          ramp;          /* connections per second; 0: at once */
    int64_t         expect_frames; /* -1: not checked */
    uint64_t        max_frames;    /* per connection; 0: no limit */
    unsigned        abort_mid_frame:1;
    unsigned        json:1;
    unsigned        verbose:1;
    unsigned        cycles;
    const char     *per_viewer;

    struct sockaddr_storage  addr;
    socklen_t       addrlen;
    char           *request;
    size_t          request_len;
} ml_conf_t;


typedef struct ml_run_s  ml_run_t;

typedef struct {
    ml_run_t       *run;
    unsigned        id;
    int             fd;
    int             state;
    unsigned        slow:1;
    unsigned        paused:1;      /* slow, out of tokens, not in epoll */
    unsigned        responded:1;

    double          conn_start;    /* monotonic */
    double          responded_at;
    double          active;        /* seconds with a stream, all cycles */
    size_t          sent;
    uint64_t        conn_frames;

    double          tokens;        /* slow viewers: bytes they may read */
    double          refilled;

    /* statistics over all of the viewer's connections */
    unsigned        connects;
    unsigned        connected;
    unsigned        failed;
    unsigned        early;
    unsigned        ended;
    unsigned        closed;        /* after --max-frames */
    unsigned        aborted;
    uint64_t        frames;
    uint64_t        invalid;
    uint64_t        untimed;
    uint64_t        bytes;
    double          first_frame;   /* ms, first connection; -1: none */
    double          lat_min;
    double          lat_max;
    double          lat_sum;
    uint64_t        lat_n;
    int             status;
    char            error[256];

    ml_stream_t     stream;
} ml_viewer_t;


struct ml_run_s {
    ml_conf_t      *conf;
    ml_viewer_t    *viewers;
    int             ep;
    double          start;         /* monotonic */
    double          now;
    double          elapsed;
    unsigned        started;
    unsigned        running;       /* viewers not yet done */
    unsigned        npaused;
    ml_viewer_t   **retry;         /* reconnects for --cycles */
    unsigned        nretry;
    unsigned        not_started;
    unsigned        messages;
    unsigned        suppressed;

    /* latency = receive time - X-Timestamp, in ML_LAT_BUCKET steps */
    uint32_t       *lat_hist;
    uint64_t        lat_n;
    uint64_t        lat_over;
    uint64_t        lat_negative;
    double          lat_max;

    /* time to first frame of each connection, ms */
    double         *first;
    size_t          nfirst;
    size_t          first_cap;

    u_char          buf[65536];
};


void ml_run(ml_run_t *run);
double ml_mono(void);
double ml_wall(void);
void ml_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2),
    noreturn));


/* report.c */

int ml_report(ml_run_t *run);


#endif /* _MJPEG_LOAD_H_INCLUDED_ */
