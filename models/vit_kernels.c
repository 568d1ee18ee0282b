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

// the eight bits of a byte as floats 0 and 1, lowest bit first: a dropout mask stored as bits
// expands a byte at a time into one vector
#define LB8(b)                                                                                                                             \
    { (b) & 1, (b) >> 1 & 1, (b) >> 2 & 1, (b) >> 3 & 1, (b) >> 4 & 1, (b) >> 5 & 1, (b) >> 6 & 1, (b) >> 7 & 1 }
#define LB4(b)  LB8(b), LB8((b) + 1), LB8((b) + 2), LB8((b) + 3)
#define LB16(b) LB4(b), LB4((b) + 4), LB4((b) + 8), LB4((b) + 12)
#define LB64(b) LB16(b), LB16((b) + 16), LB16((b) + 32), LB16((b) + 48)
static const float lora_bit_floats[256][8] __attribute__((aligned(32))) = {LB64(0), LB64(64), LB64(128), LB64(192)};

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
