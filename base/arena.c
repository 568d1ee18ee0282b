// arena.c: the memory context. Bump allocation in chunks; reset keeps the memory, and when a
// step needed several chunks they are replaced by one chunk of the total size, so that the
// next step (of the same shape) allocates nothing from the system.
#include "context.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 64

typedef struct ArenaChunk {
    struct ArenaChunk *next;
    size_t cap, used;
    unsigned char *mem;
} ArenaChunk;

// a chunk of CAP bytes, or NULL when the system has no memory for it
static ArenaChunk *chunk_try(Ctx *c, size_t cap) {
    if (cap > SIZE_MAX / 2) return NULL;
    ArenaChunk *ch = malloc(sizeof *ch);
    if (!ch) return NULL;
    ch->mem = aligned_alloc(ARENA_ALIGN, (cap + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN);
    if (!ch->mem) {
        free(ch);
        return NULL;
    }
    ch->cap = cap;
    ch->used = 0;
    ch->next = NULL;
    c->nsys_allocs++;
    return ch;
}

// the arena's small bookkeeping allocations (nodes, headers): out of memory there aborts
static ArenaChunk *chunk_new(Ctx *c, size_t cap) {
    ArenaChunk *ch = chunk_try(c, cap);
    if (!ch) {
        fprintf(stderr, "cgrad: out of memory (%zu bytes)\n", cap);
        abort();
    }
    return ch;
}

Ctx *ctx_new(size_t initial_bytes) {
    Ctx *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->chunk_min = initial_bytes < (1u << 16) ? (1u << 16) : initial_bytes;
    const char *pz = getenv("CGRAD_POISON");
    c->poison = pz && *pz == '1';
    c->chunks = chunk_try(c, c->chunk_min);
    if (!c->chunks) { // the size is a hint: start small, grow as used
        c->chunk_min = 1u << 16;
        c->chunks = chunk_try(c, c->chunk_min);
    }
    if (!c->chunks) {
        free(c);
        return NULL;
    }
    return c;
}

void ctx_free(Ctx *c) {
    if (!c) return;
    for (ArenaChunk *ch = c->chunks, *n; ch; ch = n) {
        n = ch->next;
        free(ch->mem);
        free(ch);
    }
    free(c->tape); // plain memory, whatever autograd keeps in it (its nodes live in the arena)
    free(c);
}

void ctx_reset(Ctx *c) {
    size_t total = 0;
    int n = 0;
    for (ArenaChunk *ch = c->chunks; ch; ch = ch->next) {
        total += ch->cap;
        n++;
    }
    if (n > 1) { // coalesce into one chunk big enough for everything the last step used
        for (ArenaChunk *ch = c->chunks, *nx; ch; ch = nx) {
            nx = ch->next;
            free(ch->mem);
            free(ch);
        }
        c->chunks = chunk_new(c, total);
    }
    c->chunks->used = 0;
    c->used_total = 0;
    c->gen++; // every tensor made before is dead now (autograd sees it and starts a new tape)
    c->failed = false;
    c->err[0] = 0;
}

void *ctx_alloc(Ctx *c, size_t bytes) {
    void *p = ctx_alloc_uninit(c, bytes);
    memset(p, 0, bytes);
    return p;
}

void *ctx_try_alloc(Ctx *c, size_t bytes, bool zero) {
    if (!c) return NULL;
    if (bytes > SIZE_MAX / 4) {
        ctx_fail(c, "out of memory: %zu bytes asked for", bytes);
        return NULL;
    }
    size_t need = (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (need == 0) need = ARENA_ALIGN;
    ArenaChunk *ch = c->chunks;
    if (ch->used + need > ch->cap) {
        size_t cap = c->chunk_min;
        if (cap < need) cap = need;
        if (cap < ch->cap * 2 && ch->cap * 2 >= need && ch->cap <= SIZE_MAX / 4) cap = ch->cap * 2;
        ArenaChunk *nc = chunk_try(c, cap);
        if (!nc && cap > need) nc = chunk_try(c, need); // no room to grow geometrically: just what is asked
        if (!nc) {
            ctx_fail(c, "out of memory: %zu bytes (the context holds %zu)", bytes, c->used_total);
            return NULL;
        }
        nc->next = ch;
        c->chunks = ch = nc;
    }
    void *p = ch->mem + ch->used;
    ch->used += need;
    c->used_total += need;
    if (c->used_total > c->peak) c->peak = c->used_total;
    if (zero)
        memset(p, 0, bytes);
    else if (c->poison)
        memset(p, 0xff, bytes);
    return p;
}

void *ctx_alloc_uninit(Ctx *c, size_t bytes) {
    if (!c) {
        fprintf(stderr, "cgrad: ctx_alloc without a context\n");
        abort();
    }
    void *p = ctx_try_alloc(c, bytes, false);
    if (!p) {
        fprintf(stderr, "cgrad: out of memory (%zu bytes)\n", bytes);
        abort();
    }
    return p;
}

bool ctx_ok(const Ctx *c) { return c && !c->failed; }
const char *ctx_error(const Ctx *c) { return c->failed ? c->err : ""; }
void ctx_clear_error(Ctx *c) {
    c->failed = false;
    c->err[0] = 0;
}

void ctx_fail(Ctx *c, const char *fmt, ...) {
    if (c->failed) return; // keep the first error: later ones are its consequences
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    c->failed = true;
}

// ---- marks: freeing what a stretch of work made, keeping its result ----

CtxMark ctx_mark(const Ctx *c) {
    return (CtxMark){.chunk = c->chunks, .used = c->chunks->used, .used_total = c->used_total, .nrecorded = c->nrecorded, .gen = c->gen};
}

bool ctx_after_mark(const Ctx *c, CtxMark m, const void *p) {
    const unsigned char *q = p;
    for (ArenaChunk *ch = c->chunks; ch; ch = ch->next) {
        if (ch == m.chunk) return q >= ch->mem + m.used && q < ch->mem + ch->cap;
        if (q >= ch->mem && q < ch->mem + ch->cap) return true;
    }
    return false;
}

int ctx_rewind(Ctx *c, CtxMark m) {
    if (!c || m.gen != c->gen) {
        if (c) ctx_fail(c, "ctx_release_keep: the mark is from before a ctx_reset");
        return -1;
    }
    if (c->nrecorded != m.nrecorded) {
        ctx_fail(c, "ctx_release_keep: ops were recorded since the mark (their backward needs what would be freed): use it under no-grad");
        return -1;
    }
    while (c->chunks != m.chunk) { // chunks made since the mark
        ArenaChunk *ch = c->chunks;
        c->chunks = ch->next;
        free(ch->mem);
        free(ch);
    }
    c->chunks->used = m.used;
    c->used_total = m.used_total;
    return 0;
}
