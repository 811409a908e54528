#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend.h"
#include "manager.h"
#include "qemu.h"

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
        /* vms/NAME: root.ext4, initrd.img, console.log, and qemu.log or firecracker.log */
        char *vm_dir;
        /* RUNTIME/vms/NAME: qmp.sock and agent.sock, or firecracker.sock and vsock.sock */
        char *runtime_dir;
        char *unit;
};

void vm_boot_params_done(VmBootParams *p);
int vm_boot_params_init(Vm *vm, VmBootParams *p);

/* Boots the VM with the backend in p, see VmBackendOps.boot. */
int vm_boot(const VmBootParams *p, pid_t *ret_pid, uint64_t *ret_start_time, char **ret_error);

/* Shuts the VMM down with the backend whose control socket is in runtime_dir. QEMU: through
 * the agent unless force, then QMP quit, then SIGKILL. Firecracker: through the agent and then
 * Ctrl+Alt+Del unless force, then SIGKILL. Returns once the process has exited; it is not
 * reaped here. */
int vm_halt(pid_t pid, const char *runtime_dir, bool force);

/* Loop side. */
int vm_save(Vm *vm);
void vm_set_state(Vm *vm, VmState state, const char *reason);
int vm_watch_process(Vm *vm);
void vm_unwatch_process(Vm *vm);
void vm_reconcile(Vm *vm);
int vm_agent_socket(Vm *vm, char **ret);
/* Connects to the guest agent with the VM's backend, for the agent_*_fd() calls. */
int vm_agent_connect(Vm *vm, uint64_t timeout_usec, int *ret_fd);
