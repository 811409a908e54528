/* Runs banger-agent from this build on the host, serving a unix socket with commands run
 * without chroot as the calling user, and drives it through agent-client and raw frames. The
 * unix socket takes the same path through the agent as vsock connections do. */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent-client.h"
#include "agent-proto.h"
#include "agent-test-util.h"
#include "fileio.h"
#include "macro.h"

#define SEC          1000000ull
#define CALL_TIMEOUT (60 * SEC)

static char workdir[] = "/tmp/banger-test-agent-local.XXXXXX";
static char socket_path[256];
static pid_t agent_pid;
static const char *skip_reason;

#define SKIP_WITHOUT_AGENT()                                        \
        do {                                                        \
                if (skip_reason) {                                  \
                        fprintf(stderr, "SKIP: %s\n", skip_reason); \
                        return;                                     \
                }                                                   \
        } while (0)

static void agent_setup(void)
{
        const char *build_dir = getenv("BANGER_TEST_BUILDDIR");
        _cleanup_free_ char *agent = NULL, *config = NULL, *config_text = NULL;
        char root_option[] = "--root=/";

        if (isempty(build_dir)) {
                skip_reason = "BANGER_TEST_BUILDDIR is not set: run this test with meson test";
                return;
        }

        ck_assert_ptr_nonnull(mkdtemp(workdir));
        snprintf(socket_path, sizeof(socket_path), "%s/agent.sock", workdir);
        ck_assert_int_ge(asprintf(&agent, "%s/src/guest/banger-agent", build_dir), 0);
        ck_assert_int_ge(asprintf(&config, "%s/vm.conf", workdir), 0);
        /* The commands run as the caller, so the agent needs no privileges to switch. */
        ck_assert_int_ge(asprintf(&config_text, "env=GREETING=hello\nworkdir=%s\nuser=%u:%u\n",
                                  workdir, (unsigned)getuid(), (unsigned)getgid()),
                         0);
        ck_assert_int_eq(write_file_atomic(config, config_text, strlen(config_text), 0644), 0);

        _cleanup_free_ char *config_option = NULL, *listen_option = NULL;
        ck_assert_int_ge(asprintf(&config_option, "--config=%s", config), 0);
        ck_assert_int_ge(asprintf(&listen_option, "--listen=%s", socket_path), 0);
        char *argv[] = { agent,
                         root_option,
                         config_option,
                         (char *)"--port=",
                         (char *)"--vsock-port=0",
                         listen_option,
                         NULL };

        agent_pid = fork();
        ck_assert_int_ge(agent_pid, 0);
        if (agent_pid == 0) {
                execv(argv[0], argv);
                _exit(127);
        }
        ck_assert_int_eq(agent_wait_ready(socket_path, CALL_TIMEOUT), 0);
}

static void agent_teardown(void)
{
        if (agent_pid > 0) {
                (void)kill(agent_pid, SIGTERM);
                (void)waitpid(agent_pid, NULL, 0);
                agent_pid = 0;
        }
        if (workdir[sizeof(workdir) - 2] != 'X')
                (void)rm_rf(workdir);
}

/* Returns the state letter of pid from /proc/PID/stat, or 0 when it does not exist. */
static char process_state(pid_t pid)
{
        _cleanup_free_ char *path = NULL, *stat = NULL;
        size_t size;
        const char *p;

        ck_assert_int_ge(asprintf(&path, "/proc/%d/stat", (int)pid), 0);
        if (read_full_file(path, 4096, &stat, &size) < 0)
                return 0;
        p = strrchr(stat, ')');
        return p && p[1] == ' ' ? p[2] : 0;
}

static void wait_process_gone(pid_t pid)
{
        for (unsigned i = 0; i < 200; i++) {
                char state = process_state(pid);
                struct timespec ts = { .tv_nsec = 50 * 1000 * 1000 };

                if (state == 0 || state == 'Z')
                        return;
                nanosleep(&ts, NULL);
        }
        ck_abort_msg("Process %d still runs", (int)pid);
}

/* Returns the peak resident memory of pid in KiB, from VmHWM in /proc/PID/status. */
static unsigned long peak_rss_kib(pid_t pid)
{
        _cleanup_free_ char *path = NULL, *status = NULL;
        unsigned long kib = 0;
        size_t size;
        const char *p;

        ck_assert_int_ge(asprintf(&path, "/proc/%d/status", (int)pid), 0);
        ck_assert_int_eq(read_full_file(path, 65536, &status, &size), 0);
        p = strstr(status, "VmHWM:");
        ck_assert_ptr_nonnull(p);
        ck_assert_int_eq(sscanf(p, "VmHWM: %lu kB", &kib), 1);
        return kib;
}

START_TEST(test_stream_stdin_through_cat)
{
        SKIP_WITHOUT_AGENT();
        /* More than ten stdin windows. */
        check_stream_stdin_through_cat(socket_path, 3u * 1024u * 1024u + 17u);
}
END_TEST

START_TEST(test_stream_large_output_hash)
{
        SKIP_WITHOUT_AGENT();
        _cleanup_free_ char *scratch = NULL;

        ck_assert_int_ge(asprintf(&scratch, "%s/data", workdir), 0);
        check_stream_output_hash(socket_path, 40u * 1024u * 1024u, scratch, CALL_TIMEOUT);
}
END_TEST

START_TEST(test_stream_exit_status)
{
        SKIP_WITHOUT_AGENT();
        check_stream_stderr_and_exit_status(socket_path);
}
END_TEST

START_TEST(test_stream_killed_by_signal)
{
        SKIP_WITHOUT_AGENT();
        check_stream_killed_by_signal(socket_path);
}
END_TEST

START_TEST(test_stream_command_closes_stdin)
{
        SKIP_WITHOUT_AGENT();
        char *argv[] = { "head", "-c", "10", NULL };
        AgentExecRequest req = { .argv = argv };
        _cleanup_free_ char *input_path = NULL, *out = NULL;
        AgentExit exit_status;
        size_t out_size;
        int fd, out_pipe[2];

        /* 4 MiB of stdin for a command that reads 10 bytes and exits: the agent drops the rest
         * instead of stalling the call. */
        ck_assert_int_ge(asprintf(&input_path, "%s/input", workdir), 0);
        fd = open(input_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, 4 * 1024 * 1024), 0);
        ck_assert_int_eq(pwrite(fd, "0123456789abc", 13, 0), 13);
        ck_assert_int_eq(pipe2(out_pipe, O_CLOEXEC), 0);

        AgentExecStdio stdio = {
                .stdin_fd = fd,
                .stdout_fd = out_pipe[1],
                .stderr_fd = -1,
                .control_fd = -1,
        };
        ck_assert_int_eq(agent_exec_stream(socket_path, &req, &stdio, CALL_TIMEOUT, &exit_status),
                         0);
        close(out_pipe[1]);
        out = read_all(out_pipe[0], &out_size);
        close(out_pipe[0]);
        close(fd);

        ck_assert_int_eq(exit_status.exit_status, 0);
        ck_assert_uint_eq(out_size, 10);
        ck_assert_str_eq(out, "0123456789");
}
END_TEST

START_TEST(test_stream_tty_name_and_size)
{
        SKIP_WITHOUT_AGENT();
        check_stream_tty_size(socket_path, 50, 132);
        check_stream_tty_size(socket_path, 0, 0);
}
END_TEST

START_TEST(test_stream_tty_resize)
{
        SKIP_WITHOUT_AGENT();
        check_stream_tty_resize(socket_path, CALL_TIMEOUT);
}
END_TEST

START_TEST(test_stream_tty_stdin_eof)
{
        SKIP_WITHOUT_AGENT();
        char *argv[] = { "sh", "-c", "read line; echo \"got $line\"; cat; echo cat-ended", NULL };
        AgentExecRequest req = { .argv = argv, .tty = true };
        _cleanup_free_ char *out = NULL;
        size_t size;
        StreamRun s = {};

        /* End of stdin becomes the terminal's end-of-file character, which ends cat. */
        stream_start(&s, socket_path, &req, true);
        write_all(s.stdin_w, "hello\n", 6);
        s.stdin_w = safe_close(s.stdin_w);
        out = read_all(s.stdout_r, &size);
        stream_join(&s);

        ck_assert_int_eq(s.result, 0);
        ck_assert_int_eq(s.exit.exit_status, 0);
        ck_assert_msg(strstr(out, "got hello\r\n"), "output was '%s'", out);
        ck_assert_msg(strstr(out, "cat-ended\r\n"), "output was '%s'", out);
}
END_TEST

START_TEST(test_stream_slow_reader_bounded)
{
        SKIP_WITHOUT_AGENT();
        char *argv[] = { "sh", "-c", "echo $$ >&2; exec yes flow-control", NULL };
        AgentExecRequest req = { .argv = argv };
        _cleanup_free_ char *pid_line = NULL;
        unsigned long before, after;
        struct timespec ts = { .tv_sec = 2 };
        StreamRun s = {};
        pid_t pid;

        before = peak_rss_kib(agent_pid);
        stream_start(&s, socket_path, &req, false);
        pid_line = read_until(s.stderr_r, "\n");
        pid = parse_pid_line(pid_line);

        /* The test does not read stdout: yes fills the pipe, the window and the agent's queue, then
         * blocks. Unbounded buffering could reach gigabytes in these two seconds. */
        nanosleep(&ts, NULL);
        after = peak_rss_kib(agent_pid);
        ck_assert_msg(after < before + 8 * 1024, "agent peak memory grew from %lu to %lu KiB",
                      before, after);
        ck_assert_int_eq(process_state(pid), 'S');

        /* Closing the control pipe cancels the call, which kills the command. */
        s.control_w = safe_close(s.control_w);
        stream_join(&s);
        ck_assert_int_eq(s.result, -ECANCELED);
        wait_process_gone(pid);
}
END_TEST

START_TEST(test_stream_timeout_kills_command)
{
        SKIP_WITHOUT_AGENT();
        char *argv[] = { "sh", "-c", "echo $$; exec sleep 60", NULL };
        AgentExecRequest req = { .argv = argv };
        _cleanup_free_ char *pid_line = NULL;
        StreamRun s = { .timeout_usec = 2 * SEC };
        pid_t pid;

        stream_start(&s, socket_path, &req, false);
        pid_line = read_until(s.stdout_r, "\n");
        pid = parse_pid_line(pid_line);
        stream_join(&s);

        ck_assert_int_eq(s.result, -ETIMEDOUT);
        wait_process_gone(pid);
}
END_TEST

START_TEST(test_stream_stdout_closed)
{
        SKIP_WITHOUT_AGENT();
        char *argv[] = { "sh", "-c", "echo $$ >&2; exec yes", NULL };
        AgentExecRequest req = { .argv = argv };
        _cleanup_free_ char *pid_line = NULL;
        StreamRun s = {};
        pid_t pid;

        /* Writing to a pipe without a reader fails with EPIPE once SIGPIPE is ignored, as a
         * daemon does. */
        signal(SIGPIPE, SIG_IGN);
        stream_start(&s, socket_path, &req, false);
        pid_line = read_until(s.stderr_r, "\n");
        pid = parse_pid_line(pid_line);
        s.stdout_r = safe_close(s.stdout_r);
        stream_join(&s);

        ck_assert_int_eq(s.result, -EPIPE);
        wait_process_gone(pid);
}
END_TEST

START_TEST(test_stream_bad_arguments)
{
        SKIP_WITHOUT_AGENT();
        char *argv[] = { "true", NULL }, *empty[] = { NULL };
        AgentExecStdio stdio = {
                .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1, .control_fd = -1
        };
        AgentExecRequest wide = { .argv = argv, .tty = true, .cols = 65536 };
        AgentExecRequest none = { .argv = empty };
        AgentExecRequest ok = { .argv = argv };
        AgentExit exit_status = { .exit_status = 99 };
        int p[2];

        ck_assert_int_eq(agent_exec_stream(socket_path, &wide, &stdio, CALL_TIMEOUT, &exit_status),
                         -EINVAL);
        ck_assert_int_eq(agent_exec_stream(socket_path, &none, &stdio, CALL_TIMEOUT, &exit_status),
                         -EINVAL);
        ck_assert_int_eq(agent_exec_stream(socket_path, &ok, NULL, CALL_TIMEOUT, &exit_status),
                         -EINVAL);
        ck_assert_int_eq(exit_status.exit_status, 99);

        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        ck_assert_int_eq(agent_exec_stream_resize(p[1], 0, 80), -EINVAL);
        ck_assert_int_eq(agent_exec_stream_resize(p[1], 24, 65536), -EINVAL);
        ck_assert_int_eq(agent_exec_stream_resize(-1, 24, 80), -EINVAL);
        close(p[0]);
        close(p[1]);

        /* All descriptors closed is a command with no input whose output is dropped. */
        ck_assert_int_eq(agent_exec_stream(socket_path, &ok, &stdio, CALL_TIMEOUT, &exit_status),
                         0);
        ck_assert_int_eq(exit_status.exit_status, 0);
}
END_TEST

START_TEST(test_exec_collects_output)
{
        SKIP_WITHOUT_AGENT();
        char *argv[] = { "sh", "-c", "echo \"$GREETING\"; pwd; echo oops >&2; exit 4", NULL };
        AgentExecRequest req = { .argv = argv };
        AgentExecResult *res = NULL;
        _cleanup_free_ char *expected = NULL;

        ck_assert_int_eq(agent_exec(socket_path, &req, CALL_TIMEOUT, &res), 0);
        ck_assert_int_ge(asprintf(&expected, "hello\n%s\n", workdir), 0);
        ck_assert_str_eq(res->out, expected);
        ck_assert_str_eq(res->err, "oops\n");
        ck_assert_int_eq(res->exit_status, 4);
        agent_exec_result_free(res);
}
END_TEST

/* Runs "id -u; id -g" as user and returns the agent_exec() result, with the output in *ret_out. */
static int exec_id_as(const char *user, char **ret_out)
{
        char *argv[] = { "sh", "-c", "id -u; id -g", NULL };
        AgentExecRequest req = { .argv = argv, .user = user };
        AgentExecResult *res = NULL;
        int r;

        r = agent_exec(socket_path, &req, CALL_TIMEOUT, &res);
        if (r < 0)
                return r;
        ck_assert_int_eq(res->exit_status, 0);
        *ret_out = TAKE_PTR(res->out);
        agent_exec_result_free(res);
        return 0;
}

START_TEST(test_exec_user_numeric)
{
        SKIP_WITHOUT_AGENT();
        _cleanup_free_ char *out = NULL, *user = NULL, *expected = NULL;

        ck_assert_int_ge(asprintf(&user, "%u:%u", (unsigned)getuid(), (unsigned)getgid()), 0);
        ck_assert_int_ge(asprintf(&expected, "%u\n%u\n", (unsigned)getuid(), (unsigned)getgid()),
                         0);
        ck_assert_int_eq(exec_id_as(user, &out), 0);
        ck_assert_str_eq(out, expected);
}
END_TEST

START_TEST(test_exec_user_switch)
{
        SKIP_WITHOUT_AGENT();
        _cleanup_free_ char *out = NULL;

        /* Only root can switch to another user, and the agent runs as the caller here. */
        if (getuid() != 0) {
                fprintf(stderr, "SKIP: switching users needs root\n");
                return;
        }
        ck_assert_int_eq(exec_id_as("12345:23456", &out), 0);
        ck_assert_str_eq(out, "12345\n23456\n");
        free(TAKE_PTR(out));
        ck_assert_int_eq(exec_id_as("root", &out), 0);
        ck_assert_str_eq(out, "0\n0\n");
}
END_TEST

START_TEST(test_exec_user_errors)
{
        SKIP_WITHOUT_AGENT();
        static const struct {
                const char *user;
                int error;
        } cases[] = {
                { "no-such-user-banger", -ESRCH },
                { "root:no-such-group-banger", -ESRCH },
                { "root:", -EINVAL },
                { ":0", -EINVAL },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char *out = NULL;

                ck_assert_int_eq(exec_id_as(cases[i].user, &out), cases[i].error);
                ck_assert_ptr_null(out);
        }
}
END_TEST

START_TEST(test_exec_output_cap)
{
        SKIP_WITHOUT_AGENT();
        char *argv[] = { "head", "-c", "67108865", "/dev/zero", NULL };
        AgentExecRequest req = { .argv = argv };
        AgentExecResult *res = NULL;

        ck_assert_int_eq(agent_exec(socket_path, &req, CALL_TIMEOUT, &res), -EFBIG);
        ck_assert_ptr_null(res);
}
END_TEST

static uint16_t free_tcp_port(void)
{
        struct sockaddr_in sa = { .sin_family = AF_INET };
        socklen_t len = sizeof(sa);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
        close(fd);
        return ntohs(sa.sin_port);
}

static const AgentPort *find_tcp_port(const AgentPortList *l, uint16_t port)
{
        for (size_t i = 0; i < l->n_ports; i++)
                if (l->ports[i].protocol == IPPROTO_TCP && l->ports[i].port == port)
                        return &l->ports[i];
        return NULL;
}

START_TEST(test_ports_lists_exec_listener)
{
        SKIP_WITHOUT_AGENT();
        uint16_t port = free_tcp_port();
        _cleanup_free_ char *script = NULL;
        char *argv[] = { "sh", "-c", NULL, NULL };
        AgentExecRequest req = { .argv = argv };
        AgentExecResult *res = NULL;
        const AgentPort *p = NULL;
        AgentPortList l = {};
        pid_t pid;

        ck_assert_int_ge(
                asprintf(&script, "busybox nc -l -p %u </dev/null >/dev/null 2>&1 & echo $!", port),
                0);
        argv[2] = script;
        ck_assert_int_eq(agent_exec(socket_path, &req, CALL_TIMEOUT, &res), 0);
        pid = parse_pid_line(res->out);
        agent_exec_result_free(res);

        for (unsigned i = 0; i < 100 && !p; i++) {
                struct timespec ts = { .tv_nsec = 50 * 1000 * 1000 };

                agent_port_list_done(&l);
                ck_assert_int_eq(agent_list_ports(socket_path, CALL_TIMEOUT, &l), 0);
                p = find_tcp_port(&l, port);
                if (!p)
                        nanosleep(&ts, NULL);
        }
        ck_assert_msg(p, "port %u not listed", port);
        ck_assert_uint_eq(p->pid, (uint32_t)pid);
        ck_assert_str_eq(p->comm, "busybox");
        ck_assert_uint_eq(p->uid, getuid());
        agent_port_list_done(&l);

        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        wait_process_gone(pid);
        ck_assert_int_eq(agent_list_ports(socket_path, CALL_TIMEOUT, &l), 0);
        ck_assert_ptr_null(find_tcp_port(&l, port));
        agent_port_list_done(&l);
}
END_TEST

/* The reply that ended a request, with the output that came before it. */
typedef struct RawReply {
        uint16_t type;    /* 0: the agent closed the connection first */
        int32_t code;     /* ERROR's errno value */
        uint32_t version; /* HELLO_REPLY's */
        AgentExit exit;
        char out[256];
} RawReply;

/* Reads frames until one of request id that ends a request: HELLO_REPLY, EXIT, ERROR or
 * PORTS_REPLY. */
static RawReply raw_reply(int fd, uint32_t id)
{
        static AgentBuffer in;
        RawReply reply = {};
        size_t out_size = 0;

        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                AgentFrame f;
                size_t consumed;
                char chunk[65536];
                ssize_t n;

                while (agent_frame_decode(in.data, in.size, &f, &consumed) > 0) {
                        bool done = f.request_id == id;
                        AgentHello h;
                        AgentError e;

                        if (done && f.type == AGENT_MSG_STDOUT &&
                            out_size + f.payload_size < sizeof(reply.out)) {
                                memcpy(reply.out + out_size, f.payload, f.payload_size);
                                out_size += f.payload_size;
                        }
                        if (done && f.type == AGENT_MSG_HELLO_REPLY) {
                                ck_assert_int_eq(agent_hello_decode(&f, &h), 0);
                                reply.version = h.version;
                                agent_hello_done(&h);
                        } else if (done && f.type == AGENT_MSG_ERROR) {
                                ck_assert_int_eq(agent_error_decode(&f, &e), 0);
                                reply.code = e.code;
                                agent_error_done(&e);
                        } else if (done && f.type == AGENT_MSG_EXIT)
                                ck_assert_int_eq(agent_exit_decode(&f, &reply.exit), 0);
                        else if (!(done && f.type == AGENT_MSG_PORTS_REPLY))
                                done = false;
                        if (done)
                                reply.type = f.type;
                        agent_buffer_consume(&in, consumed);
                        if (done)
                                return reply;
                }

                ck_assert_int_eq(poll(&p, 1, 30 * 1000), 1);
                n = recv(fd, chunk, sizeof(chunk), 0);
                if (n <= 0) {
                        in.size = 0;
                        return reply;
                }
                ck_assert_int_eq(agent_buffer_append(&in, chunk, (size_t)n), 0);
        }
}

static void append_hello(AgentBuffer *b, uint32_t version)
{
        AgentHello h = { .version = version, .nonce = 5 };

        ck_assert_int_eq(agent_hello_append(b, AGENT_MSG_HELLO, 1, &h), 0);
}

/* Connects and completes the handshake. */
static int raw_session(void)
{
        AgentBuffer b = {};
        int fd = raw_connect(socket_path);

        append_hello(&b, AGENT_PROTOCOL_VERSION);
        raw_send(fd, &b);
        agent_buffer_done(&b);
        ck_assert_uint_eq(raw_reply(fd, 1).type, AGENT_MSG_HELLO_REPLY);
        return fd;
}

static void append_exec(AgentBuffer *b, uint32_t id, uint32_t flags, const char *script)
{
        char *argv[] = { "sh", "-c", (char *)script, NULL };
        AgentExec e = { .flags = flags, .argv = argv };

        ck_assert_int_eq(agent_exec_append(b, id, &e), 0);
}

START_TEST(test_raw_exec_before_hello)
{
        SKIP_WITHOUT_AGENT();
        AgentBuffer b = {};
        RawReply reply;
        int fd = raw_connect(socket_path);

        append_exec(&b, 2, 0, "echo never");
        raw_send(fd, &b);
        reply = raw_reply(fd, 2);
        ck_assert_uint_eq(reply.type, AGENT_MSG_ERROR);
        ck_assert_int_eq(reply.code, EPROTO);
        close(fd);
        agent_buffer_done(&b);
}
END_TEST

START_TEST(test_raw_version_1_host)
{
        SKIP_WITHOUT_AGENT();
        AgentBuffer b = {};
        RawReply reply;
        int fd = raw_connect(socket_path);

        /* The agent names its own version, then rejects requests from the old host. */
        append_hello(&b, 1);
        raw_send(fd, &b);
        reply = raw_reply(fd, 1);
        ck_assert_uint_eq(reply.type, AGENT_MSG_HELLO_REPLY);
        ck_assert_uint_eq(reply.version, AGENT_PROTOCOL_VERSION);

        b.size = 0;
        append_exec(&b, 2, 0, "echo never");
        ck_assert_int_eq(agent_frame_append(&b, AGENT_MSG_PORTS, 3, NULL, 0), 0);
        raw_send(fd, &b);
        reply = raw_reply(fd, 2);
        ck_assert_uint_eq(reply.type, AGENT_MSG_ERROR);
        ck_assert_int_eq(reply.code, EPROTONOSUPPORT);
        reply = raw_reply(fd, 3);
        ck_assert_uint_eq(reply.type, AGENT_MSG_ERROR);
        ck_assert_int_eq(reply.code, EPROTONOSUPPORT);
        close(fd);
        agent_buffer_done(&b);
}
END_TEST

/* Sends an EXEC of a long-running command followed by the frames that append_more() adds, in
 * one write, and returns the reply that ended the request. */
static RawReply raw_exec_then(uint32_t flags, void (*append_more)(AgentBuffer *b))
{
        AgentBuffer b = {};
        RawReply reply;
        int fd = raw_session();

        append_exec(&b, 7, flags, "sleep 30");
        append_more(&b);
        raw_send(fd, &b);
        reply = raw_reply(fd, 7);
        close(fd);
        agent_buffer_done(&b);
        return reply;
}

static void append_stdin_after_eof(AgentBuffer *b)
{
        ck_assert_int_eq(agent_frame_append(b, AGENT_MSG_STDIN_EOF, 7, NULL, 0), 0);
        ck_assert_int_eq(agent_frame_append(b, AGENT_MSG_STDIN, 7, "late", 4), 0);
}

static void append_second_eof(AgentBuffer *b)
{
        ck_assert_int_eq(agent_frame_append(b, AGENT_MSG_STDIN_EOF, 7, NULL, 0), 0);
        ck_assert_int_eq(agent_frame_append(b, AGENT_MSG_STDIN_EOF, 7, NULL, 0), 0);
}

static void append_stdin_beyond_credit(AgentBuffer *b)
{
        _cleanup_free_ uint8_t *big = calloc(1, AGENT_WINDOW_INITIAL + 1);

        ck_assert_ptr_nonnull(big);
        ck_assert_int_eq(agent_frame_append(b, AGENT_MSG_STDIN, 7, big, AGENT_WINDOW_INITIAL + 1),
                         0);
}

static void append_stdin(AgentBuffer *b)
{
        ck_assert_int_eq(agent_frame_append(b, AGENT_MSG_STDIN, 7, "x", 1), 0);
}

static void append_window_beyond_max(AgentBuffer *b)
{
        ck_assert_int_eq(agent_window_append(b, 7, AGENT_WINDOW_MAX), 0);
}

static void append_malformed_window(AgentBuffer *b)
{
        ck_assert_int_eq(agent_frame_append(b, AGENT_MSG_WINDOW, 7, "\0\0\0\0", 4), 0);
}

static void append_nothing(AgentBuffer *b)
{
}

static const struct {
        const char *name;
        uint32_t flags;
        void (*append_more)(AgentBuffer *b);
        int code;
} protocol_violations[] = {
        { "stdin after eof", AGENT_EXEC_FLAG_STDIN, append_stdin_after_eof, EPROTO },
        { "second eof", AGENT_EXEC_FLAG_STDIN, append_second_eof, EPROTO },
        { "stdin beyond credit", AGENT_EXEC_FLAG_STDIN, append_stdin_beyond_credit, EPROTO },
        { "stdin without the flag", 0, append_stdin, EPROTO },
        { "window beyond maximum", 0, append_window_beyond_max, EPROTO },
        { "window of zero", 0, append_malformed_window, EBADMSG },
        { "unknown exec flag", 1u << 5, append_nothing, EOPNOTSUPP },
};

START_TEST(test_raw_protocol_violation)
{
        SKIP_WITHOUT_AGENT();
        RawReply reply =
                raw_exec_then(protocol_violations[_i].flags, protocol_violations[_i].append_more);

        ck_assert_msg(reply.type == AGENT_MSG_ERROR, "%s: ended with type %u",
                      protocol_violations[_i].name, reply.type);
        ck_assert_msg(reply.code == protocol_violations[_i].code, "%s: error %d",
                      protocol_violations[_i].name, reply.code);
}
END_TEST

START_TEST(test_raw_second_exec_busy)
{
        SKIP_WITHOUT_AGENT();
        AgentBuffer b = {};
        RawReply reply;
        int fd = raw_session();

        append_exec(&b, 7, 0, "sleep 30");
        append_exec(&b, 8, 0, "echo never");
        raw_send(fd, &b);
        reply = raw_reply(fd, 8);
        ck_assert_uint_eq(reply.type, AGENT_MSG_ERROR);
        ck_assert_int_eq(reply.code, EBUSY);
        close(fd);
        agent_buffer_done(&b);
}
END_TEST

START_TEST(test_raw_garbage_then_request)
{
        SKIP_WITHOUT_AGENT();
        /* A header claiming 4 GiB, one of an unknown type, and stray bytes. */
        static const uint8_t garbage[] = {
                0x42, 0x4e, 0x47, 0x41, 0xff, 0xff, 0xff, 0xff, 3,   0,   0,    0,
                1,    0,    0,    0,    0x42, 0x4e, 0x47, 0x41, 0,   0,   0,    0,
                99,   0,    0,    0,    1,    0,    0,    0,    'x', 'y', 0x42, 0x4e,
        };
        AgentBuffer b = {};
        RawReply reply;
        int fd = raw_connect(socket_path);

        ck_assert_int_eq(agent_buffer_append(&b, garbage, sizeof(garbage)), 0);
        append_hello(&b, AGENT_PROTOCOL_VERSION);
        append_exec(&b, 2, 0, "echo fine");
        raw_send(fd, &b);
        reply = raw_reply(fd, 2);
        ck_assert_uint_eq(reply.type, AGENT_MSG_EXIT);
        ck_assert_int_eq(reply.exit.exit_status, 0);
        ck_assert_str_eq(reply.out, "fine\n");
        close(fd);
        agent_buffer_done(&b);
}
END_TEST

START_TEST(test_raw_truncated_frame_then_disconnect)
{
        SKIP_WITHOUT_AGENT();
        AgentBuffer b = {};
        AgentExecResult *res = NULL;
        char *argv[] = { "echo", "after", NULL };
        AgentExecRequest req = { .argv = argv };
        int fd = raw_session();

        append_exec(&b, 2, 0, "echo never");
        b.size -= 3;
        raw_send(fd, &b);
        close(fd);
        agent_buffer_done(&b);

        ck_assert_int_eq(agent_exec(socket_path, &req, CALL_TIMEOUT, &res), 0);
        ck_assert_str_eq(res->out, "after\n");
        agent_exec_result_free(res);
}
END_TEST

START_TEST(test_sessions_run_concurrently)
{
        SKIP_WITHOUT_AGENT();
        char *argv[] = { "echo", "beside", NULL };
        AgentExecRequest req = { .argv = argv };
        AgentExecResult *res = NULL;
        AgentBuffer b = {};
        int fd = raw_session();

        /* One connection runs a long command, another gets its reply meanwhile. */
        append_exec(&b, 7, 0, "sleep 30");
        raw_send(fd, &b);
        ck_assert_int_eq(agent_exec(socket_path, &req, 10 * SEC, &res), 0);
        ck_assert_str_eq(res->out, "beside\n");
        agent_exec_result_free(res);
        close(fd);
        agent_buffer_done(&b);
}
END_TEST

START_TEST(test_sessions_limit)
{
        SKIP_WITHOUT_AGENT();
        /* The agent serves 16 connections at once (SESSIONS_MAX in banger-agent.c). */
        int fds[16], extra;
        char c;

        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                fds[i] = raw_session();

        extra = raw_connect(socket_path);
        ck_assert_int_eq(recv(extra, &c, 1, 0), 0);
        close(extra);

        close(fds[0]);
        /* The agent notices the closed connection on its next poll round. */
        for (unsigned i = 0; i < 100; i++) {
                struct timespec ts = { .tv_nsec = 20 * 1000 * 1000 };

                nanosleep(&ts, NULL);
                if (agent_wait_ready(socket_path, 5 * SEC) == 0)
                        break;
        }
        ck_assert_int_eq(agent_wait_ready(socket_path, 5 * SEC), 0);
        for (size_t i = 1; i < ELEMENTSOF(fds); i++)
                close(fds[i]);
}
END_TEST

static Suite *agent_local_suite(void)
{
        Suite *s = suite_create("agent-local");
        TCase *tc = tcase_create("stream");

        tcase_add_unchecked_fixture(tc, agent_setup, agent_teardown);
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_stream_stdin_through_cat);
        tcase_add_test(tc, test_stream_large_output_hash);
        tcase_add_test(tc, test_stream_exit_status);
        tcase_add_test(tc, test_stream_killed_by_signal);
        tcase_add_test(tc, test_stream_command_closes_stdin);
        tcase_add_test(tc, test_stream_tty_name_and_size);
        tcase_add_test(tc, test_stream_tty_resize);
        tcase_add_test(tc, test_stream_tty_stdin_eof);
        tcase_add_test(tc, test_stream_slow_reader_bounded);
        tcase_add_test(tc, test_stream_timeout_kills_command);
        tcase_add_test(tc, test_stream_stdout_closed);
        tcase_add_test(tc, test_stream_bad_arguments);
        tcase_add_test(tc, test_exec_collects_output);
        tcase_add_test(tc, test_exec_user_numeric);
        tcase_add_test(tc, test_exec_user_switch);
        tcase_add_test(tc, test_exec_user_errors);
        tcase_add_test(tc, test_exec_output_cap);
        tcase_add_test(tc, test_ports_lists_exec_listener);
        tcase_add_test(tc, test_raw_exec_before_hello);
        tcase_add_test(tc, test_raw_version_1_host);
        tcase_add_loop_test(tc, test_raw_protocol_violation, 0, ELEMENTSOF(protocol_violations));
        tcase_add_test(tc, test_raw_second_exec_busy);
        tcase_add_test(tc, test_raw_garbage_then_request);
        tcase_add_test(tc, test_raw_truncated_frame_then_disconnect);
        tcase_add_test(tc, test_sessions_run_concurrently);
        tcase_add_test(tc, test_sessions_limit);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(agent_local_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
