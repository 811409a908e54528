#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include <json-c/json.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "agent-client.h"
#include "ctl-bus.h"
#include "ctl-format.h"
#include "ctl-verbs.h"
#include "ctl-vm-access.h"
#include "fileio.h"
#include "macro.h"
#include "strv.h"

/* vm exec, vm ports and vm console: the verbs that reach into a running guest. */

/* Ctrl-] ends vm console, as in telnet, and must be followed by 'q'. */
#define CONSOLE_ESCAPE 0x1d

/* The terminal on stdin, put in raw mode for the guest and restored on every way out. */
typedef struct RawTerminal {
        bool active;
        struct termios saved;
} RawTerminal;

static int raw_terminal_enter(RawTerminal *t)
{
        struct termios raw;

        if (tcgetattr(STDIN_FILENO, &t->saved) < 0)
                return negative_errno();
        raw = t->saved;
        cfmakeraw(&raw);
        if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) < 0)
                return negative_errno();
        t->active = true;
        return 0;
}

static void raw_terminal_leave(RawTerminal *t)
{
        if (!t->active)
                return;
        (void)tcsetattr(STDIN_FILENO, TCSANOW, &t->saved);
        t->active = false;
}

/* Reads the window size of whichever of stdout and stdin is a terminal. Returns false when
 * neither is. */
static bool terminal_size(unsigned *ret_rows, unsigned *ret_cols)
{
        struct winsize ws;

        if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0 && ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0)
                return false;
        if (ws.ws_row == 0 || ws.ws_col == 0)
                return false;
        *ret_rows = ws.ws_row;
        *ret_cols = ws.ws_col;
        return true;
}

/* Maps the guest command's outcome to an exit status the way a shell does. A command killed by
 * a signal gives 128 + signal, and an exit status outside 0..255 gives 255. */
static int exec_exit_status(int32_t exit_status, int32_t signal)
{
        if (signal > 0 && signal < 128)
                return 128 + signal;
        if (exit_status < 0 || exit_status > 255)
                return 255;
        return exit_status;
}

/* The state of one vm exec while its call is in flight. */
typedef struct ExecSession {
        const CtlArgs *args;
        const char *what;
        int control_w; /* closing it makes bangerd kill the command */
        bool sends_sizes;
        RawTerminal terminal;
        bool done;
        int result;      /* the exit status to return, or a negative errno */
        int exit_signal; /* a signal that ends bangerctl before the reply, or 0 */
} ExecSession;

static int on_exec_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
        ExecSession *s = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int32_t exit_status, signal;
        int r;

        s->done = true;
        raw_terminal_leave(&s->terminal);
        if (e) {
                s->result = ctl_log_bus_error(e, sd_bus_message_get_errno(reply), "%s", s->what);
                return 0;
        }
        r = sd_bus_message_read(reply, "ii", &exit_status, &signal);
        if (r < 0) {
                s->result = ctl_log_errno(r, "%s: invalid reply to Exec", s->what);
                return 0;
        }
        s->result = exec_exit_status(exit_status, signal);
        return 0;
}

static int on_exec_signal(sd_event_source *source, const struct signalfd_siginfo *si,
                          void *userdata)
{
        ExecSession *s = userdata;
        unsigned rows, cols;

        if (si->ssi_signo == SIGWINCH) {
                if (s->sends_sizes && terminal_size(&rows, &cols))
                        (void)agent_exec_stream_resize(s->control_w, rows, cols);
                return 0;
        }

        /* Leaving closes the control pipe, and bangerd kills the command. */
        s->exit_signal = (int)si->ssi_signo;
        return 0;
}

static int exec_options_append(sd_bus_message *m, const CtlArgs *args, const char *cwd,
                               int control_r)
{
        unsigned rows, cols;
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        if (args->env) {
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", "env");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'v', "as");
                if (r >= 0)
                        r = sd_bus_message_append_strv(m, args->env);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r < 0)
                        return r;
        }
        if (cwd) {
                r = sd_bus_message_append(m, "{sv}", "cwd", "s", cwd);
                if (r < 0)
                        return r;
        }
        if (args->user) {
                r = sd_bus_message_append(m, "{sv}", "user", "s", args->user);
                if (r < 0)
                        return r;
        }
        if (args->tty) {
                r = sd_bus_message_append(m, "{sv}", "tty", "b", 1);
                if (r >= 0 && terminal_size(&rows, &cols))
                        r = sd_bus_message_append(m, "{sv}{sv}", "rows", "u", (uint32_t)rows,
                                                  "cols", "u", (uint32_t)cols);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_append(m, "{sv}", "control", "h", control_r);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

/* Builds the Exec call, passing this process's stdin, stdout and stderr. */
static int exec_message_new(sd_bus *bus, const char *path, const CtlArgs *args, const char *cwd,
                            int control_r, sd_bus_message **ret)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = ctl_message_new(bus, &m, path, BANGER_VM_IFACE, "Exec");
        if (r < 0)
                return r;
        r = sd_bus_message_append_strv(m, (char **)args->command);
        if (r >= 0)
                r = exec_options_append(m, args, cwd, control_r);
        if (r >= 0)
                r = sd_bus_message_append(m, "hhh", STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO);
        if (r < 0)
                return r;
        /* A password prompt cannot work on a terminal in raw mode. */
        if (args->tty && isatty(STDIN_FILENO)) {
                r = sd_bus_message_set_allow_interactive_authorization(m, false);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(m);
        return 0;
}

/* Sends m and waits for its reply while forwarding terminal resizes and leaving on SIGTERM,
 * SIGHUP and, without a terminal in raw mode, SIGINT. */
static int exec_run(sd_bus *bus, sd_bus_message *m, ExecSession *s)
{
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        static const int signals[] = { SIGWINCH, SIGTERM, SIGHUP, SIGINT, SIGQUIT };
        sigset_t mask;
        int r;

        r = sd_event_new(&event);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;

        sigemptyset(&mask);
        for (size_t i = 0; i < ELEMENTSOF(signals); i++)
                sigaddset(&mask, signals[i]);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return negative_errno();
        for (size_t i = 0; i < ELEMENTSOF(signals); i++) {
                r = sd_event_add_signal(event, NULL, signals[i], on_exec_signal, s);
                if (r < 0)
                        return r;
        }

        r = sd_bus_call_async(bus, &slot, m, on_exec_reply, s, CTL_TIMEOUT_INFINITE);
        if (r < 0)
                return r;

        if (s->args->tty && isatty(STDIN_FILENO)) {
                r = raw_terminal_enter(&s->terminal);
                if (r < 0)
                        return r;
        }

        while (!s->done && s->exit_signal == 0) {
                r = sd_event_run(event, UINT64_MAX);
                if (r < 0)
                        break;
        }
        raw_terminal_leave(&s->terminal);
        (void)sd_bus_detach_event(bus);
        return r < 0 ? r : 0;
}

int verb_vm_exec(sd_bus *bus, const CtlArgs *args)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_free_ char *what = NULL, *path = NULL, *workspace_cwd = NULL;
        _cleanup_close_ int control_r = -EBADF;
        int control[2], r;

        r = ctl_format(&what, "Failed to run '%s' in VM '%s'", args->command[0], args->name);
        if (r < 0)
                return r;

        r = ctl_get_object(bus, "GetVM", args->name, what, &path);
        if (r < 0)
                return r;
        /* A VM with a workspace runs commands in it unless --cwd sets another directory. */
        r = ctl_exec_workspace(bus, path, args->name, &workspace_cwd);
        if (r < 0)
                return r;

        /* bangerd kills the command when this pipe closes, also when bangerctl is killed. */
        if (pipe2(control, O_CLOEXEC) < 0)
                return ctl_log_errno(negative_errno(), "%s", what);
        control_r = control[0];
        ExecSession s = {
                .args = args,
                .what = what,
                .control_w = control[1],
                .sends_sizes = args->tty && (isatty(STDOUT_FILENO) || isatty(STDIN_FILENO)),
        };

        r = exec_message_new(bus, path, args, args->cwd ?: workspace_cwd, control_r, &m);
        if (r >= 0)
                r = exec_run(bus, m, &s);
        safe_close(s.control_w);
        if (r < 0)
                return ctl_log_errno(r, "%s", what);
        if (s.exit_signal > 0) {
                fprintf(stderr, "bangerctl: '%s' in VM '%s' was stopped by signal %s\n",
                        args->command[0], args->name, strsignal(s.exit_signal));
                return 128 + s.exit_signal;
        }
        return s.result;
}

/* vm ports */

static int port_add_json(json_object *array, const char *proto, const char *address, uint16_t port,
                         uint32_t pid, const char *process)
{
        json_object *o = json_object_new_object();

        if (!o)
                return -ENOMEM;
        if (json_object_object_add(o, "proto", json_object_new_string(proto)) < 0 ||
            json_object_object_add(o, "address", json_object_new_string(address)) < 0 ||
            json_object_object_add(o, "port", json_object_new_int(port)) < 0 ||
            json_object_object_add(o, "pid", json_object_new_int64(pid)) < 0 ||
            json_object_object_add(o, "process", json_object_new_string(process)) < 0 ||
            json_object_array_add(array, o) < 0) {
                json_object_put(o);
                return -ENOMEM;
        }
        return 0;
}

/* A pid of 0 means the agent found no process with the socket open, shown as "-". */
static int port_add_row(Table *t, const char *proto, const char *address, uint16_t port,
                        uint32_t pid, const char *process)
{
        char port_text[8], pid_text[16];
        const char *cells[] = { proto, address, port_text, pid > 0 ? pid_text : "-",
                                isempty(process) ? "-" : process };
        int r;

        (void)snprintf(port_text, sizeof(port_text), "%" PRIu16, port);
        (void)snprintf(pid_text, sizeof(pid_text), "%" PRIu32, pid);
        for (size_t i = 0; i < ELEMENTSOF(cells); i++) {
                r = table_add(t, cells[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int port_read_row(sd_bus_message *reply, Table *t, json_object *array)
{
        const char *proto, *address, *process;
        uint16_t port;
        uint32_t pid;
        int r;

        r = sd_bus_message_read(reply, "(ssqus)", &proto, &address, &port, &pid, &process);
        if (r <= 0)
                return r;

        if (array)
                r = port_add_json(array, proto, address, port, pid, process);
        else
                r = port_add_row(t, proto, address, port, pid, process);
        return r < 0 ? r : 1;
}

int verb_vm_ports(sd_bus *bus, const CtlArgs *args)
{
        static const char *const header[] = { "PROTO", "ADDRESS", "PORT", "PID", "PROCESS" };
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *what = NULL;
        int r;

        r = ctl_format(&what, "Failed to list the listening ports of VM '%s'", args->name);
        if (r < 0)
                return r;

        r = ctl_object_call_reply(bus, "GetVM", args->name, BANGER_VM_IFACE, "ListPorts", what,
                                  &reply, "");
        if (r < 0)
                return r;

        return ctl_print_array(reply, "(ssqus)", header, ELEMENTSOF(header), args->json,
                               port_read_row, what);
}

/* vm console */

/* Copies what is readable on from to to. Returns 0 at end of file, 1 after data. */
static int copy_once(int from, int to)
{
        char buf[4096];
        ssize_t n;
        int r;

        n = read(from, buf, sizeof(buf));
        if (n < 0)
                return errno == EINTR || errno == EAGAIN ? 1 : negative_errno();
        if (n == 0)
                return 0;
        r = loop_write(to, buf, (size_t)n);
        return r < 0 ? r : 1;
}

/* Keyboard input that may hold the escape sequence, Ctrl-] then 'q', which detaches. A Ctrl-]
 * is held back until the next byte: with 'q' both are dropped, and with any other byte the
 * Ctrl-] goes out before it. Ctrl-] twice sends one Ctrl-]. */
typedef struct ConsoleInput {
        bool escape_pending;
} ConsoleInput;

/* Forwards keyboard input from stdin to the console. Returns 0 when the user detached or stdin
 * ended, 1 to go on. */
static int console_forward_input(ConsoleInput *in, int console_fd)
{
        char buf[256], out[sizeof(buf) + 1];
        size_t n_out = 0;
        ssize_t n;
        int r;

        n = read(STDIN_FILENO, buf, sizeof(buf));
        if (n < 0)
                return errno == EINTR || errno == EAGAIN ? 1 : negative_errno();
        if (n == 0)
                return 0;

        for (ssize_t i = 0; i < n; i++) {
                if (in->escape_pending) {
                        in->escape_pending = false;
                        if (buf[i] == 'q' || buf[i] == 'Q')
                                return loop_write(console_fd, out, n_out) < 0 ? -EIO : 0;
                        out[n_out++] = CONSOLE_ESCAPE;
                        if (buf[i] == CONSOLE_ESCAPE) {
                                /* Ctrl-] twice sends one. */
                                continue;
                        }
                } else if (buf[i] == CONSOLE_ESCAPE) {
                        in->escape_pending = true;
                        continue;
                }
                out[n_out++] = buf[i];
        }
        r = loop_write(console_fd, out, n_out);
        return r < 0 ? r : 1;
}

/* Pumps between the terminal and the console until the user detaches, the console closes or a
 * signal arrives. */
static int console_pump(int console_fd, const sigset_t *signals)
{
        ConsoleInput in = {};
        int signal_fd, r = 1;

        signal_fd = signalfd(-1, signals, SFD_CLOEXEC | SFD_NONBLOCK);
        if (signal_fd < 0)
                return negative_errno();

        while (r > 0) {
                struct pollfd p[] = {
                        { .fd = STDIN_FILENO, .events = POLLIN },
                        { .fd = console_fd, .events = POLLIN },
                        { .fd = signal_fd, .events = POLLIN },
                };

                if (poll(p, ELEMENTSOF(p), -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        r = negative_errno();
                        break;
                }
                if (p[2].revents)
                        r = 0;
                else if (p[1].revents)
                        r = copy_once(console_fd, STDOUT_FILENO);
                else if (p[0].revents)
                        r = console_forward_input(&in, console_fd);
        }
        safe_close(signal_fd);
        return r;
}

int verb_vm_console(sd_bus *bus, const CtlArgs *args)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *what = NULL;
        _cleanup_close_ int console_fd = -EBADF;
        RawTerminal terminal = {};
        sigset_t signals;
        int fd, r;

        r = ctl_format(&what, "Failed to attach to the console of VM '%s'", args->name);
        if (r < 0)
                return r;

        r = ctl_object_call_reply(bus, "GetVM", args->name, BANGER_VM_IFACE, "OpenConsole", what,
                                  &reply, "");
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "h", &fd);
        if (r < 0)
                return ctl_log_errno(r, "%s: invalid reply to OpenConsole", what);
        console_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (console_fd < 0)
                return ctl_log_errno(negative_errno(), "%s", what);

        sigemptyset(&signals);
        sigaddset(&signals, SIGTERM);
        sigaddset(&signals, SIGHUP);
        sigaddset(&signals, SIGINT);
        sigaddset(&signals, SIGQUIT);
        if (sigprocmask(SIG_BLOCK, &signals, NULL) < 0)
                return ctl_log_errno(negative_errno(), "%s", what);

        fprintf(stderr, "Attached to the console of VM '%s'. Press Ctrl-] then q to detach.\n",
                args->name);
        if (isatty(STDIN_FILENO)) {
                r = raw_terminal_enter(&terminal);
                if (r < 0)
                        return ctl_log_errno(r, "Failed to put the terminal in raw mode");
        }
        r = console_pump(console_fd, &signals);
        raw_terminal_leave(&terminal);
        if (r < 0)
                return ctl_log_errno(r, "Lost the console of VM '%s'", args->name);
        fprintf(stderr, "\nDetached from the console of VM '%s'.\n", args->name);
        return 0;
}
