#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns-packet.h"
#include "dns-upstream.h"

/* Feeds arbitrary bytes to the DNS parsers the way bangerd's server does: as a query from a
 * client, then as an upstream reply to that query. Every reply built for a parsed query must
 * pass the check an upstream reply gets. The bytes also go through the resolv.conf reader. */

static void check_question(const DnsQuery *q, size_t size)
{
        char name[DNS_NAME_STRING_MAX];
        size_t total = 1;

        if (q->question.name_size > DNS_NAME_WIRE_MAX || q->question_end > size)
                abort();
        for (unsigned i = 0; i < q->question.n_labels; i++) {
                size_t len;
                const uint8_t *label = dns_question_label(&q->question, i, &len);

                if (!label || len == 0 || len > DNS_LABEL_MAX)
                        abort();
                total += 1 + len;
        }
        if (total != q->question.name_size)
                abort();
        dns_name_to_string(&q->question, name);
        if (strlen(name) >= DNS_NAME_STRING_MAX)
                abort();
}

static void check_replies(const DnsQuery *q)
{
        static uint8_t buf[DNS_MESSAGE_MAX];
        struct in_addr address = { .s_addr = htonl(0x0a7b0002) };
        size_t n;

        if (!q->has_question) {
                if (dns_reply_build(q, DNS_RCODE_FORMERR, false, NULL, 0, 0, buf, sizeof(buf), &n) <
                            0 ||
                    n != DNS_HEADER_SIZE)
                        abort();
                return;
        }

        if (dns_reply_build(q, DNS_RCODE_NOERROR, true, &address, 1, 5, buf, sizeof(buf), &n) < 0 ||
            dns_reply_check(buf, n, q->id, &q->question) < 0)
                abort();
        n = dns_reply_truncate(buf, DNS_HEADER_SIZE + q->question.name_size + 4);
        if (dns_reply_check(buf, n, q->id, &q->question) < 0)
                abort();
}

static void parse_as_resolv_conf(const uint8_t *data, size_t size)
{
        char *text = malloc(size + 1);
        DnsEndpoint *list = NULL;
        size_t n = 0;

        if (!text)
                return;
        memcpy(text, data, size);
        text[size] = '\0';
        if (dns_upstreams_parse_resolv_conf(text, DNS_PORT, &list, &n) == 0 && n > DNS_UPSTREAM_MAX)
                abort();
        free(list);
        free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        DnsQuery q;
        int r;

        parse_as_resolv_conf(data, size);

        r = dns_query_parse(data, size, &q);
        if (r < 0)
                return 0;
        if (r >= _DNS_RCODE_MAX)
                abort();
        if (q.has_question) {
                check_question(&q, size);
                (void)dns_reply_check(data, size, q.id, &q.question);
        } else if (r == 0)
                abort();
        (void)dns_query_udp_reply_max(&q, DNS_MESSAGE_MAX);
        check_replies(&q);
        return 0;
}
