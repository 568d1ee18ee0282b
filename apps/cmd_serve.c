// cmd_serve.c: `deit_lora serve`: the model over HTTP/1.1 (libmicrohttpd, a thread per
// connection). POST /predict answers predict --json's line, POST /explain the explain picture (or
// its JSON), GET /health, GET /metrics (Prometheus), GET / the page. Requests that arrive together
// run as one batch (serve_batch.c). SIGTERM or SIGINT: stop accepting, finish the requests in
// flight, exit 0.
#include "../base/strbuf.h"
#include "deit_lora.h"
#include "results.h"
#include "serve.h"
#include "version.h"

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#ifndef CGRAD_HTTP

int cmd_serve(int argc, char **argv) {
    (void)argc, (void)argv;
    return app_fail("serve", "this deit_lora was built without libmicrohttpd (install libmicrohttpd-dev and rebuild; "
                             "meson's 'http' feature)");
}

#else

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <unistd.h>

typedef struct {
    VitModel model;
    ImageProcessor ip;
    ServeBatcher batcher;
    ServeMetrics *metrics;
    ServeGuard *guard;
    ServeFront *front;
    const char *model_dir, *adapter_dir; // what /health says is served
    FILE *access_log;                    // --access-log, or NULL
    const char *cors_origin;             // --cors-origin, or NULL
    bool int8;                           // --int8: the encoder's products in int8
    pthread_mutex_t log_mu;
    size_t max_upload;
    size_t decode_budget, decode_used; // bytes that images being decoded may take, and take now
    pthread_cond_t decode_free;        // (under mu) signalled when a decode ends
    double request_timeout;
    pthread_mutex_t mu;
    int in_flight;
    bool draining;
} Server;

// one request's state, from its first call to its completion
typedef struct {
    char path[16]; // the metrics' name for it
    StrBuf body;
    int refused; // a refusal answered once the body is read (and dropped)
    char refusal[160];
    size_t dropped; // bytes of body read and dropped
    int status;
    double t0;
    char method[12], url[200]; // for the access log
    size_t bytes;              // the answer's body
    const char *cors_origin;   // the server's --cors-origin, or NULL
} Request;

// ---- routing ----

static const char *route(const char *url) {
    static const char *const known[] = {"/predict", "/explain", "/health", "/metrics", "/"};
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (!strcmp(url, known[i])) return known[i];
    return "other";
}

static bool is_post_path(const char *p) { return !strcmp(p, "/predict") || !strcmp(p, "/explain"); }

// ---- answers ----

// --cors-origin: another origin's page may read the answer (nothing when origin is NULL)
static void allow_origin(struct MHD_Response *resp, const char *origin) {
    if (!origin) return;
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
    if (strcmp(origin, "*")) MHD_add_response_header(resp, "Vary", "Origin");
}

static enum MHD_Result answer(struct MHD_Connection *conn, Request *r, int status, const char *type, void *data, size_t n,
                              enum MHD_ResponseMemoryMode mode) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(n, data, mode);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, is_post_path(r->path) ? "POST" : "GET");
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE) MHD_add_response_header(resp, "Retry-After", "1");
    allow_origin(resp, r->cors_origin);
    r->status = status;
    r->bytes = n;
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result answer_text(struct MHD_Connection *conn, Request *r, int status, const char *type, StrBuf *b) {
    if (b->oom) {
        sb_free(b);
        static char oom[] = "{\"error\": \"out of memory\"}\n";
        return answer(conn, r, 500, "application/json", oom, sizeof oom - 1, MHD_RESPMEM_PERSISTENT);
    }
    char *s = b->s ? b->s : strdup("");
    size_t n = b->s ? b->n : 0;
    memset(b, 0, sizeof *b);
    return answer(conn, r, status, type, s, n, MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result answer_error(struct MHD_Connection *conn, Request *r, int status, const char *msg) {
    StrBuf b = {0};
    sb_printf(&b, "{\"error\": ");
    sb_json_str(&b, msg);
    sb_printf(&b, "}\n");
    return answer_text(conn, r, status, "application/json", &b);
}

// ---- the model's endpoints ----

// the images of a finished upload (up to max) and their names (multipart file names, ?name=, or
// "upload"): how many, or -1 with the HTTP status in *st and the message in err
static int uploads_of(struct MHD_Connection *conn, Request *r, ServeUpload *ups, int max, char (*names)[256], int *st, char *err,
                      size_t errn) {
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    int k = serve_parse_uploads(ct, (const uint8_t *)r->body.s, r->body.n, ups, max, err, errn);
    *st = 400;
    if (k < 0) return -1;
    const char *qn = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "name");
    if (qn && !serve_utf8_ok(qn)) return errorf(err, errn, "name: not UTF-8 text");
    for (int i = 0; i < k; i++) {
        snprintf(names[i], sizeof names[i], "%s", ups[i].name[0] ? ups[i].name : qn && *qn ? qn : "upload");
        utf8_cut_clean(names[i]); // a long name cut short ends on a whole character
    }
    return k;
}

// The upload decoded and preprocessed into x (and, for explain, the image as the model sees it into
// seen) on this connection's thread, once its decoded size fits in the decode budget: admission by
// the size the header announces, waiting for other decodes to end until the request's deadline.
// 0, or an HTTP status with the message in err.
static int decode_upload(Server *s, const ServeUpload *up, const char *name, double t0, Image *seen, float *x, char *err, size_t errn) {
    int w, h;
    size_t cost;
    if (image_probe(up->data, up->n, &w, &h, &cost, name, err, errn) != 0) return 400;
    if (cost > s->decode_budget) {
        snprintf(err, errn, "%s: %dx%d pixels need %zu MiB to decode, above this server's decode budget of %zu MiB (--decode-memory-mb)",
                 name, w, h, (cost >> 20) + 1, s->decode_budget >> 20);
        return 413;
    }
    pthread_mutex_lock(&s->mu);
    while (s->decode_used + cost > s->decode_budget) {
        double left = t0 + s->request_timeout - app_seconds();
        if (left <= 0) {
            pthread_mutex_unlock(&s->mu);
            snprintf(err, errn, "busy: other images are being decoded; try again");
            return 503;
        }
        serve_cond_wait(&s->decode_free, &s->mu, left < 0.2 ? left : 0.2);
    }
    s->decode_used += cost;
    pthread_mutex_unlock(&s->mu);
    Image im = {0}, g = {0};
    int st = 0;
    if (image_decode(&im, up->data, up->n, name, err, errn) != 0)
        st = 400;
    else if (image_processor_geometry(&s->ip, &im, &g) != 0) {
        snprintf(err, errn, "%.300s: preprocessing failed (out of memory?)", name);
        st = 500;
    } else
        image_processor_tensor(&s->ip, &g, x);
    image_free(&im);
    if (st == 0 && seen)
        *seen = g;
    else
        image_free(&g);
    pthread_mutex_lock(&s->mu);
    s->decode_used -= cost;
    pthread_cond_broadcast(&s->decode_free);
    pthread_mutex_unlock(&s->mu);
    return st;
}

// one image through the model: decoded (under the decode budget), then run by the batcher; job's
// buffers (x, the job's input, probs, map) are the caller's. 0, or an HTTP status with the message in err.
static int run_image(Server *s, Request *r, const ServeUpload *up, const char *name, ServeJob *job, float *x, Image *seen, char *err,
                     size_t errn) {
    int st = decode_upload(s, up, name, r->t0, seen, x, err, errn);
    if (st == 0 && serve_batcher_run(&s->batcher, job) != 0) {
        st = 503;
        snprintf(err, errn, "busy: %d requests are waiting already; try again", s->batcher.capacity);
    } else if (st == 0 && job->status != 0) {
        st = job->status;
        snprintf(err, errn, "%s", job->err);
    }
    return st;
}

// POST /predict with several images (a multipart form with several files): a JSON list with one
// entry per image, in order: predict's object, or {"image": NAME, "error": ...} for one that failed
static enum MHD_Result predict_many(Server *s, struct MHD_Connection *conn, Request *r, const ServeUpload *ups, char (*names)[256], int k,
                                    long top, ServeJob *job, float *x) {
    StrBuf b = {0};
    char err[512];
    sb_printf(&b, "[");
    for (int i = 0; i < k; i++) {
        if (i) sb_printf(&b, ", ");
        int st = run_image(s, r, &ups[i], names[i], job, x, NULL, err, sizeof err);
        if (st == 0) {
            size_t at = b.n;
            results_predict(&b, names[i], job->probs, (int)top, true, &s->model.cfg);
            while (b.n > at && b.s[b.n - 1] == '\n') b.s[--b.n] = 0; // one line each: no newline inside the list
        } else {
            sb_printf(&b, "{\"image\": ");
            sb_json_str(&b, names[i]);
            sb_printf(&b, ", \"status\": %d, \"error\": ", st);
            sb_json_str(&b, err);
            sb_printf(&b, "}");
        }
    }
    sb_printf(&b, "]\n");
    return answer_text(conn, r, 200, "application/json", &b);
}

static enum MHD_Result model_endpoint(Server *s, struct MHD_Connection *conn, Request *r, bool explain) {
    const VitConfig *cf = &s->model.cfg;
    int S = cf->image_size, K = cf->num_labels, grid = S / cf->patch_size, maxn = explain ? 1 : s->batcher.max_batch;
    char err[512];
    long top = 5, method = VIT_EXPLAIN_ROLLOUT;
    const char *fmt = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "format");
    const char *mname = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "method");
    if (serve_parse_int("top", MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "top"), 1, 100000, &top, err, sizeof err) != 0)
        return answer_error(conn, r, 400, err);
    if (explain && mname && (method = vit_explain_method(mname)) < 0) return answer_error(conn, r, 400, "method: not rollout or relevance");
    if (explain && s->int8 && method != VIT_EXPLAIN_ROLLOUT) // its backward would be float32: a map of neither model
        return answer_error(conn, r, 400, "method: relevance needs gradients, which this server (--int8) does not run; use rollout");
    if (explain && fmt && strcmp(fmt, "png") && strcmp(fmt, "json")) return answer_error(conn, r, 400, "format: not png or json");
    float *probs = malloc(sizeof *probs * (size_t)K), *x = malloc(sizeof *x * 3 * (size_t)S * (size_t)S);
    double *map = malloc(sizeof *map * (size_t)grid * (size_t)grid);
    ServeUpload *ups = malloc(sizeof *ups * (size_t)maxn);
    char(*names)[256] = malloc(sizeof *names * (size_t)maxn);
    Image seen = {0}, over = {0};
    StrBuf b = {0};
    enum MHD_Result res;
    ServeJob job = {.kind = explain ? JOB_EXPLAIN : JOB_PREDICT, .method = (VitExplainMethod)method, .x = x, .probs = probs, .map = map};
    int st = 500, k = -1;
    if (!probs || !map || !x || !ups || !names)
        snprintf(err, sizeof err, "out of memory");
    else if ((k = uploads_of(conn, r, ups, maxn, names, &st, err, sizeof err)) == 1)
        st = run_image(s, r, &ups[0], names[0], &job, x, explain ? &seen : NULL, err, sizeof err);
    if (k > 1)
        res = predict_many(s, conn, r, ups, names, k, top, &job, x);
    else if (st != 0)
        res = answer_error(conn, r, st, err);
    else if (!explain) {
        results_predict(&b, names[0], probs, (int)top, true, cf);
        res = answer_text(conn, r, 200, "application/json", &b);
    } else if (fmt && !strcmp(fmt, "json")) {
        results_explain_json(&b, names[0], vit_explain_method_name(job.method), cf, job.label, job.prob, map, grid);
        res = answer_text(conn, r, 200, "application/json", &b);
    } else {
        uint8_t *png = NULL;
        size_t n = 0;
        if (results_explain_overlay(&seen, map, grid, &over) != 0 || image_encode_png(&over, &png, &n, err, sizeof err) != 0)
            res = answer_error(conn, r, 500, "out of memory");
        else
            res = answer(conn, r, 200, "image/png", png, n, MHD_RESPMEM_MUST_FREE);
    }
    image_free(&seen), image_free(&over);
    free(probs), free(map), free(x), free(ups), free(names);
    return res;
}

// A refusal: answered at once when no body follows, when the client waits for "100 Continue", or
// when the body announced is absurd; otherwise after the body is read and dropped, so that a client
// still sending gets its answer instead of a reset connection. Nothing of the body is kept.
static enum MHD_Result refuse(Server *s, struct MHD_Connection *conn, Request *r, int status, const char *msg) {
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    const char *expect = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
    unsigned long long n = cl ? strtoull(cl, NULL, 10) : 0;
    bool body = n > 0 || (te && strcasecmp(te, "identity"));
    if (!body || (expect && !strcasecmp(expect, "100-continue")) || n / 16 > s->max_upload) return answer_error(conn, r, status, msg);
    r->refused = status;
    snprintf(r->refusal, sizeof r->refusal, "%s", msg);
    return MHD_YES;
}

static const char *too_big_msg(Server *s, char *m, size_t n) {
    snprintf(m, n, "the body is over the limit of %zu bytes (--max-upload-mb)", s->max_upload);
    return m;
}

static enum MHD_Result first_call(Server *s, struct MHD_Connection *conn, Request *r, const char *method) {
    if (!strcmp(r->path, "other")) return refuse(s, conn, r, 404, "no such path (try /, /predict, /explain, /health, /metrics)");
    bool post = is_post_path(r->path);
    if (s->cors_origin && !strcmp(method, "OPTIONS")) { // a browser's preflight for a cross-origin request
        struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (!resp) return MHD_NO;
        allow_origin(resp, s->cors_origin);
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", post ? "POST, OPTIONS" : "GET, OPTIONS");
        MHD_add_response_header(resp, "Access-Control-Allow-Headers", "Content-Type");
        MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
        r->status = 204;
        enum MHD_Result rc = MHD_queue_response(conn, 204, resp);
        MHD_destroy_response(resp);
        return rc;
    }
    if (strcmp(method, post ? "POST" : "GET") && !(!post && !strcmp(method, "HEAD")))
        return refuse(s, conn, r, 405, post ? "use POST with the image as the body" : "use GET");
    if (!post) return MHD_YES;
    pthread_mutex_lock(&s->mu);
    bool draining = s->draining;
    pthread_mutex_unlock(&s->mu);
    if (draining) return refuse(s, conn, r, 503, "the server is stopping");
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    char m[128];
    if (cl && strtoull(cl, NULL, 10) > s->max_upload) return refuse(s, conn, r, 413, too_big_msg(s, m, sizeof m));
    return MHD_YES;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method, const char *version,
                              const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    Server *s = cls;
    Request *r = *con_cls;
    if (!r) { // the headers are in; the body (if any) follows in later calls
        if (!(r = calloc(1, sizeof *r))) return MHD_NO;
        *con_cls = r;
        r->t0 = app_seconds();
        snprintf(r->path, sizeof r->path, "%s", route(url));
        snprintf(r->method, sizeof r->method, "%s", method);
        snprintf(r->url, sizeof r->url, "%s", url);
        r->cors_origin = s->cors_origin;
        pthread_mutex_lock(&s->mu);
        s->in_flight++;
        pthread_mutex_unlock(&s->mu);
        return first_call(s, conn, r, method);
    }
    if (r->status) { // answered already (413, 404, ...): the rest of the body is dropped
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        serve_guard_body(s->guard, conn, *upload_size);
        if (!r->refused && r->body.n + *upload_size > s->max_upload) {
            char m[128];
            r->refused = 413;
            snprintf(r->refusal, sizeof r->refusal, "%s", too_big_msg(s, m, sizeof m));
            sb_free(&r->body);
        }
        if (!r->refused) {
            sb_append(&r->body, upload, *upload_size);
            if (r->body.oom) r->refused = 500, snprintf(r->refusal, sizeof r->refusal, "out of memory for the body");
        } else if ((r->dropped += *upload_size) / 16 > s->max_upload)
            return MHD_NO; // an endless body: the connection is closed
        *upload_size = 0;
        return MHD_YES;
    }
    serve_guard_answering(s->guard, conn); // read in full: the deadline stops here
    if (r->refused) return answer_error(conn, r, r->refused, r->refusal);
    if (!strcmp(r->path, "/health")) {
        pthread_mutex_lock(&s->mu);
        bool draining = s->draining;
        pthread_mutex_unlock(&s->mu);
        StrBuf b = {0};
        sb_printf(&b, "{\"status\": \"%s\", \"model\": ", draining ? "stopping" : "ok");
        sb_json_str(&b, s->model_dir);
        sb_printf(&b, ", \"adapter\": ");
        if (s->adapter_dir)
            sb_json_str(&b, s->adapter_dir);
        else
            sb_printf(&b, "null");
        sb_printf(&b, ", \"version\": \"%s\", \"labels\": %d, \"image_size\": %d, \"max_batch\": %d, \"int8\": %s}\n", DEIT_LORA_VERSION,
                  s->model.cfg.num_labels, s->model.cfg.image_size, s->batcher.max_batch, s->int8 ? "true" : "false");
        return answer_text(conn, r, draining ? 503 : 200, "application/json", &b);
    }
    if (!strcmp(r->path, "/metrics")) {
        pthread_mutex_lock(&s->mu);
        int fl = s->in_flight;
        pthread_mutex_unlock(&s->mu);
        char *t = serve_metrics_text(s->metrics, serve_batcher_depth(&s->batcher), fl);
        if (!t) return answer_error(conn, r, 500, "out of memory");
        return answer(conn, r, 200, "text/plain; version=0.0.4; charset=utf-8", t, strlen(t), MHD_RESPMEM_MUST_FREE);
    }
    if (!strcmp(r->path, "/"))
        return answer(conn, r, 200, "text/html; charset=utf-8", (void *)serve_page_html, strlen(serve_page_html), MHD_RESPMEM_PERSISTENT);
    return model_endpoint(s, conn, r, !strcmp(r->path, "/explain"));
}

// one line per request: time (UTC, ISO 8601), client, method, path (the query left out: it may hold
// names), status, bytes of the answer's body, seconds; the path as a JSON string (escaped)
static void access_log_line(Server *s, const struct sockaddr *addr, const char *method_in, const char *url_in, int status, size_t bytes,
                            double dt) {
    char when[40], client[64] = "-";
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t k = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + k, sizeof when - k, ".%03ldZ", ts.tv_nsec / 1000000);
    if (addr) serve_addr_text(addr, client, sizeof client);
    if (!client[0]) snprintf(client, sizeof client, "-");
    StrBuf path = {0};
    char url[200];
    snprintf(url, sizeof url, "%s", url_in);
    url[strcspn(url, "?")] = 0;
    sb_json_str(&path, url);
    char method[12];
    snprintf(method, sizeof method, "%s", method_in);
    for (char *q = method; *q; q++)
        if (*q < 'A' || *q > 'Z') *q = '?';
    pthread_mutex_lock(&s->log_mu);
    fprintf(s->access_log, "%s %s %s %s %d %zu %.6f\n", when, client, method[0] ? method : "-", path.s ? path.s : "\"\"", status, bytes,
            dt);
    fflush(s->access_log);
    pthread_mutex_unlock(&s->log_mu);
    sb_free(&path);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode why) {
    (void)why;
    Server *s = cls;
    serve_guard_done(s->guard, conn);
    Request *r = *con_cls;
    if (!r) return;
    // a request the client or a timeout cut short counts as 408; one whose body the front door
    // refused (a chunk gone bad) is the front's to count
    const union MHD_ConnectionInfo *fd = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!(fd && serve_front_completed(s->front, fd->connect_fd))) {
        int status = r->status ? r->status : 408;
        double dt = app_seconds() - r->t0;
        serve_metrics_request(s->metrics, r->path, status, dt);
        if (s->access_log) {
            const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
            access_log_line(s, ci ? ci->client_addr : NULL, r->method, r->url, status, r->bytes, dt);
        }
    }
    sb_free(&r->body);
    free(r);
    *con_cls = NULL;
    pthread_mutex_lock(&s->mu);
    s->in_flight--;
    pthread_mutex_unlock(&s->mu);
}

// a request the front door refused (bad framing, a malformed head): counted and logged as any other
static void front_refused(void *cls, const struct sockaddr *client, const char *method, const char *target, int status, size_t bytes,
                          double seconds) {
    Server *s = cls;
    char path[200];
    snprintf(path, sizeof path, "%s", target);
    path[strcspn(path, "?")] = 0;
    serve_metrics_request(s->metrics, route(path), status, seconds);
    if (s->access_log) access_log_line(s, client, method, target, status, bytes, seconds);
}

// ---- the command ----

typedef struct {
    const char *model, *adapter, *host;
    long port, threads, max_batch, max_upload_mb, queue, timeout, connections, per_ip, decode_mb, max_memory_mb;
    const char *access_log, *cors_origin;
    double wait_ms, request_timeout;
    bool int8;
} ServeArgs;

// the listening socket, on HOST (an IPv4 or IPv6 address) and PORT; its port (when 0 was asked
// for) into *bound; -1 with a message
static int listen_on(const char *host, long port, unsigned *bound, char *err, size_t errn) {
    struct sockaddr_storage ss = {0};
    socklen_t len;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1)
        v4->sin_family = AF_INET, v4->sin_port = htons((uint16_t)port), len = sizeof *v4;
    else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1)
        v6->sin6_family = AF_INET6, v6->sin6_port = htons((uint16_t)port), len = sizeof *v6;
    else
        return errorf(err, errn, "--host: '%s' is not an IPv4 or IPv6 address", host);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 128) != 0) {
        snprintf(err, errn, "cannot listen on %s port %ld: %s", host, port, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    *bound = ntohs(ss.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
    return fd;
}

// libmicrohttpd answers the requests the front door (serve_front.c) hands it, a thread per
// connection; it listens on nothing itself
static struct MHD_Daemon *start_daemon(Server *s, const ServeArgs *a, char *err, size_t errn) {
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_NO_LISTEN_SOCKET;
    // the guard enforces --max-connections and the per-address limit itself (with its reserve);
    // libmicrohttpd's own limit leaves room for connections cut but not yet closed
    struct MHD_Daemon *d = MHD_start_daemon(flags, 0, serve_guard_accept, s->guard, handle, s, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                                            MHD_OPTION_NOTIFY_CONNECTION, serve_guard_notify, s->guard, MHD_OPTION_CONNECTION_TIMEOUT,
                                            (unsigned)a->timeout, MHD_OPTION_CONNECTION_LIMIT, (unsigned)a->connections + 32,
                                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 << 10), MHD_OPTION_END);
    if (!d) snprintf(err, errn, "cannot start the HTTP server (libmicrohttpd)");
    return d;
}

// The most memory the server can need, in MiB: the model; a batch of --max-batch images through
// the forward (input, and what the forward keeps per image: per layer the normed input, q, k, v,
// the attention of every head, the context, the MLP's two activations and the residuals), or one
// image through explain's forward and backward (three times a forward); the decode budget; and a
// full body buffered for every connection. Refused, with the parts named, above --max-memory-mb.
static int worst_case_fits(const VitModel *m, const ServeArgs *a, char *err, size_t errn) {
    const VitConfig *c = &m->cfg;
    double T = (double)(c->image_size / c->patch_size) * (c->image_size / c->patch_size) + 2, D = c->hidden_size, I = c->intermediate_size,
           H = c->num_attention_heads, L = c->num_hidden_layers, S = c->image_size;
    double per_image = 4 * (3 * S * S + L * T * (12 * D + 2 * I + 2 * H * T) + T * D * 4);
    double batch = per_image * (double)a->max_batch, explain = 3 * per_image;
    double model = 4.0 * (double)nn_params_count(&m->params, false);
    double bodies = (double)a->connections * (double)a->max_upload_mb * (1 << 20);
    double decode = (double)a->decode_mb * (1 << 20);
    double worst = model + (batch > explain ? batch : explain) + decode + bodies, MiB = 1 << 20;
    if (worst / MiB <= (double)a->max_memory_mb) return 0;
    return errorf(err, errn,
                  "this configuration may need %.0f MiB at worst, above --max-memory-mb %ld: the model %.0f, a batch of %ld images %.0f "
                  "(--max-batch), decoding %.0f (--decode-memory-mb), %ld bodies of %ld MiB %.0f (--max-connections, --max-upload-mb); "
                  "lower those, or raise --max-memory-mb",
                  worst / MiB, a->max_memory_mb, model / MiB, a->max_batch, (batch > explain ? batch : explain) / MiB, decode / MiB,
                  a->connections, a->max_upload_mb, bodies / MiB);
}

// blocks until SIGTERM or SIGINT; then stops taking connections and waits (up to drain_s) for the
// requests in flight
static void wait_and_drain(Server *s, const sigset_t *sigs, double drain_s) {
    int sig = 0;
    sigwait(sigs, &sig);
    fprintf(stderr, "deit_lora serve: %s: finishing the requests in flight\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    pthread_mutex_lock(&s->mu);
    s->draining = true;
    pthread_mutex_unlock(&s->mu);
    serve_front_stop_accepting(s->front);
    for (double t0 = app_seconds(); app_seconds() - t0 < drain_s; usleep(10000)) {
        pthread_mutex_lock(&s->mu);
        int n = s->in_flight;
        pthread_mutex_unlock(&s->mu);
        if (n == 0) break;
    }
}

int cmd_serve(int argc, char **argv) {
    ServeArgs a = {.host = "127.0.0.1",
                   .port = 8080,
                   .max_batch = 16,
                   .max_upload_mb = 20,
                   .queue = 64,
                   .timeout = 10,
                   .connections = 64,
                   .per_ip = 0,
                   .request_timeout = 30,
                   .decode_mb = 1024,
                   .wait_ms = 2};
    const CliOpt opts[] = {
        {"--model", OPT_STR, &a.model, 0, 0, "model directory"},
        {"--adapter", OPT_STR, &a.adapter, 0, 0, "a peft adapter directory"},
        {"--host", OPT_STR, &a.host, 0, 0, "address to listen on (127.0.0.1; 0.0.0.0 for every interface)"},
        {"--port", OPT_INT, &a.port, 0, 65535, "port (8080; 0: any free port, printed at start)"},
        {"--threads", OPT_INT, &a.threads, 1, 1024, "threads for the model (all cores)"},
        APP_INT8_OPT(a.int8),
        {"--max-batch", OPT_INT, &a.max_batch, 1, 256, "the most images run together (16)"},
        {"--batch-wait-ms", OPT_DOUBLE, &a.wait_ms, 0, 10000, "how long a request waits for others to batch with (2)"},
        {"--max-upload-mb", OPT_INT, &a.max_upload_mb, 1, 1024, "largest body accepted, in MiB (20); larger: 413"},
        {"--queue", OPT_INT, &a.queue, 1, 100000, "requests that may wait for the model (64); more: 503"},
        {"--timeout", OPT_INT, &a.timeout, 1, 3600, "seconds a connection may stay idle or stalled (10)"},
        {"--max-connections", OPT_INT, &a.connections, 1, 10000, "connections at once (64)"},
        {"--max-connections-per-ip", OPT_INT, &a.per_ip, 1, 10000, "connections at once from one address (half of --max-connections)"},
        {"--request-timeout", OPT_DOUBLE, &a.request_timeout, 0.1, 3600, "seconds to send a whole request, headers and body (30)"},
        {"--decode-memory-mb", OPT_INT, &a.decode_mb, 16, 1 << 20, "memory for images being decoded at once, in MiB (1024)"},
        {"--access-log", OPT_STR, &a.access_log, 0, 0,
         "a line per request (time, client, method, path, status, bytes, seconds) to FILE, or - for stderr"},
        {"--max-memory-mb", OPT_INT, &a.max_memory_mb, 64, 1 << 24, "refuse to start when the worst case needs more (half the RAM)"},
        {"--cors-origin", OPT_STR, &a.cors_origin, 0, 0,
         "let pages from this origin (https://host:port, or *) call the API from a browser (off by default)"},
    };
    const int NO = (int)(sizeof opts / sizeof *opts);
    const char *usage = "deit_lora serve --model MODEL_DIR [--adapter DIR] [--host 127.0.0.1] [--port 8080] [--threads N] "
                        "[--max-batch 16] [--max-upload-mb 20]";
    const char *pos[1];
    int np =
        cli_command(&(CliCommand){"serve", usage,
                                  "The model over HTTP: POST /predict (image bytes or a multipart file; ?top=K&name=NAME) answers\n"
                                  "predict --json's line; POST /explain (?method=rollout|relevance&format=png|json) the map; GET /health,\n"
                                  "GET /metrics (Prometheus), GET / a page to try it. SIGTERM: finish the requests in flight, exit 0.",
                                  opts, NO},
                    argc, argv, pos, 1);
    if (np < 0) return np == CLI_HELP ? 0 : 2;
    if (!a.model || np != 0) return app_fail("serve", "needs --model and no other arguments (see --help)");
    app_threads(a.threads);
    char err[FILE_ERR_BUF];
    Server *s = calloc(1, sizeof *s);
    if (app_load_model(&s->model, &s->ip, a.model, a.adapter, a.int8, err, sizeof err) != 0) return free(s), app_fail("serve", err);
    s->model_dir = a.model, s->adapter_dir = a.adapter;
    if (a.cors_origin && (!*a.cors_origin || !serve_utf8_ok(a.cors_origin) || strpbrk(a.cors_origin, " ,\t"))) {
        vit_free(&s->model);
        free(s);
        return app_fail("serve", "--cors-origin: one origin (scheme://host[:port]) or *, without spaces or commas");
    }
    s->cors_origin = a.cors_origin;
    s->int8 = a.int8;
    pthread_mutex_init(&s->log_mu, NULL);
    if (a.access_log && !(s->access_log = strcmp(a.access_log, "-") ? fopen(a.access_log, "a") : stderr)) {
        snprintf(err, sizeof err, "--access-log: cannot open %s: %s", a.access_log, strerror(errno));
        vit_free(&s->model);
        free(s);
        return app_fail("serve", err);
    }
    s->max_upload = (size_t)a.max_upload_mb << 20;
    s->decode_budget = (size_t)a.decode_mb << 20;
    s->request_timeout = a.request_timeout;
    pthread_cond_init(&s->decode_free, NULL);
    if (!a.max_memory_mb) a.max_memory_mb = (long)(((double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE)) / 2 / (1 << 20));
    if (worst_case_fits(&s->model, &a, err, sizeof err) != 0) {
        vit_free(&s->model);
        free(s);
        return app_fail("serve", err);
    }
    s->metrics = serve_metrics_new();
    if (!a.per_ip) a.per_ip = a.connections > 1 ? a.connections / 2 : 1;
    s->guard = s->metrics ? serve_guard_new((int)a.connections, (int)a.per_ip, a.request_timeout, s->metrics) : NULL;
    if (!s->guard) {
        serve_metrics_free(s->metrics);
        vit_free(&s->model);
        free(s);
        return app_fail("serve", "out of memory starting the server");
    }
    pthread_mutex_init(&s->mu, NULL);
    // the signals go to sigwait here, not to the server's threads (which inherit this mask)
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    int rc = 2;
    struct MHD_Daemon *d = NULL;
    int lfd = -1;
    unsigned port = 0;
    if (serve_batcher_start(&s->batcher, &s->model, &s->ip, s->metrics, (int)a.max_batch, (int)a.queue, a.wait_ms / 1000, err,
                            sizeof err) != 0) {
    } else if ((d = start_daemon(s, &a, err, sizeof err)) && (lfd = listen_on(a.host, a.port, &port, err, sizeof err)) >= 0) {
        if (!(s->front = serve_front_start(lfd, d, front_refused, s))) {
            close(lfd);
            snprintf(err, sizeof err, "cannot start the server's threads");
        } else {
            printf("deit_lora serve: listening on http://%s:%u (%d labels, batches up to %ld%s%s)\n", a.host, port, s->model.cfg.num_labels,
                   a.max_batch, a.int8 ? ", int8 kernel " : "", a.int8 ? tensor_int8_kernel() : "");
            fflush(stdout);
            wait_and_drain(s, &sigs, (double)a.timeout + 5);
            rc = 0;
        }
    }
    if (d) MHD_stop_daemon(d);
    serve_front_free(s->front, 5);
    if (rc != 0) app_fail("serve", err);
    if (s->batcher.queue) serve_batcher_stop(&s->batcher);
    if (rc == 0)
        fprintf(stderr, "deit_lora serve: stopped after %llu images in %llu batches\n", (unsigned long long)s->batcher.images,
                (unsigned long long)s->batcher.batches);
    serve_guard_free(s->guard);
    if (s->access_log && s->access_log != stderr) fclose(s->access_log);
    pthread_mutex_destroy(&s->log_mu);
    serve_metrics_free(s->metrics);
    pthread_cond_destroy(&s->decode_free);
    pthread_mutex_destroy(&s->mu);
    vit_free(&s->model);
    free(s);
    return rc;
}

#endif
