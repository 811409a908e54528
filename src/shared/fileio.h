#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Writes data to dir_fd/name following banger's publication rule: the bytes go to a temporary
 * sibling that is fsynced, renamed over name, and the directory is fsynced, so a reader sees
 * either the old file or the new one, never a partial one. */
int write_file_atomic_at(int dir_fd, const char *name, const void *data, size_t size, mode_t mode);
int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode);

/* Reads a whole regular file of at most max_size bytes; the result is NUL-terminated. */
int read_full_file(const char *path, size_t max_size, char **ret, size_t *ret_size);

/* Reads the last max_size bytes of path (all of it when shorter) as one line of text for an
 * error message: it starts after the first newline in the tail unless the whole file fits,
 * newlines and tabs become "; " and spaces, other bytes outside printable ASCII become '?', and
 * leading and trailing blanks are dropped. An empty or missing file gives -ENODATA or -ENOENT. */
int read_file_tail_printable(const char *path, size_t max_size, char **ret);

/* Creates path and its missing parents with mode. Existing directories are not an error. */
int mkdir_p(const char *path, mode_t mode);

/* Removes path recursively without following symlinks. A missing path is not an error. */
int rm_rf(const char *path);

/* Generates a temporary sibling name for path: "DIR/.#BASE.XXXXXXXX" with random hex. */
int tempfn_random(const char *path, char **ret);

/* fsync()s the directory that contains path. */
int fsync_parent(const char *path);
