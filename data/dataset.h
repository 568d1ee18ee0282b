// dataset.h: labelled images from a folder (one label for all, or one subfolder per class),
// or in memory (Fashion-MNIST's IDX files); a seeded shuffle and split; and a loader that
// decodes and preprocesses batches on all cores, identically for any thread count.
#ifndef CGRAD_DATASET_H
#define CGRAD_DATASET_H

#include "../tensor/rng.h"
#include "image.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int n;
    char **paths;    // image files, or NULL for in-memory items
    int64_t *labels; // index into class_names
    char **class_names;
    int nclasses;
    uint8_t *gray; // in-memory items: n x gh x gw grey pixels
    int gh, gw;
    float *pre; // in-memory preprocessed items: n x pre_numel (the loader copies them)
    int64_t pre_numel;
    int cap;             // slots allocated in paths and labels
    int nskipped;        // files of the folder that are not JPEG or PNG images (left out)
    char *first_skipped; // the first of them, or NULL
} Dataset;

// One folder: with `label`, every image in it carries that label (the seed's case); without,
// each subfolder is a class (ImageFolder). Files are taken in byte order of their names;
// non-image files are skipped with a warning on stderr naming them; hidden files are ignored.
// Errors: an empty dataset, a class folder with no images, an unreadable folder.
int dataset_from_folder(Dataset *d, const char *dir, const char *label, char *err, size_t errn);
// Fashion-MNIST as Debian's dataset-fashion-mnist installs it (DIR/{train,t10k}-*-idx*-ubyte.gz).
int dataset_fashion_mnist(Dataset *d, const char *dir, bool train, char *err, size_t errn);
extern const char *const FASHION_MNIST_CLASSES[10];
// Already preprocessed items (copied): pixels [n, numel], labels [n].
void dataset_from_tensors(Dataset *d, const float *pixels, int64_t numel, const int64_t *labels, int n, int nclasses);
int dataset_image(const Dataset *d, int i, Image *out, char *err, size_t errn); // RGB
void dataset_free(Dataset *d);

// Shuffles 0..n-1 with the seeded generator (Fisher-Yates, rng.h) unless shuffle is false, then
// holds out the last `test` items (test >= 1: a count; 0 < test < 1: round(test * n)).
int dataset_split(int n, uint64_t seed, bool shuffle, double test, int64_t **train, int *ntrain, int64_t **test_idx, int *ntest, char *err,
                  size_t errn);

// ---- loader ----
typedef int (*PrepFn)(void *ud, const Image *im, float *dst); // writes [3, H, W]; 0 or -1

typedef struct {
    const Dataset *ds;
    PrepFn prep;
    void *ud;
    int H, W;
    bool cache;    // keep preprocessed items in memory after their first use
    float *cached; // n x 3 x H x W when cache
    uint8_t *have; // n flags
} Loader;

void loader_init(Loader *L, const Dataset *ds, PrepFn prep, void *ud, int H, int W, bool cache);
// pixels [nb, 3, H, W], labels [nb] for dataset items idx[0..nb); decoding runs in parallel.
int loader_batch(Loader *L, const int64_t *idx, int nb, float *pixels, int64_t *labels, char *err, size_t errn);
// Decodes and preprocesses every item once (in parallel, filling the cache when it is on), so that
// a bad file is found before anything is trained or written; 0, or -1 naming the first bad item.
int loader_check_all(Loader *L, char *err, size_t errn);
void loader_free(Loader *L);

#ifdef __cplusplus
}
#endif

#endif
