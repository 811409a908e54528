#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>
#include <systemd/sd-bus.h>

#include "ctl-bus.h"
#include "ctl-format.h"
#include "ctl-verbs.h"
#include "macro.h"

int verb_image_pull(sd_bus *bus, const CtlArgs *args)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_free_ char *what = NULL;
        int r;

        r = ctl_format(&what, "Failed to pull image '%s'", args->name);
        if (r < 0)
                return r;

        r = ctl_message_new(bus, &m, BANGER_MANAGER_PATH, BANGER_MANAGER_IFACE, "PullImage");
        if (r < 0)
                return r;

        r = sd_bus_message_append(m, "sa{sv}", args->name, 0);
        if (r < 0)
                return ctl_log_errno(r, "%s", what);

        return ctl_run_job(bus, m, what);
}

int verb_image_import(sd_bus *bus, const CtlArgs *args)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *what = NULL;
        int r;

        r = ctl_format(&what, "Failed to import image '%s'", args->name);
        if (r < 0)
                return r;

        /* A directory opens too: bangerd reads an OCI layout through the directory fd. */
        fd = open(args->name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return ctl_log_errno(negative_errno(), "Failed to open '%s'", args->name);

        r = ctl_message_new(bus, &m, BANGER_MANAGER_PATH, BANGER_MANAGER_IFACE, "ImportImage");
        if (r < 0)
                return r;

        r = sd_bus_message_append(m, "h", fd);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && args->kernel_name)
                r = sd_bus_message_append(m, "{sv}", "name", "s", args->kernel_name);
        if (r >= 0 && args->format)
                r = sd_bus_message_append(m, "{sv}", "format", "s", args->format);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return ctl_log_errno(r, "%s", what);

        return ctl_run_job(bus, m, what);
}

/* Shortens "sha256:abcdef..." to the first 12 hex digits, as container tools show digests. */
static void digest_short(char *buf, size_t size, const char *digest)
{
        const char *colon = strchr(digest, ':');

        (void)snprintf(buf, size, "%.12s", colon ? colon + 1 : digest);
}

static int image_add_json(json_object *array, const char *name, const char *reference,
                          const char *digest, uint64_t size, uint64_t created, const char *path)
{
        json_object *o = json_object_new_object();

        if (!o)
                return -ENOMEM;
        if (json_object_object_add(o, "name", json_object_new_string(name)) < 0 ||
            json_object_object_add(o, "reference", json_object_new_string(reference)) < 0 ||
            json_object_object_add(o, "digest", json_object_new_string(digest)) < 0 ||
            json_object_object_add(o, "size", json_object_new_uint64(size)) < 0 ||
            json_object_object_add(o, "created", json_object_new_uint64(created)) < 0 ||
            json_object_object_add(o, "path", json_object_new_string(path)) < 0 ||
            json_object_array_add(array, o) < 0) {
                json_object_put(o);
                return -ENOMEM;
        }
        return 0;
}

static int image_add_row(Table *t, const char *name, const char *reference, const char *digest,
                         uint64_t size, uint64_t created)
{
        char d[16], s[FORMAT_BYTES_MAX], c[FORMAT_TIMESTAMP_MAX];
        const char *cells[] = {
                name,
                reference,
                (digest_short(d, sizeof(d), digest), d),
                format_bytes(s, sizeof(s), size),
                format_timestamp(c, sizeof(c), created),
        };
        int r;

        for (size_t i = 0; i < ELEMENTSOF(cells); i++) {
                r = table_add(t, cells[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int image_read_row(sd_bus_message *reply, Table *t, json_object *array)
{
        const char *name, *reference, *digest, *path;
        uint64_t size, created;
        int r;

        r = sd_bus_message_read(reply, "(ssstto)", &name, &reference, &digest, &size, &created,
                                &path);
        if (r <= 0)
                return r;

        if (array)
                r = image_add_json(array, name, reference, digest, size, created, path);
        else
                r = image_add_row(t, name, reference, digest, size, created);
        return r < 0 ? r : 1;
}

int verb_image_list(sd_bus *bus, const CtlArgs *args)
{
        static const char *const header[] = { "NAME", "REFERENCE", "DIGEST", "SIZE", "CREATED" };

        return ctl_list(bus, "ListImages", "(ssstto)", header, ELEMENTSOF(header), args->json,
                        image_read_row, "Failed to list images");
}

int verb_image_rm(sd_bus *bus, const CtlArgs *args)
{
        _cleanup_free_ char *what = NULL;
        int r;

        r = ctl_format(&what, "Failed to remove image '%s'", args->name);
        if (r < 0)
                return r;

        return ctl_object_call(bus, "GetImage", args->name, BANGER_IMAGE_IFACE, "Delete", what, "");
}

int verb_image_show(sd_bus *bus, const CtlArgs *args)
{
        _cleanup_free_ char *what = NULL;
        int r;

        r = ctl_format(&what, "Failed to show image '%s'", args->name);
        if (r < 0)
                return r;

        return ctl_show_object(bus, "GetImage", args->name, BANGER_IMAGE_IFACE, what, args->json);
}
