#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent-client.h"
#include "bus-error.h"
#include "fileio.h"
#include "guest-paths.h"
#include "helper-client.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "polkit.h"
#include "scope.h"
#include "strv.h"
#include "vm-guest-dbus.h"
#include "vm-workdisk.h"
#include "vm.h"

#define EXEC_TIMEOUT_USEC  (3600 * USEC_PER_SEC)
#define SCOPE_TIMEOUT_USEC (30 * USEC_PER_SEC)

typedef enum VmOperation {
        VM_OPERATION_START,
        VM_OPERATION_STOP,
        VM_OPERATION_RESTART,
        VM_OPERATION_DELETE,
        VM_OPERATION_ADD_FORWARD,
        VM_OPERATION_REMOVE_FORWARD,
} VmOperation;

/* A PruneVMs call: its Delete tasks share it and the last one to finish sends the reply. */
typedef struct PruneRequest {
        sd_bus_message *message;
        unsigned pending;
        char **removed;
        char *failure; /* the first failure, NULL when none */
        unsigned n_failed;
} PruneRequest;

/* One VM method call that runs in a worker and replies from the loop. */
typedef struct VmTask {
        Vm *vm; /* stays valid because Delete is rejected while a task runs */
        sd_bus_message *message;
        VmOperation operation;

        bool force;
        pid_t old_pid;
        char *unit;
        char *vm_dir;
        char *runtime_dir;
        VmBootParams boot;
        VmNetwork net; /* what Stop and Delete take down */
        pid_t pid;
        uint64_t start_time;

        /* AddPortForward and RemovePortForward. message is NULL for a removal that undoes a
         * forward which the helper added after the VM had stopped. */
        unsigned slot;
        const char *proto; /* "tcp" or "udp", a static string */
        uint16_t host_port;
        uint16_t guest_port;

        PruneRequest *prune; /* the PruneVMs call a Delete belongs to, or NULL */
} VmTask;

static PruneRequest *prune_request_free(PruneRequest *p)
{
        sd_bus_message_unref(p->message);
        strv_free(p->removed);
        free(p->failure);
        free(p);
        return NULL;
}

static int reply_strv(sd_bus_message *message, char **l)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_append_strv(reply, l);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static void prune_request_reply(PruneRequest *p)
{
        size_t n_removed = strv_length(p->removed);
        int r;

        if (!p->failure)
                r = reply_strv(p->message, p->removed);
        else if (p->n_failed > 1 || n_removed > 0)
                r = sd_bus_reply_method_errorf(p->message, BUS_ERROR_BUSY,
                                               "%s (%u VMs failed in all, %zu were removed)",
                                               p->failure, p->n_failed, n_removed);
        else
                r = sd_bus_reply_method_errorf(p->message, BUS_ERROR_BUSY, "%s", p->failure);
        if (r < 0)
                log_debug_errno(r, "Failed to send the reply to PruneVMs: %m");
}

/* Drops one reference. The last one sends the reply when reply is true and frees p. */
static void prune_request_release(PruneRequest *p, bool reply)
{
        if (--p->pending > 0)
                return;
        if (reply)
                prune_request_reply(p);
        prune_request_free(p);
}

static void prune_request_record(PruneRequest *p, const char *name, int result, const char *error)
{
        if (result >= 0 && strv_extend(&p->removed, name) >= 0)
                return;
        if (result >= 0)
                result = -ENOMEM;
        p->n_failed++;
        if (!p->failure && asprintf(&p->failure, "Failed to remove VM '%s': %s", name,
                                    error ?: strerror(-result)) < 0)
                p->failure = NULL;
}

static void vm_task_free(void *userdata)
{
        VmTask *t = userdata;

        if (!t)
                return;
        /* A Delete that never completed, because it failed to start or bangerd is exiting. */
        if (t->prune)
                prune_request_release(t->prune, false);
        sd_bus_message_unref(t->message);
        free(t->unit);
        free(t->vm_dir);
        free(t->runtime_dir);
        vm_boot_params_done(&t->boot);
        vm_network_done(&t->net);
        free(t);
}

static bool vm_is_up(Vm *vm)
{
        return vm->record->state == VM_RUNNING && vm->record->pid > 0;
}

static VmTask *task_new(sd_bus_message *message, VmOperation operation)
{
        VmTask *t = calloc(1, sizeof(VmTask));

        if (!t)
                return NULL;
        t->message = sd_bus_message_ref(message);
        t->operation = operation;
        return t;
}

/* Stops the VMM and its scope and takes its network down, from a worker. The loop no longer
 * watches the process, so the worker reaps it when it is bangerd's child. */
static int halt_and_clean(VmTask *t, char **ret_error)
{
        int r;

        r = vm_halt(t->old_pid, t->runtime_dir, t->force);
        if (r < 0) {
                if (asprintf(ret_error, "Failed to stop VM process %d: %s", (int)t->old_pid,
                             strerror(-r)) < 0)
                        *ret_error = NULL;
                return r;
        }
        (void)waitpid(t->old_pid, NULL, WNOHANG);

        r = scope_stop(t->unit, SCOPE_TIMEOUT_USEC);
        if (r < 0)
                log_warning_errno(r, "Failed to stop scope '%s', ignoring: %m", t->unit);
        vm_network_down(&t->net);
        (void)rm_rf(t->runtime_dir);
        return 0;
}

/* Stops a scope of the VM's unit name that no process of bangerd watches, as left by a create
 * or start that bangerd did not finish. Without this, systemd rejects the next scope of that
 * name, and a Delete would leave the VMM running. */
static void stop_leftover_scope(VmTask *t)
{
        int r;

        if (t->old_pid > 0)
                return;
        r = scope_stop(t->unit, SCOPE_TIMEOUT_USEC);
        if (r < 0)
                log_warning_errno(r, "Failed to stop leftover scope '%s', ignoring: %m", t->unit);
}

static int run_task(Job *j, void *userdata, char **ret_error)
{
        VmTask *t = userdata;
        int r;

        switch (t->operation) {
        case VM_OPERATION_START:
                stop_leftover_scope(t);
                return vm_boot(&t->boot, &t->pid, &t->start_time, ret_error);

        case VM_OPERATION_STOP:
                return halt_and_clean(t, ret_error);

        case VM_OPERATION_RESTART:
                if (t->old_pid > 0) {
                        r = halt_and_clean(t, ret_error);
                        if (r < 0)
                                return r;
                } else
                        stop_leftover_scope(t);
                return vm_boot(&t->boot, &t->pid, &t->start_time, ret_error);

        case VM_OPERATION_DELETE:
                if (t->old_pid > 0) {
                        r = halt_and_clean(t, ret_error);
                        if (r < 0)
                                return r;
                } else {
                        stop_leftover_scope(t);
                        /* A Stop that could not reach banger-helper leaves the tap behind. */
                        vm_network_down(&t->net);
                }
                r = rm_rf(t->vm_dir);
                if (r < 0) {
                        if (asprintf(ret_error, "Failed to remove '%s': %s", t->vm_dir,
                                     strerror(-r)) < 0)
                                *ret_error = NULL;
                        return r;
                }
                (void)rm_rf(t->runtime_dir);
                return 0;

        case VM_OPERATION_ADD_FORWARD:
                return helper_add_port_forward(t->slot, t->proto, t->host_port, t->guest_port,
                                               ret_error);

        case VM_OPERATION_REMOVE_FORWARD:
                r = helper_remove_port_forward(t->slot, t->proto, t->host_port, ret_error);
                /* A forward that is gone already is what the caller wants. */
                return r == -ENOENT ? 0 : r;
        }
        return -EINVAL;
}

static void reply_failure(VmTask *t, const char *name, int result, const char *message)
{
        int r;

        r = sd_bus_reply_method_errorf(t->message, name, "%s", message ?: strerror(-result));
        if (r < 0)
                log_debug_errno(r, "Failed to send an error reply: %m");
}

static void reply_success(VmTask *t)
{
        int r;

        r = sd_bus_reply_method_return(t->message, NULL);
        if (r < 0)
                log_debug_errno(r, "Failed to send a reply: %m");
}

static int start_task(Vm *vm, VmTask *t, const char *verb);

/* Port forwards. The record contains the forwards that users requested. While the VM runs,
 * banger-helper installs them as nftables rules. */

/* The VmTask of a task in flight, or NULL for a task that finished. */
static VmTask *running_task(Job *j)
{
        return j->state == JOB_RUNNING && j->run == run_task ? j->userdata : NULL;
}

/* Returns true while an AddPortForward or RemovePortForward task of vm runs. Such a task
 * blocks Start, Stop, Restart and Delete, which would race with the helper call. */
static bool forward_task_running(Vm *vm)
{
        for (Job *j = vm->manager->tasks->jobs; j; j = j->next) {
                VmTask *t = running_task(j);

                if (t && t->vm == vm &&
                    (t->operation == VM_OPERATION_ADD_FORWARD ||
                     t->operation == VM_OPERATION_REMOVE_FORWARD))
                        return true;
        }
        return false;
}

/* The AddPortForward in flight for host_port/proto on any VM, or NULL. */
static VmTask *find_forward_being_added(Manager *m, const char *proto, uint16_t host_port)
{
        for (Job *j = m->tasks->jobs; j; j = j->next) {
                VmTask *t = running_task(j);

                if (t && t->operation == VM_OPERATION_ADD_FORWARD && t->message &&
                    streq(t->proto, proto) && t->host_port == host_port)
                        return t;
        }
        return NULL;
}

static PortForward *record_find_forward(VmRecord *rec, const char *proto, uint16_t host_port)
{
        for (size_t i = 0; i < rec->n_forwards; i++)
                if (streq(rec->forwards[i].proto, proto) && rec->forwards[i].host_port == host_port)
                        return &rec->forwards[i];
        return NULL;
}

static int record_add_forward(VmRecord *rec, const char *proto, uint16_t host_port,
                              uint16_t guest_port)
{
        PortForward *l;
        char *copy = strdup(proto);

        if (!copy)
                return -ENOMEM;
        l = reallocarray(rec->forwards, rec->n_forwards + 1, sizeof(PortForward));
        if (!l) {
                free(copy);
                return -ENOMEM;
        }
        l[rec->n_forwards++] = (PortForward){
                .proto = copy,
                .host_port = host_port,
                .guest_port = guest_port,
        };
        rec->forwards = l;
        return 0;
}

static void record_remove_forward(VmRecord *rec, PortForward *f)
{
        size_t i = (size_t)(f - rec->forwards);

        free(f->proto);
        memmove(f, f + 1, (rec->n_forwards - i - 1) * sizeof(PortForward));
        rec->n_forwards--;
}

static void emit_forwards_changed(Vm *vm)
{
        int r;

        if (!vm->manager->bus)
                return;
        r = sd_bus_emit_properties_changed(vm->manager->bus, vm->path, "org.banger1.VM",
                                           "PortForwards", NULL);
        if (r < 0)
                log_debug_errno(r, "Failed to emit PropertiesChanged for '%s': %m", vm->path);
}

/* Adds a forward to the record and saves it. On failure the record is unchanged. */
static int vm_store_forward(Vm *vm, const char *proto, uint16_t host_port, uint16_t guest_port)
{
        VmRecord *rec = vm->record;
        int r;

        r = record_add_forward(rec, proto, host_port, guest_port);
        if (r < 0)
                return r;
        r = vm_save(vm);
        if (r < 0) {
                record_remove_forward(rec, &rec->forwards[rec->n_forwards - 1]);
                return r;
        }
        log_field(LOG_INFO, "VM=%s", "Forwarded host port %u/%s to port %u of VM '%s'",
                  (unsigned)host_port, proto, (unsigned)guest_port, rec->name);
        emit_forwards_changed(vm);
        return 0;
}

/* Removes a forward from the record and saves it. On failure the record keeps the forward. */
static int vm_drop_forward(Vm *vm, PortForward *f)
{
        VmRecord *rec = vm->record;
        PortForward old = *f;
        int r;

        /* The entry moves to the end of the list when the save fails, which keeps its values. */
        old.proto = strdup(f->proto);
        if (!old.proto)
                return -ENOMEM;
        record_remove_forward(rec, f);
        r = vm_save(vm);
        if (r < 0) {
                if (record_add_forward(rec, old.proto, old.host_port, old.guest_port) < 0)
                        log_error("Failed to restore the forward of host port %u/%s in the "
                                  "record of VM '%s'",
                                  (unsigned)old.host_port, old.proto, rec->name);
                free(old.proto);
                return r;
        }
        log_field(LOG_INFO, "VM=%s", "Removed the forward of host port %u/%s from VM '%s'",
                  (unsigned)old.host_port, old.proto, rec->name);
        free(old.proto);
        emit_forwards_changed(vm);
        return 0;
}

/* Removes a rule that the helper added for a VM that stopped meanwhile, or whose record could
 * not be saved. Nothing waits for the result. */
static void start_forward_cleanup(VmTask *done)
{
        Vm *vm = done->vm;
        VmTask *t = task_new(NULL, VM_OPERATION_REMOVE_FORWARD);
        int r = -ENOMEM;

        if (t) {
                t->slot = done->slot;
                t->proto = done->proto;
                t->host_port = done->host_port;
                r = start_task(vm, t, "remove-port-forward");
        }
        if (r < 0)
                log_field_errno(LOG_WARNING, r, "VM=%s",
                                "Failed to remove the forward of host port %u/%s of VM '%s', "
                                "ignoring: %m",
                                (unsigned)done->host_port, done->proto, vm->record->name);
}

static void reply_save_failure(VmTask *t, int r)
{
        _cleanup_free_ char *message = NULL;

        if (asprintf(&message, "Failed to save the record of VM '%s': %s", t->vm->record->name,
                     strerror(-r)) < 0)
                message = NULL;
        log_field(LOG_ERR, "VM=%s", "%s", strempty(message));
        reply_failure(t, SD_BUS_ERROR_FAILED, r, message);
}

static int complete_add_forward(VmTask *t, int result, const char *error)
{
        Vm *vm = t->vm;
        /* A VM that stopped while the helper worked lost its tap, but not this rule. */
        bool stopped = !vm_is_up(vm) || vm->record->pid != t->old_pid;
        int r;

        if (result < 0) {
                reply_failure(t, result == -EADDRINUSE ? BUS_ERROR_BUSY : SD_BUS_ERROR_FAILED,
                              result, error);
                return result;
        }

        r = vm_store_forward(vm, t->proto, t->host_port, t->guest_port);
        if (r < 0 || stopped)
                start_forward_cleanup(t);
        if (r < 0) {
                reply_save_failure(t, r);
                return r;
        }
        reply_success(t);
        return 0;
}

static int complete_remove_forward(VmTask *t, int result, const char *error)
{
        Vm *vm = t->vm;
        PortForward *f;
        int r;

        if (!t->message) {
                if (result < 0)
                        log_field(LOG_WARNING, "VM=%s",
                                  "Failed to remove the forward of host port %u/%s of VM '%s', "
                                  "ignoring: %s",
                                  (unsigned)t->host_port, t->proto, vm->record->name,
                                  error ?: strerror(-result));
                return result;
        }
        if (result < 0) {
                reply_failure(t, SD_BUS_ERROR_FAILED, result, error);
                return result;
        }

        /* A concurrent RemovePortForward of the same port may have dropped it already. */
        f = record_find_forward(vm->record, t->proto, t->host_port);
        r = f ? vm_drop_forward(vm, f) : 0;
        if (r < 0) {
                reply_save_failure(t, r);
                return r;
        }
        reply_success(t);
        return 0;
}

static int complete_delete(VmTask *t, int result, const char *error)
{
        Vm *vm = t->vm;
        Manager *m = vm->manager;
        PruneRequest *prune = TAKE_PTR(t->prune);
        _cleanup_free_ char *name = strdup(vm->record->name), *path = strdup(vm->path);

        vm->busy = false;
        if (result >= 0 && (!name || !path))
                result = -ENOMEM;
        if (result >= 0) {
                log_field(LOG_INFO, "VM=%s", "Deleted VM '%s'", name);
                manager_remove_vm(m, vm);
                manager_emit_object_signal(m, "VMRemoved", name, path);
                manager_update_known_hosts(m);
        }

        if (prune) {
                prune_request_record(prune, name ?: "?", result, error);
                prune_request_release(prune, true);
        } else if (result < 0)
                reply_failure(t, BUS_ERROR_BUSY, result, error);
        else
                reply_success(t);
        return result;
}

static int complete_task(Job *j, int result, const char *error, void *userdata, char **ret_error)
{
        VmTask *t = userdata;
        Vm *vm = t->vm;
        int r;

        switch (t->operation) {
        case VM_OPERATION_START:
        case VM_OPERATION_RESTART:
                vm->busy = false;
                if (result < 0) {
                        vm_set_state(vm, VM_FAILED, error ?: strerror(-result));
                        reply_failure(t, BUS_ERROR_BOOT_FAILED, result, error);
                        return result;
                }
                vm->record->pid = t->pid;
                vm->record->start_time = t->start_time;
                vm_boot_params_take_network(&t->boot, vm->record);
                r = vm_watch_process(vm);
                if (r < 0)
                        log_warning_errno(r, "Failed to watch process %d of VM '%s': %m",
                                          (int)t->pid, vm->record->name);
                vm_set_state(vm, VM_RUNNING, NULL);
                break;

        case VM_OPERATION_STOP:
                vm->busy = false;
                if (result < 0) {
                        vm_set_state(vm, VM_FAILED, error ?: strerror(-result));
                        reply_failure(t, BUS_ERROR_BUSY, result, error);
                        return result;
                }
                vm_set_state(vm, VM_STOPPED, NULL);
                break;

        case VM_OPERATION_DELETE:
                return complete_delete(t, result, error);

        case VM_OPERATION_ADD_FORWARD:
                return complete_add_forward(t, result, error);

        case VM_OPERATION_REMOVE_FORWARD:
                return complete_remove_forward(t, result, error);
        }

        reply_success(t);
        return 0;
}

static int start_task(Vm *vm, VmTask *t, const char *verb)
{
        static unsigned counter = 0;
        char target[128];
        Job *j;

        t->vm = vm;
        /* Every call is its own task: the target carries a counter so none coalesce. */
        snprintf(target, sizeof(target), "%s/%s/%u", vm->record->name, verb, ++counter);
        return job_start(vm->manager->tasks, verb, target, run_task, complete_task, t, vm_task_free,
                         &j);
}

static int sender_uid(sd_bus_message *message, uid_t *ret)
{
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        int r;

        r = sd_bus_query_sender_creds(message, SD_BUS_CREDS_EUID | SD_BUS_CREDS_AUGMENT, &creds);
        if (r < 0)
                return r;
        return sd_bus_creds_get_euid(creds, ret);
}

/* Checks action on one's own VM, or org.banger1.vm.manage-any on a VM another uid owns. */
static int authorize(Vm *vm, sd_bus_message *message, const char *action, const char *verb,
                     sd_bus_error *error)
{
        uid_t uid;
        int r;

        r = sender_uid(message, &uid);
        if (r < 0)
                return r;
        if (uid != vm->record->owner)
                return polkit_check_other_owner(message, vm->record->name, vm->record->owner, verb,
                                                error);
        return polkit_check(message, action, vm->record->name, verb, error);
}

int vm_authorize(Vm *vm, sd_bus_message *message, const char *action, const char *verb,
                 sd_bus_error *error)
{
        return authorize(vm, message, action, verb, error);
}

static int reject_busy(Vm *vm, sd_bus_error *error)
{
        return sd_bus_error_setf(error, BUS_ERROR_BUSY,
                                 "VM '%s' is %s and another operation on it is in progress: "
                                 "wait for it to finish",
                                 vm->record->name, vm_state_to_string(vm->record->state));
}

static int task_fill_halt(Vm *vm, VmTask *t, bool force)
{
        t->force = force;
        t->old_pid = vm_is_up(vm) ? vm->record->pid : 0;
        t->unit = strdup(vm->record->unit);
        t->vm_dir = strdup(vm->dir);
        t->runtime_dir = strdup(vm->runtime_dir);
        if (!t->unit || !t->vm_dir || !t->runtime_dir)
                return -ENOMEM;
        return vm_network_copy(vm->record, &t->net);
}

/* The guest calls that operation must wait for. Stop and Restart cancel the commands of Exec
 * instead, so that a command that never ends cannot keep the VM running. */
static unsigned calls_in_the_way(Vm *vm, VmOperation operation)
{
        if (operation == VM_OPERATION_STOP || operation == VM_OPERATION_RESTART)
                return vm->exec_in_flight - vm_count_execs(vm);
        return vm->exec_in_flight;
}

static int method_lifecycle(sd_bus_message *message, Vm *vm, VmOperation operation, bool force,
                            sd_bus_error *error)
{
        static const char *const verbs[] = {
                [VM_OPERATION_START] = "start",
                [VM_OPERATION_STOP] = "stop",
                [VM_OPERATION_RESTART] = "restart",
                [VM_OPERATION_DELETE] = "delete",
        };
        const char *verb = verbs[operation];
        VmTask *t;
        int r;

        r = authorize(vm, message, ACTION_VM_MANAGE, verb, error);
        if (r < 0)
                return r;
        if (vm->busy || calls_in_the_way(vm, operation) > 0 || forward_task_running(vm))
                return reject_busy(vm, error);

        if (operation == VM_OPERATION_START && vm_is_up(vm))
                return sd_bus_reply_method_return(message, NULL);
        if (operation == VM_OPERATION_STOP && !vm_is_up(vm))
                return sd_bus_error_setf(error, BUS_ERROR_NOT_RUNNING,
                                         "VM '%s' is not running: nothing to stop",
                                         vm->record->name);

        t = task_new(message, operation);
        if (!t)
                return -ENOMEM;
        r = task_fill_halt(vm, t, force);
        if (r >= 0 && (operation == VM_OPERATION_START || operation == VM_OPERATION_RESTART)) {
                r = vm_boot_params_init(vm, &t->boot);
                if (r == -ENOENT) {
                        vm_task_free(t);
                        return sd_bus_error_setf(error, BUS_ERROR_NOT_FOUND,
                                                 "Kernel '%s' of VM '%s' is not in the store: "
                                                 "import it with 'bangerctl kernel import'",
                                                 vm->record->kernel, vm->record->name);
                }
        }
        if (r < 0) {
                vm_task_free(t);
                return r;
        }

        /* The worker now owns the process: the loop must not react to its exit. */
        if (t->old_pid > 0)
                vm_unwatch_process(vm);
        if (operation == VM_OPERATION_STOP || operation == VM_OPERATION_RESTART)
                vm_cancel_execs(vm);

        r = start_task(vm, t, verb);
        if (r < 0)
                return log_error_errno(r, "Failed to start a worker for VM '%s': %m",
                                       vm->record->name);
        vm->busy = true;
        if (operation == VM_OPERATION_START || operation == VM_OPERATION_RESTART)
                vm_set_state(vm, t->old_pid > 0 ? VM_STOPPING : VM_STARTING, NULL);
        else if (t->old_pid > 0)
                vm_set_state(vm, VM_STOPPING, NULL);
        return 1;
}

static int method_start(sd_bus_message *message, void *userdata, sd_bus_error *error)
{
        return method_lifecycle(message, userdata, VM_OPERATION_START, false, error);
}

static int method_stop(sd_bus_message *message, void *userdata, sd_bus_error *error)
{
        int force, r;

        r = sd_bus_message_read(message, "b", &force);
        if (r < 0)
                return r;
        return method_lifecycle(message, userdata, VM_OPERATION_STOP, force, error);
}

static int method_restart(sd_bus_message *message, void *userdata, sd_bus_error *error)
{
        return method_lifecycle(message, userdata, VM_OPERATION_RESTART, false, error);
}

static int method_delete(sd_bus_message *message, void *userdata, sd_bus_error *error)
{
        return method_lifecycle(message, userdata, VM_OPERATION_DELETE, false, error);
}

static int method_open_console_log(sd_bus_message *message, void *userdata, sd_bus_error *error)
{
        Vm *vm = userdata;
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        r = authorize(vm, message, ACTION_VM_LOGIN, "read the console of", error);
        if (r < 0)
                return r;

        if (asprintf(&path, "%s/console.log", vm->dir) < 0)
                return -ENOMEM;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                if (errno == ENOENT)
                        return sd_bus_error_setf(error, BUS_ERROR_NOT_FOUND,
                                                 "VM '%s' has no console log yet: start it "
                                                 "first",
                                                 vm->record->name);
                return -errno;
        }
        return sd_bus_reply_method_return(message, "h", fd);
}

static const char *forward_proto(const char *s)
{
        if (streq(s, "tcp"))
                return "tcp";
        if (streq(s, "udp"))
                return "udp";
        return NULL;
}

/* Checks the arguments of AddPortForward and RemovePortForward. guest_port is checked only when
 * check_guest is true. */
static int check_forward_args(const char *proto, uint16_t host_port, uint16_t guest_port,
                              bool check_guest, sd_bus_error *error)
{
        if (!forward_proto(proto))
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                         "Invalid protocol '%s' for a port forward: use 'tcp' or "
                                         "'udp'",
                                         proto);
        if (host_port == 0)
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                         "Invalid host port 0: use a port from 1 to 65535");
        if (check_guest && guest_port == 0)
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                         "Invalid guest port 0: use a port from 1 to 65535");
        return 0;
}

/* Fails with Exists when a VM forwards host_port/proto already or is being given it. */
static int check_host_port_free(Manager *m, const char *proto, uint16_t host_port,
                                sd_bus_error *error)
{
        VmTask *pending = find_forward_being_added(m, proto, host_port);
        Vm *owner = pending ? pending->vm : NULL;
        uint16_t guest_port = pending ? pending->guest_port : 0;

        for (Vm *vm = m->vms; vm && !owner; vm = vm->next) {
                PortForward *f = record_find_forward(vm->record, proto, host_port);

                if (f) {
                        owner = vm;
                        guest_port = f->guest_port;
                }
        }
        if (!owner)
                return 0;
        return sd_bus_error_setf(error, BUS_ERROR_EXISTS,
                                 "Host port %u/%s is forwarded to port %u of VM '%s' already: "
                                 "pick another host port, or remove that forward with "
                                 "'bangerctl vm port rm %s %u/%s'",
                                 (unsigned)host_port, proto, (unsigned)guest_port,
                                 owner->record->name, owner->record->name, (unsigned)host_port,
                                 proto);
}

/* Starts the helper call for a forward of a running VM. The task replies to message. */
static int start_forward_task(Vm *vm, sd_bus_message *message, VmOperation operation,
                              const char *proto, uint16_t host_port, uint16_t guest_port)
{
        VmTask *t = task_new(message, operation);
        int r;

        if (!t)
                return -ENOMEM;
        t->old_pid = vm->record->pid;
        t->slot = vm->record->slot;
        t->proto = proto;
        t->host_port = host_port;
        t->guest_port = guest_port;
        r = start_task(vm, t,
                       operation == VM_OPERATION_ADD_FORWARD ? "add-port-forward"
                                                             : "remove-port-forward");
        if (r < 0)
                return log_error_errno(r, "Failed to start a worker for VM '%s': %m",
                                       vm->record->name);
        return 1;
}

/* Returns true when the forwards of vm must go through banger-helper now. */
static bool vm_forwards_installed(Vm *vm)
{
        return vm_is_up(vm) && vm->record->slot > 0 && !isempty(vm->record->tap);
}

static int method_add_port_forward(sd_bus_message *message, void *userdata, sd_bus_error *error)
{
        Vm *vm = userdata;
        const char *proto;
        uint16_t host_port, guest_port;
        int r;

        r = sd_bus_message_read(message, "sqq", &proto, &host_port, &guest_port);
        if (r < 0)
                return r;
        r = check_forward_args(proto, host_port, guest_port, true, error);
        if (r < 0)
                return r;
        proto = forward_proto(proto);

        r = authorize(vm, message, ACTION_VM_MANAGE, "add a port forward to", error);
        if (r < 0)
                return r;
        if (vm->busy)
                return reject_busy(vm, error);
        r = check_host_port_free(vm->manager, proto, host_port, error);
        if (r < 0)
                return r;
        if (vm_is_up(vm) && !vm_forwards_installed(vm))
                return sd_bus_error_setf(error, BUS_ERROR_NOT_RUNNING,
                                         "VM '%s' runs without a network device: restart it "
                                         "with 'bangerctl vm restart %s' first",
                                         vm->record->name, vm->record->name);

        if (vm_forwards_installed(vm))
                return start_forward_task(vm, message, VM_OPERATION_ADD_FORWARD, proto, host_port,
                                          guest_port);

        /* A VM that is not running gets the forward when it starts. */
        r = vm_store_forward(vm, proto, host_port, guest_port);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Failed to save the record of VM '%s': %m",
                                               vm->record->name);
        return sd_bus_reply_method_return(message, NULL);
}

static int method_remove_port_forward(sd_bus_message *message, void *userdata, sd_bus_error *error)
{
        Vm *vm = userdata;
        const char *proto;
        uint16_t host_port;
        PortForward *f;
        int r;

        r = sd_bus_message_read(message, "sq", &proto, &host_port);
        if (r < 0)
                return r;
        r = check_forward_args(proto, host_port, 0, false, error);
        if (r < 0)
                return r;
        proto = forward_proto(proto);

        r = authorize(vm, message, ACTION_VM_MANAGE, "remove a port forward from", error);
        if (r < 0)
                return r;
        if (vm->busy)
                return reject_busy(vm, error);
        f = record_find_forward(vm->record, proto, host_port);
        if (!f)
                return sd_bus_error_setf(error, BUS_ERROR_NOT_FOUND,
                                         "VM '%s' has no forward of host port %u/%s: list its "
                                         "forwards with 'bangerctl vm port list %s'",
                                         vm->record->name, (unsigned)host_port, proto,
                                         vm->record->name);

        if (vm_forwards_installed(vm))
                return start_forward_task(vm, message, VM_OPERATION_REMOVE_FORWARD, proto,
                                          host_port, 0);

        r = vm_drop_forward(vm, f);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Failed to save the record of VM '%s': %m",
                                               vm->record->name);
        return sd_bus_reply_method_return(message, NULL);
}

/* Returns true for a VM that PruneVMs removes: one of uid's VMs (any VM with all) that is not
 * running and has no operation in progress. */
static bool vm_can_prune(Vm *vm, uid_t uid, bool all)
{
        VmState state = vm->record->state;

        if (!all && vm->record->owner != uid)
                return false;
        if (state != VM_CREATED && state != VM_STOPPED && state != VM_FAILED)
                return false;
        return !vm->busy && vm->exec_in_flight == 0 && !forward_task_running(vm);
}

int vm_prune(Manager *m, sd_bus_message *message, uid_t uid, bool all)
{
        PruneRequest *p = calloc(1, sizeof(PruneRequest));
        int r;

        if (!p)
                return -ENOMEM;
        p->message = sd_bus_message_ref(message);
        /* This function holds one reference until every Delete has started. */
        p->pending = 1;

        for (Vm *vm = m->vms; vm; vm = vm->next) {
                VmTask *t;

                if (!vm_can_prune(vm, uid, all))
                        continue;
                t = task_new(message, VM_OPERATION_DELETE);
                if (!t) {
                        prune_request_record(p, vm->record->name, -ENOMEM, NULL);
                        continue;
                }
                t->prune = p;
                p->pending++;
                r = task_fill_halt(vm, t, false);
                if (r < 0) {
                        vm_task_free(t);
                        prune_request_record(p, vm->record->name, r, NULL);
                        continue;
                }
                r = start_task(vm, t, "delete");
                if (r < 0) {
                        prune_request_record(p, vm->record->name, r, NULL);
                        continue;
                }
                vm->busy = true;
        }

        prune_request_release(p, true);
        return 1;
}

/* SyncWorkspace: replaces the guest's copy of the VM's workspace with a tar stream from the
 * caller. It counts in exec_in_flight, so lifecycle calls fail with Busy while it runs. */

#define AGENT_CONNECT_USEC (10 * USEC_PER_SEC)
#define SYNC_STDERR_MAX    1024 /* bytes of tar's stderr that an error quotes */

typedef struct SyncTask {
        Vm *vm; /* stays valid because Delete is rejected while exec_in_flight > 0 */
        sd_bus_message *message;
        const VmBackendOps *ops;
        char *runtime_dir;
        pthread_mutex_t *agent_lock;
        char *vm_name;
        char *workspace_name;
        char *digest;
        int tar_fd;
} SyncTask;

/* Replaces /work/NAME with what tar reads on stdin. NAME comes as $1, so the shell never parses
 * it, although vm_workspace_name_check() allows only characters that need no quoting. */
#define SYNC_SCRIPT                                                                   \
        "rm -rf \"" GUEST_WORK_MOUNT "/$1\" && mkdir \"" GUEST_WORK_MOUNT "/$1\" && " \
        "tar -xf - -C \"" GUEST_WORK_MOUNT "/$1\""

static void sync_task_free(void *userdata)
{
        SyncTask *t = userdata;

        if (!t)
                return;
        sd_bus_message_unref(t->message);
        free(t->runtime_dir);
        free(t->vm_name);
        free(t->workspace_name);
        free(t->digest);
        safe_close(t->tar_fd);
        free(t);
}

/* Returns the first SYNC_STDERR_MAX bytes of the memfd fd as printable text. */
static char *read_stderr(int fd)
{
        char buf[SYNC_STDERR_MAX + 1];
        ssize_t n = pread(fd, buf, SYNC_STDERR_MAX, 0);

        if (n <= 0)
                return strdup("no error output");
        for (ssize_t i = 0; i < n; i++)
                if (buf[i] == '\n')
                        buf[i] = i == n - 1 ? '\0' : ' ';
                else if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] >= 0x7f)
                        buf[i] = '?';
        buf[n] = '\0';
        return strdup(buf);
}

static int run_sync(Job *j, void *userdata, char **ret_error)
{
        SyncTask *t = userdata;
        char *argv[] = { "/bin/sh", "-c", SYNC_SCRIPT, "sh", t->workspace_name, NULL };
        AgentExecRequest req = { .argv = argv, .cwd = "/", .user = "0" };
        _cleanup_close_ int err_fd = memfd_create("sync-stderr", MFD_CLOEXEC);
        _cleanup_free_ char *output = NULL;
        AgentExecStdio stdio = { .stdin_fd = t->tar_fd,
                                 .stdout_fd = -EBADF,
                                 .stderr_fd = err_fd,
                                 .control_fd = -EBADF };
        AgentExit exit_info = {};
        int fd, r;

        if (err_fd < 0)
                return negative_errno();
        pthread_mutex_lock(t->agent_lock);
        r = t->ops->agent_connect(t->runtime_dir, AGENT_CONNECT_USEC, &fd);
        if (r >= 0)
                r = agent_exec_stream_fd(fd, &req, &stdio, EXEC_TIMEOUT_USEC, &exit_info);
        pthread_mutex_unlock(t->agent_lock);
        if (r < 0) {
                if (asprintf(ret_error, "Failed to copy the workspace into VM '%s': %s", t->vm_name,
                             strerror(-r)) < 0)
                        *ret_error = NULL;
                return r;
        }
        if (exit_info.exit_status == 0)
                return 0;

        output = read_stderr(err_fd);
        if (asprintf(ret_error,
                     "Failed to extract the workspace to '" GUEST_WORK_MOUNT "/%s' in VM '%s' "
                     "(exit status %d, signal %d): %s",
                     t->workspace_name, t->vm_name, exit_info.exit_status, exit_info.signal,
                     strempty(output)) < 0)
                *ret_error = NULL;
        return -EIO;
}

static int complete_sync(Job *j, int result, const char *error, void *userdata, char **ret_error)
{
        SyncTask *t = userdata;
        Vm *vm = t->vm;
        char *old = vm->record->workspace_digest;
        int r;

        vm->exec_in_flight--;
        if (result < 0) {
                log_field(LOG_WARNING, "VM=%s", "%s", error ?: strerror(-result));
                r = sd_bus_reply_method_errorf(t->message, BUS_ERROR_AGENT_FAILED, "%s",
                                               error ?: strerror(-result));
                return r < 0 ? r : result;
        }

        vm->record->workspace_digest = t->digest;
        r = vm_save(vm);
        if (r < 0) {
                vm->record->workspace_digest = old;
                log_field_errno(LOG_ERR, r, "VM=%s", "Failed to save the record of VM '%s': %m",
                                vm->record->name);
                return sd_bus_reply_method_errorf(t->message, SD_BUS_ERROR_FAILED,
                                                  "Failed to save the record of VM '%s': %s",
                                                  vm->record->name, strerror(-r));
        }
        t->digest = old; /* freed with t */
        log_field(LOG_INFO, "VM=%s", "Synced the workspace '%s' of VM '%s'",
                  vm->record->workspace_name, vm->record->name);
        if (vm->manager->bus)
                (void)sd_bus_emit_properties_changed(vm->manager->bus, vm->path, "org.banger1.VM",
                                                     "WorkspaceDigest", NULL);
        return sd_bus_reply_method_return(t->message, NULL);
}

/* Checks the arguments of SyncWorkspace and that vm can take it. */
static int check_sync(Vm *vm, int fd, const char *digest, sd_bus_error *error)
{
        int flags = fcntl(fd, F_GETFL);

        if (flags < 0 || (flags & O_ACCMODE) == O_WRONLY || (flags & O_PATH))
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                         "The tar of SyncWorkspace is not a readable fd: pass "
                                         "the read end of a pipe that carries the tar stream");
        if (vm_workspace_digest_check(digest) < 0)
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                         "Invalid workspace digest '%s': use %d lower-case hex "
                                         "digits",
                                         digest, VM_WORKSPACE_DIGEST_LEN);
        if (!vm->record->workspace_name)
                return sd_bus_error_setf(error, BUS_ERROR_NOT_FOUND,
                                         "VM '%s' has no workspace: only a VM created with "
                                         "'bangerctl vm create --workspace DIR' has one",
                                         vm->record->name);
        if (!vm_is_up(vm) || vm->busy)
                return sd_bus_error_setf(error, BUS_ERROR_NOT_RUNNING,
                                         "VM '%s' is %s: start it with 'bangerctl vm start %s'",
                                         vm->record->name, vm_state_to_string(vm->record->state),
                                         vm->record->name);
        return 0;
}

static int method_sync_workspace(sd_bus_message *message, void *userdata, sd_bus_error *error)
{
        static unsigned counter = 0;
        Vm *vm = userdata;
        const VmBackendOps *ops;
        const char *digest;
        char target[128];
        SyncTask *t;
        Job *j;
        int fd, r;

        r = sd_bus_message_read(message, "hs", &fd, &digest);
        if (r < 0)
                return r;
        r = authorize(vm, message, ACTION_VM_LOGIN, "sync the workspace of", error);
        if (r < 0)
                return r;
        r = check_sync(vm, fd, digest, error);
        if (r < 0)
                return r;
        ops = vm->record->backend ? vm_backend_ops(vm_backend_from_string(vm->record->backend))
                                  : &vm_backend_qemu;
        if (!ops)
                return -EPROTONOSUPPORT;

        t = calloc(1, sizeof(SyncTask));
        if (!t)
                return -ENOMEM;
        *t = (SyncTask){ .vm = vm, .ops = ops, .agent_lock = &vm->agent_lock };
        t->message = sd_bus_message_ref(message);
        t->tar_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        t->runtime_dir = strdup(vm->runtime_dir);
        t->vm_name = strdup(vm->record->name);
        t->workspace_name = strdup(vm->record->workspace_name);
        t->digest = strdup(digest);
        if (t->tar_fd < 0 || !t->runtime_dir || !t->vm_name || !t->workspace_name || !t->digest) {
                r = t->tar_fd < 0 ? negative_errno() : -ENOMEM;
                sync_task_free(t);
                return r;
        }

        snprintf(target, sizeof(target), "%s/sync-workspace/%u", vm->record->name, ++counter);
        r = job_start(vm->manager->tasks, "sync-workspace", target, run_sync, complete_sync, t,
                      sync_task_free, &j);
        if (r < 0)
                return log_error_errno(r, "Failed to start a worker for VM '%s': %m",
                                       vm->record->name);
        vm->exec_in_flight++;
        return 1;
}

#define RECORD_STRING_GETTER(function, field)                                            \
        static int function(sd_bus *bus, const char *path, const char *interface,        \
                            const char *property, sd_bus_message *reply, void *userdata, \
                            sd_bus_error *error)                                         \
        {                                                                                \
                Vm *vm = userdata;                                                       \
                return sd_bus_message_append(reply, "s", strempty(vm->record->field));   \
        }

RECORD_STRING_GETTER(property_get_name, name)
RECORD_STRING_GETTER(property_get_id, id)
RECORD_STRING_GETTER(property_get_image, image)
RECORD_STRING_GETTER(property_get_kernel, kernel)
RECORD_STRING_GETTER(property_get_unit, unit)
RECORD_STRING_GETTER(property_get_backend, backend)
RECORD_STRING_GETTER(property_get_state_reason, state_reason)
RECORD_STRING_GETTER(property_get_address, address)
RECORD_STRING_GETTER(property_get_tap, tap)
RECORD_STRING_GETTER(property_get_host_key_fingerprint, host_key_fingerprint)
RECORD_STRING_GETTER(property_get_workspace, workspace_name)
RECORD_STRING_GETTER(property_get_workspace_path, workspace_path)
RECORD_STRING_GETTER(property_get_workspace_digest, workspace_digest)

static int property_get_state(sd_bus *bus, const char *path, const char *interface,
                              const char *property, sd_bus_message *reply, void *userdata,
                              sd_bus_error *error)
{
        Vm *vm = userdata;

        return sd_bus_message_append(reply, "s", vm_state_to_string(vm->record->state));
}

static int property_get_uint(sd_bus *bus, const char *path, const char *interface,
                             const char *property, sd_bus_message *reply, void *userdata,
                             sd_bus_error *error)
{
        Vm *vm = userdata;
        uint32_t v = 0;

        if (streq(property, "Owner"))
                v = vm->record->owner;
        else if (streq(property, "VCPUs"))
                v = vm->record->vcpus;
        else if (streq(property, "MemoryMiB"))
                v = vm->record->memory_mib;
        else if (streq(property, "WorkDiskMiB"))
                v = vm->record->work_size_mib;
        return sd_bus_message_append(reply, "u", v);
}

static int property_get_created(sd_bus *bus, const char *path, const char *interface,
                                const char *property, sd_bus_message *reply, void *userdata,
                                sd_bus_error *error)
{
        Vm *vm = userdata;

        return sd_bus_message_append(reply, "t", vm->record->created_usec);
}

static int property_get_port_forwards(sd_bus *bus, const char *path, const char *interface,
                                      const char *property, sd_bus_message *reply, void *userdata,
                                      sd_bus_error *error)
{
        VmRecord *rec = ((Vm *)userdata)->record;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "(sqq)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < rec->n_forwards; i++) {
                r = sd_bus_message_append(reply, "(sqq)", rec->forwards[i].proto,
                                          rec->forwards[i].host_port, rec->forwards[i].guest_port);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

void vm_emit_state_changed(Vm *vm)
{
        Manager *m = vm->manager;
        int r;

        if (!m->bus)
                return;
        /* A VM gets its address and tap on start and loses the tap on stop, so both go with
         * State. */
        r = sd_bus_emit_properties_changed(m->bus, vm->path, "org.banger1.VM", "State",
                                           "StateReason", "Address", "Tap", NULL);
        if (r < 0)
                log_debug_errno(r, "Failed to emit PropertiesChanged for '%s': %m", vm->path);
}

int vm_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                   void **found, sd_bus_error *error)
{
        Manager *m = userdata;
        _cleanup_free_ char *name = NULL;
        Vm *vm;
        int r;

        r = sd_bus_path_decode(path, VM_PATH_PREFIX, &name);
        if (r <= 0)
                return r;
        vm = manager_find_vm(m, name);
        if (!vm)
                return 0;
        *found = vm;
        return 1;
}

int vm_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes,
                       sd_bus_error *error)
{
        Manager *m = userdata;
        _cleanup_strv_free_ char **l = NULL;
        int r;

        for (Vm *vm = m->vms; vm; vm = vm->next) {
                r = strv_extend(&l, vm->path);
                if (r < 0)
                        return r;
        }
        *nodes = TAKE_PTR(l);
        return 0;
}

const sd_bus_vtable vm_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", property_get_name, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Id", "s", property_get_id, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Owner", "u", property_get_uint, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Image", "s", property_get_image, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Kernel", "s", property_get_kernel, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("VCPUs", "u", property_get_uint, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("MemoryMiB", "u", property_get_uint, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Address", "s", property_get_address, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Tap", "s", property_get_tap, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("PortForwards", "a(sqq)", property_get_port_forwards, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Unit", "s", property_get_unit, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Backend", "s", property_get_backend, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("HostKeyFingerprint", "s", property_get_host_key_fingerprint, 0,
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("WorkDiskMiB", "u", property_get_uint, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Workspace", "s", property_get_workspace, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("WorkspacePath", "s", property_get_workspace_path, 0,
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("WorkspaceDigest", "s", property_get_workspace_digest, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("CreatedAt", "t", property_get_created, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("StateReason", "s", property_get_state_reason, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD("Start", "", "", method_start, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Stop", "b", SD_BUS_PARAM(force), "", , method_stop,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Restart", "", "", method_restart, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Delete", "", "", method_delete, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Exec", "asa{sv}hhh",
                                 SD_BUS_PARAM(argv) SD_BUS_PARAM(options) SD_BUS_PARAM(stdin)
                                         SD_BUS_PARAM(stdout) SD_BUS_PARAM(stderr),
                                 "ii", SD_BUS_PARAM(exit_status) SD_BUS_PARAM(signal),
                                 method_vm_exec, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("ListPorts", "", , "a(ssqus)", SD_BUS_PARAM(ports),
                                 method_vm_list_ports, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("OpenConsole", "", , "h", SD_BUS_PARAM(fd), method_vm_open_console,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("OpenConsoleLog", "", , "h", SD_BUS_PARAM(fd),
                                 method_open_console_log, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("AddPortForward", "sqq",
                                 SD_BUS_PARAM(proto) SD_BUS_PARAM(host_port)
                                         SD_BUS_PARAM(guest_port),
                                 "", , method_add_port_forward, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("RemovePortForward", "sq",
                                 SD_BUS_PARAM(proto) SD_BUS_PARAM(host_port), "", ,
                                 method_remove_port_forward, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("SyncWorkspace", "hs", SD_BUS_PARAM(tar) SD_BUS_PARAM(digest), "",
                                 , method_sync_workspace, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};
