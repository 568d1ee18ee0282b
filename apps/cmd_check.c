// cmd_check.c: `deit_lora check`, the pattern of llm.c's test_gpt2: run the model forward and
// backward on reference inputs and compare every reference tensor the file holds.
#include "deit_lora.h"

#include <math.h>
#include <string.h>

typedef struct {
    int fails, compared;
} Tally;

static void compare(Tally *ty, const char *what, const Tensor *got, const Tensor *ref, double tol) {
    char s1[SHAPE_STR_BUF], s2[SHAPE_STR_BUF];
    if (!got) {
        printf("  %-64s missing in cgrad's outputs  FAIL\n", what);
        ty->fails++;
        return;
    }
    if (tensor_numel(got) != tensor_numel(ref)) {
        printf("  %-64s shape %s vs reference %s  FAIL\n", what, shape_str(got, s1, sizeof s1), shape_str(ref, s2, sizeof s2));
        ty->fails++;
        return;
    }
    double md = 0;
    int64_t n = tensor_numel(ref);
    for (int64_t i = 0; i < n; i++) {
        double d = fabs(tensor_get_flat(got, i) - tensor_get_flat(ref, i));
        if (!(d <= md)) md = d; // NaN sticks
    }
    bool ok = md <= tol;
    printf("  %-64s max|diff| %.2e  tol %.1e  %s\n", what, md, tol, ok ? "ok" : "FAIL");
    ty->compared++;
    if (!ok) ty->fails++;
}

static double grad_tol(const Tensor *ref) {
    double mx = 0;
    for (int64_t i = 0; i < tensor_numel(ref); i++) mx = fmax(mx, fabs(tensor_get_flat(ref, i)));
    return fmax(1e-3 * mx, 1e-7);
}

int cmd_check(int argc, char **argv) {
    const char *adapter = NULL, *inputs = NULL, *labels_s = NULL, *pos[2];
    const CliOpt opts[] = {
        {"--adapter", OPT_STR, &adapter, 0, 0, "a peft adapter directory (base frozen; LoRA and classifier trainable)"},
        {"--inputs", OPT_STR, &inputs, 0, 0, "take pixel_values/labels from this file instead of IO.safetensors"},
        {"--labels", OPT_STR, &labels_s, 0, 0, "labels as a comma-separated list, when the files hold none"},
    };
    const char *usage = "deit_lora check MODEL_DIR IO.safetensors [--adapter DIR] [--inputs FILE] [--labels A,B,...]";
    int np =
        cli_command(&(CliCommand){"check", usage,
                                  "Runs forward and backward on the file's pixel_values and labels and compares every reference tensor:\n"
                                  "logits, loss, hidden_states.N, attentions.N (1e-4 absolute), pixel_values.grad and grad.<name>\n"
                                  "(1e-3 of the reference's largest magnitude, at least 1e-7). With --adapter, a file's 'lora.'-prefixed\n"
                                  "tensors are the ones compared. Exit 0 when all hold, 1 when one does not, 2 on bad input.",
                                  opts, 3},
                    argc, argv, pos, 2);
    if (np < 0) return np == CLI_HELP ? 0 : 2;
    if (np != 2) {
        fprintf(stderr, "deit_lora check: needs MODEL_DIR and IO.safetensors (usage: %s)\n", usage);
        return 2;
    }
    char err[FILE_ERR_BUF];
    VitModel m;
    WFile io = {0}, in = {0};
    if (vit_load(&m, pos[0], err, sizeof err) != 0) return app_fail("check", err);
    int rc = 2;
    Ctx *c = ctx_new(1 << 24);
    if (safetensors_open(&io, pos[1], err, sizeof err) != 0) goto bad;
    if (inputs && safetensors_open(&in, inputs, err, sizeof err) != 0) goto bad;
    const WFile *src = inputs ? &in : &io;
    bool lora_prefixed = adapter && wfile_find(&io, "lora.logits");
    const char *pre = lora_prefixed ? "lora." : "";
    if (adapter) {
        if (adapter_load(&m, adapter, err, sizeof err) != 0) goto bad;
    } else {
        nn_params_set_trainable(&m.params, "*", true); // full fine-tuning gradients
    }
    nn_params_train(&m.params, false);
    const WEntry *pv = wfile_find(src, "pixel_values");
    if (!pv) {
        snprintf(err, sizeof err, "%s: no pixel_values (use --inputs FILE)", inputs ? inputs : pos[1]);
        goto bad;
    }
    Tensor *x = wentry_tensor(c, pv, false);
    Tensor *labels = NULL;
    const WEntry *le = wfile_find(src, "labels");
    if (labels_s) {
        long v[4096];
        int n = cli_int_list(labels_s, v, 4096);
        if (n != (int)x->shape[0]) {
            snprintf(err, sizeof err, "--labels: '%s' must be %lld comma-separated integers", labels_s, (long long)x->shape[0]);
            goto bad;
        }
        labels = tensor_new(c, DT_I64, 1, (int64_t[]){n});
        for (int i = 0; i < n; i++) ((int64_t *)labels->data)[i] = v[i];
    } else if (le) {
        labels = wentry_tensor(c, le, false);
    }
    char k[1100];
    snprintf(k, sizeof k, "%spixel_values.grad", pre);
    if (wfile_find(&io, k)) ag_set_requires_grad(x, true);
    int L = m.cfg.num_hidden_layers;
    VitOutputs out = {.hidden_states = ctx_alloc(c, sizeof(Tensor *) * (size_t)(L + 1)),
                      .attentions = ctx_alloc(c, sizeof(Tensor *) * (size_t)L)};
    Tensor *logits = vit_forward(c, &m, x, &out);
    Tensor *loss = labels ? ag_cross_entropy(c, logits, labels) : NULL;
    if (loss) ag_backward(c, loss); // a failure leaves its message in c
    if (!logits || (labels && !loss) || !ctx_ok(c)) {
        snprintf(err, sizeof err, "%s", ctx_error(c));
        goto bad;
    }
    printf("check %s against %s%s%s\n", pos[0], pos[1], adapter ? " with adapter " : "", adapter ? adapter : "");
    Tally ty = {0};
    size_t pl = strlen(pre);
    int skipped = 0;
    for (int i = 0; i < io.n; i++) {
        const WEntry *e = &io.e[i];
        if (strncmp(e->name, pre, pl)) continue;
        if (!pl && !strncmp(e->name, "lora.", 5)) { // the adapter part of the file needs --adapter
            skipped++;
            continue;
        }
        const char *nm = e->name + pl;
        Tensor *ref = wentry_tensor(c, e, false);
        int idx;
        char canon[1024];
        if (!strcmp(nm, "pixel_values") || !strcmp(nm, "labels")) continue;
        if (!strcmp(nm, "logits"))
            compare(&ty, e->name, logits, ref, 1e-4);
        else if (!strcmp(nm, "loss"))
            compare(&ty, e->name, loss, ref, 1e-4);
        else if (sscanf(nm, "hidden_states.%d", &idx) == 1 && idx >= 0 && idx <= L)
            compare(&ty, e->name, out.hidden_states[idx], ref, 1e-4);
        else if (sscanf(nm, "attentions.%d", &idx) == 1 && idx >= 0 && idx < L)
            compare(&ty, e->name, out.attentions[idx], ref, 1e-4);
        else if (!strcmp(nm, "pixel_values.grad"))
            compare(&ty, e->name, x->grad, ref, grad_tol(ref));
        else if (!strncmp(nm, "grad.", 5)) {
            Tensor *p = nn_params_get(&m.params, vit_canonical_name(nm + 5, canon, sizeof canon));
            compare(&ty, e->name, p ? p->grad : NULL, ref, grad_tol(ref));
        } else if (!strcmp(nm, "new_head_row")) {
            int64_t rows = ref->shape[0], D = m.cfg.hidden_size, N = m.cfg.num_labels;
            Tensor *w = tensor_contiguous(c, m.classifier.weight);
            Tensor *tail = tensor_from_buffer(c, DT_F32, 2, (int64_t[]){rows, D}, (float *)w->data + (N - rows) * D);
            compare(&ty, e->name, tail, ref, 1e-6);
        } else {
            printf("  %-64s not a tensor cgrad knows how to compare  FAIL\n", e->name);
            ty.fails++;
        }
    }
    if (skipped) printf("  (%d 'lora.' tensors not compared: they need --adapter)\n", skipped);
    printf("%d tensors compared, %d failed\n", ty.compared, ty.fails);
    rc = ty.fails || !ty.compared ? 1 : 0;
    goto out;
bad:
    fprintf(stderr, "deit_lora check: %s\n", err);
out:
    wfile_close(&io);
    wfile_close(&in);
    ctx_free(c);
    vit_free(&m);
    return rc;
}
