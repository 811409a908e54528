#pragma once

#include <net/if.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon-config.h"
#include "ipv4.h"

/* banger-helper's network work: the bridge and its subnet, tap devices, nftables rules, the
 * DNS socket and the resolved link settings. Every function returns a negative errno on failure
 * and sets *ret_error to a message for the caller that names what failed, on which value, and
 * what to do. The errno selects the bus error: -EINVAL an invalid argument, -EADDRINUSE a port
 * that is taken, -EEXIST a link in the way, anything else a failure. */

/* The user whose processes and taps banger-helper serves. */
#define HELPER_CLIENT_USER "bangerd"

/* Creates or refreshes the bridge on the subnet from [Network] Subnet, else from the subnet file
 * in the state directory, else a free one chosen now and saved there when that directory is
 * writable. Then enables IPv4 forwarding, ensures the nftables rules, points banger-dns.socket
 * at the bridge address and configures systemd-resolved when it is present. */
int network_ensure(const DaemonConfig *c, Ipv4Net *ret_net, char **ret_error);

/* The subnet from the configuration or the subnet file, without choosing or checking one.
 * Returns -ENOENT when neither has one. */
int network_known_subnet(const DaemonConfig *c, Ipv4Net *ret_net, char **ret_error);

/* Ensures the network, then the tap of slot, owned by HELPER_CLIENT_USER, on the bridge. */
int network_create_tap(const DaemonConfig *c, unsigned slot, char ret_tap[IF_NAMESIZE],
                       uint32_t *ret_address, char **ret_error);

/* Deletes the tap of slot. A missing tap is not an error. */
int network_delete_tap(const DaemonConfig *c, unsigned slot, char **ret_error);

/* Ensures the network, then forwards proto host_port on the host to guest_port of the VM in
 * slot. Fails with -EADDRINUSE when something on this host binds the port or another forward
 * uses it. Adding the same forward again is not an error. */
int network_add_forward(const DaemonConfig *c, unsigned slot, const char *proto, uint16_t host_port,
                        uint16_t guest_port, char **ret_error);

/* Removes the forward of proto host_port to the VM in slot. A missing forward is not an error,
 * but a forward of that port to another slot gives -EINVAL. */
int network_remove_forward(const DaemonConfig *c, unsigned slot, const char *proto,
                           uint16_t host_port, char **ret_error);

/* Removes the banger taps and forwards whose slot is not in live. */
int network_reconcile(const unsigned *live, size_t n_live, char **ret_error);
