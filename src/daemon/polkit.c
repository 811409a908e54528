#include <errno.h>
#include <pwd.h>

#include <systemd/sd-bus.h>

#include "bus-error.h"
#include "log.h"
#include "macro.h"
#include "polkit.h"

/* CheckAuthorization flag: polkit may ask the user for a password through an agent. */
#define POLKIT_ALLOW_USER_INTERACTION 1u

#define INTERACTIVE_TIMEOUT_USEC (120ULL * 1000000ULL)

static int append_details(sd_bus_message *m, const char *vm_name, const char *verb)
{
        int r;

        r = sd_bus_message_open_container(m, 'a', "{ss}");
        if (r < 0)
                return r;
        if (vm_name) {
                r = sd_bus_message_append(m, "{ss}", "vm", vm_name);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_append(m, "{ss}", "verb", verb);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

static int deny(sd_bus_error *error, const char *vm_name, const char *verb)
{
        if (vm_name)
                return sd_bus_error_setf(error, BUS_ERROR_ACCESS_DENIED,
                                         "Not authorized to %s '%s': ask an administrator to add "
                                         "you to group 'banger'",
                                         verb, vm_name);
        return sd_bus_error_setf(error, BUS_ERROR_ACCESS_DENIED,
                                 "Not authorized to %s: ask an administrator to add you to "
                                 "group 'banger'",
                                 verb);
}

/* Group 'banger' grants actions on one's own VMs only, so a denial on another user's VM names
 * the owner and the action that is missing. */
static int deny_other_owner(sd_bus_error *error, const char *vm_name, const char *verb, uid_t owner)
{
        struct passwd *pw = getpwuid(owner);

        if (pw && pw->pw_name)
                return sd_bus_error_setf(error, BUS_ERROR_ACCESS_DENIED,
                                         "Not authorized to %s '%s': the VM belongs to another "
                                         "user (uid %u, '%s'), and acting on it requires "
                                         "authorization '%s' from an administrator",
                                         verb, vm_name, (unsigned)owner, pw->pw_name,
                                         ACTION_VM_MANAGE_ANY);
        return sd_bus_error_setf(error, BUS_ERROR_ACCESS_DENIED,
                                 "Not authorized to %s '%s': the VM belongs to another user "
                                 "(uid %u), and acting on it requires authorization '%s' from "
                                 "an administrator",
                                 verb, vm_name, (unsigned)owner, ACTION_VM_MANAGE_ANY);
}

static int check(sd_bus_message *message, const char *action, const char *vm_name, const char *verb,
                 const uid_t *other_owner, sd_bus_error *error)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error polkit_error = SD_BUS_ERROR_NULL;
        sd_bus *bus = sd_bus_message_get_bus(message);
        const char *sender = sd_bus_message_get_sender(message);
        uint32_t flags = 0;
        int authorized, challenge, r;

        if (!sender)
                return other_owner ? deny_other_owner(error, vm_name, verb, *other_owner)
                                   : deny(error, vm_name, verb);
        if (sd_bus_message_get_allow_interactive_authorization(message))
                flags |= POLKIT_ALLOW_USER_INTERACTION;

        r = sd_bus_message_new_method_call(
                bus, &call, "org.freedesktop.PolicyKit1", "/org/freedesktop/PolicyKit1/Authority",
                "org.freedesktop.PolicyKit1.Authority", "CheckAuthorization");
        if (r < 0)
                return r;
        r = sd_bus_message_append(call, "(sa{sv})s", "system-bus-name", 1, "name", "s", sender,
                                  action);
        if (r < 0)
                return r;
        r = append_details(call, vm_name, verb);
        if (r < 0)
                return r;
        r = sd_bus_message_append(call, "us", flags, "");
        if (r < 0)
                return r;

        /* Interactive authorization waits while the user authenticates through a polkit
         * agent, which can take longer than the default call timeout of 25 s. The loop is
         * blocked meanwhile.
         * TODO: check asynchronously so other clients are served while a user types. */
        r = sd_bus_call(bus, call, flags ? INTERACTIVE_TIMEOUT_USEC : 0, &polkit_error, &reply);
        if (r < 0) {
                log_error("Failed to check authorization '%s' for '%s' with polkit: %s", action,
                          sender, polkit_error.message ?: strerror(-r));
                return sd_bus_error_setf(error, BUS_ERROR_ACCESS_DENIED,
                                         "Failed to check authorization to %s with polkit: %s",
                                         verb, polkit_error.message ?: strerror(-r));
        }

        r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "bb", &authorized, &challenge);
        if (r < 0)
                return r;

        if (authorized)
                return 0;
        log_info("Denied '%s' to '%s' for %s%s%s", action, sender, verb, vm_name ? " " : "",
                 strempty(vm_name));
        if (other_owner)
                return deny_other_owner(error, vm_name, verb, *other_owner);
        return deny(error, vm_name, verb);
}

int polkit_check(sd_bus_message *message, const char *action, const char *vm_name, const char *verb,
                 sd_bus_error *error)
{
        return check(message, action, vm_name, verb, NULL, error);
}

int polkit_check_other_owner(sd_bus_message *message, const char *vm_name, uid_t owner,
                             const char *verb, sd_bus_error *error)
{
        return check(message, ACTION_VM_MANAGE_ANY, vm_name, verb, &owner, error);
}
