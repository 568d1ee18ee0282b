// tboard.c: TensorBoard event files (tboard.h).
#include "tboard.h"

#include "../base/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct TbWriter {
    FILE *f;
};

uint32_t tb_crc32c(const void *data, size_t n) {
    static uint32_t table[256];
    static int ready;
    if (!ready) { // the reflected Castagnoli polynomial
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? 0x82F63B78u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    const uint8_t *p = data;
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

uint32_t tb_masked_crc(const void *data, size_t n) {
    uint32_t c = tb_crc32c(data, n);
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

// ---- protobuf, the little of it an Event needs ----

typedef struct {
    uint8_t b[1024];
    size_t n;
} Buf;

static void put_byte(Buf *o, uint8_t v) {
    if (o->n < sizeof o->b) o->b[o->n++] = v;
}
static void put_varint(Buf *o, uint64_t v) {
    do {
        put_byte(o, (uint8_t)((v & 0x7F) | (v > 0x7F ? 0x80 : 0)));
        v >>= 7;
    } while (v);
}
static void put_bytes(Buf *o, const void *p, size_t n) {
    for (size_t i = 0; i < n; i++) put_byte(o, ((const uint8_t *)p)[i]);
}
static void put_le(Buf *o, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) put_byte(o, (uint8_t)(v >> (8 * i)));
}
static void put_double(Buf *o, int field, double v) { // wire type 1, little-endian IEEE 754
    uint64_t u;
    memcpy(&u, &v, 8);
    put_varint(o, (uint64_t)field << 3 | 1), put_le(o, u, 8);
}
static void put_float(Buf *o, int field, float v) { // wire type 5
    uint32_t u;
    memcpy(&u, &v, 4);
    put_varint(o, (uint64_t)field << 3 | 5), put_le(o, u, 4);
}
static void put_len(Buf *o, int field, const void *p, size_t n) { // wire type 2
    put_varint(o, (uint64_t)field << 3 | 2), put_varint(o, n), put_bytes(o, p, n);
}

static double wall_time(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// one record: length, its masked CRC, the Event, its masked CRC
static int write_record(TbWriter *w, const Buf *ev) {
    Buf r = {0};
    put_le(&r, ev->n, 8);
    uint32_t lc = tb_masked_crc(r.b, 8);
    put_le(&r, lc, 4);
    put_bytes(&r, ev->b, ev->n);
    put_le(&r, tb_masked_crc(ev->b, ev->n), 4);
    if (ev->n >= sizeof ev->b || r.n >= sizeof r.b) return -1; // a tag too long for the buffer
    return fwrite(r.b, 1, r.n, w->f) == r.n && fflush(w->f) == 0 ? 0 : -1;
}

TbWriter *tb_open(const char *dir, char *err, size_t errn) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return snprintf(err, errn, "%s: cannot make the folder: %s", dir, strerror(errno)), NULL;
    // the folder itself, never through a symlink planted at its name; the file created in it by descriptor
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) return snprintf(err, errn, "%s: not a folder this run can write into: %s", dir, strerror(errno)), NULL;
    char host[128] = "localhost", name[256], path[FILE_PATH_BUF];
    gethostname(host, sizeof host - 1);
    host[strcspn(host, "/")] = 0;
    snprintf(name, sizeof name, "events.out.tfevents.%lld.%s", (long long)time(NULL), host);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    close(dfd);
    TbWriter *w = fd >= 0 ? calloc(1, sizeof *w) : NULL;
    if (w && !(w->f = fdopen(fd, "wb"))) free(w), w = NULL;
    if (!w) {
        snprintf(err, errn, "%s: cannot create the TensorBoard event file: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return NULL;
    }
    Buf ev = {0}; // the first event: the format's version
    put_double(&ev, 1, wall_time());
    put_len(&ev, 3, "brain.Event:2", 13);
    if (write_record(w, &ev) != 0) {
        snprintf(err, errn, "%s: cannot write: %s", path, strerror(errno));
        tb_close(w);
        return NULL;
    }
    return w;
}

int tb_scalar(TbWriter *w, const char *tag, int64_t step, double value) {
    if (!w) return -1;
    Buf val = {0}, sum = {0}, ev = {0};
    put_len(&val, 1, tag, strlen(tag)); // Summary.Value: tag, simple_value
    put_float(&val, 2, (float)value);
    put_len(&sum, 1, val.b, val.n);  // Summary: value
    put_double(&ev, 1, wall_time()); // Event: wall_time, step, summary
    put_varint(&ev, 2 << 3 | 0), put_varint(&ev, (uint64_t)step);
    put_len(&ev, 5, sum.b, sum.n);
    return write_record(w, &ev);
}

void tb_close(TbWriter *w) {
    if (!w) return;
    if (w->f) fclose(w->f);
    free(w);
}
