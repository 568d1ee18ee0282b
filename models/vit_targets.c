// vit_targets.c: see vit_targets.h.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "vit_targets.h"
#include "../base/fileio.h"

#include "vit_names.h"

#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Bounds for one match against a module name (a few dozen characters): steps of the matcher,
// backtracking depth, and its heap in KiB. A name that legitimately matches takes a few hundred
// steps; a pattern of nested repetitions that would backtrack for minutes stops at the limit.
#define RE_MATCH_LIMIT    200000
#define RE_DEPTH_LIMIT    2000
#define RE_HEAP_LIMIT_KIB 8192

struct VitTargetRe {
    pcre2_code *code;
    pcre2_match_context *mctx;
    pcre2_match_data *md;
    char *pattern;
};

bool vit_target_matches(const char *module_v4, const char *target) {
    char v5[256];
    vit_v5_name(module_v4, v5, sizeof v5);
    const char *names[] = {module_v4, v5};
    for (int i = 0; i < 2; i++) {
        size_t L = strlen(names[i]), T = strlen(target);
        if (!strcmp(names[i], target) || (L > T && names[i][L - T - 1] == '.' && !strcmp(names[i] + L - T, target))) return true;
    }
    return false;
}

// Python's spellings PCRE2 reads otherwise, rewritten: a bound {,n} (Python: {0,n}; PCRE2 10.42:
// literal text) and \Z (Python: the very end; PCRE2: \z). Everything else is the same syntax.
static char *pythonic(const char *p) {
    size_t n = strlen(p);
    char *o = malloc(2 * n + 1), *q = o;
    if (!o) return NULL;
    bool in_class = false;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\\' && i + 1 < n) {
            *q++ = p[i++];
            *q++ = !in_class && p[i] == 'Z' ? 'z' : p[i];
            continue;
        }
        if (in_class)
            in_class = p[i] != ']';
        else if (p[i] == '[') {
            in_class = true;
            *q++ = p[i];
            if (p[i + 1] == '^') *q++ = p[++i];
            if (p[i + 1] == ']') *q++ = p[++i]; // a leading ] is literal
            continue;
        } else if (p[i] == '{' && p[i + 1] == ',') { // {,n} -> {0,n} when it is a bound
            size_t k = i + 2;
            while (p[k] >= '0' && p[k] <= '9') k++;
            if (k > i + 2 && p[k] == '}') {
                *q++ = '{', *q++ = '0';
                continue;
            }
        }
        *q++ = p[i];
    }
    *q = 0;
    return o;
}

VitTargetRe *vit_target_re_compile(const char *pattern, char *err, size_t errn) {
    VitTargetRe *re = calloc(1, sizeof *re);
    char *src = pythonic(pattern);
    if (!re || !src) {
        snprintf(err, errn, "target_modules regex '%s': out of memory", pattern);
        free(re), free(src);
        return NULL;
    }
    int code;
    PCRE2_SIZE at;
    // PCRE2_ALT_BSUX: \xhh and \uhhhh as Python reads them; the compiled size is bounded by PCRE2's
    // own limit (a pattern that expands too far is "too large", not gigabytes)
    re->code = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED, PCRE2_ALT_BSUX | PCRE2_NEVER_UCP, &code, &at, NULL);
    free(src);
    if (!re->code) {
        char msg[256];
        pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, sizeof msg);
        snprintf(err, errn, "target_modules regex '%s': %s (at character %zu)", pattern, msg, (size_t)at);
        free(re);
        return NULL;
    }
    re->mctx = pcre2_match_context_create(NULL);
    re->md = pcre2_match_data_create_from_pattern(re->code, NULL);
    re->pattern = strdup(pattern);
    if (!re->mctx || !re->md || !re->pattern) {
        snprintf(err, errn, "target_modules regex '%s': out of memory", pattern);
        vit_target_re_free(re);
        return NULL;
    }
    pcre2_set_match_limit(re->mctx, RE_MATCH_LIMIT);
    pcre2_set_depth_limit(re->mctx, RE_DEPTH_LIMIT);
    pcre2_set_heap_limit(re->mctx, RE_HEAP_LIMIT_KIB);
    return re;
}

static int full_match(const VitTargetRe *re, const char *name, char *err, size_t errn) {
    int rc = pcre2_match(re->code, (PCRE2_SPTR)name, strlen(name), 0, PCRE2_ANCHORED | PCRE2_ENDANCHORED, re->md, re->mctx);
    if (rc >= 0) return 1;
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    char msg[256];
    pcre2_get_error_message(rc, (PCRE2_UCHAR *)msg, sizeof msg);
    return errorf(err, errn, "target_modules regex '%s': matching '%s' stopped: %s (a pattern of nested repetitions; simplify it)",
                  re->pattern, name, msg);
}

int vit_target_re_match(const VitTargetRe *re, const char *module_v4, char *err, size_t errn) {
    char v5[256];
    vit_v5_name(module_v4, v5, sizeof v5);
    int a = full_match(re, module_v4, err, errn);
    if (a != 0) return a;
    return full_match(re, v5, err, errn);
}

void vit_target_re_free(VitTargetRe *re) {
    if (!re) return;
    pcre2_match_data_free(re->md);
    pcre2_match_context_free(re->mctx);
    pcre2_code_free(re->code);
    free(re->pattern);
    free(re);
}
