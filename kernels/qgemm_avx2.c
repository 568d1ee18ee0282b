// qgemm_avx2.c: the int8 kernel for AVX2 (vpmaddubsw + vpmaddwd); the code is qgemm_x86.inc's.
#include "qgemm_isa.h"

#include <stddef.h>

#if QGEMM_BUILD_AVX2
#define QK_NAME    "avx2"
#define QK_FN(x)   x##avx2
#define QK_VEC     256
#define QK_VNNI    0
#define QK_MR      6
#define QK_NP      1
#define QK_CPU_HAS (__builtin_cpu_supports("avx2"))
#include "qgemm_x86.inc"
#else
const QgemmIsa *qgemm_isa_avx2(void) { return NULL; }
#endif
