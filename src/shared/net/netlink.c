#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "macro.h"
#include "netlink.h"

static struct nlmsghdr *header(NlMessage *m)
{
        return (struct nlmsghdr *)m->buf;
}

int nl_open(void)
{
        struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
        _cleanup_close_ int fd = -EBADF;
        int one = 1;

        fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (fd < 0)
                return negative_errno();

        /* Extended acknowledgements only add text to error replies, so a kernel without them is
         * fine. */
        (void)setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));

        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return negative_errno();

        return TAKE_FD(fd);
}

void *nl_message_init(NlMessage *m, uint16_t type, uint16_t flags, size_t header_size)
{
        struct nlmsghdr *h = header(m);

        assert(NLMSG_SPACE(header_size) <= sizeof(m->buf));

        memset(m->buf, 0, sizeof(m->buf));
        h->nlmsg_len = NLMSG_LENGTH(header_size);
        h->nlmsg_type = type;
        h->nlmsg_flags = NLM_F_REQUEST | flags;
        return NLMSG_DATA(h);
}

struct rtattr *nl_attr_add(NlMessage *m, uint16_t type, const void *data, size_t size)
{
        struct nlmsghdr *h = header(m);
        size_t offset = NLMSG_ALIGN(h->nlmsg_len);
        struct rtattr *a;

        assert(offset + RTA_SPACE(size) <= sizeof(m->buf));

        a = (struct rtattr *)(m->buf + offset);
        a->rta_type = type;
        a->rta_len = RTA_LENGTH(size);
        if (size > 0)
                memcpy(RTA_DATA(a), data, size);

        h->nlmsg_len = offset + RTA_SPACE(size);
        return a;
}

void nl_attr_add_u32(NlMessage *m, uint16_t type, uint32_t value)
{
        nl_attr_add(m, type, &value, sizeof(value));
}

void nl_attr_add_string(NlMessage *m, uint16_t type, const char *s)
{
        nl_attr_add(m, type, s, strlen(s) + 1);
}

struct rtattr *nl_nest_begin(NlMessage *m, uint16_t type)
{
        return nl_attr_add(m, type | NLA_F_NESTED, NULL, 0);
}

void nl_nest_end(NlMessage *m, struct rtattr *nest)
{
        nest->rta_len = (unsigned short)(m->buf + header(m)->nlmsg_len - (char *)nest);
}

/* Receives one datagram into *buf, growing it to the datagram's size first. */
static ssize_t receive(int fd, char **buf, size_t *size)
{
        ssize_t n;

        n = recv(fd, NULL, 0, MSG_PEEK | MSG_TRUNC);
        if (n < 0)
                return negative_errno();

        if ((size_t)n > *size) {
                char *p = realloc(*buf, (size_t)n);

                if (!p)
                        return -ENOMEM;
                *buf = p;
                *size = (size_t)n;
        }

        n = recv(fd, *buf, *size, 0);
        if (n < 0)
                return negative_errno();
        return n;
}

/* Handles one reply message. Returns 1 when the exchange is complete, 0 to read on. */
static int handle_reply(const struct nlmsghdr *h, NlReplyFn reply, void *userdata)
{
        if (h->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(h);

                if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
                        return -EBADMSG;
                return e->error < 0 ? e->error : 1;
        }

        if (h->nlmsg_type == NLMSG_DONE) {
                /* A dump that failed part-way reports the errno in the done marker. */
                if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) {
                        int error = *(const int *)NLMSG_DATA(h);

                        if (error < 0)
                                return error;
                }
                return 1;
        }

        return reply ? reply(h, userdata) : 0;
}

int nl_call(int fd, NlMessage *m, NlReplyFn reply, void *userdata)
{
        static uint32_t sequence;
        struct nlmsghdr *h = header(m);
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        int r;

        /* The flag bits of NLM_F_DUMP mean NLM_F_EXCL and NLM_F_REPLACE in a new-object request,
         * so NLM_F_ACK goes on every request. A dump still ends with NLMSG_DONE. */
        h->nlmsg_flags |= NLM_F_ACK;
        h->nlmsg_seq = ++sequence;

        if (send(fd, h, h->nlmsg_len, 0) < 0)
                return negative_errno();

        for (;;) {
                ssize_t n = receive(fd, &buf, &size);

                if (n < 0)
                        return (int)n;

                /* Bounds are checked here rather than with NLMSG_OK(), whose int arithmetic mixes
                 * signs. */
                for (size_t offset = 0; offset + sizeof(struct nlmsghdr) <= (size_t)n;) {
                        const struct nlmsghdr *p = (const struct nlmsghdr *)(buf + offset);

                        if (p->nlmsg_len < sizeof(*p) || p->nlmsg_len > (size_t)n - offset)
                                return -EBADMSG;
                        offset += NLMSG_ALIGN(p->nlmsg_len);

                        if (p->nlmsg_seq != h->nlmsg_seq)
                                continue;

                        r = handle_reply(p, reply, userdata);
                        if (r < 0)
                                return r;
                        if (r > 0)
                                return 0;
                }
        }
}

void nl_attr_parse(const struct rtattr *table[], unsigned max, const struct rtattr *rta, size_t len)
{
        const char *start = (const char *)rta;

        memset(table, 0, sizeof(table[0]) * (max + 1));

        for (size_t offset = 0; offset + sizeof(struct rtattr) <= len;) {
                const struct rtattr *a = (const struct rtattr *)(start + offset);
                unsigned type = a->rta_type & NLA_TYPE_MASK;

                if (a->rta_len < sizeof(*a) || a->rta_len > len - offset)
                        return;
                offset += RTA_ALIGN(a->rta_len);

                if (type <= max)
                        table[type] = a;
        }
}

bool nl_attr_get_u32(const struct rtattr *a, uint32_t *ret)
{
        if (!a || RTA_PAYLOAD(a) < sizeof(uint32_t))
                return false;

        memcpy(ret, RTA_DATA(a), sizeof(uint32_t));
        return true;
}

bool nl_attr_get_u8(const struct rtattr *a, uint8_t *ret)
{
        if (!a || RTA_PAYLOAD(a) < 1)
                return false;

        *ret = *(const uint8_t *)RTA_DATA(a);
        return true;
}

const char *nl_attr_get_string(const struct rtattr *a)
{
        if (!a || RTA_PAYLOAD(a) == 0)
                return NULL;
        if (!memchr(RTA_DATA(a), '\0', RTA_PAYLOAD(a)))
                return NULL;

        return RTA_DATA(a);
}
