// rng.c: SplitMix64 as a counter-based generator (see rng.h for the exact algorithm).
#include "rng.h"

#include <math.h>

Rng rng_new(uint64_t seed) { return (Rng){.seed = seed, .offset = 0}; }

uint64_t rng_next_u64(Rng *r) { return rng_draw(r->seed, r->offset++); }

static double u53(uint64_t x) { return (double)(x >> 11) * 0x1.0p-53; }

double rng_uniform(Rng *r) { return u53(rng_next_u64(r)); }

uint64_t rng_below(Rng *r, uint64_t n) {
    if (n <= 1) return 0;
    uint64_t lim = UINT64_MAX - UINT64_MAX % n; // reject the top partial block: no modulo bias
    for (;;) {
        uint64_t x = rng_next_u64(r);
        if (x < lim) return x % n;
    }
}

// normal k from draws 2k, 2k+1 (Box-Muller); k even takes cos, odd takes sin
static double normal_at(uint64_t seed, uint64_t k) {
    uint64_t pair = k / 2;
    double u1 = (double)((rng_draw(seed, 2 * pair) >> 11) + 1) * 0x1.0p-53;
    double u2 = u53(rng_draw(seed, 2 * pair + 1));
    double rr = sqrt(-2.0 * log(u1));
    return (k & 1) ? rr * sin(2.0 * M_PI * u2) : rr * cos(2.0 * M_PI * u2);
}

double rng_normal(Rng *r) {
    // a lone normal takes a whole pair so the stream stays aligned to pairs
    uint64_t k = (r->offset + 1) / 2 * 2; // next even draw index
    double v = normal_at(r->seed, k);
    r->offset = k + 2;
    return v;
}

void rng_fill_uniform(Rng *r, Tensor *t, double lo, double hi) {
    int64_t n = tensor_numel(t);
    uint64_t seed = r->seed, off = r->offset;
    if (t->dtype == DT_F32 && tensor_is_contiguous(t)) {
        float *p = t->data;
#pragma omp parallel for if (n > 65536)
        for (int64_t i = 0; i < n; i++) p[i] = (float)(lo + (hi - lo) * (double)(rng_draw(seed, off + (uint64_t)i) >> 40) * 0x1.0p-24);
        tensor_bump_version(t); // written in place (tensor_set_flat counts its own writes)
    } else {
        for (int64_t i = 0; i < n; i++) tensor_set_flat(t, i, lo + (hi - lo) * u53(rng_draw(seed, off + (uint64_t)i)));
    }
    r->offset += (uint64_t)n;
}

void rng_fill_normal(Rng *r, Tensor *t, double mean, double std) {
    int64_t n = tensor_numel(t);
    uint64_t seed = r->seed, base = (r->offset + 1) / 2 * 2;
    if (t->dtype == DT_F32 && tensor_is_contiguous(t)) {
        float *p = t->data;
#pragma omp parallel for if (n > 65536)
        for (int64_t i = 0; i < n; i++) p[i] = (float)(mean + std * normal_at(seed, base + (uint64_t)i));
        tensor_bump_version(t);
    } else {
        for (int64_t i = 0; i < n; i++) tensor_set_flat(t, i, mean + std * normal_at(seed, base + (uint64_t)i));
    }
    r->offset = base + ((uint64_t)n + 1) / 2 * 2;
}

void rng_dropout_mask(Rng *r, float *mask, int64_t n, double p) {
    uint64_t seed = r->seed, off = r->offset;
    float keep = p < 1.0 ? (float)(1.0 / (1.0 - p)) : 0.0f;
    uint64_t thr = rng_keep_threshold(p);
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; i++) mask[i] = rng_keep(seed, off + (uint64_t)i, thr, keep);
    r->offset += (uint64_t)n;
}

void rng_shuffle(Rng *r, int64_t *idx, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)rng_below(r, (uint64_t)i + 1);
        int64_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}
