// nn.h: layers as plain structs of tensors, registered by name in a parameter set.
//
// A parameter set (NnParams) is a model's state_dict: every parameter and buffer under its name
// ("encoder.0.weight"), the context they live in, the generator that initialises them and draws
// dropout masks, and the train/eval mode. Constructors (nn_linear_new, nn_conv2d_new, ...) create a
// layer's tensors in the set with PyTorch's default initialisation and register them as
// "NAME.weight", "NAME.bias", ...; everything by name (counting, freezing, saving, loading,
// optimizer groups) goes through the set. Forward functions compute with ag_ ops, so they are
// differentiable; layers whose behaviour depends on the mode (Dropout, BatchNorm, LoRA's dropout)
// read it from their set.
//
//     NnParams ps;
//     nn_params_init(&ps, ctx_new(1 << 20), 42);
//     NnLinear fc = nn_linear_new(&ps, "fc", 784, 10, true);
//     Tensor *y = nn_linear(c, &fc, x);                 // x [B, 784] -> [B, 10]
//     nn_params_save(&ps, "model.safetensors", false, err, sizeof err);
#ifndef CGRAD_NN_H
#define CGRAD_NN_H

#include "../autograd/autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

// ---- the parameter set ----
typedef struct {
    char *name;
    Tensor *t;
    bool buffer; // state that is saved and loaded but never trained (BatchNorm's running statistics)
} NnParam;

typedef struct NnParams {
    NnParam *p;
    int n, cap;
    Ctx *ctx; // where constructors allocate (the set does not own it)
    Rng *rng; // initialisation and dropout draws (points at own_rng unless the model sets it)
    Rng own_rng;
    bool training;   // train/eval mode: nn_params_train (the Trainer switches it; nothing keeps a copy)
    char scope[256]; // the prefix of names registered now (nn_scope_push): "layer1.0", or ""
} NnParams;
// The set is the one owner of the mode and the generator: layers that depend on them (Dropout,
// BatchNorm, LoRA) keep a pointer to their set and read them at each forward, so a set must stay
// where it was made (a member of the model's struct, never copied or moved after its layers are
// made).

// An empty set allocating in pc, its generator seeded with seed, in training mode. (A set that
// only registers tensors made elsewhere may also start as {0}.)
void nn_params_init(NnParams *ps, Ctx *pc, uint64_t seed);
void nn_params_train(NnParams *ps, bool on); // PyTorch's model.train(on) / model.eval()
// The set owns a copy of name. A name registered twice is refused: -1, with the message in the
// set's context (ctx_error), and the set unchanged.
int nn_params_add(NnParams *ps, const char *name, Tensor *t);
int nn_params_add_buffer(NnParams *ps, const char *name, Tensor *t); // saved, loaded, never trained
Tensor *nn_params_get(const NnParams *ps, const char *name);
// Scoped names, as nested nn.Modules give them: between nn_scope_push(ps, "layer1") and
// nn_scope_pop(ps), every name registered (by a constructor or nn_params_add) gets the prefix
// "layer1."; scopes nest ("layer1" then "0": "layer1.0."). Push returns -1 (message in the set's
// context) when the prefix would pass 255 characters or the name is empty or holds a dot at an end.
int nn_scope_push(NnParams *ps, const char *name);
void nn_scope_pop(NnParams *ps);
bool nn_params_replace(NnParams *ps, const char *name, Tensor *t);
int64_t nn_params_count(const NnParams *ps, bool trainable_only); // numbers in parameters (not buffers)
// Sets requires_grad on every parameter whose name matches the fnmatch(3) pattern (with '*'
// matching dots too); returns how many matched. Buffers are never trainable.
int nn_params_set_trainable(NnParams *ps, const char *pattern, bool on);
// int8 copies (tensor_quantize_int8) of every float32 matrix [out, in] whose name matches the
// pattern ("*.weight" for a model's Linear layers; a matched embedding table or recurrent weight
// only takes memory: the copies serve products y = x w^T). Returns how many, or -1 at the first
// that fails (message in its context).
int nn_params_quantize(NnParams *ps, const char *pattern);
void nn_params_free(NnParams *ps); // the registry; the tensors belong to their context

// The set as safetensors (names as registered, "format": "pt" metadata, written atomically):
// every parameter and buffer, or with trainable_only the parameters with requires_grad alone.
int nn_params_save(const NnParams *ps, const char *path, bool trainable_only, char *err, size_t errn);
// Reads such a file back into the set's tensors, strictly: every tensor considered (all, or the
// trainable parameters) must be in the file with its shape and dtype, and the file may hold no
// tensor the set lacks. Nothing is written unless everything fits.
int nn_params_load(NnParams *ps, const char *path, bool trainable_only, char *err, size_t errn);

// ---- layers: constructors (PyTorch's default initialisation) and forwards ----

// Linear: y = x W^T + b, W [out, in]; W and b ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform, a = sqrt(5))
typedef struct {
    Tensor *weight, *bias; // [out, in], [out] or NULL
} NnLinear;
NnLinear nn_linear_new(NnParams *ps, const char *name, int64_t in, int64_t out, bool bias);
Tensor *nn_linear(Ctx *c, const NnLinear *l, Tensor *x); // x [.., in] -> [.., out]
// int8 inference (PyTorch's quantize_dynamic): the layer's weight gets an int8 copy
// (tensor_quantize_int8), and its forwards that record no gradient run in int8 from then on.
// False (message in the weight's context) for a weight that is not float32.
bool nn_linear_quantize(NnLinear *l);

// Conv2d: weight [out, in / groups, kh, kw], bias [out]; U(-1/sqrt(fan_in), ..), fan_in = in / groups * kh * kw
typedef struct {
    Tensor *weight, *bias;
    int stride[2], padding[2], dilation[2], groups;
} NnConv2d;
// nn.Conv2d's arguments by name; a zero stride or dilation means 1, zero groups 1 (square kernels)
typedef struct {
    int64_t in, out;
    int kernel, stride, padding, dilation, groups;
    bool no_bias; // PyTorch's bias=False
} NnConv2dOptions;
NnConv2d nn_conv2d_make(NnParams *ps, const char *name, NnConv2dOptions o);
NnConv2d nn_conv2d_new(NnParams *ps, const char *name, int in, int out, int kernel, int stride, int padding, int dilation, int groups,
                       bool bias);
Tensor *nn_conv2d(Ctx *c, const NnConv2d *l, Tensor *x); // x [B, in, H, W]

// Embedding: weight [num, dim] ~ N(0, 1); ids int64 of any shape -> [ids..., dim]
typedef struct {
    Tensor *weight;
} NnEmbedding;
NnEmbedding nn_embedding_new(NnParams *ps, const char *name, int64_t num, int64_t dim);
Tensor *nn_embedding(Ctx *c, const NnEmbedding *l, Tensor *ids);

// LayerNorm over the last dimension: weight ones, bias zeros (PyTorch's eps: 1e-5)
typedef struct {
    Tensor *weight, *bias; // [C]
    double eps;
} NnLayerNorm;
NnLayerNorm nn_layer_norm_new(NnParams *ps, const char *name, int64_t dim, double eps);
Tensor *nn_layer_norm(Ctx *c, const NnLayerNorm *l, Tensor *x);

// RMSNorm over the last dimension: weight ones (eps <= 0: float32's epsilon, as PyTorch's None)
typedef struct {
    Tensor *weight;
    double eps;
} NnRMSNorm;
NnRMSNorm nn_rms_norm_new(NnParams *ps, const char *name, int64_t dim, double eps);
Tensor *nn_rms_norm(Ctx *c, const NnRMSNorm *l, Tensor *x);

// GroupNorm over x [N, C, ...]: weight ones, bias zeros (eps 1e-5)
typedef struct {
    Tensor *weight, *bias;
    int groups;
    double eps;
} NnGroupNorm;
NnGroupNorm nn_group_norm_new(NnParams *ps, const char *name, int groups, int64_t channels, double eps);
Tensor *nn_group_norm(Ctx *c, const NnGroupNorm *l, Tensor *x);

// BatchNorm over x [N, C, ...] (BatchNorm1d/2d): weight ones, bias zeros, buffers running_mean 0,
// running_var 1, num_batches_tracked 0 (int64). Training mode: batch statistics, the running ones
// updated (momentum 0.1); eval mode: the running ones.
typedef struct {
    Tensor *weight, *bias, *running_mean, *running_var, *num_batches_tracked;
    double eps, momentum;
    const NnParams *set; // its mode
} NnBatchNorm;
NnBatchNorm nn_batch_norm_new(NnParams *ps, const char *name, int64_t channels, double eps, double momentum);
Tensor *nn_batch_norm(Ctx *c, const NnBatchNorm *l, Tensor *x);

// Dropout: in training mode zeroes each element with probability p and scales the rest by
// 1 / (1 - p), drawing from the set's generator; the identity in eval mode.
typedef struct {
    double p;
    const NnParams *set;
} NnDropout;
NnDropout nn_dropout_new(NnParams *ps, double p);
Tensor *nn_dropout(Ctx *c, const NnDropout *l, Tensor *x);

// MultiheadAttention (batch_first, self-attention): in_proj_weight [3E, E] (xavier_uniform),
// in_proj_bias [3E] (zeros), out_proj.weight [E, E] (kaiming_uniform), out_proj.bias (zeros) -
// PyTorch's names and initialisation. causal: each position sees itself and those before it; the
// causal and unmasked cases never store the [B, heads, T, T] scores.
typedef struct {
    Tensor *in_proj_weight, *in_proj_bias;
    NnLinear out_proj;
    int num_heads;
    bool causal;
} NnMultiheadAttention;
NnMultiheadAttention nn_mha_new(NnParams *ps, const char *name, int64_t embed_dim, int num_heads, bool causal);
// x [B, T, E] -> [B, T, E]; mask: NULL or additive [T, T] / [B, T, T] (-INFINITY hides a key)
Tensor *nn_mha(Ctx *c, const NnMultiheadAttention *l, Tensor *x, Tensor *mask);

// ---- recurrent layers: GRU and LSTM (PyTorch's nn.GRU / nn.LSTM, and their cells) ----
// The arguments of nn.GRU / nn.LSTM (dropout between layers is not offered). Parameters as
// PyTorch names them: NAME.weight_ih_l{k}[_reverse] [G H, I or D H], weight_hh_l{k} [G H, H],
// bias_ih_l{k}, bias_hh_l{k} [G H] (G = 3 for GRU, gates r, z, n; 4 for LSTM, gates i, f, g, o),
// all ~ U(-1/sqrt(H), 1/sqrt(H)). Each layer and direction runs as one fused op over the sequence
// (ag_gru / ag_lstm).
#define NN_RNN_MAX_LAYERS 8
typedef struct {
    int64_t input_size, hidden_size;
    int num_layers;     // 0: 1
    bool no_bias;       // PyTorch's bias=False
    bool batch_first;   // x and the output [B, T, ...] instead of [T, B, ...]
    bool bidirectional; // a second direction per layer, from the last step; outputs concatenated
} NnRnnOptions;
typedef struct {
    NnRnnOptions o;
    bool lstm;
    // per layer and direction, at [layer * directions + direction]
    Tensor *w_ih[2 * NN_RNN_MAX_LAYERS], *w_hh[2 * NN_RNN_MAX_LAYERS], *b_ih[2 * NN_RNN_MAX_LAYERS], *b_hh[2 * NN_RNN_MAX_LAYERS];
} NnRnn;
typedef NnRnn NnGRU;
typedef NnRnn NnLSTM;
NnGRU nn_gru_new(NnParams *ps, const char *name, NnRnnOptions o);
NnLSTM nn_lstm_new(NnParams *ps, const char *name, NnRnnOptions o);
// x [T, B, I] ([B, T, I] when batch_first); h0 (c0) [layers x directions, B, H] or NULL (zeros).
// Returns the last layer's states at every step [T, B, directions x H] (batch_first: [B, T, ...]);
// *h_n (and *c_n), when asked for, the final states [layers x directions, B, H].
Tensor *nn_gru(Ctx *c, const NnGRU *l, Tensor *x, Tensor *h0, Tensor **h_n);
Tensor *nn_lstm(Ctx *c, const NnLSTM *l, Tensor *x, Tensor *h0, Tensor *c0, Tensor **h_n, Tensor **c_n);

// GRUCell / LSTMCell: one step. NAME.weight_ih [G H, I], weight_hh [G H, H], bias_ih, bias_hh [G H]
typedef struct {
    Tensor *weight_ih, *weight_hh, *bias_ih, *bias_hh; // biases NULL without bias
    bool lstm;
} NnRnnCell;
typedef NnRnnCell NnGRUCell;
typedef NnRnnCell NnLSTMCell;
NnGRUCell nn_gru_cell_new(NnParams *ps, const char *name, int64_t input_size, int64_t hidden_size, bool bias);
NnLSTMCell nn_lstm_cell_new(NnParams *ps, const char *name, int64_t input_size, int64_t hidden_size, bool bias);
// x [B, I], h (and cell) [B, H] or NULL (zeros) -> the next h [B, H] (LSTM: the next cell into *c_next)
Tensor *nn_gru_cell(Ctx *c, const NnGRUCell *l, Tensor *x, Tensor *h);
Tensor *nn_lstm_cell(Ctx *c, const NnLSTMCell *l, Tensor *x, Tensor *h, Tensor *cell, Tensor **c_next);

// ---- Sequential: modules applied in order (nn.Sequential) ----
// Modules are named by their index under the container's name: the first Linear of
// nn_sequential_init(&s, &ps, "classifier") registers "classifier.0.weight"; modules without
// parameters (ReLU, Flatten) take an index too, as in PyTorch. Any module fits: a forward function
// and the module's struct (kept as long as the container); nn_seq_* make the common ones.
//     NnSequential net;
//     nn_sequential_init(&net, &ps, "net");
//     nn_seq_linear(&net, 784, 256, true), nn_seq_relu(&net), nn_seq_linear(&net, 256, 10, true);
//     Tensor *logits = nn_sequential(c, &net, x);   // net.0.weight, net.0.bias, net.2.weight, ...
#define NN_SEQUENTIAL_MAX 64
typedef Tensor *(*NnModuleForward)(Ctx *c, const void *module, Tensor *x);
typedef struct {
    NnModuleForward forward;
    const void *module;
} NnSequentialItem;
typedef struct {
    NnParams *ps;
    char name[128], next[160];
    NnSequentialItem items[NN_SEQUENTIAL_MAX];
    int n;
} NnSequential;
void nn_sequential_init(NnSequential *s, NnParams *ps, const char *name);
const char *nn_sequential_next(NnSequential *s); // the next module's name, "NAME.k", for its constructor
int nn_sequential_add(NnSequential *s, NnModuleForward forward, const void *module); // 0, or -1 (full)
// Under no-grad each module's intermediates are given back as soon as it is done (ctx_release_keep)
Tensor *nn_sequential(Ctx *c, const NnSequential *s, Tensor *x);
// the common modules, each made under the next name and added (0, or -1 with the message in the set's context)
int nn_seq_linear(NnSequential *s, int64_t in, int64_t out, bool bias);
int nn_seq_conv2d(NnSequential *s, NnConv2dOptions o);
int nn_seq_batch_norm(NnSequential *s, int64_t channels); // eps 1e-5, momentum 0.1
int nn_seq_dropout(NnSequential *s, double p);
int nn_seq_max_pool2d(NnSequential *s, int kernel); // stride = kernel
int nn_seq_relu(NnSequential *s);
int nn_seq_gelu(NnSequential *s);
int nn_seq_tanh(NnSequential *s);
int nn_seq_flatten(NnSequential *s); // [N, ...] -> [N, rest]

// ---- LoRA: a wrapper around any Linear (peft's LoraLayer) ----
// y = base(x) + scale * B(A(dropout(x))), A [r, in] ~ kaiming_uniform(a = sqrt(5)), B [out, r] = 0,
// scale = alpha / r. The base layer is not changed (freeze it with nn_params_set_trainable); the
// adapter's tensors are registered as "NAME.lora_A.weight" and "NAME.lora_B.weight", trainable.
typedef struct {
    NnLinear *base;
    Tensor *A, *B;
    int r;
    double alpha, scale, dropout;
    bool enabled;        // false: the base layer alone
    bool merged;         // base W holds W + scale B A; the branch is skipped
    const NnParams *set; // its mode and generator (dropout)
} NnLora;
// NULL (with a message in the set's context) when r < 1, alpha <= 0 or dropout outside [0, 1)
NnLora *nn_lora_new(NnParams *ps, const char *name, NnLinear *base, int r, double alpha, double dropout);
Tensor *nn_lora(Ctx *c, const NnLora *l, Tensor *x);
bool nn_lora_active(const NnLora *l); // enabled and not merged
void nn_lora_merge(NnLora *l);        // W += scale B A (W must be writable)
void nn_lora_unmerge(NnLora *l);      // W -= scale B A

// ---- old names, kept for one release (PyTorch's names in snake case replace them) ----
AG_DEPRECATED("nn_layer_norm_new")
static inline NnLayerNorm nn_layernorm_new(NnParams *ps, const char *name, int64_t dim, double eps) {
    return nn_layer_norm_new(ps, name, dim, eps);
}
AG_DEPRECATED("nn_layer_norm")
static inline Tensor *nn_layernorm(Ctx *c, const NnLayerNorm *l, Tensor *x) { return nn_layer_norm(c, l, x); }
AG_DEPRECATED("nn_rms_norm_new")
static inline NnRMSNorm nn_rmsnorm_new(NnParams *ps, const char *name, int64_t dim, double eps) {
    return nn_rms_norm_new(ps, name, dim, eps);
}
AG_DEPRECATED("nn_rms_norm") static inline Tensor *nn_rmsnorm(Ctx *c, const NnRMSNorm *l, Tensor *x) { return nn_rms_norm(c, l, x); }
AG_DEPRECATED("nn_group_norm_new")
static inline NnGroupNorm nn_groupnorm_new(NnParams *ps, const char *name, int groups, int64_t channels, double eps) {
    return nn_group_norm_new(ps, name, groups, channels, eps);
}
AG_DEPRECATED("nn_group_norm")
static inline Tensor *nn_groupnorm(Ctx *c, const NnGroupNorm *l, Tensor *x) { return nn_group_norm(c, l, x); }
AG_DEPRECATED("nn_batch_norm_new")
static inline NnBatchNorm nn_batchnorm_new(NnParams *ps, const char *name, int64_t channels, double eps, double momentum) {
    return nn_batch_norm_new(ps, name, channels, eps, momentum);
}
AG_DEPRECATED("nn_batch_norm")
static inline Tensor *nn_batchnorm(Ctx *c, const NnBatchNorm *l, Tensor *x) { return nn_batch_norm(c, l, x); }
AG_DEPRECATED("nn_seq_batch_norm") static inline int nn_seq_batchnorm(NnSequential *s, int64_t channels) {
    return nn_seq_batch_norm(s, channels);
}

#ifdef __cplusplus
}
#endif

#endif
