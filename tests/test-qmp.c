#include <check.h>
#include <stdbool.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "config.h"
#include "fileio.h"
#include "macro.h"
#include "qmp.h"

#define SECOND_USEC  1000000ULL
#define TIMEOUT_USEC (30 * SECOND_USEC)

/* Parser */

static const struct {
        const char *input;
        int result;
        QmpMessageType type;
        int64_t id;
        const char *error_class;
        const char *error_desc;
        const char *event;
} parse_cases[] = {
        { .input = "{\"QMP\": {\"version\": {}, \"capabilities\": [\"oob\"]}}",
          .type = QMP_MESSAGE_GREETING,
          .id = -1 },
        { .input = "{\"return\": {}, \"id\": 7}", .type = QMP_MESSAGE_RETURN, .id = 7 },
        { .input = "{\"return\": {}, \"id\": 7}\r\n", .type = QMP_MESSAGE_RETURN, .id = 7 },
        { .input = "{\"return\": null}", .type = QMP_MESSAGE_RETURN, .id = -1 },
        { .input = "{\"return\": [1, 2], \"id\": \"seven\"}",
          .type = QMP_MESSAGE_RETURN,
          .id = -1 },
        { .input = "{\"return\": {}, \"id\": -4}", .type = QMP_MESSAGE_RETURN, .id = -1 },
        { .input = "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command x has not "
                   "been "
                   "found\"}, \"id\": 9}",
          .type = QMP_MESSAGE_ERROR,
          .id = 9,
          .error_class = "CommandNotFound",
          .error_desc = "The command x has not been found" },
        { .input = "{\"error\": {\"desc\": \"no class\"}}",
          .type = QMP_MESSAGE_ERROR,
          .id = -1,
          .error_class = "GenericError",
          .error_desc = "no class" },
        { .input = "{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}",
          .type = QMP_MESSAGE_EVENT,
          .id = -1,
          .event = "STOP" },
        { .input = "", .result = -EBADMSG },
        { .input = "   \r", .result = -EBADMSG },
        { .input = "not json", .result = -EBADMSG },
        { .input = "[1, 2, 3]", .result = -EBADMSG },
        { .input = "\"return\"", .result = -EBADMSG },
        { .input = "{\"return\": {}} {\"return\": {}}", .result = -EBADMSG },
        { .input = "{\"return\": {}}x", .result = -EBADMSG },
        { .input = "{\"return\": {}", .result = -EBADMSG },
        { .input = "{\"retur\": {}}", .result = -EBADMSG },
        { .input = "{}", .result = -EBADMSG },
        { .input = "{\"error\": \"text\"}", .result = -EBADMSG },
        { .input = "{\"error\": {\"class\": \"X\"}}", .result = -EBADMSG },
        { .input = "{\"error\": {\"desc\": 5}}", .result = -EBADMSG },
        { .input = "{\"error\": {\"desc\": \"d\", \"class\": []}}", .result = -EBADMSG },
        { .input = "{\"event\": 1}", .result = -EBADMSG },
        { .input = "{\"QMP\": []}", .result = -EBADMSG },
        /* Nesting deeper than the parser's limit of 32. */
        { .input = "{\"return\": "
                   "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
                   "]}",
          .result = -EBADMSG },
        { .input = "{\"return\": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
          .type = QMP_MESSAGE_RETURN,
          .id = -1 },
};

START_TEST(qmp_parse_table)
{
        const char *in = parse_cases[_i].input;
        QmpMessage m = { .type = _QMP_MESSAGE_TYPE_INVALID };
        int r;

        r = qmp_message_parse(in, strlen(in), &m);
        ck_assert_msg(r == parse_cases[_i].result, "'%s': got %d, expected %d", in, r,
                      parse_cases[_i].result);
        if (r < 0) {
                ck_assert_int_eq(m.type, _QMP_MESSAGE_TYPE_INVALID);
                return;
        }

        ck_assert_int_eq(m.type, parse_cases[_i].type);
        ck_assert_int_eq(m.id, parse_cases[_i].id);
        if (parse_cases[_i].error_class) {
                ck_assert_str_eq(m.error_class, parse_cases[_i].error_class);
                ck_assert_str_eq(m.error_desc, parse_cases[_i].error_desc);
        } else {
                ck_assert_ptr_null(m.error_class);
                ck_assert_ptr_null(m.error_desc);
        }
        if (parse_cases[_i].event)
                ck_assert_str_eq(m.event, parse_cases[_i].event);
        else
                ck_assert_ptr_null(m.event);
        qmp_message_done(&m);
}
END_TEST

START_TEST(qmp_parse_rejects_nul_and_size)
{
        static const char with_nul[] = "{\"return\": {}}\0{\"x\": 1}";
        _cleanup_free_ char *big = malloc(QMP_MESSAGE_MAX + 2);
        QmpMessage m;

        ck_assert_int_eq(qmp_message_parse(with_nul, sizeof(with_nul) - 1, &m), -EBADMSG);

        /* A valid message one byte over the limit. */
        ck_assert_ptr_nonnull(big);
        memset(big, ' ', QMP_MESSAGE_MAX + 1);
        memcpy(big, "{\"return\": {}}", 14);
        ck_assert_int_eq(qmp_message_parse(big, QMP_MESSAGE_MAX + 1, &m), -EMSGSIZE);
        ck_assert_int_eq(qmp_message_parse(big, QMP_MESSAGE_MAX, &m), 0);
        ck_assert_int_eq(m.type, QMP_MESSAGE_RETURN);
        qmp_message_done(&m);
}
END_TEST

static const struct {
        const char *json;
        const char *label;
        int result;
} chardev_cases[] = {
        { "[{\"frontend-open\": true, \"filename\": \"disconnected:unix:/r/c.sock,server=on\", "
          "\"label\": \"console\"}]",
          "console", 0 },
        { "[{\"filename\": \"unix:/r/q.sock,server=on\", \"label\": \"monitor\"}, "
          "{\"filename\": \"unix:/r/c.sock,server=on\", \"label\": \"console\"}]",
          "console", 1 },
        { "[{\"filename\": \"unix:/r/q.sock,server=on\", \"label\": \"monitor\"}]", "console",
          -ENOENT },
        { "[]", "console", -ENOENT },
        { "{}", "console", -EBADMSG },
        { "[{\"label\": \"console\"}]", "console", -EBADMSG },
        { "[{\"filename\": 1, \"label\": \"console\"}]", "console", -EBADMSG },
        { "[{\"filename\": \"x\"}]", "console", -EBADMSG },
        { "[7]", "console", -EBADMSG },
};

START_TEST(qmp_chardev_connected_table)
{
        json_object *list = json_tokener_parse(chardev_cases[_i].json);

        ck_assert_ptr_nonnull(list);
        ck_assert_int_eq(qmp_chardev_connected(list, chardev_cases[_i].label),
                         chardev_cases[_i].result);
        json_object_put(list);
}
END_TEST

/* A scratch directory per test. */

static char scratch[64];

static void scratch_setup(void)
{
        strcpy(scratch, "/tmp/test-qmp-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(scratch));
}

static void scratch_teardown(void)
{
        rm_rf(scratch);
}

/* Against a real QEMU */

static pid_t qemu_pid = -1;

static void qemu_setup(void)
{
        _cleanup_free_ char *qmp_arg = NULL, *console_arg = NULL;

        scratch_setup();
        ck_assert_int_gt(asprintf(&qmp_arg, "unix:%s/qmp.sock,server=on,wait=off", scratch), 0);
        ck_assert_int_gt(asprintf(&console_arg,
                                  "socket,id=console,path=%s/console.sock,server=on,wait=off",
                                  scratch),
                         0);

        qemu_pid = fork();
        ck_assert_int_ge(qemu_pid, 0);
        if (qemu_pid == 0) {
                execl(QEMU_SYSTEM_X86_64, QEMU_SYSTEM_X86_64, "-M", "none", "-nodefaults",
                      "-display", "none", "-qmp", qmp_arg, "-chardev", console_arg, (char *)NULL);
                _exit(127);
        }
}

static void qemu_teardown(void)
{
        if (qemu_pid > 0) {
                kill(qemu_pid, SIGKILL);
                waitpid(qemu_pid, NULL, 0);
                qemu_pid = -1;
        }
        scratch_teardown();
}

static Qmp *open_scratch_socket(const char *name, int expected)
{
        _cleanup_free_ char *path = NULL;
        Qmp *q = NULL;

        ck_assert_int_gt(asprintf(&path, "%s/%s", scratch, name), 0);
        ck_assert_int_eq(qmp_open(path, TIMEOUT_USEC, &q), expected);
        return q;
}

START_TEST(qmp_real_qemu_session)
{
        _cleanup_(qmp_closep) Qmp *q = open_scratch_socket("qmp.sock", 0);
        _cleanup_free_ char *status = NULL, *error = NULL;
        json_object *reply = NULL;
        int wstatus;

        ck_assert_int_eq(qmp_query_status(q, TIMEOUT_USEC, &status), 0);
        ck_assert_str_eq(status, "running");
        free(status);
        status = NULL;

        ck_assert_int_eq(qmp_execute(q, "no-such-command", NULL, TIMEOUT_USEC, &reply, &error),
                         -EIO);
        ck_assert_ptr_null(reply);
        ck_assert_str_eq(error, "The command no-such-command has not been found");

        ck_assert_int_eq(qmp_execute(q, "stop", NULL, TIMEOUT_USEC, NULL, NULL), 0);
        ck_assert_int_eq(qmp_query_status(q, TIMEOUT_USEC, &status), 0);
        ck_assert_str_eq(status, "paused");

        ck_assert_int_eq(qmp_execute(q, "quit", NULL, TIMEOUT_USEC, &reply, NULL), 0);
        ck_assert(json_object_is_type(reply, json_type_object));
        ck_assert_int_eq(json_object_object_length(reply), 0);
        json_object_put(reply);

        ck_assert_int_eq(waitpid(qemu_pid, &wstatus, 0), qemu_pid);
        qemu_pid = -1;
        ck_assert(WIFEXITED(wstatus));
        ck_assert_int_eq(WEXITSTATUS(wstatus), 0);
}
END_TEST

/* Polls query-chardev until the console's state is connected, for up to ten seconds. */
static void wait_console_state(Qmp *q, int connected)
{
        int r = -1;

        for (unsigned i = 0; i < 200; i++) {
                json_object *list = NULL;
                struct timespec ts = { .tv_nsec = 50 * 1000 * 1000 };

                ck_assert_int_eq(qmp_execute(q, "query-chardev", NULL, TIMEOUT_USEC, &list, NULL),
                                 0);
                r = qmp_chardev_connected(list, "console");
                json_object_put(list);
                if (r == connected)
                        return;
                nanosleep(&ts, NULL);
        }
        ck_abort_msg("console chardev state %d, expected %d", r, connected);
}

START_TEST(qmp_real_qemu_chardev_state)
{
        _cleanup_(qmp_closep) Qmp *q = open_scratch_socket("qmp.sock", 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        wait_console_state(q, 0);

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/console.sock", scratch);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        wait_console_state(q, 1);

        close(fd);
        wait_console_state(q, 0);
}
END_TEST

START_TEST(qmp_real_qemu_arguments)
{
        _cleanup_(qmp_closep) Qmp *q = open_scratch_socket("qmp.sock", 0);
        json_object *args = json_object_new_object(), *reply = NULL, *name = NULL;
        _cleanup_free_ char *error = NULL;

        /* qom-get on a property of the machine container reads a value back through arguments. */
        json_object_object_add(args, "path", json_object_new_string("/machine"));
        json_object_object_add(args, "property", json_object_new_string("type"));
        ck_assert_int_eq(qmp_execute(q, "qom-get", args, TIMEOUT_USEC, &reply, &error), 0);
        ck_assert(json_object_is_type(reply, json_type_string));
        ck_assert_str_eq(json_object_get_string(reply), "none-machine");
        json_object_put(reply);

        /* A bad argument is a QMP error with QEMU's description. */
        json_object_object_add(args, "property", json_object_new_string("no-such-property"));
        ck_assert_int_eq(qmp_execute(q, "qom-get", args, TIMEOUT_USEC, &name, &error), -EIO);
        ck_assert_ptr_null(name);
        ck_assert_ptr_nonnull(strstr(error, "no-such-property"));
        json_object_put(args);
}
END_TEST

START_TEST(qmp_open_missing_socket_times_out)
{
        _cleanup_free_ char *path = NULL;
        Qmp *q = NULL;

        ck_assert_int_gt(asprintf(&path, "%s/never.sock", scratch), 0);
        ck_assert_int_eq(qmp_open(path, SECOND_USEC / 10, &q), -ETIMEDOUT);
        ck_assert_ptr_null(q);
}
END_TEST

START_TEST(qmp_open_rejects_long_path)
{
        char path[200];
        Qmp *q = NULL;

        memset(path, 'a', sizeof(path) - 1);
        path[0] = '/';
        path[sizeof(path) - 1] = '\0';
        ck_assert_int_eq(qmp_open(path, SECOND_USEC, &q), -ENAMETOOLONG);
        ck_assert_int_eq(qmp_open("", SECOND_USEC, &q), -EINVAL);
        ck_assert_ptr_null(q);
}
END_TEST

/* Against a scripted server that misbehaves in the ways a reply stream can */

typedef struct FakeServer {
        int listen_fd;
        const char *greeting;
        pthread_t thread;
} FakeServer;

static void send_text(int fd, const char *s)
{
        size_t n = strlen(s);

        while (n > 0) {
                ssize_t w = send(fd, s, n, MSG_NOSIGNAL);

                if (w <= 0)
                        return;
                s += w;
                n -= w;
        }
}

static void send_reply(int fd, const char *body, int64_t id)
{
        char line[256];

        snprintf(line, sizeof(line), "{%s, \"id\": %lld}\r\n", body, (long long)id);
        send_text(fd, line);
}

static void send_oversized_line(int fd)
{
        _cleanup_free_ char *junk = malloc(QMP_MESSAGE_MAX + 100);

        memset(junk, 'x', QMP_MESSAGE_MAX + 99);
        junk[QMP_MESSAGE_MAX + 99] = '\0';
        send_text(fd, "{\"return\": \"");
        send_text(fd, junk);
        send_text(fd, "\"}\r\n");
}

/* Replies to one command line. Returns false when the server should hang up. */
static bool serve_command(int fd, const char *line)
{
        json_object *o = json_tokener_parse(line), *v;
        const char *command = "";
        int64_t id = -1;
        bool keep = true;

        if (o && json_object_object_get_ex(o, "execute", &v))
                command = json_object_get_string(v);
        if (o && json_object_object_get_ex(o, "id", &v))
                id = json_object_get_int64(v);

        if (streq(command, "qmp_capabilities") || streq(command, "ping")) {
                send_reply(fd, "\"return\": {}", id);
        } else if (streq(command, "with-events")) {
                send_text(fd, "{\"event\": \"RESUME\", \"timestamp\": {\"seconds\": 1}}\r\n");
                send_text(fd, "\r\n");
                send_text(fd, "{\"event\": \"STOP\"}\n");
                send_reply(fd, "\"return\": {\"status\": \"paused\"}", id);
        } else if (streq(command, "stale-first")) {
                send_reply(fd, "\"return\": {\"stale\": true}", id + 1000);
                send_reply(fd, "\"return\": {\"stale\": false}", id);
        } else if (streq(command, "garbage")) {
                send_text(fd, "this is not json\n");
                send_reply(fd, "\"return\": {}", id);
        } else if (streq(command, "oversized")) {
                send_oversized_line(fd);
                send_reply(fd, "\"return\": {}", id);
        } else if (streq(command, "echo-arguments")) {
                json_object *reply = json_object_new_object();

                json_object_object_get_ex(o, "arguments", &v);
                json_object_object_add(reply, "return", json_object_get(v));
                json_object_object_add(reply, "id", json_object_new_int64(id));
                send_text(fd, json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN));
                send_text(fd, "\n");
                json_object_put(reply);
        } else if (streq(command, "silent")) {
                /* no reply */
        } else if (streq(command, "hang-up")) {
                keep = false;
        } else {
                send_reply(fd,
                           "\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"unknown "
                           "command\"}",
                           id);
        }

        json_object_put(o);
        return keep;
}

static void *fake_server_run(void *userdata)
{
        FakeServer *s = userdata;
        _cleanup_close_ int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        _cleanup_fclose_ FILE *in = NULL;
        char *line = NULL;
        size_t alloc = 0;

        if (fd < 0)
                return NULL;
        in = fdopen(dup(fd), "r");
        if (!in)
                return NULL;

        send_text(fd, s->greeting);
        while (getline(&line, &alloc, in) > 0)
                if (!serve_command(fd, line))
                        break;
        free(line);
        return NULL;
}

static FakeServer server;

static void fake_server_start(const char *greeting)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/fake.sock", scratch);
        server.greeting = greeting;
        server.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(server.listen_fd, 0);
        ck_assert_int_eq(bind(server.listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        ck_assert_int_eq(listen(server.listen_fd, 1), 0);
        ck_assert_int_eq(pthread_create(&server.thread, NULL, fake_server_run, &server), 0);
}

static void fake_server_stop(void)
{
        pthread_join(server.thread, NULL);
        safe_close(server.listen_fd);
}

#define GREETING "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n"

START_TEST(qmp_skips_events_and_stale_replies)
{
        Qmp *q;
        json_object *reply = NULL, *v;

        fake_server_start(GREETING);
        q = open_scratch_socket("fake.sock", 0);

        ck_assert_int_eq(qmp_execute(q, "with-events", NULL, TIMEOUT_USEC, &reply, NULL), 0);
        ck_assert(json_object_object_get_ex(reply, "status", &v));
        ck_assert_str_eq(json_object_get_string(v), "paused");
        json_object_put(reply);

        ck_assert_int_eq(qmp_execute(q, "stale-first", NULL, TIMEOUT_USEC, &reply, NULL), 0);
        ck_assert(json_object_object_get_ex(reply, "stale", &v));
        ck_assert(!json_object_get_boolean(v));
        json_object_put(reply);

        qmp_close(q);
        fake_server_stop();
}
END_TEST

START_TEST(qmp_recovers_after_bad_lines)
{
        _cleanup_free_ char *error = NULL;
        Qmp *q;

        fake_server_start(GREETING);
        q = open_scratch_socket("fake.sock", 0);

        /* The reply that follows each bad line belongs to the failed command, so the next command
         * must skip it by id and get its own. */
        ck_assert_int_eq(qmp_execute(q, "garbage", NULL, TIMEOUT_USEC, NULL, NULL), -EBADMSG);
        ck_assert_int_eq(qmp_execute(q, "ping", NULL, TIMEOUT_USEC, NULL, NULL), 0);
        ck_assert_int_eq(qmp_execute(q, "oversized", NULL, TIMEOUT_USEC, NULL, NULL), -EMSGSIZE);
        ck_assert_int_eq(qmp_execute(q, "ping", NULL, TIMEOUT_USEC, NULL, NULL), 0);
        ck_assert_int_eq(qmp_execute(q, "unknown", NULL, TIMEOUT_USEC, NULL, &error), -EIO);
        ck_assert_str_eq(error, "unknown command");
        ck_assert_int_eq(qmp_execute(q, "ping", NULL, TIMEOUT_USEC, NULL, NULL), 0);

        qmp_close(q);
        fake_server_stop();
}
END_TEST

START_TEST(qmp_sends_arguments)
{
        json_object *args = json_object_new_object(), *reply = NULL, *v;
        Qmp *q;

        fake_server_start(GREETING);
        q = open_scratch_socket("fake.sock", 0);

        json_object_object_add(args, "device", json_object_new_string("root,\"quoted\"\n"));
        json_object_object_add(args, "size", json_object_new_int64(1LL << 40));
        ck_assert_int_eq(qmp_execute(q, "echo-arguments", args, TIMEOUT_USEC, &reply, NULL), 0);
        ck_assert(json_object_object_get_ex(reply, "device", &v));
        ck_assert_str_eq(json_object_get_string(v), "root,\"quoted\"\n");
        ck_assert(json_object_object_get_ex(reply, "size", &v));
        ck_assert_int_eq(json_object_get_int64(v), 1LL << 40);
        json_object_put(reply);

        /* Arguments must be an object. */
        v = json_object_new_int(1);
        ck_assert_int_eq(qmp_execute(q, "echo-arguments", v, TIMEOUT_USEC, NULL, NULL), -EINVAL);
        json_object_put(v);
        ck_assert_int_eq(qmp_execute(q, "", NULL, TIMEOUT_USEC, NULL, NULL), -EINVAL);
        json_object_put(args);

        qmp_close(q);
        fake_server_stop();
}
END_TEST

START_TEST(qmp_timeout_and_hang_up)
{
        Qmp *q;

        fake_server_start(GREETING);
        q = open_scratch_socket("fake.sock", 0);

        ck_assert_int_eq(qmp_execute(q, "silent", NULL, SECOND_USEC / 20, NULL, NULL), -ETIMEDOUT);
        ck_assert_int_eq(qmp_execute(q, "hang-up", NULL, TIMEOUT_USEC, NULL, NULL), -ECONNRESET);

        qmp_close(q);
        fake_server_stop();
}
END_TEST

START_TEST(qmp_open_requires_greeting)
{
        fake_server_start("{\"return\": {}}\n");
        ck_assert_ptr_null(open_scratch_socket("fake.sock", -EPROTO));
        fake_server_stop();
}
END_TEST

START_TEST(qmp_open_rejects_garbage_greeting)
{
        fake_server_start("SSH-2.0-OpenSSH_9.2\r\n");
        ck_assert_ptr_null(open_scratch_socket("fake.sock", -EBADMSG));
        fake_server_stop();
}
END_TEST

int main(void)
{
        Suite *s = suite_create("qmp");
        TCase *parse = tcase_create("parse"), *real = tcase_create("qemu"),
              *fake = tcase_create("fake-server");
        SRunner *sr;
        int failed;

        tcase_add_loop_test(parse, qmp_parse_table, 0, ELEMENTSOF(parse_cases));
        tcase_add_test(parse, qmp_parse_rejects_nul_and_size);
        tcase_add_loop_test(parse, qmp_chardev_connected_table, 0, ELEMENTSOF(chardev_cases));
        suite_add_tcase(s, parse);

        tcase_add_checked_fixture(real, qemu_setup, qemu_teardown);
        tcase_add_test(real, qmp_real_qemu_session);
        tcase_add_test(real, qmp_real_qemu_arguments);
        tcase_add_test(real, qmp_real_qemu_chardev_state);
        suite_add_tcase(s, real);

        tcase_add_checked_fixture(fake, scratch_setup, scratch_teardown);
        tcase_add_test(fake, qmp_open_missing_socket_times_out);
        tcase_add_test(fake, qmp_open_rejects_long_path);
        tcase_add_test(fake, qmp_skips_events_and_stale_replies);
        tcase_add_test(fake, qmp_recovers_after_bad_lines);
        tcase_add_test(fake, qmp_sends_arguments);
        tcase_add_test(fake, qmp_timeout_and_hang_up);
        tcase_add_test(fake, qmp_open_requires_greeting);
        tcase_add_test(fake, qmp_open_rejects_garbage_greeting);
        suite_add_tcase(s, fake);

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
