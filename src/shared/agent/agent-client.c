#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
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

/* Returns the next well-formed frame, skipping garbage before it. until bounds this call
 * (-ETIMEDOUT), never later than the connection's deadline. The frame's payload stays valid
 * until the next call. */
static int connection_read_frame(AgentConnection *c, uint64_t until, AgentFrame *ret)
{
        if (until > c->deadline)
                until = c->deadline;

        agent_buffer_consume(&c->in, c->frame_size);
        c->frame_size = 0;

        for (;;) {
                struct pollfd p = { .fd = c->fd, .events = POLLIN };
                uint8_t chunk[64 * 1024];
                size_t consumed;
                ssize_t n;
                int r;

                r = agent_frame_decode(c->in.data, c->in.size, ret, &consumed);
                if (r > 0) {
                        c->frame_size = consumed;
                        return 0;
                }
                if (r < 0) {
                        size_t skip = agent_frame_resync(c->in.data, c->in.size);

                        log_debug("Skipping %zu bytes of unexpected agent data", skip);
                        agent_buffer_consume(&c->in, skip);
                        continue;
                }

                r = poll(&p, 1, poll_timeout_ms(until));
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (r == 0)
                        return -ETIMEDOUT;

                n = recv(c->fd, chunk, sizeof(chunk), 0);
                if (n < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        return -ECONNRESET;

                r = agent_buffer_append(&c->in, chunk, (size_t)n);
                if (r < 0)
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
                        if (version != AGENT_PROTOCOL_VERSION)
                                return -EPROTO;
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

static int append_output(char **buf, size_t *size, const AgentFrame *f)
{
        char *n;

        if (f->payload_size > AGENT_EXEC_OUTPUT_MAX - *size)
                return -EFBIG;

        n = realloc(*buf, *size + f->payload_size + 1);
        if (!n)
                return -ENOMEM;
        memcpy(n + *size, f->payload, f->payload_size);
        *size += f->payload_size;
        n[*size] = '\0';
        *buf = n;
        return 0;
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

static int exec_collect(AgentConnection *c, uint32_t id, AgentExecResult *res)
{
        for (;;) {
                AgentFrame f;
                AgentExit e;
                int r;

                r = connection_read_frame(c, c->deadline, &f);
                if (r < 0)
                        return r;
                /* Frames of a request an earlier connection abandoned. */
                if (f.request_id != id)
                        continue;

                switch (f.type) {
                case AGENT_MSG_STDOUT:
                        r = append_output(&res->out, &res->out_size, &f);
                        break;
                case AGENT_MSG_STDERR:
                        r = append_output(&res->err, &res->err_size, &f);
                        break;
                case AGENT_MSG_EXIT:
                        r = agent_exit_decode(&f, &e);
                        if (r < 0)
                                return -EPROTO;
                        res->exit_status = e.exit_status;
                        res->signal = e.signal;
                        return 0;
                case AGENT_MSG_ERROR:
                        return error_from_frame(&f);
                default:
                        log_debug("Ignoring unexpected agent message '%s'",
                                  strempty(agent_message_type_to_string(f.type)));
                        r = 0;
                }
                if (r < 0)
                        return r;
        }
}

/* Runs req on a connection that passed the handshake, and closes it. */
static int connection_exec(AgentConnection *c, const AgentExecRequest *req, AgentExecResult **ret)
{
        AgentExecResult *res = NULL;
        AgentBuffer b = {};
        uint32_t id;
        int r;

        AgentExec e = {
                .argv = (char **)req->argv,
                .env = (char **)req->env,
                .cwd = (char *)req->cwd,
        };

        id = c->next_request_id++;
        r = agent_exec_append(&b, id, &e);
        if (r >= 0)
                r = connection_write(c, &b);
        agent_buffer_done(&b);
        if (r < 0)
                goto finish;

        res = calloc(1, sizeof(*res));
        if (!res) {
                r = -ENOMEM;
                goto finish;
        }

        r = exec_collect(c, id, res);
        if (r < 0)
                goto finish;

        /* Both streams are strings even when the command printed nothing. */
        if (!res->out)
                res->out = strdup("");
        if (!res->err)
                res->err = strdup("");
        if (!res->out || !res->err) {
                r = -ENOMEM;
                goto finish;
        }

        *ret = TAKE_PTR(res);
finish:
        agent_exec_result_free(res);
        connection_done(c);
        return r;
}

int agent_exec(const char *socket_path, const AgentExecRequest *req, uint64_t timeout_usec,
               AgentExecResult **ret)
{
        AgentConnection c;
        int r;

        if (!socket_path || !req || !req->argv || !req->argv[0] || !ret)
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

        if (fd < 0 || !req || !req->argv || !req->argv[0] || !ret) {
                safe_close(fd);
                return -EINVAL;
        }

        r = connection_adopt_ready(&c, fd, timeout_usec);
        if (r < 0)
                return r;

        return connection_exec(&c, req, ret);
}

/* Sends the shutdown request on a ready connection, waits for its acknowledgement and closes c. */
static int connection_shutdown(AgentConnection *c)
{
        AgentBuffer b = {};
        uint32_t id;
        int r;

        id = c->next_request_id++;
        r = agent_frame_append(&b, AGENT_MSG_SHUTDOWN, id, NULL, 0);
        if (r >= 0)
                r = connection_write(c, &b);
        agent_buffer_done(&b);

        while (r >= 0) {
                AgentFrame f;

                r = connection_read_frame(c, c->deadline, &f);
                if (r < 0)
                        break;
                if (f.request_id != id)
                        continue;
                if (f.type == AGENT_MSG_SHUTDOWN_ACK)
                        break;
                if (f.type == AGENT_MSG_ERROR)
                        r = error_from_frame(&f);
        }

        connection_done(c);
        return r < 0 ? r : 0;
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
