#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        Image *i = userdata;
        const char *v = NULL;

        if (streq(property, "Name"))
                v = i->info->name;
        else if (streq(property, "Reference"))
                v = i->info->reference;
        else if (streq(property, "Digest"))
                v = i->info->digest;
        else if (streq(property, "Platform"))
                v = i->info->platform;
        return sd_bus_message_append(reply, "s", strempty(v));
}

static int property_get_size(sd_bus *bus, const char *path, const char *interface,
                             const char *property, sd_bus_message *reply, void *userdata,
                             sd_bus_error *error)
{
        Image *i = userdata;

        return sd_bus_message_append(reply, "t", i->info->size_bytes);
}

static int property_get_created(sd_bus *bus, const char *path, const char *interface,
                                const char *property, sd_bus_message *reply, void *userdata,
                                sd_bus_error *error)
{
        Image *i = userdata;

        return sd_bus_message_append(reply, "t", i->info->created_usec);
}

static int append_strv_entry(sd_bus_message *reply, const char *key, char **l)
{
        int r;

        r = sd_bus_message_open_container(reply, 'e', "sv");
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "s", key);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'v', "as");
        if (r < 0)
                return r;
        r = sd_bus_message_append_strv(reply, l);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

static int property_get_config(sd_bus *bus, const char *path, const char *interface,
                               const char *property, sd_bus_message *reply, void *userdata,
                               sd_bus_error *error)
{
        Image *i = userdata;
        char *empty[] = { NULL };
        int r;

        r = sd_bus_message_open_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        r = append_strv_entry(reply, "Entrypoint", i->info->entrypoint ?: empty);
        if (r < 0)
                return r;
        r = append_strv_entry(reply, "Cmd", i->info->cmd ?: empty);
        if (r < 0)
                return r;
        r = append_strv_entry(reply, "Env", i->info->env ?: empty);
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "{sv}", "User", "s", strempty(i->info->user));
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "{sv}", "WorkingDir", "s", strempty(i->info->working_dir));
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

/* Stores "VM 'a'" or "VMs 'a', 'b'" for the VMs whose disk comes from the image, or NULL when
 * none does. */
static int list_vms_using(Manager *m, const char *image, char **ret)
{
        _cleanup_free_ char *list = NULL;
        unsigned n = 0;

        for (Vm *vm = m->vms; vm; vm = vm->next) {
                char *extended;

                if (!streq(vm->record->image, image))
                        continue;
                if (asprintf(&extended, "%s%s'%s'", strempty(list), list ? ", " : "",
                             vm->record->name) < 0)
                        return -ENOMEM;
                free(list);
                list = extended;
                n++;
        }

        if (n == 0) {
                *ret = NULL;
                return 0;
        }
        if (asprintf(ret, "%s %s", n == 1 ? "VM" : "VMs", list) < 0)
                return -ENOMEM;
        return 0;
}

static int method_delete(sd_bus_message *message, void *userdata, sd_bus_error *error)
{
        Image *i = userdata;
        Manager *m = i->manager;
        _cleanup_free_ char *name = strdup(i->name), *path = strdup(i->path), *users = NULL;
        int r;

        if (!name || !path)
                return -ENOMEM;

        r = polkit_check(message, ACTION_IMAGE_MANAGE, NULL, "delete images", error);
        if (r < 0)
                return r;

        r = list_vms_using(m, i->name, &users);
        if (r < 0)
                return r;
        if (users)
                return sd_bus_error_setf(error, BUS_ERROR_BUSY,
                                         "Image '%s' is used by %s: delete %s first", i->name,
                                         users, strchr(users, ',') ? "these VMs" : "the VM");
        if (job_manager_find_running(m->jobs, "pull-image", i->name))
                return sd_bus_error_setf(error, BUS_ERROR_BUSY,
                                         "Image '%s' is being pulled: wait for the pull to "
                                         "finish",
                                         i->name);
        if (job_manager_find_running(m->jobs, "import-image", i->name))
                return sd_bus_error_setf(error, BUS_ERROR_BUSY,
                                         "Image '%s' is being imported: wait for the import to "
                                         "finish",
                                         i->name);

        r = rm_rf(i->dir);
        if (r < 0)
                return log_error_errno(r, "Failed to remove '%s': %m", i->dir);
        manager_remove_image(m, i);
        log_field(LOG_INFO, "IMAGE=%s", "Deleted image '%s'", name);
        manager_emit_object_signal(m, "ImageRemoved", name, path);
        return sd_bus_reply_method_return(message, NULL);
}

int image_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                      void **found, sd_bus_error *error)
{
        Manager *m = userdata;
        _cleanup_free_ char *name = NULL;
        Image *i;
        int r;

        r = sd_bus_path_decode(path, IMAGE_PATH_PREFIX, &name);
        if (r <= 0)
                return r;
        i = manager_find_image(m, name);
        if (!i)
                return 0;
        *found = i;
        return 1;
}

int image_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes,
                          sd_bus_error *error)
{
        Manager *m = userdata;
        _cleanup_strv_free_ char **l = NULL;
        int r;

        for (Image *i = m->images; i; i = i->next) {
                r = strv_extend(&l, i->path);
                if (r < 0)
                        return r;
        }
        *nodes = TAKE_PTR(l);
        return 0;
}

const sd_bus_vtable image_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", property_get_info_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Reference", "s", property_get_info_string, 0,
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Digest", "s", property_get_info_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Platform", "s", property_get_info_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("SizeBytes", "t", property_get_size, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Config", "a{sv}", property_get_config, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("CreatedAt", "t", property_get_created, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD("Delete", "", "", method_delete, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};
