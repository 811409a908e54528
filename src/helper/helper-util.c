#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "daemon-config.h"
#include "fileio.h"
#include "helper-bus.h"
#include "helper-util.h"
#include "log.h"
#include "macro.h"
#include "store.h"
#include "strv.h"

#define PROC_STATUS_SIZE_MAX (64 * 1024)
#define SUBNET_FILE_SIZE_MAX 4096
#define RECORD_SIZE_MAX      (1024 * 1024)

/* Parses a decimal uid that ends at a tab, a space, a newline or the end of the text. */
static int parse_uid(const char **p, uid_t *ret)
{
        unsigned long v;
        char *end;

        *p += strspn(*p, " \t");
        if (**p < '0' || **p > '9')
                return -EBADMSG;

        errno = 0;
        v = strtoul(*p, &end, 10);
        if (errno != 0 || v >= (unsigned long)(uid_t)-1)
                return -EBADMSG;
        if (*end != '\0' && !strchr(" \t\n", *end))
                return -EBADMSG;

        *p = end;
        *ret = (uid_t)v;
        return 0;
}

int proc_status_parse_uids(const char *text, uid_t *ret_real, uid_t *ret_effective)
{
        uid_t real, effective;
        const char *p;
        int r;

        if (strneq(text, "Uid:", 4))
                p = text + 4;
        else {
                p = strstr(text, "\nUid:");
                if (!p)
                        return -EBADMSG;
                p += 5;
        }

        r = parse_uid(&p, &real);
        if (r < 0)
                return r;
        r = parse_uid(&p, &effective);
        if (r < 0)
                return r;

        *ret_real = real;
        *ret_effective = effective;
        return 0;
}

int proc_read_uids(pid_t pid, uid_t *ret_real, uid_t *ret_effective)
{
        _cleanup_free_ char *text = NULL;
        char path[64];
        int r;

        if (pid <= 0)
                return -ESRCH;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        r = read_full_file(path, PROC_STATUS_SIZE_MAX, &text, NULL);
        if (r == -ENOENT)
                return -ESRCH;
        if (r < 0)
                return r;

        return proc_status_parse_uids(text, ret_real, ret_effective);
}

int subnet_file_parse(const char *text, Ipv4Net *ret)
{
        Ipv4Net net;
        bool found = false;
        const char *p = text;

        while (*p) {
                size_t n = strcspn(p, "\n");
                _cleanup_free_ char *line = strndup(p, n);

                if (!line)
                        return -ENOMEM;
                p += n;
                if (*p == '\n')
                        p++;

                if (line[0] == '\0' || line[0] == '#')
                        continue;
                if (found || !strneq(line, "Subnet=", 7))
                        return -EBADMSG;
                if (daemon_config_subnet_parse(line + 7, &net) < 0)
                        return -EBADMSG;
                found = true;
        }

        if (!found)
                return -EBADMSG;
        *ret = net;
        return 0;
}

int subnet_file_read(const char *path, Ipv4Net *ret)
{
        _cleanup_free_ char *text = NULL;
        int r;

        r = read_full_file(path, SUBNET_FILE_SIZE_MAX, &text, NULL);
        if (r < 0)
                return r;

        return subnet_file_parse(text, ret);
}

int subnet_file_write(const char *path, const Ipv4Net *net)
{
        _cleanup_free_ char *text = NULL;
        char s[IPV4_FORMAT_MAX];

        ipv4_format(net->addr, net->prefix, true, s);
        if (asprintf(&text,
                     "# The subnet banger-helper chose for bridge %s because [Network] Subnet\n"
                     "# is unset in bangerd.conf. Setting that key takes precedence over this "
                     "file.\n"
                     "Subnet=%s\n",
                     HELPER_BRIDGE, s) < 0)
                return -ENOMEM;

        return write_file_atomic(path, text, strlen(text), 0644);
}

void tap_name_for_slot(unsigned slot, char ret[IF_NAMESIZE])
{
        snprintf(ret, IF_NAMESIZE, "%s%u", HELPER_TAP_PREFIX, slot);
}

int tap_name_to_slot(const char *name, unsigned *ret)
{
        const char *digits;
        unsigned long v;
        char *end;

        if (!strneq(name, HELPER_TAP_PREFIX, strlen(HELPER_TAP_PREFIX)))
                return -EINVAL;
        digits = name + strlen(HELPER_TAP_PREFIX);
        if (digits[0] < '1' || digits[0] > '9' || strlen(digits) > 5)
                return -EINVAL;

        v = strtoul(digits, &end, 10);
        if (*end != '\0' || v > HELPER_MAX_SLOT)
                return -EINVAL;

        *ret = (unsigned)v;
        return 0;
}

unsigned helper_max_slot(const Ipv4Net *net)
{
        unsigned max = ipv4_net_max_slot(net);

        return max < HELPER_MAX_SLOT ? max : HELPER_MAX_SLOT;
}

int port_probe(const char *proto, uint16_t port)
{
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_in sa = {
                .sin_family = AF_INET,
                .sin_port = htons(port),
                .sin_addr.s_addr = htonl(INADDR_ANY),
        };
        bool tcp;

        if (!streq(proto, "tcp") && !streq(proto, "udp"))
                return -EINVAL;
        tcp = streq(proto, "tcp");

        fd = socket(AF_INET, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();

        /* With SO_REUSEADDR a TCP bind still fails on a listening socket, but not on one left in
         * TIME_WAIT by a closed connection. */
        if (tcp && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 }, sizeof(int)) < 0)
                return negative_errno();

        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return negative_errno();
        return 0;
}

int dns_socket_dropin_format(uint32_t addr, char **ret)
{
        char s[IPV4_FORMAT_MAX];

        ipv4_format(addr, 0, false, s);
        if (asprintf(ret,
                     "# Written by banger-helper: bangerd answers DNS on the address of bridge "
                     "%s.\n"
                     "[Socket]\n"
                     "ListenDatagram=%s:53\n"
                     "ListenStream=%s:53\n"
                     "FreeBind=yes\n",
                     HELPER_BRIDGE, s, s) < 0)
                return -ENOMEM;
        return 0;
}

static bool vm_state_is_live(VmState s)
{
        return s == VM_STARTING || s == VM_RUNNING || s == VM_STOPPING;
}

/* Reads the record of VM name. Returns 1 and its slot when the VM is live and has one, 0 when
 * not. */
static int read_live_slot(const char *state_dir, const char *name, unsigned *ret)
{
        _cleanup_(vm_record_freep) VmRecord *record = NULL;
        _cleanup_free_ char *dir = NULL, *path = NULL, *json = NULL;
        int r;

        r = store_object_dir(state_dir, STORE_VMS, name, &dir);
        if (r < 0)
                return r;
        if (asprintf(&path, "%s/%s", dir, STORE_RECORD) < 0)
                return -ENOMEM;

        r = read_full_file(path, RECORD_SIZE_MAX, &json, NULL);
        if (r < 0)
                return r;
        r = vm_record_from_json(json, &record);
        if (r < 0)
                return r;

        if (!vm_state_is_live(record->state) || record->slot == 0)
                return 0;
        *ret = record->slot;
        return 1;
}

int store_live_slots(const char *state_dir, unsigned **ret, size_t *ret_n)
{
        _cleanup_strv_free_ char **names = NULL;
        _cleanup_free_ unsigned *slots = NULL;
        size_t n = 0;
        int r;

        r = store_list(state_dir, STORE_VMS, &names);
        if (r < 0)
                return r;

        slots = calloc(strv_length(names) + 1, sizeof(unsigned));
        if (!slots)
                return -ENOMEM;

        for (char **name = names; *name; name++) {
                r = read_live_slot(state_dir, *name, &slots[n]);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        log_warning_errno(r, "Failed to read the record of VM '%s', ignoring: %m",
                                          *name);
                if (r > 0)
                        n++;
        }

        *ret = TAKE_PTR(slots);
        *ret_n = n;
        return 0;
}
