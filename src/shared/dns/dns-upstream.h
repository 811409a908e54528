#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The resolvers that bangerd's DNS server forwards to, read from resolv.conf. */

#define DNS_PORT                53u
#define DNS_UPSTREAM_MAX        3u /* as glibc's MAXNS: later nameserver lines are ignored */
#define DNS_ENDPOINT_STRING_MAX (INET6_ADDRSTRLEN + 24u)

/* An IPv4 or IPv6 socket address. */
typedef struct DnsEndpoint {
        union {
                struct sockaddr sa;
                struct sockaddr_in in;
                struct sockaddr_in6 in6;
        };
        socklen_t size;
} DnsEndpoint;

/* Parses a numeric IPv4 or IPv6 address, with an optional "%SCOPE" for IPv6, into an endpoint
 * with port. Returns -EINVAL for anything else. */
int dns_endpoint_from_string(const char *s, uint16_t port, DnsEndpoint *ret);

/* Writes "A.B.C.D:PORT" or "[ADDR%SCOPE]:PORT". */
void dns_endpoint_to_string(const DnsEndpoint *e, char buf[DNS_ENDPOINT_STRING_MAX]);

uint16_t dns_endpoint_port(const DnsEndpoint *e);

/* True when a and b have the same family and address (and scope for IPv6), ignoring ports. */
bool dns_endpoint_same_address(const DnsEndpoint *a, const DnsEndpoint *b);

/* True for 0.0.0.0 and ::. */
bool dns_endpoint_is_any(const DnsEndpoint *e);

/* True for 127.0.0.0/8, ::1 and IPv4-mapped 127.0.0.0/8. */
bool dns_endpoint_is_loopback(const DnsEndpoint *e);

/* Reads the "nameserver" lines of a resolv.conf text, in order, each with port. Lines whose
 * address is not numeric are skipped, as glibc does, and so are entries after the first
 * DNS_UPSTREAM_MAX. A text without any gives an empty list. */
int dns_upstreams_parse_resolv_conf(const char *text, uint16_t port, DnsEndpoint **ret,
                                    size_t *ret_n);

/* Returns true when forwarding to upstream could reach this server again. That is the case for
 * the address and port of a listening socket, and for a loopback address on the port of a
 * socket listening on the wildcard address. It is also the case for any port of an address in
 * excluded. */
bool dns_upstream_is_loop(const DnsEndpoint *upstream, const DnsEndpoint *listening,
                          size_t n_listening, const DnsEndpoint *excluded, size_t n_excluded);
