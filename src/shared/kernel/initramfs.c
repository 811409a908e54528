#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "fileio.h"
#include "initramfs.h"
#include "kernel-import.h"
#include "kernel-util.h"
#include "kmod.h"
#include "log.h"
#include "macro.h"
#include "strv.h"

/* banger-init and banger-agent are static binaries of a few MiB, so this limit only stops a
 * wrong path from pulling a huge file into every VM's initramfs. */
#define INITRAMFS_PROGRAM_MAX_SIZE (256 * 1024 * 1024)

static inline void archive_entry_freep(struct archive_entry **e)
{
        if (*e)
                archive_entry_free(*e);
}

typedef struct CpioWriter {
        struct archive *archive;
        unsigned next_ino;
} CpioWriter;

static int cpio_status(CpioWriter *w, int status, const char *what)
{
        if (status == ARCHIVE_OK)
                return 0;
        log_debug("Failed to write '%s' to the initramfs: %s", what,
                  archive_error_string(w->archive));
        return -EIO;
}

/* Adds one entry, with data for a regular file. Entries carry uid 0, gid 0 and mtime 0 so
 * that the same inputs give the same cpio bytes. */
static int cpio_add(CpioWriter *w, const char *path, mode_t mode, dev_t rdev, const void *data,
                    size_t size)
{
        _cleanup_(archive_entry_freep) struct archive_entry *e = archive_entry_new();
        int r;

        if (!e)
                return -ENOMEM;
        archive_entry_set_pathname(e, path);
        archive_entry_set_mode(e, mode);
        archive_entry_set_ino(e, ++w->next_ino);
        archive_entry_set_nlink(e, S_ISDIR(mode) ? 2 : 1);
        archive_entry_set_rdev(e, rdev);
        archive_entry_set_size(e, S_ISREG(mode) ? size : 0);

        r = cpio_status(w, archive_write_header(w->archive, e), path);
        if (r < 0)
                return r;
        if (S_ISREG(mode) && size > 0 &&
            archive_write_data(w->archive, data, size) != (la_ssize_t)size)
                return cpio_status(w, ARCHIVE_FATAL, path);
        return 0;
}

static int cpio_add_program(CpioWriter *w, const char *path, const char *source)
{
        _cleanup_free_ char *data = NULL;
        size_t size;
        int r;

        r = read_full_file(source, INITRAMFS_PROGRAM_MAX_SIZE, &data, &size);
        if (r < 0) {
                log_debug("Failed to read '%s': %s", source, strerror(-r));
                return r;
        }
        return cpio_add(w, path, S_IFREG | 0755, 0, data, size);
}

static int cpio_add_skeleton(CpioWriter *w, const char *release)
{
        static const char *const dirs[] = { "dev", "proc", "sys",        "sysroot", "run",
                                            "tmp", "etc",  "etc/banger", "lib",     "lib/modules" };
        _cleanup_free_ char *modules_dir = NULL;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                r = cpio_add(w, dirs[i], S_IFDIR | 0755, 0, NULL, 0);
                if (r < 0)
                        return r;
        }
        if (asprintf(&modules_dir, "lib/modules/%s", release) < 0)
                return -ENOMEM;
        r = cpio_add(w, modules_dir, S_IFDIR | 0755, 0, NULL, 0);
        if (r < 0)
                return r;

        r = cpio_add(w, "dev/console", S_IFCHR | 0600, makedev(5, 1), NULL, 0);
        if (r < 0)
                return r;
        return cpio_add(w, "dev/null", S_IFCHR | 0666, makedev(1, 3), NULL, 0);
}

static int cpio_add_modules(CpioWriter *w, const InitramfsSpec *spec)
{
        _cleanup_free_ char *list = NULL;
        size_t list_size = 0;
        FILE *f;
        int r;

        f = open_memstream(&list, &list_size);
        if (!f)
                return -ENOMEM;

        for (size_t i = 0; spec->module_names && spec->module_names[i]; i++) {
                _cleanup_free_ char *path = NULL;
                _cleanup_free_ void *data = NULL;
                size_t size;

                if (asprintf(&path, "lib/modules/%s/%s.ko", spec->release, spec->module_names[i]) <
                    0) {
                        fclose(f);
                        return -ENOMEM;
                }
                r = module_read(spec->modules_dir_fd, spec->module_paths[i], &data, &size);
                if (r >= 0)
                        r = cpio_add(w, path, S_IFREG | 0644, 0, data, size);
                if (r < 0) {
                        fclose(f);
                        return r;
                }
                fprintf(f, "/%s\n", path);
        }

        if (fclose(f) != 0)
                return -ENOMEM;
        return cpio_add(w, "etc/banger/modules", S_IFREG | 0644, 0, list, list_size);
}

/* Pads the file behind fd with zeros to a multiple of 4 bytes, as the kernel expects a new
 * archive to start at a 4-byte boundary. */
static int pad_to_4(int fd)
{
        static const uint8_t zeros[4] = {};
        off_t end = lseek(fd, 0, SEEK_END);

        if (end < 0)
                return negative_errno();
        if (end % 4 == 0)
                return 0;
        return write_full(fd, zeros, 4 - end % 4);
}

static int cpio_open(CpioWriter *w, int out_fd, bool gzip)
{
        w->archive = archive_write_new();
        if (!w->archive)
                return -ENOMEM;
        if (archive_write_set_format_cpio_newc(w->archive) != ARCHIVE_OK ||
            (gzip && archive_write_add_filter_gzip(w->archive) != ARCHIVE_OK) ||
            archive_write_set_bytes_in_last_block(w->archive, 1) != ARCHIVE_OK ||
            archive_write_open_fd(w->archive, out_fd) != ARCHIVE_OK)
                return cpio_status(w, ARCHIVE_FATAL, "archive header");
        return 0;
}

static int cpio_close(CpioWriter *w, int out_fd)
{
        int r;

        r = cpio_status(w, archive_write_close(w->archive), "archive trailer");
        if (r < 0)
                return r;
        return pad_to_4(out_fd);
}

int initramfs_write(int out_fd, const InitramfsSpec *spec)
{
        _cleanup_archive_write_ struct archive *a = NULL;
        CpioWriter w = {};
        int r;

        if (strv_length(spec->module_names) != strv_length(spec->module_paths))
                return -EINVAL;

        r = cpio_open(&w, out_fd, true);
        a = w.archive;
        if (r < 0)
                return r;

        r = cpio_add_skeleton(&w, spec->release);
        if (r < 0)
                return r;
        r = cpio_add_program(&w, "init", spec->init_path);
        if (r < 0)
                return r;
        r = cpio_add_program(&w, "banger-agent", spec->agent_path);
        if (r < 0)
                return r;
        r = cpio_add_modules(&w, spec);
        if (r < 0)
                return r;

        return cpio_close(&w, out_fd);
}

int initramfs_write_file_archive(int out_fd, const char *path, const void *data, size_t size,
                                 unsigned mode)
{
        _cleanup_archive_write_ struct archive *a = NULL;
        CpioWriter w = {};
        int r;

        r = cpio_open(&w, out_fd, false);
        a = w.archive;
        if (r < 0)
                return r;
        r = cpio_add(&w, path, S_IFREG | (mode & 07777), 0, data, size);
        if (r < 0)
                return r;
        return cpio_close(&w, out_fd);
}

static int copy_fd(int in_fd, int out_fd)
{
        uint8_t buf[64 * 1024];

        for (;;) {
                ssize_t n = read(in_fd, buf, sizeof(buf));
                int r;

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        return 0;
                r = write_full(out_fd, buf, n);
                if (r < 0)
                        return r;
        }
}

static int initramfs_write_vm(int out_fd, const char *base_initramfs, const char *guest_config)
{
        _cleanup_close_ int in_fd = -EBADF;
        int r;

        in_fd = open(base_initramfs, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (in_fd < 0)
                return negative_errno();
        r = copy_fd(in_fd, out_fd);
        if (r < 0)
                return r;

        /* A base that banger wrote is padded already, but another one may not be. */
        r = pad_to_4(out_fd);
        if (r < 0)
                return r;

        r = initramfs_write_file_archive(out_fd, "etc/banger/vm.conf", guest_config,
                                         strlen(guest_config), 0600);
        if (r < 0)
                return r;
        return fsync(out_fd) < 0 ? negative_errno() : 0;
}

int initramfs_build_vm(const char *base_initramfs, const char *guest_config,
                       const char *output_path)
{
        _cleanup_unlink_ char *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        r = tempfn_random(output_path, &tmp);
        if (r < 0)
                return r;
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
                r = negative_errno();
                free(TAKE_PTR(tmp));
                return r;
        }

        r = initramfs_write_vm(fd, base_initramfs, guest_config);
        if (r < 0) {
                log_debug("Failed to write '%s': %s", tmp, strerror(-r));
                return r;
        }
        if (rename(tmp, output_path) < 0)
                return negative_errno();
        free(TAKE_PTR(tmp));

        return fsync_parent(output_path);
}
