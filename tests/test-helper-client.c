#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "fileio.h"
#include "helper-bus.h"
#include "helper-client.h"
#include "macro.h"

/* The client runs against a stand-in for banger-helper on a private dbus-daemon, which the
 * client reaches through DBUS_SYSTEM_BUS_ADDRESS. The real helper needs root, polkit and
 * rtnetlink, so the integration scenarios cover it. */

#define DBUS_DAEMON "/usr/bin/dbus-daemon"

static char bus_dir[] = "/tmp/test-helper-client-XXXXXX";
static pid_t bus_pid;

/* What the stand-in replies and what it received. */
typedef struct FakeHelper {
        const char *error_name; /* when set, every method fails with it */
        const char *error_message;
        const char *bridge;
        const char *bridge_address;
        uint32_t prefix;
        const char *tap;
        const char *vm_address;
        const char *unit; /* NULL: the unit name that StartScope would build */

        char *method;
        uint32_t slot;
        char *proto;
        uint16_t host_port;
        uint16_t guest_port;
        uint32_t live[8];
        size_t n_live;
        char *vm_name;
        uint32_t pids[SCOPE_PIDS_MAX + 1];
        size_t n_pids;
        uint64_t memory_max, tasks_max, cpu_quota;

        sd_bus *bus;
        pthread_t thread;
        int stop_fd[2];
} FakeHelper;

static FakeHelper fake;

static int fail_if_asked(sd_bus_message *m, sd_bus_error *error)
{
        free(fake.method);
        fake.method = strdup(sd_bus_message_get_member(m));
        if (fake.error_name)
                return sd_bus_error_set(error, fake.error_name, fake.error_message);
        return 0;
}

static int method_ensure_network(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        int r = fail_if_asked(m, error);

        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, "ssu", fake.bridge, fake.bridge_address, fake.prefix);
}

static int method_create_tap(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        int r = sd_bus_message_read(m, "u", &fake.slot);

        if (r < 0)
                return r;
        r = fail_if_asked(m, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, "ss", fake.tap, fake.vm_address);
}

static int method_delete_tap(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        int r = sd_bus_message_read(m, "u", &fake.slot);

        if (r < 0)
                return r;
        r = fail_if_asked(m, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, NULL);
}

static int method_add_port_forward(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        const char *proto;
        int r = sd_bus_message_read(m, "usqq", &fake.slot, &proto, &fake.host_port,
                                    &fake.guest_port);

        if (r < 0)
                return r;
        free(fake.proto);
        fake.proto = strdup(proto);
        r = fail_if_asked(m, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, NULL);
}

static int method_remove_port_forward(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        const char *proto;
        int r = sd_bus_message_read(m, "usq", &fake.slot, &proto, &fake.host_port);

        if (r < 0)
                return r;
        free(fake.proto);
        fake.proto = strdup(proto);
        r = fail_if_asked(m, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, NULL);
}

static int method_reconcile(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        const void *data;
        size_t size;
        int r = sd_bus_message_read_array(m, 'u', &data, &size);

        if (r < 0)
                return r;
        ck_assert_uint_le(size, sizeof(fake.live));
        memcpy(fake.live, data, size);
        fake.n_live = size / sizeof(uint32_t);
        r = fail_if_asked(m, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, NULL);
}

static int method_start_scope(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        _cleanup_free_ char *unit = NULL;
        const uint32_t *pids;
        const char *name;
        size_t size;
        int r = sd_bus_message_read(m, "s", &name);

        if (r >= 0)
                r = sd_bus_message_read_array(m, 'u', (const void **)&pids, &size);
        if (r >= 0)
                r = sd_bus_message_read(m, "ttt", &fake.memory_max, &fake.tasks_max,
                                        &fake.cpu_quota);
        if (r < 0)
                return r;
        ck_assert_uint_le(size, sizeof(fake.pids));
        memcpy(fake.pids, pids, size);
        fake.n_pids = size / sizeof(uint32_t);
        free(fake.vm_name);
        fake.vm_name = strdup(name);
        r = fail_if_asked(m, error);
        if (r < 0)
                return r;
        r = scope_name_for_vm(name, &unit);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, "s", fake.unit ?: unit);
}

static const sd_bus_vtable fake_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("EnsureNetwork", "", "ssu", method_ensure_network, 0),
        SD_BUS_METHOD("CreateTap", "u", "ss", method_create_tap, 0),
        SD_BUS_METHOD("DeleteTap", "u", "", method_delete_tap, 0),
        SD_BUS_METHOD("AddPortForward", "usqq", "", method_add_port_forward, 0),
        SD_BUS_METHOD("RemovePortForward", "usq", "", method_remove_port_forward, 0),
        SD_BUS_METHOD("Reconcile", "au", "", method_reconcile, 0),
        SD_BUS_METHOD("StartScope", "sauttt", "s", method_start_scope, 0),
        SD_BUS_VTABLE_END,
};

static void *serve(void *arg)
{
        for (;;) {
                char c;
                int r = sd_bus_process(fake.bus, NULL);

                ck_assert_int_ge(r, 0);
                if (r > 0)
                        continue;
                if (read(fake.stop_fd[0], &c, 1) == 1)
                        return NULL;
                (void)sd_bus_wait(fake.bus, 20000);
        }
}

static void fake_start(void)
{
        fake = (FakeHelper){
                .bridge = "banger0",
                .bridge_address = "10.123.0.1",
                .prefix = 24,
                .tap = "bngtap7",
                .vm_address = "10.123.0.8",
        };
        ck_assert_int_ge(sd_bus_open_system(&fake.bus), 0);
        ck_assert_int_ge(sd_bus_add_object_vtable(fake.bus, NULL, HELPER_PATH, HELPER_INTERFACE,
                                                  fake_vtable, NULL),
                         0);
        ck_assert_int_ge(sd_bus_request_name(fake.bus, HELPER_BUS_NAME, 0), 0);
        ck_assert_int_eq(pipe2(fake.stop_fd, O_NONBLOCK | O_CLOEXEC), 0);
        ck_assert_int_eq(pthread_create(&fake.thread, NULL, serve, NULL), 0);
}

static void fake_stop(void)
{
        ck_assert_int_eq(write(fake.stop_fd[1], "x", 1), 1);
        ck_assert_int_eq(pthread_join(fake.thread, NULL), 0);
        fake.bus = sd_bus_flush_close_unref(fake.bus);
        safe_close(fake.stop_fd[0]);
        safe_close(fake.stop_fd[1]);
        free(fake.method);
        free(fake.proto);
        free(fake.vm_name);
}

START_TEST(helper_ensure_network_reads_reply)
{
        HelperNetwork n = {};
        char *error = NULL;

        ck_assert_int_eq(helper_ensure_network(&n, &error), 0);
        ck_assert_ptr_null(error);
        ck_assert_str_eq(n.bridge, "banger0");
        ck_assert_str_eq(n.address, "10.123.0.1");
        ck_assert_uint_eq(n.prefix, 24);
}
END_TEST

static const struct {
        const char *name;
        const char *bridge;
        const char *address;
        uint32_t prefix;
} bad_networks[] = {
        { "bridge name too long", "bridge0123456789", "10.123.0.1", 24 },
        { "empty bridge name", "", "10.123.0.1", 24 },
        { "address with prefix", "banger0", "10.123.0.1/24", 24 },
        { "IPv6 address", "banger0", "fd00::1", 24 },
        { "prefix 0", "banger0", "10.123.0.1", 0 },
        { "prefix 31", "banger0", "10.123.0.1", 31 },
};

START_TEST(helper_ensure_network_rejects_bad_reply)
{
        HelperNetwork n = { .prefix = 99 };
        _cleanup_free_ char *error = NULL;

        fake.bridge = bad_networks[_i].bridge;
        fake.bridge_address = bad_networks[_i].address;
        fake.prefix = bad_networks[_i].prefix;
        ck_assert_msg(helper_ensure_network(&n, &error) == -EBADMSG, "case '%s'",
                      bad_networks[_i].name);
        ck_assert_ptr_nonnull(strstr(error, "EnsureNetwork returned an invalid"));
        ck_assert_uint_eq(n.prefix, 99);
}
END_TEST

START_TEST(helper_create_tap_passes_slot)
{
        _cleanup_free_ char *tap = NULL, *address = NULL, *error = NULL;

        ck_assert_int_eq(helper_create_tap(7, &tap, &address, &error), 0);
        ck_assert_str_eq(fake.method, "CreateTap");
        ck_assert_uint_eq(fake.slot, 7);
        ck_assert_str_eq(tap, "bngtap7");
        ck_assert_str_eq(address, "10.123.0.8");
        ck_assert_ptr_null(error);
}
END_TEST

START_TEST(helper_create_tap_rejects_long_name)
{
        _cleanup_free_ char *tap = NULL, *address = NULL, *error = NULL;

        fake.tap = "bngtap1234567890";
        ck_assert_int_eq(helper_create_tap(7, &tap, &address, &error), -EBADMSG);
        ck_assert_ptr_null(tap);
        ck_assert_ptr_null(address);
        ck_assert_ptr_nonnull(strstr(error, "'bngtap1234567890'"));
}
END_TEST

START_TEST(helper_slot_out_of_range)
{
        _cleanup_free_ char *tap = NULL, *address = NULL, *error = NULL;
        static const unsigned live[] = { 1, 65534 };

        ck_assert_int_eq(helper_create_tap(0, &tap, &address, &error), -EINVAL);
        ck_assert_str_eq(error, "Invalid network slot 0: slots run from 1 to 65533");
        free(error);
        error = NULL;
        ck_assert_int_eq(helper_delete_tap(65534, &error), -EINVAL);
        ck_assert_ptr_nonnull(strstr(error, "65534"));
        free(error);
        error = NULL;
        ck_assert_int_eq(helper_reconcile(live, ELEMENTSOF(live), &error), -EINVAL);
        ck_assert_ptr_nonnull(strstr(error, "65534"));
        ck_assert_ptr_null(fake.method); /* nothing was sent */
}
END_TEST

START_TEST(helper_delete_tap_passes_slot)
{
        ck_assert_int_eq(helper_delete_tap(65533, NULL), 0);
        ck_assert_str_eq(fake.method, "DeleteTap");
        ck_assert_uint_eq(fake.slot, 65533);
}
END_TEST

START_TEST(helper_port_forward_round_trip)
{
        char *error = NULL;

        ck_assert_int_eq(helper_add_port_forward(3, "udp", 5353, 53, &error), 0);
        ck_assert_str_eq(fake.method, "AddPortForward");
        ck_assert_uint_eq(fake.slot, 3);
        ck_assert_str_eq(fake.proto, "udp");
        ck_assert_uint_eq(fake.host_port, 5353);
        ck_assert_uint_eq(fake.guest_port, 53);

        ck_assert_int_eq(helper_remove_port_forward(4, "tcp", 65535, &error), 0);
        ck_assert_str_eq(fake.method, "RemovePortForward");
        ck_assert_uint_eq(fake.slot, 4);
        ck_assert_str_eq(fake.proto, "tcp");
        ck_assert_uint_eq(fake.host_port, 65535);
        ck_assert_ptr_null(error);
}
END_TEST

static const struct {
        const char *proto;
        uint16_t host_port;
        uint16_t guest_port;
        const char *message;
} bad_forwards[] = {
        { "sctp", 80, 80, "Invalid protocol 'sctp': use 'tcp' or 'udp'" },
        { "TCP", 80, 80, "Invalid protocol 'TCP': use 'tcp' or 'udp'" },
        { NULL, 80, 80, "Invalid protocol '': use 'tcp' or 'udp'" },
        { "tcp", 0, 80, "Invalid host port 0: use a port from 1 to 65535" },
        { "tcp", 80, 0, "Invalid guest port 0: use a port from 1 to 65535" },
};

START_TEST(helper_port_forward_rejects_bad_values)
{
        _cleanup_free_ char *error = NULL;

        ck_assert_int_eq(helper_add_port_forward(1, bad_forwards[_i].proto,
                                                 bad_forwards[_i].host_port,
                                                 bad_forwards[_i].guest_port, &error),
                         -EINVAL);
        ck_assert_str_eq(error, bad_forwards[_i].message);
        ck_assert_ptr_null(fake.method);
}
END_TEST

START_TEST(helper_busy_is_address_in_use)
{
        _cleanup_free_ char *error = NULL;

        fake.error_name = "org.banger1.Error.Busy";
        fake.error_message = "Host port tcp/8080 is in use: choose another host port";
        ck_assert_int_eq(helper_add_port_forward(1, "tcp", 8080, 80, &error), -EADDRINUSE);
        ck_assert_str_eq(error, "Host port tcp/8080 is in use: choose another host port");
}
END_TEST

START_TEST(helper_access_denied_is_eacces)
{
        _cleanup_free_ char *error = NULL;

        fake.error_name = "org.banger1.Error.AccessDenied";
        fake.error_message = "Not authorized for org.banger1.helper";
        ck_assert_int_eq(helper_delete_tap(2, &error), -EACCES);
        ck_assert_str_eq(error, "Not authorized for org.banger1.helper");
}
END_TEST

START_TEST(helper_not_found_is_enoent)
{
        _cleanup_free_ char *error = NULL;

        fake.error_name = "org.banger1.Error.NotFound";
        fake.error_message = "No forward of tcp port 8080 to slot 1";
        ck_assert_int_eq(helper_remove_port_forward(1, "tcp", 8080, &error), -ENOENT);
        ck_assert_str_eq(error, "No forward of tcp port 8080 to slot 1");
}
END_TEST

START_TEST(helper_invalid_argument_keeps_message)
{
        _cleanup_free_ char *error = NULL;
        HelperNetwork n;

        fake.error_name = "org.banger1.Error.InvalidArgument";
        fake.error_message = "Subnet '10.0.0.0/33' in bangerd.conf is invalid";
        ck_assert_int_eq(helper_ensure_network(&n, &error), -EINVAL);
        ck_assert_str_eq(error, "Subnet '10.0.0.0/33' in bangerd.conf is invalid");
}
END_TEST

START_TEST(helper_unknown_error_names_the_method)
{
        _cleanup_free_ char *error = NULL;

        fake.error_name = "org.freedesktop.DBus.Error.Failed";
        fake.error_message = "nft: out of memory";
        ck_assert_int_lt(helper_delete_tap(1, &error), 0);
        ck_assert_str_eq(error,
                         "Failed to call DeleteTap on org.banger1.Helper: nft: out of memory");
}
END_TEST

START_TEST(helper_reconcile_passes_slots)
{
        static const unsigned live[] = { 9, 2, 65533 };

        ck_assert_int_eq(helper_reconcile(live, ELEMENTSOF(live), NULL), 0);
        ck_assert_str_eq(fake.method, "Reconcile");
        ck_assert_uint_eq(fake.n_live, 3);
        ck_assert_uint_eq(fake.live[0], 9);
        ck_assert_uint_eq(fake.live[1], 2);
        ck_assert_uint_eq(fake.live[2], 65533);

        ck_assert_int_eq(helper_reconcile(NULL, 0, NULL), 0);
        ck_assert_uint_eq(fake.n_live, 0);
}
END_TEST

START_TEST(helper_start_scope_passes_spec)
{
        const pid_t pids[] = { 4242, 4243 };
        ScopeSpec spec = {
                .unit = "banger-vm-dev\\x201.scope",
                .pids = pids,
                .n_pids = ELEMENTSOF(pids),
                .memory_max = 320ULL << 20,
                .tasks_max = 256,
                .cpu_quota_per_sec_usec = 2000000,
        };
        char *error = NULL;

        ck_assert_int_eq(helper_start_scope("dev 1", &spec, &error), 0);
        ck_assert_ptr_null(error);
        ck_assert_str_eq(fake.vm_name, "dev 1");
        ck_assert_uint_eq(fake.n_pids, 2);
        ck_assert_uint_eq(fake.pids[0], 4242);
        ck_assert_uint_eq(fake.pids[1], 4243);
        ck_assert_uint_eq(fake.memory_max, 320ULL << 20);
        ck_assert_uint_eq(fake.tasks_max, 256);
        ck_assert_uint_eq(fake.cpu_quota, 2000000);
}
END_TEST

START_TEST(helper_start_scope_checks_unit)
{
        pid_t pids[SCOPE_PIDS_MAX + 1] = { 4242 };
        ScopeSpec spec = { .unit = "banger-vm-dev1.scope", .pids = pids, .n_pids = 1 };
        _cleanup_free_ char *error = NULL;

        /* The spec's unit must be the one the helper derives from the name. */
        spec.unit = "banger-vm-other.scope";
        ck_assert_int_eq(helper_start_scope("dev1", &spec, &error), -EINVAL);
        spec.unit = "banger-vm-dev1.scope";
        pids[0] = 0;
        ck_assert_int_eq(helper_start_scope("dev1", &spec, &error), -EINVAL);
        pids[0] = -1;
        ck_assert_int_eq(helper_start_scope("dev1", &spec, &error), -EINVAL);
        pids[0] = 4242;
        spec.n_pids = 0;
        ck_assert_int_eq(helper_start_scope("dev1", &spec, &error), -EINVAL);
        for (size_t i = 0; i < ELEMENTSOF(pids); i++)
                pids[i] = 4242 + (pid_t)i;
        spec.n_pids = SCOPE_PIDS_MAX + 1;
        ck_assert_int_eq(helper_start_scope("dev1", &spec, &error), -EINVAL);
        spec.pids = NULL;
        spec.n_pids = 1;
        ck_assert_int_eq(helper_start_scope("dev1", &spec, &error), -EINVAL);
        ck_assert_ptr_null(fake.method);

        spec.pids = pids;
        spec.n_pids = SCOPE_PIDS_MAX;
        ck_assert_int_eq(helper_start_scope("dev1", &spec, &error), 0);
        ck_assert_uint_eq(fake.n_pids, SCOPE_PIDS_MAX);
        ck_assert_uint_eq(fake.pids[SCOPE_PIDS_MAX - 1], 4242 + SCOPE_PIDS_MAX - 1);

        spec.n_pids = 1;
        fake.unit = "banger-vm-other.scope";
        ck_assert_int_eq(helper_start_scope("dev1", &spec, &error), -EPROTO);
        ck_assert_ptr_nonnull(strstr(error, "'banger-vm-other.scope'"));
}
END_TEST

START_TEST(helper_missing_names_the_service)
{
        _cleanup_free_ char *error = NULL;

        /* No stand-in owns the name, and the private bus can activate nothing. */
        ck_assert_int_lt(helper_delete_tap(1, &error), 0);
        ck_assert_ptr_nonnull(error);
        ck_assert_msg(strstr(error, "Failed to call DeleteTap on org.banger1.Helper: "), "%s",
                      error);
}
END_TEST

/* Starts a dbus-daemon with a configuration that lets anyone own any name, and points
 * sd_bus_open_system() at it. Runs outside any test, so it reports failures itself. */
static int start_bus(void)
{
        _cleanup_free_ char *config = NULL, *config_path = NULL, *address = NULL;

        if (!mkdtemp(bus_dir))
                return -errno;
        if (asprintf(&config,
                     "<busconfig>\n"
                     "  <listen>unix:path=%s/bus</listen>\n"
                     "  <auth>EXTERNAL</auth>\n"
                     "  <policy context=\"default\">\n"
                     "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
                     "    <allow eavesdrop=\"true\"/>\n"
                     "    <allow own=\"*\"/>\n"
                     "  </policy>\n"
                     "</busconfig>\n",
                     bus_dir) < 0 ||
            asprintf(&config_path, "%s/bus.conf", bus_dir) < 0 ||
            asprintf(&address, "unix:path=%s/bus", bus_dir) < 0)
                return -ENOMEM;
        if (write_file_atomic(config_path, config, strlen(config), 0644) < 0)
                return -EIO;

        bus_pid = fork();
        if (bus_pid < 0)
                return -errno;
        if (bus_pid == 0) {
                execl(DBUS_DAEMON, "dbus-daemon", "--nofork", "--nopidfile", "--nosyslog",
                      "--config-file", config_path, (char *)NULL);
                _exit(127);
        }

        if (setenv("DBUS_SYSTEM_BUS_ADDRESS", address, 1) < 0)
                return -errno;
        /* The daemon is ready once a client gets a unique name from Hello. */
        for (int i = 0; i < 500; i++) {
                sd_bus *bus = NULL;
                const char *unique;
                int r = sd_bus_open_system(&bus);

                if (r >= 0)
                        r = sd_bus_get_unique_name(bus, &unique);
                sd_bus_flush_close_unref(bus);
                if (r >= 0)
                        return 0;
                usleep(10000);
        }
        return -ETIMEDOUT;
}

static void stop_bus(void)
{
        if (bus_pid > 0) {
                kill(bus_pid, SIGTERM);
                waitpid(bus_pid, NULL, 0);
        }
        (void)rm_rf(bus_dir);
}

int main(void)
{
        Suite *s = suite_create("helper-client");
        TCase *calls = tcase_create("calls"), *absent = tcase_create("absent");
        SRunner *sr;
        int failed;

        if (access(DBUS_DAEMON, X_OK) < 0) {
                fprintf(stderr, "%s is missing: install the dbus package\n", DBUS_DAEMON);
                return EXIT_FAILURE;
        }
        if (start_bus() < 0) {
                fprintf(stderr, "Failed to start dbus-daemon in '%s'\n", bus_dir);
                stop_bus();
                return EXIT_FAILURE;
        }

        tcase_add_checked_fixture(calls, fake_start, fake_stop);
        tcase_add_test(calls, helper_ensure_network_reads_reply);
        tcase_add_loop_test(calls, helper_ensure_network_rejects_bad_reply, 0,
                            ELEMENTSOF(bad_networks));
        tcase_add_test(calls, helper_create_tap_passes_slot);
        tcase_add_test(calls, helper_create_tap_rejects_long_name);
        tcase_add_test(calls, helper_slot_out_of_range);
        tcase_add_test(calls, helper_delete_tap_passes_slot);
        tcase_add_test(calls, helper_port_forward_round_trip);
        tcase_add_loop_test(calls, helper_port_forward_rejects_bad_values, 0,
                            ELEMENTSOF(bad_forwards));
        tcase_add_test(calls, helper_busy_is_address_in_use);
        tcase_add_test(calls, helper_access_denied_is_eacces);
        tcase_add_test(calls, helper_not_found_is_enoent);
        tcase_add_test(calls, helper_invalid_argument_keeps_message);
        tcase_add_test(calls, helper_unknown_error_names_the_method);
        tcase_add_test(calls, helper_reconcile_passes_slots);
        tcase_add_test(calls, helper_start_scope_passes_spec);
        tcase_add_test(calls, helper_start_scope_checks_unit);
        suite_add_tcase(s, calls);

        tcase_add_test(absent, helper_missing_names_the_service);
        suite_add_tcase(s, absent);

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        stop_bus();
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
