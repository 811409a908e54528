#include <errno.h>
#include <fcntl.h>
#include <stdio.h>

#include <json-c/json.h>
#include <systemd/sd-bus.h>

#include "ctl-bus.h"
#include "ctl-format.h"
#include "ctl-verbs.h"
#include "macro.h"

static int import_options_append(sd_bus_message *m, const CtlArgs *args, int modules_fd)
{
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;

        r = sd_bus_message_append(m, "{sv}", "source-name", "s", args->name);
        if (r < 0)
                return r;

        if (args->kernel_name) {
                r = sd_bus_message_append(m, "{sv}", "name", "s", args->kernel_name);
                if (r < 0)
                        return r;
        }

        if (modules_fd >= 0) {
                r = sd_bus_message_append(m, "{sv}", "modules", "h", modules_fd);
                if (r < 0)
                        return r;
        }

        return sd_bus_message_close_container(m);
}

int verb_kernel_import(sd_bus *bus, const CtlArgs *args)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_close_ int fd = -EBADF, modules_fd = -EBADF;
        _cleanup_free_ char *what = NULL;
        int r;

        r = ctl_format(&what, "Failed to import kernel '%s'", args->name);
        if (r < 0)
                return r;

        /* A directory opens too: bangerd accepts an unpacked package directory. */
        fd = open(args->name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return ctl_log_errno(negative_errno(), "Failed to open kernel '%s'", args->name);

        if (args->modules) {
                modules_fd = open(args->modules, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (modules_fd < 0)
                        return ctl_log_errno(negative_errno(),
                                             "Failed to open modules directory '%s'",
                                             args->modules);
        }

        r = ctl_message_new(bus, &m, BANGER_MANAGER_PATH, BANGER_MANAGER_IFACE, "ImportKernel");
        if (r < 0)
                return r;

        r = sd_bus_message_append(m, "h", fd);
        if (r >= 0)
                r = import_options_append(m, args, modules_fd);
        if (r < 0)
                return ctl_log_errno(r, "%s", what);

        return ctl_run_job(bus, m, what);
}

int verb_kernel_pull(sd_bus *bus, const CtlArgs *args)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_free_ char *what = NULL;
        int r;

        r = ctl_format(&what, "Failed to pull kernel '%s'", args->name);
        if (r < 0)
                return r;

        r = ctl_message_new(bus, &m, BANGER_MANAGER_PATH, BANGER_MANAGER_IFACE, "PullKernel");
        if (r < 0)
                return r;

        r = sd_bus_message_append(m, "s", args->name);
        if (r >= 0)
                r = sd_bus_message_append(m, "a{sv}", 0);
        if (r < 0)
                return ctl_log_errno(r, "%s", what);

        return ctl_run_job(bus, m, what);
}

static int kernel_add_json(json_object *array, const char *name, const char *version,
                           const char *source, const char *path)
{
        json_object *o = json_object_new_object();

        if (!o)
                return -ENOMEM;
        if (json_object_object_add(o, "name", json_object_new_string(name)) < 0 ||
            json_object_object_add(o, "version", json_object_new_string(version)) < 0 ||
            json_object_object_add(o, "source", json_object_new_string(source)) < 0 ||
            json_object_object_add(o, "path", json_object_new_string(path)) < 0 ||
            json_object_array_add(array, o) < 0) {
                json_object_put(o);
                return -ENOMEM;
        }
        return 0;
}

static int kernel_add_row(Table *t, const char *name, const char *version, const char *source)
{
        const char *cells[] = { name, version, source };
        int r;

        for (size_t i = 0; i < ELEMENTSOF(cells); i++) {
                r = table_add(t, cells[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int kernel_read_row(sd_bus_message *reply, Table *t, json_object *array)
{
        const char *name, *version, *source, *path;
        int r;

        r = sd_bus_message_read(reply, "(ssso)", &name, &version, &source, &path);
        if (r <= 0)
                return r;

        if (array)
                r = kernel_add_json(array, name, version, source, path);
        else
                r = kernel_add_row(t, name, version, source);
        return r < 0 ? r : 1;
}

int verb_kernel_list(sd_bus *bus, const CtlArgs *args)
{
        static const char *const header[] = { "NAME", "VERSION", "SOURCE" };

        return ctl_list(bus, "ListKernels", "(ssso)", header, ELEMENTSOF(header), args->json,
                        kernel_read_row, "Failed to list kernels");
}

int verb_kernel_rm(sd_bus *bus, const CtlArgs *args)
{
        _cleanup_free_ char *what = NULL;
        int r;

        r = ctl_format(&what, "Failed to remove kernel '%s'", args->name);
        if (r < 0)
                return r;

        return ctl_object_call(bus, "GetKernel", args->name, BANGER_KERNEL_IFACE, "Delete", what,
                               "");
}

int verb_kernel_show(sd_bus *bus, const CtlArgs *args)
{
        _cleanup_free_ char *what = NULL;
        int r;

        r = ctl_format(&what, "Failed to show kernel '%s'", args->name);
        if (r < 0)
                return r;

        return ctl_show_object(bus, "GetKernel", args->name, BANGER_KERNEL_IFACE, what, args->json);
}
