#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* IPv4 networks and the choice of banger's subnet. Addresses are in host byte order. */

#define IPV4_FORMAT_MAX 19 /* "255.255.255.255/32" and its NUL */

/* The address a.b.c.d in host byte order. */
#define IPV4_ADDR(a, b, c, d) \
        ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))

typedef struct Ipv4Net {
        uint32_t addr; /* the network address: host bits are zero */
        unsigned prefix;
} Ipv4Net;

/* Parses "A.B.C.D/N". Returns -EINVAL for anything else, including set host bits. */
int ipv4_net_parse(const char *s, Ipv4Net *ret);
/* Parses "A.B.C.D". */
int ipv4_addr_parse(const char *s, uint32_t *ret);
/* Writes "A.B.C.D" (with_prefix false) or "A.B.C.D/N" into buf. */
void ipv4_format(uint32_t addr, unsigned prefix, bool with_prefix, char buf[IPV4_FORMAT_MAX]);

/* The netmask of prefix, e.g. 0xffffff00 for 24. */
uint32_t ipv4_prefix_mask(unsigned prefix);

bool ipv4_net_overlaps(const Ipv4Net *a, const Ipv4Net *b);
bool ipv4_net_contains(const Ipv4Net *n, uint32_t addr);

/* The address of host number index in n: index 1 is the bridge, VM slot s has index s + 1. */
uint32_t ipv4_net_host(const Ipv4Net *n, unsigned index);
/* The highest VM slot that n holds: 253 for a /24, 0 when n has no room for one VM. */
unsigned ipv4_net_max_slot(const Ipv4Net *n);

/* Picks the first /24 from banger's candidate list (in 10.0.0.0/8, 172.16.0.0/12 and
 * 192.168.0.0/16) that overlaps none of used. Returns -EADDRNOTAVAIL when every candidate
 * overlaps. */
int ipv4_net_choose(const Ipv4Net *used, size_t n_used, Ipv4Net *ret);
