/*
 * scale-time: the CPU time of the module's image pipeline
 * (src/ngx_http_kafka_stream_scale.c) on image files, for
 * bench/rendition-speed.
 *
 *   scale-time -w WIDTH [-q QUALITY] [-r REPEAT] [-o DIR] FILE...
 *
 * Reads every file first, then scales each REPEAT times (default 1) in
 * this one thread, and prints one line:
 *
 *   frames N cpu_us_per_frame U bytes_per_frame B size WxH
 *
 * CPU time is this process's (CLOCK_PROCESS_CPUTIME_ID), reading excluded.
 * With -o, the picture made of each file is written to DIR/NNNN.jpg.
 * Exits 1 if any file could not be scaled, naming it and why.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ngx_http_kafka_stream_parse.h"
#include "ngx_http_kafka_stream_scale.h"


typedef struct {
    const char     *name;
    unsigned char  *data;
    size_t          len;
    int             type;
} image_t;


static int
read_file(const char *name, image_t *im)
{
    FILE    *f;
    long     n;

    f = fopen(name, "rb");
    if (f == NULL) {
        fprintf(stderr, "scale-time: %s: %s\n", name, strerror(errno));
        return -1;
    }

    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) <= 0
        || fseek(f, 0, SEEK_SET) != 0)
    {
        fprintf(stderr, "scale-time: %s: cannot size it\n", name);
        fclose(f);
        return -1;
    }

    im->name = name;
    im->len = (size_t) n;
    im->data = malloc(im->len);

    if (im->data == NULL || fread(im->data, 1, im->len, f) != im->len) {
        fprintf(stderr, "scale-time: %s: cannot read it\n", name);
        fclose(f);
        return -1;
    }

    fclose(f);

    im->type = ngx_http_kafka_stream_sniff(im->data, im->len);
    if (im->type == NGX_HTTP_KAFKA_STREAM_NOT_IMAGE) {
        fprintf(stderr, "scale-time: %s: neither PNG nor JPEG\n", name);
        return -1;
    }

    return 0;
}


static double
cpu_seconds(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static int
usage(void)
{
    fprintf(stderr, "usage: scale-time -w WIDTH [-q QUALITY] [-r REPEAT] "
                    "[-o DIR] FILE...\n");
    return 2;
}


int
main(int argc, char **argv)
{
    int                            c, width, quality, repeat, i, r, n;
    char                           path[4096];
    FILE                          *f;
    double                         start, cpu, bytes;
    image_t                       *images;
    const char                    *dir;
    ngx_http_kafka_stream_scale_t  s;

    width = 0;
    quality = 75;
    repeat = 1;
    dir = NULL;

    while ((c = getopt(argc, argv, "w:q:r:o:")) != -1) {
        switch (c) {
        case 'w': width = atoi(optarg); break;
        case 'q': quality = atoi(optarg); break;
        case 'r': repeat = atoi(optarg); break;
        case 'o': dir = optarg; break;
        default: return usage();
        }
    }

    n = argc - optind;
    if (width < 1 || repeat < 1 || n < 1) {
        return usage();
    }

    images = calloc(n, sizeof(image_t));
    if (images == NULL) {
        return 1;
    }

    for (i = 0; i < n; i++) {
        if (read_file(argv[optind + i], &images[i]) != 0) {
            return 1;
        }
    }

    memset(&s, 0, sizeof(s));
    bytes = 0;
    start = cpu_seconds();

    for (r = 0; r < repeat; r++) {
        for (i = 0; i < n; i++) {
            s.width = width;
            s.quality = quality;

            if (ngx_http_kafka_stream_scale(images[i].data, images[i].len,
                                            images[i].type, &s)
                != 0)
            {
                fprintf(stderr, "scale-time: %s: %s\n", images[i].name,
                        s.error);
                return 1;
            }

            bytes += s.len;

            if (dir && r == 0) {
                snprintf(path, sizeof(path), "%s/%04d.jpg", dir, i + 1);
                f = fopen(path, "wb");
                if (f == NULL || fwrite(s.data, 1, s.len, f) != s.len
                    || fclose(f) != 0)
                {
                    fprintf(stderr, "scale-time: %s: cannot write\n", path);
                    return 1;
                }
            }

            ngx_http_kafka_stream_scale_free(&s);
        }
    }

    cpu = cpu_seconds() - start;

    printf("frames %d cpu_us_per_frame %.1f bytes_per_frame %.0f "
           "size %dx%d\n", n * repeat, cpu * 1e6 / (n * repeat),
           bytes / (n * repeat), width, s.height);

    for (i = 0; i < n; i++) {
        free(images[i].data);
    }

    free(images);

    return 0;
}
