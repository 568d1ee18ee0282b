// strbuf.c: see strbuf.h.
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sb_printf(StrBuf *b, const char *fmt, ...) {
    if (b->oom) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
    va_end(ap);
    if (k < 0) {
        b->oom = true;
        return;
    }
    if (!b->s || b->n + (size_t)k + 1 > b->cap) {
        size_t cap = (b->n + (size_t)k + 1) * 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = true;
            return;
        }
        b->s = s, b->cap = cap;
        va_start(ap, fmt);
        vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
    }
    b->n += (size_t)k;
}

void sb_append(StrBuf *b, const void *data, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = true;
            return;
        }
        b->s = s, b->cap = cap;
    }
    memcpy(b->s + b->n, data, n);
    b->n += n;
    b->s[b->n] = 0;
}

// the length of the well-formed UTF-8 sequence at p (no overlong forms, surrogates or code points
// past U+10FFFF), or 0 when the bytes there are not one
size_t utf8_seq_len(const unsigned char *p) {
    unsigned c = p[0];
    int n = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : -1;
    if (n < 0 || (n == 1 && c < 0xc2) || (n == 3 && c > 0xf4)) return 0;
    unsigned cp = n ? c & (0x3f >> n) : c;
    for (int i = 1; i <= n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff))) return 0;
    return (size_t)n + 1;
}

void utf8_cut_clean(char *s) {
    size_t L = strlen(s), k = L;
    while (k > 0 && L - k < 4 && ((unsigned char)s[k - 1] & 0xc0) == 0x80) k--; // back to the last sequence's first byte
    if (k > 0 && ((unsigned char)s[k - 1] & 0x80) && utf8_seq_len((const unsigned char *)s + k - 1) != L - k + 1) s[k - 1] = 0;
}

// JSON text is UTF-8: a byte that does not belong to a well-formed sequence (a file name from a
// file system that allows any bytes) is written as U+FFFD, the replacement character
void sb_json_str(StrBuf *b, const char *s) {
    sb_printf(b, "\"");
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned char ch = *p;
        size_t n = utf8_seq_len(p);
        if (ch == '"' || ch == '\\')
            sb_printf(b, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            sb_printf(b, "\\u%04x", ch);
        else if (n == 0)
            sb_printf(b, "\\ufffd");
        else
            sb_append(b, (const char *)p, n);
        p += n ? n : 1;
    }
    sb_printf(b, "\"");
}

void sb_free(StrBuf *b) {
    free(b->s);
    memset(b, 0, sizeof *b);
}
