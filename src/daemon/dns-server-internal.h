#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <systemd/sd-event.h>

#include "dns-packet.h"
#include "dns-server.h"
#include "dns-upstream.h"

/* The parts of the DNS server that dns-server.c (clients) and dns-forward.c (upstreams)
 * share. */

#define USEC_PER_SEC        1000000ULL
#define LISTENERS_MAX       16u
#define MESSAGES_PER_WAKEUP 32u /* per socket and wakeup, so one client cannot starve others */
#define TIMER_ACCURACY_USEC 1000ULL

/* Doubly linked lists with a head and a tail. Items carry prev and next pointers. */
#define LIST_APPEND(head, tail, item)          \
        do {                                   \
                (item)->prev = (tail);         \
                (item)->next = NULL;           \
                if (tail)                      \
                        (tail)->next = (item); \
                else                           \
                        (head) = (item);       \
                (tail) = (item);               \
        } while (0)

#define LIST_REMOVE(head, tail, item)                      \
        do {                                               \
                if ((item)->prev)                          \
                        (item)->prev->next = (item)->next; \
                else                                       \
                        (head) = (item)->next;             \
                if ((item)->next)                          \
                        (item)->next->prev = (item)->prev; \
                else                                       \
                        (tail) = (item)->prev;             \
                (item)->prev = (item)->next = NULL;        \
        } while (0)

typedef struct DnsConnection DnsConnection;

/* Where a reply goes: a UDP peer of a listening socket, or a TCP connection. */
typedef struct DnsClient {
        int fd;                    /* UDP: the socket the query came in on */
        DnsEndpoint address;       /* UDP: the peer */
        DnsConnection *connection; /* TCP, or NULL for UDP */
} DnsClient;

typedef struct DnsListener {
        DnsServer *server;
        int fd;
        bool tcp;
        DnsEndpoint address;
        sd_event_source *io;
        sd_event_source *retry; /* turns accepting back on after the process ran out of fds */
} DnsListener;

struct DnsConnection {
        DnsServer *server;
        int fd;
        sd_event_source *io;
        sd_event_source *idle;

        uint8_t length[2]; /* the length prefix of the next message */
        size_t length_have;
        uint8_t *message; /* NULL until the prefix is complete */
        size_t message_size, message_have;

        uint8_t *queue; /* length-prefixed replies, written from queue_sent on */
        size_t queue_size, queue_sent;

        unsigned n_transactions;
        bool read_eof;
        bool closing; /* freed by the server's sweep on the next loop iteration */
        DnsConnection *prev, *next;
};

/* A query forwarded to the upstreams, one at a time, until one replies. */
typedef struct DnsTransaction {
        DnsServer *server;
        DnsClient client;
        DnsQuery query;
        bool tcp;
        uint16_t upstream_id;
        uint8_t *wire; /* the 2-byte length, then the query with upstream_id */
        size_t wire_size;

        DnsEndpoint upstreams[DNS_UPSTREAM_MAX];
        size_t n_upstreams, next_upstream;
        int fd;
        sd_event_source *io;
        sd_event_source *timer;

        size_t sent; /* TCP: bytes of wire written */
        uint8_t length[2];
        size_t length_have;
        uint8_t *reply;
        size_t reply_size, reply_have;

        struct DnsTransaction *prev, *next;
} DnsTransaction;

struct DnsServer {
        sd_event *event;
        DnsLookupFunc lookup;
        DnsActivityFunc on_activity;
        void *userdata;

        bool fixed_upstreams;
        DnsEndpoint configured[DNS_UPSTREAM_MAX];
        size_t n_configured;
        char *resolv_conf;
        uint16_t resolv_conf_port;
        char *excluded_ifname;

        uint64_t timeout_usec;
        unsigned max_in_flight;
        unsigned max_connections;
        uint64_t idle_timeout_usec;

        DnsListener *listeners[LISTENERS_MAX];
        size_t n_listeners;

        /* The upstreams in use: the configured ones or resolv.conf's, minus loops. */
        DnsEndpoint upstreams[DNS_UPSTREAM_MAX];
        size_t n_upstreams;
        bool upstreams_stale;
        struct stat resolv_conf_stat;

        DnsTransaction *transactions, *transactions_tail; /* oldest first */
        unsigned n_transactions;
        DnsConnection *connections, *connections_tail; /* oldest first */
        unsigned n_connections;
        sd_event_source *sweep;

        uint64_t n_evicted;
        uint64_t evict_warning_usec;

        uint8_t buffer[DNS_MESSAGE_MAX + 1];
};

static inline void *mfree(void *p)
{
        free(p);
        return NULL;
}

/* Sends a reply that the server built itself: address is the one A record, or NULL for none. */
void dns_server_reply(DnsServer *s, const DnsClient *client, const DnsQuery *q, DnsRcode rcode,
                      bool authoritative, const struct in_addr *address);
void dns_client_send(DnsServer *s, const DnsClient *client, const uint8_t *data, size_t size);
void dns_connection_check_done(DnsConnection *c);
int dns_read_some(int fd, uint8_t *buf, size_t size, size_t *have);

/* Brings s->upstreams up to date: after a socket was added, and when resolv.conf changed. */
void dns_server_refresh_upstreams(DnsServer *s);
/* Forwards the query q, whose message is data, to the upstreams. */
void dns_server_forward(DnsServer *s, const DnsClient *client, const DnsQuery *q,
                        const uint8_t *data, size_t size);
/* Frees t without replying. */
void dns_transaction_free(DnsTransaction *t);
