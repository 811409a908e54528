#pragma once

/* Reading a Debian kernel package (linux-image-RELEASE): an ar archive holding debian-binary,
 * control.tar.* and data.tar.*, where data.tar.* contains boot/vmlinuz-RELEASE and
 * lib/modules/RELEASE (or usr/lib/modules/RELEASE). */

/* Streams the package behind deb_fd and writes into the directory staging_dir_fd an unpacked
 * tree with only what a guest needs: boot/vmlinuz-RELEASE, and under lib/modules/RELEASE the
 * module files (.ko, .ko.gz, .ko.xz, .ko.zst, kept as they are) and modules.builtin. Returns
 * -EMEDIUMTYPE when deb_fd is not a Debian package, -ENOENT when the package has no kernel and
 * -EBADMSG when it is damaged. *ret_error (when not NULL) then describes the problem. */
int deb_extract_kernel(int deb_fd, int staging_dir_fd, char **ret_error);
