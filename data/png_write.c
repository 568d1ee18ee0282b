// png_write.c: RGB pixels as PNG (png_write.h), with libpng.
#include "png_write.h"

#include "../base/fileio.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *buf;
    size_t n, cap;
    char msg[256];
} MemOut;

static void write_mem(png_structp p, png_bytep data, png_size_t len) {
    MemOut *m = png_get_io_ptr(p);
    if (m->n + len > m->cap) {
        size_t cap = (m->n + len) * 2;
        uint8_t *nb = realloc(m->buf, cap);
        if (!nb) png_error(p, "out of memory");
        m->buf = nb, m->cap = cap;
    }
    memcpy(m->buf + m->n, data, len);
    m->n += len;
}

static void flush_mem(png_structp p) { (void)p; }

static void fail(png_structp p, png_const_charp msg) {
    MemOut *m = png_get_error_ptr(p);
    snprintf(m->msg, sizeof m->msg, "%s", msg);
    png_longjmp(p, 1);
}

static void warn(png_structp p, png_const_charp msg) { (void)p, (void)msg; }

int png_encode_rgb(const uint8_t *px, int w, int h, uint8_t **out, size_t *n, char *err, size_t errn) {
    MemOut m = {0};
    png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, &m, fail, warn);
    png_infop info = p ? png_create_info_struct(p) : NULL;
    if (!p || !info || setjmp(png_jmpbuf(p))) {
        snprintf(err, errn, "PNG encoding failed (%s)", p ? m.msg : "out of memory");
        png_destroy_write_struct(&p, &info);
        free(m.buf);
        return -1;
    }
    png_set_write_fn(p, &m, write_mem, flush_mem);
    png_set_IHDR(p, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(p, info);
    for (int y = 0; y < h; y++) png_write_row(p, (png_bytep)(px + (size_t)y * (size_t)w * 3));
    png_write_end(p, NULL);
    png_destroy_write_struct(&p, &info);
    *out = m.buf;
    *n = m.n;
    return 0;
}

int png_save_rgb(const uint8_t *px, int w, int h, const char *path, char *err, size_t errn) {
    uint8_t *buf;
    size_t n;
    char e[512];
    if (png_encode_rgb(px, w, h, &buf, &n, e, sizeof e) != 0) {
        return errorf(err, errn, "%s: %s", path, e);
    }
    int rc = file_write_atomic(path, buf, n, true, err, errn);
    free(buf);
    return rc;
}
