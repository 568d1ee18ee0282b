// kernels.h: the compute kernels, llm.c style: plain functions on contiguous arrays, outputs
// first, then inputs, then sizes. Each forward has its backward beside it; backward kernels
// accumulate (+=) into the gradients they are given and skip the ones passed as NULL.
// Every kernel exists for float (suffix _f32) and double (_f64); kernels_decl.inc lists them.
#ifndef CGRAD_KERNELS_H
#define CGRAD_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

// Sets OpenBLAS to one thread, once: cgrad parallelises with OpenMP around it.
void kernels_blas_init(void);

typedef enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV } BinaryOp;
typedef enum { UN_NEG, UN_EXP, UN_LOG, UN_SQRT, UN_TANH, UN_GELU, UN_RELU, UN_SCALE, UN_ADD_SCALAR } UnaryOp;

// Strided broadcast iteration: `shape` is the output's (nd dims); sa/sb are the element strides
// of a and b against that shape (0 on broadcast dimensions). Gradient buffers use the strides
// sga/sgb (contiguous strides of a/b placed on the output shape, 0 where broadcast).
#define real float
#define K(name) name##_f32
#include "kernels_decl.inc"
#undef real
#undef K
#define real double
#define K(name) name##_f64
#include "kernels_decl.inc"
#undef real
#undef K

#endif
