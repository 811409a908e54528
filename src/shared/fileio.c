#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"

int tempfn_random(const char *path, char **ret)
{
        _cleanup_free_ char *copy_dir = strdup(path), *copy_base = strdup(path);
        uint32_t rnd;
        char *p;

        if (!copy_dir || !copy_base)
                return -ENOMEM;
        if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
                return negative_errno();

        if (asprintf(&p, "%s/.#%s.%08x", dirname(copy_dir), basename(copy_base), rnd) < 0)
                return -ENOMEM;

        *ret = p;
        return 0;
}

static int write_all(int fd, const void *data, size_t size)
{
        const char *p = data;

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

int write_file_atomic_at(int dir_fd, const char *name, const void *data, size_t size, mode_t mode)
{
        _cleanup_close_ int fd = -EBADF;
        char tmp[NAME_MAX + 1];
        uint32_t rnd;
        int r;

        if (strchr(name, '/') || strlen(name) > NAME_MAX - 12)
                return -EINVAL;
        if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
                return negative_errno();
        snprintf(tmp, sizeof(tmp), ".#%s.%08x", name, rnd);

        fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
        if (fd < 0)
                return negative_errno();

        r = write_all(fd, data, size);
        if (r >= 0 && fchmod(fd, mode) < 0)
                r = negative_errno();
        if (r >= 0 && fsync(fd) < 0)
                r = negative_errno();
        if (r >= 0 && renameat(dir_fd, tmp, dir_fd, name) < 0)
                r = negative_errno();
        if (r < 0) {
                (void)unlinkat(dir_fd, tmp, 0);
                return r;
        }

        if (fsync(dir_fd) < 0)
                return negative_errno();
        return 0;
}

int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode)
{
        _cleanup_free_ char *dir = strdup(path), *base = strdup(path);
        _cleanup_close_ int dir_fd = -EBADF;

        if (!dir || !base)
                return -ENOMEM;

        dir_fd = open(dirname(dir), O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        if (dir_fd < 0)
                return negative_errno();

        return write_file_atomic_at(dir_fd, basename(base), data, size, mode);
}

int read_full_file(const char *path, size_t max_size, char **ret, size_t *ret_size)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, allocated = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();

        for (;;) {
                ssize_t n;

                if (allocated - size < 4096 + 1) {
                        char *nbuf;

                        allocated = allocated ? allocated * 2 : 8192;
                        nbuf = realloc(buf, allocated);
                        if (!nbuf)
                                return -ENOMEM;
                        buf = nbuf;
                }

                n = read(fd, buf + size, allocated - size - 1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        break;
                size += n;
                if (size > max_size)
                        return -EFBIG;
        }

        buf[size] = '\0';
        *ret = TAKE_PTR(buf);
        if (ret_size)
                *ret_size = size;
        return 0;
}

int mkdir_p(const char *path, mode_t mode)
{
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;

        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = '\0';
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return negative_errno();
                *s = '/';
        }

        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return negative_errno();
        return 0;
}

static int rm_rf_children(int dir_fd)
{
        DIR *d;
        struct dirent *de;
        int r = 0;

        d = fdopendir(dir_fd);
        if (!d) {
                safe_close(dir_fd);
                return negative_errno();
        }

        while ((de = readdir(d))) {
                struct stat st;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        r = negative_errno();
                        continue;
                }
                if (S_ISDIR(st.st_mode)) {
                        int fd = openat(dirfd(d), de->d_name,
                                        O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (fd < 0) {
                                r = negative_errno();
                                continue;
                        }
                        (void)rm_rf_children(fd);
                        if (unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) < 0)
                                r = negative_errno();
                } else if (unlinkat(dirfd(d), de->d_name, 0) < 0)
                        r = negative_errno();
        }

        closedir(d);
        return r;
}

int rm_rf(const char *path)
{
        struct stat st;
        int fd, r;

        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : negative_errno();

        if (!S_ISDIR(st.st_mode))
                return unlink(path) < 0 ? negative_errno() : 0;

        fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        r = rm_rf_children(fd);
        if (rmdir(path) < 0 && r >= 0)
                r = negative_errno();
        return r;
}

int fsync_parent(const char *path)
{
        _cleanup_free_ char *dir = strdup(path);
        _cleanup_close_ int fd = -EBADF;

        if (!dir)
                return -ENOMEM;
        fd = open(dirname(dir), O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        return fsync(fd) < 0 ? negative_errno() : 0;
}

int read_file_tail_printable(const char *path, size_t max_size, char **ret)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *raw = NULL, *text = NULL;
        struct stat st;
        off_t offset = 0;
        ssize_t n;
        size_t start = 0, end, length = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if ((uint64_t)st.st_size > max_size)
                offset = st.st_size - (off_t)max_size;

        raw = malloc(max_size + 1);
        text = malloc(max_size * 2 + 1);
        if (!raw || !text)
                return -ENOMEM;
        n = pread(fd, raw, max_size, offset);
        if (n < 0)
                return negative_errno();
        end = (size_t)n;

        /* A tail that starts mid-file starts mid-line: skip to the next whole line. */
        if (offset > 0) {
                char *newline = memchr(raw, '\n', end);

                if (newline && (size_t)(newline - raw) + 1 < end)
                        start = (size_t)(newline - raw) + 1;
        }
        while (end > start && strchr(" \t\r\n", raw[end - 1]))
                end--;
        while (start < end && strchr(" \t\r\n", raw[start]))
                start++;
        if (start == end)
                return -ENODATA;

        for (size_t i = start; i < end; i++) {
                unsigned char c = (unsigned char)raw[i];

                if (c == '\n') {
                        text[length++] = ';';
                        text[length++] = ' ';
                } else if (c == '\t' || c == '\r')
                        text[length++] = ' ';
                else if (c < 0x20 || c > 0x7e)
                        text[length++] = '?';
                else
                        text[length++] = (char)c;
        }
        text[length] = '\0';
        *ret = TAKE_PTR(text);
        return 0;
}

int loop_write(int fd, const void *data, size_t size)
{
        const char *p = data;

        while (size > 0) {
                ssize_t n = write(fd, p, size);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                p += n;
                size -= (size_t)n;
        }
        return 0;
}
