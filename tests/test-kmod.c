#include <check.h>
#include <errno.h>

#include "kmod.h"
#include "strv.h"
#include "test-kernel-fixtures.c"

#define RELEASE  "6.1.0-99-test"
#define VERMAGIC RELEASE " SMP mod_unload modversions "

START_TEST(modinfo_reads_fields)
{
        Buffer b = fixture_module("virtio-net", "virtio_ring,virtio,net-failover", VERMAGIC);
        _cleanup_(modinfo_freep) ModInfo *info = NULL;

        ck_assert_int_eq(modinfo_parse(b.data, b.size, &info), 0);
        ck_assert_str_eq(info->name, "virtio_net");
        ck_assert_str_eq(info->vermagic, VERMAGIC);
        ck_assert_uint_eq(strv_length(info->depends), 3);
        ck_assert_str_eq(info->depends[0], "virtio_ring");
        ck_assert_str_eq(info->depends[1], "virtio");
        ck_assert_str_eq(info->depends[2], "net_failover");
        buffer_free(&b);
}
END_TEST

static const struct {
        const char *depends;
        const char *expected; /* names joined by spaces */
} depends_cases[] = {
        { "", "" }, { ",", "" }, { ",a,,b-c,", "a b_c" }, { "a,a,a", "a" }, { "x", "x" },
};

START_TEST(modinfo_depends_table)
{
        Buffer b = fixture_module("m", depends_cases[_i].depends, NULL);
        _cleanup_(modinfo_freep) ModInfo *info = NULL;
        char joined[256] = "";

        ck_assert_int_eq(modinfo_parse(b.data, b.size, &info), 0);
        for (char **d = info->depends; *d; d++) {
                if (d != info->depends)
                        strcat(joined, " ");
                strcat(joined, *d);
        }
        ck_assert_str_eq(joined, depends_cases[_i].expected);
        ck_assert_ptr_null(info->vermagic);
        buffer_free(&b);
}
END_TEST

START_TEST(modinfo_missing_fields)
{
        Buffer b = fixture_module(NULL, NULL, NULL);
        _cleanup_(modinfo_freep) ModInfo *info = NULL;

        ck_assert_int_eq(modinfo_parse(b.data, b.size, &info), 0);
        ck_assert_ptr_null(info->name);
        ck_assert_ptr_nonnull(info->depends);
        ck_assert_uint_eq(strv_length(info->depends), 0);
        buffer_free(&b);
}
END_TEST

typedef void (*ModuleDamage)(Buffer *b);

static Elf64_Ehdr *ehdr(Buffer *b)
{
        return (Elf64_Ehdr *)b->data;
}
static Elf64_Shdr *shdr(Buffer *b, unsigned i)
{
        return (Elf64_Shdr *)(b->data + ehdr(b)->e_shoff) + i;
}
static void damage_magic(Buffer *b)
{
        b->data[1] = 'X';
}
static void damage_class(Buffer *b)
{
        b->data[EI_CLASS] = ELFCLASS32;
}
static void damage_machine(Buffer *b)
{
        ehdr(b)->e_machine = EM_RISCV;
}
static void damage_shoff(Buffer *b)
{
        ehdr(b)->e_shoff = UINT64_MAX - 8;
}
static void damage_shnum(Buffer *b)
{
        ehdr(b)->e_shnum = 0xffff;
}
static void damage_shstrndx(Buffer *b)
{
        ehdr(b)->e_shstrndx = 9;
}
static void damage_strtab_size(Buffer *b)
{
        shdr(b, 2)->sh_size = UINT64_MAX;
}
static void damage_section_name(Buffer *b)
{
        shdr(b, 1)->sh_name = 0xfffffff0;
}
static void damage_modinfo_offset(Buffer *b)
{
        shdr(b, 1)->sh_offset = b->size - 2;
}
static void damage_modinfo_nobits(Buffer *b)
{
        shdr(b, 1)->sh_type = SHT_NOBITS;
}
static void damage_rename_modinfo(Buffer *b)
{
        /* ".modinfo" in .shstrtab becomes ".modinfx". */
        uint8_t *strtab = b->data + shdr(b, 2)->sh_offset;
        strtab[8] = 'x';
}
static void damage_truncate(Buffer *b)
{
        b->size = 40;
}

static const struct {
        const char *name;
        ModuleDamage damage;
        int expected;
} module_cases[] = {
        { "not ELF", damage_magic, -EMEDIUMTYPE },
        { "32-bit", damage_class, -EBADMSG },
        { "other machine", damage_machine, -EBADMSG },
        { "section table offset overflows", damage_shoff, -EBADMSG },
        { "too many sections", damage_shnum, -EBADMSG },
        { "string table index out of range", damage_shstrndx, -EBADMSG },
        { "string table too long", damage_strtab_size, -EBADMSG },
        { "section name out of range", damage_section_name, -ENOENT },
        { ".modinfo past the end", damage_modinfo_offset, -EBADMSG },
        { ".modinfo without bits", damage_modinfo_nobits, -EBADMSG },
        { "no .modinfo", damage_rename_modinfo, -ENOENT },
        { "truncated header", damage_truncate, -EBADMSG },
};

START_TEST(modinfo_rejects_damage)
{
        Buffer b = fixture_module("m", "a", VERMAGIC);
        _cleanup_(modinfo_freep) ModInfo *info = NULL;
        size_t size;
        int r;

        module_cases[_i].damage(&b);
        size = b.size;
        r = modinfo_parse(b.data, size, &info);
        ck_assert_msg(r == module_cases[_i].expected, "case '%s' gave %d", module_cases[_i].name,
                      r);
        ck_assert_ptr_null(info);
        buffer_free(&b);
}
END_TEST

START_TEST(modinfo_unterminated_last_entry)
{
        Buffer b = fixture_module("m", NULL, NULL);
        _cleanup_(modinfo_freep) ModInfo *info = NULL;
        Elf64_Shdr *modinfo = shdr(&b, 1);

        /* Drop the NUL that ends "name=m", the last entry. */
        modinfo->sh_size -= 1;
        ck_assert_int_eq(modinfo_parse(b.data, b.size, &info), 0);
        ck_assert_str_eq(info->name, "m");
        buffer_free(&b);
}
END_TEST

static const struct {
        const char *path;
        const char *expected; /* NULL: -EINVAL */
} name_cases[] = {
        { "kernel/drivers/virtio/virtio_ring.ko", "virtio_ring" },
        { "virtio-rng.ko.xz", "virtio_rng" },
        { "a/b/c-d.ko.zst", "c_d" },
        { "x.ko.gz", "x" },
        { ".ko", NULL },
        { "modules.builtin", NULL },
        { "foo.ko.bz2", NULL },
        { "foo.kox", NULL },
};

START_TEST(module_name_from_path_table)
{
        _cleanup_free_ char *name = NULL;
        int r = module_name_from_path(name_cases[_i].path, &name);

        if (name_cases[_i].expected) {
                ck_assert_int_eq(r, 0);
                ck_assert_str_eq(name, name_cases[_i].expected);
        } else
                ck_assert_int_eq(r, -EINVAL);
}
END_TEST

/* A modules directory: a <- b <- c (c depends on b, b on a), d depends on the built-in e, x is
 * compressed with xz and depends on a. */
static char *modules_dir_new(void)
{
        char *dir = fixture_tmpdir();
        Buffer x = fixture_module("x", "a", VERMAGIC);
        const char *builtin = "kernel/e/e.ko\nkernel/fs/ext4/ext4.ko\n";

        fixture_write_buffer(dir, "kernel/a/a.ko", fixture_module("a", "", VERMAGIC));
        fixture_write_buffer(dir, "kernel/b/b.ko", fixture_module("b", "a", VERMAGIC));
        fixture_write_buffer(dir, "kernel/c.ko", fixture_module("c", "b,a", VERMAGIC));
        fixture_write_buffer(dir, "kernel/deep/er/d.ko", fixture_module("d", "e", VERMAGIC));
        fixture_write_buffer(dir, "kernel/x.ko.xz", fixture_compress("xz", x.data, x.size));
        fixture_write(dir, "modules.builtin", builtin, strlen(builtin));
        buffer_free(&x);
        return dir;
}

static int resolve(const char *dir, char **requested, const char *release, char ***ret_names,
                   char **ret_error)
{
        _cleanup_(module_index_freep) ModuleIndex *index = NULL;
        _cleanup_strv_free_ char **paths = NULL;
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int r;

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(module_index_load(fd, &index), 0);
        r = module_resolve_load_order(fd, index, requested, release, ret_names, &paths, ret_error);
        if (r == 0)
                ck_assert_uint_eq(strv_length(paths), strv_length(*ret_names));
        close(fd);
        return r;
}

START_TEST(resolve_orders_dependencies_first)
{
        _cleanup_free_ char *dir = modules_dir_new(), *error = NULL;
        _cleanup_strv_free_ char **names = NULL;
        char *requested[] = { "c", "missing", "ext4", "x", "d", "a", NULL };

        ck_assert_int_eq(resolve(dir, requested, RELEASE, &names, &error), 0);
        ck_assert_uint_eq(strv_length(names), 5);
        ck_assert_str_eq(names[0], "a");
        ck_assert_str_eq(names[1], "b");
        ck_assert_str_eq(names[2], "c");
        ck_assert_str_eq(names[3], "x");
        ck_assert_str_eq(names[4], "d");
        ck_assert_int_eq(rm_rf(dir), 0);
}
END_TEST

START_TEST(resolve_reports_missing_dependency)
{
        _cleanup_free_ char *dir = modules_dir_new(), *error = NULL;
        _cleanup_strv_free_ char **names = NULL;
        char *requested[] = { "f", NULL };

        fixture_write_buffer(dir, "kernel/f.ko", fixture_module("f", "a,nothere", VERMAGIC));
        ck_assert_int_eq(resolve(dir, requested, RELEASE, &names, &error), -ENOENT);
        ck_assert_ptr_null(names);
        ck_assert_ptr_nonnull(strstr(error, "'f' depends on 'nothere'"));
        ck_assert_int_eq(rm_rf(dir), 0);
}
END_TEST

START_TEST(resolve_reports_cycle)
{
        _cleanup_free_ char *dir = modules_dir_new(), *error = NULL;
        _cleanup_strv_free_ char **names = NULL;
        char *requested[] = { "p", NULL };

        fixture_write_buffer(dir, "kernel/p.ko", fixture_module("p", "q", VERMAGIC));
        fixture_write_buffer(dir, "kernel/q.ko", fixture_module("q", "p", VERMAGIC));
        ck_assert_int_eq(resolve(dir, requested, RELEASE, &names, &error), -ELOOP);
        ck_assert_ptr_nonnull(strstr(error, "depend on each other"));
        ck_assert_int_eq(rm_rf(dir), 0);
}
END_TEST

START_TEST(resolve_checks_vermagic)
{
        _cleanup_free_ char *dir = modules_dir_new(), *error = NULL;
        _cleanup_strv_free_ char **names = NULL;
        char *requested[] = { "c", NULL };

        ck_assert_int_eq(resolve(dir, requested, "6.1.0-98-test", &names, &error), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(error, "built for kernel '" RELEASE "'"));
        free(error);
        error = NULL;

        /* A release that is a prefix of the module's is still a different kernel. */
        ck_assert_int_eq(resolve(dir, requested, "6.1.0-99", &names, &error), -EBADMSG);
        free(error);
        error = NULL;

        ck_assert_int_eq(resolve(dir, requested, NULL, &names, &error), 0);
        ck_assert_uint_eq(strv_length(names), 3);
        ck_assert_int_eq(rm_rf(dir), 0);
}
END_TEST

START_TEST(resolve_rejects_damaged_module)
{
        _cleanup_free_ char *dir = modules_dir_new(), *error = NULL;
        _cleanup_strv_free_ char **names = NULL;
        char *requested[] = { "g", NULL };

        fixture_write(dir, "kernel/g.ko", "not an ELF file", 15);
        ck_assert_int_eq(resolve(dir, requested, RELEASE, &names, &error), -EMEDIUMTYPE);
        ck_assert_ptr_nonnull(strstr(error, "kernel/g.ko"));
        ck_assert_int_eq(rm_rf(dir), 0);
}
END_TEST

START_TEST(module_read_decompresses)
{
        _cleanup_free_ char *dir = modules_dir_new();
        _cleanup_free_ void *data = NULL;
        Buffer expected = fixture_module("x", "a", VERMAGIC);
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        size_t size;

        ck_assert_int_eq(module_read(fd, "kernel/x.ko.xz", &data, &size), 0);
        ck_assert_uint_eq(size, expected.size);
        ck_assert_mem_eq(data, expected.data, size);

        /* A .ko.xz that is not compressed is rejected, not passed through. */
        fixture_write(dir, "kernel/y.ko.xz", expected.data, expected.size);
        free(data);
        data = NULL;
        ck_assert_int_eq(module_read(fd, "kernel/y.ko.xz", &data, &size), -EBADMSG);
        close(fd);
        buffer_free(&expected);
        ck_assert_int_eq(rm_rf(dir), 0);
}
END_TEST

static Suite *kmod_suite(void)
{
        Suite *s = suite_create("kmod");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, modinfo_reads_fields);
        tcase_add_loop_test(tc, modinfo_depends_table, 0, ELEMENTSOF(depends_cases));
        tcase_add_test(tc, modinfo_missing_fields);
        tcase_add_loop_test(tc, modinfo_rejects_damage, 0, ELEMENTSOF(module_cases));
        tcase_add_test(tc, modinfo_unterminated_last_entry);
        tcase_add_loop_test(tc, module_name_from_path_table, 0, ELEMENTSOF(name_cases));
        tcase_add_test(tc, resolve_orders_dependencies_first);
        tcase_add_test(tc, resolve_reports_missing_dependency);
        tcase_add_test(tc, resolve_reports_cycle);
        tcase_add_test(tc, resolve_checks_vermagic);
        tcase_add_test(tc, resolve_rejects_damaged_module);
        tcase_add_test(tc, module_read_decompresses);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(kmod_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
