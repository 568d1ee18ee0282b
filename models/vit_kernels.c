// vit_kernels.c: vit_kernels.inc compiled for float (with the fast erf and exp the framework's
// float kernels use) and for double (gradient checks).
#include "vit_kernels.h"

#include "../tensor/fastmath.h"
#include "../tensor/kernels_ext.h"
#include "../tensor/rng.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>
#undef I

#define real    float
#define K(name) name##_f32
#define K_ERF   erf_fast
#define K_EXP   exp_fast
#include "vit_kernels.inc"
#undef real
#undef K
#undef K_ERF
#undef K_EXP

#define real    double
#define K(name) name##_f64
#define K_ERF   erf
#define K_EXP   exp
#include "vit_kernels.inc"
