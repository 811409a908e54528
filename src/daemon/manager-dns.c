#include <arpa/inet.h>
#include <errno.h>

#include "helper-bus.h"
#include "log.h"
#include "macro.h"
#include "manager-dns.h"

static int lookup_vm(const char *name, struct in_addr *ret, void *userdata)
{
        Manager *m = userdata;
        Vm *vm = manager_find_vm(m, name);

        if (!vm || vm->record->state != VM_RUNNING || !vm->record->address)
                return 0;
        if (inet_pton(AF_INET, vm->record->address, ret) != 1)
                return log_error_errno(-EINVAL,
                                       "VM '%s' has the invalid address '%s' in its record", name,
                                       vm->record->address);
        return 1;
}

static void on_dns_activity(void *userdata)
{
        Manager *m = userdata;

        (void)sd_event_now(m->event, CLOCK_MONOTONIC, &m->last_activity_usec);
}

int manager_start_dns(Manager *m, const int *fds, size_t n_fds, DnsServer **ret)
{
        _cleanup_(dns_server_freep) DnsServer *s = NULL;
        const DnsServerConfig config = {
                .lookup = lookup_vm,
                .on_activity = on_dns_activity,
                .userdata = m,
                .resolv_conf = MANAGER_DNS_RESOLV_CONF,
                /* The bridge's own addresses would send the query back here. */
                .excluded_ifname = HELPER_BRIDGE,
        };
        size_t i = 0;
        int r;

        r = dns_server_new(m->event, &config, &s);
        for (; r >= 0 && i < n_fds; i++)
                r = dns_server_add_socket(s, fds[i]);
        if (r < 0) {
                /* dns_server_add_socket() took the fd it failed on. */
                for (; i < n_fds; i++)
                        safe_close(fds[i]);
                return r;
        }

        *ret = TAKE_PTR(s);
        return 0;
}
