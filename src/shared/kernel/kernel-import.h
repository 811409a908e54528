#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Importing a guest kernel and building its initramfs. */

typedef struct KernelInfo {
        char *name;    /* store key, e.g. "6.1.0-28-cloud-amd64" */
        char *version; /* kernel release, as `uname -r` prints it in the guest */
        char *source;  /* what it was imported from: a file name or package name */
        char *digest;  /* "sha256:HEX" of the vmlinux */
        bool has_initrd;
        char **formats; /* "vmlinux", "bzImage" */
        char **modules; /* module names in the initramfs, in load order */
        uint64_t created_usec;
} KernelInfo;

KernelInfo *kernel_info_free(KernelInfo *info);
static inline void kernel_info_freep(KernelInfo **p)
{
        kernel_info_free(*p);
}

int kernel_info_to_json(const KernelInfo *info, char **ret);
int kernel_info_from_json(const char *json, KernelInfo **ret);

typedef struct KernelImportOptions {
        /* An open file or directory: a Debian kernel package (.deb), a directory holding an
         * unpacked package tree (boot/vmlinuz-VERSION and lib/modules/VERSION), or a bzImage
         * or vmlinux file with modules_fd naming its lib/modules/VERSION directory. */
        int source_fd;
        int modules_fd;          /* -1 unless source_fd is a bare kernel file */
        const char *source_name; /* how the user named the source, for messages */
        const char *name;        /* store key; NULL derives it from the kernel version */
        const char *output_dir;  /* existing empty directory: receives vmlinux, bzImage
                                  * (when the source has one) and initramfs.img */
        const char *init_path;   /* banger-init binary, becomes /init */
        const char *agent_path;  /* banger-agent binary */
} KernelImportOptions;

/* Imports a kernel into opts->output_dir. On failure the directory's new files are removed, a
 * negative errno is returned and *ret_error (when not NULL) names the value and the fix, e.g.
 * "'notes.txt' is not a Linux kernel: pass a bzImage, a vmlinux or a kernel .deb". */
int kernel_import(const KernelImportOptions *opts, KernelInfo **ret, char **ret_error);

/* Writes output_path (created with a temporary name and renamed into place) as a copy of
 * base_initramfs followed by a second newc cpio archive holding /etc/banger/vm.conf with the
 * contents guest_config. The kernel unpacks both archives in order. Both output_path and
 * vm.conf get mode 0600, because the guest configuration may carry SSH keys. */
int initramfs_build_vm(const char *base_initramfs, const char *guest_config,
                       const char *output_path);
