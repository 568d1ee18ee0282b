// qgemm_isa.h: what qgemm.c needs of one instruction set's int8 kernel (qgemm_avx2.c and the others).
#ifndef CGRAD_QGEMM_ISA_H
#define CGRAD_QGEMM_ISA_H

#include <stdbool.h>
#include <stdint.h>

// the epilogue of a tile: y = rs[i] * cs[j] * (acc - zp[i] * colsum[j]) + bias[j] + res[i][j];
// bias and res may be NULL; raw != NULL asks for the bare int32 sums instead (tests)
typedef struct {
    const float *rs;       // [mr] row scales
    const int32_t *zp;     // [mr] row zero points
    const float *cs;       // [nr] channel scales
    const int32_t *colsum; // [nr]
    const float *bias;     // [nr] or NULL
    const float *res;      // row 0 of this tile's residual, or NULL
    int64_t ldr;
    int32_t *raw; // row 0 of this tile's int32 output, or NULL
    int64_t ldraw;
} QEpilogue;

typedef struct {
    const char *name;
    int levels; // input rows are quantized to 0..levels
    int mr, np; // a tile is mr rows by np panels
    bool (*cpu_has)(void);
    // one tile: mr <= MR rows of a (lda bytes apart, kq * 4 bytes each) by np <= NP panels of the
    // packed weight (bp at the first, panel_stride bytes apart), nr <= np * QGEMM_PANEL columns of y
    void (*tile)(int64_t kq, const uint8_t *a, int64_t lda, const int8_t *bp, int64_t panel_stride, int mr, int np, int64_t nr, float *y,
                 int64_t ldy, const QEpilogue *e);
} QgemmIsa;

// NULL where the build left the kernel out
const QgemmIsa *qgemm_isa_avx512vnni(void);
const QgemmIsa *qgemm_isa_avx512bw(void);
const QgemmIsa *qgemm_isa_avxvnni(void);
const QgemmIsa *qgemm_isa_avx2(void);

#endif
