// trainer.h: the Hugging Face Trainer's loop, for any model: micro-batches in windows of
// grad_accum (a partial window at the end of an epoch still steps), each micro-batch's loss =
// sum of its samples' losses / samples in its window, clipping, AdamW with HF's decay groups, the
// schedules, HF's log lines and trainer_state.json, atomic checkpoints rotated by
// save_total_limit, resume that reproduces an uninterrupted run bit for bit, data parallelism
// over MPI, and an evaluation loop with classification metrics.
//
// The Trainer knows a model only through a TrainModel: its parameters, the loss of a batch of
// sample indices, and (optionally) how its checkpoint files are written and read back.
#ifndef CGRAD_TRAINER_H
#define CGRAD_TRAINER_H

#include <signal.h>

#include "../base/fileio.h"
#include "../nn/nn.h"
#include "../optim/dist.h"
#include "../optim/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

// What the Trainer needs of a model. Samples are named by index (int64); the model fetches its
// own data for them, so the Trainer needs no data pipeline.
typedef struct TrainModel {
    void *self;          // passed to every function below
    NnParams *params;    // the parameters with requires_grad are trained; their names key the
                         // optimizer state and HF's decay groups (no decay for biases and norms).
                         // The set owns the train/eval mode and the generator of random draws
                         // (dropout): the Trainer switches the mode (train while training, eval to
                         // evaluate, as it was after) and reseeds the generator from TrainArgs.seed,
                         // its position kept in checkpoints and dealt over processes
    int64_t input_numel; // numbers in one sample's input, for HF's total_flos (6 x it x parameters)
    // The loss of samples items[0..n): the SUM of their losses times scale, a scalar built in c
    // (the Trainer runs the backward). label_smoothing: TrainArgs.label_smoothing, for classifiers.
    // NULL with a message in err on failure (a sample that cannot be read).
    Tensor *(*loss)(void *self, Ctx *c, const int64_t *items, int n, double scale, double label_smoothing, char *err, size_t errn);
    // For trainer_evaluate (NULL: evaluation is refused): class scores [n, nclasses] of items[0..n)
    // in c, and their true classes into labels[0..n).
    Tensor *(*logits)(void *self, Ctx *c, const int64_t *items, int n, int64_t *labels, char *err, size_t errn);
    int nclasses;
    // The model's part of a checkpoint folder, and reading it back on resume. NULL: the trainable
    // parameters as model.safetensors under their names (nn_params_save / nn_params_load).
    int (*save)(void *self, const char *dir, char *err, size_t errn);
    int (*load)(void *self, const char *dir, char *err, size_t errn);
} TrainModel;

typedef struct {
    int batch_size, grad_accum, epochs;
    double lr, weight_decay, max_grad_norm;
    double adam_beta1, adam_beta2, adam_eps;
    double label_smoothing;                          // HF's label_smoothing_factor (0)
    int logging_steps, save_steps, save_total_limit; // save_total_limit 0: keep all
    uint64_t seed, data_seed;
    SchedKind scheduler;
    int64_t warmup_steps;
    double warmup_ratio;
    bool shuffle;               // epoch orders from data_seed (else in order)
    const char *output_dir;     // checkpoints and trainer_state.json (NULL: none)
    bool resume;                // continue from the newest complete checkpoint in output_dir
    const int64_t *fixed_order; // tests: epochs x n positions, replacing the shuffle
    FILE *log;                  // HF's log lines (stdout by default; NULL: quiet)
    bool progress;              // a progress bar on stderr (plain lines when not a terminal)
    // what the run's data, split and order depend on, as "name=value" lines (the caller's words;
    // the trainer only compares them): kept in each checkpoint, and a resume whose lines differ
    // is refused, naming the first that does
    const char *run_settings;
    // data parallelism (NULL or one process: none): each process takes its share of every
    // accumulation window (micro-batches dealt round-robin, each with the dropout draws one process
    // would give it), the gradients are summed over the processes before clipping, and every
    // process takes the same step; rank 0 alone writes checkpoints. The caller silences logging on
    // the other ranks.
    const Dist *dist;
    // evaluation during training (HF's eval_strategy="steps"): every eval_steps optimizer steps (0:
    // never), trainer_evaluate on eval_items[0..neval) in batches of eval_batch, logged (eval_loss,
    // eval_accuracy, eval_precision, eval_recall, eval_f1 for class eval_target) beside the losses
    int64_t eval_steps;
    const int64_t *eval_items;
    int neval, eval_batch, eval_target;
    FILE *jsonl;         // every log entry (training and evaluation) as a JSON line, or NULL
    struct TbWriter *tb; // every log entry as TensorBoard scalars (train/loss, eval/accuracy, ...; tboard.h), or NULL
    // called after every optimizer step (tests, demos): loss of the step, norm before clipping, rate
    void (*on_step)(void *ud, int64_t step, double loss, double grad_norm, double lr);
    void *on_step_ud;
} TrainArgs;

typedef struct {
    double loss, grad_norm, learning_rate, epoch; // a training entry (eval false)
    int64_t step;
    bool eval; // an evaluation entry: the eval_* fields (loss, grad_norm and learning_rate unused)
    double eval_loss, eval_accuracy, eval_precision, eval_recall, eval_f1;
} TrainLog;

typedef struct {
    int64_t global_step, max_steps, steps_per_epoch, micro_per_epoch;
    double epoch;
    TrainLog *logs;
    int nlogs;
    double total_loss;        // sum of step losses (train_loss = total_loss / global_step)
    double tr_loss_since_log; // for the next log entry's mean
    int steps_since_log;
    double runtime_s, total_flos;
    int64_t samples;
    char last_checkpoint[FILE_PATH_BUF];
} TrainState;

void train_args_default(TrainArgs *a); // HF's TrainingArguments defaults
// Trains the model's trainable parameters on its samples items[0..n).
// Returns 0, -1 on error (message in err; the last good checkpoint stays), or 130 when
// trainer_stop was raised (the current step finished and a checkpoint was written).
int trainer_train(const TrainModel *tm, const int64_t *items, int n, const TrainArgs *a, TrainState *st, char *err, size_t errn);
void train_state_free(TrainState *st);
extern volatile sig_atomic_t trainer_stop;                                   // set from a signal handler to stop after this step
int trainer_latest_checkpoint(const char *output_dir, char *path, size_t n); // its step, or -1

// ---- evaluation: a classifier's metrics for one target class ----
typedef struct {
    int64_t n, tp, fp, fn, tn;
    double avg_loss;              // mean of -log(p_true + 1e-8)
    double accuracy;              // predictions equal to the label / n
    double precision, recall, f1; // for the target class (0 where a denominator is 0)
    int nclasses;
    int64_t *confusion; // nclasses x nclasses, [true][pred]
} Metrics;

// The same with the batches dealt over the processes of dist (NULL: this one), the counts and the
// loss summed: every process gets the metrics of the whole set.
int trainer_evaluate_dist(const TrainModel *tm, const int64_t *items, int n, int batch, int target, const Dist *dist, Metrics *out,
                          char *err, size_t errn);
int trainer_evaluate(const TrainModel *tm, const int64_t *items, int n, int batch, int target, Metrics *out, char *err, size_t errn);
// the metrics from counts (exposed for tests): fills accuracy..f1 and tp..tn from the matrix
void metrics_finish(Metrics *mt, int target);
void metrics_free(Metrics *mt);

// The training loss and learning rate against steps, as a PNG.
int trainer_plot(const TrainState *st, const char *path, char *err, size_t errn);
// its step axis: ticks at whole steps (1, 2 or 5 times a power of ten) from 0 to max, how many into
// t; and step s's pixel column on an axis drawn from x0 to x1 for steps 0..smax
int plot_ticks(double max, double *t, int maxn);
int plot_x(double s, double smax, int x0, int x1);

#ifdef __cplusplus
}
#endif

#endif
