// checkpoint.h: a model directory's weights, in any supported layout, by canonical name.
// Layouts: model.safetensors; model.safetensors.index.json + shards; pytorch_model.bin.
// Canonical names are the transformers-4 checkpoint names (vit.encoder.layer.N...); the
// transformers-5 in-memory names (vit.layers.N.attention.q_proj...) and peft's adapter names
// (base_model.model.X.lora_A[.default].weight, classifier.modules_to_save.default) map onto them.
#ifndef CGRAD_CHECKPOINT_H
#define CGRAD_CHECKPOINT_H

#include "weights.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct Checkpoint {
    WFile *files;
    int nfiles;
    char **canon; // canonical name of each entry, over all files in order
    const WEntry **entries;
    int n;
    int *order; // entry indices sorted by canonical name (then by position), for checkpoint_find
    char format[48]; // "safetensors", "sharded safetensors (2 shards)", "pytorch_model.bin"
} Checkpoint;

int checkpoint_open_dir(Checkpoint *ck, const char *dir, char *err, size_t errn);
int checkpoint_open_file(Checkpoint *ck, const char *path, char *err, size_t errn); // one .safetensors
const WEntry *checkpoint_find(const Checkpoint *ck, const char *canonical); // O(log n); the first of equals
void checkpoint_close(Checkpoint *ck);

// v5 / peft spellings -> the canonical v4 name; returns out
char *vit_canonical_name(const char *in, char *out, size_t n);
// canonical v4 -> transformers-5 in-memory name (vit.layers.N.attention.q_proj...)
char *vit_v5_name(const char *in, char *out, size_t n);

#ifdef __cplusplus
}
#endif

#endif
