#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "fileio.h"
#include "macro.h"
#include "scope.h"

#define SECOND_USEC  1000000ULL
#define TIMEOUT_USEC (30 * SECOND_USEC)

static const struct {
        const char *vm_name;
        int result;
        const char *unit;
} name_cases[] = {
        { "dev1", 0, "banger-vm-dev1.scope" },
        { "web-01", 0, "banger-vm-web-01.scope" },
        { "a.b_c:d", 0, "banger-vm-a.b_c:d.scope" },
        { "x y", 0, "banger-vm-x\\x20y.scope" },
        { "a/b", 0, "banger-vm-a\\x2fb.scope" },
        { "a\\b", 0, "banger-vm-a\\x5cb.scope" },
        { "t@1", 0, "banger-vm-t\\x401.scope" },
        { "\xc3\xbc", 0, "banger-vm-\\xc3\\xbc.scope" },
        { "", -EINVAL, NULL },
        { NULL, -EINVAL, NULL },
};

START_TEST(scope_name_table)
{
        _cleanup_free_ char *unit = NULL;

        ck_assert_int_eq(scope_name_for_vm(name_cases[_i].vm_name, &unit), name_cases[_i].result);
        if (name_cases[_i].unit)
                ck_assert_str_eq(unit, name_cases[_i].unit);
        else
                ck_assert_ptr_null(unit);
}
END_TEST

START_TEST(scope_name_length_limit)
{
        char name[300];
        _cleanup_free_ char *unit = NULL;
        /* "banger-vm-" and ".scope" leave 239 of systemd's 255 bytes for the VM name. */
        const size_t fits = 255 - strlen("banger-vm-") - strlen(".scope");

        memset(name, 'a', fits);
        name[fits] = '\0';
        ck_assert_int_eq(scope_name_for_vm(name, &unit), 0);
        ck_assert_uint_eq(strlen(unit), 255);

        free(unit);
        unit = NULL;
        name[fits] = 'a';
        name[fits + 1] = '\0';
        ck_assert_int_eq(scope_name_for_vm(name, &unit), -ENAMETOOLONG);
        ck_assert_ptr_null(unit);

        /* Escaping counts: 60 spaces become 240 bytes. */
        memset(name, ' ', 60);
        name[60] = '\0';
        ck_assert_int_eq(scope_name_for_vm(name, &unit), -ENAMETOOLONG);

        memset(name, 'a', 299);
        name[299] = '\0';
        ck_assert_int_eq(scope_name_for_vm(name, &unit), -ENAMETOOLONG);
}
END_TEST

START_TEST(scope_rejects_invalid_spec)
{
        pid_t pids[SCOPE_PIDS_MAX + 1] = { 1 };
        ScopeSpec spec = {
                .unit = "banger-vm-x.scope",
                .slice = "banger.slice",
                .pids = pids,
                .n_pids = 1,
        };
        char *error = NULL;

        pids[0] = 0;
        ck_assert_int_eq(scope_start(&spec, TIMEOUT_USEC, &error), -EINVAL);
        pids[0] = -5;
        ck_assert_int_eq(scope_start(&spec, TIMEOUT_USEC, &error), -EINVAL);
        pids[0] = 1;
        spec.n_pids = 0;
        ck_assert_int_eq(scope_start(&spec, TIMEOUT_USEC, &error), -EINVAL);
        spec.n_pids = SCOPE_PIDS_MAX + 1;
        ck_assert_int_eq(scope_start(&spec, TIMEOUT_USEC, &error), -EINVAL);
        spec.n_pids = 1;
        spec.unit = "banger-vm-x.service";
        ck_assert_int_eq(scope_start(&spec, TIMEOUT_USEC, &error), -EINVAL);
        spec.unit = "";
        ck_assert_int_eq(scope_start(&spec, TIMEOUT_USEC, &error), -EINVAL);
        ck_assert_int_eq(scope_start(NULL, TIMEOUT_USEC, &error), -EINVAL);
        ck_assert_ptr_null(error);

        ck_assert_int_eq(scope_stop("", TIMEOUT_USEC), -EINVAL);
        ck_assert_int_eq(scope_stop("banger-vm-x.service", TIMEOUT_USEC), -EINVAL);
}
END_TEST

/* The tests below need systemd as PID 1 and do nothing unless sd_booted() reports it, as it does
 * inside a booted container. */

static pid_t start_sleeper(void)
{
        pid_t pid = fork();

        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                execl("/bin/sleep", "sleep", "600", (char *)NULL);
                _exit(127);
        }
        return pid;
}

static char *cgroup_of(pid_t pid)
{
        _cleanup_free_ char *path = NULL;
        char *text = NULL;

        ck_assert_int_gt(asprintf(&path, "/proc/%d/cgroup", pid), 0);
        ck_assert_int_eq(read_full_file(path, 1 << 16, &text, NULL), 0);
        return text;
}

static void unit_property(const char *unit, const char *property, char *buf, size_t size)
{
        _cleanup_free_ char *cmd = NULL;
        FILE *p;

        ck_assert_int_gt(asprintf(&cmd, "systemctl show -P %s %s", property, unit), 0);
        p = popen(cmd, "r");
        ck_assert_ptr_nonnull(p);
        ck_assert_ptr_nonnull(fgets(buf, size, p));
        buf[strcspn(buf, "\n")] = '\0';
        pclose(p);
}

START_TEST(scope_start_and_stop)
{
        ScopeSpec spec = {
                .unit = "banger-vm-scopetest.scope",
                .slice = "banger-test.slice",
                .description = "banger scope test",
                .memory_max = 256ULL << 20,
                .tasks_max = 64,
                .cpu_quota_per_sec_usec = 500000,
        };
        _cleanup_free_ char *error = NULL, *state = NULL;
        char value[256];
        pid_t pids[2];
        int status;

        if (sd_booted() <= 0)
                return;

        pids[0] = start_sleeper();
        pids[1] = start_sleeper();
        spec.pids = pids;
        spec.n_pids = ELEMENTSOF(pids);
        ck_assert_int_eq(scope_start(&spec, TIMEOUT_USEC, &error), 0);
        ck_assert_ptr_null(error);

        /* The job has finished, so both processes are in the scope's cgroup already. */
        for (size_t i = 0; i < ELEMENTSOF(pids); i++) {
                _cleanup_free_ char *cgroup = cgroup_of(pids[i]);

                ck_assert_msg(strstr(cgroup, "/banger-test.slice/banger-vm-scopetest.scope\n"),
                              "cgroup of process %zu: %s", i, cgroup);
        }

        ck_assert_int_eq(scope_get_active_state(spec.unit, &state), 0);
        ck_assert_str_eq(state, "active");
        free(state);
        state = NULL;

        unit_property(spec.unit, "MemoryMax", value, sizeof(value));
        ck_assert_str_eq(value, "268435456");
        unit_property(spec.unit, "TasksMax", value, sizeof(value));
        ck_assert_str_eq(value, "64");
        unit_property(spec.unit, "CPUQuotaPerSecUSec", value, sizeof(value));
        ck_assert_str_eq(value, "500ms");
        unit_property(spec.unit, "CollectMode", value, sizeof(value));
        ck_assert_str_eq(value, "inactive-or-failed");
        unit_property(spec.unit, "Description", value, sizeof(value));
        ck_assert_str_eq(value, "banger scope test");

        /* A second scope of the same name is rejected. */
        ck_assert_int_lt(scope_start(&spec, TIMEOUT_USEC, &error), 0);
        ck_assert_ptr_nonnull(error);

        ck_assert_int_eq(scope_stop(spec.unit, TIMEOUT_USEC), 0);
        for (size_t i = 0; i < ELEMENTSOF(pids); i++) {
                ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
                ck_assert(WIFSIGNALED(status));
                ck_assert_int_eq(WTERMSIG(status), SIGTERM);
        }

        ck_assert_int_eq(scope_get_active_state(spec.unit, &state), 0);
        ck_assert_str_eq(state, "inactive");

        /* Stopping what is gone is not an error. */
        ck_assert_int_eq(scope_stop(spec.unit, TIMEOUT_USEC), 0);
}
END_TEST

START_TEST(scope_start_dead_pid_fails)
{
        ScopeSpec spec = { .unit = "banger-vm-deadpid.scope", .slice = "banger-test.slice" };
        _cleanup_free_ char *error = NULL;
        pid_t pid;

        if (sd_booted() <= 0)
                return;

        pid = start_sleeper();
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        spec.pids = &pid;
        spec.n_pids = 1;

        ck_assert_int_lt(scope_start(&spec, TIMEOUT_USEC, &error), 0);
        ck_assert_ptr_nonnull(error);
}
END_TEST

/* Writes a oneshot service that runs command and stays active after it succeeds. */
static void write_test_service(const char *name, const char *command)
{
        _cleanup_free_ char *path = NULL, *text = NULL;

        ck_assert_int_ge(asprintf(&path, "/run/systemd/system/%s", name), 0);
        ck_assert_int_ge(asprintf(&text,
                                  "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=%s\n",
                                  command),
                         0);
        ck_assert_int_eq(write_file_atomic(path, text, strlen(text), 0644), 0);
}

START_TEST(unit_job_run_start_restart_stop)
{
        _cleanup_free_ char *error = NULL, *state = NULL;

        if (sd_booted() <= 0)
                return;

        write_test_service("banger-test-job.service", "/bin/true");
        write_test_service("banger-test-fail.service", "/bin/false");
        ck_assert_int_eq(system("systemctl daemon-reload"), 0);

        ck_assert_int_eq(unit_job_run("StartUnit", "banger-test-job.service", TIMEOUT_USEC, &error),
                         0);
        ck_assert_ptr_null(error);
        ck_assert_int_eq(scope_get_active_state("banger-test-job.service", &state), 0);
        ck_assert_str_eq(state, "active");
        free(TAKE_PTR(state));

        ck_assert_int_eq(
                unit_job_run("RestartUnit", "banger-test-job.service", TIMEOUT_USEC, &error), 0);
        ck_assert_ptr_null(error);

        ck_assert_int_eq(unit_job_run("StopUnit", "banger-test-job.service", TIMEOUT_USEC, &error),
                         0);
        ck_assert_int_eq(scope_get_active_state("banger-test-job.service", &state), 0);
        ck_assert_str_eq(state, "inactive");

        /* A job that fails gives -EIO and names its result. */
        ck_assert_int_eq(
                unit_job_run("StartUnit", "banger-test-fail.service", TIMEOUT_USEC, &error), -EIO);
        ck_assert_ptr_nonnull(error);
        ck_assert_msg(strstr(error, "'failed'"), "error: %s", error);
        free(TAKE_PTR(error));

        /* A unit that does not exist gives -ENOENT with systemd's message. */
        ck_assert_int_eq(
                unit_job_run("StartUnit", "banger-test-missing.service", TIMEOUT_USEC, &error),
                -ENOENT);
        ck_assert_ptr_nonnull(error);

        ck_assert_int_eq(unit_job_run("", "banger-test-job.service", TIMEOUT_USEC, NULL), -EINVAL);
        ck_assert_int_eq(unit_job_run("StartUnit", "", TIMEOUT_USEC, NULL), -EINVAL);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("scope");
        TCase *names = tcase_create("names"), *live = tcase_create("systemd");
        SRunner *sr;
        int failed;

        tcase_add_loop_test(names, scope_name_table, 0, ELEMENTSOF(name_cases));
        tcase_add_test(names, scope_name_length_limit);
        tcase_add_test(names, scope_rejects_invalid_spec);
        suite_add_tcase(s, names);

        if (sd_booted() <= 0)
                fprintf(stderr, "systemd is not PID 1: skipping the scope tests on a live bus\n");
        tcase_add_test(live, scope_start_and_stop);
        tcase_add_test(live, scope_start_dead_pid_fails);
        tcase_add_test(live, unit_job_run_start_restart_stop);
        suite_add_tcase(s, live);

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
