/* The guest network module: the kernel command line parser, link lookup, resolv.conf and hosts
 * files, and, as root in a private network namespace, the link configuration itself. */

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "guest-net.h"
#include "macro.h"

#define NET_KEYS "banger.address=10.0.0.2/24 banger.gateway=10.0.0.1 banger.dns=10.0.0.1"

static char *make_tmpdir(void)
{
        char *dir = strdup("/tmp/banger-test-guest-net.XXXXXX");

        ck_assert_ptr_nonnull(dir);
        ck_assert_ptr_nonnull(mkdtemp(dir));
        return dir;
}

static void rm_rf_freep(char **dir)
{
        if (*dir) {
                (void)rm_rf(*dir);
                free(*dir);
        }
}
#define _cleanup_tmpdir_ _cleanup_(rm_rf_freep)

static char *read_text(const char *dir, const char *name)
{
        _cleanup_free_ char *path = NULL;
        char *text = NULL;
        size_t size;

        ck_assert_int_ge(asprintf(&path, "%s/%s", dir, name), 0);
        ck_assert_int_eq(read_full_file(path, 1024 * 1024, &text, &size), 0);
        return text;
}

static void write_text(const char *dir, const char *name, const char *text)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_fclose_ FILE *f = NULL;

        ck_assert_int_ge(asprintf(&path, "%s/%s", dir, name), 0);
        f = fopen(path, "we");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(fputs(text, f) >= 0, 1);
}

static const char *ntoa(struct in_addr a, char buf[INET_ADDRSTRLEN])
{
        return inet_ntop(AF_INET, &a, buf, INET_ADDRSTRLEN);
}

static const struct {
        const char *cmdline;
        const char *address, *gateway, *dns;
        unsigned prefix;
} valid_cases[] = {
        { "console=ttyS0 reboot=t " NET_KEYS "\n", "10.0.0.2", "10.0.0.1", "10.0.0.1", 24 },
        { "banger.dns=192.168.7.53\tbanger.gateway=192.168.7.1 banger.address=192.168.7.200/24",
          "192.168.7.200", "192.168.7.1", "192.168.7.53", 24 },
        { "\"banger.address=10.1.2.3/8\" banger.gateway=\"10.0.0.1\" banger.dns=\"8.8.8.8\"",
          "10.1.2.3", "10.0.0.1", "8.8.8.8", 8 },
        /* A /31 has no network or broadcast address, so both of its addresses are hosts. */
        { "banger.address=10.0.0.0/31 banger.gateway=10.0.0.1 banger.dns=10.0.0.1", "10.0.0.0",
          "10.0.0.1", "10.0.0.1", 31 },
        { "banger.address=172.16.255.254/12 banger.gateway=172.31.0.1 banger.dns=127.0.0.53",
          "172.16.255.254", "172.31.0.1", "127.0.0.53", 12 },
        /* Keys that only start like ours are other parameters. */
        { "banger.addressX=1 banger.address.old=2 banger.dnsserver=x " NET_KEYS, "10.0.0.2",
          "10.0.0.1", "10.0.0.1", 24 },
        /* The kernel reads an unterminated quote to the end of the line. */
        { "banger.address=10.0.0.2/24 banger.gateway=10.0.0.1 banger.dns=\"10.0.0.9", "10.0.0.2",
          "10.0.0.1", "10.0.0.9", 24 },
        { NET_KEYS " -- banger.address=nonsense", "10.0.0.2", "10.0.0.1", "10.0.0.1", 24 },
};

START_TEST(test_parse_valid)
{
        GuestNet net = {};
        char error[GUEST_NET_ERROR_MAX] = "", buf[INET_ADDRSTRLEN];

        ck_assert_int_eq(
                guest_net_parse_cmdline(valid_cases[_i].cmdline, &net, error, sizeof(error)), 1);
        ck_assert_str_eq(error, "");
        ck_assert_str_eq(ntoa(net.address, buf), valid_cases[_i].address);
        ck_assert_uint_eq(net.prefix, valid_cases[_i].prefix);
        ck_assert_str_eq(ntoa(net.gateway, buf), valid_cases[_i].gateway);
        ck_assert_str_eq(ntoa(net.dns, buf), valid_cases[_i].dns);
}
END_TEST

static const char *const no_network_cases[] = {
        "",
        "   \n",
        "console=ttyS0 reboot=t panic=-1 root=/dev/vda rw",
        "banger.addressX=10.0.0.2/24 banger.gateway.old=1 banger_dns=10.0.0.1",
        "BANGER.ADDRESS=10.0.0.2/24",
        /* Inside quotes, a key is part of another parameter's value. */
        "init.arg=\"x banger.address=10.0.0.2/24 banger.gateway=10.0.0.1 banger.dns=1.1.1.1\"",
        /* Parameters after "--" belong to init. */
        ("console=ttyS0 -- " NET_KEYS),
};

START_TEST(test_parse_no_network)
{
        GuestNet net = { .prefix = 77 };
        char error[GUEST_NET_ERROR_MAX] = "";

        ck_assert_int_eq(guest_net_parse_cmdline(no_network_cases[_i], &net, error, sizeof(error)),
                         0);
        ck_assert_uint_eq(net.prefix, 77);
        ck_assert_str_eq(error, "");
}
END_TEST

#define WITH_GW_DNS " banger.gateway=10.0.0.1 banger.dns=10.0.0.1"
#define WITH_ADDR   "banger.address=10.0.0.2/24 "

static const struct {
        const char *cmdline;
        const char *message; /* a part of the error message */
} invalid_cases[] = {
        { "banger.address=10.0.0.2" WITH_GW_DNS,
          "Invalid banger.address='10.0.0.2': the prefix length is missing, expected A.B.C.D/N" },
        { "banger.address=10.0.0.2/33" WITH_GW_DNS,
          "Invalid banger.address='10.0.0.2/33': the prefix length must be a number from 1 to "
          "32" },
        { "banger.address=10.0.0.2/0" WITH_GW_DNS, "'10.0.0.2/0': the prefix length must be" },
        { "banger.address=10.0.0.2/024" WITH_GW_DNS, "'10.0.0.2/024': the prefix length must" },
        { "banger.address=10.0.0.2/2x" WITH_GW_DNS, "'10.0.0.2/2x': the prefix length must" },
        { "banger.address=10.0.0.2/-1" WITH_GW_DNS, "'10.0.0.2/-1': the prefix length must" },
        { "banger.address=10.0.0.2/" WITH_GW_DNS, "'10.0.0.2/': the prefix length after '/'" },
        { "banger.address=10.0.0.2/24/24" WITH_GW_DNS, "'10.0.0.2/24/24': the prefix length" },
        { "banger.address=10.0.0.256/24" WITH_GW_DNS,
          "Invalid banger.address='10.0.0.256/24': a number is above 255" },
        { "banger.address=10.0.0.1000/24" WITH_GW_DNS, "'10.0.0.1000/24': a number is above 255" },
        { "banger.address=010.0.0.2/24" WITH_GW_DNS, "'010.0.0.2/24': a number has a leading" },
        { "banger.address=10.0.2/24" WITH_GW_DNS, "'10.0.2/24': expected four numbers" },
        { "banger.address=10.0.0.0.2/24" WITH_GW_DNS, "'10.0.0.0.2/24': expected four numbers" },
        { "banger.address=10..0.2/24" WITH_GW_DNS, "'10..0.2/24': expected four numbers" },
        { "banger.address=10.0.0.2./24" WITH_GW_DNS, "'10.0.0.2./24': expected four numbers" },
        { "banger.address=+10.0.0.2/24" WITH_GW_DNS, "'+10.0.0.2/24': expected four numbers" },
        { "banger.address= 10.0.0.2/24" WITH_GW_DNS, "Invalid banger.address='': the prefix" },
        { "banger.address=" WITH_GW_DNS, "Invalid banger.address=''" },
        { "banger.address=\"10.0.0.2/24 x\"" WITH_GW_DNS, "'10.0.0.2/24 x': the prefix length" },
        { WITH_ADDR "banger.gateway=10.0.0.256 banger.dns=10.0.0.1",
          "Invalid banger.gateway='10.0.0.256': a number is above 255, expected A.B.C.D" },
        { WITH_ADDR "banger.gateway=10.0.0.1 banger.dns=256.0.0.1",
          "Invalid banger.dns='256.0.0.1': a number is above 255, expected A.B.C.D" },
        { WITH_ADDR "banger.gateway=10.0.0.1/24 banger.dns=10.0.0.1",
          "Invalid banger.gateway='10.0.0.1/24': expected four numbers" },
        /* Repeated keys, with the same or another value. */
        { NET_KEYS " banger.address=10.0.0.3/24",
          "banger.address is given twice, as '10.0.0.2/24' and '10.0.0.3/24', expected it once" },
        { NET_KEYS " banger.dns=10.0.0.1", "banger.dns is given twice" },
        { "\"banger.gateway=10.0.0.1\" " NET_KEYS, "banger.gateway is given twice" },
        { "banger.address" WITH_GW_DNS,
          "banger.address has no value, expected banger.address=A.B.C.D/N" },
        { "banger.address =10.0.0.2/24" WITH_GW_DNS, "banger.address has no value" },
        /* Missing keys. */
        { "banger.address=10.0.0.2/24 banger.dns=10.0.0.1",
          "banger.gateway= is missing on the kernel command line, expected "
          "banger.gateway=A.B.C.D" },
        { "banger.dns=10.0.0.1", "banger.address= is missing" },
        { "banger.address=10.0.0.2/24 banger.gateway=10.0.0.1", "banger.dns= is missing" },
        /* Addresses that parse but cannot work. */
        { "banger.address=10.0.0.0/24" WITH_GW_DNS,
          "Invalid banger.address='10.0.0.0/24': it is the network or broadcast address" },
        { "banger.address=10.0.0.255/24" WITH_GW_DNS, "'10.0.0.255/24': it is the network" },
        { "banger.address=127.0.0.2/8 banger.gateway=127.0.0.1 banger.dns=10.0.0.1",
          "'127.0.0.2/8': it is not a unicast address for a host" },
        { "banger.address=0.0.0.2/8 banger.gateway=0.0.0.1 banger.dns=10.0.0.1",
          "'0.0.0.2/8': it is not a unicast address" },
        { "banger.address=224.0.0.2/24 banger.gateway=224.0.0.1 banger.dns=10.0.0.1",
          "'224.0.0.2/24': it is not a unicast address" },
        { WITH_ADDR "banger.gateway=10.0.1.1 banger.dns=10.0.0.1",
          "Invalid banger.gateway='10.0.1.1' for banger.address='10.0.0.2/24': it is outside "
          "the subnet of banger.address" },
        { WITH_ADDR "banger.gateway=10.0.0.2 banger.dns=10.0.0.1",
          "banger.gateway='10.0.0.2' for banger.address='10.0.0.2/24': it is the guest's own" },
        { WITH_ADDR "banger.gateway=10.0.0.255 banger.dns=10.0.0.1",
          "banger.gateway='10.0.0.255' for banger.address='10.0.0.2/24': it is the network" },
        { "banger.address=10.0.0.2/32" WITH_GW_DNS, "it is outside the subnet" },
        { WITH_ADDR "banger.gateway=10.0.0.1 banger.dns=0.0.0.0",
          "Invalid banger.dns='0.0.0.0': it is not a unicast address" },
        { WITH_ADDR "banger.gateway=10.0.0.1 banger.dns=255.255.255.255",
          "banger.dns='255.255.255.255': it is not a unicast address" },
        { WITH_ADDR "banger.gateway=10.0.0.1 banger.dns=1111111111111111111111111111111111111111"
                    "11111111111111111111111111111111",
          "banger.dns='1111111111111111111111111111111111111111111111111111111111111111': the "
          "value is too long" },
};

START_TEST(test_parse_invalid)
{
        GuestNet net = { .prefix = 77 };
        char error[GUEST_NET_ERROR_MAX] = "";

        ck_assert_int_eq(
                guest_net_parse_cmdline(invalid_cases[_i].cmdline, &net, error, sizeof(error)),
                -EINVAL);
        ck_assert_msg(strstr(error, invalid_cases[_i].message), "error '%s' lacks '%s'", error,
                      invalid_cases[_i].message);
        ck_assert_uint_eq(net.prefix, 77);
}
END_TEST

START_TEST(test_parse_error_buffer_small)
{
        GuestNet net;
        char error[8];

        memset(error, 'x', sizeof(error));
        ck_assert_int_eq(guest_net_parse_cmdline("banger.address=1", &net, error, 8), -EINVAL);
        ck_assert_str_eq(error, "Invalid");
        ck_assert_int_eq(guest_net_parse_cmdline("banger.address=1", &net, NULL, 0), -EINVAL);
}
END_TEST

static void make_link(const char *sysfs, const char *name, const char *type, const char *ifindex)
{
        _cleanup_free_ char *dir = NULL;

        ck_assert_int_ge(asprintf(&dir, "%s/%s", sysfs, name), 0);
        ck_assert_int_eq(mkdir(dir, 0755), 0);
        if (type)
                write_text(dir, "type", type);
        if (ifindex)
                write_text(dir, "ifindex", ifindex);
}

START_TEST(test_find_link_lowest_ifindex)
{
        _cleanup_tmpdir_ char *sysfs = make_tmpdir();
        char link[IFNAMSIZ] = "";

        make_link(sysfs, "lo", "772\n", "1\n");
        make_link(sysfs, "sit0", "776\n", "2\n");
        make_link(sysfs, "eth1", "1\n", "4\n");
        make_link(sysfs, "eth0", "1\n", "3\n");
        make_link(sysfs, "broken", "1\n", "x\n");
        make_link(sysfs, "notype", NULL, "2\n");
        ck_assert_int_eq(guest_net_find_link(sysfs, link), 0);
        ck_assert_str_eq(link, "eth0");
}
END_TEST

START_TEST(test_find_link_none)
{
        _cleanup_tmpdir_ char *sysfs = make_tmpdir();
        _cleanup_free_ char *missing = NULL;
        char link[IFNAMSIZ] = "unchanged";

        ck_assert_int_eq(guest_net_find_link(sysfs, link), -ENODEV);
        make_link(sysfs, "lo", "772\n", "1\n");
        ck_assert_int_eq(guest_net_find_link(sysfs, link), -ENODEV);
        ck_assert_str_eq(link, "unchanged");

        ck_assert_int_ge(asprintf(&missing, "%s/missing", sysfs), 0);
        ck_assert_int_eq(guest_net_find_link(missing, link), -ENOENT);
}
END_TEST

/* Returns whether dir contains a file whose name starts with ".", left behind by a write. */
static bool has_temporary_file(const char *dir)
{
        _cleanup_free_ char *command = NULL;

        ck_assert_int_ge(asprintf(&command, "ls -A '%s' | grep -q '^\\.'", dir), 0);
        return system(command) == 0;
}

static struct in_addr addr(const char *s)
{
        struct in_addr a;

        ck_assert_int_eq(inet_pton(AF_INET, s, &a), 1);
        return a;
}

START_TEST(test_resolv_conf_creates_etc)
{
        _cleanup_tmpdir_ char *root = make_tmpdir();
        _cleanup_free_ char *etc = NULL, *text = NULL;
        struct stat st;

        ck_assert_int_ge(asprintf(&etc, "%s/etc", root), 0);
        ck_assert_int_eq(guest_net_write_resolv_conf(etc, addr("10.0.0.1")), 0);
        text = read_text(etc, "resolv.conf");
        ck_assert_str_eq(text, "nameserver 10.0.0.1\nsearch banger\n");
        ck_assert_int_eq(stat(etc, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0755);
        ck_assert(!has_temporary_file(etc));
}
END_TEST

START_TEST(test_resolv_conf_replaces_file)
{
        _cleanup_tmpdir_ char *etc = make_tmpdir();
        _cleanup_free_ char *text = NULL, *path = NULL;
        struct stat st;

        write_text(etc, "resolv.conf", "nameserver 8.8.8.8\nnameserver 8.8.4.4\noptions x\n");
        ck_assert_int_eq(guest_net_write_resolv_conf(etc, addr("192.168.1.53")), 0);
        text = read_text(etc, "resolv.conf");
        ck_assert_str_eq(text, "nameserver 192.168.1.53\nsearch banger\n");
        ck_assert_int_ge(asprintf(&path, "%s/resolv.conf", etc), 0);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0644);
        ck_assert(!has_temporary_file(etc));
}
END_TEST

START_TEST(test_resolv_conf_replaces_symlink)
{
        _cleanup_tmpdir_ char *etc = make_tmpdir();
        _cleanup_free_ char *text = NULL, *link = NULL, *target = NULL;
        struct stat st;

        /* An image's link to a stub resolver's file: the link goes, its target stays. */
        write_text(etc, "stub-resolv.conf", "nameserver 127.0.0.53\n");
        ck_assert_int_ge(asprintf(&link, "%s/resolv.conf", etc), 0);
        ck_assert_int_eq(symlink("stub-resolv.conf", link), 0);
        ck_assert_int_eq(guest_net_write_resolv_conf(etc, addr("10.0.0.1")), 0);

        ck_assert_int_eq(lstat(link, &st), 0);
        ck_assert(S_ISREG(st.st_mode));
        text = read_text(etc, "resolv.conf");
        ck_assert_str_eq(text, "nameserver 10.0.0.1\nsearch banger\n");
        target = read_text(etc, "stub-resolv.conf");
        ck_assert_str_eq(target, "nameserver 127.0.0.53\n");

        /* A dangling link is replaced the same way. */
        ck_assert_int_eq(unlink(link), 0);
        ck_assert_int_eq(symlink("/nonexistent/resolv.conf", link), 0);
        ck_assert_int_eq(guest_net_write_resolv_conf(etc, addr("10.0.0.1")), 0);
        ck_assert_int_eq(lstat(link, &st), 0);
        ck_assert(S_ISREG(st.st_mode));
}
END_TEST

START_TEST(test_resolv_conf_errors)
{
        _cleanup_tmpdir_ char *root = make_tmpdir();
        _cleanup_free_ char *etc_file = NULL, *dir = NULL;

        /* etc is a file. */
        write_text(root, "etc", "");
        ck_assert_int_ge(asprintf(&etc_file, "%s/etc", root), 0);
        ck_assert_int_eq(guest_net_write_resolv_conf(etc_file, addr("10.0.0.1")), -ENOTDIR);

        /* resolv.conf is a non-empty directory: nothing is written, no temporary file stays. */
        ck_assert_int_ge(asprintf(&dir, "%s/resolv.conf", root), 0);
        ck_assert_int_eq(mkdir(dir, 0755), 0);
        write_text(dir, "x", "");
        ck_assert_int_lt(guest_net_write_resolv_conf(root, addr("10.0.0.1")), 0);
        ck_assert(!has_temporary_file(root));
}
END_TEST

#define DEFAULT_HOSTS "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n"

static const struct {
        const char *before; /* NULL: no hosts file */
        const char *after;
        int result;
} hosts_cases[] = {
        { NULL, DEFAULT_HOSTS "127.0.1.1\tdev1\n", 1 },
        { "", "127.0.1.1\tdev1\n", 1 },
        { "127.0.0.1 localhost\n", "127.0.0.1 localhost\n127.0.1.1\tdev1\n", 1 },
        { "127.0.0.1 localhost", "127.0.0.1 localhost\n127.0.1.1\tdev1\n", 1 },
        { "10.0.0.2  web dev1  # the VM\n", "10.0.0.2  web dev1  # the VM\n", 0 },
        { "\t10.0.0.2\tdev1\r\n", "\t10.0.0.2\tdev1\r\n", 0 },
        { "10.0.0.2 web#dev1\n", "10.0.0.2 web#dev1\n127.0.1.1\tdev1\n", 1 },
        { "# 127.0.1.1 dev1\n", "# 127.0.1.1 dev1\n127.0.1.1\tdev1\n", 1 },
        { "dev1 web\n", "dev1 web\n127.0.1.1\tdev1\n", 1 },
        { "10.0.0.2 dev10 dev\n", "10.0.0.2 dev10 dev\n127.0.1.1\tdev1\n", 1 },
};

START_TEST(test_hosts_entry)
{
        _cleanup_tmpdir_ char *etc = make_tmpdir();
        _cleanup_free_ char *text = NULL;

        if (hosts_cases[_i].before)
                write_text(etc, "hosts", hosts_cases[_i].before);
        ck_assert_int_eq(guest_net_add_hosts_entry(etc, "dev1"), hosts_cases[_i].result);
        text = read_text(etc, "hosts");
        ck_assert_str_eq(text, hosts_cases[_i].after);
        ck_assert(!has_temporary_file(etc));

        /* A second call finds the name. */
        ck_assert_int_eq(guest_net_add_hosts_entry(etc, "dev1"), 0);
}
END_TEST

START_TEST(test_hosts_symlink_and_binary)
{
        _cleanup_tmpdir_ char *etc = make_tmpdir();
        _cleanup_free_ char *link = NULL, *text = NULL, *target = NULL;
        struct stat st;
        int fd;

        write_text(etc, "hosts.image", "127.0.0.1 localhost\n");
        ck_assert_int_ge(asprintf(&link, "%s/hosts", etc), 0);
        ck_assert_int_eq(symlink("hosts.image", link), 0);
        ck_assert_int_eq(guest_net_add_hosts_entry(etc, "dev1"), 1);
        ck_assert_int_eq(lstat(link, &st), 0);
        ck_assert(S_ISREG(st.st_mode));
        text = read_text(etc, "hosts");
        ck_assert_str_eq(text, "127.0.0.1 localhost\n127.0.1.1\tdev1\n");
        target = read_text(etc, "hosts.image");
        ck_assert_str_eq(target, "127.0.0.1 localhost\n");

        /* A NUL byte: not a hosts file, left as it is. */
        fd = open(link, O_WRONLY | O_TRUNC | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, "a\0b\n", 4), 4);
        close(fd);
        ck_assert_int_eq(guest_net_add_hosts_entry(etc, "dev1"), -EINVAL);
        ck_assert_int_eq(stat(link, &st), 0);
        ck_assert_int_eq(st.st_size, 4);
}
END_TEST

/* Moves the calling test process, which Check forked, into a new network namespace. Returns
 * false with a message when that is not possible here. */
static bool enter_private_netns(void)
{
        if (geteuid() != 0) {
                fprintf(stderr, "SKIP: configuring links needs root\n");
                return false;
        }
        if (getenv("CK_FORK") && streq(getenv("CK_FORK"), "no")) {
                fprintf(stderr, "SKIP: configuring links needs CK_FORK unset, to fork tests\n");
                return false;
        }
        if (unshare(CLONE_NEWNET) < 0) {
                fprintf(stderr, "SKIP: unshare(CLONE_NEWNET) failed: %s\n", strerror(errno));
                return false;
        }
        return true;
}

static struct in_addr link_address(const char *link, unsigned long request)
{
        _cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq ifr = {};
        struct sockaddr_in sin;

        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", link);
        ck_assert_int_eq(ioctl(fd, request, &ifr), 0);
        memcpy(&sin, &ifr.ifr_addr, sizeof(sin));
        return sin.sin_addr;
}

static short link_flags(const char *link)
{
        _cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq ifr = {};

        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", link);
        ck_assert_int_eq(ioctl(fd, SIOCGIFFLAGS, &ifr), 0);
        return ifr.ifr_flags;
}

/* Returns the number of default routes in /proc/net/route through gateway on link. */
static unsigned default_routes(const char *link, struct in_addr gateway)
{
        _cleanup_fclose_ FILE *f = fopen("/proc/net/route", "re");
        char line[512], name[IFNAMSIZ + 1];
        unsigned dest, gw, mask, n = 0;

        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "%16s %x %x %*x %*d %*d %*d %x", name, &dest, &gw, &mask) == 4 &&
                    streq(name, link) && dest == 0 && mask == 0 && gw == gateway.s_addr)
                        n++;
        return n;
}

START_TEST(test_configure_link)
{
        GuestNet net = { .address = addr("10.9.0.2"),
                         .prefix = 24,
                         .gateway = addr("10.9.0.1"),
                         .dns = addr("10.9.0.1") };
        char buf[INET_ADDRSTRLEN];

        if (!enter_private_netns())
                return;
        ck_assert_int_eq(system("ip link add vguest type veth peer name vhost && "
                                "ip link set vhost up"),
                         0);

        ck_assert_int_eq(guest_net_configure_loopback(), 0);
        ck_assert_str_eq(ntoa(link_address("lo", SIOCGIFADDR), buf), "127.0.0.1");
        ck_assert_str_eq(ntoa(link_address("lo", SIOCGIFNETMASK), buf), "255.0.0.0");
        ck_assert(link_flags("lo") & IFF_UP);

        ck_assert_int_eq(guest_net_configure_link("vguest", &net), 0);
        ck_assert_str_eq(ntoa(link_address("vguest", SIOCGIFADDR), buf), "10.9.0.2");
        ck_assert_str_eq(ntoa(link_address("vguest", SIOCGIFNETMASK), buf), "255.255.255.0");
        ck_assert_str_eq(ntoa(link_address("vguest", SIOCGIFBRDADDR), buf), "10.9.0.255");
        ck_assert(link_flags("vguest") & IFF_UP);
        ck_assert_uint_eq(default_routes("vguest", net.gateway), 1);

        /* Again, as after a restart of the configuration: the route exists already. */
        ck_assert_int_eq(guest_net_configure_link("vguest", &net), 0);
        ck_assert_uint_eq(default_routes("vguest", net.gateway), 1);
}
END_TEST

START_TEST(test_configure_link_errors)
{
        GuestNet net = { .address = addr("10.9.0.2"),
                         .prefix = 24,
                         .gateway = addr("10.9.0.1"),
                         .dns = addr("10.9.0.1") };

        if (!enter_private_netns())
                return;
        ck_assert_int_eq(guest_net_configure_link("nosuchlink", &net), -ENODEV);
        ck_assert_int_eq(guest_net_configure_link("a-name-longer-than-15", &net), -EINVAL);
}
END_TEST

static Suite *guest_net_suite(void)
{
        Suite *s = suite_create("guest-net");
        TCase *tc = tcase_create("cmdline");

        tcase_add_loop_test(tc, test_parse_valid, 0, ELEMENTSOF(valid_cases));
        tcase_add_loop_test(tc, test_parse_no_network, 0, ELEMENTSOF(no_network_cases));
        tcase_add_loop_test(tc, test_parse_invalid, 0, ELEMENTSOF(invalid_cases));
        tcase_add_test(tc, test_parse_error_buffer_small);
        suite_add_tcase(s, tc);

        tc = tcase_create("files");
        tcase_add_test(tc, test_find_link_lowest_ifindex);
        tcase_add_test(tc, test_find_link_none);
        tcase_add_test(tc, test_resolv_conf_creates_etc);
        tcase_add_test(tc, test_resolv_conf_replaces_file);
        tcase_add_test(tc, test_resolv_conf_replaces_symlink);
        tcase_add_test(tc, test_resolv_conf_errors);
        tcase_add_loop_test(tc, test_hosts_entry, 0, ELEMENTSOF(hosts_cases));
        tcase_add_test(tc, test_hosts_symlink_and_binary);
        suite_add_tcase(s, tc);

        tc = tcase_create("links");
        tcase_add_test(tc, test_configure_link);
        tcase_add_test(tc, test_configure_link_errors);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(guest_net_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
