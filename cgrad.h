// cgrad.h: what a model writer uses: tensors and contexts, autograd ops, layers (nn), optimizers
// and schedules (optim), data parallelism over MPI (optim/dist.h), images and datasets (data).
// Compile with `pkg-config --cflags --libs cgrad`. The ViT, the checkpoint formats and the Trainer
// are under models/ and optim/trainer.h.
#ifndef CGRAD_H
#define CGRAD_H
#include "tensor/tensor.h"
#include "tensor/rng.h"
#include "tensor/kernels.h"
#include "autograd/autograd.h"
#include "nn/nn.h"
#include "optim/optim.h"
#include "optim/dist.h"
#include "data/dataset.h"

#endif
