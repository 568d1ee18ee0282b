// serve_front.c: the server's front door. libmicrohttpd 0.9.75 (Debian 12's) answers some malformed
// requests on its own, and not well: a Content-Length that is not a number gets its answer twice
// (two status lines on the wire), a long chunk extension a 500, and its answers are HTML that no
// metric counts. So the front owns the listening socket and every client's socket; it reads each
// request's head and framing itself, strictly (serve_http.c), and passes libmicrohttpd only
// requests it has checked, rewritten in a canonical form, over a socket pair (one per connection,
// added with MHD_add_connection). What it refuses it answers itself: one JSON answer, the
// connection closed, counted.
//
// Per connection, one thread moves bytes both ways with poll(2): the client's requests, read and
// rewritten, to libmicrohttpd; its answers, as they are, to the client (followed, to know which
// request each one answers). Buffers are bounded both ways (a full one stops reading the other
// side).
#define _GNU_SOURCE // accept4
#include "deit_lora.h"
#include "serve.h"
#include "serve_http.h"

#ifdef CGRAD_HTTP

#include "../base/strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <poll.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FRONT_LINGER_S   2.0 // after a refusal: how long the client's unread bytes are drained
#define FRONT_LINGER_MAX (1 << 20)

struct ServeFront {
    int listen_fd;
    struct MHD_Daemon *daemon;
    ServeFrontRefused refused;
    void *cls;
    pthread_t acceptor;
    pthread_mutex_t mu;
    pthread_cond_t gone;
    int live; // connection threads running
    bool stop;
    struct Conn *conns; // the live connections, for serve_front_completed
};

typedef struct Conn {
    ServeFront *f;
    struct Conn *prev, *next; // in f->conns
    int cfd, mfd;             // the client; our end of the pair
    int mhd_end;              // libmicrohttpd's end (its fd number, for serve_front_completed)
    struct sockaddr_storage addr;
    HttpReader r;                // the client's requests, read
    uint8_t to_client[HTTP_BUF]; // libmicrohttpd's answers, to pass on
    size_t nto_client;
    bool client_eof, mhd_eof;
    // requests passed on, libmicrohttpd's completions of them (under f->mu), and whether the front
    // claimed the last one (refused its body after passing its head: the front counts it)
    int passed, completions; // (passed: r.passed, copied under f->mu)
    bool claimed;
    // libmicrohttpd's answers, read as they pass to the client: how many are in whole, the last
    // one's status, and the answer being read
    int answers, last_status;
    char rhead[4096];
    size_t nrhead;
    unsigned long long rleft; // body bytes of the answer being read
    bool rbody, rbroken;      // in its body; its framing not understood (no more counting)
} Conn;

// ---- the refusal ----

static const char *reason(int status) {
    switch (status) {
    case 400: return "Bad Request";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

// writes all of p to a (blocking-free) socket, waiting up to a second for room
static void send_all(int fd, const char *p, size_t n) {
    double t0 = app_seconds();
    while (n && app_seconds() - t0 < 1.0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k > 0) {
            p += k, n -= (size_t)k;
            continue;
        }
        if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return;
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        poll(&pf, 1, 100);
    }
}

// the answer: JSON, closed, counted first (a client that reads it may ask /metrics at once); then
// what the client still sends is read and dropped for a moment, so that it sees the answer
// instead of a reset
static void answer_refusal(Conn *c) {
    StrBuf body = {0}, head = {0};
    sb_printf(&body, "{\"error\": ");
    sb_json_str(&body, c->r.msg);
    sb_printf(&body, "}\n");
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    sb_printf(&head,
              "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nConnection: close\r\n"
              "Content-Length: %zu\r\n\r\n",
              c->r.status, reason(c->r.status), date, body.n);
    if (c->f->refused)
        c->f->refused(c->f->cls, (struct sockaddr *)&c->addr, c->r.method, c->r.target, c->r.status, body.n, app_seconds() - c->r.t0);
    if (!head.oom && !body.oom) {
        send_all(c->cfd, head.s, head.n);
        send_all(c->cfd, body.s, body.n);
    }
    sb_free(&head), sb_free(&body);
    shutdown(c->cfd, SHUT_WR);
    char sink[4096];
    size_t drained = 0;
    for (double t0 = app_seconds(); app_seconds() - t0 < FRONT_LINGER_S && drained < FRONT_LINGER_MAX;) {
        struct pollfd pf = {.fd = c->cfd, .events = POLLIN};
        if (poll(&pf, 1, 100) <= 0) continue;
        ssize_t k = recv(c->cfd, sink, sizeof sink, 0);
        if (k <= 0 && !(k < 0 && (errno == EAGAIN || errno == EINTR))) break;
        if (k > 0) drained += (size_t)k;
    }
}

// follows libmicrohttpd's answers as they pass to the client (its answers always carry a
// Content-Length; 1xx are interim): counts those read in whole
static void follow_answers(Conn *c, const uint8_t *p, size_t n) {
    while (n && !c->rbroken) {
        if (c->rbody) {
            size_t m = n < c->rleft ? n : (size_t)c->rleft;
            c->rleft -= m, p += m, n -= m;
            if (!c->rleft) c->rbody = false, c->answers++;
            continue;
        }
        size_t m = n < sizeof c->rhead - c->nrhead ? n : sizeof c->rhead - c->nrhead;
        memcpy(c->rhead + c->nrhead, p, m);
        c->nrhead += m;
        char *end = memmem(c->rhead, c->nrhead, "\r\n\r\n", 4);
        if (!end) {
            if (c->nrhead == sizeof c->rhead) c->rbroken = true;
            return;
        }
        size_t used = (size_t)(end + 4 - c->rhead) - (c->nrhead - m); // of this call's bytes
        p += used, n -= used;
        *end = 0;
        int status = atoi(c->rhead + 9);
        char *cl = strcasestr(c->rhead, "\r\nContent-Length:");
        c->nrhead = 0;
        if (status >= 100 && status < 200) continue;
        c->last_status = status;
        c->rleft = cl ? strtoull(cl + 17, NULL, 10) : 0;
        if (c->r.is_head[c->answers % HTTP_PIPELINE] || status == 204 || status == 304) c->rleft = 0;
        if (!cl && !c->r.is_head[c->answers % HTTP_PIPELINE]) c->rbroken = true;
        if (c->rleft)
            c->rbody = true;
        else
            c->answers++;
    }
}

// the client's bytes read as far as they go; a new request passed on only while fewer than
// HTTP_PIPELINE are unanswered; a refusal of a request libmicrohttpd holds is claimed (the front
// counts it) unless libmicrohttpd has completed it already
static void parse(Conn *c) {
    http_reader_parse(&c->r, c->r.passed - c->answers < HTTP_PIPELINE, app_seconds());
    pthread_mutex_lock(&c->f->mu);
    c->passed = c->r.passed;
    if (c->r.st == P_FAILED && c->r.head_passed && c->r.status && !c->claimed) c->claimed = c->completions < c->passed;
    pthread_mutex_unlock(&c->f->mu);
}

static bool would_block(void) { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR; }

// moves bytes until both sides are done; then, if the front refused, answers
static void pump(Conn *c) {
    bool mhd_write_closed = false;
    for (;;) {
        bool failed = c->r.st == P_FAILED;
        if (failed && !mhd_write_closed && !c->r.nout) {
            // nothing more for libmicrohttpd: it finishes what it answers, then closes
            shutdown(c->mfd, SHUT_WR);
            mhd_write_closed = true;
        }
        if (c->client_eof && !c->r.nout && !mhd_write_closed) { // the client is done sending
            shutdown(c->mfd, SHUT_WR);
            mhd_write_closed = true;
        }
        if (c->mhd_eof && !c->nto_client) break; // libmicrohttpd is done with this connection: so is the client
        struct pollfd pf[2] = {{.fd = c->cfd}, {.fd = c->mfd}};
        if (!failed && !c->client_eof && c->r.nin < sizeof c->r.in) pf[0].events |= POLLIN;
        if (c->nto_client) pf[0].events |= POLLOUT;
        if (!c->mhd_eof && c->nto_client < sizeof c->to_client) pf[1].events |= POLLIN;
        if (c->r.nout && !mhd_write_closed) pf[1].events |= POLLOUT;
        for (int i = 0; i < 2; i++) // a side with nothing to wait for is left out (its hang-up would wake poll at once)
            if (!pf[i].events) pf[i].fd = -1;
        if (poll(pf, 2, 1000) < 0 && errno != EINTR) break;
        if ((pf[0].events & POLLIN) && (pf[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t k = recv(c->cfd, c->r.in + c->r.nin, sizeof c->r.in - c->r.nin, 0);
            if (k > 0) {
                c->r.nin += (size_t)k;
                parse(c);
            } else if (k == 0 || !would_block()) {
                c->client_eof = true;
                if (k < 0) break; // reset: nobody to answer
            }
        }
        if (c->nto_client && (pf[0].revents & POLLOUT)) {
            ssize_t k = send(c->cfd, c->to_client, c->nto_client, MSG_NOSIGNAL);
            if (k > 0) {
                memmove(c->to_client, c->to_client + k, c->nto_client - (size_t)k);
                c->nto_client -= (size_t)k;
            } else if (k < 0 && !would_block())
                break;
        }
        if ((pf[1].events & POLLIN) && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t k = recv(c->mfd, c->to_client + c->nto_client, sizeof c->to_client - c->nto_client, 0);
            if (k > 0) {
                follow_answers(c, c->to_client + c->nto_client, (size_t)k);
                c->nto_client += (size_t)k;
                if (c->r.nin) parse(c); // a request held back (too many unanswered) may go on now
            } else if (k == 0 || !would_block())
                c->mhd_eof = true;
        }
        if (c->r.nout && !mhd_write_closed && (pf[1].revents & POLLOUT)) {
            ssize_t k = send(c->mfd, c->r.out, c->r.nout, MSG_NOSIGNAL);
            if (k > 0) {
                memmove(c->r.out, c->r.out + k, c->r.nout - (size_t)k);
                c->r.nout -= (size_t)k;
                if (c->r.nout < sizeof c->r.out / 2 && c->r.nin) parse(c);
            } else if (k < 0 && !would_block()) {
                c->mhd_eof = true; // libmicrohttpd closed (the guard cut it, or it answered with close)
                c->r.nout = 0;
            }
        }
    }
    if (c->r.st != P_FAILED || !c->r.status) return;
    if (!c->r.head_passed)
        answer_refusal(c); // a head refused: libmicrohttpd never saw the request
    else if (c->claimed && (c->rbroken || c->answers >= c->passed)) {
        // libmicrohttpd answered it anyway (a refusal before the body's end): the client has its
        // answer; counted here as libmicrohttpd gave it
        if (c->f->refused)
            c->f->refused(c->f->cls, (struct sockaddr *)&c->addr, c->r.method, c->r.target, c->last_status, 0, app_seconds() - c->r.t0);
    } else if (c->claimed)
        answer_refusal(c);
    // not claimed: libmicrohttpd completed the request (and counted it) before the body went bad
}

// a connection's end: its sockets closed, off the front's list, freed
static void conn_end(Conn *c) {
    ServeFront *f = c->f;
    close(c->cfd);
    close(c->mfd);
    pthread_mutex_lock(&f->mu);
    if (c->prev)
        c->prev->next = c->next;
    else
        f->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    free(c);
    f->live--;
    pthread_cond_broadcast(&f->gone);
    pthread_mutex_unlock(&f->mu);
}

static void *conn_main(void *arg) {
    Conn *c = arg;
    pump(c);
    conn_end(c);
    return NULL;
}

static void start_conn(ServeFront *f, int cfd, const struct sockaddr_storage *addr, socklen_t addrlen) {
    int sp[2];
    Conn *c = calloc(1, sizeof *c);
    if (!c || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
        free(c);
        close(cfd);
        return;
    }
    c->f = f, c->cfd = cfd, c->mfd = sp[0], c->mhd_end = sp[1], c->addr = *addr, c->r.st = P_HEAD;
    c->r.t0 = app_seconds();
    fcntl(cfd, F_SETFL, fcntl(cfd, F_GETFL) | O_NONBLOCK);
    fcntl(sp[0], F_SETFL, fcntl(sp[0], F_GETFL) | O_NONBLOCK);
    // libmicrohttpd takes its end (and closes it) whether or not it keeps the connection: the guard's
    // accept policy may refuse it, and then our end reads the end of the stream at once
    if (MHD_add_connection(f->daemon, sp[1], (struct sockaddr *)&c->addr, addrlen) != MHD_YES) {
        close(cfd), close(sp[0]);
        free(c);
        return;
    }
    pthread_mutex_lock(&f->mu);
    f->live++;
    c->next = f->conns;
    if (f->conns) f->conns->prev = c;
    f->conns = c;
    pthread_mutex_unlock(&f->mu);
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 256 << 10);
    if (pthread_create(&t, &at, conn_main, c) != 0) conn_end(c);
    pthread_attr_destroy(&at);
}

static void *acceptor(void *arg) {
    ServeFront *f = arg;
    for (;;) {
        pthread_mutex_lock(&f->mu);
        bool stop = f->stop;
        pthread_mutex_unlock(&f->mu);
        if (stop) break;
        struct pollfd pf = {.fd = f->listen_fd, .events = POLLIN};
        if (poll(&pf, 1, 100) <= 0) continue;
        struct sockaddr_storage addr;
        socklen_t len = sizeof addr;
        int cfd = accept4(f->listen_fd, (struct sockaddr *)&addr, &len, SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) usleep(10000);
            continue;
        }
        start_conn(f, cfd, &addr, len);
    }
    return NULL;
}

ServeFront *serve_front_start(int listen_fd, struct MHD_Daemon *daemon, ServeFrontRefused refused, void *cls) {
    ServeFront *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->listen_fd = listen_fd, f->daemon = daemon, f->refused = refused, f->cls = cls;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->gone, NULL);
    if (pthread_create(&f->acceptor, NULL, acceptor, f) != 0) {
        pthread_mutex_destroy(&f->mu);
        pthread_cond_destroy(&f->gone);
        free(f);
        return NULL;
    }
    return f;
}

void serve_front_stop_accepting(ServeFront *f) {
    pthread_mutex_lock(&f->mu);
    bool was = f->stop;
    f->stop = true;
    pthread_mutex_unlock(&f->mu);
    if (!was) {
        pthread_join(f->acceptor, NULL);
        close(f->listen_fd);
    }
}

void serve_front_free(ServeFront *f, double wait_s) {
    if (!f) return;
    serve_front_stop_accepting(f);
    pthread_mutex_lock(&f->mu);
    for (double t0 = app_seconds(); f->live > 0 && app_seconds() - t0 < wait_s;) serve_cond_wait(&f->gone, &f->mu, 0.1);
    int live = f->live;
    pthread_mutex_unlock(&f->mu);
    if (live > 0) return; // a thread still runs (a client that will not read): leave it its memory
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->gone);
    free(f);
}

bool serve_front_completed(ServeFront *f, int mhd_fd) {
    if (!f) return false;
    bool front = false;
    pthread_mutex_lock(&f->mu);
    for (Conn *c = f->conns; c; c = c->next)
        if (c->mhd_end == mhd_fd) {
            if (c->claimed && c->completions == c->passed - 1)
                front = true;
            else
                c->completions++;
            break;
        }
    pthread_mutex_unlock(&f->mu);
    return front;
}

#endif
