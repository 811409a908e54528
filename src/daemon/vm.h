#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "manager.h"
#include "qemu.h"

/* Everything a worker needs to boot a VM, copied on the loop so the worker shares nothing with
 * it. */
typedef struct VmBootParams {
        char *name;
        char *qemu_path;
        QemuAccel accel;
        uint64_t boot_timeout_usec;
        unsigned vcpus;
        unsigned memory_mib;
        char *kernel_path; /* kernels/K/vmlinux */
        char *vm_dir;      /* vms/NAME: root.ext4, initrd.img, console.log, qemu.log */
        char *runtime_dir; /* RUNTIME/vms/NAME: qmp.sock, agent.sock */
        char *unit;
} VmBootParams;

void vm_boot_params_done(VmBootParams *p);
int vm_boot_params_init(Vm *vm, VmBootParams *p);

/* Starts QEMU, moves it into its scope and waits for the guest agent. On failure the process
 * is killed, the scope stopped, and *ret_error names the cause and the fix. */
int vm_boot(const VmBootParams *p, pid_t *ret_pid, uint64_t *ret_start_time, char **ret_error);

/* Shuts the VMM down: through the agent unless force, then QMP quit, then SIGKILL. Returns
 * once the process has exited; it is not reaped here. */
int vm_halt(pid_t pid, const char *runtime_dir, bool force);

/* Loop side. */
int vm_save(Vm *vm);
void vm_set_state(Vm *vm, VmState state, const char *reason);
int vm_watch_process(Vm *vm);
void vm_unwatch_process(Vm *vm);
void vm_reconcile(Vm *vm);
int vm_agent_socket(Vm *vm, char **ret);
