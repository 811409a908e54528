#include <assert.h>
#include <errno.h>
#include <stdio.h>

#include "ipv4.h"
#include "macro.h"

/* The /24 networks banger tries, in order. Those in 10.0.0.0/8 come first because Docker's
 * default pools cover 172.17.0.0/16 to 172.31.0.0/16 and 192.168.0.0/16, libvirt uses
 * 192.168.122.0/24, and home routers use 192.168.0.0/24 and 192.168.1.0/24. */
static const uint32_t candidates[] = {
        IPV4_ADDR(10, 213, 0, 0),    IPV4_ADDR(10, 231, 0, 0),    IPV4_ADDR(10, 147, 0, 0),
        IPV4_ADDR(10, 189, 0, 0),    IPV4_ADDR(10, 251, 0, 0),    IPV4_ADDR(10, 97, 0, 0),
        IPV4_ADDR(172, 29, 213, 0),  IPV4_ADDR(172, 27, 213, 0),  IPV4_ADDR(172, 23, 213, 0),
        IPV4_ADDR(192, 168, 213, 0), IPV4_ADDR(192, 168, 231, 0), IPV4_ADDR(192, 168, 147, 0),
};

uint32_t ipv4_prefix_mask(unsigned prefix)
{
        assert(prefix <= 32);
        return prefix == 0 ? 0 : UINT32_MAX << (32 - prefix);
}

/* Parses a decimal number of at most max without sign, leading zeros or spaces, and moves *p
 * past it. */
static int parse_decimal(const char **p, unsigned max, unsigned *ret)
{
        const char *s = *p;
        unsigned v = 0;

        if (*s < '0' || *s > '9')
                return -EINVAL;
        if (s[0] == '0' && s[1] >= '0' && s[1] <= '9')
                return -EINVAL;

        for (; *s >= '0' && *s <= '9'; s++) {
                v = v * 10 + (unsigned)(*s - '0');
                if (v > max)
                        return -EINVAL;
        }

        *p = s;
        *ret = v;
        return 0;
}

static int parse_dotted(const char **p, uint32_t *ret)
{
        uint32_t addr = 0;
        unsigned octet;
        int r;

        for (unsigned i = 0; i < 4; i++) {
                if (i > 0) {
                        if (**p != '.')
                                return -EINVAL;
                        (*p)++;
                }

                r = parse_decimal(p, 255, &octet);
                if (r < 0)
                        return r;

                addr = addr << 8 | octet;
        }

        *ret = addr;
        return 0;
}

int ipv4_addr_parse(const char *s, uint32_t *ret)
{
        uint32_t addr;
        int r;

        assert(s);
        assert(ret);

        r = parse_dotted(&s, &addr);
        if (r < 0)
                return r;
        if (*s != '\0')
                return -EINVAL;

        *ret = addr;
        return 0;
}

int ipv4_net_parse(const char *s, Ipv4Net *ret)
{
        uint32_t addr;
        unsigned prefix;
        int r;

        assert(s);
        assert(ret);

        r = parse_dotted(&s, &addr);
        if (r < 0)
                return r;
        if (*s != '/')
                return -EINVAL;
        s++;

        r = parse_decimal(&s, 32, &prefix);
        if (r < 0)
                return r;
        if (*s != '\0')
                return -EINVAL;
        if ((addr & ~ipv4_prefix_mask(prefix)) != 0)
                return -EINVAL;

        *ret = (Ipv4Net){ .addr = addr, .prefix = prefix };
        return 0;
}

void ipv4_format(uint32_t addr, unsigned prefix, bool with_prefix, char buf[IPV4_FORMAT_MAX])
{
        int n;

        n = snprintf(buf, IPV4_FORMAT_MAX, "%u.%u.%u.%u", addr >> 24, (addr >> 16) & 0xff,
                     (addr >> 8) & 0xff, addr & 0xff);
        if (with_prefix)
                snprintf(buf + n, IPV4_FORMAT_MAX - (size_t)n, "/%u", prefix);
}

bool ipv4_net_overlaps(const Ipv4Net *a, const Ipv4Net *b)
{
        uint32_t mask;

        assert(a);
        assert(b);

        /* Two networks overlap exactly when the shorter prefix contains the other's address. */
        mask = ipv4_prefix_mask(a->prefix < b->prefix ? a->prefix : b->prefix);
        return (a->addr & mask) == (b->addr & mask);
}

bool ipv4_net_contains(const Ipv4Net *n, uint32_t addr)
{
        uint32_t mask;

        assert(n);

        mask = ipv4_prefix_mask(n->prefix);
        return (addr & mask) == (n->addr & mask);
}

uint32_t ipv4_net_host(const Ipv4Net *n, unsigned index)
{
        assert(n);

        return n->addr + index;
}

unsigned ipv4_net_max_slot(const Ipv4Net *n)
{
        uint64_t size;

        assert(n);
        assert(n->prefix <= 32);

        /* The network and broadcast addresses and the bridge take three of the addresses. */
        size = UINT64_C(1) << (32 - n->prefix);
        return size < 4 ? 0 : (unsigned)(size - 3);
}

int ipv4_net_choose(const Ipv4Net *used, size_t n_used, Ipv4Net *ret)
{
        assert(used || n_used == 0);
        assert(ret);

        for (size_t i = 0; i < ELEMENTSOF(candidates); i++) {
                Ipv4Net c = { .addr = candidates[i], .prefix = 24 };
                bool in_use = false;

                for (size_t j = 0; j < n_used && !in_use; j++)
                        in_use = ipv4_net_overlaps(&c, &used[j]);

                if (!in_use) {
                        *ret = c;
                        return 0;
                }
        }

        return -EADDRNOTAVAIL;
}
