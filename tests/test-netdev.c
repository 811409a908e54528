/* Links through rtnetlink and /dev/net/tun. Every test runs in its own process (Check forks),
 * which moves into a new network and mount namespace with its own /sys, so the host's links are
 * never touched. Needs root. */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

#include "fileio.h"
#include "ipv4.h"
#include "macro.h"
#include "netdev.h"
#include "strv.h"

#define BRIDGE "bngtest0"
#define ALIAS  "banger"

static void enter_private_netns(void)
{
        ck_assert_int_eq(unshare(CLONE_NEWNET | CLONE_NEWNS), 0);
        ck_assert_int_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
        /* sysfs shows the links of the namespace that mounts it. */
        ck_assert_int_eq(mount("sysfs", "/sys", "sysfs", 0, NULL), 0);
}

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

/* Reads /sys/class/net/LINK/ATTRIBUTE without its trailing newline. */
static char *sys_attribute(const char *link, const char *attribute)
{
        _cleanup_free_ char *path = NULL;
        char *text = NULL;
        size_t n;

        ck_assert_int_ge(asprintf(&path, "/sys/class/net/%s/%s", link, attribute), 0);
        ck_assert_msg(read_full_file(path, 4096, &text, &n) == 0, "cannot read %s", path);
        if (n > 0 && text[n - 1] == '\n')
                text[n - 1] = '\0';
        return text;
}

static bool link_exists(const char *link)
{
        _cleanup_free_ char *path = NULL;

        ck_assert_int_ge(asprintf(&path, "/sys/class/net/%s", link), 0);
        return access(path, F_OK) == 0;
}

static bool link_is_up(const char *link)
{
        _cleanup_free_ char *flags = sys_attribute(link, "flags");

        return strtoul(flags, NULL, 16) & IFF_UP;
}

/* The master's name, or NULL when the link has none. */
static char *link_master(const char *link)
{
        _cleanup_free_ char *path = NULL;
        char target[PATH_MAX];
        ssize_t n;

        ck_assert_int_ge(asprintf(&path, "/sys/class/net/%s/master", link), 0);
        n = readlink(path, target, sizeof(target) - 1);
        if (n < 0)
                return NULL;
        target[n] = '\0';
        return strdup(strrchr(target, '/') + 1);
}

/* The IPv4 addresses of link as "A.B.C.D/N" lines, from ip(8). */
static char *ipv4_addresses(const char *link)
{
        _cleanup_free_ char *command = NULL;
        char line[256], *out = NULL;
        size_t size = 0;
        FILE *f, *p;

        ck_assert_int_ge(asprintf(&command, "ip -4 -o addr show dev %s | awk '{print $4}'", link),
                         0);
        p = popen(command, "r");
        ck_assert_ptr_nonnull(p);
        f = open_memstream(&out, &size);
        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof(line), p))
                fputs(line, f);
        ck_assert_int_eq(pclose(p), 0);
        fclose(f);
        return out;
}

static Ipv4Net net(const char *s)
{
        Ipv4Net n;

        ck_assert_int_eq(ipv4_net_parse(s, &n), 0);
        return n;
}

static bool list_has(const Ipv4Net *nets, size_t n, const char *s)
{
        Ipv4Net want = net(s);

        for (size_t i = 0; i < n; i++)
                if (nets[i].addr == want.addr && nets[i].prefix == want.prefix)
                        return true;
        return false;
}

START_TEST(netdev_index_cases)
{
        enter_private_netns();

        ck_assert_int_eq(netdev_index("lo"), 1);
        ck_assert_int_eq(netdev_index("nosuchlink"), -ENODEV);
        ck_assert_int_eq(netdev_index("0123456789abcdef"), -EINVAL);
        ck_assert_int_eq(netdev_index(""), -EINVAL);
        ck_assert_int_eq(netdev_index("a/b"), -EINVAL);
        ck_assert_int_eq(netdev_index("a b"), -EINVAL);
}
END_TEST

START_TEST(netdev_bridge_created_up)
{
        _cleanup_free_ char *alias = NULL, *addresses = NULL;
        Ipv4Net n = net("10.213.0.0/24"), got;

        enter_private_netns();

        ck_assert_int_eq(netdev_bridge_ensure(BRIDGE, &n, ALIAS), 0);

        ck_assert(link_exists(BRIDGE));
        ck_assert(link_exists(BRIDGE "/bridge"));
        ck_assert(link_is_up(BRIDGE));
        alias = sys_attribute(BRIDGE, "ifalias");
        ck_assert_str_eq(alias, ALIAS);
        addresses = ipv4_addresses(BRIDGE);
        ck_assert_str_eq(addresses, "10.213.0.1/24\n");

        ck_assert_int_eq(netdev_get_ipv4_net(BRIDGE, &got), 0);
        ck_assert_uint_eq(got.addr, n.addr);
        ck_assert_uint_eq(got.prefix, 24);
}
END_TEST

START_TEST(netdev_bridge_ensure_replaces_address)
{
        _cleanup_free_ char *addresses = NULL;
        Ipv4Net first = net("10.213.0.0/24"), second = net("10.231.0.0/24");

        enter_private_netns();

        ck_assert_int_eq(netdev_bridge_ensure(BRIDGE, &first, ALIAS), 0);
        run("ip addr add 192.0.2.7/28 dev " BRIDGE);
        run("ip addr add 10.213.0.9/24 dev " BRIDGE);

        ck_assert_int_eq(netdev_bridge_ensure(BRIDGE, &first, ALIAS), 0);
        addresses = ipv4_addresses(BRIDGE);
        ck_assert_str_eq(addresses, "10.213.0.1/24\n");
        free(addresses);

        ck_assert_int_eq(netdev_bridge_ensure(BRIDGE, &second, ALIAS), 0);
        addresses = ipv4_addresses(BRIDGE);
        ck_assert_str_eq(addresses, "10.231.0.1/24\n");
}
END_TEST

START_TEST(netdev_bridge_ensure_rejects)
{
        Ipv4Net n = net("10.213.0.0/24"), narrow = net("10.213.0.0/31"),
                loose = { IPV4_ADDR(10, 213, 0, 1), 24 };

        enter_private_netns();

        run("ip link add " BRIDGE " type ifb");
        ck_assert_int_eq(netdev_bridge_ensure(BRIDGE, &n, ALIAS), -EEXIST);
        ck_assert(!link_exists(BRIDGE "/bridge"));

        ck_assert_int_eq(netdev_bridge_ensure("0123456789abcdef", &n, ALIAS), -EINVAL);
        ck_assert_int_eq(netdev_bridge_ensure("bngtest1", &narrow, ALIAS), -EINVAL);
        ck_assert_int_eq(netdev_bridge_ensure("bngtest1", &loose, ALIAS), -EINVAL);
        ck_assert_int_eq(netdev_bridge_ensure("bngtest1", &n, ""), -EINVAL);
        ck_assert(!link_exists("bngtest1"));
}
END_TEST

START_TEST(netdev_tap_created_on_bridge)
{
        _cleanup_free_ char *owner = NULL, *group = NULL, *alias = NULL, *master = NULL;
        Ipv4Net n = net("10.213.0.0/24");

        enter_private_netns();
        ck_assert_int_eq(netdev_bridge_ensure(BRIDGE, &n, ALIAS), 0);

        ck_assert_int_eq(netdev_tap_ensure("bngtap1", 1234, 5678, BRIDGE, ALIAS), 0);

        owner = sys_attribute("bngtap1", "owner");
        ck_assert_str_eq(owner, "1234");
        group = sys_attribute("bngtap1", "group");
        ck_assert_str_eq(group, "5678");
        alias = sys_attribute("bngtap1", "ifalias");
        ck_assert_str_eq(alias, ALIAS);
        master = link_master("bngtap1");
        ck_assert_ptr_nonnull(master);
        ck_assert_str_eq(master, BRIDGE);
        ck_assert(link_is_up("bngtap1"));
}
END_TEST

START_TEST(netdev_tap_ensure_updates)
{
        _cleanup_free_ char *owner = NULL, *master = NULL;
        Ipv4Net n = net("10.213.0.0/24");

        enter_private_netns();
        ck_assert_int_eq(netdev_bridge_ensure(BRIDGE, &n, ALIAS), 0);
        ck_assert_int_eq(netdev_tap_ensure("bngtap1", 1234, 1234, BRIDGE, ALIAS), 0);
        run("ip link set bngtap1 nomaster down");

        ck_assert_int_eq(netdev_tap_ensure("bngtap1", 1234, 1234, BRIDGE, ALIAS), 0);
        master = link_master("bngtap1");
        ck_assert_ptr_nonnull(master);
        ck_assert_str_eq(master, BRIDGE);
        ck_assert(link_is_up("bngtap1"));

        ck_assert_int_eq(netdev_tap_ensure("bngtap1", 4321, 1234, BRIDGE, ALIAS), 0);
        owner = sys_attribute("bngtap1", "owner");
        ck_assert_str_eq(owner, "4321");
}
END_TEST

START_TEST(netdev_tap_ensure_while_open)
{
        _cleanup_close_ int fd = -EBADF;
        struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI };
        Ipv4Net n = net("10.213.0.0/24");

        enter_private_netns();
        ck_assert_int_eq(netdev_bridge_ensure(BRIDGE, &n, ALIAS), 0);
        ck_assert_int_eq(netdev_tap_ensure("bngtap1", 1234, 1234, BRIDGE, ALIAS), 0);

        /* Hold the tap the way a VMM does. */
        fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "bngtap1");
        ck_assert_int_eq(ioctl(fd, TUNSETIFF, &ifr), 0);

        ck_assert_int_eq(netdev_tap_ensure("bngtap1", 1234, 1234, BRIDGE, ALIAS), 0);
        ck_assert_int_eq(netdev_tap_ensure("bngtap1", 999, 1234, BRIDGE, ALIAS), -EBUSY);
}
END_TEST

START_TEST(netdev_tap_ensure_rejects)
{
        Ipv4Net n = net("10.213.0.0/24");

        enter_private_netns();

        ck_assert_int_eq(netdev_tap_ensure("bngtap1", 0, 0, BRIDGE, ALIAS), -ENODEV);
        ck_assert(!link_exists("bngtap1"));

        ck_assert_int_eq(netdev_bridge_ensure(BRIDGE, &n, ALIAS), 0);
        ck_assert_int_eq(netdev_tap_ensure(BRIDGE, 0, 0, BRIDGE, ALIAS), -EEXIST);

        run("ip tuntap add bngtap2 mode tap");
        ck_assert_int_eq(netdev_tap_ensure("bngtap2", 0, 0, BRIDGE, ALIAS), -EEXIST);
        run("ip link set bngtap2 alias other");
        ck_assert_int_eq(netdev_tap_ensure("bngtap2", 0, 0, BRIDGE, ALIAS), -EEXIST);
        ck_assert(!link_exists("bngtap2/master"));

        run("ip tuntap add bngtun3 mode tun");
        run("ip link set bngtun3 alias " ALIAS);
        ck_assert_int_eq(netdev_tap_ensure("bngtun3", 0, 0, BRIDGE, ALIAS), -EEXIST);

        ck_assert_int_eq(netdev_tap_ensure("bngtap-name-too-long", 0, 0, BRIDGE, ALIAS), -EINVAL);
        ck_assert_int_eq(netdev_tap_ensure("bngtap4", 0, 0, "no/such", ALIAS), -EINVAL);
        ck_assert(!link_exists("bngtap4"));
}
END_TEST

START_TEST(netdev_delete_links)
{
        _cleanup_close_ int fd = -EBADF;
        struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI };
        Ipv4Net n = net("10.213.0.0/24");

        enter_private_netns();
        ck_assert_int_eq(netdev_bridge_ensure(BRIDGE, &n, ALIAS), 0);
        ck_assert_int_eq(netdev_tap_ensure("bngtap1", 0, 0, BRIDGE, ALIAS), 0);
        ck_assert_int_eq(netdev_tap_ensure("bngtap2", 0, 0, BRIDGE, ALIAS), 0);

        ck_assert_int_eq(netdev_delete("bngtap1"), 0);
        ck_assert(!link_exists("bngtap1"));
        ck_assert_int_eq(netdev_delete("bngtap1"), 0);

        /* A tap that a VMM has open is deleted too. */
        fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "bngtap2");
        ck_assert_int_eq(ioctl(fd, TUNSETIFF, &ifr), 0);
        ck_assert_int_eq(netdev_delete("bngtap2"), 0);
        ck_assert(!link_exists("bngtap2"));

        ck_assert_int_eq(netdev_delete(BRIDGE), 0);
        ck_assert(!link_exists(BRIDGE));
        ck_assert_int_eq(netdev_delete("0123456789abcdef"), -EINVAL);
}
END_TEST

START_TEST(netdev_list_by_alias_sorted)
{
        _cleanup_strv_free_ char **names = NULL, **none = NULL;
        Ipv4Net n = net("10.213.0.0/24");

        enter_private_netns();
        ck_assert_int_eq(netdev_bridge_ensure(BRIDGE, &n, ALIAS), 0);
        ck_assert_int_eq(netdev_tap_ensure("bngtap2", 0, 0, BRIDGE, ALIAS), 0);
        ck_assert_int_eq(netdev_tap_ensure("bngtap10", 0, 0, BRIDGE, ALIAS), 0);
        ck_assert_int_eq(netdev_tap_ensure("bngtap1", 0, 0, BRIDGE, "other"), 0);
        run("ip link add bngdummy type ifb");
        run("ip link set bngdummy alias banger-not");

        ck_assert_int_eq(netdev_list_by_alias(ALIAS, &names), 0);
        ck_assert_uint_eq(strv_length(names), 3);
        ck_assert_str_eq(names[0], "bngtap10");
        ck_assert_str_eq(names[1], "bngtap2");
        ck_assert_str_eq(names[2], BRIDGE);

        ck_assert_int_eq(netdev_list_by_alias("unused", &none), 0);
        ck_assert_ptr_nonnull(none);
        ck_assert_uint_eq(strv_length(none), 0);
}
END_TEST

START_TEST(netdev_list_used_ipv4_tables)
{
        _cleanup_free_ Ipv4Net *all = NULL, *skipped = NULL;
        Ipv4Net n = net("10.213.0.0/24");
        size_t n_all, n_skipped;

        enter_private_netns();
        run("ip link set lo up");
        run("ip link add bngdummy type ifb");
        run("ip link set bngdummy up");
        run("ip addr add 192.0.2.5/28 dev bngdummy");
        run("ip route add default dev bngdummy");
        run("ip route add 10.77.0.0/16 dev lo table 100");
        run("ip route add 198.51.100.0/24 dev bngdummy table 4000");
        ck_assert_int_eq(netdev_bridge_ensure(BRIDGE, &n, ALIAS), 0);

        ck_assert_int_eq(netdev_list_used_ipv4(NULL, &all, &n_all), 0);
        ck_assert(list_has(all, n_all, "10.77.0.0/16"));
        ck_assert(list_has(all, n_all, "198.51.100.0/24"));
        ck_assert(list_has(all, n_all, "192.0.2.0/28"));
        ck_assert(list_has(all, n_all, "127.0.0.0/8"));
        ck_assert(list_has(all, n_all, "10.213.0.0/24"));
        ck_assert(list_has(all, n_all, "10.213.0.1/32"));
        ck_assert(!list_has(all, n_all, "0.0.0.0/0"));

        ck_assert_int_eq(netdev_list_used_ipv4(BRIDGE, &skipped, &n_skipped), 0);
        ck_assert(list_has(skipped, n_skipped, "10.77.0.0/16"));
        ck_assert(list_has(skipped, n_skipped, "192.0.2.0/28"));
        ck_assert(!list_has(skipped, n_skipped, "10.213.0.0/24"));
        ck_assert(!list_has(skipped, n_skipped, "10.213.0.1/32"));
}
END_TEST

START_TEST(netdev_used_ipv4_skip_missing_link)
{
        _cleanup_free_ Ipv4Net *nets = NULL;
        size_t n;

        enter_private_netns();
        run("ip link set lo up");

        ck_assert_int_eq(netdev_list_used_ipv4("nosuchlink", &nets, &n), 0);
        ck_assert(list_has(nets, n, "127.0.0.0/8"));
}
END_TEST

START_TEST(netdev_get_ipv4_net_errors)
{
        Ipv4Net n;

        enter_private_netns();
        run("ip link add bngdummy type ifb");

        ck_assert_int_eq(netdev_get_ipv4_net("nosuchlink", &n), -ENODEV);
        ck_assert_int_eq(netdev_get_ipv4_net("bngdummy", &n), -ENOENT);
}
END_TEST

START_TEST(netdev_enable_forwarding_sysctls)
{
        _cleanup_free_ char *forward = NULL, *localnet = NULL;
        Ipv4Net n = net("10.213.0.0/24");
        size_t size;

        enter_private_netns();
        ck_assert_int_eq(netdev_enable_forwarding(BRIDGE), -ENODEV);
        ck_assert_int_eq(netdev_enable_forwarding("../x"), -EINVAL);
        ck_assert_int_eq(netdev_bridge_ensure(BRIDGE, &n, ALIAS), 0);

        ck_assert_int_eq(netdev_enable_forwarding(BRIDGE), 0);

        ck_assert_int_eq(read_full_file("/proc/sys/net/ipv4/ip_forward", 64, &forward, &size), 0);
        ck_assert_str_eq(forward, "1\n");
        ck_assert_int_eq(read_full_file("/proc/sys/net/ipv4/conf/" BRIDGE "/route_localnet", 64,
                                        &localnet, &size),
                         0);
        ck_assert_str_eq(localnet, "1\n");
}
END_TEST

int main(void)
{
        Suite *s = suite_create("netdev");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        if (geteuid() != 0) {
                fprintf(stderr, "SKIP: netdev tests need root for network namespaces\n");
                return 77;
        }

        tcase_add_test(tc, netdev_index_cases);
        tcase_add_test(tc, netdev_bridge_created_up);
        tcase_add_test(tc, netdev_bridge_ensure_replaces_address);
        tcase_add_test(tc, netdev_bridge_ensure_rejects);
        tcase_add_test(tc, netdev_tap_created_on_bridge);
        tcase_add_test(tc, netdev_tap_ensure_updates);
        tcase_add_test(tc, netdev_tap_ensure_while_open);
        tcase_add_test(tc, netdev_tap_ensure_rejects);
        tcase_add_test(tc, netdev_delete_links);
        tcase_add_test(tc, netdev_list_by_alias_sorted);
        tcase_add_test(tc, netdev_list_used_ipv4_tables);
        tcase_add_test(tc, netdev_used_ipv4_skip_missing_link);
        tcase_add_test(tc, netdev_get_ipv4_net_errors);
        tcase_add_test(tc, netdev_enable_forwarding_sysctls);
        suite_add_tcase(s, tc);

        sr = srunner_create(s);
        srunner_set_fork_status(sr, CK_FORK);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
