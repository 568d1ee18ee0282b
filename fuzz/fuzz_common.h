// fuzz_common.h: the input as a file (memfd, /proc/self/fd/N), since the readers take paths.
#ifndef CGRAD_FUZZ_COMMON_H
#define CGRAD_FUZZ_COMMON_H
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

static inline int fuzz_file(const uint8_t *data, size_t n, char *path, size_t pn) {
    int fd = memfd_create("fuzz", 0);
    if (fd < 0) return -1;
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, data + off, n - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
    snprintf(path, pn, "/proc/self/fd/%d", fd);
    return fd;
}
#include "../formats/weights.h"

// reads the last element of every tensor (up to 64) the header claims
static inline void fuzz_touch_tensors(const WFile *f) {
    Ctx *c = ctx_new(1 << 16);
    for (int i = 0; i < f->n && i < 64; i++) {
        Tensor *t = wentry_tensor(c, &f->e[i], false);
        if (t && tensor_numel(t) > 0) (void)tensor_get_flat(t, tensor_numel(t) - 1);
    }
    ctx_free(c);
}
#endif
