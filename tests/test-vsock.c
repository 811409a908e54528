#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent-client.h"
#include "agent-proto.h"
#include "macro.h"
#include "vsock.h"

#define MSEC_USEC 1000ULL

/* Reply lines */

static const struct {
        const char *line;
        int result;
        uint32_t port;
} reply_cases[] = {
        { "OK 1073741824\n", 0, 1073741824U },
        { "OK 0\n", 0, 0 },
        { "OK 4294967295\n", 0, UINT32_MAX },
        { "OK 4294967296\n", -EBADMSG, 0 },
        { "OK 99999999999999999999\n", -EBADMSG, 0 },
        { "OK \n", -EBADMSG, 0 },
        { "OK 12", -EBADMSG, 0 },
        { "OK 12\r\n", -EBADMSG, 0 },
        { "OK -1\n", -EBADMSG, 0 },
        { "ok 12\n", -EBADMSG, 0 },
        { "OK12\n", -EBADMSG, 0 },
        { "ERR 12\n", -EBADMSG, 0 },
        { "", -EBADMSG, 0 },
        { "\n", -EBADMSG, 0 },
        { "OK 000000000000000000000000000001\n", -EBADMSG, 0 }, /* 33 bytes */
};

START_TEST(test_reply_parse_table)
{
        uint32_t port = 7;
        int r;

        r = vsock_reply_parse(reply_cases[_i].line, strlen(reply_cases[_i].line), &port);
        ck_assert_msg(r == reply_cases[_i].result, "case %d ('%s'): got %d", _i,
                      reply_cases[_i].line, r);
        if (r == 0)
                ck_assert_uint_eq(port, reply_cases[_i].port);
        else
                ck_assert_uint_eq(port, 7);
}
END_TEST

/* A unix-socket peer that behaves as Firecracker's vsock socket does: it reads "CONNECT
 * <port>\n", then either closes the connection (nothing listens on that port in the guest),
 * replies "OK <host port>\n" and forwards the stream, or stalls. */

typedef enum PeerMode {
        PEER_CLOSE,
        PEER_OK,
        PEER_STALL,
        PEER_GARBAGE,
        PEER_CLOSE_TWICE_THEN_OK,
        PEER_AGENT,    /* replies OK, then serves the agent protocol as banger-agent does */
        PEER_AGENT_V1, /* as PEER_AGENT, but its HELLO_REPLY names protocol version 1 */
} PeerMode;

typedef struct Peer {
        PeerMode mode;
        char path[108];
        char dir[64];
        int listen_fd;
        int stop_pipe[2];
        pthread_t thread;
        unsigned accepted;
        bool write_failed;
        char last_request[64];
        int held[64];
        char exec_argv0[64];
        unsigned n_held;
} Peer;

/* Reads one line, "\n" included, into buf. Returns false on EOF or error. */
static bool read_line(int fd, char *buf, size_t size)
{
        size_t n = 0;

        while (n + 1 < size) {
                ssize_t k = read(fd, buf + n, 1);
                if (k <= 0)
                        return false;
                if (buf[n++] == '\n')
                        break;
        }
        buf[n] = '\0';
        return true;
}

/* Writes a whole buffer to a blocking fd. */
static bool write_all(int fd, const AgentBuffer *b)
{
        size_t done = 0;

        while (done < b->size) {
                ssize_t k = write(fd, b->data + done, b->size - done);
                if (k <= 0)
                        return false;
                done += (size_t)k;
        }
        return true;
}

/* Serves the agent protocol on fd until the host closes it: a HELLO_REPLY for each HELLO, and
 * output and an exit status of 3 for an EXEC. Returns false on a protocol error. */
static bool serve_agent(Peer *p, int fd)
{
        uint8_t in[4096];
        size_t size = 0;

        for (;;) {
                AgentBuffer out = {};
                AgentFrame f;
                size_t consumed;
                ssize_t k;
                int r;

                r = agent_frame_decode(in, size, &f, &consumed);
                if (r < 0)
                        return false;
                if (r == 0) {
                        if (size == sizeof(in))
                                return false;
                        k = read(fd, in + size, sizeof(in) - size);
                        if (k <= 0)
                                return true;
                        size += (size_t)k;
                        continue;
                }

                if (f.type == AGENT_MSG_HELLO) {
                        AgentHello h;
                        if (agent_hello_decode(&f, &h) < 0)
                                return false;
                        h.info = (char *)"banger-agent test peer";
                        if (p->mode == PEER_AGENT_V1)
                                h.version = 1;
                        r = agent_hello_append(&out, AGENT_MSG_HELLO_REPLY, f.request_id, &h);
                } else if (f.type == AGENT_MSG_PORTS) {
                        AgentPort port = {
                                .protocol = IPPROTO_TCP,
                                .family = AF_INET,
                                .address = { 127, 0, 0, 1 },
                                .port = 8080,
                                .pid = 42,
                                .comm = "httpd",
                        };
                        AgentPortList l = { .ports = &port, .n_ports = 1 };
                        r = agent_ports_reply_append(&out, f.request_id, &l);
                } else if (f.type == AGENT_MSG_EXEC) {
                        AgentExec e;
                        AgentExit x = { .exit_status = 3 };
                        if (agent_exec_decode(&f, &e) < 0)
                                return false;
                        snprintf(p->exec_argv0, sizeof(p->exec_argv0), "%s", e.argv[0]);
                        agent_exec_done(&e);
                        r = agent_frame_append(&out, AGENT_MSG_STDOUT, f.request_id, "hi\n", 3);
                        if (r >= 0)
                                r = agent_exit_append(&out, f.request_id, &x);
                } else
                        r = -EBADMSG;

                if (r < 0 || !write_all(fd, &out)) {
                        agent_buffer_done(&out);
                        return false;
                }
                agent_buffer_done(&out);
                memmove(in, in + consumed, size - consumed);
                size -= consumed;
        }
}

/* Keeps fd open until peer_stop(), so the client sees neither a reply nor end of file. */
static void peer_hold(Peer *p, int fd)
{
        if (p->n_held == ELEMENTSOF(p->held)) {
                close(fd);
                return;
        }
        p->held[p->n_held++] = fd;
}

static void *peer_run(void *userdata)
{
        Peer *p = userdata;

        for (;;) {
                struct pollfd fds[2] = { { .fd = p->listen_fd, .events = POLLIN },
                                         { .fd = p->stop_pipe[0], .events = POLLIN } };
                char line[64];
                int fd;

                if (poll(fds, 2, -1) < 0 || fds[1].revents)
                        return NULL;

                fd = accept(p->listen_fd, NULL, NULL);
                if (fd < 0)
                        return NULL;
                p->accepted++;

                if (!read_line(fd, line, sizeof(line))) {
                        close(fd);
                        continue;
                }
                memcpy(p->last_request, line, sizeof(line));

                PeerMode mode = p->mode;
                if (mode == PEER_CLOSE_TWICE_THEN_OK)
                        mode = p->accepted <= 2 ? PEER_CLOSE : PEER_OK;

                switch (mode) {
                case PEER_AGENT:
                case PEER_AGENT_V1:
                        if (write(fd, "OK 1073741825\n", 14) != 14 || !serve_agent(p, fd))
                                p->write_failed = true;
                        close(fd);
                        break;
                case PEER_OK: {
                        /* The reply and the first forwarded bytes arrive in one write, so a
                         * client that reads past the newline would swallow them. */
                        static const char reply[] = "OK 1073741824\nfrom-guest";
                        if (write(fd, reply, strlen(reply)) != (ssize_t)strlen(reply))
                                p->write_failed = true;
                        peer_hold(p, fd);
                        break;
                }
                case PEER_STALL:
                        peer_hold(p, fd);
                        break;
                case PEER_GARBAGE:
                        if (write(fd, "NO\n", 3) != 3)
                                p->write_failed = true;
                        close(fd);
                        break;
                default:
                        close(fd);
                        break;
                }
        }
}

static void peer_start(Peer *p, PeerMode mode)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        *p = (Peer){ .mode = mode };
        strcpy(p->dir, "/tmp/banger-vsock-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(p->dir));
        snprintf(p->path, sizeof(p->path), "%s/v.sock", p->dir);

        p->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(p->listen_fd, 0);
        strcpy(sa.sun_path, p->path);
        ck_assert_int_eq(bind(p->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        ck_assert_int_eq(listen(p->listen_fd, 16), 0);
        ck_assert_int_eq(pipe(p->stop_pipe), 0);
        ck_assert_int_eq(pthread_create(&p->thread, NULL, peer_run, p), 0);
}

static void peer_stop(Peer *p)
{
        ck_assert_int_eq(write(p->stop_pipe[1], "x", 1), 1);
        ck_assert_int_eq(pthread_join(p->thread, NULL), 0);
        for (unsigned i = 0; i < p->n_held; i++)
                close(p->held[i]);
        close(p->listen_fd);
        close(p->stop_pipe[0]);
        close(p->stop_pipe[1]);
        unlink(p->path);
        rmdir(p->dir);
        ck_assert(!p->write_failed);
}

START_TEST(test_connect_ok)
{
        _cleanup_free_ char *error = NULL;
        _cleanup_close_ int fd = -EBADF;
        uint32_t host_port = 0;
        char data[16] = {};
        Peer p;

        peer_start(&p, PEER_OK);
        ck_assert_int_eq(vsock_connect(p.path, 52, 5000 * MSEC_USEC, 30000 * MSEC_USEC, &fd,
                                       &host_port, &error),
                         0);
        ck_assert_ptr_null(error);
        ck_assert_int_ge(fd, 0);
        ck_assert_uint_eq(host_port, 1073741824U);

        /* The bytes after the reply line are the guest's and stay in the socket. */
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        ck_assert_int_eq(poll(&pfd, 1, 30000), 1);
        ck_assert_int_eq(read(fd, data, sizeof(data) - 1), 10);
        ck_assert_str_eq(data, "from-guest");

        peer_stop(&p);
        ck_assert_str_eq(p.last_request, "CONNECT 52\n");
        ck_assert_uint_eq(p.accepted, 1);
}
END_TEST

START_TEST(test_connect_retries_after_close)
{
        _cleanup_free_ char *error = NULL;
        _cleanup_close_ int fd = -EBADF;
        Peer p;

        peer_start(&p, PEER_CLOSE_TWICE_THEN_OK);
        ck_assert_int_eq(
                vsock_connect(p.path, 1024, 5000 * MSEC_USEC, 30000 * MSEC_USEC, &fd, NULL, &error),
                0);
        ck_assert_ptr_null(error);
        peer_stop(&p);
        ck_assert_uint_eq(p.accepted, 3);
        ck_assert_str_eq(p.last_request, "CONNECT 1024\n");
}
END_TEST

START_TEST(test_connect_nothing_listening)
{
        _cleanup_free_ char *error = NULL;
        int fd = -EBADF;
        Peer p;

        peer_start(&p, PEER_CLOSE);
        ck_assert_int_eq(
                vsock_connect(p.path, 52, 5000 * MSEC_USEC, 500 * MSEC_USEC, &fd, NULL, &error),
                -ECONNREFUSED);
        ck_assert_int_eq(fd, -EBADF);
        peer_stop(&p);

        /* Retried until the deadline, not given up after the first closed connection. */
        ck_assert_uint_ge(p.accepted, 2);
        ck_assert_ptr_nonnull(error);
        ck_assert_ptr_nonnull(strstr(error, "Nothing in the guest accepted vsock port 52"));
        ck_assert_ptr_nonnull(strstr(error, p.path));
}
END_TEST

START_TEST(test_connect_stalled_peer)
{
        _cleanup_free_ char *error = NULL;
        int fd = -EBADF;
        Peer p;

        peer_start(&p, PEER_STALL);
        ck_assert_int_eq(
                vsock_connect(p.path, 52, 200 * MSEC_USEC, 1000 * MSEC_USEC, &fd, NULL, &error),
                -ETIMEDOUT);
        ck_assert_int_eq(fd, -EBADF);
        peer_stop(&p);

        /* Each attempt gave up at its own deadline, so more than one was made. */
        ck_assert_uint_ge(p.accepted, 2);
        ck_assert_ptr_nonnull(strstr(error, "No reply to 'CONNECT 52'"));
        ck_assert_ptr_nonnull(strstr(error, "within 200 ms per attempt"));
}
END_TEST

START_TEST(test_connect_garbage_reply)
{
        _cleanup_free_ char *error = NULL;
        int fd = -EBADF;
        Peer p;

        peer_start(&p, PEER_GARBAGE);
        ck_assert_int_eq(
                vsock_connect(p.path, 52, 5000 * MSEC_USEC, 30000 * MSEC_USEC, &fd, NULL, &error),
                -EBADMSG);
        peer_stop(&p);
        ck_assert_uint_eq(p.accepted, 1);
        ck_assert_ptr_nonnull(strstr(error, "is not 'OK <port>'"));
}
END_TEST

START_TEST(test_connect_missing_socket)
{
        _cleanup_free_ char *error = NULL;
        int fd = -EBADF;

        ck_assert_int_eq(vsock_connect("/nonexistent/v.sock", 52, 100 * MSEC_USEC, 300 * MSEC_USEC,
                                       &fd, NULL, &error),
                         -ENOENT);
        ck_assert_ptr_nonnull(strstr(error, "'/nonexistent/v.sock' did not appear"));
}
END_TEST

START_TEST(test_connect_path_too_long)
{
        _cleanup_free_ char *error = NULL;
        char path[200];
        int fd = -EBADF;

        memset(path, 'p', sizeof(path) - 1);
        path[sizeof(path) - 1] = '\0';
        ck_assert_int_eq(
                vsock_connect(path, 52, 100 * MSEC_USEC, 300 * MSEC_USEC, &fd, NULL, &error),
                -ENAMETOOLONG);
        ck_assert_ptr_nonnull(strstr(error, "too long"));
}
END_TEST

START_TEST(test_agent_exec_over_vsock)
{
        static char *const argv[] = { (char *)"/bin/true", NULL };
        AgentExecRequest req = { .argv = argv };
        AgentExecResult *result = NULL;
        _cleanup_free_ char *error = NULL;
        int fd = -EBADF;
        Peer p;

        peer_start(&p, PEER_AGENT);
        ck_assert_int_eq(
                vsock_connect(p.path, 52, 5000 * MSEC_USEC, 30000 * MSEC_USEC, &fd, NULL, &error),
                0);
        ck_assert_int_eq(agent_exec_fd(fd, &req, 30000 * MSEC_USEC, &result), 0);
        peer_stop(&p);

        ck_assert_str_eq(p.exec_argv0, "/bin/true");
        ck_assert_str_eq(result->out, "hi\n");
        ck_assert_uint_eq(result->out_size, 3);
        ck_assert_str_eq(result->err, "");
        ck_assert_int_eq(result->exit_status, 3);
        ck_assert_int_eq(result->signal, 0);
        agent_exec_result_free(result);
}
END_TEST

/* The calls of VM.Exec and VM.ListPorts on a Firecracker VM: streaming exec and the port list
 * over the hybrid vsock socket. */
START_TEST(test_agent_stream_and_ports_over_vsock)
{
        static char *const argv[] = { (char *)"uname", NULL };
        AgentExecRequest req = { .argv = argv };
        _cleanup_free_ char *error = NULL;
        AgentPortList ports = {};
        AgentExit exit_info = {};
        char out[16] = {};
        int fd = -EBADF, pipe_fds[2];
        Peer p;

        ck_assert_int_eq(pipe2(pipe_fds, O_CLOEXEC), 0);
        AgentExecStdio stdio = {
                .stdin_fd = -EBADF,
                .stdout_fd = pipe_fds[1],
                .stderr_fd = -EBADF,
                .control_fd = -EBADF,
        };

        peer_start(&p, PEER_AGENT);
        ck_assert_int_eq(vsock_connect(p.path, AGENT_VSOCK_PORT, 5000 * MSEC_USEC,
                                       30000 * MSEC_USEC, &fd, NULL, &error),
                         0);
        ck_assert_int_eq(agent_exec_stream_fd(fd, &req, &stdio, 30000 * MSEC_USEC, &exit_info), 0);
        ck_assert_int_eq(exit_info.exit_status, 3);
        ck_assert_int_eq(read(pipe_fds[0], out, sizeof(out) - 1), 3);
        ck_assert_str_eq(out, "hi\n");

        ck_assert_int_eq(vsock_connect(p.path, AGENT_VSOCK_PORT, 5000 * MSEC_USEC,
                                       30000 * MSEC_USEC, &fd, NULL, &error),
                         0);
        ck_assert_int_eq(agent_list_ports_fd(fd, 30000 * MSEC_USEC, &ports), 0);
        peer_stop(&p);

        ck_assert_str_eq(p.last_request, "CONNECT 1024\n");
        ck_assert_str_eq(p.exec_argv0, "uname");
        ck_assert_uint_eq(ports.n_ports, 1);
        ck_assert_int_eq(ports.ports[0].protocol, IPPROTO_TCP);
        ck_assert_int_eq(ports.ports[0].family, AF_INET);
        ck_assert_uint_eq(ports.ports[0].port, 8080);
        ck_assert_uint_eq(ports.ports[0].pid, 42);
        ck_assert_str_eq(ports.ports[0].comm, "httpd");
        ck_assert(!ports.truncated);
        agent_port_list_done(&ports);
        close(pipe_fds[0]);
        close(pipe_fds[1]);
}
END_TEST

/* An agent of protocol version 1, from a kernel imported by an older banger, is
 * -EPROTONOSUPPORT for every call, which bangerd turns into "import the kernel again". */
START_TEST(test_agent_version_1_over_vsock)
{
        static char *const argv[] = { (char *)"true", NULL };
        AgentExecRequest req = { .argv = argv };
        AgentExecStdio stdio = { -EBADF, -EBADF, -EBADF, -EBADF };
        _cleanup_free_ char *error = NULL;
        AgentPortList ports = {};
        AgentExit exit_info = {};
        int fd = -EBADF;
        Peer p;

        peer_start(&p, PEER_AGENT_V1);
        ck_assert_int_eq(vsock_connect(p.path, AGENT_VSOCK_PORT, 5000 * MSEC_USEC,
                                       30000 * MSEC_USEC, &fd, NULL, &error),
                         0);
        ck_assert_int_eq(agent_exec_stream_fd(fd, &req, &stdio, 30000 * MSEC_USEC, &exit_info),
                         -EPROTONOSUPPORT);
        ck_assert_int_eq(vsock_connect(p.path, AGENT_VSOCK_PORT, 5000 * MSEC_USEC,
                                       30000 * MSEC_USEC, &fd, NULL, &error),
                         0);
        ck_assert_int_eq(agent_list_ports_fd(fd, 30000 * MSEC_USEC, &ports), -EPROTONOSUPPORT);
        ck_assert_int_eq(vsock_connect(p.path, AGENT_VSOCK_PORT, 5000 * MSEC_USEC,
                                       30000 * MSEC_USEC, &fd, NULL, &error),
                         0);
        ck_assert_int_eq(agent_wait_ready_fd(fd, 30000 * MSEC_USEC), -EPROTONOSUPPORT);
        peer_stop(&p);
        ck_assert_str_eq(p.exec_argv0, "");
}
END_TEST

START_TEST(test_agent_exec_fd_invalid)
{
        static char *const argv[] = { NULL };
        AgentExecRequest req = { .argv = argv };
        AgentExecResult *result = NULL;
        int fds[2];

        /* An invalid request still closes the fd, so a read on the other end returns end of file.
         */
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        ck_assert_int_eq(agent_exec_fd(fds[0], &req, 1000 * MSEC_USEC, &result), -EINVAL);
        ck_assert_ptr_null(result);
        char c;
        ck_assert_int_eq(read(fds[1], &c, 1), 0);
        close(fds[1]);
}
END_TEST

static Suite *vsock_suite(void)
{
        Suite *s = suite_create("vsock");
        TCase *tc = tcase_create("core");

        tcase_add_loop_test(tc, test_reply_parse_table, 0, (int)ELEMENTSOF(reply_cases));
        tcase_add_test(tc, test_connect_ok);
        tcase_add_test(tc, test_connect_retries_after_close);
        tcase_add_test(tc, test_connect_nothing_listening);
        tcase_add_test(tc, test_connect_stalled_peer);
        tcase_add_test(tc, test_connect_garbage_reply);
        tcase_add_test(tc, test_connect_missing_socket);
        tcase_add_test(tc, test_connect_path_too_long);
        tcase_add_test(tc, test_agent_exec_over_vsock);
        tcase_add_test(tc, test_agent_stream_and_ports_over_vsock);
        tcase_add_test(tc, test_agent_version_1_over_vsock);
        tcase_add_test(tc, test_agent_exec_fd_invalid);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(vsock_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
