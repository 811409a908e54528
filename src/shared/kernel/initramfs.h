#pragma once

#include <stddef.h>

/* Writing the guest initramfs: newc cpio archives as the kernel unpacks them
 * (Documentation/driver-api/early-userspace/buffer-format.rst in the Linux sources). */

typedef struct InitramfsSpec {
        const char *init_path;  /* becomes /init, mode 0755 */
        const char *agent_path; /* becomes /banger-agent, mode 0755 */
        const char *release;    /* kernel release, names /lib/modules/RELEASE */
        int modules_dir_fd;     /* lib/modules/RELEASE of the kernel; module_paths are relative */
        char *const *module_names; /* in load order */
        char *const *module_paths;
} InitramfsSpec;

/* Writes a gzip-compressed newc archive to out_fd holding /init, /banger-agent, each module as
 * /lib/modules/RELEASE/NAME.ko (decompressed), /etc/banger/modules listing those paths in load
 * order one per line, the directories /dev /proc /sys /sysroot /run /tmp, and the device nodes
 * /dev/console and /dev/null. The output is padded with zeros to a multiple of 4 bytes so that
 * a further archive can be appended. */
int initramfs_write(int out_fd, const InitramfsSpec *spec);

/* Writes an uncompressed newc archive holding one regular file, padded to 4 bytes. */
int initramfs_write_file_archive(int out_fd, const char *path, const void *data, size_t size,
                                 unsigned mode);
