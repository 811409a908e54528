#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"
#include "qemu.h"
#include "strv.h"

#define TSC_SYSFS_PATH "/sys/devices/system/cpu/cpu0/tsc_freq_khz"
#define CPUINFO_PATH   "/proc/cpuinfo"
#define CPUINFO_MAX    (4U * 1024U * 1024U)
#define KERNEL_CMDLINE "console=ttyS0 reboot=t panic=-1 root=/dev/vda rw loglevel=4"
#define CHILD_PATH     "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static const char *const accel_table[_QEMU_ACCEL_MAX] = {
        [QEMU_ACCEL_AUTO] = "auto",
        [QEMU_ACCEL_KVM] = "kvm",
        [QEMU_ACCEL_TCG] = "tcg",
};

const char *qemu_accel_to_string(QemuAccel a)
{
        if (a < 0 || a >= _QEMU_ACCEL_MAX)
                return NULL;
        return accel_table[a];
}

QemuAccel qemu_accel_from_string(const char *s)
{
        if (!s)
                return _QEMU_ACCEL_INVALID;
        for (int i = 0; i < _QEMU_ACCEL_MAX; i++)
                if (streq(accel_table[i], s))
                        return i;
        return _QEMU_ACCEL_INVALID;
}

/* AUTO picks KVM whenever /dev/kvm opens read-write. On hosts whose KVM is itself a nested
 * paravirtual flavour, a stock guest kernel may stall or stop on an emulation failure with QEMU
 * paused rather than exited, so bangerd.conf can force TCG there. */
static QemuAccel accel_resolve(QemuAccel a)
{
        _cleanup_close_ int fd = -EBADF;

        if (a != QEMU_ACCEL_AUTO)
                return a;

        fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        return fd >= 0 ? QEMU_ACCEL_KVM : QEMU_ACCEL_TCG;
}

/* Parses the decimal "2600.000" of a "cpu MHz" line into kHz, without the locale-dependent
 * strtod(). */
static int parse_mhz_as_khz(const char *s, uint64_t *ret)
{
        uint64_t khz = 0, scale = 1000;
        bool digits = false;

        s += strspn(s, " \t");
        for (; *s >= '0' && *s <= '9'; s++) {
                if (khz > UINT64_MAX / 10 / 1000)
                        return -ERANGE;
                khz = khz * 10 + (uint64_t)(*s - '0') * 1000;
                digits = true;
        }
        if (*s == '.')
                for (s++; *s >= '0' && *s <= '9'; s++) {
                        scale /= 10;
                        khz += (uint64_t)(*s - '0') * scale;
                        digits = true;
                        if (scale == 0)
                                break;
                }
        if (!digits || khz == 0)
                return -EINVAL;

        *ret = khz;
        return 0;
}

static int tsc_khz_from_cpuinfo(uint64_t *ret)
{
        _cleanup_free_ char *text = NULL;
        char *line, *save = NULL;
        int r;

        r = read_full_file(CPUINFO_PATH, CPUINFO_MAX, &text, NULL);
        if (r < 0)
                return r;

        for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *colon;

                if (!strneq(line, "cpu MHz", strlen("cpu MHz")))
                        continue;
                colon = strchr(line, ':');
                if (!colon)
                        continue;
                return parse_mhz_as_khz(colon + 1, ret);
        }

        return -ENOENT;
}

int host_tsc_khz(uint64_t *ret)
{
        _cleanup_free_ char *text = NULL;
        uint64_t khz;
        char *end;
        int r;

        r = read_full_file(TSC_SYSFS_PATH, 64, &text, NULL);
        if (r >= 0) {
                errno = 0;
                khz = strtoull(text, &end, 10);
                if (errno == 0 && end != text && (*end == '\n' || *end == '\0') && khz > 0) {
                        *ret = khz;
                        return 0;
                }
        }

        return tsc_khz_from_cpuinfo(ret);
}

/* QEMU's option parser splits key=value lists at commas, and a literal comma is written as
 * two. Paths from the caller are escaped that way. */
static char *escape_commas(const char *s)
{
        size_t n = strlen(s), commas = 0;
        char *out, *p;

        for (const char *c = s; *c; c++)
                if (*c == ',')
                        commas++;

        out = malloc(n + commas + 1);
        if (!out)
                return NULL;
        for (p = out; *s; s++) {
                *p++ = *s;
                if (*s == ',')
                        *p++ = ',';
        }
        *p = '\0';
        return out;
}

#define strv_extend_all(l, ...)                                     \
        strv_extend_many((l), (const char *const[]){ __VA_ARGS__ }, \
                         ELEMENTSOF(((const char *const[]){ __VA_ARGS__ })))

static int strv_extend_many(char ***l, const char *const *args, size_t n)
{
        int r;

        for (size_t i = 0; i < n; i++) {
                r = strv_extend(l, args[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Appends an option whose value is built with printf. Path arguments must already be escaped. */
__attribute__((format(printf, 3, 4))) static int strv_extend_option(char ***l, const char *option,
                                                                    const char *format, ...)
{
        va_list ap;
        char *value;
        int r;

        r = strv_extend(l, option);
        if (r < 0)
                return r;

        va_start(ap, format);
        r = vasprintf(&value, format, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;

        return strv_consume(l, value);
}

static bool mac_is_valid(const char *mac)
{
        /* Six hex pairs joined by colons. The loop stops at a NUL, which is neither. */
        for (size_t i = 0; i < 17; i++) {
                if (i % 3 == 2) {
                        if (mac[i] != ':')
                                return false;
                } else if (!isxdigit((unsigned char)mac[i]))
                        return false;
        }
        return mac[17] == '\0';
}

/* A tap name is a link name (at most 15 bytes), and a comma would end QEMU's value. */
static bool tap_name_is_valid(const char *tap)
{
        return !isempty(tap) && strlen(tap) <= 15 && !strpbrk(tap, ",/ \t\n=");
}

static int validate_config(const QemuConfig *c)
{
        if (c->work_disk && isempty(c->work_disk))
                return -EINVAL;
        if (isempty(c->binary) || isempty(c->kernel) || isempty(c->root_disk) ||
            isempty(c->console_log) || isempty(c->console_socket) || isempty(c->qmp_socket) ||
            isempty(c->agent_socket) || isempty(c->agent_port_name))
                return -EINVAL;
        if (c->vcpus == 0 || c->memory_mib == 0)
                return -EINVAL;
        if (c->accel < 0 || c->accel >= _QEMU_ACCEL_MAX)
                return -EINVAL;
        /* The port name is matched inside the guest, and a comma would end QEMU's value. */
        if (strpbrk(c->agent_port_name, ",/ \t\n"))
                return -EINVAL;
        if (c->tap && (!tap_name_is_valid(c->tap) || !c->mac || !mac_is_valid(c->mac)))
                return -EINVAL;
        if (!c->tap && c->mac)
                return -EINVAL;
        return 0;
}

static int build_kernel_cmdline(const QemuConfig *c, QemuAccel accel, char **ret)
{
        uint64_t tsc_khz = c->tsc_khz;
        char *cmdline;
        int r;

        /* Under TCG the guest's TSC calibration may hang at boot without an explicit frequency. */
        if (accel == QEMU_ACCEL_TCG && tsc_khz == 0) {
                r = host_tsc_khz(&tsc_khz);
                if (r < 0)
                        return r;
        }

        if (accel == QEMU_ACCEL_TCG)
                r = asprintf(&cmdline, "%s tsc_early_khz=%" PRIu64 "%s%s", KERNEL_CMDLINE, tsc_khz,
                             isempty(c->cmdline_extra) ? "" : " ", strempty(c->cmdline_extra));
        else
                r = asprintf(&cmdline, "%s%s%s", KERNEL_CMDLINE,
                             isempty(c->cmdline_extra) ? "" : " ", strempty(c->cmdline_extra));
        if (r < 0)
                return -ENOMEM;

        *ret = cmdline;
        return 0;
}

int qemu_build_argv(const QemuConfig *c, char ***ret_argv)
{
        _cleanup_free_ char *cmdline = NULL, *disk = NULL, *work = NULL, *console = NULL,
                            *console_socket = NULL, *qmp = NULL, *agent = NULL;
        _cleanup_strv_free_ char **argv = NULL;
        QemuAccel accel;
        int r;

        r = validate_config(c);
        if (r < 0)
                return r;

        accel = accel_resolve(c->accel);

        r = build_kernel_cmdline(c, accel, &cmdline);
        if (r < 0)
                return r;

        disk = escape_commas(c->root_disk);
        console = escape_commas(c->console_log);
        console_socket = escape_commas(c->console_socket);
        qmp = escape_commas(c->qmp_socket);
        agent = escape_commas(c->agent_socket);
        if (!disk || !console || !console_socket || !qmp || !agent)
                return -ENOMEM;
        if (c->work_disk) {
                work = escape_commas(c->work_disk);
                if (!work)
                        return -ENOMEM;
        }

        /* ACPI stays on because Debian's kernels find virtio-mmio devices through ACPI and ignore
         * them on the kernel command line. */
        r = strv_extend_all(&argv, c->binary, "-M", "microvm,acpi=on", "-accel",
                            qemu_accel_to_string(accel), "-cpu",
                            accel == QEMU_ACCEL_KVM ? "host" : "max", "-nodefaults",
                            "-no-user-config", "-no-reboot", "-display", "none");
        if (r < 0)
                return r;

        r = strv_extend_option(&argv, "-smp", "%u", c->vcpus);
        if (r >= 0)
                r = strv_extend_option(&argv, "-m", "%uM", c->memory_mib);
        if (r >= 0)
                r = strv_extend_all(&argv, "-kernel", c->kernel);
        if (r >= 0 && !isempty(c->initrd))
                r = strv_extend_all(&argv, "-initrd", c->initrd);
        if (r >= 0)
                r = strv_extend_all(&argv, "-append", cmdline);
        if (r < 0)
                return r;

        /* The log file receives everything the guest writes, also while no client is
         * connected, in which case the socket drops it. */
        r = strv_extend_option(&argv, "-chardev",
                               "socket,id=console,path=%s,server=on,wait=off,logfile=%s,"
                               "logappend=on",
                               console_socket, console);
        if (r >= 0)
                r = strv_extend_all(&argv, "-serial", "chardev:console");
        if (r >= 0)
                r = strv_extend_option(&argv, "-drive",
                                       "id=root,file=%s,format=raw,if=none,cache=writeback,"
                                       "discard=unmap",
                                       disk);
        if (r >= 0)
                r = strv_extend_all(&argv, "-device", "virtio-blk-device,drive=root");
        /* The guest names virtio disks in the order of these options, vda then vdb (checked with
         * QEMU 7.2 microvm and Linux 6.1). */
        if (r >= 0 && work)
                r = strv_extend_option(&argv, "-drive",
                                       "id=work,file=%s,format=raw,if=none,cache=writeback,"
                                       "discard=unmap",
                                       work);
        if (r >= 0 && work)
                r = strv_extend_all(&argv, "-device", "virtio-blk-device,drive=work");
        if (r < 0)
                return r;

        if (c->tap) {
                r = strv_extend_option(&argv, "-netdev",
                                       "tap,id=net0,ifname=%s,script=no,downscript=no", c->tap);
                if (r >= 0)
                        r = strv_extend_option(&argv, "-device",
                                               "virtio-net-device,netdev=net0,mac=%s", c->mac);
                if (r < 0)
                        return r;
        }

        r = strv_extend_all(&argv, "-device", "virtio-serial-device");
        if (r >= 0)
                r = strv_extend_option(&argv, "-chardev",
                                       "socket,id=agent,path=%s,server=on,wait=off", agent);
        if (r >= 0)
                r = strv_extend_option(&argv, "-device", "virtserialport,chardev=agent,name=%s",
                                       c->agent_port_name);
        if (r >= 0)
                r = strv_extend_option(&argv, "-qmp", "unix:%s,server=on,wait=off", qmp);
        if (r >= 0)
                r = strv_extend_all(&argv, "-device", "virtio-rng-device");
        if (r < 0)
                return r;

        *ret_argv = TAKE_PTR(argv);
        return 0;
}

/* Moves fd to a number above 2 so the child can dup2() over stdin, stdout and stderr without
 * clobbering it. The original fd is closed in every case. */
static int fd_move_above_stdio(int fd)
{
        int copy;

        if (fd > STDERR_FILENO)
                return fd;

        copy = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
        if (copy < 0)
                copy = negative_errno();
        safe_close(fd);
        return copy;
}

static void close_all_but(int keep)
{
        if (keep > 3)
                (void)close_range(3, keep - 1, 0);
        (void)close_range(keep + 1, ~0U, 0);
}

/* Runs in the forked child: only async-signal-safe calls from here to execve(). */
static _Noreturn void spawn_child(char *const *argv, char *const *envp, int null_fd, int log_fd,
                                  int error_fd)
{
        struct sigaction sa = { .sa_handler = SIG_DFL };
        sigset_t all;
        int error;

        /* An sd-event caller blocks the signals it handles, but QEMU must see SIGTERM and SIGINT.
         */
        for (int sig = 1; sig < _NSIG; sig++)
                (void)sigaction(sig, &sa, NULL);
        sigemptyset(&all);
        (void)sigprocmask(SIG_SETMASK, &all, NULL);

        if (setsid() < 0)
                goto fail;
        if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
            dup2(log_fd, STDERR_FILENO) < 0)
                goto fail;

        /* error_fd is close-on-exec, so a successful execve() sends end-of-file to the parent. */
        close_all_but(error_fd);

        execve(argv[0], argv, envp);

fail:
        error = errno;
        (void)!write(error_fd, &error, sizeof(error));
        _exit(127);
}

/* Waits for the child's exec report: end-of-file means execve() succeeded, an int is its errno. */
static int read_exec_result(int error_fd)
{
        int error;
        ssize_t n;

        do
                n = read(error_fd, &error, sizeof(error));
        while (n < 0 && errno == EINTR);

        if (n < 0)
                return negative_errno();
        if (n == 0)
                return 0;
        if (n != sizeof(error) || error <= 0)
                return -EIO;
        return -error;
}

int qemu_spawn(const QemuConfig *c, const char *stderr_log, pid_t *ret_pid)
{
        char *const envp[] = { (char *)CHILD_PATH, (char *)"LANG=C.UTF-8", NULL };
        _cleanup_close_ int null_fd = -EBADF, log_fd = -EBADF;
        _cleanup_strv_free_ char **argv = NULL;
        int pipe_fds[2], error_read, error_write;
        pid_t pid;
        int r;

        if (isempty(stderr_log))
                return -EINVAL;

        r = qemu_build_argv(c, &argv);
        if (r < 0)
                return r;

        null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null_fd < 0)
                return negative_errno();
        null_fd = fd_move_above_stdio(null_fd);
        if (null_fd < 0)
                return null_fd;

        log_fd = open(stderr_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
        if (log_fd < 0)
                return negative_errno();
        log_fd = fd_move_above_stdio(log_fd);
        if (log_fd < 0)
                return log_fd;

        if (pipe2(pipe_fds, O_CLOEXEC) < 0)
                return negative_errno();
        error_read = pipe_fds[0];
        error_write = fd_move_above_stdio(pipe_fds[1]);
        if (error_write < 0) {
                safe_close(error_read);
                return error_write;
        }

        pid = fork();
        if (pid < 0) {
                r = negative_errno();
                safe_close(error_read);
                safe_close(error_write);
                return r;
        }
        if (pid == 0)
                spawn_child(argv, envp, null_fd, log_fd, error_write);

        safe_close(error_write);
        r = read_exec_result(error_read);
        safe_close(error_read);
        if (r < 0) {
                /* The child exits right after its report; reap it so no zombie is left. */
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                return r;
        }

        *ret_pid = pid;
        return 0;
}
