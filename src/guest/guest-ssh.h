#pragma once

/* Installs the SSH files that bangerd puts on a VM's work disk into the guest's root file
 * system. root is a path prefix for both the work disk, mounted at root/work, and the files
 * installed: banger-init calls these functions chrooted, with root "", so that symlinks in the
 * image (such as /home pointing to /var/home) resolve inside the image. Both return a
 * negative errno and log what failed with guest_log(). */

/* Removes every root/etc/ssh/ssh_host_* file, which a key baked into the image could be,
 * and installs the VM's host key pair there: ssh_host_ed25519_key (mode 0600) and
 * ssh_host_ed25519_key.pub (0644), owned by root. Creates root/etc/ssh (0755) when missing. */
int guest_ssh_install_host_key(const char *root);

/* Replaces root/root/.ssh/authorized_keys with the work disk's authorized keys, in a
 * directory of mode 0700, as a file of mode 0600 owned by root. When user (the image's user,
 * in the form guest_user_resolve() reads) is set, names another uid that root/etc/passwd
 * lists, and has an existing home directory, its HOME/.ssh/authorized_keys gets the same
 * keys, owned by that user. */
int guest_ssh_install_authorized_keys(const char *root, const char *user);
