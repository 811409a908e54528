#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"

#define COPY_CHUNK (1024U * 1024U)

/* The errors with which FICLONE reports that cloning is impossible here rather than failed. They
 * mean no reflink support in the file system (EOPNOTSUPP, ENOTTY, EINVAL, ENOSYS), or source and
 * destination on different file systems (EXDEV). */
static bool clone_unsupported(int error)
{
        return error == EOPNOTSUPP || error == ENOTTY || error == EINVAL || error == EXDEV ||
               error == ENOSYS;
}

static int copy_range_rw(int src_fd, int dst_fd, off_t offset, off_t length)
{
        _cleanup_free_ char *buf = malloc(COPY_CHUNK);
        ssize_t n, w;

        if (!buf)
                return -ENOMEM;

        while (length > 0) {
                n = pread(src_fd, buf, length < COPY_CHUNK ? (size_t)length : COPY_CHUNK, offset);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        return -EIO; /* the source shrank while being copied */

                for (ssize_t done = 0; done < n; done += w) {
                        w = pwrite(dst_fd, buf + done, n - done, offset + done);
                        if (w < 0 && errno == EINTR) {
                                w = 0;
                                continue;
                        }
                        if (w < 0)
                                return negative_errno();
                }
                offset += n;
                length -= n;
        }
        return 0;
}

/* Copies [offset, offset + length) with copy_file_range(), which lets the kernel share or copy
 * pages without a trip through user space, and with pread()/pwrite() where it is unavailable. */
static int copy_range(int src_fd, int dst_fd, off_t offset, off_t length)
{
        loff_t in = offset, out = offset;
        ssize_t n;

        while (length > 0) {
                n = copy_file_range(src_fd, &in, dst_fd, &out, (size_t)length, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 &&
                    (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL))
                        return copy_range_rw(src_fd, dst_fd, in, length);
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        return -EIO;
                length -= n;
        }
        return 0;
}

/* Copies the data extents of src and leaves the holes between them unallocated in dst, which
 * has already been truncated to the full size. */
static int copy_sparse(int src_fd, int dst_fd, off_t size)
{
        off_t data = 0, hole;
        int r;

        while (data < size) {
                data = lseek(src_fd, data, SEEK_DATA);
                if (data < 0 && errno == ENXIO)
                        return 0; /* only a hole is left */
                if (data < 0 && errno == EINVAL)
                        return copy_range(src_fd, dst_fd, 0, size); /* no SEEK_DATA support */
                if (data < 0)
                        return negative_errno();

                hole = lseek(src_fd, data, SEEK_HOLE);
                if (hole < 0)
                        return negative_errno();
                if (hole > size)
                        hole = size;

                r = copy_range(src_fd, dst_fd, data, hole - data);
                if (r < 0)
                        return r;
                data = hole;
        }
        return 0;
}

int disk_clone(const char *src, const char *dst)
{
        _cleanup_close_ int src_fd = -EBADF, dst_fd = -EBADF;
        _cleanup_unlink_ char *tmp = NULL;
        struct stat st;
        bool cloned;
        int r;

        if (isempty(src) || isempty(dst))
                return -EINVAL;

        src_fd = open(src, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (src_fd < 0)
                return negative_errno();
        if (fstat(src_fd, &st) < 0)
                return negative_errno();
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;

        r = tempfn_random(dst, &tmp);
        if (r < 0)
                return r;

        dst_fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, st.st_mode & 0666);
        if (dst_fd < 0) {
                r = negative_errno();
                free(TAKE_PTR(tmp)); /* not ours to unlink */
                return r;
        }

        cloned = ioctl(dst_fd, FICLONE, src_fd) >= 0;
        if (!cloned) {
                if (!clone_unsupported(errno))
                        return negative_errno();
                (void)log_debug_errno(-errno, "FICLONE of '%s' is not supported (%m), copying",
                                      src);

                if (ftruncate(dst_fd, st.st_size) < 0)
                        return negative_errno();
                r = copy_sparse(src_fd, dst_fd, st.st_size);
                if (r < 0)
                        return r;
        }

        if (fsync(dst_fd) < 0)
                return negative_errno();
        if (rename(tmp, dst) < 0)
                return negative_errno();
        free(TAKE_PTR(tmp));

        r = fsync_parent(dst);
        if (r < 0)
                return r;

        return cloned ? 1 : 0;
}
