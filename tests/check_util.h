// check_util.h: what every Check suite here shares.
#ifndef CGRAD_CHECK_UTIL_H
#define CGRAD_CHECK_UTIL_H

#include <check.h>
#include <stdio.h>

// runs the suite (Check's summary line is the output CI counts); the process's exit code
static inline int check_run(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}

static inline void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

#endif
