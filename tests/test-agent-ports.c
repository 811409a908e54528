#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent-ports.h"
#include "fileio.h"
#include "macro.h"

/* Most lines are copied from /proc/net on a Linux 6.18 x86-64 machine. The rest (time-wait,
 * wide fields, lower-case hex, tabs) are written by hand in the same layout. */
static const struct {
        const char *name;
        int family;
        const char *line;
        const char *address; /* inet_ntop() form */
        unsigned port;
        unsigned state;
        uint32_t uid;
        uint64_t inode;
} good_lines[] = {
        { "tcp listener on loopback", AF_INET,
          "   0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0      "
          "  0 2197633 1 000000004221646c 100 0 0 10 0                   \n",
          "127.0.0.1", 5432, 0x0A, 0, 2197633 },
        { "tcp established", AF_INET,
          "   2: 0100007F:8CC6 0100007F:1538 01 00000000:00000000 00:00000000 00000000     0      "
          "  0 2197634 2 0000000042cb9c66 20 0 0 10 -1                   \n",
          "127.0.0.1", 0x8CC6, 0x01, 0, 2197634 },
        { "tcp time-wait without inode", AF_INET,
          "  12: 0100007F:1F90 0100007F:D2F4 06 00000000:00000000 03:000016A8 00000000     0      "
          "  0 0 3 0000000000000000\n",
          "127.0.0.1", 8080, 0x06, 0, 0 },
        { "tcp timer wider than 8 digits", AF_INET,
          "   7: 0200000A:0016 0100000A:C001 01 00000000:00000000 02:1000016A8 00000000  1000    "
          "    0 31337 4 0000000000000000 20 4 30 10 -1\n",
          "10.0.0.2", 22, 0x01, 1000, 31337 },
        { "tcp six-digit slot and big ids", AF_INET,
          "123456: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000 "
          "4294967294        0 18446744073709551615 1 0000000009fc93ac 100 0 0 10 0",
          "0.0.0.0", 2024, 0x0A, 4294967294u, UINT64_MAX },
        { "tcp lower-case hex", AF_INET,
          "   1: 0101a8c0:1f90 00000000:0000 0a 00000000:00000000 00:00000000 00000000     0      "
          "  0 99 1 0000000000000000 100 0 0 10 0\n",
          "192.168.1.1", 8080, 0x0A, 0, 99 },
        { "tcp6 listener on ::1", AF_INET6,
          "   0: 00000000000000000000000001000000:20FB 00000000000000000000000000000000:0000 0A "
          "00000000:00000000 00:00000000 00000000     0        0 2197632 1 0000000075068e7b 100 0 "
          "0 10 0\n",
          "::1", 8443, 0x0A, 0, 2197632 },
        { "tcp6 listener on any", AF_INET6,
          "   1: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A "
          "00000000:00000000 00:00000000 00000000     0        0 2197640 1 000000002a3803ba 100 0 "
          "0 10 0\n",
          "::", 80, 0x0A, 0, 2197640 },
        { "udp bound", AF_INET,
          "   20: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0     "
          "   0 2197636 2 00000000859d2dda 0       \n",
          "127.0.0.53", 53, 0x07, 0, 2197636 },
        { "udp connected", AF_INET,
          " 9080: 0100007F:A399 0100007F:0035 01 00000000:00000000 00:00000000 00000000     0     "
          "   0 2197639 2 0000000056746411 0       \n",
          "127.0.0.1", 0xA399, 0x01, 0, 2197639 },
        { "udp6 any", AF_INET6,
          " 5320: 00000000000000000000000000000000:14E9 00000000000000000000000000000000:0000 07 "
          "00000000:00000000 00:00000000 00000000     0        0 2197637 2 00000000df8527b8 0\n",
          "::", 5353, 0x07, 0, 2197637 },
        { "udp6 v4-mapped", AF_INET6,
          " 5967: 0000000000000000FFFF00000100007F:1770 00000000000000000000000000000000:0000 07 "
          "00000000:00000000 00:00000000 00000000     0        0 2197638 2 0000000075011c08 0\n",
          "::ffff:127.0.0.1", 6000, 0x07, 0, 2197638 },
        { "fields only up to the inode", AF_INET,
          "0: 0100007F:0001 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1",
          "127.0.0.1", 1, 0x0A, 0, 1 },
        { "tabs between fields", AF_INET,
          "0:\t0100007F:0001\t00000000:0000\t0A\t00000000:00000000\t00:"
          "00000000\t00000000\t0\t0\t7\n",
          "127.0.0.1", 1, 0x0A, 0, 7 },
};

START_TEST(test_parse_good_line)
{
        ProcNetSocket s;
        char text[INET6_ADDRSTRLEN];
        int r;

        r = proc_net_parse_line(good_lines[_i].line, good_lines[_i].family, &s);
        ck_assert_msg(r == 1, "%s: expected 1, got %d", good_lines[_i].name, r);
        ck_assert_int_eq(s.family, good_lines[_i].family);
        ck_assert_ptr_nonnull(inet_ntop(s.family, s.address, text, sizeof(text)));
        ck_assert_str_eq(text, good_lines[_i].address);
        ck_assert_uint_eq(s.port, good_lines[_i].port);
        ck_assert_uint_eq(s.state, good_lines[_i].state);
        ck_assert_uint_eq(s.uid, good_lines[_i].uid);
        ck_assert_uint_eq(s.inode, good_lines[_i].inode);
}
END_TEST

START_TEST(test_parse_header)
{
        static const char *const headers[] = {
                "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid "
                " timeout inode                                                     \n",
                "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   "
                "uid  timeout inode ref pointer drops            \n",
                "  sl  local_address                         remote_address                        "
                "st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n",
        };
        ProcNetSocket s = { .inode = 77 };

        for (size_t i = 0; i < ELEMENTSOF(headers); i++) {
                ck_assert_int_eq(proc_net_parse_line(headers[i], AF_INET, &s), 0);
                ck_assert_int_eq(proc_net_parse_line(headers[i], AF_INET6, &s), 0);
        }
        ck_assert_uint_eq(s.inode, 77);
}
END_TEST

static const struct {
        const char *name;
        int family;
        const char *line;
} bad_lines[] = {
        { "empty", AF_INET, "" },
        { "newline only", AF_INET, "\n" },
        { "blanks only", AF_INET, "      \n" },
        { "no slot colon", AF_INET,
          "0 0100007F:0001 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1\n" },
        { "slot not a number", AF_INET,
          "x: 0100007F:0001 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1\n" },
        { "ipv6 address in an ipv4 file", AF_INET,
          "0: 00000000000000000000000001000000:0001 00000000000000000000000000000000:0000 0A "
          "00000000:00000000 00:00000000 00000000 0 0 1\n" },
        { "ipv4 address in an ipv6 file", AF_INET6,
          "0: 0100007F:0001 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1\n" },
        { "address one digit short", AF_INET,
          "0: 100007F:0001 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1\n" },
        { "port of five digits", AF_INET,
          "0: 0100007F:00001 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1\n" },
        { "port missing", AF_INET,
          "0: 0100007F 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1\n" },
        { "non-hex address", AF_INET,
          "0: 0100007G:0001 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1\n" },
        { "state of three digits", AF_INET,
          "0: 0100007F:0001 00000000:0000 00A 00000000:00000000 00:00000000 00000000 0 0 1\n" },
        { "queue without colon", AF_INET,
          "0: 0100007F:0001 00000000:0000 0A 0000000000000000 00:00000000 00000000 0 0 1\n" },
        { "timer of 17 digits", AF_INET,
          "0: 0100007F:0001 00000000:0000 0A 00000000:00000000 00:00000000000000000 00000000 0 0 "
          "1\n" },
        { "uid above 32 bits", AF_INET,
          "0: 0100007F:0001 00000000:0000 0A 00000000:00000000 00:00000000 00000000 4294967296 0 "
          "1\n" },
        { "negative uid", AF_INET,
          "0: 0100007F:0001 00000000:0000 0A 00000000:00000000 00:00000000 00000000 -1 0 1\n" },
        { "inode above 64 bits", AF_INET,
          "0: 0100007F:0001 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 "
          "18446744073709551616\n" },
        { "inode missing", AF_INET,
          "0: 0100007F:0001 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0\n" },
        { "cut after the local address", AF_INET, "   0: 0100007F:1538" },
        { "carriage return after the inode", AF_INET,
          "0: 0100007F:0001 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1\r\n" },
        { "letters glued to the inode", AF_INET,
          "0: 0100007F:0001 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1abc\n" },
        { "header word alone", AF_INET, "sl\n" },
};

START_TEST(test_parse_bad_line)
{
        ProcNetSocket s;
        int r;

        r = proc_net_parse_line(bad_lines[_i].line, bad_lines[_i].family, &s);
        ck_assert_msg(r == -EBADMSG, "%s: expected -EBADMSG, got %d", bad_lines[_i].name, r);
}
END_TEST

START_TEST(test_parse_bad_family)
{
        ProcNetSocket s;

        ck_assert_int_eq(proc_net_parse_line(good_lines[0].line, AF_UNIX, &s), -EINVAL);
}
END_TEST

/* Returns the entry of l for protocol, family and port, or NULL. */
static const AgentPort *find_port(const AgentPortList *l, int protocol, int family, uint16_t port)
{
        for (size_t i = 0; i < l->n_ports; i++)
                if (l->ports[i].protocol == protocol && l->ports[i].family == family &&
                    l->ports[i].port == port)
                        return &l->ports[i];
        return NULL;
}

static int bound_socket(int family, int type, const char *address, uint16_t *ret_port)
{
        struct sockaddr_storage ss = {};
        socklen_t len;
        int fd;

        fd = socket(family, type | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        if (family == AF_INET) {
                struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

                sin->sin_family = AF_INET;
                ck_assert_int_eq(inet_pton(AF_INET, address, &sin->sin_addr), 1);
                len = sizeof(*sin);
        } else {
                struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

                sin6->sin6_family = AF_INET6;
                ck_assert_int_eq(inet_pton(AF_INET6, address, &sin6->sin6_addr), 1);
                len = sizeof(*sin6);
        }
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&ss, len), 0);
        if (type == SOCK_STREAM)
                ck_assert_int_eq(listen(fd, 1), 0);

        len = sizeof(ss);
        ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
        *ret_port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                            : ((struct sockaddr_in6 *)&ss)->sin6_port);
        return fd;
}

static void read_own_comm(char comm[static 16])
{
        _cleanup_free_ char *text = NULL;
        size_t size;

        ck_assert_int_eq(read_full_file("/proc/self/comm", 64, &text, &size), 0);
        text[strcspn(text, "\n")] = '\0';
        snprintf(comm, 16, "%s", text);
}

START_TEST(test_collect_own_sockets)
{
        static const uint8_t loopback6[16] = { [15] = 1 };
        AgentPortList l = {};
        uint16_t tcp4, tcp6, udp4, connected_port;
        const AgentPort *p;
        char comm[16];
        int fds[4];

        fds[0] = bound_socket(AF_INET, SOCK_STREAM, "127.0.0.1", &tcp4);
        fds[1] = bound_socket(AF_INET6, SOCK_STREAM, "::1", &tcp6);
        fds[2] = bound_socket(AF_INET, SOCK_DGRAM, "127.0.0.1", &udp4);
        /* A connected UDP socket is a client, not something that listens. */
        fds[3] = bound_socket(AF_INET, SOCK_DGRAM, "127.0.0.1", &connected_port);
        struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(udp4) };
        peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ck_assert_int_eq(connect(fds[3], (struct sockaddr *)&peer, sizeof(peer)), 0);
        read_own_comm(comm);

        ck_assert_int_eq(agent_ports_collect("/proc", &l), 0);
        ck_assert(!l.truncated);

        p = find_port(&l, IPPROTO_TCP, AF_INET, tcp4);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq(p->pid, (uint32_t)getpid());
        ck_assert_str_eq(p->comm, comm);
        ck_assert_uint_eq(p->uid, geteuid());
        ck_assert_int_eq(memcmp(p->address, (uint8_t[]){ 127, 0, 0, 1 }, 4), 0);

        p = find_port(&l, IPPROTO_TCP, AF_INET6, tcp6);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq(p->pid, (uint32_t)getpid());
        ck_assert_int_eq(memcmp(p->address, loopback6, 16), 0);

        p = find_port(&l, IPPROTO_UDP, AF_INET, udp4);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq(p->pid, (uint32_t)getpid());

        ck_assert_ptr_null(find_port(&l, IPPROTO_UDP, AF_INET, connected_port));

        /* Sorted by protocol, then port. */
        for (size_t i = 1; i < l.n_ports; i++) {
                const AgentPort *a = &l.ports[i - 1], *b = &l.ports[i];

                ck_assert(a->protocol < b->protocol ||
                          (a->protocol == b->protocol && a->port <= b->port));
        }

        agent_port_list_done(&l);
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                close(fds[i]);
}
END_TEST

static void write_text(const char *dir, const char *name, const char *text)
{
        _cleanup_free_ char *path = NULL;
        FILE *f;

        ck_assert_int_ge(asprintf(&path, "%s/%s", dir, name), 0);
        f = fopen(path, "we");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_ge(fputs(text, f), 0);
        ck_assert_int_eq(fclose(f), 0);
}

static void make_process(const char *root, unsigned pid, const char *comm, unsigned fd,
                         const char *target)
{
        _cleanup_free_ char *dir = NULL, *link = NULL, *comm_line = NULL;

        ck_assert_int_ge(asprintf(&dir, "%s/%u/fd", root, pid), 0);
        ck_assert_int_eq(mkdir_p(dir, 0755), 0);
        ck_assert_int_ge(asprintf(&link, "%s/%u", dir, fd), 0);
        ck_assert_int_eq(symlink(target, link), 0);
        ck_assert_int_ge(asprintf(&comm_line, "%s\n", comm), 0);
        free(dir);
        ck_assert_int_ge(asprintf(&dir, "%s/%u", root, pid), 0);
        write_text(dir, "comm", comm_line);
}

/* A /proc-shaped directory with fixed contents: only net/tcp (no IPv6, no UDP), a malformed
 * line, and processes whose fd entries are symlinks like the kernel's. */
START_TEST(test_collect_owner_is_lowest_pid)
{
        char root[] = "/tmp/banger-test-ports.XXXXXX";
        _cleanup_free_ char *net = NULL;
        AgentPortList l = {};

        ck_assert_ptr_nonnull(mkdtemp(root));
        ck_assert_int_ge(asprintf(&net, "%s/net", root), 0);
        ck_assert_int_eq(mkdir(net, 0755), 0);
        write_text(net, "tcp",
                   "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt "
                   "  uid  timeout inode\n"
                   "   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000  "
                   "   0        0 500 1 0000000000000000 100 0 0 10 0\n"
                   "   1: garbage\n"
                   "   2: 0100007F:0051 00000000:0000 0A 00000000:00000000 00:00000000 00000000  "
                   "  33        0 501 1 0000000000000000 100 0 0 10 0\n"
                   "   3: 0100007F:0052 0100007F:0050 01 00000000:00000000 00:00000000 00000000  "
                   "   0        0 502 1 0000000000000000 100 0 0 10 0\n");
        /* A forked server: both processes hold the socket, the lower pid is named. */
        make_process(root, 300, "nginx-worker", 3, "socket:[500]");
        make_process(root, 200, "nginx", 4, "socket:[500]");
        make_process(root, 400, "other", 5, "pipe:[500]");
        make_process(root, 401, "other2", 6, "socket:[5000]");

        ck_assert_int_eq(agent_ports_collect(root, &l), 0);
        ck_assert_uint_eq(l.n_ports, 2);
        ck_assert(!l.truncated);
        ck_assert_uint_eq(l.ports[0].port, 80);
        ck_assert_uint_eq(l.ports[0].pid, 200);
        ck_assert_str_eq(l.ports[0].comm, "nginx");
        ck_assert_uint_eq(l.ports[1].port, 81);
        ck_assert_uint_eq(l.ports[1].uid, 33);
        ck_assert_uint_eq(l.ports[1].pid, 0);
        ck_assert_str_eq(l.ports[1].comm, "");
        agent_port_list_done(&l);
        ck_assert_int_eq(rm_rf(root), 0);
}
END_TEST

START_TEST(test_collect_truncates)
{
        char root[] = "/tmp/banger-test-ports.XXXXXX";
        _cleanup_free_ char *path = NULL;
        AgentPortList l = {};
        FILE *f;

        ck_assert_ptr_nonnull(mkdtemp(root));
        ck_assert_int_ge(asprintf(&path, "%s/net", root), 0);
        ck_assert_int_eq(mkdir(path, 0755), 0);
        free(path);
        ck_assert_int_ge(asprintf(&path, "%s/net/udp6", root), 0);
        f = fopen(path, "we");
        ck_assert_ptr_nonnull(f);
        for (unsigned i = 0; i < AGENT_PORTS_MAX + 10; i++)
                fprintf(f,
                        "%5u: 00000000000000000000000000000000:%04X "
                        "00000000000000000000000000000000:0000 07 "
                        "00000000:00000000 00:00000000 00000000     0        0 %u 2 "
                        "0000000000000000 0\n",
                        i, i % 65535 + 1, 1000 + i);
        ck_assert_int_eq(fclose(f), 0);

        ck_assert_int_eq(agent_ports_collect(root, &l), 0);
        ck_assert_uint_eq(l.n_ports, AGENT_PORTS_MAX);
        ck_assert(l.truncated);
        ck_assert_int_eq(l.ports[0].family, AF_INET6);
        ck_assert_int_eq(l.ports[0].protocol, IPPROTO_UDP);
        agent_port_list_done(&l);
        ck_assert_int_eq(rm_rf(root), 0);
}
END_TEST

START_TEST(test_collect_missing_root)
{
        AgentPortList l = {};

        /* A root without net files gives an empty list, and no processes are looked up. */
        ck_assert_int_eq(agent_ports_collect("/nonexistent-banger-proc", &l), 0);
        ck_assert_uint_eq(l.n_ports, 0);
        ck_assert_ptr_null(l.ports);
}
END_TEST

static Suite *agent_ports_suite(void)
{
        Suite *s = suite_create("agent-ports");
        TCase *tc = tcase_create("parse");

        tcase_add_loop_test(tc, test_parse_good_line, 0, ELEMENTSOF(good_lines));
        tcase_add_test(tc, test_parse_header);
        tcase_add_loop_test(tc, test_parse_bad_line, 0, ELEMENTSOF(bad_lines));
        tcase_add_test(tc, test_parse_bad_family);
        suite_add_tcase(s, tc);

        tc = tcase_create("collect");
        tcase_add_test(tc, test_collect_own_sockets);
        tcase_add_test(tc, test_collect_owner_is_lowest_pid);
        tcase_add_test(tc, test_collect_truncates);
        tcase_add_test(tc, test_collect_missing_root);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(agent_ports_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
