// check_util.h: what every Check suite here shares.
#ifndef CGRAD_CHECK_UTIL_H
#define CGRAD_CHECK_UTIL_H

#include <check.h>
#include <stdio.h>

// One test case per test, named after it, so that one can be run alone:
//     CK_RUN_CASE=test_gradcheck_gru build/tests/test_gradcheck
// Each case carries its own timeout (300 s, scaled by CK_TIMEOUT_MULTIPLIER), so a binary run by
// hand behaves as under meson; check_fixture gives the cases made after it a setup and teardown.
static SFun check_setup_, check_teardown_;
static inline void check_fixture(SFun setup, SFun teardown) { check_setup_ = setup, check_teardown_ = teardown; }
static inline TCase *check_case(Suite *s, const char *name) {
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 300);
    if (check_setup_ || check_teardown_) tcase_add_checked_fixture(tc, check_setup_, check_teardown_);
    suite_add_tcase(s, tc);
    return tc;
}

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
