#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dns-packet.h"
#include "macro.h"

#define FLAG_QR 0x8000u
#define FLAG_RD 0x0100u

typedef struct Message {
        uint8_t data[1024];
        size_t size;
} Message;

static void put_u16(Message *m, uint16_t v)
{
        m->data[m->size++] = v >> 8;
        m->data[m->size++] = v & 0xff;
}

static void put_bytes(Message *m, const void *p, size_t n)
{
        memcpy(m->data + m->size, p, n);
        m->size += n;
}

/* Appends a dotted name in wire form. The empty string is the root. */
static void put_name(Message *m, const char *dotted)
{
        const char *p = dotted;

        while (*p) {
                size_t len = strcspn(p, ".");

                m->data[m->size++] = (uint8_t)len;
                put_bytes(m, p, len);
                p += len;
                if (*p == '.')
                        p++;
        }
        m->data[m->size++] = 0;
}

static void put_header(Message *m, uint16_t id, uint16_t flags, uint16_t qd, uint16_t an,
                       uint16_t ns, uint16_t ar)
{
        m->size = 0;
        put_u16(m, id);
        put_u16(m, flags);
        put_u16(m, qd);
        put_u16(m, an);
        put_u16(m, ns);
        put_u16(m, ar);
}

/* An OPT record advertising udp_size. */
static void put_opt(Message *m, uint16_t udp_size)
{
        m->data[m->size++] = 0;
        put_u16(m, DNS_TYPE_OPT);
        put_u16(m, udp_size);
        put_u16(m, 0);
        put_u16(m, 0);
        put_u16(m, 0);
}

static Message query(uint16_t id, const char *name, uint16_t type)
{
        Message m;

        put_header(&m, id, FLAG_RD, 1, 0, 0, 0);
        put_name(&m, name);
        put_u16(&m, type);
        put_u16(&m, DNS_CLASS_IN);
        return m;
}

/* A name of n labels of 63 bytes plus one of last bytes: wire size 64 * n + last + 2. */
static void put_long_name(Message *m, unsigned n, size_t last)
{
        uint8_t label[DNS_LABEL_MAX];

        memset(label, 'a', sizeof(label));
        for (unsigned i = 0; i < n; i++) {
                m->data[m->size++] = DNS_LABEL_MAX;
                put_bytes(m, label, DNS_LABEL_MAX);
        }
        m->data[m->size++] = (uint8_t)last;
        put_bytes(m, label, last);
        m->data[m->size++] = 0;
}

START_TEST(test_parse_a_query)
{
        Message m = query(0x1234, "Dev1.banger", DNS_TYPE_A);
        DnsQuery q;
        const uint8_t *label;
        size_t size;

        ck_assert_int_eq(dns_query_parse(m.data, m.size, &q), 0);
        ck_assert_uint_eq(q.id, 0x1234);
        ck_assert_uint_eq(q.opcode, DNS_OPCODE_QUERY);
        ck_assert(q.recursion_desired);
        ck_assert(!q.checking_disabled);
        ck_assert(q.has_question);
        ck_assert(!q.edns);
        ck_assert_uint_eq(q.question.n_labels, 2);
        ck_assert_uint_eq(q.question.name_size, 13);
        ck_assert_uint_eq(q.question.type, DNS_TYPE_A);
        ck_assert_uint_eq(q.question.class, DNS_CLASS_IN);
        ck_assert_uint_eq(q.question_end, m.size);

        label = dns_question_label(&q.question, 0, &size);
        ck_assert_uint_eq(size, 4);
        ck_assert(memcmp(label, "Dev1", 4) == 0);
        label = dns_question_label(&q.question, 1, &size);
        ck_assert(dns_label_equal(label, size, "banger"));
        ck_assert_ptr_null(dns_question_label(&q.question, 2, &size));
}
END_TEST

START_TEST(test_parse_edns_query)
{
        Message m = query(7, "example.org", DNS_TYPE_AAAA);
        DnsQuery q;

        m.data[11] = 1;
        put_opt(&m, 1232);
        ck_assert_int_eq(dns_query_parse(m.data, m.size, &q), 0);
        ck_assert(q.edns);
        ck_assert_uint_eq(q.edns_udp_size, 1232);
        ck_assert_uint_eq(q.question_end, m.size - 11);
        ck_assert_uint_eq(dns_query_udp_reply_max(&q, DNS_MESSAGE_MAX), 1232);
        ck_assert_uint_eq(dns_query_udp_reply_max(&q, 1000), 1000);
}
END_TEST

START_TEST(test_parse_root_name)
{
        Message m = query(1, "", DNS_TYPE_A);
        char text[DNS_NAME_STRING_MAX];
        DnsQuery q;

        ck_assert_int_eq(dns_query_parse(m.data, m.size, &q), 0);
        ck_assert_uint_eq(q.question.n_labels, 0);
        ck_assert_uint_eq(q.question.name_size, 1);
        dns_name_to_string(&q.question, text);
        ck_assert_str_eq(text, ".");
}
END_TEST

START_TEST(test_parse_longest_name)
{
        Message m;
        DnsQuery q;

        /* 3 * 64 + 61 + 2 = 255 bytes. */
        put_header(&m, 1, 0, 1, 0, 0, 0);
        put_long_name(&m, 3, 61);
        put_u16(&m, DNS_TYPE_A);
        put_u16(&m, DNS_CLASS_IN);
        ck_assert_int_eq(dns_query_parse(m.data, m.size, &q), 0);
        ck_assert_uint_eq(q.question.name_size, DNS_NAME_WIRE_MAX);
        ck_assert_uint_eq(q.question.n_labels, 4);
}
END_TEST

typedef struct BadQuery {
        const char *what;
        Message (*build)(void);
        int expected;
} BadQuery;

static Message empty_message(void)
{
        Message m = { .size = 0 };
        return m;
}

static Message truncated_header(void)
{
        Message m = query(1, "a.banger", DNS_TYPE_A);

        m.size = DNS_HEADER_SIZE - 1;
        return m;
}

static Message response(void)
{
        Message m = query(1, "a.banger", DNS_TYPE_A);

        m.data[2] |= FLAG_QR >> 8;
        return m;
}

static Message no_question(void)
{
        Message m;

        put_header(&m, 1, 0, 0, 0, 0, 0);
        return m;
}

static Message two_questions(void)
{
        Message m;

        put_header(&m, 1, 0, 2, 0, 0, 0);
        for (int i = 0; i < 2; i++) {
                put_name(&m, "a.banger");
                put_u16(&m, DNS_TYPE_A);
                put_u16(&m, DNS_CLASS_IN);
        }
        return m;
}

static Message label_64(void)
{
        Message m;
        uint8_t label[64];

        memset(label, 'x', sizeof(label));
        put_header(&m, 1, 0, 1, 0, 0, 0);
        m.data[m.size++] = 64;
        put_bytes(&m, label, sizeof(label));
        m.data[m.size++] = 0;
        put_u16(&m, DNS_TYPE_A);
        put_u16(&m, DNS_CLASS_IN);
        return m;
}

static Message name_256(void)
{
        Message m;

        put_header(&m, 1, 0, 1, 0, 0, 0);
        put_long_name(&m, 3, 62);
        put_u16(&m, DNS_TYPE_A);
        put_u16(&m, DNS_CLASS_IN);
        return m;
}

static Message pointer_loop(void)
{
        Message m;

        /* A pointer to itself: following it would never end. */
        put_header(&m, 1, 0, 1, 0, 0, 0);
        put_u16(&m, 0xc000u | DNS_HEADER_SIZE);
        put_u16(&m, DNS_TYPE_A);
        put_u16(&m, DNS_CLASS_IN);
        return m;
}

static Message pointer_after_label(void)
{
        Message m;

        put_header(&m, 1, 0, 1, 0, 0, 0);
        m.data[m.size++] = 1;
        m.data[m.size++] = 'a';
        put_u16(&m, 0xc000u | DNS_HEADER_SIZE);
        put_u16(&m, DNS_TYPE_A);
        put_u16(&m, DNS_CLASS_IN);
        return m;
}

static Message extended_label(void)
{
        Message m;

        put_header(&m, 1, 0, 1, 0, 0, 0);
        m.data[m.size++] = 0x41;
        m.data[m.size++] = 'a';
        m.data[m.size++] = 0;
        put_u16(&m, DNS_TYPE_A);
        put_u16(&m, DNS_CLASS_IN);
        return m;
}

static Message name_past_end(void)
{
        Message m;

        put_header(&m, 1, 0, 1, 0, 0, 0);
        m.data[m.size++] = 10;
        put_bytes(&m, "abc", 3);
        return m;
}

static Message missing_class(void)
{
        Message m = query(1, "a.banger", DNS_TYPE_A);

        m.size -= 2;
        return m;
}

static Message trailing_bytes(void)
{
        Message m = query(1, "a.banger", DNS_TYPE_A);

        m.data[m.size++] = 0;
        return m;
}

static Message with_answer(void)
{
        Message m = query(1, "a.banger", DNS_TYPE_A);

        m.data[7] = 1;
        return m;
}

static Message with_authority(void)
{
        Message m = query(1, "a.banger", DNS_TYPE_A);

        m.data[9] = 1;
        return m;
}

static Message two_opt(void)
{
        Message m = query(1, "a.banger", DNS_TYPE_A);

        m.data[11] = 2;
        put_opt(&m, 1232);
        put_opt(&m, 1232);
        return m;
}

static Message opt_with_name(void)
{
        Message m = query(1, "a.banger", DNS_TYPE_A);

        m.data[11] = 1;
        m.data[m.size++] = 1;
        m.data[m.size++] = 'a';
        put_opt(&m, 1232);
        return m;
}

static Message additional_past_end(void)
{
        Message m = query(1, "a.banger", DNS_TYPE_A);

        m.data[11] = 1;
        put_opt(&m, 1232);
        m.data[m.size - 1] = 4; /* RDLENGTH 4, but no RDATA follows */
        return m;
}

static Message missing_additional(void)
{
        Message m = query(1, "a.banger", DNS_TYPE_A);

        m.data[11] = 1;
        return m;
}

static Message opcode_status(void)
{
        Message m = query(1, "a.banger", DNS_TYPE_A);

        m.data[2] |= 2 << 3;
        return m;
}

static Message class_chaos(void)
{
        Message m = query(1, "version.bind", 16);

        m.data[m.size - 1] = 3;
        return m;
}

static Message additional_with_pointer(void)
{
        Message m = query(1, "a.banger", DNS_TYPE_A);

        /* A TSIG-like record whose name points back at the question: skipped, not followed. */
        m.data[11] = 1;
        put_u16(&m, 0xc000u | DNS_HEADER_SIZE);
        put_u16(&m, 250);
        put_u16(&m, 255);
        put_u16(&m, 0);
        put_u16(&m, 0);
        put_u16(&m, 2);
        put_u16(&m, 0);
        return m;
}

static const BadQuery bad_queries[] = {
        { "empty message", empty_message, -EBADMSG },
        { "truncated header", truncated_header, -EBADMSG },
        { "response", response, -EBADMSG },
        { "no question", no_question, DNS_RCODE_FORMERR },
        { "two questions", two_questions, DNS_RCODE_FORMERR },
        { "label of 64 bytes", label_64, DNS_RCODE_FORMERR },
        { "name of 256 bytes", name_256, DNS_RCODE_FORMERR },
        { "pointer loop", pointer_loop, DNS_RCODE_FORMERR },
        { "pointer after a label", pointer_after_label, DNS_RCODE_FORMERR },
        { "extended label type", extended_label, DNS_RCODE_FORMERR },
        { "name past the end", name_past_end, DNS_RCODE_FORMERR },
        { "missing class", missing_class, DNS_RCODE_FORMERR },
        { "trailing bytes", trailing_bytes, DNS_RCODE_FORMERR },
        { "answer record", with_answer, DNS_RCODE_FORMERR },
        { "authority record", with_authority, DNS_RCODE_FORMERR },
        { "two OPT records", two_opt, DNS_RCODE_FORMERR },
        { "OPT with a name", opt_with_name, DNS_RCODE_FORMERR },
        { "additional past the end", additional_past_end, DNS_RCODE_FORMERR },
        { "missing additional", missing_additional, DNS_RCODE_FORMERR },
        { "opcode STATUS", opcode_status, DNS_RCODE_NOTIMP },
        { "class CH", class_chaos, DNS_RCODE_REFUSED },
        { "additional with a pointer", additional_with_pointer, 0 },
};

START_TEST(test_parse_bad_query)
{
        const BadQuery *b = &bad_queries[_i];
        Message m = b->build();
        uint8_t *copy = malloc(m.size ?: 1);
        DnsQuery q;
        int r;

        /* A copy of exactly m.size bytes, so ASan catches any read past the end. */
        memcpy(copy, m.data, m.size);
        r = dns_query_parse(copy, m.size, &q);
        ck_assert_msg(r == b->expected, "%s: expected %d, got %d", b->what, b->expected, r);
        if (r >= 0)
                ck_assert_uint_eq(q.id, 1);
        free(copy);
}
END_TEST

START_TEST(test_parse_keeps_question_for_error_reply)
{
        Message m = opcode_status();
        DnsQuery q;

        ck_assert_int_eq(dns_query_parse(m.data, m.size, &q), DNS_RCODE_NOTIMP);
        ck_assert_uint_eq(q.opcode, 2);
        ck_assert(q.has_question);

        m = two_questions();
        ck_assert_int_eq(dns_query_parse(m.data, m.size, &q), DNS_RCODE_FORMERR);
        ck_assert(!q.has_question);
}
END_TEST

START_TEST(test_build_a_reply)
{
        Message m = query(0xbeef, "dev1.banger", DNS_TYPE_A);
        static const uint8_t answer[] = { 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 123, 0, 2 };
        struct in_addr address;
        uint8_t buf[512];
        DnsQuery q;
        size_t size;

        ck_assert_int_eq(inet_pton(AF_INET, "10.123.0.2", &address), 1);
        ck_assert_int_eq(dns_query_parse(m.data, m.size, &q), 0);
        ck_assert_int_eq(dns_reply_build(&q, DNS_RCODE_NOERROR, true, &address, 1, 5, buf,
                                         sizeof(buf), &size),
                         0);

        ck_assert_uint_eq(size, m.size + sizeof(answer));
        ck_assert_uint_eq(buf[0], 0xbe);
        ck_assert_uint_eq(buf[1], 0xef);
        ck_assert_uint_eq(buf[2], 0x85); /* QR, AA, RD */
        ck_assert_uint_eq(buf[3], 0x80); /* RA, NOERROR */
        ck_assert_uint_eq(buf[5], 1);    /* QDCOUNT */
        ck_assert_uint_eq(buf[7], 1);    /* ANCOUNT */
        ck_assert_uint_eq(buf[9], 0);    /* NSCOUNT */
        ck_assert_uint_eq(buf[11], 0);   /* ARCOUNT */
        ck_assert(memcmp(buf + DNS_HEADER_SIZE, m.data + DNS_HEADER_SIZE,
                         m.size - DNS_HEADER_SIZE) == 0);
        ck_assert(memcmp(buf + m.size, answer, sizeof(answer)) == 0);
        ck_assert_int_eq(dns_reply_check(buf, size, 0xbeef, &q.question), 0);
}
END_TEST

START_TEST(test_build_nxdomain_without_soa)
{
        Message m = query(3, "gone.banger", DNS_TYPE_A);
        uint8_t buf[512];
        DnsQuery q;
        size_t size;

        ck_assert_int_eq(dns_query_parse(m.data, m.size, &q), 0);
        ck_assert_int_eq(
                dns_reply_build(&q, DNS_RCODE_NXDOMAIN, true, NULL, 0, 5, buf, sizeof(buf), &size),
                0);
        ck_assert_uint_eq(size, m.size);
        ck_assert_uint_eq(buf[3] & 0xf, DNS_RCODE_NXDOMAIN);
        ck_assert_uint_eq(buf[2] & 0x04, 0x04);
        ck_assert_uint_eq(buf[7], 0);
        ck_assert_uint_eq(buf[9], 0);
        ck_assert_uint_eq(buf[11], 0);
}
END_TEST

START_TEST(test_build_empty_aaaa_reply)
{
        Message m = query(4, "dev1.banger", DNS_TYPE_AAAA);
        uint8_t buf[512];
        DnsQuery q;
        size_t size;

        ck_assert_int_eq(dns_query_parse(m.data, m.size, &q), 0);
        ck_assert_int_eq(
                dns_reply_build(&q, DNS_RCODE_NOERROR, true, NULL, 0, 5, buf, sizeof(buf), &size),
                0);
        ck_assert_uint_eq(size, m.size);
        ck_assert_uint_eq(buf[3] & 0xf, DNS_RCODE_NOERROR);
        ck_assert_uint_eq(buf[5], 1);
        ck_assert_uint_eq(buf[7], 0);
        ck_assert_int_eq(dns_reply_check(buf, size, 4, &q.question), 0);
}
END_TEST

START_TEST(test_build_formerr_without_question)
{
        Message m = two_questions();
        uint8_t buf[512];
        DnsQuery q;
        size_t size;

        ck_assert_int_eq(dns_query_parse(m.data, m.size, &q), DNS_RCODE_FORMERR);
        ck_assert_int_eq(
                dns_reply_build(&q, DNS_RCODE_FORMERR, false, NULL, 0, 0, buf, sizeof(buf), &size),
                0);
        ck_assert_uint_eq(size, DNS_HEADER_SIZE);
        ck_assert_uint_eq(buf[2], 0x80); /* QR only: the query had no RD */
        ck_assert_uint_eq(buf[3], 0x80 | DNS_RCODE_FORMERR);
        ck_assert_uint_eq(buf[5], 0);
}
END_TEST

START_TEST(test_build_error_rcodes)
{
        const DnsRcode rcodes[] = { DNS_RCODE_SERVFAIL, DNS_RCODE_NOTIMP, DNS_RCODE_REFUSED };
        Message m = query(9, "example.org", DNS_TYPE_A);
        uint8_t buf[512];
        DnsQuery q;
        size_t size;

        ck_assert_int_eq(dns_query_parse(m.data, m.size, &q), 0);
        for (size_t i = 0; i < ELEMENTSOF(rcodes); i++) {
                ck_assert_int_eq(
                        dns_reply_build(&q, rcodes[i], false, NULL, 0, 0, buf, sizeof(buf), &size),
                        0);
                ck_assert_uint_eq(buf[3] & 0xf, rcodes[i]);
                ck_assert_uint_eq(buf[2] & 0x04, 0); /* not authoritative */
                ck_assert_uint_eq(buf[5], 1);
        }
}
END_TEST

START_TEST(test_build_small_buffer)
{
        Message m = query(9, "dev1.banger", DNS_TYPE_A);
        struct in_addr address = { .s_addr = htonl(0x0a7b0002) };
        uint8_t buf[512];
        DnsQuery q;
        size_t size = 0;

        ck_assert_int_eq(dns_query_parse(m.data, m.size, &q), 0);
        ck_assert_int_eq(dns_reply_build(&q, DNS_RCODE_NOERROR, true, &address, 1, 5, buf,
                                         m.size + 15, &size),
                         -ENOBUFS);
        ck_assert_uint_eq(size, 0);
        ck_assert_int_eq(dns_reply_build(&q, DNS_RCODE_NOERROR, true, &address, 1, 5, buf,
                                         m.size + 16, &size),
                         0);
        ck_assert_uint_eq(size, m.size + 16);
}
END_TEST

START_TEST(test_reply_check)
{
        Message m = query(0x4242, "Example.ORG", DNS_TYPE_A);
        Message reply;
        DnsQuery q;

        ck_assert_int_eq(dns_query_parse(m.data, m.size, &q), 0);

        reply = query(0x4242, "example.org", DNS_TYPE_A);
        reply.data[2] |= FLAG_QR >> 8;
        ck_assert_int_eq(dns_reply_check(reply.data, reply.size, 0x4242, &q.question), 0);
        ck_assert_int_eq(dns_reply_check(reply.data, reply.size, 0x4243, &q.question), -EBADMSG);
        ck_assert_int_eq(dns_reply_check(reply.data, 11, 0x4242, &q.question), -EBADMSG);
        ck_assert_int_eq(dns_reply_check(reply.data, reply.size - 1, 0x4242, &q.question),
                         -EBADMSG);

        /* Not a response. */
        reply = query(0x4242, "example.org", DNS_TYPE_A);
        ck_assert_int_eq(dns_reply_check(reply.data, reply.size, 0x4242, &q.question), -EBADMSG);

        reply = query(0x4242, "example.net", DNS_TYPE_A);
        reply.data[2] |= FLAG_QR >> 8;
        ck_assert_int_eq(dns_reply_check(reply.data, reply.size, 0x4242, &q.question), -EBADMSG);

        reply = query(0x4242, "example.org", DNS_TYPE_AAAA);
        reply.data[2] |= FLAG_QR >> 8;
        ck_assert_int_eq(dns_reply_check(reply.data, reply.size, 0x4242, &q.question), -EBADMSG);

        reply = query(0x4242, "example.org.x", DNS_TYPE_A);
        reply.data[2] |= FLAG_QR >> 8;
        ck_assert_int_eq(dns_reply_check(reply.data, reply.size, 0x4242, &q.question), -EBADMSG);

        put_header(&reply, 0x4242, FLAG_QR | DNS_RCODE_SERVFAIL, 0, 0, 0, 0);
        ck_assert_int_eq(dns_reply_check(reply.data, reply.size, 0x4242, &q.question), -EBADMSG);

        reply = pointer_loop();
        reply.data[0] = 0x42;
        reply.data[1] = 0x42;
        reply.data[2] |= FLAG_QR >> 8;
        ck_assert_int_eq(dns_reply_check(reply.data, reply.size, 0x4242, &q.question), -EBADMSG);
}
END_TEST

START_TEST(test_reply_truncate)
{
        Message m = query(5, "example.org", DNS_TYPE_A);
        Message reply = query(77, "example.org", DNS_TYPE_A);
        DnsQuery q;
        size_t size;

        ck_assert_int_eq(dns_query_parse(m.data, m.size, &q), 0);
        reply.data[2] |= FLAG_QR >> 8;
        reply.data[7] = 3;
        reply.data[11] = 1;
        put_bytes(&reply, "answers and more", 16);

        dns_message_set_id(reply.data, 5);
        size = dns_reply_truncate(reply.data, q.question_end);
        ck_assert_uint_eq(size, m.size);
        ck_assert_uint_eq(reply.data[0], 0);
        ck_assert_uint_eq(reply.data[1], 5);
        ck_assert_uint_eq(reply.data[2] & 0x02, 0x02); /* TC */
        ck_assert_uint_eq(reply.data[7], 0);
        ck_assert_uint_eq(reply.data[11], 0);
        ck_assert_int_eq(dns_reply_check(reply.data, size, 5, &q.question), 0);
}
END_TEST

START_TEST(test_name_to_string_escapes)
{
        Message m;
        char text[DNS_NAME_STRING_MAX];
        DnsQuery q;

        put_header(&m, 1, 0, 1, 0, 0, 0);
        m.data[m.size++] = 5;
        put_bytes(&m, "a.b\\\x01", 5);
        put_name(&m, "Banger");
        put_u16(&m, DNS_TYPE_A);
        put_u16(&m, DNS_CLASS_IN);

        ck_assert_int_eq(dns_query_parse(m.data, m.size, &q), 0);
        dns_name_to_string(&q.question, text);
        ck_assert_str_eq(text, "a\\046b\\092\\001.Banger.");
}
END_TEST

START_TEST(test_name_to_string_worst_case)
{
        Message m;
        char text[DNS_NAME_STRING_MAX + 16];
        DnsQuery q;

        /* One label of 63 bytes that all need escaping, then three more. */
        put_header(&m, 1, 0, 1, 0, 0, 0);
        for (int i = 0; i < 3; i++) {
                m.data[m.size++] = DNS_LABEL_MAX;
                memset(m.data + m.size, 0xff, DNS_LABEL_MAX);
                m.size += DNS_LABEL_MAX;
        }
        m.data[m.size++] = 61;
        memset(m.data + m.size, 0xff, 61);
        m.size += 61;
        m.data[m.size++] = 0;
        put_u16(&m, DNS_TYPE_A);
        put_u16(&m, DNS_CLASS_IN);

        memset(text, 'X', sizeof(text));
        ck_assert_int_eq(dns_query_parse(m.data, m.size, &q), 0);
        dns_name_to_string(&q.question, text);
        ck_assert_uint_eq(strlen(text), 4 * 250 + 4);
        ck_assert_uint_lt(strlen(text), DNS_NAME_STRING_MAX);
}
END_TEST

START_TEST(test_label_equal)
{
        ck_assert(dns_label_equal((const uint8_t *)"BaNgEr", 6, "banger"));
        ck_assert(!dns_label_equal((const uint8_t *)"banger", 5, "banger"));
        ck_assert(!dns_label_equal((const uint8_t *)"bangex", 6, "banger"));
        /* Only ASCII letters fold: 0xc0 and 0xe0 differ. */
        ck_assert(!dns_label_equal((const uint8_t *)"\xc0", 1, "\xe0"));
}
END_TEST

START_TEST(test_udp_reply_max)
{
        DnsQuery q = {};

        ck_assert_uint_eq(dns_query_udp_reply_max(&q, DNS_MESSAGE_MAX), 512);
        q.edns = true;
        q.edns_udp_size = 100;
        ck_assert_uint_eq(dns_query_udp_reply_max(&q, DNS_MESSAGE_MAX), 512);
        q.edns_udp_size = 4096;
        ck_assert_uint_eq(dns_query_udp_reply_max(&q, DNS_MESSAGE_MAX), 4096);
        ck_assert_uint_eq(dns_query_udp_reply_max(&q, 1232), 1232);
}
END_TEST

START_TEST(test_rcode_names)
{
        ck_assert_str_eq(dns_rcode_to_string(DNS_RCODE_NXDOMAIN), "NXDOMAIN");
        ck_assert_str_eq(dns_rcode_to_string(DNS_RCODE_REFUSED), "REFUSED");
        ck_assert_ptr_null(dns_rcode_to_string(_DNS_RCODE_MAX));
        ck_assert_ptr_null(dns_rcode_to_string(_DNS_RCODE_INVALID));
}
END_TEST

static Suite *dns_packet_suite(void)
{
        Suite *s = suite_create("dns-packet");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_parse_a_query);
        tcase_add_test(tc, test_parse_edns_query);
        tcase_add_test(tc, test_parse_root_name);
        tcase_add_test(tc, test_parse_longest_name);
        tcase_add_loop_test(tc, test_parse_bad_query, 0, ELEMENTSOF(bad_queries));
        tcase_add_test(tc, test_parse_keeps_question_for_error_reply);
        tcase_add_test(tc, test_build_a_reply);
        tcase_add_test(tc, test_build_nxdomain_without_soa);
        tcase_add_test(tc, test_build_empty_aaaa_reply);
        tcase_add_test(tc, test_build_formerr_without_question);
        tcase_add_test(tc, test_build_error_rcodes);
        tcase_add_test(tc, test_build_small_buffer);
        tcase_add_test(tc, test_reply_check);
        tcase_add_test(tc, test_reply_truncate);
        tcase_add_test(tc, test_name_to_string_escapes);
        tcase_add_test(tc, test_name_to_string_worst_case);
        tcase_add_test(tc, test_label_equal);
        tcase_add_test(tc, test_udp_reply_max);
        tcase_add_test(tc, test_rcode_names);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(dns_packet_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
