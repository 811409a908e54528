/* banger's nftables rules. Every test runs in its own process (Check forks), which moves into a
 * new network namespace with an empty ruleset, so the host's rules are never touched. Needs
 * root. */

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ipv4.h"
#include "macro.h"
#include "netdev.h"
#include "nft.h"

#define BRIDGE "bngtest0"

/* An iptables-nft style filter table as Docker leaves it: FORWARD drops by default, and the
 * chains hold rules of their own. */
static const char ip_filter_table[] =
        "add table ip filter\n"
        "add chain ip filter INPUT { type filter hook input priority filter; policy drop; }\n"
        "add chain ip filter FORWARD { type filter hook forward priority filter; policy drop; }\n"
        "add chain ip filter OUTPUT { type filter hook output priority filter; policy accept; }\n"
        "add rule ip filter FORWARD iifname \"docker0\" accept comment \"docker\"\n"
        "add rule ip filter INPUT iifname \"lo\" accept\n";

static void enter_private_netns(void)
{
        ck_assert_int_eq(unshare(CLONE_NEWNET), 0);
}

/* Runs nft commands and returns their output. */
static char *nft(const char *commands)
{
        struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
        char *output;

        ck_assert_ptr_nonnull(ctx);
        ck_assert_int_eq(nft_ctx_buffer_output(ctx), 0);
        ck_assert_int_eq(nft_ctx_buffer_error(ctx), 0);
        ck_assert_msg(nft_run_cmd_from_buffer(ctx, commands) == 0, "'%s' failed: %s", commands,
                      nft_ctx_get_error_buffer(ctx));

        output = strdup(nft_ctx_get_output_buffer(ctx));
        ck_assert_ptr_nonnull(output);
        nft_ctx_free(ctx);
        return output;
}

static unsigned count(const char *haystack, const char *needle)
{
        unsigned n = 0;

        for (const char *p = strstr(haystack, needle); p; p = strstr(p + 1, needle))
                n++;
        return n;
}

static Ipv4Net subnet(void)
{
        return (Ipv4Net){ .addr = IPV4_ADDR(10, 213, 0, 0), .prefix = 24 };
}

static NftForward forward(const char *proto, uint16_t host_port, unsigned slot)
{
        NftForward f = {
                .host_port = host_port,
                .guest_addr = IPV4_ADDR(10, 213, 0, 1 + slot),
                .guest_port = 80,
                .slot = slot,
        };

        snprintf(f.proto, sizeof(f.proto), "%s", proto);
        return f;
}

START_TEST(nft_ensure_base_twice_one_copy)
{
        _cleanup_free_ char *ruleset = NULL;
        Ipv4Net n = subnet();

        enter_private_netns();

        ck_assert_int_eq(nft_ensure_base(BRIDGE, &n), 0);
        ck_assert_int_eq(nft_ensure_base(BRIDGE, &n), 0);

        ruleset = nft("list ruleset");
        ck_assert_uint_eq(count(ruleset, "table inet banger"), 1);
        ck_assert_uint_eq(count(ruleset, "chain postrouting"), 1);
        ck_assert_uint_eq(count(ruleset, "chain prerouting"), 1);
        ck_assert_uint_eq(count(ruleset, "chain output"), 1);
        ck_assert_uint_eq(count(ruleset, "chain forward"), 1);
        ck_assert_uint_eq(count(ruleset, "chain input"), 1);
        ck_assert_uint_eq(count(ruleset, "masquerade"), 2);
        ck_assert_uint_eq(
                count(ruleset, "ip saddr 10.213.0.0/24 ip daddr != 10.213.0.0/24 masquerade"), 1);
        ck_assert_uint_eq(count(ruleset, "ip saddr 127.0.0.0/8 oifname \"" BRIDGE "\" masquerade"),
                          1);
        ck_assert_uint_eq(count(ruleset, "iifname \"" BRIDGE "\" accept"), 1);
        ck_assert_uint_eq(count(ruleset, "ct state established,related accept"), 1);
        ck_assert_uint_eq(count(ruleset, "ct status dnat accept"), 1);
        ck_assert_uint_eq(count(ruleset, "udp dport 53 accept"), 1);
        ck_assert_uint_eq(count(ruleset, "tcp dport 53 accept"), 1);
        ck_assert_uint_eq(count(ruleset, "icmp accept"), 1);
}
END_TEST

START_TEST(nft_ensure_base_follows_subnet)
{
        _cleanup_free_ char *ruleset = NULL;
        Ipv4Net first = subnet(), second = { .addr = IPV4_ADDR(10, 231, 0, 0), .prefix = 24 };
        NftForward f = forward("tcp", 8080, 1);

        enter_private_netns();

        ck_assert_int_eq(nft_ensure_base(BRIDGE, &first), 0);
        ck_assert_int_eq(nft_add_forward(&f), 0);
        ck_assert_int_eq(nft_ensure_base("bngtest1", &second), 0);

        ruleset = nft("list ruleset");
        ck_assert_uint_eq(count(ruleset, "10.213.0.0/24"), 0);
        ck_assert_uint_eq(count(ruleset, "10.231.0.0/24"), 2);
        ck_assert_uint_eq(count(ruleset, BRIDGE), 0);
        ck_assert_uint_eq(count(ruleset, "dnat ip to 10.213.0.2:80"), 2);
}
END_TEST

START_TEST(nft_ensure_base_rejects)
{
        Ipv4Net n = subnet(), loose = { .addr = IPV4_ADDR(10, 213, 0, 1), .prefix = 24 };
        _cleanup_free_ char *ruleset = NULL;

        enter_private_netns();

        ck_assert_int_eq(nft_ensure_base("bad\"name", &n), -EINVAL);
        ck_assert_int_eq(nft_ensure_base("bad name", &n), -EINVAL);
        ck_assert_int_eq(nft_ensure_base("0123456789abcdef", &n), -EINVAL);
        ck_assert_int_eq(nft_ensure_base("", &n), -EINVAL);
        ck_assert_int_eq(nft_ensure_base(BRIDGE, &loose), -EINVAL);

        ruleset = nft("list ruleset");
        ck_assert_str_eq(ruleset, "");
}
END_TEST

START_TEST(nft_forward_add_list_remove)
{
        _cleanup_free_ NftForward *list = NULL, *after = NULL;
        _cleanup_free_ char *ruleset = NULL;
        NftForward web = forward("tcp", 8080, 1), dns = forward("udp", 5353, 2);
        Ipv4Net n = subnet();
        size_t n_list, n_after;

        enter_private_netns();
        ck_assert_int_eq(nft_ensure_base(BRIDGE, &n), 0);

        ck_assert_int_eq(nft_add_forward(&web), 0);
        ck_assert_int_eq(nft_add_forward(&dns), 0);

        ruleset = nft("list ruleset");
        ck_assert_uint_eq(count(ruleset, "fib daddr type local tcp dport 8080 dnat ip to "
                                         "10.213.0.2:80 comment \"banger slot 1\""),
                          2);
        ck_assert_uint_eq(count(ruleset, "udp dport 5353 dnat ip to 10.213.0.3:80"), 2);

        ck_assert_int_eq(nft_list_forwards(&list, &n_list), 0);
        ck_assert_uint_eq(n_list, 2);
        ck_assert_str_eq(list[0].proto, "tcp");
        ck_assert_uint_eq(list[0].host_port, 8080);
        ck_assert_uint_eq(list[0].guest_addr, IPV4_ADDR(10, 213, 0, 2));
        ck_assert_uint_eq(list[0].guest_port, 80);
        ck_assert_uint_eq(list[0].slot, 1);
        ck_assert_str_eq(list[1].proto, "udp");
        ck_assert_uint_eq(list[1].host_port, 5353);
        ck_assert_uint_eq(list[1].slot, 2);

        ck_assert_int_eq(nft_remove_forward("tcp", 8080), 0);
        ck_assert_int_eq(nft_list_forwards(&after, &n_after), 0);
        ck_assert_uint_eq(n_after, 1);
        ck_assert_str_eq(after[0].proto, "udp");
        ck_assert_int_eq(nft_remove_forward("tcp", 8080), -ENOENT);
}
END_TEST

START_TEST(nft_forward_duplicate_in_use)
{
        _cleanup_free_ NftForward *list = NULL;
        NftForward first = forward("tcp", 2222, 1), again = forward("tcp", 2222, 2);
        NftForward other_proto = forward("udp", 2222, 2);
        Ipv4Net n = subnet();
        size_t n_list;

        enter_private_netns();
        ck_assert_int_eq(nft_ensure_base(BRIDGE, &n), 0);

        ck_assert_int_eq(nft_add_forward(&first), 0);
        ck_assert_int_eq(nft_add_forward(&again), -EADDRINUSE);
        ck_assert_int_eq(nft_add_forward(&first), -EADDRINUSE);
        ck_assert_int_eq(nft_add_forward(&other_proto), 0);

        ck_assert_int_eq(nft_list_forwards(&list, &n_list), 0);
        ck_assert_uint_eq(n_list, 2);
        ck_assert_uint_eq(list[0].slot, 1);
}
END_TEST

START_TEST(nft_forward_rejects)
{
        NftForward valid = forward("tcp", 80, 1), bad_proto = forward("tcp", 80, 1);
        NftForward zero_host = forward("tcp", 0, 1), zero_guest = forward("udp", 80, 1);
        NftForward no_addr = forward("udp", 80, 1);
        Ipv4Net n = subnet();

        enter_private_netns();

        ck_assert_int_eq(nft_add_forward(&zero_host), -EINVAL);
        /* Without the table there is nowhere to add the rules. */
        ck_assert_int_eq(nft_add_forward(&valid), -ENOENT);

        ck_assert_int_eq(nft_ensure_base(BRIDGE, &n), 0);
        snprintf(bad_proto.proto, sizeof(bad_proto.proto), "sct");
        ck_assert_int_eq(nft_add_forward(&bad_proto), -EINVAL);
        zero_guest.guest_port = 0;
        ck_assert_int_eq(nft_add_forward(&zero_guest), -EINVAL);
        no_addr.guest_addr = 0;
        ck_assert_int_eq(nft_add_forward(&no_addr), -EINVAL);
        ck_assert_int_eq(nft_remove_forward("icmp", 80), -EINVAL);
        ck_assert_int_eq(nft_remove_forward(NULL, 80), -EINVAL);
        ck_assert_int_eq(nft_remove_forward("tcp", 0), -EINVAL);
        ck_assert_int_eq(nft_remove_forward("tcp", 80), -ENOENT);
}
END_TEST

START_TEST(nft_list_forwards_without_table)
{
        _cleanup_free_ NftForward *list = NULL;
        size_t n = 7;

        enter_private_netns();

        ck_assert_int_eq(nft_list_forwards(&list, &n), 0);
        ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(nft_remove_forwards_except_live)
{
        _cleanup_free_ NftForward *list = NULL;
        const unsigned live[] = { 2, 9 };
        Ipv4Net n = subnet();
        size_t n_list;

        enter_private_netns();
        ck_assert_int_eq(nft_ensure_base(BRIDGE, &n), 0);
        for (unsigned slot = 1; slot <= 3; slot++) {
                NftForward f = forward("tcp", (uint16_t)(8000 + slot), slot);

                ck_assert_int_eq(nft_add_forward(&f), 0);
        }

        ck_assert_int_eq(nft_remove_forwards_except(live, ELEMENTSOF(live)), 2);
        ck_assert_int_eq(nft_list_forwards(&list, &n_list), 0);
        ck_assert_uint_eq(n_list, 1);
        ck_assert_uint_eq(list[0].slot, 2);
        ck_assert_uint_eq(list[0].host_port, 8002);

        ck_assert_int_eq(nft_remove_forwards_except(live, ELEMENTSOF(live)), 0);
        ck_assert_int_eq(nft_remove_forwards_except(NULL, 0), 1);
}
END_TEST

START_TEST(nft_foreign_filter_rules)
{
        _cleanup_free_ char *filter = NULL, *after = NULL;
        Ipv4Net n = subnet();

        enter_private_netns();
        free(nft(ip_filter_table));

        ck_assert_int_eq(nft_ensure_base(BRIDGE, &n), 0);
        ck_assert_int_eq(nft_ensure_base(BRIDGE, &n), 0);

        filter = nft("list table ip filter");
        ck_assert_uint_eq(count(filter, "comment \"banger\""), 5);
        ck_assert_uint_eq(count(filter, "iifname \"" BRIDGE "\" accept comment \"banger\""), 1);
        ck_assert_uint_eq(count(filter, "oifname \"" BRIDGE "\" accept comment \"banger\""), 1);
        ck_assert_uint_eq(count(filter, "udp dport 53 accept comment \"banger\""), 1);
        ck_assert_uint_eq(count(filter, "tcp dport 53 accept comment \"banger\""), 1);
        ck_assert_uint_eq(count(filter, "icmp accept comment \"banger\""), 1);
        ck_assert_uint_eq(count(filter, "comment \"docker\""), 1);
        ck_assert_uint_eq(count(filter, "policy drop"), 2);

        ck_assert_int_eq(nft_remove_all(), 0);

        after = nft("list ruleset");
        ck_assert_uint_eq(count(after, "banger"), 0);
        ck_assert_uint_eq(count(after, "comment \"docker\""), 1);
        ck_assert_uint_eq(count(after, "iifname \"lo\" accept"), 1);
        ck_assert_int_eq(nft_remove_all(), 0);
}
END_TEST

START_TEST(nft_foreign_rules_readable_by_iptables)
{
        Ipv4Net n = subnet();

        if (access("/usr/sbin/iptables", X_OK) < 0) {
                fprintf(stderr, "SKIP: /usr/sbin/iptables is not installed\n");
                return;
        }

        enter_private_netns();
        free(nft(ip_filter_table));
        ck_assert_int_eq(nft_ensure_base(BRIDGE, &n), 0);

        /* iptables-nft rejects a chain that contains expressions it cannot translate. */
        ck_assert_int_eq(system("/usr/sbin/iptables -S FORWARD >/dev/null 2>&1"), 0);
        ck_assert_int_eq(system("/usr/sbin/iptables -S INPUT >/dev/null 2>&1"), 0);
        ck_assert_int_eq(system("/usr/sbin/iptables -S FORWARD | grep -q -- "
                                "'-i " BRIDGE " -m comment --comment banger -j ACCEPT'"),
                         0);
}
END_TEST

START_TEST(nft_foreign_regular_chain_untouched)
{
        _cleanup_free_ char *filter = NULL;
        Ipv4Net n = subnet();

        enter_private_netns();
        free(nft("add table ip filter\n"
                 "add chain ip filter FORWARD\n"
                 "add chain ip filter INPUT { type filter hook input priority filter; }\n"));

        ck_assert_int_eq(nft_ensure_base(BRIDGE, &n), 0);

        filter = nft("list chain ip filter FORWARD");
        ck_assert_uint_eq(count(filter, "banger"), 0);
}
END_TEST

static void run(const char *format, ...)
{
        _cleanup_free_ char *command = NULL;
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(&command, format, ap);
        va_end(ap);
        ck_assert_int_ge(r, 0);

        ck_assert_msg(system(command) == 0, "'%s' failed", command);
}

/* The guest: a network namespace behind a veth on the bridge, with address 10.213.0.2 and a
 * TCP server on port 80 that writes each client's address back to it. Runs in a child process;
 * ready and moved are pipes to and from the test. */
static _Noreturn void guest_serve(int ready, int moved, unsigned clients)
{
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(80) };
        int fd, one = 1;
        char c;

        if (unshare(CLONE_NEWNET) < 0 || write(ready, "n", 1) != 1 || read(moved, &c, 1) != 1)
                _exit(EXIT_FAILURE);

        if (system("ip link set lo up && ip link set bngveth1 up && "
                   "ip addr add 10.213.0.2/24 dev bngveth1 && "
                   "ip route add default via 10.213.0.1") != 0)
                _exit(EXIT_FAILURE);

        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0 ||
            write(ready, "l", 1) != 1)
                _exit(EXIT_FAILURE);

        for (unsigned i = 0; i < clients; i++) {
                struct sockaddr_in peer;
                socklen_t len = sizeof(peer);
                char text[INET_ADDRSTRLEN];
                int client = accept(fd, (struct sockaddr *)&peer, &len);

                if (client < 0)
                        _exit(EXIT_FAILURE);
                inet_ntop(AF_INET, &peer.sin_addr, text, sizeof(text));
                (void)write(client, text, strlen(text));
                close(client);
        }
        _exit(EXIT_SUCCESS);
}

/* Connects to addr:port and returns what the guest wrote back: the source address it saw. */
static char *connect_and_read(const char *addr, uint16_t port)
{
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
        struct timeval timeout = { .tv_sec = 10 };
        _cleanup_close_ int fd = -EBADF;
        char buf[64];
        ssize_t n;

        ck_assert_int_eq(inet_pton(AF_INET, addr, &sa.sin_addr), 1);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)), 0);
        ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout)), 0);
        ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
                      "connect to %s:%u failed: %m", addr, port);

        n = read(fd, buf, sizeof(buf) - 1);
        ck_assert_int_gt(n, 0);
        buf[n] = '\0';
        return strdup(buf);
}

START_TEST(nft_forward_reaches_guest)
{
        _cleanup_free_ char *from_loopback = NULL, *from_bridge = NULL;
        NftForward f = forward("tcp", 8080, 1);
        Ipv4Net n = subnet();
        int ready[2], moved[2], status;
        pid_t pid;
        char c;

        enter_private_netns();
        run("ip link set lo up");
        ck_assert_int_eq(netdev_bridge_ensure(BRIDGE, &n, "banger"), 0);
        run("ip link add bngveth0 type veth peer name bngveth1");
        run("ip link set bngveth0 master " BRIDGE " up");
        ck_assert_int_eq(pipe(ready), 0);
        ck_assert_int_eq(pipe(moved), 0);

        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0)
                guest_serve(ready[1], moved[0], 2);

        ck_assert_int_eq(read(ready[0], &c, 1), 1);
        run("ip link set bngveth1 netns %d", (int)pid);
        ck_assert_int_eq(write(moved[1], "m", 1), 1);
        ck_assert_int_eq(read(ready[0], &c, 1), 1);

        ck_assert_int_eq(netdev_enable_forwarding(BRIDGE), 0);
        ck_assert_int_eq(nft_ensure_base(BRIDGE, &n), 0);
        ck_assert_int_eq(nft_add_forward(&f), 0);

        /* Masquerade replaces 127.0.0.1 with the bridge address as the guest's peer. */
        from_loopback = connect_and_read("127.0.0.1", 8080);
        ck_assert_str_eq(from_loopback, "10.213.0.1");
        from_bridge = connect_and_read("10.213.0.1", 8080);
        ck_assert_str_eq(from_bridge, "10.213.0.1");

        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

START_TEST(nft_remove_all_without_rules)
{
        _cleanup_free_ char *ruleset = NULL;

        enter_private_netns();

        ck_assert_int_eq(nft_remove_all(), 0);
        ruleset = nft("list ruleset");
        ck_assert_str_eq(ruleset, "");
}
END_TEST

int main(void)
{
        Suite *s = suite_create("nft");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        if (geteuid() != 0) {
                fprintf(stderr, "SKIP: nft tests need root for network namespaces\n");
                return 77;
        }

        tcase_add_test(tc, nft_ensure_base_twice_one_copy);
        tcase_add_test(tc, nft_ensure_base_follows_subnet);
        tcase_add_test(tc, nft_ensure_base_rejects);
        tcase_add_test(tc, nft_forward_add_list_remove);
        tcase_add_test(tc, nft_forward_duplicate_in_use);
        tcase_add_test(tc, nft_forward_rejects);
        tcase_add_test(tc, nft_list_forwards_without_table);
        tcase_add_test(tc, nft_remove_forwards_except_live);
        tcase_add_test(tc, nft_foreign_filter_rules);
        tcase_add_test(tc, nft_foreign_rules_readable_by_iptables);
        tcase_add_test(tc, nft_foreign_regular_chain_untouched);
        tcase_add_test(tc, nft_forward_reaches_guest);
        tcase_add_test(tc, nft_remove_all_without_rules);
        suite_add_tcase(s, tc);

        sr = srunner_create(s);
        srunner_set_fork_status(sr, CK_FORK);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
