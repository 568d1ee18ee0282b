// rank_check.c: ranks of one MPI run must train the same thing. Each rank condenses what it sees
// (every training setting, the LoRA spec, the data's file names, labels and bytes, the model's
// weights) into one 64-bit fingerprint per item; rank 0 gathers them, names the first item where
// a rank differs, and every rank stops before anything is written. Without this, ranks with
// different --epochs took different numbers of steps (rank 0 finished, the other waited for ever)
// and ranks with different data or weights averaged gradients of different models.
#include "deit_lora.h"

#include "../base/fileio.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}
static uint64_t fnv_str(const char *s) { return fnv(1469598103934665603ull, s, strlen(s)); }

// the bytes of every file of the data (CRC-32 each, folded); 0 when one cannot be read (that rank
// then differs, and is named)
static uint64_t data_bytes(const Dataset *d) {
    uint64_t h = 1469598103934665603ull;
    unsigned char *buf = malloc(1 << 16);
    for (int i = 0; buf && i < d->n; i++) {
        if (!d->paths) break;
        uint64_t size;
        char e[256];
        int fd = file_open_regular(d->paths[i], &size, e, sizeof e);
        if (fd < 0) {
            free(buf);
            return 0;
        }
        uLong c = crc32(0L, Z_NULL, 0);
        ssize_t r;
        while ((r = read(fd, buf, 1 << 16)) > 0) c = crc32(c, buf, (uInt)r);
        close(fd);
        h = fnv(h, &c, sizeof c);
    }
    free(buf);
    return h;
}

static uint64_t weights(const VitModel *m) {
    uint64_t h = 1469598103934665603ull;
    Ctx *c = ctx_new(1 << 16);
    for (int i = 0; c && i < m->params.n; i++) {
        const Tensor *t = tensor_contiguous(c, m->params.p[i].t);
        if (!t) break;
        uLong crc = crc32(0L, Z_NULL, 0);
        const unsigned char *p = t->data;
        size_t n = (size_t)tensor_numel(t) * dtype_size(t->dtype);
        for (size_t k = 0; k < n; k += 1u << 30) crc = crc32(crc, p + k, (uInt)(n - k < (1u << 30) ? n - k : (1u << 30)));
        h = fnv(h, m->params.p[i].name, strlen(m->params.p[i].name));
        h = fnv(h, &crc, sizeof crc);
        ctx_reset(c);
    }
    ctx_free(c);
    return h;
}

int app_ranks_agree(const Dist *dist, const char *settings, const VitModel *m, const Dataset *d, char *err, size_t errn) {
    if (dist->size <= 1) return 0;
    // one item a line of settings, then the LoRA spec, the data and the weights
    enum { MAXI = 64 };
    const char *names[MAXI];
    char lines[MAXI][160];
    uint64_t fp[MAXI];
    int k = 0;
    for (const char *s = settings; *s && k < MAXI - 4;) {
        const char *e = strchr(s, '\n');
        size_t L = e ? (size_t)(e - s) : strlen(s);
        snprintf(lines[k], sizeof lines[k], "%.*s", (int)(L < 150 ? L : 150), s);
        char *sp = strchr(lines[k], ' ');
        fp[k] = fnv(1469598103934665603ull, s, L);
        if (sp) *sp = 0; // the item's name: the flag
        names[k] = lines[k];
        s += L + (e ? 1 : 0);
        if (strcmp(lines[k], "--data")) k++; // where the data lies may differ between machines; what it holds may not
    }
    char lora[600];
    snprintf(lora, sizeof lora, "r %d alpha %.17g dropout %.17g rslora %d regex %s targets", m->lora.r, m->lora.alpha, m->lora.dropout,
             m->lora.rslora, m->lora.target_regex);
    for (int t = 0; t < m->lora.ntargets; t++) strncat(lora, m->lora.targets[t], sizeof lora - strlen(lora) - 2), strcat(lora, ",");
    names[k] = "the LoRA settings (--lora-r, --lora-alpha, --lora-dropout, --target, --init-adapter)", fp[k++] = fnv_str(lora);
    names[k] = "the data's contents (the bytes of the images)", fp[k++] = data_bytes(d);
    names[k] = "the model's weights (--model, --init-adapter)", fp[k++] = weights(m);
    uint64_t *all = dist_root(dist) ? malloc(sizeof *all * (size_t)k * (size_t)dist->size) : NULL;
    if (dist_root(dist) && !all) return errorf(err, errn, "out of memory comparing the ranks' settings");
    if (dist_gather(dist, fp, sizeof *fp * (size_t)k, all, err, errn) != 0) return free(all), -1;
    int verdict[2] = {-1, -1}; // the item, the rank
    for (int r = 1; dist_root(dist) && r < dist->size && verdict[0] < 0; r++)
        for (int i = 0; i < k; i++)
            if (all[(size_t)r * (size_t)k + (size_t)i] != fp[i]) {
                verdict[0] = i, verdict[1] = r;
                break;
            }
    free(all);
    if (dist_broadcast(dist, verdict, sizeof verdict, err, errn) != 0) return -1;
    if (verdict[0] < 0) return 0;
    return errorf(err, errn,
                  "the MPI ranks do not train the same thing: %s differs between rank 0 and rank %d (every rank must see the "
                  "same settings, data and model); nothing was written",
                  names[verdict[0]], verdict[1]);
}
