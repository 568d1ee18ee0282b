// rng.h: the seeded random generator, counter-based so that results do not depend on threads.
//
// Algorithm (SplitMix64, Steele et al. 2014, used as a counter-based generator):
//   the i-th 64-bit draw of a stream with seed s is  z = s + (i + 1) * 0x9E3779B97F4A7C15,
//   z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;  z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
//   z ^= z >> 31.
//   uniform [0, 1): the top 24 bits of a draw times 2^-24 (float32) or the top 53 bits times
//   2^-53 (float64 draws); normal: Box-Muller on draws 2k and 2k+1 gives normals 2k and 2k+1:
//   u1 = (53-bit draw 2k + 1) * 2^-53 in (0, 1], u2 = 53-bit draw 2k+1 * 2^-53,
//   r = sqrt(-2 ln u1), n_2k = r cos(2 pi u2), n_2k+1 = r sin(2 pi u2).
// Element i of a filled tensor uses draw (offset + i), so any thread may compute any element.
#ifndef CGRAD_RNG_H
#define CGRAD_RNG_H

#include "tensor.h"

#include <math.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint64_t seed;
    uint64_t offset; // draws consumed so far
} Rng;

Rng rng_new(uint64_t seed);
// the i-th 64-bit draw of stream `seed` (inline: kernels regenerate dropout masks with it)
static inline uint64_t rng_draw(uint64_t seed, uint64_t i) {
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
// dropout keep-scale of element i: uniform u = top 24 bits * 2^-24; kept when u >= p, i.e. when
// the 24-bit integer is at least rng_keep_threshold(p) = ceil(p * 2^24) (exact, and vectorisable)
static inline uint64_t rng_keep_threshold(double p) { return (uint64_t)ceil(p * 16777216.0); }
static inline float rng_keep(uint64_t seed, uint64_t i, uint64_t thr, float keep) { return (rng_draw(seed, i) >> 40) >= thr ? keep : 0.0f; }
uint64_t rng_next_u64(Rng *r);
double rng_uniform(Rng *r);             // [0, 1), 53 bits
uint64_t rng_below(Rng *r, uint64_t n); // uniform integer in [0, n), unbiased
double rng_normal(Rng *r);              // one N(0,1) (uses two draws)

// Fill float tensors (contiguous) in logical order; the rng advances by the draws used.
void rng_fill_uniform(Rng *r, Tensor *t, double lo, double hi);
void rng_fill_normal(Rng *r, Tensor *t, double mean, double std);
// Keep-mask for dropout: m[i] = (uniform_i >= p) ? 1/(1-p) : 0, uniform from 24-bit draws.
void rng_dropout_mask(Rng *r, float *mask, int64_t n, double p);
// Fisher-Yates shuffle of idx[0..n) (draw k picks position among the first n-k).
void rng_shuffle(Rng *r, int64_t *idx, int64_t n);

#ifdef __cplusplus
}
#endif

#endif
