#pragma once

#include <systemd/sd-bus.h>

#include "config.h"
#include "ctl-args.h"

/* Getting into a VM from bangerctl: the SSH keys and the workspace that vm create sends, the
 * workspace check of vm exec, and vm ssh, vm ssh-proxy and vm sync (ctl-verbs.h). */

/* bangerd's VM_KNOWN_HOSTS in its state directory. */
#define CTL_KNOWN_HOSTS BANGER_STATEDIR "/ssh/known_hosts"

/* A workspace tar that a thread writes into a pipe while a bus call reads it. */
typedef struct CtlUpload CtlUpload;

/* Appends the "ssh_keys", "work_size_mib" and workspace entries of args to the CreateVM spec
 * open in m. With --workspace, *ret_upload is a thread that writes the tar, and the caller
 * passes it to ctl_upload_finish() once the job is over. Errors are printed. */
int ctl_create_spec_append_access(sd_bus_message *m, const CtlArgs *args, CtlUpload **ret_upload);

/* Waits for the upload thread and frees u. result is the outcome of the call that read the
 * tar. Prints the thread's failure unless the call failed and the thread only lost its reader.
 * Returns result, or the thread's error when result is 0. Accepts NULL. */
int ctl_upload_finish(CtlUpload *u, int result);

/* For vm exec on the VM vm_name at path: stores in *ret_cwd the default working directory,
 * which is /work/NAME for a VM with a workspace and NULL otherwise. Warns on stderr when the
 * workspace's directory on this host differs from the copy in the VM. */
int ctl_exec_workspace(sd_bus *bus, const char *path, const char *vm_name, char **ret_cwd);
