// cmd_bench.c: `deit_lora bench`: the notebook's training step (frozen DeiT-Tiny, LoRA r=4 on
// query/value, a trainable 1001-class head: forward, cross-entropy, backward, clipping, AdamW)
// and inference (forward only, no tape) on random input, timed after warm-up.
#include "../kernels/kernels.h"
#include "../kernels/sgemm.h"
#include "deit_lora.h"

#include <math.h>
#include <omp.h>
#include <string.h>
#include <sys/resource.h>

// the CPU's model name (/proc/cpuinfo) and the vector features the figures depend on
static void cpu_desc(char *model, size_t n, const char **features) {
    snprintf(model, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            const char *v = strchr(line, ':') + 1;
            while (*v == ' ' || *v == '\t') v++;
            snprintf(model, n, "%.*s", (int)strcspn(v, "\n\"\\"), v);
            break;
        }
    if (f) fclose(f);
    *features = app_cpu_features();
}

static double peak_rss_mb(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_maxrss / 1024.0;
}

// FLOPs (2 per multiply-add) of one image's forward pass: linear layers, attention, LoRA, patches, head;
// the last layer computes keys and values for every token and the rest for [CLS] only (vit_forward)
static double forward_flops(const VitConfig *c, int lora_r) {
    double T = (double)(c->image_size / c->patch_size) * (c->image_size / c->patch_size) + 1, D = c->hidden_size, F = c->intermediate_size;
    double layer = T * (4 * D * D + 2 * D * F) + 2 * T * T * D + 2 * T * lora_r * 2 * D;
    double last = T * 2 * D * D + (2 * D * D + 2 * D * F) + 2 * T * D + T * lora_r * 2 * D + lora_r * 2 * D;
    double patch = (T - 1) * D * c->num_channels * c->patch_size * c->patch_size;
    return 2 * ((c->num_hidden_layers - 1) * layer + last + patch + D * c->num_labels);
}

typedef struct {
    const char *model, *config;
    long batch, steps, threads, warmup;
    bool json, infer_only, int8;
} BenchArgs;

// the model: a directory, or DeiT-Tiny with random weights; for the training step, the notebook's
// setup (a new label, frozen, LoRA r=4 on query and value); -1 with a message
static int bench_model(VitModel *m, const BenchArgs *a, Rng *rng, char *err, size_t errn) {
    if (a->model) {
        if (vit_load(m, a->model, err, errn) != 0) return -1;
    } else {
        VitConfig c;
        vit_config_init(&c);
        vit_config_set_num_labels(&c, 1000);
        int rc = vit_init_random(m, &c, 1, err, errn);
        vit_config_free(&c);
        if (rc != 0) return -1;
    }
    if (a->infer_only) return 0; // the model as it is
    vit_add_label(m, "raccoon", rng, err, errn);
    vit_freeze_all(m);
    VitLoraSpec s = {.r = 4, .alpha = 8, .dropout = 0.2, .targets = {"query", "value"}, .ntargets = 2, .save_classifier = true};
    if (vit_attach_lora(m, &s, rng, err, errn) != 0) return vit_free(m), -1;
    return 0;
}

// seconds of the timed training steps (forward, cross-entropy, backward, clipping, AdamW), or -1
static double bench_train(VitModel *m, Ctx *c, Tensor *x, Tensor *y, const BenchArgs *a) {
    OptimGroup groups[2];
    int ng = optim_hf_groups(&m->params, 0.01, groups);
    Optim *o = optim_adamw(groups, ng, 0.9, 0.999, 1e-8);
    optim_groups_free(groups, ng);
    int np = optim_nparams(o);
    Tensor **ps = malloc(sizeof *ps * (size_t)np);
    for (int i = 0; i < np; i++) ps[i] = optim_param(o, i);
    nn_params_train(&m->params, true);
    double t = 0;
    for (long i = 0; i < a->warmup + a->steps && t >= 0; i++) {
        double t0 = app_seconds();
        ctx_reset(c);
        Tensor *loss = ag_cross_entropy(c, vit_forward(c, m, x, NULL), y);
        if (!loss || ag_backward(c, loss) != 0) {
            t = -1;
            break;
        }
        optim_clip_grad_norm(ps, np, 1.0);
        optim_step(o, 6e-4);
        optim_zero_grad(o);
        if (i >= a->warmup) t += app_seconds() - t0;
        if (getenv("CGRAD_DEBUG"))
            fprintf(stderr, "step %ld: arena chunks allocated %d, used %zu MiB, peak %zu MiB\n", i, c->nsys_allocs, c->used_total >> 20,
                    c->peak >> 20);
    }
    nn_params_train(&m->params, false);
    optim_free(o);
    free(ps);
    return t;
}

// seconds of the timed inference passes (the forward under no-grad), or -1
static double bench_infer(VitModel *m, Ctx *c, Tensor *x, const BenchArgs *a) {
    double t = 0;
    for (long i = 0; i < a->warmup + a->steps; i++) {
        double t0 = app_seconds();
        ctx_reset(c);
        ag_no_grad(c, true);
        Tensor *logits = vit_forward(c, m, x, NULL);
        ag_no_grad(c, false);
        if (!logits) return -1;
        if (i >= a->warmup) t += app_seconds() - t0;
    }
    return t;
}

// The encoder's int8 copies switched off (kept in saved) and on again, so that float32 and int8
// inference are timed in alternating rounds on the same model.
static void int8_switch(VitModel *m, struct QWeight **saved, bool on) {
    for (int i = 0; i < m->cfg.num_hidden_layers; i++) {
        for (int k = 0; k < VIT_NPROJ; k++) {
            struct QWeight **q = &saved[i * VIT_NPROJ + k];
            Tensor *w = vit_layer_proj(&m->layers[i], k)->weight;
            if (on)
                w->int8 = *q;
            else if (w->int8)
                *q = w->int8, w->int8 = NULL;
        }
    }
}

// float32 and int8 inference of the merged model, two alternating rounds, the faster of each:
// seconds into *t32 and *t8; -1 with a message
static int bench_int8(VitModel *m, Ctx *c, Tensor *x, const BenchArgs *a, double *t32, double *t8, char *err, size_t errn) {
    vit_merge_lora(m); // what --int8 serves: the adapter in the base (both rounds time the same model)
    if (vit_quantize_int8(m, err, errn) != 0) return -1;
    struct QWeight **saved = calloc((size_t)m->cfg.num_hidden_layers * VIT_NPROJ, sizeof *saved);
    if (!saved) return errorf(err, errn, "out of memory");
    *t32 = *t8 = INFINITY;
    for (int round = 0; round < 2; round++) {
        int8_switch(m, saved, false);
        double t = bench_infer(m, c, x, a);
        int8_switch(m, saved, true);
        double u = t < 0 ? -1 : bench_infer(m, c, x, a);
        if (t < 0 || u < 0) {
            free(saved);
            return errorf(err, errn, "%s", ctx_error(c) ? ctx_error(c) : "inference failed");
        }
        *t32 = fmin(*t32, t), *t8 = fmin(*t8, u);
    }
    free(saved);
    return 0;
}

// the machine's GEMM rate on a large square product: OpenBLAS's cblas_sgemm through cgrad's
// threaded split (cgrad's own kernels decline products this large), GFLOP/s
static double gemm_probe(Ctx *c, Rng *rng) {
    int64_t G = 2048;
    Tensor *ga = tensor_new(c, DT_F32, 2, (int64_t[]){G, G}), *gb = tensor_new(c, DT_F32, 2, (int64_t[]){G, G});
    Tensor *gc = tensor_new(c, DT_F32, 2, (int64_t[]){G, G});
    if (!ga || !gb || !gc) return 0;
    rng_fill_uniform(rng, ga, -1, 1), rng_fill_uniform(rng, gb, -1, 1);
    gemm_f32(false, false, G, G, G, 1.0, ga->data, G, gb->data, G, 0.0, gc->data, G);
    double tg = app_seconds();
    for (int i = 0; i < 3; i++) gemm_f32(false, false, G, G, G, 1.0, ga->data, G, gb->data, G, 0.0, gc->data, G);
    return 3 * 2.0 * G * G * G / (app_seconds() - tg) * 1e-9;
}

// how OpenMP's threads wait (tensor/wait_policy.c sets GOMP_SPINCOUNT unless the user chose)
static void omp_wait_desc(char *wait, size_t n) {
    const char *wp = getenv("OMP_WAIT_POLICY"), *sc = getenv("GOMP_SPINCOUNT");
    snprintf(wait, n, "%s%s%s%s", wp ? "OMP_WAIT_POLICY=" : "", wp ? wp : "", sc ? (wp ? " GOMP_SPINCOUNT=" : "GOMP_SPINCOUNT=") : "",
             sc ? sc : "");
    for (char *q = wait; *q; q++)
        if (*q == '"' || *q == '\\' || (unsigned char)*q < 0x20) *q = '?';
    if (!wait[0]) snprintf(wait, n, "libgomp default");
}

int cmd_bench(int argc, char **argv) {
    BenchArgs a = {.config = "deit-tiny", .batch = 8, .steps = 10, .warmup = 2};
    const CliOpt opts[] = {
        {"--model", OPT_STR, &a.model, 0, 0, "a model directory (its architecture and weights)"},
        {"--config", OPT_STR, &a.config, 0, 0, "a built-in architecture with random weights: deit-tiny (default)"},
        {"--batch", OPT_INT, &a.batch, 1, 4096, "images per step (8)"},
        {"--steps", OPT_INT, &a.steps, 1, 100000, "timed steps (10)"},
        {"--warmup", OPT_INT, &a.warmup, 0, 1000, "untimed steps first (2)"},
        {"--threads", OPT_INT, &a.threads, 1, 1024, "threads (all cores)"},
        {"--infer-only", OPT_FLAG, &a.infer_only, 0, 0, "inference alone, of the model as it is (no LoRA, no new label)"},
        {"--int8", OPT_FLAG, &a.int8, 0, 0,
         "inference in float32 and in int8 (--int8 of predict), alternating, on the model with its LoRA merged"},
        {"--json", OPT_FLAG, &a.json, 0, 0,
         "one JSON object: train_step_ms, train_img_per_s, infer_img_per_s, train_gflops_per_s, peak_rss_mb (and with --int8:\n"
         "int8_img_per_s, int8_kernel, int8_attention)"},
    };
    const int NO = (int)(sizeof opts / sizeof *opts);
    const char *usage =
        "deit_lora bench [--model MODEL_DIR | --config deit-tiny] [--batch B] [--steps N] [--threads T] [--infer-only] [--int8] [--json]";
    const char *pos[1];
    int npos =
        cli_command(&(CliCommand){"bench", usage, "Times the notebook's LoRA training step and inference on random input.", opts, NO}, argc,
                    argv, pos, 0);
    if (npos < 0) return npos == CLI_HELP ? 0 : 2;
    if (!a.model && strcmp(a.config, "deit-tiny")) return app_fail("bench", "--config: only deit-tiny is built in");
    app_threads(a.threads);
    char err[FILE_ERR_BUF];
    VitModel m;
    Rng rng = rng_new(42);
    if (bench_model(&m, &a, &rng, err, sizeof err) != 0) return app_fail("bench", err);
    int S = m.cfg.image_size, B = (int)a.batch;
    Ctx *c = ctx_new(64u << 20), *data = ctx_new(1 << 20);
    Tensor *x = tensor_new(data, DT_F32, 4, (int64_t[]){B, 3, S, S}), *y = tensor_new(data, DT_I64, 1, (int64_t[]){B});
    rng_fill_normal(&rng, x, 0, 1);
    for (int i = 0; i < B; i++) ((int64_t *)y->data)[i] = (int64_t)rng_below(&rng, (uint64_t)m.cfg.num_labels);
    double t_train = a.infer_only ? 0 : bench_train(&m, c, x, y, &a), t_inf = -1, t_int8 = 0;
    int rc = 0;
    if (t_train >= 0 && a.int8) {
        if (bench_int8(&m, c, x, &a, &t_inf, &t_int8, err, sizeof err) != 0) rc = app_fail("bench", err);
    } else if (t_train >= 0)
        t_inf = bench_infer(&m, c, x, &a);
    if (rc == 0 && (t_train < 0 || t_inf < 0)) {
        rc = app_fail("bench", ctx_error(c));
    } else if (rc == 0) {
        double rss = peak_rss_mb(); // before the GEMM probe's matrices
        double gemm_gflops = gemm_probe(data, &rng);
        double step_ms = 1e3 * t_train / a.steps, train_ips = t_train > 0 ? B * a.steps / t_train : 0, inf_ips = B * a.steps / t_inf;
        // training FLOPs: the forward, then a backward of about twice the forward (input gradients of
        // every linear, attention's four products) less the frozen weights' gradients, which are skipped
        double gflops = t_train > 0 ? 2.0 * forward_flops(&m.cfg, 4) * B / (t_train / a.steps) * 1e-9 : 0;
        char cpu[128], wait[96];
        const char *features;
        cpu_desc(cpu, sizeof cpu, &features);
        omp_wait_desc(wait, sizeof wait);
        int nt = a.threads ? (int)a.threads : omp_get_max_threads();
        char int8[192] = "";
        if (a.int8 && a.json)
            snprintf(int8, sizeof int8, ", \"int8_img_per_s\": %.2f, \"int8_kernel\": \"%s\", \"int8_attention\": \"%s\"",
                     B * a.steps / t_int8, tensor_int8_kernel(), app_int8_attention());
        else if (a.int8)
            snprintf(int8, sizeof int8, "; int8 inference %.2f images/s (%.2fx float32), int8 kernel %s", B * a.steps / t_int8,
                     t_inf / t_int8, tensor_int8_kernel());
        if (a.json)
            printf("{\"batch\": %d, \"threads\": %d, \"train_step_ms\": %.2f, \"train_img_per_s\": %.2f, \"infer_img_per_s\": %.2f, "
                   "\"train_gflops_per_s\": %.2f, \"sgemm_gflops_per_s\": %.2f, \"peak_rss_mb\": %.1f, \"cpu\": \"%s\", "
                   "\"cpu_features\": \"%s\", \"gemm_kernel\": \"%s\", \"omp_wait\": \"%s\"%s}\n",
                   B, nt, step_ms, train_ips, inf_ips, gflops, gemm_gflops, rss, cpu, features, sgemm_fast_isa(), wait, int8);
        else if (a.infer_only)
            printf("batch %d: inference %.2f images/s%s, peak RSS %.0f MiB; sgemm 2048^3 %.1f GFLOP/s; %s (%s), GEMM kernel %s\n", B,
                   inf_ips, int8, rss, gemm_gflops, cpu, features, sgemm_fast_isa());
        else
            printf("batch %d: training step %.1f ms (%.2f images/s, %.1f GFLOP/s), inference %.2f images/s%s, peak RSS %.0f MiB; "
                   "sgemm 2048^3 %.1f GFLOP/s; %s (%s), GEMM kernel %s\n",
                   B, step_ms, train_ips, gflops, inf_ips, int8, rss, gemm_gflops, cpu, features, sgemm_fast_isa());
    }
    ctx_free(c), ctx_free(data);
    vit_free(&m);
    return rc;
}
