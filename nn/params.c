// params.c: the parameter set: names, mode, counting, freezing, and safetensors save/load.
#include "../base/fileio.h"
#include "nn.h"

#include "../formats/weights.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nn_params_init(NnParams *ps, Ctx *pc, uint64_t seed) {
    memset(ps, 0, sizeof *ps);
    ps->ctx = pc;
    ps->own_rng = rng_new(seed);
    ps->rng = &ps->own_rng;
    ps->training = true;
}

void nn_params_train(NnParams *ps, bool on) { ps->training = on; }

static NnParam *find(const NnParams *ps, const char *name);

int nn_scope_push(NnParams *ps, const char *name) {
    size_t n = name ? strlen(name) : 0, at = strlen(ps->scope);
    if (!n || name[0] == '.' || name[n - 1] == '.' || at + (at > 0) + n >= sizeof ps->scope) {
        ctx_fail(ps->ctx, "nn_scope_push: '%s' cannot extend the scope '%s' (empty, a dot at an end, or over %zu characters)",
                 name ? name : "(null)", ps->scope, sizeof ps->scope - 1);
        return -1;
    }
    if (at) ps->scope[at++] = '.';
    memcpy(ps->scope + at, name, n + 1); // fits: checked above
    return 0;
}

void nn_scope_pop(NnParams *ps) {
    char *dot = strrchr(ps->scope, '.');
    if (dot)
        *dot = 0;
    else
        ps->scope[0] = 0;
}

static int add(NnParams *ps, const char *name, Tensor *t, bool buffer) {
    if (!ps || !name || !t) return -1;
    char scoped[512];
    if (ps->scope[0]) { // under a scope: its prefix first
        if ((size_t)snprintf(scoped, sizeof scoped, "%s.%s", ps->scope, name) >= sizeof scoped) {
            if (ps->ctx) ctx_fail(ps->ctx, "nn: the name '%s.%s' is too long", ps->scope, name);
            return -1;
        }
        name = scoped;
    }
    if (find(ps, name)) { // both would be trained, and the mistake would show only when saving
        if (ps->ctx)
            ctx_fail(ps->ctx, "nn: the parameter name '%s' is registered twice in one set (the second is refused)", name);
        else
            fprintf(stderr, "nn: the parameter name '%s' is registered twice in one set (the second is refused)\n", name);
        return -1;
    }
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? ps->cap * 2 : 64;
        ps->p = realloc(ps->p, sizeof *ps->p * (size_t)ps->cap);
        if (!ps->p) abort();
    }
    ps->p[ps->n] = (NnParam){strdup(name), t, buffer};
    if (!ps->p[ps->n].name) abort();
    t->name = ps->p[ps->n].name;
    ps->n++;
    return 0;
}

int nn_params_add(NnParams *ps, const char *name, Tensor *t) { return add(ps, name, t, false); }
int nn_params_add_buffer(NnParams *ps, const char *name, Tensor *t) { return add(ps, name, t, true); }

static NnParam *find(const NnParams *ps, const char *name) {
    for (int i = 0; i < ps->n; i++)
        if (!strcmp(ps->p[i].name, name)) return &ps->p[i];
    return NULL;
}

Tensor *nn_params_get(const NnParams *ps, const char *name) {
    const NnParam *p = find(ps, name);
    return p ? p->t : NULL;
}

bool nn_params_replace(NnParams *ps, const char *name, Tensor *t) {
    NnParam *p = find(ps, name);
    if (p) p->t = t, t->name = p->name;
    return p != NULL;
}

int64_t nn_params_count(const NnParams *ps, bool trainable_only) {
    int64_t n = 0;
    for (int i = 0; i < ps->n; i++)
        if (!ps->p[i].buffer && (!trainable_only || ps->p[i].t->requires_grad)) n += tensor_numel(ps->p[i].t);
    return n;
}

int nn_params_set_trainable(NnParams *ps, const char *pattern, bool on) {
    int k = 0;
    for (int i = 0; i < ps->n; i++)
        if (!ps->p[i].buffer && fnmatch(pattern, ps->p[i].name, 0) == 0) {
            ag_set_requires_grad(ps->p[i].t, on);
            k++;
        }
    return k;
}

int nn_params_quantize(NnParams *ps, const char *pattern) {
    int k = 0;
    for (int i = 0; i < ps->n; i++) {
        Tensor *t = ps->p[i].t;
        if (ps->p[i].buffer || t->dtype != DT_F32 || t->ndim != 2 || fnmatch(pattern, ps->p[i].name, 0) != 0) continue;
        if (!tensor_quantize_int8(t)) return -1;
        k++;
    }
    return k;
}

void nn_params_free(NnParams *ps) {
    for (int i = 0; i < ps->n; i++) free(ps->p[i].name);
    free(ps->p);
    memset(ps, 0, sizeof *ps);
}

// ---- safetensors ----

static bool considered(const NnParam *p, bool trainable_only) { return !trainable_only || (!p->buffer && p->t->requires_grad); }

int nn_params_save(const NnParams *ps, const char *path, bool trainable_only, char *err, size_t errn) {
    if (!ps || !path) return errorf(err, errn, "nn_params_save: %s is NULL", ps ? "the path" : "the parameter set");
    StItem *items = malloc(sizeof *items * (size_t)(ps->n ? ps->n : 1));
    if (!items) return errorf(err, errn, "%s: out of memory", path);
    int n = 0;
    for (int i = 0; i < ps->n; i++)
        if (considered(&ps->p[i], trainable_only)) items[n++] = (StItem){ps->p[i].name, ps->p[i].t};
    int rc = safetensors_save(path, items, n, (const char *const[]){"format", "pt", NULL}, err, errn);
    free(items);
    return rc;
}

static WDtype file_dtype(DType d) { return d == DT_F64 ? WD_F64 : d == DT_I64 ? WD_I64 : d == DT_U8 ? WD_U8 : WD_F32; }

int nn_params_load(NnParams *ps, const char *path, bool trainable_only, char *err, size_t errn) {
    if (!ps || !path) return errorf(err, errn, "nn_params_load: %s is NULL", ps ? "the path" : "the parameter set");
    WFile f;
    if (safetensors_open(&f, path, err, errn) != 0) return -1;
    int rc = -1, used = 0;
    char s1[SHAPE_STR_BUF], s2[SHAPE_STR_BUF];
    for (int i = 0; i < ps->n; i++) { // everything checked before anything is written
        const NnParam *p = &ps->p[i];
        if (!considered(p, trainable_only)) continue;
        const WEntry *e = wfile_find(&f, p->name);
        if (!e) {
            snprintf(err, errn, "%s: no tensor '%.200s'", path, p->name);
            goto out;
        }
        bool same = e->ndim == p->t->ndim && e->dtype == file_dtype(p->t->dtype);
        for (int d = 0; same && d < e->ndim; d++) same = e->shape[d] == p->t->shape[d];
        if (!same) {
            Tensor fake = {.ndim = e->ndim};
            memcpy(fake.shape, e->shape, sizeof fake.shape);
            snprintf(err, errn, "%s: tensor '%.200s' is %s %s, the model's is %s %s", path, p->name, wdtype_name(e->dtype),
                     shape_str(&fake, s1, sizeof s1), wdtype_name(file_dtype(p->t->dtype)), shape_str(p->t, s2, sizeof s2));
            goto out;
        }
        used++;
    }
    if (used != f.n) {
        for (int k = 0; k < f.n; k++) {
            const NnParam *p = find(ps, f.e[k].name);
            if (!p || !considered(p, trainable_only)) {
                snprintf(err, errn, "%s: tensor '%.200s' is not %s of the model", path, f.e[k].name,
                         trainable_only ? "a trainable parameter" : "a parameter or buffer");
                goto out;
            }
        }
    }
    for (int i = 0; i < ps->n; i++) {
        Tensor *t = ps->p[i].t;
        if (!considered(&ps->p[i], trainable_only)) continue;
        const WEntry *e = wfile_find(&f, ps->p[i].name);
        size_t nb = (size_t)tensor_numel(t) * dtype_size(t->dtype);
        void *buf = malloc(nb ? nb : 1); // aligned (the file's bytes need not be)
        Ctx *c = ctx_new(1 << 12);
        if (!buf || !c) {
            free(buf), ctx_free(c);
            snprintf(err, errn, "%s: out of memory", path);
            goto out;
        }
        memcpy(buf, e->data, nb);
        tensor_copy(t, tensor_from_buffer(c, t->dtype, e->ndim, e->shape, buf)); // t may be a strided view
        ctx_free(c);
        free(buf);
    }
    rc = 0;
out:
    wfile_close(&f);
    return rc;
}
