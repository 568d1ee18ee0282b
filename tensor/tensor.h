// tensor.h: N-d tensors with strides, views, creation, printing (their memory: base/context.h).
// Shapes in comments use llm.c's letters: B batch, T tokens, C channels, NH heads, hs head size.
#ifndef CGRAD_TENSOR_H
#define CGRAD_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../base/context.h"
#include "../base/wait_policy.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TENSOR_MAX_DIMS 8

typedef enum { DT_F32, DT_F64, DT_I64, DT_U8 } DType;

struct AgNode;

typedef struct Tensor {
    DType dtype;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t strides[TENSOR_MAX_DIMS]; // in elements
    void *data;                       // first element of this view
    Ctx *ctx;                         // owner of the header (and usually the data)
    bool requires_grad;
    struct Tensor *grad; // contiguous, same shape and dtype; NULL until needed
    struct AgNode *node; // the op that made it (autograd/), NULL for leaves
    const char *name;
    uint32_t gen;         // ctx->gen when it was made: a tensor of a reset context is refused
    uint32_t version;     // in-place writes through the API (set, fill, copy, optimizer steps)
    uint64_t id;          // unique in the process for a tensor that owns its elements; 0 for a view.
                          // With version it names the contents (products keep a frozen weight packed by it)
    struct QWeight *int8; // its int8 copy for inference products (tensor_quantize_int8), or NULL
} Tensor;

// ---- giving back what a stretch of work made (base/context.h's marks), keeping its result ----
// ctx_release_keep(c, mark, y) frees everything made in c since the mark and returns y, moved to
// where the mark was (contiguous) when it was made after it (ctx_mark says more).
Tensor *ctx_release_keep(Ctx *c, CtxMark m, Tensor *t);

// ---- dtypes and shapes ----
size_t dtype_size(DType dt);
const char *dtype_name(DType dt);
bool dtype_is_float(DType dt);
int64_t tensor_numel(const Tensor *t);
bool tensor_is_contiguous(const Tensor *t);
bool tensor_same_shape(const Tensor *a, const Tensor *b);
char *shape_str(const Tensor *t, char *buf, size_t n); // "[2, 3]"
#define SHAPE_STR_BUF (TENSOR_MAX_DIMS * 22 + 3)       // room for any shape_str (8 dimensions of 20 digits)
int tensor_dim(const Tensor *t, int dim);              // negative dims count from the end; -1 if bad

// ---- creation (all in ctx) ----
Tensor *tensor_new(Ctx *c, DType dt, int ndim, const int64_t *shape); // uninitialised: for outputs
                                                                      // that are written whole
Tensor *tensor_zeros(Ctx *c, DType dt, int ndim, const int64_t *shape);
Tensor *tensor_ones(Ctx *c, DType dt, int ndim, const int64_t *shape);
Tensor *tensor_full(Ctx *c, DType dt, int ndim, const int64_t *shape, double v);
Tensor *tensor_arange(Ctx *c, DType dt, double start, double stop, double step);
Tensor *tensor_from_buffer(Ctx *c, DType dt, int ndim, const int64_t *shape, void *data);     // no copy
Tensor *tensor_from_data(Ctx *c, DType dt, int ndim, const int64_t *shape, const void *data); // copy
Tensor *tensor_clone(Ctx *c, const Tensor *t);                                                // contiguous copy, no autograd
Tensor *tensor_to(Ctx *c, const Tensor *t, DType dt);                                         // converted contiguous copy
#ifdef __cplusplus // g++ refuses the address of a non-const temporary array; a const one lives to the end of the call
#define SHAPE(...)                                                                                                                         \
    (int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]) { __VA_ARGS__ }
#else
#define SHAPE(...)                                                                                                                         \
    (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]) { __VA_ARGS__ }
#endif

// ---- element access (any dtype, any strides; slow, for tests and tools) ----
double tensor_get(const Tensor *t, const int64_t *idx);
void tensor_set(Tensor *t, const int64_t *idx, double v);
double tensor_get_flat(const Tensor *t, int64_t i); // i-th element in logical order
void tensor_set_flat(Tensor *t, int64_t i, double v);
// Writes through tensor_set, tensor_set_flat, tensor_fill and tensor_copy (and the optimizers'
// steps) count in t->version: a backward whose op read t before such a write refuses to run, as
// PyTorch does. A write straight into t->data is not seen: call tensor_bump_version(t) after it.
static inline void tensor_bump_version(Tensor *t) { t->version++; }
// false for a tensor whose context was reset after it was made (its memory is being reused)
static inline bool tensor_alive(const Tensor *t) { return !t->ctx || t->gen == t->ctx->gen; }
void tensor_fill(Tensor *t, double v);
int tensor_copy(Tensor *dst, const Tensor *src); // same shape; any strides; converts dtype
bool tensor_all_finite(const Tensor *t);         // no NaN or Inf (integer tensors: true)

// ---- int8 copies for inference ----
// Keeps an int8 copy of the float32 matrix w [out, in] (or a tensor [out, ...] taken as one, such
// as a convolution's weight) beside its float values (one scale per
// output channel, symmetric; allocated in w's context): every product y = x w^T that records no
// gradient (ag_linear and the layers built on it, under AG_NO_GRAD or with frozen inputs) then
// runs in int8, its input quantized per row at run time (tensor/qgemm.h says how). Products that
// record a gradient stay float32. A write to w after (seen by its version) quantizes it again at
// its next product. False, with a message in w's context, for another dtype, a view, one
// dimension, or more than 65536 elements per output.
bool tensor_quantize_int8(Tensor *w);
static inline void tensor_quantize_off(Tensor *w) { w->int8 = NULL; } // float32 products again
// w's int8 copy quantized again first if w was written since (its version), or NULL if it has none
struct QWeight *tensor_int8_current(Tensor *w);
// the int8 kernel the CPU runs ("avx512vnni", "avx512bw", "avxvnni", "avx2" or "portable")
const char *tensor_int8_kernel(void);

// ---- views: new header, same storage, no copy (no autograd; see ag_* for recorded views) ----
Tensor *tensor_view(Ctx *c, const Tensor *t);                                         // plain alias
Tensor *tensor_reshape_view(Ctx *c, const Tensor *t, int ndim, const int64_t *shape); // contiguous only; one -1 allowed
Tensor *tensor_permute_view(Ctx *c, const Tensor *t, const int *perm);
Tensor *tensor_transpose_view(Ctx *c, const Tensor *t, int d0, int d1);
Tensor *tensor_narrow_view(Ctx *c, const Tensor *t, int dim, int64_t start, int64_t len);
Tensor *tensor_expand_view(Ctx *c, const Tensor *t, int ndim, const int64_t *shape); // -1 keeps a size
Tensor *tensor_contiguous(Ctx *c, const Tensor *t);                                  // t itself if already contiguous

// ---- printing, PyTorch's style: tensor([[ 0.1234, -1.0000], ...]) ----
void tensor_fprint(FILE *f, const Tensor *t);
void tensor_print(const Tensor *t);

// Broadcast the shapes of a and b (NumPy rules) into out_shape; returns ndim or -1.
int broadcast_shapes(const Tensor *a, const Tensor *b, int64_t *out_shape);

#ifdef __cplusplus
}
#endif

#endif
