#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deb.h"
#include "kernel-util.h"
#include "kmod.h"
#include "log.h"
#include "macro.h"

/* Feeds the bytes of the current ar member (data.tar.*) to the inner tar reader. */
typedef struct MemberReader {
        struct archive *outer;
        uint8_t buf[64 * 1024];
} MemberReader;

static la_ssize_t member_read(struct archive *inner, void *userdata, const void **ret)
{
        MemberReader *m = userdata;
        la_ssize_t n = archive_read_data(m->outer, m->buf, sizeof(m->buf));

        if (n < 0)
                archive_set_error(inner, EIO, "%s", archive_error_string(m->outer));
        *ret = m->buf;
        return n;
}

/* Strips "./" and "/" prefixes and "usr/" of a merged-/usr layout. Returns NULL for paths with
 * ".." components, which never occur in a kernel package. */
static const char *package_path_normalize(const char *path)
{
        while (strneq(path, "./", 2) || path[0] == '/')
                path += path[0] == '/' ? 1 : 2;
        if (strneq(path, "usr/lib/modules/", 16))
                path += 4;

        for (const char *p = path; (p = strstr(p, "..")); p += 2)
                if ((p == path || p[-1] == '/') && (p[2] == '/' || p[2] == '\0'))
                        return NULL;
        return path;
}

static bool package_path_wanted(const char *path)
{
        _cleanup_free_ char *name = NULL;
        const char *base;

        if (strneq(path, "boot/vmlinuz-", 13))
                return !strchr(path + 13, '/');
        /* The kernel's build configuration, checked for the options a guest needs. */
        if (strneq(path, "boot/config-", 12))
                return !strchr(path + 12, '/');
        if (!strneq(path, "lib/modules/", 12))
                return false;

        base = strrchr(path, '/') + 1;
        if (streq(base, "modules.builtin"))
                return true;
        return module_name_from_path(base, &name) == 0;
}

/* Creates the parent directories of path below dir_fd. */
static int mkdir_parents_at(int dir_fd, const char *path)
{
        _cleanup_free_ char *copy = strdup(path);

        if (!copy)
                return -ENOMEM;
        for (char *s = strchr(copy, '/'); s; s = strchr(s + 1, '/')) {
                *s = '\0';
                if (mkdirat(dir_fd, copy, 0755) < 0 && errno != EEXIST)
                        return negative_errno();
                *s = '/';
        }
        return 0;
}

static int entry_write(struct archive *inner, int dir_fd, const char *path)
{
        _cleanup_close_ int fd = -EBADF;
        uint8_t buf[64 * 1024];
        int r;

        r = mkdir_parents_at(dir_fd, path);
        if (r < 0)
                return r;
        fd = openat(dir_fd, path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0)
                return negative_errno();

        for (;;) {
                la_ssize_t n = archive_read_data(inner, buf, sizeof(buf));

                if (n == 0)
                        return 0;
                if (n < 0) {
                        log_debug("Failed to read '%s' from the package: %s", path,
                                  archive_error_string(inner));
                        return -EBADMSG;
                }
                r = write_full(fd, buf, n);
                if (r < 0)
                        return r;
        }
}

static int data_tar_extract(struct archive *outer, int dir_fd, unsigned *ret_kernels,
                            char **ret_error)
{
        _cleanup_archive_read_ struct archive *inner = archive_read_new();
        _cleanup_free_ MemberReader *m = calloc(1, sizeof(MemberReader));
        struct archive_entry *entry;
        unsigned kernels = 0;
        int r;

        if (!inner || !m)
                return -ENOMEM;
        m->outer = outer;
        if (archive_read_support_format_tar(inner) != ARCHIVE_OK ||
            archive_read_support_format_gnutar(inner) != ARCHIVE_OK)
                return -EOPNOTSUPP;
        r = archive_read_enable_kernel_filters(inner);
        if (r < 0)
                return r;
        if (archive_read_open(inner, m, NULL, member_read, NULL) != ARCHIVE_OK)
                return error_set(ret_error, -EBADMSG, "data.tar is not readable: %s",
                                 archive_error_string(inner));

        while ((r = archive_read_next_header(inner, &entry)) == ARCHIVE_OK) {
                const char *path = package_path_normalize(archive_entry_pathname(entry));

                if (!path)
                        return error_set(ret_error, -EBADMSG,
                                         "data.tar contains the unsafe path '%s'",
                                         archive_entry_pathname(entry));
                if (archive_entry_filetype(entry) != AE_IFREG || !package_path_wanted(path))
                        continue;

                r = entry_write(inner, dir_fd, path);
                if (r < 0)
                        return error_set(ret_error, r, "Failed to extract '%s': %s", path,
                                         strerror(-r));
                if (strneq(path, "boot/", 5))
                        kernels++;
        }
        if (r != ARCHIVE_EOF)
                return error_set(ret_error, -EBADMSG, "data.tar is damaged: %s",
                                 archive_error_string(inner));

        *ret_kernels = kernels;
        return 0;
}

int deb_extract_kernel(int deb_fd, int staging_dir_fd, char **ret_error)
{
        _cleanup_archive_read_ struct archive *outer = archive_read_new();
        struct archive_entry *entry;
        bool seen_binary = false;
        unsigned kernels = 0;
        int r;

        if (!outer)
                return -ENOMEM;
        if (archive_read_support_format_ar(outer) != ARCHIVE_OK)
                return -EOPNOTSUPP;
        if (archive_read_open_fd(outer, deb_fd, 64 * 1024) != ARCHIVE_OK)
                return error_set(ret_error, -EMEDIUMTYPE, "not an ar archive: %s",
                                 archive_error_string(outer));

        while ((r = archive_read_next_header(outer, &entry)) == ARCHIVE_OK) {
                const char *name = archive_entry_pathname(entry);

                if (streq(name, "debian-binary")) {
                        seen_binary = true;
                        continue;
                }
                if (!seen_binary)
                        return error_set(ret_error, -EMEDIUMTYPE,
                                         "the ar archive does not start with debian-binary");
                if (!strneq(name, "data.tar", 8))
                        continue;

                r = data_tar_extract(outer, staging_dir_fd, &kernels, ret_error);
                if (r < 0)
                        return r;
                break;
        }
        if (r != ARCHIVE_OK && r != ARCHIVE_EOF) {
                if (!seen_binary)
                        return error_set(ret_error, -EMEDIUMTYPE, "not a Debian package: %s",
                                         archive_error_string(outer));
                return error_set(ret_error, -EBADMSG, "the package is damaged: %s",
                                 archive_error_string(outer));
        }
        if (!seen_binary)
                return error_set(ret_error, -EMEDIUMTYPE, "not a Debian package");

        if (kernels == 0)
                return error_set(ret_error, -ENOENT,
                                 "the package contains no boot/vmlinuz-RELEASE: pass a "
                                 "linux-image package");
        return 0;
}
