// vit_names.h: the ViT's parameter names in their spellings. Canonical names are transformers 4's
// checkpoint names (vit.encoder.layer.N.attention.attention.query...); transformers 5's in-memory
// names (vit.layers.N.attention.q_proj...), peft's adapter names (base_model.model.X,
// lora_A[.default], classifier.modules_to_save.default) and timm's (blocks.N.attn.qkv, head...)
// map onto them. vit_canonical_name is the name map the ViT opens its checkpoints with.
#ifndef CGRAD_VIT_NAMES_H
#define CGRAD_VIT_NAMES_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// any spelling -> the canonical v4 name; returns out
char *vit_canonical_name(const char *in, char *out, size_t n);
// canonical v4 -> transformers-5 in-memory name (vit.layers.N.attention.q_proj...); returns out
char *vit_v5_name(const char *in, char *out, size_t n);

#ifdef __cplusplus
}
#endif

#endif
