#pragma once

#include <stdint.h>

/* A workspace is a git working tree that 'bangerctl vm create --workspace DIR' copies into the
 * VM's work disk at /work/NAME. bangerctl reads it as the calling user, because bangerd cannot
 * read home directories, and hands bangerd a tar stream. The functions below do no bus calls.
 *
 * Each function that takes ret_error stores a message in *ret_error on failure when *ret_error
 * is NULL, and leaves it alone on success. */

/* The maximum length of the name that workspace_name() returns, in bytes. */
#define WORKSPACE_NAME_MAX 64

/* Lists the files of the git working tree DIR, as the user sees it: tracked files and untracked
 * files that .gitignore and the other exclude files do not ignore. Paths are relative to DIR,
 * sorted by bytes, unique, and without tracked files that are deleted in the working tree. A
 * submodule or a nested repository is listed as its directory, which the other functions copy
 * as an empty directory. Runs git from PATH.
 *
 * Returns -ENOENT when DIR does not exist or git is not installed, -ENOTDIR when DIR is not a
 * directory, -EINVAL when DIR is not inside a git working tree, or another negative errno. */
int workspace_list(const char *dir, char ***ret_paths, char **ret_error);

/* Writes an uncompressed pax tar of paths, as workspace_list() returns them, to fd. Entry paths
 * are relative to DIR, which itself has no entry, so the tar is extracted into the workspace's
 * directory. Each parent directory comes once, before its first child. Entries keep their
 * permission bits and modification times but not the setuid, setgid and sticky bits. Symlinks stay
 * symlinks, and every entry is owned by uid and gid 0 with no user or group names. A path that no
 * longer exists is left out.
 *
 * Returns -EINVAL for paths that are not sorted and unique or not relative and normalized, and
 * for a device, fifo or socket, -EBUSY when a file changed size or type while it was read, or
 * another negative errno. After a failure, the stream stops inside an entry's content or ends
 * with a 512-byte block that is not a valid tar header, so a reader of fd fails instead of taking
 * a short archive for a complete one. The number of bytes written goes to *ret_bytes on success.
 *
 * Writing to a pipe whose reader has gone raises SIGPIPE unless the caller ignores it. With
 * SIGPIPE ignored, the call fails with -EPIPE. */
int workspace_write_tar(const char *dir, char *const *paths, int fd, uint64_t *ret_bytes,
                        char **ret_error);

/* Computes a SHA-256 over paths, as workspace_list() returns them, and for each path its type,
 * permission bits, size and the SHA-256 of its content (a symlink's target). Times are left
 * out, so touching a file does not change the digest, but editing, adding, removing or chmod
 * does. Stores 64 lower-case hex digits in *ret_hex. Returns the errors of workspace_write_tar()
 * without a message. */
int workspace_digest(const char *dir, char *const *paths, char **ret_hex);

/* Derives the name of the workspace's directory in the guest from the last component of DIR's
 * canonical path. Only ASCII letters, digits, '.', '_' and '-' are kept. Other bytes are dropped
 * at the start and end, and each run of them elsewhere becomes one '_'. Leading dots are
 * dropped, and the result is cut to WORKSPACE_NAME_MAX bytes. Returns -EINVAL when nothing is
 * left, -ENOENT when DIR does not exist. */
int workspace_name(const char *dir, char **ret);
