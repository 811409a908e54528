#include <errno.h>
#include <signal.h>
#include <stdlib.h>

#include <curl/curl.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "daemon-config.h"
#include "log.h"
#include "macro.h"
#include "manager-dns.h"
#include "manager.h"
#include "strv.h"
#include "vm.h"

/* FileDescriptorName= of the sockets of banger-dns.socket. */
#define DNS_FD_NAME "dns"

static void log_warnings(char **warnings)
{
        for (char **w = warnings; w && *w; w++)
                log_warning("%s", *w);
}

static int on_reload(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        Manager *m = userdata;
        _cleanup_(daemon_config_freep) DaemonConfig *c = NULL;
        _cleanup_strv_free_ char **warnings = NULL;
        int r;

        (void)sd_notify(false, "RELOADING=1");
        r = daemon_config_load(DAEMON_CONFIG_FILE, DAEMON_CONFIG_DROPIN_DIR, &c, &warnings);
        if (r < 0)
                log_error_errno(r, "Failed to reload '%s', keeping the old configuration: %m",
                                DAEMON_CONFIG_FILE);
        else {
                log_warnings(warnings);
                /* The directories are fixed for the daemon's lifetime: objects point into
                 * them. */
                DaemonConfig *old = m->config;

                free(c->state_dir);
                free(c->cache_dir);
                free(c->runtime_dir);
                c->state_dir = TAKE_PTR(old->state_dir);
                c->cache_dir = TAKE_PTR(old->cache_dir);
                c->runtime_dir = TAKE_PTR(old->runtime_dir);
                daemon_config_free(old);
                m->config = TAKE_PTR(c);
                log_info("Reloaded the configuration");
        }
        (void)sd_notify(false, "READY=1");
        return 0;
}

/* Takes the sockets that systemd passed: those named DNS_FD_NAME go into ret, which has room
 * for n_max, and any other is closed. */
static int take_dns_fds(int *ret, size_t n_max, size_t *ret_n)
{
        _cleanup_strv_free_ char **names = NULL;
        size_t n = 0;
        int n_fds;

        /* The call sets FD_CLOEXEC on the sockets, so the VMMs do not inherit them, and unsetting
         * the environment keeps the VMMs from looking for them. */
        n_fds = sd_listen_fds_with_names(true, &names);
        if (n_fds < 0)
                return log_error_errno(n_fds, "Failed to read the sockets passed by systemd: %m");

        for (int i = 0; i < n_fds; i++) {
                int fd = SD_LISTEN_FDS_START + i;

                if (!streq(names[i], DNS_FD_NAME))
                        log_warning("Closing socket '%s' (fd %d) passed by systemd: bangerd uses "
                                    "only sockets named '%s'",
                                    names[i], fd, DNS_FD_NAME);
                else if (n == n_max)
                        log_warning("Closing socket '%s' (fd %d) passed by systemd: bangerd uses "
                                    "at most %zu",
                                    names[i], fd, n_max);
                else {
                        ret[n++] = fd;
                        continue;
                }
                safe_close(fd);
        }

        *ret_n = n;
        return 0;
}

static int run(void)
{
        _cleanup_(daemon_config_freep) DaemonConfig *config = NULL;
        _cleanup_(manager_freep) Manager *m = NULL;
        _cleanup_(dns_server_freep) DnsServer *dns = NULL;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_strv_free_ char **warnings = NULL;
        int dns_fds[8];
        size_t n_dns_fds = 0;
        sigset_t mask;
        int r;

        r = take_dns_fds(dns_fds, ELEMENTSOF(dns_fds), &n_dns_fds);
        if (r < 0)
                return r;

        r = daemon_config_load(DAEMON_CONFIG_FILE, DAEMON_CONFIG_DROPIN_DIR, &config, &warnings);
        if (r < 0)
                return log_error_errno(r, "Failed to read '%s': %m", DAEMON_CONFIG_FILE);
        log_warnings(warnings);

        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return log_error_errno(-ENOMEM, "Failed to initialise libcurl");

        /* Exec writes a command's output to descriptors that callers pass in, and a caller that
         * goes away must fail that write with EPIPE, not end bangerd. */
        if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
                return log_error_errno(negative_errno(), "Failed to ignore SIGPIPE: %m");

        /* Worker threads inherit this mask, so the signals reach only the loop. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGCHLD);
        r = -pthread_sigmask(SIG_BLOCK, &mask, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to block signals: %m");

        r = sd_event_default(&event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");
        r = sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, NULL, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to handle SIGTERM and SIGINT: %m");
        r = sd_event_set_watchdog(event, true);
        if (r < 0)
                return log_error_errno(r, "Failed to enable the watchdog: %m");

        r = manager_new(config, event, &m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the manager: %m");
        config = NULL; /* owned by m from here; freed through m->config below */

        r = sd_event_add_signal(event, NULL, SIGHUP, on_reload, m);
        if (r < 0)
                return log_error_errno(r, "Failed to handle SIGHUP: %m");

        r = manager_connect_bus(m);
        if (r < 0)
                return r;
        r = manager_load(m);
        if (r < 0)
                return r;
        r = vm_reconcile_network(m);
        if (r < 0)
                log_warning_errno(r,
                                  "Failed to start removing the taps and forwards of stopped VMs, "
                                  "ignoring: %m");

        if (n_dns_fds > 0) {
                r = manager_start_dns(m, dns_fds, n_dns_fds, &dns);
                if (r < 0)
                        return log_error_errno(r, "Failed to start the DNS server: %m");
        }

        /* Request the name only now, so callers that activated us find every object. */
        r = sd_bus_request_name(m->bus, BANGER_BUS_NAME, 0);
        if (r < 0)
                return log_error_errno(r, "Failed to acquire '%s': %m", BANGER_BUS_NAME);

        r = manager_start_idle_timer(m);
        if (r < 0)
                return log_error_errno(r, "Failed to start the idle timer: %m");

        (void)sd_notify(false, "READY=1\nSTATUS=Serving org.banger1");
        log_info("bangerd " BANGER_VERSION " started");

        r = sd_event_loop(event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");

        (void)sd_notify(false, "STOPPING=1");
        log_info("bangerd stopping");
        dns = dns_server_free(dns);
        {
                DaemonConfig *c = m->config;

                m = manager_free(m);
                daemon_config_free(c);
        }
        curl_global_cleanup();
        return 0;
}

int main(int argc, char *argv[])
{
        return run() < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
