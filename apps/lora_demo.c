// lora_demo: the notebook's "Simplified LoRA Process" as a program.
// A small weight matrix W, an input x, the low-rank adapters A and B, W' = W + (alpha/r) A B,
// and the outputs before and after; then the same on a 192x192 "query" layer as in DeiT-Tiny.
#include "../autograd/autograd.h"
#include "../base/fileio.h"
#include "version.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void heading(const char *s) { printf("\n== %s ==\n", s); }

static void show(const char *name, const Tensor *t) {
    printf("%s: ", name);
    tensor_print(t);
}

static Tensor *randn(Ctx *c, Rng *r, int ndim, const int64_t *shape, double scale) {
    Tensor *t = tensor_new(c, DT_F32, ndim, shape);
    rng_fill_normal(r, t, 0.0, scale);
    return t;
}

static int usage(FILE *f, int code) {
    fprintf(f, "usage: lora_demo [--seed N]\n"
               "Walks through LoRA on small matrices: W' = W + (alpha / r) * A B.\n");
    return code;
}

static int run(int argc, char **argv) {
    uint64_t seed = 42;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(stdout, 0);
        if (!strcmp(argv[i], "--version")) {
            printf("lora_demo (cgrad) %s\ncommit: %s\n", DEIT_LORA_VERSION, DEIT_LORA_COMMIT);
            return 0;
        }
        if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            char *end;
            seed = strtoull(argv[++i], &end, 10);
            if (*end || argv[i][0] == '-' || !argv[i][0]) {
                fprintf(stderr, "lora_demo: --seed: '%s' is not a non-negative integer\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "lora_demo: unknown argument '%s'\n", argv[i]);
            return usage(stderr, 2);
        }
    }
    Ctx *c = ctx_new(1 << 20);
    Rng rng = rng_new(seed);

    heading("Seed configuration");
    printf("seed = %llu (cgrad's counter-based SplitMix64 generator; values differ from torch.manual_seed)\n", (unsigned long long)seed);

    heading("A base weight matrix W (out_features = 5, in_features = 6)");
    int64_t out_f = 5, in_f = 6;
    Tensor *W = randn(c, &rng, SHAPE(out_f, in_f), 1.0);
    show("W", W);

    heading("W maps an input x of size in_features to y = W x");
    Tensor *x = randn(c, &rng, SHAPE(in_f), 1.0);
    show("x", x);
    Tensor *y = ag_matmul(c, W, x);
    show("y", y);
    printf("x W^T gives the same vector:\n");
    show("x @ W.T", ag_matmul(c, x, ag_transpose(c, W, 0, 1)));

    heading("Full fine-tuning would update every entry of W (here: add 1 to each)");
    Tensor *W_update = tensor_ones(c, DT_F32, SHAPE(out_f, in_f));
    show("W_update", W_update);
    show("W_updated", ag_add(c, W, W_update));

    heading("LoRA hyperparameters");
    int rank = 2;
    double alpha = 1.0;
    printf("rank = %d, alpha = %.1f, so the update is scaled by alpha / rank = %.2f\n", rank, alpha, alpha / rank);

    heading("The low-rank adapters A (out x r) and B (r x in), scaled by 0.1");
    Tensor *A = ag_mul_scalar(c, randn(c, &rng, SHAPE(out_f, rank), 1.0), 0.1);
    Tensor *B = ag_mul_scalar(c, randn(c, &rng, SHAPE(rank, in_f), 1.0), 0.1);
    show("A", A);
    show("B", B);

    heading("W_delta = A B has the shape of W");
    Tensor *W_delta = ag_matmul(c, A, B);
    show("W_delta", W_delta);

    heading("W_lora = W + (alpha / rank) * W_delta");
    Tensor *W_lora = ag_add(c, W, ag_mul_scalar(c, W_delta, alpha / rank));
    show("W_lora", W_lora);

    heading("Outputs after (y_lora) and before (y_base) the update");
    show("y_lora", ag_matmul(c, W_lora, x));
    show("y_base", y);
    printf("Parameters: W has %lld; A and B together have %lld (%lld + %lld).\n", (long long)(out_f * in_f),
           (long long)(out_f * rank + rank * in_f), (long long)(out_f * rank), (long long)(rank * in_f));
    printf("For a matrix this small LoRA saves nothing; it pays off on large matrices:\n");

    heading("The same on a 192 x 192 \"query\" layer (DeiT-Tiny's size)");
    int64_t D = 192;
    int r4 = 4;
    double alpha8 = 8.0, bound = 1.0 / sqrt((double)D);
    Tensor *Wq = tensor_new(c, DT_F32, SHAPE(D, D));
    Tensor *bq = tensor_new(c, DT_F32, SHAPE(D));
    rng_fill_uniform(&rng, Wq, -bound, bound); // nn.Linear's default initialisation
    rng_fill_uniform(&rng, bq, -bound, bound);
    printf("W.shape = [%lld, %lld], b.shape = [%lld]\n", (long long)D, (long long)D, (long long)D);
    Tensor *xq = randn(c, &rng, SHAPE(1, D), 1.0);
    Tensor *y_base = ag_linear(c, xq, Wq, bq); // x W^T + b
    Tensor *Aq = ag_mul_scalar(c, randn(c, &rng, SHAPE(D, r4), 1.0), 0.01);
    Tensor *Bq = ag_mul_scalar(c, randn(c, &rng, SHAPE(r4, D), 1.0), 0.01);
    printf("rank = %d, alpha = %.0f; A.shape = [%lld, %d], B.shape = [%d, %lld]; (A B).shape == W.shape\n", r4, alpha8, (long long)D, r4,
           r4, (long long)D);
    Tensor *W_updated = ag_add(c, Wq, ag_mul_scalar(c, ag_matmul(c, Aq, Bq), alpha8 / r4));
    Tensor *y_lora = ag_linear(c, xq, W_updated, bq);
    if (!y_lora) {
        fprintf(stderr, "lora_demo: %s\n", ctx_error(c));
        ctx_free(c);
        return 1;
    }
    show("y_base", ag_narrow(c, ag_reshape(c, y_base, SHAPE(D)), 0, 0, 5));
    show("y_lora", ag_narrow(c, ag_reshape(c, y_lora, SHAPE(D)), 0, 0, 5));
    long long full = (long long)(D * D), lora = (long long)(D * r4 + r4 * D);
    printf("Parameters: W has %lld; A and B have %lld, %.2f%% of W: LoRA trains %lld fewer.\n", full, lora,
           100.0 * (double)lora / (double)full, full - lora);
    int rc = ctx_ok(c) ? 0 : 1;
    if (rc) fprintf(stderr, "lora_demo: %s\n", ctx_error(c));
    ctx_free(c);
    return rc;
}

int main(int argc, char **argv) {
    cgrad_wait_policy(argv); // OpenMP threads that sleep soon when they wait (tensor.h)
    return file_close_stdout("lora_demo", run(argc, argv));
}
