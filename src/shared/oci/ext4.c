#include <errno.h>
#include <ext2fs/ext2fs.h>
#include <ext2fs/ext3_extents.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "ext4.h"
#include "log.h"
#include "macro.h"

#define EXT4_BLOCK_SIZE  4096
#define EXT4_INODE_SIZE  256
#define EXT4_EXTRA_ISIZE 32
#define LOST_FOUND_MIN   (16 * 1024)
#define FILE_BUFFER_SIZE (64 * 1024)

#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif
#ifndef MAX
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#endif

/* The feature set is pinned here, independent of /etc/mke2fs.conf, to what Linux 5.10 and
 * later mount read-write: ext_attr, dir_index, has_journal (added after initialisation),
 * filetype, extent, 64bit, flex_bg, sparse_super, large_file, huge_file, dir_nlink,
 * extra_isize and metadata_csum (Linux 3.18 and later). Left out: inline_data, to keep file
 * writes block-based, and resize_inode, so growing the file system needs an offline
 * resize2fs.
 * NOTE: tests check the result with e2fsck 1.47 only. Mounting it in a guest is left to the
 * VM scenarios. */
#define FEATURE_COMPAT (EXT2_FEATURE_COMPAT_EXT_ATTR | EXT2_FEATURE_COMPAT_DIR_INDEX)
#define FEATURE_INCOMPAT                                                  \
        (EXT2_FEATURE_INCOMPAT_FILETYPE | EXT3_FEATURE_INCOMPAT_EXTENTS | \
         EXT4_FEATURE_INCOMPAT_64BIT | EXT4_FEATURE_INCOMPAT_FLEX_BG)
#define FEATURE_RO_COMPAT                                                          \
        (EXT2_FEATURE_RO_COMPAT_SPARSE_SUPER | EXT2_FEATURE_RO_COMPAT_LARGE_FILE | \
         EXT4_FEATURE_RO_COMPAT_HUGE_FILE | EXT4_FEATURE_RO_COMPAT_DIR_NLINK |     \
         EXT4_FEATURE_RO_COMPAT_EXTRA_ISIZE | EXT4_FEATURE_RO_COMPAT_METADATA_CSUM)

struct Ext4Writer {
        ext2_filsys fs;
        char *path;
};

int ext4_errcode_to_errno(long code)
{
        if (code == 0)
                return 0;
        /* com_err passes system errors through as their errno value. */
        if (code > 0 && code < 4096)
                return -(int)code;

        switch (code) {
        case EXT2_ET_NO_MEMORY:
                return -ENOMEM;
        case EXT2_ET_FILE_NOT_FOUND:
                return -ENOENT;
        case EXT2_ET_DIR_EXISTS:
        case EXT2_ET_FILE_EXISTS:
                return -EEXIST;
        case EXT2_ET_DIR_NO_SPACE:
        case EXT2_ET_BLOCK_ALLOC_FAIL:
        case EXT2_ET_INODE_ALLOC_FAIL:
        case EXT2_ET_EA_NO_SPACE:
        case EXT2_ET_TOOSMALL:
                return -ENOSPC;
        case EXT2_ET_NO_DIRECTORY:
                return -ENOTDIR;
        case EXT2_ET_EA_KEY_NOT_FOUND:
                return -ENODATA;
        case EXT2_ET_INVALID_ARGUMENT:
        case EXT2_ET_EA_BAD_NAME_LEN:
        case EXT2_ET_EA_BAD_VALUE_SIZE:
        case EXT2_ET_EA_INODE_CORRUPTED:
                return -EINVAL;
        case EXT2_ET_SYMLINK_LOOP:
                return -ELOOP;
        case EXT2_ET_FILE_TOO_BIG:
                return -EFBIG;
        default:
                return -EIO;
        }
}

static int ext2_call(errcode_t code, const char *what)
{
        if (code == 0)
                return 0;
        log_debug("ext4: %s failed: %s", what, error_message(code));
        return ext4_errcode_to_errno(code);
}

Ext4Writer *ext4_writer_free(Ext4Writer *w)
{
        if (!w)
                return NULL;
        if (w->fs) {
                /* Drop the dirty flags so nothing half-written is flushed. */
                w->fs->flags &= ~(EXT2_FLAG_DIRTY | EXT2_FLAG_CHANGED);
                ext2fs_free(w->fs);
        }
        free(w->path);
        free(w);
        return NULL;
}

static void set_time(uint32_t *field, uint32_t *extra, int64_t sec, uint32_t nsec)
{
        *field = (uint32_t)sec;
        if (extra)
                *extra = ((nsec << EXT4_EPOCH_BITS) & EXT4_NSEC_MASK) |
                         ((uint32_t)((sec - (int32_t)sec) >> 32) & EXT4_EPOCH_MASK);
}

static void inode_apply_attrs(struct ext2_inode_large *inode, const Ext4Attrs *attrs)
{
        inode->i_mode = attrs->mode;
        inode->i_uid = attrs->uid & 0xffff;
        ext2fs_set_i_uid_high(*inode, attrs->uid >> 16);
        inode->i_gid = attrs->gid & 0xffff;
        ext2fs_set_i_gid_high(*inode, attrs->gid >> 16);
        inode->i_extra_isize = EXT4_EXTRA_ISIZE;
        set_time(&inode->i_mtime, &inode->i_mtime_extra, attrs->mtime_sec, attrs->mtime_nsec);
        set_time(&inode->i_atime, &inode->i_atime_extra, attrs->mtime_sec, attrs->mtime_nsec);
        set_time(&inode->i_ctime, &inode->i_ctime_extra, attrs->mtime_sec, attrs->mtime_nsec);
        set_time(&inode->i_crtime, &inode->i_crtime_extra, attrs->mtime_sec, attrs->mtime_nsec);
}

static int read_inode(Ext4Writer *w, ext2_ino_t ino, struct ext2_inode_large *inode)
{
        memset(inode, 0, sizeof(*inode));
        return ext2_call(
                ext2fs_read_inode_full(w->fs, ino, (struct ext2_inode *)inode, sizeof(*inode)),
                "reading inode");
}

static int write_inode(Ext4Writer *w, ext2_ino_t ino, struct ext2_inode_large *inode)
{
        return ext2_call(
                ext2fs_write_inode_full(w->fs, ino, (struct ext2_inode *)inode, sizeof(*inode)),
                "writing inode");
}

/* Writes a fresh inode over the whole on-disk slot, so nothing of a freed inode that used the
 * slot before survives (in-inode xattrs live past struct ext2_inode_large). */
static int write_new_inode(Ext4Writer *w, ext2_ino_t ino, struct ext2_inode_large *inode)
{
        size_t size = EXT2_INODE_SIZE(w->fs->super);
        _cleanup_free_ char *buf = calloc(1, size);

        if (!buf)
                return -ENOMEM;
        memcpy(buf, inode, MIN(size, sizeof(*inode)));
        return ext2_call(ext2fs_write_inode_full(w->fs, ino, (struct ext2_inode *)buf, size),
                         "writing new inode");
}

static int lookup(Ext4Writer *w, ext2_ino_t dir, const char *name, ext2_ino_t *ret)
{
        errcode_t e;

        e = ext2fs_lookup(w->fs, dir, name, strlen(name), NULL, ret);
        if (e == EXT2_ET_FILE_NOT_FOUND)
                return -ENOENT;
        return ext2_call(e, "looking up a directory entry");
}

static int file_type_of(mode_t mode)
{
        switch (mode & S_IFMT) {
        case S_IFREG:
                return EXT2_FT_REG_FILE;
        case S_IFDIR:
                return EXT2_FT_DIR;
        case S_IFLNK:
                return EXT2_FT_SYMLINK;
        case S_IFCHR:
                return EXT2_FT_CHRDEV;
        case S_IFBLK:
                return EXT2_FT_BLKDEV;
        case S_IFIFO:
                return EXT2_FT_FIFO;
        case S_IFSOCK:
                return EXT2_FT_SOCK;
        default:
                return EXT2_FT_UNKNOWN;
        }
}

/* ext2fs_link() fails with EXT2_ET_DIR_NO_SPACE when the directory's blocks are full: add a
 * block and retry. */
static int link_entry(Ext4Writer *w, ext2_ino_t dir, const char *name, ext2_ino_t ino,
                      int file_type)
{
        errcode_t e;

        e = ext2fs_link(w->fs, dir, name, ino, file_type);
        if (e == EXT2_ET_DIR_NO_SPACE) {
                e = ext2fs_expand_dir(w->fs, dir);
                if (e == 0)
                        e = ext2fs_link(w->fs, dir, name, ino, file_type);
        }
        return ext2_call(e, "linking a directory entry");
}

static int make_dir(Ext4Writer *w, ext2_ino_t parent, const char *name, ext2_ino_t *ret)
{
        errcode_t e;

        e = ext2fs_mkdir(w->fs, parent, 0, name);
        if (e == EXT2_ET_DIR_NO_SPACE) {
                e = ext2fs_expand_dir(w->fs, parent);
                if (e == 0)
                        e = ext2fs_mkdir(w->fs, parent, 0, name);
        }
        if (e != 0)
                return ext2_call(e, "creating a directory");

        return lookup(w, parent, name, ret);
}

static int free_inode(Ext4Writer *w, ext2_ino_t ino, struct ext2_inode_large *inode)
{
        bool is_dir = LINUX_S_ISDIR(inode->i_mode);
        int r;

        if (LINUX_S_ISREG(inode->i_mode) || is_dir ||
            (LINUX_S_ISLNK(inode->i_mode) &&
             ext2fs_inode_has_valid_blocks2(w->fs, (struct ext2_inode *)inode))) {
                r = ext2_call(ext2fs_punch(w->fs, ino, (struct ext2_inode *)inode, NULL, 0, ~0ULL),
                              "freeing blocks");
                if (r < 0)
                        return r;
        }

        r = ext2_call(ext2fs_free_ext_attr(w->fs, ino, inode), "freeing extended attributes");
        if (r < 0)
                return r;

        /* ext2fs_punch() and ext2fs_free_ext_attr() update the on-disk inode: reread it. */
        r = read_inode(w, ino, inode);
        if (r < 0)
                return r;
        inode->i_links_count = 0;
        inode->i_dtime = (uint32_t)time(NULL);
        r = write_inode(w, ino, inode);
        if (r < 0)
                return r;

        ext2fs_inode_alloc_stats2(w->fs, ino, -1, is_dir);
        return 0;
}

typedef struct ChildList {
        char **names;
        size_t n, allocated;
        int error;
} ChildList;

static int collect_child(ext2_ino_t dir, int entry, struct ext2_dir_entry *dirent, int offset,
                         int blocksize, char *buf, void *userdata)
{
        ChildList *list = userdata;
        size_t len = ext2fs_dirent_name_len(dirent);

        if (entry == DIRENT_DOT_FILE || entry == DIRENT_DOT_DOT_FILE)
                return 0;
        if (list->n + 1 >= list->allocated) {
                size_t allocated = MAX(16u, list->allocated * 2);
                char **names = realloc(list->names, allocated * sizeof(char *));
                if (!names) {
                        list->error = -ENOMEM;
                        return DIRENT_ABORT;
                }
                list->names = names;
                list->allocated = allocated;
        }
        list->names[list->n] = strndup(dirent->name, len);
        if (!list->names[list->n]) {
                list->error = -ENOMEM;
                return DIRENT_ABORT;
        }
        list->names[++list->n] = NULL;
        return 0;
}

static void child_list_done(ChildList *list)
{
        for (size_t i = 0; i < list->n; i++)
                free(list->names[i]);
        free(list->names);
}

static int remove_entry(Ext4Writer *w, ext2_ino_t dir, const char *name, unsigned depth);

static int clear_dir_ino(Ext4Writer *w, ext2_ino_t dir, unsigned depth, Ext4KeepFunc keep,
                         void *userdata)
{
        _cleanup_(child_list_done) ChildList list = {};
        int r;

        r = ext2_call(ext2fs_dir_iterate2(w->fs, dir, 0, NULL, collect_child, &list),
                      "listing a directory");
        if (r < 0)
                return r;
        if (list.error < 0)
                return list.error;

        for (size_t i = 0; i < list.n; i++) {
                if (keep && keep(list.names[i], userdata))
                        continue;
                r = remove_entry(w, dir, list.names[i], depth + 1);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int remove_entry(Ext4Writer *w, ext2_ino_t dir, const char *name, unsigned depth)
{
        struct ext2_inode_large inode, parent;
        ext2_ino_t ino;
        int r;

        /* Caps the recursion: a path within PATH_MAX (4096 bytes) has at most 2048 levels. */
        if (depth > 2048)
                return -ELOOP;

        r = lookup(w, dir, name, &ino);
        if (r < 0)
                return r;

        r = read_inode(w, ino, &inode);
        if (r < 0)
                return r;

        if (LINUX_S_ISDIR(inode.i_mode)) {
                r = clear_dir_ino(w, ino, depth, NULL, NULL);
                if (r < 0)
                        return r;
        }

        r = ext2_call(ext2fs_unlink(w->fs, dir, name, ino, 0), "unlinking a directory entry");
        if (r < 0)
                return r;

        if (LINUX_S_ISDIR(inode.i_mode)) {
                /* The ".." entry of the removed directory no longer counts for the parent. A
                 * count of 1 means the parent overflowed the limit under dir_nlink. */
                r = read_inode(w, dir, &parent);
                if (r < 0)
                        return r;
                if (parent.i_links_count > 2) {
                        parent.i_links_count--;
                        r = write_inode(w, dir, &parent);
                        if (r < 0)
                                return r;
                }
                return free_inode(w, ino, &inode);
        }

        r = read_inode(w, ino, &inode);
        if (r < 0)
                return r;
        if (inode.i_links_count > 1) {
                inode.i_links_count--;
                return write_inode(w, ino, &inode);
        }
        return free_inode(w, ino, &inode);
}

/* Resolves the directory that contains path and points *ret_name at its last component.
 * Missing directories are created when create is true. */
static int resolve_parent(Ext4Writer *w, const char *path, bool create, ext2_ino_t *ret_dir,
                          const char **ret_name)
{
        ext2_ino_t dir = EXT2_ROOT_INO;
        const char *p = path;
        int r;

        if (isempty(path) || path[0] == '/')
                return -EINVAL;

        for (;;) {
                const char *slash = strchr(p, '/');
                char component[EXT2_NAME_LEN + 1];
                struct ext2_inode_large inode;
                ext2_ino_t ino;
                size_t n;

                if (!slash)
                        break;
                n = slash - p;
                if (n == 0 || n > EXT2_NAME_LEN)
                        return n == 0 ? -EINVAL : -ENAMETOOLONG;
                memcpy(component, p, n);
                component[n] = '\0';
                if (streq(component, ".") || streq(component, ".."))
                        return -EINVAL;

                r = lookup(w, dir, component, &ino);
                if (r == -ENOENT && create) {
                        static const Ext4Attrs dir_attrs = { .mode = S_IFDIR | 0755 };

                        r = make_dir(w, dir, component, &ino);
                        if (r < 0)
                                return r;
                        r = read_inode(w, ino, &inode);
                        if (r < 0)
                                return r;
                        inode_apply_attrs(&inode, &dir_attrs);
                        r = write_inode(w, ino, &inode);
                }
                if (r < 0)
                        return r;

                r = read_inode(w, ino, &inode);
                if (r < 0)
                        return r;
                if (LINUX_S_ISLNK(inode.i_mode)) {
                        ext2_ino_t target;

                        /* The file system root is the root for symlinks too, so absolute
                         * targets and ".." stay inside the image. */
                        r = ext2_call(ext2fs_follow_link(w->fs, EXT2_ROOT_INO, dir, ino, &target),
                                      "following a symlink");
                        if (r < 0)
                                return r;
                        ino = target;
                        r = read_inode(w, ino, &inode);
                        if (r < 0)
                                return r;
                }
                if (!LINUX_S_ISDIR(inode.i_mode))
                        return -ENOTDIR;

                dir = ino;
                p = slash + 1;
        }

        if (isempty(p) || streq(p, ".") || streq(p, ".."))
                return -EINVAL;
        if (strlen(p) > EXT2_NAME_LEN)
                return -ENAMETOOLONG;

        *ret_dir = dir;
        *ret_name = p;
        return 0;
}

/* Removes whatever exists at dir/name so a new entry can take its place. */
static int remove_existing(Ext4Writer *w, ext2_ino_t dir, const char *name)
{
        int r = remove_entry(w, dir, name, 0);

        return r == -ENOENT ? 0 : r;
}

static int new_inode(Ext4Writer *w, ext2_ino_t dir, mode_t mode, ext2_ino_t *ret)
{
        return ext2_call(ext2fs_new_inode(w->fs, dir, mode, NULL, ret), "allocating an inode");
}

int ext4_writer_create(const char *path, uint64_t size_bytes, uint64_t inode_count,
                       Ext4Writer **ret)
{
        _cleanup_(ext4_writer_freep) Ext4Writer *w = NULL;
        struct ext2_super_block param = {};
        struct ext2fs_journal_params journal;
        _cleanup_close_ int fd = -EBADF;
        uint64_t blocks = size_bytes / EXT4_BLOCK_SIZE;
        ext2_ino_t lost_found;
        struct ext2_inode_large inode;
        int r;

        if (blocks < 1024 || inode_count == 0 || inode_count > UINT32_MAX)
                return -EINVAL;

        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
                return negative_errno();
        if (ftruncate(fd, blocks * EXT4_BLOCK_SIZE) < 0)
                return negative_errno();
        fd = safe_close(fd);

        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->path = strdup(path);
        if (!w->path)
                return -ENOMEM;

        ext2fs_blocks_count_set(&param, blocks);
        param.s_log_block_size = 2; /* 1024 << 2 = 4096 */
        param.s_inodes_count = (uint32_t)inode_count;
        param.s_inode_size = EXT4_INODE_SIZE;
        param.s_rev_level = EXT2_DYNAMIC_REV;
        param.s_feature_compat = FEATURE_COMPAT;
        param.s_feature_incompat = FEATURE_INCOMPAT;
        param.s_feature_ro_compat = FEATURE_RO_COMPAT;
        param.s_log_groups_per_flex = 4;
        param.s_desc_size = EXT2_MIN_DESC_SIZE_64BIT;
        param.s_min_extra_isize = EXT4_EXTRA_ISIZE;
        param.s_want_extra_isize = EXT4_EXTRA_ISIZE;

        r = ext2_call(ext2fs_initialize(path, EXT2_FLAG_64BITS, &param, unix_io_manager, &w->fs),
                      "initialising the file system");
        if (r < 0)
                return r;

        w->fs->super->s_checksum_type = EXT2_CRC32C_CHKSUM;
        if (getrandom(w->fs->super->s_uuid, sizeof(w->fs->super->s_uuid), 0) < 0 ||
            getrandom(w->fs->super->s_hash_seed, sizeof(w->fs->super->s_hash_seed), 0) < 0)
                return negative_errno();
        /* Mark the random bytes as a version 4 UUID. */
        w->fs->super->s_uuid[6] = (w->fs->super->s_uuid[6] & 0x0f) | 0x40;
        w->fs->super->s_uuid[8] = (w->fs->super->s_uuid[8] & 0x3f) | 0x80;
        w->fs->super->s_def_hash_version = EXT2_HASH_HALF_MD4;
        w->fs->super->s_max_mnt_count = -1;
        w->fs->super->s_mkfs_time = w->fs->super->s_wtime = (uint32_t)time(NULL);
        ext2fs_init_csum_seed(w->fs);

        r = ext2_call(ext2fs_allocate_tables(w->fs), "allocating group tables");
        if (r < 0)
                return r;

        /* Reserved inodes need valid checksums under metadata_csum: write them zeroed. */
        memset(&inode, 0, sizeof(inode));
        for (ext2_ino_t i = 1; i < EXT2_FIRST_INODE(w->fs->super); i++) {
                r = write_new_inode(w, i, &inode);
                if (r < 0)
                        return r;
        }

        r = ext2_call(ext2fs_mkdir(w->fs, EXT2_ROOT_INO, EXT2_ROOT_INO, NULL),
                      "creating the root directory");
        if (r < 0)
                return r;

        r = make_dir(w, EXT2_ROOT_INO, "lost+found", &lost_found);
        if (r < 0)
                return r;
        r = read_inode(w, lost_found, &inode);
        if (r < 0)
                return r;
        inode.i_mode = LINUX_S_IFDIR | 0700;
        r = write_inode(w, lost_found, &inode);
        if (r < 0)
                return r;
        /* e2fsck reconnects orphans into lost+found without allocating: give it 16 KiB. */
        for (uint64_t size = EXT4_BLOCK_SIZE; size < LOST_FOUND_MIN; size += EXT4_BLOCK_SIZE) {
                r = ext2_call(ext2fs_expand_dir(w->fs, lost_found), "expanding lost+found");
                if (r < 0)
                        return r;
        }

        for (ext2_ino_t i = EXT2_ROOT_INO + 1; i < EXT2_FIRST_INODE(w->fs->super); i++)
                ext2fs_inode_alloc_stats2(w->fs, i, +1, 0);
        ext2fs_mark_inode_bitmap2(w->fs->inode_map, EXT2_BAD_INO);
        ext2fs_inode_alloc_stats2(w->fs, EXT2_BAD_INO, +1, 0);
        r = ext2_call(ext2fs_update_bb_inode(w->fs, NULL), "writing the bad block inode");
        if (r < 0)
                return r;

        ext2fs_get_journal_params(&journal, w->fs);
        /* The file is sparse, so the journal blocks already read as zeros. */
        r = ext2_call(
                ext2fs_add_journal_inode3(w->fs, &journal, ~0ULL,
                                          EXT2_MKJOURNAL_NO_MNT_CHECK | EXT2_MKJOURNAL_LAZYINIT),
                "adding the journal");
        if (r < 0)
                return r;

        *ret = TAKE_PTR(w);
        return 0;
}

int ext4_writer_close(Ext4Writer *w)
{
        _cleanup_close_ int fd = -EBADF;
        int r;

        r = ext2_call(ext2fs_close_free(&w->fs), "writing the file system metadata");
        if (r < 0) {
                ext4_writer_free(w);
                return r;
        }

        fd = open(w->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0)
                r = negative_errno();
        ext4_writer_free(w);
        return r;
}

static int update_dir_attrs(Ext4Writer *w, ext2_ino_t ino, const Ext4Attrs *attrs)
{
        struct ext2_inode_large inode;
        int r;

        r = read_inode(w, ino, &inode);
        if (r < 0)
                return r;
        inode_apply_attrs(&inode, attrs);
        inode.i_mode = LINUX_S_IFDIR | (attrs->mode & 07777);
        return write_inode(w, ino, &inode);
}

int ext4_mkdir(Ext4Writer *w, const char *path, const Ext4Attrs *attrs)
{
        struct ext2_inode_large inode;
        const char *name;
        ext2_ino_t dir, ino;
        int r;

        r = resolve_parent(w, path, true, &dir, &name);
        if (r < 0)
                return r;

        r = lookup(w, dir, name, &ino);
        if (r >= 0) {
                r = read_inode(w, ino, &inode);
                if (r < 0)
                        return r;
                if (LINUX_S_ISDIR(inode.i_mode))
                        return update_dir_attrs(w, ino, attrs);
                r = remove_entry(w, dir, name, 0);
        }
        if (r < 0 && r != -ENOENT)
                return r;

        r = make_dir(w, dir, name, &ino);
        if (r < 0)
                return r;
        return update_dir_attrs(w, ino, attrs);
}

static bool block_is_zero(const uint8_t *p, size_t n)
{
        return n > 0 && p[0] == 0 && memcmp(p, p + 1, n - 1) == 0;
}

static int write_file_data(Ext4Writer *w, ext2_ino_t ino, Ext4ReadFunc read_func, void *userdata)
{
        _cleanup_free_ uint8_t *buf = malloc(FILE_BUFFER_SIZE);
        ext2_file_t file = NULL;
        uint64_t size = 0;
        bool eof = false;
        errcode_t e;
        int r = 0;

        if (!buf)
                return -ENOMEM;

        e = ext2fs_file_open(w->fs, ino, EXT2_FILE_WRITE, &file);
        if (e != 0)
                return ext2_call(e, "opening a file");

        while (!eof) {
                size_t filled = 0;

                /* Fill the buffer completely so holes are found on block boundaries. */
                while (filled < FILE_BUFFER_SIZE) {
                        ssize_t n = read_func(buf + filled, FILE_BUFFER_SIZE - filled, userdata);
                        if (n < 0) {
                                r = (int)n;
                                goto finish;
                        }
                        if (n == 0) {
                                eof = true;
                                break;
                        }
                        filled += n;
                }

                for (size_t off = 0; off < filled; off += EXT4_BLOCK_SIZE) {
                        size_t n = MIN((size_t)EXT4_BLOCK_SIZE, filled - off);
                        unsigned written;

                        if (n == EXT4_BLOCK_SIZE && block_is_zero(buf + off, n)) {
                                e = ext2fs_file_llseek(file, size + n, EXT2_SEEK_SET, NULL);
                        } else {
                                e = ext2fs_file_write(file, buf + off, n, &written);
                                if (e == 0 && written != n)
                                        e = EXT2_ET_SHORT_WRITE;
                        }
                        if (e != 0) {
                                r = ext2_call(e, "writing file data");
                                goto finish;
                        }
                        size += n;
                }
        }

        r = ext2_call(ext2fs_file_set_size2(file, size), "setting a file size");

finish:
        e = ext2fs_file_close(file);
        if (r == 0)
                r = ext2_call(e, "closing a file");
        return r;
}

int ext4_add_file(Ext4Writer *w, const char *path, const Ext4Attrs *attrs, Ext4ReadFunc read_func,
                  void *userdata)
{
        struct ext2_inode_large inode = {};
        struct ext3_extent_header *header;
        const char *name;
        ext2_ino_t dir, ino;
        int r;

        r = resolve_parent(w, path, true, &dir, &name);
        if (r < 0)
                return r;
        r = remove_existing(w, dir, name);
        if (r < 0)
                return r;

        r = new_inode(w, dir, LINUX_S_IFREG, &ino);
        if (r < 0)
                return r;

        inode_apply_attrs(&inode, attrs);
        inode.i_mode = LINUX_S_IFREG | (attrs->mode & 07777);
        inode.i_links_count = 1;
        inode.i_flags = EXT4_EXTENTS_FL;
        header = (struct ext3_extent_header *)inode.i_block;
        header->eh_magic = ext2fs_cpu_to_le16(EXT3_EXT_MAGIC);
        header->eh_max = ext2fs_cpu_to_le16((sizeof(inode.i_block) - sizeof(*header)) /
                                            sizeof(struct ext3_extent));
        r = write_new_inode(w, ino, &inode);
        if (r < 0)
                return r;
        ext2fs_inode_alloc_stats2(w->fs, ino, +1, 0);

        r = link_entry(w, dir, name, ino, EXT2_FT_REG_FILE);
        if (r < 0)
                return r;

        return write_file_data(w, ino, read_func, userdata);
}

int ext4_add_symlink(Ext4Writer *w, const char *path, const char *target, const Ext4Attrs *attrs)
{
        struct ext2_inode_large inode;
        const char *name;
        ext2_ino_t dir, ino;
        errcode_t e;
        int r;

        if (isempty(target) || strlen(target) >= EXT4_BLOCK_SIZE)
                return -ENAMETOOLONG;

        r = resolve_parent(w, path, true, &dir, &name);
        if (r < 0)
                return r;
        r = remove_existing(w, dir, name);
        if (r < 0)
                return r;

        e = ext2fs_symlink(w->fs, dir, 0, name, target);
        if (e == EXT2_ET_DIR_NO_SPACE) {
                e = ext2fs_expand_dir(w->fs, dir);
                if (e == 0)
                        e = ext2fs_symlink(w->fs, dir, 0, name, target);
        }
        r = ext2_call(e, "creating a symlink");
        if (r < 0)
                return r;

        r = lookup(w, dir, name, &ino);
        if (r < 0)
                return r;
        r = read_inode(w, ino, &inode);
        if (r < 0)
                return r;
        inode_apply_attrs(&inode, attrs);
        inode.i_mode = LINUX_S_IFLNK | 0777;
        return write_inode(w, ino, &inode);
}

int ext4_add_node(Ext4Writer *w, const char *path, const Ext4Attrs *attrs)
{
        struct ext2_inode_large inode = {};
        const char *name;
        ext2_ino_t dir, ino;
        int type = file_type_of(attrs->mode), r;

        if (type != EXT2_FT_CHRDEV && type != EXT2_FT_BLKDEV && type != EXT2_FT_FIFO &&
            type != EXT2_FT_SOCK)
                return -EINVAL;

        r = resolve_parent(w, path, true, &dir, &name);
        if (r < 0)
                return r;
        r = remove_existing(w, dir, name);
        if (r < 0)
                return r;

        r = new_inode(w, dir, attrs->mode, &ino);
        if (r < 0)
                return r;

        inode_apply_attrs(&inode, attrs);
        inode.i_links_count = 1;
        if (type == EXT2_FT_CHRDEV || type == EXT2_FT_BLKDEV) {
                unsigned major = major(attrs->rdev), minor = minor(attrs->rdev);

                /* The kernel's old encoding fits 8-bit numbers, the new one the rest. */
                if (major < 256 && minor < 256) {
                        inode.i_block[0] = ext2fs_cpu_to_le32(major * 256 + minor);
                } else {
                        inode.i_block[1] = ext2fs_cpu_to_le32((minor & 0xff) | (major << 8) |
                                                              ((minor & ~0xffu) << 12));
                }
        }
        r = write_new_inode(w, ino, &inode);
        if (r < 0)
                return r;
        ext2fs_inode_alloc_stats2(w->fs, ino, +1, 0);

        return link_entry(w, dir, name, ino, type);
}

static int lookup_path(Ext4Writer *w, const char *path, ext2_ino_t *ret)
{
        const char *name;
        ext2_ino_t dir;
        int r;

        if (isempty(path)) {
                *ret = EXT2_ROOT_INO;
                return 0;
        }

        r = resolve_parent(w, path, false, &dir, &name);
        if (r < 0)
                return r == -ENOTDIR ? -ENOENT : r;
        return lookup(w, dir, name, ret);
}

int ext4_add_hardlink(Ext4Writer *w, const char *path, const char *target)
{
        struct ext2_inode_large inode;
        const char *name;
        ext2_ino_t dir, ino, existing;
        int r;

        r = lookup_path(w, target, &ino);
        if (r < 0)
                return r;
        r = read_inode(w, ino, &inode);
        if (r < 0)
                return r;
        if (LINUX_S_ISDIR(inode.i_mode))
                return -EPERM;
        if (inode.i_links_count >= EXT2_LINK_MAX)
                return -EMLINK;

        r = resolve_parent(w, path, true, &dir, &name);
        if (r < 0)
                return r;
        r = lookup(w, dir, name, &existing);
        if (r >= 0 && existing == ino)
                return 0;
        r = remove_existing(w, dir, name);
        if (r < 0)
                return r;

        /* The removed entry may have held links to the target, even its last one (a directory
         * replaced by a link to a file inside it): look the target up again. */
        r = lookup_path(w, target, &ino);
        if (r < 0)
                return r;
        r = read_inode(w, ino, &inode);
        if (r < 0)
                return r;

        r = link_entry(w, dir, name, ino, file_type_of(inode.i_mode));
        if (r < 0)
                return r;

        inode.i_links_count++;
        return write_inode(w, ino, &inode);
}

int ext4_set_xattr(Ext4Writer *w, const char *path, const char *name, const void *value,
                   size_t size)
{
        struct ext2_xattr_handle *handle = NULL;
        ext2_ino_t ino;
        errcode_t e;
        int r;

        r = lookup_path(w, path, &ino);
        if (r < 0)
                return r;

        e = ext2fs_xattrs_open(w->fs, ino, &handle);
        if (e == 0)
                e = ext2fs_xattrs_read(handle);
        if (e == 0)
                e = ext2fs_xattr_set(handle, name, value, size);
        if (handle) {
                errcode_t close_error = ext2fs_xattrs_close(&handle);
                if (e == 0)
                        e = close_error;
        }
        return ext2_call(e, "setting an extended attribute");
}

int ext4_remove(Ext4Writer *w, const char *path)
{
        const char *name;
        ext2_ino_t dir;
        int r;

        r = resolve_parent(w, path, false, &dir, &name);
        if (r < 0)
                return r == -ENOTDIR ? -ENOENT : r;
        return remove_entry(w, dir, name, 0);
}

int ext4_clear_dir(Ext4Writer *w, const char *path, Ext4KeepFunc keep, void *userdata)
{
        struct ext2_inode_large inode;
        ext2_ino_t ino;
        int r;

        r = lookup_path(w, path, &ino);
        if (r < 0)
                return r;
        r = read_inode(w, ino, &inode);
        if (r < 0)
                return r;
        if (!LINUX_S_ISDIR(inode.i_mode))
                return -ENOTDIR;
        return clear_dir_ino(w, ino, 0, keep, userdata);
}

int ext4_stat(Ext4Writer *w, const char *path, mode_t *ret_mode)
{
        struct ext2_inode_large inode;
        ext2_ino_t ino;
        int r;

        r = lookup_path(w, path, &ino);
        if (r < 0)
                return r;
        r = read_inode(w, ino, &inode);
        if (r < 0)
                return r;
        *ret_mode = inode.i_mode & LINUX_S_IFMT;
        return 0;
}
