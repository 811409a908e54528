#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent-client.h"
#include "backend.h"
#include "fileio.h"
#include "firecracker.h"
#include "helper-client.h"
#include "log.h"
#include "macro.h"
#include "scope.h"
#include "store.h"
#include "vm.h"
#include "vsock.h"

#define SCOPE_TIMEOUT_USEC     (30 * USEC_PER_SEC)
#define API_TIMEOUT_USEC       (5 * USEC_PER_SEC)
#define API_SOCKET_WAIT_USEC   (10 * USEC_PER_SEC)
#define API_RETRY_USEC         (50 * USEC_PER_MSEC)
#define AGENT_SLICE_USEC       (5 * USEC_PER_SEC)
#define VSOCK_ATTEMPT_USEC     (2 * USEC_PER_SEC)
#define AGENT_SHUTDOWN_USEC    (10 * USEC_PER_SEC)
#define SHUTDOWN_WAIT_MSEC     30000
#define CTRL_ALT_DEL_WAIT_MSEC 10000
#define KILL_WAIT_MSEC         10000
#define LOG_READ_MAX           (1024 * 1024)
#define LOG_LINE_MAX           200

/* Firecracker adds "root=/dev/vda rw" for the root drive itself. reboot=k makes a guest reboot
 * reset the i8042 controller, which Firecracker turns into its own exit. */
#define KERNEL_CMDLINE "console=ttyS0 reboot=k panic=1 pci=off loglevel=4"

static char *path_join(const char *dir, const char *name)
{
        char *p;

        if (asprintf(&p, "%s/%s", dir, name) < 0)
                return NULL;
        return p;
}

static void set_error(char **ret_error, const char *format, ...)
        __attribute__((format(printf, 2, 3)));

static void set_error(char **ret_error, const char *format, ...)
{
        va_list ap;

        va_start(ap, format);
        if (vasprintf(ret_error, format, ap) < 0)
                *ret_error = NULL;
        va_end(ap);
}

/* Returns a copy of the last non-empty line of the log at path, at most LOG_LINE_MAX bytes, or
 * NULL when there is none. A failed create removes the VM directory and the log with it, so
 * messages quote the line. */
static char *last_log_line(const char *path)
{
        _cleanup_free_ char *text = NULL;
        size_t size = 0, end, start;

        if (read_full_file(path, LOG_READ_MAX, &text, &size) < 0)
                return NULL;
        end = size;
        while (end > 0 && (text[end - 1] == '\n' || text[end - 1] == '\r'))
                end--;
        start = end;
        while (start > 0 && text[start - 1] != '\n')
                start--;
        if (start == end)
                return NULL;
        if (end - start > LOG_LINE_MAX)
                start = end - LOG_LINE_MAX;
        return strndup(text + start, end - start);
}

static int create_file(const char *path)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);

        if (fd < 0)
                return negative_errno();
        safe_close(fd);
        return 0;
}

/* Starts "BINARY --api-sock API_SOCKET" in its own session, with stdin from /dev/null and
 * stdout and stderr appended to log_path. */
static int spawn_firecracker(const char *binary, const char *api_socket, const char *log_path,
                             pid_t *ret_pid)
{
        char *const argv[] = { (char *)binary, (char *)"--api-sock", (char *)api_socket, NULL };
        char *const envp[] = { (char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
        posix_spawn_file_actions_t actions;
        posix_spawnattr_t attr;
        sigset_t none, all;
        pid_t pid;
        int r;

        r = -posix_spawn_file_actions_init(&actions);
        if (r < 0)
                return r;
        r = -posix_spawnattr_init(&attr);
        if (r < 0) {
                posix_spawn_file_actions_destroy(&actions);
                return r;
        }

        /* An sd-event caller blocks the signals it handles, but Firecracker must see them. */
        sigemptyset(&none);
        sigfillset(&all);
        r = -posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        if (r >= 0)
                r = -posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path,
                                                      O_WRONLY | O_CREAT | O_APPEND | O_NOCTTY,
                                                      0640);
        if (r >= 0)
                r = -posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
        if (r >= 0)
                r = -posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                                             POSIX_SPAWN_SETSIGDEF);
        if (r >= 0)
                r = -posix_spawnattr_setsigmask(&attr, &none);
        if (r >= 0)
                r = -posix_spawnattr_setsigdefault(&attr, &all);
        if (r >= 0)
                r = -posix_spawn(&pid, binary, &actions, &attr, argv, envp);

        posix_spawnattr_destroy(&attr);
        posix_spawn_file_actions_destroy(&actions);
        if (r < 0)
                return r;
        *ret_pid = pid;
        return 0;
}

/* Waits until Firecracker responds on its API socket, or returns -ECHILD when it exits. */
static int wait_api(Firecracker *f, pid_t pid, char **ret_error)
{
        uint64_t waited = 0;

        for (;;) {
                FirecrackerInstanceInfo info = {};
                int r;

                r = firecracker_describe_instance(f, &info, NULL);
                firecracker_instance_info_done(&info);
                if (r >= 0)
                        return 0;
                if (waitpid(pid, NULL, WNOHANG) == pid) {
                        set_error(ret_error,
                                  "Firecracker exited before it responded on its API socket");
                        return -ECHILD;
                }
                if (waited >= API_SOCKET_WAIT_USEC) {
                        set_error(ret_error,
                                  "Firecracker did not answer on its API socket within %llu s",
                                  (unsigned long long)(API_SOCKET_WAIT_USEC / USEC_PER_SEC));
                        return -ETIMEDOUT;
                }
                struct timespec ts = { .tv_nsec = API_RETRY_USEC * 1000 };
                nanosleep(&ts, NULL);
                waited += API_RETRY_USEC;
        }
}

/* Sends the pre-boot configuration and InstanceStart. */
static int configure_and_start(const VmBootParams *p, Firecracker *f, const char *root,
                               const char *console, const char *fc_log, const char *vsock,
                               char **ret_error)
{
        _cleanup_free_ char *boot_args = NULL;
        int r;

        FirecrackerLogger logger = { .log_path = fc_log, .level = "Warning", .show_level = true };
        r = firecracker_put_logger(f, &logger, ret_error);
        if (r < 0)
                return r;

        FirecrackerMachineConfig machine = { .vcpu_count = p->vcpus,
                                             .mem_size_mib = p->memory_mib };
        r = firecracker_put_machine_config(f, &machine, ret_error);
        if (r < 0)
                return r;

        if (asprintf(&boot_args, "%s%s%s", KERNEL_CMDLINE, p->net_cmdline ? " " : "",
                     strempty(p->net_cmdline)) < 0)
                return -ENOMEM;
        r = firecracker_boot_args_validate(boot_args, ret_error);
        if (r < 0)
                return r;
        FirecrackerBootSource boot = {
                .kernel_image_path = p->kernel_path,
                .initrd_path = p->initrd_path,
                .boot_args = boot_args,
        };
        r = firecracker_put_boot_source(f, &boot, ret_error);
        if (r < 0)
                return r;

        FirecrackerDrive drive = {
                .drive_id = "root",
                .path_on_host = root,
                .is_root_device = true,
                .cache_type = "Writeback",
        };
        r = firecracker_put_drive(f, &drive, ret_error);
        if (r < 0)
                return r;

        /* Firecracker keeps the root drive first and the others in the order they were added
         * (BlockBuilder in its src/vmm/src/vmm_config/drive.rs), so the guest names this one
         * vdb. NOTE: no test boots a Firecracker VM to check that name. */
        if (p->work_disk_path) {
                FirecrackerDrive work = {
                        .drive_id = "work",
                        .path_on_host = p->work_disk_path,
                        .cache_type = "Writeback",
                };
                r = firecracker_put_drive(f, &work, ret_error);
                if (r < 0)
                        return r;
        }

        if (p->tap) {
                FirecrackerNetworkInterface net = {
                        .iface_id = "net0",
                        .host_dev_name = p->tap,
                        .guest_mac = p->mac,
                };
                r = firecracker_put_network_interface(f, &net, ret_error);
                if (r < 0)
                        return r;
        }

        r = firecracker_put_vsock(f, FIRECRACKER_GUEST_CID, vsock, ret_error);
        if (r < 0)
                return r;
        r = firecracker_put_serial(f, console, ret_error);
        if (r < 0)
                return r;
        return firecracker_start(f, ret_error);
}

static int firecracker_agent_connect(const char *runtime_dir, uint64_t timeout_usec, int *ret_fd)
{
        _cleanup_free_ char *vsock = path_join(runtime_dir, FIRECRACKER_VSOCK_SOCKET);

        if (!vsock)
                return -ENOMEM;
        return vsock_connect(vsock, AGENT_VSOCK_PORT,
                             timeout_usec < VSOCK_ATTEMPT_USEC ? timeout_usec : VSOCK_ATTEMPT_USEC,
                             timeout_usec, ret_fd, NULL, NULL);
}

/* Connects to the agent and runs the handshake, retrying until timeout_usec passes. */
static int wait_agent(const char *runtime_dir, uint64_t timeout_usec)
{
        int fd, r;

        r = firecracker_agent_connect(runtime_dir, timeout_usec, &fd);
        if (r < 0)
                return r;
        return agent_wait_ready_fd(fd, timeout_usec);
}

static int firecracker_boot(const VmBootParams *p, pid_t *ret_pid, uint64_t *ret_start_time,
                            char **ret_error)
{
        _cleanup_free_ char *root = path_join(p->vm_dir, "root.ext4");
        _cleanup_free_ char *console = path_join(p->vm_dir, "console.log");
        _cleanup_free_ char *fc_log = path_join(p->vm_dir, "firecracker.log");
        _cleanup_free_ char *api = path_join(p->runtime_dir, FIRECRACKER_API_SOCKET);
        _cleanup_free_ char *vsock = path_join(p->runtime_dir, FIRECRACKER_VSOCK_SOCKET);
        _cleanup_(firecracker_freep) Firecracker *f = NULL;
        _cleanup_free_ char *api_error = NULL;
        uint64_t start_time = 0, waited = 0, console_offset = 0;
        pid_t pid;
        int r;

        if (!root || !console || !fc_log || !api || !vsock)
                return -ENOMEM;

        r = mkdir_p(p->runtime_dir, 0750);
        if (r < 0)
                return r;
        (void)unlink(api);
        (void)unlink(vsock);
        /* Firecracker's logger opens its file without creating it. Both logs are appended to,
         * as with QEMU, so the output of earlier boots stays, and banger-console-log copies
         * only what this boot appends. */
        r = vm_console_prepare(console, &console_offset);
        if (r >= 0)
                r = create_file(fc_log);
        if (r < 0)
                return r;

        r = spawn_firecracker(p->firecracker_path, api, fc_log, &pid);
        if (r < 0) {
                set_error(ret_error, "Failed to start '%s' for VM '%s': %s; check FirecrackerPath",
                          p->firecracker_path, p->name, strerror(-r));
                return r;
        }
        (void)proc_start_time(pid, &start_time);

        r = vm_start_scope(p, pid, console, console_offset, ret_error);
        if (r < 0) {
                siginfo_t si = {};

                /* A binary that exits at once is gone before systemd can move its pid, so the
                 * error names the exit, not the failed scope call. */
                if (waitid(P_PID, pid, &si, WEXITED | WNOHANG | WNOWAIT) >= 0 && si.si_pid == pid) {
                        _cleanup_free_ char *line = last_log_line(fc_log);

                        free(*ret_error);
                        set_error(ret_error,
                                  "Failed to configure Firecracker for VM '%s': Firecracker exited "
                                  "before it responded on its API socket; see "
                                  "%s/firecracker.log%s%s%s",
                                  p->name, p->vm_dir, line ? " (last line: " : "", strempty(line),
                                  line ? ")" : "");
                }
                vmm_kill_and_reap(pid);
                return r;
        }

        r = firecracker_new(api, API_TIMEOUT_USEC, &f);
        if (r >= 0)
                r = wait_api(f, pid, &api_error);
        if (r >= 0)
                r = configure_and_start(p, f, root, console, fc_log, vsock, &api_error);
        if (r < 0) {
                _cleanup_free_ char *line = last_log_line(fc_log);

                set_error(ret_error,
                          "Failed to configure Firecracker for VM '%s': %s; see "
                          "%s/firecracker.log%s%s%s",
                          p->name, api_error ?: strerror(-r), p->vm_dir,
                          line ? " (last line: " : "", strempty(line), line ? ")" : "");
                if (r == -ECHILD)
                        goto fail_reaped;
                goto fail;
        }

        for (;;) {
                r = wait_agent(p->runtime_dir, AGENT_SLICE_USEC);
                if (r >= 0)
                        break;
                if (r == -EPROTONOSUPPORT) {
                        r = vm_agent_version_error(p, ret_error);
                        goto fail;
                }
                waited += AGENT_SLICE_USEC;
                if (waitpid(pid, NULL, WNOHANG) == pid) {
                        set_error(ret_error,
                                  "Firecracker exited while VM '%s' was booting: see "
                                  "%s/firecracker.log and console.log",
                                  p->name, p->vm_dir);
                        r = -ECHILD;
                        goto fail_reaped;
                }
                if (waited >= p->boot_timeout_usec) {
                        set_error(ret_error,
                                  "The agent of VM '%s' did not answer on vsock port %u within "
                                  "%llu s: "
                                  "the guest agent may lack vsock support; see %s/console.log, "
                                  "set Backend=qemu in /etc/banger/bangerd.conf, or raise "
                                  "BootTimeoutSec",
                                  p->name, AGENT_VSOCK_PORT,
                                  (unsigned long long)(p->boot_timeout_usec / USEC_PER_SEC),
                                  p->vm_dir);
                        r = -ETIMEDOUT;
                        goto fail;
                }
        }

        *ret_pid = pid;
        *ret_start_time = start_time;
        return 0;

fail:
        vmm_kill_and_reap(pid);
fail_reaped:
        (void)scope_stop(p->unit, SCOPE_TIMEOUT_USEC);
        return r;
}

static int firecracker_halt(pid_t pid, const char *runtime_dir, bool force)
{
        _cleanup_free_ char *api = path_join(runtime_dir, FIRECRACKER_API_SOCKET);
        int fd, r;

        if (!api)
                return -ENOMEM;

        if (!force && firecracker_agent_connect(runtime_dir, AGENT_SHUTDOWN_USEC, &fd) >= 0 &&
            agent_shutdown_fd(fd, AGENT_SHUTDOWN_USEC) >= 0) {
                r = vmm_wait_exit(pid, SHUTDOWN_WAIT_MSEC);
                if (r != 0)
                        return r < 0 ? r : 0;
        }

        /* Ctrl+Alt+Del makes an x86 guest reboot, which with reboot=k ends Firecracker. */
        if (!force) {
                _cleanup_(firecracker_freep) Firecracker *f = NULL;

                if (firecracker_new(api, API_TIMEOUT_USEC, &f) >= 0) {
                        FirecrackerInstanceInfo info = {};

                        /* Post-boot calls need the client's phase, which it takes from GET /. */
                        (void)firecracker_describe_instance(f, &info, NULL);
                        firecracker_instance_info_done(&info);
                        if (firecracker_send_ctrl_alt_del(f, NULL) >= 0) {
                                r = vmm_wait_exit(pid, CTRL_ALT_DEL_WAIT_MSEC);
                                if (r != 0)
                                        return r < 0 ? r : 0;
                        }
                }
        }

        if (kill(pid, SIGKILL) < 0 && errno != ESRCH)
                return negative_errno();
        r = vmm_wait_exit(pid, KILL_WAIT_MSEC);
        if (r < 0)
                return r;
        return r > 0 ? 0 : -ETIMEDOUT;
}

static bool firecracker_owns_runtime_dir(const char *runtime_dir)
{
        _cleanup_free_ char *api = path_join(runtime_dir, FIRECRACKER_API_SOCKET);

        return api && access(api, F_OK) >= 0;
}

/* TODO: Firecracker writes the serial console to console.log only, and reads no input from
 * it, so OpenConsole has nothing to connect to. */
static int firecracker_console_open(const char *runtime_dir, int *ret_fd)
{
        return -EOPNOTSUPP;
}

const VmBackendOps vm_backend_firecracker = {
        .backend = VM_BACKEND_FIRECRACKER,
        .boot = firecracker_boot,
        .halt = firecracker_halt,
        .agent_connect = firecracker_agent_connect,
        .console_open = firecracker_console_open,
        .owns_runtime_dir = firecracker_owns_runtime_dir,
};
