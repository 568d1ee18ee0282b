// png_write.h: 8-bit RGB pixels as a PNG (libpng), in memory or as a file written atomically. The
// writer alone, for code that draws its own pixels (the Trainer's loss plot) and needs nothing else
// of the image pipeline.
#ifndef CGRAD_PNG_WRITE_H
#define CGRAD_PNG_WRITE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// px: h rows of w RGB triples. *out (malloc'd, the caller frees) of *n bytes; 0, or -1 with a message
int png_encode_rgb(const uint8_t *px, int w, int h, uint8_t **out, size_t *n, char *err, size_t errn);
// the same written to PATH atomically (a fresh temporary beside it, fsync, rename); "PATH: ..." on failure
int png_save_rgb(const uint8_t *px, int w, int h, const char *path, char *err, size_t errn);

#ifdef __cplusplus
}
#endif

#endif
