// safetensors.c: reading (validated, mapped) and writing (atomic) safetensors files.
// Format: 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data; offsets are relative to the end of the header.
#include "weights.h"

#include "../tensor/fileio.h"
#include "json_strict.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *name;
    WDtype d;
    size_t size;
} DTYPES[] = {{"F32", WD_F32, 4}, {"F16", WD_F16, 2}, {"BF16", WD_BF16, 2}, {"F64", WD_F64, 8}, {"I64", WD_I64, 8},
              {"I32", WD_I32, 4}, {"I16", WD_I16, 2},  {"I8", WD_I8, 1},     {"U8", WD_U8, 1},   {"BOOL", WD_BOOL, 1}};

size_t wdtype_size(WDtype d) { return DTYPES[d].size; }
const char *wdtype_name(WDtype d) { return DTYPES[d].name; }

void wfile_close(WFile *f) {
    if (f->map) munmap(f->map, f->size);
    for (int i = 0; i < f->n; i++) free(f->e[i].name);
    free(f->e);
    free(f->path);
    free(f->metadata_json);
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
        snprintf(err, errn, "%s: out of memory indexing %d tensors", f->path, f->n);
        return -1;
    }
    for (int i = 0; i < f->n; i++) ptr[i] = &f->e[i];
    qsort(ptr, (size_t)f->n, sizeof *ptr, entry_name_cmp);
    for (int i = 0; i < f->n; i++) f->by_name[i] = (int)(ptr[i] - f->e);
    free(ptr);
    for (int i = 1; i < f->n; i++)
        if (!strcmp(f->e[f->by_name[i - 1]].name, f->e[f->by_name[i]].name)) {
            snprintf(err, errn, "%s: tensor '%.200s' appears twice", f->path, f->e[f->by_name[i]].name);
            return -1;
        }
    return 0;
}

const WEntry *wfile_find(const WFile *f, const char *name) {
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(f->e[f->by_name[mid]].name, name);
        if (!c) return &f->e[f->by_name[mid]];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

// maps PATH copy-on-write; shared with the torch reader
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

static int span_cmp(const void *a, const void *b) {
    const WEntry *x = *(const WEntry *const *)a, *y = *(const WEntry *const *)b;
    return x->data < y->data ? -1 : x->data > y->data;
}

#define FAIL(...)                                    \
    do {                                             \
        snprintf(err, errn, __VA_ARGS__);            \
        goto fail;                                   \
    } while (0)

int safetensors_open(WFile *f, const char *path, char *err, size_t errn) {
    if (wfile_map(f, path, err, errn) != 0) return -1;
    cJSON *root = NULL;
    WEntry **order = NULL;
    if (f->size < 8) FAIL("%s: not a safetensors file (%zu bytes, shorter than the 8-byte header length)", path, f->size);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | f->map[i];
    if (hl > SAFETENSORS_MAX_HEADER) FAIL("%s: safetensors header length %llu is above the limit of %u bytes", path, (unsigned long long)hl, SAFETENSORS_MAX_HEADER);
    if (hl > f->size - 8) FAIL("%s: safetensors header length %llu runs past the end of the file (%zu bytes)", path, (unsigned long long)hl, f->size);
    root = cJSON_ParseWithLength((const char *)f->map + 8, (size_t)hl);
    if (!root || !cJSON_IsObject(root)) FAIL("%s: safetensors header is not a JSON object", path);
    if (json_check_unique_keys(root, path, err, errn) != 0) goto fail;
    size_t data_size = f->size - 8 - (size_t)hl;
    const unsigned char *base = f->map + 8 + hl;
    int n = cJSON_GetArraySize(root);
    f->e = calloc((size_t)(n ? n : 1), sizeof *f->e);
    for (cJSON *it = root->child; it; it = it->next) {
        if (!strcmp(it->string, "__metadata__")) {
            if (!cJSON_IsObject(it)) FAIL("%s: __metadata__ is not an object", path);
            f->metadata_json = cJSON_PrintUnformatted(it);
            continue;
        }
        const char *nm = it->string;
        if (!cJSON_IsObject(it)) FAIL("%s: tensor '%s': entry is not an object", path, nm);
        cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype"), *sh = cJSON_GetObjectItemCaseSensitive(it, "shape"),
              *off = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        if (!cJSON_IsString(dt)) FAIL("%s: tensor '%s': missing dtype", path, nm);
        int di = -1;
        for (int k = 0; k < (int)(sizeof DTYPES / sizeof *DTYPES); k++)
            if (!strcmp(dt->valuestring, DTYPES[k].name)) di = k;
        if (di < 0) FAIL("%s: tensor '%s': unknown dtype '%s'", path, nm, dt->valuestring);
        if (!cJSON_IsArray(sh) || cJSON_GetArraySize(sh) > TENSOR_MAX_DIMS) FAIL("%s: tensor '%s': shape is not a list of at most %d sizes", path, nm, TENSOR_MAX_DIMS);
        WEntry *e = &f->e[f->n];
        e->dtype = DTYPES[di].d;
        e->ndim = cJSON_GetArraySize(sh);
        uint64_t numel = 1;
        int k = 0;
        for (cJSON *s = sh->child; s; s = s->next, k++) {
            if (!cJSON_IsNumber(s) || !(s->valuedouble >= 0 && s->valuedouble <= 1e15) || s->valuedouble != floor(s->valuedouble))
                FAIL("%s: tensor '%s': bad size in shape", path, nm);
            e->shape[k] = (int64_t)s->valuedouble;
            if (e->shape[k] && numel > UINT64_MAX / (uint64_t)e->shape[k] / 8) FAIL("%s: tensor '%s': shape too large", path, nm);
            numel *= (uint64_t)e->shape[k];
        }
        if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || !cJSON_IsNumber(off->child) || !cJSON_IsNumber(off->child->next))
            FAIL("%s: tensor '%s': data_offsets must be [begin, end]", path, nm);
        double b = off->child->valuedouble, en = off->child->next->valuedouble;
        if (!(b >= 0 && en >= b && en <= (double)data_size) || b != floor(b) || en != floor(en)) // range first: no out-of-range casts
            FAIL("%s: tensor '%s': data_offsets [%.0f, %.0f] outside the data (%zu bytes)", path, nm, b, en, data_size);
        uint64_t want = numel * DTYPES[di].size;
        if ((uint64_t)(en - b) != want)
            FAIL("%s: tensor '%s': %s %s needs %llu bytes but data_offsets span %.0f", path, nm, DTYPES[di].name,
                 "shape", (unsigned long long)want, en - b);
        e->data = base + (size_t)b;
        int64_t s = 1;
        for (int d = e->ndim - 1; d >= 0; d--) { e->strides[d] = s; s *= e->shape[d]; }
        e->name = strdup(nm);
        f->n++;
    }
    // spans must not overlap (two tensors sharing bytes is a crafted or broken file)
    order = malloc(sizeof *order * (size_t)(f->n ? f->n : 1));
    for (int i = 0; i < f->n; i++) order[i] = &f->e[i];
    qsort(order, (size_t)f->n, sizeof *order, span_cmp);
    for (int i = 1; i < f->n; i++) {
        const WEntry *a = order[i - 1], *b = order[i];
        size_t aend = (size_t)(a->data - base);
        size_t an = wdtype_size(a->dtype);
        for (int d = 0; d < a->ndim; d++) an *= (size_t)a->shape[d];
        aend += an;
        if (an && (size_t)(b->data - base) < aend) FAIL("%s: tensors '%s' and '%s' overlap in the data", path, a->name, b->name);
    }
    free(order);
    order = NULL;
    if (wfile_index(f, err, errn) != 0) goto fail;
    cJSON_Delete(root);
    return 0;
fail:
    free(order);
    cJSON_Delete(root);
    wfile_close(f);
    return -1;
}

// ---- conversion to tensors ----

static float half_to_float(uint16_t h) {
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, m = h & 0x3ff, bits;
    if (e == 0) {
        if (m == 0) bits = s;
        else { // subnormal: normalise
            e = 127 - 15 + 1;
            while (!(m & 0x400)) { m <<= 1; e--; }
            bits = s | e << 23 | (m & 0x3ff) << 13;
        }
    } else if (e == 31) bits = s | 0xff << 23 | m << 13;
    else bits = s | (e + 127 - 15) << 23 | m << 13;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static double load_elem(const WEntry *e, int64_t off) {
    const unsigned char *p = e->data + (size_t)off * wdtype_size(e->dtype);
    switch (e->dtype) {
    case WD_F32: { float v; memcpy(&v, p, 4); return v; }
    case WD_F16: { uint16_t v; memcpy(&v, p, 2); return half_to_float(v); }
    case WD_BF16: { uint16_t v; memcpy(&v, p, 2); uint32_t b = (uint32_t)v << 16; float f; memcpy(&f, &b, 4); return f; }
    case WD_F64: { double v; memcpy(&v, p, 8); return v; }
    case WD_I64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    case WD_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case WD_I16: { int16_t v; memcpy(&v, p, 2); return v; }
    case WD_I8: return (int8_t)*p;
    case WD_U8: case WD_BOOL: return *p;
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
    DType dt = (e->dtype == WD_U8 || e->dtype == WD_BOOL) ? DT_U8
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

// ---- writing ----

static int item_cmp(const void *a, const void *b) { return strcmp(((const StItem *)a)->name, ((const StItem *)b)->name); }

int safetensors_save(const char *path, const StItem *items0, int n, const char *metadata_json, char *err, size_t errn) {
    StItem *items = malloc(sizeof *items * (size_t)(n ? n : 1));
    memcpy(items, items0, sizeof *items * (size_t)n);
    qsort(items, (size_t)n, sizeof *items, item_cmp);
    cJSON *root = cJSON_CreateObject();
    if (metadata_json) {
        cJSON *m = cJSON_Parse(metadata_json);
        if (m) cJSON_AddItemToObject(root, "__metadata__", m);
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const Tensor *t = items[i].t;
        const char *dn = t->dtype == DT_F32 ? "F32" : t->dtype == DT_F64 ? "F64" : t->dtype == DT_I64 ? "I64" : "U8";
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "dtype", dn);
        cJSON *sh = cJSON_AddArrayToObject(o, "shape");
        for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
        uint64_t nb = (uint64_t)tensor_numel(t) * dtype_size(t->dtype);
        cJSON *of = cJSON_AddArrayToObject(o, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + nb)));
        cJSON_AddItemToObject(root, items[i].name, o);
        off += nb;
    }
    char *hdr = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    size_t hl = strlen(hdr), pad = (8 - hl % 8) % 8;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int rc = -1;
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        snprintf(err, errn, "%s: cannot write: %s", tmp, strerror(errno));
        file_note_write_failure(errno);
        goto out;
    }
    unsigned char lenb[8];
    uint64_t L = hl + pad;
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)(L >> (8 * i));
    bool ok = fwrite(lenb, 1, 8, fp) == 8 && fwrite(hdr, 1, hl, fp) == hl && fwrite("        ", 1, pad, fp) == pad;
    Ctx *c = ctx_new(1 << 16);
    for (int i = 0; ok && i < n; i++) {
        const Tensor *t = tensor_contiguous(c, items[i].t);
        size_t nb = (size_t)tensor_numel(t) * dtype_size(t->dtype);
        ok = fwrite(t->data, 1, nb, fp) == nb;
        ctx_reset(c);
    }
    ctx_free(c);
    ok = ok && fflush(fp) == 0 && fsync(fileno(fp)) == 0;
    if (fclose(fp) != 0) ok = false;
    if (!ok) {
        snprintf(err, errn, "%s: write failed: %s", tmp, strerror(errno ? errno : EIO));
        file_note_write_failure(errno);
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        snprintf(err, errn, "%s: cannot rename into place: %s", path, strerror(errno));
        file_note_write_failure(errno);
        unlink(tmp);
        goto out;
    }
    fsync_dir_of(path);
    rc = 0;
out:
    free(hdr);
    free(items);
    return rc;
}
