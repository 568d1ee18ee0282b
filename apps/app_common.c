// app_common.c: what the deit_lora commands share: loading a model with an optional adapter,
// output folders, dataset labels mapped onto the model's, threads and signals.
#include "deit_lora.h"

#include "../base/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <omp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double app_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int app_fail(const char *cmd, const char *msg) {
    fprintf(stderr, "deit_lora %s: %s\n", cmd, msg);
    return 2;
}

int app_load_model(VitModel *m, ImageProcessor *ip, const char *model, const char *adapter, bool int8, char *err, size_t errn) {
    if (vit_load(m, model, err, errn) != 0) return -1;
    if (image_processor_for_model(ip, model, m->cfg.image_size, err, errn) != 0 || (adapter && adapter_load(m, adapter, err, errn) != 0) ||
        (int8 && vit_quantize_int8(m, err, errn) != 0)) {
        vit_free(m);
        return -1;
    }
    int h, w;
    if (image_processor_out_size(ip, &h, &w) != 0 || h != m->cfg.image_size || w != m->cfg.image_size) {
        snprintf(err, errn, "%s: the image processor's output is not the model's %dx%d input", model, m->cfg.image_size, m->cfg.image_size);
        vit_free(m);
        return -1;
    }
    return 0;
}

static bool dir_empty(const char *p) {
    DIR *d = opendir(p);
    if (!d) return false;
    struct dirent *e;
    bool empty = true;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, APP_LOCK_FILE)) empty = false;
    closedir(d);
    return empty;
}

// p's folder and last name, trailing slashes ignored: "a/b/" -> "a" and "b", "b" -> "." and "b",
// "/b" -> "/" and "b"
static void split_path(const char *p, char *dir, size_t dn, char *base, size_t bn) {
    snprintf(dir, dn, "%s", p);
    char *slash = strrchr(dir, '/');
    while (slash && slash > dir && slash[1] == 0) *slash = 0, slash = strrchr(dir, '/');
    if (!slash) {
        snprintf(base, bn, "%s", dir);
        snprintf(dir, dn, ".");
        return;
    }
    snprintf(base, bn, "%s", slash + 1);
    if (slash == dir)
        slash[1] = 0; // the root
    else
        *slash = 0;
}

// the absolute path of p, which need not exist yet (its parent must); false if it cannot be told
static bool abs_path(const char *p, char *out, size_t n) {
    char buf[PATH_MAX];
    if (realpath(p, buf)) return snprintf(out, n, "%s", buf) < (int)n;
    char dir[PATH_MAX], base[PATH_MAX];
    split_path(p, dir, sizeof dir, base, sizeof base);
    if (!realpath(dir, buf)) return false;
    return snprintf(out, n, "%s/%s", strcmp(buf, "/") ? buf : "", base) < (int)n;
}

// a is b, or lies inside the folder b
static bool within(const char *a, const char *b) {
    size_t n = strlen(b);
    return !strncmp(a, b, n) && (a[n] == 0 || a[n] == '/' || (n == 1 && b[0] == '/'));
}

static int check_overlap(const char *flag, const char *out, const char *const *inputs, char *err, size_t errn) {
    char o[PATH_MAX + 256], in[PATH_MAX + 256];
    if (!abs_path(out, o, sizeof o)) return 0; // a missing parent is reported by the caller
    for (int i = 0; inputs && inputs[i]; i++) {
        if (!abs_path(inputs[i], in, sizeof in)) continue;
        if (within(o, in) || within(in, o)) {
            return errorf(err, errn, "%s: %s %s the input %s (refusing to write over an input)", flag, out,
                          !strcmp(o, in)  ? "is"
                          : within(o, in) ? "lies inside"
                                          : "holds",
                          inputs[i]);
        }
    }
    return 0;
}

// the folder an output will be made in exists
// the folder an output goes into exists ("out/" names out, in the current folder)
static int parent_exists(const char *flag, const char *path, char *err, size_t errn) {
    char parent[FILE_PATH_BUF], base[FILE_PATH_BUF];
    split_path(path, parent, sizeof parent, base, sizeof base);
    if (!dir_exists(parent)) {
        return errorf(err, errn, "%s: the folder %s does not exist", flag, parent);
    }
    return 0;
}

int app_output_dir(const char *flag, const char *dir, bool overwrite, bool resume, const char *const *inputs, char *err, size_t errn) {
    struct stat st;
    if (check_overlap(flag, dir, inputs, err, errn) != 0) return -1;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            return errorf(err, errn, "%s: %s exists and is not a folder", flag, dir);
        }
        if (access(dir, W_OK | X_OK) != 0) {
            return errorf(err, errn, "%s: %s is not writable", flag, dir);
        }
        if (!resume && !overwrite && !dir_empty(dir)) {
            return errorf(err, errn, "%s: %s is not empty (use --overwrite to replace its files%s)", flag, dir,
                          !strcmp(flag, "--output") ? ", or --resume to continue" : "");
        }
        return 0;
    }
    if (resume) {
        return errorf(err, errn, "--resume: %s does not exist", dir);
    }
    return parent_exists(flag, dir, err, errn); // created by app_make_output_dir once every input has been checked
}

int app_output_file(const char *flag, const char *path, bool overwrite, const char *const *inputs, char *err, size_t errn) {
    struct stat st;
    if (check_overlap(flag, path, inputs, err, errn) != 0) return -1;
    if (stat(path, &st) == 0) {
        if (!S_ISREG(st.st_mode)) {
            return errorf(err, errn, "%s: %s exists and is not a regular file", flag, path);
        }
        if (!overwrite) {
            return errorf(err, errn, "%s: %s exists (use --overwrite to replace it)", flag, path);
        }
        return 0;
    }
    return parent_exists(flag, path, err, errn);
}

int app_make_output_dir(const char *dir, char *err, size_t errn) {
    if (dir_exists(dir)) return 0;
    if (mkdir(dir, 0755) != 0) {
        snprintf(err, errn, "--output: cannot create %s: %s", dir, strerror(errno));
        file_note_write_failure(errno);
        return -1;
    }
    return 0;
}

int app_exit_status(int rc) { return rc != 0 && file_write_failure() ? FILE_EXIT_WRITE : rc; }

static int lock_fd = -1;
static char lock_path[FILE_PATH_BUF];

int app_lock_output(const char *dir, char *err, size_t errn) {
    path_join(lock_path, sizeof lock_path, dir, APP_LOCK_FILE);
    int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        return errorf(err, errn, "--output: cannot create the lock %s: %s", lock_path, strerror(errno));
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(fd, F_SETLK, &fl) != 0) {
        struct flock who = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        long pid = fcntl(fd, F_GETLK, &who) == 0 && who.l_type != F_UNLCK ? (long)who.l_pid : -1;
        snprintf(err, errn, "--output: %s is in use by another deit_lora run (process %ld holds %s)", dir, pid, APP_LOCK_FILE);
        close(fd);
        return -1;
    }
    char b[32];
    int n = snprintf(b, sizeof b, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, b, (size_t)n, 0) != n) { /* the lock holds without the note */
    }
    lock_fd = fd;
    return 0;
}

void app_unlock_output(void) {
    if (lock_fd < 0) return;
    unlink(lock_path);
    close(lock_fd);
    lock_fd = -1;
}

void app_warn_skipped(const Dataset *d, const char *data) {
    if (d->nskipped == 0 || !dist_root(dist_world())) return; // said once, by the first rank
    if (d->nskipped == 1)
        fprintf(stderr, "warning: %s: not a JPEG or PNG image, skipped\n", d->first_skipped);
    else
        fprintf(stderr, "warning: %s: %d files are not JPEG or PNG images, skipped (the first: %s)\n", data, d->nskipped, d->first_skipped);
}

int app_map_labels(Dataset *d, const VitConfig *cfg, const char *data, char *err, size_t errn) {
    int *map = malloc(sizeof *map * (size_t)d->nclasses);
    for (int c = 0; c < d->nclasses; c++) {
        map[c] = vit_config_label_id(cfg, d->class_names[c]);
        if (map[c] < 0) {
            snprintf(err, errn, "%s: class '%s' is not one of the model's %d labels", data, d->class_names[c], cfg->num_labels);
            free(map);
            return -1;
        }
    }
    for (int i = 0; i < d->n; i++) d->labels[i] = map[d->labels[i]];
    free(map);
    return 0;
}

void app_threads(long n) {
    if (n > 0) {
        omp_set_num_threads((int)n); // OpenBLAS stays single-threaded inside (kernels_blas_init)
    }
}

static void on_signal(int sig) {
    (void)sig;
    trainer_stop = 1;
}

void app_catch_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int app_target_list(const char *s, VitLoraSpec *spec, char *err, size_t errn) {
    spec->ntargets = 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (spec->ntargets == VIT_MAX_TARGETS || strlen(tok) >= sizeof spec->targets[0] || !*tok) {
            return errorf(err, errn, "--target: '%s' is not a list of at most %d module names", s, VIT_MAX_TARGETS);
        }
        snprintf(spec->targets[spec->ntargets++], sizeof spec->targets[0], "%s", tok);
    }
    if (!spec->ntargets) {
        return errorf(err, errn, "--target: empty list");
    }
    return 0;
}

FILE *log_open(const char *path, bool append, char *err, size_t errn) {
    int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0644);
    FILE *f = fd >= 0 ? fdopen(fd, append ? "a" : "w") : NULL;
    if (!f) {
        snprintf(err, errn, "%s: cannot write the log: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
    }
    return f;
}
