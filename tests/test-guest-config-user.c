#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "guest-user.h"
#include "macro.h"

static char root[] = "/tmp/banger-test-guest-user.XXXXXX";

static void write_root_file(const char *name, const char *text)
{
        _cleanup_free_ char *path = NULL;

        ck_assert_int_ge(asprintf(&path, "%s%s", root, name), 0);
        ck_assert_int_eq(write_file_atomic(path, text, strlen(text), 0644), 0);
}

static void setup(void)
{
        _cleanup_free_ char *etc = NULL;

        ck_assert_ptr_nonnull(mkdtemp(root));
        ck_assert_int_ge(asprintf(&etc, "%s/etc", root), 0);
        ck_assert_int_eq(mkdir_p(etc, 0755), 0);
        write_root_file("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
                                       "# a comment line\n"
                                       "broken line without fields\n"
                                       "app:x:1000:1001:App:/home/app:/bin/sh\n"
                                       "nogid:x:1002::No group:/:/bin/sh\n"
                                       "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
                                       "nohome:x:1003:1003:No home::/bin/sh\n"
                                       "relhome:x:1004:1004:Relative home:home/rel:/bin/sh\n"
                                       "short:x:1005:1005\n");
        write_root_file("/etc/group", "root:x:0:\n"
                                      "staff:x:50:app\n"
                                      "appgroup:x:1001:\n");
}

static void teardown(void)
{
        (void)rm_rf(root);
        memcpy(root + sizeof(root) - 7, "XXXXXX", 6);
}

static const struct {
        const char *spec;
        unsigned uid;
        unsigned gid;
} good[] = {
        { NULL, 0, 0 },
        { "", 0, 0 },
        { "root", 0, 0 },
        { "app", 1000, 1001 },
        { "1000", 1000, 1001 }, /* listed uid: group from passwd */
        { "4242", 4242, 0 },    /* unlisted uid: gid 0 */
        { "app:staff", 1000, 50 },
        { "app:7", 1000, 7 },
        { "4242:staff", 4242, 50 },
        { "4242:4343", 4242, 4343 },
        { "nobody", 65534, 65534 },
        { "nogid", 1002, 0 },
};

START_TEST(test_resolve_good)
{
        uid_t uid = 99;
        gid_t gid = 99;
        int r;

        r = guest_user_resolve(root, good[_i].spec, &uid, &gid);
        ck_assert_msg(r == 0, "'%s': expected success, got %d", strempty(good[_i].spec), r);
        ck_assert_msg(uid == good[_i].uid, "'%s': expected uid %u, got %u", strempty(good[_i].spec),
                      good[_i].uid, (unsigned)uid);
        ck_assert_msg(gid == good[_i].gid, "'%s': expected gid %u, got %u", strempty(good[_i].spec),
                      good[_i].gid, (unsigned)gid);
}
END_TEST

static const struct {
        const char *spec;
        int error;
} bad
        [] = {
                { "ghost", -ESRCH },      { "app:ghosts", -ESRCH }, { "comment", -ESRCH },
                { ":", -EINVAL },         { "app:", -EINVAL },      { ":staff", -EINVAL },
                { "4294967295", -ESRCH }, /* (uid_t)-1 is not an id, so it is looked up as a name */
                { "-1", -ESRCH },
        };

START_TEST(test_resolve_bad)
{
        uid_t uid = 99;
        gid_t gid = 99;
        int r;

        r = guest_user_resolve(root, bad[_i].spec, &uid, &gid);
        ck_assert_msg(r == bad[_i].error, "'%s': expected %d, got %d", bad[_i].spec, bad[_i].error,
                      r);
        ck_assert_uint_eq(uid, 99);
        ck_assert_uint_eq(gid, 99);
}
END_TEST

START_TEST(test_resolve_without_passwd)
{
        uid_t uid;
        gid_t gid;

        ck_assert_int_eq(guest_user_resolve("/nonexistent-root", "app", &uid, &gid), -ESRCH);
        ck_assert_int_eq(guest_user_resolve("/nonexistent-root", "33:34", &uid, &gid), 0);
        ck_assert_uint_eq(uid, 33);
        ck_assert_uint_eq(gid, 34);
}
END_TEST

static const struct {
        unsigned uid;
        const char *home; /* NULL for an error */
        int error;
} homes[] = {
        { 0, "/root", 0 },       { 1000, "/home/app", 0 },
        { 1002, "/", 0 },        { 65534, "/nonexistent", 0 },
        { 4242, NULL, -ESRCH },  { 1003, NULL, -EINVAL },
        { 1004, NULL, -EINVAL }, { 1005, NULL, -EINVAL },
};

START_TEST(test_home)
{
        _cleanup_free_ char *home = NULL;

        ck_assert_int_eq(guest_user_home(root, homes[_i].uid, &home), homes[_i].error);
        if (homes[_i].home)
                ck_assert_str_eq(home, homes[_i].home);
        else
                ck_assert_ptr_null(home);
}
END_TEST

START_TEST(test_home_without_passwd)
{
        _cleanup_free_ char *home = NULL;

        ck_assert_int_eq(guest_user_home("/nonexistent-root", 0, &home), -ESRCH);
        ck_assert_ptr_null(home);
}
END_TEST

static Suite *guest_user_suite(void)
{
        Suite *s = suite_create("guest-config-user");
        TCase *tc = tcase_create("resolve");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_loop_test(tc, test_resolve_good, 0, ELEMENTSOF(good));
        tcase_add_loop_test(tc, test_resolve_bad, 0, ELEMENTSOF(bad));
        tcase_add_test(tc, test_resolve_without_passwd);
        tcase_add_loop_test(tc, test_home, 0, ELEMENTSOF(homes));
        tcase_add_test(tc, test_home_without_passwd);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(guest_user_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
