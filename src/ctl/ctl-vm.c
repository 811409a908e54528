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
#include "ctl-vm-access.h"
#include "fileio.h"
#include "macro.h"
#include "strv.h"

/* Opens the CreateVM spec in m and appends the VM's settings. The caller adds the SSH and
 * workspace entries and closes the container. */
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
        return 0;
}

int verb_vm_create(sd_bus *bus, const CtlArgs *args)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_free_ char *what = NULL;
        CtlUpload *upload = NULL;
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
        r = ctl_create_spec_append_access(m, args, &upload);
        if (r >= 0 && sd_bus_message_close_container(m) < 0)
                r = ctl_log_errno(-ENOMEM, "%s", what);

        if (r >= 0)
                r = ctl_run_job(bus, m, what);
        /* Drops the message's copy of the workspace pipe, so that the upload cannot wait for a
         * reader that is gone. */
        m = sd_bus_message_unref(m);
        return ctl_upload_finish(upload, r);
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

/* One row of ListVMs. */
typedef struct VmRow {
        const char *name;
        const char *state;
        const char *image;
        uint32_t owner;
        const char *address; /* "" when the VM has none */
        const char *path;
} VmRow;

static int vm_add_json(json_object *array, const VmRow *vm)
{
        json_object *o = json_object_new_object();

        if (!o)
                return -ENOMEM;
        if (json_object_object_add(o, "name", json_object_new_string(vm->name)) < 0 ||
            json_object_object_add(o, "state", json_object_new_string(vm->state)) < 0 ||
            json_object_object_add(o, "image", json_object_new_string(vm->image)) < 0 ||
            json_object_object_add(o, "address", json_object_new_string(vm->address)) < 0 ||
            json_object_object_add(o, "owner", json_object_new_int64(vm->owner)) < 0 ||
            json_object_object_add(o, "path", json_object_new_string(vm->path)) < 0 ||
            json_object_array_add(array, o) < 0) {
                json_object_put(o);
                return -ENOMEM;
        }
        return 0;
}

/* Shows the owner as a user name, or as the number when no user has that uid. */
static int vm_add_row(Table *t, const VmRow *vm)
{
        char number[16], buf[1024];
        struct passwd pw, *result = NULL;
        const char *cells[5] = { vm->name, vm->state, vm->image, NULL, number };
        int r;

        if (!isempty(vm->address))
                cells[3] = vm->address;
        (void)snprintf(number, sizeof(number), "%" PRIu32, vm->owner);
        if (getpwuid_r((uid_t)vm->owner, &pw, buf, sizeof(buf), &result) == 0 && result)
                cells[4] = result->pw_name;

        for (size_t i = 0; i < ELEMENTSOF(cells); i++) {
                r = table_add(t, cells[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int vm_read_row(sd_bus_message *reply, Table *t, json_object *array)
{
        VmRow vm;
        int r;

        r = sd_bus_message_read(reply, "(sssuso)", &vm.name, &vm.state, &vm.image, &vm.owner,
                                &vm.address, &vm.path);
        if (r <= 0)
                return r;

        if (array)
                r = vm_add_json(array, &vm);
        else
                r = vm_add_row(t, &vm);
        return r < 0 ? r : 1;
}

int verb_vm_list(sd_bus *bus, const CtlArgs *args)
{
        static const char *const header[] = { "NAME", "STATE", "IMAGE", "ADDRESS", "OWNER" };

        return ctl_list(bus, "ListVMs", "(sssuso)", header, ELEMENTSOF(header), args->json,
                        vm_read_row, "Failed to list VMs");
}

/* Replaces the PortForwards property, an array of [proto, host port, guest port] arrays, with
 * strings in the form 'vm port add' takes, such as "8080:80/tcp". */
static int forwards_to_strings(json_object *properties)
{
        json_object *forwards, *strings;
        size_t n;

        if (!json_object_object_get_ex(properties, "PortForwards", &forwards) ||
            !json_object_is_type(forwards, json_type_array))
                return 0;

        strings = json_object_new_array();
        if (!strings)
                return -ENOMEM;
        n = json_object_array_length(forwards);
        for (size_t i = 0; i < n; i++) {
                json_object *f = json_object_array_get_idx(forwards, i);
                char buf[FORMAT_FORWARD_MAX];

                if (!json_object_is_type(f, json_type_array) || json_object_array_length(f) != 3)
                        continue;
                format_port_forward(buf, sizeof(buf),
                                    json_object_get_string(json_object_array_get_idx(f, 0)),
                                    (uint16_t)json_object_get_int(json_object_array_get_idx(f, 1)),
                                    (uint16_t)json_object_get_int(json_object_array_get_idx(f, 2)));
                if (json_object_array_add(strings, json_object_new_string(buf)) < 0) {
                        json_object_put(strings);
                        return -ENOMEM;
                }
        }
        if (json_object_object_add(properties, "PortForwards", strings) < 0) {
                json_object_put(strings);
                return -ENOMEM;
        }
        return 0;
}

int verb_vm_show(sd_bus *bus, const CtlArgs *args)
{
        _cleanup_free_ char *what = NULL;
        json_object *properties = NULL;
        int r;

        r = ctl_format(&what, "Failed to show VM '%s'", args->name);
        if (r < 0)
                return r;

        r = ctl_get_object_properties(bus, "GetVM", args->name, BANGER_VM_IFACE, what, &properties);
        if (r < 0)
                return r;

        /* JSON keeps the arrays, which scripts read more easily than strings. */
        r = args->json ? 0 : forwards_to_strings(properties);
        if (r < 0)
                r = ctl_log_errno(r, "%s", what);
        else
                r = ctl_print_properties(properties, args->json);
        json_object_put(properties);
        return r;
}

static int port_forward_add_json(json_object *array, const char *proto, uint16_t host_port,
                                 uint16_t guest_port)
{
        json_object *o = json_object_new_object();

        if (!o)
                return -ENOMEM;
        if (json_object_object_add(o, "proto", json_object_new_string(proto)) < 0 ||
            json_object_object_add(o, "host_port", json_object_new_int(host_port)) < 0 ||
            json_object_object_add(o, "guest_port", json_object_new_int(guest_port)) < 0 ||
            json_object_array_add(array, o) < 0) {
                json_object_put(o);
                return -ENOMEM;
        }
        return 0;
}

static int port_forward_add_row(Table *t, const char *proto, uint16_t host_port,
                                uint16_t guest_port)
{
        char host[8], guest[8];
        int r;

        (void)snprintf(host, sizeof(host), "%" PRIu16, host_port);
        (void)snprintf(guest, sizeof(guest), "%" PRIu16, guest_port);
        r = table_add(t, proto);
        if (r >= 0)
                r = table_add(t, host);
        if (r >= 0)
                r = table_add(t, guest);
        return r;
}

static int port_forward_read_row(sd_bus_message *reply, Table *t, json_object *array)
{
        const char *proto;
        uint16_t host_port, guest_port;
        int r;

        r = sd_bus_message_read(reply, "(sqq)", &proto, &host_port, &guest_port);
        if (r <= 0)
                return r;

        if (array)
                r = port_forward_add_json(array, proto, host_port, guest_port);
        else
                r = port_forward_add_row(t, proto, host_port, guest_port);
        return r < 0 ? r : 1;
}

int verb_vm_port_list(sd_bus *bus, const CtlArgs *args)
{
        static const char *const header[] = { "PROTO", "HOST", "GUEST" };
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *what = NULL, *path = NULL;
        int r;

        r = ctl_format(&what, "Failed to list the port forwards of VM '%s'", args->name);
        if (r < 0)
                return r;

        r = ctl_get_object(bus, "GetVM", args->name, what, &path);
        if (r < 0)
                return r;

        r = ctl_get_property(bus, path, BANGER_VM_IFACE, "PortForwards", "a(sqq)", what, &reply);
        if (r < 0)
                return r;

        return ctl_print_array(reply, "(sqq)", header, ELEMENTSOF(header), args->json,
                               port_forward_read_row, what);
}

int verb_vm_port_add(sd_bus *bus, const CtlArgs *args)
{
        _cleanup_free_ char *what = NULL;
        char spec[FORMAT_FORWARD_MAX];
        int r;

        format_port_forward(spec, sizeof(spec), args->port.proto, args->port.host_port,
                            args->port.guest_port);
        r = ctl_format(&what, "Failed to forward port %s to VM '%s'", spec, args->name);
        if (r < 0)
                return r;

        return ctl_object_call(bus, "GetVM", args->name, BANGER_VM_IFACE, "AddPortForward", what,
                               "sqq", args->port.proto, args->port.host_port,
                               args->port.guest_port);
}

int verb_vm_port_rm(sd_bus *bus, const CtlArgs *args)
{
        _cleanup_free_ char *what = NULL;
        int r;

        r = ctl_format(&what,
                       "Failed to remove the forward of host port %" PRIu16 "/%s from VM '%s'",
                       args->port.host_port, args->port.proto, args->name);
        if (r < 0)
                return r;

        return ctl_object_call(bus, "GetVM", args->name, BANGER_VM_IFACE, "RemovePortForward", what,
                               "sq", args->port.proto, args->port.host_port);
}

int verb_vm_console_log(sd_bus *bus, const CtlArgs *args)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *what = NULL;
        char buf[65536];
        int fd, r;

        r = ctl_format(&what, "Failed to read the console log of VM '%s'", args->name);
        if (r < 0)
                return r;

        r = ctl_object_call_reply(bus, "GetVM", args->name, BANGER_VM_IFACE, "OpenConsoleLog", what,
                                  &reply, "");
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

                r = loop_write(STDOUT_FILENO, buf, (size_t)n);
                if (r < 0)
                        return ctl_log_errno(r, "Failed to write to standard output");
        }
}

static int print_names(char **names, bool json)
{
        json_object *array;
        int r;

        if (!json) {
                for (char **n = names; n && *n; n++)
                        puts(*n);
                if (fflush(stdout) != 0)
                        return ctl_log_errno(negative_errno(),
                                             "Failed to write to standard output");
                return 0;
        }

        array = json_object_new_array();
        for (char **n = names; array && n && *n; n++)
                if (json_object_array_add(array, json_object_new_string(*n)) < 0) {
                        json_object_put(array);
                        array = NULL;
                }
        if (!array)
                return ctl_log_errno(-ENOMEM, "Failed to format the output");
        r = ctl_print_json(array);
        json_object_put(array);
        return r;
}

int verb_vm_prune(sd_bus *bus, const CtlArgs *args)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_strv_free_ char **names = NULL;
        const char *what = "Failed to prune VMs";
        int r;

        r = ctl_message_new(bus, &m, BANGER_MANAGER_PATH, BANGER_MANAGER_IFACE, "PruneVMs");
        if (r < 0)
                return r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && args->all)
                r = sd_bus_message_append(m, "{sv}", "all", "b", 1);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return ctl_log_errno(r, "%s", what);

        r = ctl_call(bus, m, CTL_TIMEOUT_INFINITE, what, &reply);
        if (r < 0)
                return r;

        r = sd_bus_message_read_strv(reply, &names);
        if (r < 0)
                return ctl_log_errno(r, "%s: invalid reply to PruneVMs", what);

        return print_names(names, args->json);
}
