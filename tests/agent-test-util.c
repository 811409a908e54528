#include <check.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent-test-util.h"
#include "macro.h"

static void *stream_thread(void *userdata)
{
        StreamRun *s = userdata;

        s->result =
                agent_exec_stream(s->socket_path, &s->req, &s->stdio, s->timeout_usec, &s->exit);
        /* The call leaves the caller's descriptors open: close the command's ends so the test
         * sees end of file. */
        safe_close(s->stdio.stdin_fd);
        safe_close(s->stdio.stdout_fd);
        safe_close(s->stdio.stderr_fd);
        safe_close(s->stdio.control_fd);
        return NULL;
}

static void make_pipe(int *ret_read, int *ret_write)
{
        int p[2];

        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        *ret_read = p[0];
        *ret_write = p[1];
}

void stream_start(StreamRun *s, const char *socket_path, const AgentExecRequest *req,
                  bool with_stdin)
{
        *s = (StreamRun){
                .socket_path = socket_path,
                .req = *req,
                .stdio = { .stdin_fd = -1 },
                .timeout_usec = s->timeout_usec ?: 60 * 1000000ull,
                .stdin_w = -1,
        };
        if (with_stdin)
                make_pipe(&s->stdio.stdin_fd, &s->stdin_w);
        make_pipe(&s->stdout_r, &s->stdio.stdout_fd);
        make_pipe(&s->stderr_r, &s->stdio.stderr_fd);
        make_pipe(&s->stdio.control_fd, &s->control_w);
        ck_assert_int_eq(pthread_create(&s->thread, NULL, stream_thread, s), 0);
}

void stream_join(StreamRun *s)
{
        ck_assert_int_eq(pthread_join(s->thread, NULL), 0);
        safe_close(s->stdin_w);
        safe_close(s->stdout_r);
        safe_close(s->stderr_r);
        safe_close(s->control_w);
}

char *read_all(int fd, size_t *ret_size)
{
        AgentBuffer b = {};
        char chunk[65536];
        ssize_t n;

        while ((n = read(fd, chunk, sizeof(chunk))) > 0)
                ck_assert_int_eq(agent_buffer_append(&b, chunk, (size_t)n), 0);
        ck_assert_int_eq(n, 0);
        ck_assert_int_eq(agent_buffer_append(&b, "", 1), 0);
        *ret_size = b.size - 1;
        return (char *)b.data;
}

char *read_until(int fd, const char *text)
{
        AgentBuffer b = {};
        char chunk[4096];

        while (!b.data || !memmem(b.data, b.size, text, strlen(text))) {
                ssize_t n = read(fd, chunk, sizeof(chunk));

                ck_assert_int_gt(n, 0);
                ck_assert_int_eq(agent_buffer_append(&b, chunk, (size_t)n), 0);
        }
        ck_assert_int_eq(agent_buffer_append(&b, "", 1), 0);
        return (char *)b.data;
}

void write_all(int fd, const void *data, size_t size)
{
        size_t done = 0;

        while (done < size) {
                ssize_t n = write(fd, (const char *)data + done, size - done);

                ck_assert_int_gt(n, 0);
                done += (size_t)n;
        }
}

void sha256_hex(const void *data, size_t size, char ret[static 65])
{
        unsigned char digest[32];
        unsigned len = 0;

        ck_assert_int_eq(EVP_Digest(data, size, digest, &len, EVP_sha256(), NULL), 1);
        ck_assert_uint_eq(len, 32);
        for (size_t i = 0; i < 32; i++)
                snprintf(ret + 2 * i, 3, "%02x", digest[i]);
}

pid_t parse_pid_line(const char *text)
{
        long v = strtol(text, NULL, 10);

        ck_assert_int_gt(v, 1);
        return (pid_t)v;
}

int raw_connect(const char *socket_path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        ck_assert_uint_lt(strlen(socket_path), sizeof(sa.sun_path));
        strcpy(sa.sun_path, socket_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        return fd;
}

void raw_send(int fd, const AgentBuffer *b)
{
        ck_assert_int_eq(send(fd, b->data, b->size, MSG_NOSIGNAL), (ssize_t)b->size);
}

void check_stream_stdin_through_cat(const char *socket_path, size_t size)
{
        char *argv[] = { "cat", NULL };
        AgentExecRequest req = { .argv = argv };
        _cleanup_free_ char *input = malloc(size), *out = NULL, *err = NULL;
        size_t out_size, err_size;
        StreamRun s = {};
        pid_t writer;
        int status;

        ck_assert_ptr_nonnull(input);
        for (size_t i = 0; i < size; i++)
                input[i] = (char)(i % 251);
        stream_start(&s, socket_path, &req, true);
        writer = fork();
        ck_assert_int_ge(writer, 0);
        if (writer == 0) {
                write_all(s.stdin_w, input, size);
                _exit(0);
        }
        s.stdin_w = safe_close(s.stdin_w);

        out = read_all(s.stdout_r, &out_size);
        err = read_all(s.stderr_r, &err_size);
        stream_join(&s);
        ck_assert_int_eq(waitpid(writer, &status, 0), writer);
        ck_assert_int_eq(status, 0);

        ck_assert_int_eq(s.result, 0);
        ck_assert_int_eq(s.exit.exit_status, 0);
        ck_assert_int_eq(s.exit.signal, 0);
        ck_assert_uint_eq(out_size, size);
        ck_assert_int_eq(memcmp(out, input, size), 0);
        ck_assert_uint_eq(err_size, 0);
}

void check_stream_output_hash(const char *socket_path, size_t size, const char *scratch_path,
                              uint64_t timeout_usec)
{
        _cleanup_free_ char *script = NULL, *out = NULL, *err = NULL;
        char *argv[] = { "sh", "-c", NULL, NULL };
        AgentExecRequest req = { .argv = argv };
        size_t out_size, err_size;
        StreamRun s = { .timeout_usec = timeout_usec };
        char hex[65];

        ck_assert_int_ge(asprintf(&script,
                                  "head -c %zu /dev/urandom | tee '%s' && "
                                  "sha256sum <'%s' | cut -d' ' -f1 >&2; rm '%s'",
                                  size, scratch_path, scratch_path, scratch_path),
                         0);
        argv[2] = script;
        stream_start(&s, socket_path, &req, false);
        out = read_all(s.stdout_r, &out_size);
        err = read_all(s.stderr_r, &err_size);
        stream_join(&s);

        ck_assert_int_eq(s.result, 0);
        ck_assert_int_eq(s.exit.exit_status, 0);
        ck_assert_uint_eq(out_size, size);
        sha256_hex(out, out_size, hex);
        ck_assert_uint_eq(err_size, 65);
        err[64] = '\0';
        ck_assert_str_eq(err, hex);
}

void check_stream_stderr_and_exit_status(const char *socket_path)
{
        char *argv[] = { "sh", "-c", "echo out; echo err >&2; echo out2; exit 9", NULL };
        AgentExecRequest req = { .argv = argv };
        _cleanup_free_ char *out = NULL, *err = NULL;
        size_t out_size, err_size;
        StreamRun s = {};

        stream_start(&s, socket_path, &req, false);
        out = read_all(s.stdout_r, &out_size);
        err = read_all(s.stderr_r, &err_size);
        stream_join(&s);

        ck_assert_int_eq(s.result, 0);
        ck_assert_int_eq(s.exit.exit_status, 9);
        ck_assert_int_eq(s.exit.signal, 0);
        ck_assert_str_eq(out, "out\nout2\n");
        ck_assert_str_eq(err, "err\n");
}

void check_stream_killed_by_signal(const char *socket_path)
{
        char *argv[] = { "sh", "-c", "echo before; kill -9 $$", NULL };
        AgentExecRequest req = { .argv = argv };
        _cleanup_free_ char *out = NULL;
        size_t out_size;
        StreamRun s = {};

        stream_start(&s, socket_path, &req, false);
        out = read_all(s.stdout_r, &out_size);
        stream_join(&s);

        ck_assert_int_eq(s.result, 0);
        ck_assert_int_eq(s.exit.exit_status, -1);
        ck_assert_int_eq(s.exit.signal, SIGKILL);
        ck_assert_str_eq(out, "before\n");
}

void check_stream_tty_size(const char *socket_path, unsigned rows, unsigned cols)
{
        char *argv[] = { "sh", "-c", "tty; stty size; echo to-stderr >&2", NULL };
        AgentExecRequest req = { .argv = argv, .tty = true, .rows = rows, .cols = cols };
        _cleanup_free_ char *out = NULL, *err = NULL;
        size_t out_size, err_size;
        unsigned n, out_rows, out_cols;
        StreamRun s = {};

        stream_start(&s, socket_path, &req, false);
        out = read_all(s.stdout_r, &out_size);
        err = read_all(s.stderr_r, &err_size);
        stream_join(&s);

        ck_assert_int_eq(s.result, 0);
        ck_assert_int_eq(s.exit.exit_status, 0);
        /* A terminal ends lines with CR LF. The name is the one the command finds inside its
         * root's /dev/pts. */
        ck_assert_msg(sscanf(out, "/dev/pts/%u\r\n%u %u\r\n", &n, &out_rows, &out_cols) == 3,
                      "output was '%s'", out);
        ck_assert_uint_eq(out_rows, rows ?: 24);
        ck_assert_uint_eq(out_cols, cols ?: 80);
        ck_assert_msg(strstr(out, "\r\nto-stderr\r\n"), "output was '%s'", out);
        ck_assert_uint_eq(err_size, 0);
}

void check_stream_tty_resize(const char *socket_path, uint64_t timeout_usec)
{
        char *argv[] = { "sh", "-c",
                         "trap 'stty size; exit 0' WINCH; echo ready; "
                         "while :; do sleep 1; done",
                         NULL };
        AgentExecRequest req = { .argv = argv, .tty = true };
        _cleanup_free_ char *first = NULL, *rest = NULL;
        size_t size;
        StreamRun s = { .timeout_usec = timeout_usec };

        stream_start(&s, socket_path, &req, false);
        first = read_until(s.stdout_r, "ready");
        ck_assert_int_eq(agent_exec_stream_resize(s.control_w, 40, 100), 0);
        rest = read_all(s.stdout_r, &size);
        stream_join(&s);

        ck_assert_int_eq(s.result, 0);
        ck_assert_int_eq(s.exit.exit_status, 0);
        ck_assert_msg(strstr(rest, "40 100\r\n"), "output after the resize was '%s'", rest);
}
