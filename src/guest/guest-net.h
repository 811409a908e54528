#pragma once

#include <net/if.h>
#include <netinet/in.h>
#include <stddef.h>

/* The guest's network as bangerd passes it on the kernel command line, with the keys
 * GUEST_CMDLINE_ADDRESS, GUEST_CMDLINE_GATEWAY and GUEST_CMDLINE_DNS of helper-bus.h, and
 * the calls that apply it. libc only, because banger-init is static. */

#define GUEST_NET_ERROR_MAX 256

typedef struct GuestNet {
        struct in_addr address; /* network byte order, like every address here */
        unsigned prefix;        /* 1 to 32 */
        struct in_addr gateway; /* inside address/prefix */
        struct in_addr dns;
} GuestNet;

/* Parses a NUL-terminated kernel command line, split into parameters the way the kernel does:
 * white space separates them except inside double quotes, quotes around a parameter or its
 * value are dropped, and parsing stops at "--". Returns 0 when none of the keys is present,
 * 1 with *ret set when all three are present and valid, and -EINVAL when one is missing,
 * repeated or malformed, with a message naming the key and value written to error (when not
 * NULL) in at most error_size bytes. */
int guest_net_parse_cmdline(const char *cmdline, GuestNet *ret, char *error, size_t error_size);

/* Finds the ethernet link (type 1) with the lowest ifindex among the entries of sysfs_net,
 * normally /sys/class/net, and writes its name to ret. Returns -ENODEV when there is none. */
int guest_net_find_link(const char *sysfs_net, char ret[IFNAMSIZ]);

/* Gives lo 127.0.0.1/8 and brings it up. */
int guest_net_configure_loopback(void);

/* Gives link net's address and netmask, brings it up and adds the default route through net's
 * gateway. A default route that exists already is kept. */
int guest_net_configure_link(const char *link, const GuestNet *net);

/* Writes etc_dir/resolv.conf naming dns and the search domain "banger", creating etc_dir when
 * missing. A file or symbolic link there is replaced by rename, so a reader sees the old file
 * or the new one. */
int guest_net_write_resolv_conf(const char *etc_dir, struct in_addr dns);

/* Adds "127.0.1.1 hostname" to etc_dir/hosts unless a line names hostname already, and creates
 * the file with localhost entries when it is missing. Like resolv.conf, the file is replaced
 * by rename. Returns 1 when the file was written and 0 when hostname was listed. */
int guest_net_add_hosts_entry(const char *etc_dir, const char *hostname);
