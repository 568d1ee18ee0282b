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
#include <sys/socket.h>

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
// every image of the body (multipart: each part with a filename, or named "image" or "file"), at
// most max: how many, or -1 with a message (more than max is refused)
int serve_parse_uploads(const char *content_type, const uint8_t *body, size_t n, ServeUpload *ups, int max, char *err, size_t errn);
// A query parameter's integer in [lo, hi]; NULL keeps *out. 0, or -1 with a message.
int serve_parse_int(const char *what, const char *s, long lo, long hi, long *out, char *err, size_t errn);
bool serve_utf8_ok(const char *s); // valid UTF-8 without control characters

// waits on cv (mu held) for at most SECONDS; false when the time ran out (serve_batch.c)
bool serve_cond_wait(pthread_cond_t *cv, pthread_mutex_t *mu, double seconds);
struct sockaddr;
// a client's address as text ("127.0.0.1", "::1"; "" for another family) (serve_guard.c)
void serve_addr_text(const struct sockaddr *a, char *out, size_t n);

// ---- batching (serve_batch.c) ----

typedef enum { JOB_PREDICT, JOB_EXPLAIN } JobKind;

typedef struct ServeJob {
    JobKind kind;
    VitExplainMethod method; // JOB_EXPLAIN
    const float *x;          // the image as the model takes it (3 x S x S), decoded by the connection's thread
    float *probs;            // JOB_PREDICT: num_labels, filled by the worker
    double *map;             // JOB_EXPLAIN: grid * grid
    int label;
    double prob;
    int status; // 0, or an HTTP status (500) with the message in err
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

    float *x;        // the worker's batch of images, max_batch x 3 x S x S
    ServeJob **jobs; // the batch's jobs, then the readable ones (2 x max_batch)
    Ctx *ctx;        // the worker's arena
} ServeBatcher;

// The worker only runs the model (with its OpenMP threads): images are decoded on the connections'
// threads, under the server's decode budget. Everything the worker needs is allocated here: -1
// with a message when it cannot be.
int serve_batcher_start(ServeBatcher *b, VitModel *m, const ImageProcessor *ip, ServeMetrics *metrics, int max_batch, int capacity,
                        double wait_s, char *err, size_t errn);
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
// a connection cut by the guard: "deadline", "evicted" or "refused"
void serve_metrics_event(ServeMetrics *m, const char *event);

// ---- the connection guard (serve_guard.c): deadlines, limits per address, a reserve ----

typedef struct ServeGuard ServeGuard;
struct MHD_Connection;
// max_conns: connections at once; per_ip: from one address; request_timeout: seconds from a
// request's first byte until it is read in full
ServeGuard *serve_guard_new(int max_conns, int per_ip, double request_timeout, ServeMetrics *metrics);
void serve_guard_free(ServeGuard *g);
void serve_guard_body(ServeGuard *g, struct MHD_Connection *conn, size_t bytes); // body bytes received
void serve_guard_answering(ServeGuard *g, struct MHD_Connection *conn);          // read in full: never cut now
void serve_guard_done(ServeGuard *g, struct MHD_Connection *conn);               // answered: idle until the next
#ifdef CGRAD_HTTP // libmicrohttpd's callbacks: the accept policy and the connection notifier
#include <microhttpd.h>
enum MHD_Result serve_guard_accept(void *cls, const struct sockaddr *addr, socklen_t len);
void serve_guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context, enum MHD_ConnectionNotificationCode code);
#endif
// ---- the front door (serve_front.c): every request's head and framing checked before
// libmicrohttpd sees it; what fails is answered there (JSON, closed) ----

typedef struct ServeFront ServeFront;
struct MHD_Daemon;
// a request the front refused and answered itself: its client, method and target (as far as they
// were read; "" otherwise), status, the answer's body bytes, seconds since its first byte
typedef void (*ServeFrontRefused)(void *cls, const struct sockaddr *client, const char *method, const char *target, int status,
                                  size_t bytes, double seconds);
// takes LISTEN_FD (listening) and accepts on it, handing each connection to DAEMON (started with
// MHD_USE_NO_LISTEN_SOCKET) through a socket pair; NULL when the thread cannot start
ServeFront *serve_front_start(int listen_fd, struct MHD_Daemon *daemon, ServeFrontRefused refused, void *cls);
void serve_front_stop_accepting(ServeFront *f);      // closes the listening socket
void serve_front_free(ServeFront *f, double wait_s); // after the daemon stops: waits for the connections' threads
// libmicrohttpd completed a request on its end MHD_FD: true when the front door refused that
// request itself (its body went bad after its head was passed on) and counts it
bool serve_front_completed(ServeFront *f, int mhd_fd);

// the Prometheus text exposition (version 0.0.4); the caller frees
char *serve_metrics_text(ServeMetrics *m, int queue_depth, int in_flight);

// ---- the page (serve_page.c) ----

extern const char serve_page_html[]; // one file, no external resources

#endif
