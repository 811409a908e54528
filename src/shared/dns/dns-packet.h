#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* DNS messages (RFC 1035) as far as bangerd's server needs them: parsing a query from a
 * client, building the replies the server sends itself, and checking a reply from an upstream
 * resolver before it is relayed. Every input is untrusted and is read with bounds checks only;
 * compression pointers are never followed. */

#define DNS_HEADER_SIZE     12u
#define DNS_NAME_WIRE_MAX   255u /* a name on the wire, length octets and root label included */
#define DNS_LABEL_MAX       63u
#define DNS_UDP_PAYLOAD_MIN 512u   /* what every client accepts over UDP (RFC 1035 4.2.1) */
#define DNS_MESSAGE_MAX     65535u /* the largest message TCP framing can carry */

/* A name in presentation form, where each byte may take four characters ("\DDD"), plus the
 * dots and the NUL. */
#define DNS_NAME_STRING_MAX (4u * DNS_NAME_WIRE_MAX + 2u)

#define DNS_OPCODE_QUERY 0u

#define DNS_TYPE_A    1u
#define DNS_TYPE_AAAA 28u
#define DNS_TYPE_OPT  41u
#define DNS_TYPE_ANY  255u
#define DNS_CLASS_IN  1u

typedef enum DnsRcode {
        DNS_RCODE_NOERROR = 0,
        DNS_RCODE_FORMERR = 1,
        DNS_RCODE_SERVFAIL = 2,
        DNS_RCODE_NXDOMAIN = 3,
        DNS_RCODE_NOTIMP = 4,
        DNS_RCODE_REFUSED = 5,
        _DNS_RCODE_MAX,
        _DNS_RCODE_INVALID = -1,
} DnsRcode;

const char *dns_rcode_to_string(DnsRcode rcode);

typedef struct DnsQuestion {
        uint8_t name[DNS_NAME_WIRE_MAX]; /* wire form as received, case preserved */
        size_t name_size;                /* bytes of name, the root label included */
        unsigned n_labels;               /* not counting the root label */
        uint16_t type;
        uint16_t class;
} DnsQuestion;

typedef struct DnsQuery {
        uint16_t id;
        uint8_t opcode;
        bool recursion_desired;
        bool checking_disabled;
        bool has_question;      /* false when the question could not be parsed */
        DnsQuestion question;   /* valid when has_question */
        size_t question_end;    /* offset of the first byte after the question */
        bool edns;              /* an OPT record was in the additional section */
        uint16_t edns_udp_size; /* the payload size that OPT record advertises */
} DnsQuery;

/* Parses a query from a client. Returns:
 *   0                  for a well-formed QUERY of class IN, with *ret filled in.
 *   DNS_RCODE_FORMERR  for a message that is malformed after the header (see below).
 *   DNS_RCODE_NOTIMP   for an opcode other than QUERY.
 *   DNS_RCODE_REFUSED  for a class other than IN.
 *   -EBADMSG           for a message shorter than the header or a response (QR set), which
 *                      gets no reply.
 * Malformed means a question count other than 1, a label longer than 63 bytes, a name longer
 * than 255, or a compression pointer in the question. Records in the answer or authority
 * section, a broken or second OPT record, and bytes after the last record are malformed too.
 * For a positive result the header fields of *ret are set, and has_question says whether the
 * question was parsed, so a reply can repeat it. */
int dns_query_parse(const uint8_t *data, size_t size, DnsQuery *ret);

/* Returns the maximum reply size over UDP for q: its EDNS payload size, at least 512 and at
 * most max. */
size_t dns_query_udp_reply_max(const DnsQuery *q, size_t max);

/* Returns the label of q's name at index (0 is the leftmost) and its length, or NULL when the
 * name has fewer labels. */
const uint8_t *dns_question_label(const DnsQuestion *q, unsigned index, size_t *ret_size);

/* Compares a label with an ASCII string, ignoring the case of ASCII letters. */
bool dns_label_equal(const uint8_t *label, size_t size, const char *s);

/* Writes q's name in presentation form ("dev1.banger."), with '.', '\' and bytes outside
 * printable ASCII escaped as "\DDD". */
void dns_name_to_string(const DnsQuestion *q, char buf[DNS_NAME_STRING_MAX]);

/* Builds a reply to q in buf: the header with q's id, opcode and RD, RA set, AA as given,
 * q's question when q has one, and an A record for each address (network byte order) with
 * ttl seconds. The authority and additional sections are empty: an NXDOMAIN carries no SOA,
 * so resolvers do not cache it. Returns -ENOBUFS when buf is too small. */
int dns_reply_build(const DnsQuery *q, DnsRcode rcode, bool authoritative,
                    const struct in_addr *addresses, size_t n_addresses, uint32_t ttl, uint8_t *buf,
                    size_t buf_size, size_t *ret_size);

/* Checks that data is a reply from an upstream resolver to the query with id and question:
 * QR set, the same id, exactly one question with the same name (ASCII case ignored), type and
 * class. Returns 0 when it is, -EBADMSG when it is not. */
int dns_reply_check(const uint8_t *data, size_t size, uint16_t id, const DnsQuestion *question);

/* Writes id into the header of the message in data, which must be at least DNS_HEADER_SIZE
 * bytes. */
void dns_message_set_id(uint8_t *data, uint16_t id);

/* Cuts a checked upstream reply down to its header and question and sets TC, so the client
 * repeats the query over TCP. question_end is the offset after the question. Returns the new
 * size. */
size_t dns_reply_truncate(uint8_t *data, size_t question_end);
