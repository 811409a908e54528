#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "firecracker.h"
#include "macro.h"

/* Boot arguments */

static char long_args[FIRECRACKER_BOOT_ARGS_MAX + 2];
static char many_init_args[512];
static char long_init_arg[512];

static void build_hard_inputs(void)
{
        size_t n;

        /* console=ttyS0 followed by padding up to one byte over the limit. */
        strcpy(long_args, "console=ttyS0 ");
        n = strlen(long_args);
        memset(long_args + n, 'a', sizeof(long_args) - 1 - n);
        long_args[sizeof(long_args) - 1] = '\0';

        strcpy(many_init_args, "console=ttyS0 --");
        for (unsigned i = 0; i <= FIRECRACKER_INIT_ARGS_MAX; i++) {
                n = strlen(many_init_args);
                snprintf(many_init_args + n, sizeof(many_init_args) - n, " a%u", i);
        }

        strcpy(long_init_arg, "console=ttyS0 -- ");
        n = strlen(long_init_arg);
        memset(long_init_arg + n, 'x', FIRECRACKER_INIT_ARG_LENGTH_MAX + 1);
        long_init_arg[n + FIRECRACKER_INIT_ARG_LENGTH_MAX + 1] = '\0';
}

static const struct {
        const char *args;
        int result;
        const char *token; /* expected in the message */
} boot_args_cases[] = {
        { "console=ttyS0 reboot=k panic=1 pci=off", 0, NULL },
        { "console=ttyS0 root=/dev/vda rw", 0, NULL },
        { "  console=ttyS0   quiet  ", 0, NULL },
        { "console=ttyS0 -- /sbin/init --log-level=debug", 0, NULL },
        { "console=ttyS0 -- --", -EINVAL, "'--'" },
        { "console=ttyS0 -- a -- b", -EINVAL, "a second '--'" },
        { "console=ttyS0 root=/dev/vda root=/dev/vdb", -EINVAL, "'root=/dev/vdb'" },
        { "root= console=ttyS0 root=/dev/vda", -EINVAL, "after 'root='" },
        { "console=ttyS0 -- root=/dev/vda root=/dev/vdb", 0, NULL },
        { "reboot=k panic=1", -EINVAL, "add console=ttyS0" },
        { "", -EINVAL, "no console=" },
        { "console= panic=1", -EINVAL, "'console='" },
        { "console=null", -EINVAL, "'console=null'" },
        { "console=none", -EINVAL, "'console=none'" },
        { "console=ttyS0 8250.nr_uarts=0", -EINVAL, "'8250.nr_uarts=0'" },
        { "console=ttyS0 8250.nr_uarts=1", 0, NULL },
        { "console=ttyS0 init=\"/bin/sh -c x\"", 0, NULL },
        { "console=ttyS0 init=\"/bin/sh", -EINVAL, "'init=\"/bin/sh'" },
        { "console=ttyS0\tquiet", -EINVAL, "byte 0x09 at offset 13" },
        { "console=ttyS0 quiet\n", -EINVAL, "byte 0x0a at offset 19" },
        { "console=ttyS0 \xc3\xa9", -EINVAL, "byte 0xc3 at offset 14" },
        { long_args, -EINVAL, "2048 bytes, more than the maximum of 2047" },
        { many_init_args, -EINVAL, "'a32': init argument 33" },
        { long_init_arg, -EINVAL, "an init argument of 257 bytes" },
};

START_TEST(test_boot_args_table)
{
        _cleanup_free_ char *error = NULL;
        int r;

        build_hard_inputs();
        r = firecracker_boot_args_validate(boot_args_cases[_i].args, &error);
        ck_assert_msg(r == boot_args_cases[_i].result, "case %d: got %d (%s)", _i, r,
                      strempty(error));
        if (boot_args_cases[_i].token) {
                ck_assert_ptr_nonnull(error);
                ck_assert_msg(strstr(error, boot_args_cases[_i].token),
                              "case %d: message '%s' lacks '%s'", _i, error,
                              boot_args_cases[_i].token);
        } else
                ck_assert_ptr_null(error);
}
END_TEST

START_TEST(test_boot_args_limit_exact)
{
        _cleanup_free_ char *error = NULL;

        build_hard_inputs();
        long_args[FIRECRACKER_BOOT_ARGS_MAX] = '\0';
        ck_assert_int_eq(firecracker_boot_args_validate(long_args, &error), 0);
        ck_assert_ptr_null(error);

        /* 32 init arguments are accepted, the 33rd is not (table above). */
        char *p = strstr(many_init_args, " a32");
        ck_assert_ptr_nonnull(p);
        *p = '\0';
        ck_assert_int_eq(firecracker_boot_args_validate(many_init_args, &error), 0);
}
END_TEST

/* Responses */

static const struct {
        long status;
        const char *body;
        int result;
        const char *message; /* expected in the message */
} response_cases[] = {
        { 204, "", 0, NULL },
        { 200, "{\"id\": \"x\"}", 0, NULL },
        { 400, "{\"fault_message\": \"Invalid kernel path\"}", -EINVAL,
          "Firecracker rejected PUT /boot-source (HTTP 400): Invalid kernel path" },
        { 500, "{\"fault_message\": \"boom\"}\r\n", -EIO, "(HTTP 500): boom" },
        { 400, "{\"fault_message\": 7}", -EINVAL, "without a fault_message, body: " },
        { 404, "", -EIO, "(HTTP 404) with an empty body" },
        { 400, "not json", -EINVAL, "body: 'not json'" },
        { 400, "{\"fault_message\": \"a\"} trailing", -EINVAL, "without a fault_message" },
        { 400, "{\"fault_message\": \"line\\nbreak\"}", -EINVAL, ": line?break" },
        { 400, "[\"fault_message\"]", -EINVAL, "without a fault_message" },
        { 0, "", -EIO, "(HTTP 0)" },
};

START_TEST(test_response_table)
{
        const char *body = response_cases[_i].body;
        _cleanup_free_ char *error = NULL;
        int r;

        r = firecracker_response_check("PUT", "/boot-source", response_cases[_i].status, body,
                                       strlen(body), &error);
        ck_assert_msg(r == response_cases[_i].result, "case %d: got %d", _i, r);
        if (response_cases[_i].message) {
                ck_assert_ptr_nonnull(error);
                ck_assert_msg(strstr(error, response_cases[_i].message),
                              "case %d: message '%s' lacks '%s'", _i, error,
                              response_cases[_i].message);
        } else
                ck_assert_ptr_null(error);
}
END_TEST

START_TEST(test_response_raw_body_shortened)
{
        _cleanup_free_ char *error = NULL;
        char body[1000];

        memset(body, 'b', sizeof(body));
        ck_assert_int_eq(firecracker_response_check("GET", "/", 502, body, sizeof(body), &error),
                         -EIO);
        ck_assert_ptr_nonnull(error);
        ck_assert_ptr_nonnull(strstr(error, "bbb...'"));
        ck_assert_uint_lt(strlen(error), 400);
}
END_TEST

START_TEST(test_response_too_large)
{
        _cleanup_free_ char *error = NULL;
        static char body[FIRECRACKER_RESPONSE_MAX + 1];

        ck_assert_int_eq(firecracker_response_check("GET", "/", 200, body, sizeof(body), &error),
                         -EMSGSIZE);
        ck_assert_ptr_nonnull(strstr(error, "65537 bytes"));
}
END_TEST

/* Client-side checks that need no server */

START_TEST(test_post_boot_before_start)
{
        _cleanup_(firecracker_freep) Firecracker *f = NULL;
        _cleanup_free_ char *error = NULL;

        /* The path does not exist: a request that reached the socket would fail with -ENOENT. */
        ck_assert_int_eq(firecracker_new("/nonexistent/firecracker.sock", 1000000, &f), 0);
        ck_assert_int_eq(firecracker_get_phase(f), FIRECRACKER_PHASE_PRE_BOOT);

        ck_assert_int_eq(firecracker_pause(f, &error), -EBUSY);
        ck_assert_ptr_nonnull(strstr(error, "PATCH /vm is accepted only after InstanceStart"));
        free(TAKE_PTR(error));

        ck_assert_int_eq(firecracker_send_ctrl_alt_del(f, &error), -EBUSY);
        ck_assert_ptr_nonnull(strstr(error, "SendCtrlAltDel is accepted only after"));
        free(TAKE_PTR(error));

        ck_assert_int_eq(firecracker_put_entropy(f, &error), -ENOENT);
        ck_assert_ptr_nonnull(strstr(error, "'/nonexistent/firecracker.sock'"));
}
END_TEST

static const struct {
        FirecrackerDrive drive;
        const char *message;
} invalid_drives[] = {
        { { .drive_id = NULL, .path_on_host = "/d" }, "Invalid drive id ''" },
        { { .drive_id = "", .path_on_host = "/d" }, "Invalid drive id ''" },
        { { .drive_id = "../x", .path_on_host = "/d" }, "Invalid drive id '../x'" },
        { { .drive_id = "a b", .path_on_host = "/d" }, "Invalid drive id 'a b'" },
        { { .drive_id = "root" }, "Drive 'root' has no path" },
        { { .drive_id = "root", .path_on_host = "/d", .cache_type = "None" },
          "Invalid cache type 'None'" },
        { { .drive_id = "root", .path_on_host = "/d", .io_engine = "io_uring" },
          "Invalid I/O engine 'io_uring'" },
};

START_TEST(test_drive_invalid_table)
{
        _cleanup_(firecracker_freep) Firecracker *f = NULL;
        _cleanup_free_ char *error = NULL;

        ck_assert_int_eq(firecracker_new("/nonexistent/firecracker.sock", 1000000, &f), 0);
        ck_assert_int_eq(firecracker_put_drive(f, &invalid_drives[_i].drive, &error), -EINVAL);
        ck_assert_msg(strstr(error, invalid_drives[_i].message), "case %d: '%s'", _i, error);
}
END_TEST

static const struct {
        unsigned vcpu_count;
        uint64_t mem_size_mib;
        const char *message;
} invalid_machines[] = {
        { 0, 128, "Invalid vCPU count 0" },
        { 3, 128, "Invalid vCPU count 3" },
        { 34, 128, "Invalid vCPU count 34" },
        { 2, 0, "Invalid memory size 0 MiB" },
};

START_TEST(test_machine_config_invalid_table)
{
        _cleanup_(firecracker_freep) Firecracker *f = NULL;
        _cleanup_free_ char *error = NULL;
        FirecrackerMachineConfig c = { .vcpu_count = invalid_machines[_i].vcpu_count,
                                       .mem_size_mib = invalid_machines[_i].mem_size_mib };

        ck_assert_int_eq(firecracker_new("/nonexistent/firecracker.sock", 1000000, &f), 0);
        ck_assert_int_eq(firecracker_put_machine_config(f, &c, &error), -EINVAL);
        ck_assert_msg(strstr(error, invalid_machines[_i].message), "case %d: '%s'", _i, error);
}
END_TEST

START_TEST(test_boot_source_invalid)
{
        _cleanup_(firecracker_freep) Firecracker *f = NULL;
        _cleanup_free_ char *error = NULL;
        FirecrackerBootSource no_kernel = { .boot_args = "console=ttyS0" };
        FirecrackerBootSource no_args = { .kernel_image_path = "/vmlinux" };
        FirecrackerBootSource bad_args = { .kernel_image_path = "/vmlinux",
                                           .boot_args = "console=ttyS0 root=a root=b" };

        ck_assert_int_eq(firecracker_new("/nonexistent/firecracker.sock", 1000000, &f), 0);
        ck_assert_int_eq(firecracker_put_boot_source(f, &no_kernel, &error), -EINVAL);
        ck_assert_ptr_nonnull(strstr(error, "no kernel image path"));
        free(TAKE_PTR(error));

        ck_assert_int_eq(firecracker_put_boot_source(f, &no_args, &error), -EINVAL);
        ck_assert_ptr_nonnull(strstr(error, "including console=ttyS0"));
        free(TAKE_PTR(error));

        ck_assert_int_eq(firecracker_put_boot_source(f, &bad_args, &error), -EINVAL);
        ck_assert_ptr_nonnull(strstr(error, "'root=b'"));
}
END_TEST

START_TEST(test_network_interface_invalid)
{
        _cleanup_(firecracker_freep) Firecracker *f = NULL;
        _cleanup_free_ char *error = NULL;
        FirecrackerNetworkInterface bad_mac = { .iface_id = "eth0",
                                                .host_dev_name = "tap0",
                                                .guest_mac = "02:00:00:00:00" };
        FirecrackerNetworkInterface bad_mtu = { .iface_id = "eth0",
                                                .host_dev_name = "tap0",
                                                .mtu = 67 };

        ck_assert_int_eq(firecracker_new("/nonexistent/firecracker.sock", 1000000, &f), 0);
        ck_assert_int_eq(firecracker_put_network_interface(f, &bad_mac, &error), -EINVAL);
        ck_assert_ptr_nonnull(strstr(error, "Invalid MAC address '02:00:00:00:00'"));
        free(TAKE_PTR(error));

        ck_assert_int_eq(firecracker_put_network_interface(f, &bad_mtu, &error), -EINVAL);
        ck_assert_ptr_nonnull(strstr(error, "Invalid MTU 67"));
        free(TAKE_PTR(error));

        ck_assert_int_eq(firecracker_put_vsock(f, 2, "/v.sock", &error), -EINVAL);
        ck_assert_ptr_nonnull(strstr(error, "Invalid guest CID 2"));
}
END_TEST

static Suite *firecracker_suite(void)
{
        Suite *s = suite_create("firecracker");
        TCase *tc = tcase_create("core");

        tcase_add_loop_test(tc, test_boot_args_table, 0, (int)ELEMENTSOF(boot_args_cases));
        tcase_add_test(tc, test_boot_args_limit_exact);
        tcase_add_loop_test(tc, test_response_table, 0, (int)ELEMENTSOF(response_cases));
        tcase_add_test(tc, test_response_raw_body_shortened);
        tcase_add_test(tc, test_response_too_large);
        tcase_add_test(tc, test_post_boot_before_start);
        tcase_add_loop_test(tc, test_drive_invalid_table, 0, (int)ELEMENTSOF(invalid_drives));
        tcase_add_loop_test(tc, test_machine_config_invalid_table, 0,
                            (int)ELEMENTSOF(invalid_machines));
        tcase_add_test(tc, test_boot_source_invalid);
        tcase_add_test(tc, test_network_interface_invalid);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(firecracker_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
