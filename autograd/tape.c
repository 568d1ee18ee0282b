// tape.c: the engine. Ops are numbered as they are recorded (in any context), so an op's inputs
// always have lower numbers: backward collects the ops its loss reaches and runs them from the
// highest number down, a reverse topological order (micrograd's sort, nearly free in define-by-run).
#include "extend.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// recording order and backward passes, numbered across all contexts
static _Atomic uint64_t node_seq, pass_seq;

void ag_set_requires_grad(Tensor *t, bool on) {
    t->requires_grad = on;
    if (on && !t->grad) t->grad = tensor_zeros(t->ctx, t->dtype, t->ndim, t->shape);
}

// Gradients of intermediate tensors are dead once their node's backward has run (every consumer
// ran before it): their memory goes to a free list and serves the next gradient of that size,
// so a backward pass holds about one layer's gradients at a time.
typedef struct GradBlock {
    size_t bytes;
    void *data;
    struct GradBlock *next;
} GradBlock;

// a context's autograd state, behind its opaque pointer: the nodes and gradient blocks live in the
// context's arena, so after a ctx_reset (a new generation) they are dropped here when next seen
struct AgTape {
    AgNode *last; // the newest recorded op
    long n;       // ops on the tape
    bool no_grad; // scoped no-grad mode (kept across resets)
    GradBlock *grad_pool;
    uint32_t gen; // the context's generation the nodes and blocks belong to
};

static struct AgTape *tape_of(Ctx *c) {
    if (!c->tape && !(c->tape = calloc(1, sizeof *c->tape))) {
        fprintf(stderr, "cgrad: out of memory (the autograd tape's %zu bytes)\n", sizeof *c->tape);
        abort(); // as the arena's other small bookkeeping allocations
    }
    struct AgTape *t = c->tape;
    if (t->gen != c->gen) t->last = NULL, t->n = 0, t->grad_pool = NULL, t->gen = c->gen;
    return t;
}

bool ag_no_grad(Ctx *c, bool on) {
    struct AgTape *t = tape_of(c);
    bool prev = t->no_grad;
    t->no_grad = on;
    return prev;
}

bool ag_is_no_grad(Ctx *c) { return tape_of(c)->no_grad; }
long ag_tape_len(Ctx *c) { return tape_of(c)->n; }

// t's gradient buffer; *fresh tells whether it was just made (its contents then undefined: the
// caller writes it whole instead of accumulating), else it holds earlier contributions
static Tensor *grad_get(Tensor *t, bool zero, bool *fresh) {
    if (fresh) *fresh = false;
    if (!t || !t->requires_grad) return NULL;
    if (t->grad) return t->grad;
    Ctx *c = t->ctx;
    size_t bytes = (size_t)tensor_numel(t) * dtype_size(t->dtype);
    if (fresh) *fresh = true;
    for (GradBlock **b = &tape_of(c)->grad_pool; *b; b = &(*b)->next)
        if ((*b)->bytes == bytes) {
            GradBlock *blk = *b;
            *b = blk->next;
            if (zero) memset(blk->data, 0, bytes);
            t->grad = tensor_from_buffer(c, t->dtype, t->ndim, t->shape, blk->data);
            return t->grad;
        }
    t->grad = zero ? tensor_zeros(c, t->dtype, t->ndim, t->shape) : tensor_new(c, t->dtype, t->ndim, t->shape);
    return t->grad;
}

Tensor *ag_grad_buf(Tensor *t) { return grad_get(t, true, NULL); }
Tensor *ag_grad_fresh(Tensor *t, bool *fresh) { return grad_get(t, false, fresh); }

static void release_grad(Tensor *t) {
    Ctx *c = t->ctx;
    GradBlock *b = ctx_alloc(c, sizeof *b);
    b->bytes = (size_t)tensor_numel(t) * dtype_size(t->dtype);
    b->data = t->grad->data;
    struct AgTape *tp = tape_of(c);
    b->next = tp->grad_pool;
    tp->grad_pool = b;
    t->grad = NULL;
}

void ag_zero_grad(Tensor *const *ts, int n) {
    for (int i = 0; i < n; i++)
        if (ts[i] && ts[i]->grad) memset(ts[i]->grad->data, 0, (size_t)tensor_numel(ts[i]->grad) * dtype_size(ts[i]->dtype));
}

Tensor *ag_detach(Ctx *c, Tensor *t) {
    if (!t) return NULL;
    return tensor_view(c, t);
}

bool ag_arg(Ctx *c, const char *op, const char *name, const Tensor *t) {
    if (t && tensor_alive(t)) return true;
    if (!c->failed) {
        if (t)
            ctx_fail(c, "%s: argument %s belongs to a context that was reset after it was made (its memory is reused)", op, name);
        else
            ctx_fail(c, "%s: argument %s is NULL", op, name);
    }
    return false;
}

bool ag_check_float(Ctx *c, const char *op, Tensor *a, Tensor *b) {
    char s1[SHAPE_STR_BUF], s2[SHAPE_STR_BUF];
    if (!ag_arg(c, op, "input", a)) return false;
    Tensor *nf = !dtype_is_float(a->dtype) ? a : (b && !dtype_is_float(b->dtype)) ? b : NULL;
    if (nf) {
        ctx_fail(c, "%s: expected a float tensor, got %s %s", op, dtype_name(nf->dtype), shape_str(nf, s1, sizeof s1));
        return false;
    }
    if (b && b->dtype != a->dtype) {
        ctx_fail(c, "%s: dtypes differ: %s %s and %s %s", op, dtype_name(a->dtype), shape_str(a, s1, sizeof s1), dtype_name(b->dtype),
                 shape_str(b, s2, sizeof s2));
        return false;
    }
    return true;
}

bool ag_will_record(Ctx *c, int nin, Tensor *const *in) {
    if (tape_of(c)->no_grad) return false;
    bool need = false;
    for (int i = 0; i < nin; i++) need |= in[i] && in[i]->requires_grad;
    return need;
}

AgNode *ag_record(Ctx *c, const char *op, Tensor *out, int nin, Tensor *const *in, void (*bw)(AgNode *)) {
    if (!ag_will_record(c, nin, in)) return NULL; // no-grad mode, or frozen inputs: no node, no gradient work
    AgNode *n = ctx_alloc(c, sizeof *n);
    n->op = op;
    n->out = out;
    n->nin = nin;
    for (int i = 0; i < nin; i++) {
        n->in[i] = in[i];
        if (in[i]) n->in_ctx[i] = in[i]->ctx, n->in_gen[i] = in[i]->ctx ? in[i]->ctx->gen : 0, n->in_ver[i] = in[i]->version;
    }
    n->backward = bw;
    n->seq = atomic_fetch_add(&node_seq, 1) + 1;
    struct AgTape *t = tape_of(c);
    n->prev = t->last;
    t->last = n;
    t->n++;
    c->nrecorded++;
    out->requires_grad = true;
    out->node = n;
    return n;
}

// The nodes loss depends on, newest first (a reverse topological order: an op is recorded after
// the ops that made its inputs). NULL with a message when one was consumed or memory ran out.
typedef struct {
    AgNode **v;
    size_t n, cap;
} NodeList;

static bool list_push(NodeList *l, AgNode *n) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        AgNode **v = realloc(l->v, cap * sizeof *v);
        if (!v) return false;
        l->v = v, l->cap = cap;
    }
    l->v[l->n++] = n;
    return true;
}

static int newest_first(const void *a, const void *b) {
    uint64_t x = (*(AgNode *const *)a)->seq, y = (*(AgNode *const *)b)->seq;
    return x < y ? 1 : x > y ? -1 : 0;
}

static bool reached_nodes(Ctx *c, Tensor *loss, NodeList *out) {
    uint64_t pass = atomic_fetch_add(&pass_seq, 1) + 1;
    NodeList stack = {0};
    bool ok = list_push(&stack, loss->node);
    loss->node->visit = pass;
    while (ok && stack.n) {
        AgNode *n = stack.v[--stack.n];
        if (n->consumed) {
            ctx_fail(c,
                     "backward: the graph through '%s' was consumed by an earlier backward; run its forward again, "
                     "or use ag_backward_retain",
                     n->op);
            ok = false;
            break;
        }
        ok = list_push(out, n);
        for (int i = 0; ok && i < n->nin; i++) {
            if (n->in[i] && n->in_ctx[i] && n->in_ctx[i]->gen != n->in_gen[i]) { // checked before the input is read
                ctx_fail(c,
                         "backward: input %d of '%s' belongs to a context that was reset after the forward (its memory is "
                         "reused); reset contexts only after the backward",
                         i, n->op);
                ok = false;
                break;
            }
            if (n->in[i] && n->in[i]->version != n->in_ver[i]) {
                ctx_fail(c,
                         "backward: input %d of '%s' was written in place after the forward used it (version %u, now %u); "
                         "its gradient would be wrong",
                         i, n->op, n->in_ver[i], n->in[i]->version);
                ok = false;
                break;
            }
            AgNode *m = n->in[i] ? n->in[i]->node : NULL;
            if (m && m->visit != pass) {
                m->visit = pass;
                ok = list_push(&stack, m);
            }
        }
    }
    free(stack.v);
    if (!ok && !c->failed) ctx_fail(c, "backward: out of memory listing %zu ops", out->n);
    if (ok) qsort(out->v, out->n, sizeof *out->v, newest_first);
    return ok;
}

// drops the consumed nodes from c's tape, so that it lists what a later backward may still walk
static void prune_tape(Ctx *c) {
    AgNode **link = &tape_of(c)->last;
    long n = 0;
    while (*link) {
        if ((*link)->consumed)
            *link = (*link)->prev;
        else
            link = &(*link)->prev, n++;
    }
    tape_of(c)->n = n;
}

static int backward(Ctx *c, Tensor *loss, bool retain) {
    char s[SHAPE_STR_BUF];
    if (!loss) {
        if (!c->failed) ctx_fail(c, "backward: no loss (an earlier op failed)");
        return -1;
    }
    if (!tensor_alive(loss)) {
        ctx_fail(c, "backward: the loss belongs to a context that was reset after it was made");
        return -1;
    }
    if (tensor_numel(loss) != 1) {
        ctx_fail(c, "backward: loss must have one element, got %s", shape_str(loss, s, sizeof s));
        return -1;
    }
    if (!loss->requires_grad) {
        ctx_fail(c, "backward: the loss does not depend on anything that requires a gradient");
        return -1;
    }
    if (!loss->node) { // the loss is itself a leaf: d loss / d loss = 1
        tensor_fill(ag_grad_buf(loss), 1.0);
        return 0;
    }
    NodeList nodes = {0};
    if (!reached_nodes(c, loss, &nodes)) {
        free(nodes.v);
        return -1;
    }
    Tensor *g = ag_grad_buf(loss);
    tensor_fill(g, 1.0);
    for (size_t k = 0; k < nodes.n; k++) {
        AgNode *n = nodes.v[k];
        if (!retain) n->consumed = true;
        if (!n->out->grad) continue; // no gradient reached its output
        bool was_ok = ctx_ok(n->out->ctx);
        n->backward(n);
        if (was_ok && !ctx_ok(n->out->ctx)) { // a backward that could not be completed (out of memory) says so there
            if (n->out->ctx != c) ctx_fail(c, "%s", ctx_error(n->out->ctx));
            free(nodes.v);
            return -1;
        }
        if (n->out == loss) continue;
        // an intermediate gradient is final, now dead: recycled in this step's context, zeroed in
        // a longer-lived one (where a new buffer every step would grow it)
        if (n->out->ctx == c)
            release_grad(n->out);
        else
            memset(n->out->grad->data, 0, (size_t)tensor_numel(n->out) * dtype_size(n->out->dtype));
    }
    free(nodes.v);
    if (!retain) prune_tape(c);
    return 0;
}

int ag_backward(Ctx *c, Tensor *loss) { return backward(c, loss, false); }
int ag_backward_retain(Ctx *c, Tensor *loss) { return backward(c, loss, true); }
