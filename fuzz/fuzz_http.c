// fuzz_http.c: the server's reading of HTTP/1.1 requests (apps/serve_http.c). The input's first byte
// sets the size of the pieces it arrives in (as from a socket); what the reader writes out is taken
// as it comes. Whatever the bytes: the buffers' bounds hold, a refusal has one of the statuses the
// front answers with and a message, and what the reader wrote out (requests in canonical form) is
// read again without a refusal.
#include "fuzz_common.h"

#include "../apps/serve_http.h"

#include <stdlib.h>
#include <string.h>

static const int STATUSES[] = {400, 413, 414, 431, 501, 505};

// feeds DATA to R in pieces of STEP bytes, appending what R writes out to OUT (up to CAP); -1 when
// R refused
static int feed(HttpReader *r, const uint8_t *data, size_t n, size_t step, uint8_t *out, size_t *nout, size_t cap) {
    size_t at = 0;
    for (int idle = 0; idle < 3 && r->st != P_FAILED;) {
        size_t room = sizeof r->in - r->nin, m = n - at < step ? n - at : step;
        if (m > room) m = room;
        memcpy(r->in + r->nin, data + at, m);
        r->nin += m, at += m;
        http_reader_parse(r, true, 0);
        if (r->nin > sizeof r->in || r->nout > sizeof r->out) abort();
        size_t k = r->nout < cap - *nout ? r->nout : cap - *nout;
        memcpy(out + *nout, r->out, k);
        *nout += k;
        bool moved = m || r->nout;
        r->nout = 0; // taken
        idle = moved ? 0 : idle + 1;
        if (at == n && !moved) break;
    }
    if (r->st != P_FAILED) return 0;
    bool known = false;
    for (size_t i = 0; i < sizeof STATUSES / sizeof *STATUSES; i++) known |= r->status == STATUSES[i];
    if (!known || !r->msg[0] || !memchr(r->method, 0, sizeof r->method) || !memchr(r->target, 0, sizeof r->target)) abort();
    return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    if (n < 1) return 0;
    size_t step = 1 + (size_t)data[0] * 97;
    HttpReader *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    size_t cap = 4 * n + 4096, nout = 0, nout2 = 0;
    uint8_t *out = malloc(cap), *out2 = malloc(cap);
    feed(a, data + 1, n - 1, step, out, &nout, cap);
    // the canonical form is read again as it is, without a refusal
    if (nout < cap && feed(b, out, nout, 65536, out2, &nout2, cap) != 0) abort();
    free(a), free(b), free(out), free(out2);
    return 0;
}
