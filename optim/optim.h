// optim.h: optimizers with PyTorch's semantics, learning-rate schedules with Hugging Face's,
// gradient clipping, and HF's rule for which parameters decay.
#ifndef CGRAD_OPTIM_H
#define CGRAD_OPTIM_H

#include "../nn/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { OPTIM_ADAMW, OPTIM_SGD, OPTIM_ADAM } OptimKind;

typedef struct {
    Tensor **params;
    int n;
    double lr_scale; // this group's rate = lr_scale * the scheduled rate
    double weight_decay;
} OptimGroup;

typedef struct {
    OptimKind kind;
    double beta1, beta2, eps;   // Adam, AdamW (0.9, 0.999, 1e-8)
    double momentum, dampening; // SGD
    bool nesterov;
    OptimGroup *groups;
    int ngroups;
    Tensor **m, **v; // state, one per parameter (in order of the groups)
    int64_t t;       // steps taken
    Ctx *sc;         // the state's memory
} Optim;

// AdamW (torch.optim.AdamW): p -= lr * wd * p; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
// p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
// Copies the groups' parameter lists: the caller keeps (and frees) its groups.
Optim *optim_adamw(const OptimGroup *groups, int ngroups, double beta1, double beta2, double eps);
// Adam (torch.optim.Adam): weight decay as L2 in the gradient (g += wd p), then as AdamW without
// the decoupled decay. With weight decay 0 the two are the same.
Optim *optim_adam(const OptimGroup *groups, int ngroups, double beta1, double beta2, double eps);
// SGD (torch.optim.SGD): g += wd p; b = momentum b + (1 - dampening) g (b = g at the first
// step); g = nesterov ? g + momentum b : b; p -= lr g.
Optim *optim_sgd(const OptimGroup *groups, int ngroups, double momentum, double dampening, bool nesterov);
void optim_step(Optim *o, double lr);
void optim_zero_grad(Optim *o);
void optim_free(Optim *o);
int optim_nparams(const Optim *o);
Tensor *optim_param(const Optim *o, int i); // i-th parameter over all groups

// Scales all gradients by max_norm / (norm + 1e-6) when the total L2 norm is above max_norm
// (torch.nn.utils.clip_grad_norm_); returns the norm before clipping.
double optim_clip_grad_norm(Tensor *const *params, int n, double max_norm);
// The same over every parameter an optimizer steps (all its groups)
double optim_clip(Optim *o, double max_norm);
// One group of every trainable parameter of a set, with weight decay wd (PyTorch's
// optimizer(model.parameters())); its array is freed with optim_groups_free(&g, 1).
OptimGroup optim_group_all(const NnParams *ps, double wd);
// HF's decay rule: no decay for biases and normalisation weights (names with "bias",
// "layernorm", "rmsnorm" or a "norm" component).
bool optim_decays(const char *name);
// Two groups from the trainable parameters of a registry: decaying (wd) and not (0). Returns the
// number of groups (2), to pass to optim_adamw / optim_sgd with out (which copy what they need);
// the groups' arrays are then freed with optim_groups_free(out, 2). Either group may be empty.
int optim_hf_groups(const NnParams *ps, double wd, OptimGroup out[2]);
void optim_groups_free(OptimGroup *groups, int n);

typedef enum { SCHED_LINEAR, SCHED_COSINE, SCHED_CONSTANT } SchedKind;
typedef struct {
    SchedKind kind;
    int64_t total, warmup;
} Schedule;
// The factor for 0-based step t: warm-up t / warmup, then linear (total - t) / (total - warmup),
// cosine 0.5 (1 + cos(pi (t - warmup) / (total - warmup))), or constant 1.
double schedule_factor(const Schedule *s, int64_t t);
int64_t schedule_warmup_steps(int64_t total, int64_t warmup_steps, double warmup_ratio); // HF: steps, else ceil(ratio * total)
const char *schedule_name(SchedKind k);
int schedule_parse(const char *s, SchedKind *k);

#ifdef __cplusplus
}
#endif

#endif
