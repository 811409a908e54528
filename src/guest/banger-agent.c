/* banger-agent: serves the host's requests on a virtio-serial port inside the guest.
 *
 * One request at a time: a handshake, an EXEC whose output streams back as STDOUT and STDERR
 * frames until EXIT, or a SHUTDOWN. The host may go away at any moment. The agent then kills
 * the running command, drops what it had queued and waits for the next connection. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent-proto.h"
#include "config.h"
#include "guest-config.h"
#include "guest-util.h"
#include "macro.h"
#include "strv.h"

/* The port appears when the virtio_console module has probed it, a moment after boot. */
#define PORT_WAIT_USEC (30u * 1000u * 1000u)
/* How often the agent checks whether a host connected while none is. */
#define RECONNECT_POLL_MS 50
/* Child output is not read while this much is queued for the host, so a slow host slows the
 * command down instead of growing the agent's memory. */
#define OUTPUT_QUEUE_MAX (256u * 1024u)

typedef struct Exec {
        pid_t pid; /* 0 when no command runs */
        uint32_t request_id;
        int out_fd;
        int err_fd;
        bool reaped;
        int status;
} Exec;

typedef struct Agent {
        const char *root;
        GuestConfig *config;
        int port_fd;
        int signal_fd;
        bool connected;
        AgentBuffer in;
        AgentBuffer out;
        Exec exec;
} Agent;

static void exec_close_pipes(Exec *e)
{
        e->out_fd = safe_close(e->out_fd);
        e->err_fd = safe_close(e->err_fd);
}

static int find_port(const char *name, char **ret)
{
        DIR *d;
        struct dirent *de;
        int r = -ENOENT;

        d = opendir("/sys/class/virtio-ports");
        if (!d)
                return negative_errno();

        while ((de = readdir(d))) {
                char path[512], value[256];
                ssize_t n;
                int fd;

                if (de->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", de->d_name);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                n = read(fd, value, sizeof(value) - 1);
                close(fd);
                if (n <= 0)
                        continue;
                value[n] = '\0';
                value[strcspn(value, "\n")] = '\0';
                if (!streq(value, name))
                        continue;

                /* No udev in the initramfs: devtmpfs names the node after the directory. */
                if (asprintf(ret, "/dev/%s", de->d_name) < 0)
                        r = -ENOMEM;
                else
                        r = 0;
                break;
        }

        closedir(d);
        return r;
}

static int open_port(const char *name)
{
        uint64_t deadline = guest_now_usec() + PORT_WAIT_USEC;
        _cleanup_free_ char *dev = NULL;
        int r, fd;

        for (;;) {
                r = find_port(name, &dev);
                if (r >= 0)
                        break;
                if (guest_now_usec() >= deadline)
                        return guest_log_errno(r,
                                               "Failed to find the virtio-serial port '%s' "
                                               "(is virtio_console loaded and the port "
                                               "configured in the VMM?)",
                                               name);
                guest_sleep_usec(100 * 1000);
        }

        /* devtmpfs creates the node asynchronously after the sysfs entry. */
        for (;;) {
                fd = open(dev, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
                if (fd >= 0)
                        return fd;
                r = negative_errno();
                if (r != -ENOENT || guest_now_usec() >= deadline)
                        return guest_log_errno(r, "Failed to open '%s'", dev);
                guest_sleep_usec(100 * 1000);
        }
}

/* Writes queued frames one write() each: the virtio-serial driver takes a whole write of up to
 * 32 KiB or nothing, so frames are never cut. Returns -EAGAIN when the port is full. */
static int flush_output(Agent *a)
{
        while (a->out.size > 0) {
                size_t frame = AGENT_FRAME_HEADER_SIZE +
                               ((size_t)a->out.data[4] | (size_t)a->out.data[5] << 8 |
                                (size_t)a->out.data[6] << 16 | (size_t)a->out.data[7] << 24);
                ssize_t n;

                n = write(a->port_fd, a->out.data, frame);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                agent_buffer_consume(&a->out, (size_t)n);
        }
        return 0;
}

/* Waits until the queued frames are written or the host goes away. */
static int flush_output_blocking(Agent *a, int timeout_ms)
{
        for (;;) {
                struct pollfd p = { .fd = a->port_fd, .events = POLLOUT };
                int r;

                r = flush_output(a);
                if (r != -EAGAIN)
                        return r;
                r = poll(&p, 1, timeout_ms);
                if (r <= 0 || (p.revents & POLLHUP))
                        return -ETIMEDOUT;
        }
}

static void abort_exec(Agent *a)
{
        Exec *e = &a->exec;

        if (e->pid == 0)
                return;

        /* The waitpid(-1) loop in handle_signals() reaps it later, without an EXIT frame. */
        if (!e->reaped) {
                (void)kill(-e->pid, SIGKILL);
                /* The child may not have called setsid() yet. */
                (void)kill(e->pid, SIGKILL);
        }
        exec_close_pipes(e);
        *e = (Exec){ .out_fd = -EBADF, .err_fd = -EBADF };
}

/* Forgets the connection: its partial frames, its queued replies and its command. */
static void reset_session(Agent *a)
{
        abort_exec(a);
        a->in.size = 0;
        a->out.size = 0;
}

static void send_error(Agent *a, uint32_t id, int code, const char *message)
{
        guest_log("%s", message);
        (void)agent_error_append(&a->out, id, code, message);
}

static int handle_hello(Agent *a, const AgentFrame *f)
{
        AgentHello h;
        int r;

        r = agent_hello_decode(f, &h);
        if (r < 0)
                return r;

        /* A new HELLO means a new client: the previous one will not read our replies. */
        a->out.size = 0;
        abort_exec(a);

        AgentHello reply = {
                .version = AGENT_PROTOCOL_VERSION,
                .nonce = h.nonce,
                .info = (char *)"banger-agent " BANGER_VERSION,
        };
        agent_hello_done(&h);
        (void)agent_hello_append(&a->out, AGENT_MSG_HELLO_REPLY, f->request_id, &reply);
        return 0;
}

static void __attribute__((noreturn))
child_exec(const Agent *a, const AgentExec *req, int out_fd, int err_fd, char **env)
{
        const char *cwd =
                req->cwd ?: (a->config->workdir && *a->config->workdir ? a->config->workdir : "/");
        sigset_t all;
        uid_t uid;
        gid_t gid;
        int null_fd, r;

        sigfillset(&all);
        sigprocmask(SIG_UNBLOCK, &all, NULL);
        signal(SIGPIPE, SIG_DFL);
        (void)setsid();

        null_fd = open("/dev/null", O_RDWR);
        if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 ||
            dup2(err_fd, STDERR_FILENO) < 0)
                _exit(126);

        r = guest_user_resolve(a->root, a->config->user, &uid, &gid);
        if (r < 0) {
                guest_log_errno(r, "Failed to resolve user '%s' in '%s'", a->config->user, a->root);
                _exit(126);
        }

        if (chroot(a->root) < 0) {
                guest_log_errno(-errno, "Failed to change root to '%s'", a->root);
                _exit(126);
        }
        if (chdir(cwd) < 0) {
                guest_log_errno(-errno, "Failed to change directory to '%s'", cwd);
                _exit(126);
        }
        if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
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

static int start_exec(Agent *a, uint32_t id, const AgentExec *req)
{
        int out_pipe[2] = { -EBADF, -EBADF }, err_pipe[2] = { -EBADF, -EBADF };
        _cleanup_strv_free_ char **env = NULL;
        pid_t pid;

        env = guest_env_with_defaults(req->env ?: a->config->env);
        if (!env)
                return -ENOMEM;

        if (pipe2(out_pipe, O_CLOEXEC) < 0)
                return negative_errno();
        if (pipe2(err_pipe, O_CLOEXEC) < 0) {
                int r = negative_errno();
                close(out_pipe[0]);
                close(out_pipe[1]);
                return r;
        }

        pid = fork();
        if (pid < 0) {
                int r = negative_errno();
                for (size_t i = 0; i < 2; i++) {
                        close(out_pipe[i]);
                        close(err_pipe[i]);
                }
                return r;
        }
        if (pid == 0)
                child_exec(a, req, out_pipe[1], err_pipe[1], env);

        close(out_pipe[1]);
        close(err_pipe[1]);
        fcntl(out_pipe[0], F_SETFL, O_NONBLOCK);
        fcntl(err_pipe[0], F_SETFL, O_NONBLOCK);

        a->exec = (Exec){
                .pid = pid,
                .request_id = id,
                .out_fd = out_pipe[0],
                .err_fd = err_pipe[0],
        };
        return 0;
}

static int handle_exec(Agent *a, const AgentFrame *f)
{
        AgentExec req;
        char msg[256];
        int r;

        r = agent_exec_decode(f, &req);
        if (r < 0) {
                send_error(a, f->request_id, EBADMSG, "Malformed EXEC request, ignoring");
                return r;
        }

        if (a->exec.pid != 0)
                send_error(a, f->request_id, EBUSY,
                           "Another command is still running: wait for its EXIT first");
        else if (req.flags != 0)
                send_error(a, f->request_id, EOPNOTSUPP,
                           "EXEC flags are not supported by this agent: send flags 0");
        else {
                r = start_exec(a, f->request_id, &req);
                if (r < 0) {
                        snprintf(msg, sizeof(msg), "Failed to start '%s': %s", req.argv[0],
                                 strerror(-r));
                        send_error(a, f->request_id, -r, msg);
                }
        }

        agent_exec_done(&req);
        return 0;
}

static void handle_shutdown(Agent *a, const AgentFrame *f)
{
        /* Only banger-init powers the VM off. An agent started any other way rejects the
         * request, so a test run on a host never signals the host's PID 1. */
        if (getppid() != 1) {
                send_error(a, f->request_id, EPERM,
                           "Not started by banger-init, so not powering off");
                return;
        }

        guest_log("Shutdown requested by the host");
        (void)agent_frame_append(&a->out, AGENT_MSG_SHUTDOWN_ACK, f->request_id, NULL, 0);
        (void)flush_output_blocking(a, 1000);
        (void)kill(1, SIGTERM);
}

/* Returns -EBADMSG when the payload does not match the frame's type. */
static int handle_frame(Agent *a, const AgentFrame *f)
{
        switch (f->type) {
        case AGENT_MSG_HELLO:
                return handle_hello(a, f);
        case AGENT_MSG_EXEC:
                return handle_exec(a, f);
        case AGENT_MSG_SHUTDOWN:
                handle_shutdown(a, f);
                break;
        case AGENT_MSG_PORTS:
                send_error(a, f->request_id, EOPNOTSUPP,
                           "Listing ports is not supported by this agent");
                break;
        default:
                /* STDIN frames and replies are not meant for the agent. */
                break;
        }
        return 0;
}

static void process_input(Agent *a)
{
        size_t pos = 0;

        while (pos < a->in.size) {
                AgentFrame f;
                size_t consumed;
                int r;

                r = agent_frame_decode(a->in.data + pos, a->in.size - pos, &f, &consumed);
                if (r == 0) {
                        /* An incomplete frame from an earlier connection would otherwise take
                         * the next client's HELLO as its payload. */
                        size_t hello = agent_frame_find_hello(a->in.data + pos, a->in.size - pos);
                        if (hello == 0)
                                break;
                        pos += hello;
                        continue;
                }
                if (r < 0) {
                        pos += agent_frame_resync(a->in.data + pos, a->in.size - pos);
                        continue;
                }
                /* A frame whose payload is malformed is most likely the cut-off start of a
                 * frame from an earlier connection that swallowed the next client's frames,
                 * so look for a magic inside it instead of skipping all of it. */
                if (handle_frame(a, &f) == -EBADMSG)
                        pos += agent_frame_resync(a->in.data + pos, a->in.size - pos);
                else
                        pos += consumed;
        }
        agent_buffer_consume(&a->in, pos);
}

/* Returns false when the host has disconnected. */
static bool read_port(Agent *a)
{
        uint8_t buf[64 * 1024];

        for (;;) {
                ssize_t n = read(a->port_fd, buf, sizeof(buf));

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return true;
                        guest_log_errno(-errno, "Failed to read from the host");
                        return false;
                }
                if (n == 0)
                        return false;
                if (agent_buffer_append(&a->in, buf, (size_t)n) < 0)
                        return false;
                process_input(a);
        }
}

/* Moves the data in a pipe into STDOUT or STDERR frames. Returns false at end of file. */
static bool read_pipe(Agent *a, int fd, AgentMessageType type)
{
        uint8_t buf[AGENT_OUTPUT_CHUNK_MAX];

        while (a->out.size < OUTPUT_QUEUE_MAX) {
                ssize_t n = read(fd, buf, sizeof(buf));

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return errno == EAGAIN;
                }
                if (n == 0)
                        return false;
                if (agent_frame_append(&a->out, type, a->exec.request_id, buf, (size_t)n) < 0)
                        return false;
        }
        return true;
}

static void finish_exec_if_done(Agent *a)
{
        Exec *e = &a->exec;
        AgentExit ex;

        if (e->pid == 0 || !e->reaped)
                return;

        /* Once the command has exited its output is already in the pipes, so read what is
         * there and stop: a background process that inherited them must not hold EXIT up. */
        if (e->out_fd >= 0 && !read_pipe(a, e->out_fd, AGENT_MSG_STDOUT))
                e->out_fd = safe_close(e->out_fd);
        if (e->err_fd >= 0 && !read_pipe(a, e->err_fd, AGENT_MSG_STDERR))
                e->err_fd = safe_close(e->err_fd);
        if (a->out.size >= OUTPUT_QUEUE_MAX)
                return;

        if (WIFSIGNALED(e->status))
                ex = (AgentExit){ .exit_status = -1, .signal = WTERMSIG(e->status) };
        else
                ex = (AgentExit){ .exit_status = WEXITSTATUS(e->status) };
        (void)agent_exit_append(&a->out, e->request_id, &ex);

        exec_close_pipes(e);
        *e = (Exec){ .out_fd = -EBADF, .err_fd = -EBADF };
}

static int handle_signals(Agent *a)
{
        struct signalfd_siginfo si;

        while (read(a->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
                        return -ECANCELED;

        for (;;) {
                int status;
                pid_t pid = waitpid(-1, &status, WNOHANG);

                if (pid <= 0)
                        break;
                if (pid == a->exec.pid) {
                        a->exec.reaped = true;
                        a->exec.status = status;
                }
        }
        return 0;
}

static bool host_connected(Agent *a)
{
        struct pollfd p = { .fd = a->port_fd, .events = POLLIN };

        return poll(&p, 1, 0) >= 0 && !(p.revents & POLLHUP);
}

static int run(Agent *a)
{
        for (;;) {
                struct pollfd p[4];
                nfds_t n = 0;
                int r;

                finish_exec_if_done(a);

                if (a->connected) {
                        r = flush_output(a);
                        if (r < 0 && r != -EAGAIN) {
                                guest_log_errno(r, "Failed to write to the host, dropping the "
                                                   "connection");
                                a->connected = false;
                                reset_session(a);
                        }
                }

                p[n++] = (struct pollfd){ .fd = a->signal_fd, .events = POLLIN };
                /* While no host is connected the port reports POLLHUP at once, so it is
                 * checked on a timer instead of polled. */
                if (a->connected)
                        p[n++] = (struct pollfd){
                                .fd = a->port_fd,
                                .events = POLLIN | (a->out.size > 0 ? POLLOUT : 0),
                        };
                if (a->out.size < OUTPUT_QUEUE_MAX && a->exec.out_fd >= 0 && !a->exec.reaped)
                        p[n++] = (struct pollfd){ .fd = a->exec.out_fd, .events = POLLIN };
                if (a->out.size < OUTPUT_QUEUE_MAX && a->exec.err_fd >= 0 && !a->exec.reaped)
                        p[n++] = (struct pollfd){ .fd = a->exec.err_fd, .events = POLLIN };

                r = poll(p, n, a->connected ? -1 : RECONNECT_POLL_MS);
                if (r < 0 && errno != EINTR)
                        return guest_log_errno(-errno, "Failed to poll");

                r = handle_signals(a);
                if (r < 0)
                        return 0;

                if (!a->connected) {
                        a->connected = host_connected(a);
                        continue;
                }

                for (nfds_t i = 1; i < n; i++) {
                        if (p[i].revents == 0)
                                continue;
                        if (p[i].fd == a->port_fd) {
                                if (!read_port(a) || (p[i].revents & POLLHUP)) {
                                        a->connected = false;
                                        reset_session(a);
                                }
                        } else if (p[i].fd == a->exec.out_fd) {
                                if (!read_pipe(a, a->exec.out_fd, AGENT_MSG_STDOUT))
                                        a->exec.out_fd = safe_close(a->exec.out_fd);
                        } else if (p[i].fd == a->exec.err_fd) {
                                if (!read_pipe(a, a->exec.err_fd, AGENT_MSG_STDERR))
                                        a->exec.err_fd = safe_close(a->exec.err_fd);
                        }
                }
        }
}

static void help(void)
{
        printf("banger-agent [OPTIONS]\n\n"
               "Serves banger's exec and shutdown requests on a virtio-serial port.\n\n"
               "  -h --help          Show this help\n"
               "     --root=DIR      Run commands chrooted in DIR (default: /sysroot)\n"
               "     --config=FILE   Guest configuration (default: " GUEST_CONFIG_PATH ")\n"
               "     --port=NAME     virtio-serial port name (default: the configuration's\n"
               "                     agent_port, else " GUEST_AGENT_PORT_NAME ")\n");
}

int main(int argc, char *argv[])
{
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "root", required_argument, NULL, 'r' },
                { "config", required_argument, NULL, 'c' },
                { "port", required_argument, NULL, 'p' },
                {},
        };
        const char *config_path = GUEST_CONFIG_PATH, *port = NULL;
        Agent a = {
                .root = "/sysroot",
                .port_fd = -EBADF,
                .signal_fd = -EBADF,
                .exec = { .out_fd = -EBADF, .err_fd = -EBADF },
        };
        sigset_t mask;
        int c, r;

        guest_log_open("banger-agent");

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                case 'r':
                        a.root = optarg;
                        break;
                case 'c':
                        config_path = optarg;
                        break;
                case 'p':
                        port = optarg;
                        break;
                default:
                        return EXIT_FAILURE;
                }
        }

        r = guest_config_load(config_path, &a.config);
        if (r < 0)
                return EXIT_FAILURE;
        if (!port)
                port = isempty(a.config->agent_port) ? GUEST_AGENT_PORT_NAME : a.config->agent_port;

        signal(SIGPIPE, SIG_IGN);
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        a.signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        if (a.signal_fd < 0)
                return guest_log_errno(-errno, "Failed to create a signalfd"), EXIT_FAILURE;

        a.port_fd = open_port(port);
        if (a.port_fd < 0)
                return EXIT_FAILURE;

        guest_log("Serving on port '%s'", port);
        r = run(&a);

        reset_session(&a);
        agent_buffer_done(&a.in);
        agent_buffer_done(&a.out);
        guest_config_free(a.config);
        safe_close(a.port_fd);
        safe_close(a.signal_fd);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
