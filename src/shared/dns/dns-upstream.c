#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns-upstream.h"
#include "macro.h"

static int parse_scope(const char *s, uint32_t *ret)
{
        char *end;
        unsigned long n;
        unsigned index;

        if (isempty(s))
                return -EINVAL;
        if (isdigit((unsigned char)s[0])) {
                errno = 0;
                n = strtoul(s, &end, 10);
                if (errno != 0 || *end != '\0' || n == 0 || n > UINT32_MAX)
                        return -EINVAL;
                *ret = (uint32_t)n;
                return 0;
        }
        index = if_nametoindex(s);
        if (index == 0)
                return -EINVAL;
        *ret = index;
        return 0;
}

int dns_endpoint_from_string(const char *s, uint16_t port, DnsEndpoint *ret)
{
        DnsEndpoint e = {};
        char address[INET6_ADDRSTRLEN];
        const char *percent;
        size_t len;

        if (inet_pton(AF_INET, s, &e.in.sin_addr) == 1) {
                e.in.sin_family = AF_INET;
                e.in.sin_port = htons(port);
                e.size = sizeof(e.in);
                *ret = e;
                return 0;
        }

        percent = strchr(s, '%');
        len = percent ? (size_t)(percent - s) : strlen(s);
        if (len >= sizeof(address))
                return -EINVAL;
        memcpy(address, s, len);
        address[len] = '\0';
        if (inet_pton(AF_INET6, address, &e.in6.sin6_addr) != 1)
                return -EINVAL;
        if (percent && parse_scope(percent + 1, &e.in6.sin6_scope_id) < 0)
                return -EINVAL;

        e.in6.sin6_family = AF_INET6;
        e.in6.sin6_port = htons(port);
        e.size = sizeof(e.in6);
        *ret = e;
        return 0;
}

void dns_endpoint_to_string(const DnsEndpoint *e, char buf[DNS_ENDPOINT_STRING_MAX])
{
        char address[INET6_ADDRSTRLEN] = "?";

        if (e->sa.sa_family == AF_INET) {
                (void)inet_ntop(AF_INET, &e->in.sin_addr, address, sizeof(address));
                snprintf(buf, DNS_ENDPOINT_STRING_MAX, "%s:%u", address, dns_endpoint_port(e));
                return;
        }

        (void)inet_ntop(AF_INET6, &e->in6.sin6_addr, address, sizeof(address));
        if (e->in6.sin6_scope_id != 0)
                snprintf(buf, DNS_ENDPOINT_STRING_MAX, "[%s%%%u]:%u", address, e->in6.sin6_scope_id,
                         dns_endpoint_port(e));
        else
                snprintf(buf, DNS_ENDPOINT_STRING_MAX, "[%s]:%u", address, dns_endpoint_port(e));
}

uint16_t dns_endpoint_port(const DnsEndpoint *e)
{
        return ntohs(e->sa.sa_family == AF_INET ? e->in.sin_port : e->in6.sin6_port);
}

bool dns_endpoint_same_address(const DnsEndpoint *a, const DnsEndpoint *b)
{
        if (a->sa.sa_family != b->sa.sa_family)
                return false;
        if (a->sa.sa_family == AF_INET)
                return a->in.sin_addr.s_addr == b->in.sin_addr.s_addr;
        return memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, sizeof(struct in6_addr)) == 0 &&
               a->in6.sin6_scope_id == b->in6.sin6_scope_id;
}

bool dns_endpoint_is_any(const DnsEndpoint *e)
{
        if (e->sa.sa_family == AF_INET)
                return e->in.sin_addr.s_addr == htonl(INADDR_ANY);
        return IN6_IS_ADDR_UNSPECIFIED(&e->in6.sin6_addr);
}

bool dns_endpoint_is_loopback(const DnsEndpoint *e)
{
        const struct in6_addr *a6 = &e->in6.sin6_addr;

        if (e->sa.sa_family == AF_INET)
                return (ntohl(e->in.sin_addr.s_addr) >> 24) == 127;
        if (IN6_IS_ADDR_LOOPBACK(a6))
                return true;
        return IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127;
}

/* Copies the address after "nameserver" on line (of length len) into buf. Returns false when
 * line is not a nameserver line or the address does not fit, so it cannot be valid. */
static bool nameserver_address(const char *line, size_t len, char *buf, size_t buf_size)
{
        const char *keyword = "nameserver";
        size_t k = strlen(keyword), start, end;

        if (len <= k || !strneq(line, keyword, k) || !isblank((unsigned char)line[k]))
                return false;

        start = k;
        while (start < len && isblank((unsigned char)line[start]))
                start++;
        end = start;
        while (end < len && !isspace((unsigned char)line[end]) && line[end] != '#' &&
               line[end] != ';')
                end++;
        if (end == start || end - start >= buf_size)
                return false;

        memcpy(buf, line + start, end - start);
        buf[end - start] = '\0';
        return true;
}

int dns_upstreams_parse_resolv_conf(const char *text, uint16_t port, DnsEndpoint **ret,
                                    size_t *ret_n)
{
        _cleanup_free_ DnsEndpoint *list = calloc(DNS_UPSTREAM_MAX, sizeof(DnsEndpoint));
        size_t n = 0;

        if (!list)
                return -ENOMEM;

        for (const char *line = text; *line && n < DNS_UPSTREAM_MAX;) {
                /* An IPv6 address with an interface name as its scope is the longest. */
                char address[INET6_ADDRSTRLEN + IF_NAMESIZE + 1];
                size_t len = strcspn(line, "\n");

                if (nameserver_address(line, len, address, sizeof(address)) &&
                    dns_endpoint_from_string(address, port, &list[n]) >= 0)
                        n++;
                line += len;
                if (*line == '\n')
                        line++;
        }

        *ret = TAKE_PTR(list);
        *ret_n = n;
        return 0;
}

bool dns_upstream_is_loop(const DnsEndpoint *upstream, const DnsEndpoint *listening,
                          size_t n_listening, const DnsEndpoint *excluded, size_t n_excluded)
{
        for (size_t i = 0; i < n_excluded; i++)
                if (dns_endpoint_same_address(upstream, &excluded[i]))
                        return true;

        for (size_t i = 0; i < n_listening; i++) {
                const DnsEndpoint *l = &listening[i];

                if (dns_endpoint_port(l) != dns_endpoint_port(upstream))
                        continue;
                if (dns_endpoint_same_address(upstream, l))
                        return true;
                /* A wildcard socket takes queries to every local address, of which loopback is
                 * the one a resolv.conf names. */
                if (dns_endpoint_is_any(l) && dns_endpoint_is_loopback(upstream))
                        return true;
        }
        return false;
}
