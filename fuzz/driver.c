// driver.c: replays files (or every file in folders) through a fuzz target, for builds without
// libFuzzer: `fuzz_replay_X PATH...`. Prints "N passed, N failed" (a crash fails the whole run).
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n);

static int count;

static void replay(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d)))
            if (e->d_name[0] != '.') {
                char p[4096];
                snprintf(p, sizeof p, "%s/%s", path, e->d_name);
                replay(p);
            }
        if (d) closedir(d);
        return;
    }
    FILE *f = fopen(path, "rb");
    if (!f) return;
    uint8_t *buf = malloc((size_t)st.st_size + 1);
    size_t n = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    count++;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) replay(argv[i]);
    printf("replayed %d inputs without a crash\n%d passed, 0 failed\n", count, count);
    return count ? 0 : 1;
}
