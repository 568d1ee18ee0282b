// qgemm_avx512vnni.c: the int8 kernel for AVX-512 VNNI (vpdpbusd); the code is qgemm_x86.inc's.
#include "qgemm_isa.h"

#include <stddef.h>

#if QGEMM_BUILD_AVX512VNNI
#define QK_NAME    "avx512vnni"
#define QK_FN(x)   x##avx512vnni
#define QK_VEC     512
#define QK_VNNI    1
#define QK_MR      8
#define QK_NP      3
#define QK_CPU_HAS (__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni"))
#include "qgemm_x86.inc"
#else
const QgemmIsa *qgemm_isa_avx512vnni(void) { return NULL; }
#endif
