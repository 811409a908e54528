#include <check.h>
#include <errno.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>

#include "initramfs.h"
#include "kernel-import.h"
#include "test-kernel-fixtures.c"

#define RELEASE "6.1.0-99-test"

static char *dir;

static void setup(void)
{
        dir = fixture_tmpdir();
        fixture_write(dir, "init", "#!init", 6);
        fixture_write(dir, "agent", "agent-binary", 12);
        fixture_write_buffer(dir, "modules/kernel/a.ko", fixture_module("a", "", NULL));
        fixture_write_buffer(dir, "modules/kernel/sub/b-c.ko", fixture_module("b_c", "a", NULL));
}

static void teardown(void)
{
        ck_assert_int_eq(rm_rf(dir), 0);
        free(dir);
}

static Buffer read_file(const char *path)
{
        _cleanup_free_ char *data = NULL;
        size_t size;
        Buffer b = {};

        ck_assert_int_eq(read_full_file(path, 64 << 20, &data, &size), 0);
        buffer_append(&b, data, size);
        return b;
}

static void write_base(const char *path)
{
        _cleanup_free_ char *modules = NULL, *init = NULL, *agent = NULL;
        char *names[] = { "a", "b_c", NULL };
        char *paths[] = { "kernel/a.ko", "kernel/sub/b-c.ko", NULL };
        InitramfsSpec spec;
        int out;

        ck_assert_int_ge(asprintf(&modules, "%s/modules", dir), 0);
        ck_assert_int_ge(asprintf(&init, "%s/init", dir), 0);
        ck_assert_int_ge(asprintf(&agent, "%s/agent", dir), 0);
        spec = (InitramfsSpec){ .init_path = init,
                                .agent_path = agent,
                                .release = RELEASE,
                                .modules_dir_fd = open(modules, O_RDONLY | O_DIRECTORY),
                                .module_names = names,
                                .module_paths = paths };
        ck_assert_int_ge(spec.modules_dir_fd, 0);

        out = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ck_assert_int_ge(out, 0);
        ck_assert_int_eq(initramfs_write(out, &spec), 0);
        close(out);
        close(spec.modules_dir_fd);
}

START_TEST(initramfs_lists_expected_entries)
{
        _cleanup_free_ char *path = NULL;
        const CpioEntry *e;
        CpioListing l;
        Buffer b, module;

        ck_assert_int_ge(asprintf(&path, "%s/initramfs.img", dir), 0);
        write_base(path);
        b = read_file(path);
        ck_assert_uint_eq(b.size % 4, 0);
        /* gzip magic: the cloud kernel is built with CONFIG_RD_GZIP. */
        ck_assert_uint_eq(b.data[0], 0x1f);
        ck_assert_uint_eq(b.data[1], 0x8b);
        cpio_read(b.data, b.size, &l);

        e = cpio_find(&l, "init");
        ck_assert_ptr_nonnull(e);
        ck_assert_uint_eq(e->mode, S_IFREG | 0755);
        ck_assert_uint_eq(e->data.size, 6);
        ck_assert_mem_eq(e->data.data, "#!init", 6);

        e = cpio_find(&l, "banger-agent");
        ck_assert_ptr_nonnull(e);
        ck_assert_uint_eq(e->mode, S_IFREG | 0755);
        ck_assert_mem_eq(e->data.data, "agent-binary", 12);

        e = cpio_find(&l, "dev/console");
        ck_assert_ptr_nonnull(e);
        ck_assert_uint_eq(e->mode, S_IFCHR | 0600);
        ck_assert_uint_eq(e->rdev_major, 5);
        ck_assert_uint_eq(e->rdev_minor, 1);
        e = cpio_find(&l, "dev/null");
        ck_assert_ptr_nonnull(e);
        ck_assert_uint_eq(e->mode, S_IFCHR | 0666);
        ck_assert_uint_eq(e->rdev_major, 1);
        ck_assert_uint_eq(e->rdev_minor, 3);

        for (const char *const *d = (const char *const[]){ "dev", "proc", "sys", "sysroot", "run",
                                                           "tmp", "lib/modules/" RELEASE, NULL };
             *d; d++) {
                e = cpio_find(&l, *d);
                ck_assert_msg(e && e->mode == (S_IFDIR | 0755), "directory '%s' missing", *d);
        }

        module = fixture_module("b_c", "a", NULL);
        e = cpio_find(&l, "lib/modules/" RELEASE "/b_c.ko");
        ck_assert_ptr_nonnull(e);
        ck_assert_uint_eq(e->data.size, module.size);
        ck_assert_mem_eq(e->data.data, module.data, module.size);
        ck_assert_uint_lt(cpio_index(&l, "lib/modules/" RELEASE "/a.ko"),
                          cpio_index(&l, "lib/modules/" RELEASE "/b_c.ko"));

        e = cpio_find(&l, "etc/banger/modules");
        ck_assert_ptr_nonnull(e);
        buffer_append(&((CpioEntry *)e)->data, "", 1);
        ck_assert_str_eq((char *)e->data.data, "/lib/modules/" RELEASE "/a.ko\n"
                                               "/lib/modules/" RELEASE "/b_c.ko\n");

        buffer_free(&module);
        buffer_free(&b);
        cpio_listing_free(&l);
}
END_TEST

START_TEST(initramfs_reports_missing_program)
{
        InitramfsSpec spec = { .init_path = "/nonexistent/banger-init",
                               .agent_path = "/nonexistent/banger-agent",
                               .release = RELEASE,
                               .modules_dir_fd = -1 };
        int out = memfd_create("initramfs", MFD_CLOEXEC);

        ck_assert_int_eq(initramfs_write(out, &spec), -ENOENT);
        close(out);
}
END_TEST

START_TEST(initramfs_vm_appends_config)
{
        _cleanup_free_ char *base = NULL, *vm = NULL;
        static const char config[] = "hostname=dev1\naddress=10.0.0.2/24\n";
        struct stat st;
        CpioListing l;
        const CpioEntry *e;
        Buffer b, v;
        size_t second;

        ck_assert_int_ge(asprintf(&base, "%s/initramfs.img", dir), 0);
        ck_assert_int_ge(asprintf(&vm, "%s/vm.img", dir), 0);
        write_base(base);
        ck_assert_int_eq(initramfs_build_vm(base, config, vm), 0);

        b = read_file(base);
        v = read_file(vm);
        ck_assert_uint_gt(v.size, b.size);
        ck_assert_mem_eq(v.data, b.data, b.size);
        ck_assert_int_eq(stat(vm, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0600);

        /* The second archive starts at the next 4-byte boundary and is plain newc. */
        second = (b.size + 3) & ~(size_t)3;
        ck_assert_mem_eq(v.data + second, "070701", 6);
        ck_assert_uint_eq(v.size % 4, 0);
        cpio_read(v.data + second, v.size - second, &l);
        ck_assert_uint_eq(l.n, 1);
        e = cpio_find(&l, "etc/banger/vm.conf");
        ck_assert_ptr_nonnull(e);
        ck_assert_uint_eq(e->mode, S_IFREG | 0600);
        ck_assert_uint_eq(e->data.size, strlen(config));
        ck_assert_mem_eq(e->data.data, config, strlen(config));

        cpio_listing_free(&l);
        buffer_free(&b);
        buffer_free(&v);
}
END_TEST

START_TEST(initramfs_vm_missing_base_leaves_nothing)
{
        _cleanup_free_ char *vm = NULL, *base = NULL;
        struct stat st;

        ck_assert_int_ge(asprintf(&vm, "%s/vm.img", dir), 0);
        ck_assert_int_ge(asprintf(&base, "%s/absent.img", dir), 0);
        ck_assert_int_eq(initramfs_build_vm(base, "x=1\n", vm), -ENOENT);
        ck_assert_int_eq(stat(vm, &st), -1);
        /* Only the fixtures are left: no temporary file. */
        ck_assert_int_eq(rm_rf(vm), 0);
        ck_assert_int_eq(unlink(base), -1);
}
END_TEST

static Suite *initramfs_suite(void)
{
        Suite *s = suite_create("initramfs");
        TCase *tc = tcase_create("core");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, initramfs_lists_expected_entries);
        tcase_add_test(tc, initramfs_reports_missing_program);
        tcase_add_test(tc, initramfs_vm_appends_config);
        tcase_add_test(tc, initramfs_vm_missing_base_leaves_nothing);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(initramfs_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
