// serve_http.h: reading HTTP/1.1 requests strictly, for the server's front door (serve_front.c).
// Internal to deit_lora serve; separate from the sockets so that it can be fuzzed.
#ifndef SERVE_HTTP_H
#define SERVE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEAD 16384 // a request's line and headers; more: 431
#define HTTP_MAX_LINE 4096  // the request line (more: 414), a chunk's size line with its extensions, the trailers
#define HTTP_BUF      65536 // what the reader holds of the client's bytes, and of its output
#define HTTP_PIPELINE 16    // requests passed on and not yet answered, at most (the caller's count)

typedef enum { P_HEAD, P_BODY, P_CHUNK_SIZE, P_CHUNK_DATA, P_CHUNK_END, P_TRAILER, P_FAILED } HttpState;

typedef struct {
    uint8_t in[HTTP_BUF + HTTP_MAX_HEAD]; // the client's bytes not yet read (the caller appends, nin)
    size_t nin;
    uint8_t out[HTTP_BUF + HTTP_MAX_HEAD + 64]; // the requests rewritten (the caller takes from the front, nout)
    size_t nout;
    HttpState st;
    unsigned long long left;     // body or chunk bytes still to come
    bool head_passed;            // the current request's head is in out (or was taken): its body follows
    int passed;                  // request heads put in out so far
    bool is_head[HTTP_PIPELINE]; // per head put out (a ring, by passed): a HEAD request
    int nrq;                     // (calls for the head being read: its first byte's time is t0)
    double t0, now;              // when the current request's first byte was read; the time of this call
    // once st is P_FAILED: the answer's status and message; the method and target as far as read
    int status;
    char msg[200], method[16], target[256];
} HttpReader;

// reads what is in in as far as the buffers allow: rewritten requests to out, what was read
// removed from in; a new request's head only when may_pass_head. NOW: a clock's seconds (for t0).
// On a refusal st is P_FAILED.
void http_reader_parse(HttpReader *r, bool may_pass_head, double now);

#endif
