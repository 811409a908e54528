#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fileio.h"
#include "helper-bus.h"
#include "helper-util.h"
#include "macro.h"
#include "store.h"

static char tmpdir[] = "/tmp/test-helper-util-XXXXXX";

static void setup(void)
{
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
        ck_assert_int_eq(rm_rf(tmpdir), 0);
        strcpy(tmpdir, "/tmp/test-helper-util-XXXXXX");
}

static const struct {
        const char *text;
        int result;
        uid_t real;
        uid_t effective;
} status_cases[] = {
        { "Name:\tqemu\nUmask:\t0027\nState:\tS (sleeping)\nUid:\t998\t998\t998\t998\n"
          "Gid:\t998\t998\t998\t998\n",
          0, 998, 998 },
        { "Uid:\t0\t1000\t0\t1000\n", 0, 0, 1000 },
        { "Name:\tx\nUid:\t4294967294\t5\t5\t5\n", 0, 4294967294u, 5 },
        { "Name:\tx\nGid:\t1\t1\t1\t1\n", -EBADMSG, 0, 0 },
        { "Name:\tx\nUid:\t12\n", -EBADMSG, 0, 0 },
        { "Name:\tx\nUid:\t-1\t5\t5\t5\n", -EBADMSG, 0, 0 },
        { "Name:\tx\nUid:\t4294967295\t5\t5\t5\n", -EBADMSG, 0, 0 },
        { "Name:\tx\nUid:\t99999999999999999999\t5\t5\t5\n", -EBADMSG, 0, 0 },
        { "Name:\tx\nUid:\t12a\t5\t5\t5\n", -EBADMSG, 0, 0 },
        { "Name:\tUid:\t7\t7\n", -EBADMSG, 0, 0 },
        { "", -EBADMSG, 0, 0 },
};

START_TEST(proc_status_uid_table)
{
        uid_t real = 77, effective = 77;
        int r;

        r = proc_status_parse_uids(status_cases[_i].text, &real, &effective);
        ck_assert_int_eq(r, status_cases[_i].result);
        if (r < 0) {
                ck_assert_uint_eq(real, 77);
                ck_assert_uint_eq(effective, 77);
                return;
        }
        ck_assert_uint_eq(real, status_cases[_i].real);
        ck_assert_uint_eq(effective, status_cases[_i].effective);
}
END_TEST

START_TEST(proc_read_uids_self)
{
        uid_t real, effective;

        ck_assert_int_eq(proc_read_uids(getpid(), &real, &effective), 0);
        ck_assert_uint_eq(real, getuid());
        ck_assert_uint_eq(effective, geteuid());
}
END_TEST

START_TEST(proc_read_uids_missing_process)
{
        uid_t real, effective;
        pid_t pid = fork();

        ck_assert_int_ge(pid, 0);
        if (pid == 0)
                _exit(0);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);

        ck_assert_int_eq(proc_read_uids(pid, &real, &effective), -ESRCH);
        ck_assert_int_eq(proc_read_uids(0, &real, &effective), -ESRCH);
        ck_assert_int_eq(proc_read_uids(-5, &real, &effective), -ESRCH);
}
END_TEST

static const struct {
        const char *text;
        int result;
        const char *subnet;
} subnet_cases[] = {
        { "Subnet=10.213.0.0/24\n", 0, "10.213.0.0/24" },
        { "# chosen at first use\n\nSubnet=172.29.0.0/16", 0, "172.29.0.0/16" },
        { "Subnet=192.168.213.4/30\n# trailing comment\n", 0, "192.168.213.4/30" },
        { "", -EBADMSG, NULL },
        { "# nothing but a comment\n", -EBADMSG, NULL },
        { "Subnet=10.213.0.1/24\n", -EBADMSG, NULL },
        { "Subnet=10.0.0.0/8\n", -EBADMSG, NULL },
        { "Subnet=10.213.0.0/31\n", -EBADMSG, NULL },
        { "Subnet=10.213.0.0\n", -EBADMSG, NULL },
        { "Subnet = 10.213.0.0/24\n", -EBADMSG, NULL },
        { "Subnet=10.213.0.0/24 \n", -EBADMSG, NULL },
        { "Subnet=10.213.0.0/24\nSubnet=10.231.0.0/24\n", -EBADMSG, NULL },
        { "Bridge=banger0\nSubnet=10.213.0.0/24\n", -EBADMSG, NULL },
        { "[Network]\nSubnet=10.213.0.0/24\n", -EBADMSG, NULL },
};

START_TEST(subnet_file_table)
{
        Ipv4Net net = { .addr = 1, .prefix = 1 };
        char s[IPV4_FORMAT_MAX];
        int r;

        r = subnet_file_parse(subnet_cases[_i].text, &net);
        ck_assert_int_eq(r, subnet_cases[_i].result);
        if (r < 0) {
                ck_assert_uint_eq(net.addr, 1);
                ck_assert_uint_eq(net.prefix, 1);
                return;
        }
        ipv4_format(net.addr, net.prefix, true, s);
        ck_assert_str_eq(s, subnet_cases[_i].subnet);
}
END_TEST

START_TEST(subnet_file_write_read)
{
        _cleanup_free_ char *path = NULL;
        Ipv4Net in = { .addr = IPV4_ADDR(10, 231, 0, 0), .prefix = 24 }, out;
        struct stat st;

        ck_assert_int_ge(asprintf(&path, "%s/%s", tmpdir, HELPER_SUBNET_FILE), 0);
        ck_assert_int_eq(subnet_file_read(path, &out), -ENOENT);

        ck_assert_int_eq(subnet_file_write(path, &in), 0);
        ck_assert_int_eq(subnet_file_read(path, &out), 0);
        ck_assert_uint_eq(out.addr, in.addr);
        ck_assert_uint_eq(out.prefix, in.prefix);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0644);

        in.addr = IPV4_ADDR(192, 168, 147, 0);
        ck_assert_int_eq(subnet_file_write(path, &in), 0);
        ck_assert_int_eq(subnet_file_read(path, &out), 0);
        ck_assert_uint_eq(out.addr, in.addr);
}
END_TEST

START_TEST(tap_name_round_trip)
{
        static const unsigned slots[] = { 1, 9, 10, 253, 4096, HELPER_MAX_SLOT };
        char name[IF_NAMESIZE];
        unsigned slot;

        for (size_t i = 0; i < ELEMENTSOF(slots); i++) {
                tap_name_for_slot(slots[i], name);
                ck_assert_uint_lt(strlen(name), IF_NAMESIZE);
                ck_assert_int_eq(tap_name_to_slot(name, &slot), 0);
                ck_assert_uint_eq(slot, slots[i]);
        }
        tap_name_for_slot(HELPER_MAX_SLOT, name);
        ck_assert_str_eq(name, "bngtap65533");
}
END_TEST

START_TEST(tap_name_rejects_others)
{
        static const char *const names[] = {
                "banger0",     "bngtap",       "bngtap0",  "bngtap01", "bngtap65534",
                "bngtap99999", "bngtap100000", "bngtap-1", "bngtap+1", "bngtap1a",
                "bngtap 1",    "xbngtap1",     "",
        };
        unsigned slot = 42;

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                ck_assert_msg(tap_name_to_slot(names[i], &slot) == -EINVAL, "'%s' was accepted",
                              names[i]);
                ck_assert_uint_eq(slot, 42);
        }
}
END_TEST

START_TEST(max_slot_by_prefix)
{
        Ipv4Net net = { .addr = IPV4_ADDR(10, 213, 0, 0), .prefix = 24 };

        ck_assert_uint_eq(helper_max_slot(&net), 253);
        net.prefix = 16;
        ck_assert_uint_eq(helper_max_slot(&net), HELPER_MAX_SLOT);
        net = (Ipv4Net){ .addr = IPV4_ADDR(10, 0, 0, 0), .prefix = 8 };
        ck_assert_uint_eq(helper_max_slot(&net), HELPER_MAX_SLOT);
        net = (Ipv4Net){ .addr = IPV4_ADDR(10, 213, 0, 4), .prefix = 30 };
        ck_assert_uint_eq(helper_max_slot(&net), 1);
}
END_TEST

/* Binds a socket of type on 127.0.0.1 at an ephemeral port and returns the fd and the port. */
static int bind_loopback(int type, uint16_t *ret_port)
{
        struct sockaddr_in sa = {
                .sin_family = AF_INET,
                .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
        };
        socklen_t len = sizeof(sa);
        int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
        *ret_port = ntohs(sa.sin_port);
        return fd;
}

START_TEST(port_probe_tcp_listener)
{
        uint16_t port;
        int fd = bind_loopback(SOCK_STREAM, &port);

        ck_assert_int_eq(listen(fd, 1), 0);
        ck_assert_int_eq(port_probe("tcp", port), -EADDRINUSE);
        /* The UDP port of the same number is free. */
        ck_assert_int_eq(port_probe("udp", port), 0);
        close(fd);
        ck_assert_int_eq(port_probe("tcp", port), 0);
}
END_TEST

START_TEST(port_probe_udp_socket)
{
        uint16_t port;
        int fd = bind_loopback(SOCK_DGRAM, &port);

        ck_assert_int_eq(port_probe("udp", port), -EADDRINUSE);
        close(fd);
        ck_assert_int_eq(port_probe("udp", port), 0);
}
END_TEST

START_TEST(port_probe_bad_proto)
{
        ck_assert_int_eq(port_probe("sctp", 8080), -EINVAL);
        ck_assert_int_eq(port_probe("TCP", 8080), -EINVAL);
        ck_assert_int_eq(port_probe("", 8080), -EINVAL);
}
END_TEST

START_TEST(dns_dropin_text)
{
        _cleanup_free_ char *text = NULL;

        ck_assert_int_eq(dns_socket_dropin_format(IPV4_ADDR(10, 213, 0, 1), &text), 0);
        ck_assert_ptr_nonnull(strstr(text, "\n[Socket]\n"));
        ck_assert_ptr_nonnull(strstr(text, "\nListenDatagram=10.213.0.1:53\n"));
        ck_assert_ptr_nonnull(strstr(text, "\nListenStream=10.213.0.1:53\n"));
        ck_assert_ptr_nonnull(strstr(text, "\nFreeBind=yes\n"));
}
END_TEST

static void write_vm(const char *name, VmState state, unsigned slot, const char *json_override)
{
        _cleanup_free_ char *dir = NULL, *path = NULL, *json = NULL;
        VmRecord r = {
                .name = (char *)name,
                .id = (char *)"0f8fad5b-d9cb-469f-a165-70867728950e",
                .owner = 1000,
                .image = (char *)"busybox",
                .kernel = (char *)"cloud",
                .vcpus = 1,
                .memory_mib = 256,
                .state = state,
                .backend = (char *)"qemu",
                .slot = slot,
        };

        ck_assert_int_eq(store_object_dir(tmpdir, STORE_VMS, name, &dir), 0);
        ck_assert_int_eq(mkdir_p(dir, 0755), 0);
        ck_assert_int_ge(asprintf(&path, "%s/%s", dir, STORE_RECORD), 0);
        if (!json_override)
                ck_assert_int_eq(vm_record_to_json(&r, &json), 0);
        ck_assert_int_eq(
                write_file_atomic(path, json_override ?: json, strlen(json_override ?: json), 0644),
                0);
}

static int compare_unsigned(const void *a, const void *b)
{
        unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

        return x < y ? -1 : x > y;
}

START_TEST(live_slots_from_records)
{
        _cleanup_free_ unsigned *slots = NULL;
        size_t n = 99;

        ck_assert_int_eq(store_live_slots(tmpdir, &slots, &n), 0);
        ck_assert_uint_eq(n, 0);
        free(TAKE_PTR(slots));

        write_vm("run", VM_RUNNING, 3, NULL);
        write_vm("boot", VM_STARTING, 12, NULL);
        write_vm("halt", VM_STOPPING, 7, NULL);
        write_vm("off", VM_STOPPED, 4, NULL);
        write_vm("new", VM_CREATED, 5, NULL);
        write_vm("bad", VM_FAILED, 6, NULL);
        write_vm("noslot", VM_RUNNING, 0, NULL);
        write_vm("broken", VM_RUNNING, 9, "{\"name\": ");

        ck_assert_int_eq(store_live_slots(tmpdir, &slots, &n), 0);
        ck_assert_uint_eq(n, 3);
        qsort(slots, n, sizeof(unsigned), compare_unsigned);
        ck_assert_uint_eq(slots[0], 3);
        ck_assert_uint_eq(slots[1], 7);
        ck_assert_uint_eq(slots[2], 12);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("helper-util");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_loop_test(tc, proc_status_uid_table, 0, ELEMENTSOF(status_cases));
        tcase_add_test(tc, proc_read_uids_self);
        tcase_add_test(tc, proc_read_uids_missing_process);
        tcase_add_loop_test(tc, subnet_file_table, 0, ELEMENTSOF(subnet_cases));
        tcase_add_test(tc, subnet_file_write_read);
        tcase_add_test(tc, tap_name_round_trip);
        tcase_add_test(tc, tap_name_rejects_others);
        tcase_add_test(tc, max_slot_by_prefix);
        tcase_add_test(tc, port_probe_tcp_listener);
        tcase_add_test(tc, port_probe_udp_socket);
        tcase_add_test(tc, port_probe_bad_proto);
        tcase_add_test(tc, dns_dropin_text);
        tcase_add_test(tc, live_slots_from_records);
        suite_add_tcase(s, tc);

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
