// qgemm.h: int8 products for inference, the way CPUs serve models past their float32 limit
// (PyTorch's quantize_dynamic, ONNX Runtime's quantized models): y = x W^T + bias [+ res] with
// the weight W [OC, IC] quantized once (int8, symmetric, one scale per output channel) and the
// input x quantized per row at run time (uint8 with a zero point: the row's range [min, max],
// widened to hold 0, in 255 steps, or 127 on kernels without VNNI, whose 16-bit pair sums would
// saturate otherwise, as fbgemm's "reduce_range"); products accumulate exactly in int32 and come
// back to float32 scaled by the row's and the channel's scales.
//
// The kernel is chosen at run time like the sgemm's: "avx512vnni", "avx512bw", "avxvnni", "avx2",
// else "portable" (plain C, any CPU). CGRAD_INT8=<name> asks for one (ignored where the CPU lacks it).
#ifndef CGRAD_QGEMM_H
#define CGRAD_QGEMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// the packed weight: panels of QGEMM_PANEL output channels, each [IC/4 rounded up][QGEMM_PANEL][4]
// bytes (four consecutive inputs of one channel side by side, zero-padded), the same for every kernel
#define QGEMM_PANEL 16
// the longest row a product takes: int32 sums of IC products of 255 x 127 stay exact below it
#define QGEMM_MAX_IC   65536
#define QGEMM_MANY_MAX 8

typedef struct QWeight {
    int64_t OC, IC, kq; // kq = IC / 4 rounded up
    int8_t *packed;     // [panels][kq][QGEMM_PANEL][4]
    float *scale;       // [panels * QGEMM_PANEL] per channel (0 past OC)
    int32_t *colsum;    // [panels * QGEMM_PANEL] sum of the channel's int8 weights (0 past OC)
    uint32_t version;   // the weight's version when it was quantized
} QWeight;

// bytes qweight_init needs in `mem` for a weight [OC, IC] (64-byte aligned inside)
size_t qweight_bytes(int64_t OC, int64_t IC);
// quantize and pack w [OC, IC] (row-major) into q, its arrays carved from mem (qweight_bytes long)
void qweight_init(QWeight *q, void *mem, const float *w, int64_t OC, int64_t IC, uint32_t version);
// quantize again into the same arrays (the weight was written since)
void qweight_update(QWeight *q, const float *w, uint32_t version);

// y [M, OC] = x [M, IC] W^T (+ bias [OC]) (+ res [M, OC]); bias, res may be NULL. Split across the
// OpenMP threads unless called inside a parallel region (then this thread alone). Each row of y is
// the same bits whatever M is and however the rows are split. False, having written nothing, when
// there is no memory for the quantized rows.
bool qlinear(const QWeight *q, float *y, const float *x, const float *bias, const float *res, int64_t M);

// n <= QGEMM_MANY_MAX products of the same input x (weights with the same IC), its rows quantized once: ys[i] [M,
// qs[i]->OC] = x qs[i]^T + biases[i] (may be NULL) + res (may be NULL, then for every product);
// false, having done nothing, for n out of range or no memory for the quantized rows
bool qlinear_many(int n, const QWeight *const *qs, float *const *ys, const float *x, const float *const *biases, const float *res,
                  int64_t M);

// the kernel in use, and the steps an input row is quantized to (255 or 127)
const char *qgemm_isa(void);
int qgemm_levels(void);
// use this kernel from now on; false, changing nothing, where the build or the CPU lacks it
bool qgemm_use_isa(const char *name);

// ---- the pieces, for tests: one row quantized, and the raw integer product ----
// q [kq * 4] (zero-padded) from x [IC] in `levels` steps; returns the scale, *zp the zero point
float qgemm_quantize_row(uint8_t *q, int32_t *zp, const float *x, int64_t IC, int levels);
// acc [M, OC] = a [M, kq*4] (uint8 rows, lda bytes apart) times the packed weight, in int32, on
// the kernel in use (no scales, no zero points)
void qgemm_raw(const QWeight *q, int32_t *acc, const uint8_t *a, int64_t lda, int64_t M);

#endif
