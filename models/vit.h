// vit.h: ViTForImageClassification (Hugging Face semantics, REFERENCE.md), DeiT-Tiny and any other
// size from its config; the seed's head extension, freezing, LoRA on named modules, and saving.
#ifndef CGRAD_VIT_H
#define CGRAD_VIT_H

#include "../nn/nn.h"
#include "checkpoint.h"
#include "vit_config.h"
#include "vit_names.h"

#ifdef __cplusplus
extern "C" {
#endif

// a layer's linear projections, in the order of VitLayer.lora
enum { VIT_Q, VIT_K, VIT_V, VIT_O, VIT_FC1, VIT_FC2, VIT_NPROJ };

typedef struct {
    NnLayerNorm ln_before, ln_after;
    NnLinear q, k, v, o, fc1, fc2;
    NnLora *lora[VIT_NPROJ]; // LoRA wrappers of q, k, v, o, fc1, fc2 (NULL: none)
} VitLayer;

// the layer's projection k (VIT_Q .. VIT_FC2)
static inline NnLinear *vit_layer_proj(VitLayer *L, int k) {
    NnLinear *const p[VIT_NPROJ] = {&L->q, &L->k, &L->v, &L->o, &L->fc1, &L->fc2};
    return p[k];
}

#define VIT_MAX_TARGETS 8

typedef struct {
    int r;
    double alpha, dropout;
    bool rslora;                       // scale alpha / sqrt(r) instead of alpha / r
    char targets[VIT_MAX_TARGETS][32]; // as given: query, value, q_proj, dense, ...
    int ntargets;
    char target_regex[256]; // instead of targets: peft's regex string, full-matched (Python's syntax, PCRE2)
    bool save_classifier;   // modules_to_save = ["classifier"]
} VitLoraSpec;

typedef struct {
    VitConfig cfg;
    Ctx *pc;                     // parameters, LoRA tensors, their gradients
    Checkpoint ck;               // the mapped checkpoint the base weights are views of (may be empty)
    Tensor *cls_token, *pos_emb; // [1, 1, D], [1, N + 1, D]
    NnLinear patch;              // weight [D, C, p, p]
    VitLayer *layers;
    NnLayerNorm ln_f;
    NnLinear classifier; // [num_labels, D]
    NnParams params;     // every tensor by canonical name, LoRA included; its mode (training: LoRA
                         // dropout on; eval after loading) and its generator (dropout masks)
    bool has_lora;
    VitLoraSpec lora;
} VitModel;

typedef struct {
    Tensor **hidden_states; // num_hidden_layers + 1: embeddings, then each layer (before the final norm)
    Tensor **attentions;    // num_hidden_layers: [B, NH, T, T]
    // Optional, for explanations (vit_explain.h): num_hidden_layers leaves of ones [B, NH, T, T]
    // that multiply each layer's attention probabilities (computed unfused); after a backward,
    // gate->grad holds attention * its gradient.
    Tensor **attention_gates;
} VitOutputs;

// Load config.json and the weights of a model directory (base weights are views of the mapping).
int vit_load(VitModel *m, const char *dir, char *err, size_t errn);
// A model with HF's initialisation (normal(0, initializer_range) weights, zero biases, unit norms).
int vit_init_random(VitModel *m, const VitConfig *cfg, uint64_t seed, char *err, size_t errn);
void vit_free(VitModel *m);

// logits [B, num_labels] for pixel_values [B, C, H, W]; out (optional) collects intermediates.
Tensor *vit_forward(Ctx *c, VitModel *m, Tensor *pixel_values, VitOutputs *out);

// The seed's recipe: a head of new_n >= num_labels rows, old rows and biases copied, new rows
// N(0, 0.02) from rng, new biases 0; new ids get LABEL_<id> until named.
int vit_extend_head(VitModel *m, int new_n, Rng *rng, char *err, size_t errn);
int vit_add_label(VitModel *m, const char *label, Rng *rng, char *err, size_t errn); // returns its id or -1
void vit_freeze_all(VitModel *m);
// Attach LoRA to every module a target names (peft's suffix matching, both name generations);
// the classifier becomes trainable when spec->save_classifier. Error if a target matches nothing.
int vit_attach_lora(VitModel *m, const VitLoraSpec *spec, Rng *rng, char *err, size_t errn);
void vit_merge_lora(VitModel *m);
// int8 inference: merges the LoRA adapters into their base (the int8 copies hold W + scale B A),
// then quantizes the encoder's products (query, key, value, output, both MLP layers;
// and the patch embedding (its weight as the matrix [D, C p p]); tensor_quantize_int8); forwards
// that record no gradient then run them in int8. Attention's own products (scores, probabilities
// times values) and the classifier stay float32.
int vit_quantize_int8(VitModel *m, char *err, size_t errn);
void vit_set_lora_dropout(VitModel *m, double p); // a training setting: every LoRA branch's dropout
// peft's counts: all includes the frozen base, the LoRA tensors and modules_to_save's copy.
void vit_param_counts(const VitModel *m, int64_t *trainable, int64_t *all);
void vit_print_trainable_parameters(const VitModel *m, FILE *f);
// An HF model directory: config.json + model.safetensors (base weights; merge LoRA first to keep it).
int vit_save_pretrained(const VitModel *m, const char *dir, char *err, size_t errn);

#ifdef __cplusplus
}
#endif

#endif
