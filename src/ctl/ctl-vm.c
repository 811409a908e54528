#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <systemd/sd-bus.h>

#include "ctl-bus.h"
#include "ctl-format.h"
#include "ctl-verbs.h"
#include "macro.h"
#include "strv.h"

static int create_spec_append(sd_bus_message *m, const CtlArgs *args)
{
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;

        r = sd_bus_message_append(m, "{sv}", "image", "s", args->image);
        if (r < 0)
                return r;

        if (args->kernel) {
                r = sd_bus_message_append(m, "{sv}", "kernel", "s", args->kernel);
                if (r < 0)
                        return r;
        }

        if (args->vcpus > 0) {
                r = sd_bus_message_append(m, "{sv}", "vcpus", "u", args->vcpus);
                if (r < 0)
                        return r;
        }

        if (args->memory_mib > 0) {
                r = sd_bus_message_append(m, "{sv}", "memory-mib", "u", args->memory_mib);
                if (r < 0)
                        return r;
        }

        if (args->no_start) {
                r = sd_bus_message_append(m, "{sv}", "start", "b", 0);
                if (r < 0)
                        return r;
        }

        return sd_bus_message_close_container(m);
}

int verb_vm_create(sd_bus *bus, const CtlArgs *args)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_free_ char *what = NULL;
        int r;

        r = ctl_format(&what, "Failed to create VM '%s'", args->name);
        if (r < 0)
                return r;

        r = ctl_message_new(bus, &m, BANGER_MANAGER_PATH, BANGER_MANAGER_IFACE, "CreateVM");
        if (r < 0)
                return r;

        r = sd_bus_message_append(m, "s", args->name);
        if (r >= 0)
                r = create_spec_append(m, args);
        if (r < 0)
                return ctl_log_errno(r, "%s", what);

        return ctl_run_job(bus, m, what);
}

/* Calls a VM method. verb names the action in the error message ("start"), and types is the
 * signature of the method's single argument, or "" when it takes none. */
static int vm_call(sd_bus *bus, const CtlArgs *args, const char *verb, const char *member,
                   const char *types, int value)
{
        _cleanup_free_ char *what = NULL;
        int r;

        r = ctl_format(&what, "Failed to %s VM '%s'", verb, args->name);
        if (r < 0)
                return r;

        return ctl_object_call(bus, "GetVM", args->name, BANGER_VM_IFACE, member, what, types,
                               value);
}

int verb_vm_start(sd_bus *bus, const CtlArgs *args)
{
        return vm_call(bus, args, "start", "Start", "", 0);
}

int verb_vm_stop(sd_bus *bus, const CtlArgs *args)
{
        return vm_call(bus, args, "stop", "Stop", "b", args->force);
}

int verb_vm_restart(sd_bus *bus, const CtlArgs *args)
{
        return vm_call(bus, args, "restart", "Restart", "", 0);
}

int verb_vm_rm(sd_bus *bus, const CtlArgs *args)
{
        return vm_call(bus, args, "remove", "Delete", "", 0);
}

static int vm_add_json(json_object *array, const char *name, const char *state, const char *image,
                       uint32_t owner, const char *path)
{
        json_object *o = json_object_new_object();

        if (!o)
                return -ENOMEM;
        if (json_object_object_add(o, "name", json_object_new_string(name)) < 0 ||
            json_object_object_add(o, "state", json_object_new_string(state)) < 0 ||
            json_object_object_add(o, "image", json_object_new_string(image)) < 0 ||
            json_object_object_add(o, "owner", json_object_new_int64(owner)) < 0 ||
            json_object_object_add(o, "path", json_object_new_string(path)) < 0 ||
            json_object_array_add(array, o) < 0) {
                json_object_put(o);
                return -ENOMEM;
        }
        return 0;
}

/* Shows the owner as a user name, or as the number when no user has that uid. */
static int vm_add_row(Table *t, const char *name, const char *state, const char *image,
                      uint32_t owner)
{
        char number[16], buf[1024];
        struct passwd pw, *result = NULL;
        const char *cells[4] = { name, state, image, number };
        int r;

        (void)snprintf(number, sizeof(number), "%" PRIu32, owner);
        if (getpwuid_r((uid_t)owner, &pw, buf, sizeof(buf), &result) == 0 && result)
                cells[3] = result->pw_name;

        for (size_t i = 0; i < ELEMENTSOF(cells); i++) {
                r = table_add(t, cells[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int vm_read_row(sd_bus_message *reply, Table *t, json_object *array)
{
        const char *name, *state, *image, *path;
        uint32_t owner;
        int r;

        r = sd_bus_message_read(reply, "(sssuo)", &name, &state, &image, &owner, &path);
        if (r <= 0)
                return r;

        if (array)
                r = vm_add_json(array, name, state, image, owner, path);
        else
                r = vm_add_row(t, name, state, image, owner);
        return r < 0 ? r : 1;
}

int verb_vm_list(sd_bus *bus, const CtlArgs *args)
{
        static const char *const header[] = { "NAME", "STATE", "IMAGE", "OWNER" };

        return ctl_list(bus, "ListVMs", "(sssuo)", header, ELEMENTSOF(header), args->json,
                        vm_read_row, "Failed to list VMs");
}

int verb_vm_show(sd_bus *bus, const CtlArgs *args)
{
        _cleanup_free_ char *what = NULL;
        int r;

        r = ctl_format(&what, "Failed to show VM '%s'", args->name);
        if (r < 0)
                return r;

        return ctl_show_object(bus, "GetVM", args->name, BANGER_VM_IFACE, what, args->json);
}

static int write_all(int fd, const void *data, size_t size)
{
        const char *p = data;

        while (size > 0) {
                ssize_t n = write(fd, p, size);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                p += n;
                size -= (size_t)n;
        }
        return 0;
}

static int exec_options_append(sd_bus_message *m, const CtlArgs *args)
{
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

        if (args->cwd) {
                r = sd_bus_message_append(m, "{sv}", "cwd", "s", args->cwd);
                if (r < 0)
                        return r;
        }

        return sd_bus_message_close_container(m);
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

int verb_vm_exec(sd_bus *bus, const CtlArgs *args)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_free_ char *what = NULL, *path = NULL;
        const void *out, *err;
        size_t out_size, err_size;
        int32_t exit_status, signal;
        int r;

        r = ctl_format(&what, "Failed to run '%s' in VM '%s'", args->command[0], args->name);
        if (r < 0)
                return r;

        r = ctl_get_object(bus, "GetVM", args->name, what, &path);
        if (r < 0)
                return r;

        r = ctl_message_new(bus, &m, path, BANGER_VM_IFACE, "Exec");
        if (r < 0)
                return r;

        r = sd_bus_message_append_strv(m, (char **)args->command);
        if (r >= 0)
                r = exec_options_append(m, args);
        if (r < 0)
                return ctl_log_errno(r, "%s", what);

        r = ctl_call(bus, m, CTL_TIMEOUT_INFINITE, what, &reply);
        if (r < 0)
                return r;

        r = sd_bus_message_read(reply, "ii", &exit_status, &signal);
        if (r >= 0)
                r = sd_bus_message_read_array(reply, 'y', &out, &out_size);
        if (r >= 0)
                r = sd_bus_message_read_array(reply, 'y', &err, &err_size);
        if (r < 0)
                return ctl_log_errno(r, "%s: invalid reply to Exec", what);

        /* The command's status still counts when its output cannot be written. */
        r = write_all(STDOUT_FILENO, out, out_size);
        if (r < 0)
                fprintf(stderr, "bangerctl: Failed to write the output of '%s': %s\n",
                        args->command[0], strerror(-r));
        (void)write_all(STDERR_FILENO, err, err_size);

        return exec_exit_status(exit_status, signal);
}

int verb_vm_console_log(sd_bus *bus, const CtlArgs *args)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_free_ char *what = NULL, *path = NULL;
        char buf[65536];
        int fd, r;

        r = ctl_format(&what, "Failed to read the console log of VM '%s'", args->name);
        if (r < 0)
                return r;

        r = ctl_get_object(bus, "GetVM", args->name, what, &path);
        if (r < 0)
                return r;

        r = ctl_message_new(bus, &m, path, BANGER_VM_IFACE, "OpenConsoleLog");
        if (r < 0)
                return r;

        r = ctl_call(bus, m, CTL_TIMEOUT_INFINITE, what, &reply);
        if (r < 0)
                return r;

        /* The fd stays owned by reply. */
        r = sd_bus_message_read(reply, "h", &fd);
        if (r < 0)
                return ctl_log_errno(r, "%s: invalid reply to OpenConsoleLog", what);

        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return ctl_log_errno(negative_errno(), "%s", what);
                if (n == 0)
                        return 0;

                r = write_all(STDOUT_FILENO, buf, (size_t)n);
                if (r < 0)
                        return ctl_log_errno(r, "Failed to write to standard output");
        }
}
