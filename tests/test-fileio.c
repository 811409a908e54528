#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"

static char tmpdir[] = "/tmp/test-fileio-XXXXXX";

static void setup(void)
{
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
        ck_assert_int_eq(rm_rf(tmpdir), 0);
        strcpy(tmpdir, "/tmp/test-fileio-XXXXXX");
}

static size_t count_entries(const char *dir)
{
        DIR *d = opendir(dir);
        struct dirent *de;
        size_t n = 0;

        ck_assert_ptr_nonnull(d);
        while ((de = readdir(d)))
                if (de->d_name[0] != '.' || (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")))
                        n++;
        closedir(d);
        return n;
}

START_TEST(atomic_write_replaces_content)
{
        _cleanup_free_ char *path = NULL, *data = NULL;
        size_t size;
        struct stat st;

        ck_assert_int_ge(asprintf(&path, "%s/record.json", tmpdir), 0);
        ck_assert_int_eq(write_file_atomic(path, "first", 5, 0644), 0);
        ck_assert_int_eq(write_file_atomic(path, "second!", 7, 0600), 0);

        ck_assert_int_eq(read_full_file(path, 1024, &data, &size), 0);
        ck_assert_uint_eq(size, 7);
        ck_assert_str_eq(data, "second!");
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0600);
        /* No temporary sibling is left behind. */
        ck_assert_uint_eq(count_entries(tmpdir), 1);
}
END_TEST

START_TEST(atomic_write_rejects_slash_in_name)
{
        ck_assert_int_eq(write_file_atomic_at(AT_FDCWD, "a/b", "x", 1, 0644), -EINVAL);
}
END_TEST

START_TEST(read_full_file_enforces_max)
{
        _cleanup_free_ char *path = NULL, *data = NULL;

        ck_assert_int_ge(asprintf(&path, "%s/big", tmpdir), 0);
        ck_assert_int_eq(write_file_atomic(path, "0123456789", 10, 0644), 0);
        ck_assert_int_eq(read_full_file(path, 5, &data, NULL), -EFBIG);
        ck_assert_ptr_null(data);
}
END_TEST

static const struct {
        const char *content;
        size_t max_size;
        const char *expected; /* NULL when the call fails */
        int error;
} tails[] = {
        { "qemu: could not open kernel\n", 300, "qemu: could not open kernel", 0 },
        { "line one\nline two\n", 300, "line one; line two", 0 },
        { "first line is long\nsecond\nthird\n", 12, "third", 0 },
        { "first line is long\nsecond\nthird\n", 14, "second; third", 0 },
        { "abcdefghij\nklm\n", 6, "klm", 0 },
        { "no newline in the tail at all", 8, "l at all", 0 },
        { "tab\there\r\n", 300, "tab here", 0 },
        { "bad \x01\xff bytes\n", 300, "bad ?? bytes", 0 },
        { "  \n\n\t\n", 300, NULL, -ENODATA },
        { "", 300, NULL, -ENODATA },
};

START_TEST(read_file_tail_printable_table)
{
        _cleanup_free_ char *path = NULL, *text = NULL;
        int r;

        ck_assert_int_ge(asprintf(&path, "%s/log", tmpdir), 0);
        ck_assert_int_eq(
                write_file_atomic(path, tails[_i].content, strlen(tails[_i].content), 0644), 0);
        r = read_file_tail_printable(path, tails[_i].max_size, &text);
        if (!tails[_i].expected) {
                ck_assert_int_eq(r, tails[_i].error);
                ck_assert_ptr_null(text);
                return;
        }
        ck_assert_int_eq(r, 0);
        ck_assert_str_eq(text, tails[_i].expected);
        ck_assert_uint_le(strlen(text), tails[_i].max_size * 2);
}
END_TEST

START_TEST(read_file_tail_printable_missing)
{
        _cleanup_free_ char *path = NULL, *text = NULL;

        ck_assert_int_ge(asprintf(&path, "%s/absent", tmpdir), 0);
        ck_assert_int_eq(read_file_tail_printable(path, 300, &text), -ENOENT);
        ck_assert_ptr_null(text);
}
END_TEST

START_TEST(mkdir_p_and_rm_rf_tree)
{
        _cleanup_free_ char *deep = NULL, *top = NULL, *link = NULL;
        struct stat st;

        ck_assert_int_ge(asprintf(&top, "%s/a", tmpdir), 0);
        ck_assert_int_ge(asprintf(&deep, "%s/a/b/c", tmpdir), 0);
        ck_assert_int_ge(asprintf(&link, "%s/a/b/escape", tmpdir), 0);
        ck_assert_int_eq(mkdir_p(deep, 0755), 0);
        ck_assert_int_eq(mkdir_p(deep, 0755), 0);
        ck_assert_int_eq(stat(deep, &st), 0);
        ck_assert(S_ISDIR(st.st_mode));

        /* rm_rf must remove the link, not what it points to. */
        ck_assert_int_eq(symlink(tmpdir, link), 0);
        ck_assert_int_eq(rm_rf(top), 0);
        ck_assert_int_eq(stat(top, &st), -1);
        ck_assert_int_eq(stat(tmpdir, &st), 0);
        ck_assert_int_eq(rm_rf(top), 0);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("fileio");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, atomic_write_replaces_content);
        tcase_add_test(tc, atomic_write_rejects_slash_in_name);
        tcase_add_test(tc, read_full_file_enforces_max);
        tcase_add_test(tc, mkdir_p_and_rm_rf_tree);
        tcase_add_loop_test(tc, read_file_tail_printable_table, 0, ELEMENTSOF(tails));
        tcase_add_test(tc, read_file_tail_printable_missing);
        suite_add_tcase(s, tc);

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
