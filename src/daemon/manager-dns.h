#pragma once

#include <stddef.h>

#include "dns-server.h"
#include "manager.h"

/* The resolver configuration whose nameservers get the queries for other names. */
#define MANAGER_DNS_RESOLV_CONF "/etc/resolv.conf"

/* Starts the DNS server on fds, the sockets of banger-dns.socket, answering NAME.banger from
 * m's running VMs. Takes ownership of the fds, also on failure. Every query counts as activity
 * for m's idle timer. */
int manager_start_dns(Manager *m, const int *fds, size_t n_fds, DnsServer **ret);
