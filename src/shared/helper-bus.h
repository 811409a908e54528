#pragma once

/* The bus contract between bangerd and banger-helper. Every method takes names and numbers
 * only; the helper derives link names, addresses, paths and unit names itself.
 *
 * Interface org.banger1.Helper at /org/banger1/helper, every method checked with polkit action
 * org.banger1.helper:
 *
 *   EnsureNetwork() -> (s bridge, s address, u prefix)
 *       Creates or refreshes the bridge, its address (host 1 of the subnet), the nftables
 *       rules and the systemd-resolved link settings. The subnet comes from [Network] Subnet in
 *       bangerd.conf, else from HELPER_SUBNET_FILE, else it is chosen and saved there.
 *       address is the bridge's, e.g. "10.123.0.1".
 *   CreateTap(u slot) -> (s tap, s address)
 *       Tap HELPER_TAP_PREFIX + slot, owned by user bangerd, on the bridge, up; address is the
 *       VM's (host slot + 1). Calls EnsureNetwork first.
 *   DeleteTap(u slot)
 *   AddPortForward(u slot, s proto, q host_port, q guest_port)
 *       proto is "tcp" or "udp". Fails with org.banger1.Error.Busy naming the port when the
 *       host port is bound on the host or forwarded already.
 *   RemovePortForward(u slot, s proto, q host_port)
 *   Reconcile(au live_slots)
 *       Removes banger taps and forwards whose slot is not in live_slots.
 *   StartScope(s vm_name, au pids, t memory_max, t tasks_max, t cpu_quota_per_sec_usec) -> s unit
 *       Moves pids (1 to SCOPE_PIDS_MAX processes, each of user bangerd) into
 *       banger-vm-NAME.scope under banger.slice, and returns once systemd's job finished.
 */

#define HELPER_BUS_NAME  "org.banger1.Helper"
#define HELPER_PATH      "/org/banger1/helper"
#define HELPER_INTERFACE "org.banger1.Helper"
#define HELPER_ACTION    "org.banger1.helper"

#define HELPER_BRIDGE     "banger0"
#define HELPER_TAP_PREFIX "bngtap" /* bngtap1 ... bngtap65533, at most 11 bytes */
#define HELPER_LINK_ALIAS "banger" /* the alias that marks a link as banger's */
#define HELPER_MAX_SLOT   65533u

/* The subnet chosen at first use, "Subnet=A.B.C.D/N", under bangerd's state directory. */
#define HELPER_SUBNET_FILE "network.conf"

/* Kernel command line keys that carry the network to banger-init. */
#define GUEST_CMDLINE_ADDRESS "banger.address" /* A.B.C.D/N */
#define GUEST_CMDLINE_GATEWAY "banger.gateway" /* A.B.C.D */
#define GUEST_CMDLINE_DNS     "banger.dns"     /* A.B.C.D */
