// extend.h: the machinery for writing an op (docs/ops.md walks through one). An op is a pair of
// kernels (forward, and a backward that accumulates into the input gradients) and an ag_
// constructor that checks its arguments, computes the forward at once into a new tensor of the
// context, and records a node whose backward callback the engine calls in reverse order.
#ifndef CGRAD_AUTOGRAD_EXTEND_H
#define CGRAD_AUTOGRAD_EXTEND_H

#include "../kernels/kernels.h"
#include "autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AG_MAX_IN 8

// One recorded op. The engine owns prev, seq, visit and consumed; the op fills the rest.
typedef struct AgNode {
    struct AgNode *prev;   // the op recorded before this one (the context's tape)
    const char *op;        // the op's name, for messages
    Tensor *out;           // the op's result; out->grad holds its gradient when backward runs
    Tensor *in[AG_MAX_IN]; // the inputs (their gradients come from ag_grad_buf / ag_grad_fresh)
    int nin;
    void (*backward)(struct AgNode *n);
    Tensor *saved[3];               // what the backward needs (contiguous inputs, statistics)
    void *aux;                      // op-specific arrays in the arena
    double f[2];                    // op-specific scalars
    int64_t i[TENSOR_MAX_DIMS + 2]; // op-specific integers (dimensions, sizes, kinds)
    uint64_t seq;                   // recording order across all contexts: inputs' nodes are older
    uint64_t visit;                 // the backward pass that last reached it
    bool consumed;                  // walked by a backward without retain: walking it again is refused
    Ctx *in_ctx[AG_MAX_IN];         // each input's context and its generation when the op ran (a reset
    uint32_t in_gen[AG_MAX_IN];     // context's tensors are dead: the backward refuses them), and
    uint32_t in_ver[AG_MAX_IN];     // the input's version then (written in place since: refused)
} AgNode;

// Records an op whose result is out, computed from in[0..nin): returns the node to fill with what
// the backward needs, or NULL when nothing needs a gradient (no input requires one, or no-grad
// mode): then there is nothing to save either. Marks out as requiring a gradient.
AgNode *ag_record(Ctx *c, const char *op, Tensor *out, int nin, Tensor *const *in, void (*bw)(AgNode *));
// Whether ag_record would record a node for these inputs (not in no-grad mode, some input requires
// a gradient): an op can skip computing what only its backward needs.
bool ag_will_record(Ctx *c, int nin, Tensor *const *in);
// how many ops c's tape holds (recorded since its last reset, less those a backward consumed)
long ag_tape_len(Ctx *c);

// In a backward callback: the gradient buffer of an input, allocated on demand (zeroed), or NULL
// when that input needs none; ag_grad_fresh leaves a new buffer unzeroed and sets *fresh, so the
// first contribution can be written instead of added.
Tensor *ag_grad_buf(Tensor *t);
Tensor *ag_grad_fresh(Tensor *t, bool *fresh);

// Argument checks that leave the message a caller sees in ctx_error:
bool ag_check_float(Ctx *c, const char *op, Tensor *a, Tensor *b); // non-NULL, float, same dtype
// false when t is NULL: a NULL after a failed op passes on quietly (the message is already in c),
// any other NULL sets "op: argument NAME is NULL"
bool ag_arg(Ctx *c, const char *op, const char *name, const Tensor *t);

// A frozen float32 weight W [OC, IC] packed for the products with it and kept between calls
// (tensor/sgemm.h's sgemm_kept, found again by W's id and version): transposed for y = x W^T (the
// forward), not for dx = dy W (the backward). NULL where W is no such weight (it requires a
// gradient, is a view, is not float32 or not contiguous) or there is no kernel or room: the kernel
// packs per product then. Released with ag_weight_release once the product is done.
const void *ag_weight_packed(const Tensor *w, bool transposed);
void ag_weight_release(const void *wp);

// The int8 copy of w (tensor_quantize_int8) for a product y = x w^T with the inputs `in`, brought up
// to date with w's version; NULL when w has none, the product would record a gradient, or x is not
// float32: the product runs in float32 then. Its arithmetic is tensor/qgemm.h's qlinear.
struct QWeight *ag_weight_int8(Ctx *c, int nin, Tensor *const *in, Tensor *w);
// y = x q^T (+ bias) (+ res) in int8, x contiguous [.., IC], bias [OC] and res of y's shape
// contiguous or NULL; y, or NULL with "OP: out of memory for the int8 input rows" in c
Tensor *ag_qlinear(Ctx *c, const char *op, const struct QWeight *q, Tensor *y, const Tensor *x, const Tensor *bias, const Tensor *res);

// Calls fn_f32 or fn_f64 (kernels.h) by dtype.
#define AG_DISPATCH(dt, fn, ...) ((dt) == DT_F32 ? fn##_f32(__VA_ARGS__) : fn##_f64(__VA_ARGS__))

#ifdef __cplusplus
}
#endif

#endif
