// mlp_fashion.c: a two-layer MLP on Fashion-MNIST (Debian's dataset-fashion-mnist), written against
// the installed library.   cc mlp_fashion.c $(pkg-config --cflags --libs cgrad) -lm -o mlp_fashion
//   ./mlp_fashion [EPOCHS] [TRAIN_IMAGES] [DATA_DIR]      (5 epochs of all 60,000 by default)
// 784 -> 256 ReLU -> 10 (nn.h's Linear: PyTorch's initialisation), Adam (lr 1e-3), batch 128. Prints the
// test accuracy over the 10,000 test images; exits 1 below the accuracy asked for (env MIN_ACC).
#define _POSIX_C_SOURCE 200809L // clock_gettime under -std=c11
#include <cgrad.h>

#include <math.h>
#include <stdlib.h>
#include <time.h>

// images order[i0 .. i0 + n) (order NULL: in order) as [n, 784] in [0, 1], their labels [n]
static Tensor *batch(Ctx *c, const Dataset *d, const int64_t *order, int64_t i0, int n, Tensor **labels) {
    Tensor *x = tensor_new(c, DT_F32, 2, (int64_t[]){n, 784});
    *labels = tensor_new(c, DT_I64, 1, (int64_t[]){n});
    for (int b = 0; b < n; b++) {
        int64_t i = order ? order[i0 + b] : i0 + b;
        for (int k = 0; k < 784; k++) ((float *)x->data)[b * 784 + k] = (float)d->gray[i * 784 + k] / 255.0f;
        ((int64_t *)(*labels)->data)[b] = d->labels[i];
    }
    return x;
}

int main(int argc, char **argv) {
    cgrad_wait_policy(argv); // OpenMP threads that sleep soon when they wait (base/wait_policy.h)
    int epochs = argc > 1 ? atoi(argv[1]) : 5;
    int64_t ntrain = argc > 2 ? atoll(argv[2]) : 60000;
    const char *dir = argc > 3 ? argv[3] : "/usr/share/datasets/fashion-mnist";
    double min_acc = getenv("MIN_ACC") ? atof(getenv("MIN_ACC")) : 0.0;
    char err[512];
    Dataset train, test;
    if (dataset_fashion_mnist(&train, dir, true, err, sizeof err) != 0 || dataset_fashion_mnist(&test, dir, false, err, sizeof err) != 0) {
        fprintf(stderr, "mlp_fashion: %s (apt-get install dataset-fashion-mnist)\n", err);
        return 2;
    }
    if (ntrain > train.n) ntrain = train.n;
    Ctx *pc = ctx_new(1 << 20), *c = ctx_new(16u << 20);
    NnParams ps;
    nn_params_init(&ps, pc, 0);
    NnLinear fc1 = nn_linear_new(&ps, "0", 784, 256, true), fc2 = nn_linear_new(&ps, "2", 256, 10, true); // nn.Sequential's names
    OptimGroup g = optim_group_all(&ps, 0.0);
    Optim *o = optim_adam(&g, 1, 0.9, 0.999, 1e-8);
    int64_t *order = malloc(sizeof *order * (size_t)ntrain);
    const int B = 128;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int e = 0; e < epochs; e++) {
        for (int64_t i = 0; i < ntrain; i++) order[i] = i;
        Rng sr = rng_new(200 + (uint64_t)e);
        rng_shuffle(&sr, order, (int)ntrain);
        double sum = 0;
        int nb = 0;
        for (int64_t i0 = 0; i0 + B <= ntrain; i0 += B, nb++) {
            ctx_reset(c);
            Tensor *y, *x = batch(c, &train, order, i0, B, &y);
            Tensor *loss = ag_cross_entropy(c, nn_linear(c, &fc2, ag_relu(c, nn_linear(c, &fc1, x))), y);
            if (!loss || ag_backward(c, loss) != 0) {
                fprintf(stderr, "mlp_fashion: %s\n", ctx_error(c));
                return 1;
            }
            optim_step(o, 1e-3);
            optim_zero_grad(o);
            sum += tensor_get_flat(loss, 0);
        }
        printf("epoch %d: mean training loss %.4f\n", e + 1, sum / (nb ? nb : 1));
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    ctx_reset(c);
    ag_no_grad(c, true);
    Tensor *y, *x = batch(c, &test, NULL, 0, (int)test.n, &y);
    Tensor *logits = nn_linear(c, &fc2, ag_relu(c, nn_linear(c, &fc1, x)));
    int64_t correct = 0;
    for (int64_t b = 0; b < test.n; b++) {
        int best = 0;
        for (int k = 1; k < 10; k++)
            if (tensor_get_flat(logits, b * 10 + k) > tensor_get_flat(logits, b * 10 + best)) best = k;
        correct += best == ((int64_t *)y->data)[b];
    }
    double acc = (double)correct / (double)test.n;
    printf("test accuracy %.2f%% after %d epochs on %lld images (training %.1f s)\n", 100 * acc, epochs, (long long)ntrain, secs);
    optim_free(o);
    optim_groups_free(&g, 1);
    nn_params_free(&ps);
    free(order);
    ctx_free(c), ctx_free(pc);
    dataset_free(&train), dataset_free(&test);
    return acc >= min_acc ? 0 : 1;
}
