#pragma once

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

#define _cleanup_(f) __attribute__((cleanup(f)))

#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func) \
        static inline void func##p(type *p)     \
        {                                       \
                if (*p)                         \
                        func(*p);               \
        }

/* Hands ownership of a pointer or fd to the caller and leaves NULL or -EBADF behind, so the
 * cleanup attribute on the original variable does nothing. */
#define TAKE_PTR(p)                 \
        ({                          \
                typeof(p) _p = (p); \
                (p) = NULL;         \
                _p;                 \
        })

#define TAKE_FD(fd)             \
        ({                      \
                int _fd = (fd); \
                (fd) = -EBADF;  \
                _fd;            \
        })

static inline void freep(void *p)
{
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd)
{
        if (fd >= 0) {
                int saved = errno;
                close(fd);
                errno = saved;
        }
        return -EBADF;
}

static inline void closep(int *fd)
{
        safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f)
{
        if (*f)
                fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

static inline void unlinkp(char **path)
{
        if (*path) {
                (void)unlink(*path);
                free(*path);
        }
}
/* Removes the file when the variable leaves scope unless ownership was taken with TAKE_PTR. */
#define _cleanup_unlink_ _cleanup_(unlinkp)

/* Returns -errno, or -EIO when a libc call failed without setting errno. */
static inline int negative_errno(void)
{
        return errno > 0 ? -errno : -EIO;
}

#define streq(a, b)     (strcmp((a), (b)) == 0)
#define strneq(a, b, n) (strncmp((a), (b), (n)) == 0)
#define isempty(s)      (!(s) || (s)[0] == '\0')
#define strempty(s)     ((s) ? (s) : "")
