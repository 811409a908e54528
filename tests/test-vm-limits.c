#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "vm-limits.h"

static const struct {
        long host_cpus;
        unsigned expected;
} vcpus_limits[] = {
        { 1, 4 },    { 2, 8 },      { 16, 64 }, { 63, 252 },
        { 64, 255 }, { 1024, 255 }, { 0, 4 },   { -1, 4 },
};

START_TEST(vcpus_limit_table)
{
        ck_assert_uint_eq(vm_vcpus_limit(vcpus_limits[_i].host_cpus), vcpus_limits[_i].expected);
}
END_TEST

static const struct {
        unsigned vcpus;
        unsigned memory_mib;
        int expected;
        const char *message_part; /* must appear in the message when rejected */
} requests[] = {
        /* Host: 2 CPUs, 4096 MiB. */
        { 1, 64, 0, NULL },
        { 8, 4096, 0, NULL },
        { 0, 512, -EINVAL, "Invalid vcpus 0 for VM 'vm1': pass 1 to 8" },
        { 9, 512, -EINVAL, "Invalid vcpus 9 for VM 'vm1': pass 1 to 8" },
        { 1000, 512, -EINVAL, "pass 1 to 8" },
        { 1, 63, -EINVAL, "Invalid memory-mib 63 for VM 'vm1': pass at least 64" },
        { 1, 4097, -EINVAL, "Invalid memory-mib 4097 for VM 'vm1': the host has 4096 MiB" },
        { 1, 4000000, -EINVAL, "pass 64 to 4096" },
};

START_TEST(resources_check_table)
{
        _cleanup_free_ char *message = NULL;
        int r = vm_resources_check("vm1", requests[_i].vcpus, requests[_i].memory_mib, 2, 4096,
                                   &message);

        ck_assert_int_eq(r, requests[_i].expected);
        if (!requests[_i].message_part) {
                ck_assert_ptr_null(message);
                return;
        }
        ck_assert_ptr_nonnull(message);
        ck_assert_msg(strstr(message, requests[_i].message_part), "message '%s' lacks '%s'",
                      message, requests[_i].message_part);
}
END_TEST

START_TEST(resources_check_null_message)
{
        ck_assert_int_eq(vm_resources_check("vm1", 0, 512, 2, 4096, NULL), -EINVAL);
        ck_assert_int_eq(vm_resources_check("vm1", 1, 512, 2, 4096, NULL), 0);
}
END_TEST

START_TEST(host_resources_positive)
{
        long cpus = 0;
        uint64_t memory_mib = 0;

        ck_assert_int_eq(vm_host_resources(&cpus, &memory_mib), 0);
        ck_assert_int_ge(cpus, 1);
        ck_assert_uint_ge(memory_mib, 1);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("vm-limits");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        tcase_add_loop_test(tc, vcpus_limit_table, 0, ELEMENTSOF(vcpus_limits));
        tcase_add_loop_test(tc, resources_check_table, 0, ELEMENTSOF(requests));
        tcase_add_test(tc, resources_check_null_message);
        tcase_add_test(tc, host_resources_positive);
        suite_add_tcase(s, tc);

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
