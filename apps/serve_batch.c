// serve_batch.c: dynamic batching. Connection threads queue jobs; one worker takes the first,
// waits up to wait_s for more (or until max_batch are there), runs the predictions as one batch
// and wakes their threads. Explanations run one at a time, in queue order, on the same worker: the
// model is only ever used by this thread.
#include "deit_lora.h"
#include "serve.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

bool serve_cond_wait(pthread_cond_t *cv, pthread_mutex_t *mu, double seconds) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double t = (double)ts.tv_nsec * 1e-9 + seconds;
    ts.tv_sec += (time_t)t;
    ts.tv_nsec = (long)((t - floor(t)) * 1e9);
    return pthread_cond_timedwait(cv, mu, &ts) != ETIMEDOUT;
}

// each job's image (decoded by its connection's thread) into x, job i at image i
static void prepare(ServeBatcher *b, ServeJob **jobs, int n, float *x) {
    int S = b->model->cfg.image_size;
    size_t per = 3 * (size_t)S * (size_t)S;
    for (int i = 0; i < n; i++) memcpy(x + per * (size_t)i, jobs[i]->x, sizeof *x * per);
}

static void run_predictions(ServeBatcher *b, Ctx *c, ServeJob **all, int n_all, float *x, ServeJob **jobs) {
    VitModel *m = b->model;
    int S = m->cfg.image_size, K = m->cfg.num_labels, n = 0;
    size_t per = 3 * (size_t)S * (size_t)S;
    prepare(b, all, n_all, x);
    for (int i = 0; i < n_all; i++) // the readable images together at the front
        if (all[i]->status == 0) {
            if (n != i) memmove(x + per * (size_t)n, x + per * (size_t)i, sizeof *x * per);
            jobs[n++] = all[i];
        }
    if (n == 0) return;
    ctx_reset(c);
    ag_no_grad(c, true);
    Tensor *p = ag_softmax(c, vit_forward(c, m, tensor_from_buffer(c, DT_F32, 4, (int64_t[]){n, 3, S, S}, x), NULL));
    for (int i = 0; i < n; i++) {
        ServeJob *j = jobs[i];
        if (!p) {
            j->status = 500;
            snprintf(j->err, sizeof j->err, "%s", ctx_error(c));
            continue;
        }
        const float *row = (const float *)p->data + (size_t)i * (size_t)K;
        memcpy(j->probs, row, sizeof *row * (size_t)K);
        for (int k = 0; k < K; k++)
            if (!isfinite(row[k])) {
                j->status = 500;
                snprintf(j->err, sizeof j->err, "the model's output is not finite");
            }
    }
}

static void run_explanation(ServeBatcher *b, Ctx *c, ServeJob *j, float *x) {
    prepare(b, &j, 1, x);
    if (j->status == 0 && vit_explain(c, b->model, x, j->method, -1, j->map, &j->label, &j->prob, j->err, sizeof j->err) != 0)
        j->status = 500;
}

static void *worker(void *arg) {
    ServeBatcher *b = arg;
    VitModel *m = b->model;
    int S = m->cfg.image_size;
    (void)S;
    float *x = b->x;
    ServeJob **jobs = b->jobs, **ok = b->jobs + b->max_batch;
    Ctx *c = b->ctx;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (b->count == 0 && !b->stop) pthread_cond_wait(&b->more, &b->mu);
        if (b->count == 0) break; // stopping, and nothing left
        // the first job waits a little for company, unless the batch is full already
        double until = app_seconds() + b->wait_s;
        while (b->count < b->max_batch && !b->stop && b->queue[b->head]->kind == JOB_PREDICT) {
            double left = until - app_seconds();
            if (left <= 0 || !serve_cond_wait(&b->more, &b->mu, left)) break;
        }
        int n = 0;
        JobKind kind = b->queue[b->head]->kind;
        while (b->count > 0 && n < (kind == JOB_PREDICT ? b->max_batch : 1) && b->queue[b->head]->kind == kind) {
            jobs[n++] = b->queue[b->head];
            b->head = (b->head + 1) % b->capacity;
            b->count--;
        }
        pthread_mutex_unlock(&b->mu);
        if (kind == JOB_PREDICT)
            run_predictions(b, c, jobs, n, x, ok);
        else
            run_explanation(b, c, jobs[0], x);
        serve_metrics_batch(b->metrics, n);
        pthread_mutex_lock(&b->mu);
        b->batches++;
        b->images += (uint64_t)n;
        for (int i = 0; i < n; i++) jobs[i]->done = true;
        pthread_cond_broadcast(&b->done);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

static void batcher_free_buffers(ServeBatcher *b) {
    free(b->queue), free(b->x), free(b->jobs);
    ctx_free(b->ctx);
    b->queue = NULL, b->x = NULL, b->jobs = NULL, b->ctx = NULL;
}

int serve_batcher_start(ServeBatcher *b, VitModel *m, const ImageProcessor *ip, ServeMetrics *metrics, int max_batch, int capacity,
                        double wait_s, char *err, size_t errn) {
    memset(b, 0, sizeof *b);
    b->model = m, b->ip = ip, b->metrics = metrics;
    b->max_batch = max_batch, b->capacity = capacity, b->wait_s = wait_s;
    size_t S = (size_t)m->cfg.image_size, per = 3 * S * S;
    b->queue = calloc((size_t)capacity, sizeof *b->queue);
    b->x = per <= SIZE_MAX / sizeof *b->x / (size_t)max_batch ? malloc(sizeof *b->x * per * (size_t)max_batch) : NULL;
    b->jobs = calloc(2 * (size_t)max_batch, sizeof *b->jobs);
    b->ctx = ctx_new(16u << 20);
    if (!b->queue || !b->x || !b->jobs || !b->ctx) {
        snprintf(err, errn, "out of memory for a batch of %d images of %zux%zu (--max-batch)", max_batch, S, S);
        batcher_free_buffers(b);
        return -1;
    }
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->more, NULL);
    pthread_cond_init(&b->done, NULL);
    if (pthread_create(&b->worker, NULL, worker, b) != 0) {
        snprintf(err, errn, "cannot start the batching thread");
        batcher_free_buffers(b);
        return -1;
    }
    return 0;
}

int serve_batcher_run(ServeBatcher *b, ServeJob *job) {
    job->done = false;
    job->status = 0;
    pthread_mutex_lock(&b->mu);
    if (b->stop || b->count == b->capacity) {
        pthread_mutex_unlock(&b->mu);
        return -1;
    }
    b->queue[(b->head + b->count) % b->capacity] = job;
    b->count++;
    pthread_cond_signal(&b->more);
    while (!job->done) pthread_cond_wait(&b->done, &b->mu);
    pthread_mutex_unlock(&b->mu);
    return 0;
}

int serve_batcher_depth(ServeBatcher *b) {
    pthread_mutex_lock(&b->mu);
    int n = b->count;
    pthread_mutex_unlock(&b->mu);
    return n;
}

void serve_batcher_stop(ServeBatcher *b) {
    pthread_mutex_lock(&b->mu);
    b->stop = true;
    pthread_cond_broadcast(&b->more);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->worker, NULL);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->more);
    pthread_cond_destroy(&b->done);
    batcher_free_buffers(b);
}
