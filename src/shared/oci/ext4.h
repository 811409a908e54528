#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* An ext4 writer on libext2fs: builds a file system in a regular file without mounting it and
 * without privileges. Paths are relative to the file system root, '/'-separated, already
 * normalised (no "." or ".." components, no empty components). Intermediate components that
 * are symlinks are followed inside the file system, where an absolute target or ".." never
 * leaves the root. ext4_set_xattr(), ext4_clear_dir() and ext4_stat() take "" for the root.
 * Every function returns a negative errno on failure. */

typedef struct Ext4Writer Ext4Writer;

/* Ownership, permissions and times of a new entry. mode includes the file type bits. */
typedef struct Ext4Attrs {
        mode_t mode;
        uid_t uid;
        gid_t gid;
        int64_t mtime_sec;
        uint32_t mtime_nsec;
        dev_t rdev; /* for character and block devices */
} Ext4Attrs;

/* Reads up to size bytes of file content into buf. Returns the count, 0 at the end, or a
 * negative errno. */
typedef ssize_t (*Ext4ReadFunc)(void *buf, size_t size, void *userdata);

/* Creates a file system of size_bytes (rounded down to 4 KiB blocks) with at least
 * inode_count inodes in a new file at path, with a root directory and lost+found. */
int ext4_writer_create(const char *path, uint64_t size_bytes, uint64_t inode_count,
                       Ext4Writer **ret);

/* Writes out all metadata, fsyncs the file and frees the writer, also on failure. */
int ext4_writer_close(Ext4Writer *w);

/* Frees the writer without committing metadata: the file is left incomplete. */
Ext4Writer *ext4_writer_free(Ext4Writer *w);
static inline void ext4_writer_freep(Ext4Writer **p)
{
        ext4_writer_free(*p);
}

/* Creates a directory, or updates the attributes of an existing one. Missing parents are
 * created with mode 0755, owned by root. An existing non-directory at path is replaced. */
int ext4_mkdir(Ext4Writer *w, const char *path, const Ext4Attrs *attrs);

/* Creates a regular file whose content comes from read_func, replacing any existing entry.
 * Blocks of zeros become holes. */
int ext4_add_file(Ext4Writer *w, const char *path, const Ext4Attrs *attrs, Ext4ReadFunc read_func,
                  void *userdata);

int ext4_add_symlink(Ext4Writer *w, const char *path, const char *target, const Ext4Attrs *attrs);

/* Creates a character or block device, fifo or socket, replacing any existing entry. */
int ext4_add_node(Ext4Writer *w, const char *path, const Ext4Attrs *attrs);

/* Links path to the inode of the existing non-directory target, replacing any existing entry
 * at path. Returns -ENOENT when target does not exist and -EPERM when it is a directory. */
int ext4_add_hardlink(Ext4Writer *w, const char *path, const char *target);

/* Sets an extended attribute ("user.x", "security.capability", ...) on path itself. */
int ext4_set_xattr(Ext4Writer *w, const char *path, const char *name, const void *value,
                   size_t size);

/* Removes path and, for a directory, everything below it, freeing blocks and inodes whose last
 * link goes. Returns -ENOENT when path does not exist. */
int ext4_remove(Ext4Writer *w, const char *path);

/* Decides whether ext4_clear_dir() keeps the entry called name. */
typedef bool (*Ext4KeepFunc)(const char *name, void *userdata);

/* Removes the entries inside the directory at path, except those for which keep (when not
 * NULL) returns true, and keeps the directory itself. */
int ext4_clear_dir(Ext4Writer *w, const char *path, Ext4KeepFunc keep, void *userdata);

/* Stores the type bits of path's inode (S_IFDIR, S_IFREG, ...) in *ret_mode. Returns -ENOENT
 * when it does not exist. The last component is not followed. */
int ext4_stat(Ext4Writer *w, const char *path, mode_t *ret_mode);

/* Converts a libext2fs com_err code to a negative errno. */
int ext4_errcode_to_errno(long code);
