
/*
 * The module's pure functions (see ngx_http_kafka_stream_parse.h).  The
 * bottom of its layers, without nginx: the fuzz targets in fuzz/ build
 * this file alone.
 */


#define _GNU_SOURCE

#include <stdio.h>
#include <string.h>

#include "ngx_http_kafka_stream_parse.h"


static const unsigned char *ngx_http_kafka_stream_find(
    const unsigned char *p, const unsigned char *last, const char *s);
static int ngx_http_kafka_stream_rfc3339(const unsigned char *p, size_t len,
    int64_t *ms);
static int ngx_http_kafka_stream_digits(const unsigned char *p, size_t n);
static int64_t ngx_http_kafka_stream_days(int64_t y, int m, int d);


/*
 * Accepts only what a browser can paint: a PNG from its signature and IHDR
 * to its IEND chunk, or a JPEG from SOI to EOI.  Truncated images and other
 * bytes are refused.
 */

int
ngx_http_kafka_stream_sniff(const unsigned char *p, size_t len)
{
    static const unsigned char  png_head[] =
        "\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR";
    static const unsigned char  png_iend[] =
        "\0\0\0\0IEND\xae\x42\x60\x82";

    if (len >= 8 + 25 + 12
        && memcmp(p, png_head, sizeof(png_head) - 1) == 0
        && memcmp(p + len - 12, png_iend, 12) == 0)
    {
        return NGX_HTTP_KAFKA_STREAM_PNG;
    }

    if (len >= 4
        && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff
        && p[len - 2] == 0xff && p[len - 1] == 0xd9)
    {
        return NGX_HTTP_KAFKA_STREAM_JPEG;
    }

    return NGX_HTTP_KAFKA_STREAM_NOT_IMAGE;
}


const char *
ngx_http_kafka_stream_type_name(int type)
{
    return (type == NGX_HTTP_KAFKA_STREAM_PNG) ? "image/png" : "image/jpeg";
}


/*
 * A part's header lines: only the type, a length and a time, all made
 * here, so no byte of a message can reach them.  "buf" holds at least
 * NGX_HTTP_KAFKA_STREAM_PART_HEADER_MAX bytes.
 */

size_t
ngx_http_kafka_stream_part_header(unsigned char *buf, int type, size_t len,
    int64_t timestamp)
{
    int  n;

    if (timestamp < 0) {
        timestamp = 0;
    }

    n = snprintf((char *) buf, NGX_HTTP_KAFKA_STREAM_PART_HEADER_MAX,
                 "Content-Type: %s\r\nContent-Length: %zu\r\n"
                 "X-Timestamp: %lld.%03d\r\n\r\n",
                 ngx_http_kafka_stream_type_name(type), len,
                 (long long) (timestamp / 1000), (int) (timestamp % 1000));

    return (n > 0) ? (size_t) n : 0;
}


/* every byte that is not printable ASCII leaves as \u00XX: 6 bytes at most */

size_t
ngx_http_kafka_stream_escape_json(unsigned char *dst,
    const unsigned char *src, size_t len)
{
    unsigned char   ch, *start;
    static char     hex[] = "0123456789abcdef";

    start = dst;

    while (len--) {
        ch = *src++;

        if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\') {
            *dst++ = '\\';
            *dst++ = 'u';
            *dst++ = '0';
            *dst++ = '0';
            *dst++ = hex[ch >> 4];
            *dst++ = hex[ch & 0xf];
            continue;
        }

        *dst++ = ch;
    }

    return dst - start;
}


/*
 * A message key in a part header of a wall (X-Key): every byte but the
 * unreserved characters of URIs (A-Z a-z 0-9 - . _ ~) leaves as %XX, 3
 * bytes at most.  Whatever the key holds, the value is printable ASCII
 * without space, quote or comma, and decodeURIComponent() and ?keys=
 * take it back as it is.
 */

size_t
ngx_http_kafka_stream_escape_key(unsigned char *dst, const unsigned char *src,
    size_t len)
{
    unsigned char   ch, *start;
    static char     hex[] = "0123456789ABCDEF";

    start = dst;

    while (len--) {
        ch = *src++;

        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z')
            || (ch >= '0' && ch <= '9')
            || ch == '-' || ch == '.' || ch == '_' || ch == '~')
        {
            *dst++ = ch;
            continue;
        }

        *dst++ = '%';
        *dst++ = hex[ch >> 4];
        *dst++ = hex[ch & 0xf];
    }

    return dst - start;
}


static int
ngx_http_kafka_stream_hex(unsigned char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }

    ch |= 0x20;

    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }

    return -1;
}


/*
 * A key of ?keys=, percent-decoded into "dst" (len bytes at most), its
 * length in "n": 0, or -1 for a "%" without two hex digits after it.
 * Every other byte stands for itself, "+" too.
 */

int
ngx_http_kafka_stream_unescape_key(unsigned char *dst,
    const unsigned char *src, size_t len, size_t *n)
{
    int             hi, lo;
    unsigned char  *start;

    start = dst;

    while (len) {
        if (*src != '%') {
            *dst++ = *src++;
            len--;
            continue;
        }

        if (len < 3) {
            return -1;
        }

        hi = ngx_http_kafka_stream_hex(src[1]);
        lo = ngx_http_kafka_stream_hex(src[2]);

        if (hi < 0 || lo < 0) {
            return -1;
        }

        *dst++ = (unsigned char) (hi << 4 | lo);
        src += 3;
        len -= 3;
    }

    *n = dst - start;

    return 0;
}


/*
 * The statistics librdkafka emits every statistics.interval.ms tell,
 * without any blocking metadata call, which brokers are up and which
 * partitions each topic has.  Only those fields are read, by scanning:
 * "state":"UP" in the brokers' part, and in the topics' part each
 * "topic":"name" followed by its partitions' "partition":N entries that
 * are not "unknown".  Returns the brokers up.
 */

unsigned
ngx_http_kafka_stream_scan_stats(const unsigned char *json, size_t len,
    ngx_http_kafka_stream_partition_pt handler, void *data)
{
    long                  part;
    unsigned              up;
    const unsigned char  *p, *last, *topics, *name, *end, *next, *window;

    last = json + len;

    topics = ngx_http_kafka_stream_find(json, last, "\"topics\":{");
    if (topics == NULL) {
        return 0;
    }

    up = 0;

    for (p = json;
         (p = ngx_http_kafka_stream_find(p, topics, "\"state\":\"UP\""));
         p += sizeof("\"state\":\"UP\"") - 1)
    {
        up++;
    }

    p = topics;

    while ((p = ngx_http_kafka_stream_find(p, last, "\"topic\":\"")) != NULL) {
        name = p + sizeof("\"topic\":\"") - 1;

        end = memchr(name, '"', last - name);
        if (end == NULL) {
            break;
        }

        next = ngx_http_kafka_stream_find(end, last, "\"topic\":\"");
        if (next == NULL) {
            next = last;
        }

        p = end;

        while ((p = ngx_http_kafka_stream_find(p, next, "\"partition\":"))
               != NULL)
        {
            p += sizeof("\"partition\":") - 1;

            if (p == next || *p < '0' || *p > '9') {
                continue;
            }

            part = 0;

            while (p < next && *p >= '0' && *p <= '9' && part < 1000000) {
                part = part * 10 + (*p++ - '0');
            }

            window = (next - p > 128) ? p + 128 : next;

            if (ngx_http_kafka_stream_find(p, window, "\"unknown\":false")) {
                handler(data, name, end - name, part);
            }
        }

        p = next;
    }

    return up;
}


/* Kafka's legal topic names */

int
ngx_http_kafka_stream_valid_topic(const unsigned char *p, size_t len)
{
    size_t  i;

    if (len == 0 || len > 249) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z')
              || (p[i] >= '0' && p[i] <= '9')
              || p[i] == '.' || p[i] == '_' || p[i] == '-'))
        {
            return 0;
        }
    }

    return 1;
}


/* RFC 2046 boundary characters, without the space */

int
ngx_http_kafka_stream_valid_boundary(const unsigned char *p, size_t len)
{
    size_t  i;

    if (len == 0 || len > 70) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z')
              || (p[i] >= '0' && p[i] <= '9')
              || (p[i] != '\0' && strchr("'()+_,-./:=?", p[i]) != NULL)))
        {
            return 0;
        }
    }

    return 1;
}


/*
 * A point in time from a request, in milliseconds since the epoch: unix
 * seconds ("1700000000", "1700000000.25"), seconds before "now" ("-90"),
 * or an RFC 3339 date and time ("2024-05-01T12:00:00.5+02:00").  Times
 * before 1970 or after 9999 are refused.  Returns 0, or -1 for anything
 * else.
 */

int
ngx_http_kafka_stream_parse_time(const unsigned char *p, size_t len,
    int64_t now, int64_t *ms)
{
    size_t   i;
    int64_t  ago;

    if (len == 0) {
        return -1;
    }

    if (p[0] == '-') {
        if (ngx_http_kafka_stream_parse_decimal(p + 1, len - 1,
                                                NGX_HTTP_KAFKA_STREAM_TIME_MAX,
                                                &ago)
            != 0
            || ago > now)
        {
            return -1;
        }

        *ms = now - ago;
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (p[i] != '.' && (p[i] < '0' || p[i] > '9')) {
            return ngx_http_kafka_stream_rfc3339(p, len, ms);
        }
    }

    return ngx_http_kafka_stream_parse_decimal(p, len,
                                               NGX_HTTP_KAFKA_STREAM_TIME_MAX,
                                               ms);
}


/*
 * RFC 3339, section 5.6: "T" may be "t" or a space, "Z" may be "z"; the
 * fraction of a second may have any number of digits, of which the
 * milliseconds are kept; a leap second (:60) counts as the next second.
 */

static int
ngx_http_kafka_stream_rfc3339(const unsigned char *p, size_t len, int64_t *ms)
{
    int                   year, month, day, hour, min, sec, oh, om, frac,
                          scale;
    int64_t               t, offset;
    const unsigned char  *last;

    static const int  mdays[] = { 31, 29, 31, 30, 31, 30,
                                  31, 31, 30, 31, 30, 31 };

    last = p + len;

    if (len < sizeof("YYYY-MM-DDTHH:MM:SSZ") - 1
        || p[4] != '-' || p[7] != '-'
        || (p[10] != 'T' && p[10] != 't' && p[10] != ' ')
        || p[13] != ':' || p[16] != ':')
    {
        return -1;
    }

    year = ngx_http_kafka_stream_digits(p, 4);
    month = ngx_http_kafka_stream_digits(p + 5, 2);
    day = ngx_http_kafka_stream_digits(p + 8, 2);
    hour = ngx_http_kafka_stream_digits(p + 11, 2);
    min = ngx_http_kafka_stream_digits(p + 14, 2);
    sec = ngx_http_kafka_stream_digits(p + 17, 2);

    if (year < 1970 || month < 1 || month > 12 || day < 1
        || day > mdays[month - 1]
        || (month == 2 && day == 29
            && (year % 4 != 0 || (year % 100 == 0 && year % 400 != 0)))
        || hour < 0 || hour > 23 || min < 0 || min > 59
        || sec < 0 || sec > 60)
    {
        return -1;
    }

    p += 19;
    frac = 0;

    if (*p == '.') {
        p++;

        if (p == last || *p < '0' || *p > '9') {
            return -1;
        }

        for (scale = 100; p < last && *p >= '0' && *p <= '9'; p++) {
            frac += (*p - '0') * scale;
            scale /= 10;
        }
    }

    if (p == last) {
        return -1;
    }

    if ((*p == 'Z' || *p == 'z') && last - p == 1) {
        offset = 0;

    } else if ((*p == '+' || *p == '-') && last - p == 6 && p[3] == ':') {
        oh = ngx_http_kafka_stream_digits(p + 1, 2);
        om = ngx_http_kafka_stream_digits(p + 4, 2);

        if (oh < 0 || oh > 23 || om < 0 || om > 59) {
            return -1;
        }

        offset = (oh * 60 + om) * 60;

        if (*p == '-') {
            offset = -offset;
        }

    } else {
        return -1;
    }

    t = ngx_http_kafka_stream_days(year, month, day) * 86400
        + hour * 3600 + min * 60 + sec - offset;

    if (t < 0) {
        return -1;
    }

    t = t * 1000 + frac;

    if (t > NGX_HTTP_KAFKA_STREAM_TIME_MAX) {
        return -1;
    }

    *ms = t;

    return 0;
}


/* n decimal digits as a number, or -1 */

static int
ngx_http_kafka_stream_digits(const unsigned char *p, size_t n)
{
    int  v;

    for (v = 0; n; n--, p++) {
        if (*p < '0' || *p > '9') {
            return -1;
        }

        v = v * 10 + (*p - '0');
    }

    return v;
}


/* days from 1970-01-01 to a date of the proleptic Gregorian calendar */

static int64_t
ngx_http_kafka_stream_days(int64_t y, int m, int d)
{
    int64_t  era, yoe, doy;

    /* the year starts in March, so that February's length comes last */

    if (m <= 2) {
        y--;
        m += 12;
    }

    era = y / 400;
    yoe = y - era * 400;
    doy = (153 * (m - 3) + 2) / 5 + d - 1;

    return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}


/*
 * "YYYY-MM-DDTHH:MM:SS.mmmZ": exactly NGX_HTTP_KAFKA_STREAM_TIME_LEN bytes
 * into buf, without a terminating NUL (snprintf writes one: it goes to a
 * buffer of our own)
 */

size_t
ngx_http_kafka_stream_format_time(unsigned char *buf, int64_t ms)
{
    int      n;
    int64_t  days, secs, era, doe, yoe, doy, mp, y, m, d;
    char     text[NGX_HTTP_KAFKA_STREAM_TIME_LEN + 1];

    if (ms < 0) {
        ms = 0;
    }

    if (ms > NGX_HTTP_KAFKA_STREAM_TIME_MAX) {
        ms = NGX_HTTP_KAFKA_STREAM_TIME_MAX;
    }

    days = ms / 86400000;
    secs = ms / 1000 % 86400;

    /* the inverse of ngx_http_kafka_stream_days() */

    days += 719468;
    era = days / 146097;
    doe = days - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = (mp < 10) ? mp + 3 : mp - 9;
    y = yoe + era * 400 + (m <= 2);

    n = snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                 (int) y, (int) m, (int) d, (int) (secs / 3600),
                 (int) (secs / 60 % 60), (int) (secs % 60),
                 (int) (ms % 1000));

    if (n != NGX_HTTP_KAFKA_STREAM_TIME_LEN) {
        return 0;
    }

    memcpy(buf, text, NGX_HTTP_KAFKA_STREAM_TIME_LEN);

    return NGX_HTTP_KAFKA_STREAM_TIME_LEN;
}


/* a plain decimal number up to "max": digits only, no sign */

int
ngx_http_kafka_stream_parse_number(const unsigned char *p, size_t len,
    int64_t max, int64_t *n)
{
    int64_t  v;

    if (len == 0) {
        return -1;
    }

    for (v = 0; len; len--, p++) {
        if (*p < '0' || *p > '9' || v > (max - (*p - '0')) / 10) {
            return -1;
        }

        v = v * 10 + (*p - '0');
    }

    *n = v;

    return 0;
}


/*
 * "2", "0.25", "1700000000.5": a number with an optional fraction, in
 * thousandths (further digits are dropped), up to "max" thousandths.
 */

int
ngx_http_kafka_stream_parse_decimal(const unsigned char *p, size_t len,
    int64_t max, int64_t *milli)
{
    int64_t               v, scale;
    const unsigned char  *last, *dot;

    last = p + len;

    dot = memchr(p, '.', len);
    if (dot == NULL) {
        dot = last;
    }

    if (ngx_http_kafka_stream_parse_number(p, dot - p, max / 1000, &v) != 0)
    {
        return -1;
    }

    v *= 1000;

    if (dot != last) {
        p = dot + 1;

        if (p == last) {
            return -1;
        }

        for (scale = 100; p < last; p++) {
            if (*p < '0' || *p > '9') {
                return -1;
            }

            v += (*p - '0') * scale;
            scale /= 10;
        }
    }

    if (v > max) {
        return -1;
    }

    *milli = v;

    return 0;
}


static const unsigned char *
ngx_http_kafka_stream_find(const unsigned char *p, const unsigned char *last,
    const char *s)
{
    if (p >= last) {
        return NULL;
    }

    return memmem(p, last - p, s, strlen(s));
}
