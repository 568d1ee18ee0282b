// qgemm_avx512bw.c: the int8 kernel for AVX-512BW without VNNI; the code is qgemm_x86.inc's.
#include "qgemm_isa.h"

#include <stddef.h>

#if QGEMM_BUILD_AVX512BW
#define QK_NAME    "avx512bw"
#define QK_FN(x)   x##avx512bw
#define QK_VEC     512
#define QK_VNNI    0
#define QK_MR      8
#define QK_NP      3
#define QK_CPU_HAS (__builtin_cpu_supports("avx512bw"))
#include "qgemm_x86.inc"
#else
const QgemmIsa *qgemm_isa_avx512bw(void) { return NULL; }
#endif
