// optim.c: see optim.h.
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static Optim *optim_new(OptimKind kind, const OptimGroup *groups, int ngroups) {
    Optim *o = calloc(1, sizeof *o);
    o->kind = kind;
    o->ngroups = ngroups;
    o->groups = calloc((size_t)ngroups, sizeof *o->groups);
    int total = 0;
    for (int g = 0; g < ngroups; g++) {
        o->groups[g] = groups[g];
        o->groups[g].params = malloc(sizeof(Tensor *) * (size_t)(groups[g].n ? groups[g].n : 1));
        memcpy(o->groups[g].params, groups[g].params, sizeof(Tensor *) * (size_t)groups[g].n);
        total += groups[g].n;
    }
    o->sc = ctx_new(1 << 16);
    o->m = calloc((size_t)(total ? total : 1), sizeof *o->m);
    o->v = calloc((size_t)(total ? total : 1), sizeof *o->v);
    for (int i = 0; i < total; i++) {
        Tensor *p = optim_param(o, i);
        o->m[i] = tensor_zeros(o->sc, DT_F32, p->ndim, p->shape);
        o->v[i] = tensor_zeros(o->sc, DT_F32, p->ndim, p->shape);
    }
    return o;
}

Optim *optim_adamw(const OptimGroup *groups, int ngroups, double beta1, double beta2, double eps) {
    Optim *o = optim_new(OPTIM_ADAMW, groups, ngroups);
    o->beta1 = beta1, o->beta2 = beta2, o->eps = eps;
    return o;
}

Optim *optim_adam(const OptimGroup *groups, int ngroups, double beta1, double beta2, double eps) {
    Optim *o = optim_adamw(groups, ngroups, beta1, beta2, eps);
    o->kind = OPTIM_ADAM;
    return o;
}

Optim *optim_sgd(const OptimGroup *groups, int ngroups, double momentum, double dampening, bool nesterov) {
    Optim *o = optim_new(OPTIM_SGD, groups, ngroups);
    o->momentum = momentum, o->dampening = dampening, o->nesterov = nesterov;
    return o;
}

int optim_nparams(const Optim *o) {
    int n = 0;
    for (int g = 0; g < o->ngroups; g++) n += o->groups[g].n;
    return n;
}

Tensor *optim_param(const Optim *o, int i) {
    for (int g = 0; g < o->ngroups; g++) {
        if (i < o->groups[g].n) return o->groups[g].params[i];
        i -= o->groups[g].n;
    }
    return NULL;
}

void optim_step(Optim *o, double lr) {
    o->t++;
    double bc1 = 1.0 - pow(o->beta1, (double)o->t), bc2 = 1.0 - pow(o->beta2, (double)o->t);
    int k = 0;
    for (int g = 0; g < o->ngroups; g++) {
        const OptimGroup *G = &o->groups[g];
        double glr = lr * G->lr_scale, wd = G->weight_decay;
        for (int j = 0; j < G->n; j++, k++) {
            Tensor *p = G->params[j];
            if (!p->grad) continue;
            p->version++; // written in place: a graph that read it before may not run its backward
            float *w = p->data, *gr = p->grad->data, *m = o->m[k]->data, *v = o->v[k]->data;
            int64_t n = tensor_numel(p);
            if (o->kind == OPTIM_ADAMW || o->kind == OPTIM_ADAM) {
                // PyTorch forms 1 - beta in double and applies it as a float scalar
                float b2 = (float)o->beta2, w1 = (float)(1.0 - o->beta1), w2 = (float)(1.0 - o->beta2);
                double step_size = glr / bc1, sbc2 = sqrt(bc2);
                bool decoupled = o->kind == OPTIM_ADAMW;
                // elementwise, so the same bits on any number of threads
#pragma omp parallel for schedule(static) if (n > 32768)
                for (int64_t i = 0; i < n; i++) {
                    float x = decoupled ? w[i] * (float)(1.0 - glr * wd) : w[i]; // decoupled decay
                    float gi = decoupled ? gr[i] : gr[i] + (float)wd * w[i];     // or L2 in the gradient
                    m[i] = m[i] + w1 * (gi - m[i]);                              // torch's lerp
                    v[i] = b2 * v[i] + w2 * gi * gi;
                    double denom = sqrt((double)v[i]) / sbc2 + o->eps;
                    w[i] = (float)(x - step_size * m[i] / denom);
                }
            } else {
#pragma omp parallel for schedule(static) if (n > 32768)
                for (int64_t i = 0; i < n; i++) {
                    float d = gr[i] + (float)wd * w[i];
                    if (o->momentum != 0) {
                        m[i] = o->t == 1 ? d : (float)o->momentum * m[i] + (float)(1.0 - o->dampening) * d;
                        d = o->nesterov ? d + (float)o->momentum * m[i] : m[i];
                    }
                    w[i] -= (float)glr * d;
                }
            }
        }
    }
}

void optim_zero_grad(Optim *o) {
    for (int g = 0; g < o->ngroups; g++) ag_zero_grad(o->groups[g].params, o->groups[g].n);
}

void optim_free(Optim *o) {
    if (!o) return;
    for (int g = 0; g < o->ngroups; g++) free(o->groups[g].params);
    free(o->groups);
    free(o->m);
    free(o->v);
    ctx_free(o->sc);
    free(o);
}

double optim_clip(Optim *o, double max_norm) {
    int n = optim_nparams(o);
    Tensor **ps = malloc(sizeof *ps * (size_t)(n ? n : 1));
    if (!ps) return NAN;
    for (int i = 0; i < n; i++) ps[i] = optim_param(o, i);
    double norm = optim_clip_grad_norm(ps, n, max_norm);
    free(ps);
    return norm;
}

OptimGroup optim_group_all(const NnParams *ps, double wd) {
    OptimGroup g = {malloc(sizeof(Tensor *) * (size_t)(ps->n ? ps->n : 1)), 0, 1.0, wd};
    for (int i = 0; g.params && i < ps->n; i++)
        if (!ps->p[i].buffer && ps->p[i].t->requires_grad) g.params[g.n++] = ps->p[i].t;
    return g;
}

double optim_clip_grad_norm(Tensor *const *ps, int n, double max_norm) {
    double ss = 0;
    for (int i = 0; i < n; i++) {
        if (!ps[i]->grad) continue;
        const float *g = ps[i]->grad->data;
        for (int64_t j = 0; j < tensor_numel(ps[i]); j++) ss += (double)g[j] * g[j];
    }
    double norm = sqrt(ss);
    double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        float c = (float)coef;
        for (int i = 0; i < n; i++) {
            if (!ps[i]->grad) continue;
            float *g = ps[i]->grad->data;
            for (int64_t j = 0; j < tensor_numel(ps[i]); j++) g[j] *= c;
        }
    }
    return norm;
}

bool optim_decays(const char *name) {
    if (strstr(name, "bias") || strstr(name, "layernorm") || strstr(name, "rmsnorm")) return false;
    // a "norm" component: ".norm." / ".norm" at the end / "_norm" / "norm1", "norm2" (timm)
    for (const char *p = strstr(name, "norm"); p; p = strstr(p + 1, "norm")) {
        bool start = p == name || p[-1] == '.' || p[-1] == '_';
        char after = p[4];
        if (start && (after == 0 || after == '.' || (after >= '0' && after <= '9'))) return false;
    }
    return true;
}

int optim_hf_groups(const NnParams *ps, double wd, OptimGroup out[2]) {
    memset(out, 0, sizeof(OptimGroup) * 2);
    for (int g = 0; g < 2; g++) {
        out[g].params = malloc(sizeof(Tensor *) * (size_t)(ps->n ? ps->n : 1));
        out[g].lr_scale = 1.0;
        out[g].weight_decay = g == 0 ? wd : 0.0;
    }
    for (int i = 0; i < ps->n; i++) {
        if (!ps->p[i].t->requires_grad) continue;
        int g = optim_decays(ps->p[i].name) ? 0 : 1;
        out[g].params[out[g].n++] = ps->p[i].t;
    }
    return 2;
}

void optim_groups_free(OptimGroup *groups, int n) {
    for (int g = 0; g < n; g++) {
        free(groups[g].params);
        groups[g].params = NULL, groups[g].n = 0;
    }
}

double schedule_factor(const Schedule *s, int64_t t) {
    if (t < s->warmup) return (double)t / (double)(s->warmup > 1 ? s->warmup : 1);
    double span = (double)(s->total - s->warmup > 1 ? s->total - s->warmup : 1);
    switch (s->kind) {
    case SCHED_LINEAR: return fmax(0.0, (double)(s->total - t) / span);
    case SCHED_COSINE: return fmax(0.0, 0.5 * (1.0 + cos(M_PI * (double)(t - s->warmup) / span)));
    case SCHED_CONSTANT: return 1.0;
    }
    return 1.0;
}

int64_t schedule_warmup_steps(int64_t total, int64_t warmup_steps, double warmup_ratio) {
    return warmup_steps > 0 ? warmup_steps : (int64_t)ceil((double)total * warmup_ratio);
}

const char *schedule_name(SchedKind k) { return k == SCHED_LINEAR ? "linear" : k == SCHED_COSINE ? "cosine" : "constant"; }

int schedule_parse(const char *s, SchedKind *k) {
    if (!strcmp(s, "linear"))
        *k = SCHED_LINEAR;
    else if (!strcmp(s, "cosine"))
        *k = SCHED_COSINE;
    else if (!strcmp(s, "constant") || !strcmp(s, "constant_with_warmup"))
        *k = SCHED_CONSTANT;
    else
        return -1;
    return 0;
}
