#pragma once

#include <stdint.h>
#include <sys/types.h>

/* Running a guest under QEMU's microvm machine. */

typedef enum QemuAccel {
        QEMU_ACCEL_AUTO, /* KVM when /dev/kvm opens, else TCG */
        QEMU_ACCEL_KVM,
        QEMU_ACCEL_TCG,
        _QEMU_ACCEL_MAX,
        _QEMU_ACCEL_INVALID = -1,
} QemuAccel;

const char *qemu_accel_to_string(QemuAccel a);
QemuAccel qemu_accel_from_string(const char *s);

typedef struct QemuConfig {
        const char *binary;         /* qemu-system-x86_64 */
        const char *kernel;         /* vmlinux or bzImage */
        const char *initrd;         /* per-VM initramfs */
        const char *cmdline_extra;  /* appended to banger's kernel command line; may be NULL */
        const char *root_disk;      /* raw ext4, becomes /dev/vda */
        const char *work_disk;      /* raw ext4, becomes /dev/vdb; NULL for none */
        const char *console_log;    /* serial console output is appended here */
        const char *console_socket; /* QEMU listens here for one client of the serial console */
        const char *qmp_socket;     /* QEMU listens here for QMP */
        const char *agent_socket;   /* QEMU listens here for the agent's virtio-serial port */
        const char *agent_port_name;
        const char *tap; /* tap device for the guest's virtio-net, NULL for none */
        const char *mac; /* the guest's MAC "xx:xx:xx:xx:xx:xx", required with tap */
        unsigned vcpus;
        unsigned memory_mib;
        QemuAccel accel;  /* AUTO is resolved by qemu_build_argv() */
        uint64_t tsc_khz; /* 0: read from the host; passed as tsc_early_khz under TCG */
} QemuConfig;

/* Builds the full argv (argv[0] is c->binary). */
int qemu_build_argv(const QemuConfig *c, char ***ret_argv);

/* Starts QEMU detached from the caller: new session, stdin from /dev/null, stdout and stderr
 * appended to stderr_log, no inherited fds. The child is not reaped by this function. */
int qemu_spawn(const QemuConfig *c, const char *stderr_log, pid_t *ret_pid);

/* The host TSC frequency in kHz, from sysfs or /proc/cpuinfo. */
int host_tsc_khz(uint64_t *ret);
