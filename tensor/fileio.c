// fileio.c: see fileio.h.
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int file_open_regular(const char *path, uint64_t *size, char *err, size_t errn) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errn, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errn, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    if (size) *size = (uint64_t)st.st_size;
    return fd;
}

char *file_read_all(const char *path, size_t max_bytes, size_t *len, char *err, size_t errn) {
    uint64_t bytes;
    int fd = file_open_regular(path, &bytes, err, errn);
    if (fd < 0) return NULL;
    if (bytes > max_bytes) {
        snprintf(err, errn, "%s: %llu bytes, above the limit of %zu", path, (unsigned long long)bytes, max_bytes);
        close(fd);
        return NULL;
    }
    size_t size = (size_t)bytes, n = 0;
    char *buf = malloc(size + 1);
    if (!buf) {
        snprintf(err, errn, "%s: out of memory reading %zu bytes", path, size);
        close(fd);
        return NULL;
    }
    while (n < size) {
        ssize_t r = read(fd, buf + n, size - n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
    }
    close(fd);
    if (n != size) {
        snprintf(err, errn, "%s: read failed (%zu of %zu bytes)", path, n, size);
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

static _Atomic int write_failure;
void file_note_write_failure(int errnum) {
    int zero = 0;
    atomic_compare_exchange_strong(&write_failure, &zero, errnum ? errnum : EIO);
}
int file_write_failure(void) { return write_failure; }

int fsync_dir_of(const char *path) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    int fd = open(dirname(tmp), O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int file_write_atomic(const char *path, const void *data, size_t len, char *err, size_t errn) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        snprintf(err, errn, "%s: cannot write: %s", tmp, strerror(errno));
        file_note_write_failure(errno);
        return -1;
    }
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            snprintf(err, errn, "%s: write failed: %s", tmp, strerror(errno));
            file_note_write_failure(errno);
            close(fd);
            unlink(tmp);
            return -1;
        }
        p += w, left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        snprintf(err, errn, "%s: write failed: %s", tmp, strerror(errno));
        file_note_write_failure(errno);
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        snprintf(err, errn, "%s: cannot rename into place: %s", path, strerror(errno));
        file_note_write_failure(errno);
        unlink(tmp);
        return -1;
    }
    fsync_dir_of(path);
    return 0;
}

bool text_is_utf8(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        int n = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : -1;
        if (n < 0 || (n == 1 && c < 0xc2) || (n == 3 && c > 0xf4)) return false;
        unsigned cp = n ? c & (0x3f >> n) : c;
        for (int i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff))) return false;
        p += n + 1;
    }
    return true;
}

bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool dir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *path_join(char *buf, size_t n, const char *dir, const char *name) {
    snprintf(buf, n, "%s/%s", dir, name);
    return buf;
}
