// kernels_f32.c: the kernels in single precision (the computation dtype).
#include "kernels.h"
#include "tensor.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>
#include <tgmath.h>
#undef I // complex.h's imaginary unit: the kernels use I for inner sizes

#define real float
#define K(name) name##_f32
#define GEMM_FN cblas_sgemm
#include "kernels.inc"
