#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <ext2fs/ext2fs.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ext4.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "workdisk.h"

#define MIB            (UINT64_C(1024) * 1024)
#define BLOCK_SIZE     4096
#define INODE_SIZE     256
#define ARCHIVE_BLOCK  (64 * 1024)
#define ENTRY_PATH_MAX 4095 /* PATH_MAX without the NUL */
/* One inode per 8 KiB of disk, twice as many as mke2fs makes by default, because a workspace
 * is a source tree of many small files. The inode table takes 256 / 8192 = 3 % of the disk. */
#define BYTES_PER_INODE  8192
#define INODES_RESERVED  16 /* the reserved inodes, the root and lost+found */
#define SYMLINK_INLINE   60 /* targets shorter than this live in the inode */
#define LOST_FOUND_SIZE  (16 * 1024)
#define HEADROOM_PERCENT 110 /* over the content, for extent trees and directory growth */

/* Totals of the content written to the disk or about to be, for the size it needs. */
typedef struct WorkDiskUsage {
        uint64_t entries;
        uint64_t blocks; /* 4 KiB blocks of file content, directories and long symlinks */
} WorkDiskUsage;

static int fail(char **ret_error, int error, const char *format, ...)
        __attribute__((format(printf, 3, 4)));

static int fail(char **ret_error, int error, const char *format, ...)
{
        va_list ap;

        if (ret_error && !*ret_error) {
                va_start(ap, format);
                if (vasprintf(ret_error, format, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return error;
}

static void usage_add(WorkDiskUsage *u, mode_t type, uint64_t size)
{
        u->entries++;
        if (type == S_IFREG)
                u->blocks += (size + BLOCK_SIZE - 1) / BLOCK_SIZE;
        else if (type == S_IFDIR || (type == S_IFLNK && size >= SYMLINK_INLINE))
                u->blocks++;
}

static void usage_add_entry(WorkDiskUsage *u, struct archive_entry *entry)
{
        mode_t type = archive_entry_filetype(entry);
        const char *target = archive_entry_symlink(entry);

        usage_add(u, type,
                  type == S_IFLNK ? strlen(strempty(target)) : (uint64_t)archive_entry_size(entry));
}

static uint64_t inode_count(uint64_t size_bytes)
{
        uint64_t n = size_bytes / BYTES_PER_INODE;

        return n < UINT32_MAX ? n : UINT32_MAX;
}

/* Estimates the blocks that the file system itself takes on a disk of size_bytes: the journal
 * (sized by libext2fs as ext4_writer_create() does), the inode table, lost+found and 1 % for
 * bitmaps, group descriptors and superblock backups. */
static uint64_t overhead(uint64_t size_bytes)
{
        int journal_blocks = ext2fs_default_journal_size(size_bytes / BLOCK_SIZE);
        uint64_t journal = journal_blocks > 0 ? (uint64_t)journal_blocks * BLOCK_SIZE : 0;

        return journal + inode_count(size_bytes) * INODE_SIZE + LOST_FOUND_SIZE + size_bytes / 100;
}

/* Estimates the smallest disk, in whole MiB, that fits the content: big enough for the
 * content plus the overhead of a disk that size, and with an inode for each entry. Overhead
 * grows slower than the disk, so the loop settles within a few rounds. */
static uint64_t size_needed(const WorkDiskUsage *u)
{
        uint64_t content = u->blocks * BLOCK_SIZE / 100 * HEADROOM_PERCENT;
        uint64_t for_inodes = (u->entries + INODES_RESERVED) * BYTES_PER_INODE;
        uint64_t size = WORKDISK_SIZE_MIN;

        for (unsigned i = 0; i < 64; i++) {
                uint64_t need = content + overhead(size);

                if (need < for_inodes)
                        need = for_inodes;
                need = (need + MIB - 1) / MIB * MIB;
                if (need <= size)
                        break;
                size = need;
        }
        return size;
}

typedef struct MemoryReader {
        const char *data;
        size_t left;
} MemoryReader;

static ssize_t read_memory(void *buf, size_t size, void *userdata)
{
        MemoryReader *m = userdata;
        size_t n = size < m->left ? size : m->left;

        memcpy(buf, m->data, n);
        m->data += n;
        m->left -= n;
        return (ssize_t)n;
}

static int add_text_file(Ext4Writer *w, const char *path, const char *text, mode_t mode,
                         WorkDiskUsage *u)
{
        MemoryReader m = { .data = strempty(text), .left = strlen(strempty(text)) };
        Ext4Attrs attrs = { .mode = S_IFREG | mode, .mtime_sec = time(NULL) };

        usage_add(u, S_IFREG, m.left);
        return ext4_add_file(w, path, &attrs, read_memory, &m);
}

/* Writes WORKDISK_META_DIR and the files in it. */
static int write_meta(Ext4Writer *w, const WorkDiskContent *c, WorkDiskUsage *u)
{
        Ext4Attrs dir_attrs = { .mode = S_IFDIR | 0700, .mtime_sec = time(NULL) };
        int r;

        usage_add(u, S_IFDIR, 0);
        r = ext4_mkdir(w, WORKDISK_META_DIR, &dir_attrs);
        if (r < 0)
                return r;
        r = add_text_file(w, WORKDISK_CONFIG, c->config, 0600, u);
        if (r < 0)
                return r;
        r = add_text_file(w, WORKDISK_AUTHORIZED_KEYS, c->authorized_keys, 0600, u);
        if (r < 0)
                return r;
        r = add_text_file(w, WORKDISK_HOST_KEY, c->host_key, 0600, u);
        if (r < 0)
                return r;
        return add_text_file(w, WORKDISK_HOST_KEY_PUB, c->host_key_pub, 0644, u);
}

typedef struct Workspace {
        Ext4Writer *w;
        struct archive *archive;
        const char *name;  /* the top-level directory */
        const char *entry; /* the tar path of the entry being written, for messages */
        WorkDiskUsage *usage;
        char **ret_error;
} Workspace;

static void archive_freep(struct archive **a)
{
        if (*a)
                archive_read_free(*a);
}

/* Joins the workspace directory and a tar entry path, dropping "." and empty components.
 * Returns -EINVAL for an absolute path or a ".." component, and stores NULL for an entry that
 * names the workspace directory itself. */
static int entry_path(const char *workspace, const char *raw, char **ret)
{
        _cleanup_free_ char *out = NULL;
        size_t len = strlen(workspace);

        if (raw[0] == '/')
                return -EINVAL;
        out = malloc(len + strlen(raw) + 2);
        if (!out)
                return -ENOMEM;
        memcpy(out, workspace, len);

        for (const char *p = raw; *p;) {
                const char *e = strchrnul(p, '/');
                size_t n = e - p;

                if (n == 2 && p[0] == '.' && p[1] == '.')
                        return -EINVAL;
                if (n > 0 && !(n == 1 && p[0] == '.')) {
                        out[len++] = '/';
                        memcpy(out + len, p, n);
                        len += n;
                }
                p = *e ? e + 1 : e;
        }
        out[len] = '\0';

        *ret = len == strlen(workspace) ? NULL : TAKE_PTR(out);
        return 0;
}

/* Rejects an entry below a symlink of the workspace: the writer would follow the symlink
 * inside the file system, and a tar that puts files there means to write elsewhere. The
 * components are checked from the top, so each lookup passes only through directories. */
static int check_parents(Workspace *ws, const char *path)
{
        size_t root_len = strlen(ws->name);

        for (const char *slash = strchr(path + root_len + 1, '/'); slash;
             slash = strchr(slash + 1, '/')) {
                _cleanup_free_ char *parent = strndup(path, slash - path);
                mode_t type;
                int r;

                if (!parent)
                        return -ENOMEM;
                r = ext4_stat(ws->w, parent, &type);
                if (r == -ENOENT)
                        return 0;
                if (r < 0)
                        return r;
                if (type == S_IFLNK)
                        return fail(ws->ret_error, -EINVAL,
                                    "Workspace entry '%s' is below the symlink '%s': the archive "
                                    "is malformed or malicious, and was rejected",
                                    ws->entry, parent + root_len + 1);
                if (type != S_IFDIR)
                        return fail(ws->ret_error, -EINVAL,
                                    "Workspace entry '%s' is below '%s', which is not a directory",
                                    ws->entry, parent + root_len + 1);
        }
        return 0;
}

static ssize_t read_entry_data(void *buf, size_t size, void *userdata)
{
        Workspace *ws = userdata;
        la_ssize_t n = archive_read_data(ws->archive, buf, size);

        if (n < 0)
                return fail(ws->ret_error, -EBADMSG,
                            "Failed to read the content of workspace entry '%s': %s", ws->entry,
                            archive_error_string(ws->archive));
        return n;
}

static const char *unsupported_type(mode_t type)
{
        switch (type) {
        case S_IFCHR:
                return "a character device";
        case S_IFBLK:
                return "a block device";
        case S_IFIFO:
                return "a fifo";
        case S_IFSOCK:
                return "a socket";
        default:
                return "of an unknown type";
        }
}

static int add_entry(Workspace *ws, struct archive_entry *entry)
{
        _cleanup_free_ char *path = NULL;
        mode_t type = archive_entry_filetype(entry);
        Ext4Attrs attrs = {
                .mode = type | (archive_entry_perm(entry) & 07777),
                .mtime_sec = archive_entry_mtime(entry),
                .mtime_nsec = (uint32_t)archive_entry_mtime_nsec(entry),
        };
        int r;

        if (!ws->entry)
                return fail(ws->ret_error, -EINVAL,
                            "Workspace archive has an entry without a path");
        if (strlen(ws->entry) > ENTRY_PATH_MAX - strlen(ws->name) - 1)
                return fail(ws->ret_error, -ENAMETOOLONG,
                            "Workspace entry '%.64s...' has a path longer than %zu bytes",
                            ws->entry, ENTRY_PATH_MAX - strlen(ws->name) - 1);
        r = entry_path(ws->name, ws->entry, &path);
        if (r == -EINVAL)
                return fail(ws->ret_error, r,
                            "Workspace entry '%s' is an absolute path or contains '..': entries "
                            "must stay inside the workspace directory",
                            ws->entry);
        if (r < 0)
                return r;
        if (!path)
                return 0; /* the workspace directory keeps banger's owner and mode */

        if (archive_entry_hardlink(entry))
                return fail(ws->ret_error, -EINVAL,
                            "Workspace entry '%s' is a hardlink to '%s': only regular files, "
                            "directories and symlinks are allowed",
                            ws->entry, archive_entry_hardlink(entry));
        if (type != S_IFREG && type != S_IFDIR && type != S_IFLNK)
                return fail(ws->ret_error, -EINVAL,
                            "Workspace entry '%s' is %s: only regular files, directories and "
                            "symlinks are allowed",
                            ws->entry, unsupported_type(type));

        r = check_parents(ws, path);
        if (r < 0)
                return fail(ws->ret_error, r, "Failed to write workspace entry '%s': %s", ws->entry,
                            strerror(-r));

        usage_add_entry(ws->usage, entry);
        if (type == S_IFREG)
                r = ext4_add_file(ws->w, path, &attrs, read_entry_data, ws);
        else if (type == S_IFDIR)
                r = ext4_mkdir(ws->w, path, &attrs);
        else
                r = ext4_add_symlink(ws->w, path, strempty(archive_entry_symlink(entry)), &attrs);
        if (r == -ENOSPC || r == -EBADMSG)
                return r;
        if (r < 0)
                return fail(ws->ret_error, r, "Failed to write workspace entry '%s': %s", ws->entry,
                            strerror(-r));
        return 0;
}

/* Adds the sizes of the entries left in the archive to the usage, after the disk ran out of
 * space, so the error can name the size needed. A read error ends the count early. */
static void count_rest(Workspace *ws)
{
        struct archive_entry *entry;

        for (;;) {
                int s = archive_read_next_header(ws->archive, &entry);

                if (s != ARCHIVE_OK && s != ARCHIVE_WARN)
                        return;

                usage_add_entry(ws->usage, entry);
        }
}

static int write_workspace(Ext4Writer *w, const WorkDiskContent *c, WorkDiskUsage *u,
                           char **ret_error)
{
        _cleanup_(archive_freep) struct archive *a = archive_read_new();
        Ext4Attrs root_attrs = { .mode = S_IFDIR | 0755, .mtime_sec = time(NULL) };
        Workspace ws = {
                .w = w, .archive = a, .name = c->workspace_name, .usage = u, .ret_error = ret_error
        };
        struct archive_entry *entry;
        int r;

        if (!a)
                return -ENOMEM;

        usage_add(u, S_IFDIR, 0);
        r = ext4_mkdir(w, c->workspace_name, &root_attrs);
        if (r < 0)
                return r;

        /* An empty stream is an empty workspace. */
        if (archive_read_support_format_tar(a) != ARCHIVE_OK ||
            archive_read_support_format_empty(a) != ARCHIVE_OK)
                return -EOPNOTSUPP;
        if (archive_read_open_fd(a, c->workspace_fd, ARCHIVE_BLOCK) != ARCHIVE_OK)
                return fail(ret_error, -EBADMSG,
                            "Failed to read the workspace archive: %s: pass an uncompressed tar "
                            "stream",
                            archive_error_string(a));

        for (;;) {
                int s = archive_read_next_header(a, &entry);

                if (s == ARCHIVE_EOF)
                        return 0;
                if (s < ARCHIVE_WARN)
                        return fail(ret_error, -EBADMSG,
                                    "Failed to read the workspace archive: %s: pass an "
                                    "uncompressed tar stream",
                                    archive_error_string(a));

                ws.entry = archive_entry_pathname(entry);
                r = add_entry(&ws, entry);
                if (r == -ENOSPC)
                        count_rest(&ws);
                if (r < 0)
                        return r;
        }
}

static int check_content(const char *path, uint64_t size_bytes, const WorkDiskContent *c,
                         char **ret_error)
{
        const char *name = c->workspace_name;

        if (isempty(path) || !c->config || !c->host_key || !c->host_key_pub)
                return -EINVAL;
        if (size_bytes < WORKDISK_SIZE_MIN)
                return fail(ret_error, -EINVAL,
                            "Work disk size of %" PRIu64 " bytes is below the minimum of %" PRIu64
                            " MiB: raise --work-size",
                            size_bytes, WORKDISK_SIZE_MIN / MIB);
        if (!name)
                return 0;
        if (isempty(name) || strchr(name, '/') || streq(name, ".") || streq(name, "..") ||
            streq(name, WORKDISK_META_DIR) || streq(name, "lost+found") ||
            strlen(name) > EXT2_NAME_LEN)
                return fail(ret_error, -EINVAL,
                            "Workspace name '%s' is invalid: use one path component of at most "
                            "255 bytes other than '.', '..', '" WORKDISK_META_DIR
                            "' and 'lost+found'",
                            name);
        if (c->workspace_fd < 0)
                return -EBADF;
        return 0;
}

/* Writes the content. An -ENOSPC failure gets a message with the size the content needs. */
static int write_content(Ext4Writer *w, uint64_t size_bytes, const WorkDiskContent *c,
                         char **ret_error)
{
        WorkDiskUsage usage = {};
        int r;

        r = write_meta(w, c, &usage);
        if (r >= 0 && c->workspace_name)
                r = write_workspace(w, c, &usage, ret_error);
        if (r == -ENOSPC)
                return fail(ret_error, r,
                            "Work disk content does not fit in %" PRIu64 " MiB: it needs about "
                            "%" PRIu64 " MiB, so raise --work-size to at least that",
                            size_bytes / MIB, size_needed(&usage) / MIB);
        if (r < 0)
                return fail(ret_error, r, "Failed to write the work disk content: %s",
                            strerror(-r));
        return 0;
}

int workdisk_build(const char *path, uint64_t size_bytes, const WorkDiskContent *c,
                   char **ret_error)
{
        _cleanup_unlink_ char *temp = NULL;
        _cleanup_(ext4_writer_freep) Ext4Writer *w = NULL;
        int r;

        if (!c)
                return -EINVAL;
        r = check_content(path, size_bytes, c, ret_error);
        if (r < 0)
                return r;

        r = tempfn_random(path, &temp);
        if (r < 0)
                return r;
        r = ext4_writer_create(temp, size_bytes, inode_count(size_bytes), &w);
        if (r < 0) {
                if (r == -EEXIST)
                        free(TAKE_PTR(temp)); /* not ours to remove */
                return fail(ret_error, r, "Failed to create the work disk '%s': %s", path,
                            strerror(-r));
        }
        /* The disk carries the VM's private host key, so only bangerd may read it. */
        if (chmod(temp, 0600) < 0) {
                r = negative_errno();
                return fail(ret_error, r, "Failed to set the mode of the work disk '%s': %s", path,
                            strerror(-r));
        }

        r = write_content(w, size_bytes, c, ret_error);
        if (r < 0)
                return r;

        r = ext4_writer_close(TAKE_PTR(w));
        if (r < 0)
                return fail(ret_error, r, "Failed to write the work disk '%s': %s", path,
                            strerror(-r));

        if (renameat2(AT_FDCWD, temp, AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
                r = negative_errno();
                return fail(ret_error, r, "Failed to move the work disk to '%s': %s", path,
                            strerror(-r));
        }
        free(TAKE_PTR(temp));
        (void)fsync_parent(path);

        log_debug("workdisk: built '%s' of %" PRIu64 " bytes", path, size_bytes);
        return 0;
}
