#include <check.h>
#include <stdbool.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"
#include "qemu.h"
#include "strv.h"

static const QemuConfig base_config = {
        .binary = "/usr/bin/qemu-system-x86_64",
        .kernel = "/var/lib/banger/kernels/k1/vmlinux",
        .initrd = "/var/lib/banger/vms/dev1/initrd",
        .cmdline_extra = "banger.ip=10.77.0.2/24",
        .root_disk = "/var/lib/banger/vms/dev1/root.img",
        .console_log = "/var/lib/banger/vms/dev1/console.log",
        .console_socket = "/run/banger/dev1.console",
        .qmp_socket = "/run/banger/dev1.qmp",
        .agent_socket = "/run/banger/dev1.agent",
        .agent_port_name = "org.banger.agent",
        .vcpus = 2,
        .memory_mib = 256,
        .accel = QEMU_ACCEL_TCG,
        .tsc_khz = 2600000,
};

/* The argv after "-accel X -cpu Y" and before "-append", which does not depend on the accel. */
static const char *const common_head[] = {
        "-nodefaults", "-no-user-config", "-no-reboot", "-display", "none", "-smp", "2", "-m",
        "256M",        "-kernel",
};

static const char *const common_tail[] = {
        "-chardev",
        ("socket,id=console,path=/run/banger/dev1.console,server=on,wait=off,"
         "logfile=/var/lib/banger/vms/dev1/console.log,logappend=on"),
        "-serial",
        "chardev:console",
        "-drive",
        ("id=root,file=/var/lib/banger/vms/dev1/root.img,format=raw,if=none,cache=writeback,"
         "discard=unmap"),
        "-device",
        "virtio-blk-device,drive=root",
        "-device",
        "virtio-serial-device",
        "-chardev",
        "socket,id=agent,path=/run/banger/dev1.agent,server=on,wait=off",
        "-device",
        "virtserialport,chardev=agent,name=org.banger.agent",
        "-qmp",
        "unix:/run/banger/dev1.qmp,server=on,wait=off",
        "-device",
        "virtio-rng-device",
};

static void assert_argv_slice(char **argv, size_t *pos, const char *const *expected, size_t n)
{
        for (size_t i = 0; i < n; i++, (*pos)++) {
                ck_assert_msg(argv[*pos], "argv ends at %zu, expected '%s'", *pos, expected[i]);
                ck_assert_str_eq(argv[*pos], expected[i]);
        }
}

static const struct {
        const char *name;
        QemuAccel accel;
        bool with_initrd;
        const char *extra;
        const char *accel_arg;
        const char *cpu;
        const char *append;
} argv_cases[] = {
        { "tcg with all parts", QEMU_ACCEL_TCG, true, "banger.ip=10.77.0.2/24", "tcg", "max",
          "console=ttyS0 reboot=t panic=-1 root=/dev/vda rw loglevel=4 tsc_early_khz=2600000 "
          "banger.ip=10.77.0.2/24" },
        { "tcg without optional parts", QEMU_ACCEL_TCG, false, NULL, "tcg", "max",
          "console=ttyS0 reboot=t panic=-1 root=/dev/vda rw loglevel=4 tsc_early_khz=2600000" },
        { "tcg with empty extra", QEMU_ACCEL_TCG, false, "", "tcg", "max",
          "console=ttyS0 reboot=t panic=-1 root=/dev/vda rw loglevel=4 tsc_early_khz=2600000" },
        { "kvm with all parts", QEMU_ACCEL_KVM, true, "quiet", "kvm", "host",
          "console=ttyS0 reboot=t panic=-1 root=/dev/vda rw loglevel=4 quiet" },
        { "kvm without optional parts", QEMU_ACCEL_KVM, false, NULL, "kvm", "host",
          "console=ttyS0 reboot=t panic=-1 root=/dev/vda rw loglevel=4" },
};

START_TEST(qemu_argv_table)
{
        QemuConfig c = base_config;
        _cleanup_strv_free_ char **argv = NULL;
        size_t pos = 0;

        c.accel = argv_cases[_i].accel;
        c.initrd = argv_cases[_i].with_initrd ? base_config.initrd : NULL;
        c.cmdline_extra = argv_cases[_i].extra;

        ck_assert_int_eq(qemu_build_argv(&c, &argv), 0);

        assert_argv_slice(argv, &pos,
                          (const char *const[]){ c.binary, "-M", "microvm,acpi=on", "-accel",
                                                 argv_cases[_i].accel_arg, "-cpu",
                                                 argv_cases[_i].cpu },
                          7);
        assert_argv_slice(argv, &pos, common_head, ELEMENTSOF(common_head));
        assert_argv_slice(argv, &pos, (const char *const[]){ c.kernel }, 1);
        if (argv_cases[_i].with_initrd)
                assert_argv_slice(argv, &pos, (const char *const[]){ "-initrd", c.initrd }, 2);
        assert_argv_slice(argv, &pos, (const char *const[]){ "-append", argv_cases[_i].append }, 2);
        assert_argv_slice(argv, &pos, common_tail, ELEMENTSOF(common_tail));
        ck_assert_msg(argv[pos] == NULL, "case '%s': unexpected extra argument '%s'",
                      argv_cases[_i].name, argv[pos]);
}
END_TEST

START_TEST(qemu_argv_with_tap)
{
        QemuConfig c = base_config;
        _cleanup_strv_free_ char **argv = NULL;
        size_t pos;

        c.tap = "bngtap3";
        c.mac = "02:BA:4f:45:d2:29";
        ck_assert_int_eq(qemu_build_argv(&c, &argv), 0);

        /* The network device follows the root disk, so the disk stays the first virtio device. */
        for (pos = 0; argv[pos] && !streq(argv[pos], "virtio-blk-device,drive=root"); pos++)
                ;
        ck_assert_ptr_nonnull(argv[pos]);
        pos++;
        assert_argv_slice(argv, &pos,
                          (const char *const[]){
                                  "-netdev", "tap,id=net0,ifname=bngtap3,script=no,downscript=no",
                                  "-device", "virtio-net-device,netdev=net0,mac=02:BA:4f:45:d2:29",
                                  "-device", "virtio-serial-device" },
                          6);
        ck_assert_uint_eq(strv_length(argv),
                          7 + ELEMENTSOF(common_head) + 5 + ELEMENTSOF(common_tail) + 4);
}
END_TEST

START_TEST(qemu_argv_with_work_disk_and_tap)
{
        QemuConfig c = base_config;
        _cleanup_strv_free_ char **argv = NULL;
        size_t pos;

        c.work_disk = "/var/lib/banger/vms/dev1/work,1.ext4";
        c.tap = "bngtap3";
        c.mac = "02:ba:4f:45:d2:29";
        ck_assert_int_eq(qemu_build_argv(&c, &argv), 0);

        /* The work disk is the second virtio disk, /dev/vdb, before the network device. */
        for (pos = 0; argv[pos] && !streq(argv[pos], "virtio-blk-device,drive=root"); pos++)
                ;
        ck_assert_ptr_nonnull(argv[pos]);
        pos++;
        assert_argv_slice(argv, &pos,
                          (const char *const[]){
                                  "-drive",
                                  "id=work,file=/var/lib/banger/vms/dev1/work,,1.ext4,format=raw,"
                                  "if=none,cache=writeback,discard=unmap",
                                  "-device", "virtio-blk-device,drive=work", "-netdev" },
                          5);
        ck_assert_uint_eq(strv_length(argv),
                          7 + ELEMENTSOF(common_head) + 5 + ELEMENTSOF(common_tail) + 4 + 4);
}
END_TEST

START_TEST(qemu_argv_tcg_reads_host_tsc)
{
        QemuConfig c = base_config;
        _cleanup_strv_free_ char **argv = NULL;
        _cleanup_free_ char *expected = NULL;
        uint64_t khz;

        c.tsc_khz = 0;
        ck_assert_int_eq(host_tsc_khz(&khz), 0);
        ck_assert_int_gt(asprintf(&expected, "tsc_early_khz=%" PRIu64 " ", khz), 0);

        ck_assert_int_eq(qemu_build_argv(&c, &argv), 0);
        for (size_t i = 0; argv[i]; i++)
                if (i > 0 && streq(argv[i - 1], "-append")) {
                        ck_assert_ptr_nonnull(strstr(argv[i], expected));
                        return;
                }
        ck_abort_msg("no -append in argv");
}
END_TEST

START_TEST(qemu_argv_doubles_commas_in_paths)
{
        QemuConfig c = base_config;
        _cleanup_strv_free_ char **argv = NULL;

        c.root_disk = "/srv/a,b/root.img";
        c.qmp_socket = "/run/x,y.qmp";
        c.console_log = "/log,s/console.log";
        c.console_socket = "/run/con,sole";
        c.agent_socket = "/run/,agent";

        ck_assert_int_eq(qemu_build_argv(&c, &argv), 0);
        ck_assert(strv_contains(argv, "id=root,file=/srv/a,,b/root.img,format=raw,if=none,"
                                      "cache=writeback,discard=unmap"));
        ck_assert(strv_contains(argv, "unix:/run/x,,y.qmp,server=on,wait=off"));
        ck_assert(strv_contains(argv, "socket,id=console,path=/run/con,,sole,server=on,wait=off,"
                                      "logfile=/log,,s/console.log,logappend=on"));
        ck_assert(strv_contains(argv, "socket,id=agent,path=/run/,,agent,server=on,wait=off"));
}
END_TEST

START_TEST(qemu_argv_auto_follows_dev_kvm)
{
        QemuConfig c = base_config;
        _cleanup_strv_free_ char **argv = NULL;
        int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        bool kvm = fd >= 0;

        safe_close(fd);
        c.accel = QEMU_ACCEL_AUTO;

        ck_assert_int_eq(qemu_build_argv(&c, &argv), 0);
        ck_assert_str_eq(argv[3], "-accel");
        ck_assert_str_eq(argv[4], kvm ? "kvm" : "tcg");
        ck_assert_str_eq(argv[6], kvm ? "host" : "max");
}
END_TEST

static void no_binary(QemuConfig *c)
{
        c->binary = NULL;
}
static void no_kernel(QemuConfig *c)
{
        c->kernel = "";
}
static void no_root_disk(QemuConfig *c)
{
        c->root_disk = NULL;
}
static void no_qmp_socket(QemuConfig *c)
{
        c->qmp_socket = NULL;
}
static void no_agent_socket(QemuConfig *c)
{
        c->agent_socket = NULL;
}
static void no_console_log(QemuConfig *c)
{
        c->console_log = NULL;
}
static void no_console_socket(QemuConfig *c)
{
        c->console_socket = "";
}
static void zero_vcpus(QemuConfig *c)
{
        c->vcpus = 0;
}
static void zero_memory(QemuConfig *c)
{
        c->memory_mib = 0;
}
static void comma_in_port_name(QemuConfig *c)
{
        c->agent_port_name = "agent,id=x";
}
static void empty_port_name(QemuConfig *c)
{
        c->agent_port_name = "";
}
static void accel_out_of_range(QemuConfig *c)
{
        c->accel = _QEMU_ACCEL_MAX;
}
static void accel_invalid(QemuConfig *c)
{
        c->accel = _QEMU_ACCEL_INVALID;
}
static void tap_without_mac(QemuConfig *c)
{
        c->tap = "bngtap3";
}
static void mac_without_tap(QemuConfig *c)
{
        c->mac = "02:ba:4f:45:d2:29";
}
static void tap_name_too_long(QemuConfig *c)
{
        c->tap = "bngtap1234567890";
        c->mac = "02:ba:4f:45:d2:29";
}
static void comma_in_tap_name(QemuConfig *c)
{
        c->tap = "tap,id=x";
        c->mac = "02:ba:4f:45:d2:29";
}
static void empty_tap_name(QemuConfig *c)
{
        c->tap = "";
        c->mac = "02:ba:4f:45:d2:29";
}
static void mac_too_short(QemuConfig *c)
{
        c->tap = "bngtap3";
        c->mac = "02:ba:4f:45:d2";
}
static void mac_too_long(QemuConfig *c)
{
        c->tap = "bngtap3";
        c->mac = "02:ba:4f:45:d2:299";
}
static void mac_not_hex(QemuConfig *c)
{
        c->tap = "bngtap3";
        c->mac = "02:ba:4f:45:d2:2g";
}
static void mac_with_dashes(QemuConfig *c)
{
        c->tap = "bngtap3";
        c->mac = "02-ba-4f-45-d2-29";
}
static void empty_work_disk(QemuConfig *c)
{
        c->work_disk = "";
}

static void (*const invalid_mutations[])(QemuConfig *c) = {
        no_binary,          no_kernel,       no_root_disk,       no_qmp_socket,
        no_agent_socket,    no_console_log,  zero_vcpus,         zero_memory,
        comma_in_port_name, empty_port_name, accel_out_of_range, accel_invalid,
        tap_without_mac,    mac_without_tap, tap_name_too_long,  comma_in_tap_name,
        empty_tap_name,     mac_too_short,   mac_too_long,       mac_not_hex,
        mac_with_dashes,    empty_work_disk, no_console_socket,
};

START_TEST(qemu_argv_rejects_invalid_config)
{
        QemuConfig c = base_config;
        char **argv = (char **)0x1;

        invalid_mutations[_i](&c);
        ck_assert_int_eq(qemu_build_argv(&c, &argv), -EINVAL);
        ck_assert_ptr_eq(argv, (char **)0x1);
}
END_TEST

START_TEST(qemu_accel_strings)
{
        ck_assert_str_eq(qemu_accel_to_string(QEMU_ACCEL_AUTO), "auto");
        ck_assert_str_eq(qemu_accel_to_string(QEMU_ACCEL_KVM), "kvm");
        ck_assert_str_eq(qemu_accel_to_string(QEMU_ACCEL_TCG), "tcg");
        ck_assert_ptr_null(qemu_accel_to_string(_QEMU_ACCEL_MAX));
        ck_assert_ptr_null(qemu_accel_to_string(_QEMU_ACCEL_INVALID));

        ck_assert_int_eq(qemu_accel_from_string("auto"), QEMU_ACCEL_AUTO);
        ck_assert_int_eq(qemu_accel_from_string("kvm"), QEMU_ACCEL_KVM);
        ck_assert_int_eq(qemu_accel_from_string("tcg"), QEMU_ACCEL_TCG);
        ck_assert_int_eq(qemu_accel_from_string("KVM"), _QEMU_ACCEL_INVALID);
        ck_assert_int_eq(qemu_accel_from_string(""), _QEMU_ACCEL_INVALID);
        ck_assert_int_eq(qemu_accel_from_string(NULL), _QEMU_ACCEL_INVALID);
}
END_TEST

START_TEST(host_tsc_khz_matches_proc)
{
        _cleanup_free_ char *text = NULL;
        uint64_t khz, expected = 0;
        double mhz;
        char *line;

        ck_assert_int_eq(host_tsc_khz(&khz), 0);
        ck_assert_uint_gt(khz, 0);

        if (read_full_file("/sys/devices/system/cpu/cpu0/tsc_freq_khz", 64, &text, NULL) >= 0) {
                expected = strtoull(text, NULL, 10);
        } else {
                ck_assert_int_eq(read_full_file("/proc/cpuinfo", 4 << 20, &text, NULL), 0);
                line = strstr(text, "cpu MHz");
                ck_assert_ptr_nonnull(line);
                ck_assert_int_eq(sscanf(strchr(line, ':') + 1, "%lf", &mhz), 1);
                expected = (uint64_t)(mhz * 1000.0 + 0.5);
        }
        ck_assert_uint_eq(khz, expected);
}
END_TEST

/* A scratch directory for one test, removed in teardown. */
static char scratch[] = "/tmp/test-qemu-XXXXXX";

static void scratch_setup(void)
{
        strcpy(scratch, "/tmp/test-qemu-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(scratch));
}

static void scratch_teardown(void)
{
        rm_rf(scratch);
}

static bool have_no_children(void)
{
        return waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD;
}

START_TEST(qemu_spawn_missing_binary)
{
        QemuConfig c = base_config;
        _cleanup_free_ char *log = NULL, *binary = NULL;
        pid_t pid = -1;
        struct stat st;

        ck_assert_int_gt(asprintf(&log, "%s/stderr.log", scratch), 0);
        ck_assert_int_gt(asprintf(&binary, "%s/no-such-qemu", scratch), 0);
        c.binary = binary;

        ck_assert_int_eq(qemu_spawn(&c, log, &pid), -ENOENT);
        ck_assert_int_eq(pid, -1);
        ck_assert(have_no_children());
        ck_assert_int_eq(stat(log, &st), 0);
        ck_assert_int_eq(st.st_size, 0);
}
END_TEST

START_TEST(qemu_spawn_not_executable)
{
        QemuConfig c = base_config;
        _cleanup_free_ char *log = NULL, *binary = NULL;
        pid_t pid = -1;

        ck_assert_int_gt(asprintf(&log, "%s/stderr.log", scratch), 0);
        ck_assert_int_gt(asprintf(&binary, "%s/plain-file", scratch), 0);
        ck_assert_int_eq(write_file_atomic(binary, "x", 1, 0644), 0);
        c.binary = binary;

        ck_assert_int_eq(qemu_spawn(&c, log, &pid), -EACCES);
        ck_assert_int_eq(pid, -1);
        ck_assert(have_no_children());
}
END_TEST

/* The stand-in binary reports what QEMU would inherit: its session, stdin, environment and
 * whether a descriptor the test left open without close-on-exec reached it. */
#define LEAK_FD 57
static const char fake_qemu[] = "#!/bin/sh\n"
                                "set -- $(cat /proc/$$/stat)\n"
                                "echo \"pid=$1 sid=$6\" >&2\n"
                                "echo \"stdin=$(readlink /proc/$$/fd/0)\"\n"
                                "[ -e /proc/$$/fd/57 ] && echo leaked-fd >&2\n"
                                "env | sed 's/^/env:/' >&2\n"
                                "exit 3\n";

START_TEST(qemu_spawn_detaches_child)
{
        QemuConfig c = base_config;
        _cleanup_free_ char *log = NULL, *binary = NULL, *text = NULL, *expect = NULL;
        int status, fd;
        pid_t pid;

        ck_assert_int_gt(asprintf(&log, "%s/stderr.log", scratch), 0);
        ck_assert_int_gt(asprintf(&binary, "%s/fake-qemu", scratch), 0);
        ck_assert_int_eq(write_file_atomic(binary, fake_qemu, strlen(fake_qemu), 0755), 0);
        c.binary = binary;

        fd = open("/dev/zero", O_RDONLY);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(dup2(fd, LEAK_FD), LEAK_FD);
        close(fd);

        ck_assert_int_eq(qemu_spawn(&c, log, &pid), 0);
        close(LEAK_FD);
        ck_assert_int_gt(pid, 0);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), 3);

        ck_assert_int_eq(read_full_file(log, 1 << 20, &text, NULL), 0);
        ck_assert_int_gt(asprintf(&expect, "pid=%d sid=%d\n", pid, pid), 0);
        ck_assert_ptr_nonnull(strstr(text, expect));
        ck_assert_ptr_nonnull(strstr(text, "stdin=/dev/null\n"));
        ck_assert_ptr_null(strstr(text, "leaked-fd"));
        ck_assert_ptr_nonnull(strstr(text, "env:PATH="));
        ck_assert_ptr_null(strstr(text, "env:BANGER_TEST_MARKER="));
}
END_TEST

START_TEST(qemu_spawn_appends_to_log)
{
        QemuConfig c = base_config;
        _cleanup_free_ char *log = NULL, *text = NULL, *qmp = NULL, *agent = NULL, *console = NULL;
        int status;
        pid_t pid;

        /* A real QEMU with a kernel that does not exist exits with its error on stderr. */
        ck_assert_int_gt(asprintf(&log, "%s/stderr.log", scratch), 0);
        ck_assert_int_eq(write_file_atomic(log, "previous run\n", 13, 0644), 0);
        c.kernel = "/nonexistent/vmlinux";
        c.root_disk = "/dev/null";
        c.console_log = "/dev/null";
        ck_assert_int_gt(asprintf(&qmp, "%s/qmp.sock", scratch), 0);
        ck_assert_int_gt(asprintf(&agent, "%s/agent.sock", scratch), 0);
        ck_assert_int_gt(asprintf(&console, "%s/console.sock", scratch), 0);
        c.qmp_socket = qmp;
        c.agent_socket = agent;
        c.console_socket = console;

        ck_assert_int_eq(qemu_spawn(&c, log, &pid), 0);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        ck_assert_int_ne(WEXITSTATUS(status), 0);

        ck_assert_int_eq(read_full_file(log, 1 << 20, &text, NULL), 0);
        ck_assert(strneq(text, "previous run\n", 13));
        ck_assert_msg(strstr(text, "could not open kernel file '/nonexistent/vmlinux'"), "log: %s",
                      text);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("qemu");
        TCase *tc = tcase_create("argv"), *spawn = tcase_create("spawn");
        SRunner *sr;
        int failed;

        setenv("BANGER_TEST_MARKER", "1", 1);

        tcase_add_loop_test(tc, qemu_argv_table, 0, ELEMENTSOF(argv_cases));
        tcase_add_test(tc, qemu_argv_with_tap);
        tcase_add_test(tc, qemu_argv_with_work_disk_and_tap);
        tcase_add_test(tc, qemu_argv_tcg_reads_host_tsc);
        tcase_add_test(tc, qemu_argv_doubles_commas_in_paths);
        tcase_add_test(tc, qemu_argv_auto_follows_dev_kvm);
        tcase_add_loop_test(tc, qemu_argv_rejects_invalid_config, 0, ELEMENTSOF(invalid_mutations));
        tcase_add_test(tc, qemu_accel_strings);
        tcase_add_test(tc, host_tsc_khz_matches_proc);
        suite_add_tcase(s, tc);

        tcase_add_checked_fixture(spawn, scratch_setup, scratch_teardown);
        tcase_add_test(spawn, qemu_spawn_missing_binary);
        tcase_add_test(spawn, qemu_spawn_not_executable);
        tcase_add_test(spawn, qemu_spawn_detaches_child);
        tcase_add_test(spawn, qemu_spawn_appends_to_log);
        suite_add_tcase(s, spawn);

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
