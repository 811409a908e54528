#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "ipv4.h"
#include "qemu.h"

/* [VM] Backend: the VMM that boots new VMs. */
typedef enum VmBackend {
        VM_BACKEND_AUTO, /* Firecracker when FirecrackerPath is an executable file, else QEMU */
        VM_BACKEND_QEMU,
        VM_BACKEND_FIRECRACKER,
        _VM_BACKEND_MAX,
        _VM_BACKEND_INVALID = -1,
} VmBackend;

/* "auto", "qemu" or "firecracker", the values of [VM] Backend and of a VM record's backend. */
const char *vm_backend_to_string(VmBackend b);
VmBackend vm_backend_from_string(const char *s);

/* bangerd's configuration: /etc/banger/bangerd.conf, then the drop-ins in
 * /etc/banger/bangerd.conf.d/ with names ending in ".conf", in lexical order. A later file
 * wins for each key it sets. */

typedef struct DaemonConfig {
        uint64_t idle_timeout_usec; /* [Daemon] IdleTimeoutSec; 0 means never exit when idle */

        char *default_kernel;           /* [VM] DefaultKernel; NULL when unset */
        unsigned default_vcpus;         /* [VM] DefaultVCPUs */
        unsigned default_memory_mib;    /* [VM] DefaultMemoryMiB */
        unsigned default_work_disk_mib; /* [VM] DefaultWorkDiskMiB */
        QemuAccel accelerator;          /* [VM] Accelerator: auto, kvm or tcg */
        char *qemu_path;                /* [VM] QemuPath */
        uint64_t boot_timeout_usec;     /* [VM] BootTimeoutSec */
        VmBackend backend;              /* [VM] Backend */
        char *firecracker_path;         /* [VM] FirecrackerPath */

        char *catalog_url; /* [Kernel] CatalogURL, an http or https URL; NULL when unset */

        char **insecure_registries; /* [Registry] InsecureRegistries, "host:port" entries */
        char *credentials_file;     /* [Registry] CredentialsFile; NULL when set empty */
        char *ca_file;              /* [Registry] CAFile; NULL when unset */
        char **mirrors;             /* [Registry] Mirrors, "REGISTRY=URL" entries */
        char *os;                   /* [Registry] Platform, the part before '/' */
        char *architecture;         /* [Registry] Platform, the part after '/' */

        uint64_t helper_idle_timeout_usec; /* [Helper] IdleTimeoutSec; 0 means never exit */

        /* [Network] Subnet, from /16 to /30. subnet_set is false when the key is unset. */
        Ipv4Net subnet;
        bool subnet_set;

        /* From $STATE_DIRECTORY, $CACHE_DIRECTORY and $RUNTIME_DIRECTORY (the first entry of
         * each), which systemd sets, else BANGER_STATEDIR, BANGER_CACHEDIR and
         * BANGER_RUNTIMEDIR. */
        char *state_dir;
        char *cache_dir;
        char *runtime_dir;
} DaemonConfig;

#define DAEMON_CONFIG_FILE       BANGER_SYSCONFDIR "/bangerd.conf"
#define DAEMON_CONFIG_DROPIN_DIR BANGER_SYSCONFDIR "/bangerd.conf.d"
/* Default of [Registry] CredentialsFile: a docker config.json that bangerd's user can read. */
/* Default of [VM] FirecrackerPath. */
#define DAEMON_CONFIG_FIRECRACKER_PATH "/usr/bin/firecracker"
#define DAEMON_CONFIG_CREDENTIALS_FILE BANGER_SYSCONFDIR "/registry-auth.json"

/* The range of a work disk's size in MiB, for [VM] DefaultWorkDiskMiB and CreateVM. The
 * minimum is WORKDISK_SIZE_MIN. The disk is a sparse file, so only what the guest writes takes
 * space on the host. */
#define VM_WORK_DISK_MIB_MIN 16u
#define VM_WORK_DISK_MIB_MAX (1024u * 1024u)

/* The rule for [Network] Subnet, for messages about an invalid value. */
#define DAEMON_CONFIG_SUBNET_RULE                                                           \
        "expected a network address with a prefix from /16 to /30 and the host bits zero, " \
        "such as 10.123.0.0/24"

/* Parses a value of [Network] Subnet: "A.B.C.D/N" as ipv4_net_parse() reads it, with N from 16
 * to 30. Returns -EINVAL for anything else. */
int daemon_config_subnet_parse(const char *s, Ipv4Net *ret);

DaemonConfig *daemon_config_free(DaemonConfig *c);
static inline void daemon_config_freep(DaemonConfig **c)
{
        daemon_config_free(*c);
}

/* Returns the built-in defaults with the directories taken from the environment. */
int daemon_config_new(DaemonConfig **ret);

/* Applies one INI file to c. A missing file is not an error. Unknown sections or keys and
 * invalid values do not fail the load: each appends a "FILE:LINE: ..." message to
 * *warnings and the key keeps its earlier value. Returns -errno when the file cannot be
 * read. */
int daemon_config_parse_file(DaemonConfig *c, const char *path, char ***warnings);

/* Resolves [VM] Backend for a new VM: qemu and firecracker as set, auto to firecracker when
 * firecracker_path is an executable regular file and to qemu otherwise. Never returns
 * VM_BACKEND_AUTO. */
VmBackend daemon_config_choose_backend(const DaemonConfig *c);

/* Builds the configuration from the defaults, config_file and the drop-ins in dropin_dir.
 * Either path may be NULL to skip it. */
int daemon_config_load(const char *config_file, const char *dropin_dir, DaemonConfig **ret,
                       char ***ret_warnings);
