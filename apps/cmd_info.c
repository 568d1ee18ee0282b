// cmd_info.c: `deit_lora info DIR`: what a model or adapter directory holds.
#include "deit_lora.h"

#include "../base/fileio.h"

#include <string.h>

static void labels_line(const VitConfig *c) {
    printf("  labels         %d:", c->num_labels);
    for (int i = 0; i < c->num_labels && i < 4; i++) printf(" %d '%s'%s", i, c->id2label[i], i + 1 < c->num_labels ? "," : "");
    if (c->num_labels > 5) printf(" ...");
    if (c->num_labels > 4) printf(" %d '%s'", c->num_labels - 1, c->id2label[c->num_labels - 1]);
    printf("\n");
}

static int info_adapter(const char *dir) {
    char p[FILE_PATH_BUF], err[FILE_ERR_BUF];
    AdapterConfig ac;
    if (adapter_config_load(&ac, path_join(p, sizeof p, dir, "adapter_config.json"), err, sizeof err) != 0) return app_fail("info", err);
    Checkpoint ck;
    if (checkpoint_open_file(&ck, path_join(p, sizeof p, dir, "adapter_model.safetensors"), vit_canonical_name, err, sizeof err) != 0)
        return app_fail("info", err);
    int64_t params = 0, cls_rows = -1;
    bool v5_keys = false;
    for (int i = 0; i < ck.n; i++) {
        int64_t n = 1;
        for (int d = 0; d < ck.entries[i]->ndim; d++) n *= ck.entries[i]->shape[d];
        params += n;
        if (strstr(ck.entries[i]->name, "vit.layers.")) v5_keys = true;
        if (!strcmp(ck.canon[i], "classifier.weight")) cls_rows = ck.entries[i]->shape[0];
    }
    printf("%s: a peft LoRA adapter\n", dir);
    printf("  generation     %s (key names %s, target_modules",
           v5_keys || ac.gen == PEFT_V5 ? "v5: transformers 5 + peft 0.21" : "v4: transformers 4 + peft 0.17",
           v5_keys ? "vit.layers.N.attention.q_proj" : "vit.encoder.layer.N.attention.attention.query");
    for (int t = 0; t < ac.spec.ntargets; t++) printf(" %s", ac.spec.targets[t]);
    if (ac.spec.target_regex[0]) printf(" regex '%s'", ac.spec.target_regex);
    printf(")\n  LoRA           r %d, alpha %g, dropout %g%s\n", ac.spec.r, ac.spec.alpha, ac.spec.dropout,
           ac.spec.rslora ? ", rsLoRA" : "");
    printf("  tensors        %d, %lld parameters%s\n", ck.n, (long long)params,
           ac.spec.save_classifier ? " (LoRA and the classifier)" : "");
    if (cls_rows >= 0) printf("  classifier     %lld classes\n", (long long)cls_rows);
    if (ac.base_model[0]) printf("  base model     %s\n", ac.base_model);
    VitConfig c;
    if (file_exists(path_join(p, sizeof p, dir, "config.json")) && vit_config_load(&c, p, err, sizeof err) == 0) {
        labels_line(&c);
        vit_config_free(&c);
    }
    checkpoint_close(&ck);
    return 0;
}

int cmd_info(int argc, char **argv) {
    const char *pos[1];
    const char *usage = "deit_lora info DIR";
    int npos = cli_command(&(CliCommand){"info", usage,
                                         "Describes a model directory (format, architecture, sizes, labels, parameters, image processing)\n"
                                         "or a peft adapter directory (generation, r, alpha, targets, tensors).",
                                         NULL, 0},
                           argc, argv, pos, 1);
    if (npos == CLI_HELP) return 0;
    if (npos != 1) return app_fail("info", "needs one DIR (see --help)");
    char p[FILE_PATH_BUF], err[FILE_ERR_BUF];
    if (!dir_exists(pos[0])) {
        snprintf(err, sizeof err, "%s: not a directory", pos[0]);
        return app_fail("info", err);
    }
    if (file_exists(path_join(p, sizeof p, pos[0], "adapter_config.json"))) return info_adapter(pos[0]);
    VitModel m;
    ImageProcessor ip;
    if (app_load_model(&m, &ip, pos[0], NULL, false, err, sizeof err) != 0) return app_fail("info", err);
    const VitConfig *c = &m.cfg;
    int64_t n = nn_params_count(&m.params, false);
    printf("%s: a ViTForImageClassification model (%s)\n", pos[0], m.ck.format);
    printf("  architecture   %d layers, hidden %d, %d heads, MLP %d, patch %d, image %dx%d, %d channels, LayerNorm eps %g\n",
           c->num_hidden_layers, c->hidden_size, c->num_attention_heads, c->intermediate_size, c->patch_size, c->image_size, c->image_size,
           c->num_channels, c->layer_norm_eps);
    printf("  parameters     %lld (%.1f M)\n", (long long)n, n / 1e6);
    labels_line(c);
    printf("  images         %s: ", ip.kind);
    if (ip.do_resize) {
        if (ip.shortest_edge)
            printf("short side to %d", ip.shortest_edge);
        else
            printf("resize to %dx%d", ip.size_w, ip.size_h);
        printf(" (Pillow filter %d)", ip.resample);
    }
    if (ip.do_center_crop) printf(", center crop %dx%d", ip.crop_w, ip.crop_h);
    printf(", mean (%g, %g, %g), std (%g, %g, %g)\n", ip.mean[0], ip.mean[1], ip.mean[2], ip.std[0], ip.std[1], ip.std[2]);
    printf("  int8           the encoder's %d products per layer with --int8 (predict, eval, serve, explain, bench), kernel %s\n",
           VIT_NPROJ, tensor_int8_kernel());
    vit_free(&m);
    return 0;
}
