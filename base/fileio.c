// fileio.c: see fileio.h.
#define _GNU_SOURCE // renameat2
#include "fileio.h"
#include "strbuf.h"

#include <dirent.h>
#include <signal.h>
#include <time.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
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
        return errorf(err, errn, "%s: cannot open: %s", path, strerror(errno));
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

int file_close_stdout(const char *prog, int rc) {
    errno = 0;
    bool bad = fflush(stdout) != 0 || ferror(stdout);
    int e = errno;
    if (fclose(stdout) != 0 && !bad) bad = true, e = errno;
    if (!bad) return rc;
    fprintf(stderr, "%s: cannot write the output: %s\n", prog, strerror(e ? e : EIO));
    return FILE_EXIT_WRITE;
}

static int fail_write(char *err, size_t errn, int e, const char *what, const char *path) {
    snprintf(err, errn, "%s: %s: %s", path, what, strerror(e));
    file_note_write_failure(e);
    return -1;
}

// the folder part of PATH ("." when none), malloc'd; NAME points into PATH at its last component
static char *split_dir(const char *path, const char **name) {
    const char *slash = strrchr(path, '/');
    *name = slash ? slash + 1 : path;
    if (!slash) return strdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (d) memcpy(d, path, n), d[n] = 0;
    return d;
}

int fsync_dir_of(const char *path) {
    const char *name;
    char *dir = split_dir(path, &name);
    int fd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    free(dir);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

// a fresh name beside PATH: DIR/.NAME.tmp-PID-XXXXXX (or DIR/.cgrad.tmp-PID-XXXXXX when NAME is too
// long to take the suffix), with XXXXXX to be filled by the caller
static char *temp_name(const char *path) {
    const char *name;
    char *dir = split_dir(path, &name);
    if (!dir) return NULL;
    char pid[32];
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    size_t nl = strlen(name), fixed = strlen(".") + strlen(".tmp-") + strlen(pid) + strlen("-XXXXXX");
    if (nl + fixed > NAME_MAX || nl == 0) name = "cgrad", nl = 5;
    size_t n = strlen(dir) + 1 + nl + fixed + 1;
    char *t = malloc(n);
    if (t) snprintf(t, n, "%s/.%s.tmp-%s-XXXXXX", dir, name, pid);
    free(dir);
    return t;
}

static void fill_random(char *x6) { // the last six characters of a temp_name
    static _Atomic unsigned long counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long long v =
        (unsigned long long)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (unsigned long long)atomic_fetch_add(&counter, 1) * 0xbf58476d1ce4e5b9ull;
    static const char AL[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    for (int i = 0; i < 6; i++) x6[i] = AL[v % 62], v /= 62;
}

int atomic_begin(AtomicFile *af, const char *path, char *err, size_t errn) {
    *af = (AtomicFile){.fd = -1};
    af->path = strdup(path);
    af->tmp = temp_name(path);
    if (!af->path || !af->tmp) {
        snprintf(err, errn, "%s: out of memory", path);
        atomic_abort(af);
        return -1;
    }
    size_t L = strlen(af->tmp);
    for (int tries = 0; tries < 100; tries++) {
        fill_random(af->tmp + L - 6);
        af->fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (af->fd >= 0 || errno != EEXIST) break;
    }
    if (af->fd < 0) {
        fail_write(err, errn, errno, "cannot create a temporary file beside it", path);
        atomic_abort(af);
        return -1;
    }
    return 0;
}

int atomic_write(AtomicFile *af, const void *data, size_t len, char *err, size_t errn) {
    const char *p = data;
    while (len) {
        ssize_t w = write(af->fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            fail_write(err, errn, w < 0 ? errno : EIO, "write failed", af->path);
            atomic_abort(af);
            return -1;
        }
        p += w, len -= (size_t)w;
    }
    return 0;
}

// renames FROM onto TO without replacing anything there: renameat2(RENAME_NOREPLACE), or where the
// file system lacks it, link + unlink (also refusing an existing TO) for files
static int rename_noreplace(const char *from, const char *to, bool is_dir) {
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0) return 0;
    if (errno != EINVAL && errno != ENOSYS) return -1;
    if (is_dir) {
        struct stat st;
        if (lstat(to, &st) == 0) return errno = EEXIST, -1;
        return rename(from, to);
    }
    if (link(from, to) != 0) return -1;
    unlink(from);
    return 0;
}

int atomic_commit(AtomicFile *af, bool replace, char *err, size_t errn) {
    int e = 0;
    if (fsync(af->fd) != 0) e = errno;
    if (close(af->fd) != 0 && !e) e = errno;
    af->fd = -1;
    if (e) {
        fail_write(err, errn, e, "write failed", af->path);
        atomic_abort(af);
        return -1;
    }
    if ((replace ? rename(af->tmp, af->path) : rename_noreplace(af->tmp, af->path, false)) != 0) {
        e = errno;
        if (e == EEXIST)
            snprintf(err, errn, "%s: exists (not replaced)", af->path), file_note_write_failure(e);
        else
            fail_write(err, errn, e, "cannot rename into place", af->path);
        atomic_abort(af);
        return -1;
    }
    fsync_dir_of(af->path);
    free(af->tmp), free(af->path);
    *af = (AtomicFile){.fd = -1};
    return 0;
}

void atomic_abort(AtomicFile *af) {
    if (af->fd >= 0) close(af->fd);
    if (af->tmp) unlink(af->tmp); // unlink never follows a symlink
    free(af->tmp), free(af->path);
    *af = (AtomicFile){.fd = -1};
}

int file_write_atomic(const char *path, const void *data, size_t len, bool replace, char *err, size_t errn) {
    AtomicFile af;
    if (atomic_begin(&af, path, err, errn) != 0 || atomic_write(&af, data, len, err, errn) != 0) return -1;
    return atomic_commit(&af, replace, err, errn);
}

// ---- staging folders

#define STAGE_MARKER ".cgrad-stage"

// a stream over the folder FD (from its start), leaving FD open; NULL on failure
static DIR *dir_of_fd(int fd) {
    int dup_fd = dup(fd);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (!d && dup_fd >= 0) close(dup_fd);
    if (d) rewinddir(d); // the duplicate shares its position with FD, which may have been read before
    return d;
}

// removes what the folder FD holds, never following a symlink: symlinks and files are unlinked,
// real folders (opened with O_NOFOLLOW) emptied and removed; DEPTH bounds the recursion
static int remove_contents(int fd, int depth) {
    DIR *d = dir_of_fd(fd);
    if (!d) return -1;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        struct stat st;
        if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            int sub = depth > 0 ? openat(fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
            if (sub < 0 || remove_contents(sub, depth - 1) != 0) rc = -1;
            if (sub >= 0) close(sub);
            if (unlinkat(fd, e->d_name, AT_REMOVEDIR) != 0) rc = -1;
        } else if (unlinkat(fd, e->d_name, 0) != 0) {
            rc = -1;
        }
    }
    closedir(d);
    return rc;
}

// the process's umask, read without changing it (umask(2) would, for a moment, for every thread)
static mode_t process_umask(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned u = 022;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Umask: %o", &u) == 1) break;
    if (f) fclose(f);
    return (mode_t)u;
}

// makes a fresh staging folder beside OUT with the marker; the folder's descriptor
static int stage_make(Stage *s, const char *out, char *err, size_t errn) {
    *s = (Stage){.fd = -1};
    s->out = strdup(out);
    for (size_t L = s->out ? strlen(s->out) : 0; L > 1 && s->out[L - 1] == '/'; L--) s->out[L - 1] = 0; // "out/" is out
    out = s->out ? s->out : out;
    s->path = temp_name(out);
    if (!s->out || !s->path) {
        snprintf(err, errn, "%s: out of memory", out);
        stage_abort(s);
        return -1;
    }
    if (!mkdtemp(s->path)) {
        fail_write(err, errn, errno, "cannot create a staging folder beside it", out);
        free(s->path), s->path = NULL;
        stage_abort(s);
        return -1;
    }
    s->fd = open(s->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (s->fd >= 0) fchmod(s->fd, 0777 & ~process_umask()); // mkdtemp's 0700 until then; the output gets the usual mode
    int m = s->fd >= 0 ? openat(s->fd, STAGE_MARKER, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600) : -1;
    char line[64];
    int n = snprintf(line, sizeof line, "cgrad %ld\n", (long)getpid());
    if (m < 0 || write(m, line, (size_t)n) != n) {
        fail_write(err, errn, errno ? errno : EIO, "cannot create a staging folder beside it", out);
        if (m >= 0) close(m);
        stage_abort(s);
        return -1;
    }
    close(m);
    return 0;
}

// the process id of a staging folder's name (.NAME.tmp-PID-XXXXXX), or -1
static long stage_name_pid(const char *name) {
    size_t L = strlen(name);
    if (name[0] != '.' || L < 14 || name[L - 7] != '-') return -1;
    const char *t = name + L - 7;
    const char *p = t;
    while (p > name && p[-1] >= '0' && p[-1] <= '9') p--;
    if (p == t || p - name < 5 || strncmp(p - 5, ".tmp-", 5)) return -1;
    char *end;
    long pid = strtol(p, &end, 10);
    return end == t && pid > 0 ? pid : -1;
}

int stage_clean_stale(const char *dir) {
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return 0;
    DIR *d = dir_of_fd(dfd);
    if (!d) {
        close(dfd);
        return 0;
    }
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long pid = stage_name_pid(e->d_name);
        if (pid < 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; // alive, or not ours to judge
        int sfd = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sfd < 0) continue; // a symlink or a file: not a staging folder
        int m = openat(sfd, STAGE_MARKER, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        char line[64] = {0}, want[64];
        snprintf(want, sizeof want, "cgrad %ld\n", pid);
        struct stat st;
        bool ours = m >= 0 && fstat(m, &st) == 0 && S_ISREG(st.st_mode) && read(m, line, sizeof line - 1) > 0 && !strcmp(line, want);
        if (m >= 0) close(m);
        if (ours && remove_contents(sfd, 8) == 0 && unlinkat(dfd, e->d_name, AT_REMOVEDIR) == 0) removed++;
        close(sfd);
    }
    closedir(d);
    close(dfd);
    return removed;
}

// moves the real folder PATH into a fresh staging folder of its own (as TRASH/old), from where
// stage_abort removes it; a symlink or a file at PATH is refused
static int move_aside(const char *path, Stage *trash, char *err, size_t errn) {
    struct stat st;
    if (lstat(path, &st) != 0) return fail_write(err, errn, errno, "cannot move aside", path);
    if (!S_ISDIR(st.st_mode)) {
        return errorf(err, errn, "%s: not a folder (a symlink or a file): left alone", path);
    }
    char p[FILE_PATH_BUF];
    if (stage_make(trash, path, err, errn) != 0) return -1;
    if (rename(path, path_join(p, sizeof p, trash->path, "old")) != 0) {
        fail_write(err, errn, errno, "cannot move aside", path);
        stage_abort(trash);
        return -1;
    }
    return 0;
}

int stage_begin(Stage *s, const char *out, char *err, size_t errn) {
    const char *name;
    char *parent = split_dir(out, &name);
    if (parent) stage_clean_stale(parent);
    free(parent);
    return stage_make(s, out, err, errn);
}

// moves every file of the stage (but the marker) into the existing folder OUT, replacing files of
// the same name
static int stage_merge_into(Stage *s, char *err, size_t errn) {
    int ofd = open(s->out, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (ofd < 0) return fail_write(err, errn, errno, "cannot open the output folder", s->out);
    DIR *d = dir_of_fd(s->fd);
    int rc = d ? 0 : fail_write(err, errn, errno, "cannot read the staging folder", s->path);
    struct dirent *e;
    while (d && rc == 0 && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, STAGE_MARKER)) continue;
        struct stat st;
        if (fstatat(ofd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
            snprintf(err, errn, "%s/%s: is a folder (not replaced by a file)", s->out, e->d_name);
            rc = -1;
        } else if (renameat(s->fd, e->d_name, ofd, e->d_name) != 0) {
            char p[FILE_PATH_BUF];
            rc = fail_write(err, errn, errno, "cannot move into place", path_join(p, sizeof p, s->out, e->d_name));
        }
    }
    if (d) closedir(d);
    if (rc == 0) fsync(ofd);
    close(ofd);
    return rc;
}

int stage_commit(Stage *s, int mode, char *err, size_t errn) {
    int rc = -1;
    struct stat st;
    bool exists = lstat(s->out, &st) == 0;
    if (!exists || mode == STAGE_REPLACE_DIR) {
        unlinkat(s->fd, STAGE_MARKER, 0);
        Stage old = {.fd = -1};
        // the whole folder swapped: the old one moved aside, then removed
        if (exists && move_aside(s->out, &old, err, errn) != 0) goto done;
        if (rename_noreplace(s->path, s->out, true) == 0) {
            fsync_dir_of(s->out);
            if (exists) stage_abort(&old);
            close(s->fd);
            free(s->path), free(s->out);
            *s = (Stage){.fd = -1};
            return 0;
        }
        int e = errno;
        if (exists) { // put the old folder back
            char p[FILE_PATH_BUF];
            if (rename(path_join(p, sizeof p, old.path, "old"), s->out) == 0) stage_abort(&old);
            fail_write(err, errn, e, "cannot move the finished output into place", s->out);
            goto done;
        }
        if (e != EEXIST && e != ENOTEMPTY && e != ENOTDIR) {
            fail_write(err, errn, e, "cannot move the finished output into place", s->out);
            goto done;
        }
        // OUT appeared meanwhile: merged into, file by file, below
    }
    rc = stage_merge_into(s, err, errn);
done:
    stage_abort(s);
    return rc;
}

void stage_abort(Stage *s) {
    if (s->fd >= 0) {
        remove_contents(s->fd, 8);
        close(s->fd);
        if (s->path) rmdir(s->path); // a symlink put in its place is not a folder: ENOTDIR
    }
    free(s->path), free(s->out);
    *s = (Stage){.fd = -1};
}

int stage_remove_dir(const char *path, char *err, size_t errn) {
    Stage trash;
    if (move_aside(path, &trash, err, errn) != 0) return -1;
    stage_abort(&trash);
    return 0;
}

bool text_is_utf8(const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = utf8_seq_len(p);
        if (!n) return false;
        p += n;
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

int errorf(char *err, size_t errn, const char *fmt, ...) {
    if (err && errn) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errn, fmt, ap);
        va_end(ap);
    }
    return -1;
}
