// serve.h: the pieces of `deit_lora serve` (one file each): request parsing (serve_request.c,
// no HTTP library, fuzzed), the batching queue and its worker (serve_batch.c), the counters in
// Prometheus' text format (serve_metrics.c), the page (serve_page.c), and the HTTP side on
// libmicrohttpd with the command itself (cmd_serve.c).
#ifndef DEIT_LORA_SERVE_H
#define DEIT_LORA_SERVE_H

#include "../models/image_processor.h"
#include "../models/vit.h"
#include "../models/vit_explain.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// ---- request parsing (serve_request.c) ----

// The image in a request body: for multipart/form-data, the first part with a filename (or the
// part named "image" or "file"), its filename as name; for any other content type, the whole
// body. data points into body. 0, or -1 with a message for a 400 answer.
typedef struct {
    const uint8_t *data;
    size_t n;
    char name[256]; // "" when the request gives none
} ServeUpload;
int serve_parse_upload(const char *content_type, const uint8_t *body, size_t n, ServeUpload *up, char *err, size_t errn);
// A query parameter's integer in [lo, hi]; NULL keeps *out. 0, or -1 with a message.
int serve_parse_int(const char *what, const char *s, long lo, long hi, long *out, char *err, size_t errn);
bool serve_utf8_ok(const char *s); // valid UTF-8 without control characters

// ---- batching (serve_batch.c) ----

typedef enum { JOB_PREDICT, JOB_EXPLAIN } JobKind;

typedef struct ServeJob {
    JobKind kind;
    VitExplainMethod method; // JOB_EXPLAIN
    const uint8_t *bytes;    // the encoded image (JPEG or PNG) and its name for messages
    size_t nbytes;
    const char *name;
    Image *seen;   // JOB_EXPLAIN: the image as the model saw it, filled by the worker
    float *probs;  // JOB_PREDICT: num_labels, filled by the worker
    double *map;   // JOB_EXPLAIN: grid * grid
    int label;
    double prob;
    int status; // 0, or an HTTP status (400 a bad image, 500) with the message in err
    char err[512];
    bool done;
} ServeJob;

typedef struct ServeMetrics ServeMetrics;

typedef struct {
    VitModel *model;
    const ImageProcessor *ip;
    ServeMetrics *metrics;
    int max_batch, capacity; // the largest batch; how many jobs may wait
    double wait_s;           // how long the first job of a batch waits for others
    pthread_mutex_t mu;
    pthread_cond_t more, done;
    ServeJob **queue; // a ring of capacity
    int head, count;
    bool stop;
    pthread_t worker;
    uint64_t batches, images;
} ServeBatcher;

// The worker decodes and preprocesses a batch's images with the model's threads (OpenMP), then runs
// the model: all the work goes through one team of threads, which the cores are not shared with.
int serve_batcher_start(ServeBatcher *b, VitModel *m, const ImageProcessor *ip, ServeMetrics *metrics, int max_batch, int capacity,
                        double wait_s);
// Queues the job and waits for its result: 0, or -1 at once when the queue is full or the server
// is stopping (the caller answers 503).
int serve_batcher_run(ServeBatcher *b, ServeJob *job);
int serve_batcher_depth(ServeBatcher *b);
void serve_batcher_stop(ServeBatcher *b); // finishes the queued jobs, then joins the worker

// ---- metrics (serve_metrics.c) ----

ServeMetrics *serve_metrics_new(void);
void serve_metrics_free(ServeMetrics *m);
// one answered request: its path ("/predict", ...; anything else counts as "other"), status, seconds
void serve_metrics_request(ServeMetrics *m, const char *path, int status, double seconds);
void serve_metrics_batch(ServeMetrics *m, int size);
// the Prometheus text exposition (version 0.0.4); the caller frees
char *serve_metrics_text(ServeMetrics *m, int queue_depth, int in_flight);

// ---- the page (serve_page.c) ----

extern const char serve_page_html[]; // one file, no external resources

#endif
