// wait_policy.c: see wait_policy.h.
#define _GNU_SOURCE
#include "wait_policy.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cgrad_wait_policy(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT") || !argv || !argv[0]) return; // the user's choice
    // not under valgrind (its preload would be lost by running the program again natively)
    const char *pre = getenv("LD_PRELOAD");
    if (pre && strstr(pre, "vgpreload")) return;
    // the program's own path (exec of /proc/self/exe itself would rename the process "exe" in ps)
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0 || n >= (ssize_t)sizeof self - 1) return;
    self[n] = 0;
    if (setenv("GOMP_SPINCOUNT", CGRAD_SPINCOUNT, 1) != 0) return;
    execv(self, argv);          // libgomp reads it when loaded: the program starts again with it
    unsetenv("GOMP_SPINCOUNT"); // exec failed: go on with libgomp's default
}
