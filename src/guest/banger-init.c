/* banger-init: PID 1 of the guest initramfs.
 *
 * Loads the modules the VM needs, mounts the root disk at /sysroot and the work disk at
 * /sysroot/work, and reads the VM's configuration from the work disk. Then it configures the
 * network that the kernel command line describes, sets the hostname, and installs the VM's SSH
 * host key and authorized keys. It starts the image's sshd, when it has one, and waits until it
 * listens, then starts banger-agent and runs the image's command chrooted in /sysroot. Then it
 * reaps children for ever, and restarts the agent and sshd when they exit.
 * SIGTERM, SIGINT (Ctrl-Alt-Del), SIGPWR and the agent's shutdown request power the VM off.
 * Every failure prints a "banger-init: ..." line on the console; a fatal one powers off. */

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <linux/input.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent-ports.h"
#include "agent-proto.h"
#include "guest-config.h"
#include "guest-net.h"
#include "guest-paths.h"
#include "guest-ssh.h"
#include "guest-util.h"
#include "macro.h"
#include "strv.h"

#define SYSROOT          "/sysroot"
#define ROOT_DEVICE      "/dev/vda"
#define WORK_DEVICE      "/dev/vdb"
#define SYSROOT_WORK     SYSROOT GUEST_WORK_MOUNT
#define SSHD_PATH        "/usr/sbin/sshd" /* inside SYSROOT */
#define MODULES_LIST     "/etc/banger/modules"
#define ROOT_WAIT_USEC   (30u * 1000u * 1000u)
#define LINK_WAIT_USEC   (10u * 1000u * 1000u)
#define CMDLINE_MAX      (64u * 1024u)
#define DEFAULT_HOSTNAME "banger"
/* An agent or sshd that dies sooner than this after its start is restarted only after this
 * delay, so a broken one does not spin. */
#define RESTART_USEC (1000u * 1000u)
/* How long sshd may take to listen before banger-init starts the agent anyway. */
#define SSHD_WAIT_USEC (30u * 1000u * 1000u)
/* How long processes get between SIGTERM and SIGKILL at power-off. */
#define STOP_TIMEOUT_USEC (3u * 1000u * 1000u)

static void __attribute__((noreturn)) power_off(void);

static void __attribute__((noreturn)) fatal(void)
{
        guest_log("Fatal error, powering off");
        power_off();
}

static void open_console(void)
{
        int fd;

        /* The kernel gives PID 1 /dev/console as stdio only when the initramfs has that
         * node, so open it again from devtmpfs. */
        fd = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (fd < 0)
                return;
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
}

static int mount_one(const char *source, const char *target, const char *type, unsigned long flags,
                     const char *data)
{
        if (mkdir(target, 0755) < 0 && errno != EEXIST)
                return guest_log_errno(-errno, "Failed to create '%s'", target);
        if (mount(source, target, type, flags, data) < 0)
                return guest_log_errno(-errno, "Failed to mount %s on '%s'", type, target);
        return 0;
}

static int mount_api_filesystems(const char *prefix)
{
        static const struct {
                const char *source, *path, *type;
                unsigned long flags;
                const char *data;
        } table[] = {
                { "devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755" },
                { "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
                { "sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
                { "tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755" },
                { "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                  "mode=0620,ptmxmode=0666" },
                { "tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777" },
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                char target[256];
                int r;

                snprintf(target, sizeof(target), "%s%s", prefix, table[i].path);
                r = mount_one(table[i].source, target, table[i].type, table[i].flags,
                              table[i].data);
                if (r < 0)
                        return r;
        }
        return 0;
}

static const char *module_search_name;
static char *module_found_path;

static bool module_name_equal(const char *a, const char *b)
{
        for (; *a && *b; a++, b++) {
                char x = *a == '-' ? '_' : *a, y = *b == '-' ? '_' : *b;
                if (x != y)
                        return false;
        }
        return *a == *b;
}

static int find_module_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
        const char *base = path + ftw->base;
        size_t n = strlen(base);
        char name[256];

        if (type != FTW_F || n < 4 || n >= sizeof(name) || !streq(base + n - 3, ".ko"))
                return 0;
        memcpy(name, base, n - 3);
        name[n - 3] = '\0';
        if (!module_name_equal(name, module_search_name))
                return 0;

        module_found_path = strdup(path);
        return 1;
}

/* Resolves a line of the modules list: an absolute path, a path relative to
 * /lib/modules/RELEASE, or a bare module name searched for under that directory. */
static int resolve_module(const char *release, const char *entry, char **ret)
{
        char dir[256];

        if (entry[0] == '/')
                return (*ret = strdup(entry)) ? 0 : -ENOMEM;

        snprintf(dir, sizeof(dir), "/lib/modules/%s", release);
        if (strchr(entry, '/'))
                return asprintf(ret, "%s/%s", dir, entry) < 0 ? -ENOMEM : 0;

        module_search_name = entry;
        module_found_path = NULL;
        if (nftw(dir, find_module_cb, 16, FTW_PHYS) <= 0 || !module_found_path)
                return -ENOENT;
        *ret = module_found_path;
        return 0;
}

static void load_module(const char *release, const char *entry)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        r = resolve_module(release, entry, &path);
        if (r < 0) {
                guest_log_errno(r, "Failed to find module '%s' under /lib/modules/%s, ignoring",
                                entry, release);
                return;
        }

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                guest_log_errno(-errno, "Failed to open module '%s', ignoring", path);
                return;
        }
        if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
                guest_log_errno(-errno, "Failed to load module '%s', ignoring", path);
}

static void load_modules(void)
{
        _cleanup_fclose_ FILE *f = NULL;
        struct utsname u;
        char line[512];

        f = fopen(MODULES_LIST, "re");
        if (!f) {
                if (errno != ENOENT)
                        guest_log_errno(-errno, "Failed to open '%s', ignoring", MODULES_LIST);
                return;
        }
        uname(&u);

        while (fgets(line, sizeof(line), f)) {
                char *s = line + strspn(line, " \t");

                s[strcspn(s, " \t\r\n")] = '\0';
                if (*s == '\0' || *s == '#')
                        continue;
                load_module(u.release, s);
        }
}

static int wait_for_disk(const char *what, const char *device)
{
        uint64_t deadline = guest_now_usec() + ROOT_WAIT_USEC;

        while (access(device, F_OK) < 0) {
                if (guest_now_usec() >= deadline)
                        return guest_log_errno(-ENODEV,
                                               "%s '%s' did not appear within %u s (is "
                                               "virtio_blk listed in '%s'?)",
                                               what, device, ROOT_WAIT_USEC / 1000000u,
                                               MODULES_LIST);
                guest_sleep_usec(50 * 1000);
        }
        return 0;
}

static int mount_root(void)
{
        int r;

        r = wait_for_disk("Root disk", ROOT_DEVICE);
        if (r < 0)
                return r;
        r = mount_one(ROOT_DEVICE, SYSROOT, "ext4", 0, NULL);
        if (r < 0)
                return r;

        r = mount_api_filesystems(SYSROOT);
        if (r < 0)
                return r;

        /* Programs expect a writable /tmp. An image without one gets a tmpfs there. */
        if (access(SYSROOT "/tmp", F_OK) < 0)
                return mount_one("tmpfs", SYSROOT "/tmp", "tmpfs", MS_NOSUID | MS_NODEV,
                                 "mode=1777");
        return 0;
}

/* A VM made before work disks has its configuration in the initramfs, which is built for each
 * such VM, and no work disk. Every other VM boots the kernel's shared initramfs. */
static bool vm_has_work_disk(void)
{
        return access(GUEST_CONFIG_PATH, F_OK) < 0;
}

static int mount_work(void)
{
        int r;

        r = wait_for_disk("Work disk", WORK_DEVICE);
        if (r < 0)
                return r;
        return mount_one(WORK_DEVICE, SYSROOT_WORK, "ext4", MS_NOSUID | MS_NODEV, NULL);
}

static int load_config(bool work_disk, GuestConfig **ret)
{
        if (work_disk)
                return guest_config_load(SYSROOT_WORK "/" WORKDISK_CONFIG, ret);
        return guest_config_load(GUEST_CONFIG_PATH, ret);
}

/* Installs the SSH host key and authorized keys from the work disk in a child chrooted in
 * SYSROOT, so that paths resolve as in the image. A failure leaves the VM without SSH access
 * but booting, reachable through the agent. */
static void install_ssh_files(const GuestConfig *c)
{
        int status;
        pid_t pid;

        pid = fork();
        if (pid < 0) {
                guest_log_errno(-errno, "Failed to install the SSH keys, ignoring");
                return;
        }
        if (pid == 0) {
                if (chroot(SYSROOT) < 0 || chdir("/") < 0) {
                        guest_log_errno(-errno, "Failed to enter '%s'", SYSROOT);
                        _exit(EXIT_FAILURE);
                }
                umask(022);
                if (guest_ssh_install_host_key("") < 0 ||
                    guest_ssh_install_authorized_keys("", c->user) < 0)
                        _exit(EXIT_FAILURE);
                _exit(EXIT_SUCCESS);
        }

        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                guest_log("Failed to install the SSH keys, ignoring");
}

static int write_string(const char *path, const char *s, int flags)
{
        _cleanup_close_ int fd = -EBADF;
        size_t n = strlen(s);

        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | flags, 0644);
        if (fd < 0)
                return negative_errno();
        if (write(fd, s, n) != (ssize_t)n)
                return errno > 0 ? -errno : -EIO;
        return 0;
}

static void setup_hostname(const GuestConfig *c)
{
        const char *hostname = c->hostname ?: DEFAULT_HOSTNAME;
        char buf[512];
        int r;

        if (sethostname(hostname, strlen(hostname)) < 0)
                guest_log_errno(-errno, "Failed to set hostname '%s', ignoring", hostname);

        snprintf(buf, sizeof(buf), "%s\n", hostname);
        r = write_string(SYSROOT "/etc/hostname", buf, O_TRUNC);
        if (r < 0)
                guest_log_errno(r, "Failed to write '%s', ignoring", SYSROOT "/etc/hostname");

        r = guest_net_add_hosts_entry(SYSROOT "/etc", hostname);
        if (r < 0)
                guest_log_errno(r, "Failed to update '%s', ignoring", SYSROOT "/etc/hosts");
}

/* Waits for the first ethernet link, which appears once virtio_net has probed the device. */
static int wait_for_link(char link[IFNAMSIZ])
{
        uint64_t deadline = guest_now_usec() + LINK_WAIT_USEC;
        int r;

        while ((r = guest_net_find_link("/sys/class/net", link)) == -ENODEV &&
               guest_now_usec() < deadline)
                guest_sleep_usec(50 * 1000);
        return r;
}

/* Configures lo, then the network that the kernel command line describes, if it describes
 * one. Failures leave the VM without network but booting, reachable through the agent. */
static void setup_network(void)
{
        _cleanup_free_ char *cmdline = NULL;
        char error[GUEST_NET_ERROR_MAX], link[IFNAMSIZ], address[INET_ADDRSTRLEN],
                gateway[INET_ADDRSTRLEN];
        GuestNet net;
        size_t size;
        int r;

        r = guest_net_configure_loopback();
        if (r < 0)
                guest_log_errno(r, "Failed to bring up 'lo', ignoring");

        r = guest_read_file("/proc/cmdline", CMDLINE_MAX, &cmdline, &size);
        if (r < 0) {
                guest_log_errno(r, "Failed to read '/proc/cmdline', starting without network");
                return;
        }
        r = guest_net_parse_cmdline(cmdline, &net, error, sizeof(error));
        if (r < 0) {
                guest_log("%s, starting without network", error);
                return;
        }
        if (r == 0)
                return;

        r = wait_for_link(link);
        if (r < 0) {
                guest_log_errno(r,
                                "No ethernet link appeared within %u s (is virtio_net listed in "
                                "'%s'?), starting without network",
                                LINK_WAIT_USEC / 1000000u, MODULES_LIST);
                return;
        }

        inet_ntop(AF_INET, &net.address, address, sizeof(address));
        inet_ntop(AF_INET, &net.gateway, gateway, sizeof(gateway));
        r = guest_net_configure_link(link, &net);
        if (r < 0) {
                guest_log_errno(r, "Failed to configure '%s' with %s/%u via %s", link, address,
                                net.prefix, gateway);
                return;
        }
        guest_log("network %s/%u via %s", address, net.prefix, gateway);

        r = guest_net_write_resolv_conf(SYSROOT "/etc", net.dns);
        if (r < 0)
                guest_log_errno(r, "Failed to write '%s', ignoring", SYSROOT "/etc/resolv.conf");
}

static pid_t start_agent(void)
{
        pid_t pid = fork();

        if (pid < 0) {
                guest_log_errno(-errno, "Failed to start '%s'", AGENT_GUEST_PATH);
                return 0;
        }
        if (pid == 0) {
                sigset_t all;

                sigfillset(&all);
                sigprocmask(SIG_UNBLOCK, &all, NULL);
                execl(AGENT_GUEST_PATH, "banger-agent", "--root", SYSROOT, (char *)NULL);
                guest_log_errno(-errno, "Failed to execute '%s'", AGENT_GUEST_PATH);
                _exit(127);
        }
        return pid;
}

static bool has_sshd(void)
{
        return access(SYSROOT SSHD_PATH, X_OK) >= 0;
}

/* Starts the image's sshd chrooted in SYSROOT, in the foreground and logging to the console.
 * Returns its pid, or 0 when it could not start. */
static pid_t start_sshd(void)
{
        static char *const env[] = { (char *)"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                             "/usr/bin:/sbin:/bin",
                                     NULL };
        pid_t pid;

        /* sshd's privilege separation directory, on the tmpfs at /run. */
        if (mkdir(SYSROOT "/run/sshd", 0755) < 0 && errno != EEXIST)
                guest_log_errno(-errno, "Failed to create '%s', ignoring", SYSROOT "/run/sshd");

        pid = fork();
        if (pid < 0) {
                guest_log_errno(-errno, "Failed to start '%s'", SSHD_PATH);
                return 0;
        }
        if (pid == 0) {
                sigset_t all;

                sigfillset(&all);
                sigprocmask(SIG_UNBLOCK, &all, NULL);
                setsid();
                if (chroot(SYSROOT) < 0 || chdir("/") < 0) {
                        guest_log_errno(-errno, "Failed to enter '%s'", SYSROOT);
                        _exit(126);
                }
                execle(SSHD_PATH, SSHD_PATH, "-D", "-e", (char *)NULL, env);
                guest_log_errno(-errno, "Failed to execute '%s'", SSHD_PATH);
                _exit(127);
        }
        guest_log("sshd started");
        return pid;
}

static bool process_listens(pid_t pid)
{
        AgentPortList ports = {};
        bool found = false;

        if (agent_ports_collect("/proc", &ports) < 0)
                return false;
        for (size_t i = 0; i < ports.n_ports && !found; i++)
                found = ports.ports[i].protocol == IPPROTO_TCP &&
                        ports.ports[i].pid == (uint32_t)pid;
        agent_port_list_done(&ports);
        return found;
}

/* Returns true when pid has exited, without reaping it: the supervisor loop does that. */
static bool process_exited(pid_t pid)
{
        siginfo_t si = {};

        return waitid(P_PID, pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

/* Waits until sshd listens on a TCP port, exits, or SSHD_WAIT_USEC pass. bangerd reports a VM
 * as running once the agent replies, and the agent starts after this, so ssh works as soon as
 * 'vm create' returns. */
static void wait_for_sshd(pid_t pid)
{
        uint64_t deadline = guest_now_usec() + SSHD_WAIT_USEC;

        while (pid > 0 && !process_listens(pid) && !process_exited(pid)) {
                if (guest_now_usec() >= deadline) {
                        guest_log("sshd does not listen after %u s, starting banger-agent anyway",
                                  SSHD_WAIT_USEC / 1000000u);
                        return;
                }
                guest_sleep_usec(50 * 1000);
        }
}

static void __attribute__((noreturn)) exec_command(const GuestConfig *c)
{
        _cleanup_strv_free_ char **env = NULL;
        const char *cwd = isempty(c->workdir) ? "/" : c->workdir;
        sigset_t all;
        uid_t uid;
        gid_t gid;
        int r;

        sigfillset(&all);
        sigprocmask(SIG_UNBLOCK, &all, NULL);
        setsid();
        /* Make the console the command's controlling terminal, so ^C reaches it. */
        (void)ioctl(STDIN_FILENO, TIOCSCTTY, 0);

        r = guest_user_resolve(SYSROOT, c->user, &uid, &gid);
        if (r < 0) {
                guest_log_errno(r, "Failed to resolve user '%s'", c->user);
                _exit(126);
        }
        env = guest_env_with_defaults(c->env);
        if (!env)
                _exit(126);

        if (chroot(SYSROOT) < 0 || chdir(cwd) < 0) {
                guest_log_errno(-errno, "Failed to enter '%s' in '%s'", cwd, SYSROOT);
                _exit(126);
        }
        if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
                guest_log_errno(-errno, "Failed to switch to uid %u gid %u", (unsigned)uid,
                                (unsigned)gid);
                _exit(126);
        }

        environ = env;
        execvp(c->argv[0], c->argv);
        r = errno;
        guest_log_errno(-r, "Failed to execute '%s'", c->argv[0]);
        _exit(r == ENOENT ? 127 : 126);
}

static pid_t start_command(const GuestConfig *c)
{
        pid_t pid;

        if (strv_length(c->argv) == 0)
                return 0;

        pid = fork();
        if (pid < 0) {
                guest_log_errno(-errno, "Failed to start '%s'", c->argv[0]);
                return 0;
        }
        if (pid == 0)
                exec_command(c);
        return pid;
}

static void log_exit(const char *what, int status)
{
        if (WIFSIGNALED(status))
                guest_log("%s killed by signal %d (%s)", what, WTERMSIG(status),
                          strsignal(WTERMSIG(status)));
        else
                guest_log("%s exited with status %d", what, WEXITSTATUS(status));
}

static void stop_processes(void)
{
        uint64_t deadline = guest_now_usec() + STOP_TIMEOUT_USEC;

        (void)kill(-1, SIGTERM);
        while (guest_now_usec() < deadline) {
                pid_t pid = waitpid(-1, NULL, WNOHANG);

                if (pid < 0 && errno == ECHILD)
                        return;
                if (pid <= 0)
                        guest_sleep_usec(20 * 1000);
        }
        (void)kill(-1, SIGKILL);
        while (waitpid(-1, NULL, 0) > 0)
                ;
}

/* Unmounts a disk's file system, or remounts it read-only when it is busy. A path that is not
 * a mount point is left alone. */
static void unmount_disk(const char *path)
{
        if (umount(path) < 0 && errno != EINVAL) {
                guest_log_errno(-errno, "Failed to unmount '%s', remounting read-only", path);
                (void)mount(NULL, path, NULL, MS_REMOUNT | MS_RDONLY, NULL);
        }
}

static void unmount_sysroot(void)
{
        static const char *const targets[] = {
                SYSROOT "/dev/shm", SYSROOT "/dev/pts", SYSROOT "/run",
                SYSROOT "/sys",     SYSROOT "/proc",    SYSROOT "/dev",
        };

        for (size_t i = 0; i < ELEMENTSOF(targets); i++)
                (void)umount2(targets[i], MNT_DETACH);

        unmount_disk(SYSROOT_WORK);
        unmount_disk(SYSROOT);
}

static void __attribute__((noreturn)) power_off(void)
{
        stop_processes();
        sync();
        unmount_sysroot();
        sync();
        guest_log("Powering off");

        /* With ACPI (QEMU microvm) a power-off reaches the VMM as a clean shutdown, which it
         * can tell apart from a panic. Without ACPI the kernel can only halt, so reboot
         * instead: the VM runs with reboot=t and the VMM exits when the guest reboots. */
        if (access("/sys/firmware/acpi", F_OK) >= 0)
                reboot(RB_POWER_OFF);
        reboot(RB_AUTOBOOT);
        for (;;)
                pause();
}

static int setup_signals(void)
{
        sigset_t mask;
        int fd;

        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGPWR);
        sigprocmask(SIG_BLOCK, &mask, NULL);

        fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (fd < 0)
                return guest_log_errno(-errno, "Failed to create a signalfd");

        /* Ctrl-Alt-Del sends SIGINT to PID 1 instead of rebooting at once. */
        (void)reboot(RB_DISABLE_CAD);
        return fd;
}

#define POWER_BUTTONS_MAX 4

static bool test_bit(const unsigned long *bits, unsigned bit)
{
        return bits[bit / (8 * sizeof(long))] & (1UL << (bit % (8 * sizeof(long))));
}

/* Opens the input devices that have a power key, such as the ACPI power button that QEMU's
 * system_powerdown presses. They exist only when the button and evdev modules are loaded. */
static size_t open_power_buttons(int *fds)
{
        size_t n = 0;
        DIR *d;
        struct dirent *de;

        d = opendir("/dev/input");
        if (!d)
                return 0;

        while ((de = readdir(d)) && n < POWER_BUTTONS_MAX) {
                unsigned long keys[KEY_MAX / (8 * sizeof(long)) + 1] = {};
                char path[300];
                int fd;

                if (!strneq(de->d_name, "event", 5))
                        continue;
                snprintf(path, sizeof(path), "/dev/input/%s", de->d_name);
                fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
                if (fd < 0)
                        continue;
                if (ioctl(fd, EVIOCGBIT(EV_KEY, sizeof(keys)), keys) < 0 ||
                    !test_bit(keys, KEY_POWER)) {
                        close(fd);
                        continue;
                }
                fds[n++] = fd;
        }

        closedir(d);
        return n;
}

static bool power_key_pressed(int fd)
{
        struct input_event ev[16];
        ssize_t n;

        n = read(fd, ev, sizeof(ev));
        for (ssize_t i = 0; n > 0 && i < n / (ssize_t)sizeof(ev[0]); i++)
                if (ev[i].type == EV_KEY && ev[i].code == KEY_POWER && ev[i].value == 1)
                        return true;
        return false;
}

/* A process that banger-init keeps running: started at boot and again when it exits. */
typedef struct Service {
        const char *name;
        pid_t (*start)(void);
        pid_t pid; /* 0 when not running */
        uint64_t started_usec;
} Service;

static void service_start(Service *s)
{
        s->pid = s->start();
        s->started_usec = guest_now_usec();
}

/* Handles the exit of pid when it is the service's process, and starts the service again. */
static bool service_reap(Service *s, pid_t pid, int status)
{
        if (s->pid == 0 || pid != s->pid)
                return false;
        log_exit(s->name, status);
        if (guest_now_usec() - s->started_usec < RESTART_USEC)
                guest_sleep_usec(RESTART_USEC);
        service_start(s);
        return true;
}

static void __attribute__((noreturn)) supervise(int signal_fd, const GuestConfig *c)
{
        Service agent = { .name = "banger-agent", .start = start_agent };
        Service sshd = { .name = "sshd", .start = start_sshd };
        struct pollfd p[1 + POWER_BUTTONS_MAX] = { { .fd = signal_fd, .events = POLLIN } };
        int buttons[POWER_BUTTONS_MAX];
        size_t n_buttons = open_power_buttons(buttons);
        pid_t command;

        for (size_t i = 0; i < n_buttons; i++)
                p[1 + i] = (struct pollfd){ .fd = buttons[i], .events = POLLIN };

        if (has_sshd()) {
                service_start(&sshd);
                wait_for_sshd(sshd.pid);
        }
        service_start(&agent);
        guest_log("ready");
        command = start_command(c);

        for (;;) {
                struct signalfd_siginfo si;
                int status;
                pid_t pid;

                if (poll(p, 1 + n_buttons, -1) < 0)
                        continue;
                for (size_t i = 0; i < n_buttons; i++)
                        if (p[1 + i].revents && power_key_pressed(buttons[i])) {
                                guest_log("Power button pressed, powering off");
                                power_off();
                        }
                if (!(p[0].revents & POLLIN))
                        continue;
                if (read(signal_fd, &si, sizeof(si)) != (ssize_t)sizeof(si))
                        continue;

                if (si.ssi_signo != SIGCHLD) {
                        guest_log("Received %s, powering off", strsignal((int)si.ssi_signo));
                        power_off();
                }

                while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                        if (pid == command && command != 0) {
                                log_exit(c->argv[0], status);
                                command = 0;
                        } else if (!service_reap(&agent, pid, status))
                                (void)service_reap(&sshd, pid, status);
                }
        }
}

int main(int argc, char *argv[])
{
        GuestConfig *config = NULL;
        bool work_disk;
        int signal_fd, r;

        guest_log_open("banger-init");

        if (getpid() != 1) {
                guest_log("Must run as PID 1 of a banger VM, exiting");
                return EXIT_FAILURE;
        }

        signal_fd = setup_signals();
        if (signal_fd < 0)
                fatal();

        r = mount_api_filesystems("");
        open_console();
        if (r < 0)
                fatal();

        load_modules();

        r = mount_root();
        if (r < 0)
                fatal();
        work_disk = vm_has_work_disk();
        if (work_disk) {
                r = mount_work();
                if (r < 0)
                        fatal();
        }

        r = load_config(work_disk, &config);
        if (r < 0)
                fatal();

        setup_network();
        setup_hostname(config);
        if (work_disk)
                install_ssh_files(config);

        supervise(signal_fd, config);
}
