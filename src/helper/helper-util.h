#pragma once

#include <net/if.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ipv4.h"

/* The parts of banger-helper that need neither the bus nor privileges. */

/* Reads the real and effective uid from the text of /proc/PID/status. Returns -EBADMSG when
 * the "Uid:" line is missing or malformed. */
int proc_status_parse_uids(const char *text, uid_t *ret_real, uid_t *ret_effective);

/* The same for a live process. Returns -ESRCH when pid does not exist. */
int proc_read_uids(pid_t pid, uid_t *ret_real, uid_t *ret_effective);

/* Parses the subnet file: one "Subnet=A.B.C.D/N" line that daemon_config_subnet_parse()
 * accepts, with blank lines and lines starting with '#' around it. Returns -EBADMSG for
 * anything else, a second Subnet line included. */
int subnet_file_parse(const char *text, Ipv4Net *ret);

/* Reads path with subnet_file_parse(). Returns -ENOENT when the file is missing. */
int subnet_file_read(const char *path, Ipv4Net *ret);

/* Writes net to path atomically (write_file_atomic()) in the form subnet_file_parse() reads. */
int subnet_file_write(const char *path, const Ipv4Net *net);

/* The tap name of slot: HELPER_TAP_PREFIX and the slot in decimal. */
void tap_name_for_slot(unsigned slot, char ret[IF_NAMESIZE]);

/* The slot of a tap name that tap_name_for_slot() made for a slot from 1 to HELPER_MAX_SLOT.
 * Returns -EINVAL for any other name, "bngtap01" and "bngtap0" included. */
int tap_name_to_slot(const char *name, unsigned *ret);

/* The highest VM slot of net: ipv4_net_max_slot(), at most HELPER_MAX_SLOT. */
unsigned helper_max_slot(const Ipv4Net *net);

/* Tries to bind proto ("tcp" or "udp") port on 0.0.0.0. Returns 0 when the bind succeeds (the
 * socket is closed again), -EADDRINUSE when something on this host uses the port, -EINVAL
 * for another proto. A TCP socket in TIME_WAIT does not count as using the port. */
int port_probe(const char *proto, uint16_t port);

/* The drop-in for banger-dns.socket that makes it listen on addr, port 53, over UDP and TCP. */
int dns_socket_dropin_format(uint32_t addr, char **ret);

/* The slots of the VMs in state_dir whose record has state starting, running or stopping and a
 * slot. Records that cannot be read or parsed are skipped with a warning, as bangerd skips
 * them. */
int store_live_slots(const char *state_dir, unsigned **ret, size_t *ret_n);
