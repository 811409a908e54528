#pragma once

#include <systemd/sd-bus.h>

#include "ctl-args.h"

/* One function per verb. Each returns 0 on success or a negative errno after printing the
 * failure. verb_vm_exec() returns the exit status to pass on instead. */

int verb_image_pull(sd_bus *bus, const CtlArgs *args);
int verb_image_import(sd_bus *bus, const CtlArgs *args);
int verb_image_list(sd_bus *bus, const CtlArgs *args);
int verb_image_rm(sd_bus *bus, const CtlArgs *args);
int verb_image_show(sd_bus *bus, const CtlArgs *args);

int verb_kernel_import(sd_bus *bus, const CtlArgs *args);
int verb_kernel_list(sd_bus *bus, const CtlArgs *args);
int verb_kernel_pull(sd_bus *bus, const CtlArgs *args);
int verb_kernel_rm(sd_bus *bus, const CtlArgs *args);
int verb_kernel_show(sd_bus *bus, const CtlArgs *args);

int verb_vm_create(sd_bus *bus, const CtlArgs *args);
int verb_vm_start(sd_bus *bus, const CtlArgs *args);
int verb_vm_stop(sd_bus *bus, const CtlArgs *args);
int verb_vm_restart(sd_bus *bus, const CtlArgs *args);
int verb_vm_rm(sd_bus *bus, const CtlArgs *args);
int verb_vm_list(sd_bus *bus, const CtlArgs *args);
int verb_vm_show(sd_bus *bus, const CtlArgs *args);
int verb_vm_exec(sd_bus *bus, const CtlArgs *args);
int verb_vm_ports(sd_bus *bus, const CtlArgs *args);
int verb_vm_console(sd_bus *bus, const CtlArgs *args);
int verb_vm_console_log(sd_bus *bus, const CtlArgs *args);
int verb_vm_port_add(sd_bus *bus, const CtlArgs *args);
int verb_vm_port_list(sd_bus *bus, const CtlArgs *args);
int verb_vm_port_rm(sd_bus *bus, const CtlArgs *args);
int verb_vm_prune(sd_bus *bus, const CtlArgs *args);
/* In ctl-vm-access.c. verb_vm_ssh() returns only on failure, because it executes ssh. */
int verb_vm_ssh(sd_bus *bus, const CtlArgs *args);
int verb_vm_ssh_proxy(sd_bus *bus, const CtlArgs *args);
int verb_vm_sync(sd_bus *bus, const CtlArgs *args);
