/* Helpers shared by the ext4 and layer suites, included by both: e2fsck and read-back through
 * libext2fs of a file system that the writer produced. */

#include <check.h>
#include <fcntl.h>
#include <ext2fs/ext2fs.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "macro.h"

extern char **environ;

/* Runs "e2fsck -fn path" and returns its exit status: 0 means no problem was found. */
static int run_e2fsck(const char *path)
{
        char *argv[] = { "e2fsck", "-fn", (char *)path, NULL };
        posix_spawn_file_actions_t actions;
        int status;
        pid_t pid;

        ck_assert_int_eq(posix_spawn_file_actions_init(&actions), 0);
        ck_assert_int_eq(
                posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0),
                0);
        setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin", 1);
        ck_assert_int_eq(posix_spawnp(&pid, "e2fsck", &actions, NULL, argv, environ), 0);
        posix_spawn_file_actions_destroy(&actions);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        return WEXITSTATUS(status);
}

static ext2_filsys open_fs(const char *path)
{
        ext2_filsys fs = NULL;

        ck_assert_int_eq(ext2fs_open(path, EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs), 0);
        return fs;
}

/* Returns the inode number of path, 0 when it does not exist. */
static ext2_ino_t fs_lookup(ext2_filsys fs, const char *path)
{
        ext2_ino_t ino = 0;

        if (ext2fs_namei(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path, &ino) != 0)
                return 0;
        return ino;
}

static struct ext2_inode_large fs_inode(ext2_filsys fs, const char *path)
{
        struct ext2_inode_large inode = {};
        ext2_ino_t ino = fs_lookup(fs, path);

        ck_assert_msg(ino != 0, "'%s' not found", path);
        ck_assert_int_eq(
                ext2fs_read_inode_full(fs, ino, (struct ext2_inode *)&inode, sizeof(inode)), 0);
        return inode;
}

/* Returns the content of a regular file or the target of a symlink, NUL-terminated. */
static char *fs_read(ext2_filsys fs, const char *path)
{
        struct ext2_inode_large inode = fs_inode(fs, path);
        ext2_ino_t ino = fs_lookup(fs, path);
        uint64_t size = EXT2_I_SIZE(&inode);
        char *buf = calloc(1, size + 1);
        ext2_file_t file;
        unsigned got;

        ck_assert_ptr_nonnull(buf);
        if (LINUX_S_ISLNK(inode.i_mode) &&
            !ext2fs_inode_has_valid_blocks2(fs, (struct ext2_inode *)&inode)) {
                memcpy(buf, inode.i_block, size);
                return buf;
        }
        ck_assert_int_eq(ext2fs_file_open(fs, ino, 0, &file), 0);
        ck_assert_int_eq(ext2fs_file_read(file, buf, size, &got), 0);
        ck_assert_uint_eq(got, size);
        ck_assert_int_eq(ext2fs_file_close(file), 0);
        return buf;
}

/* Returns the value of an extended attribute, NULL when it is not set. */
static inline char *fs_xattr(ext2_filsys fs, const char *path, const char *name, size_t *ret_size)
{
        struct ext2_xattr_handle *handle = NULL;
        void *value = NULL;
        size_t size = 0;
        errcode_t e;

        ck_assert_int_eq(ext2fs_xattrs_open(fs, fs_lookup(fs, path), &handle), 0);
        ck_assert_int_eq(ext2fs_xattrs_read(handle), 0);
        e = ext2fs_xattr_get(handle, name, &value, &size);
        ck_assert_int_eq(ext2fs_xattrs_close(&handle), 0);
        if (e != 0)
                return NULL;
        if (ret_size)
                *ret_size = size;
        return value;
}

static inline uint32_t fs_uid(const struct ext2_inode_large *inode)
{
        return inode_uid(*inode);
}

/* Counts the entries of a directory, without "." and "..". */
static int count_child(ext2_ino_t dir, int entry, struct ext2_dir_entry *dirent, int offset,
                       int blocksize, char *buf, void *userdata)
{
        if (entry != DIRENT_DOT_FILE && entry != DIRENT_DOT_DOT_FILE)
                (*(unsigned *)userdata)++;
        return 0;
}

static inline unsigned fs_count_entries(ext2_filsys fs, const char *path)
{
        unsigned n = 0;

        ck_assert_int_eq(ext2fs_dir_iterate2(fs, fs_lookup(fs, path), 0, NULL, count_child, &n), 0);
        return n;
}
