#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-error.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "strv.h"
#include "vm-workdisk.h"
#include "vm.h"

#define RECORD_SIZE_MAX (1024 * 1024)

static int object_path(const char *prefix, const char *name, char **ret)
{
        return sd_bus_path_encode(prefix, name, ret);
}

static Image *image_free(Image *i)
{
        if (!i)
                return NULL;
        image_info_free(i->info);
        free(i->dir);
        free(i->path);
        free(i);
        return NULL;
}

static Kernel *kernel_free(Kernel *k)
{
        if (!k)
                return NULL;
        kernel_info_free(k->info);
        free(k->dir);
        free(k->path);
        free(k);
        return NULL;
}

static Vm *vm_free(Vm *vm)
{
        if (!vm)
                return NULL;
        vm_unwatch_process(vm);
        pthread_mutex_destroy(&vm->agent_lock);
        vm_record_free(vm->record);
        free(vm->dir);
        free(vm->runtime_dir);
        free(vm->path);
        free(vm);
        return NULL;
}

int manager_new(DaemonConfig *config, sd_event *event, Manager **ret)
{
        _cleanup_(manager_freep) Manager *m = calloc(1, sizeof(Manager));
        int r;

        if (!m)
                return -ENOMEM;
        m->config = config;
        m->event = sd_event_ref(event);

        r = job_manager_new(event, &job_bus_callbacks, m, &m->jobs);
        if (r < 0)
                return r;
        r = job_manager_new(event, NULL, m, &m->tasks);
        if (r < 0)
                return r;
        m->tasks->linger_usec = 0;

        *ret = TAKE_PTR(m);
        return 0;
}

Manager *manager_free(Manager *m)
{
        if (!m)
                return NULL;

        /* Joins the workers first: they may still read the objects below. */
        job_manager_free(m->jobs);
        job_manager_free(m->tasks);

        while (m->vms) {
                Vm *vm = m->vms;

                m->vms = vm->next;
                vm_free(vm);
        }
        while (m->images) {
                Image *i = m->images;

                m->images = i->next;
                image_free(i);
        }
        while (m->kernels) {
                Kernel *k = m->kernels;

                m->kernels = k->next;
                kernel_free(k);
        }
        m->idle_source = sd_event_source_disable_unref(m->idle_source);
        sd_bus_flush_close_unref(m->bus);
        sd_event_unref(m->event);
        free(m);
        return NULL;
}

Image *manager_find_image(Manager *m, const char *name)
{
        for (Image *i = m->images; i; i = i->next)
                if (streq(i->name, name))
                        return i;
        return NULL;
}

Kernel *manager_find_kernel(Manager *m, const char *name)
{
        for (Kernel *k = m->kernels; k; k = k->next)
                if (streq(k->name, name))
                        return k;
        return NULL;
}

Vm *manager_find_vm(Manager *m, const char *name)
{
        for (Vm *vm = m->vms; vm; vm = vm->next)
                if (streq(vm->record->name, name))
                        return vm;
        return NULL;
}

/* Takes ownership of info. An image of the same name is replaced. */
int manager_add_image(Manager *m, const char *dir, ImageInfo *info, Image **ret)
{
        Image *i = calloc(1, sizeof(Image)), *old;

        if (!i) {
                image_info_free(info);
                return -ENOMEM;
        }
        i->manager = m;
        i->info = info;
        i->name = info->name;
        i->dir = strdup(dir);
        if (!i->dir || object_path(IMAGE_PATH_PREFIX, i->name, &i->path) < 0) {
                image_free(i);
                return -ENOMEM;
        }

        old = manager_find_image(m, i->name);
        if (old)
                manager_remove_image(m, old);
        i->next = m->images;
        m->images = i;
        if (ret)
                *ret = i;
        return 0;
}

int manager_add_kernel(Manager *m, const char *dir, KernelInfo *info, Kernel **ret)
{
        Kernel *k = calloc(1, sizeof(Kernel)), *old;

        if (!k) {
                kernel_info_free(info);
                return -ENOMEM;
        }
        k->manager = m;
        k->info = info;
        k->name = info->name;
        k->dir = strdup(dir);
        if (!k->dir || object_path(KERNEL_PATH_PREFIX, k->name, &k->path) < 0) {
                kernel_free(k);
                return -ENOMEM;
        }

        old = manager_find_kernel(m, k->name);
        if (old)
                manager_remove_kernel(m, old);
        k->next = m->kernels;
        m->kernels = k;
        if (ret)
                *ret = k;
        return 0;
}

int manager_add_vm(Manager *m, const char *dir, VmRecord *record, Vm **ret)
{
        Vm *vm = calloc(1, sizeof(Vm));

        if (!vm) {
                vm_record_free(record);
                return -ENOMEM;
        }
        vm->manager = m;
        vm->record = record;
        vm->pidfd = -EBADF;
        pthread_mutex_init(&vm->agent_lock, NULL);
        vm->dir = strdup(dir);
        if (!vm->dir ||
            asprintf(&vm->runtime_dir, "%s/vms/%s", m->config->runtime_dir, record->name) < 0 ||
            object_path(VM_PATH_PREFIX, record->name, &vm->path) < 0) {
                vm_free(vm);
                return -ENOMEM;
        }

        vm->next = m->vms;
        m->vms = vm;
        if (ret)
                *ret = vm;
        return 0;
}

void manager_remove_image(Manager *m, Image *i)
{
        for (Image **p = &m->images; *p; p = &(*p)->next)
                if (*p == i) {
                        *p = i->next;
                        break;
                }
        image_free(i);
}

void manager_remove_kernel(Manager *m, Kernel *k)
{
        for (Kernel **p = &m->kernels; *p; p = &(*p)->next)
                if (*p == k) {
                        *p = k->next;
                        break;
                }
        kernel_free(k);
}

void manager_remove_vm(Manager *m, Vm *vm)
{
        for (Vm **p = &m->vms; *p; p = &(*p)->next)
                if (*p == vm) {
                        *p = vm->next;
                        break;
                }
        vm_free(vm);
}

static int read_record(const char *dir, char **ret)
{
        _cleanup_free_ char *path = NULL;

        if (asprintf(&path, "%s/%s", dir, STORE_RECORD) < 0)
                return -ENOMEM;
        return read_full_file(path, RECORD_SIZE_MAX, ret, NULL);
}

/* Loads every object of one kind. A record that does not parse is skipped with a warning: one
 * damaged object must not keep the daemon from serving the others. */
static int load_kind(Manager *m, const char *kind)
{
        _cleanup_strv_free_ char **names = NULL;
        int r;

        r = store_remove_temporaries(m->config->state_dir, kind);
        if (r < 0)
                log_warning_errno(r,
                                  "Failed to remove temporary directories under '%s/%s', "
                                  "ignoring: %m",
                                  m->config->state_dir, kind);

        r = store_list(m->config->state_dir, kind, &names);
        if (r < 0)
                return log_error_errno(r, "Failed to list '%s/%s': %m", m->config->state_dir, kind);

        for (char **n = names; *n; n++) {
                _cleanup_free_ char *dir = NULL, *json = NULL;

                r = store_object_dir(m->config->state_dir, kind, *n, &dir);
                if (r < 0)
                        return r;
                r = read_record(dir, &json);
                if (r >= 0) {
                        if (streq(kind, STORE_IMAGES)) {
                                ImageInfo *info;

                                r = image_info_from_json(json, &info);
                                if (r >= 0)
                                        r = manager_add_image(m, dir, info, NULL);
                        } else if (streq(kind, STORE_KERNELS)) {
                                KernelInfo *info;

                                r = kernel_info_from_json(json, &info);
                                if (r >= 0)
                                        r = manager_add_kernel(m, dir, info, NULL);
                        } else {
                                VmRecord *rec;

                                r = vm_record_from_json(json, &rec);
                                if (r >= 0)
                                        r = manager_add_vm(m, dir, rec, NULL);
                        }
                }
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        log_warning_errno(r, "Failed to load '%s/%s', ignoring: %m", dir,
                                          STORE_RECORD);
        }
        return 0;
}

int manager_load(Manager *m)
{
        int r;

        /* No pull runs yet, so every partial blob is left from a daemon that was killed. */
        r = store_remove_partial_blobs(m->config->cache_dir);
        if (r < 0)
                log_warning_errno(r,
                                  "Failed to remove partial downloads under '%s/blobs/sha256', "
                                  "ignoring: %m",
                                  m->config->cache_dir);

        r = load_kind(m, STORE_IMAGES);
        if (r < 0)
                return r;
        r = load_kind(m, STORE_KERNELS);
        if (r < 0)
                return r;
        r = load_kind(m, STORE_VMS);
        if (r < 0)
                return r;

        for (Vm *vm = m->vms; vm; vm = vm->next)
                vm_reconcile(vm);
        /* Repairs a file that a killed bangerd left out of date. */
        manager_update_known_hosts(m);
        return 0;
}

void manager_update_known_hosts(Manager *m)
{
        _cleanup_free_ VmRecord **records = NULL;
        size_t n = 0;
        int r;

        for (Vm *vm = m->vms; vm; vm = vm->next)
                n++;
        records = calloc(n ?: 1, sizeof(VmRecord *));
        n = 0;
        for (Vm *vm = m->vms; records && vm; vm = vm->next)
                records[n++] = vm->record;

        r = records ? vm_known_hosts_write(m->config->state_dir, records, n) : -ENOMEM;
        if (r < 0)
                log_warning_errno(r, "Failed to write '%s/%s', ignoring: %m", m->config->state_dir,
                                  VM_KNOWN_HOSTS);
}

bool manager_is_busy(Manager *m)
{
        if (job_manager_count_running(m->jobs) > 0 || job_manager_count_running(m->tasks) > 0)
                return true;
        for (Vm *vm = m->vms; vm; vm = vm->next)
                if (vm->busy || vm->exec_in_flight > 0)
                        return true;
        return false;
}

static int on_message(sd_bus_message *message, void *userdata, sd_bus_error *error)
{
        Manager *m = userdata;

        (void)sd_event_now(m->event, CLOCK_MONOTONIC, &m->last_activity_usec);
        return 0;
}

static int on_idle_check(sd_event_source *s, uint64_t usec, void *userdata)
{
        Manager *m = userdata;
        uint64_t timeout = m->config->idle_timeout_usec;
        uint64_t idle_since = m->last_activity_usec;
        int r;

        if (!manager_is_busy(m) && usec >= idle_since + timeout) {
                log_info("No work for %llu s, exiting",
                         (unsigned long long)(timeout / USEC_PER_SEC));
                r = sd_bus_release_name(m->bus, BANGER_BUS_NAME);
                if (r < 0)
                        log_warning_errno(r, "Failed to release '%s', ignoring: %m",
                                          BANGER_BUS_NAME);
                return sd_event_exit(m->event, 0);
        }

        if (manager_is_busy(m))
                m->last_activity_usec = usec;
        r = sd_event_source_set_time(s, m->last_activity_usec + timeout);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

int manager_start_idle_timer(Manager *m)
{
        int r;

        if (m->config->idle_timeout_usec == 0)
                return 0;
        r = sd_event_now(m->event, CLOCK_MONOTONIC, &m->last_activity_usec);
        if (r < 0)
                return r;
        return sd_event_add_time(m->event, &m->idle_source, CLOCK_MONOTONIC,
                                 m->last_activity_usec + m->config->idle_timeout_usec, USEC_PER_SEC,
                                 on_idle_check, m);
}

int manager_connect_bus(Manager *m)
{
        int r;

        r = sd_bus_open_system(&m->bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the system bus: %m");

        r = sd_bus_error_add_map(banger_error_map);
        if (r < 0)
                return log_error_errno(r, "Failed to register the error map: %m");

        r = sd_bus_add_filter(m->bus, NULL, on_message, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the activity filter: %m");

        r = sd_bus_add_object_vtable(m->bus, NULL, MANAGER_PATH, "org.banger1.Manager",
                                     manager_vtable, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the Manager object: %m");

        r = sd_bus_add_fallback_vtable(m->bus, NULL, VM_PATH_PREFIX, "org.banger1.VM", vm_vtable,
                                       vm_object_find, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the VM objects: %m");
        r = sd_bus_add_node_enumerator(m->bus, NULL, VM_PATH_PREFIX, vm_node_enumerator, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the VM enumerator: %m");

        r = sd_bus_add_fallback_vtable(m->bus, NULL, IMAGE_PATH_PREFIX, "org.banger1.Image",
                                       image_vtable, image_object_find, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the Image objects: %m");
        r = sd_bus_add_node_enumerator(m->bus, NULL, IMAGE_PATH_PREFIX, image_node_enumerator, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the Image enumerator: %m");

        r = sd_bus_add_fallback_vtable(m->bus, NULL, KERNEL_PATH_PREFIX, "org.banger1.Kernel",
                                       kernel_vtable, kernel_object_find, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the Kernel objects: %m");
        r = sd_bus_add_node_enumerator(m->bus, NULL, KERNEL_PATH_PREFIX, kernel_node_enumerator, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the Kernel enumerator: %m");

        r = sd_bus_add_fallback_vtable(m->bus, NULL, JOB_PATH_PREFIX, "org.banger1.Job", job_vtable,
                                       job_object_find, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the Job objects: %m");
        r = sd_bus_add_node_enumerator(m->bus, NULL, JOB_PATH_PREFIX, job_node_enumerator, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the Job enumerator: %m");

        r = sd_bus_add_object_manager(m->bus, NULL, MANAGER_PATH);
        if (r < 0)
                return log_error_errno(r, "Failed to add the object manager: %m");

        r = sd_bus_attach_event(m->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the bus to the event loop: %m");
        return 0;
}
