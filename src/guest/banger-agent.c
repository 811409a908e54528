/* banger-agent: serves the host's requests inside the guest, on a virtio-serial port (QEMU)
 * and on vsock port AGENT_VSOCK_PORT (Firecracker).
 *
 * Each connection is a session that serves one request at a time: a handshake, an EXEC whose
 * input and output stream until EXIT, a PORTS listing, or a SHUTDOWN. The virtio-serial port
 * carries one host connection after another, and vsock takes up to SESSIONS_MAX at once. The
 * host may go away at any moment. The agent then kills the session's command and drops what
 * it had queued. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent-exec.h"
#include "agent-ports.h"
#include "agent-proto.h"
#include "config.h"
#include "guest-config.h"
#include "guest-user.h"
#include "guest-util.h"
#include "macro.h"

/* The port appears when the virtio_console module has probed it, a moment after boot. */
#define PORT_WAIT_USEC (30u * 1000u * 1000u)
#define PORT_RETRY_MS  100
/* How often the agent checks whether a host connected to the port while none is. */
#define RECONNECT_POLL_MS 50
/* Child output is not read while this much is queued for the host, so a slow transport slows
 * the command down instead of growing the agent's memory. */
#define OUTPUT_QUEUE_MAX (256u * 1024u)
/* Requests are not read while this much is queued for the host, so a host that sends requests
 * without reading the replies cannot grow the agent's memory. Output alone stays below it. */
#define SESSION_QUEUE_MAX (4u * 1024u * 1024u)
/* Connections served at once over vsock or a unix socket. */
#define SESSIONS_MAX 16u
/* Stdin credit goes back to the host in WINDOW frames of at least this many bytes, or as soon
 * as everything received has been written to the command. */
#define WINDOW_UPDATE_MIN (AGENT_WINDOW_INITIAL / 4u)

typedef enum HelloState {
        HELLO_NONE,     /* no HELLO on this connection yet */
        HELLO_OK,       /* HELLO of AGENT_PROTOCOL_VERSION */
        HELLO_MISMATCH, /* HELLO of another version: requests get EPROTONOSUPPORT */
} HelloState;

typedef struct Exec {
        pid_t pid; /* 0 when no command runs */
        uint32_t request_id;
        uint32_t flags;
        ExecFds fds;
        AgentBuffer input; /* STDIN payload not yet written to fds.in */
        bool input_eof;    /* STDIN_EOF received */
        uint64_t output_credit;
        uint64_t input_credit;
        uint32_t input_done; /* input bytes written or dropped since the last WINDOW */
        bool reaped;
        int status;
} Exec;

typedef struct Session {
        int fd;
        bool serial; /* the virtio-serial port, which stays open from one host to the next */
        bool connected;
        bool closed; /* an accepted connection that ended, freed after the poll round */
        HelloState hello;
        AgentBuffer in;
        AgentBuffer out;
        size_t frame_left; /* serial: bytes of the frame at the start of out not yet written */
        Exec exec;
} Session;

typedef struct Agent {
        const char *root;
        GuestConfig *config;
        int signal_fd;
        const char *port_name; /* NULL: no virtio-serial port, or the search gave up */
        uint64_t port_deadline;
        Session serial; /* fd is -EBADF until the port is open */
        int vsock_fd;
        int unix_fd;
        const char *unix_path;
        Session *accepted[SESSIONS_MAX];
} Agent;

static void exec_init(Exec *e)
{
        *e = (Exec){ .fds = { .out = -EBADF, .err = -EBADF, .in = -EBADF } };
}

static void exec_done(Exec *e)
{
        safe_close(e->fds.out);
        safe_close(e->fds.err);
        safe_close(e->fds.in);
        agent_buffer_done(&e->input);
        exec_init(e);
}

static void abort_exec(Exec *e)
{
        if (e->pid == 0)
                return;

        /* handle_signals() reaps it later, without an EXIT frame. */
        if (!e->reaped) {
                (void)kill(-e->pid, SIGKILL);
                /* The child may not have called setsid() yet. */
                (void)kill(e->pid, SIGKILL);
        }
        exec_done(e);
}

static void session_init(Session *s, int fd, bool serial)
{
        *s = (Session){ .fd = fd, .serial = serial, .connected = !serial };
        exec_init(&s->exec);
}

/* Forgets the connection: its partial frames, its queued replies and its command. */
static void session_reset(Session *s)
{
        abort_exec(&s->exec);
        s->in.size = 0;
        s->out.size = 0;
        s->frame_left = 0;
        s->hello = HELLO_NONE;
}

static void session_free(Session *s)
{
        session_reset(s);
        agent_buffer_done(&s->in);
        agent_buffer_done(&s->out);
        safe_close(s->fd);
        free(s);
}

static void __attribute__((format(printf, 4, 5)))
send_error(Session *s, uint32_t id, int code, const char *format, ...)
{
        char message[512];
        va_list ap;

        va_start(ap, format);
        vsnprintf(message, sizeof(message), format, ap);
        va_end(ap);

        guest_log("%s", message);
        (void)agent_error_append(&s->out, id, code, message);
}

/* Ends the session's command with an ERROR instead of EXIT. */
#define fail_exec(s, code, ...)                                             \
        do {                                                                \
                send_error((s), (s)->exec.request_id, (code), __VA_ARGS__); \
                abort_exec(&(s)->exec);                                     \
        } while (0)

/* Returns the size of the frame whose header starts at p. */
static size_t frame_size(const uint8_t *p)
{
        uint32_t length =
                (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;

        return AGENT_FRAME_HEADER_SIZE + (size_t)length;
}

/* Writes queued frames. On the virtio-serial port each write() carries at most one frame: the
 * driver takes up to 32 KiB of a write as one buffer, so frames of up to that size are never
 * cut. Returns -EAGAIN when the transport is full. */
static int session_flush(Session *s)
{
        while (s->out.size > 0) {
                size_t size = s->out.size;
                ssize_t n;

                if (s->serial) {
                        if (s->frame_left == 0)
                                s->frame_left = frame_size(s->out.data);
                        size = s->frame_left;
                }

                n = write(s->fd, s->out.data, size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                agent_buffer_consume(&s->out, (size_t)n);
                if (s->serial)
                        s->frame_left -= (size_t)n;
        }
        return 0;
}

/* Waits until the queued frames are written or the host goes away. */
static int session_flush_blocking(Session *s, int timeout_ms)
{
        for (;;) {
                struct pollfd p = { .fd = s->fd, .events = POLLOUT };
                int r;

                r = session_flush(s);
                if (r != -EAGAIN)
                        return r;
                r = poll(&p, 1, timeout_ms);
                if (r <= 0 || (p.revents & POLLHUP))
                        return -ETIMEDOUT;
        }
}

static int handle_hello(Session *s, const AgentFrame *f)
{
        AgentHello h;
        int r;

        r = agent_hello_decode(f, &h);
        if (r < 0)
                return r;

        /* A new HELLO means a new client: the previous one will not read our replies. */
        s->out.size = 0;
        s->frame_left = 0;
        abort_exec(&s->exec);

        if (h.version == AGENT_PROTOCOL_VERSION)
                s->hello = HELLO_OK;
        else {
                s->hello = HELLO_MISMATCH;
                guest_log("Host speaks agent protocol version %u, this agent version %u: "
                          "rejecting its requests",
                          h.version, AGENT_PROTOCOL_VERSION);
        }

        AgentHello reply = {
                .version = AGENT_PROTOCOL_VERSION,
                .nonce = h.nonce,
                .info = (char *)"banger-agent " BANGER_VERSION,
        };
        agent_hello_done(&h);
        (void)agent_hello_append(&s->out, AGENT_MSG_HELLO_REPLY, f->request_id, &reply);
        return 0;
}

/* Returns whether the connection's handshake allows requests, and replies ERROR if not. */
static bool session_ready(Session *s, const AgentFrame *f)
{
        const char *name = agent_message_type_to_string(f->type);

        switch (s->hello) {
        case HELLO_OK:
                return true;
        case HELLO_MISMATCH:
                send_error(s, f->request_id, EPROTONOSUPPORT,
                           "This agent speaks protocol version %u, not the host's: import the "
                           "kernel again so that its initramfs carries the host's banger-agent",
                           AGENT_PROTOCOL_VERSION);
                return false;
        default:
                send_error(s, f->request_id, EPROTO,
                           "Rejecting '%s' before HELLO: send HELLO first", strempty(name));
                return false;
        }
}

/* The reason for a guest_user_resolve() failure, for the ERROR message. */
static const char *user_error_reason(int r)
{
        if (r == -ESRCH)
                return "no such user or group in the guest's /etc/passwd and /etc/group";
        if (r == -EINVAL)
                return "invalid user, use NAME, UID, NAME:GROUP or UID:GID";
        return strerror(-r);
}

static void start_exec(Agent *a, Session *s, uint32_t id, const AgentExec *req)
{
        const char *user = req->user ?: strempty(a->config->user);
        Exec *e = &s->exec;
        ExecFds fds;
        uid_t uid;
        gid_t gid;
        pid_t pid;
        int r;

        r = guest_user_resolve(a->root, user, &uid, &gid);
        if (r < 0) {
                send_error(s, id, -r, "Failed to start '%s' as user '%s': %s", req->argv[0], user,
                           user_error_reason(r));
                return;
        }

        r = exec_spawn(a->root, a->config, req, uid, gid, &pid, &fds);
        if (r < 0) {
                send_error(s, id, -r, "Failed to start '%s': %s", req->argv[0], strerror(-r));
                return;
        }

        *e = (Exec){
                .pid = pid,
                .request_id = id,
                .flags = req->flags,
                .fds = fds,
                .output_credit = AGENT_WINDOW_INITIAL,
                .input_credit = AGENT_WINDOW_INITIAL,
        };
}

static int handle_exec(Agent *a, Session *s, const AgentFrame *f)
{
        AgentExec req;
        int r;

        /* Decode first: a malformed EXEC is likely the cut-off start of a frame that swallowed
         * the next client's HELLO, which process_input() then looks for. */
        r = agent_exec_decode(f, &req);
        if (r < 0) {
                send_error(s, f->request_id, EBADMSG, "Malformed EXEC request, ignoring");
                return r;
        }

        if (!session_ready(s, f))
                ;
        else if (s->exec.pid != 0)
                send_error(s, f->request_id, EBUSY,
                           "Another command is still running: wait for its EXIT first");
        else if (req.flags & ~AGENT_EXEC_FLAGS_ALL)
                send_error(s, f->request_id, EOPNOTSUPP,
                           "EXEC flags 0x%x are not supported by this agent: send only 0x%x",
                           req.flags & ~AGENT_EXEC_FLAGS_ALL, AGENT_EXEC_FLAGS_ALL);
        else
                start_exec(a, s, f->request_id, &req);

        agent_exec_done(&req);
        return 0;
}

/* Returns the session's command when f belongs to it. Frames of a command that has ended are
 * expected: the host may send them before it reads EXIT. */
static Exec *exec_of_frame(Session *s, const AgentFrame *f)
{
        if (s->exec.pid == 0 || f->request_id != s->exec.request_id)
                return NULL;
        return &s->exec;
}

static void send_window(Session *s, bool force)
{
        Exec *e = &s->exec;

        if (e->input_done == 0 || (!force && e->input_done < WINDOW_UPDATE_MIN))
                return;
        (void)agent_credit_grant(&e->input_credit, e->input_done);
        (void)agent_window_append(&s->out, e->request_id, e->input_done);
        e->input_done = 0;
}

static void close_input(Exec *e)
{
        if (e->flags & AGENT_EXEC_FLAG_TTY)
                (void)exec_terminal_eof(e->fds.in);
        e->fds.in = safe_close(e->fds.in);
}

/* Drops queued input whose command no longer reads it, and counts it as written so the host
 * keeps its credit. */
static void drop_input(Exec *e)
{
        e->input_done += (uint32_t)e->input.size;
        e->input.size = 0;
}

/* Writes queued input into the command without blocking. */
static void write_input(Session *s)
{
        Exec *e = &s->exec;

        while (e->input.size > 0 && e->fds.in >= 0) {
                ssize_t n = write(e->fds.in, e->input.data, e->input.size);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        /* EPIPE: the command closed its stdin. EIO: its terminal is gone. */
                        e->fds.in = safe_close(e->fds.in);
                        break;
                }
                agent_buffer_consume(&e->input, (size_t)n);
                e->input_done += (uint32_t)n;
        }
        if (e->fds.in < 0)
                drop_input(e);
        if (e->input.size == 0 && e->input_eof && e->fds.in >= 0)
                close_input(e);
        send_window(s, e->input.size == 0);
}

static void handle_stdin(Session *s, const AgentFrame *f)
{
        Exec *e = exec_of_frame(s, f);

        if (!e)
                return;
        if (!(e->flags & AGENT_EXEC_FLAG_STDIN)) {
                fail_exec(s, EPROTO, "STDIN for a command started without the stdin flag");
                return;
        }
        if (e->input_eof) {
                fail_exec(s, EPROTO, "STDIN after STDIN_EOF: end of file was already sent");
                return;
        }
        if (f->payload_size > e->input_credit) {
                fail_exec(s, EPROTO, "STDIN of %u bytes exceeds the %llu bytes of credit left",
                          f->payload_size, (unsigned long long)e->input_credit);
                return;
        }
        (void)agent_credit_take(&e->input_credit, f->payload_size);

        if (agent_buffer_append(&e->input, f->payload, f->payload_size) < 0) {
                fail_exec(s, ENOMEM, "Failed to queue %u bytes of stdin", f->payload_size);
                return;
        }
        write_input(s);
}

static int handle_stdin_eof(Session *s, const AgentFrame *f)
{
        Exec *e = exec_of_frame(s, f);

        if (f->payload_size != 0)
                return -EBADMSG;
        if (!e)
                return 0;
        if (!(e->flags & AGENT_EXEC_FLAG_STDIN))
                fail_exec(s, EPROTO, "STDIN_EOF for a command started without the stdin flag");
        else if (e->input_eof)
                fail_exec(s, EPROTO, "Second STDIN_EOF for the same command");
        else {
                e->input_eof = true;
                write_input(s);
        }
        return 0;
}

static int handle_window(Session *s, const AgentFrame *f)
{
        Exec *e = exec_of_frame(s, f);
        uint32_t credit;
        int r;

        if (!e)
                return 0;

        r = agent_window_decode(f, &credit);
        if (r < 0) {
                fail_exec(s, EBADMSG, "Malformed WINDOW frame");
                return r;
        }
        if (agent_credit_grant(&e->output_credit, credit) < 0)
                fail_exec(s, EPROTO,
                          "WINDOW of %u bytes raises the output credit above the maximum of %u",
                          credit, AGENT_WINDOW_MAX);
        return 0;
}

static int handle_resize(Session *s, const AgentFrame *f)
{
        Exec *e = exec_of_frame(s, f);
        uint32_t rows, cols;
        int r;

        if (!e)
                return 0;

        r = agent_resize_decode(f, &rows, &cols);
        if (r < 0) {
                fail_exec(s, EBADMSG, "Malformed RESIZE frame");
                return r;
        }
        /* A command without a terminal has no window size to change. */
        if (!(e->flags & AGENT_EXEC_FLAG_TTY) || e->fds.out < 0)
                return 0;

        r = exec_resize(e->fds.out, rows, cols);
        if (r < 0)
                guest_log_errno(r, "Failed to resize the terminal to %ux%u, ignoring", rows, cols);
        return 0;
}

static int handle_ports(Session *s, const AgentFrame *f)
{
        AgentPortList l;
        int r;

        if (f->payload_size != 0)
                return -EBADMSG;
        if (!session_ready(s, f))
                return 0;

        r = agent_ports_collect("/proc", &l);
        if (r < 0) {
                send_error(s, f->request_id, -r, "Failed to list listening sockets: %s",
                           strerror(-r));
                return 0;
        }
        r = agent_ports_reply_append(&s->out, f->request_id, &l);
        if (r < 0)
                send_error(s, f->request_id, -r, "Failed to send %zu listening sockets: %s",
                           l.n_ports, strerror(-r));
        agent_port_list_done(&l);
        return 0;
}

static int handle_shutdown(Session *s, const AgentFrame *f)
{
        if (f->payload_size != 0)
                return -EBADMSG;
        if (!session_ready(s, f))
                return 0;

        /* Only banger-init powers the VM off. An agent started any other way rejects the
         * request, so a test run on a host never signals the host's PID 1. */
        if (getppid() != 1) {
                send_error(s, f->request_id, EPERM,
                           "Not started by banger-init, so not powering off");
                return 0;
        }

        guest_log("Shutdown requested by the host");
        (void)agent_frame_append(&s->out, AGENT_MSG_SHUTDOWN_ACK, f->request_id, NULL, 0);
        (void)session_flush_blocking(s, 1000);
        (void)kill(1, SIGTERM);
        return 0;
}

/* Returns -EBADMSG when the payload does not match the frame's type. */
static int handle_frame(Agent *a, Session *s, const AgentFrame *f)
{
        switch (f->type) {
        case AGENT_MSG_HELLO:
                return handle_hello(s, f);
        case AGENT_MSG_EXEC:
                return handle_exec(a, s, f);
        case AGENT_MSG_STDIN:
                handle_stdin(s, f);
                return 0;
        case AGENT_MSG_STDIN_EOF:
                return handle_stdin_eof(s, f);
        case AGENT_MSG_WINDOW:
                return handle_window(s, f);
        case AGENT_MSG_RESIZE:
                return handle_resize(s, f);
        case AGENT_MSG_PORTS:
                return handle_ports(s, f);
        case AGENT_MSG_SHUTDOWN:
                return handle_shutdown(s, f);
        default:
                /* Replies are not meant for the agent. */
                return 0;
        }
}

static void process_input(Agent *a, Session *s)
{
        size_t pos = 0;

        while (pos < s->in.size) {
                AgentFrame f;
                size_t consumed;
                int r;

                r = agent_frame_decode(s->in.data + pos, s->in.size - pos, &f, &consumed);
                if (r == 0) {
                        /* An incomplete frame from an earlier connection would otherwise take
                         * the next client's HELLO as its payload. */
                        size_t hello = agent_frame_find_hello(s->in.data + pos, s->in.size - pos);
                        if (hello == 0)
                                break;
                        pos += hello;
                        continue;
                }
                if (r < 0) {
                        pos += agent_frame_resync(s->in.data + pos, s->in.size - pos);
                        continue;
                }
                /* A frame whose payload is malformed is most likely the cut-off start of a
                 * frame from an earlier connection that swallowed the next client's frames,
                 * so look for a magic inside it instead of skipping all of it. */
                if (handle_frame(a, s, &f) == -EBADMSG)
                        pos += agent_frame_resync(s->in.data + pos, s->in.size - pos);
                else
                        pos += consumed;
        }
        agent_buffer_consume(&s->in, pos);
}

/* Returns false when the host has disconnected. */
static bool read_connection(Agent *a, Session *s)
{
        uint8_t buf[64 * 1024];

        while (s->out.size < SESSION_QUEUE_MAX) {
                ssize_t n = read(s->fd, buf, sizeof(buf));

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return true;
                        if (errno != ECONNRESET)
                                guest_log_errno(-errno, "Failed to read from the host");
                        return false;
                }
                if (n == 0)
                        return false;
                if (agent_buffer_append(&s->in, buf, (size_t)n) < 0)
                        return false;
                process_input(a, s);
        }
        return true;
}

static void disconnect(Session *s)
{
        session_reset(s);
        if (s->serial) {
                s->connected = false;
                return;
        }
        s->fd = safe_close(s->fd);
        s->connected = false;
        s->closed = true;
}

typedef enum OutputState {
        OUTPUT_BLOCKED, /* more may be ready, but the host's credit or the queue is used up */
        OUTPUT_DRAINED, /* nothing more to read now */
        OUTPUT_END,     /* end of file, or the terminal closed */
} OutputState;

/* Moves the data in a command's output descriptor into STDOUT or STDERR frames. */
static OutputState read_output(Session *s, int fd, AgentMessageType type)
{
        uint8_t buf[AGENT_OUTPUT_CHUNK_MAX];
        Exec *e = &s->exec;

        while (s->out.size < OUTPUT_QUEUE_MAX && e->output_credit > 0) {
                size_t size =
                        e->output_credit < sizeof(buf) ? (size_t)e->output_credit : sizeof(buf);
                ssize_t n = read(fd, buf, size);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        /* A terminal's master side returns EIO once every slave is closed. */
                        return errno == EAGAIN ? OUTPUT_DRAINED : OUTPUT_END;
                }
                if (n == 0)
                        return OUTPUT_END;
                if (agent_frame_append(&s->out, type, e->request_id, buf, (size_t)n) < 0)
                        return OUTPUT_END;
                (void)agent_credit_take(&e->output_credit, (size_t)n);
        }
        return OUTPUT_BLOCKED;
}

static void finish_exec_if_done(Session *s)
{
        Exec *e = &s->exec;
        AgentExit ex;

        if (e->pid == 0 || !e->reaped)
                return;

        /* Once the command has exited its output is already in the pipes, so read what is
         * there and stop: a background process that inherited them must not hold EXIT up.
         * Output that waits for credit keeps its descriptor open until the host grants it. */
        if (e->fds.out >= 0 && read_output(s, e->fds.out, AGENT_MSG_STDOUT) != OUTPUT_BLOCKED)
                e->fds.out = safe_close(e->fds.out);
        if (e->fds.err >= 0 && read_output(s, e->fds.err, AGENT_MSG_STDERR) != OUTPUT_BLOCKED)
                e->fds.err = safe_close(e->fds.err);
        if (e->fds.out >= 0 || e->fds.err >= 0)
                return;

        if (WIFSIGNALED(e->status))
                ex = (AgentExit){ .exit_status = -1, .signal = WTERMSIG(e->status) };
        else
                ex = (AgentExit){ .exit_status = WEXITSTATUS(e->status) };
        (void)agent_exit_append(&s->out, e->request_id, &ex);
        exec_done(e);
}

static Session *find_session_of_pid(Agent *a, pid_t pid)
{
        if (a->serial.fd >= 0 && a->serial.exec.pid == pid)
                return &a->serial;
        for (size_t i = 0; i < SESSIONS_MAX; i++)
                if (a->accepted[i] && a->accepted[i]->exec.pid == pid)
                        return a->accepted[i];
        return NULL;
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
                Session *s;

                if (pid <= 0)
                        break;
                s = find_session_of_pid(a, pid);
                if (s) {
                        s->exec.reaped = true;
                        s->exec.status = status;
                }
        }
        return 0;
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

/* Opens the virtio-serial port once it exists. Returns -ENOENT while it does not, also while
 * devtmpfs has not created the node that follows the sysfs entry. */
static int try_open_port(const char *name)
{
        _cleanup_free_ char *dev = NULL;
        int r, fd;

        r = find_port(name, &dev);
        if (r < 0)
                return r == -ENOENT ? r : guest_log_errno(r, "Failed to look for port '%s'", name);

        fd = open(dev, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                r = negative_errno();
                return r == -ENOENT ? r : guest_log_errno(r, "Failed to open '%s'", dev);
        }
        return fd;
}

static bool have_listeners(const Agent *a)
{
        return a->vsock_fd >= 0 || a->unix_fd >= 0;
}

/* Looks for the port until PORT_WAIT_USEC has passed. Returns an error when it never appears
 * and nothing else serves the host. */
static int update_serial(Agent *a)
{
        int fd;

        if (!a->port_name || a->serial.fd >= 0)
                return 0;

        fd = try_open_port(a->port_name);
        if (fd >= 0) {
                session_init(&a->serial, fd, true);
                guest_log("Serving on port '%s'", a->port_name);
                return 0;
        }
        if (fd != -ENOENT || guest_now_usec() >= a->port_deadline) {
                if (!have_listeners(a))
                        return guest_log_errno(fd,
                                               "Failed to find the virtio-serial port '%s' "
                                               "(is virtio_console loaded and the port "
                                               "configured in the VMM?)",
                                               a->port_name);
                guest_log("No virtio-serial port '%s', serving vsock only", a->port_name);
                a->port_name = NULL;
        }
        return 0;
}

static bool host_connected(const Session *s)
{
        struct pollfd p = { .fd = s->fd, .events = POLLIN };

        return poll(&p, 1, 0) >= 0 && !(p.revents & POLLHUP);
}

static void accept_connection(Agent *a, int listen_fd)
{
        Session *s;
        size_t slot = SESSIONS_MAX;
        int fd;

        fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
                if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        guest_log_errno(-errno, "Failed to accept a connection, ignoring");
                return;
        }

        for (size_t i = 0; i < SESSIONS_MAX && slot == SESSIONS_MAX; i++)
                if (!a->accepted[i])
                        slot = i;
        s = slot < SESSIONS_MAX ? malloc(sizeof(Session)) : NULL;
        if (!s) {
                guest_log("Rejecting a connection: %u are open already", SESSIONS_MAX);
                close(fd);
                return;
        }
        session_init(s, fd, false);
        a->accepted[slot] = s;
}

/* Finishes commands that exited and writes queued frames. */
static void service_session(Session *s)
{
        int r;

        finish_exec_if_done(s);
        if (!s->connected)
                return;

        r = session_flush(s);
        if (r < 0 && r != -EAGAIN) {
                if (r != -EPIPE && r != -ECONNRESET)
                        guest_log_errno(r, "Failed to write to the host, dropping the connection");
                disconnect(s);
        }
}

typedef enum PollKind {
        POLL_SIGNAL,
        POLL_LISTEN,
        POLL_CONNECTION,
        POLL_STDOUT,
        POLL_STDERR,
        POLL_STDIN,
} PollKind;

#define POLL_MAX (3u + 4u * (SESSIONS_MAX + 1u))

typedef struct PollSet {
        struct pollfd fds[POLL_MAX];
        PollKind kinds[POLL_MAX];
        Session *sessions[POLL_MAX];
        nfds_t n;
} PollSet;

static void poll_add(PollSet *set, int fd, short events, PollKind kind, Session *s)
{
        set->fds[set->n] = (struct pollfd){ .fd = fd, .events = events };
        set->kinds[set->n] = kind;
        set->sessions[set->n] = s;
        set->n++;
}

static void poll_add_session(PollSet *set, Session *s)
{
        Exec *e = &s->exec;
        bool output_room = s->out.size < OUTPUT_QUEUE_MAX && e->output_credit > 0;

        if (!s->connected)
                return;

        /* poll() reports POLLHUP even without POLLIN, so a host that went away is noticed. */
        poll_add(set, s->fd,
                 (s->out.size < SESSION_QUEUE_MAX ? POLLIN : 0) | (s->out.size > 0 ? POLLOUT : 0),
                 POLL_CONNECTION, s);
        if (e->pid == 0 || e->reaped)
                return;
        if (output_room && e->fds.out >= 0)
                poll_add(set, e->fds.out, POLLIN, POLL_STDOUT, s);
        if (output_room && e->fds.err >= 0)
                poll_add(set, e->fds.err, POLLIN, POLL_STDERR, s);
        if (e->input.size > 0 && e->fds.in >= 0)
                poll_add(set, e->fds.in, POLLOUT, POLL_STDIN, s);
}

static int poll_timeout(const Agent *a)
{
        if (a->port_name && a->serial.fd < 0)
                return PORT_RETRY_MS;
        /* While no host is connected the port reports POLLHUP at once, so it is checked on a
         * timer instead of polled. */
        if (a->serial.fd >= 0 && !a->serial.connected)
                return RECONNECT_POLL_MS;
        return -1;
}

static void dispatch(Agent *a, const PollSet *set)
{
        for (nfds_t i = 0; i < set->n; i++) {
                const struct pollfd *p = &set->fds[i];
                Session *s = set->sessions[i];

                if (p->revents == 0 || (s && (s->closed || !s->connected)))
                        continue;

                switch (set->kinds[i]) {
                case POLL_SIGNAL:
                        break;
                case POLL_LISTEN:
                        accept_connection(a, p->fd);
                        break;
                case POLL_CONNECTION:
                        /* POLLOUT alone only wakes the loop: service_session() writes. */
                        if (!(p->revents & (POLLIN | POLLHUP | POLLERR)))
                                break;
                        if (!read_connection(a, s) || (p->revents & POLLHUP))
                                disconnect(s);
                        break;
                case POLL_STDOUT:
                        if (p->fd == s->exec.fds.out &&
                            read_output(s, p->fd, AGENT_MSG_STDOUT) == OUTPUT_END)
                                s->exec.fds.out = safe_close(s->exec.fds.out);
                        break;
                case POLL_STDERR:
                        if (p->fd == s->exec.fds.err &&
                            read_output(s, p->fd, AGENT_MSG_STDERR) == OUTPUT_END)
                                s->exec.fds.err = safe_close(s->exec.fds.err);
                        break;
                case POLL_STDIN:
                        if (p->fd == s->exec.fds.in)
                                write_input(s);
                        break;
                }
        }
}

static void free_closed_sessions(Agent *a)
{
        for (size_t i = 0; i < SESSIONS_MAX; i++)
                if (a->accepted[i] && a->accepted[i]->closed) {
                        session_free(a->accepted[i]);
                        a->accepted[i] = NULL;
                }
}

static int run(Agent *a)
{
        for (;;) {
                PollSet set = {};
                int r;

                r = update_serial(a);
                if (r < 0)
                        return r;

                if (a->serial.fd >= 0)
                        service_session(&a->serial);
                for (size_t i = 0; i < SESSIONS_MAX; i++)
                        if (a->accepted[i])
                                service_session(a->accepted[i]);
                free_closed_sessions(a);

                poll_add(&set, a->signal_fd, POLLIN, POLL_SIGNAL, NULL);
                if (a->vsock_fd >= 0)
                        poll_add(&set, a->vsock_fd, POLLIN, POLL_LISTEN, NULL);
                if (a->unix_fd >= 0)
                        poll_add(&set, a->unix_fd, POLLIN, POLL_LISTEN, NULL);
                if (a->serial.fd >= 0)
                        poll_add_session(&set, &a->serial);
                for (size_t i = 0; i < SESSIONS_MAX; i++)
                        if (a->accepted[i])
                                poll_add_session(&set, a->accepted[i]);

                r = poll(set.fds, set.n, poll_timeout(a));
                if (r < 0 && errno != EINTR)
                        return guest_log_errno(-errno, "Failed to poll");

                r = handle_signals(a);
                if (r < 0)
                        return 0;

                if (a->serial.fd >= 0 && !a->serial.connected)
                        a->serial.connected = host_connected(&a->serial);

                dispatch(a, &set);
                free_closed_sessions(a);
        }
}

/* Listens on vsock. In a guest without vsock support socket() or bind() fails, which the
 * caller survives: QEMU guests are served on virtio-serial.
 * NOTE: no test reaches this listener from a host: that needs a VMM with a vsock device, and
 * the test machines have no /dev/vhost-vsock for QEMU's vhost-vsock-device. */
static int listen_vsock(unsigned port)
{
        struct sockaddr_vm sa = {
                .svm_family = AF_VSOCK,
                .svm_cid = VMADDR_CID_ANY,
                .svm_port = port,
        };
        _cleanup_close_ int fd = -EBADF;

        fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return negative_errno();
        if (listen(fd, SESSIONS_MAX) < 0)
                return negative_errno();
        return TAKE_FD(fd);
}

static int listen_unix(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        (void)unlink(path);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return negative_errno();
        if (listen(fd, SESSIONS_MAX) < 0)
                return negative_errno();
        return TAKE_FD(fd);
}

static int parse_vsock_port(const char *s, unsigned *ret)
{
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(s, &end, 10);
        if (isempty(s) || *end != '\0' || errno != 0 || v >= VMADDR_PORT_ANY)
                return -EINVAL;
        *ret = (unsigned)v;
        return 0;
}

static void help(void)
{
        printf("banger-agent [OPTIONS]\n\n"
               "Serves banger's exec, port listing and shutdown requests on a virtio-serial\n"
               "port and on vsock.\n\n"
               "  -h --help          Show this help\n"
               "     --root=DIR      Run commands chrooted in DIR (default: /sysroot)\n"
               "     --config=FILE   Guest configuration (default: " GUEST_CONFIG_PATH ")\n"
               "     --port=NAME     virtio-serial port name (default: the configuration's\n"
               "                     agent_port, else " GUEST_AGENT_PORT_NAME "); empty: none\n"
               "     --vsock-port=N  vsock port to listen on (default: %u); 0: none\n"
               "     --listen=PATH   Also listen on a unix socket at PATH\n",
               AGENT_VSOCK_PORT);
}

static void agent_done(Agent *a)
{
        if (a->serial.fd >= 0) {
                session_reset(&a->serial);
                agent_buffer_done(&a->serial.in);
                agent_buffer_done(&a->serial.out);
                safe_close(a->serial.fd);
        }
        for (size_t i = 0; i < SESSIONS_MAX; i++)
                if (a->accepted[i])
                        session_free(a->accepted[i]);
        safe_close(a->vsock_fd);
        safe_close(a->unix_fd);
        if (a->unix_path)
                (void)unlink(a->unix_path);
        guest_config_free(a->config);
        safe_close(a->signal_fd);
}

int main(int argc, char *argv[])
{
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "root", required_argument, NULL, 'r' },
                { "config", required_argument, NULL, 'c' },
                { "port", required_argument, NULL, 'p' },
                { "vsock-port", required_argument, NULL, 'v' },
                { "listen", required_argument, NULL, 'l' },
                {},
        };
        const char *config_path = GUEST_CONFIG_PATH, *port = NULL;
        unsigned vsock_port = AGENT_VSOCK_PORT;
        Agent a = {
                .root = "/sysroot",
                .signal_fd = -EBADF,
                .vsock_fd = -EBADF,
                .unix_fd = -EBADF,
        };
        sigset_t mask;
        int c, r;

        guest_log_open("banger-agent");
        session_init(&a.serial, -EBADF, true);

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
                case 'v':
                        if (parse_vsock_port(optarg, &vsock_port) < 0) {
                                guest_log("Invalid vsock port '%s': give a number below %u, or 0 "
                                          "for none",
                                          optarg, VMADDR_PORT_ANY);
                                return EXIT_FAILURE;
                        }
                        break;
                case 'l':
                        a.unix_path = optarg;
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
        a.port_name = isempty(port) ? NULL : port;
        a.port_deadline = guest_now_usec() + PORT_WAIT_USEC;

        signal(SIGPIPE, SIG_IGN);
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        a.signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        if (a.signal_fd < 0) {
                guest_log_errno(-errno, "Failed to create a signalfd");
                agent_done(&a);
                return EXIT_FAILURE;
        }

        if (vsock_port != 0) {
                a.vsock_fd = listen_vsock(vsock_port);
                if (a.vsock_fd >= 0)
                        guest_log("Listening on vsock port %u", vsock_port);
                else
                        guest_log_errno(a.vsock_fd,
                                        "Failed to listen on vsock port %u, serving without vsock",
                                        vsock_port);
        }
        if (a.unix_path) {
                a.unix_fd = listen_unix(a.unix_path);
                if (a.unix_fd < 0) {
                        guest_log_errno(a.unix_fd, "Failed to listen on '%s'", a.unix_path);
                        a.unix_path = NULL;
                        agent_done(&a);
                        return EXIT_FAILURE;
                }
        }
        if (!a.port_name && !have_listeners(&a)) {
                guest_log("Nothing to serve on: give --port, a working --vsock-port or --listen");
                agent_done(&a);
                return EXIT_FAILURE;
        }

        r = run(&a);
        agent_done(&a);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
