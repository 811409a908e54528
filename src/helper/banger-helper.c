#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "bus-error.h"
#include "daemon-config.h"
#include "helper-bus.h"
#include "helper-dbus.h"
#include "helper-network.h"
#include "helper-util.h"
#include "log.h"
#include "macro.h"
#include "strv.h"

#define USEC_PER_SEC 1000000ULL

static bool arg_prepare = false;

static void help(void)
{
        printf("Usage: banger-helper [--prepare]\n\n"
               "banger's root helper. Without options it serves %s on the system bus, which\n"
               "D-Bus activation does; it exits after [Helper] IdleTimeoutSec without calls.\n\n"
               "  --prepare   set up the bridge, nftables rules and DNS socket, remove the taps\n"
               "              and forwards of VMs that are not running, then exit\n"
               "  --help      show this help\n"
               "  --version   show the version\n",
               HELPER_BUS_NAME);
}

/* Returns 1 when the program should go on, 0 when it is done, a negative errno on bad usage. */
static int parse_argv(int argc, char *argv[])
{
        enum { ARG_PREPARE = 0x100, ARG_VERSION };
        static const struct option options[] = {
                { "prepare", no_argument, NULL, ARG_PREPARE },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case ARG_PREPARE:
                        arg_prepare = true;
                        break;
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("banger-helper %s\n", BANGER_VERSION);
                        return 0;
                default:
                        fprintf(stderr, "Run 'banger-helper --help' for the options.\n");
                        return -EINVAL;
                }

        if (optind < argc) {
                fprintf(stderr, "Unexpected argument '%s': banger-helper takes options only.\n",
                        argv[optind]);
                return -EINVAL;
        }
        return 1;
}

static void log_warnings(char **warnings)
{
        for (char **w = warnings; w && *w; w++)
                log_warning("%s", *w);
}

static int load_config(DaemonConfig **ret)
{
        _cleanup_strv_free_ char **warnings = NULL;
        int r;

        r = daemon_config_load(DAEMON_CONFIG_FILE, DAEMON_CONFIG_DROPIN_DIR, ret, &warnings);
        if (r < 0)
                return log_error_errno(r, "Failed to read '%s': %m", DAEMON_CONFIG_FILE);
        log_warnings(warnings);
        return 0;
}

/* Removes the taps and forwards of VMs that are not live by their records, which covers VMs
 * whose bangerd was killed before it could clean up. Failures leave things in place. */
static void reconcile_from_records(const DaemonConfig *config)
{
        _cleanup_free_ unsigned *live = NULL;
        _cleanup_free_ char *message = NULL;
        size_t n_live = 0;
        int r;

        r = store_live_slots(config->state_dir, &live, &n_live);
        if (r < 0) {
                log_warning_errno(r, "Failed to read the VM records in '%s', not reconciling: %m",
                                  config->state_dir);
                return;
        }

        r = network_reconcile(live, n_live, &message);
        if (r < 0)
                log_warning("Failed to reconcile taps and port forwards, ignoring: %s",
                            message ?: strerror(-r));
}

static int run_prepare(const DaemonConfig *config)
{
        _cleanup_free_ char *message = NULL;
        char s[IPV4_FORMAT_MAX];
        Ipv4Net net;
        int r;

        r = network_ensure(config, &net, &message);
        if (r < 0)
                return log_error_errno(r, "Failed to prepare banger's network: %s",
                                       message ?: strerror(-r));

        ipv4_format(net.addr, net.prefix, true, s);
        log_info("Prepared bridge '%s' on '%s'", HELPER_BRIDGE, s);

        /* bangerd is not running yet, so the VM records cannot change meanwhile. */
        reconcile_from_records(config);
        return 0;
}

static int on_message(sd_bus_message *message, void *userdata, sd_bus_error *error)
{
        Helper *h = userdata;

        (void)sd_event_now(h->event, CLOCK_MONOTONIC, &h->last_activity_usec);
        return 0;
}

static int on_idle_check(sd_event_source *s, uint64_t usec, void *userdata)
{
        Helper *h = userdata;
        uint64_t timeout = h->config->helper_idle_timeout_usec;
        int r;

        /* A reload set IdleTimeoutSec=0. */
        if (timeout == 0)
                return sd_event_source_set_enabled(s, SD_EVENT_OFF);

        if (usec >= h->last_activity_usec + timeout) {
                log_info("No calls for %llu s, exiting",
                         (unsigned long long)(timeout / USEC_PER_SEC));
                r = sd_bus_release_name(h->bus, HELPER_BUS_NAME);
                if (r < 0)
                        log_warning_errno(r, "Failed to release '%s', ignoring: %m",
                                          HELPER_BUS_NAME);
                return sd_event_exit(h->event, 0);
        }

        r = sd_event_source_set_time(s, h->last_activity_usec + timeout);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static int start_idle_timer(Helper *h)
{
        int r;

        if (h->config->helper_idle_timeout_usec == 0)
                return 0;

        r = sd_event_now(h->event, CLOCK_MONOTONIC, &h->last_activity_usec);
        if (r < 0)
                return r;
        return sd_event_add_time(h->event, &h->idle_source, CLOCK_MONOTONIC,
                                 h->last_activity_usec + h->config->helper_idle_timeout_usec,
                                 USEC_PER_SEC, on_idle_check, h);
}

static int on_reload(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        Helper *h = userdata;
        DaemonConfig *c = NULL;

        (void)sd_notify(false, "RELOADING=1");
        if (load_config(&c) >= 0) {
                daemon_config_free(h->config);
                h->config = c;
                log_info("Reloaded the configuration");
        } else
                log_warning("Keeping the old configuration");
        (void)sd_notify(false, "READY=1");
        return 0;
}

static int setup_event(Helper *h)
{
        sigset_t mask;
        int r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(negative_errno(), "Failed to block signals: %m");

        r = sd_event_default(&h->event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");
        r = sd_event_add_signal(h->event, NULL, SIGTERM, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(h->event, NULL, SIGINT, NULL, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to handle SIGTERM and SIGINT: %m");
        r = sd_event_add_signal(h->event, NULL, SIGHUP, on_reload, h);
        if (r < 0)
                return log_error_errno(r, "Failed to handle SIGHUP: %m");
        r = sd_event_set_watchdog(h->event, true);
        if (r < 0)
                return log_error_errno(r, "Failed to enable the watchdog: %m");
        return 0;
}

static int connect_bus(Helper *h)
{
        int r;

        r = sd_bus_open_system(&h->bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the system bus: %m");
        r = sd_bus_attach_event(h->bus, h->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the bus to the event loop: %m");
        r = sd_bus_error_add_map(banger_error_map);
        if (r < 0)
                return log_error_errno(r, "Failed to register the error map: %m");
        r = sd_bus_add_filter(h->bus, NULL, on_message, h);
        if (r < 0)
                return log_error_errno(r, "Failed to add the activity filter: %m");
        r = sd_bus_add_object_vtable(h->bus, NULL, HELPER_PATH, HELPER_INTERFACE, helper_vtable, h);
        if (r < 0)
                return log_error_errno(r, "Failed to add the %s object: %m", HELPER_PATH);
        return 0;
}

static int run_service(Helper *h)
{
        int r;

        r = setup_event(h);
        if (r < 0)
                return r;
        r = connect_bus(h);
        if (r < 0)
                return r;

        reconcile_from_records(h->config);

        /* Request the name only now, so the first call finds the reconciled state. */
        r = sd_bus_request_name(h->bus, HELPER_BUS_NAME, 0);
        if (r < 0)
                return log_error_errno(r, "Failed to acquire '%s': %m", HELPER_BUS_NAME);

        r = start_idle_timer(h);
        if (r < 0)
                return log_error_errno(r, "Failed to start the idle timer: %m");

        (void)sd_notify(false, "READY=1\nSTATUS=Serving " HELPER_BUS_NAME);
        log_info("banger-helper " BANGER_VERSION " started");

        r = sd_event_loop(h->event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");

        (void)sd_notify(false, "STOPPING=1");
        log_info("banger-helper stopping");
        return 0;
}

int main(int argc, char *argv[])
{
        Helper h = {};
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

        r = load_config(&h.config);
        if (r >= 0)
                r = arg_prepare ? run_prepare(h.config) : run_service(&h);

        sd_event_source_disable_unref(h.idle_source);
        sd_bus_flush_close_unref(h.bus);
        sd_event_unref(h.event);
        daemon_config_free(h.config);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
