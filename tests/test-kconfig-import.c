#include <check.h>
#include <dirent.h>
#include <errno.h>

#include "kconfig.h"
#include "kernel-import.h"
#include "strv.h"
#include "test-kernel-fixtures.c"

#define RELEASE  "6.1.0-99-test"
#define VERMAGIC RELEASE " SMP mod_unload modversions "

static char *dir, *tree_dir, *out_dir, *init_path, *agent_path;

static void setup(void)
{
        dir = fixture_tmpdir();
        ck_assert_int_ge(asprintf(&tree_dir, "%s/tree", dir), 0);
        ck_assert_int_ge(asprintf(&out_dir, "%s/out", dir), 0);
        ck_assert_int_eq(mkdir(out_dir, 0755), 0);
        ck_assert_int_ge(asprintf(&init_path, "%s/banger-init", dir), 0);
        ck_assert_int_ge(asprintf(&agent_path, "%s/banger-agent", dir), 0);
        fixture_write(dir, "banger-init", "init", 4);
        fixture_write(dir, "banger-agent", "agent", 5);

        fixture_write_buffer(tree_dir, "boot/vmlinuz-" RELEASE, fixture_bzimage("lz4", RELEASE));
        fixture_write_buffer(tree_dir, "lib/modules/" RELEASE "/kernel/virtio_ring.ko",
                             fixture_module("virtio_ring", "", VERMAGIC));
}

static void teardown(void)
{
        ck_assert_int_eq(rm_rf(dir), 0);
        free(dir);
        free(tree_dir);
        free(out_dir);
        free(init_path);
        free(agent_path);
}

static size_t dir_count(const char *path)
{
        DIR *d = opendir(path);
        struct dirent *de;
        size_t n = 0;

        ck_assert_ptr_nonnull(d);
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        n++;
        closedir(d);
        return n;
}

/* Writes boot/config-RELEASE with every guest option except skip (NULL for none). */
static void config_write(const char *skip)
{
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&text, &size);

        ck_assert_ptr_nonnull(f);
        for (size_t i = 0; kconfig_guest_options[i]; i++)
                if (!skip || !streq(kconfig_guest_options[i], skip))
                        fprintf(f, "%s=%c\n", kconfig_guest_options[i], i % 2 ? 'm' : 'y');
        if (skip)
                fprintf(f, "# %s is not set\n", skip);
        ck_assert_int_eq(fclose(f), 0);
        fixture_write(tree_dir, "boot/config-" RELEASE, text, size);
}

static int import_tree(KernelInfo **ret, char **ret_error)
{
        KernelImportOptions opts = {
                .modules_fd = -EBADF,
                .source_name = "tree",
                .output_dir = out_dir,
                .init_path = init_path,
                .agent_path = agent_path,
        };
        int r;

        opts.source_fd = open(tree_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(opts.source_fd, 0);
        r = kernel_import(&opts, ret, ret_error);
        close(opts.source_fd);
        return r;
}

START_TEST(tree_without_config_imports)
{
        _cleanup_(kernel_info_freep) KernelInfo *info = NULL;
        _cleanup_free_ char *error = NULL;

        ck_assert_msg(import_tree(&info, &error) == 0, "import failed: %s", error);
        ck_assert_str_eq(info->version, RELEASE);
}
END_TEST

START_TEST(tree_with_full_config_imports)
{
        _cleanup_(kernel_info_freep) KernelInfo *info = NULL;
        _cleanup_free_ char *error = NULL;

        config_write(NULL);
        ck_assert_msg(import_tree(&info, &error) == 0, "import failed: %s", error);
        ck_assert_str_eq(info->version, RELEASE);
        ck_assert_uint_eq(dir_count(out_dir), 3);
}
END_TEST

/* Each guest option in turn is left out of the configuration. */
START_TEST(tree_missing_option_rejected)
{
        _cleanup_(kernel_info_freep) KernelInfo *info = NULL;
        _cleanup_free_ char *error = NULL;
        const char *option = kconfig_guest_options[_i];

        config_write(option);
        ck_assert_int_eq(import_tree(&info, &error), -ENOTSUP);
        ck_assert_ptr_null(info);
        ck_assert_ptr_nonnull(error);
        ck_assert_msg(strstr(error, option), "'%s' not named in '%s'", option, error);
        ck_assert_ptr_nonnull(strstr(error, "'tree/boot/config-" RELEASE "'"));
        ck_assert_uint_eq(dir_count(out_dir), 0);
}
END_TEST

static Suite *kconfig_import_suite(void)
{
        Suite *s = suite_create("kconfig-import");
        TCase *tc = tcase_create("tree");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, tree_without_config_imports);
        tcase_add_test(tc, tree_with_full_config_imports);
        tcase_add_loop_test(tc, tree_missing_option_rejected, 0,
                            strv_length((char **)kconfig_guest_options));
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(kconfig_import_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
