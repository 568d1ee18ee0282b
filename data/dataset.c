// dataset.c: see dataset.h.
#include "dataset.h"

#include "../base/fileio.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

const char *const FASHION_MNIST_CLASSES[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                               "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// sorted names in dir (no hidden ones); kind: 'f' regular files, 'd' directories
static int list_dir(const char *dir, char kind, char ***out, int *n, char *err, size_t errn) {
    DIR *dp = opendir(dir);
    if (!dp) {
        return errorf(err, errn, "%s: cannot open the folder", dir);
    }
    char **v = NULL;
    int k = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(dp))) {
        if (de->d_name[0] == '.') continue;
        char p[FILE_PATH_BUF];
        struct stat st;
        if (stat(path_join(p, sizeof p, dir, de->d_name), &st) != 0) continue;
        if ((kind == 'f' && !S_ISREG(st.st_mode)) || (kind == 'd' && !S_ISDIR(st.st_mode))) continue;
        if (k == cap) v = realloc(v, sizeof *v * (size_t)(cap = cap ? cap * 2 : 64));
        v[k++] = strdup(de->d_name);
    }
    closedir(dp);
    if (k) qsort(v, (size_t)k, sizeof *v, cmp_str); // byte order of names, as the notebook's sorted listing
    *out = v;
    *n = k;
    return 0;
}

static bool is_image_file(const char *path) {
    char err[64];
    int fd = file_open_regular(path, NULL, err, sizeof err); // a FIFO is skipped, not waited on
    if (fd < 0) return false;
    uint8_t head[8] = {0};
    ssize_t n = read(fd, head, sizeof head);
    close(fd);
    return n > 0 && image_sniff(head, (size_t)n);
}

// room for twice as many items (paths and labels)
static int grow(Dataset *d) {
    int cap = d->cap ? 2 * d->cap : 64;
    char **p = realloc(d->paths, sizeof *p * (size_t)cap);
    if (p) d->paths = p;
    int64_t *l = p ? realloc(d->labels, sizeof *l * (size_t)cap) : NULL;
    if (l) d->labels = l;
    if (!p || !l) return -1;
    d->cap = cap;
    return 0;
}

static int add_class_images(Dataset *d, const char *dir, int cls, char *err, size_t errn) {
    char **names;
    int n;
    if (list_dir(dir, 'f', &names, &n, err, errn) != 0) return -1;
    int added = 0, i;
    for (i = 0; i < n; i++) {
        char p[FILE_PATH_BUF];
        path_join(p, sizeof p, dir, names[i]);
        if (!is_image_file(p)) { // counted for the caller to report once (not by every MPI rank)
            if (d->nskipped++ == 0 && !(d->first_skipped = strdup(p))) goto oom;
        } else {
            if (d->n == d->cap && grow(d) != 0) goto oom;
            if (!(d->paths[d->n] = strdup(p))) goto oom;
            d->labels[d->n] = cls;
            d->n++;
            added++;
        }
        free(names[i]);
    }
    free(names);
    return added;
oom:
    for (; i < n; i++) free(names[i]); // the earlier names were freed in the loop
    free(names);
    return errorf(err, errn, "%s: out of memory listing the images", dir);
}

int dataset_from_folder(Dataset *d, const char *dir, const char *label, char *err, size_t errn) {
    memset(d, 0, sizeof *d);
    if (!dir_exists(dir)) {
        return errorf(err, errn, "%s: not a folder", dir);
    }
    if (label && !text_is_utf8(label)) { // labels go into config.json, which Python must read
        return errorf(err, errn, "--label: not valid UTF-8");
    }
    if (label) {
        d->nclasses = 1;
        d->class_names = malloc(sizeof *d->class_names);
        d->class_names[0] = strdup(label);
        int k = add_class_images(d, dir, 0, err, errn);
        if (k < 0) goto fail;
        if (k == 0) {
            snprintf(err, errn, "%s: no JPEG or PNG images in the folder", dir);
            goto fail;
        }
        return 0;
    }
    char **subs;
    int ns;
    if (list_dir(dir, 'd', &subs, &ns, err, errn) != 0) goto fail;
    if (ns == 0) {
        free(subs);
        snprintf(err, errn, "%s: no class subfolders (give --label NAME for a folder of images of one class)", dir);
        goto fail;
    }
    for (int c = 0; c < ns; c++)
        if (!text_is_utf8(subs[c])) {
            snprintf(err, errn, "%s: a class folder's name is not valid UTF-8 (labels go into config.json)", dir);
            for (int k = 0; k < ns; k++) free(subs[k]);
            free(subs);
            goto fail;
        }
    d->class_names = calloc((size_t)(ns > 0 ? ns : 1), sizeof *d->class_names);
    d->nclasses = ns;
    int rc = 0;
    for (int c = 0; c < ns; c++) {
        d->class_names[c] = subs[c];
        char p[FILE_PATH_BUF];
        int k = rc == 0 ? add_class_images(d, path_join(p, sizeof p, dir, subs[c]), c, err, errn) : 0;
        if (rc == 0 && k == 0) snprintf(err, errn, "%s: class folder has no images", p);
        if (k <= 0) rc = -1;
    }
    free(subs);
    if (rc != 0) goto fail;
    return 0;
fail:
    dataset_free(d);
    return -1;
}

// ---- IDX (gzip): magic 0x00000803 images [n, rows, cols], 0x00000801 labels [n] ----

static uint8_t *read_gz(const char *path, size_t max, size_t *n, char *err, size_t errn) {
    int fd = file_open_regular(path, NULL, err, errn);
    if (fd < 0) return NULL;
    gzFile g = gzdopen(fd, "rb");
    if (!g) {
        close(fd);
        snprintf(err, errn, "%s: cannot open", path);
        return NULL;
    }
    size_t cap = 1 << 20, k = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (k == cap) {
            if (cap >= max) {
                snprintf(err, errn, "%s: larger than %zu bytes uncompressed", path, max);
                free(buf), gzclose(g);
                return NULL;
            }
            buf = realloc(buf, cap *= 2);
        }
        int r = gzread(g, buf + k, (unsigned)(cap - k));
        if (r < 0) {
            snprintf(err, errn, "%s: corrupt gzip data", path);
            free(buf), gzclose(g);
            return NULL;
        }
        if (r == 0) break;
        k += (size_t)r;
    }
    gzclose(g);
    *n = k;
    return buf;
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

int dataset_fashion_mnist(Dataset *d, const char *dir, bool train, char *err, size_t errn) {
    memset(d, 0, sizeof *d);
    char ip[FILE_PATH_BUF], lp[FILE_PATH_BUF];
    snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte.gz", dir, train ? "train" : "t10k");
    snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte.gz", dir, train ? "train" : "t10k");
    size_t ni, nl;
    uint8_t *im = read_gz(ip, 256u << 20, &ni, err, errn), *lb = im ? read_gz(lp, 16u << 20, &nl, err, errn) : NULL;
    if (!im || !lb) goto fail;
    if (ni < 16 || be32(im) != 0x803) {
        snprintf(err, errn, "%s: not an IDX image file (magic)", ip);
        goto fail;
    }
    if (nl < 8 || be32(lb) != 0x801) {
        snprintf(err, errn, "%s: not an IDX label file (magic)", lp);
        goto fail;
    }
    uint32_t n = be32(im + 4), rows = be32(im + 8), cols = be32(im + 12);
    if (rows == 0 || cols == 0 || rows > 4096 || cols > 4096 || (uint64_t)n * rows * cols != ni - 16) {
        snprintf(err, errn, "%s: %u images of %ux%u do not match the file size", ip, n, rows, cols);
        goto fail;
    }
    if (be32(lb + 4) != n || nl - 8 != n) {
        snprintf(err, errn, "%s: label count does not match %s", lp, ip);
        goto fail;
    }
    d->n = (int)n, d->gh = (int)rows, d->gw = (int)cols;
    d->gray = malloc(ni - 16);
    memcpy(d->gray, im + 16, ni - 16);
    d->labels = malloc(sizeof *d->labels * n);
    for (uint32_t i = 0; i < n; i++) {
        if (lb[8 + i] > 9) {
            snprintf(err, errn, "%s: label %d outside 0..9", lp, lb[8 + i]);
            goto fail;
        }
        d->labels[i] = lb[8 + i];
    }
    d->nclasses = 10;
    d->class_names = malloc(sizeof *d->class_names * 10);
    for (int i = 0; i < 10; i++) d->class_names[i] = strdup(FASHION_MNIST_CLASSES[i]);
    free(im), free(lb);
    return 0;
fail:
    free(im), free(lb);
    dataset_free(d);
    return -1;
}

void dataset_from_tensors(Dataset *d, const float *pixels, int64_t numel, const int64_t *labels, int n, int nclasses) {
    memset(d, 0, sizeof *d);
    d->n = n, d->pre_numel = numel, d->nclasses = nclasses;
    d->pre = malloc(sizeof(float) * (size_t)numel * (size_t)n);
    memcpy(d->pre, pixels, sizeof(float) * (size_t)numel * (size_t)n);
    d->labels = malloc(sizeof *d->labels * (size_t)n);
    memcpy(d->labels, labels, sizeof *d->labels * (size_t)n);
    d->class_names = calloc((size_t)nclasses, sizeof *d->class_names);
    for (int c = 0; c < nclasses; c++) {
        char b[32];
        snprintf(b, sizeof b, "LABEL_%d", c);
        d->class_names[c] = strdup(b);
    }
}

int dataset_image(const Dataset *d, int i, Image *out, char *err, size_t errn) {
    if (d->paths) return image_load(out, d->paths[i], err, errn);
    if (image_alloc(out, d->gw, d->gh) != 0) return -1;
    const uint8_t *g = d->gray + (size_t)i * (size_t)d->gh * (size_t)d->gw;
    for (size_t k = 0; k < (size_t)d->gh * (size_t)d->gw; k++) out->px[3 * k] = out->px[3 * k + 1] = out->px[3 * k + 2] = g[k];
    return 0;
}

void dataset_free(Dataset *d) {
    if (d->paths)
        for (int i = 0; i < d->n; i++) free(d->paths[i]);
    if (d->class_names)
        for (int i = 0; i < d->nclasses; i++) free(d->class_names[i]);
    free(d->paths), free(d->labels), free(d->class_names), free(d->gray), free(d->pre), free(d->first_skipped);
    memset(d, 0, sizeof *d);
}

int dataset_split(int n, uint64_t seed, bool shuffle, double test, int64_t **train, int *ntrain, int64_t **test_idx, int *ntest, char *err,
                  size_t errn) {
    int nt = test >= 1 ? (int)test : (int)lround(test * n);
    if (test < 0 || (test >= 1 && test != floor(test))) {
        return errorf(err, errn, "test split %g must be a count or a fraction in [0, 1)", test);
    }
    if (nt >= n) {
        return errorf(err, errn, "%d images are too few to hold out %d for testing and still train", n, nt);
    }
    int64_t *idx = malloc(sizeof *idx * (size_t)n);
    for (int i = 0; i < n; i++) idx[i] = i;
    if (shuffle) {
        Rng r = rng_new(seed);
        rng_shuffle(&r, idx, n);
    }
    *ntrain = n - nt;
    *ntest = nt;
    *train = malloc(sizeof **train * (size_t)(n - nt));
    *test_idx = malloc(sizeof **test_idx * (size_t)(nt ? nt : 1));
    memcpy(*train, idx, sizeof *idx * (size_t)(n - nt));
    memcpy(*test_idx, idx + (n - nt), sizeof *idx * (size_t)nt);
    free(idx);
    return 0;
}

// ---- loader ----

void loader_init(Loader *L, const Dataset *ds, PrepFn prep, void *ud, int H, int W, bool cache) {
    memset(L, 0, sizeof *L);
    L->ds = ds, L->prep = prep, L->ud = ud, L->H = H, L->W = W, L->cache = cache;
    if (cache) {
        L->cached = malloc(sizeof(float) * 3 * (size_t)H * (size_t)W * (size_t)ds->n);
        L->have = calloc((size_t)ds->n, 1);
    }
}

void loader_free(Loader *L) {
    free(L->cached), free(L->have);
    memset(L, 0, sizeof *L);
}

int loader_check_all(Loader *L, char *err, size_t errn) {
    enum { CHUNK = 32 };
    size_t per = 3 * (size_t)L->H * (size_t)L->W;
    float *px = malloc(sizeof(float) * per * CHUNK);
    int64_t idx[CHUNK], lab[CHUNK];
    if (!px) {
        return errorf(err, errn, "out of memory checking the images");
    }
    int rc = 0;
    for (int i0 = 0; i0 < L->ds->n && rc == 0; i0 += CHUNK) {
        int nb = L->ds->n - i0 < CHUNK ? L->ds->n - i0 : CHUNK;
        for (int b = 0; b < nb; b++) idx[b] = i0 + b;
        rc = loader_batch(L, idx, nb, px, lab, err, errn);
    }
    free(px);
    return rc;
}

int loader_batch(Loader *L, const int64_t *idx, int nb, float *pixels, int64_t *labels, char *err, size_t errn) {
    size_t per = 3 * (size_t)L->H * (size_t)L->W;
    int failed = -1;
    // items are independent, so any thread count gives the same batch
#pragma omp parallel for schedule(dynamic, 1)
    for (int b = 0; b < nb; b++) {
        int i = (int)idx[b];
        float *dst = pixels + (size_t)b * per;
        if (L->ds->pre) { // already preprocessed
            memcpy(dst, L->ds->pre + (size_t)i * per, per * sizeof(float));
            continue;
        }
        if (L->cache && L->have[i]) {
            memcpy(dst, L->cached + (size_t)i * per, per * sizeof(float));
            continue;
        }
        char e[512];
        Image im;
        int rc = dataset_image(L->ds, i, &im, e, sizeof e);
        if (rc == 0) {
            rc = L->prep(L->ud, &im, dst);
            if (rc != 0) snprintf(e, sizeof e, "%s: preprocessing failed", L->ds->paths ? L->ds->paths[i] : "image");
            image_free(&im);
        }
        if (rc != 0) {
#pragma omp critical
            if (failed < 0 || b < failed) { // report the first failing item of the batch
                failed = b;
                snprintf(err, errn, "%s", e);
            }
            continue;
        }
        if (L->cache) {
            memcpy(L->cached + (size_t)i * per, dst, per * sizeof(float));
            L->have[i] = 1;
        }
    }
    for (int b = 0; b < nb; b++) labels[b] = L->ds->labels[idx[b]];
    return failed >= 0 ? -1 : 0;
}
