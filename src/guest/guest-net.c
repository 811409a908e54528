#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/route.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest-net.h"
#include "guest-util.h"
#include "helper-bus.h"
#include "macro.h"

#define ARPHRD_ETHER_TYPE 1 /* ARPHRD_ETHER, as /sys/class/net/LINK/type shows it */
#define HOSTS_MAX_SIZE    (1024 * 1024)
#define VALUE_MAX         64 /* longer values are invalid; error messages quote this much */

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir);

/* A value as given, NUL-terminated, with room for one byte beyond VALUE_MAX. */
typedef char Value[VALUE_MAX + 2];

typedef struct Param {
        const char *key;
        size_t key_len;
        const char *value; /* NULL for a parameter without "=" */
        size_t value_len;
} Param;

typedef enum Key {
        KEY_ADDRESS,
        KEY_GATEWAY,
        KEY_DNS,
        _KEY_MAX,
} Key;

static const char *const key_names[_KEY_MAX] = {
        [KEY_ADDRESS] = GUEST_CMDLINE_ADDRESS,
        [KEY_GATEWAY] = GUEST_CMDLINE_GATEWAY,
        [KEY_DNS] = GUEST_CMDLINE_DNS,
};

static const char *const key_formats[_KEY_MAX] = {
        [KEY_ADDRESS] = "A.B.C.D/N",
        [KEY_GATEWAY] = "A.B.C.D",
        [KEY_DNS] = "A.B.C.D",
};

static bool is_space(char c)
{
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Splits the next parameter off *p, or returns false at the end. White space inside double
 * quotes does not split. A quote that opens the parameter or its value is dropped, and so is
 * the quote that closes it at the parameter's end. */
static bool next_param(const char **p, Param *ret)
{
        const char *s = *p, *e, *eq = NULL, *v;
        bool quoted, in_quote, value_quoted;

        while (is_space(*s))
                s++;
        if (*s == '\0')
                return false;

        quoted = in_quote = *s == '"';
        if (quoted)
                s++;
        for (e = s; *e != '\0' && (in_quote || !is_space(*e)); e++) {
                if (!eq && *e == '=')
                        eq = e;
                if (*e == '"')
                        in_quote = !in_quote;
        }
        *p = e;

        if (!eq) {
                size_t n = (size_t)(e - s);

                if (quoted && n > 0 && s[n - 1] == '"')
                        n--;
                *ret = (Param){ .key = s, .key_len = n };
                return true;
        }

        v = eq + 1;
        value_quoted = *v == '"';
        if (value_quoted)
                v++;
        if ((value_quoted || quoted) && e > v && e[-1] == '"')
                e--;
        *ret = (Param){
                .key = s, .key_len = (size_t)(eq - s), .value = v, .value_len = (size_t)(e - v)
        };
        return true;
}

static void set_error(char *error, size_t size, const char *format, ...)
        __attribute__((format(printf, 3, 4)));

static void set_error(char *error, size_t size, const char *format, ...)
{
        va_list ap;

        if (!error || size == 0)
                return;
        va_start(ap, format);
        vsnprintf(error, size, format, ap);
        va_end(ap);
}

/* Parses four decimal numbers from 0 to 255 separated by dots, without leading zeros, which
 * other parsers read as octal. Returns NULL, or what is wrong with s. */
static const char *parse_ipv4(const char *s, struct in_addr *ret)
{
        uint32_t address = 0;

        for (unsigned i = 0; i < 4; i++) {
                unsigned octet = 0;
                size_t digits = 0;

                if (i > 0 && *s++ != '.')
                        return "expected four numbers separated by dots";
                while (s[digits] >= '0' && s[digits] <= '9' && digits < 4)
                        octet = octet * 10 + (unsigned)(s[digits++] - '0');
                if (digits == 0)
                        return "expected four numbers separated by dots";
                if (digits > 1 && s[0] == '0')
                        return "a number has a leading zero";
                if (octet > 255)
                        return "a number is above 255";
                address = address << 8 | octet;
                s += digits;
        }
        if (*s != '\0')
                return "expected four numbers separated by dots";

        ret->s_addr = htonl(address);
        return NULL;
}

/* Parses "N" with N from 1 to 32 and no leading zero. */
static const char *parse_prefix(const char *s, unsigned *ret)
{
        if (*s == '\0')
                return "the prefix length after '/' is missing";
        if (!(s[0] >= '1' && s[0] <= '9') ||
            (s[1] != '\0' && !(s[1] >= '0' && s[1] <= '9' && s[2] == '\0')))
                return "the prefix length must be a number from 1 to 32";
        *ret = (unsigned)strtoul(s, NULL, 10);
        if (*ret > 32)
                return "the prefix length must be a number from 1 to 32";
        return NULL;
}

/* Parses one key's value into net. Returns NULL, or what is wrong with it. */
static const char *parse_value(Key key, const char *value, GuestNet *net)
{
        char buf[VALUE_MAX + 1];
        char *slash;
        const char *reason;

        if (strlen(value) > VALUE_MAX)
                return "the value is too long";
        strcpy(buf, value);

        switch (key) {
        case KEY_ADDRESS:
                slash = strchr(buf, '/');
                if (!slash)
                        return "the prefix length is missing";
                *slash = '\0';
                reason = parse_ipv4(buf, &net->address);
                return reason ?: parse_prefix(slash + 1, &net->prefix);
        case KEY_GATEWAY:
                return parse_ipv4(buf, &net->gateway);
        case KEY_DNS:
                return parse_ipv4(buf, &net->dns);
        default:
                abort();
        }
}

static uint32_t netmask(unsigned prefix)
{
        return prefix == 0 ? 0 : UINT32_MAX << (32 - prefix);
}

/* Returns what makes a an unusable address for a host in subnet/prefix, or NULL. */
static const char *check_host_address(struct in_addr a, struct in_addr subnet, unsigned prefix)
{
        uint32_t h = ntohl(a.s_addr), mask = netmask(prefix);

        if ((h >> 24) == 0 || (h >> 24) == 127 || (h >> 24) >= 224)
                return "it is not a unicast address for a host";
        if ((h & mask) != (ntohl(subnet.s_addr) & mask))
                return "it is outside the subnet of " GUEST_CMDLINE_ADDRESS;
        if (prefix <= 30 && ((h & ~mask) == 0 || (h & ~mask) == ~mask))
                return "it is the network or broadcast address of its subnet";
        return NULL;
}

static int check_net(const GuestNet *net, Value values[_KEY_MAX], char *error, size_t error_size)
{
        const char *reason;

        reason = check_host_address(net->address, net->address, net->prefix);
        if (reason) {
                set_error(error, error_size, "Invalid %s='%s': %s", key_names[KEY_ADDRESS],
                          values[KEY_ADDRESS], reason);
                return -EINVAL;
        }

        reason = check_host_address(net->gateway, net->address, net->prefix);
        if (!reason && net->gateway.s_addr == net->address.s_addr)
                reason = "it is the guest's own address";
        if (reason) {
                set_error(error, error_size, "Invalid %s='%s' for %s='%s': %s",
                          key_names[KEY_GATEWAY], values[KEY_GATEWAY], key_names[KEY_ADDRESS],
                          values[KEY_ADDRESS], reason);
                return -EINVAL;
        }

        if (net->dns.s_addr == htonl(INADDR_ANY) || ntohl(net->dns.s_addr) >> 24 >= 224) {
                set_error(error, error_size, "Invalid %s='%s': it is not a unicast address",
                          key_names[KEY_DNS], values[KEY_DNS]);
                return -EINVAL;
        }
        return 0;
}

static int key_from_param(const Param *p)
{
        for (Key k = 0; k < _KEY_MAX; k++)
                if (p->key_len == strlen(key_names[k]) && strneq(p->key, key_names[k], p->key_len))
                        return (int)k;
        return -1;
}

/* Copies the value of a parameter that names key into values[key]. Values longer than
 * VALUE_MAX keep VALUE_MAX + 1 bytes, so parse_value() finds them too long. */
static int take_param(const Param *p, Key key, Value values[_KEY_MAX], bool seen[_KEY_MAX],
                      char *error, size_t error_size)
{
        const char *name = key_names[key];
        size_t n = p->value_len > VALUE_MAX ? VALUE_MAX + 1 : p->value_len;

        if (!p->value) {
                set_error(error, error_size, "%s has no value, expected %s=%s", name, name,
                          key_formats[key]);
                return -EINVAL;
        }
        if (seen[key]) {
                set_error(error, error_size,
                          "%s is given twice, as '%.*s' and '%.*s', expected it once", name,
                          VALUE_MAX, values[key], (int)(n > VALUE_MAX ? VALUE_MAX : n), p->value);
                return -EINVAL;
        }

        seen[key] = true;
        memcpy(values[key], p->value, n);
        values[key][n] = '\0';
        return 0;
}

int guest_net_parse_cmdline(const char *cmdline, GuestNet *ret, char *error, size_t error_size)
{
        Value values[_KEY_MAX] = {};
        bool seen[_KEY_MAX] = {};
        GuestNet net = {};
        Param p;
        int r;

        while (next_param(&cmdline, &p)) {
                int key;

                if (!p.value && p.key_len == 2 && strneq(p.key, "--", 2))
                        break;
                key = key_from_param(&p);
                if (key < 0)
                        continue;
                r = take_param(&p, (Key)key, values, seen, error, error_size);
                if (r < 0)
                        return r;
        }

        if (!seen[KEY_ADDRESS] && !seen[KEY_GATEWAY] && !seen[KEY_DNS])
                return 0;

        for (Key k = 0; k < _KEY_MAX; k++) {
                const char *reason;

                if (!seen[k]) {
                        set_error(error, error_size,
                                  "%s= is missing on the kernel command line, expected %s=%s "
                                  "next to the other banger network keys",
                                  key_names[k], key_names[k], key_formats[k]);
                        return -EINVAL;
                }
                reason = parse_value(k, values[k], &net);
                if (reason) {
                        set_error(error, error_size, "Invalid %s='%.*s': %s, expected %s",
                                  key_names[k], VALUE_MAX, values[k], reason, key_formats[k]);
                        return -EINVAL;
                }
        }

        r = check_net(&net, values, error, error_size);
        if (r < 0)
                return r;

        *ret = net;
        return 1;
}

/* Reads a small decimal number from sysfs_net/link/name. */
static int read_link_number(const char *sysfs_net, const char *link, const char *name,
                            unsigned long *ret)
{
        _cleanup_free_ char *path = NULL, *text = NULL;
        size_t size;
        char *end;
        int r;

        if (asprintf(&path, "%s/%s/%s", sysfs_net, link, name) < 0)
                return -ENOMEM;
        r = guest_read_file(path, 64, &text, &size);
        if (r < 0)
                return r;

        errno = 0;
        *ret = strtoul(text, &end, 10);
        if (errno != 0 || end == text || (*end != '\0' && *end != '\n'))
                return -EINVAL;
        return 0;
}

int guest_net_find_link(const char *sysfs_net, char ret[IFNAMSIZ])
{
        _cleanup_(closedirp) DIR *d = NULL;
        unsigned long best = 0;
        struct dirent *de;

        d = opendir(sysfs_net);
        if (!d)
                return negative_errno();

        while ((de = readdir(d))) {
                unsigned long type, ifindex;

                if (de->d_name[0] == '.' || strlen(de->d_name) >= IFNAMSIZ)
                        continue;
                if (read_link_number(sysfs_net, de->d_name, "type", &type) < 0 ||
                    type != ARPHRD_ETHER_TYPE)
                        continue;
                if (read_link_number(sysfs_net, de->d_name, "ifindex", &ifindex) < 0)
                        continue;
                if (best != 0 && ifindex >= best)
                        continue;
                best = ifindex;
                strcpy(ret, de->d_name);
        }
        return best != 0 ? 0 : -ENODEV;
}

static void set_sockaddr(struct sockaddr *sa, struct in_addr a)
{
        struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr = a };

        memcpy(sa, &sin, sizeof(sin));
}

static int ifreq_init(struct ifreq *ifr, const char *link)
{
        if (strlen(link) >= IFNAMSIZ)
                return -EINVAL;
        *ifr = (struct ifreq){};
        strcpy(ifr->ifr_name, link);
        return 0;
}

/* Sets the address and netmask of link, then brings it up, through the AF_INET socket fd. */
static int set_address_up(int fd, const char *link, struct in_addr address, unsigned prefix)
{
        struct in_addr mask = { .s_addr = htonl(netmask(prefix)) };
        struct ifreq ifr;
        int r;

        r = ifreq_init(&ifr, link);
        if (r < 0)
                return r;

        set_sockaddr(&ifr.ifr_addr, address);
        if (ioctl(fd, SIOCSIFADDR, &ifr) < 0)
                return negative_errno();

        set_sockaddr(&ifr.ifr_netmask, mask);
        if (ioctl(fd, SIOCSIFNETMASK, &ifr) < 0)
                return negative_errno();

        if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
                return negative_errno();
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
                return negative_errno();
        return 0;
}

static int add_default_route(int fd, const char *link, struct in_addr gateway)
{
        char dev[IFNAMSIZ];
        struct rtentry rt = {
                .rt_flags = RTF_UP | RTF_GATEWAY,
                .rt_dev = dev,
        };

        snprintf(dev, sizeof(dev), "%s", link);
        set_sockaddr(&rt.rt_dst, (struct in_addr){ .s_addr = htonl(INADDR_ANY) });
        set_sockaddr(&rt.rt_genmask, (struct in_addr){ .s_addr = htonl(INADDR_ANY) });
        set_sockaddr(&rt.rt_gateway, gateway);
        if (ioctl(fd, SIOCADDRT, &rt) < 0 && errno != EEXIST)
                return negative_errno();
        return 0;
}

int guest_net_configure_loopback(void)
{
        _cleanup_close_ int fd = -EBADF;

        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        return set_address_up(fd, "lo", (struct in_addr){ .s_addr = htonl(INADDR_LOOPBACK) }, 8);
}

int guest_net_configure_link(const char *link, const GuestNet *net)
{
        _cleanup_close_ int fd = -EBADF;
        int r;

        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();

        r = set_address_up(fd, link, net->address, net->prefix);
        if (r < 0)
                return r;
        return add_default_route(fd, link, net->gateway);
}

/* Writes text to dir/name through a temporary file in dir that is synced and renamed over
 * dir/name, then syncs dir. */
static int write_file_atomic(const char *dir, const char *name, const char *text)
{
        _cleanup_unlink_ char *tmp = NULL;
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF, dir_fd = -EBADF;
        size_t n = strlen(text);

        if (asprintf(&tmp, "%s/.%s.XXXXXX", dir, name) < 0 ||
            asprintf(&path, "%s/%s", dir, name) < 0)
                return -ENOMEM;

        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
                free(TAKE_PTR(tmp));
                return negative_errno();
        }
        if (fchmod(fd, 0644) < 0)
                return negative_errno();
        if (write(fd, text, n) != (ssize_t)n)
                return errno > 0 ? -errno : -EIO;
        if (fsync(fd) < 0)
                return negative_errno();
        if (rename(tmp, path) < 0)
                return negative_errno();
        free(TAKE_PTR(tmp));

        dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0 || fsync(dir_fd) < 0)
                return negative_errno();
        return 0;
}

int guest_net_write_resolv_conf(const char *etc_dir, struct in_addr dns)
{
        char address[INET_ADDRSTRLEN], text[128];

        if (mkdir(etc_dir, 0755) < 0 && errno != EEXIST)
                return negative_errno();

        inet_ntop(AF_INET, &dns, address, sizeof(address));
        snprintf(text, sizeof(text), "nameserver %s\nsearch banger\n", address);
        return write_file_atomic(etc_dir, "resolv.conf", text);
}

/* Returns whether some line of a hosts file lists hostname as a name after its address. Text
 * from '#' to the end of a line is a comment. */
static bool hosts_lists_name(const char *text, const char *hostname)
{
        size_t n = strlen(hostname);

        for (const char *line = text; *line != '\0';) {
                size_t len = strcspn(line, "\n"), end = strcspn(line, "#\n");
                const char *s = line;
                bool first = true;

                while (s < line + end) {
                        size_t word;

                        s += strspn(s, " \t\r");
                        word = strcspn(s, " \t\r#\n");
                        if (word == 0)
                                break;
                        if (!first && word == n && strneq(s, hostname, n))
                                return true;
                        first = false;
                        s += word;
                }
                line += len + (line[len] == '\n');
        }
        return false;
}

int guest_net_add_hosts_entry(const char *etc_dir, const char *hostname)
{
        _cleanup_free_ char *path = NULL, *old = NULL, *text = NULL;
        size_t size = 0;
        int r;

        if (asprintf(&path, "%s/hosts", etc_dir) < 0)
                return -ENOMEM;

        r = guest_read_file(path, HOSTS_MAX_SIZE, &old, &size);
        if (r == -ENOENT) {
                old = strdup("127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n");
                if (!old)
                        return -ENOMEM;
                size = strlen(old);
        } else if (r < 0)
                return r;
        if (strlen(old) != size)
                return -EINVAL; /* a NUL byte: not a text file */
        if (hosts_lists_name(old, hostname))
                return 0;

        if (asprintf(&text, "%s%s127.0.1.1\t%s\n", old,
                     size > 0 && old[size - 1] != '\n' ? "\n" : "", hostname) < 0)
                return -ENOMEM;
        r = write_file_atomic(etc_dir, "hosts", text);
        if (r < 0)
                return r;
        return 1;
}
