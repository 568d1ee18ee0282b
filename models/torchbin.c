// torchbin.c: pytorch_model.bin, the zip format torch.save writes: ARCHIVE/data.pkl (a pickle
// of the state dict) and ARCHIVE/data/KEY (raw little-endian storages, stored uncompressed).
// The pickle is interpreted by a small stack machine that knows only the opcodes a state dict
// uses and only the globals that rebuild tensors; anything else is refused. Nothing executes.
#include "../base/fileio.h"
#include "checkpoint.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

// ---------------------------------------------------------------- zip

typedef struct {
    char name[512];
    uint64_t off, csize, usize; // offset of the local header; sizes
    uint32_t crc;               // CRC-32 of the uncompressed bytes
    int method;
} ZipEnt;

static uint64_t rd(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static int zip_list(const WFile *f, ZipEnt **out, int *nout, char *err, size_t errn) {
    const unsigned char *m = f->map;
    size_t sz = f->size;
    if (sz < 22) {
        return errorf(err, errn, "%s: not a zip archive (too short)", f->path);
    }
    size_t eocd = 0;
    bool found = false;
    for (size_t i = sz - 22 + 1; i-- > 0 && sz - i <= 65557;)
        if (rd(m + i, 4) == 0x06054b50) {
            eocd = i;
            found = true;
            break;
        }
    if (!found) {
        return errorf(err, errn, "%s: not a zip archive (no end-of-directory record)", f->path);
    }
    uint64_t count = rd(m + eocd + 10, 2), cdsize = rd(m + eocd + 12, 4), cdoff = rd(m + eocd + 16, 4);
    if ((count == 0xffff || cdoff == 0xffffffff || cdsize == 0xffffffff) && eocd >= 20 && rd(m + eocd - 20, 4) == 0x07064b50) {
        uint64_t z = rd(m + eocd - 20 + 8, 8);
        if (z > sz - 56 || rd(m + z, 4) != 0x06064b50) {
            return errorf(err, errn, "%s: broken zip64 directory", f->path);
        }
        count = rd(m + z + 32, 8), cdsize = rd(m + z + 40, 8), cdoff = rd(m + z + 48, 8);
    }
    if (cdoff > sz || cdsize > sz - cdoff || count > cdsize / 46) {
        return errorf(err, errn, "%s: broken zip directory (offset %llu, size %llu, %llu entries)", f->path, (unsigned long long)cdoff,
                      (unsigned long long)cdsize, (unsigned long long)count);
    }
    ZipEnt *e = calloc((size_t)(count ? count : 1), sizeof *e);
    size_t p = (size_t)cdoff, end = (size_t)(cdoff + cdsize);
    for (uint64_t i = 0; i < count; i++) {
        if (p + 46 > end || rd(m + p, 4) != 0x02014b50) {
            snprintf(err, errn, "%s: broken zip directory entry %llu", f->path, (unsigned long long)i);
            free(e);
            return -1;
        }
        size_t nl = rd(m + p + 28, 2), xl = rd(m + p + 30, 2), cl = rd(m + p + 32, 2);
        if (p + 46 + nl + xl + cl > end || nl >= sizeof e[i].name) {
            snprintf(err, errn, "%s: broken zip directory entry %llu", f->path, (unsigned long long)i);
            free(e);
            return -1;
        }
        memcpy(e[i].name, m + p + 46, nl);
        e[i].method = (int)rd(m + p + 10, 2);
        e[i].crc = (uint32_t)rd(m + p + 16, 4);
        e[i].csize = rd(m + p + 20, 4), e[i].usize = rd(m + p + 24, 4), e[i].off = rd(m + p + 42, 4);
        for (size_t x = p + 46 + nl; x + 4 <= p + 46 + nl + xl;) { // zip64 extra field
            size_t id = rd(m + x, 2), len = rd(m + x + 2, 2), q = x + 4;
            if (x + 4 + len > p + 46 + nl + xl) break;
            if (id == 1) {
                if (e[i].usize == 0xffffffff && q + 8 <= x + 4 + len) e[i].usize = rd(m + q, 8), q += 8;
                if (e[i].csize == 0xffffffff && q + 8 <= x + 4 + len) e[i].csize = rd(m + q, 8), q += 8;
                if (e[i].off == 0xffffffff && q + 8 <= x + 4 + len) e[i].off = rd(m + q, 8);
            }
            x += 4 + len;
        }
        p += 46 + nl + xl + cl;
    }
    *out = e;
    *nout = (int)count;
    return 0;
}

// the entry's bytes inside the mapping (stored entries only)
static const unsigned char *zip_data(const WFile *f, const ZipEnt *z, char *err, size_t errn) {
    if (z->off > f->size - 30 || rd(f->map + z->off, 4) != 0x04034b50) {
        snprintf(err, errn, "%s: broken zip entry '%s'", f->path, z->name);
        return NULL;
    }
    uint64_t data = z->off + 30 + rd(f->map + z->off + 26, 2) + rd(f->map + z->off + 28, 2);
    if (data > f->size || z->csize > f->size - data) {
        snprintf(err, errn, "%s: zip entry '%s' runs past the end of the file", f->path, z->name);
        return NULL;
    }
    return f->map + data;
}

static bool crc_ok(const unsigned char *p, uint64_t n, uint32_t want) {
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION // (libFuzzer's convention) lets the fuzzer reach the pickle machine
    return true;
#endif
    uLong c = crc32(0L, Z_NULL, 0);
    while (n) { // zlib takes uInt lengths
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, k);
        p += k, n -= k;
    }
    return (uint32_t)c == want;
}

// ---------------------------------------------------------------- pickle values

typedef enum { PV_NONE, PV_BOOL, PV_INT, PV_FLOAT, PV_STR, PV_TUPLE, PV_LIST, PV_DICT, PV_GLOBAL, PV_MARK, PV_STORAGE, PV_TENSOR } PvType;

typedef struct Pv {
    PvType t;
    int64_t i;
    double f;
    char *s;        // string, global "module name"
    struct Pv **it; // tuple/list items; dict: key, value, key, value...
    int n, cap;
    // storage: dtype, bytes, numel; tensor: entry
    WDtype dt;
    const unsigned char *data;
    int64_t numel;
    WEntry *e; // a tensor's entry (allocated for tensors alone: most values are small)
} Pv;

typedef struct {
    Ctx *c;
    const WFile *f;
    const ZipEnt *zip;
    int nzip;
    char prefix[512];
    char *err;
    size_t errn;
    bool failed;
    size_t objects, max_objects; // values made so far; their bound, from the file's size
} Vm;

static Pv *pv(Vm *vm, PvType t) {
    vm->objects++;
    Pv *v = ctx_alloc(vm->c, sizeof *v);
    v->t = t;
    return v;
}

static void push_item(Vm *vm, Pv *seq, Pv *x) {
    if (seq->n == seq->cap) {
        int cap = seq->cap ? seq->cap * 2 : 8;
        Pv **it = ctx_alloc(vm->c, sizeof *it * (size_t)cap);
        if (seq->n) memcpy(it, seq->it, sizeof *it * (size_t)seq->n);
        seq->it = it;
        seq->cap = cap;
    }
    seq->it[seq->n++] = x;
}

static const struct {
    const char *name;
    WDtype d;
} STORAGES[] = {{"FloatStorage", WD_F32}, {"HalfStorage", WD_F16}, {"BFloat16Storage", WD_BF16}, {"DoubleStorage", WD_F64},
                {"LongStorage", WD_I64},  {"IntStorage", WD_I32},  {"ShortStorage", WD_I16},     {"CharStorage", WD_I8},
                {"ByteStorage", WD_U8},   {"BoolStorage", WD_BOOL}};

static bool global_allowed(const char *mod, const char *name) {
    if (!strcmp(mod, "collections") && !strcmp(name, "OrderedDict")) return true;
    if (!strcmp(mod, "torch._utils") && (!strcmp(name, "_rebuild_tensor_v2") || !strcmp(name, "_rebuild_parameter"))) return true;
    if (!strcmp(mod, "torch"))
        for (size_t i = 0; i < sizeof STORAGES / sizeof *STORAGES; i++)
            if (!strcmp(name, STORAGES[i].name)) return true;
    return false;
}

#define VFAIL(...)                                                                                                                         \
    do {                                                                                                                                   \
        if (!vm->failed) snprintf(vm->err, vm->errn, __VA_ARGS__);                                                                         \
        vm->failed = true;                                                                                                                 \
        return NULL;                                                                                                                       \
    } while (0)

static Pv *persistent_load(Vm *vm, Pv *pid) {
    // ('storage', torch.FloatStorage, 'KEY', 'cpu', numel)
    if (pid->t != PV_TUPLE || pid->n != 5 || pid->it[0]->t != PV_STR || strcmp(pid->it[0]->s, "storage") || pid->it[1]->t != PV_GLOBAL ||
        pid->it[2]->t != PV_STR || pid->it[4]->t != PV_INT)
        VFAIL("%s: unexpected persistent id in data.pkl", vm->f->path);
    const char *ty = strchr(pid->it[1]->s, ' ') + 1;
    int di = -1;
    for (size_t i = 0; i < sizeof STORAGES / sizeof *STORAGES; i++)
        if (!strcmp(ty, STORAGES[i].name)) di = (int)i;
    if (di < 0) VFAIL("%s: unknown storage type '%s'", vm->f->path, ty);
    char want[1100];
    snprintf(want, sizeof want, "%sdata/%s", vm->prefix, pid->it[2]->s);
    for (int i = 0; i < vm->nzip; i++) {
        if (strcmp(vm->zip[i].name, want)) continue;
        if (vm->zip[i].method != 0) VFAIL("%s: storage '%s' is compressed (torch.save stores them uncompressed)", vm->f->path, want);
        Pv *s = pv(vm, PV_STORAGE);
        s->dt = STORAGES[di].d;
        s->numel = pid->it[4]->i;
        if (vm->zip[i].usize != vm->zip[i].csize)
            VFAIL("%s: stored entry '%s' claims %llu bytes in the directory but %llu stored", vm->f->path, want,
                  (unsigned long long)vm->zip[i].usize, (unsigned long long)vm->zip[i].csize);
        if (s->numel < 0 || (uint64_t)s->numel > vm->zip[i].usize / wdtype_size(s->dt))
            VFAIL("%s: storage '%s' holds %llu bytes, fewer than %lld elements need", vm->f->path, want,
                  (unsigned long long)vm->zip[i].usize, (long long)s->numel);
        s->data = zip_data(vm->f, &vm->zip[i], vm->err, vm->errn);
        if (!s->data) {
            vm->failed = true;
            return NULL;
        }
        if (!crc_ok(s->data, vm->zip[i].usize, vm->zip[i].crc))
            VFAIL("%s: zip entry '%s' fails its CRC-32 check (the file is damaged)", vm->f->path, want);
        return s;
    }
    VFAIL("%s: storage '%s' is missing from the archive", vm->f->path, want);
}

static Pv *rebuild_tensor(Vm *vm, Pv *args) {
    // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    if (args->n < 4 || args->it[0]->t != PV_STORAGE || args->it[1]->t != PV_INT || args->it[2]->t != PV_TUPLE ||
        args->it[3]->t != PV_TUPLE || args->it[2]->n != args->it[3]->n || args->it[2]->n > TENSOR_MAX_DIMS)
        VFAIL("%s: malformed _rebuild_tensor_v2 arguments", vm->f->path);
    Pv *s = args->it[0], *t = pv(vm, PV_TENSOR);
    t->e = ctx_alloc(vm->c, sizeof *t->e);
    memset(t->e, 0, sizeof *t->e);
    int64_t off = args->it[1]->i, last = off, numel = 1;
    t->e->dtype = s->dt;
    t->e->ndim = args->it[2]->n;
    bool empty = false, overflow = off < 0;
    for (int d = 0; d < t->e->ndim; d++) {
        Pv *a = args->it[2]->it[d], *b = args->it[3]->it[d];
        if (a->t != PV_INT || b->t != PV_INT || a->i < 0 || b->i < 0 || a->i > (1ll << 40) || b->i > (1ll << 40))
            VFAIL("%s: bad tensor size or stride", vm->f->path);
        t->e->shape[d] = a->i, t->e->strides[d] = b->i;
        int64_t reach;
        overflow |= __builtin_mul_overflow(numel, a->i, &numel);
        if (a->i == 0)
            empty = true;
        else
            overflow |= __builtin_mul_overflow(a->i - 1, b->i, &reach) || __builtin_add_overflow(last, reach, &last);
    }
    if (overflow) VFAIL("%s: tensor offset, sizes and strides overflow (offset %lld)", vm->f->path, (long long)off);
    if (!empty && last >= s->numel)
        VFAIL("%s: tensor reaches element %lld of a storage of %lld", vm->f->path, (long long)last, (long long)s->numel);
    // a view may repeat elements (stride 0), but not claim more elements than the file holds
    if (numel > s->numel && !empty)
        VFAIL("%s: tensor of %lld elements on a storage of %lld", vm->f->path, (long long)numel, (long long)s->numel);
    t->e->data = s->data + (size_t)off * wdtype_size(s->dt);
    return t;
}

static Pv *reduce(Vm *vm, Pv *fn, Pv *args) {
    if (fn->t != PV_GLOBAL || args->t != PV_TUPLE) VFAIL("%s: REDUCE on something that is not an allowed global", vm->f->path);
    if (!strcmp(fn->s, "collections OrderedDict")) return pv(vm, PV_DICT);
    if (!strcmp(fn->s, "torch._utils _rebuild_tensor_v2")) return rebuild_tensor(vm, args);
    if (!strcmp(fn->s, "torch._utils _rebuild_parameter")) {
        if (args->n < 1 || args->it[0]->t != PV_TENSOR) VFAIL("%s: malformed _rebuild_parameter", vm->f->path);
        return args->it[0];
    }
    VFAIL("%s: calling '%s' is not allowed", vm->f->path, fn->s);
}

// runs the pickle; returns the top-level object
// ---- the machine: a stack, a memo, and one step per opcode family (each false on failure) ----

typedef struct {
    Vm *vm;
    const unsigned char *p;
    size_t n, i;     // the pickle and the next byte
    Pv **st, **memo; // the stack and the memo (arena arrays, grown by doubling)
    size_t sp, sp_cap, memo_n, memo_cap;
} Machine;

static bool mfail(Machine *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool mfail(Machine *m, const char *fmt, ...) {
    Vm *vm = m->vm;
    if (!vm->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(vm->err, vm->errn, fmt, ap);
        va_end(ap);
    }
    vm->failed = true;
    return false;
}

static bool need(Machine *m, size_t k) { return m->i + k <= m->n || mfail(m, "%s: data.pkl is truncated", m->vm->f->path); }

static bool push(Machine *m, Pv *v) {
    if (!v) return false;
    if (m->sp == m->sp_cap) {
        if (m->sp_cap >= (1u << 22)) return mfail(m, "%s: pickle stack too deep", m->vm->f->path);
        Pv **ns = ctx_alloc(m->vm->c, sizeof *ns * m->sp_cap * 2);
        memcpy(ns, m->st, sizeof *ns * m->sp_cap);
        m->st = ns, m->sp_cap *= 2;
    }
    m->st[m->sp++] = v;
    return true;
}
static Pv *pop(Machine *m) { return m->sp ? m->st[--m->sp] : NULL; }
static Pv *top(Machine *m) { return m->sp ? m->st[m->sp - 1] : NULL; }

// the stack index just above the newest mark (0: none)
static size_t above_mark(const Machine *m) {
    size_t k = m->sp;
    while (k > 0 && m->st[k - 1]->t != PV_MARK) k--;
    return k;
}

// K, M, J: an unsigned 1- or 2-byte or a signed 4-byte integer
static bool op_int(Machine *m, unsigned char op) {
    int k = op == 'K' ? 1 : op == 'M' ? 2 : 4;
    if (!need(m, (size_t)k)) return false;
    Pv *v = pv(m->vm, PV_INT);
    v->i = op == 'J' ? (int32_t)rd(m->p + m->i, 4) : (int64_t)rd(m->p + m->i, k);
    m->i += (size_t)k;
    return push(m, v);
}

// LONG1: little-endian two's complement of n bytes
static bool op_long1(Machine *m) {
    if (!need(m, 1)) return false;
    size_t k = m->p[m->i++];
    if (!need(m, k)) return false;
    if (k > 8) return mfail(m, "%s: integer too large in data.pkl", m->vm->f->path);
    uint64_t u = rd(m->p + m->i, (int)k);
    if (k && k < 8 && (m->p[m->i + k - 1] & 0x80)) u |= ~0ull << (8 * k);
    Pv *v = pv(m->vm, PV_INT);
    v->i = (int64_t)u;
    m->i += k;
    return push(m, v);
}

// BINFLOAT: a big-endian double
static bool op_float(Machine *m) {
    if (!need(m, 8)) return false;
    uint64_t b = 0;
    for (int k = 0; k < 8; k++) b = b << 8 | m->p[m->i + k];
    Pv *v = pv(m->vm, PV_FLOAT);
    memcpy(&v->f, &b, 8);
    m->i += 8;
    return push(m, v);
}

// the string and bytes opcodes: a length of 1, 4 or 8 bytes, then the bytes
static bool op_string(Machine *m, unsigned char op) {
    int lk = (op == 0x8c || op == 'U' || op == 'C') ? 1 : op == 0x8d ? 8 : 4;
    if (!need(m, (size_t)lk)) return false;
    uint64_t L = rd(m->p + m->i, lk);
    m->i += (size_t)lk;
    if (L > m->n - m->i) return mfail(m, "%s: data.pkl is truncated", m->vm->f->path);
    Pv *v = pv(m->vm, PV_STR);
    v->s = ctx_alloc(m->vm->c, (size_t)L + 1);
    memcpy(v->s, m->p + m->i, (size_t)L);
    m->i += (size_t)L;
    return push(m, v);
}

// a global "module name", if it is one a state dict uses (nothing is ever executed)
static bool push_global(Machine *m, const char *mod, const char *name) {
    if (!global_allowed(mod, name))
        return mfail(m, "%s: refusing foreign global '%s.%s' (a state dict needs only tensors; nothing is executed)", m->vm->f->path, mod,
                     name);
    Pv *g = pv(m->vm, PV_GLOBAL);
    g->s = ctx_alloc(m->vm->c, strlen(mod) + strlen(name) + 2);
    sprintf(g->s, "%s %s", mod, name);
    return push(m, g);
}

// GLOBAL "module\nname\n"
static bool op_global(Machine *m) {
    const unsigned char *p = m->p, *a = memchr(p + m->i, '\n', m->n - m->i);
    const unsigned char *b = a ? memchr(a + 1, '\n', m->n - (size_t)(a + 1 - p)) : NULL;
    if (!a || !b) return mfail(m, "%s: data.pkl is truncated", m->vm->f->path);
    char mod[256] = {0}, name[256] = {0};
    if (a - (p + m->i) >= 255 || b - (a + 1) >= 255) return mfail(m, "%s: global name too long", m->vm->f->path);
    memcpy(mod, p + m->i, (size_t)(a - (p + m->i)));
    memcpy(name, a + 1, (size_t)(b - (a + 1)));
    m->i = (size_t)(b + 1 - p);
    return push_global(m, mod, name);
}

static bool op_stack_global(Machine *m) {
    Pv *name = pop(m), *mod = pop(m);
    if (!name || !mod || name->t != PV_STR || mod->t != PV_STR) return mfail(m, "%s: malformed STACK_GLOBAL", m->vm->f->path);
    return push_global(m, mod->s, name->s);
}

// BINPUT, LONG_BINPUT, MEMOIZE (the next index): the top of the stack into the memo
static bool op_memo_put(Machine *m, unsigned char op) {
    size_t idx = m->memo_n;
    if (op != 0x94) {
        int k = op == 'q' ? 1 : 4;
        if (!need(m, (size_t)k)) return false;
        idx = (size_t)rd(m->p + m->i, k);
        m->i += (size_t)k;
    }
    if (!top(m)) return mfail(m, "%s: memo of an empty stack", m->vm->f->path);
    if (idx >= (1u << 22) || idx > m->vm->objects) return mfail(m, "%s: memo index %zu too large", m->vm->f->path, idx);
    if (idx >= m->memo_cap) {
        size_t nc = idx + 1 > m->memo_cap * 2 ? idx + 1 : m->memo_cap * 2;
        Pv **nm = ctx_alloc(m->vm->c, sizeof *nm * nc);
        if (m->memo_cap) memcpy(nm, m->memo, sizeof *nm * m->memo_cap);
        m->memo = nm, m->memo_cap = nc;
    }
    m->memo[idx] = top(m);
    if (idx + 1 > m->memo_n) m->memo_n = idx + 1;
    return true;
}

// BINGET, LONG_BINGET
static bool op_memo_get(Machine *m, unsigned char op) {
    int k = op == 'h' ? 1 : 4;
    if (!need(m, (size_t)k)) return false;
    size_t idx = (size_t)rd(m->p + m->i, k);
    m->i += (size_t)k;
    if (idx >= m->memo_cap || !m->memo[idx]) return mfail(m, "%s: memo index %zu not set", m->vm->f->path, idx);
    return push(m, m->memo[idx]);
}

// TUPLE, LIST, DICT: the items above the mark into a new container
static bool op_collect(Machine *m, unsigned char op) {
    size_t k0 = above_mark(m);
    if (k0 == 0) return mfail(m, "%s: no mark for a tuple", m->vm->f->path);
    Pv *t = pv(m->vm, op == 't' ? PV_TUPLE : op == 'l' ? PV_LIST : PV_DICT);
    for (size_t k = k0; k < m->sp; k++) push_item(m->vm, t, m->st[k]);
    m->sp = k0 - 1;
    return push(m, t);
}

// TUPLE1, TUPLE2, TUPLE3
static bool op_tuple_n(Machine *m, unsigned char op) {
    size_t k = (size_t)(op - 0x84);
    if (m->sp < k) return mfail(m, "%s: stack underflow", m->vm->f->path);
    Pv *t = pv(m->vm, PV_TUPLE);
    for (size_t j = m->sp - k; j < m->sp; j++) push_item(m->vm, t, m->st[j]);
    m->sp -= k;
    return push(m, t);
}

static bool op_append(Machine *m) {
    Pv *x = pop(m), *l = top(m);
    if (!x || !l || l->t != PV_LIST) return mfail(m, "%s: APPEND to a non-list", m->vm->f->path);
    push_item(m->vm, l, x);
    return true;
}

// APPENDS, SETITEMS: the items above the mark into the list or dict below it
static bool op_extend(Machine *m, unsigned char op) {
    size_t k0 = above_mark(m);
    if (k0 < 2) return mfail(m, "%s: no mark for APPENDS/SETITEMS", m->vm->f->path);
    Pv *tgt = m->st[k0 - 2];
    if (tgt->t != (op == 'e' ? PV_LIST : PV_DICT) || (op == 'u' && (m->sp - k0) % 2))
        return mfail(m, "%s: malformed APPENDS/SETITEMS", m->vm->f->path);
    for (size_t k = k0; k < m->sp; k++) push_item(m->vm, tgt, m->st[k]);
    m->sp = k0 - 1;
    return true;
}

static bool op_setitem(Machine *m) {
    Pv *v = pop(m), *k = pop(m), *d = top(m);
    if (!v || !k || !d || d->t != PV_DICT) return mfail(m, "%s: SETITEM on a non-dict", m->vm->f->path);
    push_item(m->vm, d, k);
    push_item(m->vm, d, v);
    return true;
}

// BINPERSID (a storage), REDUCE (a tensor or an OrderedDict), BUILD (state ignored)
static bool op_persid(Machine *m) {
    Pv *pid = pop(m);
    return pid ? push(m, persistent_load(m->vm, pid)) : mfail(m, "%s: stack underflow", m->vm->f->path);
}
static bool op_reduce(Machine *m) {
    Pv *args = pop(m), *fn = pop(m);
    return args && fn ? push(m, reduce(m->vm, fn, args)) : mfail(m, "%s: stack underflow", m->vm->f->path);
}
static bool op_build(Machine *m) {
    Pv *state = pop(m);
    if (!state || !top(m) || (top(m)->t != PV_DICT && top(m)->t != PV_TENSOR))
        return mfail(m, "%s: BUILD on an object that is not a dict or tensor", m->vm->f->path);
    return true;
}

// one opcode (the byte before m->i); false on failure
static bool step(Machine *m, unsigned char op) {
    switch (op) {
    case 0x80: return need(m, 1) && (m->i++, true);    // PROTO
    case 0x95: return need(m, 8) && (m->i += 8, true); // FRAME
    case '(': return push(m, pv(m->vm, PV_MARK));
    case ')': return push(m, pv(m->vm, PV_TUPLE));
    case ']': return push(m, pv(m->vm, PV_LIST));
    case '}': return push(m, pv(m->vm, PV_DICT));
    case 'N': return push(m, pv(m->vm, PV_NONE));
    case 0x88:
    case 0x89: { // NEWTRUE, NEWFALSE
        Pv *b = pv(m->vm, PV_BOOL);
        b->i = op == 0x88;
        return push(m, b);
    }
    case 'K':
    case 'M':
    case 'J': return op_int(m, op);
    case 0x8a: return op_long1(m);
    case 'G': return op_float(m);
    case 'X':
    case 0x8c:
    case 'U':
    case 'T':
    case 0x8d:
    case 'B':
    case 'C': return op_string(m, op);
    case 'c': return op_global(m);
    case 0x93: return op_stack_global(m);
    case 'q':
    case 'r':
    case 0x94: return op_memo_put(m, op);
    case 'h':
    case 'j': return op_memo_get(m, op);
    case 't':
    case 'l':
    case 'd': return op_collect(m, op);
    case 0x85:
    case 0x86:
    case 0x87: return op_tuple_n(m, op);
    case 'a': return op_append(m);
    case 'e':
    case 'u': return op_extend(m, op);
    case 's': return op_setitem(m);
    case 'Q': return op_persid(m);
    case 'R': return op_reduce(m);
    case 'b': return op_build(m);
    default: return mfail(m, "%s: pickle opcode 0x%02x at byte %zu is not allowed in a state dict", m->vm->f->path, op, m->i - 1);
    }
}

// the pickle's value (its STOP's top of the stack), or NULL with the message in vm
static Pv *unpickle(Vm *vm, const unsigned char *p, size_t n) {
    Machine m = {.vm = vm, .p = p, .n = n, .sp_cap = 1024};
    m.st = ctx_alloc(vm->c, sizeof *m.st * m.sp_cap);
    while (m.i < n) {
        // every opcode makes at most one value: their count, and so the memory, stays proportional to
        // the file (a pickle bomb of memo references and empty containers is refused, not built)
        if (vm->objects > vm->max_objects)
            VFAIL("%s: data.pkl builds more than %zu values, more than a file of %zu bytes can describe", vm->f->path, vm->max_objects,
                  vm->f->size);
        unsigned char op = p[m.i++];
        if (op == '.') return pop(&m); // STOP
        if (!step(&m, op)) return NULL;
    }
    VFAIL("%s: data.pkl ends without STOP", vm->f->path);
}

int torchbin_open(WFile *f, const char *path, char *err, size_t errn) {
    if (wfile_map(f, path, err, errn) != 0) return -1;
    ZipEnt *zip = NULL;
    int nzip = 0;
    unsigned char *inflated = NULL;
    Vm vm = {.c = ctx_new(1 << 20), .f = f, .err = err, .errn = errn, .max_objects = 4 * f->size + 4096};
    if (zip_list(f, &zip, &nzip, err, errn) != 0) goto fail;
    const ZipEnt *pk = NULL;
    for (int i = 0; i < nzip; i++) {
        size_t L = strlen(zip[i].name);
        if (L >= 8 && !strcmp(zip[i].name + L - 8, "data.pkl")) {
            pk = &zip[i];
            memcpy(vm.prefix, zip[i].name, L - 8);
            break;
        }
    }
    if (!pk) {
        snprintf(err, errn, "%s: no data.pkl in the archive (not a torch.save file)", path);
        goto fail;
    }
    const unsigned char *pd = zip_data(f, pk, err, errn);
    if (!pd) goto fail;
    size_t plen = (size_t)pk->csize;
    if (pk->method == 8) { // deflated pickle: inflate it
        // a state dict's pickle deflates a few times at most; a deflate bomb (up to 1032:1) is refused
        if (pk->usize > (256u << 20) || pk->usize > 64 * pk->csize + (1u << 20)) {
            snprintf(err, errn, "%s: data.pkl inflates to %llu bytes from %llu: too large", path, (unsigned long long)pk->usize,
                     (unsigned long long)pk->csize);
            goto fail;
        }
        inflated = malloc((size_t)pk->usize + 1);
        if (!inflated) {
            snprintf(err, errn, "%s: out of memory inflating data.pkl", path);
            goto fail;
        }
        z_stream zs = {0};
        zs.next_in = (unsigned char *)pd, zs.avail_in = (uInt)pk->csize;
        zs.next_out = inflated, zs.avail_out = (uInt)pk->usize;
        int zr = inflateInit2(&zs, -MAX_WBITS);
        if (zr == Z_OK) zr = inflate(&zs, Z_FINISH);
        inflateEnd(&zs);
        if (zr != Z_STREAM_END || zs.total_out != pk->usize) {
            snprintf(err, errn, "%s: data.pkl does not inflate", path);
            goto fail;
        }
        pd = inflated, plen = (size_t)pk->usize;
    } else if (pk->method == 0 && pk->usize != pk->csize) {
        snprintf(err, errn, "%s: data.pkl claims %llu bytes but %llu are stored", path, (unsigned long long)pk->usize,
                 (unsigned long long)pk->csize);
        goto fail;
    } else if (pk->method != 0) {
        snprintf(err, errn, "%s: data.pkl uses unsupported zip compression %d", path, pk->method);
        goto fail;
    }
    if (!crc_ok(pd, plen, pk->crc)) {
        snprintf(err, errn, "%s: zip entry '%s' fails its CRC-32 check (the file is damaged)", path, pk->name);
        goto fail;
    }
    vm.zip = zip, vm.nzip = nzip;
    Pv *top = unpickle(&vm, pd, plen);
    if (!top) goto fail;
    if (top->t != PV_DICT) {
        snprintf(err, errn, "%s: the pickle is not a state dict", path);
        goto fail;
    }
    f->e = calloc((size_t)(top->n / 2 + 1), sizeof *f->e);
    for (int k = 0; k + 1 < top->n; k += 2) {
        Pv *key = top->it[k], *val = top->it[k + 1];
        if (key->t != PV_STR || val->t != PV_TENSOR) {
            snprintf(err, errn, "%s: state dict entry %d is not a name and a tensor", path, k / 2);
            goto fail;
        }
        f->e[f->n] = *val->e;
        f->e[f->n].name = strdup(key->s);
        f->n++;
    }
    if (wfile_index(f, err, errn) != 0) goto fail;
    free(zip);
    free(inflated);
    ctx_free(vm.c);
    return 0;
fail:
    free(zip);
    free(inflated);
    ctx_free(vm.c);
    wfile_close(f);
    return -1;
}
