#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "log.h"
#include "macro.h"
#include "vsock.h"

/* Pause between two attempts, so a guest that is still booting is not polled in a busy loop. */
#define RETRY_INTERVAL_USEC (50U * 1000U)

static int fail(char **ret_error, int error, const char *format, ...)
        __attribute__((format(printf, 3, 4)));

static int fail(char **ret_error, int error, const char *format, ...)
{
        va_list ap;

        if (ret_error && !*ret_error) {
                va_start(ap, format);
                if (vasprintf(ret_error, format, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return error;
}

static uint64_t now_usec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000U + (uint64_t)ts.tv_nsec / 1000U;
}

static uint64_t deadline_after(uint64_t timeout_usec)
{
        uint64_t now = now_usec();

        return timeout_usec > UINT64_MAX - now ? UINT64_MAX : now + timeout_usec;
}

/* Milliseconds until deadline, rounded up, for poll(). */
static int poll_timeout_ms(uint64_t deadline)
{
        uint64_t now = now_usec();

        if (deadline <= now)
                return 0;
        if (deadline - now > (uint64_t)INT32_MAX * 1000U)
                return INT32_MAX;
        return (int)((deadline - now + 999U) / 1000U);
}

/* Waits until fd is ready for events or deadline passes (-ETIMEDOUT). */
static int wait_fd(int fd, short events, uint64_t deadline)
{
        struct pollfd p = { .fd = fd, .events = events };
        int n;

        for (;;) {
                n = poll(&p, 1, poll_timeout_ms(deadline));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        return -ETIMEDOUT;
                return 0;
        }
}

int vsock_reply_parse(const char *line, size_t size, uint32_t *ret_host_port)
{
        uint64_t port = 0;
        size_t i;

        assert(line || size == 0);

        if (size < 5 || size > VSOCK_REPLY_MAX || !strneq(line, "OK ", 3) || line[size - 1] != '\n')
                return -EBADMSG;

        for (i = 3; i < size - 1; i++) {
                if (line[i] < '0' || line[i] > '9')
                        return -EBADMSG;
                port = port * 10 + (uint64_t)(line[i] - '0');
                if (port > UINT32_MAX)
                        return -EBADMSG;
        }

        if (ret_host_port)
                *ret_host_port = (uint32_t)port;
        return 0;
}

static int send_all(int fd, const char *data, size_t size, uint64_t deadline)
{
        ssize_t n;
        int r;

        while (size > 0) {
                r = wait_fd(fd, POLLOUT, deadline);
                if (r < 0)
                        return r;

                n = send(fd, data, size, MSG_NOSIGNAL);
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n < 0)
                        return negative_errno();
                data += n;
                size -= (size_t)n;
        }
        return 0;
}

/* Reads the reply one byte at a time, so no byte of the forwarded stream after the newline is
 * consumed. Returns the line size, -ECONNRESET when the peer closes first, -EBADMSG when no
 * newline comes within VSOCK_REPLY_MAX bytes. */
static int read_reply(int fd, char *buf, uint64_t deadline)
{
        size_t size = 0;
        ssize_t n;
        int r;

        while (size < VSOCK_REPLY_MAX) {
                r = wait_fd(fd, POLLIN, deadline);
                if (r < 0)
                        return r;

                n = recv(fd, buf + size, 1, 0);
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        return -ECONNRESET;
                if (buf[size++] == '\n')
                        return (int)size;
        }
        return -EBADMSG;
}

/* One attempt: connect, send CONNECT, read the reply. */
static int attempt_connect(const char *uds_path, uint32_t port, uint64_t deadline, int *ret_fd,
                           uint32_t *ret_host_port)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        char request[32], reply[VSOCK_REPLY_MAX];
        int r, n;

        strcpy(sa.sun_path, uds_path);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return negative_errno();

        /* A unix stream connect() completes at once or fails. EAGAIN means a full backlog,
         * which is retried like a refusal. */
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return negative_errno();

        n = snprintf(request, sizeof(request), "CONNECT %" PRIu32 "\n", port);
        r = send_all(fd, request, (size_t)n, deadline);
        if (r < 0)
                return r;

        r = read_reply(fd, reply, deadline);
        if (r < 0)
                return r;

        r = vsock_reply_parse(reply, (size_t)r, ret_host_port);
        if (r < 0)
                return r;

        *ret_fd = TAKE_FD(fd);
        return 0;
}

static bool error_is_transient(int r)
{
        return r == -ENOENT || r == -ECONNREFUSED || r == -EAGAIN || r == -ECONNRESET ||
               r == -EPIPE || r == -ETIMEDOUT;
}

int vsock_connect(const char *uds_path, uint32_t port, uint64_t attempt_timeout_usec,
                  uint64_t timeout_usec, int *ret_fd, uint32_t *ret_host_port, char **ret_error)
{
        uint64_t deadline = deadline_after(timeout_usec);
        unsigned attempts = 0;
        uint32_t host_port;
        int fd = -EBADF, r;

        assert(uds_path);
        assert(ret_fd);

        if (strlen(uds_path) >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
                return fail(ret_error, -ENAMETOOLONG,
                            "Vsock socket path '%s' is too long for a unix socket address; use "
                            "a path shorter than 108 bytes",
                            uds_path);
        if (attempt_timeout_usec == 0 || timeout_usec == 0)
                return fail(ret_error, -EINVAL, "Vsock connection timeouts must not be zero");

        for (;;) {
                uint64_t now = now_usec();
                uint64_t attempt_deadline = deadline_after(attempt_timeout_usec);

                if (attempt_deadline > deadline)
                        attempt_deadline = deadline;
                attempts++;

                r = attempt_connect(uds_path, port, attempt_deadline, &fd, &host_port);
                if (r >= 0)
                        break;
                if (r == -EBADMSG)
                        return fail(ret_error, r,
                                    "Firecracker's reply to 'CONNECT %" PRIu32 "' on '%s' is "
                                    "not 'OK <port>'; check that the path is a Firecracker "
                                    "vsock socket",
                                    port, uds_path);
                if (!error_is_transient(r))
                        return fail(ret_error, r,
                                    "Failed to connect to vsock port %" PRIu32 " through '%s': %s",
                                    port, uds_path, strerror(-r));

                log_debug_errno(r, "Vsock port %" PRIu32 " through '%s', attempt %u: %m", port,
                                uds_path, attempts);

                now = now_usec();
                if (now >= deadline || deadline - now <= RETRY_INTERVAL_USEC)
                        break;
                struct timespec ts = { .tv_nsec = RETRY_INTERVAL_USEC * 1000L };
                nanosleep(&ts, NULL);
        }

        if (r >= 0) {
                *ret_fd = fd;
                if (ret_host_port)
                        *ret_host_port = host_port;
                return 0;
        }

        if (r == -ENOENT)
                return fail(ret_error, -ENOENT,
                            "Vsock socket '%s' did not appear within %" PRIu64 " ms; check that "
                            "Firecracker was given it in PUT /vsock",
                            uds_path, timeout_usec / 1000);
        if (r == -ETIMEDOUT)
                return fail(ret_error, -ETIMEDOUT,
                            "No reply to 'CONNECT %" PRIu32 "' on '%s' within %" PRIu64
                            " ms per attempt after %u attempts; the VMM behind it does not "
                            "respond",
                            port, uds_path, attempt_timeout_usec / 1000, attempts);
        if (r == -ECONNREFUSED || r == -EAGAIN)
                return fail(ret_error, -ECONNREFUSED,
                            "Vsock socket '%s' refused every connection for %" PRIu64 " ms; "
                            "check that Firecracker is running",
                            uds_path, timeout_usec / 1000);
        return fail(ret_error, -ECONNREFUSED,
                    "Nothing in the guest accepted vsock port %" PRIu32 " through '%s' in %u "
                    "attempts over %" PRIu64 " ms; check that the guest's agent listens on that "
                    "port",
                    port, uds_path, attempts, timeout_usec / 1000);
}
