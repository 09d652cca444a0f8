
/*
 * The module's pure functions (see ngx_http_kafka_stream_parse.h).
 */


#define _GNU_SOURCE

#include <stdio.h>
#include <string.h>

#include "ngx_http_kafka_stream_parse.h"


static const unsigned char *ngx_http_kafka_stream_find(
    const unsigned char *p, const unsigned char *last, const char *s);


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


static const unsigned char *
ngx_http_kafka_stream_find(const unsigned char *p, const unsigned char *last,
    const char *s)
{
    if (p >= last) {
        return NULL;
    }

    return memmem(p, last - p, s, strlen(s));
}
