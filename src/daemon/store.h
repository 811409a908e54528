#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* bangerd's on-disk store. Each object lives in STATE/KIND/ESCAPED-NAME/ with a record.json
 * that is written after the files it describes. New objects are built in
 * STATE/KIND/.tmp-XXXXXX and renamed into place, so a reader never sees a half-built object. */

#define STORE_IMAGES  "images"
#define STORE_KERNELS "kernels"
#define STORE_VMS     "vms"
#define STORE_RECORD  "record.json"

typedef enum VmState {
        VM_CREATED,
        VM_STARTING,
        VM_RUNNING,
        VM_STOPPING,
        VM_STOPPED,
        VM_FAILED,
        _VM_STATE_MAX,
        _VM_STATE_INVALID = -1,
} VmState;

const char *vm_state_to_string(VmState s);
VmState vm_state_from_string(const char *s);

/* The persistent part of a VM, stored as vms/NAME/record.json. */
typedef struct PortForward {
        char *proto; /* "tcp" or "udp" */
        uint16_t host_port;
        uint16_t guest_port;
} PortForward;

typedef struct VmRecord {
        char *name;
        char *id; /* UUID, "8-4-4-4-12" lower-case hex */
        uid_t owner;
        char *image;
        char *kernel;
        unsigned vcpus;
        unsigned memory_mib;
        uint64_t created_usec; /* CLOCK_REALTIME */
        VmState state;
        char *state_reason;    /* why the VM failed or stopped; NULL when none */
        pid_t pid;             /* the VMM process, 0 when none */
        uint64_t start_time;   /* field 22 of /proc/PID/stat, to recognise pid after a restart */
        char *unit;            /* the VMM's scope */
        char *backend;         /* "qemu" */
        unsigned slot;         /* network slot, unique among VMs, 1 and up; 0 before allocation */
        char *tap;             /* tap device while the VM runs, as banger-helper named it */
        char *address;         /* guest IPv4 address, "A.B.C.D"; NULL before the first start */
        PortForward *forwards; /* kept across stops, installed while the VM runs */
        size_t n_forwards;

        /* The VM's SSH host key, generated on the host before the first boot. NULL for a VM
         * made before banger generated host keys, and then the VM has no work disk either. */
        char *host_key;             /* public key line "ssh-ed25519 BASE64 COMMENT" */
        char *host_key_fingerprint; /* "SHA256:..." of host_key, as ssh-keygen -l prints it */
        unsigned work_size_mib;     /* size of work.ext4, 0 for a VM without a work disk */
        /* The copy of a host directory at /work/NAME in the guest, all NULL for none. */
        char *workspace_name;   /* NAME, see vm_workspace_name_check() */
        char *workspace_path;   /* the directory on the host it was copied from, for users */
        char *workspace_digest; /* 64 hex digits that identify the copied content */
} VmRecord;

void port_forwards_free(PortForward *forwards, size_t n);
/* True for "tcp" and "udp". */
bool port_forward_proto_is_valid(const char *proto);

VmRecord *vm_record_free(VmRecord *r);
static inline void vm_record_freep(VmRecord **r)
{
        vm_record_free(*r);
}

int vm_record_to_json(const VmRecord *r, char **ret);
/* Returns -EBADMSG for JSON that is not a valid VM record. */
int vm_record_from_json(const char *json, VmRecord **ret);

#define VM_WORKSPACE_NAME_MAX   64
#define VM_WORKSPACE_DIGEST_LEN 64

/* Checks the name of a workspace's directory under /work in the guest: 1 to
 * VM_WORKSPACE_NAME_MAX bytes of [A-Za-z0-9._-] not starting with '.'. A valid name is one
 * path component that the guest's shell takes as it is. Returns -EINVAL otherwise. */
int vm_workspace_name_check(const char *name);

/* Checks a workspace digest: VM_WORKSPACE_DIGEST_LEN lower-case hex digits. Returns -EINVAL
 * otherwise. */
int vm_workspace_digest_check(const char *digest);

/* Checks the host path of a workspace: absolute, shorter than PATH_MAX, without control bytes.
 * Returns -EINVAL otherwise. */
int vm_workspace_path_check(const char *path);

/* The smallest network slot from 1 to HELPER_MAX_SLOT that is not in used (any order; 0 and
 * values out of range are ignored). Returns -ENOSPC when every slot is taken. */
int vm_slot_pick(const unsigned *used, size_t n_used, unsigned *ret);

#define VM_MAC_STRING_MAX 18 /* "02:xx:xx:xx:xx:xx" and its NUL */

/* The guest's MAC address, derived from the VM id so that it stays the same across starts:
 * 02 (locally administered, unicast) and five bytes folded from the UUID. Returns -EINVAL when
 * id is not a UUID. */
int vm_mac_from_id(const char *id, char ret[VM_MAC_STRING_MAX]);

/* STATE_DIR/KIND/ESCAPED-NAME. */
int store_object_dir(const char *state_dir, const char *kind, const char *name, char **ret);

/* Creates STATE_DIR/KIND/.tmp-XXXXXX (and STATE_DIR/KIND when missing). */
int store_make_temp_dir(const char *state_dir, const char *kind, char **ret);

/* Renames the directory tmp to final. An existing final is replaced atomically
 * (renameat2 RENAME_EXCHANGE) and its old contents removed afterwards. */
int store_publish_dir(const char *tmp, const char *final);

/* Writes json as the record of the object built in tmp, then publishes tmp at final as
 * store_publish_dir() does. */
int store_publish_with_record(const char *tmp, const char *json, const char *final);

/* Lists the object names under STATE_DIR/KIND, unescaped and sorted. Entries starting with '.'
 * (temporary directories) and directories without a record are skipped. A missing KIND
 * directory gives an empty list. */
int store_list(const char *state_dir, const char *kind, char ***ret);

/* Removes the temporary directories a killed daemon left under STATE_DIR/KIND. */
int store_remove_temporaries(const char *state_dir, const char *kind);

/* Removes the partial downloads (".#" files) a killed daemon left in CACHE_DIR/blobs/sha256.
 * Call it only while no pull runs, because a running pull writes to such a file. */
int store_remove_partial_blobs(const char *cache_dir);

/* Reads field 22 (starttime, in clock ticks since boot) of /proc/PID/stat. Returns -ESRCH
 * when the process does not exist. */
int proc_start_time(pid_t pid, uint64_t *ret);
