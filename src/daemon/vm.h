#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend.h"
#include "helper-client.h"
#include "manager.h"
#include "qemu.h"
#include "store.h"

/* What a worker needs to take a VM's network down, copied from the record on the loop. */
typedef struct VmNetwork {
        char *name;
        unsigned slot; /* 0 when the VM has no slot, and then there is nothing to take down */
        PortForward *forwards;
        size_t n_forwards;
} VmNetwork;

int vm_network_copy(const VmRecord *rec, VmNetwork *ret);
void vm_network_done(VmNetwork *n);

/* Worker side: removes the forwards and deletes the tap. Failures are logged as warnings, and a
 * forward that is gone already counts as removed. */
void vm_network_down(const VmNetwork *n);

/* Everything a worker needs to boot a VM, copied on the loop so the worker shares nothing with
 * it. */
struct VmBootParams {
        char *name;
        VmBackend backend; /* VM_BACKEND_QEMU or VM_BACKEND_FIRECRACKER */
        char *qemu_path;
        char *firecracker_path;
        QemuAccel accel;
        uint64_t boot_timeout_usec;
        unsigned vcpus;
        unsigned memory_mib;
        char *kernel_path; /* kernels/K/vmlinux */
        /* kernels/K/initramfs.img, or vms/NAME/initrd.img for a VM made before work disks,
         * whose initramfs carries its configuration */
        char *initrd_path;
        char *work_disk_path; /* vms/NAME/work.ext4, NULL for a VM made before work disks */
        /* vms/NAME: root.ext4, work.ext4, console.log, and qemu.log or firecracker.log */
        char *vm_dir;
        /* RUNTIME/vms/NAME: qmp.sock and agent.sock, or firecracker.sock and vsock.sock */
        char *runtime_dir;
        char *unit;

        VmNetwork net;
        char mac[VM_MAC_STRING_MAX];
        /* Set by vm_boot() in the worker and kept after a successful boot: the tap and guest
         * address that banger-helper assigned, and the kernel command line arguments that
         * carry the network to banger-init. */
        char *tap;
        char *address;
        char *net_cmdline;
};

void vm_boot_params_done(VmBootParams *p);
/* Sets the initramfs and the work disk from the directories of the kernel and the VM (p->vm_dir),
 * for a VM with a work disk or one made before work disks. */
int vm_boot_params_set_disks(VmBootParams *p, const char *kernel_dir, bool work_disk);
/* Copies the slot, MAC address and port forwards of rec into p. */
int vm_boot_params_set_network(VmBootParams *p, const VmRecord *rec);
/* Fills p from the VM on the loop. A VM whose record predates networking gets a slot here,
 * which is saved in its record. */
int vm_boot_params_init(Vm *vm, VmBootParams *p);
/* Loop side, after a successful boot: moves the tap and address from p into rec. */
void vm_boot_params_take_network(VmBootParams *p, VmRecord *rec);

/* Sets up the VM's tap and port forwards through banger-helper, boots the VM with the backend
 * in p (see VmBackendOps.boot), and takes the network down again when the boot fails. */
int vm_boot(VmBootParams *p, pid_t *ret_pid, uint64_t *ret_start_time, char **ret_error);

/* Worker side, for the backends. Creates the console log at path unless it exists, and returns
 * its size, from which banger-console-log copies this boot's console. */
int vm_console_prepare(const char *path, uint64_t *ret_size);
/* Worker side, for the backends: starts banger-console-log on the console log at console from
 * console_offset, and moves it and vmm_pid into the VM's scope with the VM's limits. A
 * banger-console-log that cannot start is logged and left out. On failure *ret_error names
 * the cause, and the caller kills vmm_pid. */
int vm_start_scope(const VmBootParams *p, pid_t vmm_pid, const char *console,
                   uint64_t console_offset, char **ret_error);

/* Worker side, for the backends: sets the boot error for a guest agent of another protocol
 * version, and returns -EPROTONOSUPPORT. */
int vm_agent_version_error(const VmBootParams *p, char **ret_error);

/* Shuts the VMM down with the backend whose control socket is in runtime_dir. QEMU: through
 * the agent unless force, then QMP quit, then SIGKILL. Firecracker: through the agent and then
 * Ctrl+Alt+Del unless force, then SIGKILL. Returns once the process has exited; it is not
 * reaped here. */
int vm_halt(pid_t pid, const char *runtime_dir, bool force);

/* Waits up to timeout_msec for pid to exit. Returns 1 when it exited, 0 on timeout. */
int vmm_wait_exit(pid_t pid, int timeout_msec);
/* Sends SIGKILL to the VMM process pid and reaps it. */
void vmm_kill_and_reap(pid_t pid);

/* Loop side. */
int vm_save(Vm *vm);
void vm_set_state(Vm *vm, VmState state, const char *reason);
int vm_watch_process(Vm *vm);
void vm_unwatch_process(Vm *vm);
void vm_reconcile(Vm *vm);
/* Asks banger-helper, in a worker, to remove the taps and forwards of every slot but those of
 * running VMs. Does nothing when there are no VMs, so that bangerd does not activate the
 * helper for nothing. vm_boot() waits until this has finished. */
int vm_reconcile_network(Manager *m);

/* How long an agent call waits for other calls on a backend whose agent takes one connection
 * at a time. */
#define VM_AGENT_LOCK_WAIT_SEC 30

/* What a worker needs to reach the guest agent or the console of a running VM, copied on the
 * loop so the worker shares nothing with it but the lock. */
typedef struct VmAgent {
        const VmBackendOps *ops;
        char *runtime_dir;
        /* The VM's agent_lock when its backend's agent takes one connection at a time. */
        pthread_mutex_t *lock;
        bool locked;
} VmAgent;

/* Waits up to timeout_msec for pid to exit. Returns 1 when it exited, 0 on timeout. */
int vmm_wait_exit(pid_t pid, int timeout_msec);
/* Sends SIGKILL to the VMM process pid and reaps it. */
void vmm_kill_and_reap(pid_t pid);

/* Loop side. */
int vm_agent_init(Vm *vm, VmAgent *ret);
/* Frees a, whose lock the worker must have released. */
void vm_agent_done(VmAgent *a);
/* Worker side: connects to the agent with the VM's backend, for the agent_*_fd() calls. When
 * the agent takes one connection at a time, this first takes the VM's agent lock, and returns
 * -EBUSY when other calls hold it for VM_AGENT_LOCK_WAIT_SEC. The lock is held until
 * vm_agent_release(), also after the connection was closed. */
int vm_agent_connect(VmAgent *a, uint64_t timeout_usec, int *ret_fd);
void vm_agent_release(VmAgent *a);
/* Worker side: connects to the VM's serial console, see VmBackendOps.console_open. */
int vm_console_connect(const VmAgent *a, int *ret_fd);
