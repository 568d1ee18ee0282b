// fuzz_config.c: the JSON configs: config.json, preprocessor_config.json, adapter_config.json (its
// target_modules applied to a small random model, which compiles a regex when it is one).
#include "fuzz_common.h"

#include "../models/adapter.h"
#include "../models/image_processor.h"
#include "../models/vit.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    char path[64], err[512];
    char *s = malloc(n + 1);
    memcpy(s, data, n);
    s[n] = 0;
    VitConfig cfg;
    if (vit_config_parse(&cfg, s, "config.json", err, sizeof err) == 0) {
        char *back = vit_config_to_json(&cfg);
        free(back);
        vit_config_free(&cfg);
    }
    free(s);
    int fd = fuzz_file(data, n, path, sizeof path);
    if (fd < 0) return 0;
    ImageProcessor ip;
    if (image_processor_load(&ip, path, 224, err, sizeof err) == 0) {
        Image im, out;
        image_alloc(&im, 7, 5);
        memset(im.px, 100, 7 * 5 * 3);
        if (ip.size_h <= 512 && ip.size_w <= 512 && ip.crop_h <= 512 && ip.crop_w <= 512 && ip.shortest_edge <= 512 &&
            image_processor_geometry(&ip, &im, &out) == 0)
            image_free(&out);
        image_free(&im);
    }
    AdapterConfig ac;
    if (adapter_config_load(&ac, path, err, sizeof err) == 0 && ac.spec.r <= 8) {
        VitConfig c;
        vit_config_init(&c);
        c.hidden_size = 8, c.num_hidden_layers = 2, c.num_attention_heads = 2, c.intermediate_size = 16;
        c.image_size = 8, c.patch_size = 4;
        VitModel m;
        Rng rng = rng_new(1);
        if (vit_init_random(&m, &c, 1, err, sizeof err) == 0) {
            vit_attach_lora(&m, &ac.spec, &rng, err, sizeof err);
            vit_free(&m);
        }
        vit_config_free(&c);
    }
    close(fd);
    return 0;
}
