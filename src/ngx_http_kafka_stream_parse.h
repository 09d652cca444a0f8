
/*
 * The module's pure functions: they look at bytes from Kafka, from
 * librdkafka and from the configuration, and depend on nothing else, so
 * that the fuzz targets in fuzz/ can drive them alone.
 */


#ifndef _NGX_HTTP_KAFKA_STREAM_PARSE_H_INCLUDED_
#define _NGX_HTTP_KAFKA_STREAM_PARSE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define NGX_HTTP_KAFKA_STREAM_NOT_IMAGE  0
#define NGX_HTTP_KAFKA_STREAM_PNG        1
#define NGX_HTTP_KAFKA_STREAM_JPEG       2

/* "Content-Type: image/jpeg\r\nContent-Length: N\r\nX-Timestamp: T\r\n\r\n" */
#define NGX_HTTP_KAFKA_STREAM_PART_HEADER_MAX  128

/* "9999-12-31T23:59:59.999Z": the latest time the parser accepts */
#define NGX_HTTP_KAFKA_STREAM_TIME_MAX         253402300799999LL
#define NGX_HTTP_KAFKA_STREAM_TIME_LEN         24


typedef void (*ngx_http_kafka_stream_partition_pt)(void *data,
    const unsigned char *topic, size_t len, long partition);


int ngx_http_kafka_stream_sniff(const unsigned char *p, size_t len);
const char *ngx_http_kafka_stream_type_name(int type);
size_t ngx_http_kafka_stream_part_header(unsigned char *buf, int type,
    size_t len, int64_t timestamp);
size_t ngx_http_kafka_stream_escape_json(unsigned char *dst,
    const unsigned char *src, size_t len);
unsigned ngx_http_kafka_stream_scan_stats(const unsigned char *json,
    size_t len, ngx_http_kafka_stream_partition_pt handler, void *data);
size_t ngx_http_kafka_stream_escape_key(unsigned char *dst,
    const unsigned char *src, size_t len);
int ngx_http_kafka_stream_unescape_key(unsigned char *dst,
    const unsigned char *src, size_t len, size_t *n);
int ngx_http_kafka_stream_valid_topic(const unsigned char *p, size_t len);
int ngx_http_kafka_stream_valid_boundary(const unsigned char *p, size_t len);
int ngx_http_kafka_stream_parse_time(const unsigned char *p, size_t len,
    int64_t now, int64_t *ms);
size_t ngx_http_kafka_stream_format_time(unsigned char *buf, int64_t ms);
int ngx_http_kafka_stream_parse_number(const unsigned char *p, size_t len,
    int64_t max, int64_t *n);
int ngx_http_kafka_stream_parse_decimal(const unsigned char *p, size_t len,
    int64_t max, int64_t *milli);


#endif /* _NGX_HTTP_KAFKA_STREAM_PARSE_H_INCLUDED_ */
