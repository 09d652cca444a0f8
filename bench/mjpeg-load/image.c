/*
 * Streaming validators for the images in the parts.  A part is checked as
 * its bytes arrive, so that no viewer ever has to hold a whole frame: with
 * thousands of viewers that would cost a frame's size for each of them.
 *
 * JPEG: the part starts with SOI (FF D8) and ends with EOI (FF D9).
 * PNG: the signature, then a walk over the chunks: IHDR first, every
 * chunk's length within the part, a valid type, its CRC-32, and IEND as
 * the last bytes of the part.
 */

#include "mjpeg_load.h"

#include <string.h>


#define ML_PNG_SIGNATURE   0
#define ML_PNG_HEAD        1
#define ML_PNG_DATA        2
#define ML_PNG_CRC         3
#define ML_PNG_END         4


static void ml_jpeg_feed(ml_image_t *img, const u_char *p, size_t n);
static const char *ml_jpeg_finish(ml_image_t *img);
static void ml_png_feed(ml_image_t *img, const u_char *p, size_t n);
static int ml_png_head(ml_image_t *img, uint64_t pos);
static int ml_png_crc_check(ml_image_t *img);
static uint32_t ml_crc32(uint32_t crc, const u_char *p, size_t n);


static const u_char  ml_png_signature[8] = {
    0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'
};

static uint32_t  ml_crc_table[256];
static int       ml_crc_ready;


void
ml_image_start(ml_image_t *img, int type, uint64_t length)
{
    memset(img, 0, sizeof(ml_image_t));

    img->type = type;
    img->length = length;
    img->state = ML_PNG_SIGNATURE;
    img->need = sizeof(ml_png_signature);
}


void
ml_image_feed(ml_image_t *img, const u_char *p, size_t n)
{
    if (img->error != NULL || n == 0) {
        return;
    }

    switch (img->type) {

    case ML_IMAGE_JPEG:
        ml_jpeg_feed(img, p, n);
        break;

    case ML_IMAGE_PNG:
        ml_png_feed(img, p, n);
        break;

    default:
        break;
    }

    img->pos += n;
}


const char *
ml_image_finish(ml_image_t *img)
{
    if (img->error != NULL) {
        return img->error;
    }

    switch (img->type) {

    case ML_IMAGE_JPEG:
        return ml_jpeg_finish(img);

    case ML_IMAGE_PNG:
        if (img->state != ML_PNG_END) {
            return "PNG: no IEND chunk";
        }

        return NULL;

    default:
        return "Content-Type is neither image/jpeg nor image/png";
    }
}


static void
ml_jpeg_feed(ml_image_t *img, const u_char *p, size_t n)
{
    size_t  i;

    for (i = 0; i < n && img->pos + i < 2; i++) {
        img->head[img->pos + i] = p[i];
    }

    /* only the last two bytes of the part matter at its end */

    if (n >= 2) {
        img->tail[0] = p[n - 2];
        img->tail[1] = p[n - 1];

    } else {
        img->tail[0] = img->tail[1];
        img->tail[1] = p[0];
    }
}


static const char *
ml_jpeg_finish(ml_image_t *img)
{
    if (img->pos < 4) {
        return "JPEG: shorter than SOI and EOI";
    }

    if (img->head[0] != 0xff || img->head[1] != 0xd8) {
        return "JPEG: does not start with SOI (FF D8)";
    }

    if (img->tail[0] != 0xff || img->tail[1] != 0xd9) {
        return "JPEG: does not end with EOI (FF D9)";
    }

    return NULL;
}


static void
ml_png_feed(ml_image_t *img, const u_char *p, size_t n)
{
    size_t    take;
    uint64_t  pos;

    pos = img->pos;

    while (n > 0) {

        if (img->state == ML_PNG_END) {
            img->error = "PNG: data after the IEND chunk";
            return;
        }

        take = (n < img->need) ? n : img->need;

        switch (img->state) {

        case ML_PNG_SIGNATURE:
            if (memcmp(p, ml_png_signature + pos, take) != 0) {
                img->error = "PNG: bad signature";
                return;
            }

            break;

        case ML_PNG_HEAD:
            memcpy(img->field + 8 - img->need, p, take);
            break;

        case ML_PNG_DATA:
            img->crc = ml_crc32(img->crc, p, take);
            break;

        default: /* ML_PNG_CRC */
            memcpy(img->field + 4 - img->need, p, take);
            break;
        }

        img->need -= (uint32_t) take;
        pos += take;
        p += take;
        n -= take;

        if (img->need > 0) {
            continue;
        }

        /* a field is complete */

        switch (img->state) {

        case ML_PNG_SIGNATURE:
            img->state = ML_PNG_HEAD;
            img->need = 8;
            break;

        case ML_PNG_HEAD:
            if (ml_png_head(img, pos) != 0) {
                return;
            }

            break;

        case ML_PNG_DATA:
            img->state = ML_PNG_CRC;
            img->need = 4;
            break;

        default: /* ML_PNG_CRC */
            if (ml_png_crc_check(img) != 0) {
                return;
            }

            break;
        }
    }
}


/*
 * A chunk's length and type are in field, and pos is the offset in the
 * part right after them; sets the state for the chunk's data.
 */

static int
ml_png_head(ml_image_t *img, uint64_t pos)
{
    int       i;
    u_char   *type;
    uint32_t  len;

    len = (uint32_t) img->field[0] << 24 | (uint32_t) img->field[1] << 16
          | (uint32_t) img->field[2] << 8 | img->field[3];
    type = img->field + 4;

    for (i = 0; i < 4; i++) {
        if (!((type[i] >= 'A' && type[i] <= 'Z')
              || (type[i] >= 'a' && type[i] <= 'z')))
        {
            img->error = "PNG: bad chunk type";
            return -1;
        }
    }

    if (img->chunks++ == 0 && (memcmp(type, "IHDR", 4) != 0 || len != 13)) {
        img->error = "PNG: the first chunk is not a 13-byte IHDR";
        return -1;
    }

    /* the chunk's data and CRC must end within the part */

    if (len > 0x7fffffff || pos + len + 4 > img->length) {
        (void) snprintf(img->errbuf, sizeof(img->errbuf),
                        "PNG: chunk %.4s length %u runs past the part",
                        (char *) type, len);
        img->error = img->errbuf;
        return -1;
    }

    img->crc = ml_crc32(0, type, 4);

    if (len > 0) {
        img->state = ML_PNG_DATA;
        img->need = len;

    } else {
        img->state = ML_PNG_CRC;
        img->need = 4;
    }

    return 0;
}


static int
ml_png_crc_check(ml_image_t *img)
{
    uint32_t  crc;

    crc = (uint32_t) img->field[0] << 24 | (uint32_t) img->field[1] << 16
          | (uint32_t) img->field[2] << 8 | img->field[3];

    if (crc != img->crc) {
        (void) snprintf(img->errbuf, sizeof(img->errbuf),
                        "PNG: CRC mismatch in chunk %.4s",
                        (char *) img->field + 4);
        img->error = img->errbuf;
        return -1;
    }

    if (memcmp(img->field + 4, "IEND", 4) == 0) {
        img->state = ML_PNG_END;
        return 0;
    }

    img->state = ML_PNG_HEAD;
    img->need = 8;

    return 0;
}


/* CRC-32 of ISO 3309 as PNG uses it (polynomial 0xedb88320, reflected) */

static uint32_t
ml_crc32(uint32_t crc, const u_char *p, size_t n)
{
    uint32_t  c, k;
    unsigned  i;

    if (!ml_crc_ready) {
        for (i = 0; i < 256; i++) {
            c = i;

            for (k = 0; k < 8; k++) {
                c = (c & 1) ? 0xedb88320 ^ (c >> 1) : c >> 1;
            }

            ml_crc_table[i] = c;
        }

        ml_crc_ready = 1;
    }

    crc = ~crc;

    while (n--) {
        crc = ml_crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    }

    return ~crc;
}
