// json_strict.c: see json_strict.h.
#include "json_strict.h"
#include "../base/fileio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int by_key(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

const char *json_repeated_key(const cJSON *o) {
    if (!o) return NULL;
    const char *found = NULL;
    if (cJSON_IsObject(o) && o->child && o->child->next) {
        size_t n = 0;
        for (const cJSON *c = o->child; c; c = c->next) n++;
        const char **keys = malloc(n * sizeof *keys);
        if (!keys) return NULL;
        n = 0;
        for (const cJSON *c = o->child; c; c = c->next) keys[n++] = c->string ? c->string : "";
        qsort(keys, n, sizeof *keys, by_key);
        for (size_t i = 1; i < n && !found; i++)
            if (!strcmp(keys[i - 1], keys[i])) found = keys[i];
        free(keys);
    }
    for (const cJSON *c = o->child; c && !found; c = c->next) found = json_repeated_key(c); // cJSON bounds the depth
    return found;
}

int json_check_unique_keys(const cJSON *root, const char *path, char *err, size_t errn) {
    const char *k = json_repeated_key(root);
    if (!k) return 0;
    return errorf(err, errn, "%s: key '%.200s' appears twice in one object (Python would keep the last, cJSON the first)", path, k);
}
