// serve_guard.c: every client may be slow or hostile. libmicrohttpd's own timeout cuts only a
// connection that sends nothing at all; a client that drips a byte a second keeps its connection
// (and, thread per connection, a thread) for ever. The guard keeps a table of the open
// connections and a watchdog thread that enforces:
// - a whole-request deadline: from the connection's first byte (or the end of its last request)
//   until its request is read in full, headers and body, at most request_timeout seconds;
// - a limit of connections per client address, and the overall limit;
// - a reserve: when either limit is reached, a new connection is still accepted if an open one
//   can be let go: one that, after a grace second, is still sending its headers, sits idle between
//   requests, or sends its body slower than 1 KiB/s. So /health and /metrics stay answerable
//   while slow clients hold every slot; a connection whose request is being answered is never cut.
// A cut connection is shut down (shutdown(2) on its socket: libmicrohttpd's thread sees the end of
// the stream and closes it); what was cut and why is counted for /metrics.
#include "deit_lora.h"
#include "serve.h"

#ifdef CGRAD_HTTP

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define GRACE_S       1.0
#define MIN_BODY_RATE 1024.0 // bytes a second

typedef enum { CONN_READING, CONN_ANSWERING, CONN_IDLE } ConnState;

typedef struct GuardConn {
    struct GuardConn *prev, *next;
    int fd;
    char addr[64];
    ConnState state;
    double t;    // when the current request began (its first byte, or the end of the last one)
    size_t body; // body bytes of the current request so far
    bool cut;
} GuardConn;

struct ServeGuard {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_t watchdog;
    bool stop;
    GuardConn *head;
    int open, max_conns, per_ip;
    double request_timeout;
    ServeMetrics *metrics;
};

void serve_addr_text(const struct sockaddr *a, char *out, size_t n) {
    out[0] = 0;
    if (a->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)a)->sin_addr, out, (socklen_t)n);
    else if (a->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)a)->sin6_addr, out, (socklen_t)n);
}

// cut C (the lock held): its socket shut down, counted under WHY
static void cut(ServeGuard *g, GuardConn *c, const char *why) {
    if (c->cut) return;
    c->cut = true;
    g->open--;
    shutdown(c->fd, SHUT_RDWR);
    serve_metrics_event(g->metrics, why);
}

static bool can_let_go(const GuardConn *c, double now) {
    double age = now - c->t;
    if (c->cut || c->state == CONN_ANSWERING || age < GRACE_S) return false;
    return c->state == CONN_IDLE || c->body == 0 || (double)c->body / age < MIN_BODY_RATE;
}

static void *watchdog(void *arg) {
    ServeGuard *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->stop) {
        double now = app_seconds();
        for (GuardConn *c = g->head; c; c = c->next)
            if (!c->cut && c->state != CONN_ANSWERING && now - c->t > g->request_timeout) cut(g, c, "deadline");
        serve_cond_wait(&g->wake, &g->mu, 0.1);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

ServeGuard *serve_guard_new(int max_conns, int per_ip, double request_timeout, ServeMetrics *metrics) {
    ServeGuard *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->max_conns = max_conns, g->per_ip = per_ip, g->request_timeout = request_timeout, g->metrics = metrics;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->wake, NULL);
    if (pthread_create(&g->watchdog, NULL, watchdog, g) != 0) {
        pthread_mutex_destroy(&g->mu);
        pthread_cond_destroy(&g->wake);
        free(g);
        return NULL;
    }
    return g;
}

void serve_guard_free(ServeGuard *g) {
    if (!g) return;
    pthread_mutex_lock(&g->mu);
    g->stop = true;
    pthread_cond_signal(&g->wake);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->watchdog, NULL);
    while (g->head) {
        GuardConn *c = g->head;
        g->head = c->next;
        free(c);
    }
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->wake);
    free(g);
}

// libmicrohttpd's accept policy: within the limits, or once a connection is let go to make room
enum MHD_Result serve_guard_accept(void *cls, const struct sockaddr *addr, socklen_t len) {
    (void)len;
    ServeGuard *g = cls;
    char ip[64];
    serve_addr_text(addr, ip, sizeof ip);
    pthread_mutex_lock(&g->mu);
    double now = app_seconds();
    int same = 0;
    GuardConn *oldest_same = NULL, *oldest = NULL;
    for (GuardConn *c = g->head; c; c = c->next) {
        if (c->cut) continue;
        bool mine = !strcmp(c->addr, ip);
        same += mine;
        if (can_let_go(c, now)) {
            if (mine && (!oldest_same || c->t < oldest_same->t)) oldest_same = c;
            if (!oldest || c->t < oldest->t) oldest = c;
        }
    }
    bool ok = true;
    if (same >= g->per_ip) { // this address's own slowest connection makes room, or none is taken
        if (oldest_same)
            cut(g, oldest_same, "evicted");
        else
            ok = false;
    } else if (g->open >= g->max_conns) {
        if (oldest)
            cut(g, oldest, "evicted");
        else
            ok = false;
    }
    if (!ok) serve_metrics_event(g->metrics, "refused");
    pthread_mutex_unlock(&g->mu);
    return ok ? MHD_YES : MHD_NO;
}

void serve_guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context, enum MHD_ConnectionNotificationCode code) {
    ServeGuard *g = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        GuardConn *c = calloc(1, sizeof *c);
        const union MHD_ConnectionInfo *fd = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *ad = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (!c || !fd) { // untracked: it still has libmicrohttpd's idle timeout
            free(c);
            *socket_context = NULL;
            return;
        }
        c->fd = fd->connect_fd;
        if (ad && ad->client_addr) serve_addr_text(ad->client_addr, c->addr, sizeof c->addr);
        pthread_mutex_lock(&g->mu);
        c->t = app_seconds();
        c->state = CONN_READING;
        c->next = g->head;
        if (g->head) g->head->prev = c;
        g->head = c;
        g->open++;
        pthread_mutex_unlock(&g->mu);
        *socket_context = c;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        GuardConn *c = *socket_context;
        if (!c) return;
        pthread_mutex_lock(&g->mu);
        if (c->prev)
            c->prev->next = c->next;
        else
            g->head = c->next;
        if (c->next) c->next->prev = c->prev;
        if (!c->cut) g->open--;
        pthread_mutex_unlock(&g->mu);
        free(c);
        *socket_context = NULL;
    }
}

static GuardConn *conn_of(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *i = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return i ? (GuardConn *)i->socket_context : NULL;
}

void serve_guard_body(ServeGuard *g, struct MHD_Connection *conn, size_t bytes) {
    GuardConn *c = conn_of(conn);
    if (!c) return;
    pthread_mutex_lock(&g->mu);
    c->body += bytes;
    pthread_mutex_unlock(&g->mu);
}

void serve_guard_answering(ServeGuard *g, struct MHD_Connection *conn) {
    GuardConn *c = conn_of(conn);
    if (!c) return;
    pthread_mutex_lock(&g->mu);
    c->state = CONN_ANSWERING;
    pthread_mutex_unlock(&g->mu);
}

void serve_guard_done(ServeGuard *g, struct MHD_Connection *conn) {
    GuardConn *c = conn ? conn_of(conn) : NULL;
    if (!c) return;
    pthread_mutex_lock(&g->mu);
    c->state = CONN_IDLE, c->t = app_seconds(), c->body = 0;
    pthread_mutex_unlock(&g->mu);
}

#endif
