// checkpoint.h: a model directory's weights, in any supported layout, by name. Layouts:
// model.safetensors; model.safetensors.index.json + shards; pytorch_model.bin. It knows no model:
// the names are the files' own, or what the caller's map makes of them (a model with several
// spellings of its names gives its map: the ViT's is vit_canonical_name, models/vit_names.h).
#ifndef CGRAD_CHECKPOINT_H
#define CGRAD_CHECKPOINT_H

#include "../formats/weights.h"

#ifdef __cplusplus
extern "C" {
#endif

// torch.save's zip format (data.pkl and its storages) as a WFile; the pickle is interpreted, no code runs
int torchbin_open(WFile *f, const char *path, char *err, size_t errn);

typedef struct Checkpoint {
    WFile *files;
    int nfiles;
    char **canon; // each entry's name after the map, over all files in order
    const WEntry **entries;
    int n;
    int *order;      // entry indices sorted by name (then by position), for checkpoint_find
    char format[48]; // "safetensors", "sharded safetensors (2 shards)", "pytorch_model.bin"
} Checkpoint;

// a file's tensor name -> the name to find it by (written into out, which it returns)
typedef char *(*CheckpointNameMap)(const char *in, char *out, size_t n);

int checkpoint_open_dir(Checkpoint *ck, const char *dir, CheckpointNameMap map, char *err, size_t errn);   // map NULL: as stored
int checkpoint_open_file(Checkpoint *ck, const char *path, CheckpointNameMap map, char *err, size_t errn); // one .safetensors
const WEntry *checkpoint_find(const Checkpoint *ck, const char *name);                                     // O(log n); the first of equals
void checkpoint_close(Checkpoint *ck);

#ifdef __cplusplus
}
#endif

#endif
