// scratch.h: a thread's scratch memory for kernels. Buffers a kernel needs on every call (its
// im2col columns, a block's scores) come from here instead of malloc: grown as needed and kept for
// the thread's life, so a kernel run every step touches no fresh pages after the first (a large
// malloc is an mmap, and its pages are cleared by the kernel on each call). Internal, not installed.
#ifndef CGRAD_SCRATCH_H
#define CGRAD_SCRATCH_H

#include <stddef.h>

// slots 0..2 are the kernels'; the products have their own, so that a kernel holding a slot may
// call them: SCRATCH_SGEMM + 0..2 (packing), SCRATCH_QGEMM (quantized input rows), SCRATCH_BGEMM + 0..1
// (bfloat16 rows and packing)
#define SCRATCH_SGEMM 3
#define SCRATCH_QGEMM 6
#define SCRATCH_BGEMM 7
#define SCRATCH_SLOTS 9

// this thread's buffer `slot` (0 .. SCRATCH_SLOTS - 1) of at least `bytes`, 64-byte aligned, its
// contents undefined; valid until this thread asks for the same slot again. NULL when out of
// memory. A kernel holding slot 0..2 must not call another kernel that takes those.
void *scratch_get(int slot, size_t bytes);

#endif
