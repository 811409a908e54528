#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "macro.h"
#include "manager.h"
#include "strv.h"

static int property_get_state(sd_bus *bus, const char *path, const char *interface,
                              const char *property, sd_bus_message *reply, void *userdata,
                              sd_bus_error *error)
{
        Job *j = userdata;

        return sd_bus_message_append(reply, "s", job_state_to_string(j->state));
}

static int property_get_progress(sd_bus *bus, const char *path, const char *interface,
                                 const char *property, sd_bus_message *reply, void *userdata,
                                 sd_bus_error *error)
{
        Job *j = userdata;

        return sd_bus_message_append(reply, "d", j->progress);
}

static int property_get_string_ptr(sd_bus *bus, const char *path, const char *interface,
                                   const char *property, sd_bus_message *reply, void *userdata,
                                   sd_bus_error *error)
{
        const char *const *s = userdata;

        return sd_bus_message_append(reply, "s", strempty(*s));
}

static int property_get_result(sd_bus *bus, const char *path, const char *interface,
                               const char *property, sd_bus_message *reply, void *userdata,
                               sd_bus_error *error)
{
        Job *j = userdata;

        return sd_bus_message_append(reply, "o", j->result ?: "/");
}

int job_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                    void **found, sd_bus_error *error)
{
        Manager *m = userdata;
        const char *p;
        unsigned id;
        char *end;
        Job *j;

        if (!strneq(path, JOB_PATH_PREFIX "/", sizeof(JOB_PATH_PREFIX)))
                return 0;
        p = path + sizeof(JOB_PATH_PREFIX);
        if (*p < '1' || *p > '9')
                return 0;
        errno = 0;
        id = strtoul(p, &end, 10);
        if (errno != 0 || *end != '\0')
                return 0;
        j = job_manager_find_by_id(m->jobs, id);
        if (!j)
                return 0;
        *found = j;
        return 1;
}

int job_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes,
                        sd_bus_error *error)
{
        Manager *m = userdata;
        _cleanup_strv_free_ char **l = NULL;
        int r;

        for (Job *j = m->jobs->jobs; j; j = j->next) {
                r = strv_extend(&l, j->path);
                if (r < 0)
                        return r;
        }
        *nodes = TAKE_PTR(l);
        return 0;
}

static void on_job_added(Job *j, void *userdata)
{
        Manager *m = userdata;
        int r;

        log_field(LOG_INFO, "JOB=%u", "Job %u started: %s '%s'", j->id, j->operation, j->target);
        r = sd_bus_emit_signal(m->bus, MANAGER_PATH, "org.banger1.Manager", "JobNew", "o", j->path);
        if (r < 0)
                log_warning_errno(r, "Failed to emit JobNew for '%s', ignoring: %m", j->path);
}

static void on_job_changed(Job *j, char **properties, void *userdata)
{
        Manager *m = userdata;
        int r;

        r = sd_bus_emit_properties_changed_strv(m->bus, j->path, "org.banger1.Job", properties);
        if (r < 0)
                log_debug_errno(r, "Failed to emit PropertiesChanged for '%s': %m", j->path);
}

static void on_job_finished(Job *j, void *userdata)
{
        Manager *m = userdata;
        const char *result = job_state_to_string(j->state);
        int r;

        if (j->state == JOB_FAILED)
                log_field(LOG_ERR, "JOB=%u", "Job %u failed: %s", j->id, j->error);
        else
                log_field(LOG_INFO, "JOB=%u", "Job %u done: %s '%s'", j->id, j->operation,
                          j->target);

        r = sd_bus_emit_signal(m->bus, j->path, "org.banger1.Job", "Finished", "ss", result,
                               j->error);
        if (r < 0)
                log_warning_errno(r, "Failed to emit Finished for '%s', ignoring: %m", j->path);
}

static void on_job_removed(Job *j, void *userdata)
{
        Manager *m = userdata;
        int r;

        r = sd_bus_emit_signal(m->bus, MANAGER_PATH, "org.banger1.Manager", "JobRemoved", "os",
                               j->path, job_state_to_string(j->state));
        if (r < 0)
                log_warning_errno(r, "Failed to emit JobRemoved for '%s', ignoring: %m", j->path);
}

const JobManagerCallbacks job_bus_callbacks = {
        .added = on_job_added,
        .changed = on_job_changed,
        .finished = on_job_finished,
        .removed = on_job_removed,
};

const sd_bus_vtable job_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Operation", "s", property_get_string_ptr, offsetof(Job, operation),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Target", "s", property_get_string_ptr, offsetof(Job, target),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Step", "s", property_get_string_ptr, offsetof(Job, step),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Progress", "d", property_get_progress, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("BytesDone", "t", NULL, offsetof(Job, bytes_done),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("BytesTotal", "t", NULL, offsetof(Job, bytes_total),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Result", "o", property_get_result, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Error", "s", property_get_string_ptr, offsetof(Job, error),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_SIGNAL_WITH_NAMES("Finished", "ss", SD_BUS_PARAM(result) SD_BUS_PARAM(error), 0),
        SD_BUS_VTABLE_END,
};
