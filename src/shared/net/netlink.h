#pragma once

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A minimal rtnetlink client: one request at a time on a NETLINK_ROUTE socket, replies handed to
 * a callback. Used by netdev.c only. */

#define NL_MESSAGE_MAX 1024

/* One request under construction. Attributes are appended after the family header. */
typedef struct NlMessage {
        _Alignas(struct nlmsghdr) char buf[NL_MESSAGE_MAX];
} NlMessage;

/* Called for every reply message that is not an error or done marker. A negative return stops
 * the exchange and is returned by nl_call(). */
typedef int (*NlReplyFn)(const struct nlmsghdr *h, void *userdata);

/* Opens a NETLINK_ROUTE socket. Returns the fd or a negative errno. */
int nl_open(void);

/* Starts a request of type with flags (NLM_F_REQUEST is added) and a zeroed family header of
 * header_size bytes, which is returned. */
void *nl_message_init(NlMessage *m, uint16_t type, uint16_t flags, size_t header_size);

/* Appends an attribute. The message must have room: callers bound names before building. */
struct rtattr *nl_attr_add(NlMessage *m, uint16_t type, const void *data, size_t size);
void nl_attr_add_u32(NlMessage *m, uint16_t type, uint32_t value);
void nl_attr_add_string(NlMessage *m, uint16_t type, const char *s);

/* Opens a nested attribute, closed by nl_nest_end() once its members are added. */
struct rtattr *nl_nest_begin(NlMessage *m, uint16_t type);
void nl_nest_end(NlMessage *m, struct rtattr *nest);

/* Sends m with NLM_F_ACK and reads replies until the kernel's acknowledgement or the end of a
 * dump. Returns the kernel's negative errno on failure. */
int nl_call(int fd, NlMessage *m, NlReplyFn reply, void *userdata);

/* Fills table[0..max] with the attributes in the len bytes at rta; later duplicates win. */
void nl_attr_parse(const struct rtattr *table[], unsigned max, const struct rtattr *rta,
                   size_t len);

/* Reads a u32 or u8 attribute; false when a is NULL or too short. */
bool nl_attr_get_u32(const struct rtattr *a, uint32_t *ret);
bool nl_attr_get_u8(const struct rtattr *a, uint8_t *ret);

/* Returns a's payload as a string, or NULL when a is NULL or its payload has no NUL. */
const char *nl_attr_get_string(const struct rtattr *a);
