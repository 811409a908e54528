#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

/* Long-running operations (pull an image, import a kernel, create a VM). The heavy step runs in
 * a worker thread that never touches sd-bus. Progress and completion reach the event loop
 * through an eventfd, and the JobManager's callbacks turn them into bus signals there. */

typedef enum JobState {
        JOB_RUNNING,
        JOB_DONE,
        JOB_FAILED,
        _JOB_STATE_MAX,
        _JOB_STATE_INVALID = -1,
} JobState;

const char *job_state_to_string(JobState s);

typedef struct Job Job;
typedef struct JobManager JobManager;

/* Runs in the worker thread. Returns 0 or a negative errno; on failure *ret_error may receive
 * a message for the user. */
typedef int (*JobRun)(Job *j, void *userdata, char **ret_error);

/* Runs on the loop after the worker returned result and error (the worker's message or NULL),
 * before the job is marked finished. It may set the result with job_set_result(), or turn
 * success into failure by returning a negative errno and setting *ret_error. */
typedef int (*JobComplete)(Job *j, int result, const char *error, void *userdata, char **ret_error);

/* Property names for JobManagerCallbacks.changed. */
#define JOB_PROPERTY_STATE       "State"
#define JOB_PROPERTY_STEP        "Step"
#define JOB_PROPERTY_PROGRESS    "Progress"
#define JOB_PROPERTY_BYTES_DONE  "BytesDone"
#define JOB_PROPERTY_BYTES_TOTAL "BytesTotal"
#define JOB_PROPERTY_RESULT      "Result"
#define JOB_PROPERTY_ERROR       "Error"

typedef struct JobManagerCallbacks {
        void (*added)(Job *j, void *userdata);
        void (*changed)(Job *j, char **properties, void *userdata);
        void (*finished)(Job *j, void *userdata);
        void (*removed)(Job *j, void *userdata);
} JobManagerCallbacks;

struct Job {
        JobManager *manager;
        unsigned id;
        char *operation; /* "pull-image", "import-kernel", "create-vm" */
        char *target;    /* the name the job works on */
        char *path;      /* /org/banger1/job/ID */

        /* Loop-side state, the source of the bus properties. */
        JobState state;
        const char *step; /* static string, "" before the first report */
        uint64_t bytes_done;
        uint64_t bytes_total;
        double progress;
        char *result; /* object path once done, else "/" */
        char *error;  /* message when failed, else "" */

        /* Shared with the worker under lock. */
        pthread_mutex_t lock;
        const char *pending_step;
        uint64_t pending_done;
        uint64_t pending_total;
        bool pending_progress;
        bool worker_done;
        int worker_result;
        char *worker_error;

        volatile bool cancel; /* set on daemon exit; runners pass it to cancellable calls */

        pthread_t thread;
        bool thread_started;
        int event_fd;
        sd_event_source *event_source;
        sd_event_source *linger_source;

        JobRun run;
        JobComplete complete;
        void *userdata;
        void (*free_userdata)(void *userdata);

        Job *next;
};

struct JobManager {
        sd_event *event;
        Job *jobs;
        unsigned next_id;
        uint64_t linger_usec; /* how long a finished job stays listed */
        JobManagerCallbacks callbacks;
        void *userdata;
};

int job_manager_new(sd_event *event, const JobManagerCallbacks *callbacks, void *userdata,
                    JobManager **ret);
/* Cancels the running jobs, joins their threads and frees everything. */
JobManager *job_manager_free(JobManager *m);
static inline void job_manager_freep(JobManager **m)
{
        job_manager_free(*m);
}

/* The running job for operation and target, or NULL. */
Job *job_manager_find_running(JobManager *m, const char *operation, const char *target);
Job *job_manager_find_by_id(JobManager *m, unsigned id);
unsigned job_manager_count_running(JobManager *m);

/* Starts run(userdata) in a new thread and returns 0. When a job for the same operation and
 * target is still running, returns 1 with that job and frees userdata with free_userdata.
 * On failure userdata is freed too. */
int job_start(JobManager *m, const char *operation, const char *target, JobRun run,
              JobComplete complete, void *userdata, void (*free_userdata)(void *userdata),
              Job **ret);

/* Called from the worker: reports the step and byte counts (total 0 when unknown). */
void job_report(Job *j, const char *step, uint64_t done, uint64_t total);

/* Called on the loop from JobComplete: the object the job made. */
int job_set_result(Job *j, const char *object_path);
