// vit_kernels.h: the kernels behind the ViT's fused ops (vit_ops.c), for float (_f32) and double
// (_f64); private to models/, not installed.
#ifndef CGRAD_VIT_KERNELS_H
#define CGRAD_VIT_KERNELS_H

#include "../tensor/kernels.h"

#define real float
#define K(name) name##_f32
#include "vit_kernels_decl.inc"
#undef real
#undef K
#define real double
#define K(name) name##_f64
#include "vit_kernels_decl.inc"
#undef real
#undef K

#endif
