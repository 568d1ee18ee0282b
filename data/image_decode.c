// image_decode.c: JPEG and PNG to RGB, as Pillow's Image.open(...).convert("RGB").
// - JPEG (libjpeg-turbo, its defaults: islow DCT, fancy upsampling): 3 components decode to RGB,
//   1 to grey (replicated), 4 (CMYK/YCCK) to CMYK, inverted as Pillow's "CMYK;I" rawmode does,
//   then Pillow's cmyk2rgb: nk = 255 - k, c = clip(nk - c * nk / 255) (MULDIV255 rounding).
// - PNG (libpng): palette looked up (transparency dropped), grey replicated, alpha dropped without
//   compositing, 1/2/4-bit grey scaled to 8 bits, 16-bit RGB(A)/LA reduced to their high byte
//   (Pillow's "RGB;16B" unpackers), 16-bit grey as Pillow's I;16 -> RGB: v < 256 ? v : 255.
// libjpeg's and libpng's fatal errors longjmp back here and become messages.
#include "image.h"
#include "png_write.h"

#include "../base/fileio.h"

#include <stdio.h> // before jpeglib.h, which uses FILE

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

int image_alloc(Image *im, int w, int h) {
    im->w = w, im->h = h;
    im->px = malloc((size_t)w * (size_t)h * 3 + 1);
    return im->px ? 0 : -1;
}

void image_free(Image *im) {
    free(im->px);
    im->px = NULL;
    im->w = im->h = 0;
}

bool image_sniff(const uint8_t *b, size_t n) {
    return (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) || (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8));
}

static int check_dims(long long w, long long h, const char *what, char *err, size_t errn) {
    if (w <= 0 || h <= 0) {
        return errorf(err, errn, "%s: image has no pixels (%lldx%lld)", what, w, h);
    }
    if (w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE || w * h > IMAGE_MAX_PIXELS) {
        return errorf(err, errn, "%s: %lldx%lld pixels exceeds the decompression-bomb limit of %lld pixels", what, w, h, IMAGE_MAX_PIXELS);
    }
    return 0;
}

// ---------------------------------------------------------------- JPEG

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} JpegErr;

static void jpeg_fail(j_common_ptr ci) {
    JpegErr *e = (JpegErr *)ci->err;
    (*ci->err->format_message)(ci, e->msg);
    longjmp(e->jb, 1);
}

static void jpeg_warn(j_common_ptr ci, int level) {
    // libjpeg continues past corrupt data with a warning; a truncated file is an error here
    JpegErr *e = (JpegErr *)ci->err;
    if (level < 0 && ci->err->msg_code == JWRN_JPEG_EOF) {
        (*ci->err->format_message)(ci, e->msg);
        longjmp(e->jb, 1);
    }
}

static int decode_jpeg(Image *im, const uint8_t *data, size_t n, const char *what, char *err, size_t errn) {
    struct jpeg_decompress_struct ci;
    JpegErr je;
    uint8_t *volatile row = NULL; // volatile: assigned after setjmp and freed after a longjmp
    memset(im, 0, sizeof *im);
    ci.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jpeg_fail;
    je.pub.emit_message = jpeg_warn;
    je.msg[0] = 0;
    if (setjmp(je.jb)) {
        if (!je.msg[0] || je.pub.msg_code == JERR_OUT_OF_MEMORY)
            snprintf(err, errn, "%s: out of memory decoding the JPEG (%s)", what, je.msg[0] ? je.msg : "pixels");
        else
            snprintf(err, errn, "%s: corrupt or truncated JPEG (%s)", what, je.msg);
        jpeg_destroy_decompress(&ci);
        free((void *)row);
        image_free(im);
        return -1;
    }
    jpeg_create_decompress(&ci);
    jpeg_mem_src(&ci, data, (unsigned long)n);
    jpeg_read_header(&ci, TRUE);
    if (check_dims(ci.image_width, ci.image_height, what, err, errn) != 0) {
        jpeg_destroy_decompress(&ci);
        return -1;
    }
    int nc = ci.num_components;
    if (nc == 3)
        ci.out_color_space = JCS_RGB;
    else if (nc == 1)
        ci.out_color_space = JCS_GRAYSCALE;
    else if (nc == 4)
        ci.out_color_space = JCS_CMYK;
    else {
        snprintf(err, errn, "%s: JPEG with %d components is not supported", what, nc);
        jpeg_destroy_decompress(&ci);
        return -1;
    }
    jpeg_start_decompress(&ci);
    int w = (int)ci.output_width, h = (int)ci.output_height, oc = ci.output_components;
    row = malloc((size_t)w * (size_t)oc);
    if (!row || image_alloc(im, w, h) != 0) longjmp(je.jb, 1); // je.msg empty: out of memory
    while (ci.output_scanline < ci.output_height) {
        int y = (int)ci.output_scanline;
        JSAMPROW rp = (JSAMPROW)row;
        jpeg_read_scanlines(&ci, &rp, 1);
        uint8_t *o = im->px + (size_t)y * (size_t)w * 3;
        for (int x = 0; x < w; x++) {
            if (oc == 3) {
                o[3 * x] = row[3 * x], o[3 * x + 1] = row[3 * x + 1], o[3 * x + 2] = row[3 * x + 2];
            } else if (oc == 1) {
                o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = row[x];
            } else {
                // "CMYK;I": Pillow inverts every component, then cmyk2rgb
                int k = 255 - row[4 * x + 3], nk = 255 - k;
                for (int ch = 0; ch < 3; ch++) {
                    int c = 255 - row[4 * x + ch];
                    int t = c * nk + 128;
                    int v = nk - (((t >> 8) + t) >> 8); // MULDIV255
                    o[3 * x + ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
            }
        }
    }
    jpeg_finish_decompress(&ci);
    jpeg_destroy_decompress(&ci);
    free((void *)row);
    return 0;
}

// ---------------------------------------------------------------- PNG

typedef struct {
    const uint8_t *data;
    size_t n, pos;
    char msg[256];
} PngSrc;

static void png_read_mem(png_structp p, png_bytep out, png_size_t len) {
    PngSrc *s = png_get_io_ptr(p);
    if (len > s->n - s->pos) png_error(p, "file is truncated");
    memcpy(out, s->data + s->pos, len);
    s->pos += len;
}

static void png_fail(png_structp p, png_const_charp msg) {
    PngSrc *s = png_get_error_ptr(p);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(p, 1);
}

static void png_warn(png_structp p, png_const_charp msg) { (void)p, (void)msg; }

static int decode_png(Image *im, const uint8_t *data, size_t n, const char *what, char *err, size_t errn) {
    memset(im, 0, sizeof *im);
    PngSrc src = {data, n, 0, ""};
    png_structp p = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_fail, png_warn);
    png_infop info = p ? png_create_info_struct(p) : NULL;
    uint8_t *volatile buf = NULL; // volatile: assigned after setjmp and freed after a longjmp
    png_bytep *volatile rows = NULL;
    if (!p || !info) {
        snprintf(err, errn, "%s: out of memory", what);
        png_destroy_read_struct(&p, &info, NULL);
        return -1;
    }
    if (setjmp(png_jmpbuf(p))) {
        if (!strcmp(src.msg, "out of memory") || strstr(src.msg, "Out of memory") || strstr(src.msg, "out of memory"))
            snprintf(err, errn, "%s: out of memory decoding the PNG", what);
        else
            snprintf(err, errn, "%s: corrupt or truncated PNG (%s)", what, src.msg);
        png_destroy_read_struct(&p, &info, NULL);
        free((void *)buf);
        free((void *)rows);
        image_free(im);
        return -1;
    }
    png_set_read_fn(p, &src, png_read_mem);
    png_set_user_limits(p, 0x7fffffff, 0x7fffffff); // our own limit below names the bomb
    png_set_chunk_malloc_max(p, 64u << 20);         // huge metadata chunks are refused, not allocated
    png_read_info(p, info);
    png_uint_32 w = png_get_image_width(p, info), h = png_get_image_height(p, info);
    if (check_dims(w, h, what, err, errn) != 0) {
        png_destroy_read_struct(&p, &info, NULL);
        return -1;
    }
    int ct = png_get_color_type(p, info), bd = png_get_bit_depth(p, info);
    bool grey16 = (ct == PNG_COLOR_TYPE_GRAY && bd == 16);
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(p);
    if (ct == PNG_COLOR_TYPE_GRAY && bd < 8) png_set_expand_gray_1_2_4_to_8(p);
    if (bd == 16 && !grey16) png_set_strip_16(p); // the high byte, as Pillow's ;16B unpackers
    if (grey16) png_set_swap(p);                  // read native little-endian 16-bit values
    png_set_interlace_handling(p);
    png_read_update_info(p, info);
    int ch = png_get_channels(p, info);
    size_t rb = png_get_rowbytes(p, info);
    buf = malloc(rb * h);
    rows = malloc(sizeof(png_bytep) * h);
    if (!buf || !rows) png_error(p, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) rows[y] = buf + rb * y;
    png_read_image(p, rows);
    png_read_end(p, NULL);
    if (image_alloc(im, (int)w, (int)h) != 0) png_error(p, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) {
        const uint8_t *r = rows[y];
        uint8_t *o = im->px + (size_t)y * w * 3;
        for (png_uint_32 x = 0; x < w; x++) {
            if (grey16) {
                uint16_t v;
                memcpy(&v, r + 2 * x, 2);
                o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = v < 256 ? (uint8_t)v : 255; // I16_RGB
            } else if (ch >= 3) {                                                    // RGB, RGBA (alpha dropped)
                memcpy(o + 3 * x, r + (size_t)ch * x, 3);
            } else { // grey, grey + alpha
                o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = r[(size_t)ch * x];
            }
        }
    }
    png_destroy_read_struct(&p, &info, NULL);
    free((void *)buf);
    free((void *)rows);
    return 0;
}

// ---------------------------------------------------------------- probing

static int probe_jpeg(const uint8_t *data, size_t n, int *w, int *h, int *comps, const char *what, char *err, size_t errn) {
    struct jpeg_decompress_struct ci;
    JpegErr je;
    ci.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jpeg_fail;
    je.pub.emit_message = jpeg_warn;
    je.msg[0] = 0;
    if (setjmp(je.jb)) {
        snprintf(err, errn, "%s: corrupt or truncated JPEG (%s)", what, je.msg[0] ? je.msg : "header");
        jpeg_destroy_decompress(&ci);
        return -1;
    }
    jpeg_create_decompress(&ci);
    jpeg_mem_src(&ci, data, (unsigned long)n);
    jpeg_read_header(&ci, TRUE);
    int rc = check_dims(ci.image_width, ci.image_height, what, err, errn);
    *w = (int)ci.image_width, *h = (int)ci.image_height, *comps = ci.num_components;
    jpeg_destroy_decompress(&ci);
    return rc;
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

int image_probe(const uint8_t *data, size_t n, int *w, int *h, size_t *decode_bytes, const char *what, char *err, size_t errn) {
    int comps = 3;
    if (n == 0) {
        return errorf(err, errn, "%s: empty file (0 bytes)", what);
    }
    if (n >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) {
        if (probe_jpeg(data, n, w, h, &comps, what, err, errn) != 0) return -1;
    } else if (n >= 8 && !memcmp(data, "\x89PNG\r\n\x1a\n", 8)) {
        if (n < 24 || be32(data + 8) != 13 || memcmp(data + 12, "IHDR", 4)) {
            return errorf(err, errn, "%s: corrupt or truncated PNG (no IHDR chunk first)", what);
        }
        uint32_t pw = be32(data + 16), ph = be32(data + 20);
        if (check_dims(pw, ph, what, err, errn) != 0) return -1;
        *w = (int)pw, *h = (int)ph;
    } else {
        return errorf(err, errn, "%s: not a JPEG or PNG image (unrecognised first bytes)", what);
    }
    // the decoder's peak: the RGB result (3 bytes a pixel) beside libpng's rows (up to 4) or
    // libjpeg's coefficients of a progressive file (2 a component)
    size_t per = 3 + (size_t)(comps > 4 ? 4 : comps) * 2 + 4;
    *decode_bytes = per * (size_t)*w * (size_t)*h;
    return 0;
}

int image_decode(Image *im, const uint8_t *data, size_t n, const char *what, char *err, size_t errn) {
    memset(im, 0, sizeof *im);
    if (n == 0) {
        return errorf(err, errn, "%s: empty file (0 bytes)", what);
    }
    if (n >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) return decode_jpeg(im, data, n, what, err, errn);
    if (n >= 8 && !memcmp(data, "\x89PNG\r\n\x1a\n", 8)) return decode_png(im, data, n, what, err, errn);
    return errorf(err, errn, "%s: not a JPEG or PNG image (unrecognised first bytes)", what);
}

int image_load(Image *im, const char *path, char *err, size_t errn) {
    size_t n;
    memset(im, 0, sizeof *im);
    uint8_t *data = (uint8_t *)file_read_all(path, 1u << 30, &n, err, errn);
    if (!data) return -1;
    int rc = image_decode(im, data, n, path, err, errn);
    free(data);
    return rc;
}

// ---------------------------------------------------------------- PNG out (png_write.c)

int image_encode_png(const Image *im, uint8_t **out, size_t *n, char *err, size_t errn) {
    return png_encode_rgb(im->px, im->w, im->h, out, n, err, errn);
}

int image_save_png(const Image *im, const char *path, char *err, size_t errn) {
    return png_save_rgb(im->px, im->w, im->h, path, err, errn);
}
