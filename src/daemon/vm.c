#include <assert.h>
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
#include "config.h"
#include "console-log.h"
#include "fileio.h"
#include "guest-config.h"
#include "helper-bus.h"
#include "helper-client.h"
#include "log.h"
#include "macro.h"
#include "qmp.h"
#include "scope.h"
#include "vm-workdisk.h"
#include "vm.h"

#define SCOPE_TIMEOUT_USEC    (30 * USEC_PER_SEC)
#define CONSOLE_LOG_BINARY    BANGER_LIBEXECDIR "/banger-console-log"
#define AGENT_SLICE_USEC      (5 * USEC_PER_SEC)
#define SHUTDOWN_WAIT_MSEC    30000
#define QUIT_WAIT_MSEC        10000
#define AGENT_SHUTDOWN_USEC   (10 * USEC_PER_SEC)
#define QMP_TIMEOUT_USEC      (5 * USEC_PER_SEC)
#define VM_TASKS_MAX          256
#define MEMORY_HEADROOM_RATIO 1.25 /* the VMM's own memory on top of the guest's */
#define QEMU_STDERR_TAIL_MAX  400  /* bytes of qemu.log that a boot error quotes */

/* The number of checks that OpenConsole makes for QEMU's accept of its connection, and the
 * pause between two. */
#define CONSOLE_ACCEPT_POLLS     40
#define CONSOLE_ACCEPT_POLL_NSEC (50 * 1000 * 1000)

void vm_boot_params_done(VmBootParams *p)
{
        free(p->name);
        free(p->qemu_path);
        free(p->firecracker_path);
        free(p->kernel_path);
        free(p->initrd_path);
        free(p->work_disk_path);
        free(p->vm_dir);
        free(p->runtime_dir);
        free(p->unit);
        vm_network_done(&p->net);
        free(p->tap);
        free(p->address);
        free(p->net_cmdline);
        memset(p, 0, sizeof(*p));
}

int vm_network_copy(const VmRecord *rec, VmNetwork *ret)
{
        VmNetwork n = { .slot = rec->slot };

        n.name = strdup(rec->name);
        if (!n.name)
                return -ENOMEM;
        if (rec->n_forwards > 0) {
                n.forwards = calloc(rec->n_forwards, sizeof(PortForward));
                if (!n.forwards) {
                        vm_network_done(&n);
                        return -ENOMEM;
                }
                n.n_forwards = rec->n_forwards;
        }
        for (size_t i = 0; i < n.n_forwards; i++) {
                n.forwards[i] = rec->forwards[i];
                n.forwards[i].proto = strdup(rec->forwards[i].proto);
                if (!n.forwards[i].proto) {
                        vm_network_done(&n);
                        return -ENOMEM;
                }
        }
        *ret = n;
        return 0;
}

void vm_network_done(VmNetwork *n)
{
        free(n->name);
        port_forwards_free(n->forwards, n->n_forwards);
        memset(n, 0, sizeof(*n));
}

static void network_remove_forwards(const VmNetwork *n, size_t n_forwards)
{
        for (size_t i = 0; i < n_forwards; i++) {
                const PortForward *f = &n->forwards[i];
                _cleanup_free_ char *error = NULL;
                int r;

                r = helper_remove_port_forward(n->slot, f->proto, f->host_port, &error);
                if (r < 0 && r != -ENOENT)
                        log_warning_errno(r,
                                          "Failed to remove the forward of %s port %u to VM '%s', "
                                          "ignoring: %s",
                                          f->proto, f->host_port, n->name, error ?: strerror(-r));
        }
}

static void network_delete_tap(const VmNetwork *n)
{
        _cleanup_free_ char *error = NULL;
        int r;

        r = helper_delete_tap(n->slot, &error);
        if (r < 0)
                log_warning_errno(r,
                                  "Failed to delete the tap device of VM '%s' (slot %u), "
                                  "ignoring: %s",
                                  n->name, n->slot, error ?: strerror(-r));
}

void vm_network_down(const VmNetwork *n)
{
        if (n->slot == 0)
                return;
        network_remove_forwards(n, n->n_forwards);
        network_delete_tap(n);
}

int vm_boot_params_set_network(VmBootParams *p, const VmRecord *rec)
{
        int r;

        r = vm_mac_from_id(rec->id, p->mac);
        if (r < 0)
                return r;
        return vm_network_copy(rec, &p->net);
}

void vm_boot_params_take_network(VmBootParams *p, VmRecord *rec)
{
        free(rec->tap);
        rec->tap = TAKE_PTR(p->tap);
        if (p->address) {
                free(rec->address);
                rec->address = TAKE_PTR(p->address);
        }
}

/* Gives a VM whose record predates networking the smallest free slot, and saves it. */
static int vm_ensure_slot(Vm *vm)
{
        unsigned slot;
        int r;

        if (vm->record->slot > 0)
                return 0;
        r = manager_pick_slot(vm->manager, &slot);
        if (r < 0)
                return r;
        vm->record->slot = slot;
        r = vm_save(vm);
        if (r < 0) {
                vm->record->slot = 0;
                return r;
        }
        log_field(LOG_INFO, "VM=%s", "VM '%s' got network slot %u", vm->record->name, slot);
        return 0;
}

int vm_boot_params_init(Vm *vm, VmBootParams *p)
{
        Manager *m = vm->manager;
        Kernel *k = manager_find_kernel(m, vm->record->kernel);
        int r;

        memset(p, 0, sizeof(*p));
        if (!k)
                return -ENOENT;
        r = vm_ensure_slot(vm);
        if (r < 0)
                return r;
        r = vm_boot_params_set_network(p, vm->record);
        if (r < 0)
                return r;
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
        r = vm_boot_params_set_disks(p, k->dir, vm->record->work_size_mib > 0);
        if (r < 0) {
                vm_boot_params_done(p);
                return r;
        }
        return 0;
}

int vm_boot_params_set_disks(VmBootParams *p, const char *kernel_dir, bool work_disk)
{
        free(p->initrd_path);
        free(p->work_disk_path);
        p->work_disk_path = NULL;
        if (!work_disk)
                return asprintf(&p->initrd_path, "%s/initrd.img", p->vm_dir) < 0 ? -ENOMEM : 0;
        if (asprintf(&p->initrd_path, "%s/initramfs.img", kernel_dir) < 0 ||
            asprintf(&p->work_disk_path, "%s/" VM_WORK_DISK_NAME, p->vm_dir) < 0)
                return -ENOMEM;
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
int vmm_wait_exit(pid_t pid, int timeout_msec)
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

void vmm_kill_and_reap(pid_t pid)
{
        (void)kill(pid, SIGKILL);
        (void)waitpid(pid, NULL, 0);
}

int vm_console_prepare(const char *path, uint64_t *ret_size)
{
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        *ret_size = (uint64_t)st.st_size;
        return 0;
}

/* Starts banger-console-log for the VMM. Returns -errno when it could not start, which costs
 * the journal copy of the console but not the VM. */
static int console_log_start(const VmBootParams *p, pid_t vmm_pid, const char *console,
                             uint64_t console_offset, pid_t *ret_pid, int *ret_gate_fd)
{
        _cleanup_close_ int pidfd = pidfd_open(vmm_pid, 0);
        int r;

        if (pidfd < 0)
                r = negative_errno();
        else
                r = console_log_spawn(CONSOLE_LOG_BINARY, console, console_offset, p->name, pidfd,
                                      ret_pid, ret_gate_fd);
        if (r < 0)
                log_warning_errno(r,
                                  "Failed to start '%s' for VM '%s', so its console will not reach "
                                  "the journal, ignoring: %m",
                                  CONSOLE_LOG_BINARY, p->name);
        return r;
}

/* Ends a banger-console-log that never got into the scope, and waits until it is gone, so a
 * failed start leaves no process behind when it returns. It is not bangerd's child, so it is
 * watched through a pidfd. */
static void console_log_abort(pid_t pid, int gate_fd)
{
        _cleanup_close_ int pidfd = pidfd_open(pid, 0);
        struct pollfd p = { .fd = pidfd, .events = POLLIN };

        safe_close(gate_fd);
        if (pidfd < 0)
                return;
        if (pidfd_send_signal(pidfd, SIGKILL, NULL, 0) < 0)
                return;
        while (poll(&p, 1, QUIT_WAIT_MSEC) < 0 && errno == EINTR)
                ;
}

int vm_start_scope(const VmBootParams *p, pid_t vmm_pid, const char *console,
                   uint64_t console_offset, char **ret_error)
{
        _cleanup_free_ char *scope_error = NULL;
        pid_t pids[2] = { vmm_pid, 0 };
        size_t n_pids = 1;
        int gate = -EBADF, r;

        if (console_log_start(p, vmm_pid, console, console_offset, &pids[1], &gate) >= 0)
                n_pids = 2;

        ScopeSpec spec = {
                .unit = p->unit,
                .slice = "banger.slice",
                .description = p->name,
                .pids = pids,
                .n_pids = n_pids,
                .memory_max = (uint64_t)(p->memory_mib * MEMORY_HEADROOM_RATIO) << 20,
                .tasks_max = VM_TASKS_MAX,
        };
        r = helper_start_scope(p->name, &spec, &scope_error);
        if (r < 0) {
                if (n_pids > 1)
                        console_log_abort(pids[1], gate);
                if (asprintf(ret_error, "Failed to start scope '%s' for VM '%s': %s", p->unit,
                             p->name, scope_error ?: strerror(-r)) < 0)
                        *ret_error = NULL;
                return r;
        }

        if (gate >= 0) {
                r = console_log_open_gate(gate);
                if (r < 0)
                        log_warning_errno(r,
                                          "Failed to start copying the console of VM '%s' to the "
                                          "journal, ignoring: %m",
                                          p->name);
        }
        return 0;
}

int vm_agent_version_error(const VmBootParams *p, char **ret_error)
{
        /* A VM made before work disks boots the initramfs that its create built, and others
         * the kernel's. */
        const char *fix = p->work_disk_path ? "import or pull the VM's kernel again, then start "
                                              "the VM"
                                            : "create the VM again";

        if (asprintf(ret_error,
                     "The guest agent of VM '%s' speaks another protocol version than this "
                     "bangerd, because its initramfs '%s' was built by another version of banger: "
                     "%s",
                     p->name, p->initrd_path, fix) < 0)
                *ret_error = NULL;
        return -EPROTONOSUPPORT;
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
        _cleanup_free_ char *console = path_join(p->vm_dir, "console.log");
        _cleanup_free_ char *qemu_log = path_join(p->vm_dir, "qemu.log");
        _cleanup_free_ char *qmp = path_join(p->runtime_dir, "qmp.sock");
        _cleanup_free_ char *agent = path_join(p->runtime_dir, "agent.sock");
        _cleanup_free_ char *console_socket = path_join(p->runtime_dir, VM_CONSOLE_SOCKET);
        uint64_t start_time = 0, waited = 0, console_offset = 0;
        pid_t pid;
        int r;

        if (!root || !console || !qemu_log || !qmp || !agent || !console_socket)
                return -ENOMEM;

        r = mkdir_p(p->runtime_dir, 0750);
        if (r < 0)
                return r;
        (void)unlink(qmp);
        (void)unlink(agent);
        (void)unlink(console_socket);
        /* banger-console-log copies only what this boot appends. */
        r = vm_console_prepare(console, &console_offset);
        if (r < 0)
                return r;

        QemuConfig c = {
                .binary = p->qemu_path,
                .kernel = p->kernel_path,
                .initrd = p->initrd_path,
                .root_disk = root,
                .work_disk = p->work_disk_path,
                .console_log = console,
                .console_socket = console_socket,
                .qmp_socket = qmp,
                .agent_socket = agent,
                .agent_port_name = GUEST_AGENT_PORT_NAME,
                .cmdline_extra = p->net_cmdline,
                .tap = p->tap,
                .mac = p->tap ? p->mac : NULL,
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

        r = vm_start_scope(p, pid, console, console_offset, ret_error);
        if (r < 0) {
                vmm_kill_and_reap(pid);
                return r;
        }

        /* Wait for the agent in slices, checking between them that QEMU still runs and that
         * KVM has not stopped the guest: under KVM QEMU pauses instead of exiting. */
        for (;;) {
                r = agent_wait_ready(agent, AGENT_SLICE_USEC);
                if (r >= 0)
                        break;
                if (r == -EPROTONOSUPPORT) {
                        r = vm_agent_version_error(p, ret_error);
                        break;
                }
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
                vmm_kill_and_reap(pid);
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
                r = vmm_wait_exit(pid, SHUTDOWN_WAIT_MSEC);
                if (r != 0)
                        return r < 0 ? r : 0;
        }

        {
                _cleanup_(qmp_closep) Qmp *q = NULL;

                if (qmp_open(qmp_path, QMP_TIMEOUT_USEC, &q) >= 0 &&
                    qmp_execute(q, "quit", NULL, QMP_TIMEOUT_USEC, NULL, NULL) >= 0) {
                        r = vmm_wait_exit(pid, QUIT_WAIT_MSEC);
                        if (r != 0)
                                return r < 0 ? r : 0;
                }
        }

        if (kill(pid, SIGKILL) < 0 && errno != ESRCH)
                return negative_errno();
        r = vmm_wait_exit(pid, QUIT_WAIT_MSEC);
        if (r < 0)
                return r;
        return r > 0 ? 0 : -ETIMEDOUT;
}

/* Connects a non-blocking stream socket to path, one of QEMU's listening chardevs, so
 * connect() completes at once or fails. */
static int unix_connect(const char *path, int *ret_fd)
{
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return negative_errno();
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int qemu_agent_connect(const char *runtime_dir, uint64_t timeout_usec, int *ret_fd)
{
        _cleanup_free_ char *agent = path_join(runtime_dir, "agent.sock");

        if (!agent)
                return -ENOMEM;
        return unix_connect(agent, ret_fd);
}

static bool qemu_owns_runtime_dir(const char *runtime_dir)
{
        _cleanup_free_ char *qmp = path_join(runtime_dir, "qmp.sock");

        return qmp && access(qmp, F_OK) >= 0;
}

/* Returns 1 when a client is connected to the chardev label, 0 when none is, from QEMU's
 * query-chardev. */
static int qemu_chardev_connected(const char *qmp_path, const char *label)
{
        _cleanup_(qmp_closep) Qmp *q = NULL;
        json_object *list = NULL;
        int r;

        r = qmp_open(qmp_path, QMP_TIMEOUT_USEC, &q);
        if (r < 0)
                return r;
        r = qmp_execute(q, "query-chardev", NULL, QMP_TIMEOUT_USEC, &list, NULL);
        if (r < 0)
                return r;
        r = qmp_chardev_connected(list, label);
        json_object_put(list);
        return r;
}

static int qemu_console_open(const char *runtime_dir, int *ret_fd)
{
        _cleanup_free_ char *qmp = path_join(runtime_dir, "qmp.sock");
        _cleanup_free_ char *path = path_join(runtime_dir, VM_CONSOLE_SOCKET);
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (!qmp || !path)
                return -ENOMEM;

        /* QEMU's socket chardev serves one client. A second connect() succeeds all the same and
         * waits in the listen backlog, so the client would see nothing: ask QEMU first. */
        r = qemu_chardev_connected(qmp, "console");
        if (r < 0)
                return r;
        if (r > 0)
                return -EBUSY;

        r = unix_connect(path, &fd);
        if (r < 0)
                return r;

        /* QEMU accepts in its main loop. Waiting for that makes the next caller see the console
         * taken rather than queue behind this one. */
        for (unsigned i = 0; i < CONSOLE_ACCEPT_POLLS; i++) {
                struct timespec ts = { .tv_nsec = CONSOLE_ACCEPT_POLL_NSEC };

                r = qemu_chardev_connected(qmp, "console");
                if (r != 0)
                        break;
                nanosleep(&ts, NULL);
        }
        if (r < 0)
                return r;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

const VmBackendOps vm_backend_qemu = {
        .backend = VM_BACKEND_QEMU,
        .boot = qemu_boot,
        .halt = qemu_halt,
        .agent_connect = qemu_agent_connect,
        .agent_single_client = true,
        .console_open = qemu_console_open,
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

/* The reconciliation that bangerd runs at start removes the taps and forwards of every slot
 * that was not live when it was requested, so vm_boot() waits for it before it adds its own. */
static pthread_mutex_t reconcile_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reconcile_finished = PTHREAD_COND_INITIALIZER;
static bool reconcile_running;

static void set_reconcile_running(bool running)
{
        pthread_mutex_lock(&reconcile_lock);
        reconcile_running = running;
        if (!running)
                pthread_cond_broadcast(&reconcile_finished);
        pthread_mutex_unlock(&reconcile_lock);
}

static void wait_for_reconcile(void)
{
        pthread_mutex_lock(&reconcile_lock);
        while (reconcile_running)
                pthread_cond_wait(&reconcile_finished, &reconcile_lock);
        pthread_mutex_unlock(&reconcile_lock);
}

static int network_error(char **ret_error, int r, const char *what, const VmBootParams *p,
                         const char *helper_error)
{
        if (asprintf(ret_error, "Failed to %s of VM '%s': %s", what, p->name,
                     helper_error ?: strerror(-r)) < 0)
                *ret_error = NULL;
        return r;
}

/* Installs the forwards in p->net. On failure the ones installed before are removed. */
static int network_add_forwards(VmBootParams *p, char **ret_error)
{
        for (size_t i = 0; i < p->net.n_forwards; i++) {
                const PortForward *f = &p->net.forwards[i];
                _cleanup_free_ char *error = NULL;
                int r;

                r = helper_add_port_forward(p->net.slot, f->proto, f->host_port, f->guest_port,
                                            &error);
                if (r < 0) {
                        if (asprintf(ret_error,
                                     "Failed to forward %s port %u of the host to port %u of VM "
                                     "'%s': %s",
                                     f->proto, f->host_port, f->guest_port, p->name,
                                     error ?: strerror(-r)) < 0)
                                *ret_error = NULL;
                        network_remove_forwards(&p->net, i);
                        return r;
                }
        }
        return 0;
}

static int network_format_cmdline(VmBootParams *p, const HelperNetwork *net)
{
        if (asprintf(&p->net_cmdline, "%s=%s/%u %s=%s %s=%s", GUEST_CMDLINE_ADDRESS, p->address,
                     net->prefix, GUEST_CMDLINE_GATEWAY, net->address, GUEST_CMDLINE_DNS,
                     net->address) < 0) {
                p->net_cmdline = NULL;
                return -ENOMEM;
        }
        return 0;
}

/* Creates the VM's tap and installs its forwards, filling p->tap, p->address and
 * p->net_cmdline. On failure nothing of it is left. */
static int network_up(VmBootParams *p, char **ret_error)
{
        _cleanup_free_ char *error = NULL;
        HelperNetwork net;
        int r;

        wait_for_reconcile();

        r = helper_ensure_network(&net, &error);
        if (r < 0)
                return network_error(ret_error, r, "set up the network bridge", p, error);
        r = helper_create_tap(p->net.slot, &p->tap, &p->address, &error);
        if (r < 0)
                return network_error(ret_error, r, "create the tap device", p, error);

        r = network_format_cmdline(p, &net);
        if (r >= 0)
                r = network_add_forwards(p, ret_error);
        if (r < 0) {
                network_delete_tap(&p->net);
                free(p->tap);
                p->tap = NULL;
                return r;
        }
        log_field(LOG_INFO, "VM=%s", "VM '%s' has tap '%s' and address %s", p->name, p->tap,
                  p->address);
        return 0;
}

int vm_boot(VmBootParams *p, pid_t *ret_pid, uint64_t *ret_start_time, char **ret_error)
{
        const VmBackendOps *ops = vm_backend_ops(p->backend);
        int r;

        if (!ops) {
                if (asprintf(ret_error,
                             "VM '%s' has an unknown backend: set Backend=qemu or "
                             "Backend=firecracker in /etc/banger/bangerd.conf and "
                             "create it again",
                             p->name) < 0)
                        *ret_error = NULL;
                return -EPROTONOSUPPORT;
        }

        r = network_up(p, ret_error);
        if (r < 0)
                return r;

        r = ops->boot(p, ret_pid, ret_start_time, ret_error);
        if (r < 0) {
                vm_network_down(&p->net);
                free(p->tap);
                p->tap = NULL;
        }
        return r;
}

int vm_halt(pid_t pid, const char *runtime_dir, bool force)
{
        /* vm_halt() gets no record, so the control socket left in runtime_dir names the
         * backend. Without either socket QEMU's path ends in SIGKILL, which fits both. */
        if (vm_backend_firecracker.owns_runtime_dir(runtime_dir))
                return vm_backend_firecracker.halt(pid, runtime_dir, force);
        return vm_backend_qemu.halt(pid, runtime_dir, force);
}

/* The backend of a VM's record. A record without one predates the Backend setting and runs
 * QEMU. */
static const VmBackendOps *vm_ops(Vm *vm)
{
        if (!vm->record->backend)
                return &vm_backend_qemu;
        return vm_backend_ops(vm_backend_from_string(vm->record->backend));
}

int vm_agent_init(Vm *vm, VmAgent *ret)
{
        const VmBackendOps *ops = vm_ops(vm);
        char *runtime_dir;

        if (!ops)
                return -EPROTONOSUPPORT;
        runtime_dir = strdup(vm->runtime_dir);
        if (!runtime_dir)
                return -ENOMEM;
        *ret = (VmAgent){
                .ops = ops,
                .runtime_dir = runtime_dir,
                .lock = ops->agent_single_client ? &vm->agent_lock : NULL,
        };
        return 0;
}

void vm_agent_done(VmAgent *a)
{
        /* Only the thread that took the lock may release it. */
        assert(!a->locked);
        free(a->runtime_dir);
        *a = (VmAgent){};
}

int vm_agent_connect(VmAgent *a, uint64_t timeout_usec, int *ret_fd)
{
        struct timespec until;
        int r;

        /* TODO: QEMU VMs have one virtio-serial port for the agent, so one long Exec, such as an
         * interactive shell, makes every other agent call of the VM wait and then fail. */
        if (a->lock && !a->locked) {
                clock_gettime(CLOCK_REALTIME, &until);
                until.tv_sec += VM_AGENT_LOCK_WAIT_SEC;
                r = -pthread_mutex_timedlock(a->lock, &until);
                if (r == -ETIMEDOUT)
                        return -EBUSY;
                if (r < 0)
                        return r;
                a->locked = true;
        }

        r = a->ops->agent_connect(a->runtime_dir, timeout_usec, ret_fd);
        if (r < 0)
                vm_agent_release(a);
        return r;
}

void vm_agent_release(VmAgent *a)
{
        if (!a->locked)
                return;
        pthread_mutex_unlock(a->lock);
        a->locked = false;
}

int vm_console_connect(const VmAgent *a, int *ret_fd)
{
        return a->ops->console_open(a->runtime_dir, ret_fd);
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
                /* The tap exists only while the VM runs, but the slot, address and forwards stay.
                 */
                free(vm->record->tap);
                vm->record->tap = NULL;
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

/* Takes down the network of a VM whose VMM exited, in a worker. */
typedef struct NetworkDownTask {
        Vm *vm; /* stays valid because the VM is busy until the task completes */
        VmNetwork net;
} NetworkDownTask;

static void network_down_task_free(void *userdata)
{
        NetworkDownTask *t = userdata;

        if (!t)
                return;
        vm_network_done(&t->net);
        free(t);
}

static int run_network_down(Job *j, void *userdata, char **ret_error)
{
        NetworkDownTask *t = userdata;

        vm_network_down(&t->net);
        return 0;
}

static int complete_network_down(Job *j, int result, const char *error, void *userdata,
                                 char **ret_error)
{
        NetworkDownTask *t = userdata;

        t->vm->busy = false;
        return 0;
}

/* Starts taking the network down after the VMM exited. The VM stays busy meanwhile, so a Start
 * cannot create a tap for the slot that this task deletes. */
static void start_network_down(Vm *vm)
{
        static unsigned counter = 0;
        NetworkDownTask *t;
        char target[128];
        Job *j;
        int r;

        /* A busy VM belongs to a Stop, Restart or Delete, which takes the network down itself. */
        if (vm->record->slot == 0 || vm->busy)
                return;

        t = calloc(1, sizeof(NetworkDownTask));
        if (!t)
                r = -ENOMEM;
        else {
                t->vm = vm;
                r = vm_network_copy(vm->record, &t->net);
                if (r < 0)
                        free(t);
        }
        if (r >= 0) {
                snprintf(target, sizeof(target), "%s/network-down/%u", vm->record->name, ++counter);
                r = job_start(vm->manager->tasks, "network-down", target, run_network_down,
                              complete_network_down, t, network_down_task_free, &j);
        }
        if (r < 0) {
                log_warning_errno(r, "Failed to take down the network of VM '%s', ignoring: %m",
                                  vm->record->name);
                return;
        }
        vm->busy = true;
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
        start_network_down(vm);
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

typedef struct ReconcileTask {
        unsigned *live_slots;
        size_t n_live;
} ReconcileTask;

static void reconcile_task_free(void *userdata)
{
        ReconcileTask *t = userdata;

        if (!t)
                return;
        free(t->live_slots);
        free(t);
}

static int run_reconcile_network(Job *j, void *userdata, char **ret_error)
{
        ReconcileTask *t = userdata;
        int r;

        r = helper_reconcile(t->live_slots, t->n_live, ret_error);
        set_reconcile_running(false);
        return r;
}

static int complete_reconcile_network(Job *j, int result, const char *error, void *userdata,
                                      char **ret_error)
{
        if (result < 0)
                log_warning_errno(result,
                                  "Failed to remove the taps and forwards of stopped VMs, "
                                  "ignoring: %s",
                                  error ?: strerror(-result));
        return 0;
}

int vm_reconcile_network(Manager *m)
{
        ReconcileTask *t;
        size_t n = 0;
        Job *j;
        int r;

        if (!m->vms)
                return 0;

        for (Vm *vm = m->vms; vm; vm = vm->next)
                n++;
        t = calloc(1, sizeof(ReconcileTask));
        if (!t)
                return -ENOMEM;
        t->live_slots = calloc(n, sizeof(unsigned));
        if (!t->live_slots) {
                free(t);
                return -ENOMEM;
        }
        for (Vm *vm = m->vms; vm; vm = vm->next)
                if (vm->record->state == VM_RUNNING && vm->record->slot > 0)
                        t->live_slots[t->n_live++] = vm->record->slot;

        /* Set before the worker exists, so that no boot can slip in ahead of it. */
        set_reconcile_running(true);
        r = job_start(m->tasks, "reconcile-network", "network", run_reconcile_network,
                      complete_reconcile_network, t, reconcile_task_free, &j);
        if (r < 0) {
                set_reconcile_running(false);
                return r;
        }
        return 0;
}
