#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <systemd/sd-bus.h>

#include "fileio.h"
#include "helper-bus.h"
#include "helper-network.h"
#include "helper-util.h"
#include "log.h"
#include "macro.h"
#include "netdev.h"
#include "nft.h"
#include "scope.h"
#include "strv.h"

#define DNS_SOCKET_UNIT       "banger-dns.socket"
#define DNS_SERVICE_UNIT      "bangerd.service"
#define DNS_DROPIN_DIR        "/run/systemd/system/" DNS_SOCKET_UNIT ".d"
#define DNS_DROPIN_PATH       DNS_DROPIN_DIR "/50-address.conf"
#define DNS_DROPIN_SIZE_MAX   4096
#define UNIT_JOB_TIMEOUT_USEC (30ULL * 1000000ULL)

#define SYSTEMD_SERVICE  "org.freedesktop.systemd1"
#define SYSTEMD_PATH     "/org/freedesktop/systemd1"
#define SYSTEMD_MANAGER  "org.freedesktop.systemd1.Manager"
#define RESOLVED_SERVICE "org.freedesktop.resolve1"
#define RESOLVED_PATH    "/org/freedesktop/resolve1"
#define RESOLVED_MANAGER "org.freedesktop.resolve1.Manager"
#define RESOLVED_DOMAIN  "banger"

#define CONFIG_FILES DAEMON_CONFIG_FILE " or a drop-in in " DAEMON_CONFIG_DROPIN_DIR

static int fail(char **ret_error, int error, const char *format, ...)
        __attribute__((format(printf, 3, 4)));

/* Sets *ret_error and returns error, so "return fail(...)" reports and passes the failure on. */
static int fail(char **ret_error, int error, const char *format, ...)
{
        va_list ap;

        va_start(ap, format);
        if (vasprintf(ret_error, format, ap) < 0)
                *ret_error = NULL;
        va_end(ap);
        return error;
}

static int subnet_file_path(const DaemonConfig *c, char **ret)
{
        return asprintf(ret, "%s/%s", c->state_dir, HELPER_SUBNET_FILE) < 0 ? -ENOMEM : 0;
}

/* The subnet from the configuration or the subnet file, and where it came from for messages. */
static int read_known_subnet(const DaemonConfig *c, Ipv4Net *ret_net, char **ret_source,
                             char **ret_error)
{
        _cleanup_free_ char *path = NULL, *source = NULL;
        Ipv4Net net;
        int r;

        if (c->subnet_set) {
                if (asprintf(&source, "[Network] Subnet in %s", CONFIG_FILES) < 0)
                        return -ENOMEM;
                *ret_net = c->subnet;
                *ret_source = TAKE_PTR(source);
                return 0;
        }

        r = subnet_file_path(c, &path);
        if (r < 0)
                return r;

        r = subnet_file_read(path, &net);
        if (r == -ENOENT)
                return fail(ret_error, r, "No subnet is configured or saved in '%s'", path);
        if (r == -EBADMSG)
                return fail(ret_error, r,
                            "Invalid subnet file '%s': expected one line 'Subnet=A.B.C.D/N' "
                            "with a prefix from /16 to /30: remove the file to have a subnet "
                            "chosen again, or set [Network] Subnet in %s",
                            path, CONFIG_FILES);
        if (r < 0)
                return fail(ret_error, r, "Failed to read '%s': %s", path, strerror(-r));

        if (asprintf(&source, "'%s'", path) < 0)
                return -ENOMEM;
        *ret_net = net;
        *ret_source = TAKE_PTR(source);
        return 0;
}

int network_known_subnet(const DaemonConfig *c, Ipv4Net *ret_net, char **ret_error)
{
        _cleanup_free_ char *source = NULL;

        return read_known_subnet(c, ret_net, &source, ret_error);
}

static int check_subnet_is_free(const Ipv4Net *net, const char *source, const Ipv4Net *used,
                                size_t n_used, char **ret_error)
{
        char a[IPV4_FORMAT_MAX], b[IPV4_FORMAT_MAX];

        for (size_t i = 0; i < n_used; i++) {
                if (!ipv4_net_overlaps(net, &used[i]))
                        continue;

                ipv4_format(net->addr, net->prefix, true, a);
                ipv4_format(used[i].addr, used[i].prefix, true, b);
                return fail(ret_error, -EADDRNOTAVAIL,
                            "Subnet '%s' from %s overlaps '%s', which a route or an address on "
                            "this host uses: set [Network] Subnet in %s to a network that is "
                            "free",
                            a, source, b, CONFIG_FILES);
        }
        return 0;
}

static int choose_subnet(const DaemonConfig *c, const Ipv4Net *used, size_t n_used,
                         Ipv4Net *ret_net, char **ret_error)
{
        _cleanup_free_ char *path = NULL;
        char s[IPV4_FORMAT_MAX];
        Ipv4Net net;
        int r;

        r = ipv4_net_choose(used, n_used, &net);
        if (r == -EADDRNOTAVAIL)
                return fail(ret_error, r,
                            "Every subnet banger picks from overlaps a route or an address on "
                            "this host: set [Network] Subnet in %s to a network that is free",
                            CONFIG_FILES);
        if (r < 0)
                return fail(ret_error, r, "Failed to choose a subnet: %s", strerror(-r));

        r = subnet_file_path(c, &path);
        if (r < 0)
                return r;

        ipv4_format(net.addr, net.prefix, true, s);

        /* bangerd.service creates the state directory when bangerd first starts, after
         * banger-network.service ran, and a helper started before that has no writable
         * directory for its whole run. A later call saves the subnet then, and it chooses the
         * same one unless the host's routes changed meanwhile. */
        r = subnet_file_write(path, &net);
        if (r == -ENOENT || r == -EROFS) {
                log_info("Chose subnet '%s' for bridge '%s' without saving it, because state "
                         "directory '%s' is missing or read-only",
                         s, HELPER_BRIDGE, c->state_dir);
                *ret_net = net;
                return 0;
        }
        if (r < 0)
                return fail(ret_error, r, "Failed to save subnet '%s' in '%s': %s", s, path,
                            strerror(-r));

        log_info("Chose subnet '%s' for bridge '%s' and saved it in '%s'", s, HELPER_BRIDGE, path);
        *ret_net = net;
        return 0;
}

/* The subnet to use: the configured or saved one when no route or address on this host
 * overlaps it, else a new free one when none is configured or saved. */
static int resolve_subnet(const DaemonConfig *c, Ipv4Net *ret_net, char **ret_error)
{
        _cleanup_free_ Ipv4Net *used = NULL;
        _cleanup_free_ char *source = NULL;
        size_t n_used = 0;
        Ipv4Net net;
        int r;

        r = netdev_list_used_ipv4(HELPER_BRIDGE, &used, &n_used);
        if (r < 0)
                return fail(ret_error, r, "Failed to list the host's routes and addresses: %s",
                            strerror(-r));

        r = read_known_subnet(c, &net, &source, ret_error);
        if (r == -ENOENT) {
                free(*ret_error);
                *ret_error = NULL;
                return choose_subnet(c, used, n_used, ret_net, ret_error);
        }
        if (r < 0)
                return r;

        r = check_subnet_is_free(&net, source, used, n_used, ret_error);
        if (r < 0)
                return r;

        *ret_net = net;
        return 0;
}

static int systemd_reload(char **ret_error)
{
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        r = sd_bus_open_system(&bus);
        if (r < 0)
                return fail(ret_error, r, "Failed to connect to the system bus: %s", strerror(-r));

        r = sd_bus_call_method(bus, SYSTEMD_SERVICE, SYSTEMD_PATH, SYSTEMD_MANAGER, "Reload",
                               &error, NULL, NULL);
        if (r < 0)
                return fail(ret_error, r, "Failed to reload systemd's units: %s",
                            error.message ?: strerror(-r));
        return 0;
}

/* Points banger-dns.socket at addr through a drop-in, reloading systemd and (re)starting the
 * socket only when the drop-in changed or the socket is not active. systemd then passes the
 * socket to bangerd when bangerd starts. */
static int ensure_dns_socket(uint32_t addr, char **ret_error)
{
        _cleanup_free_ char *text = NULL, *current = NULL, *state = NULL, *service_state = NULL,
                            *job_error = NULL;
        char s[IPV4_FORMAT_MAX];
        bool changed;
        int r;

        ipv4_format(addr, 0, false, s);
        r = dns_socket_dropin_format(addr, &text);
        if (r < 0)
                return r;

        r = read_full_file(DNS_DROPIN_PATH, DNS_DROPIN_SIZE_MAX, &current, NULL);
        if (r < 0 && r != -ENOENT && r != -EFBIG)
                return fail(ret_error, r, "Failed to read '%s': %s", DNS_DROPIN_PATH, strerror(-r));
        changed = r < 0 || !streq(current, text);

        if (changed) {
                r = mkdir_p(DNS_DROPIN_DIR, 0755);
                if (r >= 0)
                        r = write_file_atomic(DNS_DROPIN_PATH, text, strlen(text), 0644);
                if (r < 0)
                        return fail(ret_error, r, "Failed to write '%s': %s", DNS_DROPIN_PATH,
                                    strerror(-r));
        }

        r = scope_get_active_state(DNS_SOCKET_UNIT, &state);
        if (r < 0)
                return fail(ret_error, r, "Failed to read the state of '%s': %s", DNS_SOCKET_UNIT,
                            strerror(-r));
        if (!changed && streq(state, "active"))
                return 0;

        /* A socket that is not active may have been loaded before the drop-in existed. */
        r = systemd_reload(ret_error);
        if (r < 0)
                return r;

        /* systemd refuses to start a socket unit while its service runs, so while bangerd runs
         * the socket waits for bangerd's next start, which pulls in banger-network.service. */
        r = scope_get_active_state(DNS_SERVICE_UNIT, &service_state);
        if (r < 0)
                return fail(ret_error, r, "Failed to read the state of '%s': %s", DNS_SERVICE_UNIT,
                            strerror(-r));
        if (!streq(service_state, "inactive") && !streq(service_state, "failed")) {
                log_info("Not starting '%s' on %s:53 while '%s' is %s", DNS_SOCKET_UNIT, s,
                         DNS_SERVICE_UNIT, service_state);
                return 0;
        }

        r = unit_job_run(changed ? "RestartUnit" : "StartUnit", DNS_SOCKET_UNIT,
                         UNIT_JOB_TIMEOUT_USEC, &job_error);
        if (r < 0)
                return fail(ret_error, r, "Failed to start '%s' on %s:53: %s", DNS_SOCKET_UNIT, s,
                            job_error ?: strerror(-r));

        log_info("Started '%s' on %s:53", DNS_SOCKET_UNIT, s);
        return 0;
}

static bool error_is_absent_service(const sd_bus_error *error)
{
        return sd_bus_error_has_names(error, SD_BUS_ERROR_SERVICE_UNKNOWN,
                                      SD_BUS_ERROR_NAME_HAS_NO_OWNER);
}

/* Makes systemd-resolved send queries for names under ~banger to addr on the bridge. Returns 0
 * without doing anything when resolved is neither running nor activatable. */
static int configure_resolved(int ifindex, uint32_t addr, char **ret_error)
{
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        r = sd_bus_open_system(&bus);
        if (r < 0)
                return fail(ret_error, r, "Failed to connect to the system bus: %s", strerror(-r));

        /* One (family, address bytes) entry; the address bytes go in network order. */
        r = sd_bus_call_method(bus, RESOLVED_SERVICE, RESOLVED_PATH, RESOLVED_MANAGER, "SetLinkDNS",
                               &error, NULL, "ia(iay)", ifindex, 1, AF_INET, 4, (int)(addr >> 24),
                               (int)((addr >> 16) & 0xff), (int)((addr >> 8) & 0xff),
                               (int)(addr & 0xff));
        if (r < 0 && error_is_absent_service(&error)) {
                log_debug("systemd-resolved is not on the bus, leaving DNS for '%s' unset",
                          HELPER_BRIDGE);
                return 0;
        }
        if (r < 0)
                return fail(ret_error, r, "Failed to set the DNS server of '%s' in resolved: %s",
                            HELPER_BRIDGE, error.message ?: strerror(-r));

        r = sd_bus_call_method(bus, RESOLVED_SERVICE, RESOLVED_PATH, RESOLVED_MANAGER,
                               "SetLinkDomains", &error, NULL, "ia(sb)", ifindex, 1,
                               RESOLVED_DOMAIN, 1);
        if (r < 0)
                return fail(ret_error, r,
                            "Failed to set the routing domain '~%s' of '%s' in resolved: %s",
                            RESOLVED_DOMAIN, HELPER_BRIDGE, error.message ?: strerror(-r));

        /* Only ~banger goes to bangerd: resolved forwards other names to the host's resolvers
         * and bangerd forwards to those too, so a default route here would loop. */
        r = sd_bus_call_method(bus, RESOLVED_SERVICE, RESOLVED_PATH, RESOLVED_MANAGER,
                               "SetLinkDefaultRoute", &error, NULL, "ib", ifindex, 0);
        if (r < 0)
                return fail(ret_error, r,
                            "Failed to clear the default route of '%s' in resolved: %s",
                            HELPER_BRIDGE, error.message ?: strerror(-r));
        return 0;
}

int network_ensure(const DaemonConfig *c, Ipv4Net *ret_net, char **ret_error)
{
        _cleanup_free_ char *resolved_error = NULL;
        char s[IPV4_FORMAT_MAX];
        uint32_t addr;
        Ipv4Net net;
        int ifindex, r;

        r = resolve_subnet(c, &net, ret_error);
        if (r < 0)
                return r;
        ipv4_format(net.addr, net.prefix, true, s);
        addr = ipv4_net_host(&net, 1);

        r = netdev_bridge_ensure(HELPER_BRIDGE, &net, HELPER_LINK_ALIAS);
        if (r < 0)
                return fail(ret_error, r, "Failed to set up bridge '%s' on '%s': %s", HELPER_BRIDGE,
                            s, strerror(-r));

        r = netdev_enable_forwarding(HELPER_BRIDGE);
        if (r < 0)
                return fail(ret_error, r, "Failed to enable IPv4 forwarding: %s", strerror(-r));

        r = nft_ensure_base(HELPER_BRIDGE, &net);
        if (r < 0)
                return fail(ret_error, r, "Failed to set up the nftables rules for '%s': %s",
                            HELPER_BRIDGE, strerror(-r));

        r = ensure_dns_socket(addr, ret_error);
        if (r < 0)
                return r;

        ifindex = netdev_index(HELPER_BRIDGE);
        if (ifindex < 0)
                return fail(ret_error, ifindex, "Failed to find bridge '%s': %s", HELPER_BRIDGE,
                            strerror(-ifindex));

        /* Without resolved the VMs still work, but their names do not resolve on the host. */
        r = configure_resolved(ifindex, addr, &resolved_error);
        if (r < 0)
                log_warning("%s, ignoring", strempty(resolved_error));

        *ret_net = net;
        return 0;
}

static int check_slot(const Ipv4Net *net, unsigned slot, char **ret_error)
{
        char s[IPV4_FORMAT_MAX];
        unsigned max;

        if (!net) {
                if (slot < 1 || slot > HELPER_MAX_SLOT)
                        return fail(ret_error, -EINVAL, "Invalid slot %u: slots are 1 to %u", slot,
                                    HELPER_MAX_SLOT);
                return 0;
        }

        max = helper_max_slot(net);
        if (slot >= 1 && slot <= max)
                return 0;
        ipv4_format(net->addr, net->prefix, true, s);
        return fail(ret_error, -EINVAL, "Invalid slot %u: subnet '%s' holds slots 1 to %u", slot, s,
                    max);
}

/* Ensures the network and checks slot against its subnet. */
static int ensure_for_slot(const DaemonConfig *c, unsigned slot, Ipv4Net *ret_net, char **ret_error)
{
        int r;

        r = network_ensure(c, ret_net, ret_error);
        if (r < 0)
                return r;
        return check_slot(ret_net, slot, ret_error);
}

/* Checks slot against the known subnet, or against HELPER_MAX_SLOT before one is known. */
static int check_slot_known(const DaemonConfig *c, unsigned slot, char **ret_error)
{
        _cleanup_free_ char *subnet_error = NULL;
        Ipv4Net net;
        int r;

        r = network_known_subnet(c, &net, &subnet_error);
        if (r == -ENOENT)
                return check_slot(NULL, slot, ret_error);
        if (r < 0) {
                *ret_error = TAKE_PTR(subnet_error);
                return r;
        }
        return check_slot(&net, slot, ret_error);
}

static int lookup_client_user(uid_t *ret_uid, gid_t *ret_gid, char **ret_error)
{
        struct passwd *pw;

        errno = 0;
        pw = getpwnam(HELPER_CLIENT_USER);
        if (!pw && errno != 0 && errno != ENOENT)
                return fail(ret_error, negative_errno(), "Failed to look up user '%s': %s",
                            HELPER_CLIENT_USER, strerror(errno));
        if (!pw)
                return fail(ret_error, -ENOENT,
                            "User '%s' does not exist: create it with systemd-sysusers",
                            HELPER_CLIENT_USER);

        *ret_uid = pw->pw_uid;
        *ret_gid = pw->pw_gid;
        return 0;
}

int network_create_tap(const DaemonConfig *c, unsigned slot, char ret_tap[IF_NAMESIZE],
                       uint32_t *ret_address, char **ret_error)
{
        char tap[IF_NAMESIZE];
        Ipv4Net net;
        uid_t uid = (uid_t)-1;
        gid_t gid = (gid_t)-1;
        int r;

        r = ensure_for_slot(c, slot, &net, ret_error);
        if (r < 0)
                return r;

        r = lookup_client_user(&uid, &gid, ret_error);
        if (r < 0)
                return r;

        tap_name_for_slot(slot, tap);
        r = netdev_tap_ensure(tap, uid, gid, HELPER_BRIDGE, HELPER_LINK_ALIAS);
        if (r == -EEXIST)
                return fail(ret_error, r,
                            "Link '%s' exists and is not a banger tap: remove it with 'ip link "
                            "delete %s'",
                            tap, tap);
        if (r < 0)
                return fail(ret_error, r, "Failed to create tap '%s': %s", tap, strerror(-r));

        log_info("Created tap '%s' for slot %u", tap, slot);
        memcpy(ret_tap, tap, IF_NAMESIZE);
        *ret_address = ipv4_net_host(&net, slot + 1);
        return 0;
}

int network_delete_tap(const DaemonConfig *c, unsigned slot, char **ret_error)
{
        _cleanup_strv_free_ char **links = NULL;
        char tap[IF_NAMESIZE];
        int r;

        r = check_slot_known(c, slot, ret_error);
        if (r < 0)
                return r;

        tap_name_for_slot(slot, tap);
        r = netdev_list_by_alias(HELPER_LINK_ALIAS, &links);
        if (r < 0)
                return fail(ret_error, r, "Failed to list banger's links: %s", strerror(-r));

        if (!strv_contains(links, tap)) {
                r = netdev_index(tap);
                if (r == -ENODEV)
                        return 0;
                if (r < 0)
                        return fail(ret_error, r, "Failed to look up link '%s': %s", tap,
                                    strerror(-r));
                return fail(ret_error, -EEXIST,
                            "Link '%s' is not a banger tap, so it is left in place: remove it "
                            "with 'ip link delete %s'",
                            tap, tap);
        }

        r = netdev_delete(tap);
        if (r < 0)
                return fail(ret_error, r, "Failed to delete tap '%s': %s", tap, strerror(-r));

        log_info("Deleted tap '%s' of slot %u", tap, slot);
        return 0;
}

/* Finds the forward of proto host_port. Returns 1 and the forward when there is one. */
static int find_forward(const char *proto, uint16_t host_port, NftForward *ret, char **ret_error)
{
        _cleanup_free_ NftForward *forwards = NULL;
        size_t n = 0;
        int r;

        r = nft_list_forwards(&forwards, &n);
        if (r == -ENOENT) /* no table, so no forwards */
                return 0;
        if (r < 0)
                return fail(ret_error, r, "Failed to list the port forwards: %s", strerror(-r));

        for (size_t i = 0; i < n; i++)
                if (streq(forwards[i].proto, proto) && forwards[i].host_port == host_port) {
                        *ret = forwards[i];
                        return 1;
                }
        return 0;
}

int network_add_forward(const DaemonConfig *c, unsigned slot, const char *proto, uint16_t host_port,
                        uint16_t guest_port, char **ret_error)
{
        NftForward f = {
                .host_port = host_port,
                .guest_port = guest_port,
                .slot = slot,
        }, existing;
        Ipv4Net net;
        int r;

        r = ensure_for_slot(c, slot, &net, ret_error);
        if (r < 0)
                return r;

        snprintf(f.proto, sizeof(f.proto), "%s", proto);
        f.guest_addr = ipv4_net_host(&net, slot + 1);

        r = find_forward(proto, host_port, &existing, ret_error);
        if (r < 0)
                return r;
        if (r > 0 && existing.slot == slot && existing.guest_port == guest_port &&
            existing.guest_addr == f.guest_addr)
                return 0;
        if (r > 0)
                return fail(ret_error, -EADDRINUSE,
                            "host port %u/%s is already forwarded to the VM in slot %u: pick "
                            "another host port",
                            host_port, proto, existing.slot);

        /* A forward takes the port from programs on this host, so a port in use is rejected. */
        r = port_probe(proto, host_port);
        if (r == -EADDRINUSE)
                return fail(ret_error, r,
                            "host port %u/%s is in use on this host: pick another host port",
                            host_port, proto);
        if (r < 0)
                return fail(ret_error, r, "Failed to check host port %u/%s: %s", host_port, proto,
                            strerror(-r));

        r = nft_add_forward(&f);
        if (r == -EADDRINUSE)
                return fail(ret_error, r,
                            "host port %u/%s is already forwarded: pick another host port",
                            host_port, proto);
        if (r < 0)
                return fail(ret_error, r, "Failed to forward host port %u/%s to slot %u: %s",
                            host_port, proto, slot, strerror(-r));

        log_info("Forwarded host port %u/%s to port %u of slot %u", host_port, proto, guest_port,
                 slot);
        return 0;
}

int network_remove_forward(const DaemonConfig *c, unsigned slot, const char *proto,
                           uint16_t host_port, char **ret_error)
{
        NftForward existing;
        int r;

        r = check_slot_known(c, slot, ret_error);
        if (r < 0)
                return r;

        r = find_forward(proto, host_port, &existing, ret_error);
        if (r <= 0)
                return r;
        if (existing.slot != slot)
                return fail(ret_error, -EINVAL,
                            "host port %u/%s is forwarded to the VM in slot %u, not slot %u",
                            host_port, proto, existing.slot, slot);

        r = nft_remove_forward(proto, host_port);
        if (r < 0 && r != -ENOENT)
                return fail(ret_error, r, "Failed to remove the forward of host port %u/%s: %s",
                            host_port, proto, strerror(-r));

        log_info("Removed the forward of host port %u/%s to slot %u", host_port, proto, slot);
        return 0;
}

static bool slot_is_live(const unsigned *live, size_t n_live, unsigned slot)
{
        for (size_t i = 0; i < n_live; i++)
                if (live[i] == slot)
                        return true;
        return false;
}

static int reconcile_taps(const unsigned *live, size_t n_live, char **ret_error)
{
        _cleanup_strv_free_ char **links = NULL;
        int result = 0, r;

        r = netdev_list_by_alias(HELPER_LINK_ALIAS, &links);
        if (r < 0)
                return fail(ret_error, r, "Failed to list banger's links: %s", strerror(-r));

        for (char **link = links; link && *link; link++) {
                unsigned slot;

                if (tap_name_to_slot(*link, &slot) < 0 || slot_is_live(live, n_live, slot))
                        continue;

                r = netdev_delete(*link);
                if (r < 0 && result == 0)
                        result = fail(ret_error, r, "Failed to delete tap '%s': %s", *link,
                                      strerror(-r));
                else if (r >= 0)
                        log_info("Deleted tap '%s': no running VM has slot %u", *link, slot);
        }
        return result;
}

static int reconcile_forwards(const unsigned *live, size_t n_live, char **ret_error)
{
        int r;

        r = nft_remove_forwards_except(live, n_live);
        if (r == -ENOENT) /* no table, so no forwards */
                return 0;
        if (r < 0)
                return fail(ret_error, r, "Failed to remove the port forwards of stopped VMs: %s",
                            strerror(-r));
        if (r > 0)
                log_info("Removed the port forwards of VMs that are not running: %d", r);
        return 0;
}

int network_reconcile(const unsigned *live, size_t n_live, char **ret_error)
{
        _cleanup_free_ char *forwards_error = NULL;
        int r, r2;

        /* Both steps run even when the first fails, and the first failure is reported. */
        r = reconcile_taps(live, n_live, ret_error);
        r2 = reconcile_forwards(live, n_live, &forwards_error);
        if (r < 0)
                return r;
        if (r2 < 0)
                *ret_error = TAKE_PTR(forwards_error);
        return r2;
}
