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

int guest_read_file(const char *path, size_t max, char **ret, size_t *ret_size)
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

        r = guest_read_file(path, GUEST_CONFIG_MAX_SIZE, &text, &size);
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
