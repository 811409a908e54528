#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "guest-config.h"
#include "macro.h"
#include "strv.h"

static void guest_config_freep(GuestConfig **c)
{
        guest_config_free(*c);
}

START_TEST(test_parse_full)
{
        static const char text[] = "hostname=dev1\n"
                                   "arg=/bin/sh\n"
                                   "arg=-c\n"
                                   "arg=echo a\\tb\\\\c\\nd\\x01\n"
                                   "env=PATH=/usr/bin:/bin\n"
                                   "env=EMPTY=\n"
                                   "\n"
                                   "workdir=/srv/app\n"
                                   "user=1000:1000\n"
                                   "agent_port=org.banger1.agent";
        _cleanup_(guest_config_freep) GuestConfig *c = NULL;

        ck_assert_int_eq(guest_config_parse(text, strlen(text), &c, NULL), 0);
        ck_assert_str_eq(c->hostname, "dev1");
        ck_assert_uint_eq(strv_length(c->argv), 3);
        ck_assert_str_eq(c->argv[0], "/bin/sh");
        ck_assert_str_eq(c->argv[1], "-c");
        ck_assert_str_eq(c->argv[2], "echo a\tb\\c\nd\x01");
        ck_assert_uint_eq(strv_length(c->env), 2);
        ck_assert_str_eq(c->env[0], "PATH=/usr/bin:/bin");
        ck_assert_str_eq(c->env[1], "EMPTY=");
        ck_assert_str_eq(c->workdir, "/srv/app");
        ck_assert_str_eq(c->user, "1000:1000");
        ck_assert_str_eq(c->agent_port, "org.banger1.agent");
}
END_TEST

START_TEST(test_parse_empty)
{
        _cleanup_(guest_config_freep) GuestConfig *c = NULL;

        ck_assert_int_eq(guest_config_parse("", 0, &c, NULL), 0);
        ck_assert_ptr_null(c->hostname);
        ck_assert_ptr_null(c->argv);
        ck_assert_ptr_null(c->env);
        ck_assert_ptr_null(c->workdir);
}
END_TEST

static const struct {
        const char *name;
        const char *text;
        size_t size; /* 0: strlen(text) */
        unsigned line;
} malformed[] = {
        { "missing equals sign", "hostname=a\nhostname\n", 0, 2 },
        { "unknown key", "hostname=a\nshell=/bin/sh\n", 0, 2 },
        { "empty key", "=value\n", 0, 1 },
        { "key with trailing space", "hostname =a\n", 0, 1 },
        { "duplicate hostname", "hostname=a\nhostname=b\n", 0, 2 },
        { "duplicate workdir", "workdir=/\narg=x\nworkdir=/tmp\n", 0, 3 },
        { "duplicate user", "user=a\nuser=b\n", 0, 2 },
        { "duplicate agent_port", "agent_port=a\nagent_port=a\n", 0, 2 },
        { "empty hostname", "hostname=\n", 0, 1 },
        { "hostname over 64 bytes",
          "hostname=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", 0, 1 },
        { "env without equals sign", "env=PATH\n", 0, 1 },
        { "env with empty name", "env==x\n", 0, 1 },
        { "unknown escape", "arg=a\\qb\n", 0, 1 },
        { "trailing backslash", "arg=abc\\\n", 0, 1 },
        { "trailing backslash at end of text", "arg=abc\\", 0, 1 },
        { "short hex escape", "arg=\\x4\n", 0, 1 },
        { "hex escape at end of text", "arg=\\x", 0, 1 },
        { "non-hex digits", "arg=\\xzz\n", 0, 1 },
        { "escaped NUL", "arg=a\\x00b\n", 0, 1 },
        { "raw tab", "arg=a\tb\n", 0, 1 },
        { "raw carriage return", "arg=a\r\n", 0, 1 },
        { "raw DEL", "arg=a\x7f\n", 0, 1 },
        { "NUL byte in value", "arg=ab\0cd\n", 10, 1 },
        { "NUL byte in key", "hostname=x\nar\0g=a\n", 18, 2 },
};

START_TEST(test_parse_malformed)
{
        GuestConfig *c = NULL;
        size_t size = malformed[_i].size ?: strlen(malformed[_i].text);
        unsigned line = 0;
        int r;

        r = guest_config_parse(malformed[_i].text, size, &c, &line);
        ck_assert_msg(r == -EINVAL, "%s: expected -EINVAL, got %d", malformed[_i].name, r);
        ck_assert_msg(line == malformed[_i].line, "%s: expected line %u, got %u",
                      malformed[_i].name, malformed[_i].line, line);
        ck_assert_ptr_null(c);
}
END_TEST

START_TEST(test_parse_line_too_long)
{
        size_t n = 70 * 1024;
        _cleanup_free_ char *text = malloc(n + 16);
        GuestConfig *c = NULL;
        unsigned line = 0;

        ck_assert_ptr_nonnull(text);
        strcpy(text, "hostname=h\narg=");
        memset(text + 15, 'a', n);
        text[15 + n] = '\n';

        ck_assert_int_eq(guest_config_parse(text, n + 16, &c, &line), -EINVAL);
        ck_assert_uint_eq(line, 2);
}
END_TEST

START_TEST(test_parse_text_too_big)
{
        GuestConfig *c = NULL;

        ck_assert_int_eq(guest_config_parse("", GUEST_CONFIG_MAX_SIZE + 1, &c, NULL), -EFBIG);
}
END_TEST

START_TEST(test_format_escapes)
{
        char *argv[] = { (char *)"a\\b", (char *)"new\nline", (char *)"\x1b[0m\t", NULL };
        GuestConfig c = { .hostname = (char *)"h", .argv = argv };
        _cleanup_free_ char *text = NULL;

        ck_assert_int_eq(guest_config_format(&c, &text), 0);
        ck_assert_str_eq(text, "hostname=h\n"
                               "arg=a\\\\b\n"
                               "arg=new\\nline\n"
                               "arg=\\x1b[0m\\t\n");
}
END_TEST

START_TEST(test_format_rejects_invalid)
{
        char *env[] = { (char *)"NOVALUE", NULL };
        GuestConfig bad_env = { .env = env };
        GuestConfig bad_hostname = { .hostname = (char *)"" };
        char *text = NULL;

        ck_assert_int_eq(guest_config_format(&bad_env, &text), -EINVAL);
        ck_assert_int_eq(guest_config_format(&bad_hostname, &text), -EINVAL);
        ck_assert_ptr_null(text);
}
END_TEST

START_TEST(test_round_trip)
{
        char all_bytes[256];
        char *argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)"", all_bytes, NULL };
        char *env[] = { (char *)"A=1", (char *)"B=x=y", (char *)"C=\xc3\xa9\\\n", NULL };
        GuestConfig in = {
                .hostname = (char *)"vm-1",
                .argv = argv,
                .env = env,
                .workdir = (char *)"/w d",
                .user = (char *)"nobody",
                .agent_port = (char *)GUEST_AGENT_PORT_NAME,
        };
        _cleanup_(guest_config_freep) GuestConfig *out = NULL;
        _cleanup_free_ char *text = NULL;

        /* Every byte value except NUL, which strings cannot hold. */
        for (int i = 1; i < 256; i++)
                all_bytes[i - 1] = (char)i;
        all_bytes[255] = '\0';

        ck_assert_int_eq(guest_config_format(&in, &text), 0);
        ck_assert_int_eq(guest_config_parse(text, strlen(text), &out, NULL), 0);

        ck_assert_str_eq(out->hostname, in.hostname);
        ck_assert_uint_eq(strv_length(out->argv), 4);
        for (size_t i = 0; i < 4; i++)
                ck_assert_str_eq(out->argv[i], argv[i]);
        ck_assert_uint_eq(strv_length(out->env), 3);
        for (size_t i = 0; i < 3; i++)
                ck_assert_str_eq(out->env[i], env[i]);
        ck_assert_str_eq(out->workdir, in.workdir);
        ck_assert_str_eq(out->user, in.user);
        ck_assert_str_eq(out->agent_port, in.agent_port);
}
END_TEST

static Suite *guest_config_suite(void)
{
        Suite *s = suite_create("guest-config");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_parse_full);
        tcase_add_test(tc, test_parse_empty);
        tcase_add_loop_test(tc, test_parse_malformed, 0, ELEMENTSOF(malformed));
        tcase_add_test(tc, test_parse_line_too_long);
        tcase_add_test(tc, test_parse_text_too_big);
        tcase_add_test(tc, test_format_escapes);
        tcase_add_test(tc, test_format_rejects_invalid);
        tcase_add_test(tc, test_round_trip);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(guest_config_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
