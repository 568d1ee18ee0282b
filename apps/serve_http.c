// serve_http.c: the server's reading of HTTP/1.1 requests (RFC 9112), strict: each request's line
// and headers checked and rewritten in a canonical form (one space, "Name: value", CRLF; the
// framing headers written anew), a Content-Length body passed as it is, a chunked body re-chunked
// with each size line checked (extensions and trailers dropped). What cannot be read is refused
// with a status and a message, and nothing more is read. No sockets here: serve_front.c feeds it.
#include "serve_http.h"

#include "../base/strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void fail(HttpReader *c, int status, const char *msg) {
    if (c->st == P_FAILED) return;
    c->st = P_FAILED;
    c->status = status;
    snprintf(c->msg, sizeof c->msg, "%s", msg);
}

// ---- the request head (RFC 9112 2-7) ----

static bool is_tchar(int ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static bool is_token(const char *s, size_t n) {
    if (!n) return false;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i])) return false;
    return true;
}

// field value: visible characters, spaces and tabs (obs-text allowed); no other control character
static bool value_ok(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return false;
    }
    return true;
}

static void trim(const char **s, size_t *n) {
    while (*n && ((*s)[0] == ' ' || (*s)[0] == '\t')) (*s)++, (*n)--;
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t')) (*n)--;
}

static bool ieq(const char *s, size_t n, const char *lit) { return strlen(lit) == n && !strncasecmp(s, lit, n); }

// the end of the line starting at p (its CRLF or bare LF), or NULL when not in [p, end)
static const char *line_end(const char *p, const char *end) { return memchr(p, '\n', (size_t)(end - p)); }

typedef struct {
    const char *cl; // the Content-Length value (trimmed), or NULL
    size_t cln;
    bool cl_differ, te, te_chunked, host;
    int nte;
} Framing;

// one header line (without its line end): checked, and appended to out in canonical form unless it
// is a framing header (those are written anew); 0, or a refusal
static int header_line(HttpReader *c, const char *p, size_t n, Framing *fr, StrBuf *out) {
    if (n && (p[0] == ' ' || p[0] == '\t')) return fail(c, 400, "a header line folded onto the next (obs-fold) is not accepted"), -1;
    const char *colon = memchr(p, ':', n);
    if (!colon) return fail(c, 400, "a header line without a colon"), -1;
    size_t kn = (size_t)(colon - p);
    if (!is_token(p, kn)) return fail(c, 400, "a header name that is not a token (no spaces before the colon)"), -1;
    const char *v = colon + 1;
    size_t vn = n - kn - 1;
    trim(&v, &vn);
    if (!value_ok(v, vn)) return fail(c, 400, "a header value with a control character"), -1;
    if (ieq(p, kn, "Content-Length")) {
        if (fr->cl && (fr->cln != vn || memcmp(fr->cl, v, vn))) fr->cl_differ = true;
        fr->cl = v, fr->cln = vn;
        return 0;
    }
    if (ieq(p, kn, "Transfer-Encoding")) {
        fr->te = true;
        fr->nte++;
        fr->te_chunked = ieq(v, vn, "chunked");
        return 0;
    }
    if (ieq(p, kn, "Host")) fr->host = true;
    sb_append(out, p, kn);
    sb_printf(out, ": ");
    sb_append(out, v, vn);
    sb_printf(out, "\r\n");
    return 0;
}

// the framing headers, checked (RFC 9112 6.1-6.3): a transfer coding other than chunked cannot be
// read (501); Content-Length must be digits and, when repeated, agree; not both (400)
static int framing(HttpReader *c, const Framing *fr, StrBuf *out) {
    if (fr->te && (fr->nte > 1 || !fr->te_chunked))
        return fail(c, 501, "Transfer-Encoding: only chunked is understood here (send the image's bytes as they are)"), -1;
    if (fr->cl_differ) return fail(c, 400, "Content-Length given twice with different values"), -1;
    if (fr->te && fr->cl) return fail(c, 400, "both Transfer-Encoding and Content-Length"), -1;
    if (fr->cl) {
        if (!fr->cln || strspn(fr->cl, "0123456789") < fr->cln) return fail(c, 400, "Content-Length is not a number of bytes"), -1;
        if (fr->cln > 18) return fail(c, 413, "Content-Length is larger than any body this server takes"), -1;
        char num[20];
        memcpy(num, fr->cl, fr->cln);
        num[fr->cln] = 0;
        c->left = strtoull(num, NULL, 10);
        sb_printf(out, "Content-Length: %llu\r\n", c->left);
        c->st = c->left ? P_BODY : P_HEAD;
    } else if (fr->te) {
        sb_printf(out, "Transfer-Encoding: chunked\r\n");
        c->st = P_CHUNK_SIZE;
    } else
        c->st = P_HEAD;
    return 0;
}

// the request line: METHOD SP request-target SP HTTP-version
static int request_line(HttpReader *c, const char *p, size_t n, bool *http11, StrBuf *out) {
    const char *sp1 = memchr(p, ' ', n);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - p)) : NULL;
    if (!sp1 || !sp2 || memchr(sp2 + 1, ' ', n - (size_t)(sp2 + 1 - p))) return fail(c, 400, "not an HTTP request line"), -1;
    size_t mn = (size_t)(sp1 - p), tn = (size_t)(sp2 - sp1 - 1), vn = n - (size_t)(sp2 + 1 - p);
    const char *t = sp1 + 1, *v = sp2 + 1;
    if (!is_token(p, mn)) return fail(c, 400, "the method is not a token"), -1;
    if (!tn || t[0] != '/') return fail(c, 400, "the request target must be a path (starting with /)"), -1;
    for (size_t i = 0; i < tn; i++)
        if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
            return fail(c, 400, "the request target holds a control character or a raw non-ASCII byte"), -1;
    if (vn == 8 && !memcmp(v, "HTTP/1.", 7) && (v[7] == '0' || v[7] == '1'))
        *http11 = v[7] == '1';
    else if (vn == 8 && !memcmp(v, "HTTP/", 5) && v[5] >= '0' && v[5] <= '9' && v[6] == '.' && v[7] >= '0' && v[7] <= '9')
        return fail(c, 505, "only HTTP/1.0 and HTTP/1.1 are spoken here"), -1;
    else
        return fail(c, 400, "not an HTTP request line"), -1;
    sb_append(out, p, n);
    sb_printf(out, "\r\n");
    return 0;
}

// parses one request head from the start of c->in when it is all there: >0 bytes used (the
// canonical head queued in out), 0 when more is needed, -1 refused
static long parse_head(HttpReader *c) {
    const char *p = (const char *)c->in, *end = p + c->nin;
    // empty lines before a request are ignored (RFC 9112 2.2)
    while (p < end && (*p == '\r' || *p == '\n')) p++;
    size_t skipped = (size_t)(p - (const char *)c->in);
    if (p < end && !c->nrq++) c->t0 = c->now; // the request's first byte
    const char *le = line_end(p, end);
    if ((le ? (size_t)(le - p) : (size_t)(end - p)) > HTTP_MAX_LINE) return fail(c, 414, "the request line is over 4096 bytes"), -1;
    if (!le) return skipped == c->nin && skipped ? (long)skipped : 0;
    // the method and target, for the count and the log, before anything else is checked
    const char *sp1 = memchr(p, ' ', (size_t)(le - p));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(le - sp1 - 1)) : NULL;
    if (sp1 && sp2) {
        size_t mn = (size_t)(sp1 - p), tn = (size_t)(sp2 - sp1 - 1);
        snprintf(c->method, sizeof c->method, "%.*s", (int)(mn < sizeof c->method ? mn : sizeof c->method - 1), p);
        snprintf(c->target, sizeof c->target, "%.*s", (int)(tn < sizeof c->target ? tn : sizeof c->target - 1), sp1 + 1);
    }
    // find the blank line that ends the head
    const char *q = le + 1, *head_end = NULL;
    while (q < end) {
        const char *e = line_end(q, end);
        if (!e) break;
        if (e == q || (e == q + 1 && *q == '\r')) {
            head_end = e + 1;
            break;
        }
        q = e + 1;
    }
    if (!head_end) {
        if ((size_t)(end - p) > HTTP_MAX_HEAD) return fail(c, 431, "the request's headers are too large"), -1;
        return 0;
    }
    if ((size_t)(head_end - p) > HTTP_MAX_HEAD) return fail(c, 431, "the request's headers are too large"), -1;
    if (memchr(p, 0, (size_t)(head_end - p))) return fail(c, 400, "a NUL byte in the request's head"), -1;
    StrBuf out = {0};
    bool http11 = false;
    size_t n = (size_t)(le - p) - (le > p && le[-1] == '\r');
    int rc = request_line(c, p, n, &http11, &out);
    Framing fr = {0};
    for (q = le + 1; rc == 0 && q < head_end;) {
        const char *e = line_end(q, head_end);
        size_t ln = (size_t)(e - q) - (e > q && e[-1] == '\r');
        if (ln == 0) break;
        rc = header_line(c, q, ln, &fr, &out);
        q = e + 1;
    }
    if (rc == 0 && http11 && !fr.host) rc = (fail(c, 400, "an HTTP/1.1 request without Host"), -1);
    if (rc == 0) rc = framing(c, &fr, &out);
    if (rc == 0) sb_printf(&out, "\r\n");
    if (rc == 0 && (out.oom || out.n > sizeof c->out - c->nout)) rc = (fail(c, 431, "the request's headers are too large"), -1);
    c->nrq = 0;
    if (rc == 0) {
        memcpy(c->out + c->nout, out.s, out.n);
        c->nout += out.n;
        c->head_passed = c->st != P_HEAD; // with a body to come
        c->is_head[c->passed % HTTP_PIPELINE] = !strcmp(c->method, "HEAD");
        c->passed++;
    }
    sb_free(&out);
    return rc == 0 ? (long)(head_end - (const char *)c->in) : -1;
}

// ---- chunked bodies ----

// one chunk size line at the start of p: >0 bytes used (c->left set), 0 more needed, -1 refused
static long parse_chunk_size(HttpReader *c, const char *p, size_t n) {
    const char *le = line_end(p, p + n);
    if (!le) return n > HTTP_MAX_LINE ? (fail(c, 400, "a chunk's size line (with its extensions) is over 4096 bytes"), -1) : 0;
    if ((size_t)(le - p) > HTTP_MAX_LINE) return fail(c, 400, "a chunk's size line (with its extensions) is over 4096 bytes"), -1;
    size_t digits = 0;
    while (digits < (size_t)(le - p) && strchr("0123456789abcdefABCDEF", p[digits]) && p[digits]) digits++;
    if (!digits || digits > 15) return fail(c, 400, "a chunk size that is not a hexadecimal number of bytes"), -1;
    const char *rest = p + digits;
    size_t rn = (size_t)(le - rest) - (le > rest && le[-1] == '\r');
    trim(&rest, &rn);
    if (rn && (rest[0] != ';' || !value_ok(rest, rn)))
        return fail(c, 400, "a chunk size line that is not hexadecimal digits and extensions"), -1;
    char num[16];
    memcpy(num, p, digits);
    num[digits] = 0;
    c->left = strtoull(num, NULL, 16);
    return (long)(le + 1 - p);
}

// the trailer section after the last chunk, dropped: >0 used, 0 more needed, -1 refused
static long parse_trailer(HttpReader *c, const char *p, size_t n) {
    const char *q = p, *end = p + (n < HTTP_MAX_LINE + 2 ? n : HTTP_MAX_LINE + 2);
    while (q < end) {
        const char *e = line_end(q, end);
        if (!e) break;
        if (e == q || (e == q + 1 && *q == '\r')) return (long)(e + 1 - p);
        q = e + 1;
    }
    return n > HTTP_MAX_LINE ? (fail(c, 400, "the trailer section is over 4096 bytes"), -1) : 0;
}

// ---- the body ----

static size_t room(const HttpReader *c) { return sizeof c->out - c->nout; }

static void queue_out(HttpReader *c, const void *p, size_t n) {
    memcpy(c->out + c->nout, p, n);
    c->nout += n;
}

void http_reader_parse(HttpReader *c, bool may_pass_head, double now) {
    c->now = now;
    size_t used = 0;
    for (;;) {
        const char *p = (const char *)c->in + used;
        size_t n = c->nin - used;
        long k = 0;
        if (c->st == P_FAILED) break;
        if (c->st == P_HEAD) {
            if (!n || room(c) < HTTP_MAX_HEAD + 64 || !may_pass_head) break;
            memmove(c->in, c->in + used, n); // parse_head reads from the buffer's start
            c->nin = n, used = 0;
            k = parse_head(c);
        } else if (c->st == P_BODY || c->st == P_CHUNK_DATA) {
            size_t m = n < c->left ? n : (size_t)c->left;
            size_t cap = room(c) > 32 ? room(c) - 32 : 0; // the chunk's size line and end fit beside it
            if (m > cap) m = cap;
            if (!m) break;
            if (c->st == P_CHUNK_DATA) {
                char line[24];
                int ln = snprintf(line, sizeof line, "%zx\r\n", m);
                queue_out(c, line, (size_t)ln);
            }
            queue_out(c, p, m);
            if (c->st == P_CHUNK_DATA) queue_out(c, "\r\n", 2);
            c->left -= m;
            k = (long)m;
            if (!c->left && c->st == P_BODY) c->st = P_HEAD, c->head_passed = false;
            if (!c->left && c->st == P_CHUNK_DATA) c->st = P_CHUNK_END;
        } else if (c->st == P_CHUNK_END) {
            if (n < 1 || (p[0] == '\r' && n < 2)) break;
            if (p[0] == '\n')
                k = 1;
            else if (p[0] == '\r' && p[1] == '\n')
                k = 2;
            else
                k = (fail(c, 400, "a chunk's data is longer than its size says"), -1);
            if (k > 0) c->st = P_CHUNK_SIZE;
        } else if (c->st == P_CHUNK_SIZE) {
            k = parse_chunk_size(c, p, n);
            if (k > 0) c->st = c->left ? P_CHUNK_DATA : P_TRAILER;
        } else if (c->st == P_TRAILER) {
            if (room(c) < 8) break;
            k = parse_trailer(c, p, n);
            if (k > 0) queue_out(c, "0\r\n\r\n", 5), c->st = P_HEAD, c->head_passed = false;
        }
        if (k <= 0) break;
        used += (size_t)k;
    }
    if (c->st != P_FAILED && used) {
        memmove(c->in, c->in + used, c->nin - used);
        c->nin -= used;
    }
}
