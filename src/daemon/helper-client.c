#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-bus.h>

#include "helper-bus.h"
#include "helper-client.h"
#include "log.h"
#include "macro.h"

/* Long enough for D-Bus to activate banger-helper first, for nftables to load its rules and for
 * systemd to finish a scope's start job. */
#define HELPER_CALL_TIMEOUT_USEC (90ULL * 1000000ULL)

#define HELPER_ERROR_PREFIX           "org.banger1.Error."
#define HELPER_ERROR_BUSY             HELPER_ERROR_PREFIX "Busy"
#define HELPER_ERROR_ACCESS_DENIED    HELPER_ERROR_PREFIX "AccessDenied"
#define HELPER_ERROR_NOT_FOUND        HELPER_ERROR_PREFIX "NotFound"
#define HELPER_ERROR_INVALID_ARGUMENT HELPER_ERROR_PREFIX "InvalidArgument"

static void set_error(char **ret_error, const char *format, ...)
        __attribute__((format(printf, 2, 3)));

static void set_error(char **ret_error, const char *format, ...)
{
        va_list ap;

        if (!ret_error)
                return;
        va_start(ap, format);
        if (vasprintf(ret_error, format, ap) < 0)
                *ret_error = NULL;
        va_end(ap);
}

/* Maps the helper's error names to the errno values that callers check, whether or not the
 * process registered banger's error map, and keeps anything else as sd-bus maps it. */
static int error_to_errno(const sd_bus_error *error, int r)
{
        if (sd_bus_error_has_name(error, HELPER_ERROR_BUSY))
                return -EADDRINUSE;
        if (sd_bus_error_has_name(error, HELPER_ERROR_ACCESS_DENIED))
                return -EACCES;
        if (sd_bus_error_has_name(error, HELPER_ERROR_NOT_FOUND))
                return -ENOENT;
        if (sd_bus_error_has_name(error, HELPER_ERROR_INVALID_ARGUMENT))
                return -EINVAL;
        return r < 0 ? r : -EIO;
}

/* Sends call on its own connection and waits for the reply. On failure *ret_error contains
 * the helper's own message when it sent an org.banger1.Error, else a message naming the method. */
static int helper_call(sd_bus *bus, sd_bus_message *call, const char *method,
                       sd_bus_message **ret_reply, char **ret_error)
{
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call(bus, call, HELPER_CALL_TIMEOUT_USEC, &error, ret_reply);
        if (r >= 0)
                return 0;

        if (error.name && strneq(error.name, HELPER_ERROR_PREFIX, strlen(HELPER_ERROR_PREFIX)))
                set_error(ret_error, "%s", strempty(error.message));
        else
                set_error(ret_error, "Failed to call %s on %s: %s", method, HELPER_BUS_NAME,
                          error.message ?: strerror(-r));
        log_debug("%s on %s failed: %s (%s)", method, HELPER_BUS_NAME,
                  error.message ?: strerror(-r), strempty(error.name));
        return error_to_errno(&error, r);
}

static int reply_unreadable(const char *method, int r, char **ret_error)
{
        set_error(ret_error, "Failed to read the reply of %s from %s: %s", method, HELPER_BUS_NAME,
                  strerror(-r));
        return r;
}

static int helper_new_call(const char *method, sd_bus **ret_bus, sd_bus_message **ret_call,
                           char **ret_error)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        sd_bus_message *call;
        int r;

        r = sd_bus_open_system(&bus);
        if (r < 0) {
                set_error(ret_error, "Failed to connect to the system bus for %s: %s", method,
                          strerror(-r));
                return r;
        }
        r = sd_bus_message_new_method_call(bus, &call, HELPER_BUS_NAME, HELPER_PATH,
                                           HELPER_INTERFACE, method);
        if (r < 0)
                return r;

        *ret_bus = TAKE_PTR(bus);
        *ret_call = call;
        return 0;
}

/* Calls method with the arguments in types and the variadic list, on a connection of its own.
 * The reply keeps the connection's memory alive after it is closed. */
static int helper_call_method(const char *method, sd_bus_message **ret_reply, char **ret_error,
                              const char *types, ...)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        va_list ap;
        int r;

        r = helper_new_call(method, &bus, &call, ret_error);
        if (r < 0)
                return r;
        if (!isempty(types)) {
                va_start(ap, types);
                r = sd_bus_message_appendv(call, types, ap);
                va_end(ap);
                if (r < 0)
                        return r;
        }
        return helper_call(bus, call, method, ret_reply, ret_error);
}

static bool slot_is_valid(unsigned slot)
{
        return slot >= 1 && slot <= HELPER_MAX_SLOT;
}

static int reject_slot(unsigned slot, char **ret_error)
{
        set_error(ret_error, "Invalid network slot %u: slots run from 1 to %u", slot,
                  HELPER_MAX_SLOT);
        return -EINVAL;
}

static bool link_name_is_valid(const char *name)
{
        return !isempty(name) && strlen(name) < IFNAMSIZ && !strchr(name, '/');
}

static bool ipv4_is_valid(const char *address)
{
        struct in_addr a;

        return address && inet_pton(AF_INET, address, &a) == 1;
}

/* The reply came from a peer: a value that the contract in helper-bus.h rules out is an
 * error, not something to copy into a record. */
static int reject_reply(const char *method, const char *what, const char *value, char **ret_error)
{
        set_error(ret_error,
                  "%s returned an invalid %s '%s': check that banger-helper matches bangerd",
                  method, what, value);
        return -EBADMSG;
}

int helper_ensure_network(HelperNetwork *ret, char **ret_error)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *bridge, *address;
        uint32_t prefix;
        HelperNetwork n = {};
        int r;

        r = helper_call_method("EnsureNetwork", &reply, ret_error, NULL);
        if (r < 0)
                return r;

        r = sd_bus_message_read(reply, "ssu", &bridge, &address, &prefix);
        if (r < 0)
                return reply_unreadable("EnsureNetwork", r, ret_error);
        if (!link_name_is_valid(bridge))
                return reject_reply("EnsureNetwork", "bridge name", bridge, ret_error);
        if (!ipv4_is_valid(address))
                return reject_reply("EnsureNetwork", "bridge address", address, ret_error);
        /* The bridge is host 1 and VM slot 1 host 2, so anything longer than /30 has no room. */
        if (prefix < 1 || prefix > 30) {
                char text[16];

                snprintf(text, sizeof(text), "%u", prefix);
                return reject_reply("EnsureNetwork", "prefix length", text, ret_error);
        }

        strcpy(n.bridge, bridge);
        strcpy(n.address, address);
        n.prefix = prefix;
        *ret = n;
        return 0;
}

int helper_create_tap(unsigned slot, char **ret_tap, char **ret_address, char **ret_error)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *tap_copy = NULL, *address_copy = NULL;
        const char *tap, *address;
        int r;

        if (!slot_is_valid(slot))
                return reject_slot(slot, ret_error);

        r = helper_call_method("CreateTap", &reply, ret_error, "u", (uint32_t)slot);
        if (r < 0)
                return r;

        r = sd_bus_message_read(reply, "ss", &tap, &address);
        if (r < 0)
                return reply_unreadable("CreateTap", r, ret_error);
        if (!link_name_is_valid(tap))
                return reject_reply("CreateTap", "tap name", tap, ret_error);
        if (!ipv4_is_valid(address))
                return reject_reply("CreateTap", "address", address, ret_error);

        tap_copy = strdup(tap);
        address_copy = strdup(address);
        if (!tap_copy || !address_copy)
                return -ENOMEM;
        *ret_tap = TAKE_PTR(tap_copy);
        *ret_address = TAKE_PTR(address_copy);
        return 0;
}

int helper_delete_tap(unsigned slot, char **ret_error)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;

        if (!slot_is_valid(slot))
                return reject_slot(slot, ret_error);
        return helper_call_method("DeleteTap", &reply, ret_error, "u", (uint32_t)slot);
}

static int check_forward(unsigned slot, const char *proto, uint16_t host_port, char **ret_error)
{
        if (!slot_is_valid(slot))
                return reject_slot(slot, ret_error);
        if (!proto || (!streq(proto, "tcp") && !streq(proto, "udp"))) {
                set_error(ret_error, "Invalid protocol '%s': use 'tcp' or 'udp'", strempty(proto));
                return -EINVAL;
        }
        if (host_port == 0) {
                set_error(ret_error, "Invalid host port 0: use a port from 1 to 65535");
                return -EINVAL;
        }
        return 0;
}

int helper_add_port_forward(unsigned slot, const char *proto, uint16_t host_port,
                            uint16_t guest_port, char **ret_error)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = check_forward(slot, proto, host_port, ret_error);
        if (r < 0)
                return r;
        if (guest_port == 0) {
                set_error(ret_error, "Invalid guest port 0: use a port from 1 to 65535");
                return -EINVAL;
        }

        return helper_call_method("AddPortForward", &reply, ret_error, "usqq", (uint32_t)slot,
                                  proto, host_port, guest_port);
}

int helper_remove_port_forward(unsigned slot, const char *proto, uint16_t host_port,
                               char **ret_error)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = check_forward(slot, proto, host_port, ret_error);
        if (r < 0)
                return r;
        return helper_call_method("RemovePortForward", &reply, ret_error, "usq", (uint32_t)slot,
                                  proto, host_port);
}

int helper_reconcile(const unsigned *live_slots, size_t n, char **ret_error)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        _cleanup_free_ uint32_t *slots = NULL;
        int r;

        if (n > 0) {
                slots = calloc(n, sizeof(uint32_t));
                if (!slots)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                if (!slot_is_valid(live_slots[i]))
                        return reject_slot(live_slots[i], ret_error);
                slots[i] = live_slots[i];
        }

        r = helper_new_call("Reconcile", &bus, &call, ret_error);
        if (r < 0)
                return r;
        r = sd_bus_message_append_array(call, 'u', slots, n * sizeof(uint32_t));
        if (r < 0)
                return r;
        return helper_call(bus, call, "Reconcile", &reply, ret_error);
}

int helper_start_scope(const char *vm_name, const ScopeSpec *spec, char **ret_error)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        _cleanup_free_ char *expected = NULL;
        uint32_t pids[SCOPE_PIDS_MAX];
        const char *unit;
        int r;

        if (!spec || !scope_pids_valid(spec->pids, spec->n_pids) || isempty(vm_name))
                return -EINVAL;
        r = scope_name_for_vm(vm_name, &expected);
        if (r < 0)
                return r;
        if (!spec->unit || !streq(spec->unit, expected))
                return -EINVAL;
        for (size_t i = 0; i < spec->n_pids; i++)
                pids[i] = (uint32_t)spec->pids[i];

        r = helper_new_call("StartScope", &bus, &call, ret_error);
        if (r < 0)
                return r;
        r = sd_bus_message_append(call, "s", vm_name);
        if (r >= 0)
                r = sd_bus_message_append_array(call, 'u', pids, spec->n_pids * sizeof(uint32_t));
        if (r >= 0)
                r = sd_bus_message_append(call, "ttt", spec->memory_max, spec->tasks_max,
                                          spec->cpu_quota_per_sec_usec);
        if (r < 0)
                return r;
        r = helper_call(bus, call, "StartScope", &reply, ret_error);
        if (r < 0)
                return r;

        r = sd_bus_message_read(reply, "s", &unit);
        if (r < 0)
                return reply_unreadable("StartScope", r, ret_error);
        /* bangerd stops the scope by the name in its record, so the helper must have used it. */
        if (!streq(unit, expected)) {
                set_error(ret_error,
                          "StartScope put VM '%s' into unit '%s' instead of '%s': check that "
                          "banger-helper matches bangerd",
                          vm_name, unit, expected);
                return -EPROTO;
        }
        return 0;
}
