#pragma once

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* A VM's work disk and SSH host key, which the create job makes before the first boot, and the
 * known_hosts file that pins the host keys of all VMs for users' ssh. Nothing here uses the
 * bus or the manager, so workers and tests can call it. */

#define VM_WORK_DISK_NAME  "work.ext4"       /* in the VM's directory */
#define VM_KNOWN_HOSTS_DIR "ssh"             /* in the state directory, mode 0755 */
#define VM_KNOWN_HOSTS     "ssh/known_hosts" /* in the state directory, mode 0644 */

/* What goes on a new VM's work disk besides the guest configuration and the host key. */
typedef struct VmWorkDiskSpec {
        char *authorized_keys; /* text of an authorized_keys file, "" for none */
        unsigned size_mib;
        /* The top-level directory that receives the workspace, NULL for none, and the read
         * end of the tar stream that fills it. */
        char *workspace_name;
        int workspace_fd;
} VmWorkDiskSpec;

void vm_work_disk_spec_done(VmWorkDiskSpec *s);

/* The CreateVM spec keys for SSH and the work disk, as read from the bus. The strings and the
 * fd belong to the bus message. */
typedef struct VmWorkDiskRequest {
        char **ssh_keys;              /* "ssh_keys", public key lines; NULL when not given */
        uint32_t size_mib;            /* "work_size_mib", 0 when not given */
        int workspace_fd;             /* "workspace", -EBADF when not given */
        const char *workspace_name;   /* "workspace_name" */
        const char *workspace_path;   /* "workspace_path" */
        const char *workspace_digest; /* "workspace_digest" */
} VmWorkDiskRequest;

void vm_work_disk_request_done(VmWorkDiskRequest *r);

/* Checks the request for VM vm_name and fills *ret: the authorized keys joined into one file,
 * the size (default_size_mib when not given) and a copy of the workspace fd. The workspace
 * keys come together: a workspace needs a name, a host path and a digest, and none of those is
 * valid without it. Returns -EINVAL with a message in *ret_message that names the key, the
 * value and the rule. */
int vm_work_disk_spec_from_request(const char *vm_name, const VmWorkDiskRequest *req,
                                   unsigned default_size_mib, VmWorkDiskSpec *ret,
                                   char **ret_message);

/* Worker side. Generates the VM's host key in dir, a new VM's temporary directory, and builds
 * dir/work.ext4 with config (the text of vm.conf), the host key and spec on it. Stores the
 * public key, its fingerprint and the disk size in rec. The private key stays on the work disk
 * only: its file in dir is removed, the public key file is kept. On failure a message goes to
 * *ret_error, and the caller removes dir. */
int vm_work_disk_build(const char *dir, const char *config, const VmWorkDiskSpec *spec,
                       VmRecord *rec, char **ret_error);

/* Replaces STATE_DIR/ssh/known_hosts with a line for each record that has a host key,
 * creating STATE_DIR/ssh when missing. Records without a host key, made before banger
 * generated host keys, are left out. */
int vm_known_hosts_write(const char *state_dir, VmRecord *const *records, size_t n);
