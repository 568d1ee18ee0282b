// fuzz_request.c: the server's own request parsing (apps/serve_request.c): the input's first line is
// the Content-Type header, the rest the body. A found image must lie inside the body; it is then
// decoded as the server would.
#include "fuzz_common.h"

#include "../apps/serve.h"
#include "../data/image.h"

#include "../base/fileio.h"
#include "../base/strbuf.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const uint8_t *nl = memchr(data, '\n', n < 300 ? n : 300);
    size_t cl = nl ? (size_t)(nl - data) : 0;
    char ct[301];
    memcpy(ct, data, cl);
    ct[cl] = 0;
    const uint8_t *body = nl ? nl + 1 : data;
    size_t bn = n - (size_t)(body - data);
    // the body in its own allocation, so that reading past it is caught
    uint8_t *b = malloc(bn ? bn : 1);
    memcpy(b, body, bn);
    // JSON text is UTF-8 whatever the bytes of a name: the escaped string always is
    char *name = malloc(bn + 1);
    memcpy(name, b, bn);
    name[bn] = 0;
    StrBuf js = {0};
    sb_json_str(&js, name);
    if (!js.oom && (!js.s || !text_is_utf8(js.s))) abort();
    utf8_cut_clean(name);
    if (!text_is_utf8(name) && serve_utf8_ok(name)) abort(); // the server's check is at least as strict
    sb_free(&js);
    free(name);
    char err[512];
    ServeUpload up;
    if (serve_parse_upload(ct, b, bn, &up, err, sizeof err) == 0) {
        if (up.data < b || up.data + up.n > b + bn || up.n == 0 || !serve_utf8_ok(up.name)) abort();
        Image im;
        if (image_decode(&im, up.data, up.n, up.name, err, sizeof err) == 0) image_free(&im);
    }
    ServeUpload ups[8]; // every image of a form: each inside the body, named in UTF-8, never more than asked
    int k = serve_parse_uploads(ct, b, bn, ups, 8, err, sizeof err);
    if (k > 8 || k == 0) abort();
    for (int i = 0; i < k; i++)
        if (ups[i].data < b || ups[i].data + ups[i].n > b + bn || ups[i].n == 0 || !serve_utf8_ok(ups[i].name)) abort();
    long v = 0;
    serve_parse_int("top", ct, 1, 100000, &v, err, sizeof err);
    free(b);
    return 0;
}
