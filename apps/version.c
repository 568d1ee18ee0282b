// version.c: what --version prints, for every program and command: the version, the git commit
// it was built from, the CPU kernels chosen on this machine, and what the build includes.
#include "version.h"
#include "deit_lora.h"

#include "../kernels/bgemm.h"
#include "../kernels/sgemm.h"

#include <string.h>

const char *app_cpu_features(void) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx512f")) return "avx512f+avx2+fma";
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? "avx2+fma" : "no avx2";
#else
    return "not x86-64";
#endif
}

const char *app_int8_attention(void) { return bgemm_available() ? "bf16" : "float32"; }

void app_print_version(FILE *f, const char *prog) {
    const char *features = app_cpu_features();
    fprintf(f, "%s (cgrad) %s\ncommit: %s\nCPU: %s; GEMM kernel: %s; int8 kernel: %s; int8 attention: %s\n", prog, DEIT_LORA_VERSION,
            DEIT_LORA_COMMIT, features, sgemm_fast_isa(), tensor_int8_kernel(), app_int8_attention());
#ifdef CGRAD_MPI
    fprintf(f, "MPI: built in (train, predict and eval run over mpirun ranks)\n");
#else
    fprintf(f, "MPI: not built in\n");
#endif
#ifdef CGRAD_HTTP
    fprintf(f, "HTTP: built in (serve)\n");
#else
    fprintf(f, "HTTP: not built in (serve needs libmicrohttpd-dev)\n");
#endif
    const char *wp = getenv("OMP_WAIT_POLICY"), *sc = getenv("GOMP_SPINCOUNT");
    if (wp)
        fprintf(f, "OpenMP waiting: OMP_WAIT_POLICY=%s\n", wp);
    else if (sc)
        fprintf(f, "OpenMP waiting: GOMP_SPINCOUNT=%s\n", sc);
    else
        fprintf(f, "OpenMP waiting: libgomp's default\n");
}

bool app_wants_version(int argc, char **argv, int from) {
    for (int i = from; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "--version")) return true;
    return false;
}
