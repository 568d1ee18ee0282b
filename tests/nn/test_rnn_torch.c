// test_rnn_torch.c: nn_gru / nn_lstm and their cells against PyTorch's nn.GRU, nn.LSTM, nn.GRUCell
// and nn.LSTMCell (rnn_torch_reference.py writes them): each model's state_dict loaded by name into
// the layer made with the same options, then the output, the final states and the gradients of
// sum(output * R) + 2 sum(h_n) + 3 sum(c_n) for the input, the initial states and every parameter,
// within float32 rounding (1e-5 of the largest value).
// Usage: test_rnn_torch DIR; prints "N passed, N failed".
#include "../../formats/weights.h"
#include "../../nn/nn.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static Tensor *load(Ctx *c, const WFile *f, const char *key) {
    const WEntry *e = wfile_find(f, key);
    if (!e || e->dtype != WD_F32) return NULL;
    return tensor_from_data(c, DT_F32, e->ndim, e->shape, e->data);
}

static double rel_diff(const Tensor *a, const Tensor *b) {
    if (!a || !b || tensor_numel(a) != tensor_numel(b)) return INFINITY;
    double worst = 0, scale = 1e-30;
    for (int64_t i = 0; i < tensor_numel(b); i++) scale = fmax(scale, fabs(tensor_get_flat(b, i)));
    for (int64_t i = 0; i < tensor_numel(b); i++) worst = fmax(worst, fabs(tensor_get_flat(a, i) - tensor_get_flat(b, i)) / scale);
    return worst;
}

static int pass, fail;

static void check(const char *model, const char *what, const Tensor *got, const Tensor *want) {
    double d = rel_diff(got, want);
    if (d <= 1e-5)
        pass++;
    else {
        fail++;
        printf("FAIL %s %s: worst relative difference %.3g\n", model, what, d);
    }
}

typedef struct {
    const char *name;
    bool lstm, cell;
    NnRnnOptions o;
    int nstates; // initial states given
} Model;

static void run(const char *dir, const Model *m) {
    char path[1024], err[512];
    Ctx *pc = ctx_new(1 << 20), *c = ctx_new(16 << 20);
    NnParams ps;
    nn_params_init(&ps, pc, 1);
    NnRnn layer = {0};
    NnRnnCell cell = {0};
    if (m->cell)
        cell = m->lstm ? nn_lstm_cell_new(&ps, m->name, 4, 6, true) : nn_gru_cell_new(&ps, m->name, 4, 6, true);
    else
        layer = m->lstm ? nn_lstm_new(&ps, m->name, m->o) : nn_gru_new(&ps, m->name, m->o);
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, m->name);
    WFile f;
    snprintf(err, sizeof err, "?");
    if (nn_params_load(&ps, path, false, err, sizeof err) != 0 ||
        (snprintf(path, sizeof path, "%s/%s_io.safetensors", dir, m->name), safetensors_open(&f, path, err, sizeof err) != 0) ||
        wfile_index(&f, err, sizeof err) != 0) {
        printf("FAIL %s: %s\n", m->name, err);
        fail++;
        return;
    }
    Tensor *x = load(c, &f, "x"), *R = load(c, &f, "R"), *s[2] = {load(c, &f, "s0"), load(c, &f, "s1")};
    ag_set_requires_grad(x, true);
    for (int i = 0; i < m->nstates; i++) ag_set_requires_grad(s[i], true);
    Tensor *y, *fin[2] = {0};
    if (m->cell)
        y = m->lstm ? nn_lstm_cell(c, &cell, x, s[0], s[1], &fin[0]) : nn_gru_cell(c, &cell, x, s[0]);
    else
        y = m->lstm ? nn_lstm(c, &layer, x, s[0], s[1], &fin[0], &fin[1]) : nn_gru(c, &layer, x, s[0], &fin[0]);
    Tensor *loss = y ? ag_sum_all(c, ag_mul(c, y, R)) : NULL;
    for (int i = 0; i < 2 && loss; i++)
        if (fin[i]) loss = ag_add(c, loss, ag_mul_scalar(c, ag_sum_all(c, fin[i]), i + 2));
    if (!loss || ag_backward(c, loss) != 0) {
        printf("FAIL %s: %s\n", m->name, ctx_error(c));
        fail++;
    } else {
        check(m->name, "output", y, load(c, &f, "out"));
        for (int i = 0; i < 2; i++) {
            char k[16];
            snprintf(k, sizeof k, "final%d", i);
            Tensor *want = load(c, &f, k);
            if (want) check(m->name, k, fin[i], want);
        }
        check(m->name, "grad x", x->grad, load(c, &f, "grad.x"));
        for (int i = 0; i < m->nstates; i++) check(m->name, i ? "grad c0" : "grad h0", s[i]->grad, load(c, &f, i ? "grad.s1" : "grad.s0"));
        for (int i = 0; i < ps.n; i++) {
            char k[256];
            snprintf(k, sizeof k, "grad.%s", ps.p[i].name);
            check(m->name, k, ps.p[i].t->grad, load(c, &f, k));
        }
    }
    wfile_close(&f);
    nn_params_free(&ps);
    ctx_free(c), ctx_free(pc);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_rnn_torch DIR\n");
        return 2;
    }
    const Model models[] = {
        {"gru", false, false, {.input_size = 4, .hidden_size = 6, .num_layers = 2, .bidirectional = true, .batch_first = true}, 1},
        {"lstm", true, false, {.input_size = 4, .hidden_size = 6, .num_layers = 2, .no_bias = true}, 2},
        {"lstm_bi", true, false, {.input_size = 4, .hidden_size = 6, .bidirectional = true}, 0},
        {"gru_cell", false, true, {0}, 1},
        {"lstm_cell", true, true, {0}, 2},
    };
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) run(argv[1], &models[i]);
    printf("%d passed, %d failed\n", pass, fail);
    return fail ? 1 : 0;
}
