#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "config.h"
#include "ctl-args.h"
#include "ctl-bus.h"
#include "ctl-verbs.h"
#include "macro.h"

typedef int (*VerbFunction)(sd_bus *bus, const CtlArgs *args);

static const VerbFunction verb_functions[_CTL_VERB_MAX] = {
        [CTL_IMAGE_PULL] = verb_image_pull,
        [CTL_IMAGE_IMPORT] = verb_image_import, /* an OCI layout, docker-archive or rootfs */
        [CTL_IMAGE_LIST] = verb_image_list,
        [CTL_IMAGE_RM] = verb_image_rm,
        [CTL_IMAGE_SHOW] = verb_image_show,
        [CTL_KERNEL_IMPORT] = verb_kernel_import,
        [CTL_KERNEL_LIST] = verb_kernel_list,
        [CTL_KERNEL_PULL] = verb_kernel_pull,
        [CTL_KERNEL_RM] = verb_kernel_rm,
        [CTL_KERNEL_SHOW] = verb_kernel_show,
        [CTL_VM_CREATE] = verb_vm_create,
        [CTL_VM_START] = verb_vm_start,
        [CTL_VM_STOP] = verb_vm_stop,
        [CTL_VM_RESTART] = verb_vm_restart,
        [CTL_VM_RM] = verb_vm_rm,
        [CTL_VM_LIST] = verb_vm_list,
        [CTL_VM_SHOW] = verb_vm_show,
        [CTL_VM_EXEC] = verb_vm_exec,
        [CTL_VM_PORTS] = verb_vm_ports,
        [CTL_VM_CONSOLE] = verb_vm_console,
        [CTL_VM_CONSOLE_LOG] = verb_vm_console_log,
        [CTL_VM_PORT_ADD] = verb_vm_port_add,
        [CTL_VM_PORT_LIST] = verb_vm_port_list,
        [CTL_VM_PORT_RM] = verb_vm_port_rm,
        [CTL_VM_PRUNE] = verb_vm_prune,
        [CTL_VM_SSH] = verb_vm_ssh,
        [CTL_VM_SSH_PROXY] = verb_vm_ssh_proxy,
        [CTL_VM_SYNC] = verb_vm_sync,
};

static int run(const CtlArgs *args)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        r = ctl_bus_open(&bus, args->ask_password);
        if (r < 0)
                return EXIT_FAILURE;

        if (ctl_verb_needs_authorization(args->verb))
                ctl_polkit_agent_open();

        r = verb_functions[args->verb](bus, args);
        ctl_polkit_agent_close();
        if (r < 0)
                return EXIT_FAILURE;
        /* vm exec returns the command's exit status, and the other verbs return 0. */
        return r;
}

int main(int argc, char *argv[])
{
        CtlArgs args;
        int r;

        /* Authentication prompts need a terminal to ask on. */
        ctl_args_init(&args, isatty(STDIN_FILENO));

        r = ctl_args_parse(&args, argc, argv);
        if (r == -ENOMEM) {
                fputs("bangerctl: Out of memory\n", stderr);
                ctl_args_done(&args);
                return EXIT_FAILURE;
        }
        if (r < 0) {
                ctl_print_usage_error(stderr, &args);
                ctl_args_done(&args);
                return 2;
        }

        switch (args.action) {
        case CTL_ACTION_HELP:
                ctl_print_help(stdout, args.group, args.verb);
                r = EXIT_SUCCESS;
                break;
        case CTL_ACTION_VERSION:
                printf("bangerctl %s\n", BANGER_VERSION);
                r = EXIT_SUCCESS;
                break;
        default:
                r = run(&args);
        }

        ctl_args_done(&args);
        return r;
}
