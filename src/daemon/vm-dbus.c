#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "agent-client.h"
#include "bus-error.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "polkit.h"
#include "scope.h"
#include "strv.h"
#include "vm.h"

#define EXEC_TIMEOUT_USEC  (3600 * USEC_PER_SEC)
#define SCOPE_TIMEOUT_USEC (30 * USEC_PER_SEC)

typedef enum VmOperation {
        VM_OPERATION_START,
        VM_OPERATION_STOP,
        VM_OPERATION_RESTART,
        VM_OPERATION_DELETE,
        VM_OPERATION_EXEC,
} VmOperation;

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

        char **argv;
        char **env;
        char *cwd;
        char *agent_socket;
        pthread_mutex_t *agent_lock;
        AgentExecResult *exec_result;
} VmTask;

static void vm_task_free(void *userdata)
{
        VmTask *t = userdata;

        if (!t)
                return;
        sd_bus_message_unref(t->message);
        free(t->unit);
        free(t->vm_dir);
        free(t->runtime_dir);
        vm_boot_params_done(&t->boot);
        vm_network_done(&t->net);
        strv_free(t->argv);
        strv_free(t->env);
        free(t->cwd);
        free(t->agent_socket);
        agent_exec_result_free(t->exec_result);
        free(t);
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
        AgentExecRequest req;
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

        case VM_OPERATION_EXEC:
                req = (AgentExecRequest){ .argv = t->argv, .env = t->env, .cwd = t->cwd };
                pthread_mutex_lock(t->agent_lock);
                r = agent_exec(t->agent_socket, &req, EXEC_TIMEOUT_USEC, &t->exec_result);
                pthread_mutex_unlock(t->agent_lock);
                if (r < 0 && asprintf(ret_error, "Failed to run '%s' in the guest: %s", t->argv[0],
                                      strerror(-r)) < 0)
                        *ret_error = NULL;
                return r;
        }
        return -EINVAL;
}

static int reply_exec(VmTask *t)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        AgentExecResult *x = t->exec_result;
        int r;

        r = sd_bus_message_new_method_return(t->message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "ii", x->exit_status, x->signal);
        if (r < 0)
                return r;
        r = sd_bus_message_append_array(reply, 'y', x->out, x->out_size);
        if (r < 0)
                return r;
        r = sd_bus_message_append_array(reply, 'y', x->err, x->err_size);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static void reply_failure(VmTask *t, const char *name, int result, const char *message)
{
        int r;

        r = sd_bus_reply_method_errorf(t->message, name, "%s", message ?: strerror(-result));
        if (r < 0)
                log_debug_errno(r, "Failed to send an error reply: %m");
}

static int complete_task(Job *j, int result, const char *error, void *userdata, char **ret_error)
{
        VmTask *t = userdata;
        Vm *vm = t->vm;
        Manager *m = vm->manager;
        _cleanup_free_ char *name = NULL, *path = NULL;
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
                vm->busy = false;
                if (result < 0) {
                        reply_failure(t, BUS_ERROR_BUSY, result, error);
                        return result;
                }
                name = strdup(vm->record->name);
                path = strdup(vm->path);
                if (!name || !path)
                        return -ENOMEM;
                log_field(LOG_INFO, "VM=%s", "Deleted VM '%s'", name);
                manager_remove_vm(m, vm);
                manager_emit_object_signal(m, "VMRemoved", name, path);
                break;

        case VM_OPERATION_EXEC:
                vm->exec_in_flight--;
                if (result < 0) {
                        reply_failure(t, BUS_ERROR_AGENT_FAILED, result, error);
                        return result;
                }
                r = reply_exec(t);
                if (r < 0)
                        log_warning_errno(r, "Failed to send the result of Exec: %m");
                return 0;
        }

        r = sd_bus_reply_method_return(t->message, NULL);
        if (r < 0)
                log_debug_errno(r, "Failed to send a reply: %m");
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

static int reject_busy(Vm *vm, sd_bus_error *error)
{
        return sd_bus_error_setf(error, BUS_ERROR_BUSY,
                                 "VM '%s' is %s and another operation on it is in progress: "
                                 "wait for it to finish",
                                 vm->record->name, vm_state_to_string(vm->record->state));
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
        if (vm->busy || vm->exec_in_flight > 0)
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

static int read_exec_options(sd_bus_message *message, VmTask *t, sd_bus_error *error)
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
                if (streq(key, "env")) {
                        r = sd_bus_message_enter_container(message, 'v', "as");
                        if (r < 0)
                                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                                         "Exec option 'env' must be an array of "
                                                         "strings (as)");
                        r = sd_bus_message_read_strv(message, &t->env);
                        if (r < 0)
                                return r;
                        r = sd_bus_message_exit_container(message);
                } else if (streq(key, "cwd")) {
                        const char *cwd;

                        r = sd_bus_message_read(message, "v", "s", &cwd);
                        if (r < 0)
                                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                                         "Exec option 'cwd' must be a string");
                        free(t->cwd);
                        t->cwd = strdup(cwd);
                        if (!t->cwd)
                                return -ENOMEM;
                } else
                        return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                                 "Unknown Exec option '%s': the options are "
                                                 "'env' and 'cwd'",
                                                 key);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(message);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(message);
}

static int method_exec(sd_bus_message *message, void *userdata, sd_bus_error *error)
{
        Vm *vm = userdata;
        VmTask *t;
        int r;

        t = task_new(message, VM_OPERATION_EXEC);
        if (!t)
                return -ENOMEM;

        r = sd_bus_message_read_strv(message, &t->argv);
        if (r >= 0)
                r = read_exec_options(message, t, error);
        if (r < 0 || sd_bus_error_is_set(error)) {
                vm_task_free(t);
                return r;
        }
        if (strv_length(t->argv) == 0) {
                vm_task_free(t);
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                         "Exec needs a command: argv is empty");
        }

        r = authorize(vm, message, ACTION_VM_LOGIN, "exec in", error);
        if (r < 0) {
                vm_task_free(t);
                return r;
        }
        if (!vm_is_up(vm) || vm->busy) {
                vm_task_free(t);
                return sd_bus_error_setf(error, BUS_ERROR_NOT_RUNNING,
                                         "VM '%s' is %s: start it with 'bangerctl vm start %s'",
                                         vm->record->name, vm_state_to_string(vm->record->state),
                                         vm->record->name);
        }

        t->agent_lock = &vm->agent_lock;
        r = vm_agent_socket(vm, &t->agent_socket);
        if (r < 0) {
                vm_task_free(t);
                return r;
        }
        r = start_task(vm, t, "exec");
        if (r < 0)
                return log_error_errno(r, "Failed to start a worker for VM '%s': %m",
                                       vm->record->name);
        vm->exec_in_flight++;
        return 1;
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
        return sd_bus_message_append(reply, "u", v);
}

static int property_get_created(sd_bus *bus, const char *path, const char *interface,
                                const char *property, sd_bus_message *reply, void *userdata,
                                sd_bus_error *error)
{
        Vm *vm = userdata;

        return sd_bus_message_append(reply, "t", vm->record->created_usec);
}

/* TODO: Address and HostKeyFingerprint stay empty until bangerd sets up networking and SSH
 * host keys. */
static int property_get_empty(sd_bus *bus, const char *path, const char *interface,
                              const char *property, sd_bus_message *reply, void *userdata,
                              sd_bus_error *error)
{
        return sd_bus_message_append(reply, "s", "");
}

void vm_emit_state_changed(Vm *vm)
{
        Manager *m = vm->manager;
        int r;

        if (!m->bus)
                return;
        r = sd_bus_emit_properties_changed(m->bus, vm->path, "org.banger1.VM", "State",
                                           "StateReason", NULL);
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
        SD_BUS_PROPERTY("Address", "s", property_get_empty, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Unit", "s", property_get_unit, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Backend", "s", property_get_backend, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("HostKeyFingerprint", "s", property_get_empty, 0,
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("CreatedAt", "t", property_get_created, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("StateReason", "s", property_get_state_reason, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD("Start", "", "", method_start, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Stop", "b", SD_BUS_PARAM(force), "", , method_stop,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Restart", "", "", method_restart, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Delete", "", "", method_delete, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Exec", "asa{sv}", SD_BUS_PARAM(argv) SD_BUS_PARAM(options),
                                 "iiayay",
                                 SD_BUS_PARAM(exit_status) SD_BUS_PARAM(signal) SD_BUS_PARAM(stdout)
                                         SD_BUS_PARAM(stderr),
                                 method_exec, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("OpenConsoleLog", "", , "h", SD_BUS_PARAM(fd),
                                 method_open_console_log, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};
