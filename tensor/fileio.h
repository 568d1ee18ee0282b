// fileio.h: whole-file reads with a size bound, and atomic writes (PATH.tmp, fsync, rename,
// fsync of the directory) so that a crash never leaves a half-written file under PATH.
#ifndef CGRAD_FILEIO_H
#define CGRAD_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// opens PATH for reading only if it is a regular file: a FIFO, a device or a directory is refused
// without blocking (opened non-blocking, checked, then made blocking); the fd and (size not NULL)
// its size in bytes, or -1 with a message
int file_open_regular(const char *path, uint64_t *size, char *err, size_t errn);
char *file_read_all(const char *path, size_t max_bytes, size_t *len, char *err, size_t errn); // NUL-terminated
int file_write_atomic(const char *path, const void *data, size_t len, char *err, size_t errn);
int fsync_dir_of(const char *path);
// Writers note why an output could not be written (errno: ENOSPC, EDQUOT, EIO, EACCES...), so that
// a command can tell a failed write (exit 3) from bad input (exit 2); 0 while no write has failed.
#define FILE_EXIT_WRITE 3
void file_note_write_failure(int errnum);
int file_write_failure(void);
bool file_exists(const char *path);
bool text_is_utf8(const char *s); // well-formed UTF-8 (no overlong forms, surrogates or bytes past U+10FFFF)
bool dir_exists(const char *path);
char *path_join(char *buf, size_t n, const char *dir, const char *name);

#ifdef __cplusplus
}
#endif

#endif
