// serve_request.c: what the server reads from a request besides HTTP itself (serve.h).
#include "../base/fileio.h"
#include "../base/strbuf.h"
#include "serve.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool serve_utf8_ok(const char *s) { // well-formed (no overlong forms, surrogates, past U+10FFFF), no control characters
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = utf8_seq_len(p);
        if (n == 0 || *p < 0x20 || *p == 0x7F) return false;
        p += n;
    }
    return true;
}

int serve_parse_int(const char *what, const char *s, long lo, long hi, long *out, char *err, size_t errn) {
    if (!s) return 0;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) {
        return errorf(err, errn, "%s: '%.40s' is not an integer in [%ld, %ld]", what, s, lo, hi);
    }
    *out = v;
    return 0;
}

// the first occurrence of needle (k bytes) in hay[0..n)
static const uint8_t *find(const uint8_t *hay, size_t n, const char *needle, size_t k) {
    if (k == 0 || n < k) return NULL;
    for (const uint8_t *p = hay; (p = memchr(p, needle[0], n - (size_t)(p - hay) - k + 1)); p++)
        if (!memcmp(p, needle, k)) return p;
    return NULL;
}

// a header parameter's value (name="value" or name=value) from s[0..n) into out; false if absent
static bool header_param(const char *s, size_t n, const char *name, char *out, size_t outn) {
    size_t k = strlen(name);
    for (size_t i = 0; i + k < n; i++) {
        if ((i > 0 && s[i - 1] != ';' && s[i - 1] != ' ' && s[i - 1] != '\t') || strncasecmp(s + i, name, k) || s[i + k] != '=') continue;
        const char *v = s + i + k + 1, *e = s + n;
        size_t m = 0;
        if (v < e && *v == '"') {
            for (v++; v < e && *v != '"'; v++) {
                if (*v == '\\' && v + 1 < e) v++;
                if (m + 1 < outn) out[m++] = *v;
            }
        } else
            for (; v < e && *v != ';' && *v != ' ' && *v != '\t' && *v != '\r' && *v != '\n'; v++)
                if (m + 1 < outn) out[m++] = *v;
        out[m] = 0;
        return true;
    }
    return false;
}

// one part's headers [h, h + hn): is it the image, and its filename
static bool part_is_image(const char *h, size_t hn, char *name, size_t namen) {
    char field[64] = "";
    for (size_t i = 0; i < hn;) { // each header line
        const char *line = h + i, *eol = memchr(line, '\n', hn - i);
        size_t len = eol ? (size_t)(eol - line) : hn - i;
        i += len + 1;
        if (len < 20 || strncasecmp(line, "Content-Disposition:", 20)) continue;
        name[0] = 0;
        bool has_file = header_param(line, len, "filename", name, namen);
        header_param(line, len, "name", field, sizeof field);
        return has_file || !strcmp(field, "image") || !strcmp(field, "file");
    }
    return false;
}

static int parse_multipart(const char *ct, const uint8_t *body, size_t n, ServeUpload *ups, int max, char *err, size_t errn) {
    int k = 0;
    char boundary[80], delim[96];
    if (!header_param(ct, strlen(ct), "boundary", boundary, sizeof boundary) || !boundary[0] || strlen(boundary) > 70) {
        return errorf(err, errn, "multipart/form-data without a valid boundary");
    }
    int dl = snprintf(delim, sizeof delim, "--%s", boundary);
    const uint8_t *p = find(body, n, delim, (size_t)dl), *end = body + n;
    while (p) {
        p += dl;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') break; // the closing delimiter
        const uint8_t *eol = find(p, (size_t)(end - p), "\r\n", 2);
        if (!eol) break;
        const uint8_t *hs = eol + 2, *he = find(hs, (size_t)(end - hs), "\r\n\r\n", 4);
        if (!he) break;
        const uint8_t *data = he + 4;
        char next[100];
        int nl = snprintf(next, sizeof next, "\r\n%s", delim);
        const uint8_t *stop = find(data, (size_t)(end - data), next, (size_t)nl);
        if (!stop) {
            return errorf(err, errn, "multipart/form-data: a part without its closing boundary (truncated body?)");
        }
        char name[256];
        if (part_is_image((const char *)hs, (size_t)(he - hs) + 2, name, sizeof name)) {
            if (k == max) {
                return errorf(err, errn, "multipart/form-data: more than %d images in one request%s", max,
                              max > 1 ? " (the server's --max-batch)" : " (this path takes one)");
            }
            ServeUpload *up = &ups[k++];
            up->data = data;
            up->n = (size_t)(stop - data);
            snprintf(up->name, sizeof up->name, "%s", name);
            utf8_cut_clean(up->name); // a long name cut at 255 bytes ends on a whole character
        }
        p = stop + 2;
    }
    if (k > 0) return k;
    return errorf(err, errn, "multipart/form-data: no file part (send the image as a part with a filename, or named \"image\")");
}

int serve_parse_uploads(const char *content_type, const uint8_t *body, size_t n, ServeUpload *ups, int max, char *err, size_t errn) {
    if (max < 1) return errorf(err, errn, "no room for an image");
    memset(ups, 0, sizeof *ups * (size_t)max);
    const char *ct = content_type ? content_type : "";
    while (*ct == ' ') ct++;
    int k = 1;
    if (!strncasecmp(ct, "multipart/form-data", 19)) {
        if ((k = parse_multipart(ct, body, n, ups, max, err, errn)) < 0) return -1;
    } else {
        ups[0].data = body;
        ups[0].n = n;
    }
    for (int i = 0; i < k; i++) {
        if (ups[i].n == 0) {
            return errorf(err, errn, "empty image%s (send the image's bytes as the body, or as a multipart file)",
                          k > 1 ? " in the form" : "");
        }
        if (!serve_utf8_ok(ups[i].name)) {
            return errorf(err, errn, "the file name is not UTF-8 text");
        }
    }
    return k;
}

int serve_parse_upload(const char *content_type, const uint8_t *body, size_t n, ServeUpload *up, char *err, size_t errn) {
    ServeUpload all[64];
    int k = serve_parse_uploads(content_type, body, n, all, 64, err, errn);
    if (k < 0) return -1;
    *up = all[0];
    return 0;
}
