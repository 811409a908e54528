#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "daemon-config.h"
#include "image-pull.h"
#include "job.h"
#include "kernel-import.h"
#include "store.h"

#define BANGER_BUS_NAME    "org.banger1"
#define MANAGER_PATH       "/org/banger1"
#define VM_PATH_PREFIX     "/org/banger1/vm"
#define IMAGE_PATH_PREFIX  "/org/banger1/image"
#define KERNEL_PATH_PREFIX "/org/banger1/kernel"
#define JOB_PATH_PREFIX    "/org/banger1/job"

#define USEC_PER_SEC  1000000ULL
#define USEC_PER_MSEC 1000ULL

typedef struct Manager Manager;

typedef struct Image {
        Manager *manager;
        ImageInfo *info;
        char *name; /* the store key, info->name */
        char *dir;
        char *path;
        struct Image *next;
} Image;

typedef struct Kernel {
        Manager *manager;
        KernelInfo *info;
        char *name;
        char *dir;
        char *path;
        struct Kernel *next;
} Kernel;

typedef struct Vm {
        Manager *manager;
        VmRecord *record;
        char *dir;         /* STATE/vms/NAME */
        char *runtime_dir; /* RUNTIME/vms/NAME */
        char *path;

        int pidfd; /* watches the VMM while it runs */
        sd_event_source *pidfd_source;

        /* A Start, Stop or Delete in flight; further lifecycle calls get Busy. */
        bool busy;
        /* Serialises agent calls on a backend whose agent takes one connection at a time. */
        pthread_mutex_t agent_lock;
        /* Calls that use the guest (Exec, ListPorts, OpenConsole, SyncWorkspace) until they
         * have replied; Delete gets Busy meanwhile. */
        unsigned exec_in_flight;

        struct Vm *next;
} Vm;

struct Manager {
        DaemonConfig *config;
        sd_event *event;
        sd_bus *bus;

        JobManager *jobs;  /* visible on the bus */
        JobManager *tasks; /* VM method calls that run in a worker and reply later */

        Image *images;
        Kernel *kernels;
        Vm *vms;

        uint64_t last_activity_usec; /* CLOCK_MONOTONIC of the last incoming bus message */
        sd_event_source *idle_source;
};

int manager_new(DaemonConfig *config, sd_event *event, Manager **ret);
Manager *manager_free(Manager *m);
static inline void manager_freep(Manager **m)
{
        manager_free(*m);
}

/* Loads images, kernels and VMs from the store and reconciles VMs with their processes. */
int manager_load(Manager *m);

/* Adds the objects to the bus; the name is requested by the caller afterwards. */
int manager_connect_bus(Manager *m);

/* Starts the timer that exits the loop after IdleTimeoutSec without work. */
int manager_start_idle_timer(Manager *m);

Image *manager_find_image(Manager *m, const char *name);
Kernel *manager_find_kernel(Manager *m, const char *name);
Vm *manager_find_vm(Manager *m, const char *name);

int manager_add_image(Manager *m, const char *dir, ImageInfo *info, Image **ret);
int manager_add_kernel(Manager *m, const char *dir, KernelInfo *info, Kernel **ret);
int manager_add_vm(Manager *m, const char *dir, VmRecord *record, Vm **ret);
void manager_remove_image(Manager *m, Image *i);
void manager_remove_kernel(Manager *m, Kernel *k);
void manager_remove_vm(Manager *m, Vm *vm);

/* True while a job, task or VM operation runs. */
bool manager_is_busy(Manager *m);

/* Rewrites STATE/ssh/known_hosts from the host keys of all VMs, after a VM was created or
 * deleted. A failure is logged as a warning: ssh to new VMs fails until the next rewrite. */
void manager_update_known_hosts(Manager *m);

/* The smallest network slot that no VM and no CreateVM in flight holds. Returns -ENOSPC when
 * every slot is taken. In manager-dbus.c, beside the create job it reads. */
int manager_pick_slot(Manager *m, unsigned *ret);

/* Bus side, in the *-dbus.c files. */
extern const sd_bus_vtable manager_vtable[];
extern const sd_bus_vtable vm_vtable[];
extern const sd_bus_vtable image_vtable[];
extern const sd_bus_vtable kernel_vtable[];
extern const sd_bus_vtable job_vtable[];

int vm_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                   void **found, sd_bus_error *error);
int vm_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes,
                       sd_bus_error *error);
int image_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                      void **found, sd_bus_error *error);
int image_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes,
                          sd_bus_error *error);
int kernel_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                       void **found, sd_bus_error *error);
int kernel_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes,
                           sd_bus_error *error);
int job_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                    void **found, sd_bus_error *error);
int job_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes,
                        sd_bus_error *error);

/* Deletes the VMs that uid owns (with all, every user's VMs) which are created, stopped or
 * failed and have no operation in progress, through the Delete task of each. Replies to
 * message, a PruneVMs call, with the removed names once all finished, and returns 1. The
 * caller checks polkit first. */
int vm_prune(Manager *m, sd_bus_message *message, uid_t uid, bool all);

/* Signals. Failures are logged and otherwise ignored: a lost signal must not undo the work. */
void manager_emit_object_signal(Manager *m, const char *member, const char *name, const char *path);
void vm_emit_state_changed(Vm *vm);
extern const JobManagerCallbacks job_bus_callbacks;
