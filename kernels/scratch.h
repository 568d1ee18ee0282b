// scratch.h: a thread's scratch memory for kernels. Buffers a kernel needs on every call (its
// im2col columns, a block's scores) come from here instead of malloc: grown as needed and kept for
// the thread's life, so a kernel run every step touches no fresh pages after the first (a large
// malloc is an mmap, and its pages are cleared by the kernel on each call). Internal, not installed.
#ifndef CGRAD_SCRATCH_H
#define CGRAD_SCRATCH_H

#include <stddef.h>

#define SCRATCH_SLOTS 3

// this thread's buffer `slot` (0 .. SCRATCH_SLOTS - 1) of at least `bytes`, 64-byte aligned, its
// contents undefined; valid until this thread asks for the same slot again. NULL when out of
// memory. A kernel holding a slot must not call another kernel that takes scratch memory (the
// products, sgemm and qgemm, keep buffers of their own).
void *scratch_get(int slot, size_t bytes);

#endif
