#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "agent-exec.h"
#include "guest-util.h"
#include "macro.h"
#include "strv.h"

typedef struct ChildFds {
        int in; /* -EBADF: /dev/null */
        int out;
        int err;
        bool tty; /* in, out and err are the terminal's slave side */
} ChildFds;

static void close_pair(int p[2])
{
        p[0] = safe_close(p[0]);
        p[1] = safe_close(p[1]);
}

static bool switch_needed(uid_t uid, gid_t gid)
{
        return getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid;
}

static void __attribute__((noreturn))
child_exec(const char *root, const GuestConfig *config, const AgentExec *req, const ChildFds *fds,
           char **env, uid_t uid, gid_t gid)
{
        const char *cwd = req->cwd ?: (config->workdir && *config->workdir ? config->workdir : "/");
        sigset_t all;
        int in_fd, r;

        sigfillset(&all);
        sigprocmask(SIG_UNBLOCK, &all, NULL);
        signal(SIGPIPE, SIG_DFL);
        (void)setsid();

        /* The agent opened the slave side with O_NOCTTY before setsid(), so make it the new
         * session's controlling terminal explicitly. */
        if (fds->tty && ioctl(fds->out, TIOCSCTTY, 0) < 0)
                _exit(126);

        in_fd = fds->in >= 0 ? fds->in : open("/dev/null", O_RDWR);
        if (in_fd < 0 || dup2(in_fd, STDIN_FILENO) < 0 || dup2(fds->out, STDOUT_FILENO) < 0 ||
            dup2(fds->err, STDERR_FILENO) < 0)
                _exit(126);

        if (!streq(root, "/") && chroot(root) < 0) {
                guest_log_errno(-errno, "Failed to change root to '%s'", root);
                _exit(126);
        }
        if (chdir(cwd) < 0) {
                guest_log_errno(-errno, "Failed to change directory to '%s'", cwd);
                _exit(126);
        }
        /* An agent that already runs as the user, as in tests on a host, keeps its ids. */
        if (switch_needed(uid, gid) &&
            (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)) {
                guest_log_errno(-errno, "Failed to switch to uid %u gid %u", (unsigned)uid,
                                (unsigned)gid);
                _exit(126);
        }

        /* execvp() searches the PATH of the environment it runs in, so install the command's
         * environment first. */
        environ = env;
        execvp(req->argv[0], req->argv);
        r = errno;
        guest_log_errno(-r, "Failed to execute '%s'", req->argv[0]);
        _exit(r == ENOENT ? 127 : 126);
}

/* Opens a pseudo-terminal pair in root's devpts instance. openpty() would use the agent's own
 * /dev/ptmx, whose devpts is not the one mounted inside root, so a chrooted command could not
 * find its terminal's name under /dev/pts. */
static int open_terminal(const char *root, const AgentExec *req, int *ret_master, int *ret_slave)
{
        const char *prefix = streq(root, "/") ? "" : root;
        _cleanup_close_ int master = -EBADF;
        char path[4096];
        struct winsize ws = {
                .ws_row = (unsigned short)(req->rows ?: AGENT_TTY_ROWS_DEFAULT),
                .ws_col = (unsigned short)(req->cols ?: AGENT_TTY_COLS_DEFAULT),
        };
        int slave;

        /* The ptmx node inside devpts always belongs to that instance, and /dev/ptmx does when
         * /dev/pts is mounted beside it. */
        snprintf(path, sizeof(path), "%s/dev/pts/ptmx", prefix);
        master = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
        if (master < 0) {
                snprintf(path, sizeof(path), "%s/dev/ptmx", prefix);
                master = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
        }
        if (master < 0)
                return negative_errno();

        if (unlockpt(master) < 0)
                return negative_errno();
        if (ioctl(master, TIOCSWINSZ, &ws) < 0)
                return negative_errno();

        /* TIOCGPTPEER (Linux 4.13) opens the slave side without looking up its name. */
        slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (slave < 0)
                return negative_errno();

        *ret_master = TAKE_FD(master);
        *ret_slave = slave;
        return 0;
}

static int set_nonblock(int fd)
{
        int flags = fcntl(fd, F_GETFL);

        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return negative_errno();
        return 0;
}

/* Creates the descriptors of a command: parent[] are the agent's ends (out, err, in) and
 * child->* the command's. */
static int open_stdio(const char *root, const AgentExec *req, int parent[3], ChildFds *child)
{
        int out_pipe[2] = { -EBADF, -EBADF }, err_pipe[2] = { -EBADF, -EBADF },
            in_pipe[2] = { -EBADF, -EBADF };
        int r, master, slave;

        if (req->flags & AGENT_EXEC_FLAG_TTY) {
                r = open_terminal(root, req, &master, &slave);
                if (r < 0)
                        return r;
                parent[0] = master;
                parent[1] = -EBADF;
                parent[2] = -EBADF;
                if (req->flags & AGENT_EXEC_FLAG_STDIN) {
                        parent[2] = fcntl(master, F_DUPFD_CLOEXEC, 3);
                        if (parent[2] < 0) {
                                r = negative_errno();
                                safe_close(master);
                                safe_close(slave);
                                return r;
                        }
                }
                *child = (ChildFds){ .in = slave, .out = slave, .err = slave, .tty = true };
                return 0;
        }

        if (pipe2(out_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0 ||
            ((req->flags & AGENT_EXEC_FLAG_STDIN) && pipe2(in_pipe, O_CLOEXEC) < 0)) {
                r = negative_errno();
                goto fail;
        }
        r = set_nonblock(out_pipe[0]);
        if (r >= 0)
                r = set_nonblock(err_pipe[0]);
        if (r >= 0 && in_pipe[1] >= 0)
                r = set_nonblock(in_pipe[1]);
        if (r < 0)
                goto fail;

        parent[0] = out_pipe[0];
        parent[1] = err_pipe[0];
        parent[2] = in_pipe[1];
        *child = (ChildFds){ .in = in_pipe[0], .out = out_pipe[1], .err = err_pipe[1] };
        return 0;

fail:
        close_pair(out_pipe);
        close_pair(err_pipe);
        close_pair(in_pipe);
        return r;
}

static void close_child_fds(ChildFds *c)
{
        if (c->tty) {
                c->out = safe_close(c->out);
                return;
        }
        c->in = safe_close(c->in);
        c->out = safe_close(c->out);
        c->err = safe_close(c->err);
}

int exec_spawn(const char *root, const GuestConfig *config, const AgentExec *req, uid_t uid,
               gid_t gid, pid_t *ret_pid, ExecFds *ret_fds)
{
        _cleanup_strv_free_ char **env = NULL;
        int parent[3] = { -EBADF, -EBADF, -EBADF };
        ChildFds child;
        pid_t pid;
        int r;

        env = guest_env_with_defaults(req->env ?: config->env);
        if (!env)
                return -ENOMEM;

        r = open_stdio(root, req, parent, &child);
        if (r < 0)
                return r;

        pid = fork();
        if (pid < 0) {
                r = negative_errno();
                close_child_fds(&child);
                for (size_t i = 0; i < 3; i++)
                        safe_close(parent[i]);
                return r;
        }
        if (pid == 0)
                child_exec(root, config, req, &child, env, uid, gid);

        close_child_fds(&child);
        *ret_pid = pid;
        *ret_fds = (ExecFds){ .out = parent[0], .err = parent[1], .in = parent[2] };
        return 0;
}

int exec_resize(int fd, uint32_t rows, uint32_t cols)
{
        struct winsize ws = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };

        if (ioctl(fd, TIOCSWINSZ, &ws) < 0)
                return negative_errno();
        return 0;
}

int exec_terminal_eof(int fd)
{
        struct termios t;

        if (tcgetattr(fd, &t) < 0)
                return negative_errno();
        if (!(t.c_lflag & ICANON) || t.c_cc[VEOF] == _POSIX_VDISABLE)
                return 0;
        if (write(fd, &t.c_cc[VEOF], 1) < 0)
                return negative_errno();
        return 0;
}
