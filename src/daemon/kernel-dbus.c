#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "bus-error.h"
#include "catalog.h"
#include "config.h"
#include "fileio.h"
#include "kernel-pull.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "name.h"
#include "polkit.h"
#include "store.h"
#include "strv.h"

/* A record.json larger than this is not one bangerd wrote. */
#define KERNEL_RECORD_MAX_SIZE (1024 * 1024)

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

/* PullKernel */

/* Serialises catalog pulls, so concurrent VM creations that need the same missing kernel
 * download it once: the first pulls it and the others find it in the store. */
static pthread_mutex_t catalog_pull_lock = PTHREAD_MUTEX_INITIALIZER;

static void on_catalog_progress(const char *step, uint64_t done, uint64_t total, void *userdata)
{
        job_report(userdata, step, done, total);
}

static int kernel_read_record(const char *dir, KernelInfo **ret)
{
        _cleanup_free_ char *path = NULL, *json = NULL;
        int r;

        if (asprintf(&path, "%s/%s", dir, STORE_RECORD) < 0)
                return -ENOMEM;
        r = read_full_file(path, KERNEL_RECORD_MAX_SIZE, &json, NULL);
        if (r < 0)
                return r;
        return kernel_info_from_json(json, ret);
}

static int kernel_pull_locked(Job *j, const KernelPullRequest *req, const char *final_dir,
                              KernelInfo **ret_info, char **ret_error)
{
        _cleanup_(kernel_info_freep) KernelInfo *info = NULL;
        _cleanup_free_ char *tmp = NULL, *json = NULL;
        int r;

        if (req->reuse_existing && kernel_read_record(final_dir, &info) >= 0) {
                *ret_info = TAKE_PTR(info);
                return 1;
        }

        r = store_make_temp_dir(req->state_dir, STORE_KERNELS, &tmp);
        if (r < 0) {
                if (asprintf(ret_error, "Failed to create a directory under '%s': %s",
                             req->state_dir, strerror(-r)) < 0)
                        *ret_error = NULL;
                return r;
        }

        CatalogPullOptions opts = {
                .catalog_url = req->catalog_url,
                .name = req->name,
                .arch = req->arch,
                .output_dir = tmp,
                .init_path = BANGER_LIBEXECDIR "/banger-init",
                .agent_path = BANGER_LIBEXECDIR "/banger-agent",
                .cancel = &j->cancel,
                .progress = on_catalog_progress,
                .userdata = j,
        };
        r = catalog_pull_kernel(&opts, &info, ret_error);
        if (r < 0)
                goto fail;

        r = kernel_info_to_json(info, &json);
        if (r >= 0)
                r = store_publish_with_record(tmp, json, final_dir);
        if (r < 0) {
                if (asprintf(ret_error, "Failed to store kernel '%s': %s", req->name,
                             strerror(-r)) < 0)
                        *ret_error = NULL;
                goto fail;
        }
        *ret_info = TAKE_PTR(info);
        return 0;

fail:
        (void)rm_rf(tmp);
        return r;
}

int kernel_pull_into_store(Job *j, const KernelPullRequest *req, KernelInfo **ret_info,
                           char **ret_dir, char **ret_error)
{
        _cleanup_(kernel_info_freep) KernelInfo *info = NULL;
        _cleanup_free_ char *final_dir = NULL;
        int r;

        r = store_object_dir(req->state_dir, STORE_KERNELS, req->name, &final_dir);
        if (r < 0)
                return r;

        pthread_mutex_lock(&catalog_pull_lock);
        r = kernel_pull_locked(j, req, final_dir, &info, ret_error);
        pthread_mutex_unlock(&catalog_pull_lock);
        if (r < 0)
                return r;

        *ret_info = TAKE_PTR(info);
        *ret_dir = TAKE_PTR(final_dir);
        return r;
}

typedef struct PullKernelParams {
        Manager *manager;
        KernelPullRequest request;
        char *state_dir;
        char *catalog_url;
        char *name;
        char *arch;
        KernelInfo *info;
        char *dir;
} PullKernelParams;

static void pull_kernel_params_free(void *userdata)
{
        PullKernelParams *p = userdata;

        if (!p)
                return;
        free(p->state_dir);
        free(p->catalog_url);
        free(p->name);
        free(p->arch);
        kernel_info_free(p->info);
        free(p->dir);
        free(p);
}

static int run_pull_kernel(Job *j, void *userdata, char **ret_error)
{
        PullKernelParams *p = userdata;
        int r;

        r = kernel_pull_into_store(j, &p->request, &p->info, &p->dir, ret_error);
        return r < 0 ? r : 0;
}

static int complete_pull_kernel(Job *j, int result, const char *error, void *userdata,
                                char **ret_error)
{
        PullKernelParams *p = userdata;
        Manager *m = p->manager;
        Kernel *k;
        int r;

        if (result < 0) {
                log_field(LOG_ERR, "KERNEL=%s", "Failed to pull kernel '%s' from '%s': %s", p->name,
                          p->catalog_url, strempty(error));
                return result;
        }
        r = manager_add_kernel(m, p->dir, TAKE_PTR(p->info), &k);
        if (r < 0)
                return r;
        log_field(LOG_INFO, "KERNEL=%s", "Pulled kernel '%s' from '%s'", k->name, p->catalog_url);
        manager_emit_object_signal(m, "KernelNew", k->name, k->path);
        return job_set_result(j, k->path);
}

int method_pull_kernel(sd_bus_message *message, void *userdata, sd_bus_error *error)
{
        Manager *m = userdata;
        _cleanup_free_ char *bad_name = NULL;
        PullKernelParams *p;
        const char *name;
        Job *j;
        int r;

        r = sd_bus_message_read(message, "s", &name);
        if (r < 0)
                return r;
        r = bus_reject_options(message, "PullKernel", error);
        if (r < 0 || sd_bus_error_is_set(error))
                return r;
        if (kernel_name_check(name, &bad_name) < 0)
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT, "%s", bad_name);
        /* Authorization first, so an unauthorized caller learns nothing of the configuration. */
        r = polkit_check(message, ACTION_IMAGE_MANAGE, NULL, "pull kernels", error);
        if (r < 0 || sd_bus_error_is_set(error))
                return r;
        if (!m->config->catalog_url)
                return sd_bus_error_setf(error, BUS_ERROR_NOT_FOUND,
                                         "No kernel catalog is configured: set [Kernel] "
                                         "CatalogURL in bangerd.conf, or import kernel '%s' "
                                         "with 'bangerctl kernel import'",
                                         name);

        p = calloc(1, sizeof(PullKernelParams));
        if (!p)
                return -ENOMEM;
        p->manager = m;
        p->state_dir = strdup(m->config->state_dir);
        p->catalog_url = strdup(m->config->catalog_url);
        p->name = strdup(name);
        p->arch = strdup(m->config->architecture);
        if (!p->state_dir || !p->catalog_url || !p->name || !p->arch) {
                pull_kernel_params_free(p);
                return -ENOMEM;
        }
        p->request = (KernelPullRequest){
                .state_dir = p->state_dir,
                .catalog_url = p->catalog_url,
                .name = p->name,
                .arch = p->arch,
        };

        /* Pulls of one name share a job, and the job that starts downloads again even when the
         * kernel is in the store, so a pull also updates it. */
        r = job_start(m->jobs, "pull-kernel", name, run_pull_kernel, complete_pull_kernel, p,
                      pull_kernel_params_free, &j);
        if (r < 0)
                return log_error_errno(r, "Failed to start pulling kernel '%s': %m", name);
        return sd_bus_reply_method_return(message, "o", j->path);
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
