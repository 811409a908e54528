#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "macro.h"

/* Jobs run real threads on a real sd-event loop; only the bus side is absent. */

typedef struct Recorder {
        unsigned added, finished, removed, changed;
        bool saw_progress;
        bool exit_on_finished; /* end sd_event_loop() when a job finishes */
        sd_event *event;
} Recorder;

static void on_added(Job *j, void *userdata)
{
        ((Recorder *)userdata)->added++;
}

static void on_changed(Job *j, char **properties, void *userdata)
{
        Recorder *rec = userdata;

        rec->changed++;
        for (char **p = properties; *p; p++)
                if (streq(*p, JOB_PROPERTY_BYTES_DONE) && j->bytes_done == 50 &&
                    j->bytes_total == 100)
                        rec->saw_progress = true;
}

static void on_finished(Job *j, void *userdata)
{
        Recorder *rec = userdata;

        rec->finished++;
        if (rec->exit_on_finished)
                sd_event_exit(rec->event, 0);
}

static void on_removed(Job *j, void *userdata)
{
        Recorder *rec = userdata;

        rec->removed++;
}

static const JobManagerCallbacks callbacks = {
        .added = on_added,
        .changed = on_changed,
        .finished = on_finished,
        .removed = on_removed,
};

/* The worker waits on a gate so the test controls when it finishes. */
typedef struct Gate {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool open;
        int result;
        const char *error;
        unsigned *freed;
} Gate;

static void gate_open(Gate *g)
{
        pthread_mutex_lock(&g->lock);
        g->open = true;
        pthread_cond_broadcast(&g->cond);
        pthread_mutex_unlock(&g->lock);
}

static int run_gated(Job *j, void *userdata, char **ret_error)
{
        Gate *g = userdata;

        job_report(j, "download", 50, 100);
        pthread_mutex_lock(&g->lock);
        while (!g->open && !j->cancel)
                pthread_cond_wait(&g->cond, &g->lock);
        pthread_mutex_unlock(&g->lock);

        if (j->cancel)
                return -ECANCELED;
        if (g->error)
                *ret_error = strdup(g->error);
        return g->result;
}

static int complete_with_path(Job *j, int result, const char *error, void *userdata,
                              char **ret_error)
{
        if (result < 0)
                return result;
        return job_set_result(j, "/org/banger1/image/x");
}

static void count_free(void *userdata)
{
        unsigned *n = userdata;

        (*n)++;
}

START_TEST(job_runs_and_reports)
{
        _cleanup_(job_manager_freep) JobManager *m = NULL;
        Recorder rec = { .exit_on_finished = true };
        Gate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0, NULL, NULL };
        Job *j = NULL;

        ck_assert_int_eq(sd_event_new(&rec.event), 0);
        ck_assert_int_eq(job_manager_new(rec.event, &callbacks, &rec, &m), 0);
        ck_assert_int_eq(
                job_start(m, "pull-image", "busybox", run_gated, complete_with_path, &g, NULL, &j),
                0);
        ck_assert_str_eq(j->path, "/org/banger1/job/1");
        ck_assert_int_eq(j->state, JOB_RUNNING);
        ck_assert_str_eq(j->result, "/");
        ck_assert_uint_eq(rec.added, 1);
        ck_assert_uint_eq(job_manager_count_running(m), 1);

        gate_open(&g);
        ck_assert_int_eq(sd_event_loop(rec.event), 0);

        ck_assert_uint_eq(rec.finished, 1);
        ck_assert_int_eq(j->state, JOB_DONE);
        ck_assert_str_eq(j->result, "/org/banger1/image/x");
        ck_assert_str_eq(j->error, "");
        ck_assert(j->progress == 1.0);
        ck_assert_uint_eq(job_manager_count_running(m), 0);
        ck_assert_ptr_eq(job_manager_find_by_id(m, 1), j);
        sd_event_unref(rec.event);
}
END_TEST

START_TEST(job_same_target_coalesces)
{
        _cleanup_(job_manager_freep) JobManager *m = NULL;
        Recorder rec = { 0 };
        Gate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0, NULL, NULL };
        unsigned freed = 0;
        Job *a = NULL, *b = NULL, *c = NULL, *d = NULL;

        ck_assert_int_eq(sd_event_new(&rec.event), 0);
        ck_assert_int_eq(job_manager_new(rec.event, &callbacks, &rec, &m), 0);
        ck_assert_int_eq(job_start(m, "pull-image", "busybox", run_gated, NULL, &g, NULL, &a), 0);
        ck_assert_int_eq(
                job_start(m, "pull-image", "busybox", run_gated, NULL, &freed, count_free, &b), 1);
        ck_assert_ptr_eq(a, b);
        ck_assert_uint_eq(freed, 1);

        /* Another target or another operation is a separate job. */
        ck_assert_int_eq(job_start(m, "pull-image", "alpine", run_gated, NULL, &g, NULL, &c), 0);
        ck_assert_ptr_ne(a, c);
        ck_assert_int_eq(job_start(m, "create-vm", "busybox", run_gated, NULL, &g, NULL, &d), 0);
        ck_assert_ptr_ne(a, d);
        ck_assert_str_eq(d->path, "/org/banger1/job/3");
        ck_assert_uint_eq(job_manager_count_running(m), 3);
        ck_assert_ptr_eq(job_manager_find_running(m, "pull-image", "alpine"), c);
        ck_assert_ptr_null(job_manager_find_running(m, "import-kernel", "busybox"));

        gate_open(&g);
        while (job_manager_count_running(m) > 0)
                ck_assert_int_ge(sd_event_run(rec.event, UINT64_MAX), 0);
        ck_assert_uint_eq(rec.finished, 3);

        /* A finished job no longer absorbs new requests. */
        ck_assert_int_eq(job_start(m, "pull-image", "busybox", run_gated, NULL, &g, NULL, &b), 0);
        ck_assert_ptr_ne(a, b);
        while (job_manager_count_running(m) > 0)
                ck_assert_int_ge(sd_event_run(rec.event, UINT64_MAX), 0);
        sd_event_unref(rec.event);
}
END_TEST

START_TEST(job_failure_keeps_message)
{
        _cleanup_(job_manager_freep) JobManager *m = NULL;
        Recorder rec = { 0 };
        Gate g = { PTHREAD_MUTEX_INITIALIZER,
                   PTHREAD_COND_INITIALIZER,
                   true,
                   -ECONNREFUSED,
                   "Registry '127.0.0.1:1' is not reachable",
                   NULL };
        Gate plain = {
                PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, true, -EIO, NULL, NULL
        };
        Job *j = NULL, *k = NULL;

        ck_assert_int_eq(sd_event_new(&rec.event), 0);
        ck_assert_int_eq(job_manager_new(rec.event, &callbacks, &rec, &m), 0);
        ck_assert_int_eq(
                job_start(m, "pull-image", "x", run_gated, complete_with_path, &g, NULL, &j), 0);
        ck_assert_int_eq(job_start(m, "pull-image", "y", run_gated, NULL, &plain, NULL, &k), 0);
        while (job_manager_count_running(m) > 0)
                ck_assert_int_ge(sd_event_run(rec.event, UINT64_MAX), 0);

        ck_assert_int_eq(j->state, JOB_FAILED);
        ck_assert_str_eq(j->error, "Registry '127.0.0.1:1' is not reachable");
        ck_assert_str_eq(j->result, "/");
        ck_assert_int_eq(k->state, JOB_FAILED);
        ck_assert_str_eq(k->error, "Job pull-image for 'y' failed: Input/output error");
        ck_assert(rec.saw_progress);
        sd_event_unref(rec.event);
}
END_TEST

START_TEST(job_finished_is_removed_after_linger)
{
        _cleanup_(job_manager_freep) JobManager *m = NULL;
        Recorder rec = { 0 };
        Gate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, true, 0, NULL, NULL };
        Job *j = NULL;

        ck_assert_int_eq(sd_event_new(&rec.event), 0);
        ck_assert_int_eq(job_manager_new(rec.event, &callbacks, &rec, &m), 0);
        m->linger_usec = 1;
        ck_assert_int_eq(job_start(m, "create-vm", "dev1", run_gated, NULL, &g, NULL, &j), 0);
        while (rec.removed == 0)
                ck_assert_int_ge(sd_event_run(rec.event, UINT64_MAX), 0);
        ck_assert_ptr_null(job_manager_find_by_id(m, 1));
        ck_assert_ptr_null(m->jobs);
        sd_event_unref(rec.event);
}
END_TEST

START_TEST(job_manager_free_cancels_running)
{
        JobManager *m = NULL;
        Recorder rec = { 0 };
        Gate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0, NULL, NULL };
        Job *j = NULL;

        ck_assert_int_eq(sd_event_new(&rec.event), 0);
        ck_assert_int_eq(job_manager_new(rec.event, &callbacks, &rec, &m), 0);
        ck_assert_int_eq(job_start(m, "pull-image", "z", run_gated, NULL, &g, NULL, &j), 0);

        /* The worker checks the cancel flag after every wake-up, so set the flag and then
         * wake it. */
        j->cancel = true;
        pthread_mutex_lock(&g.lock);
        pthread_cond_broadcast(&g.cond);
        pthread_mutex_unlock(&g.lock);
        ck_assert_ptr_null(job_manager_free(m));
        ck_assert_uint_eq(rec.finished, 0);
        sd_event_unref(rec.event);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("job");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        tcase_add_test(tc, job_runs_and_reports);
        tcase_add_test(tc, job_same_target_coalesces);
        tcase_add_test(tc, job_failure_keeps_message);
        tcase_add_test(tc, job_finished_is_removed_after_linger);
        tcase_add_test(tc, job_manager_free_cancels_running);
        suite_add_tcase(s, tc);

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
