#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>

#include "dns-upstream.h"
#include "macro.h"

static DnsEndpoint endpoint(const char *address, uint16_t port)
{
        DnsEndpoint e;

        ck_assert_int_eq(dns_endpoint_from_string(address, port, &e), 0);
        return e;
}

static void assert_endpoint_string(const DnsEndpoint *e, const char *expected)
{
        char text[DNS_ENDPOINT_STRING_MAX];

        dns_endpoint_to_string(e, text);
        ck_assert_str_eq(text, expected);
}

START_TEST(test_endpoint_parse)
{
        DnsEndpoint e;
        unsigned lo = if_nametoindex("lo");
        char expected[64];

        e = endpoint("192.0.2.53", 53);
        ck_assert_int_eq(e.sa.sa_family, AF_INET);
        ck_assert_uint_eq(e.size, sizeof(struct sockaddr_in));
        ck_assert_uint_eq(dns_endpoint_port(&e), 53);
        assert_endpoint_string(&e, "192.0.2.53:53");

        e = endpoint("2001:db8::1", 5353);
        ck_assert_int_eq(e.sa.sa_family, AF_INET6);
        ck_assert_uint_eq(e.size, sizeof(struct sockaddr_in6));
        assert_endpoint_string(&e, "[2001:db8::1]:5353");

        e = endpoint("fe80::1%7", 53);
        ck_assert_uint_eq(e.in6.sin6_scope_id, 7);
        assert_endpoint_string(&e, "[fe80::1%7]:53");

        ck_assert_uint_gt(lo, 0);
        e = endpoint("fe80::1%lo", 53);
        ck_assert_uint_eq(e.in6.sin6_scope_id, lo);
        snprintf(expected, sizeof(expected), "[fe80::1%%%u]:53", lo);
        assert_endpoint_string(&e, expected);
}
END_TEST

START_TEST(test_endpoint_parse_invalid)
{
        static const char *const bad[] = {
                "",
                "localhost",
                "192.0.2",
                "192.0.2.1.5",
                "256.0.0.1",
                "192.0.2.1%lo",
                "2001:db8::1%",
                "2001:db8::1%no-such-interface0",
                "2001:db8::1%0",
                "2001:db8:::1",
                "[2001:db8::1]",
                "0000:0000:0000:0000:0000:0000:0000:0000:0000",
        };
        DnsEndpoint e;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                ck_assert_msg(dns_endpoint_from_string(bad[i], 53, &e) == -EINVAL, "'%s'", bad[i]);
}
END_TEST

START_TEST(test_endpoint_kinds)
{
        DnsEndpoint a = endpoint("127.0.0.53", 53), b = endpoint("127.0.0.53", 5353);
        DnsEndpoint any4 = endpoint("0.0.0.0", 53), any6 = endpoint("::", 53);
        DnsEndpoint v6 = endpoint("::1", 53), mapped = endpoint("::ffff:127.0.0.1", 53);
        DnsEndpoint scoped1 = endpoint("fe80::1%1", 53), scoped2 = endpoint("fe80::1%2", 53);

        ck_assert(dns_endpoint_same_address(&a, &b));
        ck_assert(!dns_endpoint_same_address(&a, &v6));
        ck_assert(!dns_endpoint_same_address(&scoped1, &scoped2));
        ck_assert(dns_endpoint_is_any(&any4));
        ck_assert(dns_endpoint_is_any(&any6));
        ck_assert(!dns_endpoint_is_any(&a));
        ck_assert(dns_endpoint_is_loopback(&a));
        ck_assert(dns_endpoint_is_loopback(&v6));
        ck_assert(dns_endpoint_is_loopback(&mapped));
        ck_assert(!dns_endpoint_is_loopback(&scoped1));
        ck_assert(!dns_endpoint_is_loopback(&any4));
}
END_TEST

START_TEST(test_resolv_conf_parse)
{
        const char *text = "# written by hand\n"
                           "; another comment style\n"
                           "search example.org\n"
                           "nameserver 192.0.2.1\n"
                           "nameserver\t2001:db8::53   # trailing comment\n"
                           "nameserver name.example.org\n"
                           "nameservers 192.0.2.9\n"
                           " nameserver 192.0.2.8\n"
                           "nameserver\n"
                           "options edns0 trust-ad\n"
                           "nameserver 192.0.2.3\n"
                           "nameserver 192.0.2.4\n";
        _cleanup_free_ DnsEndpoint *list = NULL;
        size_t n = 0;

        ck_assert_int_eq(dns_upstreams_parse_resolv_conf(text, 53, &list, &n), 0);
        ck_assert_uint_eq(n, DNS_UPSTREAM_MAX);
        assert_endpoint_string(&list[0], "192.0.2.1:53");
        assert_endpoint_string(&list[1], "[2001:db8::53]:53");
        assert_endpoint_string(&list[2], "192.0.2.3:53");
}
END_TEST

START_TEST(test_resolv_conf_empty)
{
        static const char *const texts[] = {
                "",
                "\n\n",
                "search banger\n",
                "nameserver",
                "nameserver 192.0.2.1.1\n",
                /* An address longer than any valid one. */
                "nameserver 2001:0db8:0000:0000:0000:0000:0000:0001%abcdefghijklmnopqrstuvwxyz\n",
        };

        for (size_t i = 0; i < ELEMENTSOF(texts); i++) {
                _cleanup_free_ DnsEndpoint *list = NULL;
                size_t n = 99;

                ck_assert_int_eq(dns_upstreams_parse_resolv_conf(texts[i], 53, &list, &n), 0);
                ck_assert_msg(n == 0, "'%s' gave %zu entries", texts[i], n);
        }
}
END_TEST

START_TEST(test_resolv_conf_port_and_last_line)
{
        _cleanup_free_ DnsEndpoint *list = NULL;
        size_t n = 0;

        ck_assert_int_eq(dns_upstreams_parse_resolv_conf("nameserver 127.0.0.1", 5300, &list, &n),
                         0);
        ck_assert_uint_eq(n, 1);
        assert_endpoint_string(&list[0], "127.0.0.1:5300");
}
END_TEST

START_TEST(test_upstream_loop)
{
        DnsEndpoint listening[] = { endpoint("10.123.0.1", 53), endpoint("fd00::1", 53) };
        DnsEndpoint any[] = { endpoint("0.0.0.0", 53) };
        DnsEndpoint excluded[] = { endpoint("10.123.0.1", 0), endpoint("10.200.0.1", 0) };
        DnsEndpoint u;

        u = endpoint("10.123.0.1", 53);
        ck_assert(dns_upstream_is_loop(&u, listening, 2, NULL, 0));
        u = endpoint("fd00::1", 53);
        ck_assert(dns_upstream_is_loop(&u, listening, 2, NULL, 0));
        u = endpoint("10.123.0.1", 5353);
        ck_assert(!dns_upstream_is_loop(&u, listening, 2, NULL, 0));
        u = endpoint("192.0.2.1", 53);
        ck_assert(!dns_upstream_is_loop(&u, listening, 2, NULL, 0));

        /* Any port of an excluded address. */
        u = endpoint("10.200.0.1", 5353);
        ck_assert(dns_upstream_is_loop(&u, listening, 2, excluded, 2));
        u = endpoint("10.200.0.2", 53);
        ck_assert(!dns_upstream_is_loop(&u, listening, 2, excluded, 2));

        /* A wildcard socket receives what is sent to loopback. */
        u = endpoint("127.0.0.53", 53);
        ck_assert(dns_upstream_is_loop(&u, any, 1, NULL, 0));
        u = endpoint("::1", 53);
        ck_assert(dns_upstream_is_loop(&u, any, 1, NULL, 0));
        u = endpoint("127.0.0.53", 54);
        ck_assert(!dns_upstream_is_loop(&u, any, 1, NULL, 0));
        u = endpoint("192.0.2.1", 53);
        ck_assert(!dns_upstream_is_loop(&u, any, 1, NULL, 0));
}
END_TEST

static Suite *dns_upstream_suite(void)
{
        Suite *s = suite_create("dns-upstream");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_endpoint_parse);
        tcase_add_test(tc, test_endpoint_parse_invalid);
        tcase_add_test(tc, test_endpoint_kinds);
        tcase_add_test(tc, test_resolv_conf_parse);
        tcase_add_test(tc, test_resolv_conf_empty);
        tcase_add_test(tc, test_resolv_conf_port_and_last_line);
        tcase_add_test(tc, test_upstream_loop);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(dns_upstream_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
