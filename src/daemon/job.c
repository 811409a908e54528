#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "job.h"
#include "log.h"
#include "macro.h"

#define USEC_PER_SEC 1000000ULL

static const char *const job_state_table[_JOB_STATE_MAX] = {
        [JOB_RUNNING] = "running",
        [JOB_DONE] = "done",
        [JOB_FAILED] = "failed",
};

const char *job_state_to_string(JobState s)
{
        if (s < 0 || s >= _JOB_STATE_MAX)
                return NULL;
        return job_state_table[s];
}

static Job *job_free(Job *j)
{
        if (!j)
                return NULL;
        if (j->thread_started) {
                j->cancel = true;
                pthread_join(j->thread, NULL);
        }
        sd_event_source_disable_unref(j->event_source);
        sd_event_source_disable_unref(j->linger_source);
        safe_close(j->event_fd);
        pthread_mutex_destroy(&j->lock);
        if (j->free_userdata)
                j->free_userdata(j->userdata);
        free(j->operation);
        free(j->target);
        free(j->path);
        free(j->result);
        free(j->error);
        free(j->worker_error);
        free(j);
        return NULL;
}

int job_manager_new(sd_event *event, const JobManagerCallbacks *callbacks, void *userdata,
                    JobManager **ret)
{
        JobManager *m = calloc(1, sizeof(JobManager));

        if (!m)
                return -ENOMEM;
        m->event = sd_event_ref(event);
        m->next_id = 1;
        m->linger_usec = 60 * USEC_PER_SEC;
        if (callbacks)
                m->callbacks = *callbacks;
        m->userdata = userdata;
        *ret = m;
        return 0;
}

JobManager *job_manager_free(JobManager *m)
{
        if (!m)
                return NULL;
        while (m->jobs) {
                Job *j = m->jobs;

                m->jobs = j->next;
                job_free(j);
        }
        sd_event_unref(m->event);
        free(m);
        return NULL;
}

Job *job_manager_find_running(JobManager *m, const char *operation, const char *target)
{
        for (Job *j = m->jobs; j; j = j->next)
                if (j->state == JOB_RUNNING && streq(j->operation, operation) &&
                    streq(j->target, target))
                        return j;
        return NULL;
}

Job *job_manager_find_by_id(JobManager *m, unsigned id)
{
        for (Job *j = m->jobs; j; j = j->next)
                if (j->id == id)
                        return j;
        return NULL;
}

unsigned job_manager_count_running(JobManager *m)
{
        unsigned n = 0;

        for (Job *j = m->jobs; j; j = j->next)
                if (j->state == JOB_RUNNING)
                        n++;
        return n;
}

static void job_unlink(Job *j)
{
        JobManager *m = j->manager;

        for (Job **p = &m->jobs; *p; p = &(*p)->next)
                if (*p == j) {
                        *p = j->next;
                        return;
                }
}

static void wake_loop(Job *j)
{
        uint64_t one = 1;

        /* An eventfd write fails only when its counter would overflow, and the loop resets the
         * counter on every read. */
        (void)!write(j->event_fd, &one, sizeof(one));
}

void job_report(Job *j, const char *step, uint64_t done, uint64_t total)
{
        pthread_mutex_lock(&j->lock);
        j->pending_step = step;
        j->pending_done = done;
        j->pending_total = total;
        j->pending_progress = true;
        pthread_mutex_unlock(&j->lock);
        wake_loop(j);
}

int job_set_result(Job *j, const char *object_path)
{
        char *p = strdup(object_path);

        if (!p)
                return -ENOMEM;
        free(j->result);
        j->result = p;
        return 0;
}

static void *job_thread(void *userdata)
{
        Job *j = userdata;
        char *error = NULL;
        int r;

        r = j->run(j, j->userdata, &error);

        pthread_mutex_lock(&j->lock);
        j->worker_done = true;
        j->worker_result = r;
        j->worker_error = error;
        pthread_mutex_unlock(&j->lock);
        wake_loop(j);
        return NULL;
}

static int on_linger_expired(sd_event_source *s, uint64_t usec, void *userdata)
{
        Job *j = userdata;
        JobManager *m = j->manager;

        job_unlink(j);
        if (m->callbacks.removed)
                m->callbacks.removed(j, m->userdata);
        job_free(j);
        return 0;
}

static void job_finish(Job *j, int r, char *worker_error)
{
        JobManager *m = j->manager;
        _cleanup_free_ char *error = worker_error;
        char *properties[] = { JOB_PROPERTY_STATE, JOB_PROPERTY_RESULT, JOB_PROPERTY_ERROR,
                               JOB_PROPERTY_PROGRESS, NULL };
        int k;

        pthread_join(j->thread, NULL);
        j->thread_started = false;
        j->event_source = sd_event_source_disable_unref(j->event_source);
        j->event_fd = safe_close(j->event_fd);

        if (j->complete) {
                char *complete_error = NULL;

                r = j->complete(j, r, error, j->userdata, &complete_error);
                if (complete_error) {
                        free(error);
                        error = complete_error;
                }
        }

        if (r < 0) {
                j->state = JOB_FAILED;
                free(j->error);
                if (error)
                        j->error = TAKE_PTR(error);
                else if (asprintf(&j->error, "Job %s for '%s' failed: %s", j->operation, j->target,
                                  strerror(-r)) < 0)
                        j->error = NULL;
                if (!j->error)
                        j->error = strdup("");
        } else {
                j->state = JOB_DONE;
                j->progress = 1.0;
        }

        if (m->callbacks.changed)
                m->callbacks.changed(j, properties, m->userdata);
        if (m->callbacks.finished)
                m->callbacks.finished(j, m->userdata);

        k = sd_event_add_time_relative(m->event, &j->linger_source, CLOCK_MONOTONIC, m->linger_usec,
                                       0, on_linger_expired, j);
        if (k < 0)
                log_warning_errno(k, "Failed to schedule the removal of job %u, keeping it: %m",
                                  j->id);
}

static int on_job_event(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        Job *j = userdata;
        JobManager *m = j->manager;
        uint64_t counter;
        bool progress, done;
        const char *step;
        uint64_t bytes_done, bytes_total;
        int result = 0;
        char *error = NULL;

        (void)!read(fd, &counter, sizeof(counter));

        pthread_mutex_lock(&j->lock);
        progress = j->pending_progress;
        step = j->pending_step;
        bytes_done = j->pending_done;
        bytes_total = j->pending_total;
        j->pending_progress = false;
        done = j->worker_done;
        if (done) {
                result = j->worker_result;
                error = TAKE_PTR(j->worker_error);
        }
        pthread_mutex_unlock(&j->lock);

        if (progress) {
                char *properties[] = { JOB_PROPERTY_STEP, JOB_PROPERTY_PROGRESS,
                                       JOB_PROPERTY_BYTES_DONE, JOB_PROPERTY_BYTES_TOTAL, NULL };

                j->step = step ? step : "";
                j->bytes_done = bytes_done;
                j->bytes_total = bytes_total;
                j->progress = bytes_total > 0 ? (double)bytes_done / (double)bytes_total : 0.0;
                if (j->progress > 1.0)
                        j->progress = 1.0;
                if (m->callbacks.changed)
                        m->callbacks.changed(j, properties, m->userdata);
        }

        if (done)
                job_finish(j, result, error);
        return 0;
}

int job_start(JobManager *m, const char *operation, const char *target, JobRun run,
              JobComplete complete, void *userdata, void (*free_userdata)(void *userdata),
              Job **ret)
{
        Job *existing = job_manager_find_running(m, operation, target);
        Job *j;
        int r;

        if (existing) {
                if (free_userdata)
                        free_userdata(userdata);
                *ret = existing;
                return 1;
        }

        j = calloc(1, sizeof(Job));
        if (!j) {
                if (free_userdata)
                        free_userdata(userdata);
                return -ENOMEM;
        }
        pthread_mutex_init(&j->lock, NULL);
        j->manager = m;
        j->event_fd = -EBADF;
        j->userdata = userdata;
        j->free_userdata = free_userdata;
        j->run = run;
        j->complete = complete;
        j->state = JOB_RUNNING;
        j->step = "";
        j->id = m->next_id;
        j->operation = strdup(operation);
        j->target = strdup(target);
        j->result = strdup("/");
        j->error = strdup("");
        if (!j->operation || !j->target || !j->result || !j->error ||
            asprintf(&j->path, "/org/banger1/job/%u", j->id) < 0) {
                j->path = NULL;
                job_free(j);
                return -ENOMEM;
        }

        j->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (j->event_fd < 0) {
                r = negative_errno();
                job_free(j);
                return r;
        }
        r = sd_event_add_io(m->event, &j->event_source, j->event_fd, EPOLLIN, on_job_event, j);
        if (r < 0) {
                job_free(j);
                return r;
        }

        r = -pthread_create(&j->thread, NULL, job_thread, j);
        if (r < 0) {
                job_free(j);
                return r;
        }
        j->thread_started = true;

        m->next_id++;
        j->next = m->jobs;
        m->jobs = j;
        if (m->callbacks.added)
                m->callbacks.added(j, m->userdata);

        *ret = j;
        return 0;
}
