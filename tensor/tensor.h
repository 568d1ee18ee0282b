// tensor.h: N-d tensors with strides, a memory context (arena), views, creation, printing.
// Shapes in comments use llm.c's letters: B batch, T tokens, C channels, NH heads, hs head size.
#ifndef CGRAD_TENSOR_H
#define CGRAD_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TENSOR_MAX_DIMS 8

typedef enum { DT_F32, DT_F64, DT_I64, DT_U8 } DType;

typedef struct Ctx Ctx;
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

// ---- context: owns every tensor made in it; reset frees them all at once (ggml's context) ----
// A context is an arena of chunks. ctx_reset() keeps the memory: after the first step has
// grown it, later steps allocate nothing from the system. Errors are values: an op that fails
// returns NULL and leaves a message here (the first failure wins until ctx_clear_error).
struct Ctx {
    struct ArenaChunk *chunks; // newest first
    size_t used_total, peak, chunk_min;
    int nsys_allocs;     // chunks allocated from the system (for tests)
    struct AgTape *tape; // autograd's state for this context (opaque: autograd/tape.c; freed with it)
    uint64_t nrecorded;  // ops recorded in it so far (autograd counts them; a mark remembers the count)
    bool failed;
    bool poison;  // CGRAD_POISON=1: uninitialised memory is filled with 0xff (NaN)
    uint32_t gen; // bumped by every ctx_reset: its tensors from before are dead
    char err[512];
};

Ctx *ctx_new(size_t initial_bytes); // a hint: a context starts smaller when the system has less; NULL out of memory
void ctx_free(Ctx *c);
void ctx_reset(Ctx *c); // drop all tensors and the tape; keep memory
// A point in a context's allocations, to give back what a stretch of work made (a layer's
// intermediates in inference) while keeping its result: ctx_release_keep(c, mark, y) frees
// everything made in c since the mark and returns y, moved to where the mark was (contiguous) when
// it was made after it. Every other tensor made since the mark is gone: using it is a bug (its
// memory is handed out again). Refused (NULL, with a message) when ops were recorded on the tape
// since the mark (their backward needs what would be freed: use it under no-grad) or the
// context was reset in between. For a stack of layers, mark once before it and release to that
// mark after each layer: each layer's input (the last one kept) goes with its intermediates.
//     CtxMark m = ctx_mark(c);
//     for (int i = 0; i < L; i++) h = ctx_release_keep(c, m, layer(c, i, h));
typedef struct {
    struct ArenaChunk *chunk;
    size_t used, used_total;
    uint64_t nrecorded;
    uint32_t gen;
} CtxMark;
CtxMark ctx_mark(const Ctx *c);
struct Tensor *ctx_release_keep(Ctx *c, CtxMark m, struct Tensor *t);
void *ctx_alloc(Ctx *c, size_t bytes);        // 64-byte aligned, zero-filled; NULL ctx: abort
void *ctx_alloc_uninit(Ctx *c, size_t bytes); // not zeroed (filled with NaN bytes when CGRAD_POISON=1)
// what tensors' data comes from: NULL with the context's error set ("out of memory: N bytes") when
// the system cannot give it, instead of aborting (ctx_alloc aborts: it is for small bookkeeping)
void *ctx_try_alloc(Ctx *c, size_t bytes, bool zero);
bool ctx_ok(const Ctx *c);
const char *ctx_error(const Ctx *c);
void ctx_clear_error(Ctx *c);
void ctx_fail(Ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

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

// ---- threads

// How OpenMP's threads wait. libgomp's default (OMP_WAIT_POLICY unset) spins about 300,000 times
// at every barrier and at the end of every parallel region before it sleeps: on an idle machine
// that saves a wake-up, but beside another busy program a thread spins away its share of the core
// while the partner it waits for is not running (batch-1 inference fell from 47 to 0.8 images/s
// that way). A spin count of CGRAD_SPINCOUNT keeps the idle speed and lets a waiting thread sleep
// soon on a busy machine (BENCHMARKS.md has the measurement). libgomp reads its settings once,
// when it is loaded, before main: so cgrad_wait_policy, called first thing in main with main's
// argv, sets GOMP_SPINCOUNT and runs the program again (execv of /proc/self/exe, a millisecond)
// when neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT is set; otherwise, or where that cannot be
// done (under valgrind, without /proc), it returns and changes nothing. The programs and examples
// call it; a program of your own may, or may set GOMP_SPINCOUNT itself.
#define CGRAD_SPINCOUNT "10000"
void cgrad_wait_policy(char **argv);

#ifdef __cplusplus
}
#endif

#endif
