#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "name.h"

static const struct {
        const char *name;
        int expected;
        const char *message_part; /* must appear in the message when the name is rejected */
} vm_names[] = {
        { "dev1", 0, NULL },
        { "a", 0, NULL },
        { "0", 0, NULL },
        { "web-01", 0, NULL },
        { "a-b-c-d", 0, NULL },
        { "123456789012345678901234567890123456789012345678901234567890123", 0, NULL },
        { "1234567890123456789012345678901234567890123456789012345678901234", -EINVAL,
          "longer than 63" },
        { "", -EINVAL, "empty" },
        { "Dev1", -EINVAL, "use lower case" },
        { "DEV", -EINVAL, "use lower case" },
        { "-dev", -EINVAL, "starts or ends with '-'" },
        { "dev-", -EINVAL, "starts or ends with '-'" },
        { "-", -EINVAL, "starts or ends with '-'" },
        { "dev_1", -EINVAL, "a-z, 0-9" },
        { "dev.1", -EINVAL, "a-z, 0-9" },
        { "dev 1", -EINVAL, "a-z, 0-9" },
        { "dev/1", -EINVAL, "a-z, 0-9" },
        { "../x", -EINVAL, "a-z, 0-9" },
        { "d\xc3\xa9v", -EINVAL, "a-z, 0-9" },
        { "dev\n", -EINVAL, "a-z, 0-9" },
};

START_TEST(vm_name_table)
{
        _cleanup_free_ char *message = NULL;
        int r = vm_name_check(vm_names[_i].name, &message);

        ck_assert_msg(r == vm_names[_i].expected, "'%s': got %d, expected %d", vm_names[_i].name, r,
                      vm_names[_i].expected);
        if (vm_names[_i].expected == 0) {
                ck_assert_ptr_null(message);
                return;
        }
        ck_assert_ptr_nonnull(message);
        ck_assert_msg(strstr(message, vm_names[_i].message_part), "message '%s' lacks '%s'",
                      message, vm_names[_i].message_part);
        if (vm_names[_i].name[0] != '\0')
                ck_assert_msg(strstr(message, vm_names[_i].name), "message '%s' lacks the name",
                              message);
}
END_TEST

START_TEST(vm_name_null_message_allowed)
{
        ck_assert_int_eq(vm_name_check("BAD", NULL), -EINVAL);
        ck_assert_int_eq(vm_name_check(NULL, NULL), -EINVAL);
}
END_TEST

static const struct {
        const char *name;
        int expected;
} kernel_names[] = {
        { "6.1.0-28-cloud-amd64", 0 },
        { "Linux_6.1+deb12", 0 },
        { "a", 0 },
        { "_x", 0 },
        { "+x", 0 },
        { "a-", 0 },
        { "a.", 0 },
        { ".hidden", -EINVAL },
        { "-x", -EINVAL },
        { "--help", -EINVAL },
        { "-", -EINVAL },
        { "", -EINVAL },
        { ".", -EINVAL },
        { "..", -EINVAL },
        { "a/b", -EINVAL },
        { "a b", -EINVAL },
        { "a:b", -EINVAL },
        { "k\xc3\xa9", -EINVAL },
};

START_TEST(kernel_name_table)
{
        _cleanup_free_ char *message = NULL;
        int r = kernel_name_check(kernel_names[_i].name, &message);

        ck_assert_msg(r == kernel_names[_i].expected, "'%s': got %d", kernel_names[_i].name, r);
        if (r < 0)
                ck_assert_ptr_nonnull(message);
}
END_TEST

START_TEST(kernel_name_leading_dash_message)
{
        _cleanup_free_ char *message = NULL;

        ck_assert_int_eq(kernel_name_check("-x", &message), -EINVAL);
        ck_assert_ptr_nonnull(strstr(message, "'-x'"));
        ck_assert_ptr_nonnull(strstr(message, "must start with a letter, a digit"));
}
END_TEST

START_TEST(kernel_name_length_limit)
{
        char name[KERNEL_NAME_MAX + 2];

        memset(name, 'k', sizeof(name) - 1);
        name[sizeof(name) - 1] = '\0';
        ck_assert_int_eq(kernel_name_check(name, NULL), -EINVAL);

        name[KERNEL_NAME_MAX] = '\0';
        ck_assert_int_eq(kernel_name_check(name, NULL), 0);
}
END_TEST

static const struct {
        const char *name;
        const char *escaped;
} escapes[] = {
        { "dev1", "dev1" },
        { "docker.io/library/busybox:latest", "docker.io%2Flibrary%2Fbusybox:latest" },
        { "127.0.0.1:5000/b@sha256:ab", "127.0.0.1:5000%2Fb@sha256:ab" },
        { ".hidden", "%2Ehidden" },
        { "..", "%2E." },
        { "a%b", "a%25b" },
        { "a b", "a%20b" },
        { "\xc3\xa9", "%C3%A9" },
        { "", "" },
};

START_TEST(name_escape_table)
{
        _cleanup_free_ char *e = NULL, *u = NULL;

        ck_assert_int_eq(name_escape(escapes[_i].name, &e), 0);
        ck_assert_str_eq(e, escapes[_i].escaped);
        ck_assert_ptr_null(strchr(e, '/'));
        ck_assert_int_eq(name_unescape(e, &u), 0);
        ck_assert_str_eq(u, escapes[_i].name);
}
END_TEST

static const char *const bad_escapes[] = { "%", "%2", "%G0", "a%0", "%00", "%zz" };

START_TEST(name_unescape_rejects_malformed)
{
        char *u = NULL;

        ck_assert_int_eq(name_unescape(bad_escapes[_i], &u), -EINVAL);
        ck_assert_ptr_null(u);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("name");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        tcase_add_loop_test(tc, vm_name_table, 0, ELEMENTSOF(vm_names));
        tcase_add_test(tc, vm_name_null_message_allowed);
        tcase_add_loop_test(tc, kernel_name_table, 0, ELEMENTSOF(kernel_names));
        tcase_add_test(tc, kernel_name_length_limit);
        tcase_add_test(tc, kernel_name_leading_dash_message);
        tcase_add_loop_test(tc, name_escape_table, 0, ELEMENTSOF(escapes));
        tcase_add_loop_test(tc, name_unescape_rejects_malformed, 0, ELEMENTSOF(bad_escapes));
        suite_add_tcase(s, tc);

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
