#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-bus.h>

#include "log.h"
#include "macro.h"
#include "scope.h"

#define SYSTEMD_SERVICE    "org.freedesktop.systemd1"
#define SYSTEMD_PATH       "/org/freedesktop/systemd1"
#define SYSTEMD_MANAGER    "org.freedesktop.systemd1.Manager"
#define SYSTEMD_UNIT       "org.freedesktop.systemd1.Unit"
#define ERROR_NO_SUCH_UNIT "org.freedesktop.systemd1.NoSuchUnit"

#define SCOPE_PREFIX  "banger-vm-"
#define SCOPE_SUFFIX  ".scope"
#define UNIT_NAME_MAX 255 /* systemd's limit, terminating NUL excluded */

/* The JobRemoved signal awaited for one job. systemd 252 sends it to the client that queued the job
 * even without Subscribe(), because it tracks the job's requester. */
typedef struct JobWait {
        const char *job_path; /* NULL until the method reply names the job */
        bool finished;
        char *result; /* "done", "canceled", "timeout", "failed", "dependency", "skipped" */
} JobWait;

static uint64_t now_usec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000U + (uint64_t)ts.tv_nsec / 1000U;
}

static uint64_t deadline_after(uint64_t timeout_usec)
{
        uint64_t now = now_usec();

        return timeout_usec > UINT64_MAX - now ? UINT64_MAX : now + timeout_usec;
}

static int match_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
        JobWait *w = userdata;
        const char *path, *unit, *result;
        uint32_t id;
        int r;

        r = sd_bus_message_read(m, "uoss", &id, &path, &unit, &result);
        if (r < 0) {
                log_debug("Failed to parse JobRemoved signal: %s", strerror(-r));
                return 0;
        }

        if (!w->job_path || !streq(path, w->job_path) || w->finished)
                return 0;

        w->result = strdup(result);
        w->finished = true;
        return 0;
}

static int add_job_removed_match(sd_bus *bus, JobWait *w, sd_bus_slot **ret_slot)
{
        return sd_bus_match_signal(bus, ret_slot, SYSTEMD_SERVICE, SYSTEMD_PATH, SYSTEMD_MANAGER,
                                   "JobRemoved", match_job_removed, w);
}

/* Processes bus traffic until the awaited job is removed or deadline passes. Signals that
 * arrived while the method call was pending are queued by sd-bus and handled here. */
static int wait_for_job(sd_bus *bus, JobWait *w, uint64_t deadline)
{
        uint64_t now;
        int r;

        for (;;) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return r;
                if (w->finished)
                        return w->result ? 0 : -ENOMEM;
                if (r > 0)
                        continue;

                now = now_usec();
                if (now >= deadline)
                        return -ETIMEDOUT;
                r = sd_bus_wait(bus, deadline == UINT64_MAX ? UINT64_MAX : deadline - now);
                if (r < 0 && r != -EINTR)
                        return r;
        }
}

static uint64_t call_timeout(uint64_t deadline)
{
        uint64_t now = now_usec();

        if (deadline == UINT64_MAX)
                return 0; /* sd-bus's default */
        return deadline > now ? deadline - now : 1;
}

static int append_pids(sd_bus_message *m, const pid_t *pids, size_t n_pids)
{
        int r;

        r = sd_bus_message_open_container(m, 'r', "sv");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", "PIDs");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'v', "au");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "u");
        for (size_t i = 0; r >= 0 && i < n_pids; i++)
                r = sd_bus_message_append(m, "u", (uint32_t)pids[i]);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

static int append_properties(sd_bus_message *m, const ScopeSpec *spec)
{
        int r;

        r = sd_bus_message_open_container(m, 'a', "(sv)");
        if (r < 0)
                return r;

        r = sd_bus_message_append(m, "(sv)(sv)", "Description", "s", strempty(spec->description),
                                  "CollectMode", "s", "inactive-or-failed");
        if (r < 0)
                return r;

        r = append_pids(m, spec->pids, spec->n_pids);
        if (r < 0)
                return r;

        if (!isempty(spec->slice)) {
                r = sd_bus_message_append(m, "(sv)", "Slice", "s", spec->slice);
                if (r < 0)
                        return r;
        }
        if (spec->memory_max > 0) {
                r = sd_bus_message_append(m, "(sv)", "MemoryMax", "t", spec->memory_max);
                if (r < 0)
                        return r;
        }
        if (spec->tasks_max > 0) {
                r = sd_bus_message_append(m, "(sv)", "TasksMax", "t", spec->tasks_max);
                if (r < 0)
                        return r;
        }
        if (spec->cpu_quota_per_sec_usec > 0) {
                r = sd_bus_message_append(m, "(sv)", "CPUQuotaPerSecUSec", "t",
                                          spec->cpu_quota_per_sec_usec);
                if (r < 0)
                        return r;
        }

        return sd_bus_message_close_container(m);
}

static int build_start_call(sd_bus *bus, const ScopeSpec *spec, sd_bus_message **ret)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, SYSTEMD_SERVICE, SYSTEMD_PATH, SYSTEMD_MANAGER,
                                           "StartTransientUnit");
        if (r < 0)
                return r;

        /* "fail": an existing unit of the same name is an error, not replaced. */
        r = sd_bus_message_append(m, "ss", spec->unit, "fail");
        if (r < 0)
                return r;

        r = append_properties(m, spec);
        if (r < 0)
                return r;

        /* No auxiliary units. */
        r = sd_bus_message_append(m, "a(sa(sv))", 0);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(m);
        return 0;
}

static int set_error(char **ret_error, const char *format, ...)
        __attribute__((format(printf, 2, 3)));

static int set_error(char **ret_error, const char *format, ...)
{
        va_list ap;
        int r;

        if (!ret_error)
                return 0;

        va_start(ap, format);
        r = vasprintf(ret_error, format, ap);
        va_end(ap);
        if (r < 0) {
                *ret_error = NULL;
                return -ENOMEM;
        }
        return 0;
}

static bool unit_name_is_scope(const char *unit)
{
        size_t n = strlen(unit), suffix = strlen(SCOPE_SUFFIX);

        return n > suffix && n <= UNIT_NAME_MAX && streq(unit + n - suffix, SCOPE_SUFFIX);
}

bool scope_pids_valid(const pid_t *pids, size_t n_pids)
{
        if (!pids || n_pids == 0 || n_pids > SCOPE_PIDS_MAX)
                return false;
        for (size_t i = 0; i < n_pids; i++)
                if (pids[i] <= 0)
                        return false;
        return true;
}

int scope_start(const ScopeSpec *spec, uint64_t timeout_usec, char **ret_error)
{
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        uint64_t deadline = deadline_after(timeout_usec);
        JobWait w = {};
        const char *job;
        int r;

        if (!spec || isempty(spec->unit) || !unit_name_is_scope(spec->unit) ||
            !scope_pids_valid(spec->pids, spec->n_pids))
                return -EINVAL;

        r = sd_bus_open_system(&bus);
        if (r < 0)
                return r;

        /* The match goes in before the call, so the job cannot finish unseen. */
        r = add_job_removed_match(bus, &w, &slot);
        if (r < 0)
                return r;

        r = build_start_call(bus, spec, &call);
        if (r < 0)
                return r;

        r = sd_bus_call(bus, call, call_timeout(deadline), &error, &reply);
        if (r < 0) {
                (void)set_error(ret_error, "%s", error.message ?: strerror(-r));
                return r;
        }

        r = sd_bus_message_read(reply, "o", &job);
        if (r < 0)
                return r;
        w.job_path = job;

        r = wait_for_job(bus, &w, deadline);
        if (r < 0) {
                free(w.result);
                return r;
        }

        if (!streq(w.result, "done")) {
                (void)set_error(ret_error, "Start job for unit '%s' finished with result '%s'",
                                spec->unit, w.result);
                free(w.result);
                return -EIO;
        }

        free(w.result);
        return 0;
}

int unit_job_run(const char *method, const char *unit, uint64_t timeout_usec, char **ret_error)
{
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        uint64_t deadline = deadline_after(timeout_usec);
        JobWait w = {};
        const char *job;
        int r;

        if (isempty(method) || isempty(unit))
                return -EINVAL;

        r = sd_bus_open_system(&bus);
        if (r < 0)
                return r;

        r = add_job_removed_match(bus, &w, &slot);
        if (r < 0)
                return r;

        r = sd_bus_call_method(bus, SYSTEMD_SERVICE, SYSTEMD_PATH, SYSTEMD_MANAGER, method, &error,
                               &reply, "ss", unit, "replace");
        if (r < 0 && sd_bus_error_has_name(&error, ERROR_NO_SUCH_UNIT))
                r = -ENOENT;
        if (r < 0) {
                (void)set_error(ret_error, "%s", error.message ?: strerror(-r));
                return r;
        }

        r = sd_bus_message_read(reply, "o", &job);
        if (r < 0)
                return r;
        w.job_path = job;

        r = wait_for_job(bus, &w, deadline);
        if (r < 0) {
                free(w.result);
                return r;
        }

        r = streq(w.result, "done") ? 0 : -EIO;
        if (r < 0)
                (void)set_error(ret_error, "%s job for unit '%s' finished with result '%s'", method,
                                unit, w.result);
        free(w.result);
        return r;
}

int scope_stop(const char *unit, uint64_t timeout_usec)
{
        _cleanup_free_ char *error = NULL;
        int r;

        if (isempty(unit) || !unit_name_is_scope(unit))
                return -EINVAL;

        /* -ENOENT without a message comes from connecting to the bus, not from systemd. */
        r = unit_job_run("StopUnit", unit, timeout_usec, &error);
        if (r == -ENOENT && error)
                return 0;
        if (r < 0)
                log_debug("Failed to stop unit '%s': %s", unit, error ?: strerror(-r));
        return r;
}

int scope_get_active_state(const char *unit, char **ret)
{
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        const char *path;
        char *state;
        int r;

        if (isempty(unit))
                return -EINVAL;

        r = sd_bus_open_system(&bus);
        if (r < 0)
                return r;

        /* GetUnit() rather than the unit's object path: the latter loads a unit that is not
         * loaded, which this query must not do. */
        r = sd_bus_call_method(bus, SYSTEMD_SERVICE, SYSTEMD_PATH, SYSTEMD_MANAGER, "GetUnit",
                               &error, &reply, "s", unit);
        if (r < 0 && sd_bus_error_has_name(&error, ERROR_NO_SUCH_UNIT)) {
                state = strdup("inactive");
                if (!state)
                        return -ENOMEM;
                *ret = state;
                return 0;
        }
        if (r < 0)
                return r;

        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return r;

        r = sd_bus_get_property_string(bus, SYSTEMD_SERVICE, path, SYSTEMD_UNIT, "ActiveState",
                                       &error, &state);
        if (r < 0)
                return r;

        *ret = state;
        return 0;
}

/* Characters kept as they are. The rest is written as "\xNN" like systemd's unit name escaping
 * does, which keeps the mapping reversible because the backslash itself is escaped. */
static bool unit_char_is_plain(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_' || c == '.' || c == ':';
}

int scope_name_for_vm(const char *vm_name, char **ret)
{
        _cleanup_free_ char *name = NULL;
        size_t n;
        char *p;

        if (isempty(vm_name))
                return -EINVAL;

        n = strlen(vm_name);
        if (n > UNIT_NAME_MAX)
                return -ENAMETOOLONG;

        name = malloc(strlen(SCOPE_PREFIX) + n * 4 + strlen(SCOPE_SUFFIX) + 1);
        if (!name)
                return -ENOMEM;

        p = stpcpy(name, SCOPE_PREFIX);
        for (const char *c = vm_name; *c; c++) {
                if (unit_char_is_plain(*c))
                        *p++ = *c;
                else
                        p += sprintf(p, "\\x%02x", (unsigned char)*c);
        }
        strcpy(p, SCOPE_SUFFIX);

        if (strlen(name) > UNIT_NAME_MAX)
                return -ENAMETOOLONG;

        *ret = TAKE_PTR(name);
        return 0;
}
