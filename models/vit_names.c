// vit_names.c: the ViT's parameter names in their spellings: transformers 4's checkpoint names
// (canonical), transformers 5's in-memory names, peft's adapter names, and timm's (vit_names.h).
#include "vit_names.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

// transformers-5 module names under vit.layers.N. and their transformers-4 spelling
static const char *const V5[][2] = {
    {"attention.q_proj", "attention.attention.query"},
    {"attention.k_proj", "attention.attention.key"},
    {"attention.v_proj", "attention.attention.value"},
    {"attention.o_proj", "attention.output.dense"},
    {"mlp.fc1", "intermediate.dense"},
    {"mlp.fc2", "output.dense"},
    {"layernorm_before", "layernorm_before"},
    {"layernorm_after", "layernorm_after"},
};

// "FROM.N.MODULE..." -> "TO.N.MODULE'...", where MODULE is column `col` of a row of table and MODULE'
// the other column; MODULE must be followed by '.' (or also by the end when `whole`). in may be out.
static bool rename_layer(const char *in, char *out, size_t n, const char *from, const char *to, const char *const (*table)[2], size_t rows,
                         int col, bool whole) {
    char fmt[64], tmp[1024];
    int layer, used = 0;
    snprintf(fmt, sizeof fmt, "%s.%%d.%%n", from);
    if (sscanf(in, fmt, &layer, &used) != 1 || used == 0) return false;
    const char *rest = in + used;
    for (size_t i = 0; i < rows; i++) {
        size_t L = strlen(table[i][col]);
        if (!strncmp(rest, table[i][col], L) && (rest[L] == '.' || (whole && rest[L] == 0))) {
            snprintf(tmp, sizeof tmp, "%s.%d.%s%s", to, layer, table[i][1 - col], rest + L);
            snprintf(out, n, "%s", tmp);
            return true;
        }
    }
    return false;
}

static void replace_all(char *s, size_t n, const char *from, const char *to) {
    char tmp[1024];
    char *p;
    while ((p = strstr(s, from))) {
        snprintf(tmp, sizeof tmp, "%.*s%s%s", (int)(p - s), s, to, p + strlen(from));
        snprintf(s, n, "%s", tmp);
    }
}

// timm's ViT/DeiT names; the fused qkv becomes attention.attention.qkv (split when loading)
static const char *const TIMM_BLOCK[][2] = {
    {"norm1", "layernorm_before"},           {"norm2", "layernorm_after"},      {"attn.qkv", "attention.attention.qkv"},
    {"attn.proj", "attention.output.dense"}, {"mlp.fc1", "intermediate.dense"}, {"mlp.fc2", "output.dense"},
};

static bool timm_name(const char *in, char *out, size_t n) {
    static const char *const TOP[][2] = {{"cls_token", "vit.embeddings.cls_token"},
                                         {"pos_embed", "vit.embeddings.position_embeddings"},
                                         {"patch_embed.proj.", "vit.embeddings.patch_embeddings.projection."},
                                         {"norm.", "vit.layernorm."},
                                         {"head.", "classifier."}};
    for (size_t i = 0; i < sizeof TOP / sizeof *TOP; i++) {
        size_t L = strlen(TOP[i][0]);
        if (!strncmp(in, TOP[i][0], L) && (TOP[i][0][L - 1] == '.' || in[L] == 0)) {
            snprintf(out, n, "%s%s", TOP[i][1], in + L);
            return true;
        }
    }
    return rename_layer(in, out, n, "blocks", "vit.encoder.layer", TIMM_BLOCK, sizeof TIMM_BLOCK / sizeof *TIMM_BLOCK, 0, false);
}

char *vit_canonical_name(const char *in, char *out, size_t n) {
    const char *pre = "base_model.model.";
    if (timm_name(in, out, n)) return out;
    snprintf(out, n, "%s", strncmp(in, pre, strlen(pre)) ? in : in + strlen(pre));
    replace_all(out, n, ".lora_A.default.", ".lora_A.");
    replace_all(out, n, ".lora_B.default.", ".lora_B.");
    replace_all(out, n, ".modules_to_save.default.", ".");
    replace_all(out, n, ".original_module.", ".");
    rename_layer(out, out, n, "vit.layers", "vit.encoder.layer", V5, sizeof V5 / sizeof *V5, 0, true);
    return out;
}

char *vit_v5_name(const char *in, char *out, size_t n) {
    if (!rename_layer(in, out, n, "vit.encoder.layer", "vit.layers", V5, sizeof V5 / sizeof *V5, 1, true)) snprintf(out, n, "%s", in);
    return out;
}
