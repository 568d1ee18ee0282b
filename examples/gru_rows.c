// gru_rows.c: Fashion-MNIST images read as sequences of 28 rows by a GRU (Debian's
// dataset-fashion-mnist), written against the installed library.
//   cc gru_rows.c $(pkg-config --cflags --libs cgrad) -lm -o gru_rows
//   ./gru_rows [EPOCHS] [TRAIN_IMAGES] [DATA_DIR]      (3 epochs of all 60,000 by default)
// A GRU of one layer (28 inputs, 128 hidden, batch_first; nn.GRU's names: gru.weight_ih_l0, ...) over
// the 28 rows, its last state through linear 128 -> 10; Adam (lr 2e-3), batch 128. Prints the test
// accuracy over the 10,000 test images; exits 1 below the accuracy asked for (env MIN_ACC); env
// SAVE=PATH writes the parameters as safetensors (torch's load_state_dict of the same module takes
// them). BENCH_STEPS=N times N training steps on random images instead (bench/model_compare.sh).
#define _POSIX_C_SOURCE 200809L // clock_gettime under -std=c11
#include <cgrad.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define HIDDEN 128

typedef struct {
    NnParams ps;
    NnGRU gru;
    NnLinear fc;
} RowGru;

static void model_new(RowGru *m, Ctx *pc, uint64_t seed) {
    nn_params_init(&m->ps, pc, seed);
    m->gru = nn_gru_new(&m->ps, "gru", (NnRnnOptions){.input_size = 28, .hidden_size = HIDDEN, .batch_first = true});
    m->fc = nn_linear_new(&m->ps, "fc", HIDDEN, 10, true);
}

// x [B, 28 rows, 28 pixels] -> logits [B, 10], from the state after the last row
static Tensor *forward(Ctx *c, const RowGru *m, Tensor *x) {
    Tensor *h_n;
    if (!nn_gru(c, &m->gru, x, NULL, &h_n)) return NULL;
    return nn_linear(c, &m->fc, ag_reshape(c, h_n, 2, (int64_t[]){x->shape[0], HIDDEN}));
}

// images [i0, i0 + n) of the set as normalised rows [n, 28, 28] in c
static Tensor *batch(Ctx *c, const Dataset *d, const int64_t *order, int64_t i0, int n, Tensor **labels) {
    Tensor *x = tensor_new(c, DT_F32, 3, (int64_t[]){n, 28, 28});
    *labels = tensor_new(c, DT_I64, 1, (int64_t[]){n});
    float *px = x->data;
    for (int b = 0; b < n; b++) {
        int64_t i = order ? order[i0 + b] : i0 + b;
        for (int k = 0; k < 28 * 28; k++) px[b * 784 + k] = ((float)d->gray[i * 784 + k] / 255.0f - 0.2860f) / 0.3530f;
        ((int64_t *)(*labels)->data)[b] = d->labels[i];
    }
    return x;
}

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int train_step(Ctx *c, const RowGru *m, Optim *o, Tensor *x, Tensor *y, double *loss_out) {
    Tensor *loss = ag_cross_entropy(c, forward(c, m, x), y);
    if (!loss || ag_backward(c, loss) != 0) {
        fprintf(stderr, "gru_rows: %s\n", ctx_error(c));
        return 1;
    }
    *loss_out = tensor_get_flat(loss, 0);
    optim_step(o, 2e-3);
    optim_zero_grad(o);
    return 0;
}

// BENCH_STEPS=N: N timed training steps on random images (after 5 untimed), one JSON line
static int bench(Ctx *c, const RowGru *m, Optim *o, int steps) {
    Rng r = rng_new(1);
    double t = 0, loss;
    Ctx *dc = ctx_new(16u << 20); // the batch, made once (as the PyTorch side does)
    Tensor *x = tensor_new(dc, DT_F32, 3, (int64_t[]){128, 28, 28}), *y = tensor_zeros(dc, DT_I64, 1, (int64_t[]){128});
    rng_fill_normal(&r, x, 0, 1);
    for (int i = 0; i < 5 + steps; i++) {
        double t0 = seconds();
        ctx_reset(c);
        if (train_step(c, m, o, x, y, &loss) != 0) return 1;
        if (i >= 5) t += seconds() - t0;
    }
    ctx_free(dc);
    printf("{\"step_ms\": %.3f}\n", 1e3 * t / steps);
    return 0;
}

int main(int argc, char **argv) {
    cgrad_wait_policy(argv); // OpenMP threads that sleep soon when they wait (base/wait_policy.h)
    int epochs = argc > 1 ? atoi(argv[1]) : 3;
    int64_t ntrain = argc > 2 ? atoll(argv[2]) : 60000;
    const char *dir = argc > 3 ? argv[3] : "/usr/share/datasets/fashion-mnist";
    double min_acc = getenv("MIN_ACC") ? atof(getenv("MIN_ACC")) : 0.0;
    Ctx *pc = ctx_new(1 << 20), *c = ctx_new(128u << 20);
    RowGru m;
    model_new(&m, pc, 0);
    OptimGroup g = optim_group_all(&m.ps, 0.0);
    Optim *o = optim_adam(&g, 1, 0.9, 0.999, 1e-8);
    if (getenv("BENCH_STEPS")) return bench(c, &m, o, atoi(getenv("BENCH_STEPS")));
    char err[512];
    Dataset train, test;
    if (dataset_fashion_mnist(&train, dir, true, err, sizeof err) != 0 || dataset_fashion_mnist(&test, dir, false, err, sizeof err) != 0) {
        fprintf(stderr, "gru_rows: %s (apt-get install dataset-fashion-mnist)\n", err);
        return 2;
    }
    if (ntrain > train.n) ntrain = train.n;
    int64_t *order = malloc(sizeof *order * (size_t)ntrain);
    const int B = 128;
    double t0 = seconds();
    for (int e = 0; e < epochs; e++) {
        for (int64_t i = 0; i < ntrain; i++) order[i] = i;
        Rng sr = rng_new(100 + (uint64_t)e);
        rng_shuffle(&sr, order, (int)ntrain);
        double sum = 0, loss;
        int nb = 0;
        for (int64_t i0 = 0; i0 + B <= ntrain; i0 += B, nb++) {
            ctx_reset(c);
            Tensor *y, *x = batch(c, &train, order, i0, B, &y);
            if (train_step(c, &m, o, x, y, &loss) != 0) return 1;
            sum += loss;
        }
        printf("epoch %d: mean training loss %.4f\n", e + 1, sum / (nb ? nb : 1));
    }
    double secs = seconds() - t0;
    int64_t correct = 0;
    for (int64_t i0 = 0; i0 < test.n; i0 += 500) {
        ctx_reset(c);
        bool prev = ag_no_grad(c, true);
        int n = test.n - i0 < 500 ? (int)(test.n - i0) : 500;
        Tensor *y, *x = batch(c, &test, NULL, i0, n, &y);
        Tensor *logits = forward(c, &m, x);
        ag_no_grad(c, prev);
        for (int b = 0; logits && b < n; b++) {
            int best = 0;
            for (int k = 1; k < 10; k++)
                if (tensor_get_flat(logits, b * 10 + k) > tensor_get_flat(logits, b * 10 + best)) best = k;
            correct += best == ((int64_t *)y->data)[b];
        }
    }
    double acc = (double)correct / (double)test.n;
    printf("test accuracy %.2f%% after %d epochs on %lld images (training %.1f s)\n", 100 * acc, epochs, (long long)ntrain, secs);
    const char *save = getenv("SAVE");
    if (save && nn_params_save(&m.ps, save, false, err, sizeof err) != 0) {
        fprintf(stderr, "gru_rows: %s\n", err);
        acc = -1;
    }
    optim_free(o);
    optim_groups_free(&g, 1);
    nn_params_free(&m.ps);
    free(order);
    ctx_free(c), ctx_free(pc);
    dataset_free(&train), dataset_free(&test);
    return acc >= min_acc ? 0 : 1;
}
