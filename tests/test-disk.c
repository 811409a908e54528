#include <check.h>
#include <stdbool.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "disk.h"
#include "fileio.h"
#include "macro.h"

#define MIB (1024 * 1024)

/* Each test runs in a directory on the disk-backed /var/tmp and in one on the tmpfs /dev/shm,
 * which has no FICLONE and so takes the copying path. */
static const char *const parents[] = { "/var/tmp", "/dev/shm" };
static char scratch[64];

static void scratch_make(const char *parent)
{
        snprintf(scratch, sizeof(scratch), "%s/test-disk-XXXXXX", parent);
        ck_assert_ptr_nonnull(mkdtemp(scratch));
}

static void scratch_teardown(void)
{
        if (scratch[0])
                rm_rf(scratch);
        scratch[0] = '\0';
}

static bool scratch_is_tmpfs(void)
{
        struct statfs sf;

        ck_assert_int_eq(statfs(scratch, &sf), 0);
        return sf.f_type == TMPFS_MAGIC;
}

static char *scratch_path(const char *name)
{
        char *p;

        ck_assert_int_gt(asprintf(&p, "%s/%s", scratch, name), 0);
        return p;
}

/* Writes len bytes of a pattern that depends on the offset, so misplaced data is caught. */
static void write_pattern(int fd, off_t offset, size_t len)
{
        _cleanup_free_ unsigned char *buf = malloc(len);

        ck_assert_ptr_nonnull(buf);
        for (size_t i = 0; i < len; i++)
                buf[i] = (unsigned char)((offset + i) * 7 + 13);
        ck_assert_int_eq(pwrite(fd, buf, len, offset), (ssize_t)len);
}

typedef struct Extent {
        off_t offset;
        size_t length;
} Extent;

static const struct {
        const char *name;
        off_t size;
        Extent data[3];
} files[] = {
        { "empty", 0, {} },
        { "only a hole", 10 * MIB, {} },
        { "three bytes", 3, { { 0, 3 } } },
        { "data at both ends", 64 * MIB, { { 0, 4096 }, { 64 * MIB - 4096, 4096 } } },
        { "data in the middle", 64 * MIB, { { 16 * MIB, MIB } } },
        { "unaligned tail", 8 * MIB + 123, { { 4096, 10000 }, { 8 * MIB, 123 } } },
        { "dense", 3 * MIB, { { 0, 3 * MIB } } },
};

static void make_source(const char *path, size_t i)
{
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, files[i].size), 0);
        for (size_t e = 0; e < ELEMENTSOF(files[i].data) && files[i].data[e].length; e++)
                write_pattern(fd, files[i].data[e].offset, files[i].data[e].length);
        ck_assert_int_eq(fsync(fd), 0);
}

static void assert_same_content(const char *a, const char *b)
{
        _cleanup_fclose_ FILE *fa = fopen(a, "re"), *fb = fopen(b, "re");
        static char ba[65536], bb[65536];
        size_t na, nb;

        ck_assert_ptr_nonnull(fa);
        ck_assert_ptr_nonnull(fb);
        do {
                na = fread(ba, 1, sizeof(ba), fa);
                nb = fread(bb, 1, sizeof(bb), fb);
                ck_assert_uint_eq(na, nb);
                ck_assert_int_eq(memcmp(ba, bb, na), 0);
        } while (na > 0);
}

static void assert_no_temporary_files(void)
{
        DIR *d = opendir(scratch);
        struct dirent *de;

        ck_assert_ptr_nonnull(d);
        while ((de = readdir(d)))
                ck_assert_msg(!strneq(de->d_name, ".#", 2), "left behind: %s", de->d_name);
        closedir(d);
}

START_TEST(disk_clone_keeps_holes_and_content)
{
        size_t file = _i % ELEMENTSOF(files);
        _cleanup_free_ char *src = NULL, *dst = NULL;
        struct stat s, d;
        int r;

        scratch_make(parents[_i / ELEMENTSOF(files)]);
        src = scratch_path("source.img");
        dst = scratch_path("clone.img");
        make_source(src, file);

        r = disk_clone(src, dst);
        ck_assert_msg(r >= 0, "'%s' in %s: %s", files[file].name, scratch, strerror(-r));
        if (scratch_is_tmpfs())
                ck_assert_int_eq(r, 0); /* copied, not cloned */

        ck_assert_int_eq(stat(src, &s), 0);
        ck_assert_int_eq(stat(dst, &d), 0);
        ck_assert_int_eq(d.st_size, s.st_size);
        ck_assert_int_eq(d.st_mode & 07777, 0640);
        /* The clone allocates no more blocks than the source, so its holes stayed holes. */
        ck_assert_msg(d.st_blocks <= s.st_blocks, "'%s': %lld blocks, source has %lld",
                      files[file].name, (long long)d.st_blocks, (long long)s.st_blocks);
        assert_same_content(src, dst);
        assert_no_temporary_files();
}
END_TEST

START_TEST(disk_clone_replaces_existing)
{
        _cleanup_free_ char *src = NULL, *dst = NULL, *text = NULL;
        size_t size;

        scratch_make(parents[_i]);
        src = scratch_path("new.img");
        dst = scratch_path("old.img");
        ck_assert_int_eq(write_file_atomic(src, "new contents", 12, 0600), 0);
        ck_assert_int_eq(write_file_atomic(dst, "old contents that are longer", 28, 0600), 0);

        ck_assert_int_ge(disk_clone(src, dst), 0);
        ck_assert_int_eq(read_full_file(dst, 1024, &text, &size), 0);
        ck_assert_uint_eq(size, 12);
        ck_assert_str_eq(text, "new contents");
        assert_no_temporary_files();
}
END_TEST

START_TEST(disk_clone_errors)
{
        _cleanup_free_ char *missing = NULL, *dst = NULL, *sub = NULL, *src = NULL, *nodir = NULL;
        struct stat st;

        scratch_make(parents[_i]);
        missing = scratch_path("missing.img");
        dst = scratch_path("clone.img");
        sub = scratch_path("subdir");
        src = scratch_path("source.img");
        nodir = scratch_path("no-such-dir/clone.img");
        ck_assert_int_eq(mkdir(sub, 0755), 0);
        ck_assert_int_eq(write_file_atomic(src, "data", 4, 0600), 0);

        ck_assert_int_eq(disk_clone(missing, dst), -ENOENT);
        ck_assert_int_eq(disk_clone(sub, dst), -EISDIR);
        ck_assert_int_eq(disk_clone("/dev/null", dst), -EBADFD);
        ck_assert_int_eq(disk_clone(src, nodir), -ENOENT);
        ck_assert_int_eq(disk_clone("", dst), -EINVAL);
        ck_assert_int_eq(disk_clone(src, ""), -EINVAL);
        ck_assert_int_eq(stat(dst, &st), -1);
        ck_assert_int_eq(errno, ENOENT);
        assert_no_temporary_files();
}
END_TEST

int main(void)
{
        Suite *s = suite_create("disk");
        TCase *tc = tcase_create("clone");
        SRunner *sr;
        int failed;

        tcase_add_checked_fixture(tc, NULL, scratch_teardown);
        tcase_add_loop_test(tc, disk_clone_keeps_holes_and_content, 0,
                            ELEMENTSOF(files) * ELEMENTSOF(parents));
        tcase_add_loop_test(tc, disk_clone_replaces_existing, 0, ELEMENTSOF(parents));
        tcase_add_loop_test(tc, disk_clone_errors, 0, ELEMENTSOF(parents));
        suite_add_tcase(s, tc);

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
