#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "guest-util.h"
#include "macro.h"
#include "strv.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static const char *log_program = "banger";

void guest_log_open(const char *program)
{
        log_program = program;
}

static void log_va(int error, const char *format, va_list ap)
{
        char msg[1024];

        vsnprintf(msg, sizeof(msg), format, ap);
        if (error != 0)
                fprintf(stderr, "%s: %s: %s\n", log_program, msg,
                        strerror(error < 0 ? -error : error));
        else
                fprintf(stderr, "%s: %s\n", log_program, msg);
        fflush(stderr);
}

void guest_log(const char *format, ...)
{
        va_list ap;

        va_start(ap, format);
        log_va(0, format, ap);
        va_end(ap);
}

int guest_log_errno(int error, const char *format, ...)
{
        va_list ap;

        va_start(ap, format);
        log_va(error, format, ap);
        va_end(ap);
        return error < 0 ? error : -EIO;
}

uint64_t guest_now_usec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void guest_sleep_usec(uint64_t usec)
{
        struct timespec ts = { .tv_sec = (time_t)(usec / 1000000u),
                               .tv_nsec = (long)(usec % 1000000u) * 1000 };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static int read_file(const char *path, size_t max, char **ret, size_t *ret_size)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();

        buf = malloc(max + 1);
        if (!buf)
                return -ENOMEM;

        for (;;) {
                ssize_t n = read(fd, buf + size, max + 1 - size);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        break;
                size += (size_t)n;
                if (size > max)
                        return -EFBIG;
        }

        buf[size] = '\0';
        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}

int guest_config_load(const char *path, GuestConfig **ret)
{
        _cleanup_free_ char *text = NULL;
        size_t size;
        unsigned line = 0;
        int r;

        r = read_file(path, GUEST_CONFIG_MAX_SIZE, &text, &size);
        if (r == -ENOENT) {
                GuestConfig *c = calloc(1, sizeof(*c));
                if (!c)
                        return -ENOMEM;
                *ret = c;
                return 0;
        }
        if (r < 0)
                return guest_log_errno(r, "Failed to read '%s'", path);

        r = guest_config_parse(text, size, ret, &line);
        if (r < 0)
                return guest_log_errno(r, "Failed to parse '%s' at line %u", path, line);
        return 0;
}

char **guest_env_with_defaults(char *const *env)
{
        char **l;

        l = strv_copy(env);
        if (!l)
                return NULL;

        for (char **e = l; *e; e++)
                if (strneq(*e, "PATH=", 5))
                        return l;

        if (strv_extend(&l, "PATH=" DEFAULT_PATH) < 0)
                return strv_free(l);
        return l;
}

static bool parse_id(const char *s, unsigned *ret)
{
        char *end;
        unsigned long v;

        if (isempty(s) || s[0] < '0' || s[0] > '9')
                return false;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno != 0 || *end != '\0' || v >= (unsigned long)UINT32_MAX)
                return false;
        *ret = (unsigned)v;
        return true;
}

/* Finds name in a passwd- or group-style file under root. On a match, field 2 (the id) and,
 * when ret_gid is set, field 3 (the passwd entry's group id) are returned. */
static int lookup_db(const char *root, const char *file, const char *name, unsigned *ret_id,
                     unsigned *ret_gid)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        char line[4096];

        if (asprintf(&path, "%s%s", root, file) < 0)
                return -ENOMEM;

        f = fopen(path, "re");
        if (!f)
                return negative_errno();

        while (fgets(line, sizeof(line), f)) {
                char *fields[4] = {};
                char *p = line;
                unsigned id, gid;

                line[strcspn(line, "\n")] = '\0';
                for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                        fields[i] = strsep(&p, ":");

                if (!fields[0] || !streq(fields[0], name) || !fields[2])
                        continue;
                if (!parse_id(fields[2], &id))
                        return -EINVAL;
                if (ret_gid) {
                        if (!fields[3] || !parse_id(fields[3], &gid))
                                return -EINVAL;
                        *ret_gid = gid;
                }
                *ret_id = id;
                return 0;
        }
        return -ESRCH;
}

int guest_resolve_user(const char *root, const char *spec, uid_t *ret_uid, gid_t *ret_gid)
{
        _cleanup_free_ char *user = NULL;
        char *group;
        unsigned uid, gid = 0;
        bool have_gid = false;
        int r;

        if (isempty(spec)) {
                *ret_uid = 0;
                *ret_gid = 0;
                return 0;
        }

        user = strdup(spec);
        if (!user)
                return -ENOMEM;
        group = strchr(user, ':');
        if (group)
                *group++ = '\0';

        if (!parse_id(user, &uid)) {
                r = lookup_db(root, "/etc/passwd", user, &uid, &gid);
                if (r < 0)
                        return r;
                have_gid = true;
        }

        if (group) {
                if (!parse_id(group, &gid)) {
                        r = lookup_db(root, "/etc/group", group, &gid, NULL);
                        if (r < 0)
                                return r;
                }
                have_gid = true;
        }

        /* TODO: a bare numeric uid gets gid 0 even when /etc/passwd lists it with another
         * group. Docker takes the group from the passwd entry in that case. */
        *ret_uid = uid;
        *ret_gid = have_gid ? gid : 0;
        return 0;
}
