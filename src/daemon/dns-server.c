#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "dns-server-internal.h"
#include "log.h"
#include "macro.h"

#define ACCEPT_RETRY_USEC    USEC_PER_SEC
#define LOCAL_REPLY_SIZE_MAX (DNS_HEADER_SIZE + DNS_NAME_WIRE_MAX + 4u + 16u) /* one A record */

static void connection_close_later(DnsConnection *c);

/* Replies */

void dns_server_reply(DnsServer *s, const DnsClient *client, const DnsQuery *q, DnsRcode rcode,
                      bool authoritative, const struct in_addr *address)
{
        uint8_t buf[LOCAL_REPLY_SIZE_MAX];
        size_t size;
        int r;

        r = dns_reply_build(q, rcode, authoritative, address, address ? 1 : 0, DNS_SERVER_TTL, buf,
                            sizeof(buf), &size);
        if (r < 0) {
                log_debug_errno(r, "Failed to build a DNS reply: %m");
                return;
        }
        dns_client_send(s, client, buf, size);
}

static bool in_server_domain(const DnsQuestion *q)
{
        const uint8_t *label;
        size_t size;

        if (q->n_labels == 0)
                return false;
        label = dns_question_label(q, q->n_labels - 1, &size);
        return dns_label_equal(label, size, DNS_SERVER_DOMAIN);
}

/* Copies the first label of q in lower case into host when it can be a VM name at all. */
static bool question_host(const DnsQuestion *q, char host[DNS_LABEL_MAX + 1])
{
        const uint8_t *label;
        size_t size;

        label = dns_question_label(q, 0, &size);
        for (size_t i = 0; i < size; i++) {
                uint8_t c = label[i];

                if (c >= 'A' && c <= 'Z')
                        c = c - 'A' + 'a';
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
                        return false;
                host[i] = (char)c;
        }
        host[size] = '\0';
        return true;
}

/* Replies to a query for a name in the server's own domain. The domain itself exists but has no
 * records. Below it, only NAME.banger of a running VM exists. */
static void server_answer_local(DnsServer *s, const DnsClient *client, const DnsQuery *q)
{
        const DnsQuestion *question = &q->question;
        char host[DNS_LABEL_MAX + 1];
        struct in_addr address;
        int r;

        if (question->n_labels == 1) {
                dns_server_reply(s, client, q, DNS_RCODE_NOERROR, true, NULL);
                return;
        }
        if (question->n_labels > 2 || !question_host(question, host)) {
                dns_server_reply(s, client, q, DNS_RCODE_NXDOMAIN, true, NULL);
                return;
        }

        r = s->lookup(host, &address, s->userdata);
        if (r < 0) {
                log_warning_errno(r, "Failed to look up VM '%s' for a DNS query: %m", host);
                dns_server_reply(s, client, q, DNS_RCODE_SERVFAIL, false, NULL);
                return;
        }
        if (r == 0) {
                dns_server_reply(s, client, q, DNS_RCODE_NXDOMAIN, true, NULL);
                return;
        }

        /* AAAA and other types get no records: the name exists, with an IPv4 address only. */
        if (question->type == DNS_TYPE_A || question->type == DNS_TYPE_ANY)
                dns_server_reply(s, client, q, DNS_RCODE_NOERROR, true, &address);
        else
                dns_server_reply(s, client, q, DNS_RCODE_NOERROR, true, NULL);
}

/* Reads into buf until have reaches size. Returns 1 when complete, 0 to wait, -ECONNRESET on
 * end of file, or another negative errno. */
int dns_read_some(int fd, uint8_t *buf, size_t size, size_t *have)
{
        while (*have < size) {
                ssize_t n = recv(fd, buf + *have, size - *have, MSG_DONTWAIT);

                if (n == 0)
                        return -ECONNRESET;
                if (n < 0)
                        return errno == EAGAIN || errno == EINTR ? 0 : negative_errno();
                *have += (size_t)n;
        }
        return 1;
}

/* Handles one message from a client. Returns -EBADMSG for a message that is not a query, which
 * ends a TCP connection. */
static int server_handle_message(DnsServer *s, const DnsClient *client, const uint8_t *data,
                                 size_t size)
{
        DnsQuery q;
        int r;

        if (s->on_activity)
                s->on_activity(s->userdata);

        r = dns_query_parse(data, size, &q);
        if (r < 0) {
                log_debug("Ignoring a DNS message of %zu bytes that is not a query", size);
                return r;
        }
        if (log_get_max_level() >= LOG_DEBUG) {
                char name[DNS_NAME_STRING_MAX];

                if (q.has_question)
                        dns_name_to_string(&q.question, name);
                log_debug("DNS query %u for '%s' type %u over %s: %s", q.id,
                          q.has_question ? name : "", q.question.type,
                          client->connection ? "TCP" : "UDP",
                          r > 0 ? dns_rcode_to_string(r) : "valid");
        }
        if (r > 0)
                dns_server_reply(s, client, &q, r, false, NULL);
        else if (in_server_domain(&q.question))
                server_answer_local(s, client, &q);
        else
                dns_server_forward(s, client, &q, data, size);
        return 0;
}

/* TCP connections */

static int connection_reset_idle(DnsConnection *c)
{
        int r;

        r = sd_event_source_set_time_relative(c->idle, c->server->idle_timeout_usec);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(c->idle, SD_EVENT_ONESHOT);
}

static void connection_update_events(DnsConnection *c)
{
        uint32_t events = 0;
        int r;

        if (c->closing)
                return;
        if (!c->read_eof)
                events |= EPOLLIN;
        if (c->queue_sent < c->queue_size)
                events |= EPOLLOUT;
        r = sd_event_source_set_io_events(c->io, events);
        if (r < 0) {
                log_debug_errno(r, "Failed to watch a DNS connection, closing it: %m");
                connection_close_later(c);
        }
}

/* Frees c and its transactions without replying. */
static void connection_free(DnsConnection *c)
{
        DnsServer *s = c->server;

        for (DnsTransaction *t = s->transactions, *next; t; t = next) {
                next = t->next;
                if (t->client.connection == c) {
                        t->client.connection = NULL;
                        dns_transaction_free(t);
                }
        }

        LIST_REMOVE(s->connections, s->connections_tail, c);
        s->n_connections--;
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->idle);
        safe_close(c->fd);
        free(c->message);
        free(c->queue);
        free(c);
}

static void connection_close_later(DnsConnection *c)
{
        if (c->closing)
                return;
        c->closing = true;
        (void)sd_event_source_set_enabled(c->io, SD_EVENT_OFF);
        (void)sd_event_source_set_enabled(c->server->sweep, SD_EVENT_ONESHOT);
}

/* Closes c once the client ended its side and every reply is written. */
void dns_connection_check_done(DnsConnection *c)
{
        if (c->read_eof && c->n_transactions == 0 && c->queue_sent == c->queue_size)
                connection_close_later(c);
}

static void connection_flush(DnsConnection *c)
{
        while (c->queue_sent < c->queue_size) {
                ssize_t n = send(c->fd, c->queue + c->queue_sent, c->queue_size - c->queue_sent,
                                 MSG_DONTWAIT | MSG_NOSIGNAL);

                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        break;
                if (n < 0) {
                        log_debug_errno(negative_errno(), "Failed to write to a DNS client: %m");
                        connection_close_later(c);
                        return;
                }
                c->queue_sent += (size_t)n;
        }

        if (c->queue_sent == c->queue_size) {
                c->queue_sent = c->queue_size = 0;
                (void)connection_reset_idle(c);
                dns_connection_check_done(c);
        }
        connection_update_events(c);
}

static void connection_queue(DnsConnection *c, const uint8_t *data, size_t size)
{
        uint8_t *grown;

        if (c->closing)
                return;
        if (c->queue_size - c->queue_sent + 2 + size > DNS_SERVER_CONNECTION_QUEUE_MAX) {
                log_debug("DNS client does not read its replies, closing the connection");
                connection_close_later(c);
                return;
        }

        if (c->queue_sent > 0) {
                memmove(c->queue, c->queue + c->queue_sent, c->queue_size - c->queue_sent);
                c->queue_size -= c->queue_sent;
                c->queue_sent = 0;
        }
        grown = realloc(c->queue, c->queue_size + 2 + size);
        if (!grown) {
                connection_close_later(c);
                return;
        }
        c->queue = grown;
        c->queue[c->queue_size] = (uint8_t)(size >> 8);
        c->queue[c->queue_size + 1] = (uint8_t)size;
        memcpy(c->queue + c->queue_size + 2, data, size);
        c->queue_size += 2 + size;
        connection_flush(c);
}

/* Reads one message. Returns 1 when c->message is complete, 0 to wait, -ECONNRESET when the
 * client ended the connection between messages, or another negative errno. */
static int connection_read_message(DnsConnection *c)
{
        int r;

        if (!c->message) {
                r = dns_read_some(c->fd, c->length, sizeof(c->length), &c->length_have);
                if (r == -ECONNRESET && c->length_have == 0) {
                        c->read_eof = true;
                        return 0;
                }
                if (r <= 0)
                        return r;
                c->message_size = (size_t)c->length[0] << 8 | c->length[1];
                if (c->message_size == 0)
                        return -EBADMSG;
                c->message = malloc(c->message_size);
                if (!c->message)
                        return -ENOMEM;
                c->message_have = 0;
        }
        return dns_read_some(c->fd, c->message, c->message_size, &c->message_have);
}

static void connection_read(DnsConnection *c)
{
        DnsClient client = { .fd = -EBADF, .connection = c };

        for (unsigned i = 0; i < MESSAGES_PER_WAKEUP && !c->closing && !c->read_eof; i++) {
                int r = connection_read_message(c);

                if (r == 0)
                        break;
                if (r < 0) {
                        log_debug_errno(r, "Closing a DNS connection: %m");
                        connection_close_later(c);
                        return;
                }

                (void)connection_reset_idle(c);
                r = server_handle_message(c->server, &client, c->message, c->message_size);
                c->message = mfree(c->message);
                c->length_have = 0;
                if (r < 0) {
                        connection_close_later(c);
                        return;
                }
        }
        dns_connection_check_done(c);
}

static int on_connection_io(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
        DnsConnection *c = userdata;

        if (revents & EPOLLOUT)
                connection_flush(c);
        if (!c->closing && (revents & (EPOLLIN | EPOLLERR | EPOLLHUP)) && !c->read_eof)
                connection_read(c);
        if (!c->closing && (revents & EPOLLHUP) && c->read_eof)
                connection_close_later(c);
        connection_update_events(c);
        return 0;
}

static int on_connection_idle(sd_event_source *source, uint64_t usec, void *userdata)
{
        DnsConnection *c = userdata;

        /* A query in flight keeps the connection: its reply is still to come. */
        if (c->n_transactions > 0 || c->queue_sent < c->queue_size)
                return connection_reset_idle(c);
        log_debug("Closing an idle DNS connection");
        connection_close_later(c);
        return 0;
}

static int on_sweep(sd_event_source *source, void *userdata)
{
        DnsServer *s = userdata;

        for (DnsConnection *c = s->connections, *next; c; c = next) {
                next = c->next;
                if (c->closing)
                        connection_free(c);
        }
        return 0;
}

static int connection_new(DnsServer *s, int fd)
{
        _cleanup_close_ int owned_fd = fd;
        DnsConnection *c;
        int r;

        /* The oldest connection makes room. Freeing it here is safe because none of its own
         * callbacks is running. */
        if (s->n_connections >= s->max_connections) {
                log_debug("More than %u DNS connections, closing the oldest", s->max_connections);
                connection_free(s->connections);
        }

        c = calloc(1, sizeof(DnsConnection));
        if (!c)
                return -ENOMEM;
        c->server = s;
        c->fd = TAKE_FD(owned_fd);
        LIST_APPEND(s->connections, s->connections_tail, c);
        s->n_connections++;

        r = sd_event_add_io(s->event, &c->io, c->fd, EPOLLIN, on_connection_io, c);
        if (r >= 0)
                r = sd_event_add_time_relative(s->event, &c->idle, CLOCK_MONOTONIC,
                                               s->idle_timeout_usec, TIMER_ACCURACY_USEC,
                                               on_connection_idle, c);
        if (r < 0) {
                connection_free(c);
                return r;
        }
        return 0;
}

/* Listening sockets */

void dns_client_send(DnsServer *s, const DnsClient *client, const uint8_t *data, size_t size)
{
        if (client->connection) {
                connection_queue(client->connection, data, size);
                return;
        }
        if (sendto(client->fd, data, size, MSG_DONTWAIT | MSG_NOSIGNAL, &client->address.sa,
                   client->address.size) < 0)
                log_debug_errno(negative_errno(), "Failed to send a DNS reply: %m");
}

static void listener_read_udp(DnsListener *l)
{
        DnsServer *s = l->server;

        for (unsigned i = 0; i < MESSAGES_PER_WAKEUP; i++) {
                DnsClient client = { .fd = l->fd };
                socklen_t size = sizeof(client.address.in6);
                ssize_t n;

                n = recvfrom(l->fd, s->buffer, sizeof(s->buffer), MSG_DONTWAIT, &client.address.sa,
                             &size);
                if (n < 0) {
                        if (errno != EAGAIN && errno != EINTR)
                                log_debug_errno(negative_errno(), "Failed to receive a DNS "
                                                                  "query: %m");
                        return;
                }
                client.address.size = size;
                (void)server_handle_message(s, &client, s->buffer, (size_t)n);
        }
}

static int on_accept_retry(sd_event_source *source, uint64_t usec, void *userdata)
{
        DnsListener *l = userdata;

        return sd_event_source_set_enabled(l->io, SD_EVENT_ON);
}

static void listener_pause(DnsListener *l)
{
        int r;

        /* Level-triggered epoll would wake the loop again at once for the pending connection. */
        r = sd_event_source_set_enabled(l->io, SD_EVENT_OFF);
        if (r >= 0 && !l->retry)
                r = sd_event_add_time_relative(l->server->event, &l->retry, CLOCK_MONOTONIC,
                                               ACCEPT_RETRY_USEC, TIMER_ACCURACY_USEC,
                                               on_accept_retry, l);
        else if (r >= 0)
                r = sd_event_source_set_time_relative(l->retry, ACCEPT_RETRY_USEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(l->retry, SD_EVENT_ONESHOT);
        if (r < 0)
                log_warning_errno(r, "Failed to pause accepting DNS connections, ignoring: %m");
}

static void listener_accept(DnsListener *l)
{
        for (unsigned i = 0; i < MESSAGES_PER_WAKEUP; i++) {
                int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                int r;

                if (fd < 0 &&
                    (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
                        log_warning_errno(negative_errno(), "Failed to accept a DNS connection, "
                                                            "pausing for 1 s: %m");
                        listener_pause(l);
                        return;
                }
                if (fd < 0)
                        return;

                r = connection_new(l->server, fd);
                if (r < 0)
                        log_warning_errno(r, "Failed to set up a DNS connection: %m");
        }
}

static int on_listener_io(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
        DnsListener *l = userdata;

        if (l->tcp)
                listener_accept(l);
        else
                listener_read_udp(l);
        return 0;
}

static DnsListener *listener_free(DnsListener *l)
{
        if (!l)
                return NULL;
        sd_event_source_disable_unref(l->io);
        sd_event_source_disable_unref(l->retry);
        safe_close(l->fd);
        free(l);
        return NULL;
}

static int socket_int_option(int fd, int option, int *ret)
{
        socklen_t size = sizeof(*ret);

        if (getsockopt(fd, SOL_SOCKET, option, ret, &size) < 0)
                return negative_errno();
        return 0;
}

int dns_server_add_socket(DnsServer *s, int fd)
{
        _cleanup_close_ int owned_fd = fd;
        DnsListener *l;
        int type, family, listening = 0, flags;
        socklen_t size;
        int r;

        if (s->n_listeners >= LISTENERS_MAX)
                return -EMFILE;
        r = socket_int_option(fd, SO_TYPE, &type);
        if (r >= 0)
                r = socket_int_option(fd, SO_DOMAIN, &family);
        if (r >= 0 && type == SOCK_STREAM)
                r = socket_int_option(fd, SO_ACCEPTCONN, &listening);
        if (r < 0)
                return r;
        if ((family != AF_INET && family != AF_INET6) ||
            (type != SOCK_DGRAM && !(type == SOCK_STREAM && listening)))
                return -EPROTONOSUPPORT;

        /* The sockets come from systemd, which may pass them in blocking mode. */
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return negative_errno();

        l = calloc(1, sizeof(DnsListener));
        if (!l)
                return -ENOMEM;
        l->server = s;
        l->fd = TAKE_FD(owned_fd);
        l->tcp = type == SOCK_STREAM;
        size = sizeof(l->address.in6);
        if (getsockname(l->fd, &l->address.sa, &size) < 0) {
                r = negative_errno();
                listener_free(l);
                return r;
        }
        l->address.size = size;

        r = sd_event_add_io(s->event, &l->io, l->fd, EPOLLIN, on_listener_io, l);
        if (r < 0) {
                listener_free(l);
                return r;
        }

        s->listeners[s->n_listeners++] = l;
        s->upstreams_stale = true;
        return 0;
}

int dns_server_new(sd_event *event, const DnsServerConfig *config, DnsServer **ret)
{
        _cleanup_(dns_server_freep) DnsServer *s = NULL;
        int r;

        if (!config->lookup)
                return -EINVAL;

        s = calloc(1, sizeof(DnsServer));
        if (!s)
                return -ENOMEM;
        s->event = sd_event_ref(event);
        s->lookup = config->lookup;
        s->on_activity = config->on_activity;
        s->userdata = config->userdata;

        s->fixed_upstreams = config->upstreams != NULL;
        s->n_configured =
                config->n_upstreams < DNS_UPSTREAM_MAX ? config->n_upstreams : DNS_UPSTREAM_MAX;
        if (s->n_configured > 0)
                memcpy(s->configured, config->upstreams, s->n_configured * sizeof(DnsEndpoint));
        s->resolv_conf_port = config->resolv_conf_port ?: DNS_PORT;
        if (config->resolv_conf && !(s->resolv_conf = strdup(config->resolv_conf)))
                return -ENOMEM;
        if (config->excluded_ifname && !(s->excluded_ifname = strdup(config->excluded_ifname)))
                return -ENOMEM;

        s->timeout_usec = config->timeout_usec ?: DNS_SERVER_TIMEOUT_USEC;
        s->max_in_flight = config->max_in_flight ?: DNS_SERVER_MAX_IN_FLIGHT;
        s->max_connections = config->max_connections ?: DNS_SERVER_MAX_CONNECTIONS;
        s->idle_timeout_usec = config->idle_timeout_usec ?: DNS_SERVER_IDLE_TIMEOUT_USEC;
        s->upstreams_stale = true;

        r = sd_event_add_defer(event, &s->sweep, on_sweep, s);
        if (r < 0)
                return r;
        r = sd_event_source_set_enabled(s->sweep, SD_EVENT_OFF);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(s);
        return 0;
}

DnsServer *dns_server_free(DnsServer *s)
{
        if (!s)
                return NULL;

        while (s->transactions)
                dns_transaction_free(s->transactions);
        while (s->connections)
                connection_free(s->connections);
        for (size_t i = 0; i < s->n_listeners; i++)
                listener_free(s->listeners[i]);
        sd_event_source_disable_unref(s->sweep);
        sd_event_unref(s->event);
        free(s->resolv_conf);
        free(s->excluded_ifname);
        free(s);
        return NULL;
}

unsigned dns_server_in_flight(const DnsServer *s)
{
        return s->n_transactions;
}

unsigned dns_server_connections(const DnsServer *s)
{
        return s->n_connections;
}
