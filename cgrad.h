// cgrad.h: the whole public API. Compile with `pkg-config --cflags --libs cgrad`.
#ifndef CGRAD_H
#define CGRAD_H
#include "tensor/tensor.h"
#include "tensor/rng.h"
#include "tensor/kernels.h"
#include "autograd/autograd.h"
#endif
