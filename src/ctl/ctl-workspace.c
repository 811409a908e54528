#include <archive.h>
#include <archive_entry.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl-workspace.h"
#include "log.h"
#include "macro.h"
#include "strv.h"

extern char **environ;

/* A bound on the memory that git's file list may take. */
#define GIT_OUTPUT_MAX  (UINT64_C(256) * 1024 * 1024)
#define GIT_MESSAGE_MAX 200 /* bytes of git's first error line quoted in a message */
#define READ_CHUNK      (64 * 1024)
#define TAR_BLOCK_SIZE  512
#define MODE_PERM_MASK  0777 /* setuid, setgid and sticky bits are not copied */

/* The first bytes hashed by workspace_digest(), so that a digest stored by an older bangerctl
 * with another record layout never matches a new one. */
#define DIGEST_VERSION "banger-workspace-digest-1"

static int set_error(char **ret_error, int error, const char *format, ...)
        __attribute__((format(printf, 3, 4)));

static int set_error(char **ret_error, int error, const char *format, ...)
{
        va_list ap;

        if (ret_error && !*ret_error) {
                va_start(ap, format);
                if (vasprintf(ret_error, format, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return error;
}

static void evp_md_ctx_freep(EVP_MD_CTX **ctx)
{
        EVP_MD_CTX_free(*ctx);
}

static int compare_strings(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Returns whether path is relative, without empty, "." or ".." components. */
static bool path_is_normalized(const char *path)
{
        for (const char *c = path;;) {
                const char *end = strchrnul(c, '/');
                size_t n = end - c;

                if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
                        return false;
                if (*end == '\0')
                        return true;
                c = end + 1;
        }
}

/* Checks that paths are normalized and in strictly increasing byte order, as workspace_list()
 * returns them. Writing parent directories once relies on the order, because the paths below
 * one directory then form one run. */
static int paths_check(char *const *paths, char **ret_error)
{
        for (size_t i = 0; paths && paths[i]; i++) {
                if (i > 0 && strcmp(paths[i - 1], paths[i]) >= 0)
                        return set_error(ret_error, -EINVAL,
                                         "Workspace paths are not sorted and unique at '%s': pass "
                                         "the list that workspace_list() returns",
                                         paths[i]);
                if (!path_is_normalized(paths[i]))
                        return set_error(ret_error, -EINVAL,
                                         "Workspace path '%s' is not relative and normalized: "
                                         "pass the list that workspace_list() returns",
                                         paths[i]);
        }
        return 0;
}

/* Copies environ without the GIT_* variables. A git hook or a wrapper that runs bangerctl may
 * have set GIT_DIR, GIT_WORK_TREE, GIT_INDEX_FILE and others, and they would make git list
 * another repository or index than the one in DIR. The strings are shared with environ, so only
 * the array is to be freed. */
static char **git_environment(void)
{
        size_t n = 0, k = 0;
        char **env;

        while (environ && environ[n])
                n++;
        env = calloc(n + 1, sizeof(char *));
        if (!env)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (!strneq(environ[i], "GIT_", 4))
                        env[k++] = environ[i];
        return env;
}

/* Reads fd to its end into a NUL-terminated buffer. Returns -EFBIG beyond max bytes. */
static int read_all(int fd, uint64_t max, char **ret, size_t *ret_size)
{
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, allocated = 0;

        for (;;) {
                ssize_t n;

                if (allocated - size < READ_CHUNK + 1) {
                        size_t want = allocated ? allocated * 2 : READ_CHUNK * 2;
                        char *p = realloc(buf, want);

                        if (!p)
                                return -ENOMEM;
                        buf = p;
                        allocated = want;
                }
                n = read(fd, buf + size, READ_CHUNK);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        break;
                size += n;
                if (size > max)
                        return -EFBIG;
        }
        buf[size] = '\0';
        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}

/* Returns the first non-empty line of git's standard error, cut to GIT_MESSAGE_MAX bytes, with
 * bytes outside printable ASCII replaced by '?'. */
static char *git_message(int fd)
{
        char buf[GIT_MESSAGE_MAX + 1];
        ssize_t n = pread(fd, buf, GIT_MESSAGE_MAX, 0);
        size_t start = 0, end;

        if (n < 0)
                n = 0;
        while (start < (size_t)n && (buf[start] == '\n' || buf[start] == '\r'))
                start++;
        for (end = start; end < (size_t)n && buf[end] != '\n' && buf[end] != '\r'; end++)
                if ((unsigned char)buf[end] < 0x20 || (unsigned char)buf[end] > 0x7e)
                        buf[end] = '?';
        buf[end] = '\0';
        return strdup(end > start ? buf + start : "no error message");
}

static int wait_child(pid_t pid)
{
        int status;

        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return negative_errno();
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        return 128 + WTERMSIG(status);
}

static int spawn_git(const char *dir, const char *const *args, int out_fd, int err_fd,
                     pid_t *ret_pid)
{
        _cleanup_free_ char **env = git_environment();
        const char *argv[16] = { "git", "-C", dir };
        posix_spawn_file_actions_t actions;
        size_t n = 3;
        int r;

        if (!env)
                return -ENOMEM;
        for (size_t i = 0; args[i]; i++) {
                assert(n < ELEMENTSOF(argv) - 1);
                argv[n++] = args[i];
        }
        argv[n] = NULL;

        r = posix_spawn_file_actions_init(&actions);
        if (r != 0)
                return -r;
        r = posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&actions, err_fd, STDERR_FILENO);
        if (r == 0)
                r = posix_spawnp(ret_pid, "git", &actions, NULL, (char *const *)argv, env);
        posix_spawn_file_actions_destroy(&actions);
        return -r;
}

/* Runs "git -C dir ARGS..." and returns its exit status (128 + the signal number when a signal
 * ended it), with its standard output in *ret_out and the first line of its standard error in
 * *ret_message. */
static int run_git(const char *dir, const char *const *args, char **ret_out, size_t *ret_size,
                   char **ret_message, char **ret_error)
{
        _cleanup_close_ int out_read = -EBADF, out_write = -EBADF, err_fd = -EBADF;
        _cleanup_free_ char *out = NULL, *message = NULL;
        int pipe_fds[2], status, r;
        size_t size = 0;
        pid_t pid;

        if (pipe2(pipe_fds, O_CLOEXEC) < 0)
                return negative_errno();
        out_read = pipe_fds[0];
        out_write = pipe_fds[1];
        err_fd = memfd_create("git-stderr", MFD_CLOEXEC);
        if (err_fd < 0)
                return negative_errno();

        r = spawn_git(dir, args, out_write, err_fd, &pid);
        if (r == -ENOENT)
                return set_error(
                        ret_error, r,
                        "Failed to run git: it is not installed or not in PATH: install the "
                        "package 'git'");
        if (r < 0)
                return set_error(ret_error, r, "Failed to run git: %s", strerror(-r));
        out_write = safe_close(out_write);

        r = read_all(out_read, GIT_OUTPUT_MAX, &out, &size);
        if (r < 0)
                (void)kill(pid, SIGKILL);
        status = wait_child(pid);
        if (r == -EFBIG)
                return set_error(ret_error, r,
                                 "The file list of git in '%s' is longer than %" PRIu64 " MiB", dir,
                                 GIT_OUTPUT_MAX / (1024 * 1024));
        if (r < 0)
                return set_error(ret_error, r, "Failed to read the output of git: %s",
                                 strerror(-r));
        if (status < 0)
                return set_error(ret_error, status, "Failed to wait for git: %s",
                                 strerror(-status));

        message = git_message(err_fd);
        if (!message)
                return -ENOMEM;
        *ret_out = TAKE_PTR(out);
        if (ret_size)
                *ret_size = size;
        *ret_message = TAKE_PTR(message);
        return status;
}

/* Checks that dir is inside a git working tree, which excludes bare repositories and the .git
 * directory itself, where "git rev-parse --is-inside-work-tree" prints "false". */
static int check_work_tree(const char *dir, char **ret_error)
{
        static const char *const args[] = { "rev-parse", "--is-inside-work-tree", NULL };
        _cleanup_free_ char *out = NULL, *message = NULL;
        int r;

        r = run_git(dir, args, &out, NULL, &message, ret_error);
        if (r < 0)
                return r;
        if (r == 0 && streq(out, "true\n"))
                return 0;
        return set_error(
                ret_error, -EINVAL,
                "'%s' is not in a git working tree (git: %s): --workspace needs a git working "
                "tree, so run 'git init' there or pass another directory",
                dir, r == 0 ? "not inside the working tree" : message);
}

static int check_directory(const char *dir, char **ret_error)
{
        struct stat st;

        if (stat(dir, &st) < 0) {
                int r = negative_errno();

                if (r == -ENOENT)
                        return set_error(
                                ret_error, r,
                                "Workspace directory '%s' does not exist: pass the path of a "
                                "git working tree to --workspace",
                                dir);
                return set_error(ret_error, r, "Failed to access workspace directory '%s': %s", dir,
                                 strerror(-r));
        }
        if (!S_ISDIR(st.st_mode))
                return set_error(
                        ret_error, -ENOTDIR,
                        "Workspace '%s' is not a directory: --workspace needs a git working "
                        "tree",
                        dir);
        return 0;
}

/* Splits git's NUL-separated list into sorted, unique paths. git writes an untracked nested
 * repository as "DIR/": the slash is dropped, and the path is kept like a submodule's. */
static int parse_list(char *out, size_t size, char ***ret)
{
        _cleanup_strv_free_ char **paths = NULL;
        size_t n = 0, k = 0;

        for (size_t i = 0; i < size; i++)
                if (out[i] == '\0')
                        n++;
        paths = calloc(n + 1, sizeof(char *));
        if (!paths)
                return -ENOMEM;

        n = 0;
        for (size_t i = 0; i < size;) {
                char *p = out + i;
                size_t len = strlen(p);

                i += len + 1;
                if (len > 0 && p[len - 1] == '/')
                        p[--len] = '\0';
                if (len == 0)
                        continue;
                paths[n] = strdup(p);
                if (!paths[n++])
                        return -ENOMEM;
        }

        qsort(paths, n, sizeof(char *), compare_strings);
        for (size_t i = 0; i < n; i++) {
                if (k > 0 && streq(paths[k - 1], paths[i]))
                        free(paths[i]);
                else
                        paths[k++] = paths[i];
        }
        paths[k] = NULL;
        *ret = TAKE_PTR(paths);
        return 0;
}

/* Drops the paths that do not exist in the working tree: tracked files deleted there, and
 * files of a sparse checkout that are not checked out. */
static int drop_missing(const char *dir, char **paths, char **ret_error)
{
        _cleanup_close_ int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        size_t k = 0;

        if (dir_fd < 0) {
                int r = negative_errno();

                return set_error(ret_error, r, "Failed to open workspace '%s': %s", dir,
                                 strerror(-r));
        }
        for (size_t i = 0; paths[i]; i++) {
                struct stat st;

                if (fstatat(dir_fd, paths[i], &st, AT_SYMLINK_NOFOLLOW) >= 0) {
                        paths[k++] = paths[i];
                        continue;
                }
                if (errno != ENOENT && errno != ENOTDIR) {
                        int r = negative_errno();

                        return set_error(ret_error, r,
                                         "Failed to access '%s' in workspace '%s': %s", paths[i],
                                         dir, strerror(-r));
                }
                free(paths[i]);
        }
        paths[k] = NULL;
        return 0;
}

int workspace_list(const char *dir, char ***ret_paths, char **ret_error)
{
        /* --cached lists a submodule as its directory (a gitlink): the directory is copied
         * empty, because its content belongs to another repository. */
        static const char *const args[] = { "ls-files",           "-z", "--cached", "--others",
                                            "--exclude-standard", NULL };
        _cleanup_free_ char *out = NULL, *message = NULL;
        _cleanup_strv_free_ char **paths = NULL;
        size_t size;
        int r;

        r = check_directory(dir, ret_error);
        if (r < 0)
                return r;

        r = check_work_tree(dir, ret_error);
        if (r < 0)
                return r;

        r = run_git(dir, args, &out, &size, &message, ret_error);
        if (r < 0)
                return r;
        if (r > 0)
                return set_error(ret_error, -EIO, "Failed to list the files of '%s' with git: %s",
                                 dir, message);

        r = parse_list(out, size, &paths);
        if (r < 0)
                return r;

        r = drop_missing(dir, paths, ret_error);
        if (r < 0)
                return r;

        *ret_paths = TAKE_PTR(paths);
        return 0;
}

/* One path of the workspace, ready to be read: a regular file is open, a symlink's target is
 * read. */
typedef struct Entry {
        const char *path;
        struct stat st;
        int fd;
        char target[PATH_MAX];
} Entry;

static void entry_done(Entry *e)
{
        e->fd = safe_close(e->fd);
}

static int entry_changed(const char *path, char **ret_error)
{
        return set_error(
                ret_error, -EBUSY,
                "'%s' in the workspace changed while it was read: run the command again when "
                "nothing writes to it",
                path);
}

static int entry_failed(const char *path, int error, char **ret_error)
{
        return set_error(ret_error, error, "Failed to read '%s' in the workspace: %s", path,
                         strerror(-error));
}

static const char *file_type_name(mode_t mode)
{
        switch (mode & S_IFMT) {
        case S_IFCHR:
                return "a character device";
        case S_IFBLK:
                return "a block device";
        case S_IFIFO:
                return "a fifo";
        case S_IFSOCK:
                return "a socket";
        default:
                return "of an unknown type";
        }
}

static int entry_open_file(int dir_fd, Entry *e, char **ret_error)
{
        /* O_NONBLOCK keeps open() from waiting for a writer when the path became a fifo after
         * the fstatat(). Reads from a regular file ignore it. */
        e->fd = openat(dir_fd, e->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (e->fd < 0 && errno == ENOENT)
                return 0;
        if (e->fd < 0 && errno == ELOOP)
                return entry_changed(e->path, ret_error);
        if (e->fd < 0)
                return entry_failed(e->path, negative_errno(), ret_error);
        if (fstat(e->fd, &e->st) < 0)
                return entry_failed(e->path, negative_errno(), ret_error);
        if (!S_ISREG(e->st.st_mode))
                return entry_changed(e->path, ret_error);
        return 1;
}

static int entry_read_link(int dir_fd, Entry *e, char **ret_error)
{
        ssize_t n = readlinkat(dir_fd, e->path, e->target, sizeof(e->target));

        if (n < 0 && errno == ENOENT)
                return 0;
        if (n < 0 && errno == EINVAL)
                return entry_changed(e->path, ret_error);
        if (n < 0)
                return entry_failed(e->path, negative_errno(), ret_error);
        if ((size_t)n >= sizeof(e->target))
                return entry_failed(e->path, -ENAMETOOLONG, ret_error);
        e->target[n] = '\0';
        e->st.st_size = n;
        return 1;
}

/* Fills e for path. Returns 0 when path no longer exists, 1 otherwise. */
static int entry_open(int dir_fd, const char *path, Entry *e, char **ret_error)
{
        *e = (Entry){ .path = path, .fd = -EBADF };

        if (fstatat(dir_fd, path, &e->st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno == ENOENT || errno == ENOTDIR)
                        return 0;
                return entry_failed(path, negative_errno(), ret_error);
        }

        switch (e->st.st_mode & S_IFMT) {
        case S_IFREG:
                return entry_open_file(dir_fd, e, ret_error);
        case S_IFLNK:
                return entry_read_link(dir_fd, e, ret_error);
        case S_IFDIR:
                return 1;
        default:
                return set_error(ret_error, -EINVAL,
                                 "'%s' in the workspace is %s: only regular files, symlinks and "
                                 "directories can be copied, so replace or remove it",
                                 path, file_type_name(e->st.st_mode));
        }
}

typedef int (*ContentSink)(const void *data, size_t size, void *userdata);

/* Checks that the file has no byte after its st_size bytes. */
static int entry_check_end(Entry *e, char **ret_error)
{
        char probe;
        ssize_t n;

        do
                n = read(e->fd, &probe, 1);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return entry_failed(e->path, negative_errno(), ret_error);
        if (n > 0)
                return entry_changed(e->path, ret_error);
        return 0;
}

/* Passes the st_size bytes of the open regular file to sink. The file must end there: a file
 * that is shorter or longer fails before its last bytes reach sink, so a tar entry that was
 * started stays short. */
static int entry_read(Entry *e, ContentSink sink, void *userdata, char **ret_error)
{
        _cleanup_free_ char *buf = NULL;
        uint64_t left = e->st.st_size;
        int r;

        if (left == 0)
                return entry_check_end(e, ret_error);
        buf = malloc(READ_CHUNK);
        if (!buf)
                return -ENOMEM;

        while (left > 0) {
                ssize_t n = read(e->fd, buf, left < READ_CHUNK ? left : READ_CHUNK);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return entry_failed(e->path, negative_errno(), ret_error);
                if (n == 0)
                        return entry_changed(e->path, ret_error);
                left -= n;
                if (left == 0) {
                        r = entry_check_end(e, ret_error);
                        if (r < 0)
                                return r;
                }
                r = sink(buf, n, userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

typedef struct TarWriter {
        struct archive *archive;
        int fd;
        uint64_t bytes; /* written to fd */
        int write_error;
        bool aborted;
        int dir_fd;
        /* The directory of the last entry written, "" for the workspace itself. */
        char *last_dir;
        /* Bytes of the current entry's content not written yet. */
        uint64_t owed;
        char **ret_error;
} TarWriter;

static int tar_failed(TarWriter *t, const char *path)
{
        int e = archive_errno(t->archive);

        if (t->write_error < 0)
                return set_error(t->ret_error, t->write_error,
                                 "Failed to write the workspace archive: %s",
                                 strerror(-t->write_error));
        if (!path)
                return set_error(t->ret_error, e > 0 ? -e : -EIO,
                                 "Failed to write the workspace archive: %s",
                                 strempty(archive_error_string(t->archive)));
        return set_error(t->ret_error, e > 0 ? -e : -EIO,
                         "Failed to write '%s' to the workspace archive: %s", path,
                         strempty(archive_error_string(t->archive)));
}

static int tar_header(TarWriter *t, const char *path, const struct stat *st, const char *target)
{
        struct archive_entry *entry = archive_entry_new();
        int r = 0;

        if (!entry)
                return -ENOMEM;

        archive_entry_set_pathname(entry, path);
        archive_entry_set_filetype(entry, st->st_mode & S_IFMT);
        archive_entry_set_perm(entry, st->st_mode & MODE_PERM_MASK);
        archive_entry_set_uid(entry, 0);
        archive_entry_set_gid(entry, 0);
        archive_entry_set_mtime(entry, st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
        archive_entry_set_size(entry, S_ISREG(st->st_mode) ? st->st_size : 0);
        if (S_ISLNK(st->st_mode))
                archive_entry_set_symlink(entry, target);

        if (archive_write_header(t->archive, entry) < ARCHIVE_WARN || t->write_error < 0)
                r = tar_failed(t, path);
        archive_entry_free(entry);
        if (r == 0)
                t->owed = S_ISREG(st->st_mode) ? (uint64_t)st->st_size : 0;
        return r;
}

static int tar_content(const void *data, size_t size, void *userdata)
{
        TarWriter *t = userdata;
        la_ssize_t n = archive_write_data(t->archive, data, size);

        if (n < 0 || (size_t)n != size || t->write_error < 0)
                return tar_failed(t, NULL);
        t->owed -= size;
        return 0;
}

static int tar_set_last_dir(TarWriter *t, const char *path, size_t len)
{
        char *dir = strndup(path, len);

        if (!dir)
                return -ENOMEM;
        free(t->last_dir);
        t->last_dir = dir;
        return 0;
}

/* Writes the directories above path that no earlier entry has written. Because the paths are
 * sorted, the entries below one directory form one run, so a directory was written when it is
 * last_dir or one of its parents. */
static int tar_parents(TarWriter *t, const char *path)
{
        for (const char *slash = strchr(path, '/'); slash; slash = strchr(slash + 1, '/')) {
                _cleanup_free_ char *dir = strndup(path, slash - path);
                size_t len = slash - path;
                struct stat st;
                int r;

                if (!dir)
                        return -ENOMEM;
                if (strneq(t->last_dir, dir, len) &&
                    (t->last_dir[len] == '\0' || t->last_dir[len] == '/'))
                        continue;

                if (fstatat(t->dir_fd, dir, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        return entry_failed(dir, negative_errno(), t->ret_error);
                if (!S_ISDIR(st.st_mode))
                        return entry_changed(dir, t->ret_error);
                r = tar_header(t, dir, &st, NULL);
                if (r < 0)
                        return r;
                r = tar_set_last_dir(t, path, len);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int tar_path(TarWriter *t, const char *path)
{
        _cleanup_(entry_done) Entry e = { .fd = -EBADF };
        const char *slash;
        int r;

        r = entry_open(t->dir_fd, path, &e, t->ret_error);
        if (r <= 0)
                return r; /* a path that went away after the listing is left out */

        r = tar_parents(t, path);
        if (r < 0)
                return r;

        r = tar_header(t, path, &e.st, e.target);
        if (r < 0)
                return r;
        if (S_ISREG(e.st.st_mode)) {
                r = entry_read(&e, tar_content, t, t->ret_error);
                if (r < 0)
                        return r;
        }
        if (archive_write_finish_entry(t->archive) < ARCHIVE_WARN)
                return tar_failed(t, path);

        if (S_ISDIR(e.st.st_mode))
                return tar_set_last_dir(t, path, strlen(path));
        slash = strrchr(path, '/');
        return tar_set_last_dir(t, path, slash ? (size_t)(slash - path) : 0);
}

static int tar_all(TarWriter *t, char *const *paths)
{
        int r;

        r = tar_set_last_dir(t, "", 0);
        if (r < 0)
                return r;

        for (size_t i = 0; paths && paths[i]; i++) {
                r = tar_path(t, paths[i]);
                if (r < 0)
                        return r;
        }

        if (archive_write_close(t->archive) != ARCHIVE_OK || t->write_error < 0)
                return tar_failed(t, NULL);
        return 0;
}

static int write_all(int fd, const void *data, size_t size)
{
        for (size_t done = 0; done < size;) {
                ssize_t n = write(fd, (const char *)data + done, size - done);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                done += n;
        }
        return 0;
}

static la_ssize_t tar_write(struct archive *archive, void *userdata, const void *data, size_t size)
{
        TarWriter *t = userdata;
        int r;

        /* After a failure, what libarchive writes, such as the end-of-archive blocks that
         * archive_write_close() adds, is dropped. A write error is kept in t instead of being
         * returned, because libarchive 3.6.2 leaks its output buffer after a failed write, as
         * ASan reports. */
        if (t->aborted)
                return size;
        r = write_all(t->fd, data, size);
        if (r < 0) {
                t->write_error = r;
                t->aborted = true;
                return size;
        }
        t->bytes += size;
        return size;
}

static int tar_open(TarWriter *t)
{
        t->archive = archive_write_new();
        if (!t->archive)
                return -ENOMEM;
        /* With no blocking, libarchive passes every byte on to tar_write() at once, so after a
         * failure the stream ends where tar_abort() expects it. */
        if (archive_write_set_format_pax_restricted(t->archive) != ARCHIVE_OK ||
            archive_write_add_filter_none(t->archive) != ARCHIVE_OK ||
            archive_write_set_bytes_per_block(t->archive, 0) != ARCHIVE_OK ||
            archive_write_open2(t->archive, t, NULL, tar_write, NULL, NULL) != ARCHIVE_OK)
                return tar_failed(t, NULL);
        return 0;
}

/* Ends the stream after a failure so that a tar reader fails on it. When an entry's content
 * is short, the reader already fails at the end of the stream. At an entry boundary, a block of
 * 0xff bytes follows: it is not the zero block that ends an archive, and libarchive, GNU tar and
 * busybox tar reject its header checksum. */
static void tar_abort(TarWriter *t)
{
        bool at_boundary = !t->aborted && t->owed == 0;
        char block[TAR_BLOCK_SIZE];

        t->aborted = true;
        if (!at_boundary)
                return;
        memset(block, 0xff, sizeof(block));
        (void)write_all(t->fd, block, sizeof(block));
}

int workspace_write_tar(const char *dir, char *const *paths, int fd, uint64_t *ret_bytes,
                        char **ret_error)
{
        TarWriter t = { .fd = fd, .dir_fd = -EBADF, .ret_error = ret_error };
        int r;

        r = paths_check(paths, ret_error);
        if (r >= 0) {
                t.dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (t.dir_fd < 0)
                        r = entry_failed(dir, negative_errno(), ret_error);
        }
        if (r >= 0)
                r = tar_open(&t);
        if (r >= 0)
                r = tar_all(&t, paths);

        if (r < 0)
                tar_abort(&t);
        else if (ret_bytes)
                *ret_bytes = t.bytes;
        if (t.archive)
                archive_write_free(t.archive);
        safe_close(t.dir_fd);
        free(t.last_dir);
        return r;
}

static int digest_update(const void *data, size_t size, void *userdata)
{
        return EVP_DigestUpdate(userdata, data, size) == 1 ? 0 : -EIO;
}

static int digest_final_hex(EVP_MD_CTX *ctx, char hex[static 2 * EVP_MAX_MD_SIZE + 1])
{
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned md_size = 0;

        if (EVP_DigestFinal_ex(ctx, md, &md_size) != 1)
                return -EIO;
        for (unsigned i = 0; i < md_size; i++)
                sprintf(hex + 2 * i, "%02x", md[i]);
        return 0;
}

/* Hashes one entry into the workspace digest: the path with its NUL, then a line "TYPE PERM
 * SIZE CONTENT-SHA256" in which a directory has "-" for the content. */
static int digest_entry(EVP_MD_CTX *total, EVP_MD_CTX *content, Entry *e)
{
        char hex[2 * EVP_MAX_MD_SIZE + 1] = "-";
        char type = S_ISREG(e->st.st_mode) ? 'f' : S_ISLNK(e->st.st_mode) ? 'l' : 'd';
        _cleanup_free_ char *line = NULL;
        int n, r;

        if (!S_ISDIR(e->st.st_mode)) {
                if (EVP_DigestInit_ex(content, EVP_sha256(), NULL) != 1)
                        return -EIO;
                if (S_ISREG(e->st.st_mode))
                        r = entry_read(e, digest_update, content, NULL);
                else
                        r = digest_update(e->target, strlen(e->target), content);
                if (r < 0)
                        return r;
                r = digest_final_hex(content, hex);
                if (r < 0)
                        return r;
        }

        n = asprintf(&line, "%c %o %" PRIu64 " %s\n", type,
                     (unsigned)(e->st.st_mode & MODE_PERM_MASK), (uint64_t)e->st.st_size, hex);
        if (n < 0)
                return -ENOMEM;
        if (EVP_DigestUpdate(total, e->path, strlen(e->path) + 1) != 1 ||
            EVP_DigestUpdate(total, line, n) != 1)
                return -EIO;
        return 0;
}

int workspace_digest(const char *dir, char *const *paths, char **ret_hex)
{
        _cleanup_(evp_md_ctx_freep) EVP_MD_CTX *total = EVP_MD_CTX_new();
        _cleanup_(evp_md_ctx_freep) EVP_MD_CTX *content = EVP_MD_CTX_new();
        _cleanup_close_ int dir_fd = -EBADF;
        char hex[2 * EVP_MAX_MD_SIZE + 1];
        int r;

        if (!total || !content)
                return -ENOMEM;
        r = paths_check(paths, NULL);
        if (r < 0)
                return r;
        dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0)
                return negative_errno();
        if (EVP_DigestInit_ex(total, EVP_sha256(), NULL) != 1 ||
            EVP_DigestUpdate(total, DIGEST_VERSION, sizeof(DIGEST_VERSION)) != 1)
                return -EIO;

        for (size_t i = 0; paths && paths[i]; i++) {
                _cleanup_(entry_done) Entry e = { .fd = -EBADF };

                r = entry_open(dir_fd, paths[i], &e, NULL);
                if (r > 0)
                        r = digest_entry(total, content, &e);
                if (r < 0)
                        return log_debug_errno(r, "Failed to hash '%s' of workspace '%s': %m",
                                               paths[i], dir);
        }

        r = digest_final_hex(total, hex);
        if (r < 0)
                return r;
        *ret_hex = strdup(hex);
        return *ret_hex ? 0 : -ENOMEM;
}

static bool name_char_is_valid(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-';
}

int workspace_name(const char *dir, char **ret)
{
        _cleanup_free_ char *canonical = realpath(dir, NULL);
        char out[WORKSPACE_NAME_MAX + 1];
        bool gap = false;
        const char *p;
        size_t n = 0;

        if (!canonical)
                return negative_errno();
        p = strrchr(canonical, '/');
        p = p ? p + 1 : canonical;

        /* The name starts at the first valid byte that is not a dot. */
        while (*p && (*p == '.' || !name_char_is_valid(*p)))
                p++;
        for (; *p && n < WORKSPACE_NAME_MAX; p++) {
                if (!name_char_is_valid(*p)) {
                        gap = true;
                        continue;
                }
                if (gap) {
                        if (n + 2 > WORKSPACE_NAME_MAX)
                                break;
                        out[n++] = '_';
                        gap = false;
                }
                out[n++] = *p;
        }
        if (n == 0)
                return -EINVAL;
        out[n] = '\0';

        *ret = strdup(out);
        return *ret ? 0 : -ENOMEM;
}
