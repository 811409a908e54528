#pragma once

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "dns-upstream.h"

/* bangerd's DNS server on its sd-event loop. It replies to A queries for NAME.banger from a
 * lookup callback, and forwards every other name to upstream resolvers, relaying their reply
 * with the client's id. It serves UDP and TCP (RFC 7766: a 2-byte length before each message,
 * several queries per connection, replies in any order). */

#define DNS_SERVER_DOMAIN "banger"
#define DNS_SERVER_TTL    5u /* seconds: a VM's address goes away when it stops */

#define DNS_SERVER_TIMEOUT_USEC         (4ULL * 1000000ULL)
#define DNS_SERVER_MAX_IN_FLIGHT        128u
#define DNS_SERVER_MAX_CONNECTIONS      32u
#define DNS_SERVER_IDLE_TIMEOUT_USEC    (10ULL * 1000000ULL)
#define DNS_SERVER_CONNECTION_QUEUE_MAX (256u * 1024u) /* unread reply bytes per connection */

typedef struct DnsServer DnsServer;

/* Looks up name, the label before ".banger" in lower case. Returns 1 with *ret set to the
 * address (network byte order) of the running VM of that name. Returns 0 when no running VM
 * with an address has that name, and a negative errno on failure, which the client gets as
 * SERVFAIL. */
typedef int (*DnsLookupFunc)(const char *name, struct in_addr *ret, void *userdata);

/* Called for every message a client sends, so the caller can count it as activity. */
typedef void (*DnsActivityFunc)(void *userdata);

typedef struct DnsServerConfig {
        DnsLookupFunc lookup;
        DnsActivityFunc on_activity; /* NULL for none */
        void *userdata;

        /* The upstream resolvers: the first DNS_UPSTREAM_MAX of upstreams when it is not NULL,
         * else the nameserver lines of resolv_conf, on port resolv_conf_port (0 means 53). The
         * file is read again when it changes. Upstreams that would send a query back to this
         * server are skipped: the addresses of the listening sockets and every address of the
         * interface excluded_ifname (NULL for none). */
        const DnsEndpoint *upstreams;
        size_t n_upstreams;
        const char *resolv_conf;
        uint16_t resolv_conf_port;
        const char *excluded_ifname;

        /* Limits; 0 selects the DNS_SERVER_* default. timeout_usec covers all upstreams of one
         * query, each of which gets an equal share of it. Beyond max_in_flight forwarded
         * queries, the oldest gets SERVFAIL; beyond max_connections TCP connections, the
         * oldest is closed. */
        uint64_t timeout_usec;
        unsigned max_in_flight;
        unsigned max_connections;
        uint64_t idle_timeout_usec;
} DnsServerConfig;

int dns_server_new(sd_event *event, const DnsServerConfig *config, DnsServer **ret);

/* Closes every socket and drops the queries in flight without a reply. */
DnsServer *dns_server_free(DnsServer *s);
static inline void dns_server_freep(DnsServer **s)
{
        dns_server_free(*s);
}

/* Serves fd, a bound UDP socket or a listening TCP socket of family AF_INET or AF_INET6. Takes
 * ownership of fd, also on failure. Returns -EPROTONOSUPPORT for another kind of socket. */
int dns_server_add_socket(DnsServer *s, int fd);

/* The number of forwarded queries waiting for an upstream, and of open TCP connections. */
unsigned dns_server_in_flight(const DnsServer *s);
unsigned dns_server_connections(const DnsServer *s);
