// qgemm.c: the driver of the int8 products (see qgemm.h): the weight's quantization and packing,
// the input rows' quantization, which kernel, and the split across threads; plus the portable
// kernel, plain C, for CPUs (and builds) without the x86 ones.
#include "qgemm.h"
#include "qgemm_isa.h"
#include "scratch.h"

#include <math.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

// ---- the portable kernel: the x86 kernels' arithmetic, a scalar at a time ----

#define P_MR 4

static void portable_tile(int64_t kq, const uint8_t *a, int64_t lda, const int8_t *bp, int64_t ps, int mr, int np, int64_t nr, float *y,
                          int64_t ldy, const QEpilogue *e) {
    for (int i = 0; i < mr; i++) {
        const uint8_t *ar = a + i * lda;
        for (int p = 0; p < np; p++) {
            const int8_t *b = bp + p * ps;
            int32_t acc[QGEMM_PANEL] = {0};
            for (int64_t k = 0; k < kq; k++, b += 4 * QGEMM_PANEL)
                for (int j = 0; j < QGEMM_PANEL; j++)
                    acc[j] +=
                        ar[4 * k] * b[4 * j] + ar[4 * k + 1] * b[4 * j + 1] + ar[4 * k + 2] * b[4 * j + 2] + ar[4 * k + 3] * b[4 * j + 3];
            for (int jj = 0; jj < QGEMM_PANEL; jj++) {
                int64_t j = (int64_t)p * QGEMM_PANEL + jj;
                if (j >= nr) break;
                if (e->raw) {
                    e->raw[i * e->ldraw + j] = acc[jj];
                    continue;
                }
                float f = (float)(acc[jj] - e->zp[i] * e->colsum[j]) * (e->cs[j] * e->rs[i]);
                if (e->bias) f += e->bias[j];
                if (e->res) f += e->res[i * e->ldr + j];
                y[i * ldy + j] = f;
            }
        }
    }
}

static bool portable_has(void) { return true; }
static const QgemmIsa PORTABLE = {"portable", 255, P_MR, 3, portable_has, portable_tile};

// ---- which kernel ----

static const QgemmIsa *isa_named(const char *name) {
    const QgemmIsa *k = NULL;
    if (!strcmp(name, "avx512vnni"))
        k = qgemm_isa_avx512vnni();
    else if (!strcmp(name, "avx512bw"))
        k = qgemm_isa_avx512bw();
    else if (!strcmp(name, "avxvnni"))
        k = qgemm_isa_avxvnni();
    else if (!strcmp(name, "avx2"))
        k = qgemm_isa_avx2();
    else if (!strcmp(name, "portable"))
        k = &PORTABLE;
    return k && k->cpu_has() ? k : NULL;
}

static const QgemmIsa *chosen;
static pthread_once_t decided = PTHREAD_ONCE_INIT;

static void decide(void) {
    static const char *const ORDER[] = {"avx512vnni", "avxvnni", "avx512bw", "avx2", "portable"};
    const char *e = getenv("CGRAD_INT8");
    if (e && isa_named(e)) {
        chosen = isa_named(e);
        return;
    }
    for (size_t i = 0; i < sizeof ORDER / sizeof *ORDER && !chosen; i++) chosen = isa_named(ORDER[i]);
}

static const QgemmIsa *isa(void) {
    pthread_once(&decided, decide);
    return chosen;
}

const char *qgemm_isa(void) { return isa()->name; }
int qgemm_levels(void) { return isa()->levels; }

bool qgemm_use_isa(const char *name) {
    pthread_once(&decided, decide);
    const QgemmIsa *k = isa_named(name);
    if (k) chosen = k;
    return k != NULL;
}

// ---- the weight ----

static int64_t npanels(int64_t OC) { return (OC + QGEMM_PANEL - 1) / QGEMM_PANEL; }
static size_t up64(size_t n) { return (n + 63) / 64 * 64; }

size_t qweight_bytes(int64_t OC, int64_t IC) {
    size_t np = (size_t)npanels(OC), kq = (size_t)((IC + 3) / 4);
    return 64 + up64(np * kq * 64) + 2 * up64(np * QGEMM_PANEL * 4);
}

void qweight_init(QWeight *q, void *mem, const float *w, int64_t OC, int64_t IC, uint32_t version) {
    size_t np = (size_t)npanels(OC), kq = (size_t)((IC + 3) / 4);
    char *p = (char *)(((uintptr_t)mem + 63) / 64 * 64);
    *q = (QWeight){.OC = OC, .IC = IC, .kq = (int64_t)kq, .packed = (int8_t *)p};
    p += up64(np * kq * 64);
    q->scale = (float *)p;
    q->colsum = (int32_t *)(p + up64(np * QGEMM_PANEL * 4));
    qweight_update(q, w, version);
}

// channel n: scale max|w| / 127, values rounded to the nearest step (halves away from zero)
void qweight_update(QWeight *q, const float *w, uint32_t version) {
    int64_t np = npanels(q->OC), kq = q->kq, IC = q->IC;
    memset(q->packed, 0, (size_t)(np * kq * 64));
    memset(q->scale, 0, sizeof(float) * (size_t)(np * QGEMM_PANEL));
    memset(q->colsum, 0, sizeof(int32_t) * (size_t)(np * QGEMM_PANEL));
#pragma omp parallel for schedule(static) if (q->OC * IC > 65536 && !omp_in_parallel())
    for (int64_t n = 0; n < q->OC; n++) {
        const float *wr = w + n * IC;
        float amax = 0, bad = 0; // bad: NaN when some weight is NaN or infinite
#pragma omp simd reduction(max : amax) reduction(+ : bad)
        for (int64_t k = 0; k < IC; k++) {
            float a = fabsf(wr[k]);
            amax = a > amax ? a : amax, bad += wr[k] * 0.0f;
        }
        bool ok = bad == 0 && amax > 0;
        float inv = ok ? 127.0f / amax : 0;
        int8_t *dst = q->packed + (n / QGEMM_PANEL) * kq * 64 + (n % QGEMM_PANEL) * 4;
        int32_t sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int64_t k = 0; k < IC; k++) {
            float t = wr[k] * inv;
            t = t > -127.0f ? t : -127.0f, t = t < 127.0f ? t : 127.0f; // NaN goes to -127 (and the scale is NaN)
            int32_t v = (int32_t)(t + (t >= 0 ? 0.5f : -0.5f));
            dst[(k / 4) * 64 + k % 4] = (int8_t)v;
            sum += v;
        }
        q->scale[n] = ok ? amax / 127.0f : bad != 0 ? NAN : 0; // a NaN or infinite weight: NaN out, as in float32
        q->colsum[n] = sum;
    }
    q->version = version;
}

// ---- the input rows ----

// the row's range (0 included) and whether it holds a NaN or an infinity; 16 lanes at a time where
// the build has AVX-512 (the compiler's own vectorisation of these loops was four times slower)
static void row_range(const float *x, int64_t n, float *mn, float *mx, bool *bad) {
    int64_t k = 0;
    float lo = 0, hi = 0, b = 0;
#if defined(__AVX512F__)
    __m512 lo0 = _mm512_setzero_ps(), hi0 = lo0, lo1 = lo0, hi1 = lo0; // two chains: rows are short
    __mmask16 nan = 0;
    for (; k + 32 <= n; k += 32) {
        __m512 v = _mm512_loadu_ps(x + k), w = _mm512_loadu_ps(x + k + 16);
        lo0 = _mm512_min_ps(lo0, v), hi0 = _mm512_max_ps(hi0, v), lo1 = _mm512_min_ps(lo1, w), hi1 = _mm512_max_ps(hi1, w);
        nan |= _mm512_cmp_ps_mask(v, w, _CMP_UNORD_Q);
    }
    for (; k + 16 <= n; k += 16) {
        __m512 v = _mm512_loadu_ps(x + k);
        lo0 = _mm512_min_ps(lo0, v), hi0 = _mm512_max_ps(hi0, v), nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    }
    lo = _mm512_reduce_min_ps(_mm512_min_ps(lo0, lo1)), hi = _mm512_reduce_max_ps(_mm512_max_ps(hi0, hi1));
    b = nan ? NAN : 0; // an infinity shows in the range
#endif
    for (; k < n; k++) {
        float v = x[k];
        lo = v < lo ? v : lo, hi = v > hi ? v : hi, b += v * 0.0f;
    }
    *mn = lo, *mx = hi, *bad = b != 0; // NaN != 0
}

// q[k] = round(clamp(x[k] inv + zf, 0, L)), halves up
static void row_steps(uint8_t *q, const float *x, int64_t n, float inv, float zf, float L) {
    int64_t k = 0;
#if defined(__AVX512F__)
    __m512 vi = _mm512_set1_ps(inv), vz = _mm512_set1_ps(zf), vL = _mm512_set1_ps(L), half = _mm512_set1_ps(0.5f);
    __m512 zero = _mm512_setzero_ps();
    for (; k + 16 <= n; k += 16) {
        __m512 t = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(x + k), vi), vz);
        t = _mm512_min_ps(_mm512_max_ps(t, zero), vL);
        _mm_storeu_si128((__m128i *)(q + k), _mm512_cvtusepi32_epi8(_mm512_cvttps_epi32(_mm512_add_ps(t, half))));
    }
#endif
    for (; k < n; k++) {
        float t = x[k] * inv + zf;
        t = t > 0 ? t : 0, t = t < L ? t : L;
        q[k] = (uint8_t)(int32_t)(t + 0.5f);
    }
}

float qgemm_quantize_row(uint8_t *q, int32_t *zp, const float *x, int64_t IC, int levels) {
    float mn, mx;
    bool bad;
    row_range(x, IC, &mn, &mx, &bad);
    float s = (mx - mn) / (float)levels;
    int64_t kp = (IC + 3) / 4 * 4;
    if (bad || !(s > 0) || !isfinite(s)) { // all zeros: every product is 0; NaN or infinity: NaN out, as in float32
        memset(q, 0, (size_t)kp);
        *zp = 0;
        return s > 0 || bad ? NAN : 0;
    }
    float inv = 1.0f / s, L = (float)levels;
    float zf = (float)(int32_t)((-mn * inv < L ? -mn * inv : L) + 0.5f);
    row_steps(q, x, IC, inv, zf, L);
    memset(q + IC, 0, (size_t)(kp - IC));
    *zp = (int32_t)zf;
    return s;
}

// ---- the product ----

typedef struct {
    const QgemmIsa *k;
    const QWeight *q;
    const uint8_t *a;
    int64_t lda, M;
    const float *rs, *bias, *res;
    const int32_t *zp;
    float *y;
    int32_t *raw;
} Product;

// tile t of the product: column groups outer (a group's panels stay in cache), row strips inner
static void run_tile(const Product *p, int64_t t) {
    const QgemmIsa *k = p->k;
    const QWeight *q = p->q;
    int64_t strips = (p->M + k->mr - 1) / k->mr, g = t / strips, i0 = (t % strips) * k->mr;
    int64_t j0 = g * k->np * QGEMM_PANEL, np = npanels(q->OC) - g * k->np;
    if (np > k->np) np = k->np;
    int mr = p->M - i0 < k->mr ? (int)(p->M - i0) : k->mr;
    int64_t nr = q->OC - j0 < np * QGEMM_PANEL ? q->OC - j0 : np * QGEMM_PANEL;
    QEpilogue e = {.rs = p->rs + i0,
                   .zp = p->zp + i0,
                   .cs = q->scale + j0,
                   .colsum = q->colsum + j0,
                   .bias = p->bias ? p->bias + j0 : NULL,
                   .res = p->res ? p->res + i0 * q->OC + j0 : NULL,
                   .ldr = q->OC,
                   .raw = p->raw ? p->raw + i0 * q->OC + j0 : NULL,
                   .ldraw = q->OC};
    k->tile(q->kq, p->a + i0 * p->lda, p->lda, q->packed + j0 * q->kq * 4, q->kq * 64, mr, (int)np, nr,
            p->y ? p->y + i0 * q->OC + j0 : NULL, q->OC, &e);
}

static int64_t ntiles(const QgemmIsa *k, const QWeight *q, int64_t M) {
    int64_t groups = (npanels(q->OC) + k->np - 1) / k->np;
    return groups * ((M + k->mr - 1) / k->mr);
}

// the team of threads for products of `macs` multiply-adds in `tiles` tiles: none inside a parallel
// region (each thread runs its own), nor for a small product
static bool threads_worth_it(double macs, int64_t tiles) { return !omp_in_parallel() && macs >= 1e6 && tiles > 1; }

static void run(const Product *p) {
    int64_t nt = ntiles(p->k, p->q, p->M);
    if (!threads_worth_it((double)p->M * (double)p->q->OC * (double)p->q->IC, nt)) { // no region at all, not even a one-thread one
        for (int64_t t = 0; t < nt; t++) run_tile(p, t);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < nt; t++) run_tile(p, t);
}

bool qlinear(const QWeight *q, float *y, const float *x, const float *bias, const float *res, int64_t M) {
    return qlinear_many(1, &q, &y, x, &bias, res, M);
}

bool qlinear_many(int n, const QWeight *const *qs, float *const *ys, const float *x, const float *const *biases, const float *res,
                  int64_t M) {
    const QgemmIsa *k = isa();
    const QWeight *q = qs[0];
    if (M <= 0) return true;
    if (n < 1 || n > QGEMM_MANY_MAX) return false;
    int64_t lda = q->kq * 4;
    size_t need = (size_t)(M * lda) + up64(sizeof(float) * (size_t)M) + up64(sizeof(int32_t) * (size_t)M);
    uint8_t *a = scratch_get(SCRATCH_QGEMM, need); // this thread's quantized rows
    if (!a) return false;
    float *rs = (float *)(a + up64((size_t)(M * lda)));
    int32_t *zp = (int32_t *)((uint8_t *)rs + up64(sizeof(float) * (size_t)M));
    Product ps[QGEMM_MANY_MAX];
    double macs = 0;
    int64_t tiles = 0;
    for (int i = 0; i < n; i++) {
        ps[i] = (Product){.k = k, .q = qs[i], .a = a, .lda = lda, .M = M, .rs = rs, .zp = zp, .bias = biases[i], .res = res, .y = ys[i]};
        macs += (double)M * (double)qs[i]->OC * (double)q->IC, tiles += ntiles(k, qs[i], M);
    }
    if (!threads_worth_it(macs, tiles)) { // on this thread (inside a caller's region: no nested one)
        for (int64_t i = 0; i < M; i++) rs[i] = qgemm_quantize_row(a + i * lda, &zp[i], x + i * q->IC, q->IC, k->levels);
        for (int i = 0; i < n; i++)
            for (int64_t t = 0, nt = ntiles(k, qs[i], M); t < nt; t++) run_tile(&ps[i], t);
        return true;
    }
    // one parallel region: the rows quantized, then every product's tiles (one fork and join)
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int64_t i = 0; i < M; i++) rs[i] = qgemm_quantize_row(a + i * lda, &zp[i], x + i * q->IC, q->IC, k->levels);
        for (int i = 0; i < n; i++) {
            int64_t nt = ntiles(k, qs[i], M);
#pragma omp for schedule(static) nowait
            for (int64_t t = 0; t < nt; t++) run_tile(&ps[i], t);
        }
    }
    return true;
}

void qgemm_raw(const QWeight *q, int32_t *acc, const uint8_t *a, int64_t lda, int64_t M) {
    run(&(Product){.k = isa(), .q = q, .a = a, .lda = lda, .M = M, .raw = acc});
}
