#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "image-pull.h"
#include "macro.h"
#include "oci-ref.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const struct {
        const char *input;
        const char *registry;
        const char *repository;
        const char *tag;
        const char *digest;
        const char *normalized;
} good[] = {
        { "busybox", "docker.io", "library/busybox", "latest", NULL,
          "docker.io/library/busybox:latest" },
        { "busybox:1.36", "docker.io", "library/busybox", "1.36", NULL,
          "docker.io/library/busybox:1.36" },
        { "library/busybox", "docker.io", "library/busybox", "latest", NULL,
          "docker.io/library/busybox:latest" },
        { "docker.io/busybox", "docker.io", "library/busybox", "latest", NULL,
          "docker.io/library/busybox:latest" },
        { "index.docker.io/library/debian:bookworm", "docker.io", "library/debian", "bookworm",
          NULL, "docker.io/library/debian:bookworm" },
        { "user/app:v2", "docker.io", "user/app", "v2", NULL, "docker.io/user/app:v2" },
        { "127.0.0.1:5000/busybox", "127.0.0.1:5000", "busybox", "latest", NULL,
          "127.0.0.1:5000/busybox:latest" },
        { "127.0.0.1:5000/busybox:1", "127.0.0.1:5000", "busybox", "1", NULL,
          "127.0.0.1:5000/busybox:1" },
        { "localhost/a/b/c:x", "localhost", "a/b/c", "x", NULL, "localhost/a/b/c:x" },
        { "localhost:5000/a", "localhost:5000", "a", "latest", NULL, "localhost:5000/a:latest" },
        { "ghcr.io/o-r_g/re.po__x:T_1.0-rc", "ghcr.io", "o-r_g/re.po__x", "T_1.0-rc", NULL,
          "ghcr.io/o-r_g/re.po__x:T_1.0-rc" },
        { "r.example/x@sha256:" HEX64, "r.example", "x", NULL, "sha256:" HEX64,
          "r.example/x@sha256:" HEX64 },
        { "x:1@sha256:" HEX64, "docker.io", "library/x", "1", "sha256:" HEX64,
          "docker.io/library/x:1@sha256:" HEX64 },
        { "[::1]:5000/img", "[::1]:5000", "img", "latest", NULL, "[::1]:5000/img:latest" },
        { "a--b/c", "docker.io", "a--b/c", "latest", NULL, "docker.io/a--b/c:latest" },
};

static const struct {
        const char *input;
        const char *message_part;
} bad[] = {
        { "", "empty" },
        { "Busybox", "repository name" },
        { "busybox:", "tag" },
        { "busybox:-x", "tag" },
        { "busybox:.x", "tag" },
        { "a//b", "repository name" },
        { "a/", "repository name" },
        { "/a", "repository name" },
        { "a_/b", "repository name" },
        { "a___b", "repository name" },
        { "a..b", "repository name" },
        { "a.-b", "repository name" },
        { "127.0.0.1:5000/", "no repository" },
        { "127.0.0.1:99999/x", "registry" },
        { "-bad.io/x", "registry" },
        { "bad-.io/x", "registry" },
        { "bad..io/x", "registry" },
        { "host:port/x", "registry" },
        { "x@sha256:abc", "digest" },
        { "x@sha512:" HEX64, "digest" },
        { "x@sha256:" HEX64 "00", "digest" },
        { "x@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", "digest" },
        { "x y", "repository name" },
        { "x:tag with space", "tag" },
};

START_TEST(ref_parse_good)
{
        _cleanup_(oci_reference_freep) OciReference *ref = NULL;
        _cleanup_free_ char *s = NULL, *normalized = NULL, *error = NULL;

        ck_assert_int_eq(oci_reference_parse(good[_i].input, &ref, &error), 0);
        ck_assert_ptr_null(error);
        ck_assert_str_eq(ref->registry, good[_i].registry);
        ck_assert_str_eq(ref->repository, good[_i].repository);
        ck_assert_pstr_eq(ref->tag, good[_i].tag);
        ck_assert_pstr_eq(ref->digest, good[_i].digest);
        ck_assert_int_eq(oci_reference_to_string(ref, &s), 0);
        ck_assert_str_eq(s, good[_i].normalized);
        ck_assert_int_eq(oci_reference_normalize(good[_i].input, &normalized), 0);
        ck_assert_str_eq(normalized, good[_i].normalized);
}
END_TEST

START_TEST(ref_normalize_idempotent)
{
        _cleanup_free_ char *once = NULL, *twice = NULL;

        ck_assert_int_eq(oci_reference_normalize(good[_i].input, &once), 0);
        ck_assert_int_eq(oci_reference_normalize(once, &twice), 0);
        ck_assert_str_eq(once, twice);
}
END_TEST

START_TEST(ref_parse_bad)
{
        _cleanup_(oci_reference_freep) OciReference *ref = NULL;
        _cleanup_free_ char *error = NULL, *normalized = NULL;

        ck_assert_int_eq(oci_reference_parse(bad[_i].input, &ref, &error), -EINVAL);
        ck_assert_ptr_null(ref);
        ck_assert_ptr_nonnull(error);
        ck_assert_msg(strstr(error, bad[_i].message_part), "'%s': message '%s' lacks '%s'",
                      bad[_i].input, error, bad[_i].message_part);
        ck_assert_int_eq(oci_reference_normalize(bad[_i].input, &normalized), -EINVAL);
        ck_assert_ptr_null(normalized);
}
END_TEST

START_TEST(ref_name_length_limit)
{
        char name[600], tag[200];
        _cleanup_free_ char *normalized = NULL, *error = NULL;
        _cleanup_(oci_reference_freep) OciReference *ref = NULL;

        /* "r.io/" plus 250 characters is exactly 255. */
        strcpy(name, "r.io/");
        memset(name + 5, 'a', 250);
        name[255] = '\0';
        ck_assert_int_eq(oci_reference_normalize(name, &normalized), 0);
        ck_assert_str_eq(normalized + 255, ":latest");

        strcat(name, "a");
        ck_assert_int_eq(oci_reference_parse(name, &ref, &error), -EINVAL);
        ck_assert_ptr_nonnull(strstr(error, "longer than 255"));

        memset(tag, 'x', 128);
        tag[128] = '\0';
        free(normalized);
        normalized = NULL;
        snprintf(name, sizeof(name), "a:%s", tag);
        ck_assert_int_eq(oci_reference_normalize(name, &normalized), 0);
        snprintf(name, sizeof(name), "a:%sx", tag);
        ck_assert_int_eq(oci_reference_normalize(name, NULL), -EINVAL);

        memset(name, 'a', sizeof(name) - 1);
        name[sizeof(name) - 1] = '\0';
        free(error);
        error = NULL;
        ck_assert_int_eq(oci_reference_parse(name, &ref, &error), -EINVAL);
        ck_assert_ptr_nonnull(strstr(error, "too long"));
}
END_TEST

START_TEST(ref_api_host)
{
        _cleanup_(oci_reference_freep) OciReference *hub = NULL, *local = NULL;

        ck_assert_int_eq(oci_reference_parse("busybox", &hub, NULL), 0);
        ck_assert_str_eq(oci_reference_api_host(hub), "registry-1.docker.io");
        ck_assert_int_eq(oci_reference_parse("127.0.0.1:5000/b", &local, NULL), 0);
        ck_assert_str_eq(oci_reference_api_host(local), "127.0.0.1:5000");
}
END_TEST

START_TEST(digest_validity)
{
        ck_assert(oci_digest_is_valid("sha256:" HEX64));
        ck_assert(!oci_digest_is_valid(NULL));
        ck_assert(!oci_digest_is_valid("sha256:"));
        ck_assert(!oci_digest_is_valid("sha256:" HEX64 "a"));
        ck_assert(!oci_digest_is_valid("sha256:g123456789abcdef0123456789abcdef0123456789abcdef"
                                       "0123456789abcdef"));
        ck_assert(!oci_digest_is_valid("md5:" HEX64));
}
END_TEST

static Suite *oci_ref_suite(void)
{
        Suite *s = suite_create("oci-ref");
        TCase *tc = tcase_create("core");

        tcase_add_loop_test(tc, ref_parse_good, 0, ELEMENTSOF(good));
        tcase_add_loop_test(tc, ref_normalize_idempotent, 0, ELEMENTSOF(good));
        tcase_add_loop_test(tc, ref_parse_bad, 0, ELEMENTSOF(bad));
        tcase_add_test(tc, ref_name_length_limit);
        tcase_add_test(tc, ref_api_host);
        tcase_add_test(tc, digest_validity);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(oci_ref_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
