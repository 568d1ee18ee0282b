// deit_lora.h: the commands of the deit_lora program (one file each).
#ifndef DEIT_LORA_H
#define DEIT_LORA_H

#include "../base/fileio.h"
#include "../models/adapter.h"
#include "../models/image_processor.h"
#include "../models/vit.h"
#include "../models/vit_train.h"
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>

int cmd_check(int argc, char **argv);
int cmd_preprocess(int argc, char **argv);

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_convert_adapter(int argc, char **argv);
int cmd_explain(int argc, char **argv);
int cmd_serve(int argc, char **argv);

// prints "deit_lora CMD: MESSAGE" and returns 2 (bad input)
int app_fail(const char *cmd, const char *msg);
// the model (with its image processor, and the adapter when given)
// the model, its image processor and the adapter (may be NULL); with int8, the adapter merged in and
// the encoder's products quantized (vit_quantize_int8)
int app_load_model(VitModel *m, ImageProcessor *ip, const char *model, const char *adapter, bool int8, char *err, size_t errn);
// the --int8 option of the commands that only run the model forward
#define APP_INT8_OPT(var)                                                                                                                  \
    { "--int8", OPT_FLAG, &(var), 0, 0, "int8 products in the encoder (dynamic quantization: int8 weights, inputs per row)" }
// an output folder: created, or existing and empty (or --overwrite / --resume)
// An output folder given by FLAG: it must not be, hold, or lie inside any of the NULL-terminated
// input paths (a model, an adapter, the data), and an existing non-empty one needs --overwrite
// (or --resume). Created later, by app_make_output_dir, once every input has been checked.
int app_output_dir(const char *flag, const char *dir, bool overwrite, bool resume, const char *const *inputs, char *err, size_t errn);
// An output file given by FLAG: the same rules; an existing file needs --overwrite.
int app_output_file(const char *flag, const char *path, bool overwrite, const char *const *inputs, char *err, size_t errn);
int app_make_output_dir(const char *dir, char *err, size_t errn); // after every input is checked
// Locks the output folder for this process (DIR/.deit_lora.lock, an fcntl lock the kernel drops
// when the process dies, so kill -9 leaves no stale lock); refuses, naming the holder's process
// id, when another run holds it. app_unlock_output removes the lock file at the end.
int app_lock_output(const char *dir, char *err, size_t errn);
void app_unlock_output(void);
#define APP_LOCK_FILE ".deit_lora.lock"
// 3 when writing an output failed (disk full, I/O error), else the given status
int app_exit_status(int rc);
// one warning for the files of --data that are not images (on the first MPI rank only)
void app_warn_skipped(const Dataset *d, const char *data);
// dataset class indices -> the model's label ids (by name)
int app_map_labels(Dataset *d, const VitConfig *cfg, const char *data, char *err, size_t errn);
void app_threads(long n);
// --version (for the program and every command): version, commit, CPU kernels, MPI and HTTP
void app_print_version(FILE *f, const char *prog);
const char *app_int8_attention(void);                    // "bf16" or "float32": the attention's products under --int8
const char *app_cpu_features(void);                      // "avx512f+avx2+fma", "avx2+fma", "no avx2" or "not x86-64"
bool app_wants_version(int argc, char **argv, int from); // --version among argv[from..] (before --)
// MPI ranks must train the same thing: the settings (one item a line of SETTINGS), the LoRA spec,
// the data (names, labels, bytes) and the model's weights are compared between the ranks; -1 on
// every rank, naming the first item and rank that differ, when they are not the same
int app_ranks_agree(const Dist *dist, const char *settings, const VitModel *m, const Dataset *d, char *err, size_t errn);
double app_seconds(void);     // a monotonic clock, in seconds
void app_catch_signals(void); // SIGINT/SIGTERM finish the step, checkpoint, exit 130
int app_target_list(const char *s, VitLoraSpec *spec, char *err, size_t errn);

// The README.md of a training run's output folder (model_card.c): peft's front matter, the data,
// the hyper-parameters, the logs and the final metrics (NULL: none held out)
typedef struct {
    const char *base_model, *data, *label; // the --model and --data folders, the class the metrics are for
    const TrainArgs *args;
    const TrainState *state;
    const VitLoraSpec *spec;
    int ntrain, ntest;
    const Metrics *metrics;
} ModelCard;
int model_card_write(const ModelCard *c, const char *dir, char *err, size_t errn);
// a log file written as a run goes (created with O_NOFOLLOW: a planted symlink is refused; append
// keeps what a resumed run wrote); NULL with a message
FILE *log_open(const char *path, bool append, char *err, size_t errn);

#endif
