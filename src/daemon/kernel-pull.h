#pragma once

#include <stdbool.h>

#include <systemd/sd-bus.h>

#include "job.h"
#include "kernel-import.h"

/* Pulling kernels from the catalog at [Kernel] CatalogURL into bangerd's store. */

typedef struct KernelPullRequest {
        const char *state_dir;
        const char *catalog_url;
        const char *name;
        const char *arch;    /* [Registry] Platform's architecture, e.g. "amd64" */
        bool reuse_existing; /* a kernel NAME already in the store counts as pulled */
} KernelPullRequest;

/* Runs in a job's worker thread. Pulls req->name into a temporary directory, writes its
 * record.json and renames the directory to STATE/kernels/NAME. Pulls run one at a time in
 * bangerd, so a job that waited for a peer's pull of the same kernel finds it in the store.
 * Returns 0 after a pull, 1 when req->reuse_existing is set and the kernel was already in the
 * store, or a negative errno with a message in *ret_error. *ret_info and *ret_dir receive the
 * kernel's record and directory on success. */
int kernel_pull_into_store(Job *j, const KernelPullRequest *req, KernelInfo **ret_info,
                           char **ret_dir, char **ret_error);

/* org.banger1.Manager.PullKernel(s name, a{sv} options) -> o job */
int method_pull_kernel(sd_bus_message *message, void *userdata, sd_bus_error *error);
