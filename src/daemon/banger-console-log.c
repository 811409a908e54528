/* banger-console-log: copies a VM's console log into the journal, one entry per line.
 *
 * bangerd starts it beside the VMM and moves both into the VM's scope, so journald files every
 * line under banger-vm-NAME.scope. It survives restarts of bangerd, and exits when the VMM
 * exits or the scope is stopped, after copying what the VMM wrote last. */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "console-log.h"
#include "log.h"
#include "macro.h"

typedef struct Options {
        uint64_t offset;
        const char *vm_name;
        const char *path;
} Options;

typedef struct Sender {
        const char *identifier_field; /* "SYSLOG_IDENTIFIER=banger-vm-NAME" */
        const char *vm_field;         /* "VM=NAME" */
        unsigned failures; /* sd_journal_sendv() failures, of which the first is logged */
} Sender;

static int send_line(const char *line, size_t size, void *userdata)
{
        Sender *s = userdata;
        char message[sizeof("MESSAGE=") - 1 + CONSOLE_LINE_MAX];
        size_t n;
        int r;

        memcpy(message, "MESSAGE=", sizeof("MESSAGE=") - 1);
        n = console_line_clean(line, size, message + sizeof("MESSAGE=") - 1);
        if (n == 0)
                return 0;

        struct iovec iov[] = {
                { .iov_base = message, .iov_len = sizeof("MESSAGE=") - 1 + n },
                { .iov_base = (char *)"PRIORITY=6", .iov_len = strlen("PRIORITY=6") },
                { .iov_base = (char *)s->identifier_field, .iov_len = strlen(s->identifier_field) },
                { .iov_base = (char *)s->vm_field, .iov_len = strlen(s->vm_field) },
        };
        r = sd_journal_sendv(iov, ELEMENTSOF(iov));
        /* A full journal socket drops lines; the file keeps them, so copying goes on. */
        if (r < 0 && s->failures++ == 0)
                log_warning_errno(r, "Failed to send a console line to the journal, ignoring: %m");
        return 0;
}

static void help(void)
{
        printf("Usage: banger-console-log --vm=NAME [--offset=BYTES] -- PATH\n\n"
               "Copies the lines a VMM appends to PATH into the journal, as\n"
               "SYSLOG_IDENTIFIER=banger-vm-NAME with the field VM=NAME. Started by bangerd.\n\n"
               "  --vm=NAME        name of the VM\n"
               "  --offset=BYTES   start reading at this byte of PATH (default: 0)\n\n"
               "Descriptor %d is a pidfd of the VMM: the program exits once the VMM has.\n"
               "Descriptor %d is the read end of a pipe: copying starts after one byte arrives,\n"
               "and end of file before that makes the program exit.\n",
               CONSOLE_LOG_VMM_FD, CONSOLE_LOG_GATE_FD);
}

static int parse_offset(const char *s, uint64_t *ret)
{
        char *end;

        if (s[0] < '0' || s[0] > '9')
                return -EINVAL;
        errno = 0;
        *ret = strtoull(s, &end, 10);
        return errno == 0 && *end == '\0' ? 0 : -EINVAL;
}

/* Returns 1 to run, 0 after --help, or a negative errno on a usage error. */
static int parse_args(int argc, char *argv[], Options *o)
{
        static const struct option options[] = {
                { "offset", required_argument, NULL, 'o' },
                { "vm", required_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'o':
                        if (parse_offset(optarg, &o->offset) < 0)
                                return log_error_errno(-EINVAL,
                                                       "Invalid --offset '%s': expected a number "
                                                       "of bytes",
                                                       optarg);
                        break;
                case 'v':
                        o->vm_name = optarg;
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return -EINVAL;
                }

        if (optind != argc - 1)
                return log_error_errno(-EINVAL, "Expected one PATH argument: see --help");
        if (isempty(o->vm_name))
                return log_error_errno(-EINVAL, "Missing --vm=NAME: see --help");
        o->path = argv[optind];
        return 1;
}

/* Blocks SIGTERM, SIGINT and SIGHUP and returns a signalfd for them. */
static int open_signals(void)
{
        sigset_t mask;
        int fd;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return negative_errno();
        fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        return fd < 0 ? negative_errno() : fd;
}

/* Waits for the gate byte. Returns 1 to start copying, 0 when the VMM exited, a signal came
 * or the gate closed first. */
static int wait_gate(int signal_fd)
{
        for (;;) {
                struct pollfd p[] = {
                        { .fd = CONSOLE_LOG_GATE_FD, .events = POLLIN },
                        { .fd = CONSOLE_LOG_VMM_FD, .events = POLLIN },
                        { .fd = signal_fd, .events = POLLIN },
                };
                char byte;
                ssize_t n;

                if (poll(p, ELEMENTSOF(p), -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (p[1].revents || p[2].revents)
                        return 0;
                n = read(CONSOLE_LOG_GATE_FD, &byte, 1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                safe_close(CONSOLE_LOG_GATE_FD);
                return n == 1;
        }
}

/* Drains the inotify queue. Returns 1 when the file was deleted or moved away. */
static int read_inotify(int fd)
{
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        bool removed = false;

        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return errno == EAGAIN ? removed : negative_errno();
                for (char *p = buf; p < buf + n;) {
                        const struct inotify_event *e = (const struct inotify_event *)p;

                        if (e->mask & (IN_DELETE_SELF | IN_MOVE_SELF))
                                removed = true;
                        p += sizeof(*e) + e->len;
                }
        }
}

/* Copies new lines until the VMM exits, a signal arrives or the file goes away. */
static int follow(const Options *o, int fd, int signal_fd, ConsoleLines *lines)
{
        _cleanup_close_ int inotify_fd = -EBADF;
        uint64_t offset = o->offset;
        int r;

        inotify_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        if (inotify_fd < 0)
                return log_error_errno(negative_errno(),
                                       "Failed to create an inotify instance: %m");
        if (inotify_add_watch(inotify_fd, o->path, IN_MODIFY | IN_DELETE_SELF | IN_MOVE_SELF) < 0)
                return log_error_errno(negative_errno(), "Failed to watch '%s': %m", o->path);

        for (;;) {
                struct pollfd p[] = {
                        { .fd = inotify_fd, .events = POLLIN },
                        { .fd = CONSOLE_LOG_VMM_FD, .events = POLLIN },
                        { .fd = signal_fd, .events = POLLIN },
                };
                bool done;

                /* Read before waiting, so nothing written before the watch was added is missed. */
                r = console_log_read(fd, &offset, lines);
                if (r < 0)
                        return log_error_errno(r, "Failed to read '%s': %m", o->path);

                if (poll(p, ELEMENTSOF(p), -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return log_error_errno(negative_errno(), "Failed to wait for '%s': %m",
                                               o->path);
                }
                done = p[1].revents || p[2].revents;
                if (p[0].revents) {
                        r = read_inotify(inotify_fd);
                        if (r < 0)
                                return log_error_errno(r, "Failed to read inotify events: %m");
                        done = done || r > 0;
                }
                if (done)
                        break;
        }

        /* What the VMM wrote last, and a final line without its newline. */
        r = console_log_read(fd, &offset, lines);
        if (r < 0)
                return log_error_errno(r, "Failed to read '%s': %m", o->path);
        return console_lines_flush(lines);
}

int main(int argc, char *argv[])
{
        _cleanup_free_ char *identifier_field = NULL, *vm_field = NULL;
        _cleanup_close_ int fd = -EBADF, signal_fd = -EBADF;
        Options o = {};
        Sender s = {};
        ConsoleLines lines;
        int r;

        r = parse_args(argc, argv, &o);
        if (r <= 0)
                return r < 0 ? 2 : 0;

        if (asprintf(&identifier_field, "SYSLOG_IDENTIFIER=banger-vm-%s", o.vm_name) < 0 ||
            asprintf(&vm_field, "VM=%s", o.vm_name) < 0) {
                log_error("Out of memory");
                return 1;
        }
        s.identifier_field = identifier_field;
        s.vm_field = vm_field;

        signal_fd = open_signals();
        if (signal_fd < 0) {
                log_error_errno(signal_fd, "Failed to set up signal handling: %m");
                return 1;
        }

        fd = open(o.path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                log_error_errno(negative_errno(), "Failed to open '%s': %m", o.path);
                return 1;
        }

        r = wait_gate(signal_fd);
        if (r < 0)
                log_error_errno(
                        r, "Failed to wait for bangerd to start copying the console of VM '%s': %m",
                        o.vm_name);
        if (r <= 0)
                return r < 0 ? 1 : 0;

        console_lines_init(&lines, send_line, &s);
        r = follow(&o, fd, signal_fd, &lines);
        return r < 0 ? 1 : 0;
}
