#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dns-packet.h"
#include "dns-server.h"
#include "fileio.h"
#include "macro.h"

/* The server runs on its own sd-event loop in a thread, on sockets bound to 127.0.0.1. A fake
 * upstream resolver runs in another thread on 127.0.0.1, and the tests are real UDP and TCP
 * clients. */

#define MSEC             1000ULL
#define CLIENT_TIMEOUT_S 5
#define UPSTREAM_ADDRESS "192.0.2.77"

#define FLAG_QR 0x80 /* in byte 2 */
#define FLAG_AA 0x04 /* in byte 2 */
#define FLAG_TC 0x02 /* in byte 2 */

typedef struct Message {
        uint8_t data[DNS_MESSAGE_MAX];
        size_t size;
} Message;

static uint64_t now_usec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

/* Reads a counter that another thread updates. Calling a function keeps assertion messages
 * short. */
static unsigned load(atomic_uint *counter)
{
        return atomic_load(counter);
}

/* Queries */

static void put_u16(Message *m, uint16_t v)
{
        m->data[m->size++] = v >> 8;
        m->data[m->size++] = v & 0xff;
}

static Message make_query_class(uint16_t id, const char *name, uint16_t type, uint16_t class)
{
        Message m = { .size = 0 };
        const char *p = name;

        put_u16(&m, id);
        put_u16(&m, 0x0100); /* RD */
        put_u16(&m, 1);
        put_u16(&m, 0);
        put_u16(&m, 0);
        put_u16(&m, 0);
        while (*p) {
                size_t len = strcspn(p, ".");

                m.data[m.size++] = (uint8_t)len;
                memcpy(m.data + m.size, p, len);
                m.size += len;
                p += len;
                if (*p == '.')
                        p++;
        }
        m.data[m.size++] = 0;
        put_u16(&m, type);
        put_u16(&m, class);
        return m;
}

static Message make_query(uint16_t id, const char *name, uint16_t type)
{
        return make_query_class(id, name, type, DNS_CLASS_IN);
}

static uint16_t reply_id(const Message *r)
{
        return (uint16_t)(r->data[0] << 8 | r->data[1]);
}

static unsigned reply_rcode(const Message *r)
{
        return r->data[3] & 0xf;
}

static unsigned reply_count(const Message *r, unsigned section)
{
        return (unsigned)(r->data[4 + 2 * section] << 8 | r->data[5 + 2 * section]);
}

/* The address of the last A record, which ends the message. */
static void assert_last_address(const Message *r, const char *expected)
{
        char text[INET_ADDRSTRLEN];

        ck_assert_uint_ge(r->size, 16);
        ck_assert_ptr_nonnull(inet_ntop(AF_INET, r->data + r->size - 4, text, sizeof(text)));
        ck_assert_str_eq(text, expected);
}

/* The fake upstream */

typedef enum UpstreamMode {
        UPSTREAM_ANSWER,         /* one A record, UPSTREAM_ADDRESS */
        UPSTREAM_SILENT,         /* reads and never replies */
        UPSTREAM_WRONG_ID_FIRST, /* a reply with another id, then the right one */
        UPSTREAM_BIG,            /* 60 A records: more than 512 bytes */
} UpstreamMode;

typedef struct Upstream {
        UpstreamMode mode;
        int udp_fd, tcp_fd;
        DnsEndpoint address; /* the same port for UDP and TCP */
        int stop[2];
        pthread_t thread;
        atomic_uint n_udp, n_tcp;
        _Atomic uint16_t ids[64]; /* ids of the queries received, in order */
        atomic_uint n_ids;
} Upstream;

/* Binds a UDP and a TCP socket to the same free port of 127.0.0.1. */
static void bind_pair(int *ret_udp, int *ret_tcp, DnsEndpoint *ret_address)
{
        for (int attempt = 0; attempt < 50; attempt++) {
                struct sockaddr_in a = { .sin_family = AF_INET,
                                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                socklen_t size = sizeof(a);
                int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
                int tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

                ck_assert_int_ge(udp, 0);
                ck_assert_int_ge(tcp, 0);
                ck_assert_int_eq(bind(udp, (struct sockaddr *)&a, sizeof(a)), 0);
                ck_assert_int_eq(getsockname(udp, (struct sockaddr *)&a, &size), 0);
                if (bind(tcp, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(tcp, 16) == 0) {
                        *ret_udp = udp;
                        *ret_tcp = tcp;
                        ret_address->in = a;
                        ret_address->size = sizeof(a);
                        return;
                }
                close(udp);
                close(tcp);
        }
        ck_abort_msg("Failed to bind UDP and TCP to one port of 127.0.0.1");
}

/* Builds the upstream's reply to q into r. */
static void upstream_build_reply(Upstream *u, const DnsQuery *q, uint16_t id, Message *r)
{
        struct in_addr addresses[60];
        size_t n = u->mode == UPSTREAM_BIG ? ELEMENTSOF(addresses) : 1;
        DnsQuery copy = *q;

        for (size_t i = 0; i < n; i++)
                ck_assert_int_eq(inet_pton(AF_INET, UPSTREAM_ADDRESS, &addresses[i]), 1);
        copy.id = id;
        ck_assert_int_eq(dns_reply_build(&copy, DNS_RCODE_NOERROR, false, addresses, n, 60, r->data,
                                         sizeof(r->data), &r->size),
                         0);
}

/* Records the query in data and builds up to two replies. Returns how many. */
static size_t upstream_handle(Upstream *u, const uint8_t *data, size_t size, Message replies[2])
{
        DnsQuery q;
        unsigned i;

        ck_assert_int_ge(dns_query_parse(data, size, &q), 0);
        i = atomic_fetch_add(&u->n_ids, 1);
        if (i < ELEMENTSOF(u->ids))
                u->ids[i] = q.id;

        switch (u->mode) {
        case UPSTREAM_SILENT:
                return 0;
        case UPSTREAM_WRONG_ID_FIRST:
                upstream_build_reply(u, &q, q.id + 1, &replies[0]);
                upstream_build_reply(u, &q, q.id, &replies[1]);
                return 2;
        default:
                upstream_build_reply(u, &q, q.id, &replies[0]);
                return 1;
        }
}

static void upstream_serve_udp(Upstream *u)
{
        static Message query, replies[2];
        struct sockaddr_storage peer;
        socklen_t size = sizeof(peer);
        ssize_t n;
        size_t k;

        n = recvfrom(u->udp_fd, query.data, sizeof(query.data), 0, (struct sockaddr *)&peer, &size);
        if (n <= 0)
                return;
        atomic_fetch_add(&u->n_udp, 1);
        k = upstream_handle(u, query.data, (size_t)n, replies);
        for (size_t i = 0; i < k; i++)
                (void)sendto(u->udp_fd, replies[i].data, replies[i].size, 0,
                             (struct sockaddr *)&peer, size);
}

/* Reads exactly size bytes unless the stop pipe fires or the peer closes. */
static bool upstream_read(Upstream *u, int fd, uint8_t *buf, size_t size)
{
        size_t have = 0;

        while (have < size) {
                struct pollfd p[2] = { { .fd = fd, .events = POLLIN },
                                       { .fd = u->stop[0], .events = POLLIN } };
                ssize_t n;

                if (poll(p, 2, 10000) <= 0 || p[1].revents)
                        return false;
                n = read(fd, buf + have, size - have);
                if (n <= 0)
                        return false;
                have += (size_t)n;
        }
        return true;
}

static void upstream_serve_tcp(Upstream *u)
{
        static Message query, replies[2];
        int fd = accept4(u->tcp_fd, NULL, NULL, SOCK_CLOEXEC);
        uint8_t length[2];

        if (fd < 0)
                return;
        atomic_fetch_add(&u->n_tcp, 1);
        while (upstream_read(u, fd, length, 2)) {
                size_t size = (size_t)length[0] << 8 | length[1], k;

                if (!upstream_read(u, fd, query.data, size))
                        break;
                k = upstream_handle(u, query.data, size, replies);
                for (size_t i = 0; i < k; i++) {
                        uint8_t prefix[2] = { replies[i].size >> 8, replies[i].size & 0xff };

                        (void)write(fd, prefix, 2);
                        (void)write(fd, replies[i].data, replies[i].size);
                }
        }
        close(fd);
}

static void *upstream_main(void *userdata)
{
        Upstream *u = userdata;

        for (;;) {
                struct pollfd p[3] = { { .fd = u->udp_fd, .events = POLLIN },
                                       { .fd = u->tcp_fd, .events = POLLIN },
                                       { .fd = u->stop[0], .events = POLLIN } };

                if (poll(p, 3, -1) < 0 || p[2].revents)
                        return NULL;
                if (p[0].revents)
                        upstream_serve_udp(u);
                if (p[1].revents)
                        upstream_serve_tcp(u);
        }
}

static void upstream_start(Upstream *u, UpstreamMode mode)
{
        memset(u, 0, sizeof(*u));
        u->mode = mode;
        bind_pair(&u->udp_fd, &u->tcp_fd, &u->address);
        ck_assert_int_eq(pipe2(u->stop, O_CLOEXEC), 0);
        ck_assert_int_eq(pthread_create(&u->thread, NULL, upstream_main, u), 0);
}

static void upstream_stop(Upstream *u)
{
        ck_assert_int_eq(write(u->stop[1], "x", 1), 1);
        ck_assert_int_eq(pthread_join(u->thread, NULL), 0);
        close(u->udp_fd);
        close(u->tcp_fd);
        close(u->stop[0]);
        close(u->stop[1]);
}

/* The server under test */

typedef struct Fixture {
        sd_event *event;
        DnsServer *server;
        DnsEndpoint address;
        pthread_t thread;
        atomic_bool stop;
        bool joined;
        atomic_uint n_lookups;
        atomic_uint n_activity;
} Fixture;

static int lookup(const char *name, struct in_addr *ret, void *userdata)
{
        Fixture *f = userdata;

        atomic_fetch_add(&f->n_lookups, 1);
        if (streq(name, "broken"))
                return -EIO;
        if (streq(name, "dev1"))
                return inet_pton(AF_INET, "10.123.0.2", ret);
        if (streq(name, "web-2"))
                return inet_pton(AF_INET, "10.123.0.3", ret);
        return 0;
}

static void on_activity(void *userdata)
{
        Fixture *f = userdata;

        atomic_fetch_add(&f->n_activity, 1);
}

static void *loop_main(void *userdata)
{
        Fixture *f = userdata;

        while (!atomic_load(&f->stop))
                ck_assert_int_ge(sd_event_run(f->event, 20 * MSEC), 0);
        return NULL;
}

/* Starts a server with config on the bound sockets udp and tcp at address. The lookup and
 * activity callbacks are set here. */
static void fixture_start_on(Fixture *f, DnsServerConfig config, int udp, int tcp,
                             const DnsEndpoint *address)
{
        memset(f, 0, sizeof(*f));
        f->address = *address;
        config.lookup = lookup;
        config.on_activity = on_activity;
        config.userdata = f;
        ck_assert_int_eq(sd_event_new(&f->event), 0);
        ck_assert_int_eq(dns_server_new(f->event, &config, &f->server), 0);
        ck_assert_int_eq(dns_server_add_socket(f->server, udp), 0);
        ck_assert_int_eq(dns_server_add_socket(f->server, tcp), 0);
        ck_assert_int_eq(pthread_create(&f->thread, NULL, loop_main, f), 0);
}

static void fixture_start(Fixture *f, DnsServerConfig config)
{
        DnsEndpoint address;
        int udp, tcp;

        bind_pair(&udp, &tcp, &address);
        fixture_start_on(f, config, udp, tcp, &address);
}

/* Stops the loop thread, so the test may read the server's counters. */
static void fixture_join(Fixture *f)
{
        if (f->joined)
                return;
        atomic_store(&f->stop, true);
        ck_assert_int_eq(pthread_join(f->thread, NULL), 0);
        f->joined = true;
}

static void fixture_stop(Fixture *f)
{
        fixture_join(f);
        f->server = dns_server_free(f->server);
        f->event = sd_event_unref(f->event);
}

/* Clients */

static int udp_client(const Fixture *f)
{
        struct timeval tv = { .tv_sec = CLIENT_TIMEOUT_S };
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        ck_assert_int_eq(connect(fd, &f->address.sa, f->address.size), 0);
        return fd;
}

/* Returns false when no datagram came within the socket's timeout. */
static bool udp_receive(int fd, Message *reply)
{
        ssize_t n = recv(fd, reply->data, sizeof(reply->data), 0);

        if (n < 0)
                return false;
        reply->size = (size_t)n;
        return true;
}

static Message udp_exchange(const Fixture *f, const Message *q)
{
        Message reply;
        int fd = udp_client(f);

        ck_assert_int_eq(send(fd, q->data, q->size, 0), (ssize_t)q->size);
        ck_assert_msg(udp_receive(fd, &reply), "no reply over UDP");
        close(fd);
        return reply;
}

/* Sends q until a reply comes, as resolvers do, because the server's receive buffer may still be
 * full of an earlier flood, and the kernel drops datagrams that do not fit. */
static Message udp_exchange_retry(const Fixture *f, const Message *q)
{
        struct timeval tv = { .tv_sec = 1 };
        Message reply;
        int fd = udp_client(f);

        ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        for (int attempt = 0; attempt < 10; attempt++) {
                ck_assert_int_eq(send(fd, q->data, q->size, 0), (ssize_t)q->size);
                if (udp_receive(fd, &reply)) {
                        close(fd);
                        return reply;
                }
        }
        ck_abort_msg("no reply over UDP after 10 attempts");
}

static int tcp_client(const Fixture *f)
{
        struct timeval tv = { .tv_sec = CLIENT_TIMEOUT_S };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        ck_assert_int_eq(connect(fd, &f->address.sa, f->address.size), 0);
        return fd;
}

static void tcp_send(int fd, const Message *q)
{
        uint8_t prefix[2] = { q->size >> 8, q->size & 0xff };

        ck_assert_int_eq(send(fd, prefix, 2, MSG_NOSIGNAL), 2);
        ck_assert_int_eq(send(fd, q->data, q->size, MSG_NOSIGNAL), (ssize_t)q->size);
}

static bool read_exactly(int fd, uint8_t *buf, size_t size)
{
        size_t have = 0;

        while (have < size) {
                ssize_t n = recv(fd, buf + have, size - have, 0);

                if (n <= 0)
                        return false;
                have += (size_t)n;
        }
        return true;
}

/* Returns false when the server closed the connection or nothing came in time. */
static bool tcp_receive(int fd, Message *reply)
{
        uint8_t prefix[2];

        if (!read_exactly(fd, prefix, 2))
                return false;
        reply->size = (size_t)prefix[0] << 8 | prefix[1];
        return read_exactly(fd, reply->data, reply->size);
}

/* True when the server closed the connection: a read returns end of file. */
static bool tcp_closed_by_server(int fd)
{
        uint8_t byte;

        return recv(fd, &byte, 1, 0) == 0;
}

/* Local answers */

START_TEST(test_a_answer)
{
        Fixture f;
        Message q = make_query(0x1234, "dev1.banger", DNS_TYPE_A), r;

        fixture_start(&f, (DnsServerConfig){});
        r = udp_exchange(&f, &q);
        ck_assert_uint_eq(reply_id(&r), 0x1234);
        ck_assert_uint_eq(reply_rcode(&r), DNS_RCODE_NOERROR);
        ck_assert_uint_eq(r.data[2] & (FLAG_QR | FLAG_AA), FLAG_QR | FLAG_AA);
        ck_assert_uint_eq(reply_count(&r, 0), 1);
        ck_assert_uint_eq(reply_count(&r, 1), 1);
        assert_last_address(&r, "10.123.0.2");
        ck_assert_uint_eq(load(&f.n_activity), 1);
        fixture_stop(&f);
}
END_TEST

START_TEST(test_case_folding)
{
        Fixture f;
        Message q = make_query(7, "WeB-2.BaNgEr", DNS_TYPE_A), r;

        fixture_start(&f, (DnsServerConfig){});
        r = udp_exchange(&f, &q);
        ck_assert_uint_eq(reply_rcode(&r), DNS_RCODE_NOERROR);
        assert_last_address(&r, "10.123.0.3");
        /* The question comes back as sent, upper case included. */
        ck_assert(memcmp(r.data + DNS_HEADER_SIZE, q.data + DNS_HEADER_SIZE,
                         q.size - DNS_HEADER_SIZE) == 0);
        fixture_stop(&f);
}
END_TEST

START_TEST(test_nxdomain)
{
        static const char *const names[] = { "nope.banger", "a.dev1.banger", "under_score.banger",
                                             "dot\\.ted.banger" };
        Fixture f;

        fixture_start(&f, (DnsServerConfig){});
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                Message q = make_query(9, names[i], DNS_TYPE_A), r;

                r = udp_exchange(&f, &q);
                ck_assert_msg(reply_rcode(&r) == DNS_RCODE_NXDOMAIN, "%s", names[i]);
                ck_assert_uint_eq(r.data[2] & FLAG_AA, FLAG_AA);
                ck_assert_uint_eq(reply_count(&r, 1), 0);
                ck_assert_uint_eq(reply_count(&r, 2), 0);
                ck_assert_uint_eq(reply_count(&r, 3), 0);
        }
        /* Only the first name can be a VM: the others never reach the lookup. */
        ck_assert_uint_eq(load(&f.n_lookups), 1);
        fixture_stop(&f);
}
END_TEST

START_TEST(test_aaaa_empty)
{
        Fixture f;
        Message q = make_query(11, "dev1.banger", DNS_TYPE_AAAA), r;

        fixture_start(&f, (DnsServerConfig){});
        r = udp_exchange(&f, &q);
        ck_assert_uint_eq(reply_rcode(&r), DNS_RCODE_NOERROR);
        ck_assert_uint_eq(r.data[2] & FLAG_AA, FLAG_AA);
        ck_assert_uint_eq(reply_count(&r, 0), 1);
        ck_assert_uint_eq(reply_count(&r, 1), 0);
        ck_assert_uint_eq(r.size, q.size);

        /* AAAA for a name that does not exist is NXDOMAIN, not empty. */
        q = make_query(12, "nope.banger", DNS_TYPE_AAAA);
        r = udp_exchange(&f, &q);
        ck_assert_uint_eq(reply_rcode(&r), DNS_RCODE_NXDOMAIN);
        fixture_stop(&f);
}
END_TEST

START_TEST(test_domain_apex)
{
        Fixture f;
        Message q = make_query(13, "banger", DNS_TYPE_A), r;

        fixture_start(&f, (DnsServerConfig){});
        r = udp_exchange(&f, &q);
        ck_assert_uint_eq(reply_rcode(&r), DNS_RCODE_NOERROR);
        ck_assert_uint_eq(reply_count(&r, 1), 0);
        fixture_stop(&f);
}
END_TEST

START_TEST(test_lookup_failure)
{
        Fixture f;
        Message q = make_query(14, "broken.banger", DNS_TYPE_A), r;

        fixture_start(&f, (DnsServerConfig){});
        r = udp_exchange(&f, &q);
        ck_assert_uint_eq(reply_rcode(&r), DNS_RCODE_SERVFAIL);
        ck_assert_uint_eq(reply_count(&r, 1), 0);
        fixture_stop(&f);
}
END_TEST

START_TEST(test_notimp_and_refused)
{
        Fixture f;
        Message q = make_query(15, "dev1.banger", DNS_TYPE_A), r;

        fixture_start(&f, (DnsServerConfig){});
        q.data[2] |= 4 << 3; /* opcode NOTIFY */
        r = udp_exchange(&f, &q);
        ck_assert_uint_eq(reply_id(&r), 15);
        ck_assert_uint_eq(reply_rcode(&r), DNS_RCODE_NOTIMP);

        q = make_query_class(16, "dev1.banger", DNS_TYPE_A, 3);
        r = udp_exchange(&f, &q);
        ck_assert_uint_eq(reply_rcode(&r), DNS_RCODE_REFUSED);
        ck_assert_uint_eq(reply_count(&r, 1), 0);
        ck_assert_uint_eq(load(&f.n_lookups), 0);
        fixture_stop(&f);
}
END_TEST

/* Forwarding */

START_TEST(test_forward_udp_rewrites_id)
{
        Upstream u;
        Fixture f;
        bool rewritten = false;

        upstream_start(&u, UPSTREAM_ANSWER);
        fixture_start(&f, (DnsServerConfig){ .upstreams = &u.address, .n_upstreams = 1 });
        for (int i = 0; i < 4; i++) {
                Message q = make_query(0x1111, "www.example.org", DNS_TYPE_A), r;

                r = udp_exchange(&f, &q);
                ck_assert_uint_eq(reply_id(&r), 0x1111);
                ck_assert_uint_eq(reply_rcode(&r), DNS_RCODE_NOERROR);
                ck_assert_uint_eq(r.data[2] & FLAG_AA, 0);
                assert_last_address(&r, UPSTREAM_ADDRESS);
        }
        ck_assert_uint_eq(load(&u.n_udp), 4);
        ck_assert_uint_eq(load(&u.n_ids), 4);
        /* The upstream receives random ids: four times 0x1111 has a chance of 2^-64. */
        for (int i = 0; i < 4; i++)
                rewritten = rewritten || u.ids[i] != 0x1111;
        ck_assert(rewritten);
        fixture_stop(&f);
        upstream_stop(&u);
}
END_TEST

START_TEST(test_forward_tcp_pipelined)
{
        Upstream u;
        Fixture f;
        Message q1 = make_query(21, "www.example.org", DNS_TYPE_A);
        Message q2 = make_query(22, "dev1.banger", DNS_TYPE_A);
        Message r;
        bool seen21 = false, seen22 = false;
        int fd;

        upstream_start(&u, UPSTREAM_ANSWER);
        fixture_start(&f, (DnsServerConfig){ .upstreams = &u.address, .n_upstreams = 1 });
        fd = tcp_client(&f);
        tcp_send(fd, &q1);
        tcp_send(fd, &q2);
        /* The local reply may overtake the forwarded one. */
        for (int i = 0; i < 2; i++) {
                ck_assert(tcp_receive(fd, &r));
                ck_assert_uint_eq(reply_rcode(&r), DNS_RCODE_NOERROR);
                if (reply_id(&r) == 21) {
                        assert_last_address(&r, UPSTREAM_ADDRESS);
                        seen21 = true;
                } else {
                        ck_assert_uint_eq(reply_id(&r), 22);
                        assert_last_address(&r, "10.123.0.2");
                        seen22 = true;
                }
        }
        ck_assert(seen21 && seen22);
        ck_assert_uint_eq(load(&u.n_tcp), 1);
        ck_assert_uint_eq(load(&u.n_udp), 0);

        /* The connection stays open for more. */
        q1 = make_query(23, "dev1.banger", DNS_TYPE_AAAA);
        tcp_send(fd, &q1);
        ck_assert(tcp_receive(fd, &r));
        ck_assert_uint_eq(reply_id(&r), 23);
        close(fd);
        fixture_stop(&f);
        upstream_stop(&u);
}
END_TEST

START_TEST(test_upstream_timeout)
{
        Upstream u;
        Fixture f;
        Message q = make_query(31, "slow.example.org", DNS_TYPE_A), r;
        uint64_t start;

        upstream_start(&u, UPSTREAM_SILENT);
        fixture_start(&f, (DnsServerConfig){ .upstreams = &u.address,
                                             .n_upstreams = 1,
                                             .timeout_usec = 300 * MSEC });
        start = now_usec();
        r = udp_exchange(&f, &q);
        ck_assert_uint_ge(now_usec() - start, 290 * MSEC);
        ck_assert_uint_eq(reply_id(&r), 31);
        ck_assert_uint_eq(reply_rcode(&r), DNS_RCODE_SERVFAIL);
        ck_assert_uint_eq(load(&u.n_udp), 1);

        /* Over TCP as well. */
        {
                int fd = tcp_client(&f);

                tcp_send(fd, &q);
                ck_assert(tcp_receive(fd, &r));
                ck_assert_uint_eq(reply_rcode(&r), DNS_RCODE_SERVFAIL);
                close(fd);
        }
        fixture_stop(&f);
        upstream_stop(&u);
}
END_TEST

START_TEST(test_next_upstream_after_failure)
{
        Upstream silent, good;
        DnsEndpoint upstreams[3];
        Fixture f;
        Message q = make_query(41, "www.example.org", DNS_TYPE_A), r;
        int closed_udp, closed_tcp;

        /* A port with nothing behind it: sends there fail with ECONNREFUSED. */
        bind_pair(&closed_udp, &closed_tcp, &upstreams[0]);
        close(closed_udp);
        close(closed_tcp);
        upstream_start(&silent, UPSTREAM_SILENT);
        upstream_start(&good, UPSTREAM_ANSWER);
        upstreams[1] = silent.address;
        upstreams[2] = good.address;

        fixture_start(&f, (DnsServerConfig){ .upstreams = upstreams,
                                             .n_upstreams = 3,
                                             .timeout_usec = 900 * MSEC });
        r = udp_exchange(&f, &q);
        ck_assert_uint_eq(reply_rcode(&r), DNS_RCODE_NOERROR);
        assert_last_address(&r, UPSTREAM_ADDRESS);
        ck_assert_uint_eq(load(&silent.n_udp), 1);
        ck_assert_uint_eq(load(&good.n_udp), 1);

        {
                int fd = tcp_client(&f);

                tcp_send(fd, &q);
                ck_assert(tcp_receive(fd, &r));
                ck_assert_uint_eq(reply_rcode(&r), DNS_RCODE_NOERROR);
                ck_assert_uint_eq(load(&good.n_tcp), 1);
                close(fd);
        }
        fixture_stop(&f);
        upstream_stop(&silent);
        upstream_stop(&good);
}
END_TEST

START_TEST(test_wrong_id_ignored)
{
        Upstream u;
        Fixture f;
        Message q = make_query(51, "www.example.org", DNS_TYPE_A), r, extra;
        int fd;

        upstream_start(&u, UPSTREAM_WRONG_ID_FIRST);
        fixture_start(&f, (DnsServerConfig){ .upstreams = &u.address, .n_upstreams = 1 });
        fd = udp_client(&f);
        ck_assert_int_eq(send(fd, q.data, q.size, 0), (ssize_t)q.size);
        ck_assert(udp_receive(fd, &r));
        ck_assert_uint_eq(reply_id(&r), 51);
        assert_last_address(&r, UPSTREAM_ADDRESS);
        /* Exactly one reply reaches the client. */
        {
                struct timeval tv = { .tv_usec = 300 * 1000 };

                ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
                ck_assert(!udp_receive(fd, &extra));
        }
        close(fd);
        fixture_stop(&f);
        upstream_stop(&u);
}
END_TEST

START_TEST(test_truncated_over_udp)
{
        Upstream u;
        Fixture f;
        Message q = make_query(61, "big.example.org", DNS_TYPE_A), r;
        int fd;

        upstream_start(&u, UPSTREAM_BIG);
        fixture_start(&f, (DnsServerConfig){ .upstreams = &u.address, .n_upstreams = 1 });
        r = udp_exchange(&f, &q);
        ck_assert_uint_eq(reply_id(&r), 61);
        ck_assert_uint_eq(r.data[2] & FLAG_TC, FLAG_TC);
        ck_assert_uint_eq(reply_count(&r, 1), 0);
        ck_assert_uint_eq(r.size, q.size);

        fd = tcp_client(&f);
        tcp_send(fd, &q);
        ck_assert(tcp_receive(fd, &r));
        ck_assert_uint_eq(r.data[2] & FLAG_TC, 0);
        ck_assert_uint_eq(reply_count(&r, 1), 60);
        ck_assert_uint_gt(r.size, DNS_UDP_PAYLOAD_MIN);
        close(fd);
        fixture_stop(&f);
        upstream_stop(&u);
}
END_TEST

START_TEST(test_no_upstream)
{
        Fixture f;
        Message q = make_query(71, "www.example.org", DNS_TYPE_A), r;

        fixture_start(&f, (DnsServerConfig){});
        r = udp_exchange(&f, &q);
        ck_assert_uint_eq(reply_rcode(&r), DNS_RCODE_SERVFAIL);
        fixture_stop(&f);
}
END_TEST

START_TEST(test_upstream_is_self)
{
        Fixture f;
        DnsEndpoint self;
        Message q = make_query(72, "www.example.org", DNS_TYPE_A), r;
        uint64_t start;
        int udp, tcp;

        /* The only upstream is the server's own socket. */
        bind_pair(&udp, &tcp, &self);
        fixture_start_on(&f,
                         (DnsServerConfig){ .upstreams = &self,
                                            .n_upstreams = 1,
                                            .timeout_usec = 3000 * MSEC },
                         udp, tcp, &self);
        start = now_usec();
        r = udp_exchange(&f, &q);
        ck_assert_uint_eq(reply_rcode(&r), DNS_RCODE_SERVFAIL);
        /* At once, not after the timeout: the query never went out. */
        ck_assert_uint_lt(now_usec() - start, 1000 * MSEC);
        ck_assert_uint_eq(load(&f.n_activity), 1);
        fixture_stop(&f);
}
END_TEST

static void write_resolv_conf(const char *path, const char *text)
{
        ck_assert_int_eq(write_file_atomic(path, text, strlen(text), 0644), 0);
}

START_TEST(test_resolv_conf_reload)
{
        char dir[] = "/tmp/test-dns-server.XXXXXX";
        _cleanup_free_ char *path = NULL;
        Upstream u;
        Fixture f;
        Message q = make_query(81, "www.example.org", DNS_TYPE_A), r;

        ck_assert_ptr_nonnull(mkdtemp(dir));
        ck_assert_int_ge(asprintf(&path, "%s/resolv.conf", dir), 0);
        upstream_start(&u, UPSTREAM_ANSWER);
        write_resolv_conf(path, "search example.org\nnameserver 127.0.0.1\n");

        fixture_start(&f, (DnsServerConfig){ .resolv_conf = path,
                                             .resolv_conf_port = dns_endpoint_port(&u.address),
                                             .timeout_usec = 500 * MSEC });
        r = udp_exchange(&f, &q);
        ck_assert_uint_eq(reply_rcode(&r), DNS_RCODE_NOERROR);
        assert_last_address(&r, UPSTREAM_ADDRESS);

        /* A new file is read at the next query: 127.0.0.2 has no upstream behind it. */
        write_resolv_conf(path, "nameserver 127.0.0.2\n");
        r = udp_exchange(&f, &q);
        ck_assert_uint_eq(reply_rcode(&r), DNS_RCODE_SERVFAIL);

        /* No file: no upstream. */
        ck_assert_int_eq(unlink(path), 0);
        r = udp_exchange(&f, &q);
        ck_assert_uint_eq(reply_rcode(&r), DNS_RCODE_SERVFAIL);

        write_resolv_conf(path, "nameserver 127.0.0.1\n");
        r = udp_exchange(&f, &q);
        ck_assert_uint_eq(reply_rcode(&r), DNS_RCODE_NOERROR);
        ck_assert_uint_eq(load(&u.n_udp), 2);

        fixture_stop(&f);
        upstream_stop(&u);
        ck_assert_int_eq(rm_rf(dir), 0);
}
END_TEST

START_TEST(test_excluded_interface)
{
        char dir[] = "/tmp/test-dns-server.XXXXXX";
        _cleanup_free_ char *path = NULL;
        Upstream u;
        Fixture f;
        Message q = make_query(82, "www.example.org", DNS_TYPE_A), r;

        ck_assert_ptr_nonnull(mkdtemp(dir));
        ck_assert_int_ge(asprintf(&path, "%s/resolv.conf", dir), 0);
        upstream_start(&u, UPSTREAM_ANSWER);
        write_resolv_conf(path, "nameserver 127.0.0.1\n");

        /* 127.0.0.1 is an address of lo, so it is skipped. */
        fixture_start(&f, (DnsServerConfig){ .resolv_conf = path,
                                             .resolv_conf_port = dns_endpoint_port(&u.address),
                                             .excluded_ifname = "lo" });
        r = udp_exchange(&f, &q);
        ck_assert_uint_eq(reply_rcode(&r), DNS_RCODE_SERVFAIL);
        ck_assert_uint_eq(load(&u.n_udp), 0);

        fixture_stop(&f);
        upstream_stop(&u);
        ck_assert_int_eq(rm_rf(dir), 0);
}
END_TEST

START_TEST(test_in_flight_limit)
{
        Upstream u;
        Fixture f;
        Message r;
        uint64_t start;
        int fd;

        upstream_start(&u, UPSTREAM_SILENT);
        fixture_start(&f, (DnsServerConfig){ .upstreams = &u.address,
                                             .n_upstreams = 1,
                                             .timeout_usec = 4000 * MSEC,
                                             .max_in_flight = 2 });
        fd = udp_client(&f);
        start = now_usec();
        for (uint16_t id = 1; id <= 3; id++) {
                Message q = make_query(id, "www.example.org", DNS_TYPE_A);

                ck_assert_int_eq(send(fd, q.data, q.size, 0), (ssize_t)q.size);
        }
        /* The third query pushes out the first, long before the timeout. */
        ck_assert(udp_receive(fd, &r));
        ck_assert_uint_eq(reply_id(&r), 1);
        ck_assert_uint_eq(reply_rcode(&r), DNS_RCODE_SERVFAIL);
        ck_assert_uint_lt(now_usec() - start, 2000 * MSEC);
        close(fd);
        fixture_join(&f);
        ck_assert_uint_eq(dns_server_in_flight(f.server), 2);
        fixture_stop(&f);
        upstream_stop(&u);
}
END_TEST

/* Hard inputs */

START_TEST(test_garbage_datagrams)
{
        Fixture f;
        Message q = make_query(91, "dev1.banger", DNS_TYPE_A), r, garbage;
        unsigned seed = 1;
        int fd;

        fixture_start(&f, (DnsServerConfig){});
        fd = udp_client(&f);
        for (int i = 0; i < 2000; i++) {
                garbage.size = (size_t)rand_r(&seed) % 600;
                for (size_t j = 0; j < garbage.size; j++)
                        garbage.data[j] = (uint8_t)rand_r(&seed);
                /* The server drops responses, so no reply piles up unread. */
                if (garbage.size > 2)
                        garbage.data[2] |= FLAG_QR;
                ck_assert_int_eq(send(fd, garbage.data, garbage.size, 0), (ssize_t)garbage.size);
        }
        close(fd);

        /* A header of zeroes is a query without a question: FORMERR. */
        memset(garbage.data, 0, DNS_HEADER_SIZE);
        garbage.size = DNS_HEADER_SIZE;
        r = udp_exchange_retry(&f, &garbage);
        ck_assert_uint_eq(reply_rcode(&r), DNS_RCODE_FORMERR);
        ck_assert_uint_eq(reply_count(&r, 0), 0);

        r = udp_exchange_retry(&f, &q);
        ck_assert_uint_eq(reply_rcode(&r), DNS_RCODE_NOERROR);
        fixture_stop(&f);
}
END_TEST

START_TEST(test_random_queries_answered)
{
        Fixture f;
        unsigned seed = 7;
        int fd;

        /* Random bytes after a valid header with QR clear: FORMERR or silence, never a crash. */
        fixture_start(&f, (DnsServerConfig){});
        fd = udp_client(&f);
        for (int i = 0; i < 500; i++) {
                Message m = make_query((uint16_t)i, "dev1.banger", DNS_TYPE_A);

                m.size = DNS_HEADER_SIZE + (size_t)rand_r(&seed) % 64;
                for (size_t j = 4; j < m.size; j++)
                        m.data[j] = (uint8_t)rand_r(&seed);
                ck_assert_int_eq(send(fd, m.data, m.size, 0), (ssize_t)m.size);
        }
        close(fd);
        {
                Message q = make_query(92, "dev1.banger", DNS_TYPE_A), r;

                r = udp_exchange_retry(&f, &q);
                ck_assert_uint_eq(reply_id(&r), 92);
                assert_last_address(&r, "10.123.0.2");
        }
        fixture_stop(&f);
}
END_TEST

START_TEST(test_tcp_bad_framing)
{
        Fixture f;
        Message q = make_query(101, "dev1.banger", DNS_TYPE_A), r;
        static const uint8_t zero_length[] = { 0, 0 };
        static const uint8_t short_message[] = { 0, 5, 1, 2, 3, 4, 5 };
        int fd;

        fixture_start(&f, (DnsServerConfig){});

        fd = tcp_client(&f);
        ck_assert_int_eq(send(fd, zero_length, sizeof(zero_length), MSG_NOSIGNAL), 2);
        ck_assert(tcp_closed_by_server(fd));
        close(fd);

        fd = tcp_client(&f);
        ck_assert_int_eq(send(fd, short_message, sizeof(short_message), MSG_NOSIGNAL),
                         (ssize_t)sizeof(short_message));
        ck_assert(tcp_closed_by_server(fd));
        close(fd);

        /* Half a message, then the client goes away. */
        fd = tcp_client(&f);
        ck_assert_int_eq(send(fd, "\x01\x00\xab", 3, MSG_NOSIGNAL), 3);
        close(fd);

        fd = tcp_client(&f);
        tcp_send(fd, &q);
        ck_assert(tcp_receive(fd, &r));
        ck_assert_uint_eq(reply_id(&r), 101);
        close(fd);
        fixture_stop(&f);
}
END_TEST

START_TEST(test_tcp_half_close)
{
        Fixture f;
        Upstream u;
        Message q = make_query(111, "www.example.org", DNS_TYPE_A), r;
        int fd;

        upstream_start(&u, UPSTREAM_ANSWER);
        fixture_start(&f, (DnsServerConfig){ .upstreams = &u.address, .n_upstreams = 1 });
        fd = tcp_client(&f);
        tcp_send(fd, &q);
        ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
        ck_assert(tcp_receive(fd, &r));
        ck_assert_uint_eq(reply_id(&r), 111);
        assert_last_address(&r, UPSTREAM_ADDRESS);
        ck_assert(tcp_closed_by_server(fd));
        close(fd);
        fixture_stop(&f);
        upstream_stop(&u);
}
END_TEST

START_TEST(test_tcp_client_gone_while_forwarding)
{
        Fixture f;
        Upstream u;
        Message q = make_query(121, "www.example.org", DNS_TYPE_A), r;
        int fd;

        upstream_start(&u, UPSTREAM_SILENT);
        fixture_start(&f, (DnsServerConfig){ .upstreams = &u.address,
                                             .n_upstreams = 1,
                                             .timeout_usec = 300 * MSEC });
        for (int i = 0; i < 5; i++) {
                fd = tcp_client(&f);
                tcp_send(fd, &q);
                close(fd);
        }
        /* Let the forwarded queries time out after their clients have gone. */
        usleep(800 * 1000);

        q = make_query(122, "dev1.banger", DNS_TYPE_A);
        r = udp_exchange(&f, &q);
        ck_assert_uint_eq(reply_id(&r), 122);
        fixture_join(&f);
        ck_assert_uint_eq(dns_server_in_flight(f.server), 0);
        ck_assert_uint_eq(dns_server_connections(f.server), 0);
        fixture_stop(&f);
        upstream_stop(&u);
}
END_TEST

START_TEST(test_tcp_idle_timeout)
{
        Fixture f;
        uint64_t start;
        int fd;

        fixture_start(&f, (DnsServerConfig){ .idle_timeout_usec = 200 * MSEC });
        fd = tcp_client(&f);
        start = now_usec();
        ck_assert(tcp_closed_by_server(fd));
        ck_assert_uint_ge(now_usec() - start, 150 * MSEC);
        ck_assert_uint_lt(now_usec() - start, 3000 * MSEC);
        close(fd);
        fixture_stop(&f);
}
END_TEST

START_TEST(test_tcp_connection_limit)
{
        Fixture f;
        int fds[3];

        fixture_start(&f, (DnsServerConfig){ .max_connections = 2 });
        for (int i = 0; i < 3; i++) {
                Message q = make_query((uint16_t)(130 + i), "dev1.banger", DNS_TYPE_A), r;

                /* A reply proves that the server accepted this connection. */
                fds[i] = tcp_client(&f);
                tcp_send(fds[i], &q);
                ck_assert(tcp_receive(fds[i], &r));
                ck_assert_uint_eq(reply_id(&r), 130 + i);
        }
        /* The third pushed out the first. The second still works. */
        ck_assert(tcp_closed_by_server(fds[0]));
        {
                Message q = make_query(140, "dev1.banger", DNS_TYPE_A), r;

                tcp_send(fds[1], &q);
                ck_assert(tcp_receive(fds[1], &r));
                ck_assert_uint_eq(reply_id(&r), 140);
        }
        fixture_join(&f);
        ck_assert_uint_eq(dns_server_connections(f.server), 2);
        for (int i = 0; i < 3; i++)
                close(fds[i]);
        fixture_stop(&f);
}
END_TEST

START_TEST(test_add_socket_rejects)
{
        sd_event *event = NULL;
        DnsServer *s = NULL;
        int fds[2];
        int unbound_tcp;

        ck_assert_int_eq(sd_event_new(&event), 0);
        ck_assert_int_eq(dns_server_new(event, &(DnsServerConfig){ .lookup = lookup }, &s), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, fds), 0);
        ck_assert_int_eq(dns_server_add_socket(s, fds[0]), -EPROTONOSUPPORT);
        /* The fd was taken and closed. */
        ck_assert_int_eq(fcntl(fds[0], F_GETFD), -1);
        close(fds[1]);

        unbound_tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(unbound_tcp, 0);
        ck_assert_int_eq(dns_server_add_socket(s, unbound_tcp), -EPROTONOSUPPORT);

        ck_assert_int_eq(dns_server_new(event, &(DnsServerConfig){}, &s), -EINVAL);
        dns_server_free(s);
        sd_event_unref(event);
}
END_TEST

static Suite *dns_server_suite(void)
{
        Suite *s = suite_create("dns-server");
        TCase *local = tcase_create("local");
        TCase *forward = tcase_create("forward");
        TCase *hard = tcase_create("hard inputs");

        tcase_add_test(local, test_a_answer);
        tcase_add_test(local, test_case_folding);
        tcase_add_test(local, test_nxdomain);
        tcase_add_test(local, test_aaaa_empty);
        tcase_add_test(local, test_domain_apex);
        tcase_add_test(local, test_lookup_failure);
        tcase_add_test(local, test_notimp_and_refused);
        suite_add_tcase(s, local);

        tcase_add_test(forward, test_forward_udp_rewrites_id);
        tcase_add_test(forward, test_forward_tcp_pipelined);
        tcase_add_test(forward, test_upstream_timeout);
        tcase_add_test(forward, test_next_upstream_after_failure);
        tcase_add_test(forward, test_wrong_id_ignored);
        tcase_add_test(forward, test_truncated_over_udp);
        tcase_add_test(forward, test_no_upstream);
        tcase_add_test(forward, test_upstream_is_self);
        tcase_add_test(forward, test_resolv_conf_reload);
        tcase_add_test(forward, test_excluded_interface);
        tcase_add_test(forward, test_in_flight_limit);
        suite_add_tcase(s, forward);

        tcase_add_test(hard, test_garbage_datagrams);
        tcase_add_test(hard, test_random_queries_answered);
        tcase_add_test(hard, test_tcp_bad_framing);
        tcase_add_test(hard, test_tcp_half_close);
        tcase_add_test(hard, test_tcp_client_gone_while_forwarding);
        tcase_add_test(hard, test_tcp_idle_timeout);
        tcase_add_test(hard, test_tcp_connection_limit);
        tcase_add_test(hard, test_add_socket_rejects);
        suite_add_tcase(s, hard);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(dns_server_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
