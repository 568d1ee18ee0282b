// deit_lora: fine-tune DeiT-Tiny (or any ViT) with LoRA, the seed notebook as one program.
#include "deit_lora.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *about;
} CMDS[] = {
    {"demo", cmd_demo, "the offline default job: the notebook's story on Fashion-MNIST"},
    {"train", cmd_train, "fine-tune with LoRA on a folder of images (the notebook, end to end)"},
    {"eval", cmd_eval, "loss, accuracy, precision, recall, F1 on a folder of images"},
    {"predict", cmd_predict, "top-K labels with probabilities for images"},
    {"explain", cmd_explain, "where the model looks: attention rollout or relevance maps over images"},
    {"serve", cmd_serve, "the model over HTTP: a JSON API with batching, metrics and a page"},
    {"merge", cmd_merge, "fold an adapter into the model: an HF model directory"},
    {"info", cmd_info, "what a model or adapter directory holds"},
    {"convert-adapter", cmd_convert_adapter, "rewrite an adapter for transformers 4 (v4) or 5 (v5)"},
    {"bench", cmd_bench, "time the LoRA training step and inference (DeiT-Tiny, random input)"},
    {"preprocess", cmd_preprocess, "images to pixel_values as the model sees them (Pillow-exact)"},
    {"check", cmd_check, "compare forward and backward with reference tensors (golden files)"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: deit_lora COMMAND [options]   (deit_lora COMMAND --help for each; --version)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof CMDS / sizeof *CMDS; i++) fprintf(f, "  %-10s %s\n", CMDS[i].name, CMDS[i].about);
}

// the commands that share their work over MPI ranks (mpirun -np N deit_lora COMMAND ...)
static bool runs_distributed(const char *cmd) { return !strcmp(cmd, "train") || !strcmp(cmd, "predict") || !strcmp(cmd, "eval"); }

// Under MPI, an error that every rank hits (a bad flag, a missing file) is said once, by rank 0:
// the other ranks hold what they write to stderr in a temporary file. At the end, a rank that
// failed waits two seconds before it passes its messages on: when rank 0 failed too, its abort
// has ended the job by then and the copy is never printed; when only this rank failed, its
// message is the cause, and it is printed. (Not in sanitizer builds, whose reports must not be
// held by a process that may abort.)
typedef struct {
    FILE *held;
    int saved;
} HeldStderr;

static HeldStderr hold_stderr(const Dist *d) {
    HeldStderr h = {NULL, -1};
#if !defined(__SANITIZE_ADDRESS__)
    if (dist_root(d) || d->size <= 1 || !(h.held = tmpfile())) return h;
    fflush(stderr);
    h.saved = dup(2);
    if (h.saved < 0 || dup2(fileno(h.held), 2) < 0) {
        if (h.saved >= 0) close(h.saved);
        fclose(h.held);
        h = (HeldStderr){NULL, -1};
    }
#else
    (void)d;
#endif
    return h;
}

static void release_stderr(HeldStderr *h, int rc) {
    if (!h->held) return;
    fflush(stderr);
    dup2(h->saved, 2);
    close(h->saved);
    if (rc != 0) sleep(2); // rank 0 ends the job first when it failed too
    rewind(h->held);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, h->held)) > 0) fwrite(buf, 1, n, stderr);
    fclose(h->held);
    h->held = NULL;
}

int main(int argc, char **argv) {
    cgrad_wait_policy(argv); // OpenMP threads that sleep soon when they wait (tensor.h)
    Dist d;
    dist_init(&argc, &argv, &d);
    if (!dist_root(&d) && !freopen("/dev/null", "w", stdout)) return 2; // rank 0 alone prints results
    HeldStderr held = hold_stderr(&d);
    int rc = 2;
    if (app_wants_version(argc, argv, 1) && (argc < 2 || strcmp(argv[1], "--"))) { // deit_lora [COMMAND] --version
        if (dist_root(&d)) app_print_version(stdout, "deit_lora");
        rc = 0;
    } else if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        if (dist_root(&d)) usage(argc < 2 ? stderr : stdout);
        rc = argc < 2 ? 2 : 0;
    } else if (d.size > 1 && !runs_distributed(argv[1])) {
        if (dist_root(&d))
            fprintf(stderr, "deit_lora %s: does not run over MPI ranks (only train, predict and eval do); run it alone\n", argv[1]);
    } else {
        size_t i = 0;
        while (i < sizeof CMDS / sizeof *CMDS && strcmp(argv[1], CMDS[i].name)) i++;
        if (i < sizeof CMDS / sizeof *CMDS)
            rc = CMDS[i].fn(argc, argv);
        else if (dist_root(&d)) {
            fprintf(stderr, "deit_lora: unknown command '%s'\n", argv[1]);
            usage(stderr);
        }
    }
    rc = file_close_stdout("deit_lora", rc); // a result that could not be written (a full disk) is exit 3
    release_stderr(&held, rc);
    dist_finalize(&d, rc);
    return rc;
}
