// test_image.c: decoding and resizing equal Pillow's pixel for pixel on the golden images; the
// processors' crops and normalisation; bad files refused with the documented messages.
#include "../../base/fileio.h"
#include "../../data/image_grid.h"
#include "../../formats/weights.h"
#include "../../models/image_processor.h"

#include "../check_util.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define IMG TEST_DATA "/golden/images"
static const char *FILES[] = {"gradient_400x300.jpg", "gray_256x256.jpg",        "gray_256x256.png", "noise_150x250.png",
                              "palette_120x90.png",   "progressive_317x233.jpg", "rgba_200x150.png", "small_20x30.jpg"};
static char err[1024];
static WFile ref;
static Ctx *c;

static void setup(void) {
    ck_assert_msg(safetensors_open(&ref, IMG "/preprocessed.safetensors", err, sizeof err) == 0, "%s", err);
    c = ctx_new(1 << 20);
}
static void teardown(void) {
    wfile_close(&ref);
    ctx_free(c);
}

static int differing(const Image *im, const char *key) {
    const WEntry *e = wfile_find(&ref, key);
    ck_assert_msg(e != NULL, "no %s", key);
    ck_assert_int_eq(e->shape[0], im->h);
    ck_assert_int_eq(e->shape[1], im->w);
    int d = 0;
    for (size_t i = 0; i < (size_t)im->w * im->h * 3; i++) d += e->data[i] != im->px[i];
    return d;
}

static void load_golden(Image *im, const char *f) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", IMG, f);
    ck_assert_msg(image_load(im, p, err, sizeof err) == 0, "%s", err);
}

START_TEST(test_decode_equals_pillow) {
    Image im;
    load_golden(&im, FILES[_i]);
    char k[128];
    snprintf(k, sizeof k, "decoded.%s", FILES[_i]);
    ck_assert_msg(differing(&im, k) == 0, "%s: %d values differ from Pillow", FILES[_i], differing(&im, k));
    image_free(&im);
}
END_TEST

START_TEST(test_vit_resize_equals_pillow) {
    Image im, r;
    load_golden(&im, FILES[_i]);
    ck_assert_int_eq(image_resize(&r, &im, 224, 224, RESAMPLE_BILINEAR), 0);
    char k[128];
    snprintf(k, sizeof k, "vit_resized.%s", FILES[_i]);
    ck_assert_msg(differing(&r, k) == 0, "%s: %d values differ", FILES[_i], differing(&r, k));
    image_free(&im), image_free(&r);
}
END_TEST

START_TEST(test_timm_eval_equals_pillow) {
    // timm's DeiT evaluation transform: short side to 256 with BICUBIC, center crop 224
    ImageProcessor p;
    image_processor_default(&p, 224);
    p.shortest_edge = 256, p.size_h = p.size_w = 0, p.resample = RESAMPLE_BICUBIC;
    p.do_center_crop = true, p.crop_h = p.crop_w = 224, p.style = GEOM_TIMM;
    Image im, r;
    load_golden(&im, FILES[_i]);
    ck_assert_int_eq(image_processor_geometry(&p, &im, &r), 0);
    char k[128];
    snprintf(k, sizeof k, "deit_eval_resized.%s", FILES[_i]);
    ck_assert_msg(differing(&r, k) == 0, "%s: %d values differ", FILES[_i], differing(&r, k));
    image_free(&im), image_free(&r);
}
END_TEST

START_TEST(test_vit_normalised_tensor) {
    const char *two[] = {"gradient_400x300.jpg", "noise_150x250.png"};
    for (int i = 0; i < 2; i++) {
        ImageProcessor p;
        image_processor_default(&p, 224);
        Image im, r;
        load_golden(&im, two[i]);
        ck_assert_int_eq(image_processor_geometry(&p, &im, &r), 0);
        float *t = malloc(sizeof(float) * 3 * 224 * 224);
        image_processor_tensor(&p, &r, t);
        char k[128];
        snprintf(k, sizeof k, "vitf.%s", two[i]);
        const WEntry *e = wfile_find(&ref, k);
        double md = 0;
        for (int j = 0; j < 3 * 224 * 224; j++) {
            float v;
            memcpy(&v, e->data + 4 * j, 4);
            md = fmax(md, fabs(v - t[j]));
        }
        ck_assert_msg(md <= 1e-6, "%s: max diff %g", two[i], md);
        free(t), image_free(&im), image_free(&r);
    }
}
END_TEST

// ---------------------------------------------------------------- unusual modes

static const char *MODES[] = {"cmyk.jpg",         "progressive_grey.jpg", "grey16.png",     "rgb16.png",   "rgba16.png",      "la.png",
                              "palette_trns.png", "grey_trns.png",        "interlaced.png", "bilevel.png", "exif_rotated.jpg"};

START_TEST(test_unusual_modes_equal_pillow) {
    WFile ex;
    ck_assert(safetensors_open(&ex, TEST_DATA "/images/expected.safetensors", err, sizeof err) == 0);
    char p[512];
    snprintf(p, sizeof p, "%s/images/%s", TEST_DATA, MODES[_i]);
    Image im;
    ck_assert_msg(image_load(&im, p, err, sizeof err) == 0, "%s", err);
    const WEntry *e = wfile_find(&ex, MODES[_i]);
    ck_assert(e && e->shape[0] == im.h && e->shape[1] == im.w);
    int d = 0;
    for (size_t i = 0; i < (size_t)im.w * im.h * 3; i++) d += e->data[i] != im.px[i];
    ck_assert_msg(d == 0, "%s: %d values differ from Pillow", MODES[_i], d);
    image_free(&im);
    wfile_close(&ex);
}
END_TEST

// ---------------------------------------------------------------- processors

START_TEST(test_processor_configs_both_styles) {
    char dir[] = "/tmp/cgrad_imgXXXXXX", p[256];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(p, sizeof p, "%s/preprocessor_config.json", dir);
    // the facebook/deit-tiny-patch16-224 file: a ViTImageProcessor with an int size
    const char *vit =
        "{\"do_normalize\": true, \"do_resize\": true, \"image_mean\": [0.5,0.5,0.5], \"image_std\": [0.5,0.5,0.5], \"size\": 224}";
    write_file(p, vit, strlen(vit));
    ImageProcessor ip;
    ck_assert_msg(image_processor_load(&ip, p, 224, err, sizeof err) == 0, "%s", err);
    ck_assert(ip.do_resize && ip.size_h == 224 && ip.size_w == 224 && ip.resample == RESAMPLE_BILINEAR && !ip.do_center_crop);
    ck_assert(fabs(ip.rescale_factor - 1 / 255.0) < 1e-15 && ip.mean[1] == 0.5f && ip.std[2] == 0.5f);
    // a DeiTImageProcessor: {height, width}, crop, bicubic, ImageNet statistics
    const char *deit =
        "{\"crop_size\": {\"height\": 4, \"width\": 4}, \"do_center_crop\": true, \"image_processor_type\": \"DeiTImageProcessor\","
        " \"resample\": 3, \"size\": {\"height\": 8, \"width\": 8}, \"image_mean\": [0.485, 0.456, 0.406], \"image_std\": [0.229, 0.224, "
        "0.225]}";
    write_file(p, deit, strlen(deit));
    ck_assert_msg(image_processor_load(&ip, p, 224, err, sizeof err) == 0, "%s", err);
    ck_assert(ip.do_center_crop && ip.crop_h == 4 && ip.size_h == 8 && ip.resample == RESAMPLE_BICUBIC && ip.mean[0] == 0.485f);
    // hand-made: an 8x8 image needs no resize (Pillow copies); the crop takes rows and columns 2..5
    Image im, out;
    image_alloc(&im, 8, 8);
    for (int i = 0; i < 8 * 8 * 3; i++) im.px[i] = (uint8_t)(i % 251);
    ck_assert_int_eq(image_processor_geometry(&ip, &im, &out), 0);
    ck_assert(out.w == 4 && out.h == 4);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            for (int c2 = 0; c2 < 3; c2++) ck_assert_int_eq(out.px[(y * 4 + x) * 3 + c2], im.px[((y + 2) * 8 + x + 2) * 3 + c2]);
    float t[3 * 16];
    image_processor_tensor(&ip, &out, t);
    float x0 = (float)((double)out.px[0] * ip.rescale_factor);
    ck_assert(t[0] == (x0 - 0.485f) / 0.229f);
    image_free(&out);
    // a crop larger than the image pads with zeros around it (HF: offset ceil((6 - 3) / 2) = 2)
    Image small, pad;
    image_alloc(&small, 3, 3);
    memset(small.px, 200, 27);
    ck_assert_int_eq(image_center_crop_hf(&pad, &small, 6, 6), 0);
    for (int y = 0; y < 6; y++)
        for (int x = 0; x < 6; x++) ck_assert_int_eq(pad.px[(y * 6 + x) * 3], (y >= 2 && y < 5 && x >= 2 && x < 5) ? 200 : 0);
    image_free(&pad);
    ck_assert_int_eq(image_center_crop_tv(&pad, &small, 6, 6), 0); // torchvision pads (6 - 3) // 2 = 1 first
    ck_assert_int_eq(pad.px[(1 * 6 + 1) * 3], 200);
    ck_assert_int_eq(pad.px[(4 * 6 + 4) * 3], 0);
    image_free(&pad), image_free(&small), image_free(&im);
    // bad fields name the file and the field
    const char *bad[][2] = {{"{\"size\": -3}", "\"size\" must be a positive size"},
                            {"{\"resample\": 9}", "\"resample\" must be a Pillow filter code"},
                            {"{\"image_std\": [0.5, 0, 0.5]}", "\"image_std\" must be three positive numbers"},
                            {"{\"do_resize\": \"yes\"}", "\"do_resize\" must be true or false"},
                            {"{\"do_center_crop\": true}", "do_center_crop needs \"crop_size\""},
                            {"[1, 2", "not a JSON object"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        write_file(p, bad[i][0], strlen(bad[i][0]));
        ck_assert_int_eq(image_processor_load(&ip, p, 224, err, sizeof err), -1);
        ck_assert_msg(strstr(err, bad[i][1]) && strstr(err, p), "got '%s'", err);
    }
    unlink(p);
    rmdir(dir);
}
END_TEST

START_TEST(test_resample_filters_sane) {
    // a constant image stays constant under every filter; LANCZOS/BICUBIC ring but stay in range
    Image im, r;
    image_alloc(&im, 50, 40);
    memset(im.px, 77, 50 * 40 * 3);
    for (int f = 0; f <= 5; f++) {
        ck_assert_int_eq(image_resize(&r, &im, 23, 61, (Resample)f), 0);
        for (int i = 0; i < 23 * 61 * 3; i++) ck_assert_int_eq(r.px[i], 77);
        image_free(&r);
    }
    // NEAREST picks (int)((x + 0.5) * scale): halving takes the odd columns
    for (int i = 0; i < 50 * 40; i++) im.px[3 * i] = (uint8_t)(i % 50);
    ck_assert_int_eq(image_resize(&r, &im, 25, 20, RESAMPLE_NEAREST), 0);
    for (int x = 0; x < 25; x++) ck_assert_int_eq(r.px[3 * x], 2 * x + 1);
    image_free(&r), image_free(&im);
}
END_TEST

// ---------------------------------------------------------------- bad files

static void expect_bad(const void *data, size_t n, const char *name, const char *want) {
    char p[256];
    snprintf(p, sizeof p, "/tmp/cgrad_bad_%d_%s", (int)getpid(), name);
    write_file(p, data, n);
    Image im;
    ck_assert_int_eq(image_load(&im, p, err, sizeof err), -1);
    ck_assert_msg(strstr(err, want) && strstr(err, p), "got '%s', want '%s'", err, want);
    ck_assert_ptr_null(im.px);
    unlink(p);
}

START_TEST(test_bad_images_refused) {
    size_t n;
    uint8_t *jpg = (uint8_t *)file_read_all(IMG "/gradient_400x300.jpg", 1 << 24, &n, err, sizeof err);
    expect_bad(jpg, n / 2, "truncated.jpg", "corrupt or truncated JPEG");
    expect_bad("", 0, "empty.jpg", "empty file (0 bytes)");
    expect_bad("hello, I am text\n", 17, "text.jpg", "not a JPEG or PNG image");
    // a JPEG whose frame header claims 60000 x 60000 pixels
    uint8_t *bomb = malloc(n);
    memcpy(bomb, jpg, n);
    for (size_t i = 0; i + 9 < n; i++)
        if (bomb[i] == 0xff && bomb[i + 1] == 0xc0) { // SOF0: length(2) precision(1) height(2) width(2)
            bomb[i + 5] = 0xea, bomb[i + 6] = 0x60, bomb[i + 7] = 0xea, bomb[i + 8] = 0x60;
            break;
        }
    expect_bad(bomb, n, "bomb.jpg", "exceeds the decompression-bomb limit");
    free(bomb);
    free(jpg);
    uint8_t *png = (uint8_t *)file_read_all(IMG "/noise_150x250.png", 1 << 24, &n, err, sizeof err);
    uint8_t *crc = malloc(n);
    memcpy(crc, png, n);
    for (size_t i = 0; i + 4 < n; i++)
        if (!memcmp(crc + i, "IDAT", 4)) {
            crc[i + 8] ^= 0x55;
            break;
        } // corrupt the compressed data
    expect_bad(crc, n, "badcrc.png", "corrupt or truncated PNG");
    expect_bad(png, n / 3, "truncated.png", "corrupt or truncated PNG");
    memcpy(crc, png, n);
    // IHDR width/height at bytes 16..23: 100000 x 100000, CRC fixed up so only the size is wrong
    uint8_t ihdr[17] = {'I', 'H', 'D', 'R', 0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0, 8, 2, 0, 0, 0};
    memcpy(crc + 16, ihdr + 4, 8);
    uint32_t c = (uint32_t)crc32(0, ihdr, 17);
    crc[29] = (uint8_t)(c >> 24), crc[30] = (uint8_t)(c >> 16), crc[31] = (uint8_t)(c >> 8), crc[32] = (uint8_t)c;
    expect_bad(crc, n, "bomb.png", "exceeds the decompression-bomb limit");
    free(crc);
    free(png);
}
END_TEST

// a batch as one PNG grid: the layout (rows of ncols, 2-pixel black gaps), values mapped from
// [lo, hi] and clamped, gray and colour batches; bad shapes and ranges refused with a message
START_TEST(test_image_grid) {
    char dir[] = "/tmp/cgrad-grid-XXXXXX", path[64], err[256];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/g.png", dir);
    Ctx *c = ctx_new(1 << 16);
    Tensor *x = tensor_zeros(c, DT_F32, 4, (int64_t[]){3, 1, 4, 5});
    for (int64_t i = 0; i < tensor_numel(x); i++) tensor_set_flat(x, i, (double)(i % 20) / 19.0 * 2 - 1); // -1 .. 1 per image
    tensor_set_flat(x, 2 * 20 + 3, 5.0);                                                                  // clamped to white
    ck_assert_int_eq(image_grid_save(x, 2, -1, 1, path, err, sizeof err), 0);
    Image im;
    ck_assert_int_eq(image_load(&im, path, err, sizeof err), 0);
    ck_assert_int_eq(im.w, 2 * 5 + 3 * 2);                              // 2 columns, 3 gaps
    ck_assert_int_eq(im.h, 2 * 4 + 3 * 2);                              // 2 rows
    ck_assert_int_eq(im.px[0], 0);                                      // a gap
    ck_assert_int_eq(im.px[(2 * im.w + 2) * 3], 0);                     // image 0, pixel 0: -1 -> 0
    ck_assert_int_eq(im.px[((2 + 3) * im.w + 2 + 4) * 3 + 1], 255);     // image 0, last pixel: 1 -> 255
    ck_assert_int_eq(im.px[((2 + 4 + 2) * im.w + 2 + 3) * 3 + 2], 255); // image 2 (second row), the clamped pixel
    image_free(&im);
    Tensor *g = tensor_full(c, DT_F64, 3, (int64_t[]){2, 3, 3}, 0.5); // gray [B, H, W], columns about square
    ck_assert_int_eq(image_grid_save(g, 0, 0, 1, path, err, sizeof err), 0);
    ck_assert_int_eq(image_load(&im, path, err, sizeof err), 0);
    ck_assert_int_eq(im.w, 2 * 3 + 3 * 2);
    ck_assert_int_eq(im.px[(2 * im.w + 2) * 3], 128);
    image_free(&im);
    ck_assert_int_eq(image_grid_save(tensor_zeros(c, DT_F32, 4, (int64_t[]){2, 2, 3, 3}), 0, 0, 1, path, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "C 1 or 3"));
    ck_assert_int_eq(image_grid_save(g, 0, 1, 1, path, err, sizeof err), -1);
    ck_assert_int_eq(image_grid_save(NULL, 0, 0, 1, path, err, sizeof err), -1);
    unlink(path), rmdir(dir);
    ctx_free(c);
}
END_TEST

int main(void) {
    Suite *s = suite_create("image");
    check_fixture(setup, teardown);
    tcase_add_loop_test(check_case(s, "test_decode_equals_pillow"), test_decode_equals_pillow, 0, 8);
    tcase_add_loop_test(check_case(s, "test_vit_resize_equals_pillow"), test_vit_resize_equals_pillow, 0, 8);
    tcase_add_loop_test(check_case(s, "test_timm_eval_equals_pillow"), test_timm_eval_equals_pillow, 0, 8);
    tcase_add_test(check_case(s, "test_vit_normalised_tensor"), test_vit_normalised_tensor);
    tcase_add_loop_test(check_case(s, "test_unusual_modes_equal_pillow"), test_unusual_modes_equal_pillow, 0, 11);
    tcase_add_test(check_case(s, "test_processor_configs_both_styles"), test_processor_configs_both_styles);
    tcase_add_test(check_case(s, "test_resample_filters_sane"), test_resample_filters_sane);
    tcase_add_test(check_case(s, "test_bad_images_refused"), test_bad_images_refused);
    tcase_add_test(check_case(s, "test_image_grid"), test_image_grid);
    return check_run(s);
}
