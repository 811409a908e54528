#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "console-log.h"
#include "fileio.h"
#include "macro.h"
#include "strv.h"

/* Collects the lines a ConsoleLines passes on. */
typedef struct Collected {
        char **lines;
        int fail_at; /* the callback fails on this line (counting from 1) with -EIO, 0: never */
} Collected;

static int collect(const char *line, size_t size, void *userdata)
{
        Collected *c = userdata;
        char *copy = strndup(line, size);

        ck_assert_ptr_nonnull(copy);
        ck_assert_uint_le(size, CONSOLE_LINE_MAX);
        ck_assert_int_eq(strv_consume(&c->lines, copy), 0);
        if (c->fail_at > 0 && strv_length(c->lines) == (size_t)c->fail_at)
                return -EIO;
        return 0;
}

static const struct {
        const char *input;
        const char *lines; /* joined with '|', after the flush */
        const char *before_flush;
} split_cases[] = {
        { "one\ntwo\n", "one|two", "one|two" },
        { "crlf\r\nnext\r\n", "crlf|next", "crlf|next" },
        { "\n\n\r\nx\n\n", "x", "x" },
        { "partial", "partial", "" },
        { "a\nb", "a|b", "a" },
        { "inner\rcr\n", "inner\rcr", "inner\rcr" },
        { "trailing cr\r", "trailing cr", "" },
        { "", "", "" },
};

static char *joined(char **l)
{
        size_t size = 1;
        char *s;

        for (char **p = l; p && *p; p++)
                size += strlen(*p) + 1;
        s = calloc(1, size);
        ck_assert_ptr_nonnull(s);
        for (char **p = l; p && *p; p++) {
                if (p != l)
                        strcat(s, "|");
                strcat(s, *p);
        }
        return s;
}

START_TEST(lines_split_table)
{
        Collected c = {};
        ConsoleLines l;
        _cleanup_free_ char *before = NULL, *after = NULL;

        console_lines_init(&l, collect, &c);
        ck_assert_int_eq(
                console_lines_feed(&l, split_cases[_i].input, strlen(split_cases[_i].input)), 0);
        before = joined(c.lines);
        ck_assert_str_eq(before, split_cases[_i].before_flush);
        ck_assert_int_eq(console_lines_flush(&l), 0);
        after = joined(c.lines);
        ck_assert_str_eq(after, split_cases[_i].lines);
        strv_free(c.lines);
}
END_TEST

START_TEST(lines_split_byte_by_byte)
{
        const char *input = "first line\r\nsecond\n";
        Collected c = {};
        ConsoleLines l;

        console_lines_init(&l, collect, &c);
        for (size_t i = 0; input[i]; i++)
                ck_assert_int_eq(console_lines_feed(&l, input + i, 1), 0);
        ck_assert_uint_eq(strv_length(c.lines), 2);
        ck_assert_str_eq(c.lines[0], "first line");
        ck_assert_str_eq(c.lines[1], "second");
        strv_free(c.lines);
}
END_TEST

START_TEST(lines_long_line_in_pieces)
{
        size_t size = 2 * CONSOLE_LINE_MAX + 10;
        _cleanup_free_ char *input = malloc(size + 1);
        Collected c = {};
        ConsoleLines l;

        ck_assert_ptr_nonnull(input);
        memset(input, 'x', size);
        input[size] = '\n';
        console_lines_init(&l, collect, &c);
        ck_assert_int_eq(console_lines_feed(&l, input, size + 1), 0);
        ck_assert_uint_eq(strv_length(c.lines), 3);
        ck_assert_uint_eq(strlen(c.lines[0]), CONSOLE_LINE_MAX);
        ck_assert_uint_eq(strlen(c.lines[1]), CONSOLE_LINE_MAX);
        ck_assert_uint_eq(strlen(c.lines[2]), 10);
        strv_free(c.lines);
}
END_TEST

START_TEST(lines_callback_error_stops)
{
        Collected c = { .fail_at = 2 };
        ConsoleLines l;

        console_lines_init(&l, collect, &c);
        ck_assert_int_eq(console_lines_feed(&l, "a\nb\nc\n", 6), -EIO);
        ck_assert_uint_eq(strv_length(c.lines), 2);
        strv_free(c.lines);
}
END_TEST

static const struct {
        const char *input;
        const char *output;
} clean_cases[] = {
        { "plain text", "plain text" },
        { "tab\there", "tab\there" },
        { "\x1b[32m[  OK  ]\x1b[0m Started", "[  OK  ] Started" },
        { "\x1b[1;31mred\x1b[0m", "red" },
        { "bell\a and nul\x01", "bell and nul" },
        { "esc\033c reset", "esc reset" },
        { "cut csi \x1b[12", "cut csi " },
        { "lone esc\x1b", "lone esc" },
        { "del\x7f", "del" },
        { "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82",
          "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82" },
        { "bad \xff byte", "bad ? byte" },
        { "cut \xe2\x82", "cut ??" },
        { "overlong \xc0\xaf", "overlong ??" },
        { "surrogate \xed\xa0\x80", "surrogate ???" },
        { "too high \xf4\x90\x80\x80", "too high ????" },
};

START_TEST(line_clean_table)
{
        const char *in = clean_cases[_i].input;
        char out[256];
        size_t n;

        n = console_line_clean(in, strlen(in), out);
        ck_assert_uint_le(n, strlen(in));
        out[n] = '\0';
        ck_assert_str_eq(out, clean_cases[_i].output);
}
END_TEST

static char workdir[] = "/tmp/test-console-log-XXXXXX";

static void make_workdir(void)
{
        ck_assert_ptr_nonnull(mkdtemp(workdir));
}

static void remove_workdir(void)
{
        (void)rm_rf(workdir);
}

static void append(const char *path, const char *text)
{
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
}

START_TEST(log_read_from_offset)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        uint64_t offset = 4;
        Collected c = {};
        ConsoleLines l;

        make_workdir();
        ck_assert_int_ge(asprintf(&path, "%s/console.log", workdir), 0);
        append(path, "old\nnew one\nhalf");
        fd = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        console_lines_init(&l, collect, &c);

        ck_assert_int_eq(console_log_read(fd, &offset, &l), 1);
        ck_assert_uint_eq(offset, 16);
        ck_assert_uint_eq(strv_length(c.lines), 1);
        ck_assert_str_eq(c.lines[0], "new one");

        ck_assert_int_eq(console_log_read(fd, &offset, &l), 0);
        append(path, " done\n");
        ck_assert_int_eq(console_log_read(fd, &offset, &l), 1);
        ck_assert_uint_eq(strv_length(c.lines), 2);
        ck_assert_str_eq(c.lines[1], "half done");

        /* A truncated file is read again from its start. */
        ck_assert_int_eq(truncate(path, 0), 0);
        append(path, "again\n");
        ck_assert_int_eq(console_log_read(fd, &offset, &l), 1);
        ck_assert_uint_eq(offset, 6);
        ck_assert_uint_eq(strv_length(c.lines), 3);
        ck_assert_str_eq(c.lines[2], "again");

        strv_free(c.lines);
        remove_workdir();
}
END_TEST

/* The tests below run the real banger-console-log. Its entries go to a datagram socket that
 * the test binds at /run/systemd/journal/socket in a mount namespace of its own, which needs
 * root. libsystemd sends native journal entries there, as it does to journald. */

static const char *console_log_binary(void)
{
        static char path[4096];
        const char *build_dir = getenv("BANGER_TEST_BUILDDIR");

        if (isempty(build_dir))
                return NULL;
        snprintf(path, sizeof(path), "%s/src/daemon/banger-console-log", build_dir);
        return path;
}

/* Returns a bound journal socket in a private mount namespace, or -1 (with a note on stderr)
 * when this cannot run here. */
static int fake_journal(void)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX,
                                  .sun_path = "/run/systemd/journal/socket" };
        int fd;

        if (!console_log_binary()) {
                fprintf(stderr, "SKIP: BANGER_TEST_BUILDDIR is not set: run with meson test\n");
                return -1;
        }
        if (geteuid() != 0 || unshare(CLONE_NEWNS) < 0) {
                fprintf(stderr, "SKIP: a mount namespace for the journal socket needs root\n");
                return -1;
        }
        ck_assert_int_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
        ck_assert_int_eq(mount("tmpfs", "/run", "tmpfs", 0, "mode=0755"), 0);
        ck_assert_int_eq(mkdir_p("/run/systemd/journal", 0755), 0);
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        return fd;
}

/* Waits up to timeout_ms for one entry and returns its fields, or NULL when none came. */
static char **receive_entry(int fd, int timeout_ms)
{
        struct pollfd p = { .fd = fd, .events = POLLIN };
        char buf[CONSOLE_LINE_MAX + 1024];
        char **fields = NULL;
        ssize_t n;

        if (poll(&p, 1, timeout_ms) <= 0)
                return NULL;
        n = recv(fd, buf, sizeof(buf) - 1, 0);
        ck_assert_int_gt(n, 0);
        buf[n] = '\0';
        for (char *save = NULL, *f = strtok_r(buf, "\n", &save); f; f = strtok_r(NULL, "\n", &save))
                ck_assert_int_eq(strv_extend(&fields, f), 0);
        return fields;
}

/* Receives the next entry and checks it is message from banger-vm-NAME with VM=NAME. */
static void expect_entry(int fd, const char *name, const char *message)
{
        _cleanup_free_ char *identifier = NULL, *vm = NULL, *text = NULL;
        char **fields = receive_entry(fd, 10000);

        ck_assert_msg(fields, "no journal entry for '%s'", message);
        ck_assert_int_ge(asprintf(&identifier, "SYSLOG_IDENTIFIER=banger-vm-%s", name), 0);
        ck_assert_int_ge(asprintf(&vm, "VM=%s", name), 0);
        ck_assert_int_ge(asprintf(&text, "MESSAGE=%s", message), 0);
        ck_assert_msg(strv_contains(fields, text), "expected '%s', got '%s'", text, fields[0]);
        ck_assert(strv_contains(fields, identifier));
        ck_assert(strv_contains(fields, vm));
        ck_assert(strv_contains(fields, "PRIORITY=6"));
        strv_free(fields);
}

static void expect_no_entry(int fd, int timeout_ms)
{
        char **fields = receive_entry(fd, timeout_ms);

        ck_assert_msg(!fields, "unexpected journal entry '%s'", fields ? fields[0] : "");
}

/* Starts a stand-in for the VMM and returns its pid, with a pidfd in *ret_pidfd. */
static pid_t start_vmm(int *ret_pidfd)
{
        pid_t pid = fork();

        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                /* A failed test leaves neither this process nor banger-console-log behind. */
                (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
                pause();
                _exit(0);
        }
        *ret_pidfd = pidfd_open(pid, 0);
        ck_assert_int_ge(*ret_pidfd, 0);
        return pid;
}

/* Waits up to timeout_ms for pid, which is not our child, to exit. */
static bool process_exits(pid_t pid, int timeout_ms)
{
        _cleanup_close_ int fd = pidfd_open(pid, 0);
        struct pollfd p = { .fd = fd, .events = POLLIN };

        if (fd < 0)
                return errno == ESRCH;
        return poll(&p, 1, timeout_ms) == 1;
}

/* One run of banger-console-log against a stand-in VMM and the fake journal. */
typedef struct Program {
        char *path; /* the console log */
        int journal;
        pid_t vmm;
        int vmm_fd;
        pid_t pid;
        int gate;
} Program;

/* Writes text to a new console log and starts the program on it from offset for VM name.
 * Returns false, after a note on stderr, when the test cannot run here. */
static bool program_start(Program *p, const char *text, uint64_t offset, const char *name)
{
        *p = (Program){ .journal = fake_journal(), .vmm_fd = -EBADF, .gate = -EBADF };
        if (p->journal < 0)
                return false;
        make_workdir();
        ck_assert_int_ge(asprintf(&p->path, "%s/console.log", workdir), 0);
        append(p->path, text);

        p->vmm = start_vmm(&p->vmm_fd);
        ck_assert_int_eq(console_log_spawn(console_log_binary(), p->path, offset, name, p->vmm_fd,
                                           &p->pid, &p->gate),
                         0);
        ck_assert_int_gt(p->pid, 0);
        return true;
}

/* Ends the stand-in VMM unless it is gone already, and removes the files. */
static void program_finish(Program *p)
{
        if (p->vmm > 0) {
                ck_assert_int_eq(kill(p->vmm, SIGKILL), 0);
                ck_assert_int_eq(waitpid(p->vmm, NULL, 0), p->vmm);
        }
        safe_close(p->vmm_fd);
        safe_close(p->journal);
        free(p->path);
        remove_workdir();
}

START_TEST(program_copies_lines_after_gate)
{
        Program p;

        if (!program_start(&p, "from an earlier boot\n", 21, "dev 1"))
                return;
        append(p.path, "first\r\n\x1b[32m[  OK  ]\x1b[0m second\n");

        /* Nothing goes out before the gate opens. */
        expect_no_entry(p.journal, 300);
        ck_assert_int_eq(console_log_open_gate(p.gate), 0);
        expect_entry(p.journal, "dev 1", "first");
        expect_entry(p.journal, "dev 1", "[  OK  ] second");

        append(p.path, "third\n");
        expect_entry(p.journal, "dev 1", "third");

        /* When the VMM exits, the last line goes out without its newline and the program ends. */
        append(p.path, "last words");
        ck_assert_int_eq(kill(p.vmm, SIGKILL), 0);
        ck_assert_int_eq(waitpid(p.vmm, NULL, 0), p.vmm);
        p.vmm = 0;
        expect_entry(p.journal, "dev 1", "last words");
        ck_assert(process_exits(p.pid, 10000));
        expect_no_entry(p.journal, 100);
        program_finish(&p);
}
END_TEST

START_TEST(program_exits_on_closed_gate)
{
        Program p;

        if (!program_start(&p, "", 0, "dev1"))
                return;
        append(p.path, "never sent\n");
        safe_close(p.gate);
        ck_assert(process_exits(p.pid, 10000));
        expect_no_entry(p.journal, 100);
        program_finish(&p);
}
END_TEST

START_TEST(program_stops_on_sigterm)
{
        Program p;

        if (!program_start(&p, "", 0, "dev1"))
                return;
        ck_assert_int_eq(console_log_open_gate(p.gate), 0);
        append(p.path, "before stop\nunfinished");
        expect_entry(p.journal, "dev1", "before stop");

        /* Stopping the scope sends SIGTERM: the unfinished line still goes out. */
        ck_assert_int_eq(kill(p.pid, SIGTERM), 0);
        expect_entry(p.journal, "dev1", "unfinished");
        ck_assert(process_exits(p.pid, 10000));
        program_finish(&p);
}
END_TEST

START_TEST(spawn_rejects_bad_arguments)
{
        _cleanup_close_ int vmm_fd = -EBADF;
        pid_t vmm, pid = 0;
        int gate = -EBADF;

        vmm = start_vmm(&vmm_fd);
        ck_assert_int_eq(console_log_spawn("/nonexistent/banger-console-log", "/tmp/x", 0, "dev1",
                                           vmm_fd, &pid, &gate),
                         -ENOENT);
        ck_assert_int_eq(console_log_spawn("", "/tmp/x", 0, "dev1", vmm_fd, &pid, &gate), -EINVAL);
        ck_assert_int_eq(console_log_spawn("/bin/true", "", 0, "dev1", vmm_fd, &pid, &gate),
                         -EINVAL);
        ck_assert_int_eq(console_log_spawn("/bin/true", "/tmp/x", 0, "", vmm_fd, &pid, &gate),
                         -EINVAL);
        ck_assert_int_eq(console_log_spawn("/bin/true", "/tmp/x", 0, "dev1", -1, &pid, &gate),
                         -EINVAL);
        ck_assert_int_eq(pid, 0);
        ck_assert_int_eq(gate, -EBADF);

        ck_assert_int_eq(kill(vmm, SIGKILL), 0);
        ck_assert_int_eq(waitpid(vmm, NULL, 0), vmm);
}
END_TEST

static Suite *console_log_suite(void)
{
        Suite *s = suite_create("console-log");
        TCase *tc = tcase_create("lines");
        TCase *program = tcase_create("program");

        tcase_add_loop_test(tc, lines_split_table, 0, ELEMENTSOF(split_cases));
        tcase_add_test(tc, lines_split_byte_by_byte);
        tcase_add_test(tc, lines_long_line_in_pieces);
        tcase_add_test(tc, lines_callback_error_stops);
        tcase_add_loop_test(tc, line_clean_table, 0, ELEMENTSOF(clean_cases));
        tcase_add_test(tc, log_read_from_offset);
        suite_add_tcase(s, tc);

        tcase_add_test(program, program_copies_lines_after_gate);
        tcase_add_test(program, program_exits_on_closed_gate);
        tcase_add_test(program, program_stops_on_sigterm);
        tcase_add_test(program, spawn_rejects_bad_arguments);
        suite_add_tcase(s, program);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(console_log_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
