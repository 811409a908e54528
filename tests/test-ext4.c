#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "ext4.h"
#include "fileio.h"
#include "macro.h"

#include "test-ext4-util.c"

#define MIB (1024 * 1024)
#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif

static char tmpdir[] = "/tmp/test-ext4-XXXXXX";
static char image[sizeof(tmpdir) + 16];

static void setup(void)
{
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
        snprintf(image, sizeof(image), "%s/fs.ext4", tmpdir);
}

static void teardown(void)
{
        ck_assert_int_eq(rm_rf(tmpdir), 0);
        strcpy(tmpdir, "/tmp/test-ext4-XXXXXX");
}

/* Serves a byte pattern of a given length, with a run of zeros in the middle, in uneven
 * read sizes. */
typedef struct Pattern {
        uint64_t size, pos;
        uint64_t zero_start, zero_end;
} Pattern;

static uint8_t pattern_byte(const Pattern *p, uint64_t pos)
{
        if (pos >= p->zero_start && pos < p->zero_end)
                return 0;
        return (uint8_t)(pos * 7 + pos / 4099 + 1);
}

static ssize_t read_pattern(void *buf, size_t size, void *userdata)
{
        Pattern *p = userdata;
        size_t n = MIN(MIN(size, (size_t)(p->size - p->pos)), (size_t)9000);

        for (size_t i = 0; i < n; i++)
                ((uint8_t *)buf)[i] = pattern_byte(p, p->pos + i);
        p->pos += n;
        return (ssize_t)n;
}

typedef struct Text {
        const char *s;
        size_t pos;
} Text;

static ssize_t read_text(void *buf, size_t size, void *userdata)
{
        Text *t = userdata;
        size_t n = MIN(size, strlen(t->s) - t->pos);

        memcpy(buf, t->s + t->pos, n);
        t->pos += n;
        return (ssize_t)n;
}

static void add_text(Ext4Writer *w, const char *path, const char *content)
{
        Ext4Attrs attrs = { .mode = S_IFREG | 0644 };
        Text t = { content, 0 };

        ck_assert_int_eq(ext4_add_file(w, path, &attrs, read_text, &t), 0);
}

static Ext4Writer *create(uint64_t size, uint64_t inodes)
{
        Ext4Writer *w = NULL;

        ck_assert_int_eq(ext4_writer_create(image, size, inodes, &w), 0);
        return w;
}

START_TEST(create_empty_passes_fsck)
{
        ext2_filsys fs;

        ck_assert_int_eq(ext4_writer_close(create(64 * MIB, 1024)), 0);
        ck_assert_int_eq(run_e2fsck(image), 0);

        fs = open_fs(image);
        ck_assert(ext2fs_has_feature_metadata_csum(fs->super));
        ck_assert(ext2fs_has_feature_extents(fs->super));
        ck_assert(ext2fs_has_feature_journal(fs->super));
        ck_assert(ext2fs_has_feature_dir_index(fs->super));
        ck_assert(!ext2fs_has_feature_inline_data(fs->super));
        ck_assert_uint_eq(fs->blocksize, 4096);
        ck_assert_uint_eq(ext2fs_blocks_count(fs->super), 64 * MIB / 4096);
        ck_assert_uint_ge(fs->super->s_inodes_count, 1024);
        ck_assert_uint_eq(fs_inode(fs, "lost+found").i_mode, LINUX_S_IFDIR | 0700);
        ck_assert_uint_eq(fs_inode(fs, "/").i_mode & LINUX_S_IFMT, LINUX_S_IFDIR);
        ext2fs_close_free(&fs);
}
END_TEST

START_TEST(create_rejects_existing_file)
{
        Ext4Writer *w = NULL;

        ck_assert_int_eq(write_file_atomic(image, "x", 1, 0644), 0);
        ck_assert_int_eq(ext4_writer_create(image, 64 * MIB, 1024, &w), -EEXIST);
        ck_assert_ptr_null(w);
}
END_TEST

START_TEST(entries_of_every_type)
{
        Ext4Writer *w = create(64 * MIB, 1024);
        Pattern big = { .size = 3 * MIB + 123, .zero_start = 8192, .zero_end = 8192 * 20 };
        Ext4Attrs dir = { .mode = S_IFDIR | 0750,
                          .uid = 100000,
                          .gid = 100001,
                          .mtime_sec = 1700000000,
                          .mtime_nsec = 123456789 };
        Ext4Attrs file = { .mode = S_IFREG | 04755, .uid = 0, .gid = 0, .mtime_sec = 5 };
        Ext4Attrs link = { .mode = S_IFLNK | 0777, .mtime_sec = 6 };
        Ext4Attrs chr = { .mode = S_IFCHR | 0666, .rdev = makedev(1, 3) };
        Ext4Attrs blk = { .mode = S_IFBLK | 0660, .rdev = makedev(259, 300) };
        Ext4Attrs fifo = { .mode = S_IFIFO | 0600 };
        Ext4Attrs sock = { .mode = S_IFSOCK | 0600 };
        static const uint8_t capability[20] = { 0x00, 0x00, 0x00, 0x02, 0x00, 0x20 };
        char long_target[300];
        struct ext2_inode_large inode;
        _cleanup_free_ char *content = NULL, *target = NULL, *long_read = NULL, *xattr = NULL,
                            *cap = NULL;
        size_t cap_size = 0, xattr_size = 0;
        ext2_filsys fs;

        memset(long_target, 'x', sizeof(long_target) - 1);
        long_target[sizeof(long_target) - 1] = '\0';

        ck_assert_int_eq(ext4_mkdir(w, "usr", &dir), 0);
        ck_assert_int_eq(ext4_add_file(w, "usr/bin/big", &file, read_pattern, &big), 0);
        ck_assert_int_eq(ext4_add_symlink(w, "bin", "usr/bin", &link), 0);
        ck_assert_int_eq(ext4_add_symlink(w, "long", long_target, &link), 0);
        ck_assert_int_eq(ext4_add_hardlink(w, "usr/big-link", "usr/bin/big"), 0);
        ck_assert_int_eq(ext4_add_node(w, "dev/null", &chr), 0);
        ck_assert_int_eq(ext4_add_node(w, "dev/nvme", &blk), 0);
        ck_assert_int_eq(ext4_add_node(w, "run/fifo", &fifo), 0);
        ck_assert_int_eq(ext4_add_node(w, "run/sock", &sock), 0);
        ck_assert_int_eq(ext4_set_xattr(w, "usr", "user.note", "hello", 5), 0);
        ck_assert_int_eq(ext4_set_xattr(w, "usr/bin/big", "security.capability", capability,
                                        sizeof(capability)),
                         0);
        add_text(w, "etc/hostname", "banger\n");
        ck_assert_int_eq(ext4_writer_close(w), 0);
        ck_assert_int_eq(run_e2fsck(image), 0);

        fs = open_fs(image);
        inode = fs_inode(fs, "usr");
        ck_assert_uint_eq(inode.i_mode, LINUX_S_IFDIR | 0750);
        ck_assert_uint_eq(fs_uid(&inode), 100000);
        ck_assert_uint_eq(inode.i_mtime, 1700000000);
        ck_assert_uint_eq(inode.i_mtime_extra >> 2, 123456789);
        ck_assert_uint_eq(fs_inode(fs, "dev").i_mode, LINUX_S_IFDIR | 0755);

        inode = fs_inode(fs, "usr/bin/big");
        ck_assert_uint_eq(inode.i_mode, LINUX_S_IFREG | 04755);
        ck_assert_uint_eq(inode.i_links_count, 2);
        ck_assert_uint_eq(EXT2_I_SIZE(&inode), big.size);
        /* The zero run became a hole: fewer 512-byte sectors than the size needs. */
        ck_assert_uint_lt(inode.i_blocks, (big.size + 4095) / 4096 * 8);
        content = fs_read(fs, "usr/big-link");
        for (uint64_t i = 0; i < big.size; i++)
                if ((uint8_t)content[i] != pattern_byte(&big, i))
                        ck_abort_msg("byte %llu differs", (unsigned long long)i);

        target = fs_read(fs, "bin");
        ck_assert_str_eq(target, "usr/bin");
        long_read = fs_read(fs, "long");
        ck_assert_str_eq(long_read, long_target);

        inode = fs_inode(fs, "dev/null");
        ck_assert_uint_eq(inode.i_mode, LINUX_S_IFCHR | 0666);
        ck_assert_uint_eq(inode.i_block[0], 0x0103);
        inode = fs_inode(fs, "dev/nvme");
        ck_assert_uint_eq(inode.i_mode, LINUX_S_IFBLK | 0660);
        ck_assert_uint_eq(inode.i_block[1], (300 & 0xff) | (259 << 8) | ((300 & ~0xff) << 12));
        ck_assert_uint_eq(fs_inode(fs, "run/fifo").i_mode, LINUX_S_IFIFO | 0600);
        ck_assert_uint_eq(fs_inode(fs, "run/sock").i_mode, LINUX_S_IFSOCK | 0600);

        xattr = fs_xattr(fs, "usr", "user.note", &xattr_size);
        ck_assert_ptr_nonnull(xattr);
        ck_assert_uint_eq(xattr_size, 5);
        ck_assert_mem_eq(xattr, "hello", 5);
        cap = fs_xattr(fs, "usr/bin/big", "security.capability", &cap_size);
        ck_assert_ptr_nonnull(cap);
        ck_assert_uint_eq(cap_size, sizeof(capability));
        ck_assert_mem_eq(cap, capability, sizeof(capability));
        ext2fs_close_free(&fs);
}
END_TEST

START_TEST(remove_frees_blocks_and_inodes)
{
        Ext4Writer *w = create(64 * MIB, 4096);
        Ext4Attrs attrs = { .mode = S_IFREG | 0644 };
        blk64_t free_blocks;
        uint32_t free_inodes;
        ext2_filsys fs;

        ck_assert_int_eq(ext4_writer_close(w), 0);
        fs = open_fs(image);
        free_blocks = ext2fs_free_blocks_count(fs->super);
        free_inodes = fs->super->s_free_inodes_count;
        ext2fs_close_free(&fs);
        ck_assert_int_eq(unlink(image), 0);

        w = create(64 * MIB, 4096);
        for (int i = 0; i < 300; i++) {
                char path[64];
                Pattern p = { .size = 10000 + i * 100 };

                snprintf(path, sizeof(path), "tree/d%d/f%d", i % 7, i);
                ck_assert_int_eq(ext4_add_file(w, path, &attrs, read_pattern, &p), 0);
                ck_assert_int_eq(ext4_set_xattr(w, path, "user.i", path, strlen(path)), 0);
        }
        ck_assert_int_eq(ext4_add_symlink(w, "tree/long", image, &attrs), 0);
        ck_assert_int_eq(ext4_remove(w, "tree"), 0);
        ck_assert_int_eq(ext4_remove(w, "tree"), -ENOENT);
        ck_assert_int_eq(ext4_writer_close(w), 0);
        ck_assert_int_eq(run_e2fsck(image), 0);

        fs = open_fs(image);
        ck_assert_uint_eq(fs_lookup(fs, "tree"), 0);
        ck_assert_uint_eq(ext2fs_free_blocks_count(fs->super), free_blocks);
        ck_assert_uint_eq(fs->super->s_free_inodes_count, free_inodes);
        ck_assert_uint_eq(fs_inode(fs, "/").i_links_count, 3);
        ext2fs_close_free(&fs);
}
END_TEST

START_TEST(remove_one_hardlink_keeps_other)
{
        Ext4Writer *w = create(64 * MIB, 1024);
        _cleanup_free_ char *content = NULL;
        ext2_filsys fs;

        add_text(w, "a", "shared");
        ck_assert_int_eq(ext4_add_hardlink(w, "d/b", "a"), 0);
        ck_assert_int_eq(ext4_add_hardlink(w, "d/b", "a"), 0);
        ck_assert_int_eq(ext4_remove(w, "a"), 0);
        ck_assert_int_eq(ext4_writer_close(w), 0);
        ck_assert_int_eq(run_e2fsck(image), 0);

        fs = open_fs(image);
        ck_assert_uint_eq(fs_lookup(fs, "a"), 0);
        ck_assert_uint_eq(fs_inode(fs, "d/b").i_links_count, 1);
        content = fs_read(fs, "d/b");
        ck_assert_str_eq(content, "shared");
        ext2fs_close_free(&fs);
}
END_TEST

static bool keep_named_keep(const char *name, void *userdata)
{
        return streq(name, "keep");
}

START_TEST(replace_changes_type)
{
        Ext4Writer *w = create(64 * MIB, 1024);
        Ext4Attrs dir = { .mode = S_IFDIR | 0700 };
        Ext4Attrs dir2 = { .mode = S_IFDIR | 0711, .uid = 5 };
        Ext4Attrs fifo = { .mode = S_IFIFO | 0644 };
        _cleanup_free_ char *content = NULL;
        struct ext2_inode_large inode;
        mode_t type;
        ext2_filsys fs;

        add_text(w, "x/file", "one");
        add_text(w, "x/sub/deep", "two");
        ck_assert_int_eq(ext4_mkdir(w, "x/file", &dir), 0); /* file -> directory */
        add_text(w, "x/sub", "three");                      /* directory tree -> file */
        ck_assert_int_eq(ext4_add_node(w, "x/file2", &fifo), 0);
        add_text(w, "x/file2", "four");                 /* fifo -> file */
        ck_assert_int_eq(ext4_mkdir(w, "x", &dir2), 0); /* existing directory kept */
        ck_assert_int_eq(ext4_stat(w, "x/file", &type), 0);
        ck_assert_uint_eq(type, S_IFDIR);
        ck_assert_int_eq(ext4_stat(w, "x/missing", &type), -ENOENT);
        add_text(w, "x/file/keep", "kept");
        add_text(w, "x/file/drop", "dropped");
        ck_assert_int_eq(ext4_clear_dir(w, "x/file", keep_named_keep, NULL), 0);
        ck_assert_int_eq(ext4_clear_dir(w, "x/sub", NULL, NULL), -ENOTDIR);
        ck_assert_int_eq(ext4_writer_close(w), 0);
        ck_assert_int_eq(run_e2fsck(image), 0);

        fs = open_fs(image);
        ck_assert_uint_eq(fs_inode(fs, "x/file").i_mode, LINUX_S_IFDIR | 0700);
        ck_assert_uint_ne(fs_lookup(fs, "x/file/keep"), 0);
        ck_assert_uint_eq(fs_lookup(fs, "x/file/drop"), 0);
        content = fs_read(fs, "x/sub");
        ck_assert_str_eq(content, "three");
        ck_assert_uint_eq(fs_lookup(fs, "x/sub/deep"), 0);
        ck_assert_uint_eq(fs_inode(fs, "x/file2").i_mode & LINUX_S_IFMT, LINUX_S_IFREG);
        inode = fs_inode(fs, "x");
        ck_assert_uint_eq(inode.i_mode, LINUX_S_IFDIR | 0711);
        ck_assert_uint_eq(fs_uid(&inode), 5);
        ck_assert_uint_eq(fs_count_entries(fs, "x"), 3);
        ext2fs_close_free(&fs);
}
END_TEST

START_TEST(directory_with_thousands_of_entries)
{
        Ext4Writer *w = create(128 * MIB, 16384);
        Ext4Attrs fifo = { .mode = S_IFIFO | 0644 };
        char name[300];
        ext2_filsys fs;

        /* Long names fill a 4 KiB directory block after 15 entries, so the directory is
         * expanded hundreds of times. */
        for (int i = 0; i < 6000; i++) {
                snprintf(name, sizeof(name), "many/%0200d", i);
                ck_assert_int_eq(ext4_add_node(w, name, &fifo), 0);
        }
        for (int i = 0; i < 6000; i += 2) {
                snprintf(name, sizeof(name), "many/%0200d", i);
                ck_assert_int_eq(ext4_remove(w, name), 0);
        }
        ck_assert_int_eq(ext4_writer_close(w), 0);
        ck_assert_int_eq(run_e2fsck(image), 0);

        fs = open_fs(image);
        ck_assert_uint_eq(fs_count_entries(fs, "many"), 3000);
        snprintf(name, sizeof(name), "many/%0200d", 5999);
        ck_assert_uint_ne(fs_lookup(fs, name), 0);
        ext2fs_close_free(&fs);
}
END_TEST

START_TEST(long_paths_and_names)
{
        Ext4Writer *w = create(64 * MIB, 1024);
        char path[4096] = "", name[300];
        ext2_filsys fs;

        /* 60 levels of 60-character components: a 3660-byte path. */
        for (int i = 0; i < 60; i++) {
                snprintf(name, sizeof(name), "%s%059d", i ? "/" : "", i);
                strcat(path, name);
        }
        strcat(path, "/f");
        add_text(w, path, "deep");

        memset(name, 'n', 255);
        name[255] = '\0';
        add_text(w, name, "max");
        strcat(name, "n");
        Text t = { "x", 0 };
        Ext4Attrs attrs = { .mode = S_IFREG | 0644 };
        ck_assert_int_eq(ext4_add_file(w, name, &attrs, read_text, &t), -ENAMETOOLONG);
        ck_assert_int_eq(ext4_add_file(w, "a//b", &attrs, read_text, &t), -EINVAL);
        ck_assert_int_eq(ext4_add_file(w, "/abs", &attrs, read_text, &t), -EINVAL);
        ck_assert_int_eq(ext4_add_file(w, "a/../b", &attrs, read_text, &t), -EINVAL);
        ck_assert_int_eq(ext4_writer_close(w), 0);
        ck_assert_int_eq(run_e2fsck(image), 0);

        fs = open_fs(image);
        ck_assert_uint_ne(fs_lookup(fs, path), 0);
        name[255] = '\0';
        ck_assert_uint_ne(fs_lookup(fs, name), 0);
        ext2fs_close_free(&fs);
}
END_TEST

START_TEST(symlinked_parents_stay_inside)
{
        Ext4Writer *w = create(64 * MIB, 1024);
        Ext4Attrs link = { .mode = S_IFLNK | 0777 };
        Ext4Attrs dir = { .mode = S_IFDIR | 0755 };
        _cleanup_free_ char *a = NULL, *b = NULL;
        ext2_filsys fs;

        ck_assert_int_eq(ext4_mkdir(w, "usr/lib", &dir), 0);
        ck_assert_int_eq(ext4_add_symlink(w, "lib", "usr/lib", &link), 0);
        ck_assert_int_eq(ext4_add_symlink(w, "up", "../../../..", &link), 0);
        ck_assert_int_eq(ext4_add_symlink(w, "abs", "/etc", &link), 0);
        add_text(w, "lib/a", "via link");
        add_text(w, "up/b", "clamped at root");
        ck_assert_int_eq(ext4_mkdir(w, "etc", &dir), 0);
        add_text(w, "abs/c", "absolute");
        add_text(w, "plain", "file");
        {
                Text t = { "x", 0 };
                Ext4Attrs attrs = { .mode = S_IFREG | 0644 };
                ck_assert_int_eq(ext4_add_file(w, "plain/x", &attrs, read_text, &t), -ENOTDIR);
        }
        ck_assert_int_eq(ext4_writer_close(w), 0);
        ck_assert_int_eq(run_e2fsck(image), 0);

        fs = open_fs(image);
        a = fs_read(fs, "usr/lib/a");
        ck_assert_str_eq(a, "via link");
        b = fs_read(fs, "b");
        ck_assert_str_eq(b, "clamped at root");
        ck_assert_uint_ne(fs_lookup(fs, "etc/c"), 0);
        ext2fs_close_free(&fs);
}
END_TEST

START_TEST(hardlink_errors)
{
        Ext4Writer *w = create(64 * MIB, 1024);
        Ext4Attrs dir = { .mode = S_IFDIR | 0755 };

        ck_assert_int_eq(ext4_mkdir(w, "d", &dir), 0);
        ck_assert_int_eq(ext4_add_hardlink(w, "l", "d"), -EPERM);
        ck_assert_int_eq(ext4_add_hardlink(w, "l", "missing"), -ENOENT);
        ck_assert_int_eq(ext4_add_hardlink(w, "l", "d/missing"), -ENOENT);
        add_text(w, "d/f", "x");
        /* Replacing the directory drops the target's last link: the link fails cleanly. */
        ck_assert_int_eq(ext4_add_hardlink(w, "d", "d/f"), -ENOENT);
        ck_assert_int_eq(ext4_writer_close(w), 0);
        ck_assert_int_eq(run_e2fsck(image), 0);
}
END_TEST

START_TEST(full_file_system_reports_enospc)
{
        Ext4Writer *w = create(8 * MIB, 256);
        Ext4Attrs attrs = { .mode = S_IFREG | 0644 };
        Pattern p = { .size = 16 * MIB };

        ck_assert_int_eq(ext4_add_file(w, "big", &attrs, read_pattern, &p), -ENOSPC);
        ext4_writer_free(w);
}
END_TEST

static Suite *ext4_suite(void)
{
        Suite *s = suite_create("ext4");
        TCase *tc = tcase_create("writer");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, create_empty_passes_fsck);
        tcase_add_test(tc, create_rejects_existing_file);
        tcase_add_test(tc, entries_of_every_type);
        tcase_add_test(tc, remove_frees_blocks_and_inodes);
        tcase_add_test(tc, remove_one_hardlink_keeps_other);
        tcase_add_test(tc, replace_changes_type);
        tcase_add_test(tc, directory_with_thousands_of_entries);
        tcase_add_test(tc, long_paths_and_names);
        tcase_add_test(tc, symlinked_parents_stay_inside);
        tcase_add_test(tc, hardlink_errors);
        tcase_add_test(tc, full_file_system_reports_enospc);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(ext4_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
