// vit_config.h: ViTConfig as Hugging Face's config.json holds it.
#ifndef CGRAD_VIT_CONFIG_H
#define CGRAD_VIT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON;

typedef struct {
    int hidden_size, num_hidden_layers, num_attention_heads, intermediate_size;
    int image_size, patch_size, num_channels, num_labels;
    double layer_norm_eps, hidden_dropout_prob, attention_probs_dropout_prob;
    bool qkv_bias;
    char hidden_act[32];
    char **id2label;   // num_labels strings
    struct cJSON *raw; // the file as read: fields cgrad does not use are written back unchanged
} VitConfig;

// Reads and validates PATH (sizes positive, hidden_size divisible by heads, image divisible by
// patch, gelu activation, id2label keys 0..n-1). Errors name the file and the field.
int vit_config_load(VitConfig *cfg, const char *path, char *err, size_t errn);
// What every command needs of an architecture, from config.json or derived from timm weights:
// sizes within sane bounds (image_size at most VIT_MAX_IMAGE, at most VIT_MAX_TOKENS patches),
// heads dividing the hidden size, patches dividing the image, and 3 channels (the image pipeline
// makes RGB). 0, or -1 with "PATH: what is wrong".
#define VIT_MAX_IMAGE  4096
#define VIT_MAX_TOKENS 16384
#define VIT_MAX_SIZE   (1 << 16)
#define VIT_MAX_LABELS (1 << 20)
int vit_config_validate(const VitConfig *cfg, const char *path, char *err, size_t errn);
int vit_config_parse(VitConfig *cfg, const char *json, const char *path, char *err, size_t errn);
// timm's config.json ({"architecture", "num_classes", "pretrained_cfg", "model_args"}), with the sizes
// the weights have (ck: struct Checkpoint *): hidden from cls_token, layers from blocks.N, MLP from
// fc1, patch from patch_embed.proj, heads from model_args.num_heads or hidden / 64, eps 1e-6.
bool vit_config_is_timm(const char *json);
struct Checkpoint;
int vit_config_from_timm(VitConfig *cfg, const char *json, const struct Checkpoint *ck, const char *path, char *err, size_t errn);
void vit_config_init(VitConfig *cfg);                 // DeiT-Tiny's values, labels LABEL_i for num_labels
int vit_config_set_num_labels(VitConfig *cfg, int n); // new ids get LABEL_<id>
void vit_config_set_label(VitConfig *cfg, int id, const char *label);
int vit_config_label_id(const VitConfig *cfg, const char *label); // -1 if absent
char *vit_config_to_json(const VitConfig *cfg);                   // malloc'd, HF layout (id2label, label2id, num_labels)
int vit_config_save(const VitConfig *cfg, const char *path, char *err, size_t errn);
int vit_config_copy(VitConfig *dst, const VitConfig *src);
void vit_config_free(VitConfig *cfg);

#ifdef __cplusplus
}
#endif

#endif
