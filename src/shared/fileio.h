#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Writes data to dir_fd/name without exposing a partial file. The bytes go to a temporary
 * sibling, which is fsynced and renamed over name, and then the directory is fsynced. A reader
 * sees either the old file or the new one. */
int write_file_atomic_at(int dir_fd, const char *name, const void *data, size_t size, mode_t mode);
int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode);

/* Reads a whole regular file of at most max_size bytes; the result is NUL-terminated. */
int read_full_file(const char *path, size_t max_size, char **ret, size_t *ret_size);

/* Reads the last max_size bytes of path (all of it when shorter) as one line of text for an
 * error message. Unless the whole file fits, the text starts after the first newline in the
 * tail. Newlines become "; ", tabs become spaces, other bytes outside printable ASCII become
 * '?', and leading and trailing blanks are dropped. Returns -ENODATA for an empty file and
 * -ENOENT for a missing one. */
int read_file_tail_printable(const char *path, size_t max_size, char **ret);

/* Writes all size bytes of data to fd, retrying after EINTR and short writes. A non-blocking
 * fd that is full gives -EAGAIN. */
int loop_write(int fd, const void *data, size_t size);

/* Creates path and its missing parents with mode. Existing directories are not an error. */
int mkdir_p(const char *path, mode_t mode);

/* Removes path recursively without following symlinks. A missing path is not an error. */
int rm_rf(const char *path);

/* Generates a temporary sibling name for path: "DIR/.#BASE.XXXXXXXX" with random hex. */
int tempfn_random(const char *path, char **ret);

/* fsync()s the directory that contains path. */
int fsync_parent(const char *path);
