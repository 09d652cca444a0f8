/*
 * The parser of one viewer's stream, fed with whatever a read returned:
 * the HTTP response header, then the body (close-delimited, with a
 * Content-Length, or chunked), and in the body the multipart parts:
 *
 *     --B CRLF  headers  CRLF  <Content-Length bytes>  CRLF --B ...
 *
 * A part is valid when its Content-Length bytes are followed right away
 * by the next boundary and its image passes ml_image_finish().  After an
 * invalid part the parser looks for the next "CRLF --B" and goes on.
 */

#include "mjpeg_load.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>


#define ML_HTTP_HEADER     0
#define ML_HTTP_BODY       1
#define ML_HTTP_DONE       2

#define ML_CH_SIZE         0
#define ML_CH_EXT          1
#define ML_CH_SIZE_LF      2
#define ML_CH_DATA         3
#define ML_CH_DATA_CR      4
#define ML_CH_DATA_LF      5
#define ML_CH_TRAILER      6

#define ML_MP_START        0       /* "--B" may open the body */
#define ML_MP_SCAN         1       /* a preamble, or resync: "CRLF--B" */
#define ML_MP_TAIL         2       /* the rest of a boundary line */
#define ML_MP_HEADERS      3
#define ML_MP_BODY         4
#define ML_MP_BODY_END     5       /* "CRLF--B" must follow the body */
#define ML_MP_EPILOGUE     6

/* what of a boundary line's tail has been seen */
#define ML_TAIL_NONE       0
#define ML_TAIL_DASH       1
#define ML_TAIL_PADDING    2
#define ML_TAIL_CR         3


typedef struct {
    const u_char   *data;
    size_t          len;
} ml_str_t;


static int ml_stream_no_boundary(ml_stream_t *st);
static int ml_stream_body(ml_stream_t *st, const u_char *p,
    const u_char *end);
static int ml_chunked_parse(ml_stream_t *st, const u_char *p,
    const u_char *end);
static int ml_chunked_error(ml_stream_t *st, const char *error);
static int ml_multipart_parse(ml_stream_t *st, const u_char *p,
    const u_char *end);
static int ml_multipart_tail(ml_stream_t *st, u_char c);
static void ml_part_init(ml_stream_t *st);
static int ml_part_start(ml_stream_t *st);
static int ml_part_done(ml_stream_t *st, const char *error);
static int ml_header_collect(ml_stream_t *st, const u_char **pp,
    const u_char *end);
static int ml_header_next(ml_stream_t *st, size_t *pos, ml_str_t *name,
    ml_str_t *value);
static int ml_response_parse(ml_stream_t *st);
static int ml_boundary_parse(ml_stream_t *st, ml_str_t *value);
static int ml_str_is(ml_str_t *s, const char *lit);
static int ml_media_type_is(ml_str_t *s, const char *type);
static int ml_number(ml_str_t *s, int64_t max, int64_t *out);


void
ml_stream_init(ml_stream_t *st)
{
    st->http_state = ML_HTTP_HEADER;
    st->status = 0;
    st->chunked = 0;
    st->final = 0;
    st->pending = 0;
    st->abort_next = 0;
    st->body_left = -1;
    st->ch_state = ML_CH_SIZE;
    st->ch_digits = 0;
    st->ch_size = 0;
    st->mp_state = ML_MP_START;
    st->match = 0;
    st->empty = 0;
    st->parts = 0;
    st->boundaries = 0;
    st->body_bytes = 0;
    st->delim_len = 0;
    st->error = NULL;
    st->hlen = 0;
    st->line_start = 0;
}


/*
 * Returns ML_AGAIN when it wants more bytes, ML_DONE when the stream is
 * over (st->final tells whether it ended with the final boundary), ML_STOP
 * when a handler or abort_next asked to stop, ML_ERROR with st->error.
 */

int
ml_stream_parse(ml_stream_t *st, const u_char *p, size_t n)
{
    int            rc;
    const u_char  *end;

    end = p + n;

    if (st->http_state == ML_HTTP_HEADER) {
        rc = ml_header_collect(st, &p, end);

        if (rc == ML_AGAIN) {
            return ML_AGAIN;
        }

        if (rc == ML_ERROR) {
            st->error = "response header too long";
            return ML_ERROR;
        }

        if (ml_response_parse(st) != 0) {
            return ML_ERROR;
        }

        st->http_state = ML_HTTP_BODY;

        rc = st->on_response(st->data, st);
        if (rc != ML_AGAIN) {
            return rc;
        }

        if (st->body_left == 0) {
            st->http_state = ML_HTTP_DONE;
            return ML_DONE;
        }
    }

    if (st->http_state == ML_HTTP_DONE) {
        return ML_DONE;
    }

    return ml_stream_body(st, p, end);
}


/* the connection is closed: what was not complete is invalid */

void
ml_stream_eof(ml_stream_t *st)
{
    const char  *error;

    if (st->http_state != ML_HTTP_BODY || st->final) {
        return;
    }

    st->http_state = ML_HTTP_DONE;

    if (ml_stream_no_boundary(st)) {
        return;
    }

    switch (st->mp_state) {

    case ML_MP_HEADERS:
        if (st->hlen == 0) {
            return;
        }

        ml_part_init(st);
        error = "truncated: the stream ended inside a part's headers";
        break;

    case ML_MP_BODY:
        error = "truncated: the stream ended inside a part";
        break;

    case ML_MP_BODY_END:
    case ML_MP_TAIL:

        /* all of the part is here, only the boundary after it is not */

        if (st->pending) {
            (void) ml_part_done(st, NULL);
        }

        return;

    default:
        return;
    }

    (void) ml_part_done(st, error);
}


/*
 * The viewer leaves: a part cut short by that is not invalid, but a body
 * without a single boundary line (say, another boundary than the header
 * announced) is not a stream of parts at all.
 */

void
ml_stream_cut(ml_stream_t *st)
{
    if (st->http_state == ML_HTTP_BODY && !st->final) {
        st->http_state = ML_HTTP_DONE;
        (void) ml_stream_no_boundary(st);
    }
}


static int
ml_stream_no_boundary(ml_stream_t *st)
{
    if (st->boundaries > 0 || st->body_bytes == 0) {
        return 0;
    }

    (void) snprintf(st->errbuf, sizeof(st->errbuf),
                    "no boundary in %llu bytes of body",
                    (unsigned long long) st->body_bytes);

    ml_part_init(st);
    (void) ml_part_done(st, st->errbuf);

    return 1;
}


const char *
ml_image_type_name(int type)
{
    switch (type) {

    case ML_IMAGE_JPEG:
        return "jpeg";

    case ML_IMAGE_PNG:
        return "png";

    default:
        return "other";
    }
}


static int
ml_stream_body(ml_stream_t *st, const u_char *p, const u_char *end)
{
    int     rc;
    size_t  n;

    if (st->chunked) {
        return ml_chunked_parse(st, p, end);
    }

    if (st->body_left < 0) {
        return ml_multipart_parse(st, p, end);
    }

    /* a body with a Content-Length: a stream that ends on its own */

    n = end - p;

    if ((uint64_t) st->body_left < n) {
        n = st->body_left;
    }

    st->body_left -= n;

    rc = ml_multipart_parse(st, p, p + n);

    if (rc == ML_AGAIN && st->body_left == 0) {
        ml_stream_eof(st);
        return ML_DONE;
    }

    return rc;
}


static int
ml_chunked_parse(ml_stream_t *st, const u_char *p, const u_char *end)
{
    int     rc, digit;
    size_t  n;
    u_char  c;

    while (p < end) {
        c = *p;

        switch (st->ch_state) {

        case ML_CH_SIZE:
            if (c >= '0' && c <= '9') {
                digit = c - '0';

            } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
                digit = (c | 0x20) - 'a' + 10;

            } else {
                digit = -1;
            }

            if (digit >= 0) {
                if (st->ch_size > (uint64_t) ML_PART_MAX) {
                    return ml_chunked_error(st, "chunk size too large");
                }

                st->ch_size = st->ch_size * 16 + digit;
                st->ch_digits++;
                p++;
                break;
            }

            if (st->ch_digits == 0) {
                return ml_chunked_error(st, "bad chunk size");
            }

            if (c == ';' || c == ' ' || c == '\t') {
                st->ch_state = ML_CH_EXT;

            } else if (c == '\r') {
                st->ch_state = ML_CH_SIZE_LF;

            } else if (c == '\n') {
                goto size_done;

            } else {
                return ml_chunked_error(st, "bad chunk size");
            }

            p++;
            break;

        case ML_CH_EXT:
            p = memchr(p, '\n', end - p);
            if (p == NULL) {
                return ML_AGAIN;
            }

            goto size_done;

        case ML_CH_SIZE_LF:
            if (c != '\n') {
                return ml_chunked_error(st, "bad chunk size line");
            }

        size_done:

            p++;
            st->ch_digits = 0;
            st->ch_line = 0;
            st->ch_state = (st->ch_size > 0) ? ML_CH_DATA : ML_CH_TRAILER;
            break;

        case ML_CH_DATA:
            n = end - p;

            if (st->ch_size < n) {
                n = st->ch_size;
            }

            st->ch_size -= n;

            rc = ml_multipart_parse(st, p, p + n);
            if (rc != ML_AGAIN) {
                return rc;
            }

            p += n;

            if (st->ch_size == 0) {
                st->ch_state = ML_CH_DATA_CR;
            }

            break;

        case ML_CH_DATA_CR:
            if (c == '\r') {
                st->ch_state = ML_CH_DATA_LF;
                p++;
                break;
            }

            /* fall through */

        case ML_CH_DATA_LF:
            if (c != '\n') {
                return ml_chunked_error(st, "no CRLF after chunk data");
            }

            st->ch_state = ML_CH_SIZE;
            p++;
            break;

        default: /* ML_CH_TRAILER */
            p++;

            if (c == '\r') {
                break;
            }

            if (c != '\n') {
                st->ch_line++;
                break;
            }

            if (st->ch_line > 0) {
                st->ch_line = 0;
                break;
            }

            /* the last chunk and the trailer: the body is over */

            ml_stream_eof(st);
            return ML_DONE;
        }
    }

    return ML_AGAIN;
}


static int
ml_chunked_error(ml_stream_t *st, const char *error)
{
    ml_stream_eof(st);
    st->error = error;

    return ML_ERROR;
}


static int
ml_multipart_parse(ml_stream_t *st, const u_char *p, const u_char *end)
{
    int        rc;
    size_t     n;
    uint64_t   stop;
    ml_part_t *part;

    part = &st->part;
    st->body_bytes += end - p;

    while (p < end) {

        switch (st->mp_state) {

        case ML_MP_START:

            /* the body may open with "--B", without the CRLF before it */

            if (*p == st->delim[2 + st->match]) {
                p++;

                if (2 + ++st->match == st->delim_len) {
                    st->mp_state = ML_MP_TAIL;
                    st->tail = ML_TAIL_NONE;
                }

                break;
            }

            st->match = 0;
            st->mp_state = ML_MP_SCAN;
            break;

        case ML_MP_SCAN:
            if (st->empty && *p != st->delim[st->match]) {

                /* bytes where the delimiter of an empty part should be */

                st->empty = 0;
                st->match = 0;
                ml_part_init(st);
                rc = ml_part_done(st, "a part without headers");
                if (rc != ML_AGAIN) {
                    return rc;
                }

                break;
            }

            if (st->match == 0) {
                p = memchr(p, '\r', end - p);
                if (p == NULL) {
                    return ML_AGAIN;
                }
            }

            /* '\r' is only the first byte of the delimiter */

            if (*p == st->delim[st->match]) {
                st->match++;

            } else {
                st->match = (*p == '\r') ? 1 : 0;
            }

            p++;

            if (st->match == st->delim_len) {
                st->mp_state = ML_MP_TAIL;
                st->tail = ML_TAIL_NONE;
                st->empty = 0;
            }

            break;

        case ML_MP_TAIL:
            rc = ml_multipart_tail(st, *p++);
            if (rc != ML_AGAIN) {
                return rc;
            }

            break;

        case ML_MP_HEADERS:

            /*
             * A delimiter right after the boundary line: an empty part,
             * as the module sends one when a stream ends (the boundary
             * after each frame opens the next part at once).  Not a part
             * to count; the scan takes the delimiter.
             */

            if (st->hlen == 0 && *p == '\r') {
                st->empty = 1;
                st->match = 0;
                st->mp_state = ML_MP_SCAN;
                break;
            }

            rc = ml_header_collect(st, &p, end);

            if (rc == ML_AGAIN) {
                return ML_AGAIN;
            }

            rc = ml_part_start(st);
            if (rc != ML_AGAIN) {
                return rc;
            }

            break;

        case ML_MP_BODY:
            n = end - p;

            if ((uint64_t) part->length - part->seen < n) {
                n = part->length - part->seen;
            }

            if (st->abort_next) {

                /* leave in the middle of the part, half of it read */

                stop = part->length / 2;

                if (part->seen >= stop) {
                    return ML_STOP;
                }

                if (stop - part->seen < n) {
                    n = stop - part->seen;
                }
            }

            ml_image_feed(&part->image, p, n);
            part->seen += n;
            p += n;

            if (part->seen == (uint64_t) part->length) {
                part->received = st->now;
                st->pending = 1;
                st->match = 0;
                st->mp_state = ML_MP_BODY_END;
            }

            break;

        case ML_MP_BODY_END:
            if (*p != st->delim[st->match]) {
                st->match = 0;
                st->mp_state = ML_MP_SCAN;

                rc = ml_part_done(st, "Content-Length does not match: "
                                      "no boundary right after the part");
                if (rc != ML_AGAIN) {
                    return rc;
                }

                break;
            }

            p++;

            if (++st->match == st->delim_len) {
                st->mp_state = ML_MP_TAIL;
                st->tail = ML_TAIL_NONE;
            }

            break;

        default: /* ML_MP_EPILOGUE */
            return ML_DONE;
        }
    }

    return ML_AGAIN;
}


/*
 * After "--B": "--" ends the stream, optional padding and CRLF open the
 * next part, anything else means that this was not a boundary.
 */

static int
ml_multipart_tail(ml_stream_t *st, u_char c)
{
    int  rc;

    if (c == '-' && st->tail == ML_TAIL_NONE) {
        st->tail = ML_TAIL_DASH;
        return ML_AGAIN;
    }

    if (c == '-' && st->tail == ML_TAIL_DASH) {
        st->boundaries++;
        st->final = 1;
        st->mp_state = ML_MP_EPILOGUE;

        if (st->pending) {
            rc = ml_part_done(st, NULL);
            if (rc != ML_AGAIN) {
                return rc;
            }
        }

        return ML_DONE;
    }

    if ((c == ' ' || c == '\t')
        && (st->tail == ML_TAIL_NONE || st->tail == ML_TAIL_PADDING))
    {
        st->tail = ML_TAIL_PADDING;
        return ML_AGAIN;
    }

    if (c == '\r' && st->tail != ML_TAIL_DASH && st->tail != ML_TAIL_CR) {
        st->tail = ML_TAIL_CR;
        return ML_AGAIN;
    }

    if (c == '\n' && st->tail != ML_TAIL_DASH) {
        st->boundaries++;
        st->mp_state = ML_MP_HEADERS;
        st->hlen = 0;
        st->line_start = 0;

        if (st->pending) {
            return ml_part_done(st, NULL);
        }

        return ML_AGAIN;
    }

    st->match = (c == '\r') ? 1 : 0;
    st->mp_state = ML_MP_SCAN;

    if (st->pending) {
        return ml_part_done(st, "Content-Length does not match: "
                                "no boundary right after the part");
    }

    return ML_AGAIN;
}


static void
ml_part_init(ml_stream_t *st)
{
    ml_part_t  *part;

    part = &st->part;

    part->index = st->parts++;
    part->type = ML_IMAGE_NONE;
    part->length = 0;
    part->seen = 0;
    part->timestamp = -1;
    part->received = 0;
    part->error = NULL;
    ml_image_start(&part->image, ML_IMAGE_NONE, 0);
}


/* a part's headers are in hdr */

static int
ml_part_start(ml_stream_t *st)
{
    int         rc, have_length;
    int64_t     length;
    ml_str_t    name, value;
    ml_part_t  *part;
    size_t      pos;
    char        ts[32], *last;

    part = &st->part;
    ml_part_init(st);

    if (st->hlen == ML_HEADER_MAX) {
        st->match = 0;
        st->mp_state = ML_MP_SCAN;
        return ml_part_done(st, "part headers too long");
    }

    rc = st->on_headers(st->data, st);
    if (rc != ML_AGAIN) {
        return rc;
    }

    have_length = 0;
    pos = 0;

    while (ml_header_next(st, &pos, &name, &value)) {

        if (ml_str_is(&name, "Content-Type")) {
            if (ml_media_type_is(&value, "image/jpeg")) {
                part->type = ML_IMAGE_JPEG;

            } else if (ml_media_type_is(&value, "image/png")) {
                part->type = ML_IMAGE_PNG;
            }

        } else if (ml_str_is(&name, "Content-Length")) {
            have_length = (ml_number(&value, ML_PART_MAX, &length) == 0);

            if (have_length) {
                part->length = length;
            }

        } else if (ml_str_is(&name, "X-Timestamp")
                   && value.len > 0 && value.len < sizeof(ts))
        {
            memcpy(ts, value.data, value.len);
            ts[value.len] = '\0';
            part->timestamp = strtod(ts, &last);

            if (last == ts || *last != '\0' || part->timestamp <= 0) {
                part->timestamp = -1;
            }
        }
    }

    if (!have_length) {
        st->match = 0;
        st->mp_state = ML_MP_SCAN;
        return ml_part_done(st, "no valid Content-Length");
    }

    ml_image_start(&part->image, part->type, part->length);

    st->mp_state = ML_MP_BODY;

    if (part->length == 0) {
        part->received = st->now;
        st->pending = 1;
        st->match = 0;
        st->mp_state = ML_MP_BODY_END;
    }

    return ML_AGAIN;
}


static int
ml_part_done(ml_stream_t *st, const char *error)
{
    ml_part_t  *part;

    part = &st->part;
    st->pending = 0;

    if (error == NULL) {
        error = ml_image_finish(&part->image);
    }

    part->error = error;

    return st->on_part(st->data, st, part);
}


/*
 * Collects a header block into hdr up to and including its empty line.
 * Returns ML_DONE with *pp after the block, ML_AGAIN, or ML_ERROR when it
 * does not fit (then hlen is ML_HEADER_MAX).
 */

static int
ml_header_collect(ml_stream_t *st, const u_char **pp, const u_char *end)
{
    size_t         len;
    const u_char  *p;

    for (p = *pp; p < end; p++) {

        if (st->hlen == ML_HEADER_MAX) {
            *pp = p;
            return ML_ERROR;
        }

        st->hdr[st->hlen++] = *p;

        if (*p != '\n') {
            continue;
        }

        len = st->hlen - st->line_start;

        if (len == 1 || (len == 2 && st->hdr[st->hlen - 2] == '\r')) {
            *pp = p + 1;
            return ML_DONE;
        }

        st->line_start = st->hlen;
    }

    *pp = p;

    return ML_AGAIN;
}


/*
 * The next "name: value" line of the block in hdr from *pos on, the value
 * without the whitespace around it; 0 at the end of the block.  Lines
 * without a colon (the status line) are skipped.
 */

static int
ml_header_next(ml_stream_t *st, size_t *pos, ml_str_t *name,
    ml_str_t *value)
{
    u_char  *line, *last, *colon;

    while (*pos < st->hlen) {
        line = st->hdr + *pos;
        last = memchr(line, '\n', st->hlen - *pos);

        if (last == NULL) {
            return 0;
        }

        *pos = last + 1 - st->hdr;

        if (last > line && last[-1] == '\r') {
            last--;
        }

        if (last == line) {
            return 0;
        }

        colon = memchr(line, ':', last - line);
        if (colon == NULL) {
            continue;
        }

        name->data = line;
        name->len = colon - line;

        for (colon++; colon < last && (*colon == ' ' || *colon == '\t');
             colon++)
        {
            /* void */
        }

        while (last > colon && (last[-1] == ' ' || last[-1] == '\t')) {
            last--;
        }

        value->data = colon;
        value->len = last - colon;

        return 1;
    }

    return 0;
}


static int
ml_response_parse(ml_stream_t *st)
{
    int        have_type;
    size_t     pos;
    int64_t    length;
    ml_str_t   name, value;
    u_char    *h;

    h = st->hdr;

    if (st->hlen < 13 || memcmp(h, "HTTP/1.", 7) != 0 || h[8] != ' '
        || h[9] < '1' || h[9] > '5' || h[10] < '0' || h[10] > '9'
        || h[11] < '0' || h[11] > '9')
    {
        st->error = "not an HTTP/1.x response";
        return -1;
    }

    st->status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');

    if (st->status != 200) {
        (void) snprintf(st->errbuf, sizeof(st->errbuf), "HTTP status %d",
                        st->status);
        st->error = st->errbuf;
        return -1;
    }

    have_type = 0;
    pos = 0;

    while (ml_header_next(st, &pos, &name, &value)) {

        if (ml_str_is(&name, "Content-Type")) {
            if (ml_boundary_parse(st, &value) != 0) {
                return -1;
            }

            have_type = 1;

        } else if (ml_str_is(&name, "Transfer-Encoding")) {
            if (!ml_str_is(&value, "chunked")) {
                st->error = "unsupported Transfer-Encoding";
                return -1;
            }

            st->chunked = 1;

        } else if (ml_str_is(&name, "Content-Length")) {
            if (ml_number(&value, INT64_MAX, &length) != 0) {
                st->error = "bad Content-Length in the response";
                return -1;
            }

            st->body_left = length;
        }
    }

    if (!have_type) {
        st->error = "no Content-Type in the response";
        return -1;
    }

    if (st->chunked) {
        st->body_left = -1;
    }

    return 0;
}


/* multipart/x-mixed-replace; boundary=B  (B may be quoted) */

static int
ml_boundary_parse(ml_stream_t *st, ml_str_t *value)
{
    size_t          i;
    ml_str_t        param, b;
    const u_char   *p, *end;

    if (!ml_media_type_is(value, "multipart/x-mixed-replace")) {
        st->error = "Content-Type is not multipart/x-mixed-replace";
        return -1;
    }

    p = memchr(value->data, ';', value->len);
    end = value->data + value->len;
    b.len = 0;

    while (p != NULL && p < end) {
        for (p++; p < end && (*p == ' ' || *p == '\t'); p++) {
            /* void */
        }

        param.data = p;

        while (p < end && *p != '=' && *p != ';') {
            p++;
        }

        param.len = p - param.data;

        if (p == end || *p == ';') {
            continue;
        }

        p++;

        if (p < end && *p == '"') {
            b.data = ++p;

            while (p < end && *p != '"') {
                p++;
            }

            b.len = p - b.data;

            if (p < end) {
                p++;
            }

        } else {
            b.data = p;

            while (p < end && *p != ';' && *p != ' ' && *p != '\t') {
                p++;
            }

            b.len = p - b.data;
        }

        if (ml_str_is(&param, "boundary")) {
            break;
        }

        b.len = 0;
        p = memchr(p, ';', end - p);
    }

    if (b.len == 0 || b.len > ML_BOUNDARY_MAX) {
        st->error = "no usable boundary in the Content-Type";
        return -1;
    }

    for (i = 0; i < b.len; i++) {
        if (b.data[i] < 0x20 || b.data[i] > 0x7e) {
            st->error = "bad character in the boundary";
            return -1;
        }
    }

    memcpy(st->delim, "\r\n--", 4);
    memcpy(st->delim + 4, b.data, b.len);
    st->delim_len = 4 + b.len;

    return 0;
}


static int
ml_str_is(ml_str_t *s, const char *lit)
{
    size_t  len;

    len = strlen(lit);

    return s->len == len && strncasecmp((const char *) s->data, lit, len) == 0;
}


/* "type/subtype" followed by the end, ';' or whitespace */

static int
ml_media_type_is(ml_str_t *s, const char *type)
{
    size_t  len;

    len = strlen(type);

    if (s->len < len || strncasecmp((const char *) s->data, type, len) != 0) {
        return 0;
    }

    return s->len == len || s->data[len] == ';' || s->data[len] == ' '
           || s->data[len] == '\t';
}


static int
ml_number(ml_str_t *s, int64_t max, int64_t *out)
{
    size_t   i;
    int64_t  n;

    if (s->len == 0) {
        return -1;
    }

    n = 0;

    for (i = 0; i < s->len; i++) {
        if (s->data[i] < '0' || s->data[i] > '9'
            || n > (max - (s->data[i] - '0')) / 10)
        {
            return -1;
        }

        n = n * 10 + (s->data[i] - '0');
    }

    *out = n;

    return 0;
}
