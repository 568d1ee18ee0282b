// strbuf.h: a growing string for building text (JSON headers, answers, reports); internal to
// the library and its programs, not installed. After an allocation failure it stays as it was
// and oom is set, so a builder checks once at the end.
#ifndef CGRAD_STRBUF_H
#define CGRAD_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *s;
    size_t n, cap;
    bool oom;
} StrBuf;

void sb_printf(StrBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_append(StrBuf *b, const void *data, size_t n); // bytes (kept 0-terminated)
void sb_json_str(StrBuf *b, const char *s);            // a JSON string literal: quotes, escapes; bytes that are not UTF-8 as \ufffd
size_t utf8_seq_len(const unsigned char *p);           // a well-formed UTF-8 sequence's length at p, or 0
void utf8_cut_clean(char *s);                          // drops an incomplete sequence at the end (a string cut short)
void sb_free(StrBuf *b);

#endif
