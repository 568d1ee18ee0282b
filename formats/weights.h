// weights.h: tensor files mapped in place, and the safetensors format. A WFile is one file
// (safetensors here; models/ adds torch's zip pickle format) mapped copy-on-write; its entries
// point into the mapping, so loading never holds the weights twice: float32 tensors become views
// of the mapping, other dtypes are converted. Every reader validates what it reads and reports
// "PATH: what is wrong" (errors are values). The formats know no model: names are the file's.
#ifndef CGRAD_WEIGHTS_H
#define CGRAD_WEIGHTS_H

#include "../tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SAFETENSORS_MAX_HEADER (100u << 20) // 100 MiB, as the reference implementation

typedef enum { WD_F32, WD_F16, WD_BF16, WD_F64, WD_I64, WD_I32, WD_I16, WD_I8, WD_U8, WD_BOOL } WDtype;

typedef struct {
    char *name;
    WDtype dtype;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t strides[TENSOR_MAX_DIMS]; // in elements (safetensors: contiguous)
    const unsigned char *data;        // the first element, inside the mapping
} WEntry;

typedef struct {
    char *path;
    unsigned char *map;
    size_t size;
    WEntry *e;
    int n;
    char **meta;  // safetensors "__metadata__": key, value, key, value, ..., NULL (or NULL)
    int *by_name; // entry indices sorted by name, for wfile_find
} WFile;

// Opens and validates a safetensors file: the header (strict JSON, as the reference reader), every
// entry's dtype, shape and span inside the data, no two spans overlapping, no name twice.
int safetensors_open(WFile *f, const char *path, char *err, size_t errn);
void wfile_close(WFile *f);
const char *wfile_metadata(const WFile *f, const char *key); // a "__metadata__" value, or NULL
int wfile_index(WFile *f, char *err, size_t errn);           // sorts by name for wfile_find; a name twice is an error
const WEntry *wfile_find(const WFile *f, const char *name);  // O(log n)
size_t wdtype_size(WDtype d);
const char *wdtype_name(WDtype d);
int wdtype_from_name(const char *s); // "F32" -> WD_F32; -1 when unknown
// For readers of other formats: maps PATH (a regular file) copy-on-write into f, no entries yet.
int wfile_map(WFile *f, const char *path, char *err, size_t errn);

// The entry as a tensor in c: a float32 contiguous aligned entry is a view of the mapping
// (when view is true); F16/BF16/F64 become float32, integer types int64, U8/BOOL uint8.
Tensor *wentry_tensor(Ctx *c, const WEntry *e, bool view);

// Writing safetensors atomically (fileio.h's atomic files: a fresh temporary beside PATH, fsync,
// rename; a planted file or symlink is never written through). Names are written sorted; a name
// twice, a name that is not UTF-8, or a dtype other than these is refused with a message.
typedef struct {
    const char *name;
    const Tensor *t; // float32, float64, int64 or uint8; any strides
} StItem;
// metadata: NULL, or key, value, key, value, ..., NULL (strings), written as "__metadata__"
int safetensors_save(const char *path, const StItem *items, int n, const char *const *metadata, char *err, size_t errn);
// the same, replacing an existing PATH only when REPLACE (else an existing PATH is refused)
int safetensors_write(const char *path, const StItem *items, int n, const char *const *metadata, bool replace, char *err, size_t errn);

#ifdef __cplusplus
}
#endif

#endif
