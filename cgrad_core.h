// cgrad_core.h: the framework alone: tensors and contexts, autograd ops, layers and parameter sets
// (nn), optimizers, schedules and clipping (optim), data parallelism over MPI (optim/dist.h).
// Compile with `pkg-config --cflags --libs cgrad-core`: it needs BLAS and OpenMP, no image, JSON
// or compression library. To write an op of your own, include autograd/extend.h as well.
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
