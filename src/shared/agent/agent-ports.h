#pragma once

#include <stdint.h>

#include "agent-proto.h"

/* Listening-port inspection for banger-agent: parses /proc/net/{tcp,tcp6,udp,udp6} and finds
 * the processes that hold each socket under /proc/PID/fd. Linked into the static guest
 * programs, so it uses no library beyond libc. */

#define PROC_NET_TCP_LISTEN 0x0Au /* TCP_LISTEN in include/net/tcp_states.h */
#define PROC_NET_UDP_CLOSE  0x07u /* TCP_CLOSE: the state of a UDP socket with no peer */

/* One socket line of a /proc/net/{tcp,tcp6,udp,udp6} file. */
typedef struct ProcNetSocket {
        int family;          /* AF_INET or AF_INET6 */
        uint8_t address[16]; /* local address, network byte order; AF_INET uses 4 bytes */
        uint16_t port;       /* local port */
        unsigned state;      /* TCP state number, also used for UDP */
        uint32_t uid;
        uint64_t inode; /* 0 for sockets that no file refers to, such as TIME_WAIT */
} ProcNetSocket;

/* Parses one line of a /proc/net file of the given family (AF_INET for tcp and udp, AF_INET6
 * for tcp6 and udp6), with or without its trailing newline. The kernel prints each address
 * as 32-bit words in the byte order of the machine it runs on, so a line is parsed correctly
 * only on a machine of the same byte order. Returns 1 with *ret set for a socket line, 0 for
 * the header line, and -EBADMSG for anything else, including an address of the other family. */
int proc_net_parse_line(const char *line, int family, ProcNetSocket *ret);

/* Lists the listening TCP sockets and the bound UDP sockets without a peer, of both families,
 * from proc_root/net/{tcp,tcp6,udp,udp6}. A missing file (no IPv6) and malformed lines are
 * skipped. Each port gets the lowest pid among proc_root/PID/fd that has its socket open, with
 * that process's comm; processes whose fd directory cannot be read are skipped. The list is
 * sorted by protocol, port, family and address, and holds at most AGENT_PORTS_MAX entries;
 * ret->truncated says whether more were found. */
int agent_ports_collect(const char *proc_root, AgentPortList *ret);
