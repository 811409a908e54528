#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <systemd/sd-id128.h>

#include "bus-error.h"
#include "config.h"
#include "disk.h"
#include "fileio.h"
#include "guest-config.h"
#include "helper-bus.h"
#include "image-import.h"
#include "kernel-pull.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "name.h"
#include "polkit.h"
#include "scope.h"
#include "strv.h"
#include "vm-limits.h"
#include "vm-workdisk.h"
#include "vm.h"

static uint64_t now_realtime_usec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

static int set_error_text(char **ret_error, const char *format, const char *a, int r)
{
        if (asprintf(ret_error, format, a, strerror(-r)) < 0)
                *ret_error = NULL;
        return r;
}

void manager_emit_object_signal(Manager *m, const char *member, const char *name, const char *path)
{
        int r;

        r = sd_bus_emit_signal(m->bus, MANAGER_PATH, "org.banger1.Manager", member, "so", name,
                               path);
        if (r < 0)
                log_warning_errno(r, "Failed to emit %s for '%s', ignoring: %m", member, name);
}

static int method_list_vms(sd_bus_message *message, void *userdata, sd_bus_error *error)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        int r;

        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(sssuso)");
        if (r < 0)
                return r;
        for (Vm *vm = m->vms; vm; vm = vm->next) {
                r = sd_bus_message_append(reply, "(sssuso)", vm->record->name,
                                          vm_state_to_string(vm->record->state), vm->record->image,
                                          (uint32_t)vm->record->owner,
                                          strempty(vm->record->address), vm->path);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_list_images(sd_bus_message *message, void *userdata, sd_bus_error *error)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        int r;

        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(ssstto)");
        if (r < 0)
                return r;
        for (Image *i = m->images; i; i = i->next) {
                r = sd_bus_message_append(reply, "(ssstto)", i->name, strempty(i->info->reference),
                                          strempty(i->info->digest), i->info->size_bytes,
                                          i->info->created_usec, i->path);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_list_kernels(sd_bus_message *message, void *userdata, sd_bus_error *error)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        int r;

        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(ssso)");
        if (r < 0)
                return r;
        for (Kernel *k = m->kernels; k; k = k->next) {
                r = sd_bus_message_append(reply, "(ssso)", k->name, strempty(k->info->version),
                                          strempty(k->info->source), k->path);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_get_vm(sd_bus_message *message, void *userdata, sd_bus_error *error)
{
        Manager *m = userdata;
        const char *name;
        Vm *vm;
        int r;

        r = sd_bus_message_read(message, "s", &name);
        if (r < 0)
                return r;
        vm = manager_find_vm(m, name);
        if (!vm)
                return sd_bus_error_setf(error, BUS_ERROR_NOT_FOUND,
                                         "No VM named '%s': list VMs with 'bangerctl vm list'",
                                         name);
        return sd_bus_reply_method_return(message, "o", vm->path);
}

static int method_get_image(sd_bus_message *message, void *userdata, sd_bus_error *error)
{
        Manager *m = userdata;
        _cleanup_free_ char *normalized = NULL;
        const char *name;
        Image *i;
        int r;

        r = sd_bus_message_read(message, "s", &name);
        if (r < 0)
                return r;
        i = manager_find_image(m, name);
        if (!i && oci_reference_normalize(name, &normalized) >= 0)
                i = manager_find_image(m, normalized);
        if (!i)
                return sd_bus_error_setf(error, BUS_ERROR_NOT_FOUND,
                                         "No image named '%s': pull it with 'bangerctl image "
                                         "pull %s'",
                                         name, name);
        return sd_bus_reply_method_return(message, "o", i->path);
}

static int method_get_kernel(sd_bus_message *message, void *userdata, sd_bus_error *error)
{
        Manager *m = userdata;
        const char *name;
        Kernel *k;
        int r;

        r = sd_bus_message_read(message, "s", &name);
        if (r < 0)
                return r;
        k = manager_find_kernel(m, name);
        if (!k)
                return sd_bus_error_setf(error, BUS_ERROR_NOT_FOUND,
                                         "No kernel named '%s': list kernels with 'bangerctl "
                                         "kernel list'",
                                         name);
        return sd_bus_reply_method_return(message, "o", k->path);
}

static int reply_job(sd_bus_message *message, Job *j)
{
        return sd_bus_reply_method_return(message, "o", j->path);
}

/* PullImage */

typedef struct PullParams {
        Manager *manager;
        char *name; /* normalised reference, the store key */
        char *reference;
        char *cache_dir;
        char *state_dir;
        char **insecure_registries;
        char *credentials_file;
        char *ca_file;
        char **mirrors;
        char *os;
        char *architecture;
        char *final_dir;
        bool reuse_existing; /* an image already in the store counts as pulled */
        ImageInfo *info;
} PullParams;

static void pull_params_free(void *userdata)
{
        PullParams *p = userdata;

        if (!p)
                return;
        free(p->name);
        free(p->reference);
        free(p->cache_dir);
        free(p->state_dir);
        strv_free(p->insecure_registries);
        free(p->credentials_file);
        free(p->ca_file);
        strv_free(p->mirrors);
        free(p->os);
        free(p->architecture);
        free(p->final_dir);
        image_info_free(p->info);
        free(p);
}

static void on_pull_progress(ImagePullStep step, uint64_t done, uint64_t total, void *userdata)
{
        job_report(userdata, image_pull_step_to_string(step), done, total);
}

static int write_record_in(const char *dir, const char *json)
{
        _cleanup_free_ char *path = NULL;

        if (asprintf(&path, "%s/%s", dir, STORE_RECORD) < 0)
                return -ENOMEM;
        return write_file_atomic(path, json, strlen(json), 0644);
}

static int pull_into_temp_dir(Job *j, PullParams *p, char **ret_error)
{
        _cleanup_free_ char *tmp = NULL, *output = NULL, *json = NULL, *blobs = NULL;
        int r;

        r = store_make_temp_dir(p->state_dir, STORE_IMAGES, &tmp);
        if (r < 0)
                return set_error_text(ret_error, "Failed to create a directory under '%s': %s",
                                      p->state_dir, r);
        if (asprintf(&output, "%s/rootfs.ext4", tmp) < 0 ||
            asprintf(&blobs, "%s/blobs", p->cache_dir) < 0) {
                r = -ENOMEM;
                goto fail;
        }

        ImagePullOptions opts = {
                .reference = p->reference,
                .blob_cache_dir = blobs,
                .output_path = output,
                .insecure_registries = p->insecure_registries,
                .ca_file = p->ca_file,
                .credentials_file = p->credentials_file,
                .mirrors = p->mirrors,
                .os = p->os,
                .architecture = p->architecture,
                .progress = on_pull_progress,
                .userdata = j,
                .cancel = &j->cancel,
        };
        r = image_pull(&opts, &p->info, ret_error);
        if (r < 0)
                goto fail;

        r = image_info_to_json(p->info, &json);
        if (r >= 0)
                r = store_publish_with_record(tmp, json, p->final_dir);
        if (r < 0) {
                set_error_text(ret_error, "Failed to store image '%s': %s", p->name, r);
                goto fail;
        }
        return 0;

fail:
        (void)rm_rf(tmp);
        return r;
}

/* Store names of the image pulls in flight, shared by PullImage jobs and the pulls that
 * CreateVM jobs start. A pull of a name that is in flight waits for it, so concurrent requests
 * for one image download it once. */
typedef struct RunningPull {
        const char *name; /* owned by the pulling job's PullParams */
        struct RunningPull *next;
} RunningPull;

static pthread_mutex_t image_pulls_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t image_pulls_changed = PTHREAD_COND_INITIALIZER;
static RunningPull *image_pulls_running;

static bool image_pull_is_running(const char *name)
{
        for (RunningPull *i = image_pulls_running; i; i = i->next)
                if (streq(i->name, name))
                        return true;
        return false;
}

static int read_stored_image(const char *dir, ImageInfo **ret)
{
        _cleanup_free_ char *path = NULL, *json = NULL;
        int r;

        if (asprintf(&path, "%s/%s", dir, STORE_RECORD) < 0)
                return -ENOMEM;
        r = read_full_file(path, 1024 * 1024, &json, NULL);
        if (r < 0)
                return r;
        return image_info_from_json(json, ret);
}

/* Pulls p->reference into p->final_dir and stores its record in p->info. When a pull of the
 * same name was in flight, waits for it. A peer that stored the image counts as success and
 * its record is used, without another download. With p->reuse_existing an image already in
 * the store is used as well. */
static int image_pull_into_store(Job *j, PullParams *p, char **ret_error)
{
        RunningPull self = { .name = p->name };
        bool waited = false;
        int r;

        pthread_mutex_lock(&image_pulls_lock);
        while (image_pull_is_running(p->name)) {
                waited = true;
                pthread_cond_wait(&image_pulls_changed, &image_pulls_lock);
        }
        if ((waited || p->reuse_existing) && read_stored_image(p->final_dir, &p->info) >= 0) {
                pthread_mutex_unlock(&image_pulls_lock);
                log_debug("Image '%s' was stored by another pull, using it", p->name);
                return 0;
        }
        self.next = image_pulls_running;
        image_pulls_running = &self;
        pthread_mutex_unlock(&image_pulls_lock);

        r = pull_into_temp_dir(j, p, ret_error);

        pthread_mutex_lock(&image_pulls_lock);
        for (RunningPull **i = &image_pulls_running; *i; i = &(*i)->next)
                if (*i == &self) {
                        *i = self.next;
                        break;
                }
        pthread_cond_broadcast(&image_pulls_changed);
        pthread_mutex_unlock(&image_pulls_lock);
        return r;
}

static int run_pull(Job *j, void *userdata, char **ret_error)
{
        return image_pull_into_store(j, userdata, ret_error);
}

static int complete_pull(Job *j, int result, const char *error, void *userdata, char **ret_error)
{
        PullParams *p = userdata;
        Manager *m = p->manager;
        Image *i;
        int r;

        if (result < 0)
                return result;
        r = manager_add_image(m, p->final_dir, TAKE_PTR(p->info), &i);
        if (r < 0)
                return r;
        log_field(LOG_INFO, "IMAGE=%s", "Pulled image '%s' (%s)", i->name,
                  strempty(i->info->digest));
        manager_emit_object_signal(m, "ImageNew", i->name, i->path);
        return job_set_result(j, i->path);
}

/* Copies what a pull of reference needs from the configuration, for a worker. */
static int pull_params_new(Manager *m, const char *reference, const char *name, PullParams **ret)
{
        PullParams *p = calloc(1, sizeof(PullParams));

        if (!p)
                return -ENOMEM;
        p->manager = m;
        p->name = strdup(name);
        p->reference = strdup(reference);
        p->cache_dir = strdup(m->config->cache_dir);
        p->state_dir = strdup(m->config->state_dir);
        p->insecure_registries = strv_copy(m->config->insecure_registries);
        p->mirrors = strv_copy(m->config->mirrors);
        p->os = strdup(m->config->os);
        p->architecture = strdup(m->config->architecture);
        if (!p->name || !p->reference || !p->cache_dir || !p->state_dir ||
            !p->insecure_registries || !p->mirrors || !p->os || !p->architecture ||
            (m->config->credentials_file &&
             !(p->credentials_file = strdup(m->config->credentials_file))) ||
            (m->config->ca_file && !(p->ca_file = strdup(m->config->ca_file))) ||
            store_object_dir(m->config->state_dir, STORE_IMAGES, name, &p->final_dir) < 0) {
                pull_params_free(p);
                return -ENOMEM;
        }
        *ret = p;
        return 0;
}

static int method_pull_image(sd_bus_message *message, void *userdata, sd_bus_error *error)
{
        Manager *m = userdata;
        _cleanup_free_ char *name = NULL;
        const char *reference;
        PullParams *p;
        Job *j;
        int r;

        r = sd_bus_message_read(message, "s", &reference);
        if (r < 0)
                return r;
        r = bus_reject_options(message, "PullImage", error);
        if (r < 0 || sd_bus_error_is_set(error))
                return r;

        r = oci_reference_normalize(reference, &name);
        if (r < 0)
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                         "Invalid image reference '%s': use NAME[:TAG] or "
                                         "REGISTRY/NAME[:TAG|@DIGEST]",
                                         reference);

        r = polkit_check(message, ACTION_IMAGE_MANAGE, NULL, "pull images", error);
        if (r < 0)
                return r;

        r = pull_params_new(m, reference, name, &p);
        if (r < 0)
                return r;

        r = job_start(m->jobs, "pull-image", name, run_pull, complete_pull, p, pull_params_free,
                      &j);
        if (r < 0)
                return log_error_errno(r, "Failed to start pulling '%s': %m", name);
        return reply_job(message, j);
}

/* ImportImage */

typedef struct ImageImportParams {
        Manager *manager;
        int source_fd;
        char *name; /* as given, or NULL to take it from the source */
        ImageImportFormat format;
        char *state_dir;
        char *os;
        char *architecture;
        char *final_dir; /* known once the import has named the image */
        ImageInfo *info;
} ImageImportParams;

static void image_import_params_free(void *userdata)
{
        ImageImportParams *p = userdata;

        if (!p)
                return;
        safe_close(p->source_fd);
        free(p->name);
        free(p->state_dir);
        free(p->os);
        free(p->architecture);
        free(p->final_dir);
        image_info_free(p->info);
        free(p);
}

static int run_image_import(Job *j, void *userdata, char **ret_error)
{
        ImageImportParams *p = userdata;
        _cleanup_free_ char *tmp = NULL, *output = NULL, *json = NULL;
        int r;

        r = store_make_temp_dir(p->state_dir, STORE_IMAGES, &tmp);
        if (r < 0)
                return set_error_text(ret_error, "Failed to create a directory under '%s': %s",
                                      p->state_dir, r);
        if (asprintf(&output, "%s/rootfs.ext4", tmp) < 0) {
                r = -ENOMEM;
                goto fail;
        }

        ImageImportOptions opts = {
                .source_fd = p->source_fd,
                .format = p->format,
                .name = p->name,
                .work_dir = tmp,
                .output_path = output,
                .os = p->os,
                .architecture = p->architecture,
                .progress = on_pull_progress,
                .userdata = j,
                .cancel = &j->cancel,
        };
        r = image_import(&opts, &p->info, ret_error);
        if (r < 0)
                goto fail;

        r = store_object_dir(p->state_dir, STORE_IMAGES, p->info->name, &p->final_dir);
        if (r >= 0)
                r = image_info_to_json(p->info, &json);
        if (r >= 0)
                r = store_publish_with_record(tmp, json, p->final_dir);
        if (r < 0) {
                set_error_text(ret_error, "Failed to store image '%s': %s", p->info->name, r);
                goto fail;
        }
        return 0;

fail:
        (void)rm_rf(tmp);
        return r;
}

static int complete_image_import(Job *j, int result, const char *error, void *userdata,
                                 char **ret_error)
{
        ImageImportParams *p = userdata;
        Manager *m = p->manager;
        Image *i;
        int r;

        if (result < 0)
                return result;
        r = manager_add_image(m, p->final_dir, TAKE_PTR(p->info), &i);
        if (r < 0)
                return r;
        log_field(LOG_INFO, "IMAGE=%s", "Imported image '%s' (%s)", i->name,
                  strempty(i->info->digest));
        manager_emit_object_signal(m, "ImageNew", i->name, i->path);
        return job_set_result(j, i->path);
}

static int read_image_import_options(sd_bus_message *message, ImageImportParams *p,
                                     sd_bus_error *error)
{
        int r;

        r = sd_bus_message_enter_container(message, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(message, 'e', "sv")) > 0) {
                const char *key, *s;

                r = sd_bus_message_read(message, "s", &key);
                if (r < 0)
                        return r;
                if (!streq(key, "name") && !streq(key, "format"))
                        return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                                 "Unknown ImportImage option '%s': the options "
                                                 "are 'name' and 'format'",
                                                 key);
                r = sd_bus_message_read(message, "v", "s", &s);
                if (r < 0)
                        return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                                 "ImportImage option '%s' must be a string", key);
                if (streq(key, "name")) {
                        _cleanup_free_ char *normalized = NULL;

                        if (oci_reference_normalize(s, &normalized) < 0)
                                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                                         "Invalid image name '%s': use "
                                                         "NAME[:TAG] or REGISTRY/NAME[:TAG]",
                                                         s);
                        free(p->name);
                        p->name = strdup(s);
                        if (!p->name)
                                return -ENOMEM;
                } else {
                        p->format = image_import_format_from_string(s);
                        if (p->format < 0)
                                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                                         "Invalid image format '%s': use "
                                                         "oci-layout, docker-archive or rootfs",
                                                         s);
                }
                r = sd_bus_message_exit_container(message);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(message);
}

static int method_import_image(sd_bus_message *message, void *userdata, sd_bus_error *error)
{
        Manager *m = userdata;
        _cleanup_free_ char *target = NULL;
        ImageImportParams *p;
        struct stat st;
        int fd, r;
        Job *j;

        p = calloc(1, sizeof(ImageImportParams));
        if (!p)
                return -ENOMEM;
        p->manager = m;
        p->source_fd = -EBADF;
        p->format = _IMAGE_IMPORT_FORMAT_INVALID;

        r = sd_bus_message_read(message, "h", &fd);
        if (r >= 0) {
                p->source_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
                if (p->source_fd < 0)
                        r = -errno;
        }
        if (r >= 0)
                r = read_image_import_options(message, p, error);
        if (r >= 0 && !sd_bus_error_is_set(error) && fstat(p->source_fd, &st) < 0)
                r = -errno;
        if (r < 0 || sd_bus_error_is_set(error)) {
                image_import_params_free(p);
                return r;
        }

        r = polkit_check(message, ACTION_IMAGE_MANAGE, NULL, "import images", error);
        if (r < 0) {
                image_import_params_free(p);
                return r;
        }

        /* An unnamed import is keyed by its source file, so the same source is not imported
         * twice at once. */
        if (p->name)
                r = oci_reference_normalize(p->name, &target);
        else
                r = asprintf(&target, "source %lu:%lu", (unsigned long)st.st_dev,
                             (unsigned long)st.st_ino) < 0
                            ? -ENOMEM
                            : 0;
        p->state_dir = strdup(m->config->state_dir);
        p->os = strdup(m->config->os);
        p->architecture = strdup(m->config->architecture);
        if (r < 0 || !p->state_dir || !p->os || !p->architecture) {
                image_import_params_free(p);
                return -ENOMEM;
        }

        r = job_start(m->jobs, "import-image", target, run_image_import, complete_image_import, p,
                      image_import_params_free, &j);
        if (r < 0)
                return log_error_errno(r, "Failed to start importing '%s': %m", target);
        return reply_job(message, j);
}

/* ImportKernel */

typedef struct ImportParams {
        Manager *manager;
        int source_fd;
        int modules_fd;
        char *name;
        char *source_name;
        char *state_dir;
        char *final_dir;
        KernelInfo *info;
} ImportParams;

static void import_params_free(void *userdata)
{
        ImportParams *p = userdata;

        if (!p)
                return;
        safe_close(p->source_fd);
        safe_close(p->modules_fd);
        free(p->name);
        free(p->source_name);
        free(p->state_dir);
        free(p->final_dir);
        kernel_info_free(p->info);
        free(p);
}

static int run_import(Job *j, void *userdata, char **ret_error)
{
        ImportParams *p = userdata;
        _cleanup_free_ char *tmp = NULL, *json = NULL, *message = NULL;
        int r;

        r = store_make_temp_dir(p->state_dir, STORE_KERNELS, &tmp);
        if (r < 0)
                return set_error_text(ret_error, "Failed to create a directory under '%s': %s",
                                      p->state_dir, r);

        job_report(j, "build", 0, 0);
        KernelImportOptions opts = {
                .source_fd = p->source_fd,
                .modules_fd = p->modules_fd,
                .source_name = p->source_name,
                .name = p->name,
                .output_dir = tmp,
                .init_path = BANGER_LIBEXECDIR "/banger-init",
                .agent_path = BANGER_LIBEXECDIR "/banger-agent",
        };
        r = kernel_import(&opts, &p->info, ret_error);
        if (r < 0)
                goto fail;

        r = kernel_name_check(p->info->name, &message);
        if (r < 0) {
                *ret_error = TAKE_PTR(message);
                goto fail;
        }
        r = store_object_dir(p->state_dir, STORE_KERNELS, p->info->name, &p->final_dir);
        if (r >= 0)
                r = kernel_info_to_json(p->info, &json);
        if (r >= 0)
                r = store_publish_with_record(tmp, json, p->final_dir);
        if (r < 0) {
                set_error_text(ret_error, "Failed to store kernel '%s': %s", p->info->name, r);
                goto fail;
        }
        return 0;

fail:
        (void)rm_rf(tmp);
        return r;
}

static int complete_import(Job *j, int result, const char *error, void *userdata, char **ret_error)
{
        ImportParams *p = userdata;
        Manager *m = p->manager;
        Kernel *k;
        int r;

        if (result < 0)
                return result;
        r = manager_add_kernel(m, p->final_dir, TAKE_PTR(p->info), &k);
        if (r < 0)
                return r;
        log_field(LOG_INFO, "KERNEL=%s", "Imported kernel '%s' from '%s'", k->name,
                  strempty(k->info->source));
        manager_emit_object_signal(m, "KernelNew", k->name, k->path);
        return job_set_result(j, k->path);
}

static int read_import_options(sd_bus_message *message, ImportParams *p, sd_bus_error *error)
{
        int r;

        r = sd_bus_message_enter_container(message, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(message, 'e', "sv")) > 0) {
                const char *key, *s;
                int fd;

                r = sd_bus_message_read(message, "s", &key);
                if (r < 0)
                        return r;
                if (streq(key, "name") || streq(key, "source-name")) {
                        char **field = streq(key, "name") ? &p->name : &p->source_name;

                        r = sd_bus_message_read(message, "v", "s", &s);
                        if (r < 0)
                                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                                         "ImportKernel option '%s' must be a "
                                                         "string",
                                                         key);
                        free(*field);
                        *field = strdup(s);
                        if (!*field)
                                return -ENOMEM;
                } else if (streq(key, "modules")) {
                        r = sd_bus_message_read(message, "v", "h", &fd);
                        if (r < 0)
                                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                                         "ImportKernel option 'modules' must "
                                                         "be a file descriptor");
                        safe_close(p->modules_fd);
                        p->modules_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
                        if (p->modules_fd < 0)
                                return -errno;
                } else
                        return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                                 "Unknown ImportKernel option '%s': the "
                                                 "options are 'name', 'modules' and "
                                                 "'source-name'",
                                                 key);
                r = sd_bus_message_exit_container(message);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(message);
}

static int method_import_kernel(sd_bus_message *message, void *userdata, sd_bus_error *error)
{
        Manager *m = userdata;
        _cleanup_free_ char *bad_name = NULL;
        ImportParams *p;
        const char *target;
        int fd, r;
        Job *j;

        p = calloc(1, sizeof(ImportParams));
        if (!p)
                return -ENOMEM;
        p->manager = m;
        p->source_fd = -EBADF;
        p->modules_fd = -EBADF;

        r = sd_bus_message_read(message, "h", &fd);
        if (r >= 0) {
                p->source_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
                if (p->source_fd < 0)
                        r = -errno;
        }
        if (r >= 0)
                r = read_import_options(message, p, error);
        if (r >= 0 && !sd_bus_error_is_set(error) && p->name &&
            kernel_name_check(p->name, &bad_name) < 0)
                r = sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT, "%s", bad_name);
        if (r >= 0 && !sd_bus_error_is_set(error))
                r = polkit_check(message, ACTION_IMAGE_MANAGE, NULL, "import kernels", error);
        if (r >= 0 && !sd_bus_error_is_set(error) && !p->source_name) {
                p->source_name = strdup("kernel");
                if (!p->source_name)
                        r = -ENOMEM;
        }
        if (r >= 0 && !sd_bus_error_is_set(error)) {
                p->state_dir = strdup(m->config->state_dir);
                if (!p->state_dir)
                        r = -ENOMEM;
        }
        if (r < 0 || sd_bus_error_is_set(error)) {
                import_params_free(p);
                return r;
        }

        /* Imports coalesce on the kernel name when one is given, else on the source. */
        target = p->name ?: p->source_name;
        r = job_start(m->jobs, "import-kernel", target, run_import, complete_import, p,
                      import_params_free, &j);
        if (r < 0)
                return log_error_errno(r, "Failed to start importing a kernel: %m");
        return reply_job(message, j);
}

/* CreateVM */

typedef struct CreateParams {
        Manager *manager;
        VmRecord *record;
        char *state_dir;
        char *final_dir;
        char *image_rootfs;
        GuestConfig guest;
        VmWorkDiskSpec work;
        bool start;
        VmBootParams boot;
        pid_t pid;
        uint64_t start_time;

        /* Set when the kernel is [VM] DefaultKernel and must come from the catalog first. */
        bool pull_kernel;
        KernelPullRequest kernel_pull;
        char *catalog_url;
        char *arch;
        KernelInfo *pulled_kernel; /* the record of the pulled (or already stored) kernel */
        char *pulled_kernel_dir;

        /* Set when the image is not in the store and the job pulls it first. */
        PullParams *image_pull;

        /* The request as received, with the defaults filled in, to match a repeated CreateVM. */
        char *request_image;
        char *request_kernel; /* NULL when the request named no kernel */
} CreateParams;

static void create_params_free(void *userdata)
{
        CreateParams *p = userdata;

        if (!p)
                return;
        vm_record_free(p->record);
        free(p->state_dir);
        free(p->final_dir);
        free(p->image_rootfs);
        free(p->guest.hostname);
        strv_free(p->guest.argv);
        strv_free(p->guest.env);
        free(p->guest.workdir);
        free(p->guest.user);
        free(p->guest.agent_port);
        vm_work_disk_spec_done(&p->work);
        vm_boot_params_done(&p->boot);
        free(p->catalog_url);
        free(p->arch);
        kernel_info_free(p->pulled_kernel);
        free(p->pulled_kernel_dir);
        pull_params_free(p->image_pull);
        free(p->request_image);
        free(p->request_kernel);
        free(p);
}

static int concat_argv(char **entrypoint, char **cmd, char ***ret)
{
        _cleanup_strv_free_ char **l = strv_copy(entrypoint);
        int r;

        if (!l)
                return -ENOMEM;
        for (char **c = cmd; c && *c; c++) {
                r = strv_extend(&l, *c);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

/* Takes the root disk and the guest configuration from the image, on the loop or, for an image
 * the job pulled, in the worker. */
static int fill_image_params(CreateParams *p, const ImageInfo *info, const char *image_dir)
{
        if (asprintf(&p->image_rootfs, "%s/rootfs.ext4", image_dir) < 0)
                return -ENOMEM;
        p->guest.hostname = strdup(p->record->name);
        p->guest.env = strv_copy(info->env);
        p->guest.workdir = info->working_dir ? strdup(info->working_dir) : NULL;
        p->guest.user = info->user ? strdup(info->user) : NULL;
        p->guest.agent_port = strdup(GUEST_AGENT_PORT_NAME);
        if (!p->guest.hostname || !p->guest.env || !p->guest.agent_port ||
            (info->working_dir && !p->guest.workdir) || (info->user && !p->guest.user))
                return -ENOMEM;
        return concat_argv(info->entrypoint, info->cmd, &p->guest.argv);
}

/* Generates the VM's host key in dir and builds its work disk there. */
static int build_work_disk(CreateParams *p, const char *dir, char **ret_error)
{
        _cleanup_free_ char *config = NULL, *message = NULL;
        int r;

        r = guest_config_format(&p->guest, &config);
        if (r >= 0)
                r = vm_work_disk_build(dir, config, &p->work, p->record, &message);
        if (r < 0 && asprintf(ret_error, "Failed to build the work disk of VM '%s': %s",
                              p->record->name, message ?: strerror(-r)) < 0)
                *ret_error = NULL;
        return r;
}

static int run_create(Job *j, void *userdata, char **ret_error)
{
        CreateParams *p = userdata;
        _cleanup_free_ char *tmp = NULL, *root = NULL, *json = NULL;
        int r;

        if (p->image_pull) {
                r = image_pull_into_store(j, p->image_pull, ret_error);
                if (r < 0)
                        return r;
                r = fill_image_params(p, p->image_pull->info, p->image_pull->final_dir);
                if (r < 0)
                        return r;
        }

        if (p->pull_kernel) {
                r = kernel_pull_into_store(j, &p->kernel_pull, &p->pulled_kernel,
                                           &p->pulled_kernel_dir, ret_error);
                if (r < 0)
                        return r;
        }

        r = store_make_temp_dir(p->state_dir, STORE_VMS, &tmp);
        if (r < 0)
                return set_error_text(ret_error, "Failed to create a directory under '%s': %s",
                                      p->state_dir, r);
        if (asprintf(&root, "%s/root.ext4", tmp) < 0) {
                r = -ENOMEM;
                goto fail;
        }

        job_report(j, "build", 0, 0);
        r = disk_clone(p->image_rootfs, root);
        if (r < 0) {
                set_error_text(ret_error, "Failed to copy the root disk of image '%s': %s",
                               p->record->image, r);
                goto fail;
        }
        r = build_work_disk(p, tmp, ret_error);
        if (r < 0)
                goto fail;

        p->record->state = VM_CREATED;
        r = vm_record_to_json(p->record, &json);
        if (r >= 0)
                r = write_record_in(tmp, json);
        if (r >= 0 && renameat2(AT_FDCWD, tmp, AT_FDCWD, p->final_dir, RENAME_NOREPLACE) < 0)
                r = negative_errno();
        if (r < 0) {
                set_error_text(ret_error, "Failed to store VM '%s': %s", p->record->name, r);
                goto fail;
        }
        free(tmp);
        tmp = NULL;

        if (!p->start)
                return 0;

        job_report(j, "boot", 0, 0);
        r = vm_boot(&p->boot, &p->pid, &p->start_time, ret_error);
        if (r < 0) {
                (void)rm_rf(p->final_dir);
                (void)rm_rf(p->boot.runtime_dir);
        }
        return r;

fail:
        (void)rm_rf(tmp);
        return r;
}

static int complete_create(Job *j, int result, const char *error, void *userdata, char **ret_error)
{
        CreateParams *p = userdata;
        Manager *m = p->manager;
        Vm *vm;
        int r;

        /* An image or kernel pulled for this VM stays in the store even when the VM failed. */
        if (p->image_pull && p->image_pull->info &&
            !manager_find_image(m, p->image_pull->info->name)) {
                Image *i;

                r = manager_add_image(m, p->image_pull->final_dir, TAKE_PTR(p->image_pull->info),
                                      &i);
                if (r < 0)
                        return r;
                log_field(LOG_INFO, "IMAGE=%s", "Pulled image '%s' (%s)", i->name,
                          strempty(i->info->digest));
                manager_emit_object_signal(m, "ImageNew", i->name, i->path);
        }
        if (p->pulled_kernel && !manager_find_kernel(m, p->pulled_kernel->name)) {
                Kernel *k;

                r = manager_add_kernel(m, p->pulled_kernel_dir, TAKE_PTR(p->pulled_kernel), &k);
                if (r < 0)
                        return r;
                log_field(LOG_INFO, "KERNEL=%s", "Pulled kernel '%s' from '%s'", k->name,
                          p->catalog_url);
                manager_emit_object_signal(m, "KernelNew", k->name, k->path);
        }
        if (result < 0)
                return result;

        r = manager_add_vm(m, p->final_dir, TAKE_PTR(p->record), &vm);
        if (r < 0)
                return r;
        log_field(LOG_INFO, "VM=%s", "Created VM '%s' from image '%s' with host key %s",
                  vm->record->name, vm->record->image, vm->record->host_key_fingerprint);
        manager_emit_object_signal(m, "VMNew", vm->record->name, vm->path);
        manager_update_known_hosts(m);

        if (p->start) {
                vm->record->pid = p->pid;
                vm->record->start_time = p->start_time;
                vm_boot_params_take_network(&p->boot, vm->record);
                r = vm_watch_process(vm);
                if (r < 0)
                        log_warning_errno(r, "Failed to watch process %d of VM '%s': %m",
                                          (int)p->pid, vm->record->name);
                vm_set_state(vm, VM_RUNNING, NULL);
        }
        return job_set_result(j, vm->path);
}

typedef struct CreateSpec {
        const char *image;
        const char *kernel;
        uint32_t vcpus;
        uint32_t memory_mib;
        int start;
        VmWorkDiskRequest work;
} CreateSpec;

static void create_spec_done(CreateSpec *spec)
{
        vm_work_disk_request_done(&spec->work);
}

/* Reads the value of a work disk key of the CreateVM spec. Returns 1 when key is one, 0 for
 * another key, and -EINVAL for a value of the wrong type. */
static int read_work_disk_key(sd_bus_message *message, const char *key, VmWorkDiskRequest *req)
{
        int r;

        if (streq(key, "ssh_keys")) {
                r = sd_bus_message_enter_container(message, 'v', "as");
                if (r >= 0) {
                        strv_free(req->ssh_keys);
                        req->ssh_keys = NULL;
                        r = sd_bus_message_read_strv(message, &req->ssh_keys);
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(message);
        } else if (streq(key, "work_size_mib"))
                r = sd_bus_message_read(message, "v", "u", &req->size_mib);
        else if (streq(key, "workspace"))
                r = sd_bus_message_read(message, "v", "h", &req->workspace_fd);
        else if (streq(key, "workspace_name"))
                r = sd_bus_message_read(message, "v", "s", &req->workspace_name);
        else if (streq(key, "workspace_path"))
                r = sd_bus_message_read(message, "v", "s", &req->workspace_path);
        else if (streq(key, "workspace_digest"))
                r = sd_bus_message_read(message, "v", "s", &req->workspace_digest);
        else
                return 0;
        return r < 0 ? -EINVAL : 1;
}

static const char *work_disk_key_type(const char *key)
{
        if (streq(key, "ssh_keys"))
                return "as";
        if (streq(key, "work_size_mib"))
                return "u";
        if (streq(key, "workspace"))
                return "h";
        return "s";
}

static int read_create_spec(sd_bus_message *message, CreateSpec *spec, sd_bus_error *error)
{
        int r;

        r = sd_bus_message_enter_container(message, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(message, 'e', "sv")) > 0) {
                const char *key, *type;

                r = sd_bus_message_read(message, "s", &key);
                if (r < 0)
                        return r;
                r = read_work_disk_key(message, key, &spec->work);
                if (r < 0)
                        return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                                 "CreateVM spec key '%s' must have type '%s'", key,
                                                 work_disk_key_type(key));
                if (r > 0) {
                        r = sd_bus_message_exit_container(message);
                        if (r < 0)
                                return r;
                        continue;
                }

                if (streq(key, "image") || streq(key, "kernel"))
                        type = "s";
                else if (streq(key, "vcpus") || streq(key, "memory-mib"))
                        type = "u";
                else if (streq(key, "start"))
                        type = "b";
                else
                        return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                                 "Unknown CreateVM spec key '%s': the keys are "
                                                 "'image', 'kernel', 'vcpus', 'memory-mib', "
                                                 "'start', 'ssh_keys', 'work_size_mib', "
                                                 "'workspace', 'workspace_name', "
                                                 "'workspace_path' and 'workspace_digest'",
                                                 key);

                if (streq(key, "image"))
                        r = sd_bus_message_read(message, "v", type, &spec->image);
                else if (streq(key, "kernel"))
                        r = sd_bus_message_read(message, "v", type, &spec->kernel);
                else if (streq(key, "vcpus"))
                        r = sd_bus_message_read(message, "v", type, &spec->vcpus);
                else if (streq(key, "memory-mib"))
                        r = sd_bus_message_read(message, "v", type, &spec->memory_mib);
                else
                        r = sd_bus_message_read(message, "v", type, &spec->start);
                if (r < 0)
                        return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                                 "CreateVM spec key '%s' must have type '%s'", key,
                                                 type);
                r = sd_bus_message_exit_container(message);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(message);
}

static bool strings_equal(const char *a, const char *b)
{
        if (!a || !b)
                return a == b;
        return streq(a, b);
}

/* Compares a CreateVM request with the one that started the running job p. A request with a
 * workspace never matches: its tar stream is its own. */
static bool create_matches(const CreateParams *p, uid_t uid, const CreateSpec *spec,
                           const VmWorkDiskSpec *work)
{
        return p->record->owner == uid && strings_equal(p->request_image, spec->image) &&
               strings_equal(p->request_kernel, spec->kernel) && p->record->vcpus == spec->vcpus &&
               p->record->memory_mib == spec->memory_mib && p->start == !!spec->start &&
               p->work.size_mib == work->size_mib &&
               streq(p->work.authorized_keys, work->authorized_keys) && p->work.workspace_fd < 0 &&
               work->workspace_fd < 0;
}

static Kernel *default_kernel(Manager *m)
{
        if (m->config->default_kernel)
                return manager_find_kernel(m, m->config->default_kernel);
        if (m->kernels && !m->kernels->next)
                return m->kernels;
        return NULL;
}

/* *ret_image is NULL when the image is not in the store, and *ret_image_name the store name
 * that a pull gives it. */
static int resolve_spec(Manager *m, const char *name, const CreateSpec *spec, Image **ret_image,
                        char **ret_image_name, Kernel **ret_kernel, sd_bus_error *error)
{
        _cleanup_free_ char *normalized = NULL, *bad_resources = NULL;
        Image *image = NULL;
        Kernel *kernel = NULL;
        uint64_t host_memory_mib;
        long host_cpus;
        int r;

        if (!spec->image)
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                         "No image given for VM '%s': pass the spec key "
                                         "'image'",
                                         name);
        image = manager_find_image(m, spec->image);
        if (!image && oci_reference_normalize(spec->image, &normalized) >= 0)
                image = manager_find_image(m, normalized);
        if (!image && !normalized)
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                         "Invalid image reference '%s' for VM '%s': use "
                                         "NAME[:TAG] or REGISTRY/NAME[:TAG|@DIGEST]",
                                         spec->image, name);

        if (spec->kernel) {
                kernel = manager_find_kernel(m, spec->kernel);
                if (!kernel)
                        return sd_bus_error_setf(error, BUS_ERROR_NOT_FOUND,
                                                 "Kernel '%s' is not in the store: import it "
                                                 "with 'bangerctl kernel import'",
                                                 spec->kernel);
        } else {
                kernel = default_kernel(m);
                /* With a catalog, the create job pulls the missing DefaultKernel. */
                if (!kernel && m->config->default_kernel && !m->config->catalog_url)
                        return sd_bus_error_setf(error, BUS_ERROR_NOT_FOUND,
                                                 "DefaultKernel '%s' is not in the store: "
                                                 "import it with 'bangerctl kernel import'",
                                                 m->config->default_kernel);
                if (!kernel && !m->config->default_kernel)
                        return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                                 "No kernel given: import one with 'bangerctl "
                                                 "kernel import' or pass --kernel");
        }

        r = vm_host_resources(&host_cpus, &host_memory_mib);
        if (r < 0)
                return log_error_errno(r, "Failed to read the host's CPU count and memory: %m");
        if (vm_resources_check(name, spec->vcpus, spec->memory_mib, host_cpus, host_memory_mib,
                               &bad_resources) < 0) {
                if (!bad_resources)
                        return -ENOMEM;
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT, "%s", bad_resources);
        }

        if (image)
                normalized = strdup(image->name);
        if (!normalized)
                return -ENOMEM;
        *ret_image = image;
        *ret_image_name = TAKE_PTR(normalized);
        *ret_kernel = kernel;
        return 0;
}

int manager_pick_slot(Manager *m, unsigned *ret)
{
        _cleanup_free_ unsigned *used = NULL;
        size_t n = 0, max = 0;

        for (Vm *vm = m->vms; vm; vm = vm->next)
                max++;
        for (Job *j = m->jobs->jobs; j; j = j->next)
                max++;
        used = calloc(max ?: 1, sizeof(unsigned));
        if (!used)
                return -ENOMEM;

        for (Vm *vm = m->vms; vm; vm = vm->next)
                used[n++] = vm->record->slot;
        /* A VM that is being created is not in m->vms yet, but its record contains its slot. */
        for (Job *j = m->jobs->jobs; j; j = j->next) {
                const CreateParams *p = j->userdata;

                if (j->state == JOB_RUNNING && j->run == run_create && p->record)
                        used[n++] = p->record->slot;
        }
        return vm_slot_pick(used, n, ret);
}

/* Copies the workspace of a checked request into the record. */
static int record_set_workspace(VmRecord *rec, const VmWorkDiskRequest *req)
{
        if (req->workspace_fd < 0)
                return 0;
        rec->workspace_name = strdup(req->workspace_name);
        rec->workspace_path = strdup(req->workspace_path);
        rec->workspace_digest = strdup(req->workspace_digest);
        if (!rec->workspace_name || !rec->workspace_path || !rec->workspace_digest)
                return -ENOMEM;
        return 0;
}

static int new_record(const char *name, uid_t owner, const char *image_name,
                      const char *kernel_name, VmBackend backend, const CreateSpec *spec,
                      VmRecord **ret)
{
        VmRecord *rec = calloc(1, sizeof(VmRecord));
        sd_id128_t id;
        char uuid[SD_ID128_UUID_STRING_MAX];
        int r;

        if (!rec)
                return -ENOMEM;
        r = sd_id128_randomize(&id);
        if (r < 0) {
                vm_record_free(rec);
                return r;
        }
        rec->name = strdup(name);
        rec->id = strdup(sd_id128_to_uuid_string(id, uuid));
        rec->owner = owner;
        rec->image = strdup(image_name);
        rec->kernel = strdup(kernel_name);
        rec->vcpus = spec->vcpus;
        rec->memory_mib = spec->memory_mib;
        rec->created_usec = now_realtime_usec();
        rec->state = VM_CREATED;
        rec->backend = strdup(vm_backend_to_string(backend));
        r = scope_name_for_vm(name, &rec->unit);
        if (r < 0 || !rec->name || !rec->id || !rec->image || !rec->kernel || !rec->backend) {
                vm_record_free(rec);
                return r < 0 ? r : -ENOMEM;
        }
        r = record_set_workspace(rec, &spec->work);
        if (r < 0) {
                vm_record_free(rec);
                return r;
        }
        *ret = rec;
        return 0;
}

/* Makes the create job pull rec->kernel from the catalog before it builds the VM. */
static int fill_kernel_pull(Manager *m, CreateParams *p)
{
        p->pull_kernel = true;
        p->catalog_url = strdup(m->config->catalog_url);
        p->arch = strdup(m->config->architecture);
        if (!p->catalog_url || !p->arch)
                return -ENOMEM;
        p->kernel_pull = (KernelPullRequest){
                .state_dir = p->state_dir,
                .catalog_url = p->catalog_url,
                .name = p->record->kernel,
                .arch = p->arch,
                .reuse_existing = true,
        };
        return 0;
}

/* kernel is NULL when the job pulls rec->kernel from the catalog, image NULL when the job pulls
 * the image. */
static int fill_create_params(Manager *m, CreateParams *p, Image *image, Kernel *kernel)
{
        _cleanup_free_ char *pull_dir = NULL;
        VmRecord *rec = p->record;
        const char *kernel_dir;
        int r;

        p->state_dir = strdup(m->config->state_dir);
        if (!p->state_dir)
                return -ENOMEM;
        r = store_object_dir(m->config->state_dir, STORE_VMS, rec->name, &p->final_dir);
        if (r < 0)
                return r;
        if (kernel)
                kernel_dir = kernel->dir;
        else {
                r = store_object_dir(m->config->state_dir, STORE_KERNELS, rec->kernel, &pull_dir);
                if (r < 0)
                        return r;
                kernel_dir = pull_dir;
        }
        if (image) {
                r = fill_image_params(p, image->info, image->dir);
                if (r < 0)
                        return r;
        }

        p->boot.name = strdup(rec->name);
        p->boot.backend = vm_backend_from_string(rec->backend);
        p->boot.qemu_path = strdup(m->config->qemu_path);
        p->boot.firecracker_path = strdup(m->config->firecracker_path);
        p->boot.accel = m->config->accelerator;
        p->boot.boot_timeout_usec = m->config->boot_timeout_usec;
        p->boot.vcpus = rec->vcpus;
        p->boot.memory_mib = rec->memory_mib;
        p->boot.vm_dir = strdup(p->final_dir);
        p->boot.unit = strdup(rec->unit);
        if (asprintf(&p->boot.kernel_path, "%s/vmlinux", kernel_dir) < 0)
                p->boot.kernel_path = NULL;
        if (asprintf(&p->boot.runtime_dir, "%s/vms/%s", m->config->runtime_dir, rec->name) < 0)
                p->boot.runtime_dir = NULL;
        if (!p->boot.name || !p->boot.qemu_path || !p->boot.firecracker_path || !p->boot.vm_dir ||
            !p->boot.unit || !p->boot.kernel_path || !p->boot.runtime_dir)
                return -ENOMEM;
        r = vm_boot_params_set_disks(&p->boot, kernel_dir, true);
        if (r < 0)
                return r;
        return vm_boot_params_set_network(&p->boot, rec);
}

static int method_create_vm(sd_bus_message *message, void *userdata, sd_bus_error *error)
{
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        _cleanup_free_ char *bad_name = NULL, *image_name = NULL, *bad_work = NULL;
        _cleanup_(vm_work_disk_spec_done) VmWorkDiskSpec work = { .workspace_fd = -EBADF };
        Manager *m = userdata;
        _cleanup_(create_spec_done) CreateSpec spec = {
                .vcpus = m->config->default_vcpus,
                .memory_mib = m->config->default_memory_mib,
                .start = true,
                .work.workspace_fd = -EBADF,
        };
        const char *name;
        CreateParams *p;
        Image *image = NULL;
        Kernel *kernel = NULL;
        Job *j;
        uid_t uid;
        int r;

        r = sd_bus_message_read(message, "s", &name);
        if (r < 0)
                return r;
        r = read_create_spec(message, &spec, error);
        if (r < 0 || sd_bus_error_is_set(error))
                return r;
        if (vm_name_check(name, &bad_name) < 0)
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT, "%s", bad_name);
        r = vm_work_disk_spec_from_request(name, &spec.work, m->config->default_work_disk_mib,
                                           &work, &bad_work);
        if (r == -EINVAL)
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT, "%s",
                                         strempty(bad_work));
        if (r < 0)
                return r;

        r = polkit_check(message, ACTION_VM_MANAGE, name, "create", error);
        if (r < 0)
                return r;

        r = sd_bus_query_sender_creds(message, SD_BUS_CREDS_EUID | SD_BUS_CREDS_AUGMENT, &creds);
        if (r < 0)
                return r;
        r = sd_bus_creds_get_euid(creds, &uid);
        if (r < 0)
                return r;

        /* A create in flight for this name is joined only by the same caller with the same
         * request, so no user takes over another user's create or loses a setting. */
        j = job_manager_find_running(m->jobs, "create-vm", name);
        if (j) {
                if (create_matches(j->userdata, uid, &spec, &work))
                        return reply_job(message, j);
                return sd_bus_error_setf(error, BUS_ERROR_EXISTS,
                                         "A create of VM '%s' is in progress with other "
                                         "settings or by another user: choose another name, "
                                         "or wait for the create to finish",
                                         name);
        }
        if (manager_find_vm(m, name))
                return sd_bus_error_setf(error, BUS_ERROR_EXISTS,
                                         "VM '%s' already exists: choose another name or delete "
                                         "it first",
                                         name);
        r = resolve_spec(m, name, &spec, &image, &image_name, &kernel, error);
        if (r < 0)
                return r;
        /* Pulling the missing image is a PullImage on the caller's behalf. */
        if (!image) {
                r = polkit_check(message, ACTION_IMAGE_MANAGE, NULL, "pull images", error);
                if (r < 0)
                        return r;
        }

        p = calloc(1, sizeof(CreateParams));
        if (!p)
                return -ENOMEM;
        p->work = work;
        work = (VmWorkDiskSpec){ .workspace_fd = -EBADF };
        p->manager = m;
        p->start = spec.start;
        p->request_image = strdup(spec.image);
        if (!p->request_image || (spec.kernel && !(p->request_kernel = strdup(spec.kernel)))) {
                create_params_free(p);
                return -ENOMEM;
        }
        r = new_record(name, uid, image_name, kernel ? kernel->name : m->config->default_kernel,
                       daemon_config_choose_backend(m->config), &spec, &p->record);
        if (r >= 0)
                r = manager_pick_slot(m, &p->record->slot);
        if (r == -ENOSPC) {
                create_params_free(p);
                return sd_bus_error_setf(error, BUS_ERROR_BUSY,
                                         "No network slot is free for VM '%s': all %u are taken, "
                                         "delete VMs that are no longer needed",
                                         name, HELPER_MAX_SLOT);
        }
        if (r >= 0)
                r = fill_create_params(m, p, image, kernel);
        if (r >= 0 && !kernel)
                r = fill_kernel_pull(m, p);
        if (r >= 0 && !image) {
                r = pull_params_new(m, spec.image, image_name, &p->image_pull);
                if (r >= 0)
                        p->image_pull->reuse_existing = true;
        }
        if (r < 0) {
                create_params_free(p);
                return r;
        }

        r = job_start(m->jobs, "create-vm", name, run_create, complete_create, p,
                      create_params_free, &j);
        if (r < 0)
                return log_error_errno(r, "Failed to start creating VM '%s': %m", name);
        return reply_job(message, j);
}

/* PruneVMs */

static int read_prune_options(sd_bus_message *message, int *ret_all, sd_bus_error *error)
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
                if (!streq(key, "all"))
                        return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                                 "Unknown PruneVMs option '%s': the only option "
                                                 "is 'all'",
                                                 key);
                r = sd_bus_message_read(message, "v", "b", ret_all);
                if (r < 0)
                        return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                                 "PruneVMs option 'all' must be a boolean (b)");
                r = sd_bus_message_exit_container(message);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(message);
}

static int method_prune_vms(sd_bus_message *message, void *userdata, sd_bus_error *error)
{
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        Manager *m = userdata;
        int all = false;
        uid_t uid;
        int r;

        r = read_prune_options(message, &all, error);
        if (r < 0 || sd_bus_error_is_set(error))
                return r;

        /* Other users' VMs need manage-any, checked before any VM is removed. */
        if (all)
                r = polkit_check(message, ACTION_VM_MANAGE_ANY, NULL, "prune other users' VMs",
                                 error);
        else
                r = polkit_check(message, ACTION_VM_MANAGE, NULL, "prune VMs", error);
        if (r < 0)
                return r;

        r = sd_bus_query_sender_creds(message, SD_BUS_CREDS_EUID | SD_BUS_CREDS_AUGMENT, &creds);
        if (r < 0)
                return r;
        r = sd_bus_creds_get_euid(creds, &uid);
        if (r < 0)
                return r;

        return vm_prune(m, message, uid, all);
}

const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_NAMES("ListVMs", "", , "a(sssuso)", SD_BUS_PARAM(vms), method_list_vms,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("ListImages", "", , "a(ssstto)", SD_BUS_PARAM(images),
                                 method_list_images, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("ListKernels", "", , "a(ssso)", SD_BUS_PARAM(kernels),
                                 method_list_kernels, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GetVM", "s", SD_BUS_PARAM(name), "o", SD_BUS_PARAM(path),
                                 method_get_vm, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GetImage", "s", SD_BUS_PARAM(name), "o", SD_BUS_PARAM(path),
                                 method_get_image, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GetKernel", "s", SD_BUS_PARAM(name), "o", SD_BUS_PARAM(path),
                                 method_get_kernel, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("PullImage", "sa{sv}",
                                 SD_BUS_PARAM(reference) SD_BUS_PARAM(options), "o",
                                 SD_BUS_PARAM(job), method_pull_image, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("ImportImage", "ha{sv}",
                                 SD_BUS_PARAM(source) SD_BUS_PARAM(options), "o", SD_BUS_PARAM(job),
                                 method_import_image, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("ImportKernel", "ha{sv}",
                                 SD_BUS_PARAM(source) SD_BUS_PARAM(options), "o", SD_BUS_PARAM(job),
                                 method_import_kernel, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("PullKernel", "sa{sv}", SD_BUS_PARAM(name) SD_BUS_PARAM(options),
                                 "o", SD_BUS_PARAM(job), method_pull_kernel,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("CreateVM", "sa{sv}", SD_BUS_PARAM(name) SD_BUS_PARAM(spec), "o",
                                 SD_BUS_PARAM(job), method_create_vm, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("PruneVMs", "a{sv}", SD_BUS_PARAM(options), "as",
                                 SD_BUS_PARAM(removed), method_prune_vms,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_NAMES("VMNew", "so", SD_BUS_PARAM(name) SD_BUS_PARAM(path), 0),
        SD_BUS_SIGNAL_WITH_NAMES("VMRemoved", "so", SD_BUS_PARAM(name) SD_BUS_PARAM(path), 0),
        SD_BUS_SIGNAL_WITH_NAMES("ImageNew", "so", SD_BUS_PARAM(name) SD_BUS_PARAM(path), 0),
        SD_BUS_SIGNAL_WITH_NAMES("ImageRemoved", "so", SD_BUS_PARAM(name) SD_BUS_PARAM(path), 0),
        SD_BUS_SIGNAL_WITH_NAMES("KernelNew", "so", SD_BUS_PARAM(name) SD_BUS_PARAM(path), 0),
        SD_BUS_SIGNAL_WITH_NAMES("KernelRemoved", "so", SD_BUS_PARAM(name) SD_BUS_PARAM(path), 0),
        SD_BUS_SIGNAL_WITH_NAMES("JobNew", "o", SD_BUS_PARAM(path), 0),
        SD_BUS_SIGNAL_WITH_NAMES("JobRemoved", "os", SD_BUS_PARAM(path) SD_BUS_PARAM(result), 0),
        SD_BUS_VTABLE_END,
};
