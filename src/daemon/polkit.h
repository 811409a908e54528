#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include <systemd/sd-bus.h>

/* polkit actions bangerd checks. */
#define ACTION_VM_MANAGE     "org.banger1.vm.manage"
#define ACTION_VM_LOGIN      "org.banger1.vm.login"
#define ACTION_VM_MANAGE_ANY "org.banger1.vm.manage-any"
#define ACTION_IMAGE_MANAGE  "org.banger1.image.manage"

/* Asks polkit (org.freedesktop.PolicyKit1.Authority.CheckAuthorization, synchronously) whether
 * the sender of message may perform action. vm_name (may be NULL) and verb are passed as the
 * details "vm" and "verb". Interactive authorization is allowed when the message allows it.
 * Returns 0 when authorized; otherwise -EACCES with error set to
 * org.banger1.Error.AccessDenied "Not authorized to VERB 'NAME': ...". */
int polkit_check(sd_bus_message *message, const char *action, const char *vm_name, const char *verb,
                 sd_bus_error *error);

/* Checks ACTION_VM_MANAGE_ANY for a VM owned by owner rather than the sender. The denial
 * message names the owner's uid and, when getpwuid() finds it, the user name. */
int polkit_check_other_owner(sd_bus_message *message, const char *vm_name, uid_t owner,
                             const char *verb, sd_bus_error *error);
