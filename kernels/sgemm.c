// sgemm.c: the driver of cgrad's own sgemm (see sgemm.h): which kernel, which shapes it takes,
// the packing buffers, and the split across threads. Only op(B) is packed, once per product and
// shared by the threads; each thread then runs the kernel on its own strip of rows of A and C.
#include "sgemm.h"
#include "scratch.h"
#include "sgemm_isa.h"

#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

// With a kernel for this CPU, every float32 product runs on it, whatever its shape: each row of C
// is then computed by the same instructions in the same order however many rows the product has
// (the BLAS treats the last rows of a product differently), so an image's outputs are the same bits
// alone or in any batch. The BLAS takes the products only with CGRAD_GEMM=blas or no kernel.

static const SgemmIsa *isa_named(const char *name) {
    const SgemmIsa *k = NULL;
    if (!strcmp(name, "avx512"))
        k = sgemm_isa_avx512();
    else if (!strcmp(name, "avx2"))
        k = sgemm_isa_avx2();
    return k && k->cpu_has() ? k : NULL;
}

static const SgemmIsa *chosen;
static pthread_once_t decided = PTHREAD_ONCE_INIT;

static void decide(void) {
    const char *e = getenv("CGRAD_GEMM");
    if (e && !strcmp(e, "blas"))
        chosen = NULL;
    else if (e && isa_named(e))
        chosen = isa_named(e);
    else
        chosen = isa_named("avx512") ? isa_named("avx512") : isa_named("avx2");
}

static const SgemmIsa *isa(void) {
    pthread_once(&decided, decide);
    return chosen;
}

bool sgemm_fast_available(void) { return isa() != NULL; }
const char *sgemm_fast_isa(void) { return isa() ? isa()->name : "blas"; }

bool sgemm_use_isa(const char *name) {
    pthread_once(&decided, decide);
    if (!strcmp(name, "blas")) {
        chosen = NULL;
        return true;
    }
    const SgemmIsa *k = isa_named(name);
    if (k) chosen = k;
    return k != NULL;
}

static int64_t npanels(const SgemmIsa *k, int64_t N) { return (N + k->nr - 1) / k->nr; }
static int64_t nkblocks(const SgemmIsa *k, int64_t K) { return (K + k->kc - 1) / k->kc; }

// this thread's packing buffers (scratch.h's sgemm slots): slots 0 and 1 for sgemm_pack's callers,
// slot 2 for sgemm_fast (whose team shares its caller's)
static float *slot_for(const SgemmIsa *k, int slot, int64_t N, int64_t K) {
    size_t need = (size_t)(npanels(k, N) * k->nr) * (size_t)K;
    return scratch_get(SCRATCH_SGEMM + slot, need * sizeof(float));
}

// the next strip's rows, rem left: mr, or the short tile's where mr would leave a remainder it
// holds (16 rows: 8 + 8, not 12 + 4, which costs 12 + 12)
static int64_t strip_rows(const SgemmIsa *k, int64_t rem) {
    if (rem <= k->mr) return rem;
    return k->mr_short && rem % k->mr && rem % k->mr <= k->mr - k->mr_short ? k->mr_short : k->mr;
}

// C = alpha op(A) op(B) + beta C on this thread, op(B) packed whole: K blocks, row strips, panels;
// with st (sgemm_fast_bias), the first K block's tiles add their products to res + bias instead of C
static void run_packed(const SgemmIsa *k, bool ta, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                       const float *bp, float beta, float *C, int64_t ldc, const SgemmStart *st) {
    int64_t Npad = npanels(k, N) * k->nr;
    for (int64_t k0 = 0; k0 < K; k0 += k->kc) {
        int64_t kc = K - k0 < k->kc ? K - k0 : k->kc;
        bool load_c = k0 > 0 || beta != 0.0f || st;
        float bt = k0 > 0 || st ? 1.0f : beta; // later K blocks add to what the first wrote
        const float *bk = bp + k0 * Npad;
        for (int64_t i0 = 0, mr; i0 < M; i0 += mr) {
            mr = strip_rows(k, M - i0);
            const float *a = ta ? A + k0 * lda + i0 : A + i0 * lda + k0;
            for (int64_t j0 = 0; j0 < N; j0 += k->nr) {
                SgemmStart ts, *first = NULL; // this tile's res + bias, in the first K block only
                if (st && k0 == 0)
                    ts = (SgemmStart){st->res ? st->res + i0 * st->ldr + j0 : NULL, st->bias ? st->bias + j0 : NULL, st->ldr}, first = &ts;
                k->tile(ta, kc, a, lda, bk + j0 * kc, C + i0 * ldc + j0, ldc, mr, N - j0 < k->nr ? N - j0 : k->nr, alpha, bt, load_c,
                        first);
            }
        }
    }
}

// op(B) packed whole; by the team of threads when called outside a parallel region with enough to pack
// (inside a region no nested one is opened, not even a one-thread one: attention packs per head)
static void pack_all(const SgemmIsa *k, float *bp, const float *B, int64_t ldb, bool tb, int64_t N, int64_t K) {
    int64_t nkb = nkblocks(k, K), np = npanels(k, N);
    if (omp_in_parallel() || N * K < 32768) {
        for (int64_t kb = 0; kb < nkb; kb++)
            for (int64_t p = 0; p < np; p++) k->pack_panel(bp, B, ldb, tb, N, K, kb, p);
        return;
    }
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t kb = 0; kb < nkb; kb++)
        for (int64_t p = 0; p < np; p++) k->pack_panel(bp, B, ldb, tb, N, K, kb, p);
}

// the threads a product takes: one inside a parallel region (no nested one), for a small product,
// or for a single strip of rows
static int product_threads(const SgemmIsa *k, int64_t M, int64_t N, int64_t K) {
    int64_t strips = (M + k->mr - 1) / k->mr;
    if (omp_in_parallel() || 2.0 * (double)M * (double)N * (double)K < 4e6 || strips < 2) return 1;
    return omp_get_max_threads();
}

// thread t of n's share of a product with op(B) packed: row strips of mr split evenly, the later
// threads taking the extra strips
static void run_strip(const SgemmIsa *k, int t, int n, bool ta, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                      const float *bp, float beta, float *C, int64_t ldc, const SgemmStart *st) {
    int64_t strips = (M + k->mr - 1) / k->mr, lo = strips * t / n * k->mr, hi = strips * (t + 1) / n * k->mr;
    if (hi > M) hi = M;
    SgemmStart mine = st ? (SgemmStart){st->res ? st->res + lo * st->ldr : NULL, st->bias, st->ldr} : (SgemmStart){0};
    if (lo < hi) run_packed(k, ta, hi - lo, N, K, alpha, ta ? A + lo : A + lo * lda, lda, bp, beta, C + lo * ldc, ldc, st ? &mine : NULL);
}

static bool fast(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                 float beta, float *C, int64_t ldc, const SgemmStart *st) {
    const SgemmIsa *k = isa();
    if (!k) return false;
    float *bp = slot_for(k, 2, N, K);
    if (!bp) return false;
    int64_t nkb = nkblocks(k, K), np = npanels(k, N);
    int nt = product_threads(k, M, N, K);
    if (nt == 1) {
        pack_all(k, bp, B, ldb, tb, N, K);
        run_packed(k, ta, M, N, K, alpha, A, lda, bp, beta, C, ldc, st);
        return true;
    }
#pragma omp parallel num_threads(nt)
    {
#pragma omp for collapse(2) schedule(static)
        for (int64_t kb = 0; kb < nkb; kb++)
            for (int64_t p = 0; p < np; p++) k->pack_panel(bp, B, ldb, tb, N, K, kb, p);
        run_strip(k, omp_get_thread_num(), omp_get_num_threads(), ta, M, N, K, alpha, A, lda, bp, beta, C, ldc, st);
    }
    return true;
}

bool sgemm_fast(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                float beta, float *C, int64_t ldc) {
    return fast(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL);
}

bool sgemm_fast_bias(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                     int64_t ldc, const float *bias, const float *res, int64_t ldr) {
    SgemmStart st = {res, bias, ldr};
    return fast(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc, bias || res ? &st : NULL);
}

float *sgemm_pack(int slot, bool tb, int64_t N, int64_t K, const float *B, int64_t ldb) {
    const SgemmIsa *k = isa();
    if (!k || slot < 0 || slot > 1) return NULL;
    float *bp = slot_for(k, slot, N, K);
    if (bp) pack_all(k, bp, B, ldb, tb, N, K);
    return bp;
}

size_t sgemm_pack_floats(int64_t N, int64_t K) {
    const SgemmIsa *k = isa();
    return k ? (size_t)(npanels(k, N) * k->nr) * (size_t)K : 0;
}

void sgemm_pack_into(float *bp, bool tb, int64_t N, int64_t K, const float *B, int64_t ldb) {
    const SgemmIsa *k = isa();
    if (k) pack_all(k, bp, B, ldb, tb, N, K);
}

static void packed(bool ta, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, const float *bp, float beta,
                   float *C, int64_t ldc, const SgemmStart *st) {
    const SgemmIsa *k = isa();
    int nt = product_threads(k, M, N, K);
    if (nt == 1) {
        run_packed(k, ta, M, N, K, alpha, A, lda, bp, beta, C, ldc, st);
        return;
    }
#pragma omp parallel num_threads(nt)
    run_strip(k, omp_get_thread_num(), omp_get_num_threads(), ta, M, N, K, alpha, A, lda, bp, beta, C, ldc, st);
}

void sgemm_packed(bool ta, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, const float *bp, float beta, float *C,
                  int64_t ldc) {
    packed(ta, M, N, K, alpha, A, lda, bp, beta, C, ldc, NULL);
}

void sgemm_packed_bias(bool ta, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *bp, float *C, int64_t ldc,
                       const float *bias, const float *res, int64_t ldr) {
    SgemmStart st = {res, bias, ldr};
    packed(ta, M, N, K, 1.0f, A, lda, bp, 0.0f, C, ldc, bias || res ? &st : NULL);
}

// ---- packings kept between products (sgemm_kept) ----

typedef struct {
    uint64_t id, last_use;
    uint32_t version;
    bool tb;
    int64_t N, K, ldb;
    const SgemmIsa *isa; // the layout depends on the kernel
    float *bp;
    size_t bytes;
    int pins;
} Kept;

#define KEPT_MAX 1024
static Kept kept[KEPT_MAX];
static int nkept;
static size_t kept_bytes, kept_cap;
static uint64_t kept_clock;
static pthread_mutex_t kept_mu = PTHREAD_MUTEX_INITIALIZER;

static void kept_drop(int i) { // the lock held; entry i unpinned
    free(kept[i].bp);
    kept_bytes -= kept[i].bytes;
    kept[i] = kept[--nkept];
}

const float *sgemm_kept(uint64_t id, uint32_t version, bool tb, int64_t N, int64_t K, const float *B, int64_t ldb) {
    const SgemmIsa *k = isa();
    if (!k || !id || N <= 0 || K <= 0) return NULL;
    pthread_mutex_lock(&kept_mu);
    if (!kept_cap) {
        const char *e = getenv("CGRAD_PACK_CACHE_MB");
        long mb = e ? atol(e) : 512;
        kept_cap = (size_t)(mb > 0 ? mb : 0) << 20;
    }
    for (int i = 0; i < nkept; i++) {
        Kept *e = &kept[i];
        if (e->id != id || e->tb != tb) continue;
        if (e->version == version && e->N == N && e->K == K && e->ldb == ldb && e->isa == k) {
            e->pins++, e->last_use = ++kept_clock;
            pthread_mutex_unlock(&kept_mu);
            return e->bp;
        }
        if (!e->pins) kept_drop(i--); // its contents changed since: never wanted again
    }
    size_t bytes = (size_t)(npanels(k, N) * k->nr) * (size_t)K * sizeof(float);
    while (nkept > 0 && (kept_bytes + bytes > kept_cap || nkept == KEPT_MAX)) { // room: the oldest unpinned go
        int old = -1;
        for (int i = 0; i < nkept; i++)
            if (!kept[i].pins && (old < 0 || kept[i].last_use < kept[old].last_use)) old = i;
        if (old < 0) break;
        kept_drop(old);
    }
    float *bp = NULL;
    if (kept_bytes + bytes <= kept_cap && nkept < KEPT_MAX && (bp = aligned_alloc(64, (bytes + 63) / 64 * 64))) {
        pack_all(k, bp, B, ldb, tb, N, K);
        kept[nkept++] = (Kept){.id = id,
                               .version = version,
                               .tb = tb,
                               .N = N,
                               .K = K,
                               .ldb = ldb,
                               .isa = k,
                               .bp = bp,
                               .bytes = bytes,
                               .pins = 1,
                               .last_use = ++kept_clock};
        kept_bytes += bytes;
    }
    pthread_mutex_unlock(&kept_mu);
    return bp;
}

void sgemm_kept_release(const float *bp) {
    if (!bp) return;
    pthread_mutex_lock(&kept_mu);
    for (int i = 0; i < nkept; i++)
        if (kept[i].bp == bp) {
            kept[i].pins--;
            break;
        }
    pthread_mutex_unlock(&kept_mu);
}
