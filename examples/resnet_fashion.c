// resnet_fashion.c: a small ResNet on Fashion-MNIST (Debian's dataset-fashion-mnist), written against
// the installed library.   cc resnet_fashion.c $(pkg-config --cflags --libs cgrad) -lm -o resnet_fashion
//   ./resnet_fashion [EPOCHS] [TRAIN_IMAGES] [DATA_DIR]      (4 epochs of all 60,000 by default)
// stem: conv 3x3 (1 -> 16), BatchNorm, ReLU; three stages of one basic block each (conv 3x3, BN,
// ReLU, conv 3x3, BN, the shortcut added, ReLU) at 16, 32 and 64 channels, the last two with stride
// 2 and a 1x1 convolution + BN as the shortcut (torchvision's BasicBlock); global average pooling;
// linear 64 -> 10. SGD with momentum 0.9 (lr 0.1 with a cosine decay, weight decay 5e-4), batch 128, images
// mirrored at random.
// Names as torchvision's: conv1.weight, bn1.running_mean, layer2.0.downsample.0.weight, fc.bias.
// Prints the test accuracy over the 10,000 test images (the BatchNorms in eval mode, running
// statistics); exits 1 below the accuracy asked for (env MIN_ACC); env SAVE=PATH writes the
// parameters and buffers as safetensors. BENCH_STEPS=N times N training steps on random images
// instead (bench/model_compare.sh).
#define _POSIX_C_SOURCE 200809L // clock_gettime under -std=c11
#include <cgrad.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct {
    NnConv2d conv1, conv2, down;
    NnBatchNorm bn1, bn2, down_bn;
    bool has_down;
} Block;

typedef struct {
    NnParams ps;
    NnConv2d conv1;
    NnBatchNorm bn1;
    Block layer[3];
    NnLinear fc;
} ResNet;

static NnConv2d conv(NnParams *ps, const char *name, int in, int out, int k, int stride) {
    //                        name  in  out kernel stride padding  dilation groups bias
    return nn_conv2d_new(ps, name, in, out, k, stride, k / 2, 1, 1, false);
}

static Block block_new(NnParams *ps, const char *name, int in, int out, int stride) {
    char n[64];
    Block b = {.has_down = stride != 1 || in != out};
    snprintf(n, sizeof n, "%s.conv1", name), b.conv1 = conv(ps, n, in, out, 3, stride);
    snprintf(n, sizeof n, "%s.bn1", name), b.bn1 = nn_batch_norm_new(ps, n, out, 1e-5, 0.1);
    snprintf(n, sizeof n, "%s.conv2", name), b.conv2 = conv(ps, n, out, out, 3, 1);
    snprintf(n, sizeof n, "%s.bn2", name), b.bn2 = nn_batch_norm_new(ps, n, out, 1e-5, 0.1);
    if (b.has_down) {
        snprintf(n, sizeof n, "%s.downsample.0", name), b.down = conv(ps, n, in, out, 1, stride);
        snprintf(n, sizeof n, "%s.downsample.1", name), b.down_bn = nn_batch_norm_new(ps, n, out, 1e-5, 0.1);
    }
    return b;
}

static void resnet_new(ResNet *m, Ctx *pc, uint64_t seed) {
    nn_params_init(&m->ps, pc, seed);
    m->conv1 = conv(&m->ps, "conv1", 1, 16, 3, 1);
    m->bn1 = nn_batch_norm_new(&m->ps, "bn1", 16, 1e-5, 0.1);
    m->layer[0] = block_new(&m->ps, "layer1.0", 16, 16, 1);
    m->layer[1] = block_new(&m->ps, "layer2.0", 16, 32, 2);
    m->layer[2] = block_new(&m->ps, "layer3.0", 32, 64, 2);
    m->fc = nn_linear_new(&m->ps, "fc", 64, 10, true);
}

static Tensor *block(Ctx *c, const Block *b, Tensor *x) {
    Tensor *h = ag_relu(c, nn_batch_norm(c, &b->bn1, nn_conv2d(c, &b->conv1, x)));
    h = nn_batch_norm(c, &b->bn2, nn_conv2d(c, &b->conv2, h));
    Tensor *sc = b->has_down ? nn_batch_norm(c, &b->down_bn, nn_conv2d(c, &b->down, x)) : x;
    return ag_relu(c, ag_add(c, h, sc));
}

// Under no-grad (evaluation) each stage's intermediates are given back as soon as it is done
// (ctx_mark / ctx_release_keep): the arena holds a stage, not the whole network.
static Tensor *forward(Ctx *c, const ResNet *m, Tensor *x) {
    bool release = ag_is_no_grad(c);
    CtxMark mk = ctx_mark(c);
    Tensor *h = ag_relu(c, nn_batch_norm(c, &m->bn1, nn_conv2d(c, &m->conv1, x))); // [B, 16, 28, 28]
    for (int i = 0; i < 3; i++) {                                                  // ... [B, 64, 7, 7]
        if (release) h = ctx_release_keep(c, mk, h);
        h = block(c, &m->layer[i], h);
    }
    h = ag_reshape(c, ag_global_avg_pool2d(c, h), 2, (int64_t[]){x->shape[0], 64});
    return nn_linear(c, &m->fc, h);
}

// images [i0, i0 + n) of the set as normalised pixels [n, 1, 28, 28] in c; with flip (training),
// each image mirrored left to right with probability 1/2 (clothes stay what they are)
static Tensor *batch(Ctx *c, const Dataset *d, const int64_t *order, int64_t i0, int n, Rng *flip, Tensor **labels) {
    Tensor *x = tensor_new(c, DT_F32, 4, (int64_t[]){n, 1, 28, 28});
    *labels = tensor_new(c, DT_I64, 1, (int64_t[]){n});
    float *px = x->data;
    for (int b = 0; b < n; b++) {
        int64_t i = order ? order[i0 + b] : i0 + b;
        bool mirror = flip && rng_below(flip, 2);
        for (int k = 0; k < 28 * 28; k++) {
            int src = mirror ? k / 28 * 28 + 27 - k % 28 : k;
            px[b * 784 + k] = ((float)d->gray[i * 784 + src] / 255.0f - 0.2860f) / 0.3530f;
        }
        ((int64_t *)(*labels)->data)[b] = d->labels[i];
    }
    return x;
}

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int train_step(Ctx *c, const ResNet *m, Optim *o, Tensor *x, Tensor *y, double lr, double *loss_out) {
    Tensor *loss = ag_cross_entropy(c, forward(c, m, x), y);
    if (!loss || ag_backward(c, loss) != 0) {
        fprintf(stderr, "resnet_fashion: %s\n", ctx_error(c));
        return 1;
    }
    *loss_out = tensor_get_flat(loss, 0);
    optim_step(o, lr);
    optim_zero_grad(o);
    return 0;
}

// BENCH_STEPS=N: N timed training steps on random images (after 5 untimed), one JSON line
static int bench(Ctx *c, const ResNet *m, Optim *o, int steps) {
    Rng r = rng_new(1);
    double t = 0, loss;
    Ctx *dc = ctx_new(16u << 20); // the batch, made once (as the PyTorch side does)
    Tensor *x = tensor_new(dc, DT_F32, 4, (int64_t[]){128, 1, 28, 28}), *y = tensor_zeros(dc, DT_I64, 1, (int64_t[]){128});
    rng_fill_normal(&r, x, 0, 1);
    for (int i = 0; i < 5 + steps; i++) {
        double t0 = seconds();
        ctx_reset(c);
        if (train_step(c, m, o, x, y, 0.1, &loss) != 0) return 1;
        if (i >= 5) t += seconds() - t0;
    }
    ctx_free(dc);
    printf("{\"step_ms\": %.3f}\n", 1e3 * t / steps);
    return 0;
}

static double test_accuracy(Ctx *c, ResNet *m, const Dataset *test) {
    nn_params_train(&m->ps, false); // BatchNorm with the running statistics
    int64_t correct = 0;
    c->peak = 0;
    for (int64_t i0 = 0; i0 < test->n; i0 += 500) {
        ctx_reset(c);
        int n = test->n - i0 < 500 ? (int)(test->n - i0) : 500;
        Tensor *y, *x = batch(c, test, NULL, i0, n, NULL, &y), *logits = NULL;
        AG_NO_GRAD(c) { logits = forward(c, m, x); }
        for (int b = 0; logits && b < n; b++) {
            int best = 0;
            for (int k = 1; k < 10; k++)
                if (tensor_get_flat(logits, b * 10 + k) > tensor_get_flat(logits, b * 10 + best)) best = k;
            correct += best == ((int64_t *)y->data)[b];
        }
    }
    nn_params_train(&m->ps, true);
    printf("evaluation: the arena's peak %.0f MiB for batches of 500\n", (double)c->peak / (1 << 20));
    return (double)correct / (double)test->n;
}

int main(int argc, char **argv) {
    cgrad_wait_policy(argv); // OpenMP threads that sleep soon when they wait (base/wait_policy.h)
    int epochs = argc > 1 ? atoi(argv[1]) : 4;
    int64_t ntrain = argc > 2 ? atoll(argv[2]) : 60000;
    const char *dir = argc > 3 ? argv[3] : "/usr/share/datasets/fashion-mnist";
    double min_acc = getenv("MIN_ACC") ? atof(getenv("MIN_ACC")) : 0.0;
    Ctx *pc = ctx_new(1 << 20), *c = ctx_new(256u << 20);
    ResNet m;
    resnet_new(&m, pc, 0);
    OptimGroup g = optim_group_all(&m.ps, 5e-4); // every trainable parameter, weight decay 5e-4
    Optim *o = optim_sgd(&g, 1, 0.9, 0, false);
    if (getenv("BENCH_STEPS")) return bench(c, &m, o, atoi(getenv("BENCH_STEPS")));
    char err[512];
    Dataset train, test;
    if (dataset_fashion_mnist(&train, dir, true, err, sizeof err) != 0 || dataset_fashion_mnist(&test, dir, false, err, sizeof err) != 0) {
        fprintf(stderr, "resnet_fashion: %s (apt-get install dataset-fashion-mnist)\n", err);
        return 2;
    }
    if (ntrain > train.n) ntrain = train.n;
    int64_t *order = malloc(sizeof *order * (size_t)ntrain);
    const int B = 128;
    int64_t steps = epochs * (ntrain / B), step = 0;
    double t0 = seconds();
    for (int e = 0; e < epochs; e++) {
        for (int64_t i = 0; i < ntrain; i++) order[i] = i;
        Rng sr = rng_new(100 + (uint64_t)e);
        rng_shuffle(&sr, order, (int)ntrain);
        double sum = 0;
        int nb = 0;
        for (int64_t i0 = 0; i0 + B <= ntrain; i0 += B, nb++, step++) {
            ctx_reset(c);
            double lr = 0.1 * 0.5 * (1 + cos(3.14159265358979 * (double)step / (double)steps)), loss; // cosine decay
            Tensor *y, *x = batch(c, &train, order, i0, B, &sr, &y);
            if (train_step(c, &m, o, x, y, lr, &loss) != 0) return 1;
            sum += loss;
        }
        printf("epoch %d: mean training loss %.4f\n", e + 1, sum / (nb ? nb : 1));
    }
    double secs = seconds() - t0, acc = test_accuracy(c, &m, &test);
    printf("test accuracy %.2f%% after %d epochs on %lld images (training %.1f s)\n", 100 * acc, epochs, (long long)ntrain, secs);
    const char *save = getenv("SAVE");
    if (save && nn_params_save(&m.ps, save, false, err, sizeof err) != 0) {
        fprintf(stderr, "resnet_fashion: %s\n", err);
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
