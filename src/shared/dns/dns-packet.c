#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dns-packet.h"
#include "macro.h"

/* Header flag bits, in the 16-bit word after the id. */
#define DNS_FLAG_QR      0x8000u
#define DNS_FLAG_AA      0x0400u
#define DNS_FLAG_TC      0x0200u
#define DNS_FLAG_RD      0x0100u
#define DNS_FLAG_RA      0x0080u
#define DNS_FLAG_CD      0x0010u
#define DNS_OPCODE_SHIFT 11
#define DNS_OPCODE_MASK  0xfu
#define DNS_RCODE_MASK   0xfu
#define DNS_LABEL_TYPE_MASK                                          \
        0xc0u /* 0xc0 marks a compression pointer, 0x40 and 0x80 are \
               * extended label types (RFC 6891 section 5) */

/* Fixed part of a resource record after its name: type, class, TTL, RDLENGTH. */
#define DNS_RR_FIXED_SIZE 10u

static const char *const rcode_table[_DNS_RCODE_MAX] = {
        [DNS_RCODE_NOERROR] = "NOERROR",   [DNS_RCODE_FORMERR] = "FORMERR",
        [DNS_RCODE_SERVFAIL] = "SERVFAIL", [DNS_RCODE_NXDOMAIN] = "NXDOMAIN",
        [DNS_RCODE_NOTIMP] = "NOTIMP",     [DNS_RCODE_REFUSED] = "REFUSED",
};

const char *dns_rcode_to_string(DnsRcode rcode)
{
        if (rcode < 0 || rcode >= _DNS_RCODE_MAX)
                return NULL;
        return rcode_table[rcode];
}

static uint16_t read_u16(const uint8_t *p)
{
        return (uint16_t)(p[0] << 8 | p[1]);
}

static uint8_t *write_u16(uint8_t *p, uint16_t v)
{
        p[0] = v >> 8;
        p[1] = v & 0xff;
        return p + 2;
}

static uint8_t *write_u32(uint8_t *p, uint32_t v)
{
        p = write_u16(p, v >> 16);
        return write_u16(p, v & 0xffff);
}

static char ascii_lower(uint8_t c)
{
        return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : (char)c;
}

/* Reads an uncompressed name at *pos into q. Returns -EBADMSG for a pointer, an extended label
 * type, a name longer than 255 bytes or one that runs past the end. */
static int parse_question_name(const uint8_t *data, size_t size, size_t *pos, DnsQuestion *q)
{
        size_t p = *pos;

        q->name_size = 0;
        q->n_labels = 0;
        for (;;) {
                uint8_t len;

                if (p >= size)
                        return -EBADMSG;
                len = data[p];
                if (len & DNS_LABEL_TYPE_MASK)
                        return -EBADMSG;
                /* The label, its length octet, and the root label still to come. */
                if (q->name_size + 1u + len + (len > 0 ? 1u : 0u) > DNS_NAME_WIRE_MAX)
                        return -EBADMSG;
                if (len > size - p - 1)
                        return -EBADMSG;

                memcpy(q->name + q->name_size, data + p, 1u + len);
                q->name_size += 1u + len;
                p += 1u + len;
                if (len == 0)
                        break;
                q->n_labels++;
        }

        *pos = p;
        return 0;
}

static int parse_question(const uint8_t *data, size_t size, size_t *pos, DnsQuestion *q)
{
        int r;

        r = parse_question_name(data, size, pos, q);
        if (r < 0)
                return r;
        if (size - *pos < 4)
                return -EBADMSG;
        q->type = read_u16(data + *pos);
        q->class = read_u16(data + *pos + 2);
        *pos += 4;
        return 0;
}

/* Steps over a name in a record that is only skipped. A compression pointer ends the name and
 * is not followed, so no loop can form. */
static int skip_name(const uint8_t *data, size_t size, size_t *pos)
{
        size_t p = *pos, total = 0;

        for (;;) {
                uint8_t len;

                if (p >= size)
                        return -EBADMSG;
                len = data[p];
                if ((len & DNS_LABEL_TYPE_MASK) == DNS_LABEL_TYPE_MASK) {
                        if (size - p < 2)
                                return -EBADMSG;
                        p += 2;
                        break;
                }
                if (len & DNS_LABEL_TYPE_MASK)
                        return -EBADMSG;
                total += 1u + len;
                if (total > DNS_NAME_WIRE_MAX || len > size - p - 1)
                        return -EBADMSG;
                p += 1u + len;
                if (len == 0)
                        break;
        }

        *pos = p;
        return 0;
}

/* Reads the additional section: any records, of which at most one is an OPT with the root as
 * its name. */
static int parse_additional(const uint8_t *data, size_t size, size_t pos, unsigned count,
                            DnsQuery *q)
{
        for (unsigned i = 0; i < count; i++) {
                size_t name_start = pos;
                uint16_t type, rdlength;
                int r;

                r = skip_name(data, size, &pos);
                if (r < 0)
                        return r;
                if (size - pos < DNS_RR_FIXED_SIZE)
                        return -EBADMSG;
                type = read_u16(data + pos);
                rdlength = read_u16(data + pos + 8);

                if (type == DNS_TYPE_OPT) {
                        if (q->edns || pos - name_start != 1 || data[name_start] != 0)
                                return -EBADMSG;
                        q->edns = true;
                        q->edns_udp_size = read_u16(data + pos + 2);
                }

                pos += DNS_RR_FIXED_SIZE;
                if (rdlength > size - pos)
                        return -EBADMSG;
                pos += rdlength;
        }

        return pos == size ? 0 : -EBADMSG;
}

int dns_query_parse(const uint8_t *data, size_t size, DnsQuery *ret)
{
        DnsQuery q = {};
        uint16_t flags;
        size_t pos = DNS_HEADER_SIZE;

        if (size < DNS_HEADER_SIZE)
                return -EBADMSG;
        flags = read_u16(data + 2);
        if (flags & DNS_FLAG_QR)
                return -EBADMSG;

        q.id = read_u16(data);
        q.opcode = (flags >> DNS_OPCODE_SHIFT) & DNS_OPCODE_MASK;
        q.recursion_desired = flags & DNS_FLAG_RD;
        q.checking_disabled = flags & DNS_FLAG_CD;

        if (read_u16(data + 4) == 1 && parse_question(data, size, &pos, &q.question) >= 0) {
                q.has_question = true;
                q.question_end = pos;
        }

        *ret = q;
        if (q.opcode != DNS_OPCODE_QUERY)
                return DNS_RCODE_NOTIMP;
        if (!q.has_question || read_u16(data + 6) != 0 || read_u16(data + 8) != 0)
                return DNS_RCODE_FORMERR;
        if (parse_additional(data, size, pos, read_u16(data + 10), &q) < 0)
                return DNS_RCODE_FORMERR;

        *ret = q;
        if (q.question.class != DNS_CLASS_IN)
                return DNS_RCODE_REFUSED;
        return 0;
}

size_t dns_query_udp_reply_max(const DnsQuery *q, size_t max)
{
        size_t n = q->edns ? q->edns_udp_size : DNS_UDP_PAYLOAD_MIN;

        if (n > max)
                n = max;
        return n < DNS_UDP_PAYLOAD_MIN ? DNS_UDP_PAYLOAD_MIN : n;
}

const uint8_t *dns_question_label(const DnsQuestion *q, unsigned index, size_t *ret_size)
{
        size_t p = 0;

        if (index >= q->n_labels)
                return NULL;
        for (unsigned i = 0; i < index; i++)
                p += 1u + q->name[p];
        *ret_size = q->name[p];
        return q->name + p + 1;
}

bool dns_label_equal(const uint8_t *label, size_t size, const char *s)
{
        if (strlen(s) != size)
                return false;
        for (size_t i = 0; i < size; i++)
                if (ascii_lower(label[i]) != ascii_lower((uint8_t)s[i]))
                        return false;
        return true;
}

void dns_name_to_string(const DnsQuestion *q, char buf[DNS_NAME_STRING_MAX])
{
        char *out = buf;

        if (q->n_labels == 0) {
                strcpy(buf, ".");
                return;
        }

        for (unsigned i = 0; i < q->n_labels; i++) {
                size_t len;
                const uint8_t *label = dns_question_label(q, i, &len);

                for (size_t j = 0; j < len; j++) {
                        uint8_t c = label[j];

                        if (c <= ' ' || c > '~' || c == '.' || c == '\\')
                                out += sprintf(out, "\\%03u", c);
                        else
                                *out++ = (char)c;
                }
                *out++ = '.';
        }
        *out = '\0';
}

int dns_reply_build(const DnsQuery *q, DnsRcode rcode, bool authoritative,
                    const struct in_addr *addresses, size_t n_addresses, uint32_t ttl, uint8_t *buf,
                    size_t buf_size, size_t *ret_size)
{
        /* Each A record: a pointer to the question name, the fixed part, four address bytes. */
        const size_t a_record_size = 2 + DNS_RR_FIXED_SIZE + 4;
        uint16_t flags = DNS_FLAG_QR | DNS_FLAG_RA | (uint16_t)(rcode & DNS_RCODE_MASK);
        size_t size = DNS_HEADER_SIZE;
        uint8_t *p = buf;

        if (n_addresses > 0 && !q->has_question)
                return -EINVAL;
        if (q->has_question)
                size += q->question.name_size + 4 + n_addresses * a_record_size;
        if (size > buf_size || n_addresses > UINT16_MAX)
                return -ENOBUFS;

        flags |= (uint16_t)((q->opcode & DNS_OPCODE_MASK) << DNS_OPCODE_SHIFT);
        if (authoritative)
                flags |= DNS_FLAG_AA;
        if (q->recursion_desired)
                flags |= DNS_FLAG_RD;
        if (q->checking_disabled)
                flags |= DNS_FLAG_CD;

        p = write_u16(p, q->id);
        p = write_u16(p, flags);
        p = write_u16(p, q->has_question ? 1 : 0);
        p = write_u16(p, (uint16_t)n_addresses);
        p = write_u16(p, 0);
        p = write_u16(p, 0);

        if (q->has_question) {
                memcpy(p, q->question.name, q->question.name_size);
                p += q->question.name_size;
                p = write_u16(p, q->question.type);
                p = write_u16(p, q->question.class);
        }

        for (size_t i = 0; i < n_addresses; i++) {
                p = write_u16(p, 0xc000u | DNS_HEADER_SIZE);
                p = write_u16(p, DNS_TYPE_A);
                p = write_u16(p, DNS_CLASS_IN);
                p = write_u32(p, ttl);
                p = write_u16(p, 4);
                memcpy(p, &addresses[i].s_addr, 4);
                p += 4;
        }

        *ret_size = size;
        return 0;
}

int dns_reply_check(const uint8_t *data, size_t size, uint16_t id, const DnsQuestion *question)
{
        DnsQuestion q;
        size_t pos = DNS_HEADER_SIZE;

        if (size < DNS_HEADER_SIZE)
                return -EBADMSG;
        if (read_u16(data) != id || !(read_u16(data + 2) & DNS_FLAG_QR))
                return -EBADMSG;
        if (read_u16(data + 4) != 1)
                return -EBADMSG;
        if (parse_question(data, size, &pos, &q) < 0)
                return -EBADMSG;

        if (q.type != question->type || q.class != question->class)
                return -EBADMSG;
        if (q.name_size != question->name_size)
                return -EBADMSG;
        for (size_t i = 0; i < q.name_size; i++)
                if (ascii_lower(q.name[i]) != ascii_lower(question->name[i]))
                        return -EBADMSG;
        return 0;
}

void dns_message_set_id(uint8_t *data, uint16_t id)
{
        write_u16(data, id);
}

size_t dns_reply_truncate(uint8_t *data, size_t question_end)
{
        uint16_t flags = read_u16(data + 2) | DNS_FLAG_TC;

        write_u16(data + 2, flags);
        write_u16(data + 6, 0);
        write_u16(data + 8, 0);
        write_u16(data + 10, 0);
        return question_end;
}
