#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kconfig.h"
#include "macro.h"
#include "strv.h"

/* A configuration that sets every guest option, in the form Debian's config files use. */
static char *config_full(const char *skip, const char *replacement)
{
        char *text = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&text, &size);

        ck_assert_ptr_nonnull(f);
        fprintf(f, "#\n# Automatically generated file; DO NOT EDIT.\n#\nCONFIG_64BIT=y\n");
        for (size_t i = 0; kconfig_guest_options[i]; i++) {
                if (skip && streq(kconfig_guest_options[i], skip)) {
                        if (replacement)
                                fprintf(f, "%s\n", replacement);
                        continue;
                }
                /* Alternate y and m, because both satisfy the check. */
                fprintf(f, "%s=%c\n", kconfig_guest_options[i], i % 2 ? 'm' : 'y');
        }
        ck_assert_int_eq(fclose(f), 0);
        return text;
}

START_TEST(kconfig_full_config_passes)
{
        _cleanup_free_ char *text = config_full(NULL, NULL), *error = NULL;
        _cleanup_strv_free_ char **missing = NULL;

        ck_assert_int_eq(kconfig_find_missing(text, strlen(text), &missing), 0);
        ck_assert_ptr_nonnull(missing);
        ck_assert_ptr_null(missing[0]);
        ck_assert_int_eq(kconfig_check_guest(text, strlen(text), "config", &error), 0);
        ck_assert_ptr_null(error);
}
END_TEST

/* Each case drops CONFIG_VIRTIO_MMIO and puts the line in its place. */
static const struct {
        const char *line;
        bool missing;
} mmio_cases[] = {
        { NULL, true },
        { "# CONFIG_VIRTIO_MMIO is not set", true },
        { "CONFIG_VIRTIO_MMIO=n", true },
        { "CONFIG_VIRTIO_MMIO=", true },
        { "CONFIG_VIRTIO_MMIO=yes", true },
        { "CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y", true },
        { "XCONFIG_VIRTIO_MMIO=y", true },
        { " CONFIG_VIRTIO_MMIO=y", true },
        { "CONFIG_VIRTIO_MMIO=y", false },
        { "CONFIG_VIRTIO_MMIO=m", false },
        { "CONFIG_VIRTIO_MMIO=m\r", false },
        { "CONFIG_VIRTIO_MMIO=y  ", false },
};

START_TEST(kconfig_mmio_line_table)
{
        _cleanup_free_ char *text = config_full("CONFIG_VIRTIO_MMIO", mmio_cases[_i].line);
        _cleanup_strv_free_ char **missing = NULL;

        ck_assert_int_eq(kconfig_find_missing(text, strlen(text), &missing), 0);
        ck_assert_msg(strv_contains(missing, "CONFIG_VIRTIO_MMIO") == mmio_cases[_i].missing,
                      "line '%s'", strempty(mmio_cases[_i].line));
        ck_assert_uint_eq(strv_length(missing), mmio_cases[_i].missing ? 1 : 0);
}
END_TEST

START_TEST(kconfig_names_every_missing_option)
{
        const char *text = "CONFIG_PVH=y\nCONFIG_ACPI=y\n# CONFIG_VIRTIO_BLK is not set\n";
        _cleanup_strv_free_ char **missing = NULL;
        _cleanup_free_ char *error = NULL;
        size_t n = strv_length((char **)kconfig_guest_options);

        ck_assert_int_eq(kconfig_find_missing(text, strlen(text), &missing), 0);
        ck_assert_uint_eq(strv_length(missing), n - 2);
        ck_assert(!strv_contains(missing, "CONFIG_PVH"));
        ck_assert(!strv_contains(missing, "CONFIG_ACPI"));

        ck_assert_int_eq(kconfig_check_guest(text, strlen(text), "config-6.1", &error), -ENOTSUP);
        ck_assert_ptr_nonnull(error);
        ck_assert_ptr_nonnull(strstr(error, "'config-6.1'"));
        for (char **m = missing; *m; m++)
                ck_assert_msg(strstr(error, *m), "'%s' not named in: %s", *m, error);
}
END_TEST

START_TEST(kconfig_empty_and_unterminated)
{
        _cleanup_strv_free_ char **none = NULL, **cut = NULL;
        _cleanup_free_ char *text = config_full(NULL, NULL);
        size_t n = strv_length((char **)kconfig_guest_options);
        size_t size = strlen(text);

        ck_assert_int_eq(kconfig_find_missing("", 0, &none), 0);
        ck_assert_uint_eq(strv_length(none), n);

        /* Without its final newline the last option still counts, and a size that cuts the
         * last line in half makes it missing. */
        ck_assert_int_eq(kconfig_find_missing(text, size - 1, &cut), 0);
        ck_assert_uint_eq(strv_length(cut), 0);
        cut = strv_free(cut);
        ck_assert_int_eq(kconfig_find_missing(text, size - 3, &cut), 0);
        ck_assert_uint_eq(strv_length(cut), 1);
        ck_assert_str_eq(cut[0], kconfig_guest_options[n - 1]);
}
END_TEST

START_TEST(kconfig_debian_cloud_config)
{
        const char *path = getenv("BANGER_TEST_KERNEL_CONFIG");
        _cleanup_strv_free_ char **missing = NULL;
        _cleanup_free_ char *text = NULL;
        size_t size;
        FILE *f;

        if (!path) {
                fprintf(stderr, "BANGER_TEST_KERNEL_CONFIG is unset, skipping the Debian config "
                                "check: set it to a /boot/config-RELEASE file\n");
                return;
        }
        f = fopen(path, "re");
        ck_assert_ptr_nonnull(f);
        text = malloc(1 << 20);
        ck_assert_ptr_nonnull(text);
        size = fread(text, 1, 1 << 20, f);
        fclose(f);

        ck_assert_int_eq(kconfig_find_missing(text, size, &missing), 0);
        ck_assert_msg(!missing[0], "Debian's config lacks '%s'", strempty(missing[0]));
}
END_TEST

static Suite *kconfig_suite(void)
{
        Suite *s = suite_create("kconfig");
        TCase *tc = tcase_create("check");

        tcase_add_test(tc, kconfig_full_config_passes);
        tcase_add_loop_test(tc, kconfig_mmio_line_table, 0, ELEMENTSOF(mmio_cases));
        tcase_add_test(tc, kconfig_names_every_missing_option);
        tcase_add_test(tc, kconfig_empty_and_unterminated);
        tcase_add_test(tc, kconfig_debian_cloud_config);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(kconfig_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
