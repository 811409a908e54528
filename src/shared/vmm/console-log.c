#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "console-log.h"
#include "macro.h"

#define CHILD_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
/* Descriptors the parent prepares at or above this number, so the child's dup2() onto 0 to 5
 * never overwrites one it still needs. */
#define SPAWN_FD_BASE  10
#define SPAWN_ERROR_FD (CONSOLE_LOG_GATE_FD + 1)

void console_lines_init(ConsoleLines *l, ConsoleLineFn fn, void *userdata)
{
        *l = (ConsoleLines){ .fn = fn, .userdata = userdata };
}

/* Passes the line in buf on, without a trailing "\r", unless it is empty. */
static int lines_emit(ConsoleLines *l)
{
        size_t size = l->size;

        l->size = 0;
        if (size > 0 && l->buf[size - 1] == '\r')
                size--;
        if (size == 0)
                return 0;
        return l->fn(l->buf, size, l->userdata);
}

int console_lines_feed(ConsoleLines *l, const void *data, size_t size)
{
        const char *p = data;
        int r;

        for (size_t i = 0; i < size; i++) {
                if (p[i] == '\n') {
                        r = lines_emit(l);
                        if (r < 0)
                                return r;
                        continue;
                }
                /* A full buffer goes out as a piece of a longer line. */
                if (l->size == sizeof(l->buf)) {
                        r = lines_emit(l);
                        if (r < 0)
                                return r;
                }
                l->buf[l->size++] = p[i];
        }
        return 0;
}

int console_lines_flush(ConsoleLines *l)
{
        return lines_emit(l);
}

int console_log_read(int fd, uint64_t *offset, ConsoleLines *l)
{
        char buf[16384];
        struct stat st;
        bool got = false;
        int r;

        if (fstat(fd, &st) < 0)
                return negative_errno();
        if ((uint64_t)st.st_size < *offset)
                *offset = 0;

        for (;;) {
                ssize_t n = pread(fd, buf, sizeof(buf), (off_t)*offset);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        return got;
                *offset += (uint64_t)n;
                got = true;
                r = console_lines_feed(l, buf, (size_t)n);
                if (r < 0)
                        return r;
        }
}

/* Returns the length of the UTF-8 sequence at p, or 0 when it is not a valid one. */
static size_t utf8_sequence(const unsigned char *p, size_t left)
{
        size_t n;
        uint32_t c;

        if (p[0] < 0x80)
                return 1;
        if (p[0] >= 0xc2 && p[0] <= 0xdf)
                n = 2;
        else if (p[0] >= 0xe0 && p[0] <= 0xef)
                n = 3;
        else if (p[0] >= 0xf0 && p[0] <= 0xf4)
                n = 4;
        else
                return 0;
        /* The lead byte carries 7 - n bits of the code point. */
        c = p[0] & (0x7fu >> n);
        if (n > left)
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((p[i] & 0xc0u) != 0x80u)
                        return 0;
                c = (c << 6) | (p[i] & 0x3fu);
        }
        /* Overlong forms, UTF-16 surrogates and code points above U+10FFFF. */
        if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000) || (c >= 0xd800 && c <= 0xdfff) ||
            c > 0x10ffff)
                return 0;
        return n;
}

/* Returns how many bytes of the escape sequence at p (p[0] is ESC) to skip: a CSI sequence
 * (ESC [ ... final byte 0x40 to 0x7e) whole, else ESC and the byte after it. */
static size_t escape_sequence(const unsigned char *p, size_t left)
{
        size_t i;

        if (left < 2)
                return left;
        if (p[1] != '[')
                return 2;
        for (i = 2; i < left; i++)
                if (p[i] >= 0x40 && p[i] <= 0x7e)
                        return i + 1;
        return left;
}

size_t console_line_clean(const char *line, size_t size, char *out)
{
        const unsigned char *p = (const unsigned char *)line;
        size_t i = 0, n = 0;

        while (i < size) {
                size_t k;

                if (p[i] == 0x1b) {
                        i += escape_sequence(p + i, size - i);
                        continue;
                }
                if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f) {
                        i++;
                        continue;
                }
                k = utf8_sequence(p + i, size - i);
                if (k == 0) {
                        out[n++] = '?';
                        i++;
                        continue;
                }
                memcpy(out + n, p + i, k);
                n += k;
                i += k;
        }
        return n;
}

/* Moves fd to SPAWN_FD_BASE or above, close-on-exec, and closes the original. */
static int fd_move_high(int fd)
{
        int copy = fcntl(fd, F_DUPFD_CLOEXEC, SPAWN_FD_BASE);

        if (copy < 0)
                copy = negative_errno();
        safe_close(fd);
        return copy;
}

typedef struct SpawnFds {
        int null_fd;
        int stderr_fd; /* bangerd's own stderr, so the program's start-up errors are seen */
        int vmm_fd;
        int gate_fd;  /* read end */
        int pid_fd;   /* write end of the pipe that carries the grandchild's pid */
        int error_fd; /* write end of the pipe that carries an execve() errno */
} SpawnFds;

/* Runs in the grandchild: only async-signal-safe calls from here to execve(). */
static _Noreturn void spawn_exec(char *const *argv, char *const *envp, const SpawnFds *fds)
{
        struct sigaction sa = { .sa_handler = SIG_DFL };
        sigset_t none;
        int error;

        /* bangerd blocks the signals sd-event handles, but SIGTERM must end this program. */
        for (int sig = 1; sig < _NSIG; sig++)
                (void)sigaction(sig, &sa, NULL);
        sigemptyset(&none);
        (void)sigprocmask(SIG_SETMASK, &none, NULL);

        if (dup2(fds->null_fd, STDIN_FILENO) < 0 || dup2(fds->stderr_fd, STDOUT_FILENO) < 0 ||
            dup2(fds->stderr_fd, STDERR_FILENO) < 0 || dup2(fds->vmm_fd, CONSOLE_LOG_VMM_FD) < 0 ||
            dup2(fds->gate_fd, CONSOLE_LOG_GATE_FD) < 0 ||
            dup3(fds->error_fd, SPAWN_ERROR_FD, O_CLOEXEC) < 0)
                goto fail;
        (void)close_range(SPAWN_ERROR_FD + 1, ~0U, 0);

        execve(argv[0], argv, envp);
fail:
        error = errno;
        (void)!write(SPAWN_ERROR_FD, &error, sizeof(error));
        _exit(127);
}

/* Runs in the intermediate child: starts the grandchild, reports its pid and exits, so the
 * grandchild is reparented to init. */
static _Noreturn void spawn_intermediate(char *const *argv, char *const *envp, const SpawnFds *fds)
{
        pid_t pid;

        if (setsid() < 0)
                _exit(1);
        pid = fork();
        if (pid == 0)
                spawn_exec(argv, envp, fds);
        if (pid < 0)
                pid = -errno;
        (void)!write(fds->pid_fd, &pid, sizeof(pid));
        _exit(0);
}

static int read_exact(int fd, void *buf, size_t size)
{
        ssize_t n;

        do
                n = read(fd, buf, size);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return negative_errno();
        if (n == 0)
                return 0;
        /* Pipe writes of these few bytes are atomic, so a short read means a broken peer. */
        return (size_t)n == size ? 1 : -EIO;
}

/* Reads the outcome of a spawn: the grandchild's pid, then end of file when execve()
 * succeeded or its errno when it failed. */
static int spawn_result(int pid_fd, int error_fd, pid_t *ret_pid)
{
        pid_t pid;
        int error, r;

        r = read_exact(pid_fd, &pid, sizeof(pid));
        if (r <= 0)
                return r < 0 ? r : -ECHILD;
        if (pid < 0)
                return pid;

        r = read_exact(error_fd, &error, sizeof(error));
        if (r < 0)
                return r;
        if (r > 0)
                return error > 0 ? -error : -EIO;
        *ret_pid = pid;
        return 0;
}

static void spawn_fds_close(SpawnFds *fds)
{
        fds->null_fd = safe_close(fds->null_fd);
        fds->stderr_fd = safe_close(fds->stderr_fd);
        fds->vmm_fd = safe_close(fds->vmm_fd);
        fds->gate_fd = safe_close(fds->gate_fd);
        fds->pid_fd = safe_close(fds->pid_fd);
        fds->error_fd = safe_close(fds->error_fd);
}

/* Creates the pipes and the child's descriptors. The parent keeps the read ends of the pid
 * and error pipes and the write end of the gate. */
static int spawn_fds_open(int vmm_pidfd, SpawnFds *fds, int *ret_gate_w, int *ret_pid_r,
                          int *ret_error_r)
{
        int gate[2], pid_pipe[2], error_pipe[2];

        fds->null_fd = fd_move_high(open("/dev/null", O_RDWR | O_CLOEXEC));
        if (fds->null_fd < 0)
                return fds->null_fd;
        /* Without a stderr of bangerd's, the program's errors go to /dev/null. */
        fds->stderr_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, SPAWN_FD_BASE);
        if (fds->stderr_fd < 0)
                fds->stderr_fd = fcntl(fds->null_fd, F_DUPFD_CLOEXEC, SPAWN_FD_BASE);
        fds->vmm_fd = fcntl(vmm_pidfd, F_DUPFD_CLOEXEC, SPAWN_FD_BASE);
        if (fds->stderr_fd < 0 || fds->vmm_fd < 0)
                return negative_errno();

        if (pipe2(gate, O_CLOEXEC) < 0)
                return negative_errno();
        fds->gate_fd = fd_move_high(gate[0]);
        *ret_gate_w = gate[1];
        if (pipe2(pid_pipe, O_CLOEXEC) < 0)
                return negative_errno();
        *ret_pid_r = pid_pipe[0];
        fds->pid_fd = fd_move_high(pid_pipe[1]);
        if (pipe2(error_pipe, O_CLOEXEC) < 0)
                return negative_errno();
        *ret_error_r = error_pipe[0];
        fds->error_fd = fd_move_high(error_pipe[1]);
        if (fds->gate_fd < 0)
                return fds->gate_fd;
        if (fds->pid_fd < 0)
                return fds->pid_fd;
        return fds->error_fd < 0 ? fds->error_fd : 0;
}

int console_log_spawn(const char *binary, const char *path, uint64_t offset, const char *vm_name,
                      int vmm_pidfd, pid_t *ret_pid, int *ret_gate_fd)
{
        _cleanup_free_ char *offset_arg = NULL, *vm_arg = NULL, *journal_env = NULL;
        _cleanup_close_ int gate_w = -EBADF, pid_r = -EBADF, error_r = -EBADF;
        const char *journal_stream = getenv("JOURNAL_STREAM");
        SpawnFds fds = { -EBADF, -EBADF, -EBADF, -EBADF, -EBADF, -EBADF };
        pid_t child, pid;
        int r;

        if (isempty(binary) || isempty(path) || isempty(vm_name) || vmm_pidfd < 0)
                return -EINVAL;

        if (asprintf(&offset_arg, "--offset=%" PRIu64, offset) < 0 ||
            asprintf(&vm_arg, "--vm=%s", vm_name) < 0)
                return -ENOMEM;
        /* The program logs its own errors to the journal when bangerd's stderr is the journal. */
        if (journal_stream && asprintf(&journal_env, "JOURNAL_STREAM=%s", journal_stream) < 0)
                return -ENOMEM;
        char *const argv[] = {
                (char *)binary, offset_arg, vm_arg, (char *)"--", (char *)path, NULL
        };
        char *const envp[] = { (char *)CHILD_PATH, (char *)"LANG=C.UTF-8", journal_env, NULL };

        r = spawn_fds_open(vmm_pidfd, &fds, &gate_w, &pid_r, &error_r);
        if (r < 0) {
                spawn_fds_close(&fds);
                return r;
        }

        child = fork();
        if (child == 0)
                spawn_intermediate(argv, envp, &fds);
        r = child < 0 ? negative_errno() : 0;
        spawn_fds_close(&fds);
        if (r < 0)
                return r;

        while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
                ;
        r = spawn_result(pid_r, error_r, &pid);
        if (r < 0)
                return r;

        *ret_pid = pid;
        *ret_gate_fd = TAKE_FD(gate_w);
        return 0;
}

int console_log_open_gate(int gate_fd)
{
        ssize_t n;

        do
                n = write(gate_fd, "1", 1);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
                int r = negative_errno();

                safe_close(gate_fd);
                return r;
        }
        safe_close(gate_fd);
        return 0;
}
