// qgemm_avxvnni.c: the int8 kernel for AVX-VNNI (256-bit vpdpbusd); the code is qgemm_x86.inc's.
#include "qgemm_isa.h"

#include <stddef.h>

#if QGEMM_BUILD_AVXVNNI
#define QK_NAME    "avxvnni"
#define QK_FN(x)   x##avxvnni
#define QK_VEC     256
#define QK_VNNI    1
#define QK_MR      6
#define QK_NP      1
#define QK_CPU_HAS (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("avxvnni"))
#include "qgemm_x86.inc"
#else
const QgemmIsa *qgemm_isa_avxvnni(void) { return NULL; }
#endif
