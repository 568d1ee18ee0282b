// test_dataset.c: folder datasets, Fashion-MNIST, seeded splits, and a loader whose batches do
// not depend on the thread count.
#include "../../base/fileio.h"
#include "../../data/dataset.h"
#include "../../models/image_processor.h"

#include "../check_util.h"
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define IMG TEST_DATA "/golden/images"
static char err[1024], dir[64];

static void sh(const char *fmt, const char *a) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, fmt, a, a, a, a);
    ck_assert_int_eq(system(cmd), 0);
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/cgrad_ds_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}
static void teardown(void) { sh("rm -rf '%s'", dir); }

START_TEST(test_folder_with_one_label) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cp %s/small_20x30.jpg %s/b.jpg && cp %s/gray_256x256.png %s/B.png && cp %s/palette_120x90.png %s/a10.png && "
             "cp %s/noise_150x250.png %s/a9.PNG && echo notes > %s/readme.txt && cp %s/small_20x30.jpg %s/.hidden.jpg",
             IMG, dir, IMG, dir, IMG, dir, IMG, dir, dir, IMG, dir);
    ck_assert_int_eq(system(cmd), 0);
    Dataset d;
    ck_assert_msg(dataset_from_folder(&d, dir, "raccoon", err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(d.n, 4); // readme.txt skipped (counted for the program's one warning), .hidden.jpg ignored
    ck_assert_int_eq(d.nskipped, 1);
    ck_assert_str_eq(strrchr(d.first_skipped, '/') + 1, "readme.txt");
    const char *want[] = {"B.png", "a10.png", "a9.PNG", "b.jpg"}; // byte order of names
    for (int i = 0; i < 4; i++) {
        ck_assert_str_eq(strrchr(d.paths[i], '/') + 1, want[i]);
        ck_assert_int_eq(d.labels[i], 0);
    }
    ck_assert_str_eq(d.class_names[0], "raccoon");
    dataset_free(&d);
    // without a label the folder needs class subfolders
    ck_assert_int_eq(dataset_from_folder(&d, dir, NULL, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "no class subfolders"));
}
END_TEST

START_TEST(test_image_folder_layout) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/dog %s/cat && cp %s/small_20x30.jpg %s/dog/1.jpg && cp %s/small_20x30.jpg %s/cat/2.jpg && cp %s/gray_256x256.png "
             "%s/cat/1.png",
             dir, dir, IMG, dir, IMG, dir, IMG, dir);
    ck_assert_int_eq(system(cmd), 0);
    Dataset d;
    ck_assert_msg(dataset_from_folder(&d, dir, NULL, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(d.nclasses, 2);
    ck_assert_str_eq(d.class_names[0], "cat");
    ck_assert_int_eq(d.n, 3);
    ck_assert(d.labels[0] == 0 && d.labels[1] == 0 && d.labels[2] == 1);
    dataset_free(&d);
    snprintf(cmd, sizeof cmd, "mkdir -p %s/empty_class && echo x > %s/empty_class/notes.txt", dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(dataset_from_folder(&d, dir, NULL, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "empty_class: class folder has no images") != NULL, "%s", err);
    char p[256];
    snprintf(p, sizeof p, "%s/empty_class", dir);
    ck_assert_int_eq(dataset_from_folder(&d, p, "x", err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "no JPEG or PNG images"));
    ck_assert_int_eq(dataset_from_folder(&d, "/nonexistent/folder", "x", err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/folder: not a folder"));
}
END_TEST

START_TEST(test_split_seeded) {
    int64_t *tr, *te, *tr2, *te2;
    int ntr, nte;
    ck_assert_int_eq(dataset_split(75, 42, true, 10, &tr, &ntr, &te, &nte, err, sizeof err), 0);
    ck_assert(ntr == 65 && nte == 10);
    int seen[75] = {0};
    for (int i = 0; i < 65; i++) seen[tr[i]]++;
    for (int i = 0; i < 10; i++) seen[te[i]]++;
    for (int i = 0; i < 75; i++) ck_assert_int_eq(seen[i], 1); // a partition
    ck_assert_int_eq(dataset_split(75, 42, true, 10, &tr2, &ntr, &te2, &nte, err, sizeof err), 0);
    ck_assert(!memcmp(tr, tr2, sizeof *tr * 65) && !memcmp(te, te2, sizeof *te * 10)); // reproducible
    free(tr2), free(te2);
    ck_assert_int_eq(dataset_split(75, 43, true, 10, &tr2, &ntr, &te2, &nte, err, sizeof err), 0);
    ck_assert(memcmp(tr, tr2, sizeof *tr * 65) != 0); // another seed, another order
    free(tr), free(te), free(tr2), free(te2);
    ck_assert_int_eq(dataset_split(10, 1, false, 0.2, &tr, &ntr, &te, &nte, err, sizeof err), 0);
    ck_assert(ntr == 8 && nte == 2 && tr[0] == 0 && te[1] == 9); // no shuffle: files in order
    free(tr), free(te);
    ck_assert_int_eq(dataset_split(5, 1, true, 5, &tr, &ntr, &te, &nte, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "too few"));
}
END_TEST

static void write_gz(const char *path, const uint8_t *d, size_t n) {
    gzFile g = gzopen(path, "wb");
    gzwrite(g, d, (unsigned)n);
    gzclose(g);
}

START_TEST(test_fashion_mnist_idx) {
    // a synthetic pair: 2 images of 3x2, labels 9 and 0
    uint8_t im[16 + 12] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    uint8_t lb[10] = {0, 0, 8, 1, 0, 0, 0, 2, 9, 0};
    char p[256];
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte.gz", dir);
    write_gz(p, im, sizeof im);
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte.gz", dir);
    write_gz(p, lb, sizeof lb);
    Dataset d;
    ck_assert_msg(dataset_fashion_mnist(&d, dir, false, err, sizeof err) == 0, "%s", err);
    ck_assert(d.n == 2 && d.gh == 3 && d.gw == 2 && d.labels[0] == 9 && d.nclasses == 10);
    ck_assert_str_eq(d.class_names[d.labels[0]], "Ankle boot");
    Image x;
    ck_assert_int_eq(dataset_image(&d, 1, &x, err, sizeof err), 0);
    ck_assert(x.w == 2 && x.h == 3 && x.px[0] == 7 && x.px[1] == 7 && x.px[5 * 3 + 2] == 12);
    image_free(&x);
    dataset_free(&d);
    im[3] = 4; // bad magic
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte.gz", dir);
    write_gz(p, im, sizeof im);
    ck_assert_int_eq(dataset_fashion_mnist(&d, dir, false, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "not an IDX image file"));
    // the real one, when Debian's dataset-fashion-mnist is installed
    const char *real = "/usr/share/datasets/fashion-mnist";
    if (dir_exists(real)) {
        ck_assert_msg(dataset_fashion_mnist(&d, real, true, err, sizeof err) == 0, "%s", err);
        ck_assert(d.n == 60000 && d.gh == 28 && d.gw == 28 && d.labels[0] == 9);
        dataset_free(&d);
    }
}
END_TEST

START_TEST(test_folder_of_many_images) {
    // past the first allocation of 64 slots, with two non-images among them
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "for i in $(seq 100 249); do cp %s/small_20x30.jpg %s/img$i.jpg; done && echo x > %s/b.txt && "
             "echo y > %s/a.txt",
             IMG, dir, dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    Dataset d;
    ck_assert_msg(dataset_from_folder(&d, dir, "x", err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(d.n, 150);
    ck_assert_int_eq(d.nskipped, 2);
    ck_assert_str_eq(strrchr(d.first_skipped, '/') + 1, "a.txt");
    ck_assert_str_eq(strrchr(d.paths[149], '/') + 1, "img249.jpg");
    dataset_free(&d);
}
END_TEST

START_TEST(test_loader_same_for_any_thread_count) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp %s/*.jpg %s/*.png %s/", IMG, IMG, dir);
    ck_assert_int_eq(system(cmd), 0);
    Dataset d;
    ck_assert_int_eq(dataset_from_folder(&d, dir, "x", err, sizeof err), 0);
    ck_assert_int_eq(d.n, 8);
    ImageProcessor ip;
    image_processor_default(&ip, 64);
    int64_t idx[8] = {3, 1, 4, 7, 5, 0, 2, 6}, lab[8];
    size_t per = 3 * 64 * 64;
    float *a = malloc(sizeof(float) * per * 8), *b = malloc(sizeof(float) * per * 8), *cc = malloc(sizeof(float) * per * 8);
    Loader L;
    loader_init(&L, &d, image_processor_prep, &ip, 64, 64, false);
    omp_set_num_threads(1);
    ck_assert_int_eq(loader_batch(&L, idx, 8, a, lab, err, sizeof err), 0);
    omp_set_num_threads(2);
    ck_assert_int_eq(loader_batch(&L, idx, 8, b, lab, err, sizeof err), 0);
    ck_assert(!memcmp(a, b, sizeof(float) * per * 8));
    loader_free(&L);
    loader_init(&L, &d, image_processor_prep, &ip, 64, 64, true); // cached: same values, second time from memory
    ck_assert_int_eq(loader_batch(&L, idx, 8, b, lab, err, sizeof err), 0);
    ck_assert_int_eq(loader_batch(&L, idx, 8, cc, lab, err, sizeof err), 0);
    ck_assert(!memcmp(a, cc, sizeof(float) * per * 8));
    loader_free(&L);
    // a file that went bad after listing is reported by name
    snprintf(cmd, sizeof cmd,
             "head -c 500 %s/gradient_400x300.jpg > %s/gradient_400x300.jpg.tmp && mv %s/gradient_400x300.jpg.tmp %s/gradient_400x300.jpg",
             IMG, dir, dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    loader_init(&L, &d, image_processor_prep, &ip, 64, 64, false);
    ck_assert_int_eq(loader_batch(&L, idx, 8, b, lab, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "gradient_400x300.jpg: corrupt or truncated JPEG") != NULL, "%s", err);
    loader_free(&L);
    free(a), free(b), free(cc);
    dataset_free(&d);
}
END_TEST

int main(void) {
    Suite *s = suite_create("dataset");
    check_fixture(setup, teardown);
    tcase_add_test(check_case(s, "test_folder_with_one_label"), test_folder_with_one_label);
    tcase_add_test(check_case(s, "test_image_folder_layout"), test_image_folder_layout);
    tcase_add_test(check_case(s, "test_split_seeded"), test_split_seeded);
    tcase_add_test(check_case(s, "test_fashion_mnist_idx"), test_fashion_mnist_idx);
    tcase_add_test(check_case(s, "test_folder_of_many_images"), test_folder_of_many_images);
    tcase_add_test(check_case(s, "test_loader_same_for_any_thread_count"), test_loader_same_for_any_thread_count);
    return check_run(s);
}
