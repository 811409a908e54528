#include <errno.h>
#include <ifaddrs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "dns-server-internal.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"

#define RESOLV_CONF_SIZE_MAX  (64u * 1024u)
#define WARNING_INTERVAL_USEC (60ULL * USEC_PER_SEC)

/* Upstreams */

static bool stat_same(const struct stat *a, const struct stat *b)
{
        return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
               a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Collects the addresses of excluded_ifname, with port 0. */
static int server_excluded_addresses(DnsServer *s, DnsEndpoint **ret, size_t *ret_n)
{
        _cleanup_free_ DnsEndpoint *list = NULL;
        struct ifaddrs *ifaddrs = NULL;
        size_t n = 0, allocated = 0;

        *ret = NULL;
        *ret_n = 0;
        if (!s->excluded_ifname)
                return 0;
        if (getifaddrs(&ifaddrs) < 0)
                return negative_errno();

        for (struct ifaddrs *i = ifaddrs; i; i = i->ifa_next) {
                int family = i->ifa_addr ? i->ifa_addr->sa_family : AF_UNSPEC;
                DnsEndpoint e = {};

                if (!streq(i->ifa_name, s->excluded_ifname))
                        continue;
                if (family == AF_INET) {
                        e.in = *(const struct sockaddr_in *)i->ifa_addr;
                        e.size = sizeof(e.in);
                } else if (family == AF_INET6) {
                        e.in6 = *(const struct sockaddr_in6 *)i->ifa_addr;
                        e.size = sizeof(e.in6);
                } else
                        continue;

                if (n == allocated) {
                        DnsEndpoint *grown = reallocarray(list, allocated + 8, sizeof(*list));

                        if (!grown) {
                                freeifaddrs(ifaddrs);
                                return -ENOMEM;
                        }
                        list = grown;
                        allocated += 8;
                }
                list[n++] = e;
        }

        freeifaddrs(ifaddrs);
        *ret = TAKE_PTR(list);
        *ret_n = n;
        return 0;
}

static void log_upstreams(DnsServer *s, const char *source)
{
        char text[DNS_UPSTREAM_MAX * (DNS_ENDPOINT_STRING_MAX + 2)] = "";

        if (s->n_upstreams == 0) {
                log_warning("No upstream DNS server in %s: queries for names outside ."
                            "%s get SERVFAIL",
                            source, DNS_SERVER_DOMAIN);
                return;
        }
        for (size_t i = 0; i < s->n_upstreams; i++) {
                char e[DNS_ENDPOINT_STRING_MAX];

                dns_endpoint_to_string(&s->upstreams[i], e);
                if (i > 0)
                        strcat(text, ", ");
                strcat(text, e);
        }
        log_info("Forwarding DNS queries for names outside .%s to %s", DNS_SERVER_DOMAIN, text);
}

/* Sets s->upstreams to the entries of candidates that do not lead back to this server. */
static void server_set_upstreams(DnsServer *s, const DnsEndpoint *candidates, size_t n,
                                 const char *source)
{
        _cleanup_free_ DnsEndpoint *excluded = NULL;
        DnsEndpoint listening[LISTENERS_MAX];
        size_t n_excluded = 0;
        int r;

        r = server_excluded_addresses(s, &excluded, &n_excluded);
        if (r < 0)
                log_warning_errno(r, "Failed to read the addresses of '%s', ignoring: %m",
                                  s->excluded_ifname);
        for (size_t i = 0; i < s->n_listeners; i++)
                listening[i] = s->listeners[i]->address;

        s->n_upstreams = 0;
        for (size_t i = 0; i < n && i < DNS_UPSTREAM_MAX; i++) {
                char e[DNS_ENDPOINT_STRING_MAX];

                if (!dns_upstream_is_loop(&candidates[i], listening, s->n_listeners, excluded,
                                          n_excluded)) {
                        s->upstreams[s->n_upstreams++] = candidates[i];
                        continue;
                }
                dns_endpoint_to_string(&candidates[i], e);
                log_info("Skipping DNS server %s from %s: queries to it would come back to this "
                         "server",
                         e, source);
        }
        s->upstreams_stale = false;
        log_upstreams(s, source);
}

static void server_read_resolv_conf(DnsServer *s, const struct stat *st)
{
        _cleanup_free_ DnsEndpoint *list = NULL;
        _cleanup_free_ char *text = NULL;
        _cleanup_free_ char *source = NULL;
        size_t n = 0;
        int r;

        if (asprintf(&source, "'%s'", s->resolv_conf) < 0)
                source = NULL;

        s->resolv_conf_stat = *st;
        r = read_full_file(s->resolv_conf, RESOLV_CONF_SIZE_MAX, &text, NULL);
        if (r < 0 && r != -ENOENT)
                log_warning_errno(r, "Failed to read '%s', forwarding to no DNS server: %m",
                                  s->resolv_conf);
        if (r >= 0) {
                r = dns_upstreams_parse_resolv_conf(text, s->resolv_conf_port, &list, &n);
                if (r < 0)
                        log_warning_errno(r, "Failed to parse '%s', ignoring: %m", s->resolv_conf);
        }
        server_set_upstreams(s, list, n, source ?: s->resolv_conf);
}

void dns_server_refresh_upstreams(DnsServer *s)
{
        struct stat st = {};

        if (s->fixed_upstreams) {
                if (s->upstreams_stale)
                        server_set_upstreams(s, s->configured, s->n_configured,
                                             "the configured list");
                return;
        }
        if (!s->resolv_conf) {
                s->n_upstreams = 0;
                return;
        }

        /* A missing file compares as all zeroes. */
        if (stat(s->resolv_conf, &st) < 0)
                st = (struct stat){};
        if (s->upstreams_stale || !stat_same(&st, &s->resolv_conf_stat))
                server_read_resolv_conf(s, &st);
}

/* Forwarding */

static void transaction_close_upstream(DnsTransaction *t)
{
        t->io = sd_event_source_disable_unref(t->io);
        t->fd = safe_close(t->fd);
        t->sent = 0;
        t->length_have = 0;
        t->reply = mfree(t->reply);
        t->reply_size = t->reply_have = 0;
}

void dns_transaction_free(DnsTransaction *t)
{
        DnsServer *s = t->server;
        DnsConnection *c = t->client.connection;

        LIST_REMOVE(s->transactions, s->transactions_tail, t);
        s->n_transactions--;

        transaction_close_upstream(t);
        t->timer = sd_event_source_disable_unref(t->timer);
        free(t->wire);
        free(t);

        if (c) {
                c->n_transactions--;
                dns_connection_check_done(c);
        }
}

static void transaction_fail(DnsTransaction *t)
{
        dns_server_reply(t->server, &t->client, &t->query, DNS_RCODE_SERVFAIL, false, NULL);
        dns_transaction_free(t);
}

/* Sends data, a checked upstream reply, to the client with the client's id, and frees t. */
static void transaction_relay(DnsTransaction *t, uint8_t *data, size_t size)
{
        dns_message_set_id(data, t->query.id);
        if (!t->tcp && size > dns_query_udp_reply_max(&t->query, DNS_MESSAGE_MAX))
                size = dns_reply_truncate(data, t->query.question_end);
        dns_client_send(t->server, &t->client, data, size);
        dns_transaction_free(t);
}

static int on_upstream_timeout(sd_event_source *source, uint64_t usec, void *userdata);
static int on_upstream_io(sd_event_source *source, int fd, uint32_t revents, void *userdata);

static int transaction_start_attempt(DnsTransaction *t, const DnsEndpoint *upstream)
{
        DnsServer *s = t->server;
        _cleanup_close_ int fd = -EBADF;
        uint64_t slice = s->timeout_usec / t->n_upstreams;
        int r;

        transaction_close_upstream(t);

        fd = socket(upstream->sa.sa_family,
                    (t->tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        /* A connected UDP socket takes datagrams from the upstream's address and port only. */
        if (connect(fd, &upstream->sa, upstream->size) < 0 && !(t->tcp && errno == EINPROGRESS))
                return negative_errno();
        if (!t->tcp && send(fd, t->wire + 2, t->wire_size - 2, MSG_NOSIGNAL) < 0)
                return negative_errno();

        r = sd_event_add_io(s->event, &t->io, fd, t->tcp ? EPOLLOUT : EPOLLIN, on_upstream_io, t);
        if (r < 0)
                return r;
        t->fd = TAKE_FD(fd);

        if (!t->timer)
                return sd_event_add_time_relative(s->event, &t->timer, CLOCK_MONOTONIC, slice,
                                                  TIMER_ACCURACY_USEC, on_upstream_timeout, t);
        r = sd_event_source_set_time_relative(t->timer, slice);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(t->timer, SD_EVENT_ONESHOT);
}

/* Sends the query to the next upstream that takes it, or replies SERVFAIL and frees t when none
 * is left. t must not be used after this returns. */
static void transaction_next_attempt(DnsTransaction *t)
{
        while (t->next_upstream < t->n_upstreams) {
                const DnsEndpoint *upstream = &t->upstreams[t->next_upstream++];
                char e[DNS_ENDPOINT_STRING_MAX];
                int r;

                r = transaction_start_attempt(t, upstream);
                if (r >= 0)
                        return;
                dns_endpoint_to_string(upstream, e);
                log_debug_errno(r, "Failed to send a DNS query to %s: %m", e);
        }
        transaction_fail(t);
}

static int on_upstream_timeout(sd_event_source *source, uint64_t usec, void *userdata)
{
        DnsTransaction *t = userdata;
        char e[DNS_ENDPOINT_STRING_MAX];

        dns_endpoint_to_string(&t->upstreams[t->next_upstream - 1], e);
        log_debug("DNS server %s did not reply in time", e);
        transaction_next_attempt(t);
        return 0;
}

/* Reads datagrams until one is the reply. Returns 1 when it was relayed (t is freed), 0 to wait
 * for more, or a negative errno when the upstream failed. */
static int upstream_udp_read(DnsTransaction *t)
{
        DnsServer *s = t->server;

        for (unsigned i = 0; i < MESSAGES_PER_WAKEUP; i++) {
                ssize_t n = recv(t->fd, s->buffer, sizeof(s->buffer), MSG_DONTWAIT);

                if (n < 0)
                        return errno == EAGAIN || errno == EINTR ? 0 : negative_errno();
                if (dns_reply_check(s->buffer, (size_t)n, t->upstream_id, &t->query.question) < 0) {
                        log_debug("Ignoring a datagram of %zd bytes that is not the reply", n);
                        continue;
                }
                transaction_relay(t, s->buffer, (size_t)n);
                return 1;
        }
        return 0;
}

static int upstream_tcp_write(DnsTransaction *t)
{
        ssize_t n;

        if (t->sent == 0) {
                int error = 0;
                socklen_t len = sizeof(error);

                if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
                        return negative_errno();
                if (error != 0)
                        return -error;
        }

        n = send(t->fd, t->wire + t->sent, t->wire_size - t->sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : negative_errno();
        t->sent += (size_t)n;
        if (t->sent < t->wire_size)
                return 0;
        return sd_event_source_set_io_events(t->io, EPOLLIN);
}

/* The same contract as upstream_udp_read(). */
static int upstream_tcp_read(DnsTransaction *t)
{
        int r;

        if (!t->reply) {
                r = dns_read_some(t->fd, t->length, sizeof(t->length), &t->length_have);
                if (r <= 0)
                        return r;
                t->reply_size = (size_t)t->length[0] << 8 | t->length[1];
                if (t->reply_size < DNS_HEADER_SIZE)
                        return -EBADMSG;
                t->reply = malloc(t->reply_size);
                if (!t->reply)
                        return -ENOMEM;
        }

        r = dns_read_some(t->fd, t->reply, t->reply_size, &t->reply_have);
        if (r <= 0)
                return r;
        if (dns_reply_check(t->reply, t->reply_size, t->upstream_id, &t->query.question) < 0)
                return -EBADMSG;
        transaction_relay(t, t->reply, t->reply_size);
        return 1;
}

static int on_upstream_io(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
        DnsTransaction *t = userdata;
        char e[DNS_ENDPOINT_STRING_MAX];
        int r;

        if (!t->tcp)
                r = upstream_udp_read(t);
        else if (t->sent < t->wire_size)
                r = upstream_tcp_write(t);
        else
                r = upstream_tcp_read(t);
        if (r >= 0)
                return 0;

        dns_endpoint_to_string(&t->upstreams[t->next_upstream - 1], e);
        log_debug_errno(r, "DNS server %s failed: %m", e);
        transaction_next_attempt(t);
        return 0;
}

static uint16_t random_id(void)
{
        static uint16_t fallback;
        uint16_t id;

        if (getrandom(&id, sizeof(id), GRND_NONBLOCK) == sizeof(id))
                return id;
        /* Only before the kernel's pool is ready: the connected socket's random port still
         * guards the reply. */
        return (uint16_t)(++fallback * 40503u);
}

static void server_evict_oldest(DnsServer *s)
{
        uint64_t now = 0;

        s->n_evicted++;
        (void)sd_event_now(s->event, CLOCK_MONOTONIC, &now);
        if (s->evict_warning_usec == 0 || now >= s->evict_warning_usec + WARNING_INTERVAL_USEC) {
                log_warning("More than %u DNS queries wait for an upstream server: answered the "
                            "oldest with SERVFAIL (%llu so far)",
                            s->max_in_flight, (unsigned long long)s->n_evicted);
                s->evict_warning_usec = now;
        }
        transaction_fail(s->transactions);
}

static int transaction_new(DnsServer *s, const DnsClient *client, const DnsQuery *q,
                           const uint8_t *data, size_t size, DnsTransaction **ret)
{
        DnsTransaction *t = calloc(1, sizeof(DnsTransaction));

        if (!t)
                return -ENOMEM;
        t->wire = malloc(2 + size);
        if (!t->wire) {
                free(t);
                return -ENOMEM;
        }

        t->server = s;
        t->client = *client;
        t->query = *q;
        t->tcp = client->connection != NULL;
        t->fd = -EBADF;
        t->upstream_id = random_id();
        t->wire[0] = (uint8_t)(size >> 8);
        t->wire[1] = (uint8_t)size;
        memcpy(t->wire + 2, data, size);
        dns_message_set_id(t->wire + 2, t->upstream_id);
        t->wire_size = 2 + size;
        memcpy(t->upstreams, s->upstreams, s->n_upstreams * sizeof(DnsEndpoint));
        t->n_upstreams = s->n_upstreams;

        LIST_APPEND(s->transactions, s->transactions_tail, t);
        s->n_transactions++;
        if (client->connection)
                client->connection->n_transactions++;
        *ret = t;
        return 0;
}

void dns_server_forward(DnsServer *s, const DnsClient *client, const DnsQuery *q,
                        const uint8_t *data, size_t size)
{
        DnsTransaction *t;
        int r;

        dns_server_refresh_upstreams(s);
        if (s->n_upstreams == 0) {
                dns_server_reply(s, client, q, DNS_RCODE_SERVFAIL, false, NULL);
                return;
        }
        if (s->n_transactions >= s->max_in_flight)
                server_evict_oldest(s);

        r = transaction_new(s, client, q, data, size, &t);
        if (r < 0) {
                log_warning_errno(r, "Failed to forward a DNS query: %m");
                dns_server_reply(s, client, q, DNS_RCODE_SERVFAIL, false, NULL);
                return;
        }
        transaction_next_attempt(t);
}
