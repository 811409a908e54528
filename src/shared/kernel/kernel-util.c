#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernel-util.h"
#include "log.h"
#include "macro.h"

int mapped_file_open(int fd, MappedFile *ret)
{
        struct stat st;
        void *p;

        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if (st.st_size == 0) {
                *ret = (MappedFile){ NULL, 0 };
                return 0;
        }

        p = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED)
                return negative_errno();

        *ret = (MappedFile){ p, st.st_size };
        return 0;
}

void mapped_file_close(MappedFile *m)
{
        if (m->data)
                munmap(m->data, m->size);
        *m = (MappedFile){ NULL, 0 };
}

int write_full(int fd, const void *data, size_t size)
{
        const uint8_t *p = data;

        while (size > 0) {
                ssize_t n = write(fd, p, size);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                p += n;
                size -= n;
        }
        return 0;
}

int archive_read_enable_kernel_filters(struct archive *a)
{
        int (*const enable[])(struct archive *) = {
                archive_read_support_filter_gzip, archive_read_support_filter_xz,
                archive_read_support_filter_lzma, archive_read_support_filter_lz4,
                archive_read_support_filter_zstd, archive_read_support_filter_bzip2,
        };

        for (size_t i = 0; i < ELEMENTSOF(enable); i++)
                if (enable[i](a) != ARCHIVE_OK) {
                        log_debug("libarchive filter %zu is unavailable: %s", i,
                                  archive_error_string(a));
                        return -EOPNOTSUPP;
                }
        return 0;
}

int error_set(char **ret_error, int error, const char *format, ...)
{
        va_list ap;
        char *message;

        if (!ret_error)
                return error;

        va_start(ap, format);
        if (vasprintf(&message, format, ap) < 0)
                message = NULL;
        va_end(ap);

        free(*ret_error);
        *ret_error = message;
        return error;
}
