#include <check.h>
#include <stdlib.h>

#include "macro.h"
#include "strv.h"

START_TEST(strv_extend_and_length)
{
        _cleanup_strv_free_ char **l = NULL;

        ck_assert_int_eq(strv_length(l), 0);
        ck_assert_int_eq(strv_extend(&l, "a"), 0);
        ck_assert_int_eq(strv_extend(&l, "b"), 0);
        ck_assert_int_eq(strv_length(l), 2);
        ck_assert_str_eq(l[0], "a");
        ck_assert_str_eq(l[1], "b");
        ck_assert_ptr_null(l[2]);
}
END_TEST

START_TEST(strv_contains_and_copy)
{
        _cleanup_strv_free_ char **l = NULL, **c = NULL;

        ck_assert_int_eq(strv_extend(&l, "x"), 0);
        ck_assert(strv_contains(l, "x"));
        ck_assert(!strv_contains(l, "y"));

        c = strv_copy(l);
        ck_assert_ptr_nonnull(c);
        ck_assert_int_eq(strv_length(c), 1);
        ck_assert_str_eq(c[0], "x");
        ck_assert_ptr_ne(c[0], l[0]);
}
END_TEST

START_TEST(strv_copy_of_null_is_empty)
{
        _cleanup_strv_free_ char **c = strv_copy(NULL);

        ck_assert_ptr_nonnull(c);
        ck_assert_ptr_null(c[0]);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("strv");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        tcase_add_test(tc, strv_extend_and_length);
        tcase_add_test(tc, strv_contains_and_copy);
        tcase_add_test(tc, strv_copy_of_null_is_empty);
        suite_add_tcase(s, tc);

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
