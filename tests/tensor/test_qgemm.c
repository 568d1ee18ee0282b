// test_qgemm.c: the int8 products (tensor/qgemm.c). Each kernel (AVX-512 VNNI, AVX-512BW, AVX-VNNI,
// AVX2, portable) against a reference integer GEMM, exactly, on edge shapes (rows not a multiple of
// the tile, channels not a multiple of 16 or 48, inputs not a multiple of 4) and on the extremes
// (every input at the top step, every weight at +-127: no 16-bit saturation); the weight's
// quantization and packing; an input row's quantization; the float product against the dequantized
// reference and against float32; rows the same bits alone or in a batch, on one or two threads.
// A kernel the CPU or the build lacks is skipped.
#include "../../kernels/qgemm.h"
#include "../../tensor/rng.h"

#include "../check_util.h"
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static const char *const ISAS[] = {"avx512vnni", "avx512bw", "avxvnni", "avx2", "portable"};
#define N_ISAS 5
static bool use(int i) {
    bool ok = qgemm_use_isa(ISAS[i]);
    if (!ok) printf("(skipped: no %s int8 kernel on this CPU or build)\n", ISAS[i]);
    return ok;
}

// a weight whose quantization is known: channel n's values are integers in [-127, 127] (one of
// them +-127, which sets the scale) times a scale of its own
typedef struct {
    int8_t *iw;
    float *w, *scale;
    QWeight q;
    void *mem;
} Weight;

static Weight weight_make(Rng *r, int64_t OC, int64_t IC, bool extreme) {
    Weight W = {malloc((size_t)(OC * IC)), malloc(sizeof(float) * (size_t)(OC * IC)), malloc(sizeof(float) * (size_t)OC), {0}, NULL};
    for (int64_t n = 0; n < OC; n++) {
        W.scale[n] = (float)(0.001 + rng_uniform(r) * 0.05);
        for (int64_t k = 0; k < IC; k++) {
            int v = extreme ? (k % 2 ? 127 : -127) : (int)(rng_uniform(r) * 255) - 127;
            if (k == n % IC) v = n % 2 ? 127 : -127;
            W.iw[n * IC + k] = (int8_t)v;
            W.w[n * IC + k] = (float)v * W.scale[n];
        }
    }
    W.mem = malloc(qweight_bytes(OC, IC));
    qweight_init(&W.q, W.mem, W.w, OC, IC, 7);
    return W;
}

static void weight_free(Weight *W) { free(W->iw), free(W->w), free(W->scale), free(W->mem); }

static void check_raw(Rng *r, int64_t M, int64_t OC, int64_t IC, bool extreme) {
    Weight W = weight_make(r, OC, IC, extreme);
    int levels = qgemm_levels();
    int64_t lda = W.q.kq * 4 + 3; // rows further apart than they need be
    uint8_t *a = calloc((size_t)(M * lda), 1);
    for (int64_t i = 0; i < M; i++)
        for (int64_t k = 0; k < IC; k++) a[i * lda + k] = (uint8_t)(extreme ? levels : (int)(rng_uniform(r) * (levels + 1)));
    int32_t *acc = malloc(sizeof(int32_t) * (size_t)(M * OC));
    for (int64_t i = 0; i < M * OC; i++) acc[i] = 0x5a5a5a5a;
    qgemm_raw(&W.q, acc, a, lda, M);
    for (int64_t i = 0; i < M; i++)
        for (int64_t n = 0; n < OC; n++) {
            int64_t ref = 0;
            for (int64_t k = 0; k < IC; k++) ref += (int64_t)a[i * lda + k] * W.iw[n * IC + k];
            ck_assert_msg(acc[i * OC + n] == ref, "%s %lldx%lldx%lld%s: acc[%lld,%lld] = %d, want %lld", qgemm_isa(), (long long)M,
                          (long long)OC, (long long)IC, extreme ? " extreme" : "", (long long)i, (long long)n, acc[i * OC + n],
                          (long long)ref);
        }
    free(a), free(acc);
    weight_free(&W);
}

START_TEST(test_qgemm_raw_against_reference) {
    if (!use(_i)) return;
    Rng r = rng_new(11);
    const int64_t shapes[][3] = {{1, 1, 1},    {3, 17, 5},    {9, 48, 64},   {17, 50, 131},   {8, 192, 192},
                                 {13, 100, 7}, {33, 16, 768}, {5, 97, 3072}, {197, 192, 192}, {2, 10, 192}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        check_raw(&r, shapes[s][0], shapes[s][1], shapes[s][2], false);
        check_raw(&r, shapes[s][0], shapes[s][1], shapes[s][2], true);
    }
}
END_TEST

// the packing: the int8 values and their sums per channel as built, scales as given
START_TEST(test_qweight_quantization) {
    Rng r = rng_new(3);
    Weight W = weight_make(&r, 37, 29, false);
    for (int64_t n = 0; n < 37; n++) {
        ck_assert_float_eq_tol(W.q.scale[n], W.scale[n], W.scale[n] * 1e-6);
        int32_t sum = 0;
        for (int64_t k = 0; k < 29; k++) {
            int8_t got = W.q.packed[(n / QGEMM_PANEL) * W.q.kq * 64 + (k / 4) * 64 + (n % QGEMM_PANEL) * 4 + k % 4];
            ck_assert_int_eq(got, W.iw[n * 29 + k]);
            sum += got;
        }
        ck_assert_int_eq(W.q.colsum[n], sum);
        for (int64_t k = 29; k < W.q.kq * 4; k++) // the padding is zero
            ck_assert_int_eq(W.q.packed[(n / QGEMM_PANEL) * W.q.kq * 64 + (k / 4) * 64 + (n % QGEMM_PANEL) * 4 + k % 4], 0);
    }
    for (int64_t n = 37; n < 48; n++) ck_assert(W.q.scale[n] == 0 && W.q.colsum[n] == 0);
    ck_assert_int_eq(W.q.version, 7);
    // a zero channel has scale 0; an update re-quantizes in place
    memset(W.w, 0, sizeof(float) * 29);
    qweight_update(&W.q, W.w, 8);
    ck_assert(W.q.scale[0] == 0 && W.q.colsum[0] == 0 && W.q.version == 8);
    // a NaN or infinite weight makes its channel's scale NaN (NaN out, as in float32), not a value
    W.w[29 + 3] = NAN, W.w[2 * 29 + 5] = INFINITY;
    qweight_update(&W.q, W.w, 9);
    ck_assert(isnan(W.q.scale[1]) && isnan(W.q.scale[2]) && W.q.scale[3] > 0);
    weight_free(&W);
}
END_TEST

START_TEST(test_quantize_row) {
    for (int levels = 127; levels <= 255; levels += 128) {
        float x[11] = {-1.5f, 0, 2.25f, 0.3f, -0.7f, 1e-4f, 2.25f, -1.5f, 0.5f, 0.1f, -0.2f};
        uint8_t q[44];
        int32_t zp;
        float s = qgemm_quantize_row(q, &zp, x, 11, levels);
        ck_assert_float_eq_tol(s, 3.75f / (float)levels, 1e-7);
        ck_assert_int_eq(q[1], zp); // zero is exact
        ck_assert_int_eq(q[0], 0);
        ck_assert_int_eq(q[2], levels);
        ck_assert_int_eq(q[11], 0); // padding
        for (int k = 0; k < 11; k++) ck_assert_msg(fabsf(s * (float)(q[k] - zp) - x[k]) <= s * 0.5f + 1e-6f, "x[%d]", k);
        // only positive values: the range still holds 0 (zero point 0)
        float p[3] = {0.5f, 1, 2};
        s = qgemm_quantize_row(q, &zp, p, 3, levels);
        ck_assert_int_eq(zp, 0);
        ck_assert_int_eq(q[2], levels);
        float z[5] = {0};
        ck_assert(qgemm_quantize_row(q, &zp, z, 5, levels) == 0 && zp == 0 && q[0] == 0);
        float bad[3] = {1, INFINITY, 2};
        ck_assert(isnan(qgemm_quantize_row(q, &zp, bad, 3, levels)));
        float longrow[40]; // a row long enough for the vector paths: a NaN or an infinity anywhere in it
        for (int at = 0; at < 40; at += 13)
            for (int kind = 0; kind < 2; kind++) {
                for (int k = 0; k < 40; k++) longrow[k] = (float)k * 0.25f - 3;
                longrow[at] = kind ? INFINITY : NAN;
                ck_assert_msg(isnan(qgemm_quantize_row(q, &zp, longrow, 40, levels)), "%s at %d", kind ? "inf" : "NaN", at);
            }
        for (int k = 0; k < 40; k++) longrow[k] = (float)k * 0.25f - 3;
        s = qgemm_quantize_row(q, &zp, longrow, 40, levels);
        ck_assert_float_eq_tol(s, 9.75f / (float)levels, 1e-6);
        for (int k = 0; k < 40; k++) ck_assert_msg(fabsf(s * (float)(q[k] - zp) - longrow[k]) <= s * 0.5f + 1e-5f, "long row x[%d]", k);
        float nan[3] = {1, NAN, -2}; // a NaN input makes a NaN row, as in float32
        ck_assert(isnan(qgemm_quantize_row(q, &zp, nan, 3, levels)));
        ck_assert(zp == 0 && q[0] == 0 && q[2] == 0);
    }
}
END_TEST

// the float product: the dequantized reference closely, float32 within the quantization's error
static void check_float(Rng *r, int64_t M, int64_t OC, int64_t IC, bool with_res) {
    float *w = malloc(sizeof(float) * (size_t)(OC * IC)), *x = malloc(sizeof(float) * (size_t)(M * IC));
    float *b = malloc(sizeof(float) * (size_t)OC), *res = malloc(sizeof(float) * (size_t)(M * OC));
    float *y = malloc(sizeof(float) * (size_t)(M * OC)), *y1 = malloc(sizeof(float) * (size_t)OC);
    for (int64_t i = 0; i < OC * IC; i++) w[i] = (float)((rng_uniform(r) * 2 - 1) * 0.1);
    for (int64_t i = 0; i < M * IC; i++) x[i] = (float)(rng_uniform(r) * 4 - 1.5);
    for (int64_t i = 0; i < OC; i++) b[i] = (float)(rng_uniform(r) - 0.5);
    for (int64_t i = 0; i < M * OC; i++) res[i] = (float)(rng_uniform(r) - 0.5);
    void *mem = malloc(qweight_bytes(OC, IC));
    QWeight q;
    qweight_init(&q, mem, w, OC, IC, 0);
    ck_assert(qlinear(&q, y, x, b, with_res ? res : NULL, M));
    uint8_t *a = malloc((size_t)(q.kq * 4));
    double err2 = 0, ref2 = 0;
    for (int64_t i = 0; i < M; i++) {
        int32_t zp;
        float s = qgemm_quantize_row(a, &zp, x + i * IC, IC, qgemm_levels());
        for (int64_t n = 0; n < OC; n++) {
            int64_t acc = 0;
            double f32 = b[n] + (with_res ? res[i * OC + n] : 0);
            for (int64_t k = 0; k < IC; k++) {
                int8_t wq = q.packed[(n / QGEMM_PANEL) * q.kq * 64 + (k / 4) * 64 + (n % QGEMM_PANEL) * 4 + k % 4];
                acc += (int64_t)(a[k] - zp) * wq;
                f32 += (double)x[i * IC + k] * w[n * IC + k];
            }
            double deq = (double)s * q.scale[n] * (double)acc + b[n] + (with_res ? res[i * OC + n] : 0);
            double got = y[i * OC + n];
            ck_assert_msg(fabs(got - deq) <= 1e-5 * (fabs(deq) + 1), "%s [%lld,%lld] %g vs dequantized %g", qgemm_isa(), (long long)i,
                          (long long)n, got, deq);
            err2 += (got - f32) * (got - f32), ref2 += f32 * f32;
        }
    }
    double rel = sqrt(err2 / ref2);
    ck_assert_msg(rel < (qgemm_levels() == 255 ? 0.01 : 0.02), "%s: relative L2 error against float32 %.4f", qgemm_isa(), rel);
    // each row alone gives the same bits as in the batch, on one thread or two
    for (int nt = 1; nt <= 2; nt++) {
        omp_set_num_threads(nt);
        for (int64_t i = 0; i < M; i += M / 3 + 1) {
            ck_assert(qlinear(&q, y1, x + i * IC, b, with_res ? res + i * OC : NULL, 1));
            ck_assert_msg(!memcmp(y1, y + i * OC, sizeof(float) * (size_t)OC), "%s row %lld alone, %d threads", qgemm_isa(), (long long)i,
                          nt);
        }
    }
    omp_set_num_threads(2);
    free(w), free(x), free(b), free(res), free(y), free(y1), free(mem), free(a);
}

START_TEST(test_qlinear_float) {
    if (!use(_i)) return;
    Rng r = rng_new(5);
    check_float(&r, 197, 192, 192, false);
    check_float(&r, 61, 50, 131, true);
    check_float(&r, 10, 768, 3072, true);
    check_float(&r, 1, 10, 192, false);
}
END_TEST

// inside a parallel region (the MLP's row blocks) each thread runs its own product
START_TEST(test_qlinear_in_parallel_region) {
    Rng r = rng_new(9);
    int64_t M = 40, OC = 64, IC = 96;
    float *w = malloc(sizeof(float) * (size_t)(OC * IC)), *x = malloc(sizeof(float) * (size_t)(M * IC));
    float *y = malloc(sizeof(float) * (size_t)(M * OC)), *y2 = malloc(sizeof(float) * (size_t)(M * OC));
    for (int64_t i = 0; i < OC * IC; i++) w[i] = (float)(rng_uniform(&r) - 0.5);
    for (int64_t i = 0; i < M * IC; i++) x[i] = (float)(rng_uniform(&r) - 0.5);
    void *mem = malloc(qweight_bytes(OC, IC));
    QWeight q;
    qweight_init(&q, mem, w, OC, IC, 0);
    ck_assert(qlinear(&q, y, x, NULL, NULL, M));
#pragma omp parallel for num_threads(2)
    for (int64_t blk = 0; blk < 4; blk++) qlinear(&q, y2 + blk * 10 * OC, x + blk * 10 * IC, NULL, NULL, 10);
    ck_assert(!memcmp(y, y2, sizeof(float) * (size_t)(M * OC)));
    free(w), free(x), free(y), free(y2), free(mem);
}
END_TEST

// the best kernel the CPU runs is the default; an unknown name changes nothing
START_TEST(test_int8_kernel_chosen_by_cpu) {
    const char *best = NULL;
    for (int i = 0; i < N_ISAS && !best; i++)
        if (qgemm_use_isa(ISAS[i])) best = ISAS[i];
    ck_assert_ptr_nonnull(best); // the portable one at least
    ck_assert(!qgemm_use_isa("sse9"));
    ck_assert_str_eq(qgemm_isa(), best);
    ck_assert_int_eq(qgemm_levels(), strstr(best, "vnni") || !strcmp(best, "portable") ? 255 : 127);
}
END_TEST

int main(void) {
    Suite *s = suite_create("qgemm");
    tcase_add_loop_test(check_case(s, "test_qgemm_raw_against_reference"), test_qgemm_raw_against_reference, 0, N_ISAS);
    tcase_add_test(check_case(s, "test_qweight_quantization"), test_qweight_quantization);
    tcase_add_test(check_case(s, "test_quantize_row"), test_quantize_row);
    tcase_add_loop_test(check_case(s, "test_qlinear_float"), test_qlinear_float, 0, N_ISAS);
    tcase_add_test(check_case(s, "test_qlinear_in_parallel_region"), test_qlinear_in_parallel_region);
    tcase_add_test(check_case(s, "test_int8_kernel_chosen_by_cpu"), test_int8_kernel_chosen_by_cpu);
    return check_run(s);
}
