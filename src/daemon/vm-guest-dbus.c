#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent-client.h"
#include "bus-error.h"
#include "log.h"
#include "macro.h"
#include "polkit.h"
#include "strv.h"
#include "vm-guest-dbus.h"
#include "vm.h"

/* How long connecting to the agent of a running VM may take. Firecracker's vsock connection is
 * retried until then. */
#define AGENT_CONNECT_USEC (10 * USEC_PER_SEC)
#define PORTS_TIMEOUT_USEC (30 * USEC_PER_SEC)
/* A resize record on the control pipe: u32 rows, u32 columns, in host byte order. */
#define RESIZE_RECORD_SIZE 8U

typedef enum GuestCallType {
        GUEST_CALL_EXEC,
        GUEST_CALL_LIST_PORTS,
        GUEST_CALL_OPEN_CONSOLE,
} GuestCallType;

/* One Exec, ListPorts or OpenConsole call. The worker uses agent and the fields of its type;
 * the loop owns message, the control forwarding and the caller tracking. */
typedef struct GuestCall {
        Vm *vm; /* stays valid because Delete is rejected while the call runs */
        sd_bus_message *message;
        GuestCallType type;
        VmAgent agent;

        /* Exec */
        AgentExecRequest request;
        char **argv;
        char **env;
        char *cwd;
        char *user;
        int stdio[3];
        /* The caller's control pipe, forwarded on the loop into worker_control, and the
         * resize record read from it so far. */
        int caller_control;
        sd_event_source *caller_control_source;
        uint8_t record[RESIZE_RECORD_SIZE];
        size_t record_size;
        /* The pipe the worker reads resize records from: the loop keeps the write end and
         * closes it to cancel the command. */
        int worker_control[2];
        sd_bus_track *caller;
        AgentExit exit;

        /* ListPorts */
        AgentPortList ports;

        /* OpenConsole */
        int console_fd;
} GuestCall;

static const char *const call_names[] = {
        [GUEST_CALL_EXEC] = "exec",
        [GUEST_CALL_LIST_PORTS] = "list-ports",
        [GUEST_CALL_OPEN_CONSOLE] = "open-console",
};

static void guest_call_free(void *userdata)
{
        GuestCall *c = userdata;

        if (!c)
                return;
        sd_bus_message_unref(c->message);
        vm_agent_done(&c->agent);
        strv_free(c->argv);
        strv_free(c->env);
        free(c->cwd);
        free(c->user);
        for (size_t i = 0; i < ELEMENTSOF(c->stdio); i++)
                safe_close(c->stdio[i]);
        sd_event_source_disable_unref(c->caller_control_source);
        safe_close(c->caller_control);
        safe_close(c->worker_control[0]);
        safe_close(c->worker_control[1]);
        sd_bus_track_unref(c->caller);
        agent_port_list_done(&c->ports);
        safe_close(c->console_fd);
        free(c);
}

static GuestCall *guest_call_new(Vm *vm, sd_bus_message *message, GuestCallType type)
{
        GuestCall *c = calloc(1, sizeof(GuestCall));

        if (!c)
                return NULL;
        *c = (GuestCall){
                .vm = vm,
                .message = sd_bus_message_ref(message),
                .type = type,
                .stdio = { -EBADF, -EBADF, -EBADF },
                .caller_control = -EBADF,
                .worker_control = { -EBADF, -EBADF },
                .console_fd = -EBADF,
        };
        return c;
}

static int run_exec(GuestCall *c)
{
        AgentExecStdio stdio = {
                .stdin_fd = c->stdio[0],
                .stdout_fd = c->stdio[1],
                .stderr_fd = c->stdio[2],
                .control_fd = c->worker_control[0],
        };
        int fd, r;

        r = vm_agent_connect(&c->agent, AGENT_CONNECT_USEC, &fd);
        if (r < 0)
                return r;
        /* No time limit: the caller ends the command by closing its control pipe or leaving
         * the bus, and Stop ends it too. */
        r = agent_exec_stream_fd(fd, &c->request, &stdio, UINT64_MAX, &c->exit);
        vm_agent_release(&c->agent);
        return r;
}

static int run_list_ports(GuestCall *c)
{
        int fd, r;

        r = vm_agent_connect(&c->agent, AGENT_CONNECT_USEC, &fd);
        if (r < 0)
                return r;
        r = agent_list_ports_fd(fd, PORTS_TIMEOUT_USEC, &c->ports);
        vm_agent_release(&c->agent);
        if (r > 0)
                log_debug("VM '%s' has more than %u listening sockets, listing the first ones",
                          c->vm->record->name, AGENT_PORTS_MAX);
        return r < 0 ? r : 0;
}

static int run_guest_call(Job *j, void *userdata, char **ret_error)
{
        GuestCall *c = userdata;

        switch (c->type) {
        case GUEST_CALL_EXEC:
                return run_exec(c);
        case GUEST_CALL_LIST_PORTS:
                return run_list_ports(c);
        case GUEST_CALL_OPEN_CONSOLE:
                return vm_console_connect(&c->agent, &c->console_fd);
        }
        return -EINVAL;
}

/* The Exec of a task in flight, or NULL. */
static GuestCall *running_exec(Job *j)
{
        GuestCall *c = j->userdata;

        if (j->state != JOB_RUNNING || j->run != run_guest_call || c->type != GUEST_CALL_EXEC)
                return NULL;
        return c;
}

/* Closes the worker's control pipe, which kills the command and ends the call with
 * -ECANCELED. The loop stops reading the caller's control pipe. */
static void exec_cancel(GuestCall *c)
{
        c->caller_control_source = sd_event_source_disable_unref(c->caller_control_source);
        c->worker_control[1] = safe_close(c->worker_control[1]);
}

unsigned vm_count_execs(Vm *vm)
{
        unsigned n = 0;

        for (Job *j = vm->manager->tasks->jobs; j; j = j->next) {
                GuestCall *c = running_exec(j);

                if (c && c->vm == vm)
                        n++;
        }
        return n;
}

void vm_cancel_execs(Vm *vm)
{
        for (Job *j = vm->manager->tasks->jobs; j; j = j->next) {
                GuestCall *c = running_exec(j);

                if (c && c->vm == vm && c->worker_control[1] >= 0) {
                        log_info("Cancelling '%s' in VM '%s'", c->argv[0], vm->record->name);
                        exec_cancel(c);
                }
        }
}

static bool open_console_running(Vm *vm)
{
        for (Job *j = vm->manager->tasks->jobs; j; j = j->next) {
                GuestCall *c = j->userdata;

                if (j->state == JOB_RUNNING && j->run == run_guest_call && c->vm == vm &&
                    c->type == GUEST_CALL_OPEN_CONSOLE)
                        return true;
        }
        return false;
}

/* Returns the operation of a failed call, for its error message. */
static const char *call_subject(const GuestCall *c)
{
        if (c->type == GUEST_CALL_EXEC)
                return c->argv[0];
        if (c->type == GUEST_CALL_LIST_PORTS)
                return "the port listing";
        return "the console";
}

/* Sets error for a failed call. Messages name the VM and, where there is one, the fix. */
static void call_error(GuestCall *c, int result, const char *message, sd_bus_error *error)
{
        VmRecord *rec = c->vm->record;
        const char *what = call_subject(c);

        switch (result) {
        case -EPROTONOSUPPORT:
                if (rec->work_size_mib == 0)
                        sd_bus_error_setf(error, BUS_ERROR_AGENT_FAILED,
                                          "The guest agent of VM '%s' speaks another protocol "
                                          "version than this bangerd: the VM was created by "
                                          "another version of banger, create it again",
                                          rec->name);
                else
                        sd_bus_error_setf(error, BUS_ERROR_AGENT_FAILED,
                                          "The guest agent of VM '%s' speaks another protocol "
                                          "version than this bangerd: import or pull kernel "
                                          "'%s' again, then restart the VM with 'bangerctl vm "
                                          "restart %s'",
                                          rec->name, rec->kernel, rec->name);
                return;
        case -EBUSY:
                if (c->type == GUEST_CALL_OPEN_CONSOLE)
                        sd_bus_error_setf(error, BUS_ERROR_BUSY,
                                          "The console of VM '%s' is in use by another client: "
                                          "wait until it detaches",
                                          rec->name);
                else
                        sd_bus_error_setf(error, BUS_ERROR_BUSY,
                                          "The guest agent of VM '%s' serves one call at a time, "
                                          "and another call held it for %u s: try again when "
                                          "that call has ended",
                                          rec->name, VM_AGENT_LOCK_WAIT_SEC);
                return;
        case -EOPNOTSUPP:
                sd_bus_error_setf(error, SD_BUS_ERROR_NOT_SUPPORTED,
                                  "VM '%s' runs on %s, whose console bangerd cannot attach to: "
                                  "read it with 'bangerctl vm console-log %s'",
                                  rec->name, strempty(rec->backend), rec->name);
                return;
        case -ESRCH:
                if (c->type == GUEST_CALL_EXEC) {
                        sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                          "User '%s' does not exist in VM '%s': use a user or "
                                          "group of the guest's /etc/passwd and /etc/group",
                                          c->user ?: "of the image", rec->name);
                        return;
                }
                break;
        case -ECANCELED:
                sd_bus_error_setf(error, BUS_ERROR_AGENT_FAILED,
                                  "'%s' in VM '%s' was cancelled: the caller closed its control "
                                  "pipe, left the bus, or the VM was stopped",
                                  what, rec->name);
                return;
        }

        sd_bus_error_setf(error, BUS_ERROR_AGENT_FAILED, "Failed to run %s%s%s in VM '%s': %s",
                          c->type == GUEST_CALL_EXEC ? "'" : "", what,
                          c->type == GUEST_CALL_EXEC ? "'" : "", rec->name,
                          message ?: strerror(-result));
}

static int reply_ports(GuestCall *c)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(c->message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(ssqus)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < c->ports.n_ports; i++) {
                const AgentPort *p = &c->ports.ports[i];
                char address[INET6_ADDRSTRLEN];

                if (!inet_ntop(p->family, p->address, address, sizeof(address)))
                        continue;
                r = sd_bus_message_append(reply, "(ssqus)",
                                          p->protocol == IPPROTO_UDP ? "udp" : "tcp", address,
                                          p->port, p->pid, p->comm);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int reply_success(GuestCall *c)
{
        switch (c->type) {
        case GUEST_CALL_EXEC:
                return sd_bus_reply_method_return(c->message, "ii", c->exit.exit_status,
                                                  c->exit.signal);
        case GUEST_CALL_LIST_PORTS:
                return reply_ports(c);
        case GUEST_CALL_OPEN_CONSOLE:
                log_info("Attached a client to the console of VM '%s'", c->vm->record->name);
                return sd_bus_reply_method_return(c->message, "h", c->console_fd);
        }
        return -EINVAL;
}

static int complete_guest_call(Job *j, int result, const char *error, void *userdata,
                               char **ret_error)
{
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        GuestCall *c = userdata;
        int r;

        c->vm->exec_in_flight--;
        exec_cancel(c);
        c->caller = sd_bus_track_unref(c->caller);
        for (size_t i = 0; i < ELEMENTSOF(c->stdio); i++)
                c->stdio[i] = safe_close(c->stdio[i]);

        if (result >= 0)
                r = reply_success(c);
        else {
                call_error(c, result, error, &e);
                if (result != -ECANCELED)
                        log_warning("%s", e.message);
                r = sd_bus_reply_method_error(c->message, &e);
        }
        if (r < 0)
                log_debug_errno(r, "Failed to send the reply to %s: %m",
                                sd_bus_message_get_member(c->message));
        return 0;
}

/* Checks that the call may run now. */
static int check_running(Vm *vm, sd_bus_error *error)
{
        if (vm->record->state == VM_RUNNING && vm->record->pid > 0 && !vm->busy)
                return 0;
        return sd_bus_error_setf(error, BUS_ERROR_NOT_RUNNING,
                                 "VM '%s' is %s: start it with 'bangerctl vm start %s'",
                                 vm->record->name, vm_state_to_string(vm->record->state),
                                 vm->record->name);
}

/* Starts c in a worker. Takes c over, also on failure. */
static int guest_call_start(GuestCall *c)
{
        static unsigned counter = 0;
        const char *verb = call_names[c->type];
        Vm *vm = c->vm;
        char target[128];
        Job *j;
        int r;

        r = vm_agent_init(vm, &c->agent);
        if (r < 0) {
                guest_call_free(c);
                return r;
        }

        /* Every call is its own task: the target carries a counter so none coalesce. */
        snprintf(target, sizeof(target), "%s/%s/%u", vm->record->name, verb, ++counter);
        r = job_start(vm->manager->tasks, verb, target, run_guest_call, complete_guest_call, c,
                      guest_call_free, &j);
        if (r < 0)
                return log_error_errno(r, "Failed to start a worker for VM '%s': %m",
                                       vm->record->name);
        vm->exec_in_flight++;
        return 1;
}

/* Exec */

/* Forwards the complete resize records read so far. A record that does not fit the worker's
 * pipe is dropped: only the latest size matters, and the agent gets the next. */
static void forward_records(GuestCall *c, const uint8_t *data, size_t size)
{
        for (size_t i = 0; i < size; i++) {
                uint32_t rows, cols;

                c->record[c->record_size++] = data[i];
                if (c->record_size < RESIZE_RECORD_SIZE)
                        continue;
                c->record_size = 0;

                memcpy(&rows, c->record, sizeof(rows));
                memcpy(&cols, c->record + sizeof(rows), sizeof(cols));
                if (rows == 0 || rows > UINT16_MAX || cols == 0 || cols > UINT16_MAX) {
                        log_debug("Ignoring terminal size %ux%u for VM '%s'", rows, cols,
                                  c->vm->record->name);
                        continue;
                }
                if (agent_exec_stream_resize(c->worker_control[1], rows, cols) < 0)
                        log_debug("Dropped a terminal resize for VM '%s'", c->vm->record->name);
        }
}

static int on_caller_control(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        GuestCall *c = userdata;
        uint8_t buf[16 * RESIZE_RECORD_SIZE];
        ssize_t n;

        n = read(fd, buf, sizeof(buf));
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n <= 0) {
                /* End of file: the caller closed its control pipe, which cancels. */
                if (n < 0)
                        log_debug_errno(negative_errno(), "Failed to read the control pipe: %m");
                exec_cancel(c);
                return 0;
        }
        forward_records(c, buf, (size_t)n);
        return 0;
}

static int on_caller_gone(sd_bus_track *track, void *userdata)
{
        GuestCall *c = userdata;

        log_info("The caller of '%s' in VM '%s' left the bus, cancelling the command", c->argv[0],
                 c->vm->record->name);
        exec_cancel(c);
        return 0;
}

/* Sets up the worker's control pipe, the forwarding of the caller's pipe into it, and the
 * watch on the caller's bus name. */
static int exec_watch_caller(GuestCall *c)
{
        Manager *m = c->vm->manager;
        int r;

        if (pipe2(c->worker_control, O_CLOEXEC) < 0)
                return negative_errno();
        if (fcntl(c->worker_control[1], F_SETFL, O_NONBLOCK) < 0)
                return negative_errno();

        if (c->caller_control >= 0) {
                r = sd_event_add_io(m->event, &c->caller_control_source, c->caller_control, EPOLLIN,
                                    on_caller_control, c);
                if (r < 0)
                        return r;
        }

        r = sd_bus_track_new(sd_bus_message_get_bus(c->message), &c->caller, on_caller_gone, c);
        if (r < 0)
                return r;
        return sd_bus_track_add_sender(c->caller, c->message);
}

/* Duplicates a descriptor of the message, which stays the message's. */
static int take_fd(int fd, int *ret)
{
        int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);

        if (copy < 0)
                return negative_errno();
        *ret = copy;
        return 0;
}

/* Checks that fd is open for reading (want_read) or writing. */
static int check_fd_mode(int fd, bool want_read, const char *name, sd_bus_error *error)
{
        int flags = fcntl(fd, F_GETFL), mode;

        if (flags < 0)
                return sd_bus_error_set_errnof(error, errno, "Failed to inspect %s: %m", name);
        mode = flags & O_ACCMODE;
        if (mode == O_RDWR || mode == (want_read ? O_RDONLY : O_WRONLY))
                return 0;
        return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                 "Exec's %s is not open for %s: pass a descriptor that is", name,
                                 want_read ? "reading" : "writing");
}

/* Checks the user option: "name", "uid", "name:group" or "uid:gid", as the guest resolves it. */
static int check_user(const char *user, sd_bus_error *error)
{
        const char *colon = strchr(user, ':');
        bool bad = isempty(user) || user[0] == ':' ||
                   (colon && (colon[1] == '\0' || strchr(colon + 1, ':')));

        for (const char *p = user; !bad && *p; p++)
                bad = (unsigned char)*p <= ' ' || *p == '/' || *p == 0x7f;
        if (!bad)
                return 0;
        return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                 "Invalid Exec option user '%s': use NAME, UID, NAME:GROUP or "
                                 "UID:GID",
                                 user);
}

static int read_string_option(sd_bus_message *message, const char *key, char **ret,
                              sd_bus_error *error)
{
        const char *s;
        int r;

        r = sd_bus_message_read(message, "v", "s", &s);
        if (r < 0)
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                         "Exec option '%s' must be a string (s)", key);
        free(*ret);
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

static int read_size_option(sd_bus_message *message, const char *key, unsigned *ret,
                            sd_bus_error *error)
{
        uint32_t v;
        int r;

        r = sd_bus_message_read(message, "v", "u", &v);
        if (r < 0)
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                         "Exec option '%s' must be an unsigned integer (u)", key);
        if (v > UINT16_MAX)
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                         "Invalid Exec option %s %u: use 1 to 65535, or 0 for the "
                                         "default",
                                         key, v);
        *ret = v;
        return 0;
}

static int read_exec_option(sd_bus_message *message, const char *key, GuestCall *c,
                            sd_bus_error *error)
{
        int tty, fd, r;

        if (streq(key, "env")) {
                r = sd_bus_message_enter_container(message, 'v', "as");
                if (r < 0)
                        return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                                 "Exec option 'env' must be an array of strings "
                                                 "(as)");
                strv_free(c->env);
                c->env = NULL;
                r = sd_bus_message_read_strv(message, &c->env);
                if (r < 0)
                        return r;
                return sd_bus_message_exit_container(message);
        }
        if (streq(key, "cwd"))
                return read_string_option(message, key, &c->cwd, error);
        if (streq(key, "user"))
                return read_string_option(message, key, &c->user, error);
        if (streq(key, "rows"))
                return read_size_option(message, key, &c->request.rows, error);
        if (streq(key, "cols"))
                return read_size_option(message, key, &c->request.cols, error);
        if (streq(key, "tty")) {
                r = sd_bus_message_read(message, "v", "b", &tty);
                if (r < 0)
                        return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                                 "Exec option 'tty' must be a boolean (b)");
                c->request.tty = tty;
                return 0;
        }
        if (streq(key, "control")) {
                r = sd_bus_message_read(message, "v", "h", &fd);
                if (r < 0)
                        return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                                 "Exec option 'control' must be a file "
                                                 "descriptor (h)");
                safe_close(c->caller_control);
                c->caller_control = -EBADF;
                return take_fd(fd, &c->caller_control);
        }
        return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                 "Unknown Exec option '%s': the options are 'env', 'cwd', "
                                 "'user', 'tty', 'rows', 'cols' and 'control'",
                                 key);
}

static int read_exec_options(sd_bus_message *message, GuestCall *c, sd_bus_error *error)
{
        int r;

        r = sd_bus_message_enter_container(message, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(message, 'e', "sv")) > 0) {
                const char *key;

                r = sd_bus_message_read(message, "s", &key);
                if (r < 0)
                        return r;
                r = read_exec_option(message, key, c, error);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(message);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(message);
}

/* Reads the stdin, stdout and stderr descriptors. */
static int read_exec_stdio(sd_bus_message *message, GuestCall *c, sd_bus_error *error)
{
        static const char *const names[] = { "stdin", "stdout", "stderr" };
        int fds[3], r;

        r = sd_bus_message_read(message, "hhh", &fds[0], &fds[1], &fds[2]);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(fds); i++) {
                r = check_fd_mode(fds[i], i == 0, names[i], error);
                if (r < 0)
                        return r;
                r = take_fd(fds[i], &c->stdio[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Checks the caller's control pipe, which the loop reads. */
static int check_control(int fd, sd_bus_error *error)
{
        struct stat st;

        if (fstat(fd, &st) < 0)
                return sd_bus_error_set_errnof(error, errno,
                                               "Failed to inspect Exec's control pipe: %m");
        if (!S_ISFIFO(st.st_mode))
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                         "Exec option 'control' is not a pipe: pass the read end "
                                         "of a pipe");
        return check_fd_mode(fd, true, "control pipe", error);
}

static int read_exec_call(sd_bus_message *message, GuestCall *c, sd_bus_error *error)
{
        int r;

        r = sd_bus_message_read_strv(message, &c->argv);
        if (r < 0)
                return r;
        r = read_exec_options(message, c, error);
        if (r < 0)
                return r;
        r = read_exec_stdio(message, c, error);
        if (r < 0)
                return r;

        if (strv_length(c->argv) == 0)
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                         "Exec needs a command: argv is empty");
        if (isempty(c->argv[0]))
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                         "Exec needs a command: argv[0] is empty");
        if (c->user) {
                r = check_user(c->user, error);
                if (r < 0)
                        return r;
        }
        if (c->caller_control >= 0) {
                r = check_control(c->caller_control, error);
                if (r < 0)
                        return r;
        }

        c->request.argv = c->argv;
        c->request.env = c->env;
        c->request.cwd = c->cwd;
        c->request.user = c->user;
        return 0;
}

int method_vm_exec(sd_bus_message *message, void *userdata, sd_bus_error *error)
{
        Vm *vm = userdata;
        GuestCall *c;
        int r;

        c = guest_call_new(vm, message, GUEST_CALL_EXEC);
        if (!c)
                return -ENOMEM;

        r = read_exec_call(message, c, error);
        if (r >= 0)
                r = vm_authorize(vm, message, ACTION_VM_LOGIN, "exec in", error);
        if (r >= 0)
                r = check_running(vm, error);
        if (r >= 0)
                r = exec_watch_caller(c);
        if (r < 0) {
                guest_call_free(c);
                return r;
        }
        return guest_call_start(c);
}

int method_vm_list_ports(sd_bus_message *message, void *userdata, sd_bus_error *error)
{
        Vm *vm = userdata;
        int r;

        r = vm_authorize(vm, message, ACTION_VM_LOGIN, "list the ports of", error);
        if (r < 0)
                return r;
        r = check_running(vm, error);
        if (r < 0)
                return r;

        GuestCall *c = guest_call_new(vm, message, GUEST_CALL_LIST_PORTS);
        if (!c)
                return -ENOMEM;
        return guest_call_start(c);
}

int method_vm_open_console(sd_bus_message *message, void *userdata, sd_bus_error *error)
{
        Vm *vm = userdata;
        int r;

        r = vm_authorize(vm, message, ACTION_VM_LOGIN, "attach to the console of", error);
        if (r < 0)
                return r;
        r = check_running(vm, error);
        if (r < 0)
                return r;
        /* Two calls at once would both find the console free. */
        if (open_console_running(vm))
                return sd_bus_error_setf(error, BUS_ERROR_BUSY,
                                         "The console of VM '%s' is being attached to by another "
                                         "client: try again",
                                         vm->record->name);

        GuestCall *c = guest_call_new(vm, message, GUEST_CALL_OPEN_CONSOLE);
        if (!c)
                return -ENOMEM;
        return guest_call_start(c);
}
