// safetensors.c: reading (validated, mapped) and writing (atomic) safetensors files.
// Format: 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data; offsets are relative to the end of the header.
//
// The header is read by a parser of exactly that grammar, as strict as the reference
// implementation (Rust's serde_json): UTF-8, no trailing commas or comments, sizes and offsets
// plain non-negative integers, metadata string to string, a key never twice in one object,
// unknown fields of a tensor entry skipped. It needs no JSON library, so the framework that
// saves parameter sets does not depend on one.
#include "weights.h"

#include "../base/fileio.h"
#include "../base/strbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ---------------------------------------------------------------- the header's JSON

typedef struct {
    const char *s; // the header
    size_t n, i;   // its length, the read position
    const char *path;
    char *err;
    size_t errn;
    bool failed;
} Hdr;

#define JSON_MAX_DEPTH 64

static int hfail(Hdr *h, const char *fmt, ...) {
    if (h->failed) return -1;
    char what[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(h->err, h->errn, "%s: safetensors header is not a JSON object of tensors (%s at byte %zu)", h->path, what, h->i);
    h->failed = true;
    return -1;
}

static void ws(Hdr *h) {
    while (h->i < h->n && (h->s[h->i] == ' ' || h->s[h->i] == '\t' || h->s[h->i] == '\n' || h->s[h->i] == '\r')) h->i++;
}

static bool eat(Hdr *h, char ch) {
    ws(h);
    if (h->i < h->n && h->s[h->i] == ch) {
        h->i++;
        return true;
    }
    return false;
}

static int hex4(Hdr *h, unsigned *v) {
    if (h->n - h->i < 4) return hfail(h, "a cut \\u escape");
    *v = 0;
    for (int k = 0; k < 4; k++) {
        char ch = h->s[h->i++];
        unsigned d = ch >= '0' && ch <= '9'   ? (unsigned)(ch - '0')
                     : ch >= 'a' && ch <= 'f' ? (unsigned)(ch - 'a' + 10)
                     : ch >= 'A' && ch <= 'F' ? (unsigned)(ch - 'A' + 10)
                                              : 16u;
        if (d > 15) return hfail(h, "a bad \\u escape");
        *v = *v << 4 | d;
    }
    return 0;
}

static void put_utf8(char *o, size_t *k, unsigned cp) {
    if (cp < 0x80)
        o[(*k)++] = (char)cp;
    else if (cp < 0x800)
        o[(*k)++] = (char)(0xC0 | cp >> 6), o[(*k)++] = (char)(0x80 | (cp & 0x3F));
    else if (cp < 0x10000)
        o[(*k)++] = (char)(0xE0 | cp >> 12), o[(*k)++] = (char)(0x80 | (cp >> 6 & 0x3F)), o[(*k)++] = (char)(0x80 | (cp & 0x3F));
    else
        o[(*k)++] = (char)(0xF0 | cp >> 18), o[(*k)++] = (char)(0x80 | (cp >> 12 & 0x3F)), o[(*k)++] = (char)(0x80 | (cp >> 6 & 0x3F)),
        o[(*k)++] = (char)(0x80 | (cp & 0x3F));
}

// a string, decoded into a new allocation (its length bounded by the header's); NULL on error
static char *str(Hdr *h) {
    if (!eat(h, '"')) return hfail(h, "a string expected"), NULL;
    size_t j = h->i;
    while (j < h->n && h->s[j] != '"') j += h->s[j] == '\\' ? 2 : 1; // escapes only shrink: the raw span bounds it
    if (j >= h->n) return hfail(h, "an unterminated string"), NULL;
    char *o = malloc(j - h->i + 1);
    if (!o) return hfail(h, "out of memory"), NULL;
    size_t k = 0;
    const char *bad = NULL;
    while (!bad && h->s[h->i] != '"') {
        unsigned char ch = (unsigned char)h->s[h->i++];
        if (ch < 0x20) {
            bad = "a control character in a string";
            break;
        }
        if (ch != '\\') {
            o[k++] = (char)ch;
            continue;
        }
        char e = h->s[h->i++];
        const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t", *at = e ? strchr(from, e) : NULL;
        if (at) {
            o[k++] = to[at - from];
            continue;
        }
        unsigned cp, lo;
        if (e != 'u' || hex4(h, &cp) != 0)
            bad = "a bad escape";
        else if (cp >= 0xDC00 && cp <= 0xDFFF)
            bad = "an unpaired UTF-16 surrogate";
        else if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (h->n - h->i < 2 || h->s[h->i] != '\\' || h->s[h->i + 1] != 'u')
                bad = "an unpaired UTF-16 surrogate";
            else if (h->i += 2, hex4(h, &lo) != 0)
                bad = "a bad escape";
            else if (lo < 0xDC00 || lo > 0xDFFF)
                bad = "an unpaired UTF-16 surrogate";
            else
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        if (!bad && cp == 0) bad = "a NUL character in a string";
        if (!bad) put_utf8(o, &k, cp);
    }
    if (!bad) {
        h->i++;
        o[k] = 0;
        if (text_is_utf8(o)) return o;
        bad = "a string that is not UTF-8";
    }
    hfail(h, "%s", bad);
    free(o);
    return NULL;
}

// a non-negative integer without sign, fraction or exponent (what a u64 field takes), at most 2^53
static int uint_val(Hdr *h, uint64_t *v) {
    ws(h);
    size_t b = h->i;
    *v = 0;
    while (h->i < h->n && h->s[h->i] >= '0' && h->s[h->i] <= '9') {
        if (*v > (1ull << 53) / 10) return hfail(h, "a number too large");
        *v = *v * 10 + (uint64_t)(h->s[h->i++] - '0');
    }
    if (h->i == b) return hfail(h, "a non-negative integer expected");
    if (h->s[b] == '0' && h->i - b > 1) return hfail(h, "a number with a leading zero");
    if (h->i < h->n && (h->s[h->i] == '.' || h->s[h->i] == 'e' || h->s[h->i] == 'E')) return hfail(h, "a number that is not an integer");
    return 0;
}

// skips any value (an unknown field of a tensor entry)
static int skip_value(Hdr *h, int depth) {
    if (depth > JSON_MAX_DEPTH) return hfail(h, "nesting deeper than %d", JSON_MAX_DEPTH);
    ws(h);
    if (h->i >= h->n) return hfail(h, "a value expected");
    char ch = h->s[h->i];
    if (ch == '"') {
        char *s = str(h);
        free(s);
        return s ? 0 : -1;
    }
    if (ch == '{' || ch == '[') {
        char close = ch == '{' ? '}' : ']';
        h->i++;
        if (eat(h, close)) return 0;
        do {
            if (ch == '{') {
                char *k = str(h);
                free(k);
                if (!k || !eat(h, ':')) return hfail(h, "':' expected");
            }
            if (skip_value(h, depth + 1) != 0) return -1;
        } while (eat(h, ','));
        return eat(h, close) ? 0 : hfail(h, "'%c' expected", close);
    }
    static const char *const words[] = {"true", "false", "null"};
    for (int k = 0; k < 3; k++)
        if (h->n - h->i >= strlen(words[k]) && !memcmp(h->s + h->i, words[k], strlen(words[k]))) {
            h->i += strlen(words[k]);
            return 0;
        }
    // a number: -? int frac? exp?
    size_t b = h->i;
    if (h->s[h->i] == '-') h->i++;
    size_t d0 = h->i;
    while (h->i < h->n && h->s[h->i] >= '0' && h->s[h->i] <= '9') h->i++;
    if (h->i == d0 || (h->s[d0] == '0' && h->i - d0 > 1)) return hfail(h, "a bad value");
    if (h->i < h->n && h->s[h->i] == '.') {
        size_t f0 = ++h->i;
        while (h->i < h->n && h->s[h->i] >= '0' && h->s[h->i] <= '9') h->i++;
        if (h->i == f0) return hfail(h, "a bad number");
    }
    if (h->i < h->n && (h->s[h->i] == 'e' || h->s[h->i] == 'E')) {
        h->i++;
        if (h->i < h->n && (h->s[h->i] == '+' || h->s[h->i] == '-')) h->i++;
        size_t e0 = h->i;
        while (h->i < h->n && h->s[h->i] >= '0' && h->s[h->i] <= '9') h->i++;
        if (h->i == e0) return hfail(h, "a bad number");
    }
    return h->i > b ? 0 : hfail(h, "a bad value");
}

static int key_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// Walks an object: for each key, f(h, key, ud) reads the value. A key twice is refused (the
// reference rejects what Python's json would read differently), found by sorting the keys at the
// end: O(n log n), so a header of many keys cannot stall the reader.
static int object(Hdr *h, int (*f)(Hdr *, const char *, void *), void *ud) {
    if (!eat(h, '{')) return hfail(h, "'{' expected");
    if (eat(h, '}')) return 0;
    char **seen = NULL;
    size_t nseen = 0, cap = 0;
    int rc = -1;
    do {
        char *k = str(h);
        if (!k) goto out;
        if (nseen == cap) {
            char **grown = realloc(seen, sizeof *seen * (cap = cap ? 2 * cap : 8));
            if (!grown) {
                free(k);
                hfail(h, "out of memory");
                goto out;
            }
            seen = grown;
        }
        seen[nseen++] = k;
        if (!eat(h, ':')) {
            hfail(h, "':' expected");
            goto out;
        }
        if (f(h, k, ud) != 0) goto out;
    } while (eat(h, ','));
    if (!eat(h, '}')) {
        hfail(h, "'}' or ',' expected");
        goto out;
    }
    qsort(seen, nseen, sizeof *seen, key_cmp);
    for (size_t i = 1; i < nseen; i++)
        if (!strcmp(seen[i - 1], seen[i])) {
            snprintf(h->err, h->errn, "%s: key '%.200s' appears twice in one object", h->path, seen[i]);
            h->failed = true;
            goto out;
        }
    rc = 0;
out:
    for (size_t i = 0; i < nseen; i++) free(seen[i]);
    free(seen);
    return rc;
}

// an array of non-negative integers, at most max of them
static int uint_array(Hdr *h, uint64_t *v, int max, int *n) {
    *n = 0;
    if (!eat(h, '[')) return hfail(h, "'[' expected");
    if (eat(h, ']')) return 0;
    do {
        uint64_t x;
        if (uint_val(h, &x) != 0) return -1;
        if (*n < max) v[*n] = x;
        (*n)++;
    } while (eat(h, ','));
    return eat(h, ']') ? 0 : hfail(h, "']' or ',' expected");
}

// ---------------------------------------------------------------- reading

typedef struct {
    WFile *f;
    size_t data_size;
    const unsigned char *base;
    int cap, nmeta, metacap; // entries' capacity; metadata pairs and their capacity
    // the entry being read
    const char *name;
    char *dtype;
    uint64_t shape[TENSOR_MAX_DIMS + 1], off[3];
    int ndim, noff;
    bool has_shape, has_off;
} StRead;

static int entry_field(Hdr *h, const char *key, void *ud) {
    StRead *r = ud;
    if (!strcmp(key, "dtype")) {
        free(r->dtype);
        return (r->dtype = str(h)) ? 0 : -1;
    }
    bool shape = !strcmp(key, "shape");
    if (!shape && strcmp(key, "data_offsets")) return skip_value(h, 1);
    size_t at = h->i;
    if ((shape ? uint_array(h, r->shape, TENSOR_MAX_DIMS + 1, &r->ndim) : uint_array(h, r->off, 3, &r->noff)) == 0)
        return shape ? (r->has_shape = true) : (r->has_off = true), 0;
    snprintf(h->err, h->errn, "%s: tensor '%.200s': %s (not a list of non-negative integers, at byte %zu)", r->f->path, r->name,
             shape ? "bad size in shape" : "data_offsets must be [begin, end]", at);
    return -1;
}

static int meta_field(Hdr *h, const char *key, void *ud) {
    StRead *r = ud;
    char *v = str(h);
    if (!v) return -1;
    if (r->nmeta == r->metacap) { // pairs and the NULL after them, grown by doubling
        int cap = r->metacap ? 2 * r->metacap : 8;
        char **m = realloc(r->f->meta, sizeof *m * (size_t)(2 * cap + 1));
        if (!m) {
            free(v);
            return hfail(h, "out of memory");
        }
        r->f->meta = m, r->metacap = cap;
    }
    char **m = r->f->meta + 2 * r->nmeta;
    m[0] = strdup(key), m[1] = v, m[2] = NULL;
    r->nmeta++;
    return m[0] ? 0 : hfail(h, "out of memory");
}

// one tensor entry, checked against the data section
static int top_field(Hdr *h, const char *key, void *ud) {
    StRead *r = ud;
    WFile *f = r->f;
    if (!strcmp(key, "__metadata__")) {
        if (f->meta) { // the same words as any key twice (the check at the object's end would come too late)
            snprintf(h->err, h->errn, "%s: key '__metadata__' appears twice in one object", h->path);
            return h->failed = true, -1;
        }
        ws(h);
        if (h->n - h->i >= 4 && !memcmp(h->s + h->i, "null", 4)) return h->i += 4, 0;
        f->meta = calloc(1, sizeof *f->meta);
        return f->meta ? object(h, meta_field, r) : hfail(h, "out of memory");
    }
    free(r->dtype);
    r->dtype = NULL, r->has_shape = r->has_off = false, r->ndim = r->noff = 0;
    ws(h);
    if (h->i >= h->n || h->s[h->i] != '{') {
        snprintf(h->err, h->errn, "%s: tensor '%.200s': entry is not an object", f->path, key);
        return h->failed = true, -1;
    }
    r->name = key;
    if (object(h, entry_field, r) != 0) return -1;
    const char *nm = key, *path = f->path;
    char *err = h->err;
    size_t errn = h->errn;
    h->failed = true; // every return below is an error with its own message
    if (!r->dtype) return errorf(err, errn, "%s: tensor '%.200s': missing dtype", path, nm);
    int di = wdtype_from_name(r->dtype);
    if (di < 0) return errorf(err, errn, "%s: tensor '%.200s': unknown dtype '%.40s'", path, nm, r->dtype);
    if (!r->has_shape || r->ndim > TENSOR_MAX_DIMS)
        return errorf(err, errn, "%s: tensor '%.200s': shape is not a list of at most %d sizes", path, nm, TENSOR_MAX_DIMS);
    if (!r->has_off || r->noff != 2) return errorf(err, errn, "%s: tensor '%.200s': data_offsets must be [begin, end]", path, nm);
    uint64_t numel = 1;
    for (int k = 0; k < r->ndim; k++) {
        if (r->shape[k] > (uint64_t)1e15) return errorf(err, errn, "%s: tensor '%.200s': bad size in shape", path, nm);
        if (r->shape[k] && numel > UINT64_MAX / r->shape[k] / 8) return errorf(err, errn, "%s: tensor '%.200s': shape too large", path, nm);
        numel *= r->shape[k];
    }
    uint64_t b = r->off[0], en = r->off[1];
    if (en < b || en > r->data_size)
        return errorf(err, errn, "%s: tensor '%.200s': data_offsets [%llu, %llu] outside the data (%zu bytes)", path, nm,
                      (unsigned long long)b, (unsigned long long)en, r->data_size);
    uint64_t want = numel * wdtype_size((WDtype)di);
    if (en - b != want)
        return errorf(err, errn, "%s: tensor '%.200s': %s shape needs %llu bytes but data_offsets span %llu", path, nm,
                      wdtype_name((WDtype)di), (unsigned long long)want, (unsigned long long)(en - b));
    if (f->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 16;
        WEntry *e = realloc(f->e, sizeof *e * (size_t)cap);
        if (!e) return errorf(err, errn, "%s: out of memory reading the header", path);
        f->e = e, r->cap = cap;
    }
    WEntry *e = &f->e[f->n];
    memset(e, 0, sizeof *e);
    if (!(e->name = strdup(nm))) return errorf(err, errn, "%s: out of memory reading the header", path);
    f->n++;
    e->dtype = (WDtype)di;
    e->ndim = r->ndim;
    int64_t s = 1;
    for (int d = e->ndim - 1; d >= 0; d--) e->shape[d] = (int64_t)r->shape[d], e->strides[d] = s, s *= e->shape[d];
    e->data = r->base + b;
    h->failed = false;
    return 0;
}

static int span_cmp(const void *a, const void *b) {
    const WEntry *x = *(const WEntry *const *)a, *y = *(const WEntry *const *)b;
    return x->data < y->data ? -1 : x->data > y->data;
}

// two tensors sharing bytes is a crafted or broken file
static int check_overlaps(WFile *f, const unsigned char *base, char *err, size_t errn) {
    const WEntry **order = malloc(sizeof *order * (size_t)(f->n ? f->n : 1));
    if (!order) return errorf(err, errn, "%s: out of memory", f->path);
    for (int i = 0; i < f->n; i++) order[i] = &f->e[i];
    qsort(order, (size_t)f->n, sizeof *order, span_cmp);
    // the furthest end of the non-empty spans so far: an empty tensor (its span [k, k]) overlaps
    // nothing, wherever it sits, as the reference reader accepts
    int rc = 0;
    size_t end = 0;
    const WEntry *last = NULL;
    for (int i = 0; i < f->n && !rc; i++) {
        const WEntry *b = order[i];
        size_t bn = wdtype_size(b->dtype), start = (size_t)(b->data - base);
        for (int d = 0; d < b->ndim; d++) bn *= (size_t)b->shape[d];
        if (!bn) continue;
        if (last && start < end) {
            snprintf(err, errn, "%s: tensors '%.200s' and '%.200s' overlap in the data", f->path, last->name, b->name);
            rc = -1;
        }
        if (start + bn > end) end = start + bn, last = b;
    }
    free(order);
    return rc;
}

int safetensors_open(WFile *f, const char *path, char *err, size_t errn) {
    if (wfile_map(f, path, err, errn) != 0) return -1;
    if (f->size < 8) {
        snprintf(err, errn, "%s: not a safetensors file (%zu bytes, shorter than the 8-byte header length)", path, f->size);
        goto fail;
    }
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | f->map[i];
    if (hl > SAFETENSORS_MAX_HEADER) {
        snprintf(err, errn, "%s: safetensors header length %llu is above the limit of %u bytes", path, (unsigned long long)hl,
                 SAFETENSORS_MAX_HEADER);
        goto fail;
    }
    if (hl > f->size - 8) {
        snprintf(err, errn, "%s: safetensors header length %llu runs past the end of the file (%zu bytes)", path, (unsigned long long)hl,
                 f->size);
        goto fail;
    }
    Hdr h = {(const char *)f->map + 8, (size_t)hl, 0, path, err, errn, false};
    StRead r = {.f = f, .data_size = f->size - 8 - (size_t)hl, .base = f->map + 8 + hl};
    int rc = object(&h, top_field, &r);
    free(r.dtype);
    if (rc != 0) goto fail;
    ws(&h);
    if (h.i != h.n) {
        hfail(&h, "text after the object");
        goto fail;
    }
    if (check_overlaps(f, r.base, err, errn) != 0 || wfile_index(f, err, errn) != 0) goto fail;
    return 0;
fail:
    wfile_close(f);
    return -1;
}

// ---------------------------------------------------------------- writing

static int item_cmp(const void *a, const void *b) { return strcmp(((const StItem *)a)->name, ((const StItem *)b)->name); }

static const char *st_dtype(const Tensor *t) {
    return t->dtype == DT_F32 ? "F32" : t->dtype == DT_F64 ? "F64" : t->dtype == DT_I64 ? "I64" : "U8";
}

// the header, padded with spaces to a multiple of 8 bytes; NULL with a message
static char *header_json(const StItem *items, int n, const char *const *metadata, size_t *len, const char *path, char *err, size_t errn) {
    StrBuf o = {0};
    sb_printf(&o, "{");
    if (metadata && metadata[0]) {
        sb_printf(&o, "\"__metadata__\":{");
        for (int i = 0; metadata[i] && metadata[i + 1]; i += 2) {
            if (i) sb_printf(&o, ",");
            sb_json_str(&o, metadata[i]), sb_printf(&o, ":"), sb_json_str(&o, metadata[i + 1]);
        }
        sb_printf(&o, "}");
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const Tensor *t = items[i].t;
        if (o.n > 1) sb_printf(&o, ",");
        sb_json_str(&o, items[i].name);
        sb_printf(&o, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype(t));
        for (int d = 0; d < t->ndim; d++) sb_printf(&o, d ? ",%lld" : "%lld", (long long)t->shape[d]);
        uint64_t nb = (uint64_t)tensor_numel(t) * dtype_size(t->dtype);
        sb_printf(&o, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off, (unsigned long long)(off + nb));
        off += nb;
    }
    sb_printf(&o, "}");
    while (!o.oom && o.n % 8) sb_printf(&o, " ");
    if (o.oom) {
        sb_free(&o);
        snprintf(err, errn, "%s: out of memory writing the header", path);
        return NULL;
    }
    *len = o.n;
    return o.s;
}

static int check_items(const StItem *items, int n, const char *path, char *err, size_t errn) {
    for (int i = 0; i < n; i++) {
        if (!items[i].name || !items[i].t || !text_is_utf8(items[i].name) || !strcmp(items[i].name, "__metadata__"))
            return errorf(err, errn, "%s: tensor %d has no usable name (UTF-8, not __metadata__)", path, i);
        DType d = items[i].t->dtype;
        if (d != DT_F32 && d != DT_F64 && d != DT_I64 && d != DT_U8)
            return errorf(err, errn, "%s: tensor '%.200s' has a dtype safetensors cannot hold here", path, items[i].name);
        if (i && !strcmp(items[i - 1].name, items[i].name))
            return errorf(err, errn, "%s: tensor '%.200s' given twice", path, items[i].name);
    }
    return 0;
}

int safetensors_write(const char *path, const StItem *items0, int n, const char *const *metadata, bool replace, char *err, size_t errn) {
    StItem *items = malloc(sizeof *items * (size_t)(n ? n : 1));
    if (!items) return errorf(err, errn, "%s: out of memory", path);
    memcpy(items, items0, sizeof *items * (size_t)n);
    qsort(items, (size_t)n, sizeof *items, item_cmp);
    size_t hl = 0;
    char *hdr = check_items(items, n, path, err, errn) == 0 ? header_json(items, n, metadata, &hl, path, err, errn) : NULL;
    int rc = -1;
    AtomicFile af;
    if (!hdr || atomic_begin(&af, path, err, errn) != 0) goto out;
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    if (atomic_write(&af, lenb, 8, err, errn) != 0 || atomic_write(&af, hdr, hl, err, errn) != 0) goto out;
    Ctx *c = ctx_new(1 << 16);
    bool ok = c != NULL;
    if (!ok) snprintf(err, errn, "%s: out of memory", path), atomic_abort(&af);
    for (int i = 0; ok && i < n; i++) {
        const Tensor *t = tensor_contiguous(c, items[i].t);
        if (!t) {
            snprintf(err, errn, "%s: out of memory writing '%.200s'", path, items[i].name);
            atomic_abort(&af);
            ok = false;
            break;
        }
        ok = atomic_write(&af, t->data, (size_t)tensor_numel(t) * dtype_size(t->dtype), err, errn) == 0;
        ctx_reset(c);
    }
    ctx_free(c);
    if (ok && atomic_commit(&af, replace, err, errn) == 0) rc = 0;
out:
    free(hdr);
    free(items);
    return rc;
}

int safetensors_save(const char *path, const StItem *items, int n, const char *const *metadata, char *err, size_t errn) {
    return safetensors_write(path, items, n, metadata, true, err, errn);
}
