#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ipv4.h"

/* Network devices through rtnetlink and /dev/net/tun. Listing needs no privileges; creating
 * and deleting links needs CAP_NET_ADMIN. Every function acts on the caller's network
 * namespace. */

/* Every IPv4 destination prefix of every route in every routing table (policy routing tables
 * included) and every IPv4 address with its prefix, except those on the link named
 * skip_ifname (NULL to skip none). Host routes and local-table entries are included; default
 * routes (0.0.0.0/0) are not. */
int netdev_list_used_ipv4(const char *skip_ifname, Ipv4Net **ret, size_t *ret_n);

/* The interface index of name, or -ENODEV. */
int netdev_index(const char *name);

/* Creates bridge name when missing, gives it host 1 of net (replacing any other IPv4 address),
 * and sets it up. The bridge's alias is set to alias, which marks it as banger's. */
int netdev_bridge_ensure(const char *name, const Ipv4Net *net, const char *alias);

/* The IPv4 network of the first address on name: -ENODEV when the link is missing, -ENOENT
 * when it has no IPv4 address. */
int netdev_get_ipv4_net(const char *name, Ipv4Net *ret);

/* Creates a persistent tap device name owned by owner and group, with alias, attached to
 * bridge and up. An existing tap of that name with that alias is updated, not an error; an
 * existing link of another kind or alias gives -EEXIST. */
int netdev_tap_ensure(const char *name, uid_t owner, gid_t group, const char *bridge,
                      const char *alias);

/* Deletes the link. A missing link is not an error. */
int netdev_delete(const char *name);

/* Names of the links whose alias is alias, sorted. */
int netdev_list_by_alias(const char *alias, char ***ret);

/* Turns on IPv4 forwarding and route_localnet on bridge, so that port forwards are reached from
 * the outside and from 127.0.0.1. Returns -ENODEV when bridge is missing. */
int netdev_enable_forwarding(const char *bridge);
