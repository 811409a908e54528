#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent-ports.h"
#include "macro.h"

static const char *skip_blanks(const char *p)
{
        while (*p == ' ' || *p == '\t')
                p++;
        return p;
}

static int hex_digit(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

/* Reads min to max hex digits (max at most 16) at *p. Unless more may follow, as in the words
 * of an IPv6 address, the digits must not be followed by another hex digit. */
static int read_hex_digits(const char **p, size_t min, size_t max, bool more, uint64_t *ret)
{
        uint64_t v = 0;
        size_t n = 0;

        for (; n < max && hex_digit((*p)[n]) >= 0; n++)
                v = v << 4 | (uint64_t)hex_digit((*p)[n]);
        if (n < min || (!more && hex_digit((*p)[n]) >= 0))
                return -EBADMSG;
        *p += n;
        *ret = v;
        return 0;
}

static int read_hex(const char **p, size_t min, size_t max, uint64_t *ret)
{
        return read_hex_digits(p, min, max, false, ret);
}

/* Reads an unsigned decimal number that fits in max. */
static int read_decimal(const char **p, uint64_t max, uint64_t *ret)
{
        uint64_t v = 0;
        const char *q = *p;

        if (*q < '0' || *q > '9')
                return -EBADMSG;
        for (; *q >= '0' && *q <= '9'; q++) {
                unsigned d = (unsigned)(*q - '0');

                if (v > (max - d) / 10)
                        return -EBADMSG;
                v = v * 10 + d;
        }
        *p = q;
        *ret = v;
        return 0;
}

static int expect_char(const char **p, char c)
{
        if (**p != c)
                return -EBADMSG;
        (*p)++;
        return 0;
}

/* A field ends at a blank or at the end of the line. */
static int expect_field_end(const char **p)
{
        char c = **p;

        if (c != ' ' && c != '\t' && c != '\n' && c != '\0')
                return -EBADMSG;
        *p = skip_blanks(*p);
        return 0;
}

/* Reads "ADDRESS:PORT" as the kernel prints it: one %08X word per 32 bits of the address in
 * the machine's byte order, then %04X of the port in host order. */
static int read_endpoint(const char **p, int family, uint8_t address[static 16], uint16_t *port)
{
        size_t words = family == AF_INET6 ? 4 : 1;
        uint64_t v;
        int r;

        memset(address, 0, 16);
        for (size_t i = 0; i < words; i++) {
                uint32_t word;

                r = read_hex_digits(p, 8, 8, i + 1 < words, &v);
                if (r < 0)
                        return r;
                word = (uint32_t)v;
                memcpy(address + 4 * i, &word, sizeof(word));
        }

        r = expect_char(p, ':');
        if (r < 0)
                return r;
        r = read_hex(p, 4, 4, &v);
        if (r < 0)
                return r;
        *port = (uint16_t)v;
        return expect_field_end(p);
}

/* Reads "HEX:HEX" with the given digit counts, such as "tx_queue:rx_queue". */
static int read_hex_pair(const char **p, size_t min1, size_t max1, size_t min2, size_t max2)
{
        uint64_t v;
        int r;

        r = read_hex(p, min1, max1, &v);
        if (r < 0)
                return r;
        r = expect_char(p, ':');
        if (r < 0)
                return r;
        r = read_hex(p, min2, max2, &v);
        if (r < 0)
                return r;
        return expect_field_end(p);
}

static bool is_header(const char *p)
{
        p = skip_blanks(p);
        return strneq(p, "sl", 2) && (p[2] == ' ' || p[2] == '\t');
}

int proc_net_parse_line(const char *line, int family, ProcNetSocket *ret)
{
        const char *p = skip_blanks(line);
        ProcNetSocket s = { .family = family };
        uint8_t remote[16];
        uint16_t remote_port;
        uint64_t v;
        int r;

        if (family != AF_INET && family != AF_INET6)
                return -EINVAL;
        if (is_header(line))
                return 0;

        /* "sl:" slot number */
        r = read_decimal(&p, UINT32_MAX, &v);
        if (r >= 0)
                r = expect_char(&p, ':');
        if (r >= 0)
                r = expect_field_end(&p);
        if (r >= 0)
                r = read_endpoint(&p, family, s.address, &s.port);
        if (r >= 0)
                r = read_endpoint(&p, family, remote, &remote_port);
        if (r < 0)
                return r;

        r = read_hex(&p, 2, 2, &v);
        if (r >= 0)
                r = expect_field_end(&p);
        if (r < 0)
                return r;
        s.state = (unsigned)v;

        /* tx_queue:rx_queue, tr:tm->when (an unsigned long), retrnsmt */
        r = read_hex_pair(&p, 8, 8, 8, 8);
        if (r >= 0)
                r = read_hex_pair(&p, 2, 2, 8, 16);
        if (r >= 0)
                r = read_hex(&p, 8, 8, &v);
        if (r >= 0)
                r = expect_field_end(&p);
        if (r < 0)
                return r;

        r = read_decimal(&p, UINT32_MAX, &v);
        if (r >= 0)
                r = expect_field_end(&p);
        if (r < 0)
                return r;
        s.uid = (uint32_t)v;

        /* timeout, printed with %d */
        if (*p == '-')
                p++;
        r = read_decimal(&p, INT32_MAX, &v);
        if (r >= 0)
                r = expect_field_end(&p);
        if (r < 0)
                return r;

        /* The inode ends the fields every kernel prints; more may follow. */
        r = read_decimal(&p, UINT64_MAX, &s.inode);
        if (r >= 0)
                r = expect_field_end(&p);
        if (r < 0)
                return r;

        *ret = s;
        return 1;
}

typedef struct PortEntry {
        AgentPort port;
        uint64_t inode;
} PortEntry;

typedef struct PortCollector {
        PortEntry *entries;
        size_t n_entries;
        size_t allocated;
        bool truncated;
} PortCollector;

static int collector_add(PortCollector *c, int protocol, const ProcNetSocket *s)
{
        PortEntry *e;

        if (c->n_entries == AGENT_PORTS_MAX) {
                c->truncated = true;
                return 0;
        }

        if (c->n_entries == c->allocated) {
                size_t n = c->allocated ? c->allocated * 2 : 16;

                e = realloc(c->entries, n * sizeof(PortEntry));
                if (!e)
                        return -ENOMEM;
                c->entries = e;
                c->allocated = n;
        }

        e = &c->entries[c->n_entries++];
        *e = (PortEntry){
                .port = {
                        .protocol = protocol,
                        .family = s->family,
                        .port = s->port,
                        .uid = s->uid,
                },
                .inode = s->inode,
        };
        memcpy(e->port.address, s->address, sizeof(e->port.address));
        return 0;
}

static int collect_file(PortCollector *c, const char *proc_root, const char *name, int protocol,
                        int family)
{
        _cleanup_free_ char *path = NULL, *line = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        size_t allocated = 0;
        unsigned listen_state = protocol == IPPROTO_TCP ? PROC_NET_TCP_LISTEN : PROC_NET_UDP_CLOSE;

        if (asprintf(&path, "%s/net/%s", proc_root, name) < 0)
                return -ENOMEM;

        f = fopen(path, "re");
        if (!f)
                return errno == ENOENT ? 0 : negative_errno();

        while (getline(&line, &allocated, f) >= 0) {
                ProcNetSocket s;
                int r;

                if (proc_net_parse_line(line, family, &s) <= 0 || s.state != listen_state)
                        continue;
                /* A UDP socket with local port 0 was never bound, so it receives nothing. */
                if (s.port == 0)
                        continue;
                r = collector_add(c, protocol, &s);
                if (r < 0)
                        return r;
        }
        return ferror(f) ? -EIO : 0;
}

static int compare_inode(const void *a, const void *b)
{
        const PortEntry *x = a, *y = b;

        return x->inode < y->inode ? -1 : x->inode > y->inode;
}

/* Returns the process id that a /proc directory entry names, or 0. */
static uint32_t parse_pid(const char *name)
{
        const char *p = name;
        uint64_t v;

        if (read_decimal(&p, INT32_MAX, &v) < 0 || *p != '\0' || v == 0)
                return 0;
        return (uint32_t)v;
}

static void read_comm(int proc_fd, uint32_t pid, char comm[static 16])
{
        char path[32], buf[64];
        ssize_t n;
        int fd;

        comm[0] = '\0';
        snprintf(path, sizeof(path), "%u/comm", pid);
        fd = openat(proc_fd, path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return;
        buf[n] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        /* The kernel's comm has at most 15 bytes; a longer line is cut there. */
        buf[15] = '\0';
        memcpy(comm, buf, strlen(buf) + 1);
}

/* Gives every entry whose socket one of pid's descriptors refers to that pid, unless a lower
 * pid has it already. Entries are sorted by inode. */
static void match_process(PortCollector *c, int proc_fd, uint32_t pid)
{
        char path[32];
        DIR *d;
        struct dirent *de;
        int fd;

        snprintf(path, sizeof(path), "%u/fd", pid);
        fd = openat(proc_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return;
        d = fdopendir(fd);
        if (!d) {
                close(fd);
                return;
        }

        while ((de = readdir(d))) {
                char target[64];
                const char *p = target;
                PortEntry key, *e;
                ssize_t n;

                if (de->d_name[0] == '.')
                        continue;
                n = readlinkat(dirfd(d), de->d_name, target, sizeof(target) - 1);
                if (n <= 0)
                        continue;
                target[n] = '\0';
                if (!strneq(p, "socket:[", 8))
                        continue;
                p += 8;
                if (read_decimal(&p, UINT64_MAX, &key.inode) < 0 || !streq(p, "]") ||
                    key.inode == 0)
                        continue;

                e = bsearch(&key, c->entries, c->n_entries, sizeof(PortEntry), compare_inode);
                if (!e || (e->port.pid != 0 && e->port.pid < pid))
                        continue;
                e->port.pid = pid;
                read_comm(proc_fd, pid, e->port.comm);
        }
        closedir(d);
}

static int find_owners(PortCollector *c, const char *proc_root)
{
        DIR *d;
        struct dirent *de;

        if (c->n_entries == 0)
                return 0;
        qsort(c->entries, c->n_entries, sizeof(PortEntry), compare_inode);

        d = opendir(proc_root);
        if (!d)
                return negative_errno();
        while ((de = readdir(d))) {
                uint32_t pid = parse_pid(de->d_name);

                if (pid != 0)
                        match_process(c, dirfd(d), pid);
        }
        closedir(d);
        return 0;
}

static int compare_port(const void *a, const void *b)
{
        const AgentPort *x = a, *y = b;

        if (x->protocol != y->protocol)
                return x->protocol < y->protocol ? -1 : 1;
        if (x->port != y->port)
                return x->port < y->port ? -1 : 1;
        if (x->family != y->family)
                return x->family < y->family ? -1 : 1;
        return memcmp(x->address, y->address, sizeof(x->address));
}

int agent_ports_collect(const char *proc_root, AgentPortList *ret)
{
        static const struct {
                const char *name;
                int protocol;
                int family;
        } files[] = {
                { "tcp", IPPROTO_TCP, AF_INET },
                { "tcp6", IPPROTO_TCP, AF_INET6 },
                { "udp", IPPROTO_UDP, AF_INET },
                { "udp6", IPPROTO_UDP, AF_INET6 },
        };
        PortCollector c = {};
        AgentPortList l = {};
        int r;

        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                r = collect_file(&c, proc_root, files[i].name, files[i].protocol, files[i].family);
                if (r < 0)
                        goto finish;
        }

        r = find_owners(&c, proc_root);
        if (r < 0)
                goto finish;

        if (c.n_entries > 0) {
                l.ports = calloc(c.n_entries, sizeof(AgentPort));
                if (!l.ports) {
                        r = -ENOMEM;
                        goto finish;
                }
        }
        for (size_t i = 0; i < c.n_entries; i++)
                l.ports[i] = c.entries[i].port;
        l.n_ports = c.n_entries;
        l.truncated = c.truncated;
        if (l.n_ports > 0)
                qsort(l.ports, l.n_ports, sizeof(AgentPort), compare_port);

        *ret = l;
        r = 0;
finish:
        free(c.entries);
        return r;
}
