#pragma once

#include <stddef.h>
#include <stdint.h>

#include "ipv4.h"

/* banger's nftables rules, through libnftables. Table "inet banger" contains masquerade for the
 * subnet, forward accepts for the bridge (traffic routed into the bridge is dropped unless it
 * is a reply or a port forward), DNS and ICMP input accepts on the bridge, and the port
 * forwards (DNAT in prerouting and output). When an iptables-nft "ip filter" table has FORWARD
 * or INPUT base chains (their policy may be DROP, as Docker leaves it), accept rules for the
 * bridge are inserted there too. Every rule banger adds carries a comment starting with
 * "banger", which is how removal and reconciliation find them. */

typedef struct NftForward {
        char proto[4]; /* "tcp" or "udp" */
        uint16_t host_port;
        uint32_t guest_addr; /* host byte order */
        uint16_t guest_port;
        unsigned slot; /* the VM's slot, recorded in the rule's comment */
} NftForward;

/* Creates or refreshes the table and the accept rules in foreign tables. Idempotent. */
int nft_ensure_base(const char *bridge, const Ipv4Net *net);

/* Adds one forward. -EADDRINUSE when a forward for proto and host_port exists, -ENOENT when
 * nft_ensure_base() has not created the table. */
int nft_add_forward(const NftForward *f);

/* Removes the forward for proto and host_port; -ENOENT when there is none. */
int nft_remove_forward(const char *proto, uint16_t host_port);

/* Lists the forwards, in rule order. The list is empty when the table does not exist. */
int nft_list_forwards(NftForward **ret, size_t *ret_n);

/* Removes the forwards whose slot is not among the n live_slots. Returns how many went. */
int nft_remove_forwards_except(const unsigned *live_slots, size_t n);

/* Removes the table and every banger rule in foreign tables. */
int nft_remove_all(void);
