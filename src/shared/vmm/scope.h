#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Transient systemd scopes for VMM processes. Every call opens its own system bus connection,
 * so it is safe from a worker thread and does not disturb the caller's connection. */

typedef struct ScopeSpec {
        const char *unit;  /* "banger-vm-NAME.scope" */
        const char *slice; /* "banger.slice" */
        const char *description;
        const pid_t *pids; /* processes moved into the scope, 1 to SCOPE_PIDS_MAX of them */
        size_t n_pids;
        uint64_t memory_max;             /* bytes, 0 for no limit */
        uint64_t tasks_max;              /* 0 for no limit */
        uint64_t cpu_quota_per_sec_usec; /* 0 for no limit */
} ScopeSpec;

/* Maximum number of processes a scope starts with. A VM's scope starts with two: the VMM and
 * banger-console-log. */
#define SCOPE_PIDS_MAX 8U

/* Returns true for 1 to SCOPE_PIDS_MAX process ids, each above 0. */
bool scope_pids_valid(const pid_t *pids, size_t n_pids);

/* Calls StartTransientUnit and waits for its job's JobRemoved signal, so the processes are in the
 * scope when this returns. Returns -EIO with systemd's message in *ret_error when the job
 * result is not "done". */
int scope_start(const ScopeSpec *spec, uint64_t timeout_usec, char **ret_error);

/* Stops the unit (SIGTERM to what is left, then SIGKILL after its timeout). A unit that does
 * not exist is not an error. */
int scope_stop(const char *unit, uint64_t timeout_usec);

/* Calls the systemd Manager method (StartUnit, RestartUnit, StopUnit, ...) for unit with mode
 * "replace" and waits for its job's JobRemoved signal. Returns -ENOENT when systemd reports
 * NoSuchUnit, -EIO when the job result is not "done", and the method's error otherwise. Sets
 * *ret_error only when the method call or the job failed. */
int unit_job_run(const char *method, const char *unit, uint64_t timeout_usec, char **ret_error);

/* ActiveState of the unit ("active", "inactive", ...); "inactive" when it is not loaded. */
int scope_get_active_state(const char *unit, char **ret);

/* Builds the unit name for a VM: "banger-vm-" + name + ".scope", escaping what unit names do not
 * allow. */
int scope_name_for_vm(const char *vm_name, char **ret);
