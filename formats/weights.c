// weights.c: weight files mapped in place (WFile), looked up by name, and their entries as
// tensors (float32 views of the mapping, other dtypes converted). The formats fill a WFile:
// safetensors.c here, torch's zip pickle in models/torchbin.c.
#include "weights.h"

#include "../base/fileio.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const struct {
    const char *name;
    WDtype d;
    size_t size;
} DTYPES[] = {{"F32", WD_F32, 4}, {"F16", WD_F16, 2}, {"BF16", WD_BF16, 2}, {"F64", WD_F64, 8}, {"I64", WD_I64, 8},
              {"I32", WD_I32, 4}, {"I16", WD_I16, 2}, {"I8", WD_I8, 1},     {"U8", WD_U8, 1},   {"BOOL", WD_BOOL, 1}};

size_t wdtype_size(WDtype d) { return DTYPES[d].size; }
const char *wdtype_name(WDtype d) { return DTYPES[d].name; }
int wdtype_from_name(const char *s) {
    for (int k = 0; k < (int)(sizeof DTYPES / sizeof *DTYPES); k++)
        if (!strcmp(s, DTYPES[k].name)) return (int)DTYPES[k].d;
    return -1;
}

void wfile_close(WFile *f) {
    if (f->map) munmap(f->map, f->size);
    for (int i = 0; i < f->n; i++) free(f->e[i].name);
    free(f->e);
    free(f->path);
    if (f->meta)
        for (int i = 0; f->meta[i]; i++) free(f->meta[i]);
    free(f->meta);
    free(f->by_name);
    memset(f, 0, sizeof *f);
}

// entries compared by name through pointers into f->e (no shared state: reentrant)
static int entry_name_cmp(const void *a, const void *b) {
    return strcmp((*(const WEntry *const *)a)->name, (*(const WEntry *const *)b)->name);
}

int wfile_index(WFile *f, char *err, size_t errn) {
    free(f->by_name);
    f->by_name = malloc(sizeof *f->by_name * (size_t)(f->n ? f->n : 1));
    const WEntry **ptr = malloc(sizeof *ptr * (size_t)(f->n ? f->n : 1));
    if (!f->by_name || !ptr) {
        free(ptr);
        return errorf(err, errn, "%s: out of memory indexing %d tensors", f->path, f->n);
    }
    for (int i = 0; i < f->n; i++) ptr[i] = &f->e[i];
    qsort(ptr, (size_t)f->n, sizeof *ptr, entry_name_cmp);
    for (int i = 0; i < f->n; i++) f->by_name[i] = (int)(ptr[i] - f->e);
    free(ptr);
    for (int i = 1; i < f->n; i++)
        if (!strcmp(f->e[f->by_name[i - 1]].name, f->e[f->by_name[i]].name)) {
            return errorf(err, errn, "%s: tensor '%.200s' appears twice", f->path, f->e[f->by_name[i]].name);
        }
    return 0;
}

const WEntry *wfile_find(const WFile *f, const char *name) {
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(f->e[f->by_name[mid]].name, name);
        if (!c) return &f->e[f->by_name[mid]];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

int wfile_map(WFile *f, const char *path, char *err, size_t errn) {
    memset(f, 0, sizeof *f);
    uint64_t bytes;
    int fd = file_open_regular(path, &bytes, err, errn);
    if (fd < 0) return -1;
    f->size = (size_t)bytes;
    if (f->size > 0) {
        f->map = mmap(NULL, f->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        if (f->map == MAP_FAILED) {
            f->map = NULL;
            snprintf(err, errn, "%s: cannot map: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
    }
    close(fd);
    f->path = strdup(path);
    return 0;
}

const char *wfile_metadata(const WFile *f, const char *key) {
    for (int i = 0; f->meta && f->meta[i]; i += 2)
        if (!strcmp(f->meta[i], key)) return f->meta[i + 1];
    return NULL;
}

// ---- conversion to tensors ----

static float half_to_float(uint16_t h) {
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, m = h & 0x3ff, bits;
    if (e == 0) {
        if (m == 0)
            bits = s;
        else { // subnormal: normalise
            e = 127 - 15 + 1;
            while (!(m & 0x400)) {
                m <<= 1;
                e--;
            }
            bits = s | e << 23 | (m & 0x3ff) << 13;
        }
    } else if (e == 31)
        bits = s | 0xff << 23 | m << 13;
    else
        bits = s | (e + 127 - 15) << 23 | m << 13;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static float bf16_to_float(uint16_t h) {
    uint32_t b = (uint32_t)h << 16;
    float f;
    memcpy(&f, &b, 4);
    return f;
}

// element off of an entry as a double (the bytes may be unaligned: read through memcpy)
#define LOAD_AS(T, conv)                                                                                                                   \
    do {                                                                                                                                   \
        T v;                                                                                                                               \
        memcpy(&v, p, sizeof v);                                                                                                           \
        return (double)conv(v);                                                                                                            \
    } while (0)
#define AS_IS(v) (v)

static double load_elem(const WEntry *e, int64_t off) {
    const unsigned char *p = e->data + (size_t)off * wdtype_size(e->dtype);
    switch (e->dtype) {
    case WD_F32: LOAD_AS(float, AS_IS);
    case WD_F16: LOAD_AS(uint16_t, half_to_float);
    case WD_BF16: LOAD_AS(uint16_t, bf16_to_float);
    case WD_F64: LOAD_AS(double, AS_IS);
    case WD_I64: LOAD_AS(int64_t, AS_IS);
    case WD_I32: LOAD_AS(int32_t, AS_IS);
    case WD_I16: LOAD_AS(int16_t, AS_IS);
    case WD_I8: LOAD_AS(int8_t, AS_IS);
    case WD_U8:
    case WD_BOOL: LOAD_AS(uint8_t, AS_IS);
    }
    return 0;
}

static bool entry_contiguous(const WEntry *e) {
    int64_t s = 1;
    for (int d = e->ndim - 1; d >= 0; d--) {
        if (e->shape[d] != 1 && e->strides[d] != s) return false;
        s *= e->shape[d];
    }
    return true;
}

Tensor *wentry_tensor(Ctx *c, const WEntry *e, bool view) {
    DType dt = (e->dtype == WD_U8 || e->dtype == WD_BOOL)                                              ? DT_U8
               : (e->dtype == WD_I64 || e->dtype == WD_I32 || e->dtype == WD_I16 || e->dtype == WD_I8) ? DT_I64
                                                                                                       : DT_F32;
    if (view && e->dtype == WD_F32 && entry_contiguous(e) && ((uintptr_t)e->data % 4) == 0)
        return tensor_from_buffer(c, DT_F32, e->ndim, e->shape, (void *)e->data);
    Tensor *t = tensor_new(c, dt, e->ndim, e->shape);
    if (!t) return NULL;
    int64_t n = tensor_numel(t), idx[TENSOR_MAX_DIMS] = {0}, off = 0;
    if (e->dtype == WD_F32 && entry_contiguous(e)) {
        memcpy(t->data, e->data, (size_t)n * 4);
        return t;
    }
    for (int64_t i = 0; i < n; i++) {
        tensor_set_flat(t, i, load_elem(e, off));
        for (int d = e->ndim - 1; d >= 0; d--) {
            off += e->strides[d];
            if (++idx[d] < e->shape[d]) break;
            off -= e->strides[d] * e->shape[d];
            idx[d] = 0;
        }
    }
    return t;
}
