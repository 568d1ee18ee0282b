// test_gemm.c: cgrad's own sgemm (tensor/sgemm.c), each of its kernels (AVX-512: 12 x 32 tiles,
// AVX2: 6 x 16) against a float64 reference on every transpose, edge sizes (rows not a multiple of
// the tile, columns not a multiple of 8, 16 or 32, K across the 256-row blocks), padded leading
// dimensions, alpha and beta, one thread, two threads and inside a parallel region; the
// packed-operand API; the fused MLP that uses it against the same layer in float64 (the BLAS); the
// choice of kernel by CPU. A kernel the CPU or the build lacks is skipped.
#include "../../autograd/autograd.h"
#include "../../autograd/extend.h"
#include "../../kernels/bgemm.h"
#include "../../kernels/sgemm.h"
#include "../../kernels/sgemm_isa.h"
#include "../../models/vit_ops.h"

#include "../check_util.h"
#include <math.h>
#include <omp.h>
#include <stdlib.h>

static float *rnd(Rng *r, int64_t n) {
    float *p = malloc(sizeof(float) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) p[i] = (float)(rng_uniform(r) * 2 - 1);
    return p;
}

// |got - ref| <= 1e-5 * (sum_k |a||b| + |beta c|): float accumulation error bound with room
static void check_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, float beta, int64_t pad, int mode) {
    Rng r = rng_new((uint64_t)(M * 1000003 + N * 1009 + K * 7 + ta * 2 + tb));
    int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    float *A = rnd(&r, (ta ? K : M) * lda), *B = rnd(&r, (tb ? N : K) * ldb), *C = rnd(&r, M * ldc);
    float *C0 = malloc(sizeof(float) * (size_t)(M * ldc));
    for (int64_t i = 0; i < M * ldc; i++) C0[i] = C[i];
    bool done = false;
    if (mode == 0)
        done = sgemm_fast(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else if (mode == 1) {
#pragma omp parallel num_threads(2)
#pragma omp single
        done = sgemm_fast(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc); // inside a region: one thread
    } else {
        float *bp = sgemm_pack(1, tb, N, K, B, ldb);
        ck_assert_ptr_nonnull(bp);
        sgemm_packed(ta, M, N, K, alpha, A, lda, bp, beta, C, ldc);
        done = true;
    }
    ck_assert_msg(done, "sgemm_fast declined %s%s %lldx%lldx%lld", ta ? "T" : "N", tb ? "T" : "N", (long long)M, (long long)N,
                  (long long)K);
    // (one assertion per product: Check records every assertion that passes)
    int64_t bad_i = -1, bad_j = -1, pad_hit = -1;
    double bad_got = 0, bad_ref = 0;
    for (int64_t i = 0; i < M && bad_i < 0 && pad_hit < 0; i++)
        for (int64_t j = 0; j < ldc; j++) {
            double got = C[i * ldc + j];
            if (j >= N) { // padding columns untouched
                if (got != C0[i * ldc + j]) pad_hit = i * ldc + j;
                continue;
            }
            double ref = 0, mag = 0;
            for (int64_t k = 0; k < K; k++) {
                double a = ta ? A[k * lda + i] : A[i * lda + k], b = tb ? B[j * ldb + k] : B[k * ldb + j];
                ref += a * b, mag += fabs(a * b);
            }
            ref = alpha * ref + (beta != 0 ? beta * (double)C0[i * ldc + j] : 0);
            mag = fabs(alpha) * mag + fabs(beta * (double)C0[i * ldc + j]);
            if (!(fabs(got - ref) <= 1e-5 * mag + 1e-30)) {
                bad_i = i, bad_j = j, bad_got = got, bad_ref = ref;
                break;
            }
        }
    ck_assert_msg(pad_hit < 0, "padding element %lld written", (long long)pad_hit);
    ck_assert_msg(bad_i < 0, "%s%s %lldx%lldx%lld alpha %g beta %g pad %lld mode %d: C[%lld,%lld] = %.9g, want %.9g", ta ? "T" : "N",
                  tb ? "T" : "N", (long long)M, (long long)N, (long long)K, alpha, beta, (long long)pad, mode, (long long)bad_i,
                  (long long)bad_j, bad_got, bad_ref);
    free(A), free(B), free(C), free(C0);
}

// the kernels, one per loop index of the tests below
static const char *const ISAS[] = {"avx512", "avx2"};
#define N_ISAS 2
static bool use(int i) {
    bool ok = sgemm_use_isa(ISAS[i]);
    if (!ok) printf("(skipped: no %s kernel on this CPU or build)\n", ISAS[i]);
    return ok;
}

START_TEST(test_sgemm_against_reference) {
    if (!use(_i)) return; // the BLAS path is covered by every other suite
    const int64_t shapes[][3] = {{12, 32, 16},  {13, 17, 19},   {197, 64, 197},  {100, 200, 300},
                                 {47, 95, 513}, {256, 48, 256}, {788, 192, 192}, {300, 33, 257}};
    const float ab[][2] = {{1, 0}, {0.125f, 0}, {1, 1}, {-0.5f, 0.75f}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int t = 0; t < 4; t++) {
            bool ta = t & 1, tb = t & 2;
            const int64_t *d = shapes[s];
            if (tb && d[0] < 256) continue; // declined by design (checked below)
            for (int a = 0; a < 4; a++) check_gemm(ta, tb, d[0], d[1], d[2], ab[a][0], ab[a][1], (s + a) % 3 == 0 ? 0 : 5, 0);
            check_gemm(ta, tb, d[0], d[1], d[2], 1, 1, 3, 1);
        }
}
END_TEST

START_TEST(test_sgemm_packed_and_threads) {
    if (!use(_i)) return;
    for (int t = 0; t < 4; t++) { // the packed operand serves any row count, transposed or not
        check_gemm(t & 1, t & 2, 5, 40, 300, 1, 0, 0, 2);
        check_gemm(t & 1, t & 2, 208, 768, 192, 1, 1, 2, 2);
        check_gemm(t & 1, t & 2, 197, 192, 768, 0.5f, 0, 0, 2);
    }
    int nt = omp_get_max_threads();
    for (int n = 1; n <= 2; n++) { // the split across threads
        omp_set_num_threads(n);
        check_gemm(false, true, 1576, 192, 192, 1, 0, 0, 0);
        check_gemm(true, false, 400, 64, 500, 1, 1, 1, 0);
    }
    omp_set_num_threads(nt);
}
END_TEST

// C = op(A) op(B) + bias + res with C filled a strip at a time (sgemm_fast_bias, sgemm_packed_bias):
// the same bits as C = res + bias filled first and a product with beta 1, for bias alone, res alone
// and both, K across the 256-row blocks, one thread and two
START_TEST(test_sgemm_bias_and_residual) {
    if (!use(_i)) return;
    const int64_t shapes[][3] = {{1576, 192, 768}, {37, 45, 300}, {5, 70, 513}}; // M, N, K
    Rng r = rng_new(13);
    int nt = omp_get_max_threads();
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int which = 1; which < 4; which++)
            for (int threads = 1; threads <= 2; threads++) {
                omp_set_num_threads(threads);
                int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], ldr = N + 3;
                float *A = rnd(&r, M * K), *B = rnd(&r, N * K), *bias = which & 1 ? rnd(&r, N) : NULL,
                      *res = which & 2 ? rnd(&r, M * ldr) : NULL;
                float *want = malloc(sizeof(float) * (size_t)(M * N)), *got = malloc(sizeof(float) * (size_t)(M * N));
                for (int64_t i = 0; i < M; i++)
                    for (int64_t j = 0; j < N; j++) want[i * N + j] = res ? res[i * ldr + j] + (bias ? bias[j] : 0) : bias[j];
                ck_assert(sgemm_fast(false, true, M, N, K, 1, A, K, B, K, 1, want, N));
                int diff = 0;
                ck_assert(sgemm_fast_bias(false, true, M, N, K, A, K, B, K, got, N, bias, res, ldr));
                for (int64_t i = 0; i < M * N; i++) diff += got[i] != want[i];
                float *bp = sgemm_pack(1, true, N, K, B, K);
                ck_assert_ptr_nonnull(bp);
                memset(got, 0, sizeof(float) * (size_t)(M * N));
                sgemm_packed_bias(false, M, N, K, A, K, bp, got, N, bias, res, ldr);
                for (int64_t i = 0; i < M * N; i++) diff += got[i] != want[i];
                ck_assert_msg(diff == 0, "%lldx%lldx%lld, %s, %d threads: %d values differ", (long long)M, (long long)N, (long long)K,
                              which == 1   ? "bias"
                              : which == 2 ? "residual"
                                           : "both",
                              threads, diff);
                free(A), free(B), free(bias), free(res), free(want), free(got);
            }
    omp_set_num_threads(nt);
}
END_TEST

// float32 rounded to bfloat16 as the bf16 kernel rounds (to nearest, ties to even)
static double bf16_round(float v) {
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    float r;
    memcpy(&r, &u, sizeof r);
    return r;
}

// the bfloat16 products against float64 sums of the bfloat16-rounded operands: the products of
// bfloat16 values are exact in float32, so only the float32 sums differ (the same bound as above);
// both layouts of B, odd K, edges of the 12 x 32 tile, alpha and beta, the attention's shapes
START_TEST(test_bgemm_against_reference) {
    if (!bgemm_available()) {
        printf("(skipped: no AVX-512 BF16 on this CPU or build)\n");
        return;
    }
    const int64_t shapes[][3] = {{197, 197, 64}, {197, 64, 197}, {5, 7, 3}, {13, 33, 31}, {12, 32, 1}, {40, 100, 130}}; // M, N, K
    Rng r = rng_new(12);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int tb = 0; tb < 2; tb++)
            for (int ab = 0; ab < 2; ab++) {
                int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], lda = K + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
                float alpha = ab ? 0.125f : 1, beta = ab ? -0.5f : 0;
                float *A = rnd(&r, M * lda), *B = rnd(&r, (tb ? N : K) * ldb), *C = rnd(&r, M * ldc),
                      *C0 = malloc(sizeof(float) * (size_t)(M * ldc));
                memcpy(C0, C, sizeof(float) * (size_t)(M * ldc));
                ck_assert(bgemm(tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc));
                int64_t bad = -1, pad_hit = -1;
                for (int64_t i = 0; i < M && bad < 0; i++)
                    for (int64_t j = 0; j < ldc; j++) {
                        if (j >= N) {
                            if (C[i * ldc + j] != C0[i * ldc + j]) pad_hit = i * ldc + j;
                            continue;
                        }
                        double ref = 0, mag = 0;
                        for (int64_t k = 0; k < K; k++) {
                            double p = bf16_round(A[i * lda + k]) * bf16_round(tb ? B[j * ldb + k] : B[k * ldb + j]);
                            ref += p, mag += fabs(p);
                        }
                        ref = alpha * ref + beta * (double)C0[i * ldc + j];
                        mag = fabs(alpha) * mag + fabs(beta * (double)C0[i * ldc + j]);
                        if (!(fabs(C[i * ldc + j] - ref) <= 1e-5 * mag + 1e-30)) {
                            bad = i * ldc + j;
                            break;
                        }
                    }
                ck_assert_msg(pad_hit < 0, "bgemm wrote a padding element");
                ck_assert_msg(bad < 0, "bgemm %lldx%lldx%lld tb %d: C[%lld] = %g", (long long)M, (long long)N, (long long)K, tb,
                              (long long)bad, bad < 0 ? 0 : C[bad]);
                free(A), free(B), free(C), free(C0);
            }
}
END_TEST

// Every shape runs on the kernel (skinny, short K, few rows, large), and each row of C is the same
// bits whatever the number of rows: an image's outputs do not depend on the batch around it.
START_TEST(test_sgemm_every_shape_rows_invariant) {
    if (!use(_i)) return;
    for (int t = 0; t < 4; t++) {
        check_gemm(t & 1, t & 2, 64, 4, 64, 1, 0, 0, 0);    // rank-r factor
        check_gemm(t & 1, t & 2, 8, 64, 64, 1, 0, 0, 0);    // fewer rows than a tile
        check_gemm(t & 1, t & 2, 64, 64, 8, 1, 0, 0, 0);    // short K
        check_gemm(t & 1, t & 2, 3, 10, 48, 1, 0, 0, 0);    // a small classifier
        check_gemm(t & 1, t & 2, 16, 1100, 30, 1, 0, 0, 0); // large N
        check_gemm(t & 1, t & 2, 7, 20, 1100, 1, 0, 0, 0);  // large K
    }
    const int64_t shapes[][2] = {{10, 48}, {48, 48}, {192, 192}, {4, 96}, {1001, 192}}; // N, K
    Rng r = rng_new(9);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int tb = 0; tb < 2; tb++) {
            int64_t N = shapes[s][0], K = shapes[s][1], M = 40;
            float *A = rnd(&r, M * K), *B = rnd(&r, N * K), *full = calloc((size_t)(M * N), sizeof(float));
            float *part = calloc((size_t)(M * N), sizeof(float));
            ck_assert(sgemm_fast(false, tb, M, N, K, 1, A, K, B, tb ? K : N, 0, full, N));
            int diff = 0;
            for (int64_t m = 1; m <= M; m += 3) { // the last row of an m-row product, and the first m rows
                ck_assert(sgemm_fast(false, tb, 1, N, K, 1, A + (m - 1) * K, K, B, tb ? K : N, 0, part, N));
                for (int64_t j = 0; j < N; j++) diff += part[j] != full[(m - 1) * N + j];
                ck_assert(sgemm_fast(false, tb, m, N, K, 1, A, K, B, tb ? K : N, 0, part, N));
                for (int64_t j = 0; j < m * N; j++) diff += part[j] != full[j];
            }
            ck_assert_msg(diff == 0, "N %lld K %lld tb %d: %d values depend on the number of rows", (long long)N, (long long)K, tb, diff);
            free(A), free(B), free(full), free(part);
        }
    // and the same bits whatever the number of columns: a narrow product (16 columns or fewer runs
    // on half a tile) against the first columns of a wide one
    for (int t = 0; t < 4; t++) {
        bool ta = t & 1, tb = t & 2;
        int64_t M = 29, K = 300, W = 48;
        float *A = rnd(&r, M * K), *B = rnd(&r, W * K), *wide = calloc((size_t)(M * W), sizeof(float));
        float *narrow = calloc((size_t)(M * W), sizeof(float));
        ck_assert(sgemm_fast(ta, tb, M, W, K, 1, A, ta ? M : K, B, tb ? K : W, 0, wide, W));
        int diff = 0;
        for (int64_t N = 1; N <= 17; N += 4) { // B's first N columns: its rows as they are (ldb W), or its first N rows
            ck_assert(sgemm_fast(ta, tb, M, N, K, 1, A, ta ? M : K, B, tb ? K : W, 0, narrow, N));
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++) diff += narrow[i * N + j] != wide[i * W + j];
        }
        ck_assert_msg(diff == 0, "ta %d tb %d: %d values depend on the number of columns", ta, tb, diff);
        free(A), free(B), free(wide), free(narrow);
    }
}
END_TEST

// the fused MLP (row blocks on packed weights) in float32 against the same layer in float64
START_TEST(test_mlp_f32_matches_f64) {
    if (_i < N_ISAS && !use(_i)) return;
    if (_i == N_ISAS) sgemm_use_isa("blas");
    const int64_t N = 397, D = 48, F = 192;
    Ctx *c = ctx_new(1 << 20), *c64 = ctx_new(1 << 20); // one tape each
    Rng r = rng_new(5);
    Tensor *t32[6], *t64[6];
    const int64_t shp[6][2] = {{N, D}, {F, D}, {F, 1}, {D, F}, {D, 1}, {N, D}};
    for (int i = 0; i < 6; i++) {
        int nd = shp[i][1] == 1 ? 1 : 2;
        t64[i] = tensor_new(c64, DT_F64, nd, shp[i]);
        rng_fill_uniform(&r, t64[i], -0.5, 0.5);
        t32[i] = tensor_to(c, t64[i], DT_F32);
        for (int64_t k = 0; k < tensor_numel(t32[i]); k++) tensor_set_flat(t64[i], k, tensor_get_flat(t32[i], k));
    }
    ag_set_requires_grad(t32[0], true), ag_set_requires_grad(t64[0], true);
    Tensor *y32 = vit_mlp_residual(c, t32[0], t32[1], t32[2], t32[3], t32[4], t32[5]);
    Tensor *y64 = vit_mlp_residual(c64, t64[0], t64[1], t64[2], t64[3], t64[4], t64[5]);
    ck_assert_ptr_nonnull(y32);
    ck_assert_ptr_nonnull(y64);
    double worst = 0;
    for (int64_t k = 0; k < N * D; k++) worst = fmax(worst, fabs(tensor_get_flat(y32, k) - tensor_get_flat(y64, k)));
    ck_assert_msg(worst < 2e-5, "forward differs by %g", worst);
    ck_assert_int_eq(ag_backward(c, ag_sum_all(c, ag_mul(c, y32, y32))), 0);
    ck_assert_int_eq(ag_backward(c64, ag_sum_all(c64, ag_mul(c64, y64, y64))), 0);
    worst = 0;
    for (int64_t k = 0; k < N * D; k++) worst = fmax(worst, fabs(tensor_get_flat(t32[0]->grad, k) - tensor_get_flat(t64[0]->grad, k)));
    ck_assert_msg(worst < 1e-4, "input gradient differs by %g", worst);
    ctx_free(c), ctx_free(c64);
}
END_TEST

// a frozen weight's packing is kept between products (sgemm_kept): the same one while the weight's
// version holds, a new one after a write through the API (the products then follow the new values),
// none for a view or a weight that requires a gradient; and with or without it, the same bits
START_TEST(test_weight_packing_kept) {
    if (!sgemm_fast_available()) return;
    Ctx *c = ctx_new(1 << 20);
    Rng r = rng_new(5);
    Tensor *w = tensor_new(c, DT_F32, 2, (int64_t[]){40, 24}), *x = tensor_new(c, DT_F32, 2, (int64_t[]){7, 24});
    rng_fill_uniform(&r, w, -1, 1), rng_fill_uniform(&r, x, -1, 1);
    const void *p1 = ag_weight_packed(w, true), *p2 = ag_weight_packed(w, true), *pt = ag_weight_packed(w, false);
    ck_assert_ptr_nonnull(p1);
    ck_assert_ptr_eq(p1, p2); // found again
    ck_assert_ptr_ne(p1, pt); // the backward's layout is another packing
    ag_weight_release(p1), ag_weight_release(p2), ag_weight_release(pt);
    Tensor *y1 = ag_linear(c, x, w, NULL);
    ag_set_requires_grad(w, true); // the same product, packed per call
    Tensor *y2 = ag_linear(c, x, w, NULL);
    ck_assert_ptr_null(ag_weight_packed(w, true));
    ag_set_requires_grad(w, false);
    ck_assert_mem_eq(y1->data, y2->data, sizeof(float) * 7 * 40);
    tensor_set_flat(w, 3 * 24 + 5, 10.0); // a write: the next product sees it
    Tensor *y3 = ag_linear(c, x, w, NULL);
    double want = 0;
    for (int k = 0; k < 24; k++) want += tensor_get_flat(x, 2 * 24 + k) * tensor_get_flat(w, 3 * 24 + k);
    ck_assert_double_eq_tol(tensor_get_flat(y3, 2 * 40 + 3), want, 1e-4);
    ck_assert_ptr_null(ag_weight_packed(tensor_reshape_view(c, w, 2, (int64_t[]){20, 48}), true)); // a view: never kept
    ctx_free(c);
}
END_TEST

// the best kernel the CPU runs is the default; CGRAD_GEMM=blas (here: sgemm_use_isa) turns it off
START_TEST(test_kernel_chosen_by_cpu) {
    bool has512 = sgemm_use_isa("avx512"), has2 = sgemm_use_isa("avx2");
    ck_assert(has512 == (sgemm_isa_avx512() && __builtin_cpu_supports("avx512f")));
    ck_assert(has2 == (sgemm_isa_avx2() && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")));
#if !defined(CGRAD_PORTABLE) && (defined(__x86_64__))
    // a non-portable x86-64 build has both kernels: a CPU with AVX2 and FMA gets one
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ck_assert(has2);
#endif
    ck_assert(sgemm_use_isa("blas"));
    ck_assert(!sgemm_fast_available());
    ck_assert_str_eq(sgemm_fast_isa(), "blas");
    float a[64 * 64] = {0}, b[64 * 64] = {0}, c[64 * 64] = {0};
    ck_assert(!sgemm_fast(false, false, 64, 64, 64, 1, a, 64, b, 64, 0, c, 64));
    ck_assert(!sgemm_use_isa("avx1024"));
    ck_assert_str_eq(sgemm_fast_isa(), "blas"); // an unknown name changes nothing
    if (has512 || has2) {
        ck_assert(sgemm_use_isa(has512 ? "avx512" : "avx2"));
        ck_assert_str_eq(sgemm_fast_isa(), has512 ? "avx512" : "avx2");
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("gemm");
    tcase_add_loop_test(check_case(s, "test_sgemm_against_reference"), test_sgemm_against_reference, 0, N_ISAS);
    tcase_add_loop_test(check_case(s, "test_sgemm_packed_and_threads"), test_sgemm_packed_and_threads, 0, N_ISAS);
    tcase_add_test(check_case(s, "test_bgemm_against_reference"), test_bgemm_against_reference);
    tcase_add_loop_test(check_case(s, "test_sgemm_bias_and_residual"), test_sgemm_bias_and_residual, 0, N_ISAS);
    tcase_add_loop_test(check_case(s, "test_sgemm_every_shape_rows_invariant"), test_sgemm_every_shape_rows_invariant, 0, N_ISAS);
    tcase_add_loop_test(check_case(s, "test_mlp_f32_matches_f64"), test_mlp_f32_matches_f64, 0, N_ISAS + 1);
    tcase_add_test(check_case(s, "test_weight_packing_kept"), test_weight_packing_kept);
    tcase_add_test(check_case(s, "test_kernel_chosen_by_cpu"), test_kernel_chosen_by_cpu);
    return check_run(s);
}
