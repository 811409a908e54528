#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "scope.h"

/* Calls into banger-helper (see helper-bus.h). Every call opens its own system bus connection,
 * so it is safe from a worker thread. On failure the return value is a negative errno and
 * *ret_error, when not NULL, contains a message for the user naming what failed. */

typedef struct HelperNetwork {
        char bridge[16];
        char address[16]; /* the bridge's */
        unsigned prefix;
} HelperNetwork;

int helper_ensure_network(HelperNetwork *ret, char **ret_error);
/* ret_tap gets the tap name (at most 15 bytes), ret_address the VM's address. */
int helper_create_tap(unsigned slot, char **ret_tap, char **ret_address, char **ret_error);
int helper_delete_tap(unsigned slot, char **ret_error);
/* -EADDRINUSE when the host port is taken. */
int helper_add_port_forward(unsigned slot, const char *proto, uint16_t host_port,
                            uint16_t guest_port, char **ret_error);
int helper_remove_port_forward(unsigned slot, const char *proto, uint16_t host_port,
                               char **ret_error);
int helper_reconcile(const unsigned *live_slots, size_t n, char **ret_error);
/* Same contract as scope_start(): spec->unit must be scope_name_for_vm(vm_name). */
int helper_start_scope(const char *vm_name, const ScopeSpec *spec, char **ret_error);
