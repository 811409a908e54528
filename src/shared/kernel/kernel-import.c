#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bzimage.h"
#include "deb.h"
#include "fileio.h"
#include "initramfs.h"
#include "kconfig.h"
#include "kernel-import.h"
#include "kernel-util.h"
#include "kmod.h"
#include "log.h"
#include "macro.h"
#include "name.h"
#include "strv.h"

/* Modules the guest loads, in this order, when the kernel has them as modules: virtio-mmio
 * transport, disks, network, the console and agent channel, vsock, and the ACPI power button
 * that turns QMP system_powerdown into a clean shutdown. */
static char *const guest_modules[] = {
        "virtio_ring", "virtio",
        "virtio_mmio", "virtio_blk",
        "failover",    "net_failover",
        "virtio_net",  "virtio_console",
        "vsock",       "vmw_vsock_virtio_transport",
        "button",      "evdev",
        NULL,
};

/* A vmlinux is tens of MiB, so this limit only bounds what a damaged or hostile bzImage can
 * make banger write. */
#define VMLINUX_MAX_SIZE (UINT64_C(1) << 30)

static const char *const output_names[] = { "vmlinux", "bzImage", "initramfs.img" };
enum { OUTPUT_VMLINUX, OUTPUT_BZIMAGE, OUTPUT_INITRAMFS, _OUTPUT_MAX };

typedef struct Import {
        const KernelImportOptions *opts;
        const char *source_name;
        int output_fd;
        char *temp_names[_OUTPUT_MAX]; /* temporary file of each output, NULL when not written */
        bool published[_OUTPUT_MAX];
        char *release;
        char **module_names;
        char *digest;
        char **error;
} Import;

static void import_done(Import *im, bool success)
{
        for (size_t i = 0; i < _OUTPUT_MAX; i++) {
                if (!success && im->published[i])
                        (void)unlinkat(im->output_fd, output_names[i], 0);
                if (im->temp_names[i] && !im->published[i])
                        (void)unlinkat(im->output_fd, im->temp_names[i], 0);
                free(im->temp_names[i]);
        }
        free(im->release);
        free(im->digest);
        strv_free(im->module_names);
        safe_close(im->output_fd);
}

/* Creates the temporary file for one output and returns a writable fd. */
static int output_create(Import *im, unsigned which)
{
        char name[64];
        uint32_t rnd;
        int fd;

        if (getentropy(&rnd, sizeof(rnd)) < 0)
                return negative_errno();
        snprintf(name, sizeof(name), ".#%s.%08x", output_names[which], rnd);

        fd = openat(im->output_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
                return error_set(im->error, negative_errno(), "Failed to create '%s/%s': %s",
                                 im->opts->output_dir, name, strerror(errno));
        im->temp_names[which] = strdup(name);
        if (!im->temp_names[which]) {
                (void)unlinkat(im->output_fd, name, 0);
                safe_close(fd);
                return -ENOMEM;
        }
        return fd;
}

static int output_publish_all(Import *im)
{
        for (size_t i = 0; i < _OUTPUT_MAX; i++) {
                if (!im->temp_names[i])
                        continue;
                if (renameat(im->output_fd, im->temp_names[i], im->output_fd, output_names[i]) < 0)
                        return error_set(im->error, negative_errno(),
                                         "Failed to rename '%s' in '%s': %s", output_names[i],
                                         im->opts->output_dir, strerror(errno));
                im->published[i] = true;
        }
        return fsync(im->output_fd) < 0 ? negative_errno() : 0;
}

static int sha256_digest(const void *data, size_t size, char **ret)
{
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned md_size;
        char *hex;

        if (EVP_Digest(data, size, md, &md_size, EVP_sha256(), NULL) != 1)
                return -EIO;

        hex = malloc(strlen("sha256:") + md_size * 2 + 1);
        if (!hex)
                return -ENOMEM;
        strcpy(hex, "sha256:");
        for (unsigned i = 0; i < md_size; i++)
                sprintf(hex + 7 + i * 2, "%02x", md[i]);
        *ret = hex;
        return 0;
}

static int import_message_kernel_error(Import *im, int r, const char *kind)
{
        const char *name = im->source_name;

        switch (r) {
        case -EMEDIUMTYPE:
                return error_set(im->error, r,
                                 "'%s' is not a Linux kernel: pass a bzImage, a vmlinux or a "
                                 "kernel .deb",
                                 name);
        case -EPROTONOSUPPORT:
                return error_set(im->error, r,
                                 "'%s' uses an x86 boot protocol older than 2.08: pass a kernel "
                                 "from Linux 2.6.26 or later",
                                 name);
        case -EFBIG:
                return error_set(im->error, r,
                                 "'%s' decompresses to more than 1 GiB: pass a real kernel", name);
        case -EBADMSG:
                if (streq(kind, "header"))
                        return error_set(im->error, r,
                                         "'%s' is a truncated bzImage: its payload ends past "
                                         "the end of the file, copy the file again",
                                         name);
                if (streq(kind, "payload"))
                        return error_set(im->error, r,
                                         "'%s' is a bzImage whose compressed payload is damaged "
                                         "or is not an x86-64 vmlinux: copy the file again",
                                         name);
                return error_set(im->error, r,
                                 "'%s' is an ELF file but not an x86-64 vmlinux executable: "
                                 "pass an x86-64 kernel",
                                 name);
        default:
                return error_set(im->error, r, "Failed to read kernel '%s': %s", name,
                                 strerror(-r));
        }
}

/* Writes bzImage and vmlinux from a bzImage. */
static int import_bzimage(Import *im, const MappedFile *kernel)
{
        _cleanup_close_ int bz_fd = -EBADF, vm_fd = -EBADF;
        int r;

        bz_fd = output_create(im, OUTPUT_BZIMAGE);
        if (bz_fd < 0)
                return bz_fd;
        r = write_full(bz_fd, kernel->data, kernel->size);
        if (r >= 0 && fsync(bz_fd) < 0)
                r = negative_errno();
        if (r < 0)
                return error_set(im->error, r, "Failed to write '%s/bzImage': %s",
                                 im->opts->output_dir, strerror(-r));

        vm_fd = output_create(im, OUTPUT_VMLINUX);
        if (vm_fd < 0)
                return vm_fd;
        r = bzimage_extract_vmlinux(kernel->data, kernel->size, vm_fd, VMLINUX_MAX_SIZE, NULL);
        if (r < 0)
                return import_message_kernel_error(im, r, "payload");
        if (fsync(vm_fd) < 0)
                return negative_errno();

        if (!im->release && bzimage_kernel_release(kernel->data, kernel->size, &im->release) < 0)
                log_debug("bzImage '%s' has no kernel_version string", im->source_name);
        return 0;
}

static int import_vmlinux_copy(Import *im, const MappedFile *kernel)
{
        _cleanup_close_ int fd = -EBADF;
        uint32_t entry;
        int r;

        if (vmlinux_find_pvh_entry(kernel->data, kernel->size, &entry) < 0)
                return error_set(im->error, -ENOEXEC,
                                 "'%s' has no PVH entry point (ELF note 'Xen' of type 18), so it "
                                 "cannot be booted directly: pass its bzImage, or a kernel built "
                                 "with CONFIG_PVH=y",
                                 im->source_name);

        fd = output_create(im, OUTPUT_VMLINUX);
        if (fd < 0)
                return fd;
        r = write_full(fd, kernel->data, kernel->size);
        if (r >= 0 && fsync(fd) < 0)
                r = negative_errno();
        if (r < 0)
                return error_set(im->error, r, "Failed to write '%s/vmlinux': %s",
                                 im->opts->output_dir, strerror(-r));
        return 0;
}

/* Checks the written vmlinux, computes its digest and finds the release when still unknown. */
static int import_vmlinux_inspect(Import *im)
{
        _cleanup_close_ int fd = -EBADF;
        MappedFile m;
        int r;

        fd = openat(im->output_fd, im->temp_names[OUTPUT_VMLINUX], O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        r = mapped_file_open(fd, &m);
        if (r < 0)
                return r;

        r = vmlinux_check(m.data, m.size);
        if (r < 0) {
                mapped_file_close(&m);
                return import_message_kernel_error(im, r, "payload");
        }
        r = sha256_digest(m.data, m.size, &im->digest);
        if (r >= 0 && !im->release) {
                r = kernel_find_release_banner(m.data, m.size, &im->release);
                if (r == -ENOENT)
                        r = error_set(im->error, r,
                                      "'%s' contains no \"Linux version\" banner, so its release "
                                      "is unknown: pass the kernel as a .deb or a package tree",
                                      im->source_name);
        }
        mapped_file_close(&m);
        return r;
}

static int import_kernel_file(Import *im, int kernel_fd)
{
        BzImageHeader h;
        MappedFile kernel;
        int r;

        r = mapped_file_open(kernel_fd, &kernel);
        if (r < 0)
                return error_set(im->error, r, "Failed to read '%s': %s", im->source_name,
                                 strerror(-r));

        r = bzimage_parse_header(kernel.data, kernel.size, &h);
        if (r == 0)
                r = import_bzimage(im, &kernel);
        else if (r == -EMEDIUMTYPE) {
                r = vmlinux_check(kernel.data, kernel.size);
                if (r < 0)
                        r = import_message_kernel_error(im, r, "elf");
                else
                        r = import_vmlinux_copy(im, &kernel);
        } else
                r = import_message_kernel_error(im, r, "header");
        mapped_file_close(&kernel);
        if (r < 0)
                return r;

        return import_vmlinux_inspect(im);
}

static int import_initramfs(Import *im, int modules_fd)
{
        _cleanup_(module_index_freep) ModuleIndex *index = NULL;
        _cleanup_strv_free_ char **paths = NULL;
        _cleanup_close_ int fd = -EBADF;
        InitramfsSpec spec;
        int r;

        if (modules_fd >= 0) {
                r = module_index_load(modules_fd, &index);
                if (r < 0)
                        return error_set(im->error, r,
                                         "Failed to read the modules directory of '%s': %s",
                                         im->source_name, strerror(-r));
                r = module_resolve_load_order(modules_fd, index, guest_modules, im->release,
                                              &im->module_names, &paths, im->error);
                if (r < 0)
                        return r;
        } else {
                im->module_names = calloc(1, sizeof(char *));
                paths = calloc(1, sizeof(char *));
                if (!im->module_names || !paths)
                        return -ENOMEM;
        }

        fd = output_create(im, OUTPUT_INITRAMFS);
        if (fd < 0)
                return fd;
        spec = (InitramfsSpec){
                .init_path = im->opts->init_path,
                .agent_path = im->opts->agent_path,
                .release = im->release,
                .modules_dir_fd = modules_fd,
                .module_names = im->module_names,
                .module_paths = paths,
        };
        r = initramfs_write(fd, &spec);
        if (r >= 0 && fsync(fd) < 0)
                r = negative_errno();
        if (r < 0)
                return error_set(im->error, r,
                                 "Failed to write the initramfs in '%s': %s (init '%s', agent "
                                 "'%s')",
                                 im->opts->output_dir, strerror(-r), im->opts->init_path,
                                 im->opts->agent_path);
        return 0;
}

/* Finds the one boot/vmlinuz-RELEASE in a package tree and returns RELEASE. */
static int tree_find_kernel(Import *im, int tree_fd, char **ret_release)
{
        _cleanup_(closedirp) DIR *d = NULL;
        _cleanup_free_ char *release = NULL;
        struct dirent *de;
        int fd;

        fd = openat(tree_fd, "boot", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || !(d = fdopendir(fd))) {
                safe_close(fd);
                return error_set(im->error, -EMEDIUMTYPE,
                                 "'%s' is not a Linux kernel: pass a bzImage, a vmlinux or a "
                                 "kernel .deb, or a directory with boot/vmlinuz-RELEASE",
                                 im->source_name);
        }

        while ((de = readdir(d))) {
                if (!strneq(de->d_name, "vmlinuz-", 8) || de->d_name[8] == '\0')
                        continue;
                if (release)
                        return error_set(im->error, -ENOTUNIQ,
                                         "'%s' contains several kernels ('vmlinuz-%s' and "
                                         "'%s'): pass one kernel file and its modules "
                                         "directory instead",
                                         im->source_name, release, de->d_name);
                release = strdup(de->d_name + 8);
                if (!release)
                        return -ENOMEM;
        }
        if (!release)
                return error_set(im->error, -ENOENT,
                                 "'%s' contains no boot/vmlinuz-RELEASE: pass a linux-image "
                                 "package or its unpacked tree",
                                 im->source_name);

        *ret_release = TAKE_PTR(release);
        return 0;
}

/* Checks boot/config-RELEASE of a package tree, when the tree has one, for the options the
 * guest needs. */
static int import_check_config(Import *im, int tree_fd, const char *release)
{
        _cleanup_free_ char *path = NULL, *name = NULL;
        _cleanup_close_ int fd = -EBADF;
        MappedFile m;
        int r;

        if (asprintf(&path, "boot/config-%s", release) < 0)
                return -ENOMEM;
        fd = openat(tree_fd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 && errno == ENOENT)
                return 0;
        if (fd < 0)
                return error_set(im->error, negative_errno(), "Failed to open '%s' in '%s': %s",
                                 path, im->source_name, strerror(errno));
        if (asprintf(&name, "%s/%s", im->source_name, path) < 0)
                return -ENOMEM;

        r = mapped_file_open(fd, &m);
        if (r < 0)
                return error_set(im->error, r, "Failed to read '%s': %s", name, strerror(-r));
        r = kconfig_check_guest(m.data, m.size, name, im->error);
        mapped_file_close(&m);
        return r;
}

static int import_tree(Import *im, int tree_fd)
{
        _cleanup_free_ char *kernel_path = NULL, *modules_path = NULL, *release = NULL;
        _cleanup_close_ int kernel_fd = -EBADF, modules_fd = -EBADF;
        int r;

        r = tree_find_kernel(im, tree_fd, &release);
        if (r < 0)
                return r;
        r = import_check_config(im, tree_fd, release);
        if (r < 0)
                return r;
        if (asprintf(&kernel_path, "boot/vmlinuz-%s", release) < 0 ||
            asprintf(&modules_path, "lib/modules/%s", release) < 0)
                return -ENOMEM;

        kernel_fd = openat(tree_fd, kernel_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (kernel_fd < 0)
                return error_set(im->error, negative_errno(), "Failed to open '%s' in '%s': %s",
                                 kernel_path, im->source_name, strerror(errno));
        modules_fd = openat(tree_fd, modules_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (modules_fd < 0 && errno == ENOENT) {
                free(modules_path);
                if (asprintf(&modules_path, "usr/lib/modules/%s", release) < 0)
                        return -ENOMEM;
                modules_fd = openat(tree_fd, modules_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        }
        if (modules_fd < 0)
                return error_set(im->error, negative_errno(),
                                 "'%s' has no lib/modules/%s directory for its kernel: pass the "
                                 "complete package tree",
                                 im->source_name, release);

        /* The file name is the release that uname -r prints, so it wins over the banner. */
        im->release = TAKE_PTR(release);
        r = import_kernel_file(im, kernel_fd);
        if (r < 0)
                return r;
        return import_initramfs(im, modules_fd);
}

static int import_deb(Import *im, int deb_fd)
{
        _cleanup_free_ char *staging = NULL, *message = NULL;
        _cleanup_close_ int staging_fd = -EBADF;
        int r;

        /* The package is streamed once. The kernel and all module files go to a staging tree
         * next to the outputs, because the module closure is known only after reading them. */
        if (asprintf(&staging, "%s/.#staging.XXXXXX", im->opts->output_dir) < 0)
                return -ENOMEM;
        if (!mkdtemp(staging))
                return error_set(im->error, negative_errno(), "Failed to create '%s': %s", staging,
                                 strerror(errno));

        staging_fd = open(staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (staging_fd < 0)
                r = negative_errno();
        else {
                r = deb_extract_kernel(deb_fd, staging_fd, &message);
                if (r == -EMEDIUMTYPE)
                        r = error_set(im->error, r,
                                      "'%s' is not a Linux kernel: pass a bzImage, a vmlinux or "
                                      "a kernel .deb (%s)",
                                      im->source_name, strempty(message));
                else if (r < 0)
                        r = error_set(im->error, r, "Failed to read package '%s': %s",
                                      im->source_name, message ?: strerror(-r));
                else
                        r = import_tree(im, staging_fd);
        }

        (void)rm_rf(staging);
        return r;
}

static int import_source(Import *im)
{
        const KernelImportOptions *opts = im->opts;
        char magic[8] = {};
        struct stat st;

        if (fstat(opts->source_fd, &st) < 0)
                return negative_errno();
        if (S_ISDIR(st.st_mode))
                return import_tree(im, opts->source_fd);
        if (!S_ISREG(st.st_mode))
                return error_set(im->error, -EMEDIUMTYPE,
                                 "'%s' is not a Linux kernel: pass a bzImage, a vmlinux or a "
                                 "kernel .deb",
                                 im->source_name);

        if (pread(opts->source_fd, magic, sizeof(magic), 0) < 0)
                return negative_errno();
        if (memcmp(magic, "!<arch>\n", 8) == 0)
                return import_deb(im, opts->source_fd);

        im->release = NULL;
        return import_kernel_file(im, opts->source_fd) ?: import_initramfs(im, opts->modules_fd);
}

static int import_info_build(Import *im, KernelInfo **ret)
{
        _cleanup_(kernel_info_freep) KernelInfo *info = calloc(1, sizeof(KernelInfo));
        const KernelImportOptions *opts = im->opts;
        struct timespec ts;
        int r;

        if (!info)
                return -ENOMEM;
        info->name = strdup(opts->name ?: im->release);
        info->version = strdup(im->release);
        info->source = strdup(im->source_name);
        if (!info->name || !info->version || !info->source)
                return -ENOMEM;
        info->digest = TAKE_PTR(im->digest);
        info->modules = TAKE_PTR(im->module_names);
        info->has_initrd = true;

        r = strv_extend(&info->formats, "vmlinux");
        if (r >= 0 && im->temp_names[OUTPUT_BZIMAGE])
                r = strv_extend(&info->formats, "bzImage");
        if (r < 0)
                return r;

        clock_gettime(CLOCK_REALTIME, &ts);
        info->created_usec = (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;

        *ret = TAKE_PTR(info);
        return 0;
}

int kernel_import(const KernelImportOptions *opts, KernelInfo **ret, char **ret_error)
{
        _cleanup_(kernel_info_freep) KernelInfo *info = NULL;
        _cleanup_free_ char *error = NULL;
        Import im = { .opts = opts, .output_fd = -EBADF, .error = &error };
        int r;

        if (!opts || opts->source_fd < 0 || !opts->output_dir || !opts->init_path ||
            !opts->agent_path)
                return -EINVAL;
        im.source_name = opts->source_name ?: "kernel";

        if (opts->name) {
                r = kernel_name_check(opts->name, &error);
                if (r < 0)
                        goto fail;
        }

        im.output_fd = open(opts->output_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (im.output_fd < 0) {
                r = error_set(&error, negative_errno(), "Failed to open output directory '%s': %s",
                              opts->output_dir, strerror(errno));
                goto fail;
        }

        r = import_source(&im);
        if (r < 0)
                goto fail;
        if (!opts->name && kernel_name_check(im.release, NULL) < 0) {
                r = error_set(&error, -EINVAL,
                              "Kernel release '%s' of '%s' is not a valid kernel name: pass a "
                              "name of [A-Za-z0-9._+-]",
                              im.release, im.source_name);
                goto fail;
        }
        r = import_info_build(&im, &info);
        if (r < 0)
                goto fail;
        r = output_publish_all(&im);
        if (r < 0)
                goto fail;

        import_done(&im, true);
        *ret = TAKE_PTR(info);
        return 0;

fail:
        if (r >= 0)
                r = -EINVAL;
        import_done(&im, false);
        if (ret_error)
                *ret_error = error ? TAKE_PTR(error) : strdup(strerror(-r));
        return r;
}
