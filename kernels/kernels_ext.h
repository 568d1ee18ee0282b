// kernels_ext.h: kernel machinery for kernels written outside tensor/ (a model's fused ones): a
// product with op(B) packed once for several calls, and a linear layer into a buffer with an
// optional residual. Internal to the library, not installed.
#ifndef CGRAD_KERNELS_EXT_H
#define CGRAD_KERNELS_EXT_H

#include "kernels.h"

#define PAR_MIN 32768 // below this many elements a kernel stays on one thread

#define EACH_REAL_INC "kernels_ext_decl.inc"
#include "each_real.inc"
#undef EACH_REAL_INC

#endif
