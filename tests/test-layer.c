#include <archive.h>
#include <archive_entry.h>
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "ext4.h"
#include "fileio.h"
#include "layer.h"
#include "macro.h"

#include "test-ext4-util.c"

/* The entry tables below leave trailing fields out on purpose. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define MIB (1024 * 1024)

static char tmpdir[] = "/tmp/test-layer-XXXXXX";
static char image[sizeof(tmpdir) + 16];

static void setup(void)
{
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
        snprintf(image, sizeof(image), "%s/fs.ext4", tmpdir);
}

static void teardown(void)
{
        ck_assert_int_eq(rm_rf(tmpdir), 0);
        strcpy(tmpdir, "/tmp/test-layer-XXXXXX");
}

/* One tar entry to write: type is 'f' file, 'd' directory, 'l' symlink, 'h' hardlink,
 * 'c' character device, 'b' block device, 'p' fifo. Tar has no socket type. */
typedef struct TarEntry {
        char type;
        const char *path;
        const char *data; /* file content, symlink or hardlink target */
        mode_t mode;      /* permission bits; 0 means 0644 or 0755 */
        const char *xattr_name;
        const char *xattr_value;
        size_t xattr_size; /* 0 means strlen(xattr_value), for binary values with NUL bytes */
        uid_t uid;
        gid_t gid;
} TarEntry;

enum { COMPRESS_NONE, COMPRESS_GZIP, COMPRESS_ZSTD };

/* Builds a tar layer in memory with libarchive's writer. The caller frees *ret. */
static size_t build_layer(const TarEntry *entries, size_t n, int compression, void **ret)
{
        size_t capacity = 8 * MIB, used = 0;
        void *buf = malloc(capacity);
        struct archive *a = archive_write_new();

        ck_assert_ptr_nonnull(buf);
        ck_assert_int_eq(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
        if (compression == COMPRESS_GZIP)
                ck_assert_int_eq(archive_write_add_filter_gzip(a), ARCHIVE_OK);
        else if (compression == COMPRESS_ZSTD)
                ck_assert_int_eq(archive_write_add_filter_zstd(a), ARCHIVE_OK);
        ck_assert_int_eq(archive_write_open_memory(a, buf, capacity, &used), ARCHIVE_OK);

        for (size_t i = 0; i < n; i++) {
                struct archive_entry *e = archive_entry_new();
                const TarEntry *t = &entries[i];
                mode_t perm = t->mode ? t->mode : (t->type == 'd' ? 0755 : 0644);

                archive_entry_set_pathname(e, t->path);
                archive_entry_set_mtime(e, 1600000000 + (time_t)i, 0);
                archive_entry_set_uid(e, t->uid);
                archive_entry_set_gid(e, t->gid);
                switch (t->type) {
                case 'f':
                        archive_entry_set_mode(e, AE_IFREG | perm);
                        archive_entry_set_size(e, strlen(strempty(t->data)));
                        break;
                case 'd':
                        archive_entry_set_mode(e, AE_IFDIR | perm);
                        break;
                case 'l':
                        archive_entry_set_mode(e, AE_IFLNK | 0777);
                        archive_entry_set_symlink(e, t->data);
                        break;
                case 'h':
                        archive_entry_set_mode(e, AE_IFREG | perm);
                        archive_entry_set_hardlink(e, t->data);
                        break;
                case 'c':
                        archive_entry_set_mode(e, AE_IFCHR | perm);
                        archive_entry_set_rdev(e, makedev(1, 3));
                        break;
                case 'b':
                        archive_entry_set_mode(e, AE_IFBLK | perm);
                        archive_entry_set_rdev(e, makedev(8, 1));
                        break;
                case 'p':
                        archive_entry_set_mode(e, AE_IFIFO | perm);
                        break;
                default:
                        ck_abort_msg("unknown entry type '%c'", t->type);
                }
                if (t->xattr_name)
                        archive_entry_xattr_add_entry(e, t->xattr_name, t->xattr_value,
                                                      t->xattr_size ? t->xattr_size
                                                                    : strlen(t->xattr_value));
                ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
                if (t->type == 'f' && !isempty(t->data))
                        ck_assert_int_eq(archive_write_data(a, t->data, strlen(t->data)),
                                         (la_ssize_t)strlen(t->data));
                archive_entry_free(e);
        }
        ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
        archive_write_free(a);
        *ret = buf;
        return used;
}

static Ext4Writer *create(void)
{
        Ext4Writer *w = NULL;

        ck_assert_int_eq(ext4_writer_create(image, 64 * MIB, 16384, &w), 0);
        return w;
}

static int apply(Ext4Writer *w, const TarEntry *entries, size_t n, char **ret_error)
{
        _cleanup_free_ void *data = NULL;
        size_t size = build_layer(entries, n, COMPRESS_GZIP, &data);

        return layer_apply_memory(w, data, size, NULL, ret_error);
}

static void apply_ok(Ext4Writer *w, const TarEntry *entries, size_t n)
{
        _cleanup_free_ char *error = NULL;

        ck_assert_int_eq(apply(w, entries, n, &error), 0);
        ck_assert_ptr_null(error);
}

static void assert_content(ext2_filsys fs, const char *path, const char *expected)
{
        _cleanup_free_ char *content = fs_read(fs, path);

        ck_assert_str_eq(content, expected);
}

START_TEST(layer_every_entry_type)
{
        static const TarEntry entries[] = {
                { 'd', "./usr/", NULL, 0755 },
                { 'd', "./usr/bin/", NULL, 0711 },
                { 'f', "./usr/bin/tool", "#!/bin/sh\n", 04755, "user.origin", "test" },
                { 'l', "./bin", "usr/bin" },
                { 'h', "./usr/bin/tool2", "./usr/bin/tool" },
                { 'c', "dev/null", NULL, 0666 },
                { 'b', "dev/sda1", NULL, 0660 },
                { 'p', "run/initctl", NULL, 0600 },
                { 'f', "/etc/hostname", "image\n" },
                { 'f', "empty", "" },
        };
        Ext4Writer *w = create();
        struct ext2_inode_large inode;
        _cleanup_free_ char *origin = NULL;
        size_t origin_size = 0;
        ext2_filsys fs;

        apply_ok(w, entries, ELEMENTSOF(entries));
        ck_assert_int_eq(ext4_writer_close(w), 0);
        ck_assert_int_eq(run_e2fsck(image), 0);

        fs = open_fs(image);
        ck_assert_uint_eq(fs_inode(fs, "usr/bin").i_mode, LINUX_S_IFDIR | 0711);
        inode = fs_inode(fs, "usr/bin/tool");
        ck_assert_uint_eq(inode.i_mode, LINUX_S_IFREG | 04755);
        ck_assert_uint_eq(inode.i_links_count, 2);
        ck_assert_uint_eq(inode.i_mtime, 1600000002);
        assert_content(fs, "usr/bin/tool2", "#!/bin/sh\n");
        assert_content(fs, "bin", "usr/bin");
        assert_content(fs, "etc/hostname", "image\n");
        assert_content(fs, "empty", "");
        ck_assert_uint_eq(fs_inode(fs, "dev/null").i_mode, LINUX_S_IFCHR | 0666);
        ck_assert_uint_eq(fs_inode(fs, "dev/null").i_block[0], 0x0103);
        ck_assert_uint_eq(fs_inode(fs, "dev/sda1").i_mode, LINUX_S_IFBLK | 0660);
        ck_assert_uint_eq(fs_inode(fs, "dev/sda1").i_block[0], 0x0801);
        ck_assert_uint_eq(fs_inode(fs, "run/initctl").i_mode, LINUX_S_IFIFO | 0600);
        origin = fs_xattr(fs, "usr/bin/tool", "user.origin", &origin_size);
        ck_assert_ptr_nonnull(origin);
        ck_assert_uint_eq(origin_size, 4);
        ck_assert_mem_eq(origin, "test", 4);
        ext2fs_close_free(&fs);
}
END_TEST

START_TEST(layer_whiteouts_hide_lower_entries)
{
        static const TarEntry lower[] = {
                { 'f', "a/x", "x" },       { 'f', "a/y", "y" },  { 'f', "b/z/deep", "z" },
                { 'f', "c", "c" },         { 'l', "link", "a" }, { 'f', "keep-me", "k" },
                { 'f', "a/.hidden", "h" },
        };
        static const TarEntry upper[] = {
                { 'f', "a/.wh.x", "" },       { 'f', ".wh.b", "" },         { 'f', ".wh.link", "" },
                { 'f', ".wh.missing", "" },                           /* nothing to hide: ignored */
                { 'f', "new", "same layer" }, { 'f', ".wh.new", "" }, /* same layer: does not hide
                                                                         "new" */
                { 'f', "c", "replaced" },     { 'f', "a/.wh..hidden", "" },
        };
        Ext4Writer *w = create();
        ext2_filsys fs;

        apply_ok(w, lower, ELEMENTSOF(lower));
        apply_ok(w, upper, ELEMENTSOF(upper));
        ck_assert_int_eq(ext4_writer_close(w), 0);
        ck_assert_int_eq(run_e2fsck(image), 0);

        fs = open_fs(image);
        ck_assert_uint_eq(fs_lookup(fs, "a/x"), 0);
        ck_assert_uint_ne(fs_lookup(fs, "a/y"), 0);
        ck_assert_uint_eq(fs_lookup(fs, "a/.hidden"), 0);
        ck_assert_uint_eq(fs_lookup(fs, "b"), 0);
        ck_assert_uint_eq(fs_lookup(fs, "link"), 0);
        ck_assert_uint_ne(fs_lookup(fs, "keep-me"), 0);
        assert_content(fs, "new", "same layer");
        assert_content(fs, "c", "replaced");
        /* No whiteout file is itself written. */
        ck_assert_uint_eq(fs_lookup(fs, "a/.wh.x"), 0);
        ck_assert_uint_eq(fs_lookup(fs, ".wh.new"), 0);
        ext2fs_close_free(&fs);
}
END_TEST

START_TEST(layer_opaque_directory)
{
        static const TarEntry lower[] = {
                { 'f', "o/1", "1" },
                { 'f', "o/sub/2", "2" },
                { 'f', "p/3", "3" },
                { 'f', "q/4", "4" },
        };
        /* In o/ the marker precedes the layer's new entry, in p/ it follows it, and none/
         * exists in no lower layer. */
        static const TarEntry upper[] = {
                { 'd', "o/", NULL, 0700 },     { 'f', "o/.wh..wh..opq", "" },
                { 'f', "o/new", "new" },       { 'f', "p/new", "p" },
                { 'f', "p/.wh..wh..opq", "" }, { 'f', "none/.wh..wh..opq", "" },
        };
        Ext4Writer *w = create();
        ext2_filsys fs;

        apply_ok(w, lower, ELEMENTSOF(lower));
        apply_ok(w, upper, ELEMENTSOF(upper));
        ck_assert_int_eq(ext4_writer_close(w), 0);
        ck_assert_int_eq(run_e2fsck(image), 0);

        fs = open_fs(image);
        ck_assert_uint_eq(fs_count_entries(fs, "o"), 1);
        assert_content(fs, "o/new", "new");
        ck_assert_uint_eq(fs_inode(fs, "o").i_mode, LINUX_S_IFDIR | 0700);
        ck_assert_uint_eq(fs_count_entries(fs, "p"), 1);
        assert_content(fs, "p/new", "p");
        assert_content(fs, "q/4", "4");
        ext2fs_close_free(&fs);
}
END_TEST

START_TEST(layer_opaque_root_keeps_lost_found)
{
        static const TarEntry lower[] = { { 'f', "a", "a" }, { 'f', "d/b", "b" } };
        static const TarEntry upper[] = { { 'f', ".wh..wh..opq", "" }, { 'f', "c", "c" } };
        Ext4Writer *w = create();
        ext2_filsys fs;

        apply_ok(w, lower, ELEMENTSOF(lower));
        apply_ok(w, upper, ELEMENTSOF(upper));
        ck_assert_int_eq(ext4_writer_close(w), 0);
        ck_assert_int_eq(run_e2fsck(image), 0);

        fs = open_fs(image);
        ck_assert_uint_eq(fs_count_entries(fs, "/"), 2);
        ck_assert_uint_ne(fs_lookup(fs, "lost+found"), 0);
        assert_content(fs, "c", "c");
        ext2fs_close_free(&fs);
}
END_TEST

START_TEST(layer_hardlink_into_lower_layer)
{
        static const TarEntry lower[] = { { 'f', "bin/busybox", "BB", 0755 } };
        static const TarEntry upper[] = {
                { 'h', "bin/sh", "bin/busybox" },
                { 'h', "usr/bin/env", "/bin/busybox" },
        };
        Ext4Writer *w = create();
        ext2_filsys fs;

        apply_ok(w, lower, ELEMENTSOF(lower));
        apply_ok(w, upper, ELEMENTSOF(upper));
        ck_assert_int_eq(ext4_writer_close(w), 0);
        ck_assert_int_eq(run_e2fsck(image), 0);

        fs = open_fs(image);
        ck_assert_uint_eq(fs_inode(fs, "bin/busybox").i_links_count, 3);
        ck_assert_uint_eq(fs_lookup(fs, "bin/sh"), fs_lookup(fs, "bin/busybox"));
        assert_content(fs, "usr/bin/env", "BB");
        ext2fs_close_free(&fs);
}
END_TEST

START_TEST(layer_owners_above_65535)
{
        static const TarEntry entries[] = {
                { 'd', "home/user", NULL, 0750, .uid = 100000, .gid = 100000 },
                { 'f', "home/user/file", "x", 0640, .uid = 65536, .gid = 65535 },
                { 'l', "home/user/link", "file", .uid = 4294967294u, .gid = 70000 },
                { 'c', "home/user/tty", NULL, 0620, .uid = 1000, .gid = 1u << 20 },
        };
        static const struct {
                const char *path;
                uint32_t uid, gid;
        } expected[] = {
                { "home/user", 100000, 100000 },
                { "home/user/file", 65536, 65535 },
                { "home/user/link", 4294967294u, 70000 },
                { "home/user/tty", 1000, 1u << 20 },
        };
        Ext4Writer *w = create();
        ext2_filsys fs;

        apply_ok(w, entries, ELEMENTSOF(entries));
        ck_assert_int_eq(ext4_writer_close(w), 0);
        ck_assert_int_eq(run_e2fsck(image), 0);

        fs = open_fs(image);
        for (size_t i = 0; i < ELEMENTSOF(expected); i++) {
                struct ext2_inode_large inode = fs_inode(fs, expected[i].path);

                ck_assert_msg(inode_uid(inode) == expected[i].uid, "%s: uid %u, expected %u",
                              expected[i].path, inode_uid(inode), expected[i].uid);
                ck_assert_msg(inode_gid(inode) == expected[i].gid, "%s: gid %u, expected %u",
                              expected[i].path, inode_gid(inode), expected[i].gid);
        }
        ext2fs_close_free(&fs);
}
END_TEST

START_TEST(layer_setuid_setgid_bits_kept)
{
        static const TarEntry entries[] = {
                { 'f', "usr/bin/su", "su", 04755 },
                { 'f', "usr/bin/wall", "wall", 02755, .gid = 5 },
                { 'f', "usr/bin/both", "both", 06711 },
                { 'd', "srv/shared", NULL, 02775 },
                { 'd', "srv/drop", NULL, 01733 },
                { 'f', "usr/bin/all", "all", 07777 },
        };
        static const struct {
                const char *path;
                unsigned mode;
        } expected[] = {
                { "usr/bin/su", LINUX_S_IFREG | 04755 },
                { "usr/bin/wall", LINUX_S_IFREG | 02755 },
                { "usr/bin/both", LINUX_S_IFREG | 06711 },
                { "srv/shared", LINUX_S_IFDIR | 02775 },
                { "srv/drop", LINUX_S_IFDIR | 01733 },
                { "usr/bin/all", LINUX_S_IFREG | 07777 },
        };
        Ext4Writer *w = create();
        ext2_filsys fs;

        apply_ok(w, entries, ELEMENTSOF(entries));
        ck_assert_int_eq(ext4_writer_close(w), 0);
        ck_assert_int_eq(run_e2fsck(image), 0);

        fs = open_fs(image);
        for (size_t i = 0; i < ELEMENTSOF(expected); i++) {
                unsigned mode = fs_inode(fs, expected[i].path).i_mode;

                ck_assert_msg(mode == expected[i].mode, "%s: mode 0%o, expected 0%o",
                              expected[i].path, mode, expected[i].mode);
        }
        ck_assert_uint_eq(inode_gid(fs_inode(fs, "usr/bin/wall")), 5);
        ext2fs_close_free(&fs);
}
END_TEST

/* File capability values as the kernel writes them (linux/capability.h): a little-endian magic
 * and flags word, then permitted and inheritable masks, and in v3 the root user ID. These grant
 * CAP_NET_BIND_SERVICE (bit 10) as effective and permitted. */
static const char capability_v2[20] = { 0x01, 0x00, 0x00, 0x02, 0x00, 0x04 };
static const char capability_v3[24] = { 0x01, 0x00, 0x00, 0x03, 0x00, 0x04 };
static const char capability_junk[32] = { 0x01, 0x00, 0x00, 0x02, 0x00, 0x04 };

static const struct {
        const char *value;
        size_t size;
        bool accepted;
} capabilities[] = {
        { capability_v2, 20, true },    { capability_v3, 24, true },
        { capability_junk, 1, false },  { capability_junk, 12, false },
        { capability_junk, 19, false }, { capability_junk, 21, false },
        { capability_junk, 23, false }, { capability_junk, 25, false },
        { capability_junk, 32, false },
};

START_TEST(layer_capability_sizes)
{
        TarEntry entries[] = {
                { 'f', "usr/bin/ping", "ping", 0755, "security.capability", capabilities[_i].value,
                  capabilities[_i].size },
        };
        _cleanup_free_ char *error = NULL, *value = NULL, *expected_message = NULL;
        size_t size = 0;
        Ext4Writer *w = create();
        ext2_filsys fs;
        int r = apply(w, entries, ELEMENTSOF(entries), &error);

        if (!capabilities[_i].accepted) {
                ck_assert_int_eq(r, -EINVAL);
                ck_assert_ptr_nonnull(error);
                ck_assert_int_ge(asprintf(&expected_message,
                                          "Layer entry 'usr/bin/ping' has an invalid "
                                          "'security.capability' attribute of %zu bytes: expected "
                                          "20 or 24",
                                          capabilities[_i].size),
                                 0);
                ck_assert_str_eq(error, expected_message);
                ext4_writer_free(w);
                return;
        }

        ck_assert_int_eq(r, 0);
        ck_assert_ptr_null(error);
        ck_assert_int_eq(ext4_writer_close(w), 0);
        ck_assert_int_eq(run_e2fsck(image), 0);

        fs = open_fs(image);
        value = fs_xattr(fs, "usr/bin/ping", "security.capability", &size);
        ck_assert_ptr_nonnull(value);
        ck_assert_uint_eq(size, capabilities[_i].size);
        ck_assert_mem_eq(value, capabilities[_i].value, size);
        ext2fs_close_free(&fs);
}
END_TEST

/* The OCI image specification's changeset rules make a hardlink a second name for the same
 * file, so a later whiteout of the first name removes that name only and the link keeps the
 * data. */
START_TEST(layer_hardlink_outlives_whiteout)
{
        static const TarEntry lower[] = {
                { 'f', "bin/busybox", "BB", 0755 },
                { 'f', "lib/libc.so", "LIBC", 0644 },
        };
        static const TarEntry middle[] = {
                { 'h', "usr/bin/env", "bin/busybox" },
                { 'h', "usr/lib/libc.so", "lib/libc.so" },
        };
        /* One whiteout removes the file's name, the other its whole directory. */
        static const TarEntry upper[] = {
                { 'f', "bin/.wh.busybox", "" },
                { 'f', ".wh.lib", "" },
        };
        Ext4Writer *w = create();
        struct ext2_inode_large inode;
        ext2_filsys fs;

        apply_ok(w, lower, ELEMENTSOF(lower));
        apply_ok(w, middle, ELEMENTSOF(middle));
        apply_ok(w, upper, ELEMENTSOF(upper));
        ck_assert_int_eq(ext4_writer_close(w), 0);
        ck_assert_int_eq(run_e2fsck(image), 0);

        fs = open_fs(image);
        ck_assert_uint_eq(fs_lookup(fs, "bin/busybox"), 0);
        ck_assert_uint_eq(fs_lookup(fs, "lib"), 0);
        inode = fs_inode(fs, "usr/bin/env");
        ck_assert_uint_eq(inode.i_links_count, 1);
        ck_assert_uint_eq(inode.i_mode, LINUX_S_IFREG | 0755);
        assert_content(fs, "usr/bin/env", "BB");
        ck_assert_uint_eq(fs_inode(fs, "usr/lib/libc.so").i_links_count, 1);
        assert_content(fs, "usr/lib/libc.so", "LIBC");
        ext2fs_close_free(&fs);
}
END_TEST

START_TEST(layer_opaque_directory_with_new_subtree)
{
        static const TarEntry lower[] = {
                { 'f', "etc/conf.d/old", "old" },
                { 'f', "etc/conf.d/sub/older", "older" },
                { 'f', "etc/keep", "keep" },
        };
        /* The layer replaces etc/conf.d with a new subtree, entries before and after the
         * marker, and a subdirectory of the same name as a lower one. */
        static const TarEntry upper[] = {
                { 'd', "etc/conf.d/", NULL, 0750 },     { 'f', "etc/conf.d/a", "a" },
                { 'f', "etc/conf.d/.wh..wh..opq", "" }, { 'd', "etc/conf.d/sub/", NULL, 0700 },
                { 'f', "etc/conf.d/sub/b", "b" },
        };
        Ext4Writer *w = create();
        ext2_filsys fs;

        apply_ok(w, lower, ELEMENTSOF(lower));
        apply_ok(w, upper, ELEMENTSOF(upper));
        ck_assert_int_eq(ext4_writer_close(w), 0);
        ck_assert_int_eq(run_e2fsck(image), 0);

        fs = open_fs(image);
        ck_assert_uint_eq(fs_count_entries(fs, "etc/conf.d"), 2);
        assert_content(fs, "etc/conf.d/a", "a");
        ck_assert_uint_eq(fs_lookup(fs, "etc/conf.d/old"), 0);
        ck_assert_uint_eq(fs_count_entries(fs, "etc/conf.d/sub"), 1);
        ck_assert_uint_eq(fs_lookup(fs, "etc/conf.d/sub/older"), 0);
        assert_content(fs, "etc/conf.d/sub/b", "b");
        ck_assert_uint_eq(fs_inode(fs, "etc/conf.d").i_mode, LINUX_S_IFDIR | 0750);
        ck_assert_uint_eq(fs_inode(fs, "etc/conf.d/sub").i_mode, LINUX_S_IFDIR | 0700);
        assert_content(fs, "etc/keep", "keep");
        ext2fs_close_free(&fs);
}
END_TEST

static const struct {
        TarEntry entry;
        const char *message_part;
} escapes[] = {
        { { 'f', "../etc/passwd", "x" }, "'../etc/passwd' leaves the image root" },
        { { 'f', "a/../../x", "x" }, "'a/../../x' leaves the image root" },
        { { 'f', "/../x", "x" }, "'/../x' leaves the image root" },
        { { 'd', "./..", NULL }, "leaves the image root" },
        { { 'l', "a/../..", "x" }, "leaves the image root" },
        { { 'f', "ok/.wh...", "" }, "'ok/.wh...' is an invalid whiteout" },
        { { 'h', "x", "../../etc/shadow" }, "hardlink to '../../etc/shadow', which leaves" },
        { { 'h', "x", "/etc/../../y" }, "hardlink to '/etc/../../y', which leaves" },
        { { 'h', "x", "." }, "hardlink to '.', which leaves" },
        { { 'h', "x", "missing" }, "'x' is a hardlink to 'missing', which does not exist" },
        { { 'h', "x", "dir" }, "hardlink to the directory 'dir'" },
        { { 'f', "dir/.wh.", "" }, "invalid whiteout" },
};

START_TEST(layer_rejects_escapes)
{
        static const TarEntry lower[] = { { 'd', "dir" } };
        TarEntry entries[] = { { 'f', "before", "b" }, escapes[_i].entry, { 'f', "after", "a" } };
        _cleanup_free_ char *error = NULL;
        Ext4Writer *w = create();
        ext2_filsys fs;

        apply_ok(w, lower, ELEMENTSOF(lower));
        ck_assert_int_lt(apply(w, entries, ELEMENTSOF(entries), &error), 0);
        ck_assert_ptr_nonnull(error);
        ck_assert_msg(strstr(error, escapes[_i].message_part), "message '%s' lacks '%s'", error,
                      escapes[_i].message_part);
        ck_assert_int_eq(ext4_writer_close(w), 0);
        ck_assert_int_eq(run_e2fsck(image), 0);

        fs = open_fs(image);
        ck_assert_uint_eq(fs_lookup(fs, "after"), 0);
        ck_assert_uint_eq(fs_lookup(fs, "x"), 0);
        ext2fs_close_free(&fs);
}
END_TEST

START_TEST(layer_compressions_detected)
{
        static const TarEntry entries[] = { { 'f', "etc/os-release", "ID=test\n" } };
        int compression = _i;
        _cleanup_free_ void *data = NULL;
        _cleanup_free_ char *error = NULL;
        size_t size = build_layer(entries, ELEMENTSOF(entries), compression, &data);
        Ext4Writer *w = create();
        ext2_filsys fs;

        ck_assert_int_eq(layer_apply_memory(w, data, size, NULL, &error), 0);
        ck_assert_int_eq(ext4_writer_close(w), 0);

        fs = open_fs(image);
        assert_content(fs, "etc/os-release", "ID=test\n");
        ext2fs_close_free(&fs);
}
END_TEST

START_TEST(layer_rejects_garbage)
{
        static const char garbage[] = "this is not a tar archive, not even close to one......";
        _cleanup_free_ char *error = NULL;
        Ext4Writer *w = create();

        ck_assert_int_eq(layer_apply_memory(w, garbage, sizeof(garbage), NULL, &error), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(error, "Failed to open the layer archive"));
        ext4_writer_free(w);
}
END_TEST

START_TEST(layer_long_paths)
{
        char path[6000] = "", component[90];
        TarEntry entries[1] = { { 'f', path, "deep" } };
        _cleanup_free_ char *error = NULL;
        Ext4Writer *w = create();
        ext2_filsys fs;

        for (int i = 0; i < 50; i++) {
                snprintf(component, sizeof(component), "%079d/", i);
                strcat(path, component);
        }
        strcat(path, "f");
        apply_ok(w, entries, 1);

        for (int i = 0; i < 20; i++)
                strcat(path, "/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        ck_assert_int_eq(apply(w, entries, 1, &error), -ENAMETOOLONG);
        ck_assert_ptr_nonnull(strstr(error, "longer than 4095 bytes"));
        ck_assert_int_eq(ext4_writer_close(w), 0);
        ck_assert_int_eq(run_e2fsck(image), 0);

        fs = open_fs(image);
        path[50 * 80 + 1] = '\0';
        assert_content(fs, path, "deep");
        ext2fs_close_free(&fs);
}
END_TEST

START_TEST(layer_thousands_of_entries)
{
        enum { N = 5000 };
        TarEntry *entries = calloc(N + 1, sizeof(TarEntry));
        char(*names)[64] = calloc(N, 64);
        _cleanup_free_ void *data = NULL;
        _cleanup_free_ char *layer = NULL, *error = NULL;
        LayerStats stats = {};
        Ext4Writer *w = create();
        size_t size;
        ext2_filsys fs;

        ck_assert_ptr_nonnull(entries);
        ck_assert_ptr_nonnull(names);
        entries[0] = (TarEntry){ 'd', "big" };
        for (int i = 0; i < N; i++) {
                snprintf(names[i], 64, "big/file-with-a-longer-name-%06d", i);
                entries[i + 1] = (TarEntry){ 'f', names[i], names[i] };
        }
        size = build_layer(entries, N + 1, COMPRESS_ZSTD, &data);
        ck_assert_int_ge(asprintf(&layer, "%s/layer.tar.zst", tmpdir), 0);
        ck_assert_int_eq(write_file_atomic(layer, data, size, 0644), 0);

        ck_assert_int_eq(layer_scan_file(layer, &stats, &error), 0);
        ck_assert_uint_eq(stats.entries, N + 1);
        ck_assert_uint_eq(stats.data_blocks, N);

        ck_assert_int_eq(layer_apply_file(w, layer, NULL, &error), 0);
        ck_assert_int_eq(ext4_writer_close(w), 0);
        ck_assert_int_eq(run_e2fsck(image), 0);

        fs = open_fs(image);
        ck_assert_uint_eq(fs_count_entries(fs, "big"), N);
        assert_content(fs, names[N - 1], names[N - 1]);
        ext2fs_close_free(&fs);
        free(entries);
        free(names);
}
END_TEST

START_TEST(layer_ssh_host_keys_dropped)
{
        static const TarEntry entries[] = {
                { 'f', "etc/ssh/ssh_host_ed25519_key", "secret", 0600 },
                { 'f', "etc/ssh/ssh_host_ed25519_key.pub", "public" },
                { 'f', "etc/ssh/sshd_config", "Port 22\n" },
                { 'f', "etc/ssh/moduli", "m" },
        };
        Ext4Writer *w = create();
        ext2_filsys fs;

        ck_assert_int_eq(layer_drop_ssh_host_keys(w), 0); /* no /etc/ssh yet */
        apply_ok(w, entries, ELEMENTSOF(entries));
        ck_assert_int_eq(layer_drop_ssh_host_keys(w), 0);
        ck_assert_int_eq(ext4_writer_close(w), 0);
        ck_assert_int_eq(run_e2fsck(image), 0);

        fs = open_fs(image);
        ck_assert_uint_eq(fs_count_entries(fs, "etc/ssh"), 2);
        ck_assert_uint_eq(fs_lookup(fs, "etc/ssh/ssh_host_ed25519_key"), 0);
        ck_assert_uint_ne(fs_lookup(fs, "etc/ssh/sshd_config"), 0);
        ext2fs_close_free(&fs);
}
END_TEST

START_TEST(layer_cancel_stops_apply)
{
        static const TarEntry entries[] = { { 'f', "a", "a" } };
        volatile bool cancel = true;
        LayerApplyOptions opts = { .cancel = &cancel };
        _cleanup_free_ void *data = NULL;
        size_t size = build_layer(entries, 1, COMPRESS_NONE, &data);
        Ext4Writer *w = create();

        ck_assert_int_eq(layer_apply_memory(w, data, size, &opts, NULL), -ECANCELED);
        ext4_writer_free(w);
}
END_TEST

static const struct {
        const char *input;
        const char *output; /* NULL: rejected */
} paths[] = {
        { "a/b", "a/b" },
        { "./a/b/", "a/b" },
        { "/a//b/./c", "a/b/c" },
        { "a/../b", "b" },
        { "a/b/../../c", "c" },
        { ".", "" },
        { "./", "" },
        { "/", "" },
        { "a/..", "" },
        { "..", NULL },
        { "../a", NULL },
        { "a/../..", NULL },
        { "/../a", NULL },
        { "a/./../../b", NULL },
        { "...", "..." },
        { "a/..b", "a/..b" },
};

START_TEST(normalize_path_table)
{
        _cleanup_free_ char *out = NULL;
        int r = layer_normalize_path(paths[_i].input, &out);

        if (!paths[_i].output) {
                ck_assert_int_eq(r, -EINVAL);
                return;
        }
        ck_assert_int_eq(r, 0);
        ck_assert_str_eq(out, paths[_i].output);
}
END_TEST

static Suite *layer_suite(void)
{
        Suite *s = suite_create("layer");
        TCase *tc = tcase_create("apply");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, layer_every_entry_type);
        tcase_add_test(tc, layer_whiteouts_hide_lower_entries);
        tcase_add_test(tc, layer_opaque_directory);
        tcase_add_test(tc, layer_opaque_root_keeps_lost_found);
        tcase_add_test(tc, layer_hardlink_into_lower_layer);
        tcase_add_test(tc, layer_owners_above_65535);
        tcase_add_test(tc, layer_setuid_setgid_bits_kept);
        tcase_add_loop_test(tc, layer_capability_sizes, 0, ELEMENTSOF(capabilities));
        tcase_add_test(tc, layer_hardlink_outlives_whiteout);
        tcase_add_test(tc, layer_opaque_directory_with_new_subtree);
        tcase_add_loop_test(tc, layer_rejects_escapes, 0, ELEMENTSOF(escapes));
        tcase_add_loop_test(tc, layer_compressions_detected, COMPRESS_NONE, COMPRESS_ZSTD + 1);
        tcase_add_test(tc, layer_rejects_garbage);
        tcase_add_test(tc, layer_long_paths);
        tcase_add_test(tc, layer_thousands_of_entries);
        tcase_add_test(tc, layer_ssh_host_keys_dropped);
        tcase_add_test(tc, layer_cancel_stops_apply);
        tcase_add_loop_test(tc, normalize_path_table, 0, ELEMENTSOF(paths));
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(layer_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
