// cnn_fashion.c: a small CNN on Fashion-MNIST (Debian's dataset-fashion-mnist), written against the
// installed library.   cc cnn_fashion.c $(pkg-config --cflags --libs cgrad) -lm -o cnn_fashion
//   ./cnn_fashion [EPOCHS] [TRAIN_IMAGES] [DATA_DIR]      (3 epochs of all 60,000 by default)
// conv 3x3 (1 -> 32) ReLU, max-pool 2 -> conv 3x3 (32 -> 64) ReLU, max-pool 2 -> linear 3136 -> 128
// ReLU -> linear 128 -> 10; Adam (lr 1e-3), batch 64; layers from nn.h's constructors (PyTorch's
// default initialisation, PyTorch's names). Prints the test accuracy over the 10,000 test images;
// exits 1 below the accuracy asked for (env MIN_ACC); env SAVE=PATH writes the trained parameters
// as safetensors (loadable by torch's load_state_dict of the same nn.Module).
// Data-parallel under MPI (mpirun -np N ./cnn_fashion, N dividing 64): each rank takes 64 / N images
// of every batch, the gradients are averaged (optim/dist.h), and every rank takes the same step.
#define _POSIX_C_SOURCE 200809L // clock_gettime under -std=c11
#include <cgrad.h>

#include <math.h>
#include <stdlib.h>
#include <time.h>

typedef struct {
    NnParams ps; // the parameters by name: conv1.weight, conv1.bias, ..., fc2.bias
    NnConv2d conv1, conv2;
    NnLinear fc1, fc2;
} Cnn;

static void cnn_new(Cnn *m, Ctx *pc, uint64_t seed) {
    nn_params_init(&m->ps, pc, seed);
    //                                    name    in  out kernel stride padding dilation groups bias
    m->conv1 = nn_conv2d_new(&m->ps, "conv1", 1, 32, 3, 1, 1, 1, 1, true);
    m->conv2 = nn_conv2d_new(&m->ps, "conv2", 32, 64, 3, 1, 1, 1, 1, true);
    m->fc1 = nn_linear_new(&m->ps, "fc1", 64 * 7 * 7, 128, true);
    m->fc2 = nn_linear_new(&m->ps, "fc2", 128, 10, true);
}

static Tensor *forward(Ctx *c, const Cnn *m, Tensor *x) {
    const int k2[2] = {2, 2};
    Tensor *h = ag_max_pool2d(c, ag_relu(c, nn_conv2d(c, &m->conv1, x)), k2, NULL, NULL); // [B, 32, 14, 14]
    h = ag_max_pool2d(c, ag_relu(c, nn_conv2d(c, &m->conv2, h)), k2, NULL, NULL);         // [B, 64, 7, 7]
    h = ag_reshape(c, h, 2, (int64_t[]){x->shape[0], 64 * 7 * 7});
    return nn_linear(c, &m->fc2, ag_relu(c, nn_linear(c, &m->fc1, h)));
}

// images [i0, i0 + n) of the set as normalised pixels [n, 1, 28, 28] in c
static Tensor *batch(Ctx *c, const Dataset *d, const int64_t *order, int64_t i0, int n, Tensor **labels) {
    Tensor *x = tensor_new(c, DT_F32, 4, (int64_t[]){n, 1, 28, 28});
    *labels = tensor_new(c, DT_I64, 1, (int64_t[]){n});
    float *px = x->data;
    for (int b = 0; b < n; b++) {
        int64_t i = order ? order[i0 + b] : i0 + b;
        for (int k = 0; k < 28 * 28; k++) px[b * 784 + k] = ((float)d->gray[i * 784 + k] / 255.0f - 0.2860f) / 0.3530f;
        ((int64_t *)(*labels)->data)[b] = d->labels[i];
    }
    return x;
}

static int run(int argc, char **argv, const Dist *d);

// BENCH_STEPS=N: N timed training steps on random images (after 5 untimed), one JSON line, for
// bench/model_compare.sh against the same CNN in PyTorch
static int bench(Ctx *c, const Cnn *m, Optim *o, int steps) {
    Rng r = rng_new(1);
    double t = 0;
    Ctx *dc = ctx_new(16u << 20); // the batch, made once (as the PyTorch side does)
    Tensor *x = tensor_new(dc, DT_F32, 4, (int64_t[]){64, 1, 28, 28}), *y = tensor_zeros(dc, DT_I64, 1, (int64_t[]){64});
    rng_fill_normal(&r, x, 0, 1);
    for (int i = 0; i < 5 + steps; i++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        ctx_reset(c);
        Tensor *loss = ag_cross_entropy(c, forward(c, m, x), y);
        if (!loss || ag_backward(c, loss) != 0) return 1;
        optim_step(o, 1e-3);
        optim_zero_grad(o);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (i >= 5) t += (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    }
    ctx_free(dc);
    printf("{\"step_ms\": %.3f}\n", 1e3 * t / steps);
    return 0;
}

int main(int argc, char **argv) {
    cgrad_wait_policy(argv); // OpenMP threads that sleep soon when they wait (base/wait_policy.h)
    Dist d;
    dist_init(&argc, &argv, &d);
    int rc = run(argc, argv, &d);
    dist_finalize(&d, rc);
    return rc;
}

static int run(int argc, char **argv, const Dist *d) {
    int epochs = argc > 1 ? atoi(argv[1]) : 3;
    int64_t ntrain = argc > 2 ? atoll(argv[2]) : 60000;
    const char *dir = argc > 3 ? argv[3] : "/usr/share/datasets/fashion-mnist";
    double min_acc = getenv("MIN_ACC") ? atof(getenv("MIN_ACC")) : 0.0;
    char err[512];
    Dataset train, test;
    if (dataset_fashion_mnist(&train, dir, true, err, sizeof err) != 0 || dataset_fashion_mnist(&test, dir, false, err, sizeof err) != 0) {
        fprintf(stderr, "cnn_fashion: %s (apt-get install dataset-fashion-mnist)\n", err);
        return 2;
    }
    if (ntrain > train.n) ntrain = train.n;
    Ctx *pc = ctx_new(1 << 20), *c = ctx_new(64u << 20);
    Cnn m;
    cnn_new(&m, pc, 0);
    OptimGroup g = optim_group_all(&m.ps, 0.0); // every trainable parameter, no weight decay
    Optim *o = optim_adam(&g, 1, 0.9, 0.999, 1e-8);
    if (getenv("BENCH_STEPS")) return bench(c, &m, o, atoi(getenv("BENCH_STEPS")));
    int64_t *order = malloc(sizeof *order * (size_t)ntrain);
    const int B = 64, Bl = B / d->size; // this rank's share of every batch
    if (B % d->size) {
        fprintf(stderr, "cnn_fashion: %d ranks do not divide the batch of %d\n", d->size, B);
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int e = 0; e < epochs; e++) {
        for (int64_t i = 0; i < ntrain; i++) order[i] = i;
        Rng sr = rng_new(100 + (uint64_t)e);
        rng_shuffle(&sr, order, (int)ntrain);
        double sum = 0;
        int nb = 0;
        for (int64_t i0 = 0; i0 + B <= ntrain; i0 += B, nb++) {
            ctx_reset(c);
            Tensor *y, *x = batch(c, &train, order, i0 + d->rank * Bl, Bl, &y);
            Tensor *loss = ag_cross_entropy(c, forward(c, &m, x), y);
            if (!loss || ag_backward(c, loss) != 0) {
                fprintf(stderr, "cnn_fashion: %s\n", ctx_error(c));
                return 1;
            }
            double lv = tensor_get_flat(loss, 0); // the batch's mean loss and gradient: averaged over the ranks
            if (dist_allreduce_grads(d, g.params, g.n, true, err, sizeof err) != 0 || dist_allreduce_sum(d, &lv, 1, err, sizeof err) != 0) {
                fprintf(stderr, "cnn_fashion: %s\n", err);
                return 1;
            }
            optim_step(o, 1e-3);
            optim_zero_grad(o);
            sum += lv / d->size;
        }
        if (dist_root(d)) printf("epoch %d: mean training loss %.4f\n", e + 1, sum / (nb ? nb : 1));
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    int64_t correct = 0;
    for (int64_t i0 = 0; i0 < test.n; i0 += 500) {
        ctx_reset(c);
        bool prev = ag_no_grad(c, true);
        int n = test.n - i0 < 500 ? (int)(test.n - i0) : 500;
        Tensor *y, *x = batch(c, &test, NULL, i0, n, &y);
        Tensor *logits = forward(c, &m, x);
        ag_no_grad(c, prev);
        for (int b = 0; b < n; b++) {
            int best = 0;
            for (int k = 1; k < 10; k++)
                if (tensor_get_flat(logits, b * 10 + k) > tensor_get_flat(logits, b * 10 + best)) best = k;
            correct += best == ((int64_t *)y->data)[b];
        }
    }
    double acc = (double)correct / (double)test.n;
    if (dist_root(d))
        printf("test accuracy %.2f%% after %d epochs on %lld images (training %.1f s%s)\n", 100 * acc, epochs, (long long)ntrain, secs,
               d->size > 1 ? ", data-parallel" : "");
    const char *save = getenv("SAVE");
    if (save && dist_root(d) && nn_params_save(&m.ps, save, false, err, sizeof err) != 0) {
        fprintf(stderr, "cnn_fashion: %s\n", err);
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
