// vae_fashion.c: a variational autoencoder on Fashion-MNIST (Debian's dataset-fashion-mnist), with
// the reparameterisation trick, written against the installed library.
//   cc vae_fashion.c $(pkg-config --cflags --libs cgrad) -lm -o vae_fashion
//   ./vae_fashion [EPOCHS] [TRAIN_IMAGES] [DATA_DIR] [SAMPLES.png]   (5 epochs of all 60,000; samples.png)
// Encoder 784 -> 400 (ReLU) -> mean and log-variance of a 20-d latent; z = mean + exp(logvar / 2) eps
// with eps ~ N(0, 1) (the gradient flows through mean and logvar, not through the draw); decoder
// 20 -> 400 (ReLU) -> 784 logits. Loss per image: the pixels' binary cross-entropy (summed) plus
// KL(q(z|x) || N(0, 1)) = -1/2 sum(1 + logvar - mean^2 - exp(logvar)); Adam (lr 1e-3), batch 128.
// Prints the test set's ELBO per image (the negative loss, in nats; higher is better); exits 1 when
// it is below env MIN_ELBO; writes 64 images decoded from z ~ N(0, 1) as a PNG grid.
#include <cgrad.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define LATENT 20

typedef struct {
    NnParams ps;
    NnLinear enc, mu, logvar, dec1, dec2;
} Vae;

static void vae_new(Vae *m, Ctx *pc, uint64_t seed) {
    nn_params_init(&m->ps, pc, seed);
    m->enc = nn_linear_new(&m->ps, "enc", 784, 400, true);
    m->mu = nn_linear_new(&m->ps, "mu", 400, LATENT, true);
    m->logvar = nn_linear_new(&m->ps, "logvar", 400, LATENT, true);
    m->dec1 = nn_linear_new(&m->ps, "dec1", LATENT, 400, true);
    m->dec2 = nn_linear_new(&m->ps, "dec2", 400, 784, true);
}

static Tensor *decode(Ctx *c, const Vae *m, Tensor *z) { return nn_linear(c, &m->dec2, ag_relu(c, nn_linear(c, &m->dec1, z))); }

// the batch's loss, summed over its images: reconstruction (BCE) plus KL; eps drawn from r
static Tensor *loss_of(Ctx *c, const Vae *m, Tensor *x, Rng *r) {
    Tensor *h = ag_relu(c, nn_linear(c, &m->enc, x));
    Tensor *mu = nn_linear(c, &m->mu, h), *logvar = nn_linear(c, &m->logvar, h);
    Tensor *eps = tensor_new(c, DT_F32, 2, (int64_t[]){x->shape[0], LATENT});
    if (!eps) return NULL;
    rng_fill_normal(r, eps, 0, 1);
    Tensor *z = ag_add(c, mu, ag_mul(c, ag_exp(c, ag_mul_scalar(c, logvar, 0.5)), eps));
    Tensor *rec = ag_bce_with_logits_with(c, decode(c, m, z), x, AG_REDUCE_SUM);
    Tensor *kl_terms = ag_sub(c, ag_sub(c, ag_add_scalar(c, logvar, 1.0), ag_mul(c, mu, mu)), ag_exp(c, logvar));
    return ag_add(c, rec, ag_mul_scalar(c, ag_sum_all(c, kl_terms), -0.5));
}

// images [i0, i0 + n) as pixels in [0, 1], [n, 784]
static Tensor *batch(Ctx *c, const Dataset *d, const int64_t *order, int64_t i0, int n) {
    Tensor *x = tensor_new(c, DT_F32, 2, (int64_t[]){n, 784});
    float *px = x->data;
    for (int b = 0; b < n; b++) {
        int64_t i = order ? order[i0 + b] : i0 + b;
        for (int k = 0; k < 784; k++) px[b * 784 + k] = (float)d->gray[i * 784 + k] / 255.0f;
    }
    return x;
}

int main(int argc, char **argv) {
    cgrad_wait_policy(argv); // OpenMP threads that sleep soon when they wait (base/wait_policy.h)
    int epochs = argc > 1 ? atoi(argv[1]) : 5;
    int64_t ntrain = argc > 2 ? atoll(argv[2]) : 60000;
    const char *dir = argc > 3 ? argv[3] : "/usr/share/datasets/fashion-mnist", *png = argc > 4 ? argv[4] : "samples.png";
    double min_elbo = getenv("MIN_ELBO") ? atof(getenv("MIN_ELBO")) : -INFINITY;
    char err[512];
    Dataset train, test;
    if (dataset_fashion_mnist(&train, dir, true, err, sizeof err) != 0 || dataset_fashion_mnist(&test, dir, false, err, sizeof err) != 0) {
        fprintf(stderr, "vae_fashion: %s (apt-get install dataset-fashion-mnist)\n", err);
        return 2;
    }
    if (ntrain > train.n) ntrain = train.n;
    Ctx *pc = ctx_new(1 << 20), *c = ctx_new(64u << 20);
    Vae m;
    vae_new(&m, pc, 0);
    OptimGroup g = optim_group_all(&m.ps, 0.0);
    Optim *o = optim_adam(&g, 1, 0.9, 0.999, 1e-8);
    Rng noise = rng_new(7);
    int64_t *order = malloc(sizeof *order * (size_t)ntrain);
    const int B = 128;
    for (int e = 0; e < epochs; e++) {
        for (int64_t i = 0; i < ntrain; i++) order[i] = i;
        Rng sr = rng_new(100 + (uint64_t)e);
        rng_shuffle(&sr, order, (int)ntrain);
        double sum = 0;
        int64_t seen = 0;
        for (int64_t i0 = 0; i0 + B <= ntrain; i0 += B, seen += B) {
            ctx_reset(c);
            Tensor *loss = loss_of(c, &m, batch(c, &train, order, i0, B), &noise);
            if (!loss || ag_backward(c, ag_mul_scalar(c, loss, 1.0 / B)) != 0) { // the mean over the batch's images
                fprintf(stderr, "vae_fashion: %s\n", ctx_error(c));
                return 1;
            }
            optim_step(o, 1e-3);
            optim_zero_grad(o);
            sum += tensor_get_flat(loss, 0);
        }
        printf("epoch %d: mean training loss %.2f nats per image\n", e + 1, sum / (double)(seen ? seen : 1));
    }
    double total = 0; // the test ELBO, one draw of eps per image
    for (int64_t i0 = 0; i0 < test.n; i0 += 500) {
        ctx_reset(c);
        bool prev = ag_no_grad(c, true);
        int n = test.n - i0 < 500 ? (int)(test.n - i0) : 500;
        Tensor *loss = loss_of(c, &m, batch(c, &test, NULL, i0, n), &noise);
        ag_no_grad(c, prev);
        if (!loss) return fprintf(stderr, "vae_fashion: %s\n", ctx_error(c)), 1;
        total += tensor_get_flat(loss, 0);
    }
    double elbo = -total / (double)test.n;
    printf("test ELBO %.2f nats per image (%d epochs on %lld images)\n", elbo, epochs, (long long)ntrain);
    ctx_reset(c); // 64 samples: z ~ N(0, 1) through the decoder, as images [64, 1, 28, 28]
    bool prev = ag_no_grad(c, true);
    Tensor *z = tensor_new(c, DT_F32, 2, (int64_t[]){64, LATENT});
    rng_fill_normal(&noise, z, 0, 1);
    Tensor *img = ag_reshape(c, ag_sigmoid(c, decode(c, &m, z)), 4, (int64_t[]){64, 1, 28, 28});
    ag_no_grad(c, prev);
    int rc = elbo >= min_elbo ? 0 : 1;
    if (!img || image_grid_save(img, 8, 0, 1, png, err, sizeof err) != 0) {
        fprintf(stderr, "vae_fashion: %s\n", img ? err : ctx_error(c));
        rc = 1;
    } else
        printf("64 samples written to %s\n", png);
    optim_free(o);
    optim_groups_free(&g, 1);
    nn_params_free(&m.ps);
    free(order);
    ctx_free(c), ctx_free(pc);
    dataset_free(&train), dataset_free(&test);
    return rc;
}
