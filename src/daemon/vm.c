#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "agent-client.h"
#include "fileio.h"
#include "guest-config.h"
#include "log.h"
#include "macro.h"
#include "qmp.h"
#include "scope.h"
#include "vm.h"

#define SCOPE_TIMEOUT_USEC    (30 * USEC_PER_SEC)
#define AGENT_SLICE_USEC      (5 * USEC_PER_SEC)
#define SHUTDOWN_WAIT_MSEC    30000
#define QUIT_WAIT_MSEC        10000
#define AGENT_SHUTDOWN_USEC   (10 * USEC_PER_SEC)
#define QMP_TIMEOUT_USEC      (5 * USEC_PER_SEC)
#define VM_TASKS_MAX          256
#define MEMORY_HEADROOM_RATIO 1.25 /* QEMU's own memory on top of the guest's */
#define QEMU_STDERR_TAIL_MAX  400  /* bytes of qemu.log that a boot error quotes */

void vm_boot_params_done(VmBootParams *p)
{
        free(p->name);
        free(p->qemu_path);
        free(p->firecracker_path);
        free(p->kernel_path);
        free(p->vm_dir);
        free(p->runtime_dir);
        free(p->unit);
        memset(p, 0, sizeof(*p));
}

int vm_boot_params_init(Vm *vm, VmBootParams *p)
{
        Manager *m = vm->manager;
        Kernel *k = manager_find_kernel(m, vm->record->kernel);

        memset(p, 0, sizeof(*p));
        if (!k)
                return -ENOENT;
        p->name = strdup(vm->record->name);
        /* A record without a backend predates the Backend setting and boots with QEMU. */
        p->backend =
                vm->record->backend ? vm_backend_from_string(vm->record->backend) : VM_BACKEND_QEMU;
        if (!vm_backend_ops(p->backend)) {
                vm_boot_params_done(p);
                return -EPROTONOSUPPORT;
        }
        p->qemu_path = strdup(m->config->qemu_path);
        p->firecracker_path = strdup(m->config->firecracker_path);
        p->accel = m->config->accelerator;
        p->boot_timeout_usec = m->config->boot_timeout_usec;
        p->vcpus = vm->record->vcpus;
        p->memory_mib = vm->record->memory_mib;
        p->vm_dir = strdup(vm->dir);
        p->runtime_dir = strdup(vm->runtime_dir);
        p->unit = strdup(vm->record->unit);
        if (asprintf(&p->kernel_path, "%s/vmlinux", k->dir) < 0)
                p->kernel_path = NULL;
        if (!p->name || !p->qemu_path || !p->firecracker_path || !p->vm_dir || !p->runtime_dir ||
            !p->unit || !p->kernel_path) {
                vm_boot_params_done(p);
                return -ENOMEM;
        }
        return 0;
}

static char *path_join(const char *dir, const char *name)
{
        char *p;

        if (asprintf(&p, "%s/%s", dir, name) < 0)
                return NULL;
        return p;
}

/* Waits up to timeout_msec for pid to exit. Returns 1 when it exited, 0 on timeout. */
static int wait_exit(pid_t pid, int timeout_msec)
{
        _cleanup_close_ int fd = pidfd_open(pid, 0);
        struct pollfd pfd;
        int r;

        if (fd < 0)
                return errno == ESRCH ? 1 : negative_errno();
        pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
        do
                r = poll(&pfd, 1, timeout_msec);
        while (r < 0 && errno == EINTR);
        if (r < 0)
                return negative_errno();
        return r > 0;
}

static void kill_and_reap(pid_t pid)
{
        (void)kill(pid, SIGKILL);
        (void)waitpid(pid, NULL, 0);
}

/* Builds the error for a QEMU that exited during boot from the end of its stderr, because a
 * failed create removes qemu.log with the VM directory, and users cannot read that directory. */
static int qemu_exit_error(const VmBootParams *p, char **ret_error)
{
        _cleanup_free_ char *qemu_log = path_join(p->vm_dir, "qemu.log");
        _cleanup_free_ char *tail = NULL;
        int r;

        r = qemu_log ? read_file_tail_printable(qemu_log, QEMU_STDERR_TAIL_MAX, &tail) : -ENOMEM;
        if (r < 0) {
                log_field_errno(LOG_ERR, r, "VM=%s",
                                "QEMU exited while VM '%s' was booting, "
                                "and its stderr is unavailable: %m",
                                p->name);
                if (asprintf(ret_error,
                             "QEMU exited while VM '%s' was booting and wrote nothing to stderr: "
                             "check the kernel and QemuPath",
                             p->name) < 0)
                        *ret_error = NULL;
                return -ECHILD;
        }

        log_field(LOG_ERR, "VM=%s", "QEMU exited while VM '%s' was booting: %s", p->name, tail);
        if (asprintf(ret_error, "QEMU exited while VM '%s' was booting: %s", p->name, tail) < 0)
                *ret_error = NULL;
        return -ECHILD;
}

static int check_guest(const VmBootParams *p, const char *qmp_socket, pid_t pid, char **ret_error)
{
        _cleanup_(qmp_closep) Qmp *q = NULL;
        _cleanup_free_ char *status = NULL;
        int r;

        if (waitpid(pid, NULL, WNOHANG) == pid)
                return qemu_exit_error(p, ret_error);

        r = qmp_open(qmp_socket, QMP_TIMEOUT_USEC, &q);
        if (r < 0)
                return 0;
        r = qmp_query_status(q, QMP_TIMEOUT_USEC, &status);
        if (r < 0 || !streq(status, "internal-error"))
                return 0;

        if (asprintf(ret_error,
                     "VM '%s' stopped with a KVM internal error: this host's KVM cannot run the "
                     "guest, set Accelerator=tcg in /etc/banger/bangerd.conf",
                     p->name) < 0)
                *ret_error = NULL;
        return -EIO;
}

static int qemu_boot(const VmBootParams *p, pid_t *ret_pid, uint64_t *ret_start_time,
                     char **ret_error)
{
        _cleanup_free_ char *root = path_join(p->vm_dir, "root.ext4");
        _cleanup_free_ char *initrd = path_join(p->vm_dir, "initrd.img");
        _cleanup_free_ char *console = path_join(p->vm_dir, "console.log");
        _cleanup_free_ char *qemu_log = path_join(p->vm_dir, "qemu.log");
        _cleanup_free_ char *qmp = path_join(p->runtime_dir, "qmp.sock");
        _cleanup_free_ char *agent = path_join(p->runtime_dir, "agent.sock");
        _cleanup_free_ char *scope_error = NULL;
        uint64_t start_time = 0, waited = 0;
        pid_t pid;
        int r;

        if (!root || !initrd || !console || !qemu_log || !qmp || !agent)
                return -ENOMEM;

        r = mkdir_p(p->runtime_dir, 0750);
        if (r < 0)
                return r;
        (void)unlink(qmp);
        (void)unlink(agent);

        QemuConfig c = {
                .binary = p->qemu_path,
                .kernel = p->kernel_path,
                .initrd = initrd,
                .root_disk = root,
                .console_log = console,
                .qmp_socket = qmp,
                .agent_socket = agent,
                .agent_port_name = GUEST_AGENT_PORT_NAME,
                .vcpus = p->vcpus,
                .memory_mib = p->memory_mib,
                .accel = p->accel,
        };

        r = qemu_spawn(&c, qemu_log, &pid);
        if (r < 0) {
                if (asprintf(ret_error, "Failed to start '%s' for VM '%s': %s; check QemuPath",
                             p->qemu_path, p->name, strerror(-r)) < 0)
                        *ret_error = NULL;
                return r;
        }
        (void)proc_start_time(pid, &start_time);

        ScopeSpec spec = {
                .unit = p->unit,
                .slice = "banger.slice",
                .description = p->name,
                .pid = pid,
                .memory_max = (uint64_t)(p->memory_mib * MEMORY_HEADROOM_RATIO) << 20,
                .tasks_max = VM_TASKS_MAX,
        };
        r = scope_start(&spec, SCOPE_TIMEOUT_USEC, &scope_error);
        if (r < 0) {
                if (asprintf(ret_error, "Failed to start scope '%s' for VM '%s': %s", p->unit,
                             p->name, scope_error ?: strerror(-r)) < 0)
                        *ret_error = NULL;
                kill_and_reap(pid);
                return r;
        }

        /* Wait for the agent in slices, checking between them that QEMU still runs and that
         * KVM has not stopped the guest: under KVM QEMU pauses instead of exiting. */
        for (;;) {
                r = agent_wait_ready(agent, AGENT_SLICE_USEC);
                if (r >= 0)
                        break;
                if (r != -ETIMEDOUT) {
                        if (asprintf(ret_error, "Failed to reach the agent of VM '%s': %s", p->name,
                                     strerror(-r)) < 0)
                                *ret_error = NULL;
                        break;
                }
                waited += AGENT_SLICE_USEC;
                r = check_guest(p, qmp, pid, ret_error);
                if (r < 0)
                        break;
                if (waited >= p->boot_timeout_usec) {
                        if (asprintf(ret_error,
                                     "VM '%s' did not become ready within %llu s: see "
                                     "%s/console.log, or raise BootTimeoutSec",
                                     p->name,
                                     (unsigned long long)(p->boot_timeout_usec / USEC_PER_SEC),
                                     p->vm_dir) < 0)
                                *ret_error = NULL;
                        r = -ETIMEDOUT;
                        break;
                }
        }
        if (r < 0) {
                kill_and_reap(pid);
                (void)scope_stop(p->unit, SCOPE_TIMEOUT_USEC);
                return r;
        }

        *ret_pid = pid;
        *ret_start_time = start_time;
        return 0;
}

static int qemu_halt(pid_t pid, const char *runtime_dir, bool force)
{
        _cleanup_free_ char *agent = path_join(runtime_dir, "agent.sock");
        _cleanup_free_ char *qmp_path = path_join(runtime_dir, "qmp.sock");
        int r;

        if (!agent || !qmp_path)
                return -ENOMEM;

        if (!force && agent_shutdown(agent, AGENT_SHUTDOWN_USEC) >= 0) {
                r = wait_exit(pid, SHUTDOWN_WAIT_MSEC);
                if (r != 0)
                        return r < 0 ? r : 0;
        }

        {
                _cleanup_(qmp_closep) Qmp *q = NULL;

                if (qmp_open(qmp_path, QMP_TIMEOUT_USEC, &q) >= 0 &&
                    qmp_execute(q, "quit", NULL, QMP_TIMEOUT_USEC, NULL, NULL) >= 0) {
                        r = wait_exit(pid, QUIT_WAIT_MSEC);
                        if (r != 0)
                                return r < 0 ? r : 0;
                }
        }

        if (kill(pid, SIGKILL) < 0 && errno != ESRCH)
                return negative_errno();
        r = wait_exit(pid, QUIT_WAIT_MSEC);
        if (r < 0)
                return r;
        return r > 0 ? 0 : -ETIMEDOUT;
}

static int qemu_agent_connect(const char *runtime_dir, uint64_t timeout_usec, int *ret_fd)
{
        _cleanup_free_ char *agent = path_join(runtime_dir, "agent.sock");
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        if (!agent)
                return -ENOMEM;
        if (strlen(agent) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, agent);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return negative_errno();
        /* The socket is QEMU's listening chardev, so connect() completes at once or fails. */
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return negative_errno();
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static bool qemu_owns_runtime_dir(const char *runtime_dir)
{
        _cleanup_free_ char *qmp = path_join(runtime_dir, "qmp.sock");

        return qmp && access(qmp, F_OK) >= 0;
}

const VmBackendOps vm_backend_qemu = {
        .backend = VM_BACKEND_QEMU,
        .boot = qemu_boot,
        .halt = qemu_halt,
        .agent_connect = qemu_agent_connect,
        .owns_runtime_dir = qemu_owns_runtime_dir,
};

const VmBackendOps *vm_backend_ops(VmBackend backend)
{
        switch (backend) {
        case VM_BACKEND_QEMU:
                return &vm_backend_qemu;
        case VM_BACKEND_FIRECRACKER:
                return &vm_backend_firecracker;
        default:
                return NULL;
        }
}

int vm_boot(const VmBootParams *p, pid_t *ret_pid, uint64_t *ret_start_time, char **ret_error)
{
        const VmBackendOps *ops = vm_backend_ops(p->backend);

        if (!ops) {
                if (asprintf(ret_error,
                             "VM '%s' has an unknown backend: set Backend=qemu or "
                             "Backend=firecracker in /etc/banger/bangerd.conf and "
                             "create it again",
                             p->name) < 0)
                        *ret_error = NULL;
                return -EPROTONOSUPPORT;
        }
        return ops->boot(p, ret_pid, ret_start_time, ret_error);
}

int vm_halt(pid_t pid, const char *runtime_dir, bool force)
{
        /* vm_halt() gets no record, so the control socket left in runtime_dir names the
         * backend. Without either socket QEMU's path ends in SIGKILL, which fits both. */
        if (vm_backend_firecracker.owns_runtime_dir(runtime_dir))
                return vm_backend_firecracker.halt(pid, runtime_dir, force);
        return vm_backend_qemu.halt(pid, runtime_dir, force);
}

int vm_agent_connect(Vm *vm, uint64_t timeout_usec, int *ret_fd)
{
        const VmBackendOps *ops =
                vm->record->backend ? vm_backend_ops(vm_backend_from_string(vm->record->backend))
                                    : &vm_backend_qemu;

        if (!ops)
                return -EPROTONOSUPPORT;
        return ops->agent_connect(vm->runtime_dir, timeout_usec, ret_fd);
}

/* TODO: the path is QEMU's agent socket. Agent calls on a Firecracker VM need
 * vm_agent_connect(), which sends the vsock CONNECT line first. */
int vm_agent_socket(Vm *vm, char **ret)
{
        char *p = path_join(vm->runtime_dir, "agent.sock");

        if (!p)
                return -ENOMEM;
        *ret = p;
        return 0;
}

int vm_save(Vm *vm)
{
        _cleanup_free_ char *json = NULL, *path = NULL;
        int r;

        r = vm_record_to_json(vm->record, &json);
        if (r < 0)
                return r;
        path = path_join(vm->dir, STORE_RECORD);
        if (!path)
                return -ENOMEM;
        return write_file_atomic(path, json, strlen(json), 0644);
}

void vm_set_state(Vm *vm, VmState state, const char *reason)
{
        char *copy = reason ? strdup(reason) : NULL;
        int r;

        if (vm->record->state == state && !reason)
                return;
        vm->record->state = state;
        free(vm->record->state_reason);
        vm->record->state_reason = copy;
        if (state == VM_STOPPED || state == VM_FAILED || state == VM_CREATED) {
                vm->record->pid = 0;
                vm->record->start_time = 0;
        }

        r = vm_save(vm);
        if (r < 0)
                log_field_errno(LOG_WARNING, r, "VM=%s",
                                "Failed to save the record of VM '%s', ignoring: %m",
                                vm->record->name);
        log_field(LOG_INFO, "VM=%s", "VM '%s' is %s%s%s", vm->record->name,
                  vm_state_to_string(state), reason ? ": " : "", strempty(reason));
        vm_emit_state_changed(vm);
}

static void cleanup_runtime(Vm *vm)
{
        int r = rm_rf(vm->runtime_dir);

        if (r < 0)
                log_warning_errno(r, "Failed to remove '%s', ignoring: %m", vm->runtime_dir);
}

static int on_vmm_exit(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        Vm *vm = userdata;
        siginfo_t si = { 0 };
        bool expected = vm->record->state == VM_STOPPING;
        int r;

        /* Reap it when it is our child; an adopted process has another parent. */
        (void)waitid(P_PIDFD, fd, &si, WEXITED | WNOHANG);
        vm_unwatch_process(vm);

        r = scope_stop(vm->record->unit, SCOPE_TIMEOUT_USEC);
        if (r < 0)
                log_warning_errno(r, "Failed to stop scope '%s', ignoring: %m", vm->record->unit);
        cleanup_runtime(vm);

        if (expected || vm->busy)
                vm_set_state(vm, VM_STOPPED, NULL);
        else
                vm_set_state(vm, VM_STOPPED, "the VMM process exited");
        return 0;
}

int vm_watch_process(Vm *vm)
{
        int fd, r;

        vm_unwatch_process(vm);
        fd = pidfd_open(vm->record->pid, 0);
        if (fd < 0)
                return negative_errno();
        r = sd_event_add_io(vm->manager->event, &vm->pidfd_source, fd, EPOLLIN, on_vmm_exit, vm);
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        vm->pidfd = fd;
        return 0;
}

void vm_unwatch_process(Vm *vm)
{
        vm->pidfd_source = sd_event_source_disable_unref(vm->pidfd_source);
        vm->pidfd = safe_close(vm->pidfd);
}

/* Stops the scope that a create interrupted by the death of bangerd left running. The create
 * job stores the record in state "created" with no pid before it boots the VM, so that record is
 * all that remains. The VM files are complete at that point, so the VM stays and is marked
 * stopped, where "vm start" and "vm rm" work. */
static void reconcile_created(Vm *vm)
{
        VmRecord *rec = vm->record;
        _cleanup_free_ char *active_state = NULL;
        int r;

        if (!rec->unit)
                return;
        r = scope_get_active_state(rec->unit, &active_state);
        if (r < 0) {
                log_warning_errno(r, "Failed to read the state of scope '%s', ignoring: %m",
                                  rec->unit);
                return;
        }
        if (streq(active_state, "inactive"))
                return;

        log_field(LOG_NOTICE, "VM=%s",
                  "Stopping scope '%s' (%s) that an interrupted create of VM '%s' left", rec->unit,
                  active_state, rec->name);
        r = scope_stop(rec->unit, SCOPE_TIMEOUT_USEC);
        if (r < 0)
                log_field_errno(LOG_WARNING, r, "VM=%s", "Failed to stop scope '%s', ignoring: %m",
                                rec->unit);
        cleanup_runtime(vm);
        vm_set_state(vm, VM_STOPPED, "bangerd stopped while it was creating the VM");
}

void vm_reconcile(Vm *vm)
{
        VmRecord *rec = vm->record;
        uint64_t start_time;
        int r;

        if (rec->state == VM_CREATED) {
                reconcile_created(vm);
                return;
        }
        if (rec->state != VM_RUNNING && rec->state != VM_STARTING && rec->state != VM_STOPPING)
                return;

        if (rec->pid > 0 && proc_start_time(rec->pid, &start_time) >= 0 &&
            start_time == rec->start_time) {
                r = vm_watch_process(vm);
                if (r >= 0) {
                        log_field(LOG_INFO, "VM=%s", "Adopted VM '%s' with VMM process %d",
                                  rec->name, (int)rec->pid);
                        vm_set_state(vm, VM_RUNNING, NULL);
                        return;
                }
                log_warning_errno(r, "Failed to watch process %d of VM '%s': %m", (int)rec->pid,
                                  rec->name);
        }

        if (rec->unit) {
                r = scope_stop(rec->unit, SCOPE_TIMEOUT_USEC);
                if (r < 0)
                        log_warning_errno(r, "Failed to stop scope '%s', ignoring: %m", rec->unit);
        }
        cleanup_runtime(vm);
        vm_set_state(vm, VM_STOPPED, "the VMM was gone when bangerd started");
}
