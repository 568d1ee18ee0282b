// scratch.c: per-thread scratch buffers (scratch.h), freed when their thread ends.
#include "scratch.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct {
    void *p[SCRATCH_SLOTS];
    size_t cap[SCRATCH_SLOTS];
} Scratch;

static _Thread_local Scratch *mine;
static pthread_key_t key;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void release(void *v) {
    Scratch *s = v;
    for (int i = 0; i < SCRATCH_SLOTS; i++) free(s->p[i]);
    free(s);
}
static void key_make(void) { pthread_key_create(&key, release); }

void *scratch_get(int slot, size_t bytes) {
    if (slot < 0 || slot >= SCRATCH_SLOTS) return NULL;
    if (!mine) {
        pthread_once(&once, key_make);
        if (!(mine = calloc(1, sizeof *mine))) return NULL;
        pthread_setspecific(key, mine);
    }
    if (bytes > mine->cap[slot] || !mine->p[slot]) {
        size_t n = (bytes + 63) / 64 * 64;
        void *p = aligned_alloc(64, n ? n : 64);
        if (!p) return NULL;
        free(mine->p[slot]);
        mine->p[slot] = p, mine->cap[slot] = n;
    }
    return mine->p[slot];
}
