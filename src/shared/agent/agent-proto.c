#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "agent-proto.h"
#include "macro.h"
#include "strv.h"

static const char *const message_type_table[_AGENT_MSG_MAX] = {
        [AGENT_MSG_HELLO] = "hello",
        [AGENT_MSG_HELLO_REPLY] = "hello-reply",
        [AGENT_MSG_EXEC] = "exec",
        [AGENT_MSG_STDOUT] = "stdout",
        [AGENT_MSG_STDERR] = "stderr",
        [AGENT_MSG_EXIT] = "exit",
        [AGENT_MSG_STDIN] = "stdin",
        [AGENT_MSG_STDIN_EOF] = "stdin-eof",
        [AGENT_MSG_SHUTDOWN] = "shutdown",
        [AGENT_MSG_SHUTDOWN_ACK] = "shutdown-ack",
        [AGENT_MSG_ERROR] = "error",
        [AGENT_MSG_PORTS] = "ports",
        [AGENT_MSG_PORTS_REPLY] = "ports-reply",
        [AGENT_MSG_WINDOW] = "window",
        [AGENT_MSG_RESIZE] = "resize",
};

const char *agent_message_type_to_string(AgentMessageType t)
{
        if (t <= 0 || t >= _AGENT_MSG_MAX)
                return NULL;
        return message_type_table[t];
}

static uint16_t get_le16(const uint8_t *p)
{
        return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get_le32(const uint8_t *p)
{
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le16(uint8_t *p, uint16_t v)
{
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
        for (unsigned i = 0; i < 4; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

int agent_frame_decode(const uint8_t *buf, size_t size, AgentFrame *ret, size_t *ret_consumed)
{
        uint32_t length;
        uint16_t type, flags;

        /* Check each header field as soon as its bytes arrive, so garbage is rejected
         * without waiting for a full header. */
        for (size_t i = 0; i < 4 && i < size; i++)
                if (buf[i] != (uint8_t)(AGENT_FRAME_MAGIC >> (8 * i)))
                        return -EBADMSG;
        if (size < 8)
                return 0;

        length = get_le32(buf + 4);
        if (length > AGENT_FRAME_MAX)
                return -EBADMSG;
        if (size < 12)
                return 0;

        type = get_le16(buf + 8);
        flags = get_le16(buf + 10);
        if (type == 0 || type >= _AGENT_MSG_MAX || flags != 0)
                return -EBADMSG;
        if (size < AGENT_FRAME_HEADER_SIZE + (size_t)length)
                return 0;

        *ret = (AgentFrame){
                .type = type,
                .flags = flags,
                .request_id = get_le32(buf + 12),
                .payload = buf + AGENT_FRAME_HEADER_SIZE,
                .payload_size = length,
        };
        *ret_consumed = AGENT_FRAME_HEADER_SIZE + (size_t)length;
        return 1;
}

size_t agent_frame_resync(const uint8_t *buf, size_t size)
{
        uint8_t magic[4];

        if (size == 0)
                return 0;

        put_le32(magic, AGENT_FRAME_MAGIC);
        for (size_t i = 1; i < size; i++) {
                size_t n = size - i < 4 ? size - i : 4;

                /* A match of the whole magic, or of a prefix cut off by the end of buf. */
                if (memcmp(buf + i, magic, n) == 0)
                        return i;
        }
        return size;
}

size_t agent_frame_find_hello(const uint8_t *buf, size_t size)
{
        /* HELLO has a fixed payload: u32 version and u64 nonce. */
        const size_t hello_size = AGENT_FRAME_HEADER_SIZE + 12;

        for (size_t i = 1; i + hello_size <= size; i++) {
                if (get_le32(buf + i) != AGENT_FRAME_MAGIC || get_le32(buf + i + 4) != 12 ||
                    get_le16(buf + i + 8) != AGENT_MSG_HELLO || get_le16(buf + i + 10) != 0)
                        continue;
                return i;
        }
        return 0;
}

void agent_buffer_done(AgentBuffer *b)
{
        free(b->data);
        *b = (AgentBuffer){};
}

void agent_buffer_consume(AgentBuffer *b, size_t n)
{
        if (n >= b->size) {
                b->size = 0;
                return;
        }
        memmove(b->data, b->data + n, b->size - n);
        b->size -= n;
}

int agent_buffer_append(AgentBuffer *b, const void *data, size_t size)
{
        if (size == 0)
                return 0;
        if (size > SIZE_MAX / 2 - b->size)
                return -ENOMEM;

        if (b->size + size > b->allocated) {
                size_t n = b->allocated ? b->allocated : 4096;
                uint8_t *d;

                while (n < b->size + size)
                        n *= 2;
                d = realloc(b->data, n);
                if (!d)
                        return -ENOMEM;
                b->data = d;
                b->allocated = n;
        }

        memcpy(b->data + b->size, data, size);
        b->size += size;
        return 0;
}

int agent_frame_append(AgentBuffer *b, AgentMessageType type, uint32_t request_id,
                       const void *payload, size_t size)
{
        uint8_t header[AGENT_FRAME_HEADER_SIZE];
        int r;

        if (size > AGENT_FRAME_MAX)
                return -EMSGSIZE;
        if (type <= 0 || type >= _AGENT_MSG_MAX)
                return -EINVAL;

        put_le32(header, AGENT_FRAME_MAGIC);
        put_le32(header + 4, (uint32_t)size);
        put_le16(header + 8, (uint16_t)type);
        put_le16(header + 10, 0);
        put_le32(header + 12, request_id);

        r = agent_buffer_append(b, header, sizeof(header));
        if (r < 0)
                return r;
        r = agent_buffer_append(b, payload, size);
        if (r < 0) {
                b->size -= sizeof(header);
                return r;
        }
        return 0;
}

/* Payload encoding helpers: build the payload in a scratch buffer, then frame it. */

static int put_u32(AgentBuffer *b, uint32_t v)
{
        uint8_t d[4];

        put_le32(d, v);
        return agent_buffer_append(b, d, sizeof(d));
}

static int put_u64(AgentBuffer *b, uint64_t v)
{
        uint8_t d[8];

        put_le32(d, (uint32_t)v);
        put_le32(d + 4, (uint32_t)(v >> 32));
        return agent_buffer_append(b, d, sizeof(d));
}

static int put_string(AgentBuffer *b, const char *s)
{
        size_t n = strlen(s);
        int r;

        if (n > AGENT_FRAME_MAX)
                return -EMSGSIZE;
        r = put_u32(b, (uint32_t)n);
        if (r < 0)
                return r;
        return agent_buffer_append(b, s, n);
}

static int put_strv(AgentBuffer *b, char *const *l)
{
        size_t n = strv_length(l);
        int r;

        if (n > AGENT_FRAME_MAX)
                return -EMSGSIZE;
        r = put_u32(b, (uint32_t)n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                r = put_string(b, l[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int finish_frame(AgentBuffer *b, AgentMessageType type, uint32_t request_id,
                        AgentBuffer *payload, int r)
{
        if (r >= 0)
                r = agent_frame_append(b, type, request_id, payload->data, payload->size);
        agent_buffer_done(payload);
        return r;
}

int agent_read_u32(AgentReader *r, uint32_t *ret)
{
        if (r->left < 4)
                return -EBADMSG;
        *ret = get_le32(r->p);
        r->p += 4;
        r->left -= 4;
        return 0;
}

int agent_read_i32(AgentReader *r, int32_t *ret)
{
        uint32_t v;
        int k;

        k = agent_read_u32(r, &v);
        if (k < 0)
                return k;
        *ret = (int32_t)v;
        return 0;
}

int agent_read_u64(AgentReader *r, uint64_t *ret)
{
        uint32_t lo, hi;

        if (r->left < 8)
                return -EBADMSG;
        lo = get_le32(r->p);
        hi = get_le32(r->p + 4);
        r->p += 8;
        r->left -= 8;
        *ret = (uint64_t)hi << 32 | lo;
        return 0;
}

int agent_read_string(AgentReader *r, char **ret)
{
        uint32_t n;
        char *s;

        if (r->left < 4)
                return -EBADMSG;
        n = get_le32(r->p);
        if (n > r->left - 4 || memchr(r->p + 4, '\0', n))
                return -EBADMSG;

        s = malloc((size_t)n + 1);
        if (!s)
                return -ENOMEM;
        memcpy(s, r->p + 4, n);
        s[n] = '\0';

        r->p += 4 + (size_t)n;
        r->left -= 4 + (size_t)n;
        *ret = s;
        return 0;
}

int agent_read_end(const AgentReader *r)
{
        return r->left == 0 ? 0 : -EBADMSG;
}

/* Reads a counted string list. Each entry takes at least 4 bytes, which bounds the count by
 * the payload size before anything is allocated. */
static int read_strv(AgentReader *r, uint32_t n, char ***ret)
{
        _cleanup_strv_free_ char **l = NULL;
        int k;

        if (n > r->left / 4)
                return -EBADMSG;

        l = calloc((size_t)n + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (uint32_t i = 0; i < n; i++) {
                k = agent_read_string(r, &l[i]);
                if (k < 0)
                        return k;
        }

        *ret = TAKE_PTR(l);
        return 0;
}

void agent_hello_done(AgentHello *h)
{
        free(h->info);
        *h = (AgentHello){};
}

void agent_exec_done(AgentExec *e)
{
        strv_free(e->argv);
        strv_free(e->env);
        free(e->cwd);
        free(e->user);
        *e = (AgentExec){};
}

void agent_error_done(AgentError *e)
{
        free(e->message);
        *e = (AgentError){};
}

int agent_hello_append(AgentBuffer *b, AgentMessageType type, uint32_t request_id,
                       const AgentHello *h)
{
        AgentBuffer p = {};
        int r;

        if (type != AGENT_MSG_HELLO && type != AGENT_MSG_HELLO_REPLY)
                return -EINVAL;

        r = put_u32(&p, h->version);
        if (r >= 0)
                r = put_u64(&p, h->nonce);
        if (r >= 0 && type == AGENT_MSG_HELLO_REPLY)
                r = put_string(&p, strempty(h->info));
        return finish_frame(b, type, request_id, &p, r);
}

int agent_hello_decode(const AgentFrame *f, AgentHello *ret)
{
        AgentReader rd = agent_reader_init(f);
        AgentHello h = {};
        int r;

        if (f->type != AGENT_MSG_HELLO && f->type != AGENT_MSG_HELLO_REPLY)
                return -EBADMSG;

        r = agent_read_u32(&rd, &h.version);
        if (r >= 0)
                r = agent_read_u64(&rd, &h.nonce);
        if (r >= 0 && f->type == AGENT_MSG_HELLO_REPLY)
                r = agent_read_string(&rd, &h.info);
        if (r >= 0)
                r = agent_read_end(&rd);
        if (r < 0) {
                agent_hello_done(&h);
                return r;
        }

        *ret = h;
        return 0;
}

int agent_exec_append(AgentBuffer *b, uint32_t request_id, const AgentExec *e)
{
        AgentBuffer p = {};
        int r;

        if (strv_length(e->argv) == 0 || e->rows > UINT16_MAX || e->cols > UINT16_MAX)
                return -EINVAL;

        r = put_u32(&p, e->flags);
        if (r >= 0)
                r = put_strv(&p, e->argv);
        /* The env list, cwd and user are each preceded by a u32 that is 1 when they are present. */
        if (r >= 0)
                r = put_u32(&p, e->env ? 1 : 0);
        if (r >= 0 && e->env)
                r = put_strv(&p, e->env);
        if (r >= 0)
                r = put_u32(&p, e->cwd ? 1 : 0);
        if (r >= 0 && e->cwd)
                r = put_string(&p, e->cwd);
        if (r >= 0)
                r = put_u32(&p, e->rows);
        if (r >= 0)
                r = put_u32(&p, e->cols);
        /* The user came after the first version 2 agents, which reject any byte after cols, so
         * it is sent only when set. */
        if (r >= 0 && e->user)
                r = put_u32(&p, 1);
        if (r >= 0 && e->user)
                r = put_string(&p, e->user);
        return finish_frame(b, AGENT_MSG_EXEC, request_id, &p, r);
}

static int read_present(AgentReader *rd, bool *ret)
{
        uint32_t v;
        int r;

        r = agent_read_u32(rd, &v);
        if (r < 0)
                return r;
        if (v > 1)
                return -EBADMSG;
        *ret = v;
        return 0;
}

/* Reads a u32 that must fit 16 bits, such as a terminal size. */
static int read_u16(AgentReader *rd, uint32_t *ret)
{
        uint32_t v;
        int r;

        r = agent_read_u32(rd, &v);
        if (r < 0)
                return r;
        if (v > UINT16_MAX)
                return -EBADMSG;
        *ret = v;
        return 0;
}

int agent_exec_decode(const AgentFrame *f, AgentExec *ret)
{
        AgentReader rd = agent_reader_init(f);
        AgentExec e = {};
        uint32_t n;
        bool present;
        int r;

        if (f->type != AGENT_MSG_EXEC)
                return -EBADMSG;

        r = agent_read_u32(&rd, &e.flags);
        if (r < 0)
                goto fail;
        r = agent_read_u32(&rd, &n);
        if (r < 0)
                goto fail;
        if (n == 0) {
                r = -EBADMSG;
                goto fail;
        }
        r = read_strv(&rd, n, &e.argv);
        if (r < 0)
                goto fail;

        r = read_present(&rd, &present);
        if (r < 0)
                goto fail;
        if (present) {
                r = agent_read_u32(&rd, &n);
                if (r < 0)
                        goto fail;
                r = read_strv(&rd, n, &e.env);
                if (r < 0)
                        goto fail;
        }

        r = read_present(&rd, &present);
        if (r < 0)
                goto fail;
        if (present) {
                r = agent_read_string(&rd, &e.cwd);
                if (r < 0)
                        goto fail;
        }

        r = read_u16(&rd, &e.rows);
        if (r < 0)
                goto fail;
        r = read_u16(&rd, &e.cols);
        if (r < 0)
                goto fail;

        present = false;
        if (rd.left > 0) {
                r = read_present(&rd, &present);
                if (r < 0)
                        goto fail;
        }
        if (present) {
                r = agent_read_string(&rd, &e.user);
                if (r < 0)
                        goto fail;
        }

        r = agent_read_end(&rd);
        if (r < 0)
                goto fail;

        *ret = e;
        return 0;

fail:
        agent_exec_done(&e);
        return r;
}

int agent_exit_append(AgentBuffer *b, uint32_t request_id, const AgentExit *e)
{
        AgentBuffer p = {};
        int r;

        r = put_u32(&p, (uint32_t)e->exit_status);
        if (r >= 0)
                r = put_u32(&p, (uint32_t)e->signal);
        return finish_frame(b, AGENT_MSG_EXIT, request_id, &p, r);
}

int agent_exit_decode(const AgentFrame *f, AgentExit *ret)
{
        AgentReader rd = agent_reader_init(f);
        AgentExit e;
        int r;

        if (f->type != AGENT_MSG_EXIT)
                return -EBADMSG;

        r = agent_read_i32(&rd, &e.exit_status);
        if (r >= 0)
                r = agent_read_i32(&rd, &e.signal);
        if (r >= 0)
                r = agent_read_end(&rd);
        if (r < 0)
                return r;

        *ret = e;
        return 0;
}

int agent_error_append(AgentBuffer *b, uint32_t request_id, int code, const char *message)
{
        AgentBuffer p = {};
        int r;

        r = put_u32(&p, (uint32_t)(code < 0 ? -code : code));
        if (r >= 0)
                r = put_string(&p, strempty(message));
        return finish_frame(b, AGENT_MSG_ERROR, request_id, &p, r);
}

int agent_error_decode(const AgentFrame *f, AgentError *ret)
{
        AgentReader rd = agent_reader_init(f);
        AgentError e = {};
        int r;

        if (f->type != AGENT_MSG_ERROR)
                return -EBADMSG;

        r = agent_read_i32(&rd, &e.code);
        if (r >= 0 && e.code <= 0)
                r = -EBADMSG;
        if (r >= 0)
                r = agent_read_string(&rd, &e.message);
        if (r >= 0)
                r = agent_read_end(&rd);
        if (r < 0) {
                agent_error_done(&e);
                return r;
        }

        *ret = e;
        return 0;
}

int agent_window_append(AgentBuffer *b, uint32_t request_id, uint32_t credit)
{
        AgentBuffer p = {};
        int r;

        if (credit == 0)
                return -EINVAL;

        r = put_u32(&p, credit);
        return finish_frame(b, AGENT_MSG_WINDOW, request_id, &p, r);
}

int agent_window_decode(const AgentFrame *f, uint32_t *ret_credit)
{
        AgentReader rd = agent_reader_init(f);
        uint32_t credit;
        int r;

        if (f->type != AGENT_MSG_WINDOW)
                return -EBADMSG;

        r = agent_read_u32(&rd, &credit);
        if (r >= 0)
                r = agent_read_end(&rd);
        if (r < 0)
                return r;
        if (credit == 0)
                return -EBADMSG;

        *ret_credit = credit;
        return 0;
}

static bool terminal_size_valid(uint32_t rows, uint32_t cols)
{
        return rows >= 1 && rows <= UINT16_MAX && cols >= 1 && cols <= UINT16_MAX;
}

int agent_resize_append(AgentBuffer *b, uint32_t request_id, uint32_t rows, uint32_t cols)
{
        AgentBuffer p = {};
        int r;

        if (!terminal_size_valid(rows, cols))
                return -EINVAL;

        r = put_u32(&p, rows);
        if (r >= 0)
                r = put_u32(&p, cols);
        return finish_frame(b, AGENT_MSG_RESIZE, request_id, &p, r);
}

int agent_resize_decode(const AgentFrame *f, uint32_t *ret_rows, uint32_t *ret_cols)
{
        AgentReader rd = agent_reader_init(f);
        uint32_t rows, cols;
        int r;

        if (f->type != AGENT_MSG_RESIZE)
                return -EBADMSG;

        r = agent_read_u32(&rd, &rows);
        if (r >= 0)
                r = agent_read_u32(&rd, &cols);
        if (r >= 0)
                r = agent_read_end(&rd);
        if (r < 0)
                return r;
        if (!terminal_size_valid(rows, cols))
                return -EBADMSG;

        *ret_rows = rows;
        *ret_cols = cols;
        return 0;
}

void agent_port_list_done(AgentPortList *l)
{
        free(l->ports);
        *l = (AgentPortList){};
}

#define PORTS_FLAG_TRUNCATED (1u << 0)
/* Bytes of a PORTS_REPLY entry with an empty comm. */
#define PORT_ENTRY_MIN_SIZE (6u * 4u + 16u)

static int put_port(AgentBuffer *p, const AgentPort *port)
{
        uint32_t version = port->family == AF_INET6 ? 6 : 4;
        size_t address_size = port->family == AF_INET6 ? 16 : 4;
        uint8_t address[16] = {};
        int r;

        if ((port->protocol != IPPROTO_TCP && port->protocol != IPPROTO_UDP) ||
            (port->family != AF_INET && port->family != AF_INET6) ||
            strnlen(port->comm, sizeof(port->comm)) == sizeof(port->comm))
                return -EINVAL;
        memcpy(address, port->address, address_size);

        r = put_u32(p, (uint32_t)port->protocol);
        if (r >= 0)
                r = put_u32(p, version);
        if (r >= 0)
                r = agent_buffer_append(p, address, sizeof(address));
        if (r >= 0)
                r = put_u32(p, port->port);
        if (r >= 0)
                r = put_u32(p, port->uid);
        if (r >= 0)
                r = put_u32(p, port->pid);
        if (r >= 0)
                r = put_string(p, port->comm);
        return r;
}

int agent_ports_reply_append(AgentBuffer *b, uint32_t request_id, const AgentPortList *l)
{
        AgentBuffer p = {};
        int r;

        if (l->n_ports > AGENT_PORTS_MAX)
                return -EMSGSIZE;

        r = put_u32(&p, l->truncated ? PORTS_FLAG_TRUNCATED : 0);
        if (r >= 0)
                r = put_u32(&p, (uint32_t)l->n_ports);
        for (size_t i = 0; r >= 0 && i < l->n_ports; i++)
                r = put_port(&p, &l->ports[i]);
        return finish_frame(b, AGENT_MSG_PORTS_REPLY, request_id, &p, r);
}

static int read_port(AgentReader *rd, AgentPort *ret)
{
        _cleanup_free_ char *comm = NULL;
        uint32_t protocol, version, port, uid, pid;
        uint8_t address[16];
        int r;

        r = agent_read_u32(rd, &protocol);
        if (r < 0)
                return r;
        r = agent_read_u32(rd, &version);
        if (r < 0)
                return r;
        if (rd->left < sizeof(address))
                return -EBADMSG;
        memcpy(address, rd->p, sizeof(address));
        rd->p += sizeof(address);
        rd->left -= sizeof(address);
        r = agent_read_u32(rd, &port);
        if (r < 0)
                return r;
        r = agent_read_u32(rd, &uid);
        if (r < 0)
                return r;
        r = agent_read_u32(rd, &pid);
        if (r < 0)
                return r;
        r = agent_read_string(rd, &comm);
        if (r < 0)
                return r;

        if ((protocol != IPPROTO_TCP && protocol != IPPROTO_UDP) ||
            (version != 4 && version != 6) || port > UINT16_MAX ||
            strlen(comm) >= sizeof(ret->comm))
                return -EBADMSG;
        /* An IPv4 address leaves the rest of the field zero, so each address has one encoding. */
        if (version == 4)
                for (size_t i = 4; i < sizeof(address); i++)
                        if (address[i] != 0)
                                return -EBADMSG;

        *ret = (AgentPort){
                .protocol = (int)protocol,
                .family = version == 6 ? AF_INET6 : AF_INET,
                .port = (uint16_t)port,
                .uid = uid,
                .pid = pid,
        };
        memcpy(ret->address, address, sizeof(address));
        strcpy(ret->comm, comm);
        return 0;
}

int agent_ports_reply_decode(const AgentFrame *f, AgentPortList *ret)
{
        AgentReader rd = agent_reader_init(f);
        AgentPortList l = {};
        uint32_t flags, n;
        int r;

        if (f->type != AGENT_MSG_PORTS_REPLY)
                return -EBADMSG;

        r = agent_read_u32(&rd, &flags);
        if (r < 0)
                return r;
        r = agent_read_u32(&rd, &n);
        if (r < 0)
                return r;
        /* The count is checked against the payload size before anything is allocated. */
        if ((flags & ~PORTS_FLAG_TRUNCATED) != 0 || n > AGENT_PORTS_MAX ||
            n > rd.left / PORT_ENTRY_MIN_SIZE)
                return -EBADMSG;

        if (n > 0) {
                l.ports = calloc(n, sizeof(AgentPort));
                if (!l.ports)
                        return -ENOMEM;
        }
        for (uint32_t i = 0; i < n; i++) {
                r = read_port(&rd, &l.ports[i]);
                if (r < 0)
                        goto fail;
                l.n_ports++;
        }
        r = agent_read_end(&rd);
        if (r < 0)
                goto fail;

        l.truncated = flags & PORTS_FLAG_TRUNCATED;
        *ret = l;
        return 0;

fail:
        agent_port_list_done(&l);
        return r;
}

int agent_credit_grant(uint64_t *credit, uint32_t n)
{
        if (n > AGENT_WINDOW_MAX || *credit > AGENT_WINDOW_MAX - n)
                return -EPROTO;
        *credit += n;
        return 0;
}

int agent_credit_take(uint64_t *credit, size_t size)
{
        if (size > *credit)
                return -EPROTO;
        *credit -= size;
        return 0;
}
