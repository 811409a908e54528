#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "ctl-bus.h"
#include "ctl-format.h"
#include "macro.h"

#define PKTTYAGENT "/usr/bin/pkttyagent"

static bool arg_ask_password = true;
static pid_t agent_pid = 0;

/* Starts pkttyagent so that polkit can ask for a password on this terminal, and waits until it
 * has registered. Without an agent, interactive authorization fails at once. */
void ctl_polkit_agent_open(void)
{
        int pipe_fd[2];
        char notify[32];
        pid_t pid;

        if (!arg_ask_password || agent_pid > 0 || !isatty(STDIN_FILENO) || !isatty(STDERR_FILENO))
                return;
        if (access(PKTTYAGENT, X_OK) < 0)
                return;
        if (pipe2(pipe_fd, O_CLOEXEC) < 0)
                return;

        pid = fork();
        if (pid < 0) {
                safe_close(pipe_fd[0]);
                safe_close(pipe_fd[1]);
                return;
        }

        if (pid == 0) {
                int null_fd;

                /* The notify fd must survive exec, while all other fds keep O_CLOEXEC. */
                if (fcntl(pipe_fd[1], F_SETFD, 0) < 0)
                        _exit(EXIT_FAILURE);

                /* pkttyagent prompts on the controlling terminal. Its stderr only reports that
                 * it could not register (no polkit, no session), which the failed call that
                 * follows explains better. */
                null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
                if (null_fd >= 0)
                        (void)dup2(null_fd, STDERR_FILENO);
                (void)snprintf(notify, sizeof(notify), "%d", pipe_fd[1]);
                execl(PKTTYAGENT, PKTTYAGENT, "--notify-fd", notify, "--fallback", (char *)NULL);
                _exit(EXIT_FAILURE);
        }

        agent_pid = pid;
        safe_close(pipe_fd[1]);

        /* pkttyagent closes the notify fd once it is registered, or exits on failure. */
        {
                struct pollfd p = { .fd = pipe_fd[0], .events = POLLIN };

                while (poll(&p, 1, -1) < 0 && errno == EINTR)
                        ;
        }
        safe_close(pipe_fd[0]);
}

void ctl_polkit_agent_close(void)
{
        if (agent_pid <= 0)
                return;

        (void)kill(agent_pid, SIGTERM);
        while (waitpid(agent_pid, NULL, 0) < 0 && errno == EINTR)
                ;
        agent_pid = 0;
}

int ctl_bus_open(sd_bus **ret, bool ask_password)
{
        sd_bus *bus = NULL;
        int r;

        r = sd_bus_open_system(&bus);
        if (r < 0)
                return ctl_log_errno(r, "Failed to connect to the system bus");

        arg_ask_password = ask_password;
        r = sd_bus_set_allow_interactive_authorization(bus, ask_password);
        if (r < 0) {
                sd_bus_unref(bus);
                return ctl_log_errno(r, "Failed to enable interactive authorization");
        }

        *ret = bus;
        return 0;
}

static bool error_is_access_denied(const sd_bus_error *error)
{
        return sd_bus_error_has_names(error, BANGER_ERROR_ACCESS, SD_BUS_ERROR_ACCESS_DENIED,
                                      SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED);
}

/* Whether the calling process has group 'banger' among its groups. */
static bool in_group_banger(void)
{
        struct group *g = getgrnam("banger");
        gid_t groups[NGROUPS_MAX];
        int n;

        if (!g)
                return false;
        if (getegid() == g->gr_gid)
                return true;
        n = getgroups(ELEMENTSOF(groups), groups);
        for (int i = 0; i < n; i++)
                if (groups[i] == g->gr_gid)
                        return true;
        return false;
}

static void vlog_failure(const sd_bus_error *error, int r, const char *format, va_list ap)
{
        fputs("bangerctl: ", stderr);
        vfprintf(stderr, format, ap);
        if (error && sd_bus_error_is_set(error) && !isempty(error->message))
                fprintf(stderr, ": %s\n", error->message);
        else
                fprintf(stderr, ": %s\n", strerror(r < 0 ? -r : EIO));

        if (!error || !error_is_access_denied(error))
                return;

        if (!in_group_banger())
                fputs("Hint: members of group 'banger' may manage their own VMs, images and "
                      "kernels without authenticating; an administrator can add a user with "
                      "'usermod -aG banger USER'.\n",
                      stderr);
        if (!arg_ask_password)
                fputs("Hint: authenticating as an administrator needs an interactive terminal: "
                      "run the command from one, without --no-ask-password.\n",
                      stderr);
}

int ctl_log_bus_error(const sd_bus_error *error, int r, const char *format, ...)
{
        va_list ap;

        va_start(ap, format);
        vlog_failure(error, r, format, ap);
        va_end(ap);
        return r < 0 ? r : -EIO;
}

int ctl_log_errno(int r, const char *format, ...)
{
        va_list ap;

        va_start(ap, format);
        vlog_failure(NULL, r, format, ap);
        va_end(ap);
        return r < 0 ? r : -EIO;
}

int ctl_message_new(sd_bus *bus, sd_bus_message **ret, const char *path, const char *interface,
                    const char *member)
{
        int r;

        r = sd_bus_message_new_method_call(bus, ret, BANGER_SERVICE, path, interface, member);
        if (r < 0)
                return ctl_log_errno(r, "Failed to create a call to %s.%s", interface, member);
        return 0;
}

int ctl_call(sd_bus *bus, sd_bus_message *m, uint64_t timeout_usec, const char *what,
             sd_bus_message **ret_reply)
{
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call(bus, m, timeout_usec, &error, &reply);
        if (r < 0) {
                r = ctl_log_bus_error(&error, r, "%s", what);
                sd_bus_error_free(&error);
                return r;
        }

        if (ret_reply)
                *ret_reply = reply;
        else
                sd_bus_message_unref(reply);
        return 0;
}

int ctl_get_object(sd_bus *bus, const char *getter, const char *name, const char *what,
                   char **ret_path)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        const char *path;
        char *copy;
        int r;

        r = ctl_message_new(bus, &m, BANGER_MANAGER_PATH, BANGER_MANAGER_IFACE, getter);
        if (r < 0)
                return r;

        r = sd_bus_message_append(m, "s", name);
        if (r < 0)
                return ctl_log_errno(r, "%s", what);

        r = ctl_call(bus, m, 0, what, &reply);
        if (r < 0)
                return r;

        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return ctl_log_errno(r, "%s: invalid reply to %s", what, getter);

        copy = strdup(path);
        if (!copy)
                return ctl_log_errno(-ENOMEM, "%s", what);
        *ret_path = copy;
        return 0;
}

static int json_from_basic(sd_bus_message *m, char type, json_object **ret)
{
        union {
                const char *s;
                int b;
                uint8_t y;
                int16_t n;
                uint16_t q;
                int32_t i;
                uint32_t u;
                int64_t x;
                uint64_t t;
                double d;
                int h;
        } v;
        json_object *j;
        int r;

        r = sd_bus_message_read_basic(m, type, &v);
        if (r < 0)
                return r;

        switch (type) {
        case 's':
        case 'o':
        case 'g':
                j = json_object_new_string(v.s);
                break;
        case 'b':
                j = json_object_new_boolean(v.b);
                break;
        case 'y':
                j = json_object_new_int64(v.y);
                break;
        case 'n':
                j = json_object_new_int64(v.n);
                break;
        case 'q':
                j = json_object_new_int64(v.q);
                break;
        case 'i':
                j = json_object_new_int64(v.i);
                break;
        case 'u':
                j = json_object_new_int64(v.u);
                break;
        case 'x':
                j = json_object_new_int64(v.x);
                break;
        case 't':
                j = json_object_new_uint64(v.t);
                break;
        case 'd':
                j = json_object_new_double(v.d);
                break;
        case 'h':
                j = json_object_new_int64(v.h);
                break;
        default:
                return -EINVAL;
        }
        if (!j)
                return -ENOMEM;

        *ret = j;
        return 0;
}

/* Reads the elements of the container m has just entered, as an array or, for a dictionary,
 * as an object with string keys. */
static int json_from_container(sd_bus_message *m, bool dictionary, json_object **ret)
{
        json_object *j;
        int r;

        j = dictionary ? json_object_new_object() : json_object_new_array();
        if (!j)
                return -ENOMEM;

        for (;;) {
                json_object *value = NULL;
                const char *key = NULL;
                const char *contents;
                char type;

                r = sd_bus_message_peek_type(m, &type, &contents);
                if (r < 0)
                        goto fail;
                if (r == 0)
                        break;

                if (dictionary) {
                        r = sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, contents);
                        if (r < 0)
                                goto fail;
                        r = sd_bus_message_read_basic(m, contents[0], &key);
                        if (r < 0)
                                goto fail;
                        if (contents[0] != 's' && contents[0] != 'o') {
                                r = -EINVAL;
                                goto fail;
                        }
                }

                r = ctl_message_read_json(m, &value);
                if (r < 0)
                        goto fail;

                if (dictionary)
                        r = json_object_object_add(j, key, value);
                else
                        r = json_object_array_add(j, value);
                if (r < 0) {
                        json_object_put(value);
                        r = -ENOMEM;
                        goto fail;
                }

                if (dictionary) {
                        r = sd_bus_message_exit_container(m);
                        if (r < 0)
                                goto fail;
                }
        }

        *ret = j;
        return 0;

fail:
        json_object_put(j);
        return r;
}

int ctl_message_read_json(sd_bus_message *m, json_object **ret)
{
        json_object *j = NULL;
        const char *contents;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENXIO;

        if (!strchr("avr", type))
                return json_from_basic(m, type, ret);

        r = sd_bus_message_enter_container(m, type, contents);
        if (r < 0)
                return r;

        if (type == 'v')
                r = ctl_message_read_json(m, &j);
        else
                r = json_from_container(m, type == 'a' && contents[0] == '{', &j);
        if (r < 0)
                return r;

        r = sd_bus_message_exit_container(m);
        if (r < 0) {
                json_object_put(j);
                return r;
        }

        *ret = j;
        return 0;
}

int ctl_get_property(sd_bus *bus, const char *path, const char *interface, const char *property,
                     const char *type, const char *what, sd_bus_message **ret_reply)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, BANGER_SERVICE, path,
                                           "org.freedesktop.DBus.Properties", "Get");
        if (r >= 0)
                r = sd_bus_message_append(m, "ss", interface, property);
        if (r < 0)
                return ctl_log_errno(r, "%s", what);

        r = ctl_call(bus, m, 0, what, &reply);
        if (r < 0)
                return r;

        r = sd_bus_message_enter_container(reply, 'v', type);
        if (r < 0)
                return ctl_log_errno(r, "%s: property %s of '%s' is not of type '%s'", what,
                                     property, path, type);
        *ret_reply = TAKE_PTR(reply);
        return 0;
}

int ctl_get_properties(sd_bus *bus, const char *path, const char *interface, const char *what,
                       json_object **ret)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, BANGER_SERVICE, path,
                                           "org.freedesktop.DBus.Properties", "GetAll");
        if (r < 0)
                return ctl_log_errno(r, "%s", what);

        r = sd_bus_message_append(m, "s", interface);
        if (r < 0)
                return ctl_log_errno(r, "%s", what);

        r = ctl_call(bus, m, 0, what, &reply);
        if (r < 0)
                return r;

        r = ctl_message_read_json(reply, ret);
        if (r < 0)
                return ctl_log_errno(r, "%s: invalid reply to GetAll on '%s'", what, path);
        return 0;
}

/* Writes one property as "Name=value", like 'systemctl show'. Properties whose name ends in
 * "At" are timestamps in usec since the epoch. Arrays of strings are joined with spaces. */
static void property_print(const char *key, json_object *value)
{
        size_t len = strlen(key);

        printf("%s=", key);
        if (len > 2 && streq(key + len - 2, "At") && json_object_is_type(value, json_type_int)) {
                char buf[FORMAT_TIMESTAMP_MAX];

                puts(format_timestamp(buf, sizeof(buf), json_object_get_uint64(value)));
        } else if (json_object_is_type(value, json_type_string))
                puts(json_object_get_string(value));
        else if (json_object_is_type(value, json_type_array)) {
                size_t n = json_object_array_length(value);

                for (size_t i = 0; i < n; i++) {
                        json_object *e = json_object_array_get_idx(value, i);

                        printf("%s%s", i > 0 ? " " : "",
                               json_object_is_type(e, json_type_string)
                                       ? json_object_get_string(e)
                                       : json_object_to_json_string_ext(e, JSON_C_TO_STRING_PLAIN));
                }
                putchar('\n');
        } else
                puts(json_object_to_json_string_ext(value, JSON_C_TO_STRING_PLAIN));
}

int ctl_print_json(json_object *j)
{
        int flags = isatty(STDOUT_FILENO) ? JSON_C_TO_STRING_PRETTY : JSON_C_TO_STRING_PLAIN;

        flags |= JSON_C_TO_STRING_NOSLASHESCAPE;
        if (puts(json_object_to_json_string_ext(j, flags)) < 0 || fflush(stdout) != 0)
                return ctl_log_errno(negative_errno(), "Failed to write to standard output");
        return 0;
}

static int print_rows(const Table *t, json_object *array, bool json)
{
        int r;

        if (json) {
                r = ctl_print_json(array);
                json_object_put(array);
                return r;
        }

        r = table_print(t, stdout);
        if (r < 0)
                return ctl_log_errno(r, "Failed to write to standard output");
        return 0;
}

int ctl_print_array(sd_bus_message *reply, const char *row_type, const char *const *header,
                    size_t n_columns, bool json, CtlReadRow read_row, const char *what)
{
        _cleanup_table_free_ Table *t = NULL;
        json_object *array = NULL;
        int r;

        r = table_new(&t, header, n_columns);
        if (r >= 0 && json && !(array = json_object_new_array()))
                r = -ENOMEM;
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', row_type);
        while (r >= 0) {
                r = read_row(reply, t, array);
                if (r <= 0)
                        break;
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r < 0) {
                json_object_put(array);
                return ctl_log_errno(r, "%s", what);
        }

        return print_rows(t, array, json);
}

int ctl_list(sd_bus *bus, const char *method, const char *row_type, const char *const *header,
             size_t n_columns, bool json, CtlReadRow read_row, const char *what)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r;

        r = ctl_message_new(bus, &m, BANGER_MANAGER_PATH, BANGER_MANAGER_IFACE, method);
        if (r < 0)
                return r;

        r = ctl_call(bus, m, 0, what, &reply);
        if (r < 0)
                return r;

        return ctl_print_array(reply, row_type, header, n_columns, json, read_row, what);
}

struct JobWatch {
        sd_bus *bus;
        sd_bus_slot *slot_properties;
        sd_bus_slot *slot_finished;
        sd_bus_slot *slot_owner;

        const char *path; /* the job waited for; NULL until the method returned it */
        bool tty;
        bool finished;
        bool failed;
        bool daemon_gone;
        bool bar_shown;
        char *state;
        char *error;
        char *step;
        char *printed_step;
        double progress;
        uint64_t bytes_done;
        uint64_t bytes_total;
};

JobWatch *job_watch_free(JobWatch *w)
{
        if (!w)
                return NULL;
        sd_bus_slot_unref(w->slot_properties);
        sd_bus_slot_unref(w->slot_finished);
        sd_bus_slot_unref(w->slot_owner);
        sd_bus_unref(w->bus);
        free(w->state);
        free(w->error);
        free(w->step);
        free(w->printed_step);
        free(w);
        return NULL;
}

static int set_string(char **s, const char *value)
{
        char *copy = strdup(value);

        if (!copy)
                return -ENOMEM;
        free(*s);
        *s = copy;
        return 0;
}

static size_t terminal_width(void)
{
        struct winsize ws;

        if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) < 0 || ws.ws_col == 0)
                return 80;
        return ws.ws_col;
}

static void job_render(JobWatch *w)
{
        char line[512];

        if (isempty(w->step))
                return;

        if (w->tty) {
                format_progress_bar(line, sizeof(line), terminal_width(), w->step, w->progress,
                                    w->bytes_done, w->bytes_total);
                fprintf(stderr, "\r%s\033[K", line);
                w->bar_shown = true;
        } else {
                if (w->printed_step && streq(w->printed_step, w->step))
                        return;
                /* A failed copy only means the same step may be printed twice. */
                (void)set_string(&w->printed_step, w->step);
                fprintf(stderr, "%s\n",
                        format_progress_plain(line, sizeof(line), w->step, w->bytes_done,
                                              w->bytes_total));
        }
        fflush(stderr);
}

static void job_render_clear(JobWatch *w)
{
        if (!w->bar_shown)
                return;
        fputs("\r\033[K", stderr);
        fflush(stderr);
        w->bar_shown = false;
}

static int job_finish(JobWatch *w, const char *result, const char *error)
{
        w->finished = true;
        w->failed = !streq(result, "done");
        if (isempty(error))
                return 0;
        return set_string(&w->error, error);
}

/* Reads one Job property from a dictionary entry's variant into w. Unknown ones are skipped. */
static int job_read_property(JobWatch *w, sd_bus_message *m, const char *name)
{
        const char *s;
        int r;

        if (streq(name, "Step") || streq(name, "State") || streq(name, "Error")) {
                r = sd_bus_message_read(m, "v", "s", &s);
                if (r < 0)
                        return r;
                if (streq(name, "Step"))
                        return set_string(&w->step, s);
                if (streq(name, "Error"))
                        return set_string(&w->error, s);
                return set_string(&w->state, s);
        }
        if (streq(name, "Progress"))
                return sd_bus_message_read(m, "v", "d", &w->progress);
        if (streq(name, "BytesDone"))
                return sd_bus_message_read(m, "v", "t", &w->bytes_done);
        if (streq(name, "BytesTotal"))
                return sd_bus_message_read(m, "v", "t", &w->bytes_total);
        return sd_bus_message_skip(m, "v");
}

/* Reads an a{sv} of Job properties. */
static int job_read_properties(JobWatch *w, sd_bus_message *m)
{
        const char *name;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;

        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                r = sd_bus_message_read(m, "s", &name);
                if (r < 0)
                        return r;
                r = job_read_property(w, m, name);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;

        return sd_bus_message_exit_container(m);
}

static int match_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
        JobWatch *w = userdata;
        const char *interface;
        int r;

        if (!w->path || !streq(strempty(sd_bus_message_get_path(m)), w->path))
                return 0;

        r = sd_bus_message_read(m, "s", &interface);
        if (r < 0 || !streq(interface, BANGER_JOB_IFACE))
                return 0;

        /* A malformed signal is ignored, because Finished or the State read after the call
         * still ends the wait. */
        if (job_read_properties(w, m) >= 0 && !w->finished)
                job_render(w);
        return 0;
}

static int match_finished(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
        JobWatch *w = userdata;
        const char *result, *error;

        if (!w->path || !streq(strempty(sd_bus_message_get_path(m)), w->path))
                return 0;

        if (sd_bus_message_read(m, "ss", &result, &error) < 0)
                return 0;
        if (job_finish(w, result, error) < 0)
                w->failed = true;
        return 0;
}

static int match_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
        JobWatch *w = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        if (streq(name, BANGER_SERVICE) && isempty(new_owner))
                w->daemon_gone = true;
        return 0;
}

int job_watch_new(JobWatch **ret, sd_bus *bus)
{
        JobWatch *w;
        int r;

        w = calloc(1, sizeof(JobWatch));
        if (!w)
                return ctl_log_errno(-ENOMEM, "Failed to watch jobs");
        w->bus = sd_bus_ref(bus);
        w->tty = isatty(STDERR_FILENO);

        r = sd_bus_add_match(bus, &w->slot_properties,
                             "type='signal',sender='" BANGER_SERVICE "',"
                             "interface='org.freedesktop.DBus.Properties',"
                             "member='PropertiesChanged',arg0='" BANGER_JOB_IFACE "'",
                             match_properties_changed, w);
        if (r >= 0)
                r = sd_bus_match_signal(bus, &w->slot_finished, BANGER_SERVICE, NULL,
                                        BANGER_JOB_IFACE, "Finished", match_finished, w);
        if (r >= 0)
                r = sd_bus_add_match(bus, &w->slot_owner,
                                     "type='signal',sender='org.freedesktop.DBus',"
                                     "interface='org.freedesktop.DBus',"
                                     "member='NameOwnerChanged',arg0='" BANGER_SERVICE "'",
                                     match_name_owner_changed, w);
        if (r < 0) {
                job_watch_free(w);
                return ctl_log_errno(r, "Failed to subscribe to job signals");
        }

        *ret = w;
        return 0;
}

/* Reads the job's properties once, because a job that finished before the match was added
 * sends no more signals. */
static int job_read_state(JobWatch *w, const char *what)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r;

        r = sd_bus_message_new_method_call(w->bus, &m, BANGER_SERVICE, w->path,
                                           "org.freedesktop.DBus.Properties", "GetAll");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", BANGER_JOB_IFACE);
        if (r < 0)
                return ctl_log_errno(r, "%s", what);

        r = ctl_call(w->bus, m, 0, what, &reply);
        if (r < 0)
                return r;

        r = job_read_properties(w, reply);
        if (r < 0)
                return ctl_log_errno(r, "%s: invalid properties of job '%s'", what, w->path);

        /* Only this read ends the wait on State, because a PropertiesChanged signal may carry
         * the new State before the Error that explains it. Finished carries both. */
        if (w->state && (streq(w->state, "done") || streq(w->state, "failed"))) {
                w->finished = true;
                w->failed = streq(w->state, "failed");
        }
        return 0;
}

int job_watch_wait(JobWatch *w, const char *job_path, const char *what)
{
        int r;

        w->path = job_path;

        r = job_read_state(w, what);
        if (r < 0)
                return r;
        if (!w->finished)
                job_render(w);

        while (!w->finished && !w->daemon_gone) {
                r = sd_bus_process(w->bus, NULL);
                if (r < 0) {
                        job_render_clear(w);
                        return ctl_log_errno(r, "%s: lost the connection to the bus", what);
                }
                if (r > 0)
                        continue;

                r = sd_bus_wait(w->bus, UINT64_MAX);
                if (r < 0 && r != -EINTR) {
                        job_render_clear(w);
                        return ctl_log_errno(r, "%s: lost the connection to the bus", what);
                }
        }

        job_render_clear(w);

        if (!w->finished) {
                fprintf(stderr,
                        "bangerctl: %s: bangerd exited before job '%s' finished; see "
                        "'journalctl -u bangerd.service'\n",
                        what, job_path);
                return -ECONNRESET;
        }
        if (w->failed) {
                fprintf(stderr, "bangerctl: %s: %s\n", what,
                        isempty(w->error) ? "the job failed without an error message" : w->error);
                return -EIO;
        }
        return 0;
}

static int object_callv(sd_bus *bus, const char *getter, const char *name, const char *interface,
                        const char *member, const char *what, sd_bus_message **ret_reply,
                        const char *types, va_list ap)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        r = ctl_get_object(bus, getter, name, what, &path);
        if (r < 0)
                return r;

        r = ctl_message_new(bus, &m, path, interface, member);
        if (r < 0)
                return r;

        r = sd_bus_message_appendv(m, types, ap);
        if (r < 0)
                return ctl_log_errno(r, "%s", what);

        return ctl_call(bus, m, CTL_TIMEOUT_INFINITE, what, ret_reply);
}

int ctl_object_call(sd_bus *bus, const char *getter, const char *name, const char *interface,
                    const char *member, const char *what, const char *types, ...)
{
        va_list ap;
        int r;

        va_start(ap, types);
        r = object_callv(bus, getter, name, interface, member, what, NULL, types, ap);
        va_end(ap);
        return r;
}

int ctl_object_call_reply(sd_bus *bus, const char *getter, const char *name, const char *interface,
                          const char *member, const char *what, sd_bus_message **ret_reply,
                          const char *types, ...)
{
        va_list ap;
        int r;

        va_start(ap, types);
        r = object_callv(bus, getter, name, interface, member, what, ret_reply, types, ap);
        va_end(ap);
        return r;
}

int ctl_format(char **ret, const char *format, ...)
{
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(ret, format, ap);
        va_end(ap);
        if (r < 0) {
                fputs("bangerctl: Out of memory\n", stderr);
                return -ENOMEM;
        }
        return 0;
}

int ctl_run_job(sd_bus *bus, sd_bus_message *m, const char *what)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_job_watch_free_ JobWatch *w = NULL;
        const char *path;
        int r;

        r = job_watch_new(&w, bus);
        if (r < 0)
                return r;

        r = ctl_call(bus, m, CTL_TIMEOUT_INFINITE, what, &reply);
        if (r < 0)
                return r;

        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return ctl_log_errno(r, "%s: invalid reply, expected a job path", what);

        return job_watch_wait(w, path, what);
}

int ctl_print_properties(json_object *properties, bool json)
{
        if (json)
                return ctl_print_json(properties);

        json_object_object_foreach(properties, key, value) property_print(key, value);
        if (fflush(stdout) != 0)
                return ctl_log_errno(negative_errno(), "Failed to write to standard output");
        return 0;
}

int ctl_get_object_properties(sd_bus *bus, const char *getter, const char *name,
                              const char *interface, const char *what, json_object **ret)
{
        _cleanup_free_ char *path = NULL;
        int r;

        r = ctl_get_object(bus, getter, name, what, &path);
        if (r < 0)
                return r;
        return ctl_get_properties(bus, path, interface, what, ret);
}

int ctl_show_object(sd_bus *bus, const char *getter, const char *name, const char *interface,
                    const char *what, bool json)
{
        json_object *properties = NULL;
        int r;

        r = ctl_get_object_properties(bus, getter, name, interface, what, &properties);
        if (r < 0)
                return r;

        r = ctl_print_properties(properties, json);
        json_object_put(properties);
        return r;
}
