// autograd.h: define-by-run reverse-mode autograd. Every ag_ op computes its result at once
// (in ctx) and, when an input requires a gradient and no-grad mode is off, records a node on
// ctx's tape. ag_backward(ctx, loss) runs the tape backwards, accumulating (+=) into .grad.
// Ops return NULL on bad input and leave a message naming the op and the shapes in ctx
// (ctx_error); a NULL input after a failed op makes the next op return NULL too (the first message
// stays), so checks can wait for the end; a NULL that no failed op explains sets
// "op: argument NAME is NULL". Writing an op of one's own: autograd/extend.h.
#ifndef CGRAD_AUTOGRAD_H
#define CGRAD_AUTOGRAD_H

#include "../tensor/rng.h"
#include "../tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

// ---- the engine (tape.c) ----
void ag_set_requires_grad(Tensor *t, bool on); // a leaf: allocates its zeroed .grad in t->ctx
bool ag_no_grad(Ctx *c, bool on);              // sets no-grad mode; returns the previous mode
bool ag_is_no_grad(Ctx *c);                    // whether c is in no-grad mode
// A block run in no-grad mode, the mode before it restored after it (leave it at its end, not by
// return, break or goto):   AG_NO_GRAD(c) { logits = forward(c, m, x); }
#define AG_NO_GRAD(c)                                                                                                                      \
    for (int ag_ng_once_ = 1, ag_ng_prev_ = ag_no_grad((c), true); ag_ng_once_; ag_ng_once_ = 0, ag_no_grad((c), ag_ng_prev_))
// Backward from loss (one element): walks the ops that loss depends on, in whatever context they
// were recorded, newest first, accumulating (+=) into the .grad of every leaf that requires one.
// Leaves keep .grad; intermediate gradients are recycled. The walked ops are consumed (PyTorch's
// retain_graph=False): a later backward that reaches one of them fails with a message naming it;
// ops the loss does not reach stay on the tape for another loss. 0, or -1 with a message in c.
int ag_backward(Ctx *c, Tensor *loss);
int ag_backward_retain(Ctx *c, Tensor *loss); // the same, leaving the walked ops usable again
void ag_zero_grad(Tensor *const *ts, int n);
Tensor *ag_detach(Ctx *c, Tensor *t); // same data, no history, no grad

// ---- elementwise, NumPy broadcasting (ops_elementwise.c) ----
Tensor *ag_add(Ctx *c, Tensor *a, Tensor *b);
Tensor *ag_sub(Ctx *c, Tensor *a, Tensor *b);
Tensor *ag_mul(Ctx *c, Tensor *a, Tensor *b);
Tensor *ag_div(Ctx *c, Tensor *a, Tensor *b);
Tensor *ag_add_scalar(Ctx *c, Tensor *x, double s);
Tensor *ag_mul_scalar(Ctx *c, Tensor *x, double s);
Tensor *ag_neg(Ctx *c, Tensor *x);
Tensor *ag_exp(Ctx *c, Tensor *x);
Tensor *ag_log(Ctx *c, Tensor *x);
Tensor *ag_sqrt(Ctx *c, Tensor *x);
Tensor *ag_tanh(Ctx *c, Tensor *x);
Tensor *ag_gelu(Ctx *c, Tensor *x); // exact: x Phi(x) with erf
Tensor *ag_relu(Ctx *c, Tensor *x);
Tensor *ag_dropout(Ctx *c, Tensor *x, double p, Rng *rng, bool training); // identity when !training
Tensor *ag_sigmoid(Ctx *c, Tensor *x);
Tensor *ag_silu(Ctx *c, Tensor *x);                                    // x sigmoid(x)
Tensor *ag_softplus(Ctx *c, Tensor *x, double beta, double threshold); // log(1 + e^(beta x)) / beta; x past threshold / beta
Tensor *ag_leaky_relu(Ctx *c, Tensor *x, double slope);                // PyTorch's default slope: 0.01
Tensor *ag_gelu_tanh(Ctx *c, Tensor *x);                               // GELU with the tanh approximation (approximate='tanh')
Tensor *ag_pow_scalar(Ctx *c, Tensor *x, double p);                    // x^p (gradient p x^(p-1); 0 for p = 0)
Tensor *ag_abs(Ctx *c, Tensor *x);                                     // gradient sign(x), 0 at 0
Tensor *ag_clamp(Ctx *c, Tensor *x, double lo, double hi);             // -INFINITY / INFINITY: no bound; gradient inside [lo, hi]
Tensor *ag_minimum(Ctx *c, Tensor *a, Tensor *b);                      // elementwise, broadcast; a tie splits the gradient in halves
Tensor *ag_maximum(Ctx *c, Tensor *a, Tensor *b);
// comparisons, broadcast: 1 where true, 0 where false, in a's dtype; no gradient
Tensor *ag_eq(Ctx *c, Tensor *a, Tensor *b);
Tensor *ag_ne(Ctx *c, Tensor *a, Tensor *b);
Tensor *ag_lt(Ctx *c, Tensor *a, Tensor *b);
Tensor *ag_le(Ctx *c, Tensor *a, Tensor *b);
Tensor *ag_gt(Ctx *c, Tensor *a, Tensor *b);
Tensor *ag_ge(Ctx *c, Tensor *a, Tensor *b);
Tensor *ag_where(Ctx *c, Tensor *cond, Tensor *a, Tensor *b);          // cond != 0 ? a : b, the three broadcast
Tensor *ag_masked_fill(Ctx *c, Tensor *x, Tensor *mask, double value); // mask != 0 ? value : x

// ---- convolution and pooling, x [B, C, H, W] (ops_conv.c) ----
// PyTorch's F.conv2d: w [OC, C / groups, KH, KW], b [OC] or NULL; stride, padding, dilation as
// {height, width} (NULL: 1, 0, 1) -> [B, OC, OH, OW], OH = (H + 2 pad - dil (KH - 1) - 1) / stride + 1
Tensor *ag_conv2d(Ctx *c, Tensor *x, Tensor *w, Tensor *b, const int stride[2], const int padding[2], const int dilation[2], int groups);
// F.max_pool2d / F.avg_pool2d (count_include_pad): kernel {KH, KW}; stride NULL: the kernel; padding
// NULL: 0, at most half the kernel (max pooling pads with -inf); a tie goes to the first maximum
Tensor *ag_max_pool2d(Ctx *c, Tensor *x, const int kernel[2], const int stride[2], const int padding[2]);
Tensor *ag_avg_pool2d(Ctx *c, Tensor *x, const int kernel[2], const int stride[2], const int padding[2]);
Tensor *ag_global_avg_pool2d(Ctx *c, Tensor *x); // F.adaptive_avg_pool2d(x, 1): [B, C, 1, 1]

// ---- built from the ops above (ops_compose.c) ----
Tensor *ag_logsumexp(Ctx *c, Tensor *x, int dim, bool keepdim);
Tensor *ag_var(Ctx *c, Tensor *x, int dim, double correction, bool keepdim); // correction 1: unbiased (PyTorch's default)
Tensor *ag_std(Ctx *c, Tensor *x, int dim, double correction, bool keepdim);
Tensor *ag_mse_loss(Ctx *c, Tensor *input, Tensor *target);                   // mean of squared differences
Tensor *ag_bce_with_logits(Ctx *c, Tensor *logits, Tensor *target);           // mean, stable for any logit
Tensor *ag_nll_loss(Ctx *c, Tensor *logp, Tensor *labels);                    // logp [N, C], int64 labels [N] -> mean
Tensor *ag_sum_dims(Ctx *c, Tensor *x, const int *dims, int n, bool keepdim); // over several dimensions
Tensor *ag_mean_dims(Ctx *c, Tensor *x, const int *dims, int n, bool keepdim);
// views of x cut along dim: sizes[0..n) (summing to the dimension) into out; 0 or -1
int ag_split(Ctx *c, Tensor *x, int dim, const int64_t *sizes, int n, Tensor **out);
// torch.chunk: ceil(L / n) each, the last smaller; returns how many (<= n), -1 on error
int ag_chunk(Ctx *c, Tensor *x, int dim, int n, Tensor **out);
Tensor *ag_softmax_dim(Ctx *c, Tensor *x, int dim); // over any dimension
Tensor *ag_log_softmax_dim(Ctx *c, Tensor *x, int dim);
// ---- losses with PyTorch's options (reduction=, ignore_index=, label_smoothing=) ----
// how a loss reduces over its elements: the mean (over the counted ones: labels not ignored), the
// sum, or none (a value per element: the labels' shape, or the input's for elementwise losses). A
// mean over no counted element is NaN, as PyTorch's 0 / 0, with gradients 0.
typedef enum { AG_REDUCE_MEAN, AG_REDUCE_SUM, AG_REDUCE_NONE } AgReduction;
typedef struct {
    AgReduction reduction;
    int64_t ignore_index;   // a label equal to it counts for nothing (PyTorch's default: -100)
    double label_smoothing; // cross-entropy's target (1 - eps) one-hot + eps / C; 0 for NLL
} AgLossOptions;
#define AG_LOSS_DEFAULTS ((AgLossOptions){AG_REDUCE_MEAN, -100, 0.0})
// F.cross_entropy over logits [N, C, d...] and int64 labels [N, d...]
Tensor *ag_cross_entropy_with(Ctx *c, Tensor *logits, Tensor *labels, AgLossOptions o);
// F.nll_loss over log-probabilities [N, C, d...] and int64 labels [N, d...]
Tensor *ag_nll_loss_with(Ctx *c, Tensor *logp, Tensor *labels, AgLossOptions o);
Tensor *ag_mse_loss_with(Ctx *c, Tensor *input, Tensor *target, AgReduction r);         // F.mse_loss
Tensor *ag_l1_loss_with(Ctx *c, Tensor *input, Tensor *target, AgReduction r);          // F.l1_loss
Tensor *ag_bce_with_logits_with(Ctx *c, Tensor *logits, Tensor *target, AgReduction r); // F.binary_cross_entropy_with_logits
// normalisations over x [N, C, ...], w and b [C] or NULL (no affine), the biased variance; fused
// (one kernel forward, one backward: ops_norm.c)
Tensor *ag_group_norm(Ctx *c, Tensor *x, int groups, Tensor *w, Tensor *b, double eps);
// training: batch statistics, and running_mean / running_var (if given) updated in place as
// PyTorch does (momentum 0.1: r = 0.9 r + 0.1 stat, the variance unbiased); eval: the running ones
Tensor *ag_batch_norm(Ctx *c, Tensor *x, Tensor *w, Tensor *b, Tensor *running_mean, Tensor *running_var, bool training, double momentum,
                      double eps);
Tensor *ag_rms_norm(Ctx *c, Tensor *x, Tensor *w, double eps); // over the last dimension, w [D] or NULL
Tensor *ag_embedding(Ctx *c, Tensor *weight, Tensor *idx);     // weight [V, D], int64 idx of any shape -> [idx..., D]
Tensor *ag_flip(Ctx *c, Tensor *x, int dim);
Tensor *ag_pad(Ctx *c, Tensor *x, int dim, int64_t before, int64_t after, double value); // constant padding of one dimension
Tensor *ag_stack(Ctx *c, Tensor *const *parts, int k, int dim); // any number of tensors of one shape along a new dimension

// ---- reductions and normalisation (ops_reduce.c) ----
Tensor *ag_sum(Ctx *c, Tensor *x, int dim, bool keepdim);
Tensor *ag_mean(Ctx *c, Tensor *x, int dim, bool keepdim);
Tensor *ag_max(Ctx *c, Tensor *x, int dim, bool keepdim, Tensor **argmax); // argmax: int64, optional
// torch.topk: the k largest (or smallest) values along dim, sorted, and their int64 indices
// (optional); ties keep the lower index first, NaN counts as the largest. No gradient (a constant).
Tensor *ag_topk(Ctx *c, Tensor *x, int k, int dim, bool largest, Tensor **indices);
Tensor *ag_sum_all(Ctx *c, Tensor *x);     // 0-d
Tensor *ag_mean_all(Ctx *c, Tensor *x);    // 0-d
Tensor *ag_softmax(Ctx *c, Tensor *x);     // over the last dimension
Tensor *ag_log_softmax(Ctx *c, Tensor *x); // over the last dimension
// torch.nn.functional.layer_norm: over x's last nd dimensions, w and b of their shape (or NULL)
Tensor *ag_layer_norm(Ctx *c, Tensor *x, int nd, Tensor *w, Tensor *b, double eps);
Tensor *ag_cross_entropy(Ctx *c, Tensor *logits, Tensor *labels);                      // [N, C], int64 [N] -> mean
Tensor *ag_cross_entropy_scaled(Ctx *c, Tensor *logits, Tensor *labels, double scale); // scale * sum
// with label smoothing eps (the target (1 - eps) one-hot + eps / C, as PyTorch and HF's Trainer)
Tensor *ag_cross_entropy_smoothed(Ctx *c, Tensor *logits, Tensor *labels, double scale, double eps);

// ---- recurrent layers (ops_recurrent.c): one direction of one layer over a whole sequence ----
// x [T, B, I] (time first); h0 (and c0) [B, H] or NULL (zeros); w_ih [G H, I], w_hh [G H, H], b_ih,
// b_hh [G H] or NULL, in PyTorch's gate order (GRU G = 3: r, z, n; LSTM G = 4: i, f, g, o) and
// equations. reverse: from the last step to the first (a bidirectional layer's second direction).
// ag_gru returns the hidden state after each step [T, B, H] (its position t holds the state after
// x[t]); ag_lstm returns [T + 1, B, H]: those, then the last cell state c_n. nn_gru / nn_lstm build
// layers on them.
Tensor *ag_gru(Ctx *c, Tensor *x, Tensor *h0, Tensor *w_ih, Tensor *w_hh, Tensor *b_ih, Tensor *b_hh, bool reverse);
Tensor *ag_lstm(Ctx *c, Tensor *x, Tensor *h0, Tensor *c0, Tensor *w_ih, Tensor *w_hh, Tensor *b_ih, Tensor *b_hh, bool reverse);

// ---- products (ops_matmul.c) ----
Tensor *ag_matmul(Ctx *c, Tensor *a, Tensor *b);            // [.., M, K] @ [.., K, N], batch dims broadcast; 1-d operands as vectors;
                                                            // transposed views are used without a copy
Tensor *ag_linear(Ctx *c, Tensor *x, Tensor *w, Tensor *b); // x [.., IC], w [OC, IC], b [OC] or NULL

// ---- attention (ops_attention.c) ----
// q [B, Tq, C], k, v [B, Tk, C] -> [B, Tq, C]: per head h (hs = C / NH) softmax(q_h k_h^T / sqrt(hs)) v_h.
// probs (optional) receives the attention probabilities [B, NH, Tq, Tk].
Tensor *ag_attention(Ctx *c, Tensor *q, Tensor *k, Tensor *v, int NH, Tensor **probs);
// the same with an additive mask (added to the scores before the softmax: [Tq, Tk] for every batch
// item or [B, Tq, Tk]; -INFINITY hides a key; a constant: a mask that requires a gradient is
// refused) and/or causal, as F.scaled_dot_product_attention's attn_mask and is_causal. One
// difference: causal is aligned bottom-right (query i sees keys up to i + Tk - Tq, the KV-cache
// convention of FlashAttention and PyTorch's causal_lower_right), where is_causal is aligned
// top-left (keys up to i); the two agree when Tq == Tk, the only case PyTorch's layers use. With probs, the
// probabilities [B, NH, Tq, Tk] are kept for the backward and given back; without (NULL), only
// each query's log-sum-exp is kept ([B, NH, Tq]) and the backward recomputes the probabilities in
// blocks of 256 queries (a causal block computes only the keys it sees): memory O(B NH Tq), not Tq Tk.
Tensor *ag_attention_masked(Ctx *c, Tensor *q, Tensor *k, Tensor *v, int NH, Tensor *mask, bool causal, Tensor **probs);

// ---- shape and indexing (ops_shape.c) ----
Tensor *ag_reshape(Ctx *c, Tensor *x, int ndim, const int64_t *shape); // copies if not contiguous
Tensor *ag_permute(Ctx *c, Tensor *x, const int *perm);
Tensor *ag_transpose(Ctx *c, Tensor *x, int d0, int d1);
Tensor *ag_narrow(Ctx *c, Tensor *x, int dim, int64_t start, int64_t len);
Tensor *ag_expand(Ctx *c, Tensor *x, int ndim, const int64_t *shape);
Tensor *ag_contiguous(Ctx *c, Tensor *x);
Tensor *ag_concat(Ctx *c, Tensor *const *parts, int k, int dim);
Tensor *ag_index_select(Ctx *c, Tensor *x, int dim, Tensor *idx); // idx int64 [M]
Tensor *ag_gather(Ctx *c, Tensor *x, int dim, Tensor *idx);       // idx int64, x's shape but dim

// ---- gradient check (gradcheck.c) ----
// Compares the gradients backward gives for L = sum(f(inputs) * R) (R fixed random) with central
// differences (L(x+eps) - L(x-eps)) / 2eps, element by element: |analytic - numeric| must be at
// most atol + rtol |numeric|. Use float64 inputs; inputs without requires_grad are not checked.
typedef Tensor *(*AgFn)(Ctx *c, Tensor **in, void *ud);
typedef struct {
    double eps, atol, rtol; // defaults (0): 1e-6, 1e-7, 1e-5
    uint64_t seed;
} AgGradcheckOpts;
bool ag_gradcheck(AgFn f, void *ud, Tensor **in, int nin, const AgGradcheckOpts *opts, char *msg, size_t msgn);

// ---- old names, kept for one release (the compiler says what replaces each) ----
// Every op and layer is named as PyTorch names it, in snake case (layer_norm, rms_norm,
// group_norm, batch_norm); an op over one dimension takes it as an argument.
#if defined(__GNUC__) || defined(__clang__)
#define AG_DEPRECATED(use) __attribute__((deprecated("use " use)))
#else
#define AG_DEPRECATED(use)
#endif
// over the last dimension, w and b [C]
AG_DEPRECATED("ag_layer_norm(c, x, 1, w, b, eps)")
static inline Tensor *ag_layernorm(Ctx *c, Tensor *x, Tensor *w, Tensor *b, double eps) { return ag_layer_norm(c, x, 1, w, b, eps); }
// over any one dimension: permute it last, ag_layer_norm, permute back
AG_DEPRECATED("ag_layer_norm over the last dimensions (ag_permute the one to normalise last)")
Tensor *ag_layernorm_dim(Ctx *c, Tensor *x, int dim, Tensor *w, Tensor *b, double eps);
AG_DEPRECATED("ag_cross_entropy_with(c, logits, labels, (AgLossOptions){.ignore_index = i})")
static inline Tensor *ag_cross_entropy_nd(Ctx *c, Tensor *logits, Tensor *labels, int64_t ignore_index) {
    return ag_cross_entropy_with(c, logits, labels, (AgLossOptions){AG_REDUCE_MEAN, ignore_index, 0.0});
}

#ifdef __cplusplus
}
#endif

#endif
