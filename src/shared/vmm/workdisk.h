#pragma once

#include <stdint.h>

#include "guest-paths.h"

/* A VM's work disk: an ext4 file system with banger's files for the guest under
 * WORKDISK_META_DIR and, optionally, a copy of a workspace in its own top-level directory. */

#define WORKDISK_SIZE_MIN (UINT64_C(16) * 1024 * 1024)

/* What goes on the work disk. The strings are written as they are: the caller produces them
 * with guest_config_format(), ssh_authorized_keys_build() and ssh_hostkey_generate(). */
typedef struct WorkDiskContent {
        const char *config;          /* WORKDISK_CONFIG, mode 0600 */
        const char *authorized_keys; /* WORKDISK_AUTHORIZED_KEYS, 0600, or NULL for empty */
        const char *host_key;        /* WORKDISK_HOST_KEY, 0600: the private key */
        const char *host_key_pub;    /* WORKDISK_HOST_KEY_PUB, 0644 */
        /* The top-level directory that receives the workspace, one path component, or NULL
         * for no workspace. */
        const char *workspace_name;
        /* An uncompressed tar stream, read up to the end of the archive and not closed. Only
         * regular files, directories and symlinks are accepted, and they are owned by root with the
         * tar's modes. Ignored when workspace_name is NULL. */
        int workspace_fd;
} WorkDiskContent;

/* Builds a sparse ext4 file system of size_bytes (rounded down to 4 KiB) holding c in a
 * temporary sibling of path, and renames it to path when it is complete. The file has mode
 * 0600 because it contains the private host key. Returns -EEXIST when
 * path exists, -ENOSPC when c does not fit, with a message naming the size needed, -EINVAL for
 * an invalid size, name or workspace entry, or another negative errno, each with a message in
 * *ret_error. On failure no file is left behind. */
int workdisk_build(const char *path, uint64_t size_bytes, const WorkDiskContent *c,
                   char **ret_error);
