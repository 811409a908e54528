#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "macro.h"
#include "netdev.h"
#include "netlink.h"
#include "strv.h"

#define ALIAS_MAX 255 /* IFALIASZ less its NUL */
#define KIND_MAX  16

/* The properties of an existing link that banger checks. */
typedef struct LinkInfo {
        int index;
        unsigned flags;
        uint32_t master; /* 0 when the link has none */
        char kind[KIND_MAX];
        char alias[ALIAS_MAX + 1];
        bool is_tap;
        bool has_owner, has_group;
        uint32_t owner, group;
} LinkInfo;

static bool ifname_is_valid(const char *name)
{
        size_t n = name ? strlen(name) : 0;

        if (n == 0 || n >= IFNAMSIZ)
                return false;
        if (streq(name, ".") || streq(name, ".."))
                return false;

        for (const char *p = name; *p; p++)
                if (*p == '/' || *p == ':' || *p <= ' ' || *p == 0x7f)
                        return false;
        return true;
}

static bool alias_is_valid(const char *alias)
{
        return !isempty(alias) && strlen(alias) <= ALIAS_MAX;
}

int netdev_index(const char *name)
{
        unsigned index;

        if (!ifname_is_valid(name))
                return -EINVAL;

        index = if_nametoindex(name);
        if (index == 0)
                return errno == ENODEV || errno == ENXIO ? -ENODEV : negative_errno();
        return (int)index;
}

/* Reads the tun/tap details that IFLA_INFO_DATA carries for kind "tun". */
static void parse_tun_data(const struct rtattr *data, LinkInfo *info)
{
        const struct rtattr *tb[IFLA_TUN_MAX + 1];
        uint8_t type;

        nl_attr_parse(tb, IFLA_TUN_MAX, RTA_DATA(data), RTA_PAYLOAD(data));
        info->is_tap = nl_attr_get_u8(tb[IFLA_TUN_TYPE], &type) && type == IFF_TAP;
        info->has_owner = nl_attr_get_u32(tb[IFLA_TUN_OWNER], &info->owner);
        info->has_group = nl_attr_get_u32(tb[IFLA_TUN_GROUP], &info->group);
}

static void parse_link_info(const struct rtattr *linkinfo, LinkInfo *info)
{
        const struct rtattr *tb[IFLA_INFO_MAX + 1];
        const char *kind;

        nl_attr_parse(tb, IFLA_INFO_MAX, RTA_DATA(linkinfo), RTA_PAYLOAD(linkinfo));

        kind = nl_attr_get_string(tb[IFLA_INFO_KIND]);
        if (kind)
                snprintf(info->kind, sizeof(info->kind), "%s", kind);
        if (kind && streq(kind, "tun") && tb[IFLA_INFO_DATA])
                parse_tun_data(tb[IFLA_INFO_DATA], info);
}

static int parse_link(const struct nlmsghdr *h, LinkInfo *info, const char **ret_name)
{
        const struct ifinfomsg *ifi = NLMSG_DATA(h);
        const struct rtattr *tb[IFLA_MAX + 1];
        const char *alias;

        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*ifi)))
                return -EBADMSG;

        *info = (LinkInfo){ .index = ifi->ifi_index, .flags = ifi->ifi_flags };
        nl_attr_parse(tb, IFLA_MAX, IFLA_RTA(ifi), IFLA_PAYLOAD(h));

        (void)nl_attr_get_u32(tb[IFLA_MASTER], &info->master);
        alias = nl_attr_get_string(tb[IFLA_IFALIAS]);
        if (alias)
                snprintf(info->alias, sizeof(info->alias), "%s", alias);
        if (tb[IFLA_LINKINFO])
                parse_link_info(tb[IFLA_LINKINFO], info);

        *ret_name = nl_attr_get_string(tb[IFLA_IFNAME]);
        return *ret_name ? 0 : -EBADMSG;
}

static int on_link(const struct nlmsghdr *h, void *userdata)
{
        const char *name;

        if (h->nlmsg_type != RTM_NEWLINK)
                return 0;
        return parse_link(h, userdata, &name);
}

/* Looks link name up. Returns -ENODEV when it does not exist. */
static int link_get(int fd, const char *name, LinkInfo *ret)
{
        NlMessage m;
        LinkInfo info = { .index = 0 };
        int r;

        nl_message_init(&m, RTM_GETLINK, 0, sizeof(struct ifinfomsg));
        nl_attr_add_string(&m, IFLA_IFNAME, name);

        r = nl_call(fd, &m, on_link, &info);
        if (r < 0)
                return r;
        if (info.index <= 0)
                return -ENODEV;

        *ret = info;
        return 0;
}

/* Sets alias, master (when non-zero) and IFF_UP on link index in one request. */
static int link_set(int fd, int index, uint32_t master, const char *alias)
{
        struct ifinfomsg *ifi;
        NlMessage m;

        ifi = nl_message_init(&m, RTM_NEWLINK, 0, sizeof(*ifi));
        ifi->ifi_index = index;
        ifi->ifi_flags = IFF_UP;
        ifi->ifi_change = IFF_UP;
        if (master > 0)
                nl_attr_add_u32(&m, IFLA_MASTER, master);
        nl_attr_add_string(&m, IFLA_IFALIAS, alias);

        return nl_call(fd, &m, NULL, NULL);
}

static int link_delete(int fd, int index)
{
        struct ifinfomsg *ifi;
        NlMessage m;

        ifi = nl_message_init(&m, RTM_DELLINK, 0, sizeof(*ifi));
        ifi->ifi_index = index;

        return nl_call(fd, &m, NULL, NULL);
}

int netdev_delete(const char *name)
{
        _cleanup_close_ int fd = -EBADF;
        LinkInfo info;
        int r;

        if (!ifname_is_valid(name))
                return -EINVAL;

        fd = nl_open();
        if (fd < 0)
                return fd;

        r = link_get(fd, name, &info);
        if (r == -ENODEV)
                return 0;
        if (r < 0)
                return r;

        r = link_delete(fd, info.index);
        return r == -ENODEV ? 0 : r;
}

/* Collects the networks of routes and addresses for netdev_list_used_ipv4(). */
typedef struct UsedNets {
        Ipv4Net *nets;
        size_t n;
        int skip_index;
} UsedNets;

static int used_nets_add(UsedNets *u, uint32_t addr, unsigned prefix)
{
        Ipv4Net *p;

        if (prefix == 0 || prefix > 32)
                return 0;

        p = reallocarray(u->nets, u->n + 1, sizeof(*p));
        if (!p)
                return -ENOMEM;

        u->nets = p;
        u->nets[u->n++] = (Ipv4Net){ .addr = addr & ipv4_prefix_mask(prefix), .prefix = prefix };
        return 0;
}

static int on_route(const struct nlmsghdr *h, void *userdata)
{
        const struct rtmsg *rtm = NLMSG_DATA(h);
        const struct rtattr *tb[RTA_MAX + 1];
        UsedNets *u = userdata;
        uint32_t dst, oif;

        if (h->nlmsg_type != RTM_NEWROUTE)
                return 0;
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*rtm)))
                return -EBADMSG;
        if (rtm->rtm_family != AF_INET || rtm->rtm_dst_len == 0)
                return 0;

        nl_attr_parse(tb, RTA_MAX, RTM_RTA(rtm), RTM_PAYLOAD(h));
        if (!nl_attr_get_u32(tb[RTA_DST], &dst))
                return 0;
        if (u->skip_index > 0 && nl_attr_get_u32(tb[RTA_OIF], &oif) &&
            oif == (uint32_t)u->skip_index)
                return 0;

        return used_nets_add(u, ntohl(dst), rtm->rtm_dst_len);
}

static int on_address(const struct nlmsghdr *h, void *userdata)
{
        const struct ifaddrmsg *ifa = NLMSG_DATA(h);
        const struct rtattr *tb[IFA_MAX + 1];
        UsedNets *u = userdata;
        uint32_t addr;

        if (h->nlmsg_type != RTM_NEWADDR)
                return 0;
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*ifa)))
                return -EBADMSG;
        if (ifa->ifa_family != AF_INET)
                return 0;
        if (u->skip_index > 0 && ifa->ifa_index == (uint32_t)u->skip_index)
                return 0;

        nl_attr_parse(tb, IFA_MAX, IFA_RTA(ifa), IFA_PAYLOAD(h));
        if (!nl_attr_get_u32(tb[IFA_LOCAL], &addr) && !nl_attr_get_u32(tb[IFA_ADDRESS], &addr))
                return 0;

        return used_nets_add(u, ntohl(addr), ifa->ifa_prefixlen);
}

static int dump(int fd, uint16_t type, size_t header_size, NlReplyFn reply, void *userdata)
{
        NlMessage m;
        void *family_header;

        /* rtmsg, ifaddrmsg and ifinfomsg all start with their family byte. */
        family_header = nl_message_init(&m, type, NLM_F_DUMP, header_size);
        *(unsigned char *)family_header = AF_INET;

        return nl_call(fd, &m, reply, userdata);
}

int netdev_list_used_ipv4(const char *skip_ifname, Ipv4Net **ret, size_t *ret_n)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ Ipv4Net *nets = NULL;
        UsedNets u = { .nets = NULL };
        int r;

        assert(ret);
        assert(ret_n);

        if (skip_ifname) {
                r = netdev_index(skip_ifname);
                if (r < 0 && r != -ENODEV)
                        return r;
                u.skip_index = r > 0 ? r : 0;
        }

        fd = nl_open();
        if (fd < 0)
                return fd;

        /* Without a table in the request the kernel dumps the routes of every table. */
        r = dump(fd, RTM_GETROUTE, sizeof(struct rtmsg), on_route, &u);
        if (r >= 0)
                r = dump(fd, RTM_GETADDR, sizeof(struct ifaddrmsg), on_address, &u);
        nets = u.nets;
        if (r < 0)
                return r;

        *ret = TAKE_PTR(nets);
        *ret_n = u.n;
        return 0;
}

/* Collects the IPv4 addresses of one link. */
typedef struct LinkAddresses {
        int index;
        Ipv4Net *nets; /* with the host part kept: addr is the address itself */
        size_t n;
} LinkAddresses;

static int on_link_address(const struct nlmsghdr *h, void *userdata)
{
        const struct ifaddrmsg *ifa = NLMSG_DATA(h);
        const struct rtattr *tb[IFA_MAX + 1];
        LinkAddresses *l = userdata;
        uint32_t addr;
        Ipv4Net *p;

        if (h->nlmsg_type != RTM_NEWADDR)
                return 0;
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*ifa)))
                return -EBADMSG;
        if (ifa->ifa_family != AF_INET || ifa->ifa_index != (uint32_t)l->index)
                return 0;

        nl_attr_parse(tb, IFA_MAX, IFA_RTA(ifa), IFA_PAYLOAD(h));
        if (!nl_attr_get_u32(tb[IFA_LOCAL], &addr) && !nl_attr_get_u32(tb[IFA_ADDRESS], &addr))
                return 0;

        p = reallocarray(l->nets, l->n + 1, sizeof(*p));
        if (!p)
                return -ENOMEM;

        l->nets = p;
        l->nets[l->n++] = (Ipv4Net){ .addr = ntohl(addr), .prefix = ifa->ifa_prefixlen };
        return 0;
}

static int link_addresses(int fd, int index, Ipv4Net **ret, size_t *ret_n)
{
        LinkAddresses l = { .index = index };
        int r;

        r = dump(fd, RTM_GETADDR, sizeof(struct ifaddrmsg), on_link_address, &l);
        if (r < 0) {
                free(l.nets);
                return r;
        }

        *ret = l.nets;
        *ret_n = l.n;
        return 0;
}

int netdev_get_ipv4_net(const char *name, Ipv4Net *ret)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ Ipv4Net *nets = NULL;
        size_t n;
        int index, r;

        assert(ret);

        index = netdev_index(name);
        if (index < 0)
                return index;

        fd = nl_open();
        if (fd < 0)
                return fd;

        r = link_addresses(fd, index, &nets, &n);
        if (r < 0)
                return r;
        if (n == 0)
                return -ENOENT;

        *ret = (Ipv4Net){ .addr = nets[0].addr & ipv4_prefix_mask(nets[0].prefix),
                          .prefix = nets[0].prefix };
        return 0;
}

static int address_change(int fd, uint16_t type, uint16_t flags, int index, uint32_t addr,
                          unsigned prefix)
{
        struct ifaddrmsg *ifa;
        uint32_t be = htonl(addr);
        NlMessage m;

        ifa = nl_message_init(&m, type, flags, sizeof(*ifa));
        ifa->ifa_family = AF_INET;
        ifa->ifa_prefixlen = (unsigned char)prefix;
        ifa->ifa_index = (uint32_t)index;
        nl_attr_add_u32(&m, IFA_LOCAL, be);
        nl_attr_add_u32(&m, IFA_ADDRESS, be);
        if (type == RTM_NEWADDR)
                nl_attr_add_u32(&m, IFA_BROADCAST, htonl(addr | ~ipv4_prefix_mask(prefix)));

        return nl_call(fd, &m, NULL, NULL);
}

/* Leaves host 1 of net as the only IPv4 address of link index. */
static int bridge_set_address(int fd, int index, const Ipv4Net *net)
{
        _cleanup_free_ Ipv4Net *nets = NULL;
        uint32_t want = ipv4_net_host(net, 1);
        bool present = false;
        size_t n;
        int r;

        r = link_addresses(fd, index, &nets, &n);
        if (r < 0)
                return r;

        /* Others go first: removing a primary address also removes the secondaries of its
         * subnet, which could include the one banger wants. */
        for (size_t i = 0; i < n; i++) {
                if (nets[i].addr == want && nets[i].prefix == net->prefix) {
                        present = true;
                        continue;
                }

                r = address_change(fd, RTM_DELADDR, 0, index, nets[i].addr, nets[i].prefix);
                if (r < 0 && r != -EADDRNOTAVAIL)
                        return r;
        }

        if (present)
                return 0;
        return address_change(fd, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, index, want,
                              net->prefix);
}

static int bridge_create(int fd, const char *name)
{
        struct rtattr *linkinfo;
        NlMessage m;

        nl_message_init(&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, sizeof(struct ifinfomsg));
        nl_attr_add_string(&m, IFLA_IFNAME, name);
        linkinfo = nl_nest_begin(&m, IFLA_LINKINFO);
        nl_attr_add_string(&m, IFLA_INFO_KIND, "bridge");
        nl_nest_end(&m, linkinfo);

        return nl_call(fd, &m, NULL, NULL);
}

int netdev_bridge_ensure(const char *name, const Ipv4Net *net, const char *alias)
{
        _cleanup_close_ int fd = -EBADF;
        bool created = false;
        LinkInfo info;
        int r;

        assert(net);

        if (!ifname_is_valid(name) || !alias_is_valid(alias))
                return -EINVAL;
        if (net->prefix > 30 || (net->addr & ~ipv4_prefix_mask(net->prefix)) != 0)
                return -EINVAL;

        fd = nl_open();
        if (fd < 0)
                return fd;

        r = link_get(fd, name, &info);
        if (r == -ENODEV) {
                r = bridge_create(fd, name);
                if (r < 0 && r != -EEXIST)
                        return r;
                created = r >= 0;

                r = link_get(fd, name, &info);
        }
        if (r < 0)
                return r;
        if (!streq(info.kind, "bridge"))
                return -EEXIST;

        r = bridge_set_address(fd, info.index, net);
        if (r >= 0)
                r = link_set(fd, info.index, 0, alias);
        if (r < 0 && created)
                (void)link_delete(fd, info.index);
        return r < 0 ? r : 0;
}

/* Creates tap name, or attaches to the existing one, and sets owner, group and persistence.
 * A tap created here disappears with the fd when a step before TUNSETPERSIST fails. */
static int tun_configure(const char *name, uid_t owner, gid_t group)
{
        _cleanup_close_ int fd = -EBADF;
        struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI };

        fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();

        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        if (ioctl(fd, TUNSETIFF, &ifr) < 0)
                return negative_errno();
        if (ioctl(fd, TUNSETOWNER, (unsigned long)owner) < 0)
                return negative_errno();
        if (ioctl(fd, TUNSETGROUP, (unsigned long)group) < 0)
                return negative_errno();
        if (ioctl(fd, TUNSETPERSIST, 1UL) < 0)
                return negative_errno();
        return 0;
}

/* Whether an existing link may be taken over as tap with alias. */
static bool is_our_tap(const LinkInfo *info, const char *alias)
{
        return streq(info->kind, "tun") && info->is_tap && streq(info->alias, alias);
}

static bool tap_owned_by(const LinkInfo *info, uid_t owner, gid_t group)
{
        return info->has_owner && info->owner == (uint32_t)owner && info->has_group &&
               info->group == (uint32_t)group;
}

int netdev_tap_ensure(const char *name, uid_t owner, gid_t group, const char *bridge,
                      const char *alias)
{
        _cleanup_close_ int fd = -EBADF;
        LinkInfo bridge_info, info;
        bool created = false;
        int r;

        if (!ifname_is_valid(name) || !ifname_is_valid(bridge) || !alias_is_valid(alias))
                return -EINVAL;

        fd = nl_open();
        if (fd < 0)
                return fd;

        r = link_get(fd, bridge, &bridge_info);
        if (r < 0)
                return r;

        r = link_get(fd, name, &info);
        if (r == -ENODEV)
                created = true;
        else if (r < 0)
                return r;
        else if (!is_our_tap(&info, alias))
                return -EEXIST;

        /* Reopening a tap that a VMM has open fails with EBUSY, so an existing tap is only
         * reopened when its owner or group must change. */
        if (created || !tap_owned_by(&info, owner, group)) {
                r = tun_configure(name, owner, group);
                if (r < 0)
                        return r;

                r = link_get(fd, name, &info);
                if (r < 0)
                        return r;
        }

        r = link_set(fd, info.index, (uint32_t)bridge_info.index, alias);
        if (r < 0 && created)
                (void)link_delete(fd, info.index);
        return r;
}

typedef struct AliasMatch {
        const char *alias;
        char **names;
} AliasMatch;

static int on_link_alias(const struct nlmsghdr *h, void *userdata)
{
        AliasMatch *match = userdata;
        const char *name;
        LinkInfo info;
        int r;

        if (h->nlmsg_type != RTM_NEWLINK)
                return 0;

        r = parse_link(h, &info, &name);
        if (r < 0)
                return r;
        if (!streq(info.alias, match->alias))
                return 0;

        return strv_extend(&match->names, name);
}

static int compare_strings(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

int netdev_list_by_alias(const char *alias, char ***ret)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_strv_free_ char **names = NULL;
        AliasMatch match = { .alias = alias };
        NlMessage m;
        int r;

        assert(ret);

        if (!alias_is_valid(alias))
                return -EINVAL;

        fd = nl_open();
        if (fd < 0)
                return fd;

        nl_message_init(&m, RTM_GETLINK, NLM_F_DUMP, sizeof(struct ifinfomsg));
        r = nl_call(fd, &m, on_link_alias, &match);
        names = match.names;
        if (r < 0)
                return r;

        if (!names) {
                names = calloc(1, sizeof(char *));
                if (!names)
                        return -ENOMEM;
        }
        qsort(names, strv_length(names), sizeof(char *), compare_strings);

        *ret = TAKE_PTR(names);
        return 0;
}

static int write_sysctl(const char *path, const char *value)
{
        _cleanup_close_ int fd = -EBADF;
        size_t n = strlen(value);
        ssize_t k;

        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();

        k = write(fd, value, n);
        if (k < 0)
                return negative_errno();
        return (size_t)k == n ? 0 : -EIO;
}

int netdev_enable_forwarding(const char *bridge)
{
        char path[sizeof("/proc/sys/net/ipv4/conf//route_localnet") + IFNAMSIZ];
        int r;

        if (!ifname_is_valid(bridge))
                return -EINVAL;

        r = write_sysctl("/proc/sys/net/ipv4/ip_forward", "1");
        if (r < 0)
                return r;

        snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/route_localnet", bridge);
        r = write_sysctl(path, "1");
        return r == -ENOENT ? -ENODEV : r;
}
