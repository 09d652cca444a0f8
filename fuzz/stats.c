
/*
 * libFuzzer target: the scanner of librdkafka's statistics JSON.  Every
 * topic name it reports must lie inside the input, every partition must
 * be a plain non-negative number.
 */


#include <stdlib.h>

#include "ngx_http_kafka_stream_parse.h"


typedef struct {
    const unsigned char  *start;
    const unsigned char  *end;
} fuzz_input_t;


static void
fuzz_partition(void *data, const unsigned char *topic, size_t len,
    long partition)
{
    fuzz_input_t  *in = data;

    if (topic < in->start || topic + len > in->end || partition < 0) {
        abort();
    }
}


int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    fuzz_input_t  in;

    in.start = data;
    in.end = data + size;

    (void) ngx_http_kafka_stream_scan_stats(data, size, fuzz_partition, &in);

    return 0;
}
