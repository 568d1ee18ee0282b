// xor_mlp.c: a small model written against the installed library.
//   cc xor_mlp.c $(pkg-config --cflags --libs cgrad-core) -o xor_mlp && ./xor_mlp
// A 2-8-2 MLP learns XOR with plain gradient descent; parameters live in one context,
// each step's tensors in another that is reset every step.
#include <cgrad_core.h>

int main(void) {
    Ctx *params = ctx_new(1 << 16), *step = ctx_new(1 << 16);
    Rng rng = rng_new(0);
    Tensor *w1 = tensor_new(params, DT_F32, SHAPE(8, 2)), *b1 = tensor_zeros(params, DT_F32, SHAPE(8));
    Tensor *w2 = tensor_new(params, DT_F32, SHAPE(2, 8)), *b2 = tensor_zeros(params, DT_F32, SHAPE(2));
    rng_fill_uniform(&rng, w1, -1, 1);
    rng_fill_uniform(&rng, w2, -1, 1);
    Tensor *ps[] = {w1, b1, w2, b2};
    for (int i = 0; i < 4; i++) ag_set_requires_grad(ps[i], true);
    float xs[] = {0, 0, 0, 1, 1, 0, 1, 1};
    int64_t ys[] = {0, 1, 1, 0};
    double loss_v = 0;
    for (int it = 0; it < 2000; it++) {
        ctx_reset(step);
        Tensor *x = tensor_from_data(step, DT_F32, SHAPE(4, 2), xs);
        Tensor *y = tensor_from_data(step, DT_I64, SHAPE(4), ys);
        Tensor *h = ag_tanh(step, ag_linear(step, x, w1, b1));
        Tensor *loss = ag_cross_entropy(step, ag_linear(step, h, w2, b2), y);
        ag_zero_grad(ps, 4);
        if (ag_backward(step, loss) != 0) {
            fprintf(stderr, "xor_mlp: %s\n", ctx_error(step));
            return 1;
        }
        for (int i = 0; i < 4; i++) { // p -= 0.5 * grad
            float *p = ps[i]->data, *g = ps[i]->grad->data;
            for (int64_t j = 0; j < tensor_numel(ps[i]); j++) p[j] -= 0.5f * g[j];
        }
        loss_v = tensor_get_flat(loss, 0);
    }
    printf("final loss %.4f\n", loss_v);
    ctx_free(step);
    ctx_free(params);
    return loss_v < 0.05 ? 0 : 1;
}
