// char_gpt.c: a tiny causal GPT, character by character, on a plain-text file Debian ships (the
// GPL, /usr/share/common-licenses/GPL-3, in base-files), written against the installed library.
//   cc char_gpt.c $(pkg-config --cflags --libs cgrad-core) -lm -o char_gpt
//   ./char_gpt [STEPS] [TEXT_FILE]           (500 steps by default)
// GPT-2's block (pre-LayerNorm, causal self-attention, GELU MLP, residuals) from nn.h's layers
// (Embedding, LayerNorm, causal MultiheadAttention, Linear) with GPT-2's initialisation, 4 layers,
// width 128, 4 heads, context 64, token embedding tied to the output layer; AdamW (lr 3e-3, weight decay
// 0.1 on matrices), linear decay after 50 warm-up steps, clipping at 1.0, batches of 32 windows.
// Prints the training loss (nats per character, over the last 50 steps) and the loss on the text's
// last 10% (held out), then samples 300 characters. Exits 1 when the training loss is above the
// one asked for (env MAX_LOSS).
#define _POSIX_C_SOURCE 200809L // clock_gettime under -std=c11
#include <cgrad_core.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { L = 4, D = 128, NH = 4, T = 64, B = 32 };

typedef struct {
    NnLayerNorm ln1, ln2;
    NnMultiheadAttention attn; // causal
    NnLinear fc1, fc2;
} Block;

typedef struct {
    int V;
    NnParams ps;     // tok.weight, pos, blocks.N.norm1.weight, blocks.N.attn.in_proj_weight, ..., norm.bias
    NnEmbedding tok; // [V, D], also the output layer (tied)
    Tensor *pos;     // [T, D]
    Block blk[L];
    NnLayerNorm lnf;
} Gpt;

// GPT-2's initialisation instead of PyTorch's defaults: matrices N(0, 0.02), the residual
// projections N(0, 0.02 / sqrt(2 L)), biases 0 (norms keep ones and zeros)
static void gpt2_init(Tensor *t, Rng *r, double std) {
    if (std > 0)
        rng_fill_normal(r, t, 0.0, std);
    else
        tensor_fill(t, 0.0);
}

static void gpt_init(Gpt *g, Ctx *pc, int V, uint64_t seed) {
    memset(g, 0, sizeof *g);
    g->V = V;
    nn_params_init(&g->ps, pc, seed);
    NnParams *ps = &g->ps;
    g->tok = nn_embedding_new(ps, "tok", V, D);
    g->pos = tensor_zeros(pc, DT_F32, 2, (int64_t[]){T, D});
    nn_params_add(ps, "pos", g->pos);
    ag_set_requires_grad(g->pos, true);
    double proj_std = 0.02 / sqrt(2.0 * L);
    Rng *r = ps->rng;
    gpt2_init(g->tok.weight, r, 0.02), gpt2_init(g->pos, r, 0.02);
    for (int l = 0; l < L; l++) {
        Block *b = &g->blk[l];
        char n[64];
#define NAME(part) (snprintf(n, sizeof n, "blocks.%d.%s", l, part), n)
        b->ln1 = nn_layer_norm_new(ps, NAME("norm1"), D, 1e-5);
        b->attn = nn_mha_new(ps, NAME("attn"), D, NH, true);
        b->ln2 = nn_layer_norm_new(ps, NAME("norm2"), D, 1e-5);
        b->fc1 = nn_linear_new(ps, NAME("fc1"), D, 4 * D, true);
        b->fc2 = nn_linear_new(ps, NAME("fc2"), 4 * D, D, true);
#undef NAME
        gpt2_init(b->attn.in_proj_weight, r, 0.02), gpt2_init(b->attn.out_proj.weight, r, proj_std);
        gpt2_init(b->fc1.weight, r, 0.02), gpt2_init(b->fc1.bias, r, 0), gpt2_init(b->fc2.weight, r, proj_std),
            gpt2_init(b->fc2.bias, r, 0);
    }
    g->lnf = nn_layer_norm_new(ps, "norm", D, 1e-5);
}

// logits [n, t, V] for token ids idx [n, t] (t <= T)
static Tensor *gpt_forward(Ctx *c, const Gpt *g, Tensor *idx) {
    int64_t n = idx->shape[0], t = idx->shape[1];
    Tensor *x = ag_add(c, nn_embedding(c, &g->tok, idx), ag_narrow(c, g->pos, 0, 0, t));
    for (int l = 0; l < L; l++) {
        const Block *b = &g->blk[l];
        x = ag_add(c, x, nn_mha(c, &b->attn, nn_layer_norm(c, &b->ln1, x), NULL));
        Tensor *h = ag_gelu_tanh(c, nn_linear(c, &b->fc1, nn_layer_norm(c, &b->ln2, x)));
        x = ag_add(c, x, nn_linear(c, &b->fc2, h));
    }
    x = nn_layer_norm(c, &g->lnf, x);
    return ag_reshape(c, ag_linear(c, x, g->tok.weight, NULL), 3, (int64_t[]){n, t, g->V});
}

// the mean cross-entropy of next-character prediction over windows starting at starts[0..n)
static Tensor *gpt_loss(Ctx *c, const Gpt *g, const int64_t *text, const int64_t *starts, int n) {
    Tensor *x = tensor_new(c, DT_I64, 2, (int64_t[]){n, T}), *y = tensor_new(c, DT_I64, 1, (int64_t[]){n * T});
    for (int i = 0; i < n; i++)
        for (int j = 0; j < T; j++) {
            ((int64_t *)x->data)[i * T + j] = text[starts[i] + j];
            ((int64_t *)y->data)[i * T + j] = text[starts[i] + j + 1];
        }
    Tensor *logits = gpt_forward(c, g, x);
    return ag_cross_entropy(c, ag_reshape(c, logits, 2, (int64_t[]){n * T, g->V}), y);
}

// `len` characters after the prompt, each drawn from softmax(logits / temperature)
static void sample(Ctx *c, const Gpt *g, const char *alphabet, const int *id_of, const char *prompt, int len, double temp, Rng *r) {
    int64_t ctx_ids[T];
    int n = 0;
    for (const char *p = prompt; *p; p++) {
        int id = id_of[(unsigned char)*p];
        if (id < 0) continue;
        if (n == T) memmove(ctx_ids, ctx_ids + 1, sizeof *ctx_ids * (T - 1)), n--;
        ctx_ids[n++] = id;
        putchar(*p);
    }
    for (int k = 0; k < len; k++) {
        ctx_reset(c);
        Tensor *idx = tensor_from_buffer(c, DT_I64, 2, (int64_t[]){1, n}, ctx_ids);
        Tensor *logits = gpt_forward(c, g, idx);
        double p[256], sum = 0, mx = -INFINITY;
        for (int v = 0; v < g->V; v++) mx = fmax(mx, tensor_get_flat(logits, (int64_t)(n - 1) * g->V + v) / temp);
        for (int v = 0; v < g->V; v++) sum += p[v] = exp(tensor_get_flat(logits, (int64_t)(n - 1) * g->V + v) / temp - mx);
        double u = rng_uniform(r) * sum;
        int v = 0;
        while (v < g->V - 1 && (u -= p[v]) > 0) v++;
        putchar(alphabet[v]);
        if (n == T) memmove(ctx_ids, ctx_ids + 1, sizeof *ctx_ids * (T - 1)), n--;
        ctx_ids[n++] = v;
    }
    putchar('\n');
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    cgrad_wait_policy(argv); // OpenMP threads that sleep soon when they wait (base/wait_policy.h)
    int steps = argc > 1 ? atoi(argv[1]) : 500;
    const char *path = argc > 2 ? argv[2] : "/usr/share/common-licenses/GPL-3";
    double max_loss = getenv("MAX_LOSS") ? atof(getenv("MAX_LOSS")) : INFINITY;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "char_gpt: cannot open %s\n", path);
        return 2;
    }
    char *raw = malloc(1 << 24);
    size_t len = fread(raw, 1, 1 << 24, f);
    fclose(f);
    if (len < 10 * (T + 1)) {
        fprintf(stderr, "char_gpt: %s is too short (%zu bytes)\n", path, len);
        return 2;
    }
    // the alphabet: the bytes the text uses
    int id_of[256], V = 0;
    char alphabet[256];
    for (int i = 0; i < 256; i++) id_of[i] = -1;
    for (size_t i = 0; i < len; i++)
        if (id_of[(unsigned char)raw[i]] < 0) alphabet[V] = raw[i], id_of[(unsigned char)raw[i]] = V++;
    int64_t *text = malloc(sizeof *text * len);
    for (size_t i = 0; i < len; i++) text[i] = id_of[(unsigned char)raw[i]];
    int64_t ntrain = (int64_t)len * 9 / 10; // the last 10% held out
    Ctx *pc = ctx_new(1 << 22), *c = ctx_new(64u << 20);
    Gpt g;
    gpt_init(&g, pc, V, 1337);
    OptimGroup groups[2]; // weight decay on the matrices; none on biases, norms, and here the positions
    int ng = optim_hf_groups(&g.ps, 0.1, groups);
    for (int i = 0; i < groups[0].n; i++)
        if (groups[0].params[i] == g.pos) { // from the decaying group to the other
            groups[0].params[i] = groups[0].params[--groups[0].n];
            groups[1].params[groups[1].n++] = g.pos;
            break;
        }
    Optim *o = optim_adamw(groups, ng, 0.9, 0.95, 1e-8);
    optim_groups_free(groups, ng);
    printf("char_gpt: %s, %zu characters (%d distinct), %lld parameters in %d tensors\n", path, len, V,
           (long long)nn_params_count(&g.ps, false), g.ps.n);
    Rng r = rng_new(7);
    int64_t starts[B];
    double recent = 0, t0 = now();
    int nrecent = 0;
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < B; i++) starts[i] = (int64_t)rng_below(&r, (uint64_t)(ntrain - T - 1));
        ctx_reset(c);
        Tensor *loss = gpt_loss(c, &g, text, starts, B);
        if (!loss || ag_backward(c, loss) != 0) {
            fprintf(stderr, "char_gpt: %s\n", ctx_error(c));
            return 1;
        }
        optim_clip(o, 1.0);
        double lr = 3e-3 * (s < 50 ? (s + 1) / 50.0 : 1.0 - (double)(s - 50) / (steps - 50 > 0 ? steps - 50 : 1));
        optim_step(o, lr);
        optim_zero_grad(o);
        double l = tensor_get_flat(loss, 0);
        if (s >= steps - 50) recent += l, nrecent++;
        if (s % 200 == 0 || s == steps - 1) printf("step %4d  loss %.3f  (%.0f s)\n", s, l, now() - t0);
        fflush(stdout);
    }
    double train_loss = recent / (nrecent ? nrecent : 1), secs = now() - t0;
    // held out: consecutive windows over the last 10%
    ag_no_grad(c, true);
    double held = 0;
    int nh = 0;
    for (int64_t s0 = ntrain; s0 + B * T + 1 < (int64_t)len || nh == 0; s0 += B * T) {
        int n = 0;
        for (; n < B && s0 + (int64_t)(n + 1) * T + 1 <= (int64_t)len; n++) starts[n] = s0 + (int64_t)n * T;
        if (n == 0) break;
        ctx_reset(c);
        held += tensor_get_flat(gpt_loss(c, &g, text, starts, n), 0) * n, nh += n;
    }
    printf("training loss %.3f nats/char (mean of the last 50 steps), held-out loss %.3f, %d steps in %.0f s\n", train_loss,
           held / (nh ? nh : 1), steps, secs);
    printf("sample:\n");
    sample(c, &g, alphabet, id_of, "The GNU General Public License ", 300, 0.8, &r);
    optim_free(o);
    nn_params_free(&g.ps);
    ctx_free(c), ctx_free(pc);
    free(text), free(raw);
    return train_loss <= max_loss ? 0 : 1;
}
