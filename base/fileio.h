// fileio.h: files as a careful program writes them. Reads with a size bound; writes that appear
// whole or not at all (a fresh temporary beside the target, fsync, rename); staging folders for
// outputs made of several files. Nothing here follows a symlink it did not create or removes
// what this process did not make.
#ifndef CGRAD_FILEIO_H
#define CGRAD_FILEIO_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Sizes for path and message buffers. A path buffer is longer than the longest path the kernel
// accepts, so a path that had to be cut there is refused by the kernel (ENAMETOOLONG) rather than
// naming another file; a message holds two such paths and its cause.
#ifndef PATH_MAX // strict ISO C (-std=c11 without a POSIX feature macro) leaves it out: Linux's value
#define PATH_MAX 4096
#endif
#define FILE_PATH_BUF (PATH_MAX + 256)
#define FILE_ERR_BUF  (2 * PATH_MAX + 1024)

// Functions that report into a caller's buffer (char *err, size_t errn) end a failure with
// `return errorf(err, errn, "%s: what is wrong", path);`: the message written, -1 returned.
int errorf(char *err, size_t errn, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

// opens PATH for reading only if it is a regular file: a FIFO, a device or a directory is refused
// without blocking (opened non-blocking, checked, then made blocking); the fd and (size not NULL)
// its size in bytes, or -1 with a message
int file_open_regular(const char *path, uint64_t *size, char *err, size_t errn);
char *file_read_all(const char *path, size_t max_bytes, size_t *len, char *err, size_t errn); // NUL-terminated

// An atomic file: atomic_begin creates a fresh temporary beside PATH (.NAME.tmp-PID-XXXXXX, made
// with O_CREAT|O_EXCL|O_NOFOLLOW, so a planted file or symlink is never opened); atomic_write
// appends; atomic_commit fsyncs and renames it onto PATH: replacing what is there when REPLACE,
// else refusing an existing PATH (renameat2 RENAME_NOREPLACE). atomic_abort removes the temporary
// (it is also removed by a failed write or commit).
typedef struct AtomicFile {
    int fd;
    char *path, *tmp;
} AtomicFile;
int atomic_begin(AtomicFile *af, const char *path, char *err, size_t errn);
int atomic_write(AtomicFile *af, const void *data, size_t len, char *err, size_t errn);
int atomic_commit(AtomicFile *af, bool replace, char *err, size_t errn);
void atomic_abort(AtomicFile *af);
// the three steps for data in memory
int file_write_atomic(const char *path, const void *data, size_t len, bool replace, char *err, size_t errn);
int fsync_dir_of(const char *path);

// A staging folder: an output made of several files appears complete or not at all.
// stage_begin makes a fresh folder beside OUT (.NAME.tmp-PID-XXXXXX, mkdtemp, mode 0700, with a
// marker file naming this process); the caller writes into stage.path; stage_commit moves it into
// place in one rename when OUT does not exist, else file by file into the existing OUT (each rename
// replacing the file of that name: --overwrite), or, with STAGE_REPLACE_DIR, swaps the whole folder.
// stage_abort removes what is in the folder (by its descriptor: symlinks inside are removed, never
// followed) and the folder. stage_begin first removes staging folders of OUT's parent left by
// processes that died (a kill -9): only folders with this program's marker whose process is gone.
typedef struct Stage {
    char *path, *out;
    int fd;
} Stage;
enum { STAGE_MERGE_FILES = 0, STAGE_REPLACE_DIR = 1 };
int stage_begin(Stage *s, const char *out, char *err, size_t errn);
int stage_commit(Stage *s, int mode, char *err, size_t errn);
void stage_abort(Stage *s);
// removes the staging folders in DIR whose process is gone (as stage_begin does); their count
int stage_clean_stale(const char *dir);
// removes the folder PATH and what it holds, by descriptors, never following a symlink (a symlink
// at PATH itself is refused); first moved into a staging folder so a crash leaves no half folder
int stage_remove_dir(const char *path, char *err, size_t errn);

// Writers note why an output could not be written (errno: ENOSPC, EDQUOT, EIO, EACCES...), so that
// a command can tell a failed write (exit 3) from bad input (exit 2); 0 while no write has failed.
#define FILE_EXIT_WRITE 3
void file_note_write_failure(int errnum);
int file_write_failure(void);
// Flushes and closes stdout; on failure (a full disk, a closed pipe's EIO) prints
// "PROG: cannot write the output: CAUSE" and returns FILE_EXIT_WRITE, else RC.
int file_close_stdout(const char *prog, int rc);
bool file_exists(const char *path);
bool text_is_utf8(const char *s); // well-formed UTF-8 (no overlong forms, surrogates or bytes past U+10FFFF)
bool dir_exists(const char *path);
// DIR/NAME into BUF (size N, which should be FILE_PATH_BUF: a result cut there is then too long
// for the kernel and refused, never another file's name)
char *path_join(char *buf, size_t n, const char *dir, const char *name);

#ifdef __cplusplus
}
#endif

#endif
