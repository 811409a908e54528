#include <check.h>
#include <dirent.h>
#include <errno.h>

#include "bzimage.h"
#include "kernel-import.h"
#include "kmod.h"
#include "strv.h"
#include "test-kernel-fixtures.c"

#define RELEASE  "6.1.0-99-test"
#define VERMAGIC RELEASE " SMP mod_unload modversions "

static char *dir, *out_dir, *init_path, *agent_path;

static void setup(void)
{
        dir = fixture_tmpdir();
        ck_assert_int_ge(asprintf(&out_dir, "%s/out", dir), 0);
        ck_assert_int_eq(mkdir(out_dir, 0755), 0);
        ck_assert_int_ge(asprintf(&init_path, "%s/banger-init", dir), 0);
        ck_assert_int_ge(asprintf(&agent_path, "%s/banger-agent", dir), 0);
        fixture_write(dir, "banger-init", "init", 4);
        fixture_write(dir, "banger-agent", "agent", 5);
}

static void teardown(void)
{
        ck_assert_int_eq(rm_rf(dir), 0);
        free(dir);
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

static void tree_write_modules(const char *root, const char *prefix)
{
        char path[256];

        snprintf(path, sizeof(path), "%s/%s/kernel/drivers/virtio/virtio_ring.ko", prefix, RELEASE);
        fixture_write_buffer(root, path, fixture_module("virtio_ring", "", VERMAGIC));
        snprintf(path, sizeof(path), "%s/%s/kernel/drivers/virtio/virtio.ko", prefix, RELEASE);
        fixture_write_buffer(root, path, fixture_module("virtio", "virtio_ring", VERMAGIC));
        snprintf(path, sizeof(path), "%s/%s/kernel/drivers/net/virtio_net.ko", prefix, RELEASE);
        fixture_write_buffer(root, path,
                             fixture_module("virtio_net", "virtio,virtio_ring", VERMAGIC));
        snprintf(path, sizeof(path), "%s/%s/modules.builtin", prefix, RELEASE);
        fixture_write(root, path, "kernel/drivers/block/virtio_blk.ko\n", 35);
}

static void tree_write(const char *root)
{
        fixture_write_buffer(root, "boot/vmlinuz-" RELEASE, fixture_bzimage("lz4", RELEASE));
        tree_write_modules(root, "lib/modules");
}

static la_ssize_t append_cb(struct archive *a, void *userdata, const void *data, size_t n)
{
        buffer_append(userdata, data, n);
        return n;
}

static void archive_add(struct archive *a, const char *path, const void *data, size_t size)
{
        struct archive_entry *e = archive_entry_new();

        archive_entry_set_pathname(e, path);
        archive_entry_set_mode(e, S_IFREG | 0644);
        archive_entry_set_size(e, size);
        ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
        ck_assert_int_eq(archive_write_data(a, data, size), (la_ssize_t)size);
        archive_entry_free(e);
}

/* Packs the files of tree (relative paths) into data.tar.xz inside a .deb. */
static void deb_write(const char *deb_path, const char *tree, char *const *files)
{
        struct archive *a = archive_write_new();
        Buffer data = {}, deb = {};

        ck_assert_int_eq(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
        ck_assert_int_eq(archive_write_add_filter_xz(a), ARCHIVE_OK);
        ck_assert_int_eq(archive_write_open(a, &data, NULL, append_cb, NULL), ARCHIVE_OK);
        for (char *const *f = files; *f; f++) {
                _cleanup_free_ char *full = NULL, *content = NULL, *name = NULL;
                size_t size;

                ck_assert_int_ge(asprintf(&full, "%s/%s", tree, *f), 0);
                ck_assert_int_eq(read_full_file(full, 64 << 20, &content, &size), 0);
                ck_assert_int_ge(asprintf(&name, "./%s", *f), 0);
                archive_add(a, name, content, size);
        }
        ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
        archive_write_free(a);

        a = archive_write_new();
        ck_assert_int_eq(archive_write_set_format_ar_svr4(a), ARCHIVE_OK);
        ck_assert_int_eq(archive_write_open(a, &deb, NULL, append_cb, NULL), ARCHIVE_OK);
        archive_add(a, "debian-binary", "2.0\n", 4);
        archive_add(a, "control.tar.xz", "", 0);
        archive_add(a, "data.tar.xz", data.data, data.size);
        ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
        archive_write_free(a);

        fixture_write(dir, deb_path, deb.data, deb.size);
        buffer_free(&data);
        buffer_free(&deb);
}

static int import(const char *source, const char *modules, KernelInfo **ret, char **ret_error)
{
        _cleanup_free_ char *full = NULL, *modules_full = NULL;
        KernelImportOptions opts = { .output_dir = out_dir,
                                     .init_path = init_path,
                                     .agent_path = agent_path,
                                     .modules_fd = -EBADF };
        int r;

        ck_assert_int_ge(asprintf(&full, "%s/%s", dir, source), 0);
        opts.source_fd = open(full, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(opts.source_fd, 0);
        opts.source_name = source;
        if (modules) {
                ck_assert_int_ge(asprintf(&modules_full, "%s/%s", dir, modules), 0);
                opts.modules_fd = open(modules_full, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                ck_assert_int_ge(opts.modules_fd, 0);
        }

        r = kernel_import(&opts, ret, ret_error);
        close(opts.source_fd);
        safe_close(opts.modules_fd);
        return r;
}

static Buffer out_read(const char *name)
{
        _cleanup_free_ char *path = NULL, *data = NULL;
        size_t size;
        Buffer b = {};

        ck_assert_int_ge(asprintf(&path, "%s/%s", out_dir, name), 0);
        ck_assert_int_eq(read_full_file(path, 1u << 30, &data, &size), 0);
        buffer_append(&b, data, size);
        return b;
}

/* Checks the outputs of an import of the synthetic kernel with the three synthetic modules. */
static void check_synthetic_outputs(const KernelInfo *info, bool has_bzimage)
{
        Buffer vmlinux = out_read("vmlinux"), initrd = out_read("initramfs.img");
        Buffer expected = fixture_vmlinux(RELEASE, true);
        CpioListing l;
        const CpioEntry *e;
        uint32_t entry;

        ck_assert_str_eq(info->version, RELEASE);
        ck_assert_str_eq(info->name, RELEASE);
        ck_assert_uint_eq(strlen(info->digest), strlen("sha256:") + 64);
        ck_assert(strneq(info->digest, "sha256:", 7));
        ck_assert(info->has_initrd);
        ck_assert_uint_gt(info->created_usec, 0);
        ck_assert_uint_eq(strv_length(info->formats), has_bzimage ? 2 : 1);
        ck_assert_str_eq(info->formats[0], "vmlinux");
        if (has_bzimage)
                ck_assert_str_eq(info->formats[1], "bzImage");
        ck_assert_uint_eq(strv_length(info->modules), 3);
        ck_assert_str_eq(info->modules[0], "virtio_ring");
        ck_assert_str_eq(info->modules[1], "virtio");
        ck_assert_str_eq(info->modules[2], "virtio_net");

        ck_assert_uint_eq(vmlinux.size, expected.size);
        ck_assert_mem_eq(vmlinux.data, expected.data, expected.size);
        ck_assert_int_eq(vmlinux_find_pvh_entry(vmlinux.data, vmlinux.size, &entry), 0);

        cpio_read(initrd.data, initrd.size, &l);
        ck_assert_ptr_nonnull(cpio_find(&l, "init"));
        ck_assert_ptr_nonnull(cpio_find(&l, "banger-agent"));
        e = cpio_find(&l, "etc/banger/modules");
        ck_assert_ptr_nonnull(e);
        buffer_append(&((CpioEntry *)e)->data, "", 1);
        ck_assert_str_eq((char *)e->data.data, "/lib/modules/" RELEASE "/virtio_ring.ko\n"
                                               "/lib/modules/" RELEASE "/virtio.ko\n"
                                               "/lib/modules/" RELEASE "/virtio_net.ko\n");

        ck_assert_uint_eq(dir_count(out_dir), has_bzimage ? 3 : 2);
        cpio_listing_free(&l);
        buffer_free(&vmlinux);
        buffer_free(&initrd);
        buffer_free(&expected);
}

START_TEST(import_from_deb)
{
        _cleanup_(kernel_info_freep) KernelInfo *info = NULL;
        _cleanup_free_ char *error = NULL, *tree = NULL;
        char *files[] = { "boot/vmlinuz-" RELEASE,
                          "lib/modules/" RELEASE "/kernel/drivers/virtio/virtio_ring.ko",
                          "lib/modules/" RELEASE "/kernel/drivers/virtio/virtio.ko",
                          "lib/modules/" RELEASE "/kernel/drivers/net/virtio_net.ko",
                          "lib/modules/" RELEASE "/modules.builtin",
                          NULL };

        ck_assert_int_ge(asprintf(&tree, "%s/tree", dir), 0);
        tree_write(tree);
        deb_write("linux-image.deb", tree, files);

        ck_assert_int_eq(import("linux-image.deb", NULL, &info, &error), 0);
        ck_assert_ptr_null(error);
        ck_assert_str_eq(info->source, "linux-image.deb");
        check_synthetic_outputs(info, true);
}
END_TEST

/* The package's boot/config-RELEASE is checked like an unpacked tree's. */
START_TEST(deb_config_missing_option_rejected)
{
        _cleanup_(kernel_info_freep) KernelInfo *info = NULL;
        _cleanup_free_ char *error = NULL, *tree = NULL;
        const char config[] = "CONFIG_EXT4_FS=y\n# CONFIG_VIRTIO_BLK is not set\n";
        char *files[] = { "boot/vmlinuz-" RELEASE, "boot/config-" RELEASE,
                          "lib/modules/" RELEASE "/kernel/drivers/virtio/virtio_ring.ko",
                          "lib/modules/" RELEASE "/modules.builtin", NULL };

        ck_assert_int_ge(asprintf(&tree, "%s/tree", dir), 0);
        tree_write(tree);
        fixture_write(tree, "boot/config-" RELEASE, config, strlen(config));
        deb_write("linux-image.deb", tree, files);

        ck_assert_int_eq(import("linux-image.deb", NULL, &info, &error), -ENOTSUP);
        ck_assert_ptr_null(info);
        ck_assert_ptr_nonnull(error);
        ck_assert_msg(strstr(error, "CONFIG_VIRTIO_BLK"), "option not named in '%s'", error);
        ck_assert_msg(strstr(error, "config-" RELEASE), "config file not named in '%s'", error);
}
END_TEST

START_TEST(import_from_tree)
{
        _cleanup_(kernel_info_freep) KernelInfo *info = NULL;
        _cleanup_free_ char *error = NULL, *tree = NULL;

        ck_assert_int_ge(asprintf(&tree, "%s/tree", dir), 0);
        fixture_write_buffer(tree, "boot/vmlinuz-" RELEASE, fixture_bzimage("zstd", RELEASE));
        /* A merged-/usr tree keeps its modules under usr/lib/modules. */
        tree_write_modules(tree, "usr/lib/modules");

        ck_assert_int_eq(import("tree", NULL, &info, &error), 0);
        check_synthetic_outputs(info, true);
}
END_TEST

START_TEST(import_bare_bzimage_with_modules)
{
        _cleanup_(kernel_info_freep) KernelInfo *info = NULL;
        _cleanup_free_ char *error = NULL, *tree = NULL;

        ck_assert_int_ge(asprintf(&tree, "%s/tree", dir), 0);
        tree_write(tree);
        ck_assert_int_eq(
                import("tree/boot/vmlinuz-" RELEASE, "tree/lib/modules/" RELEASE, &info, &error),
                0);
        check_synthetic_outputs(info, true);
}
END_TEST

START_TEST(import_bare_vmlinux_with_modules)
{
        _cleanup_(kernel_info_freep) KernelInfo *info = NULL;
        _cleanup_free_ char *error = NULL, *tree = NULL;

        ck_assert_int_ge(asprintf(&tree, "%s/tree", dir), 0);
        tree_write(tree);
        fixture_write_buffer(dir, "vmlinux", fixture_vmlinux(RELEASE, true));
        ck_assert_int_eq(import("vmlinux", "tree/lib/modules/" RELEASE, &info, &error), 0);
        check_synthetic_outputs(info, false);
}
END_TEST

START_TEST(import_without_modules_dir)
{
        _cleanup_(kernel_info_freep) KernelInfo *info = NULL;
        _cleanup_free_ char *error = NULL;
        CpioListing l;
        Buffer initrd;

        fixture_write_buffer(dir, "bzImage", fixture_bzimage("gzip", RELEASE));
        ck_assert_int_eq(import("bzImage", NULL, &info, &error), 0);
        ck_assert_uint_eq(strv_length(info->modules), 0);

        initrd = out_read("initramfs.img");
        cpio_read(initrd.data, initrd.size, &l);
        ck_assert_uint_eq(cpio_find(&l, "etc/banger/modules")->data.size, 0);
        cpio_listing_free(&l);
        buffer_free(&initrd);
}
END_TEST

START_TEST(kernel_info_json_round_trip)
{
        _cleanup_(kernel_info_freep) KernelInfo *info = NULL, *back = NULL;
        _cleanup_free_ char *error = NULL, *json = NULL, *json2 = NULL;

        fixture_write_buffer(dir, "bzImage", fixture_bzimage("bzip2", RELEASE));
        ck_assert_int_eq(import("bzImage", NULL, &info, &error), 0);
        ck_assert_int_eq(kernel_info_to_json(info, &json), 0);
        ck_assert_int_eq(kernel_info_from_json(json, &back), 0);

        ck_assert_str_eq(back->name, info->name);
        ck_assert_str_eq(back->version, info->version);
        ck_assert_str_eq(back->source, info->source);
        ck_assert_str_eq(back->digest, info->digest);
        ck_assert_int_eq(back->has_initrd, info->has_initrd);
        ck_assert_uint_eq(back->created_usec, info->created_usec);
        ck_assert_uint_eq(strv_length(back->formats), 2);
        ck_assert_uint_eq(strv_length(back->modules), 0);
        ck_assert_int_eq(kernel_info_to_json(back, &json2), 0);
        ck_assert_str_eq(json, json2);
}
END_TEST

static const struct {
        const char *json;
        int expected;
} json_cases[] = {
        { "", -EBADMSG },
        { "[]", -EBADMSG },
        { "{\"name\":\"a\",\"version\":\"1\"}", -EBADMSG },
        { "{\"name\":1,\"version\":\"1\",\"digest\":\"d\"}", -EBADMSG },
        { "{\"name\":\"a\",\"version\":\"1\",\"digest\":\"d\",\"formats\":[1]}", -EBADMSG },
        { "{\"name\":\"a\",\"version\":\"1\",\"digest\":\"d\",\"has_initrd\":\"yes\"}", -EBADMSG },
        { "{\"name\":\"a\",\"version\":\"1\",\"digest\":\"d\"}", 0 },
};

START_TEST(kernel_info_json_rejects_invalid)
{
        _cleanup_(kernel_info_freep) KernelInfo *info = NULL;

        ck_assert_int_eq(kernel_info_from_json(json_cases[_i].json, &info),
                         json_cases[_i].expected);
        if (json_cases[_i].expected == 0)
                ck_assert_uint_eq(strv_length(info->formats), 0);
}
END_TEST

static void make_text(void)
{
        fixture_write(dir, "source", "just some notes\n", 16);
}
static void make_empty(void)
{
        fixture_write(dir, "source", "", 0);
}
static void make_truncated_bzimage(void)
{
        Buffer b = fixture_bzimage("lz4", RELEASE);

        b.size -= 120;
        fixture_write_buffer(dir, "source", b);
}
static void make_corrupt_payload(void)
{
        Buffer b = fixture_bzimage("xz", RELEASE);

        memset(b.data + FIXTURE_SETUP_SIZE + FIXTURE_PAYLOAD_OFFSET + 40, 0, 40);
        fixture_write_buffer(dir, "source", b);
}
static void make_vmlinux_without_pvh(void)
{
        fixture_write_buffer(dir, "source", fixture_vmlinux(RELEASE, false));
}
static void make_arm64_elf(void)
{
        Buffer b = fixture_vmlinux(RELEASE, true);

        ((Elf64_Ehdr *)b.data)->e_machine = EM_AARCH64;
        fixture_write_buffer(dir, "source", b);
}
static void make_plain_ar(void)
{
        fixture_write(dir, "source",
                      "!<arch>\nnotes.txt/      0           0     0     644     "
                      "4         `\nabc\n",
                      72);
}
static void make_tree_without_boot(void)
{
        ck_assert_int_eq(mkdir_p(dir, 0755), 0);
        fixture_write(dir, "source/readme", "x", 1);
}
static void make_tree_with_two_kernels(void)
{
        fixture_write_buffer(dir, "source/boot/vmlinuz-" RELEASE, fixture_bzimage("gzip", RELEASE));
        fixture_write_buffer(dir, "source/boot/vmlinuz-6.1.0-98-test",
                             fixture_bzimage("gzip", "6.1.0-98-test"));
}
static void make_tree_without_modules(void)
{
        fixture_write_buffer(dir, "source/boot/vmlinuz-" RELEASE, fixture_bzimage("gzip", RELEASE));
}

static const struct {
        const char *name;
        void (*make)(void);
        int expected;
        const char *message;
} reject_cases[] = {
        { "text file", make_text, -EMEDIUMTYPE,
          "'source' is not a Linux kernel: pass a bzImage, a vmlinux or a kernel .deb" },
        { "empty file", make_empty, -EMEDIUMTYPE,
          "'source' is not a Linux kernel: pass a bzImage, a vmlinux or a kernel .deb" },
        { "truncated bzImage", make_truncated_bzimage, -EBADMSG,
          "'source' is a truncated bzImage" },
        { "corrupt payload", make_corrupt_payload, -EBADMSG,
          "'source' is a bzImage whose compressed payload is damaged" },
        { "vmlinux without PVH note", make_vmlinux_without_pvh, -ENOEXEC,
          "'source' has no PVH entry point" },
        { "arm64 ELF", make_arm64_elf, -EBADMSG,
          "'source' is an ELF file but not an x86-64 vmlinux" },
        { "ar archive that is no package", make_plain_ar, -EMEDIUMTYPE,
          "'source' is not a Linux kernel" },
        { "tree without boot", make_tree_without_boot, -EMEDIUMTYPE,
          "'source' is not a Linux kernel" },
        { "tree with two kernels", make_tree_with_two_kernels, -ENOTUNIQ,
          "'source' contains several kernels" },
        { "tree without modules", make_tree_without_modules, -ENOENT,
          "'source' has no lib/modules/" RELEASE },
};

START_TEST(import_rejects_bad_sources)
{
        _cleanup_(kernel_info_freep) KernelInfo *info = NULL;
        _cleanup_free_ char *error = NULL;

        reject_cases[_i].make();
        ck_assert_msg(import("source", NULL, &info, &error) == reject_cases[_i].expected,
                      "case '%s': %s", reject_cases[_i].name, error);
        ck_assert_ptr_null(info);
        ck_assert_ptr_nonnull(error);
        ck_assert_msg(strstr(error, reject_cases[_i].message), "case '%s' message: %s",
                      reject_cases[_i].name, error);
        /* Nothing is left behind in the output directory, no temporary files either. */
        ck_assert_uint_eq(dir_count(out_dir), 0);
}
END_TEST

START_TEST(import_rejects_missing_dependency)
{
        _cleanup_(kernel_info_freep) KernelInfo *info = NULL;
        _cleanup_free_ char *error = NULL, *tree = NULL;

        ck_assert_int_ge(asprintf(&tree, "%s/tree", dir), 0);
        tree_write(tree);
        free(tree);
        ck_assert_int_ge(asprintf(&tree,
                                  "%s/tree/lib/modules/" RELEASE
                                  "/kernel/drivers/virtio/virtio_ring.ko",
                                  dir),
                         0);
        ck_assert_int_eq(unlink(tree), 0);
        ck_assert_int_eq(import("tree", NULL, &info, &error), -ENOENT);
        ck_assert_ptr_nonnull(strstr(error, "'virtio' depends on 'virtio_ring'"));
        ck_assert_uint_eq(dir_count(out_dir), 0);
}
END_TEST

START_TEST(import_checks_name)
{
        _cleanup_(kernel_info_freep) KernelInfo *info = NULL;
        _cleanup_free_ char *error = NULL, *full = NULL;
        KernelImportOptions opts = { .output_dir = out_dir,
                                     .init_path = init_path,
                                     .agent_path = agent_path,
                                     .modules_fd = -EBADF,
                                     .source_name = "bzImage",
                                     .name = "../escape" };

        fixture_write_buffer(dir, "bzImage", fixture_bzimage("gzip", RELEASE));
        ck_assert_int_ge(asprintf(&full, "%s/bzImage", dir), 0);
        opts.source_fd = open(full, O_RDONLY | O_CLOEXEC);
        ck_assert_int_eq(kernel_import(&opts, &info, &error), -EINVAL);
        ck_assert_ptr_nonnull(error);

        free(error);
        error = NULL;
        opts.name = "cloud-6.1";
        ck_assert_int_eq(kernel_import(&opts, &info, &error), 0);
        ck_assert_str_eq(info->name, "cloud-6.1");
        ck_assert_str_eq(info->version, RELEASE);
        close(opts.source_fd);
}
END_TEST

/* The real Debian kernel, from the .deb named by BANGER_TEST_KERNEL_DEB. */

static bool real_kernel_available(void)
{
        if (getenv("BANGER_TEST_KERNEL_DEB"))
                return true;
        fprintf(stderr, "BANGER_TEST_KERNEL_DEB is unset, skipping the real kernel tests: set it "
                        "to a linux-image-*-cloud-amd64 .deb (integration/fetch-kernel.sh "
                        "prints one)\n");
        return false;
}

static void check_real_outputs(const KernelInfo *info)
{
        Buffer vmlinux = out_read("vmlinux"), initrd = out_read("initramfs.img");
        char *const required[] = { "virtio_mmio", "virtio_blk", "virtio_net", "virtio_console",
                                   NULL };
        const CpioEntry *list;
        CpioListing l;
        uint32_t entry;
        size_t n_modules;

        ck_assert_int_eq(vmlinux_check(vmlinux.data, vmlinux.size), 0);
        ck_assert_int_eq(vmlinux_find_pvh_entry(vmlinux.data, vmlinux.size, &entry), 0);
        ck_assert_uint_ne(entry, 0);
        ck_assert(strv_contains(info->formats, "bzImage"));
        for (char *const *m = required; *m; m++)
                ck_assert_msg(strv_contains(info->modules, *m), "module '%s' missing", *m);

        cpio_read(initrd.data, initrd.size, &l);
        ck_assert_ptr_nonnull(cpio_find(&l, "init"));
        ck_assert_ptr_nonnull(cpio_find(&l, "banger-agent"));
        list = cpio_find(&l, "etc/banger/modules");
        ck_assert_ptr_nonnull(list);

        /* Every module comes after the modules its .modinfo names as dependencies. */
        n_modules = strv_length(info->modules);
        for (size_t i = 0; i < n_modules; i++) {
                _cleanup_(modinfo_freep) ModInfo *mi = NULL;
                char path[256];
                const CpioEntry *e;
                size_t index;

                snprintf(path, sizeof(path), "lib/modules/%s/%s.ko", info->version,
                         info->modules[i]);
                e = cpio_find(&l, path);
                ck_assert_msg(e != NULL, "'%s' missing from the initramfs", path);
                ck_assert_ptr_nonnull(strstr((char *)list->data.data, path));
                ck_assert_int_eq(modinfo_parse(e->data.data, e->data.size, &mi), 0);
                index = cpio_index(&l, path);
                for (char **d = mi->depends; *d; d++) {
                        snprintf(path, sizeof(path), "lib/modules/%s/%s.ko", info->version, *d);
                        ck_assert_msg(cpio_index(&l, path) < index,
                                      "'%s' is loaded after '%s' that needs it", *d,
                                      info->modules[i]);
                }
        }

        cpio_listing_free(&l);
        buffer_free(&vmlinux);
        buffer_free(&initrd);
}

static int import_real(const char *source, const char *modules, KernelInfo **ret)
{
        _cleanup_free_ char *error = NULL;
        KernelImportOptions opts = { .output_dir = out_dir,
                                     .init_path = init_path,
                                     .agent_path = agent_path,
                                     .source_name = source };
        int r;

        opts.source_fd = open(source, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(opts.source_fd, 0);
        opts.modules_fd = modules ? open(modules, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -EBADF;
        r = kernel_import(&opts, ret, &error);
        ck_assert_msg(r == 0, "import of '%s' failed: %s", source, error);
        close(opts.source_fd);
        safe_close(opts.modules_fd);
        return r;
}

START_TEST(real_kernel_from_deb)
{
        _cleanup_(kernel_info_freep) KernelInfo *info = NULL;

        if (!real_kernel_available())
                return;
        import_real(getenv("BANGER_TEST_KERNEL_DEB"), NULL, &info);
        ck_assert_uint_eq(dir_count(out_dir), 3);
        check_real_outputs(info);
}
END_TEST

START_TEST(real_kernel_from_tree_and_bare)
{
        _cleanup_(kernel_info_freep) KernelInfo *info = NULL, *bare = NULL;
        _cleanup_free_ char *cmd = NULL, *tree = NULL, *kernel = NULL, *modules = NULL;
        Buffer first;

        if (!real_kernel_available())
                return;
        ck_assert_int_ge(asprintf(&tree, "%s/tree", dir), 0);
        ck_assert_int_ge(
                asprintf(&cmd, "dpkg -x '%s' '%s'", getenv("BANGER_TEST_KERNEL_DEB"), tree), 0);
        ck_assert_int_eq(system(cmd), 0);

        import_real(tree, NULL, &info);
        check_real_outputs(info);
        first = out_read("vmlinux");
        ck_assert_int_eq(rm_rf(out_dir), 0);
        ck_assert_int_eq(mkdir(out_dir, 0755), 0);

        ck_assert_int_ge(asprintf(&kernel, "%s/boot/vmlinuz-%s", tree, info->version), 0);
        ck_assert_int_ge(asprintf(&modules, "%s/lib/modules/%s", tree, info->version), 0);
        import_real(kernel, modules, &bare);
        check_real_outputs(bare);
        /* The release from the header's kernel_version string matches the file name. */
        ck_assert_str_eq(bare->version, info->version);
        ck_assert_str_eq(bare->digest, info->digest);
        ck_assert_int_eq(strv_length(bare->modules), strv_length(info->modules));
        buffer_free(&first);
}
END_TEST

static Suite *kernel_import_suite(void)
{
        Suite *s = suite_create("kernel-import");
        TCase *tc = tcase_create("synthetic"), *real = tcase_create("real");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, import_from_deb);
        tcase_add_test(tc, deb_config_missing_option_rejected);
        tcase_add_test(tc, import_from_tree);
        tcase_add_test(tc, import_bare_bzimage_with_modules);
        tcase_add_test(tc, import_bare_vmlinux_with_modules);
        tcase_add_test(tc, import_without_modules_dir);
        tcase_add_test(tc, kernel_info_json_round_trip);
        tcase_add_loop_test(tc, kernel_info_json_rejects_invalid, 0, ELEMENTSOF(json_cases));
        tcase_add_loop_test(tc, import_rejects_bad_sources, 0, ELEMENTSOF(reject_cases));
        tcase_add_test(tc, import_rejects_missing_dependency);
        tcase_add_test(tc, import_checks_name);
        suite_add_tcase(s, tc);

        tcase_add_checked_fixture(real, setup, teardown);
        tcase_add_test(real, real_kernel_from_deb);
        tcase_add_test(real, real_kernel_from_tree_and_bare);
        suite_add_tcase(s, real);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(kernel_import_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
