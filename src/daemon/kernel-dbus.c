#include <errno.h>
#include <stdlib.h>

#include "bus-error.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "polkit.h"
#include "strv.h"

static int property_get_info_string(sd_bus *bus, const char *path, const char *interface,
                                    const char *property, sd_bus_message *reply, void *userdata,
                                    sd_bus_error *error)
{
        Kernel *k = userdata;
        const char *v = NULL;

        if (streq(property, "Name"))
                v = k->info->name;
        else if (streq(property, "Version"))
                v = k->info->version;
        else if (streq(property, "Source"))
                v = k->info->source;
        else if (streq(property, "Digest"))
                v = k->info->digest;
        return sd_bus_message_append(reply, "s", strempty(v));
}

static int property_get_has_initrd(sd_bus *bus, const char *path, const char *interface,
                                   const char *property, sd_bus_message *reply, void *userdata,
                                   sd_bus_error *error)
{
        Kernel *k = userdata;

        return sd_bus_message_append(reply, "b", k->info->has_initrd);
}

static int property_get_formats(sd_bus *bus, const char *path, const char *interface,
                                const char *property, sd_bus_message *reply, void *userdata,
                                sd_bus_error *error)
{
        Kernel *k = userdata;
        char *empty[] = { NULL };

        return sd_bus_message_append_strv(reply, k->info->formats ?: empty);
}

static int property_get_created(sd_bus *bus, const char *path, const char *interface,
                                const char *property, sd_bus_message *reply, void *userdata,
                                sd_bus_error *error)
{
        Kernel *k = userdata;

        return sd_bus_message_append(reply, "t", k->info->created_usec);
}

static int method_delete(sd_bus_message *message, void *userdata, sd_bus_error *error)
{
        Kernel *k = userdata;
        Manager *m = k->manager;
        _cleanup_free_ char *name = strdup(k->name), *path = strdup(k->path);
        int r;

        if (!name || !path)
                return -ENOMEM;

        r = polkit_check(message, ACTION_IMAGE_MANAGE, NULL, "delete kernels", error);
        if (r < 0)
                return r;

        for (Vm *vm = m->vms; vm; vm = vm->next)
                if (streq(vm->record->kernel, k->name))
                        return sd_bus_error_setf(error, BUS_ERROR_BUSY,
                                                 "Kernel '%s' is used by VM '%s': delete the VM "
                                                 "first",
                                                 k->name, vm->record->name);

        r = rm_rf(k->dir);
        if (r < 0)
                return log_error_errno(r, "Failed to remove '%s': %m", k->dir);
        manager_remove_kernel(m, k);
        log_field(LOG_INFO, "KERNEL=%s", "Deleted kernel '%s'", name);
        manager_emit_object_signal(m, "KernelRemoved", name, path);
        return sd_bus_reply_method_return(message, NULL);
}

int kernel_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                       void **found, sd_bus_error *error)
{
        Manager *m = userdata;
        _cleanup_free_ char *name = NULL;
        Kernel *k;
        int r;

        r = sd_bus_path_decode(path, KERNEL_PATH_PREFIX, &name);
        if (r <= 0)
                return r;
        k = manager_find_kernel(m, name);
        if (!k)
                return 0;
        *found = k;
        return 1;
}

int kernel_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes,
                           sd_bus_error *error)
{
        Manager *m = userdata;
        _cleanup_strv_free_ char **l = NULL;
        int r;

        for (Kernel *k = m->kernels; k; k = k->next) {
                r = strv_extend(&l, k->path);
                if (r < 0)
                        return r;
        }
        *nodes = TAKE_PTR(l);
        return 0;
}

const sd_bus_vtable kernel_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", property_get_info_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Version", "s", property_get_info_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Source", "s", property_get_info_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Digest", "s", property_get_info_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("HasInitrd", "b", property_get_has_initrd, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Formats", "as", property_get_formats, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("CreatedAt", "t", property_get_created, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD("Delete", "", "", method_delete, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};
