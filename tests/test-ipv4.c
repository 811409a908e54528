#include <check.h>
#include <errno.h>
#include <stdlib.h>

#include "ipv4.h"
#include "macro.h"

static Ipv4Net net(const char *s)
{
        Ipv4Net n;

        ck_assert_msg(ipv4_net_parse(s, &n) == 0, "'%s' does not parse", s);
        return n;
}

START_TEST(ipv4_net_parse_valid)
{
        Ipv4Net n;

        ck_assert_int_eq(ipv4_net_parse("10.213.0.0/24", &n), 0);
        ck_assert_uint_eq(n.addr, IPV4_ADDR(10, 213, 0, 0));
        ck_assert_uint_eq(n.prefix, 24);

        ck_assert_int_eq(ipv4_net_parse("0.0.0.0/0", &n), 0);
        ck_assert_uint_eq(n.addr, 0);
        ck_assert_uint_eq(n.prefix, 0);

        ck_assert_int_eq(ipv4_net_parse("255.255.255.255/32", &n), 0);
        ck_assert_uint_eq(n.addr, UINT32_MAX);
        ck_assert_uint_eq(n.prefix, 32);
}
END_TEST

static const char *const bad_nets[] = {
        "10.0.0.1/24", /* host bits set */
        "10.0.0.0/33",  "1.2.3",
        "1.2.3/8",      "1.2.3.4",
        "1.2.3.0/",     "1.2.3.0/-1",
        "1.2.3.0/+8",   "1.2.3.0/024",
        "1.2.3.0/24 ",  " 1.2.3.0/24",
        "1.2.3.0/24/",  "256.0.0.0/8",
        "01.0.0.0/8",   "1..2.0/24",
        "1.2.3.4.0/24", "1.2.3.0/4294967320",
        "a.b.c.d/24",   "",
};

START_TEST(ipv4_net_parse_rejects)
{
        const char *s = bad_nets[_i];
        Ipv4Net n = { .addr = 7, .prefix = 7 };

        ck_assert_msg(ipv4_net_parse(s, &n) == -EINVAL, "'%s' was accepted", s);
        ck_assert_uint_eq(n.addr, 7);
        ck_assert_uint_eq(n.prefix, 7);
}
END_TEST

START_TEST(ipv4_addr_parse_cases)
{
        uint32_t a = 0;

        ck_assert_int_eq(ipv4_addr_parse("192.168.1.200", &a), 0);
        ck_assert_uint_eq(a, IPV4_ADDR(192, 168, 1, 200));
        ck_assert_int_eq(ipv4_addr_parse("0.0.0.0", &a), 0);
        ck_assert_uint_eq(a, 0);

        ck_assert_int_eq(ipv4_addr_parse("1.2.3", &a), -EINVAL);
        ck_assert_int_eq(ipv4_addr_parse("1.2.3.4/32", &a), -EINVAL);
        ck_assert_int_eq(ipv4_addr_parse("1.2.3.256", &a), -EINVAL);
        ck_assert_int_eq(ipv4_addr_parse("1.2.3.4.", &a), -EINVAL);
        ck_assert_int_eq(ipv4_addr_parse("1.2.3.04", &a), -EINVAL);
        ck_assert_int_eq(ipv4_addr_parse("1.2.3.-4", &a), -EINVAL);
        ck_assert_uint_eq(a, 0);
}
END_TEST

START_TEST(ipv4_format_round_trip)
{
        char buf[IPV4_FORMAT_MAX];

        ipv4_format(IPV4_ADDR(255, 255, 255, 255), 32, true, buf);
        ck_assert_str_eq(buf, "255.255.255.255/32");
        ipv4_format(IPV4_ADDR(10, 213, 0, 1), 24, false, buf);
        ck_assert_str_eq(buf, "10.213.0.1");
        ipv4_format(0, 0, true, buf);
        ck_assert_str_eq(buf, "0.0.0.0/0");
}
END_TEST

static const struct {
        const char *a, *b;
        bool overlap;
} overlap_cases[] = {
        { "10.0.0.0/8", "10.213.0.0/24", true },
        { "10.213.0.0/24", "10.0.0.0/8", true },
        { "10.213.0.0/24", "10.213.0.0/24", true },
        { "10.213.0.0/24", "10.213.0.128/25", true },
        { "10.213.0.0/24", "10.213.0.255/32", true },
        { "0.0.0.0/0", "192.168.1.0/24", true },
        { "10.213.0.0/24", "10.213.1.0/24", false },
        { "10.213.0.0/24", "10.212.255.255/32", false },
        { "10.213.0.0/25", "10.213.0.128/25", false },
        { "172.16.0.0/12", "172.32.0.0/16", false },
        { "192.168.0.0/16", "10.0.0.0/8", false },
};

START_TEST(ipv4_net_overlaps_table)
{
        Ipv4Net a = net(overlap_cases[_i].a), b = net(overlap_cases[_i].b);

        ck_assert_msg(ipv4_net_overlaps(&a, &b) == overlap_cases[_i].overlap, "%s and %s",
                      overlap_cases[_i].a, overlap_cases[_i].b);
}
END_TEST

START_TEST(ipv4_net_contains_edges)
{
        Ipv4Net n = net("10.213.0.0/24");

        ck_assert(ipv4_net_contains(&n, IPV4_ADDR(10, 213, 0, 0)));
        ck_assert(ipv4_net_contains(&n, IPV4_ADDR(10, 213, 0, 255)));
        ck_assert(!ipv4_net_contains(&n, IPV4_ADDR(10, 213, 1, 0)));
        ck_assert(!ipv4_net_contains(&n, IPV4_ADDR(10, 212, 255, 255)));
}
END_TEST

START_TEST(ipv4_net_host_and_slots)
{
        Ipv4Net n = net("10.213.0.0/24");

        ck_assert_uint_eq(ipv4_net_host(&n, 1), IPV4_ADDR(10, 213, 0, 1));
        ck_assert_uint_eq(ipv4_net_host(&n, 254), IPV4_ADDR(10, 213, 0, 254));
        ck_assert_uint_eq(ipv4_net_max_slot(&n), 253);

        n = net("10.213.0.0/16");
        ck_assert_uint_eq(ipv4_net_host(&n, 257), IPV4_ADDR(10, 213, 1, 1));
        ck_assert_uint_eq(ipv4_net_max_slot(&n), 65533);

        n = net("10.213.0.0/30");
        ck_assert_uint_eq(ipv4_net_max_slot(&n), 1);
        n = net("10.213.0.0/31");
        ck_assert_uint_eq(ipv4_net_max_slot(&n), 0);
        n = net("10.213.0.0/32");
        ck_assert_uint_eq(ipv4_net_max_slot(&n), 0);
        n = net("0.0.0.0/0");
        ck_assert_uint_eq(ipv4_net_max_slot(&n), UINT32_MAX - 2);
}
END_TEST

START_TEST(ipv4_net_choose_first_candidate)
{
        Ipv4Net used[] = { net("127.0.0.0/8"), net("192.168.1.0/24") }, n;

        ck_assert_int_eq(ipv4_net_choose(NULL, 0, &n), 0);
        ck_assert_uint_eq(n.addr, IPV4_ADDR(10, 213, 0, 0));
        ck_assert_uint_eq(n.prefix, 24);

        ck_assert_int_eq(ipv4_net_choose(used, ELEMENTSOF(used), &n), 0);
        ck_assert_uint_eq(n.addr, IPV4_ADDR(10, 213, 0, 0));
}
END_TEST

START_TEST(ipv4_net_choose_skips_used)
{
        Ipv4Net used[] = { net("10.213.0.5/32"), net("10.231.0.0/16") }, n;

        ck_assert_int_eq(ipv4_net_choose(used, ELEMENTSOF(used), &n), 0);
        ck_assert_uint_eq(n.addr, IPV4_ADDR(10, 147, 0, 0));
        ck_assert_uint_eq(n.prefix, 24);
}
END_TEST

START_TEST(ipv4_net_choose_leaves_10_8)
{
        Ipv4Net used[] = { net("10.0.0.0/8") }, n;

        ck_assert_int_eq(ipv4_net_choose(used, ELEMENTSOF(used), &n), 0);
        ck_assert_uint_eq(n.addr >> 20, IPV4_ADDR(172, 16, 0, 0) >> 20);
}
END_TEST

START_TEST(ipv4_net_choose_all_used)
{
        Ipv4Net used[] = { net("10.0.0.0/8"), net("172.16.0.0/12"), net("192.168.0.0/16") };
        Ipv4Net everything[] = { net("0.0.0.0/0") };
        Ipv4Net n = { .addr = 7, .prefix = 7 };

        ck_assert_int_eq(ipv4_net_choose(used, ELEMENTSOF(used), &n), -EADDRNOTAVAIL);
        ck_assert_int_eq(ipv4_net_choose(everything, 1, &n), -EADDRNOTAVAIL);
        ck_assert_uint_eq(n.addr, 7);
        ck_assert_uint_eq(n.prefix, 7);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("ipv4");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        tcase_add_test(tc, ipv4_net_parse_valid);
        tcase_add_loop_test(tc, ipv4_net_parse_rejects, 0, ELEMENTSOF(bad_nets));
        tcase_add_test(tc, ipv4_addr_parse_cases);
        tcase_add_test(tc, ipv4_format_round_trip);
        tcase_add_loop_test(tc, ipv4_net_overlaps_table, 0, ELEMENTSOF(overlap_cases));
        tcase_add_test(tc, ipv4_net_contains_edges);
        tcase_add_test(tc, ipv4_net_host_and_slots);
        tcase_add_test(tc, ipv4_net_choose_first_candidate);
        tcase_add_test(tc, ipv4_net_choose_skips_used);
        tcase_add_test(tc, ipv4_net_choose_leaves_10_8);
        tcase_add_test(tc, ipv4_net_choose_all_used);
        suite_add_tcase(s, tc);

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
