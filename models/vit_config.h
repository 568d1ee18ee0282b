// vit_config.h: ViTConfig as Hugging Face's config.json holds it.
#ifndef CGRAD_VIT_CONFIG_H
#define CGRAD_VIT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

struct cJSON;

typedef struct {
    int hidden_size, num_hidden_layers, num_attention_heads, intermediate_size;
    int image_size, patch_size, num_channels, num_labels;
    double layer_norm_eps, hidden_dropout_prob, attention_probs_dropout_prob;
    bool qkv_bias;
    char hidden_act[32];
    char **id2label;     // num_labels strings
    struct cJSON *raw;   // the file as read: fields cgrad does not use are written back unchanged
} VitConfig;

// Reads and validates PATH (sizes positive, hidden_size divisible by heads, image divisible by
// patch, gelu activation, id2label keys 0..n-1). Errors name the file and the field.
int vit_config_load(VitConfig *cfg, const char *path, char *err, size_t errn);
int vit_config_parse(VitConfig *cfg, const char *json, const char *path, char *err, size_t errn);
void vit_config_init(VitConfig *cfg); // DeiT-Tiny's values, labels LABEL_i for num_labels
int vit_config_set_num_labels(VitConfig *cfg, int n); // new ids get LABEL_<id>
void vit_config_set_label(VitConfig *cfg, int id, const char *label);
int vit_config_label_id(const VitConfig *cfg, const char *label); // -1 if absent
char *vit_config_to_json(const VitConfig *cfg);   // malloc'd, HF layout (id2label, label2id, num_labels)
int vit_config_save(const VitConfig *cfg, const char *path, char *err, size_t errn);
int vit_config_copy(VitConfig *dst, const VitConfig *src);
void vit_config_free(VitConfig *cfg);

#endif
