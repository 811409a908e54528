#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>

#include "bus-error.h"
#include "helper-bus.h"
#include "helper-dbus.h"
#include "helper-network.h"
#include "helper-util.h"
#include "log.h"
#include "macro.h"
#include "name.h"
#include "polkit.h"
#include "scope.h"

#define SCOPE_TIMEOUT_USEC (30ULL * 1000000ULL)
#define SCOPE_SLICE        "banger.slice"

/* Checks polkit action HELPER_ACTION for the sender, with the method as the verb. A rejected call
 * is logged here with the caller's uid, because polkit's own log line names only the bus name. */
static int authorize(sd_bus_message *m, const char *method, const char *vm_name,
                     sd_bus_error *error)
{
        _cleanup_(sd_bus_error_free) sd_bus_error polkit_error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        uid_t uid = (uid_t)-1;
        int r;

        r = polkit_check(m, HELPER_ACTION, vm_name, method, &polkit_error);
        if (r >= 0)
                return 0;
        if (!sd_bus_error_is_set(&polkit_error))
                return r;

        if (sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID, &creds) >= 0)
                (void)sd_bus_creds_get_euid(creds, &uid);
        log_warning("Rejected %s from uid %d ('%s'): polkit did not authorize '%s'", method,
                    uid == (uid_t)-1 ? -1 : (int)uid, strempty(sd_bus_message_get_sender(m)),
                    HELPER_ACTION);

        return sd_bus_error_setf(error, BUS_ERROR_ACCESS_DENIED,
                                 "Not authorized to call %s on %s: polkit grants '%s' to user "
                                 "'%s' only",
                                 method, HELPER_BUS_NAME, HELPER_ACTION, HELPER_CLIENT_USER);
}

/* Logs a failed call once and turns it into the bus error for its errno. */
static int reply_error(sd_bus_error *error, const char *method, int r, const char *message)
{
        const char *name;

        if (!message)
                return r;

        switch (r) {
        case -EINVAL:
                name = BUS_ERROR_INVALID_ARGUMENT;
                break;
        case -EADDRINUSE:
                name = BUS_ERROR_BUSY;
                break;
        case -EEXIST:
                name = BUS_ERROR_EXISTS;
                break;
        case -ENOENT:
        case -ESRCH:
                name = BUS_ERROR_NOT_FOUND;
                break;
        case -EACCES:
        case -EPERM:
                name = BUS_ERROR_ACCESS_DENIED;
                break;
        default:
                log_error("%s failed: %s", method, message);
                return sd_bus_error_set_errnof(error, r, "%s", message);
        }

        log_warning("Rejected %s: %s", method, message);
        return sd_bus_error_set(error, name, message);
}

static int check_proto_and_port(const char *proto, uint16_t host_port, sd_bus_error *error)
{
        if (!streq(proto, "tcp") && !streq(proto, "udp"))
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                         "Invalid protocol '%s': use 'tcp' or 'udp'", proto);
        if (host_port == 0)
                return sd_bus_error_set(error, BUS_ERROR_INVALID_ARGUMENT,
                                        "Invalid host port 0: use a port from 1 to 65535");
        return 0;
}

static int method_ensure_network(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        Helper *h = userdata;
        _cleanup_free_ char *message = NULL;
        char address[IPV4_FORMAT_MAX];
        Ipv4Net net;
        int r;

        r = authorize(m, "EnsureNetwork", NULL, error);
        if (r < 0)
                return r;

        r = network_ensure(h->config, &net, &message);
        if (r < 0)
                return reply_error(error, "EnsureNetwork", r, message);

        ipv4_format(ipv4_net_host(&net, 1), 0, false, address);
        return sd_bus_reply_method_return(m, "ssu", HELPER_BRIDGE, address, (uint32_t)net.prefix);
}

static int method_create_tap(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        Helper *h = userdata;
        _cleanup_free_ char *message = NULL;
        char tap[IF_NAMESIZE], address[IPV4_FORMAT_MAX];
        uint32_t slot, addr;
        int r;

        r = sd_bus_message_read(m, "u", &slot);
        if (r < 0)
                return r;

        r = authorize(m, "CreateTap", NULL, error);
        if (r < 0)
                return r;

        r = network_create_tap(h->config, slot, tap, &addr, &message);
        if (r < 0)
                return reply_error(error, "CreateTap", r, message);

        ipv4_format(addr, 0, false, address);
        return sd_bus_reply_method_return(m, "ss", tap, address);
}

static int method_delete_tap(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        Helper *h = userdata;
        _cleanup_free_ char *message = NULL;
        uint32_t slot;
        int r;

        r = sd_bus_message_read(m, "u", &slot);
        if (r < 0)
                return r;

        r = authorize(m, "DeleteTap", NULL, error);
        if (r < 0)
                return r;

        r = network_delete_tap(h->config, slot, &message);
        if (r < 0)
                return reply_error(error, "DeleteTap", r, message);

        return sd_bus_reply_method_return(m, NULL);
}

static int method_add_port_forward(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        Helper *h = userdata;
        _cleanup_free_ char *message = NULL;
        uint16_t host_port, guest_port;
        const char *proto;
        uint32_t slot;
        int r;

        r = sd_bus_message_read(m, "usqq", &slot, &proto, &host_port, &guest_port);
        if (r < 0)
                return r;

        r = authorize(m, "AddPortForward", NULL, error);
        if (r < 0)
                return r;

        r = check_proto_and_port(proto, host_port, error);
        if (r < 0)
                return r;
        if (guest_port == 0)
                return sd_bus_error_set(error, BUS_ERROR_INVALID_ARGUMENT,
                                        "Invalid guest port 0: use a port from 1 to 65535");

        r = network_add_forward(h->config, slot, proto, host_port, guest_port, &message);
        if (r < 0)
                return reply_error(error, "AddPortForward", r, message);

        return sd_bus_reply_method_return(m, NULL);
}

static int method_remove_port_forward(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        Helper *h = userdata;
        _cleanup_free_ char *message = NULL;
        const char *proto;
        uint16_t host_port;
        uint32_t slot;
        int r;

        r = sd_bus_message_read(m, "usq", &slot, &proto, &host_port);
        if (r < 0)
                return r;

        r = authorize(m, "RemovePortForward", NULL, error);
        if (r < 0)
                return r;

        r = check_proto_and_port(proto, host_port, error);
        if (r < 0)
                return r;

        r = network_remove_forward(h->config, slot, proto, host_port, &message);
        if (r < 0)
                return reply_error(error, "RemovePortForward", r, message);

        return sd_bus_reply_method_return(m, NULL);
}

static int method_reconcile(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        _cleanup_free_ char *message = NULL;
        const uint32_t *slots;
        size_t size, n;
        int r;

        r = sd_bus_message_read_array(m, 'u', (const void **)&slots, &size);
        if (r < 0)
                return r;
        n = size / sizeof(uint32_t);

        r = authorize(m, "Reconcile", NULL, error);
        if (r < 0)
                return r;

        for (size_t i = 0; i < n; i++)
                if (slots[i] < 1 || slots[i] > HELPER_MAX_SLOT)
                        return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                                 "Invalid slot %u in live_slots: slots are 1 to %u",
                                                 slots[i], HELPER_MAX_SLOT);

        r = network_reconcile(slots, n, &message);
        if (r < 0)
                return reply_error(error, "Reconcile", r, message);

        return sd_bus_reply_method_return(m, NULL);
}

/* Checks that pid runs as HELPER_CLIENT_USER with both its real and effective uid, so a caller
 * cannot have another user's process moved into a VM scope. */
static int check_scope_pid(pid_t pid, sd_bus_error *error)
{
        struct passwd *pw;
        uid_t real, effective;
        int r;

        pw = getpwnam(HELPER_CLIENT_USER);
        if (!pw)
                return sd_bus_error_setf(error, BUS_ERROR_NOT_FOUND,
                                         "User '%s' does not exist: create it with "
                                         "systemd-sysusers",
                                         HELPER_CLIENT_USER);

        r = proc_read_uids(pid, &real, &effective);
        if (r == -ESRCH)
                return sd_bus_error_setf(error, BUS_ERROR_NOT_FOUND, "Process %d does not exist",
                                         (int)pid);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r,
                                               "Failed to read the uids of process %d: %s",
                                               (int)pid, strerror(-r));

        if (real != pw->pw_uid || effective != pw->pw_uid)
                return sd_bus_error_setf(error, BUS_ERROR_ACCESS_DENIED,
                                         "Process %d runs as uid %u (effective %u), not as user "
                                         "'%s': StartScope moves only processes of '%s'",
                                         (int)pid, (unsigned)real, (unsigned)effective,
                                         HELPER_CLIENT_USER, HELPER_CLIENT_USER);
        return 0;
}

/* Reads the pids argument of StartScope into ret, checking each number. */
static int read_scope_pids(sd_bus_message *m, pid_t ret[static SCOPE_PIDS_MAX], size_t *ret_n,
                           sd_bus_error *error)
{
        const uint32_t *pids;
        size_t size, n;
        int r;

        r = sd_bus_message_read_array(m, 'u', (const void **)&pids, &size);
        if (r < 0)
                return r;
        n = size / sizeof(uint32_t);
        if (n == 0 || n > SCOPE_PIDS_MAX)
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                         "Invalid number of pids %zu: StartScope moves 1 to %u "
                                         "processes",
                                         n, SCOPE_PIDS_MAX);
        for (size_t i = 0; i < n; i++) {
                if (pids[i] == 0 || pids[i] > INT32_MAX)
                        return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                                 "Invalid pid %u: expected a process id", pids[i]);
                ret[i] = (pid_t)pids[i];
        }
        *ret_n = n;
        return 0;
}

/* Formats the pids for log lines and messages: "123" or "123, 456". */
static void format_pids(const pid_t *pids, size_t n, char *buf, size_t size)
{
        size_t used = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < n && used < size; i++) {
                int k = snprintf(buf + used, size - used, "%s%d", i > 0 ? ", " : "", (int)pids[i]);

                if (k < 0)
                        break;
                used += (size_t)k;
        }
}

static int method_start_scope(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        _cleanup_free_ char *name_error = NULL, *unit = NULL, *description = NULL,
                            *scope_error = NULL, *field = NULL;
        uint64_t memory_max, tasks_max, cpu_quota;
        pid_t pids[SCOPE_PIDS_MAX];
        char pid_list[SCOPE_PIDS_MAX * 13];
        const char *vm_name;
        size_t n_pids = 0;
        int r;

        r = sd_bus_message_read(m, "s", &vm_name);
        if (r < 0)
                return r;
        r = read_scope_pids(m, pids, &n_pids, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "ttt", &memory_max, &tasks_max, &cpu_quota);
        if (r < 0)
                return r;

        r = authorize(m, "StartScope", vm_name, error);
        if (r < 0)
                return r;

        r = vm_name_check(vm_name, &name_error);
        if (r < 0)
                return sd_bus_error_set(error, BUS_ERROR_INVALID_ARGUMENT, name_error);

        /* TODO: a pid may exit and its number be reused between this check and systemd moving
         * it. Newer systemd takes pidfds (property PIDFDs) instead, which closes that window. */
        for (size_t i = 0; i < n_pids; i++) {
                r = check_scope_pid(pids[i], error);
                if (r < 0) {
                        log_warning("Rejected StartScope for VM '%s': %s", vm_name, error->message);
                        return r;
                }
        }

        r = scope_name_for_vm(vm_name, &unit);
        if (r < 0)
                return r;
        if (asprintf(&description, "banger VM %s", vm_name) < 0)
                return -ENOMEM;

        ScopeSpec spec = {
                .unit = unit,
                .slice = SCOPE_SLICE,
                .description = description,
                .pids = pids,
                .n_pids = n_pids,
                .memory_max = memory_max,
                .tasks_max = tasks_max,
                .cpu_quota_per_sec_usec = cpu_quota,
        };

        format_pids(pids, n_pids, pid_list, sizeof(pid_list));
        /* Root may start transient units without polkit, so this needs no rule for bangerd. */
        r = scope_start(&spec, SCOPE_TIMEOUT_USEC, &scope_error);
        if (r < 0) {
                _cleanup_free_ char *message = NULL;

                if (asprintf(&message, "Failed to start scope '%s' for processes %s: %s", unit,
                             pid_list, scope_error ?: strerror(-r)) < 0)
                        return -ENOMEM;
                return reply_error(error, "StartScope", r == -EEXIST ? r : -EIO, message);
        }

        /* The field's value is the VM name, so it is built here rather than taken as a format. */
        if (asprintf(&field, "VM=%s", vm_name) < 0)
                field = NULL;
        log_field(LOG_INFO, field, "Started scope '%s' for processes %s of VM '%s'", unit, pid_list,
                  vm_name);
        return sd_bus_reply_method_return(m, "s", unit);
}

const sd_bus_vtable helper_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_NAMES("EnsureNetwork", "", , "ssu",
                                 SD_BUS_PARAM(bridge) SD_BUS_PARAM(address) SD_BUS_PARAM(prefix),
                                 method_ensure_network, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("CreateTap", "u", SD_BUS_PARAM(slot), "ss",
                                 SD_BUS_PARAM(tap) SD_BUS_PARAM(address), method_create_tap,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("DeleteTap", "u", SD_BUS_PARAM(slot), "", , method_delete_tap,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("AddPortForward", "usqq",
                                 SD_BUS_PARAM(slot) SD_BUS_PARAM(proto) SD_BUS_PARAM(host_port)
                                         SD_BUS_PARAM(guest_port),
                                 "", , method_add_port_forward, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("RemovePortForward", "usq",
                                 SD_BUS_PARAM(slot) SD_BUS_PARAM(proto) SD_BUS_PARAM(host_port), "",
                                 , method_remove_port_forward, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Reconcile", "au", SD_BUS_PARAM(live_slots), "", ,
                                 method_reconcile, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES(
                "StartScope", "sauttt",
                SD_BUS_PARAM(vm_name) SD_BUS_PARAM(pids) SD_BUS_PARAM(memory_max)
                        SD_BUS_PARAM(tasks_max) SD_BUS_PARAM(cpu_quota_per_sec_usec),
                "s", SD_BUS_PARAM(unit), method_start_scope, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};
