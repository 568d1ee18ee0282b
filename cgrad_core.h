// cgrad_core.h: the framework alone: tensors and contexts, autograd ops, layers and parameter sets
// (nn), optimizers, schedules and clipping (optim), data parallelism over MPI (optim/dist.h).
// Compile with `pkg-config --cflags --libs cgrad-core`: it needs BLAS and OpenMP, no image, JSON
// or compression library. To write an op of your own, include autograd/extend.h as well.
//
// A short guide (each header says more, ops in docs/ops.md, the programmer's guide docs/library.md):
//
//   Memory. A context (Ctx, base/context.h) owns every tensor made in it and frees them all at once
//   with ctx_reset: keep parameters in one context and each step's tensors in another. Reset
//   keeps the memory, so a training loop allocates nothing from the system after its first step.
//
//   Tensors (tensor/tensor.h). float32, float64, int64 or uint8, up to 8 dimensions, with strides;
//   views share storage. SHAPE(2, 3) spells a shape. tensor_get/tensor_set are for tests and tools.
//
//   Ops (autograd/autograd.h). ag_add, ag_matmul, ag_linear, ag_conv2d, ag_layer_norm,
//   ag_attention, ag_cross_entropy_with, ... compute at once and record what their backward needs
//   when an input requires a gradient (ag_set_requires_grad). ag_backward(c, loss) fills each
//   leaf's ->grad (accumulating, as PyTorch: ag_zero_grad between steps). AG_NO_GRAD(c) { ... }
//   records nothing. A failing op returns NULL and leaves one message (ctx_error) naming the op
//   and the shapes; NULL passes through the ops after it, so one check at the end is enough.
//
//   Layers (nn/nn.h). A parameter set (NnParams) names every tensor as PyTorch's state_dict does;
//   constructors nn_linear_new(&set, "fc1", in, out, true), forwards nn_linear(c, &fc1, x). The
//   set owns train/eval mode and the dropout generator, saves and loads safetensors, and can give
//   its Linear weights int8 copies for inference (nn_params_quantize).
//
//   Training (optim/optim.h). optim_adamw over parameter groups, optim_step, optim_zero_grad,
//   schedules with warm-up, optim_clip; dist_init and dist_allreduce_grads for MPI.
//
//     Ctx *pc = ctx_new(1 << 20), *c = ctx_new(1 << 24);
//     NnParams ps;
//     nn_params_init(&ps, pc, 42);
//     NnLinear fc = nn_linear_new(&ps, "fc", 784, 10, true);
//     OptimGroup g = optim_group_all(&ps, 0.0);
//     Optim *o = optim_adamw(&g, 1, 0.9, 0.999, 1e-8);
//     for (;;) {                                   // each step
//         ctx_reset(c);
//         Tensor *loss = ag_cross_entropy(c, nn_linear(c, &fc, x), y);
//         if (!loss || ag_backward(c, loss) != 0) { fprintf(stderr, "%s\n", ctx_error(c)); break; }
//         optim_step(o, 1e-3);
//         optim_zero_grad(o);
//     }
#ifndef CGRAD_CORE_H
#define CGRAD_CORE_H
#include "autograd/autograd.h"
#include "formats/weights.h"
#include "nn/nn.h"
#include "optim/dist.h"
#include "optim/optim.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"

#endif
