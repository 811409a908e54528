#pragma once

#include <systemd/sd-bus.h>

#include "manager.h"

/* The VM methods that reach into a running guest: Exec and ListPorts through the guest agent,
 * OpenConsole through the VMM's serial console. Each call runs in a worker of m->tasks and
 * counts in vm->exec_in_flight until it has replied, which keeps Delete away from the Vm. */

int method_vm_exec(sd_bus_message *message, void *userdata, sd_bus_error *error);
int method_vm_list_ports(sd_bus_message *message, void *userdata, sd_bus_error *error);
int method_vm_open_console(sd_bus_message *message, void *userdata, sd_bus_error *error);

/* The Exec calls in flight on vm, which vm_cancel_execs() ends. */
unsigned vm_count_execs(Vm *vm);

/* Cancels the Exec calls in flight on vm: their commands are killed and the calls fail. Stop
 * and Restart call this, so that a command that never ends cannot keep a VM running. */
void vm_cancel_execs(Vm *vm);

/* In vm-dbus.c: checks action on one's own VM, or org.banger1.vm.manage-any on a VM another
 * uid owns, as every VM method does. verb completes "Not authorized to VERB 'NAME'". */
int vm_authorize(Vm *vm, sd_bus_message *message, const char *action, const char *verb,
                 sd_bus_error *error);
