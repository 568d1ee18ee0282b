// checkpoint.c: model directories: their weights in any supported layout, by the names a map gives.
#include "checkpoint.h"
#include "json_strict.h"

#include "../base/fileio.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

// pointers into ck->canon by name, then by position (the first of equal names first); no shared state
static int canon_cmp(const void *a, const void *b) {
    char *const *x = *(char *const *const *)a, *const *y = *(char *const *const *)b;
    int c = strcmp(*x, *y);
    return c ? c : (x > y) - (x < y);
}

static void index_entries(Checkpoint *ck, CheckpointNameMap map) {
    int total = 0;
    for (int f = 0; f < ck->nfiles; f++) total += ck->files[f].n;
    ck->canon = calloc((size_t)(total ? total : 1), sizeof *ck->canon);
    ck->entries = calloc((size_t)(total ? total : 1), sizeof *ck->entries);
    for (int f = 0; f < ck->nfiles; f++)
        for (int i = 0; i < ck->files[f].n; i++) {
            char b[1024];
            ck->canon[ck->n] = strdup(map ? map(ck->files[f].e[i].name, b, sizeof b) : ck->files[f].e[i].name);
            ck->entries[ck->n++] = &ck->files[f].e[i];
        }
    ck->order = malloc(sizeof *ck->order * (size_t)(total ? total : 1));
    char ***ptr = malloc(sizeof *ptr * (size_t)(total ? total : 1));
    for (int i = 0; i < ck->n; i++) ptr[i] = &ck->canon[i];
    qsort(ptr, (size_t)ck->n, sizeof *ptr, canon_cmp);
    for (int i = 0; i < ck->n; i++) ck->order[i] = (int)(ptr[i] - ck->canon);
    free(ptr);
}

const WEntry *checkpoint_find(const Checkpoint *ck, const char *canonical) {
    int lo = 0, hi = ck->n; // the first position whose name is >= canonical
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp(ck->canon[ck->order[mid]], canonical) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < ck->n && !strcmp(ck->canon[ck->order[lo]], canonical) ? ck->entries[ck->order[lo]] : NULL;
}

void checkpoint_close(Checkpoint *ck) {
    for (int f = 0; f < ck->nfiles; f++) wfile_close(&ck->files[f]);
    for (int i = 0; i < ck->n; i++) free(ck->canon[i]);
    free(ck->canon);
    free(ck->entries);
    free(ck->order);
    free(ck->files);
    memset(ck, 0, sizeof *ck);
}

int checkpoint_open_file(Checkpoint *ck, const char *path, CheckpointNameMap map, char *err, size_t errn) {
    memset(ck, 0, sizeof *ck);
    ck->files = calloc(1, sizeof *ck->files);
    if (safetensors_open(&ck->files[0], path, err, errn) != 0) {
        free(ck->files);
        ck->files = NULL;
        return -1;
    }
    ck->nfiles = 1;
    snprintf(ck->format, sizeof ck->format, "safetensors");
    index_entries(ck, map);
    return 0;
}

static int str_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int open_sharded(Checkpoint *ck, const char *dir, const char *index, CheckpointNameMap map, char *err, size_t errn) {
    char *txt = file_read_all(index, 64u << 20, NULL, err, errn);
    if (!txt) return -1;
    cJSON *o = cJSON_ParseWithOpts(txt, NULL, 1);
    free(txt);
    if (o && json_check_unique_keys(o, index, err, errn) != 0) {
        cJSON_Delete(o);
        return -1;
    }
    cJSON *wm = o ? cJSON_GetObjectItemCaseSensitive(o, "weight_map") : NULL;
    if (!wm || !cJSON_IsObject(wm)) {
        snprintf(err, errn, "%s: not a safetensors index (no \"weight_map\" object)", index);
        cJSON_Delete(o);
        return -1;
    }
    // distinct shard files, in sorted order (as transformers loads them); O(n log n) for any index
    char **shards = NULL;
    int ns = 0, nmap = cJSON_GetArraySize(wm);
    shards = malloc(sizeof *shards * (size_t)(nmap ? nmap : 1));
    if (!shards) {
        snprintf(err, errn, "%s: out of memory for %d entries", index, nmap);
        goto fail;
    }
    for (cJSON *it = wm->child; it; it = it->next) {
        if (!cJSON_IsString(it) || strchr(it->valuestring, '/') || !strcmp(it->valuestring, "..")) {
            snprintf(err, errn, "%s: weight_map entry '%s' is not a file name in the directory", index, it->string);
            goto fail;
        }
        shards[ns++] = it->valuestring;
    }
    qsort(shards, (size_t)ns, sizeof *shards, str_cmp);
    int u = 0;
    for (int s = 0; s < ns; s++)
        if (!u || strcmp(shards[u - 1], shards[s])) shards[u++] = shards[s];
    ns = u;
    ck->files = calloc((size_t)(ns ? ns : 1), sizeof *ck->files);
    for (int s = 0; s < ns; s++) {
        char p[FILE_PATH_BUF];
        path_join(p, sizeof p, dir, shards[s]);
        if (!file_exists(p)) {
            snprintf(err, errn, "%s: names shard '%s', which is missing", index, shards[s]);
            goto fail;
        }
        if (safetensors_open(&ck->files[ck->nfiles], p, err, errn) != 0) goto fail;
        ck->nfiles++;
    }
    // every tensor of the map must be in the shard it names
    for (cJSON *it = wm->child; it; it = it->next) {
        const char *key = it->valuestring;
        char **sp = bsearch(&key, shards, (size_t)ns, sizeof *shards, str_cmp);
        if (sp && !wfile_find(&ck->files[sp - shards], it->string)) {
            snprintf(err, errn, "%s: tensor '%s' is not in shard '%s'", index, it->string, *sp);
            goto fail;
        }
    }
    snprintf(ck->format, sizeof ck->format, "sharded safetensors (%d shards)", ns);
    free(shards);
    cJSON_Delete(o);
    index_entries(ck, map);
    return 0;
fail:
    free(shards);
    cJSON_Delete(o);
    checkpoint_close(ck);
    return -1;
}

int checkpoint_open_dir(Checkpoint *ck, const char *dir, CheckpointNameMap map, char *err, size_t errn) {
    memset(ck, 0, sizeof *ck);
    char p[FILE_PATH_BUF];
    if (file_exists(path_join(p, sizeof p, dir, "model.safetensors"))) return checkpoint_open_file(ck, p, map, err, errn);
    if (file_exists(path_join(p, sizeof p, dir, "model.safetensors.index.json"))) return open_sharded(ck, dir, p, map, err, errn);
    if (file_exists(path_join(p, sizeof p, dir, "pytorch_model.bin"))) {
        ck->files = calloc(1, sizeof *ck->files);
        if (torchbin_open(&ck->files[0], p, err, errn) != 0) {
            free(ck->files);
            ck->files = NULL;
            return -1;
        }
        ck->nfiles = 1;
        snprintf(ck->format, sizeof ck->format, "pytorch_model.bin");
        index_entries(ck, map);
        return 0;
    }
    return errorf(err, errn, "%s: no weights (model.safetensors, model.safetensors.index.json or pytorch_model.bin)", dir);
}
