// kernels_f64.c: the kernels in double precision (for gradient checks).
#include "kernels.h"
#include "kernels_ext.h"
#include "scratch.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>
#undef I // complex.h's imaginary unit: the kernels use I for inner sizes

#define real    double
#define K(name) name##_f64
#define GEMM_FN cblas_dgemm
#define K_ERF   erf
#define K_EXP   exp
#define K_TANH  tanh
#include "kernels.inc"
