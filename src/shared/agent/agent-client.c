#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent-client.h"
#include "agent-proto.h"
#include "log.h"
#include "macro.h"

/* Without a reply, HELLO is sent again after this long: the first one may have been swallowed
 * as the payload of a frame that an earlier connection left half-sent. */
#define HELLO_RESEND_USEC (1000u * 1000u)
#define HELLO_NONCES_MAX  64u
/* While the socket does not exist or refuses connections, agent_wait_ready() retries at this
 * interval. */
#define CONNECT_RETRY_USEC (100u * 1000u)

typedef struct AgentConnection {
        int fd;
        uint64_t deadline;
        AgentBuffer in;
        size_t frame_size; /* bytes of in taken by the frame last returned, dropped on the next read
                            */
        uint32_t next_request_id;
} AgentConnection;

static uint64_t now_usec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t deadline_from_timeout(uint64_t timeout_usec)
{
        uint64_t now = now_usec();

        return timeout_usec > UINT64_MAX - now ? UINT64_MAX : now + timeout_usec;
}

/* Milliseconds until the earlier of the two times, rounded up, for poll(). */
static int poll_timeout_ms(uint64_t until)
{
        uint64_t now = now_usec();

        if (until <= now)
                return 0;
        if (until - now > (uint64_t)INT32_MAX * 1000u)
                return INT32_MAX;
        return (int)((until - now + 999u) / 1000u);
}

static void connection_done(AgentConnection *c)
{
        c->fd = safe_close(c->fd);
        agent_buffer_done(&c->in);
}

static int random_u64(uint64_t *ret)
{
        uint64_t v;
        ssize_t n;

        n = getrandom(&v, sizeof(v), 0);
        if (n < 0)
                return negative_errno();
        if ((size_t)n != sizeof(v))
                return -EIO;
        *ret = v;
        return 0;
}

static int connection_open(AgentConnection *c, const char *socket_path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        uint64_t seed;
        int r;

        if (strlen(socket_path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, socket_path);

        r = random_u64(&seed);
        if (r < 0)
                return r;

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return negative_errno();

        /* connect() on a unix stream socket completes at once or fails: EAGAIN means the
         * listener's backlog is full, which callers treat like a refusal. */
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return negative_errno();

        c->fd = TAKE_FD(fd);
        c->next_request_id = (uint32_t)seed;
        return 0;
}

static int connection_write(AgentConnection *c, const AgentBuffer *b)
{
        size_t done = 0;

        while (done < b->size) {
                struct pollfd p = { .fd = c->fd, .events = POLLOUT };
                ssize_t n;
                int k;

                n = send(c->fd, b->data + done, b->size - done, MSG_NOSIGNAL);
                if (n >= 0) {
                        done += (size_t)n;
                        continue;
                }
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN)
                        return negative_errno();

                k = poll(&p, 1, poll_timeout_ms(c->deadline));
                if (k < 0 && errno != EINTR)
                        return negative_errno();
                if (k == 0)
                        return -ETIMEDOUT;
        }
        return 0;
}

/* Decodes the next frame from the bytes received so far, skipping garbage before it. Returns 1
 * with *ret set, or 0 when more bytes must be received first. The frame's payload stays valid
 * until the next call. */
static int connection_next_frame(AgentConnection *c, AgentFrame *ret)
{
        agent_buffer_consume(&c->in, c->frame_size);
        c->frame_size = 0;

        for (;;) {
                size_t consumed, skip;
                int r;

                r = agent_frame_decode(c->in.data, c->in.size, ret, &consumed);
                if (r > 0) {
                        c->frame_size = consumed;
                        return 1;
                }
                if (r == 0)
                        return 0;

                skip = agent_frame_resync(c->in.data, c->in.size);
                log_debug("Skipping %zu bytes of unexpected agent data", skip);
                agent_buffer_consume(&c->in, skip);
        }
}

/* Appends what the socket has to c->in without blocking. Returns -EAGAIN when it has nothing
 * and -ECONNRESET when the agent's side is closed. */
static int connection_receive(AgentConnection *c)
{
        uint8_t chunk[64 * 1024];
        ssize_t n;

        n = recv(c->fd, chunk, sizeof(chunk), MSG_DONTWAIT);
        if (n < 0)
                return errno == EINTR ? -EAGAIN : negative_errno();
        if (n == 0)
                return -ECONNRESET;
        return agent_buffer_append(&c->in, chunk, (size_t)n);
}

/* Returns the next well-formed frame. until bounds this call (-ETIMEDOUT), never later than the
 * connection's deadline. The frame's payload stays valid until the next call. */
static int connection_read_frame(AgentConnection *c, uint64_t until, AgentFrame *ret)
{
        if (until > c->deadline)
                until = c->deadline;

        for (;;) {
                struct pollfd p = { .fd = c->fd, .events = POLLIN };
                int r;

                r = connection_next_frame(c, ret);
                if (r > 0)
                        return 0;

                r = poll(&p, 1, poll_timeout_ms(until));
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (r == 0)
                        return -ETIMEDOUT;

                r = connection_receive(c);
                if (r < 0 && r != -EAGAIN)
                        return r;
        }
}

static int send_hello(AgentConnection *c, uint64_t *nonces, size_t *n_nonces)
{
        AgentBuffer b = {};
        AgentHello h = { .version = AGENT_PROTOCOL_VERSION };
        int r;

        r = random_u64(&h.nonce);
        if (r < 0)
                return r;

        r = agent_hello_append(&b, AGENT_MSG_HELLO, 0, &h);
        if (r >= 0)
                r = connection_write(c, &b);
        agent_buffer_done(&b);
        if (r < 0)
                return r;

        /* Remember every nonce sent: the reply to an earlier HELLO may arrive after a later
         * one was sent, and either proves the agent is in sync. */
        if (*n_nonces == HELLO_NONCES_MAX)
                (*n_nonces)--;
        memmove(nonces + 1, nonces, *n_nonces * sizeof(*nonces));
        nonces[0] = h.nonce;
        (*n_nonces)++;
        return 0;
}

static bool nonce_was_sent(const uint64_t *nonces, size_t n, uint64_t nonce)
{
        for (size_t i = 0; i < n; i++)
                if (nonces[i] == nonce)
                        return true;
        return false;
}

/* Sends HELLO and waits for the matching HELLO_REPLY, ignoring everything before it. */
static int connection_handshake(AgentConnection *c)
{
        uint64_t nonces[HELLO_NONCES_MAX];
        size_t n_nonces = 0;
        int r;

        for (;;) {
                uint64_t resend = deadline_from_timeout(HELLO_RESEND_USEC);

                r = send_hello(c, nonces, &n_nonces);
                if (r < 0)
                        return r;

                for (;;) {
                        AgentFrame f;
                        AgentHello h;

                        r = connection_read_frame(c, resend, &f);
                        if (r == -ETIMEDOUT && now_usec() < c->deadline)
                                break;
                        if (r < 0)
                                return r;

                        if (f.type != AGENT_MSG_HELLO_REPLY)
                                continue;
                        if (agent_hello_decode(&f, &h) < 0)
                                continue;

                        bool ours = nonce_was_sent(nonces, n_nonces, h.nonce);
                        uint32_t version = h.version;

                        log_debug("Agent replied: '%s', protocol version %u", h.info, version);
                        agent_hello_done(&h);
                        if (!ours)
                                continue;
                        if (version != AGENT_PROTOCOL_VERSION) {
                                log_debug("Agent speaks protocol version %u, banger %u", version,
                                          AGENT_PROTOCOL_VERSION);
                                return -EPROTONOSUPPORT;
                        }
                        return 0;
                }
        }
}

static int connection_open_ready(AgentConnection *c, const char *socket_path, uint64_t timeout_usec)
{
        int r;

        *c = (AgentConnection){ .fd = -EBADF, .deadline = deadline_from_timeout(timeout_usec) };

        r = connection_open(c, socket_path);
        if (r < 0)
                return r;

        r = connection_handshake(c);
        if (r < 0)
                connection_done(c);
        return r;
}

/* Takes over fd, a connected non-blocking stream socket, and runs the handshake on it. */
static int connection_adopt_ready(AgentConnection *c, int fd, uint64_t timeout_usec)
{
        uint64_t seed;
        int r;

        *c = (AgentConnection){ .fd = fd, .deadline = deadline_from_timeout(timeout_usec) };

        r = random_u64(&seed);
        if (r >= 0) {
                c->next_request_id = (uint32_t)seed;
                r = connection_handshake(c);
        }
        if (r < 0)
                connection_done(c);
        return r;
}

/* Returns whether r is an error of a VM still booting or an agent restarting, worth a retry. */
static bool error_is_transient(int r)
{
        return r == -ENOENT || r == -ECONNREFUSED || r == -EAGAIN || r == -ECONNRESET ||
               r == -EPIPE;
}

int agent_wait_ready(const char *socket_path, uint64_t timeout_usec)
{
        uint64_t deadline = deadline_from_timeout(timeout_usec);
        int r;

        if (!socket_path)
                return -EINVAL;

        for (;;) {
                AgentConnection c;
                uint64_t now = now_usec();

                if (now >= deadline)
                        return -ETIMEDOUT;

                r = connection_open_ready(&c, socket_path, deadline - now);
                if (r >= 0) {
                        connection_done(&c);
                        return 0;
                }
                /* The VMM may not have created its socket yet, or the agent went away during
                 * the handshake: try again until the deadline. */
                if (!error_is_transient(r))
                        return r;

                log_debug_errno(r, "Agent at '%s' is not ready yet: %m", socket_path);
                struct timespec ts = { .tv_nsec = CONNECT_RETRY_USEC * 1000 };
                nanosleep(&ts, NULL);
        }
}

AgentExecResult *agent_exec_result_free(AgentExecResult *r)
{
        if (!r)
                return NULL;
        free(r->out);
        free(r->err);
        free(r);
        return NULL;
}

static void exec_result_freep(AgentExecResult **r)
{
        agent_exec_result_free(*r);
}

/* Turns an ERROR frame into a negative errno value. */
static int error_from_frame(const AgentFrame *f)
{
        AgentError e;
        int r;

        r = agent_error_decode(f, &e);
        if (r < 0)
                return -EPROTO;

        log_debug("Agent returned an error: %s", e.message);
        r = -e.code;
        agent_error_done(&e);
        return r;
}

/* Output credit goes back to the agent in WINDOW frames of at least this many bytes, or as soon
 * as everything received has been written. */
#define WINDOW_UPDATE_MIN (AGENT_WINDOW_INITIAL / 4u)

enum { STREAM_STDOUT, STREAM_STDERR, _STREAM_MAX };

/* The host end of one EXEC: moves stdin into STDIN frames and STDOUT and STDERR frames into
 * the caller's descriptors, or into memory for agent_exec(). */
typedef struct ExecPump {
        AgentConnection *c;
        uint32_t id;
        bool tty;
        int stdin_fd; /* -EBADF once end of file was sent */
        int control_fd;
        int out_fds[_STREAM_MAX];     /* < 0: dropped */
        bool out_owned[_STREAM_MAX];  /* out_fds[i] was opened by the pump and is closed by it */
        bool out_socket[_STREAM_MAX]; /* out_fds[i] is a socket, written with MSG_DONTWAIT */
        /* Received and not yet written to out_fds, or all output with collect. */
        AgentBuffer pending[_STREAM_MAX];
        bool collect;           /* agent_exec(): output is kept in pending, never written out */
        AgentBuffer send;       /* frames not yet sent */
        uint64_t stdin_credit;  /* STDIN bytes the agent accepts */
        uint64_t output_credit; /* output bytes the agent may still send */
        uint32_t output_done;   /* output written since the last WINDOW */
        uint8_t control[8];     /* a partly read resize record */
        size_t control_size;
        bool exited;
        AgentExit exit;
} ExecPump;

static void pump_done(ExecPump *p)
{
        for (size_t i = 0; i < _STREAM_MAX; i++) {
                agent_buffer_done(&p->pending[i]);
                if (p->out_owned[i])
                        p->out_fds[i] = safe_close(p->out_fds[i]);
        }
        agent_buffer_done(&p->send);
}

/* Makes writes to the caller's output descriptor i non-blocking without changing the caller's
 * file flags, so a consumer that stops reading cannot keep the pump from serving the agent
 * and the control pipe. A pipe or terminal is opened again through /proc with O_NONBLOCK,
 * which gives a file description of its own; a socket takes MSG_DONTWAIT per call. Regular
 * files do not block, and anything else stays as it is. */
static int pump_open_output(ExecPump *p, size_t i)
{
        char path[64];
        struct stat st;
        int fd;

        if (p->out_fds[i] < 0)
                return 0;
        if (fstat(p->out_fds[i], &st) < 0)
                return negative_errno();

        if (S_ISSOCK(st.st_mode)) {
                p->out_socket[i] = true;
                return 0;
        }
        if (!S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode))
                return 0;

        snprintf(path, sizeof(path), "/proc/self/fd/%d", p->out_fds[i]);
        fd = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0) {
                log_debug_errno(-errno,
                                "Failed to open '%s' without blocking, using it as it is: %m",
                                path);
                return 0;
        }
        p->out_fds[i] = fd;
        p->out_owned[i] = true;
        return 0;
}

static int pump_output(ExecPump *p, size_t stream, const AgentFrame *f)
{
        int r;

        if (agent_credit_take(&p->output_credit, f->payload_size) < 0) {
                log_debug("Agent sent %" PRIu32 " bytes of output beyond its credit",
                          f->payload_size);
                return -EPROTO;
        }

        if (p->collect) {
                if (f->payload_size > AGENT_EXEC_OUTPUT_MAX - p->pending[stream].size)
                        return -EFBIG;
                r = agent_buffer_append(&p->pending[stream], f->payload, f->payload_size);
                if (r < 0)
                        return r;
        } else if (p->out_fds[stream] >= 0)
                return agent_buffer_append(&p->pending[stream], f->payload, f->payload_size);

        /* Kept in memory or dropped: either way it is consumed already. */
        p->output_done += f->payload_size;
        return 0;
}

static int pump_frame(ExecPump *p, const AgentFrame *f)
{
        uint32_t credit;
        int r;

        /* Frames of a request an earlier connection abandoned. */
        if (f->request_id != p->id)
                return 0;

        switch (f->type) {
        case AGENT_MSG_STDOUT:
                return pump_output(p, STREAM_STDOUT, f);
        case AGENT_MSG_STDERR:
                return pump_output(p, STREAM_STDERR, f);
        case AGENT_MSG_EXIT:
                if (agent_exit_decode(f, &p->exit) < 0)
                        return -EPROTO;
                p->exited = true;
                return 0;
        case AGENT_MSG_ERROR:
                return error_from_frame(f);
        case AGENT_MSG_WINDOW:
                r = agent_window_decode(f, &credit);
                if (r >= 0)
                        r = agent_credit_grant(&p->stdin_credit, credit);
                return r < 0 ? -EPROTO : 0;
        default:
                log_debug("Ignoring unexpected agent message '%s'",
                          strempty(agent_message_type_to_string(f->type)));
                return 0;
        }
}

/* Handles the frames received so far, up to EXIT. */
static int pump_frames(ExecPump *p)
{
        while (!p->exited) {
                AgentFrame f;
                int r;

                r = connection_next_frame(p->c, &f);
                if (r <= 0)
                        return r;
                r = pump_frame(p, &f);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Returns whether output waits to be written to the caller's descriptors. */
static bool pump_output_pending(const ExecPump *p)
{
        return !p->collect &&
               (p->pending[STREAM_STDOUT].size > 0 || p->pending[STREAM_STDERR].size > 0);
}

static void pump_grant(ExecPump *p)
{
        bool idle = !pump_output_pending(p);

        if (p->exited || p->output_done == 0 || (!idle && p->output_done < WINDOW_UPDATE_MIN))
                return;
        if (agent_window_append(&p->send, p->id, p->output_done) < 0)
                return;
        (void)agent_credit_grant(&p->output_credit, p->output_done);
        p->output_done = 0;
}

static int pump_read_stdin(ExecPump *p)
{
        uint8_t buf[AGENT_OUTPUT_CHUNK_MAX];
        size_t size = p->stdin_credit < sizeof(buf) ? (size_t)p->stdin_credit : sizeof(buf);
        ssize_t n;

        n = read(p->stdin_fd, buf, size);
        if (n < 0) {
                if (errno == EINTR || errno == EAGAIN)
                        return 0;
                /* A terminal that was hung up reads as end of file. */
                if (errno != EIO)
                        return negative_errno();
                n = 0;
        }
        if (n == 0) {
                p->stdin_fd = -EBADF;
                return agent_frame_append(&p->send, AGENT_MSG_STDIN_EOF, p->id, NULL, 0);
        }

        (void)agent_credit_take(&p->stdin_credit, (size_t)n);
        return agent_frame_append(&p->send, AGENT_MSG_STDIN, p->id, buf, (size_t)n);
}

/* Reads resize records; end of file cancels the command. */
static int pump_read_control(ExecPump *p)
{
        uint32_t rows, cols;
        ssize_t n;

        n = read(p->control_fd, p->control + p->control_size, sizeof(p->control) - p->control_size);
        if (n < 0)
                return errno == EINTR || errno == EAGAIN ? 0 : negative_errno();
        if (n == 0)
                return -ECANCELED;

        p->control_size += (size_t)n;
        if (p->control_size < sizeof(p->control))
                return 0;
        p->control_size = 0;

        memcpy(&rows, p->control, sizeof(rows));
        memcpy(&cols, p->control + sizeof(rows), sizeof(cols));
        if (!p->tty)
                return 0;
        return agent_resize_append(&p->send, p->id, rows, cols);
}

static int pump_send(ExecPump *p)
{
        while (p->send.size > 0) {
                ssize_t n = send(p->c->fd, p->send.data, p->send.size, MSG_NOSIGNAL | MSG_DONTWAIT);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return errno == EAGAIN ? 0 : negative_errno();
                }
                agent_buffer_consume(&p->send, (size_t)n);
        }
        return 0;
}

static int pump_write_output(ExecPump *p, size_t stream)
{
        AgentBuffer *b = &p->pending[stream];
        ssize_t n;

        if (p->out_socket[stream])
                n = send(p->out_fds[stream], b->data, b->size, MSG_DONTWAIT | MSG_NOSIGNAL);
        else
                n = write(p->out_fds[stream], b->data, b->size);
        if (n < 0)
                return errno == EINTR || errno == EAGAIN ? 0 : negative_errno();

        agent_buffer_consume(b, (size_t)n);
        p->output_done += (uint32_t)n;
        return 0;
}

enum {
        POLL_SOCKET,
        POLL_STDIN,
        POLL_CONTROL,
        POLL_STDOUT,
        POLL_STDERR,
        _POLL_MAX,
};

/* Runs until the command's EXIT and all its output are through. */
static int pump_run(ExecPump *p)
{
        for (;;) {
                struct pollfd fds[_POLL_MAX];
                bool read_stdin;
                int r;

                r = pump_frames(p);
                if (r < 0)
                        return r;
                pump_grant(p);

                for (size_t i = 0; i < _STREAM_MAX; i++) {
                        bool waiting = !p->collect && p->pending[i].size > 0;

                        fds[POLL_STDOUT + i] = (struct pollfd){
                                .fd = waiting ? p->out_fds[i] : -1,
                                .events = POLLOUT,
                        };
                }
                if (p->exited && !pump_output_pending(p))
                        return 0;
                read_stdin = !p->exited && p->stdin_fd >= 0 && p->stdin_credit > 0;

                fds[POLL_SOCKET] = (struct pollfd){
                        .fd = p->exited ? -1 : p->c->fd,
                        .events = POLLIN | (p->send.size > 0 ? POLLOUT : 0),
                };
                fds[POLL_STDIN] = (struct pollfd){
                        .fd = read_stdin ? p->stdin_fd : -1,
                        .events = POLLIN,
                };
                fds[POLL_CONTROL] = (struct pollfd){
                        .fd = p->exited ? -1 : p->control_fd,
                        .events = POLLIN,
                };

                r = poll(fds, _POLL_MAX, poll_timeout_ms(p->c->deadline));
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (r == 0)
                        return -ETIMEDOUT;

                if (fds[POLL_SOCKET].revents & (POLLIN | POLLHUP | POLLERR)) {
                        r = connection_receive(p->c);
                        if (r < 0 && r != -EAGAIN)
                                return r;
                }
                if (fds[POLL_SOCKET].revents & POLLOUT) {
                        r = pump_send(p);
                        if (r < 0)
                                return r;
                }
                if (fds[POLL_STDIN].revents) {
                        r = pump_read_stdin(p);
                        if (r < 0)
                                return r;
                }
                if (fds[POLL_CONTROL].revents) {
                        r = pump_read_control(p);
                        if (r < 0)
                                return r;
                }
                for (size_t i = 0; i < _STREAM_MAX; i++) {
                        if (fds[POLL_STDOUT + i].revents == 0)
                                continue;
                        r = pump_write_output(p, i);
                        if (r < 0)
                                return r;
                }
                /* Frames queued above go out at once when the socket has room. */
                r = pump_send(p);
                if (r < 0)
                        return r;
        }
}

/* Sends req on a connection that passed the handshake and pumps until the command ends. */
static int connection_exec_pump(AgentConnection *c, const AgentExecRequest *req, ExecPump *p)
{
        AgentBuffer b = {};
        int r;

        AgentExec e = {
                .flags = (req->tty ? AGENT_EXEC_FLAG_TTY : 0) |
                         (p->stdin_fd >= 0 ? AGENT_EXEC_FLAG_STDIN : 0),
                .argv = (char **)req->argv,
                .env = (char **)req->env,
                .cwd = (char *)req->cwd,
                .rows = req->rows,
                .cols = req->cols,
                .user = (char *)req->user,
        };

        for (size_t i = 0; i < _STREAM_MAX; i++) {
                r = pump_open_output(p, i);
                if (r < 0)
                        return r;
        }

        p->c = c;
        p->id = c->next_request_id++;
        p->tty = req->tty;
        p->stdin_credit = AGENT_WINDOW_INITIAL;
        p->output_credit = AGENT_WINDOW_INITIAL;

        r = agent_exec_append(&b, p->id, &e);
        if (r >= 0)
                r = connection_write(c, &b);
        agent_buffer_done(&b);
        if (r < 0)
                return r;

        return pump_run(p);
}

static bool request_valid(const AgentExecRequest *req)
{
        return req && req->argv && req->argv[0] && req->rows <= UINT16_MAX &&
               req->cols <= UINT16_MAX;
}

/* Moves collected output into a NUL-terminated string. */
static int take_output(AgentBuffer *b, char **ret, size_t *ret_size)
{
        size_t size = b->size;
        int r;

        /* Both streams are strings even when the command printed nothing. */
        r = agent_buffer_append(b, "", 1);
        if (r < 0)
                return r;
        *ret = (char *)TAKE_PTR(b->data);
        *ret_size = size;
        *b = (AgentBuffer){};
        return 0;
}

/* Runs req on a connection that passed the handshake, collecting its output, and closes c. */
static int connection_exec(AgentConnection *c, const AgentExecRequest *req, AgentExecResult **ret)
{
        _cleanup_(exec_result_freep) AgentExecResult *res = NULL;
        ExecPump p = {
                .stdin_fd = -EBADF,
                .control_fd = -EBADF,
                .out_fds = { -EBADF, -EBADF },
                .collect = true,
        };
        int r;

        r = connection_exec_pump(c, req, &p);
        connection_done(c);
        if (r < 0)
                goto finish;

        res = calloc(1, sizeof(*res));
        if (!res) {
                r = -ENOMEM;
                goto finish;
        }
        res->exit_status = p.exit.exit_status;
        res->signal = p.exit.signal;
        r = take_output(&p.pending[STREAM_STDOUT], &res->out, &res->out_size);
        if (r >= 0)
                r = take_output(&p.pending[STREAM_STDERR], &res->err, &res->err_size);
        if (r >= 0)
                *ret = TAKE_PTR(res);
finish:
        pump_done(&p);
        return r < 0 ? r : 0;
}

int agent_exec(const char *socket_path, const AgentExecRequest *req, uint64_t timeout_usec,
               AgentExecResult **ret)
{
        AgentConnection c;
        int r;

        if (!socket_path || !request_valid(req) || !ret)
                return -EINVAL;

        r = connection_open_ready(&c, socket_path, timeout_usec);
        if (r < 0)
                return r;

        return connection_exec(&c, req, ret);
}

int agent_exec_fd(int fd, const AgentExecRequest *req, uint64_t timeout_usec, AgentExecResult **ret)
{
        AgentConnection c;
        int r;

        if (fd < 0 || !request_valid(req) || !ret) {
                safe_close(fd);
                return -EINVAL;
        }

        r = connection_adopt_ready(&c, fd, timeout_usec);
        if (r < 0)
                return r;

        return connection_exec(&c, req, ret);
}

/* Runs req on a connection that passed the handshake, streaming through stdio, and closes c. */
static int connection_exec_stream(AgentConnection *c, const AgentExecRequest *req,
                                  const AgentExecStdio *stdio, AgentExit *ret)
{
        ExecPump p = {
                .stdin_fd = stdio->stdin_fd < 0 ? -EBADF : stdio->stdin_fd,
                .control_fd = stdio->control_fd < 0 ? -EBADF : stdio->control_fd,
                .out_fds = { stdio->stdout_fd, req->tty ? -EBADF : stdio->stderr_fd },
        };
        int r;

        r = connection_exec_pump(c, req, &p);
        pump_done(&p);
        /* Closing the connection before EXIT makes the agent kill the command. */
        connection_done(c);
        if (r < 0)
                return r;

        *ret = p.exit;
        return 0;
}

static bool stdio_valid(const AgentExecStdio *stdio)
{
        return stdio && (stdio->stdin_fd < 0 || stdio->stdin_fd != stdio->control_fd);
}

int agent_exec_stream(const char *socket_path, const AgentExecRequest *req,
                      const AgentExecStdio *stdio, uint64_t timeout_usec, AgentExit *ret)
{
        AgentConnection c;
        int r;

        if (!socket_path || !request_valid(req) || !stdio_valid(stdio) || !ret)
                return -EINVAL;

        r = connection_open_ready(&c, socket_path, timeout_usec);
        if (r < 0)
                return r;

        return connection_exec_stream(&c, req, stdio, ret);
}

int agent_exec_stream_fd(int fd, const AgentExecRequest *req, const AgentExecStdio *stdio,
                         uint64_t timeout_usec, AgentExit *ret)
{
        AgentConnection c;
        int r;

        if (fd < 0 || !request_valid(req) || !stdio_valid(stdio) || !ret) {
                safe_close(fd);
                return -EINVAL;
        }

        r = connection_adopt_ready(&c, fd, timeout_usec);
        if (r < 0)
                return r;

        return connection_exec_stream(&c, req, stdio, ret);
}

int agent_exec_stream_resize(int fd, unsigned rows, unsigned cols)
{
        uint32_t record[2] = { rows, cols };
        ssize_t n;

        if (fd < 0 || rows == 0 || rows > UINT16_MAX || cols == 0 || cols > UINT16_MAX)
                return -EINVAL;

        /* A pipe write of up to PIPE_BUF bytes is atomic, so records never interleave. */
        n = write(fd, record, sizeof(record));
        if (n < 0)
                return negative_errno();
        return (size_t)n == sizeof(record) ? 0 : -EIO;
}

/* Sends a request with an empty payload and waits for its reply of reply_type, whose payload
 * stays valid until the next read on c. An ERROR reply becomes its negative errno value. */
static int connection_request(AgentConnection *c, AgentMessageType type,
                              AgentMessageType reply_type, AgentFrame *ret)
{
        AgentBuffer b = {};
        uint32_t id;
        int r;

        id = c->next_request_id++;
        r = agent_frame_append(&b, type, id, NULL, 0);
        if (r >= 0)
                r = connection_write(c, &b);
        agent_buffer_done(&b);
        if (r < 0)
                return r;

        for (;;) {
                r = connection_read_frame(c, c->deadline, ret);
                if (r < 0)
                        return r;
                if (ret->request_id != id)
                        continue;
                if (ret->type == reply_type)
                        return 0;
                if (ret->type == AGENT_MSG_ERROR)
                        return error_from_frame(ret);
        }
}

/* Sends PORTS on a ready connection, waits for the reply and closes c. */
static int connection_list_ports(AgentConnection *c, AgentPortList *ret)
{
        AgentFrame f;
        int r;

        r = connection_request(c, AGENT_MSG_PORTS, AGENT_MSG_PORTS_REPLY, &f);
        if (r >= 0) {
                r = agent_ports_reply_decode(&f, ret);
                if (r < 0)
                        r = -EPROTO;
                else
                        r = ret->truncated ? 1 : 0;
        }
        connection_done(c);
        return r;
}

int agent_list_ports(const char *socket_path, uint64_t timeout_usec, AgentPortList *ret)
{
        AgentConnection c;
        int r;

        if (!socket_path || !ret)
                return -EINVAL;

        r = connection_open_ready(&c, socket_path, timeout_usec);
        if (r < 0)
                return r;
        return connection_list_ports(&c, ret);
}

int agent_list_ports_fd(int fd, uint64_t timeout_usec, AgentPortList *ret)
{
        AgentConnection c;
        int r;

        if (fd < 0 || !ret) {
                safe_close(fd);
                return -EINVAL;
        }

        r = connection_adopt_ready(&c, fd, timeout_usec);
        if (r < 0)
                return r;
        return connection_list_ports(&c, ret);
}

/* Sends the shutdown request on a ready connection, waits for its acknowledgement and closes c. */
static int connection_shutdown(AgentConnection *c)
{
        AgentFrame f;
        int r;

        r = connection_request(c, AGENT_MSG_SHUTDOWN, AGENT_MSG_SHUTDOWN_ACK, &f);
        connection_done(c);
        return r;
}

int agent_shutdown(const char *socket_path, uint64_t timeout_usec)
{
        AgentConnection c;
        int r;

        if (!socket_path)
                return -EINVAL;

        r = connection_open_ready(&c, socket_path, timeout_usec);
        if (r < 0)
                return r;
        return connection_shutdown(&c);
}

int agent_wait_ready_fd(int fd, uint64_t timeout_usec)
{
        AgentConnection c;
        int r;

        if (fd < 0)
                return -EINVAL;
        r = connection_adopt_ready(&c, fd, timeout_usec);
        if (r < 0)
                return r;
        connection_done(&c);
        return 0;
}

int agent_shutdown_fd(int fd, uint64_t timeout_usec)
{
        AgentConnection c;
        int r;

        if (fd < 0)
                return -EINVAL;
        r = connection_adopt_ready(&c, fd, timeout_usec);
        if (r < 0)
                return r;
        return connection_shutdown(&c);
}
