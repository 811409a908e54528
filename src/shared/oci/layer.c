#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "layer.h"
#include "log.h"
#include "macro.h"

#define WHITEOUT_PREFIX  ".wh."
#define WHITEOUT_OPAQUE  ".wh..wh..opq"
#define LAYER_PATH_MAX   4095 /* PATH_MAX without the NUL, as the guest kernel accepts */
#define ARCHIVE_BLOCK    (64 * 1024)
#define CAPABILITY_XATTR "security.capability"

#define MIB (UINT64_C(1024) * 1024)
/* Sizing of the ext4 file from the layers' content: 30 % headroom plus 64 MiB for the
 * journal and metadata. The file is sparse, so unused headroom costs no disk space. */
#define SIZE_HEADROOM_PERCENT 130
#define SIZE_EXTRA            (64 * MIB)
#define METADATA_PER_ENTRY    512 /* bytes: an inode slot and a directory entry, estimated */
#define INODES_EXTRA          4096

/* The set of paths that the layer being applied has created, because whiteouts and opaque
 * markers hide only content of lower layers. Open addressing with linear probing. */
typedef struct PathSet {
        char **slots;
        size_t n_slots, n_used;
} PathSet;

static void path_set_done(PathSet *set)
{
        for (size_t i = 0; i < set->n_slots; i++)
                free(set->slots[i]);
        free(set->slots);
}

static uint64_t hash_path(const char *s)
{
        uint64_t h = 14695981039346656037ULL; /* FNV-1a */

        for (; *s; s++)
                h = (h ^ (uint8_t)*s) * 1099511628211ULL;
        return h;
}

static bool path_set_contains(const PathSet *set, const char *path)
{
        if (set->n_slots == 0)
                return false;
        for (size_t i = hash_path(path) & (set->n_slots - 1);; i = (i + 1) & (set->n_slots - 1)) {
                if (!set->slots[i])
                        return false;
                if (streq(set->slots[i], path))
                        return true;
        }
}

static int path_set_put(PathSet *set, const char *path)
{
        if (path_set_contains(set, path))
                return 0;

        if ((set->n_used + 1) * 2 > set->n_slots) {
                size_t n_slots = set->n_slots ? set->n_slots * 2 : 256;
                char **slots = calloc(n_slots, sizeof(char *));

                if (!slots)
                        return -ENOMEM;
                for (size_t i = 0; i < set->n_slots; i++) {
                        if (!set->slots[i])
                                continue;
                        size_t j = hash_path(set->slots[i]) & (n_slots - 1);
                        while (slots[j])
                                j = (j + 1) & (n_slots - 1);
                        slots[j] = set->slots[i];
                }
                free(set->slots);
                set->slots = slots;
                set->n_slots = n_slots;
        }

        size_t i = hash_path(path) & (set->n_slots - 1);
        while (set->slots[i])
                i = (i + 1) & (set->n_slots - 1);
        set->slots[i] = strdup(path);
        if (!set->slots[i])
                return -ENOMEM;
        set->n_used++;
        return 0;
}

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

int layer_normalize_path(const char *path, char **ret)
{
        size_t n = strlen(path);
        _cleanup_free_ char *out = malloc(n + 1);
        size_t len = 0;

        if (!out)
                return -ENOMEM;

        for (const char *p = path; *p;) {
                const char *e = strchrnul(p, '/');
                size_t c = e - p;

                if (c == 0 || (c == 1 && p[0] == '.')) {
                        /* empty or "." component */
                } else if (c == 2 && p[0] == '.' && p[1] == '.') {
                        if (len == 0)
                                return -EINVAL;
                        while (len > 0 && out[len - 1] != '/')
                                len--;
                        if (len > 0)
                                len--; /* the separator */
                } else {
                        if (len > 0)
                                out[len++] = '/';
                        memcpy(out + len, p, c);
                        len += c;
                }
                p = *e ? e + 1 : e;
        }
        out[len] = '\0';
        *ret = TAKE_PTR(out);
        return 0;
}

static void archive_freep(struct archive **a)
{
        if (*a)
                archive_read_free(*a);
}

static int archive_open(struct archive **ret, char **ret_error)
{
        struct archive *a = archive_read_new();

        if (!a)
                return -ENOMEM;
        /* Only the filters that libarchive implements in-process: it would otherwise run an
         * external program for a filter it was built without. */
        if (archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
            archive_read_support_filter_zstd(a) != ARCHIVE_OK ||
            archive_read_support_format_tar(a) != ARCHIVE_OK) {
                archive_read_free(a);
                return fail(ret_error, -EOPNOTSUPP,
                            "libarchive lacks built-in gzip, zstd or tar support: install a "
                            "libarchive built with zlib and libzstd");
        }
        *ret = a;
        return 0;
}

typedef struct ApplyContext {
        Ext4Writer *w;
        struct archive *archive;
        const LayerApplyOptions *opts;
        PathSet added;
        const char *entry; /* normalised path of the entry being applied */
        char **ret_error;
} ApplyContext;

static bool cancelled(const LayerApplyOptions *opts)
{
        return opts && opts->cancel && *opts->cancel;
}

static ssize_t read_entry_data(void *buf, size_t size, void *userdata)
{
        ApplyContext *c = userdata;
        la_ssize_t n;

        if (cancelled(c->opts))
                return -ECANCELED;
        n = archive_read_data(c->archive, buf, size);
        if (n < 0) {
                fail(c->ret_error, -EIO, "Failed to read the content of layer entry '%s': %s",
                     c->entry, archive_error_string(c->archive));
                return -EIO;
        }
        return n;
}

static bool keep_added(const char *name, void *userdata)
{
        const char **args = userdata;
        const PathSet *added = (const PathSet *)args[0];
        const char *dir = args[1];
        _cleanup_free_ char *path = NULL;

        /* lost+found belongs to the file system, not to a layer. */
        if (isempty(dir) && streq(name, "lost+found"))
                return true;
        if (asprintf(&path, "%s%s%s", dir, *dir ? "/" : "", name) < 0)
                return true; /* out of memory: keep rather than lose same-layer content */
        return path_set_contains(added, path);
}

static int apply_whiteout(ApplyContext *c, const char *dir, const char *name)
{
        _cleanup_free_ char *target = NULL;
        int r;

        if (streq(name, WHITEOUT_OPAQUE)) {
                const void *args[2] = { &c->added, dir };

                r = ext4_clear_dir(c->w, dir, keep_added, args);
                if (r == -ENOENT || r == -ENOTDIR)
                        return 0;
                return r;
        }

        name += strlen(WHITEOUT_PREFIX);
        /* Other ".wh..wh." names are AUFS metadata such as ".wh..wh.plnk", which hide no
         * entry, so they are skipped. */
        if (strneq(name, ".wh.", 4))
                return 0;
        if (isempty(name) || streq(name, ".") || streq(name, ".."))
                return fail(c->ret_error, -EINVAL,
                            "Layer entry '%s' is an invalid whiteout: it names no entry", c->entry);

        if (asprintf(&target, "%s%s%s", dir, *dir ? "/" : "", name) < 0)
                return -ENOMEM;
        /* Whiteouts hide lower layers only: an entry this layer created stays. */
        if (path_set_contains(&c->added, target))
                return 0;
        r = ext4_remove(c->w, target);
        return r == -ENOENT ? 0 : r;
}

static int apply_xattrs(ApplyContext *c, struct archive_entry *entry)
{
        const char *name;
        const void *value;
        size_t size;
        int r;

        if (archive_entry_xattr_reset(entry) == 0)
                return 0;
        while (archive_entry_xattr_next(entry, &name, &value, &size) == ARCHIVE_OK) {
                /* ext4 stores a file capability only in the v2 (20 bytes) or v3 (24 bytes)
                 * layout. */
                if (streq(name, CAPABILITY_XATTR) && size != 20 && size != 24)
                        return fail(c->ret_error, -EINVAL,
                                    "Layer entry '%s' has an invalid '%s' attribute of %zu "
                                    "bytes: expected 20 or 24",
                                    c->entry, name, size);
                r = ext4_set_xattr(c->w, c->entry, name, value, size);
                if (r < 0)
                        return fail(c->ret_error, r,
                                    "Failed to set attribute '%s' on layer entry '%s': %s", name,
                                    c->entry, strerror(-r));
        }
        return 0;
}

static int apply_entry(ApplyContext *c, struct archive_entry *entry)
{
        _cleanup_free_ char *path = NULL, *link_target = NULL;
        const char *raw = archive_entry_pathname(entry), *hardlink, *base;
        _cleanup_free_ char *dir = NULL;
        Ext4Attrs attrs = {
                .mode = archive_entry_mode(entry),
                .uid = (uid_t)archive_entry_uid(entry),
                .gid = (gid_t)archive_entry_gid(entry),
                .mtime_sec = archive_entry_mtime(entry),
                .mtime_nsec = (uint32_t)archive_entry_mtime_nsec(entry),
                .rdev = archive_entry_rdev(entry),
        };
        int r;

        if (!raw)
                return fail(c->ret_error, -EINVAL, "Layer contains an entry without a path");
        if (strlen(raw) > LAYER_PATH_MAX)
                return fail(c->ret_error, -ENAMETOOLONG,
                            "Layer entry '%.64s...' has a path longer than %d bytes", raw,
                            LAYER_PATH_MAX);
        r = layer_normalize_path(raw, &path);
        if (r == -EINVAL)
                return fail(c->ret_error, r,
                            "Layer entry '%s' leaves the image root: the layer "
                            "is malformed or malicious, and was rejected",
                            raw);
        if (r < 0)
                return r;
        c->entry = path;

        /* The root directory itself keeps banger's ownership and mode. */
        if (isempty(path))
                return 0;

        base = strrchr(path, '/');
        dir = base ? strndup(path, base - path) : strdup("");
        if (!dir)
                return -ENOMEM;
        base = base ? base + 1 : path;

        if (strneq(base, WHITEOUT_PREFIX, strlen(WHITEOUT_PREFIX)))
                return apply_whiteout(c, dir, base);

        hardlink = archive_entry_hardlink(entry);
        if (hardlink) {
                r = layer_normalize_path(hardlink, &link_target);
                if (r == -EINVAL || (r >= 0 && isempty(link_target)))
                        return fail(c->ret_error, -EINVAL,
                                    "Layer entry '%s' is a hardlink to '%s', which leaves the "
                                    "image root: the layer is malformed or malicious, and was "
                                    "rejected",
                                    path, hardlink);
                if (r < 0)
                        return r;
                r = ext4_add_hardlink(c->w, path, link_target);
                if (r == -ENOENT)
                        return fail(c->ret_error, r,
                                    "Layer entry '%s' is a hardlink to '%s', which does not exist",
                                    path, link_target);
                if (r == -EPERM)
                        return fail(c->ret_error, r,
                                    "Layer entry '%s' is a hardlink to the directory '%s'", path,
                                    link_target);
        } else {
                switch (attrs.mode & S_IFMT) {
                case S_IFREG:
                        r = ext4_add_file(c->w, path, &attrs, read_entry_data, c);
                        break;
                case S_IFDIR:
                        r = ext4_mkdir(c->w, path, &attrs);
                        break;
                case S_IFLNK:
                        r = ext4_add_symlink(c->w, path, strempty(archive_entry_symlink(entry)),
                                             &attrs);
                        break;
                case S_IFCHR:
                case S_IFBLK:
                case S_IFIFO:
                case S_IFSOCK:
                        r = ext4_add_node(c->w, path, &attrs);
                        break;
                default:
                        return fail(c->ret_error, -EINVAL,
                                    "Layer entry '%s' has an unknown file type 0%o", path,
                                    (unsigned)(attrs.mode & S_IFMT));
                }
        }
        if (r == -ECANCELED)
                return r;
        if (r < 0)
                return fail(c->ret_error, r, "Failed to write layer entry '%s' to the image: %s",
                            path, strerror(-r));

        r = path_set_put(&c->added, path);
        if (r < 0)
                return r;

        if (!hardlink)
                return apply_xattrs(c, entry);
        return 0;
}

static int apply_archive(Ext4Writer *w, struct archive *a, const LayerApplyOptions *opts,
                         char **ret_error)
{
        ApplyContext c = { .w = w, .archive = a, .opts = opts, .ret_error = ret_error };
        struct archive_entry *entry;
        int r = 0;

        for (;;) {
                if (cancelled(opts)) {
                        r = -ECANCELED;
                        break;
                }

                int s = archive_read_next_header(a, &entry);
                if (s == ARCHIVE_EOF)
                        break;
                if (s < ARCHIVE_WARN) {
                        r = fail(ret_error, -EBADMSG, "Failed to read the layer archive: %s",
                                 archive_error_string(a));
                        break;
                }

                r = apply_entry(&c, entry);
                if (r < 0)
                        break;

                if (opts && opts->progress)
                        opts->progress((uint64_t)archive_filter_bytes(a, -1), opts->userdata);
        }

        path_set_done(&c.added);
        return r;
}

int layer_apply_file(Ext4Writer *w, const char *path, const LayerApplyOptions *opts,
                     char **ret_error)
{
        _cleanup_(archive_freep) struct archive *a = NULL;
        int r;

        r = archive_open(&a, ret_error);
        if (r < 0)
                return r;
        if (archive_read_open_filename(a, path, ARCHIVE_BLOCK) != ARCHIVE_OK)
                return fail(ret_error, -EBADMSG, "Failed to open layer '%s': %s", path,
                            archive_error_string(a));
        return apply_archive(w, a, opts, ret_error);
}

int layer_apply_memory(Ext4Writer *w, const void *data, size_t size, const LayerApplyOptions *opts,
                       char **ret_error)
{
        _cleanup_(archive_freep) struct archive *a = NULL;
        int r;

        r = archive_open(&a, ret_error);
        if (r < 0)
                return r;
        if (archive_read_open_memory(a, data, size) != ARCHIVE_OK)
                return fail(ret_error, -EBADMSG, "Failed to open the layer archive: %s",
                            archive_error_string(a));
        return apply_archive(w, a, opts, ret_error);
}

int layer_scan_file(const char *path, LayerStats *stats, char **ret_error)
{
        _cleanup_(archive_freep) struct archive *a = NULL;
        struct archive_entry *entry;
        int r;

        r = archive_open(&a, ret_error);
        if (r < 0)
                return r;
        if (archive_read_open_filename(a, path, ARCHIVE_BLOCK) != ARCHIVE_OK)
                return fail(ret_error, -EBADMSG, "Failed to open layer '%s': %s", path,
                            archive_error_string(a));

        for (;;) {
                int s = archive_read_next_header(a, &entry);
                if (s == ARCHIVE_EOF)
                        return 0;
                if (s < ARCHIVE_WARN)
                        return fail(ret_error, -EBADMSG, "Failed to read layer '%s': %s", path,
                                    archive_error_string(a));
                stats->entries++;
                if (archive_entry_filetype(entry) == AE_IFREG && archive_entry_size(entry) > 0)
                        stats->data_blocks += ((uint64_t)archive_entry_size(entry) + 4095) / 4096;
        }
}

static bool keep_unless_host_key(const char *name, void *userdata)
{
        return fnmatch("ssh_host_*", name, 0) != 0;
}

int layer_drop_ssh_host_keys(Ext4Writer *w)
{
        int r = ext4_clear_dir(w, "etc/ssh", keep_unless_host_key, NULL);

        return r == -ENOENT || r == -ENOTDIR ? 0 : r;
}

static int image_size(const LayerImageOptions *opts, uint64_t *ret_size, uint64_t *ret_inodes,
                      char **ret_error)
{
        LayerStats stats = {};
        uint64_t content, size, inodes;
        int r;

        for (size_t i = 0; opts->layer_paths[i]; i++) {
                _cleanup_free_ char *layer_error = NULL;

                r = layer_scan_file(opts->layer_paths[i], &stats, &layer_error);
                if (r < 0)
                        return fail(ret_error, r, "Failed to read layer %zu of '%s': %s", i + 1,
                                    opts->name, layer_error ? layer_error : strerror(-r));
        }

        inodes = stats.entries * SIZE_HEADROOM_PERCENT / 100 + INODES_EXTRA;
        content = stats.data_blocks * 4096 + stats.entries * METADATA_PER_ENTRY + inodes * 256;
        size = content / 100 * SIZE_HEADROOM_PERCENT + SIZE_EXTRA;
        size = (size + MIB - 1) / MIB * MIB;

        *ret_size = size;
        *ret_inodes = inodes;
        return 0;
}

static int apply_layers(Ext4Writer *w, const LayerImageOptions *opts, char **ret_error)
{
        int r;

        for (size_t i = 0; opts->layer_paths[i]; i++) {
                _cleanup_free_ char *layer_error = NULL;
                const char *reason;

                if (opts->apply.cancel && *opts->apply.cancel)
                        return -ECANCELED;
                r = layer_apply_file(w, opts->layer_paths[i], &opts->apply, &layer_error);
                if (r == -ECANCELED)
                        return r;
                reason = layer_error ? layer_error : strerror(-r);
                if (r < 0 && opts->layers)
                        return fail(ret_error, r, "Failed to apply layer %zu of '%s' (%s): %s",
                                    i + 1, opts->name, opts->layers[i].digest, reason);
                if (r < 0)
                        return fail(ret_error, r, "Failed to apply layer %zu of '%s': %s", i + 1,
                                    opts->name, reason);
                if (opts->layer_done)
                        opts->layer_done(i, opts->apply.userdata);
        }
        return 0;
}

int layer_build_image(const LayerImageOptions *opts, uint64_t *ret_size, char **ret_error)
{
        _cleanup_unlink_ char *temp = NULL;
        _cleanup_(ext4_writer_freep) Ext4Writer *w = NULL;
        uint64_t size = 0, inodes = 0;
        int r;

        r = image_size(opts, &size, &inodes, ret_error);
        if (r < 0)
                return r;

        r = tempfn_random(opts->output_path, &temp);
        if (r < 0)
                return r;
        r = ext4_writer_create(temp, size, inodes, &w);
        if (r < 0) {
                if (r == -EEXIST)
                        free(TAKE_PTR(temp));
                return fail(ret_error, r, "Failed to create the image file '%s': %s", temp,
                            strerror(-r));
        }

        r = apply_layers(w, opts, ret_error);
        if (r < 0)
                return r;

        r = layer_drop_ssh_host_keys(w);
        if (r < 0)
                return fail(ret_error, r, "Failed to remove the SSH host keys of '%s': %s",
                            opts->name, strerror(-r));

        r = ext4_writer_close(TAKE_PTR(w));
        if (r < 0)
                return fail(ret_error, r, "Failed to write the image file '%s': %s", temp,
                            strerror(-r));

        /* Publish without replacing a file that appeared at output_path meanwhile. */
        if (renameat2(AT_FDCWD, temp, AT_FDCWD, opts->output_path, RENAME_NOREPLACE) < 0) {
                r = negative_errno();
                return fail(ret_error, r, "Failed to move the image to '%s': %s", opts->output_path,
                            strerror(-r));
        }
        free(TAKE_PTR(temp));
        (void)fsync_parent(opts->output_path);

        *ret_size = size;
        return 0;
}
