// context.h: the memory context (an arena) that owns tensors and everything an op makes, and the
// library's errors as values. The bottom floor: it knows nothing of tensors or autograd.
#ifndef CGRAD_CONTEXT_H
#define CGRAD_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct Ctx Ctx;

// ---- context: owns every tensor made in it; reset frees them all at once (ggml's context) ----
// A context is an arena of chunks. ctx_reset() keeps the memory: after the first step has
// grown it, later steps allocate nothing from the system. Errors are values: an op that fails
// returns NULL and leaves a message here (the first failure wins until ctx_clear_error).
struct Ctx {
    struct ArenaChunk *chunks; // newest first
    size_t used_total, peak, chunk_min;
    int nsys_allocs;     // chunks allocated from the system (for tests)
    struct AgTape *tape; // autograd's state for this context (opaque: autograd/tape.c; freed with it)
    uint64_t nrecorded;  // ops recorded in it so far (autograd counts them; a mark remembers the count)
    bool failed;
    bool poison;  // CGRAD_POISON=1: uninitialised memory is filled with 0xff (NaN)
    uint32_t gen; // bumped by every ctx_reset: its tensors from before are dead
    char err[512];
};

Ctx *ctx_new(size_t initial_bytes); // a hint: a context starts smaller when the system has less; NULL out of memory
void ctx_free(Ctx *c);
void ctx_reset(Ctx *c); // drop all tensors and the tape; keep memory
// A point in a context's allocations, to give back what a stretch of work made (a layer's
// intermediates in inference) while keeping its result: ctx_release_keep(c, mark, y) frees
// everything made in c since the mark and returns y, moved to where the mark was (contiguous) when
// it was made after it. Every other tensor made since the mark is gone: using it is a bug (its
// memory is handed out again). Refused (NULL, with a message) when ops were recorded on the tape
// since the mark (their backward needs what would be freed: use it under no-grad) or the
// context was reset in between. For a stack of layers, mark once before it and release to that
// mark after each layer: each layer's input (the last one kept) goes with its intermediates.
// (ctx_release_keep is in tensor/tensor.h.)
//     CtxMark m = ctx_mark(c);
//     for (int i = 0; i < L; i++) h = ctx_release_keep(c, m, layer(c, i, h));
typedef struct {
    struct ArenaChunk *chunk;
    size_t used, used_total;
    uint64_t nrecorded;
    uint32_t gen;
} CtxMark;
CtxMark ctx_mark(const Ctx *c);
// the machinery of ctx_release_keep: whether p lies in memory handed out after the mark; every
// chunk and byte handed out since the mark given back (-1, with the message, when the mark is from
// before a reset or ops were recorded since)
bool ctx_after_mark(const Ctx *c, CtxMark m, const void *p);
int ctx_rewind(Ctx *c, CtxMark m);
void *ctx_alloc(Ctx *c, size_t bytes);        // 64-byte aligned, zero-filled; NULL ctx: abort
void *ctx_alloc_uninit(Ctx *c, size_t bytes); // not zeroed (filled with NaN bytes when CGRAD_POISON=1)
// what tensors' data comes from: NULL with the context's error set ("out of memory: N bytes") when
// the system cannot give it, instead of aborting (ctx_alloc aborts: it is for small bookkeeping)
void *ctx_try_alloc(Ctx *c, size_t bytes, bool zero);
bool ctx_ok(const Ctx *c);
const char *ctx_error(const Ctx *c);
void ctx_clear_error(Ctx *c);
void ctx_fail(Ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif

#endif
