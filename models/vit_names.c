// vit_names.c: the ViT's parameter names in their spellings: transformers 4's checkpoint names
// (canonical), transformers 5's in-memory names, peft's adapter names, and timm's (vit_names.h).
#include "vit_names.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

// transformers-5 module names under vit.layers.N. and their transformers-4 spelling
static const char *const V5[][2] = {
    {"attention.q_proj", "attention.attention.query"}, {"attention.k_proj", "attention.attention.key"},
    {"attention.v_proj", "attention.attention.value"}, {"attention.o_proj", "attention.output.dense"},
    {"mlp.fc1", "intermediate.dense"},                 {"mlp.fc2", "output.dense"},
    {"layernorm_before", "layernorm_before"},          {"layernorm_after", "layernorm_after"},
};

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
    {"norm1", "layernorm_before"}, {"norm2", "layernorm_after"},  {"attn.qkv", "attention.attention.qkv"},
    {"attn.proj", "attention.output.dense"}, {"mlp.fc1", "intermediate.dense"}, {"mlp.fc2", "output.dense"},
};

static bool timm_name(const char *in, char *out, size_t n) {
    static const char *const TOP[][2] = {{"cls_token", "vit.embeddings.cls_token"}, {"pos_embed", "vit.embeddings.position_embeddings"},
                                         {"patch_embed.proj.", "vit.embeddings.patch_embeddings.projection."},
                                         {"norm.", "vit.layernorm."}, {"head.", "classifier."}};
    for (size_t i = 0; i < sizeof TOP / sizeof *TOP; i++) {
        size_t L = strlen(TOP[i][0]);
        if (!strncmp(in, TOP[i][0], L) && (TOP[i][0][L - 1] == '.' || in[L] == 0)) {
            snprintf(out, n, "%s%s", TOP[i][1], in + L);
            return true;
        }
    }
    int layer, used = 0;
    if (sscanf(in, "blocks.%d.%n", &layer, &used) == 1 && used > 0)
        for (size_t i = 0; i < sizeof TIMM_BLOCK / sizeof *TIMM_BLOCK; i++) {
            size_t L = strlen(TIMM_BLOCK[i][0]);
            if (!strncmp(in + used, TIMM_BLOCK[i][0], L) && in[used + L] == '.') {
                snprintf(out, n, "vit.encoder.layer.%d.%s%s", layer, TIMM_BLOCK[i][1], in + used + L);
                return true;
            }
        }
    return false;
}

char *vit_canonical_name(const char *in, char *out, size_t n) {
    const char *pre = "base_model.model.";
    if (timm_name(in, out, n)) return out;
    snprintf(out, n, "%s", strncmp(in, pre, strlen(pre)) ? in : in + strlen(pre));
    replace_all(out, n, ".lora_A.default.", ".lora_A.");
    replace_all(out, n, ".lora_B.default.", ".lora_B.");
    replace_all(out, n, ".modules_to_save.default.", ".");
    replace_all(out, n, ".original_module.", ".");
    int layer, used = 0;
    if (sscanf(out, "vit.layers.%d.%n", &layer, &used) == 1 && used > 0) {
        const char *rest = out + used;
        for (size_t i = 0; i < sizeof V5 / sizeof *V5; i++) {
            size_t L = strlen(V5[i][0]);
            if (!strncmp(rest, V5[i][0], L) && (rest[L] == '.' || rest[L] == 0)) {
                char tmp[1024];
                snprintf(tmp, sizeof tmp, "vit.encoder.layer.%d.%s%s", layer, V5[i][1], rest + L);
                snprintf(out, n, "%s", tmp);
                break;
            }
        }
    }
    return out;
}

char *vit_v5_name(const char *in, char *out, size_t n) {
    snprintf(out, n, "%s", in);
    int layer, used = 0;
    if (sscanf(in, "vit.encoder.layer.%d.%n", &layer, &used) == 1 && used > 0) {
        const char *rest = in + used;
        for (size_t i = 0; i < sizeof V5 / sizeof *V5; i++) {
            size_t L = strlen(V5[i][1]);
            if (!strncmp(rest, V5[i][1], L) && (rest[L] == '.' || rest[L] == 0)) {
                snprintf(out, n, "vit.layers.%d.%s%s", layer, V5[i][0], rest + L);
                break;
            }
        }
    }
    return out;
}
