// kernels_f32.c: the kernels in single precision (the computation dtype).
#include "fastmath.h"
#include "kernels.h"
#include "kernels_ext.h"
#include "scratch.h"
#include "sgemm.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>
#undef I // complex.h's imaginary unit: the kernels use I for inner sizes

#define real             float
#define K(name)          name##_f32
#define GEMM_FN          cblas_sgemm
#define GEMM_FAST        sgemm_fast
#define GEMM_PACK        sgemm_pack
#define GEMM_PACKED      sgemm_packed
#define GEMM_FAST_BIAS   sgemm_fast_bias
#define GEMM_PACKED_BIAS sgemm_packed_bias
#define K_ERF            erf_fast
#define K_EXP            exp_fast
#define K_TANH           tanh_fast
#include "kernels.inc"
