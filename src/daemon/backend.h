#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent-proto.h" /* AGENT_VSOCK_PORT */
#include "daemon-config.h"

typedef struct VmBootParams VmBootParams;

/* One VMM that bangerd can boot VMs with. Every operation runs in a worker thread and shares
 * nothing with the event loop. A VM is adopted after a restart of bangerd the same way for
 * every backend: the process id and start time in its record still match (vm_reconcile()). */
typedef struct VmBackendOps {
        VmBackend backend;

        /* Starts the VMM, moves it into its scope and waits for the guest agent. On failure the
         * process is killed, the scope stopped, and *ret_error names the cause and the fix. */
        int (*boot)(const VmBootParams *p, pid_t *ret_pid, uint64_t *ret_start_time,
                    char **ret_error);

        /* Shuts the VMM down, through the guest agent unless force, and returns once the process
         * has exited. It is not reaped here. */
        int (*halt)(pid_t pid, const char *runtime_dir, bool force);

        /* Connects to the guest agent of a running VM. *ret_fd is a connected, non-blocking
         * stream socket for the agent_*_fd() calls. */
        int (*agent_connect)(const char *runtime_dir, uint64_t timeout_usec, int *ret_fd);
        /* The agent channel takes one connection at a time, so agent calls on one VM wait for
         * each other (QEMU's virtio-serial port). */
        bool agent_single_client;

        /* Connects to the serial console of a running VM. Returns -EBUSY while another client
         * is connected, and -EOPNOTSUPP when the backend has no console to connect to. */
        int (*console_open)(const char *runtime_dir, int *ret_fd);

        /* Returns true when runtime_dir contains this backend's control socket. */
        bool (*owns_runtime_dir)(const char *runtime_dir);
} VmBackendOps;

extern const VmBackendOps vm_backend_qemu;
extern const VmBackendOps vm_backend_firecracker;

/* The operations of backend, or NULL for VM_BACKEND_AUTO and invalid values. */
const VmBackendOps *vm_backend_ops(VmBackend backend);

/* Names of the files in a VM's runtime directory. */
#define VM_CONSOLE_SOCKET        "console.sock" /* QEMU's serial console, one client at a time */
#define FIRECRACKER_API_SOCKET   "firecracker.sock"
#define FIRECRACKER_VSOCK_SOCKET "vsock.sock"
/* The guest's vsock context id. Ids 0 to 2 are reserved for the hypervisor and the host. */
#define FIRECRACKER_GUEST_CID 3U
