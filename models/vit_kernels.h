// vit_kernels.h: the kernels behind the ViT's fused ops (vit_ops.c), for float (_f32) and double
// (_f64); private to models/, not installed.
#ifndef CGRAD_VIT_KERNELS_H
#define CGRAD_VIT_KERNELS_H

#include "../tensor/kernels.h"

#define EACH_REAL_INC "../models/vit_kernels_decl.inc"
#include "../tensor/each_real.inc"
#undef EACH_REAL_INC

#endif
