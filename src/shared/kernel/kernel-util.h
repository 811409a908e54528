#pragma once

#include <archive.h>
#include <stddef.h>
#include <stdint.h>

/* Helpers shared by the modules of the kernel area. */

static inline void archive_read_freep(struct archive **a)
{
        if (*a)
                archive_read_free(*a);
}
#define _cleanup_archive_read_ __attribute__((cleanup(archive_read_freep)))

static inline void archive_write_freep(struct archive **a)
{
        if (*a)
                archive_write_free(*a);
}
#define _cleanup_archive_write_ __attribute__((cleanup(archive_write_freep)))

static inline uint16_t read_le16(const uint8_t *p)
{
        return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t read_le32(const uint8_t *p)
{
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A read-only view of a whole regular file. An empty file maps to data == NULL, size == 0. */
typedef struct MappedFile {
        void *data;
        size_t size;
} MappedFile;

int mapped_file_open(int fd, MappedFile *ret);
void mapped_file_close(MappedFile *m);

/* Writes all of size bytes to fd, retrying on EINTR and short writes. */
int write_full(int fd, const void *data, size_t size);

/* Enables libarchive's built-in decompressors for the formats Linux uses for kernels, modules
 * and initramfs images. Filters that run an external program are not enabled, because inputs
 * are untrusted. */
int archive_read_enable_kernel_filters(struct archive *a);

#include <dirent.h>

static inline void closedirp(DIR **d)
{
        if (*d)
                closedir(*d);
}

/* Stores a formatted message in *ret_error (when ret_error is not NULL), replacing any
 * earlier one, and returns error. */
int error_set(char **ret_error, int error, const char *format, ...)
        __attribute__((format(printf, 3, 4)));
