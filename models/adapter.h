// adapter.h: peft LoRA adapters on disk: adapter_config.json + adapter_model.safetensors.
// Both key generations are read (peft 0.17 + transformers 4: ...attention.attention.query.lora_A.weight;
// peft 0.21 + transformers 5: ...attention.q_proj.lora_A.weight); either is written.
#ifndef CGRAD_ADAPTER_H
#define CGRAD_ADAPTER_H

#include "vit.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { PEFT_V4 = 4, PEFT_V5 = 5 } PeftGen;

typedef struct {
    VitLoraSpec spec;
    PeftGen gen; // the spelling of target_modules (v5 if any q_proj-style name)
    char base_model[1024];
} AdapterConfig;

int adapter_config_load(AdapterConfig *ac, const char *path, char *err, size_t errn);
// Attaches the adapter in DIR to m: LoRA per its config with its tensors, the classifier
// (modules_to_save) replaced, the head extended first when the adapter's classifier has more
// rows (labels from DIR/config.json if present, else LABEL_<id>). The base is frozen; the
// adapter's tensors are trainable.
int adapter_load(VitModel *m, const char *dir, char *err, size_t errn);
// target_modules in generation `to` (query <-> q_proj ...; v4's "dense" is o_proj, fc1 and fc2);
// an error when a name has no unambiguous counterpart
int adapter_spell_targets(char in[][32], int n, PeftGen to, char out[][32], int *nout, char *err, size_t errn);
// IN's adapter with key names and target_modules in generation `to` (tensors unchanged, other
// fields kept) written to OUT; returns the number of tensors, or -1
int adapter_convert(const char *in, const char *out, PeftGen to, char *err, size_t errn);
// Writes DIR/adapter_config.json and DIR/adapter_model.safetensors in generation gen.
int adapter_save(const VitModel *m, const char *dir, PeftGen gen, const char *base_model, char *err, size_t errn);

#ifdef __cplusplus
}
#endif

#endif
