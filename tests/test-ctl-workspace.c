#include <archive.h>
#include <archive_entry.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"
#include "strv.h"

/* The workspace functions belong to bangerctl, not to the core library, so their source is
 * compiled into this test. */
#include "../src/ctl/ctl-workspace.c"

#define BIG_SIZE (4 * 1024 * 1024)

static char tmpdir[] = "/tmp/test-ctl-workspace-XXXXXX";
static char repo[sizeof(tmpdir) + 16];

static void setup(void)
{
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
        snprintf(repo, sizeof(repo), "%s/proj", tmpdir);
        umask(022);
        /* A failed writer test must not die of SIGPIPE before it reports. */
        signal(SIGPIPE, SIG_IGN);
}

static void teardown(void)
{
        ck_assert_int_eq(rm_rf(tmpdir), 0);
        strcpy(tmpdir, "/tmp/test-ctl-workspace-XXXXXX");
}

/* Runs git in dir with a fixed identity. The test fails when git fails. */
static void git_in(const char *dir, const char *args)
{
        _cleanup_free_ char *command = NULL;

        ck_assert_int_ge(asprintf(&command,
                                  "git -C '%s' -c user.name=banger -c user.email=banger@localhost "
                                  "-c init.defaultBranch=main -c protocol.file.allow=always %s "
                                  ">/dev/null 2>&1",
                                  dir, args),
                         0);
        ck_assert_msg(system(command) == 0, "'%s' failed", command);
}

static void git(const char *args)
{
        git_in(repo, args);
}

static void put_file(const char *path, const char *content, mode_t mode)
{
        _cleanup_free_ char *full = NULL;
        _cleanup_close_ int fd = -EBADF;

        ck_assert_int_ge(asprintf(&full, "%s/%s", repo, path), 0);
        fd = open(full, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
        ck_assert_int_eq(fchmod(fd, mode), 0);
}

static void put_dir(const char *path)
{
        _cleanup_free_ char *full = NULL;

        ck_assert_int_ge(asprintf(&full, "%s/%s", repo, path), 0);
        ck_assert_int_eq(mkdir_p(full, 0755), 0);
}

static char *repo_path(const char *path)
{
        char *full;

        ck_assert_int_ge(asprintf(&full, "%s/%s", repo, path), 0);
        return full;
}

/* A working tree with tracked, untracked, ignored and deleted files, nested directories, a
 * symlink, an executable and names with a space and a newline. */
static void make_repo(void)
{
        _cleanup_free_ char *link = repo_path("link");
        _cleanup_free_ char *deleted = repo_path("gone.txt");

        ck_assert_int_eq(mkdir(repo, 0755), 0);
        git("init -q");
        put_file(".gitignore", "*.log\nbuild/\n", 0644);
        put_file("README", "banger workspace\n", 0644);
        put_dir("src/lib");
        put_file("src/main.c", "int main(void) { return 0; }\n", 0644);
        put_file("src/lib/util.h", "#pragma once\n", 0644);
        /* The setuid bit is not copied. */
        put_file("run.sh", "#!/bin/sh\necho run\n", 04755);
        put_file("name with spaces.txt", "spaces\n", 0644);
        put_file("gone.txt", "deleted later\n", 0644);
        ck_assert_int_eq(symlink("src/main.c", link), 0);
        git("add -A");
        git("commit -q -m initial");

        ck_assert_int_eq(unlink(deleted), 0);
        put_file("new\nline.txt", "newline\n", 0640);
        put_file("notes.md", "untracked\n", 0644);
        put_dir("docs");
        put_file("docs/guide.md", "guide\n", 0644);
        put_file("debug.log", "ignored\n", 0644);
        put_dir("build");
        put_file("build/out.o", "ignored\n", 0644);
}

static const char *const repo_paths[] = {
        ".gitignore",    "README",   "docs/guide.md", "link",           "name with spaces.txt",
        "new\nline.txt", "notes.md", "run.sh",        "src/lib/util.h", "src/main.c",
};

static char **list_ok(const char *dir)
{
        _cleanup_free_ char *error = NULL;
        char **paths = NULL;

        ck_assert_msg(workspace_list(dir, &paths, &error) == 0, "workspace_list: %s",
                      strempty(error));
        ck_assert_ptr_nonnull(paths);
        return paths;
}

static char *digest_ok(void)
{
        _cleanup_strv_free_ char **paths = list_ok(repo);
        char *hex = NULL;

        ck_assert_int_eq(workspace_digest(repo, paths, &hex), 0);
        ck_assert_ptr_nonnull(hex);
        ck_assert_uint_eq(strlen(hex), 64);
        return hex;
}

START_TEST(test_list_tracked_and_untracked)
{
        _cleanup_strv_free_ char **paths = NULL;

        make_repo();
        paths = list_ok(repo);

        ck_assert_uint_eq(strv_length(paths), ELEMENTSOF(repo_paths));
        for (size_t i = 0; i < ELEMENTSOF(repo_paths); i++)
                ck_assert_str_eq(paths[i], repo_paths[i]);
}
END_TEST

START_TEST(test_list_ignores_git_environment)
{
        _cleanup_strv_free_ char **paths = NULL;
        _cleanup_free_ char *index = NULL;

        make_repo();
        ck_assert_int_ge(asprintf(&index, "%s/other-index", tmpdir), 0);
        ck_assert_int_eq(setenv("GIT_DIR", "/nonexistent/.git", 1), 0);
        ck_assert_int_eq(setenv("GIT_WORK_TREE", tmpdir, 1), 0);
        ck_assert_int_eq(setenv("GIT_INDEX_FILE", index, 1), 0);
        paths = list_ok(repo);

        ck_assert_uint_eq(strv_length(paths), ELEMENTSOF(repo_paths));
        ck_assert_str_eq(paths[0], ".gitignore");
        ck_assert_str_eq(paths[ELEMENTSOF(repo_paths) - 1], "src/main.c");
}
END_TEST

START_TEST(test_list_subdirectory)
{
        _cleanup_strv_free_ char **paths = NULL;
        _cleanup_free_ char *src = NULL;

        make_repo();
        src = repo_path("src");
        paths = list_ok(src);

        ck_assert_uint_eq(strv_length(paths), 2);
        ck_assert_str_eq(paths[0], "lib/util.h");
        ck_assert_str_eq(paths[1], "main.c");
}
END_TEST

START_TEST(test_list_submodule_and_nested_repo)
{
        _cleanup_strv_free_ char **paths = NULL;
        _cleanup_free_ char *other = NULL, *add = NULL, *nested = NULL;

        make_repo();
        ck_assert_int_ge(asprintf(&other, "%s/other", tmpdir), 0);
        ck_assert_int_eq(mkdir(other, 0755), 0);
        git_in(other, "init -q");
        git_in(other, "commit -q --allow-empty -m empty");
        ck_assert_int_ge(asprintf(&add, "submodule add -q '%s' sub", other), 0);
        git(add);
        nested = repo_path("nested");
        ck_assert_int_eq(mkdir(nested, 0755), 0);
        git_in(nested, "init -q");
        put_file("nested/inner.txt", "inner\n", 0644);

        paths = list_ok(repo);

        ck_assert(strv_contains(paths, ".gitmodules"));
        ck_assert(strv_contains(paths, "sub"));
        ck_assert(strv_contains(paths, "nested"));
        for (size_t i = 0; paths[i]; i++) {
                ck_assert_msg(!strneq(paths[i], "sub/", 4), "'%s' is listed", paths[i]);
                ck_assert_msg(!strneq(paths[i], "nested/", 7), "'%s' is listed", paths[i]);
        }
}
END_TEST

START_TEST(test_list_empty_repo)
{
        _cleanup_strv_free_ char **paths = NULL;

        ck_assert_int_eq(mkdir(repo, 0755), 0);
        git("init -q");
        paths = list_ok(repo);

        ck_assert_ptr_null(paths[0]);
}
END_TEST

START_TEST(test_list_not_git)
{
        _cleanup_free_ char *error = NULL;
        char **paths = NULL;

        ck_assert_int_eq(mkdir(repo, 0755), 0);

        ck_assert_int_eq(workspace_list(repo, &paths, &error), -EINVAL);
        ck_assert_ptr_null(paths);
        ck_assert_ptr_nonnull(error);
        ck_assert_ptr_nonnull(strstr(error, repo));
        ck_assert_ptr_nonnull(strstr(error, "--workspace needs a git working tree"));
}
END_TEST

START_TEST(test_list_inside_git_dir)
{
        _cleanup_free_ char *error = NULL, *git_dir = NULL;
        char **paths = NULL;

        make_repo();
        git_dir = repo_path(".git");

        ck_assert_int_eq(workspace_list(git_dir, &paths, &error), -EINVAL);
        ck_assert_ptr_nonnull(error);
        ck_assert_ptr_nonnull(strstr(error, "--workspace needs a git working tree"));
}
END_TEST

START_TEST(test_list_missing_dir)
{
        _cleanup_free_ char *error = NULL;
        char **paths = NULL;

        ck_assert_int_eq(workspace_list(repo, &paths, &error), -ENOENT);
        ck_assert_ptr_nonnull(error);
        ck_assert_ptr_nonnull(strstr(error, repo));
        ck_assert_ptr_nonnull(strstr(error, "does not exist"));
}
END_TEST

START_TEST(test_list_regular_file)
{
        _cleanup_free_ char *error = NULL, *file = NULL;
        char **paths = NULL;

        make_repo();
        file = repo_path("README");

        ck_assert_int_eq(workspace_list(file, &paths, &error), -ENOTDIR);
        ck_assert_ptr_nonnull(error);
        ck_assert_ptr_nonnull(strstr(error, file));
}
END_TEST

START_TEST(test_list_missing_git)
{
        _cleanup_free_ char *error = NULL;
        char **paths = NULL;

        make_repo();
        /* An existing directory without git in it, so that the lookup fails with ENOENT. */
        ck_assert_int_eq(setenv("PATH", tmpdir, 1), 0);

        ck_assert_int_eq(workspace_list(repo, &paths, &error), -ENOENT);
        ck_assert_ptr_nonnull(error);
        ck_assert_ptr_nonnull(strstr(error, "install the package 'git'"));
}
END_TEST

/* One entry read back from a tar stream. */
typedef struct ReadEntry {
        const char *path;
        mode_t type;
        mode_t perm;
        const char *data; /* content, or a symlink's target */
} ReadEntry;

static const ReadEntry repo_entries[] = {
        { ".gitignore", AE_IFREG, 0644, "*.log\nbuild/\n" },
        { "README", AE_IFREG, 0644, "banger workspace\n" },
        { "docs/", AE_IFDIR, 0755, NULL },
        { "docs/guide.md", AE_IFREG, 0644, "guide\n" },
        { "link", AE_IFLNK, 0777, "src/main.c" },
        { "name with spaces.txt", AE_IFREG, 0644, "spaces\n" },
        { "new\nline.txt", AE_IFREG, 0640, "newline\n" },
        { "notes.md", AE_IFREG, 0644, "untracked\n" },
        { "run.sh", AE_IFREG, 0755, "#!/bin/sh\necho run\n" },
        { "src/", AE_IFDIR, 0755, NULL },
        { "src/lib/", AE_IFDIR, 0755, NULL },
        { "src/lib/util.h", AE_IFREG, 0644, "#pragma once\n" },
        { "src/main.c", AE_IFREG, 0644, "int main(void) { return 0; }\n" },
};

static int open_output(void)
{
        _cleanup_free_ char *path = NULL;
        int fd;

        ck_assert_int_ge(asprintf(&path, "%s/out.tar", tmpdir), 0);
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        return fd;
}

/* Opens fd for reading as a tar archive, or returns NULL when libarchive finds no tar in it. An
 * empty stream is an empty archive, as for the work disk builder. */
static struct archive *try_open_reader(int fd)
{
        struct archive *a = archive_read_new();

        ck_assert_ptr_nonnull(a);
        ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
        ck_assert_int_eq(archive_read_support_format_tar(a), ARCHIVE_OK);
        ck_assert_int_eq(archive_read_support_format_empty(a), ARCHIVE_OK);
        if (archive_read_open_fd(a, fd, 10240) == ARCHIVE_OK)
                return a;
        archive_read_free(a);
        return NULL;
}

static struct archive *open_reader(int fd)
{
        struct archive *a = try_open_reader(fd);

        ck_assert_ptr_nonnull(a);
        return a;
}

static void check_entry(struct archive *a, struct archive_entry *e, const ReadEntry *want)
{
        const char *path = archive_entry_pathname(e);

        ck_assert_str_eq(path, want->path);
        ck_assert_uint_eq(archive_entry_filetype(e), want->type);
        ck_assert_msg(archive_entry_perm(e) == want->perm, "'%s' has mode %o", path,
                      (unsigned)archive_entry_perm(e));
        ck_assert_int_eq(archive_entry_uid(e), 0);
        ck_assert_int_eq(archive_entry_gid(e), 0);
        ck_assert(isempty(archive_entry_uname(e)));
        ck_assert(isempty(archive_entry_gname(e)));
        if (want->type == AE_IFLNK)
                ck_assert_str_eq(archive_entry_symlink(e), want->data);
        if (want->type == AE_IFREG) {
                char buf[256] = "";
                la_ssize_t n = archive_read_data(a, buf, sizeof(buf) - 1);

                ck_assert_int_eq(archive_entry_size(e), strlen(want->data));
                ck_assert_int_eq(n, (la_ssize_t)strlen(want->data));
                ck_assert_str_eq(buf, want->data);
        }
}

/* Reads the tar in fd and checks that it contains exactly want, in that order. */
static void check_tar(int fd, const ReadEntry *want, size_t n_want)
{
        struct archive *a = open_reader(fd);
        struct archive_entry *e;
        size_t i = 0;
        int r;

        while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
                ck_assert_msg(i < n_want, "unexpected entry '%s'", archive_entry_pathname(e));
                check_entry(a, e, &want[i]);
                i++;
        }
        ck_assert_msg(r == ARCHIVE_EOF, "reading the tar failed: %s", archive_error_string(a));
        ck_assert_uint_eq(i, n_want);
        archive_read_free(a);
}

/* Reads the tar in fd to its end and returns the number of entries before the reader failed,
 * or -1 when it reached the end without an error. */
static int count_until_failure(int fd)
{
        struct archive *a = try_open_reader(fd);
        struct archive_entry *e;
        int n = 0, r;

        if (!a)
                return 0;
        while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
                if (archive_read_data_skip(a) != ARCHIVE_OK)
                        break;
                n++;
        }
        archive_read_free(a);
        return r == ARCHIVE_EOF ? -1 : n;
}

START_TEST(test_tar_entries)
{
        _cleanup_strv_free_ char **paths = NULL;
        _cleanup_free_ char *error = NULL;
        _cleanup_close_ int fd = open_output();
        uint64_t bytes = 0;
        struct stat st;

        make_repo();
        paths = list_ok(repo);

        ck_assert_msg(workspace_write_tar(repo, paths, fd, &bytes, &error) == 0, "%s",
                      strempty(error));
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_uint_eq(bytes, (uint64_t)st.st_size);
        check_tar(fd, repo_entries, ELEMENTSOF(repo_entries));
}
END_TEST

START_TEST(test_tar_keeps_file_mtime)
{
        _cleanup_strv_free_ char **paths = NULL;
        _cleanup_free_ char *readme = NULL;
        _cleanup_close_ int fd = open_output();
        struct timespec times[2] = { { 1700000000, 0 }, { 1700000000, 0 } };
        struct archive_entry *e;
        struct archive *a;

        make_repo();
        readme = repo_path("README");
        ck_assert_int_eq(utimensat(AT_FDCWD, readme, times, 0), 0);
        paths = list_ok(repo);
        ck_assert_int_eq(workspace_write_tar(repo, paths, fd, NULL, NULL), 0);

        a = open_reader(fd);
        do
                ck_assert_int_eq(archive_read_next_header(a, &e), ARCHIVE_OK);
        while (!streq(archive_entry_pathname(e), "README"));
        ck_assert_int_eq(archive_entry_mtime(e), 1700000000);
        archive_read_free(a);
}
END_TEST

START_TEST(test_tar_submodule_is_empty_dir)
{
        static const ReadEntry want[] = {
                { ".gitmodules", AE_IFREG, 0644, NULL },
                { "a", AE_IFREG, 0644, "a\n" },
                { "sub/", AE_IFDIR, 0755, NULL },
        };
        _cleanup_strv_free_ char **paths = NULL;
        _cleanup_free_ char *other = NULL, *add = NULL, *modules = NULL, *modules_text = NULL;
        _cleanup_close_ int fd = open_output();
        struct archive *a;
        struct archive_entry *e;
        size_t i = 0;
        size_t size;

        ck_assert_int_ge(asprintf(&other, "%s/other", tmpdir), 0);
        ck_assert_int_eq(mkdir(other, 0755), 0);
        git_in(other, "init -q");
        git_in(other, "commit -q --allow-empty -m empty");
        ck_assert_int_eq(mkdir(repo, 0755), 0);
        git("init -q");
        put_file("a", "a\n", 0644);
        ck_assert_int_ge(asprintf(&add, "submodule add -q '%s' sub", other), 0);
        git(add);
        modules = repo_path(".gitmodules");
        ck_assert_int_eq(read_full_file(modules, 4096, &modules_text, &size), 0);
        paths = list_ok(repo);
        ck_assert_int_eq(workspace_write_tar(repo, paths, fd, NULL, NULL), 0);

        a = open_reader(fd);
        while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
                ck_assert_uint_lt(i, ELEMENTSOF(want));
                ck_assert_str_eq(archive_entry_pathname(e), want[i].path);
                ck_assert_uint_eq(archive_entry_filetype(e), want[i].type);
                if (streq(want[i].path, ".gitmodules"))
                        ck_assert_int_eq(archive_entry_size(e), (int64_t)size);
                i++;
        }
        ck_assert_uint_eq(i, ELEMENTSOF(want));
        archive_read_free(a);
}
END_TEST

START_TEST(test_tar_skips_vanished_file)
{
        static const ReadEntry want[] = {
                { "README", AE_IFREG, 0644, "banger workspace\n" },
        };
        _cleanup_strv_free_ char **paths = NULL;
        _cleanup_free_ char *notes = NULL;
        _cleanup_close_ int fd = open_output();

        ck_assert_int_eq(mkdir(repo, 0755), 0);
        git("init -q");
        put_file("README", "banger workspace\n", 0644);
        put_dir("docs");
        put_file("docs/notes.md", "notes\n", 0644);
        paths = list_ok(repo);
        ck_assert_uint_eq(strv_length(paths), 2);
        notes = repo_path("docs/notes.md");
        ck_assert_int_eq(unlink(notes), 0);

        ck_assert_int_eq(workspace_write_tar(repo, paths, fd, NULL, NULL), 0);
        check_tar(fd, want, ELEMENTSOF(want));
}
END_TEST

/* Names beyond ustar's 100-byte name field and bytes that are not UTF-8 go into pax headers. */
START_TEST(test_tar_long_and_binary_names)
{
        static const char *const names[] = { "caf\xe9", "d\xc3\xa9j\xc3\xa0 vu" };
        char long_dir[201], *paths[4] = { NULL };
        _cleanup_free_ char *long_file = NULL;
        _cleanup_close_ int fd = open_output();
        struct archive_entry *e;
        struct archive *a;
        size_t n = 0;

        memset(long_dir, 'd', 200);
        long_dir[200] = '\0';
        ck_assert_int_eq(mkdir(repo, 0755), 0);
        put_dir(long_dir);
        ck_assert_int_ge(asprintf(&long_file, "%s/%s", long_dir, "f.txt"), 0);
        put_file(long_file, "long\n", 0644);
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                put_file(names[i], "name\n", 0644);
        /* Sorted by unsigned bytes: "caf\xe9" < "ddd..." < "d\xc3...". */
        paths[0] = (char *)names[0];
        paths[1] = long_file;
        paths[2] = (char *)names[1];

        ck_assert_int_eq(workspace_write_tar(repo, paths, fd, NULL, NULL), 0);

        a = open_reader(fd);
        while (archive_read_next_header(a, &e) == ARCHIVE_OK)
                switch (n++) {
                case 0:
                        ck_assert_str_eq(archive_entry_pathname(e), "caf\xe9");
                        break;
                case 2:
                        ck_assert_str_eq(archive_entry_pathname(e), long_file);
                        ck_assert_int_eq(archive_entry_size(e), 5);
                        break;
                case 3:
                        ck_assert_str_eq(archive_entry_pathname(e), "d\xc3\xa9j\xc3\xa0 vu");
                        break;
                }
        ck_assert_uint_eq(n, 4);
        archive_read_free(a);
}
END_TEST

/* Path lists that workspace_list() never returns. */
static const char *const bad_lists[][3] = {
        { "b", "a", NULL }, { "a", "a", NULL }, { "/etc/passwd", NULL }, { "../x", NULL },
        { "a/./b", NULL },  { "a//b", NULL },   { "a/", NULL },          { "", NULL },
};

START_TEST(test_tar_rejects_bad_paths)
{
        _cleanup_free_ char *error = NULL;
        _cleanup_close_ int fd = open_output();
        char *hex = NULL;

        ck_assert_int_eq(mkdir(repo, 0755), 0);

        ck_assert_int_eq(workspace_write_tar(repo, (char *const *)bad_lists[_i], fd, NULL, &error),
                         -EINVAL);
        ck_assert_ptr_nonnull(error);
        ck_assert_ptr_nonnull(strstr(error, "Workspace path"));
        /* The stream fails for a reader instead of being an empty archive. */
        ck_assert_int_eq(count_until_failure(fd), 0);
        ck_assert_int_eq(workspace_digest(repo, (char *const *)bad_lists[_i], &hex), -EINVAL);
}
END_TEST

START_TEST(test_tar_rejects_fifo)
{
        static char *const paths[] = { "a", "pipe", "z", NULL };
        _cleanup_free_ char *error = NULL, *pipe_path = NULL;
        _cleanup_close_ int fd = open_output();

        ck_assert_int_eq(mkdir(repo, 0755), 0);
        put_file("a", "a\n", 0644);
        put_file("z", "z\n", 0644);
        pipe_path = repo_path("pipe");
        ck_assert_int_eq(mkfifo(pipe_path, 0644), 0);

        ck_assert_int_eq(workspace_write_tar(repo, paths, fd, NULL, &error), -EINVAL);
        ck_assert_ptr_nonnull(error);
        ck_assert_ptr_nonnull(strstr(error, "'pipe'"));
        ck_assert_ptr_nonnull(strstr(error, "a fifo"));
        /* "a" was complete when the writer stopped. */
        ck_assert_int_eq(count_until_failure(fd), 1);
}
END_TEST

/* Entry paths do not depend on the directory's name, even one that workspace_name() rejects. */
START_TEST(test_tar_ignores_dir_name)
{
        static char *const paths[] = { "x", NULL };
        static const ReadEntry want[] = { { "x", AE_IFREG, 0644, "x" } };
        _cleanup_free_ char *dir = NULL, *file = NULL, *name = NULL;
        _cleanup_close_ int fd = open_output();

        ck_assert_int_ge(asprintf(&dir, "%s/...", tmpdir), 0);
        ck_assert_int_eq(mkdir(dir, 0755), 0);
        ck_assert_int_ge(asprintf(&file, "%s/x", dir), 0);
        ck_assert_int_eq(write_file_atomic(file, "x", 1, 0644), 0);
        ck_assert_int_eq(workspace_name(dir, &name), -EINVAL);

        ck_assert_int_eq(workspace_write_tar(dir, paths, fd, NULL, NULL), 0);
        check_tar(fd, want, ELEMENTSOF(want));
}
END_TEST

START_TEST(test_tar_reader_gone)
{
        _cleanup_strv_free_ char **paths = NULL;
        _cleanup_free_ char *error = NULL;
        int pipe_fds[2];

        make_repo();
        paths = list_ok(repo);
        ck_assert_int_eq(pipe2(pipe_fds, O_CLOEXEC), 0);
        close(pipe_fds[0]);

        ck_assert_int_eq(workspace_write_tar(repo, paths, pipe_fds[1], NULL, &error), -EPIPE);
        ck_assert_ptr_nonnull(error);
        ck_assert_ptr_nonnull(strstr(error, "Failed to write"));
        close(pipe_fds[1]);
}
END_TEST

/* Runs workspace_write_tar() on a thread, writing into a pipe that the test drains. */
typedef struct TarThread {
        char **paths;
        int fd;
        int result;
        char *error;
} TarThread;

static void *tar_thread(void *userdata)
{
        TarThread *t = userdata;

        t->result = workspace_write_tar(repo, t->paths, t->fd, NULL, &t->error);
        t->fd = safe_close(t->fd);
        return NULL;
}

/* Appends what the pipe delivers to out until min bytes have arrived, or to its end when min
 * is 0. */
static void drain(int fd, int out, size_t min)
{
        char buf[4096];
        size_t done = 0;

        while (min == 0 || done < min) {
                ssize_t n = read(fd, buf, sizeof(buf));

                ck_assert_int_ge(n, 0);
                if (n == 0)
                        break;
                ck_assert_int_eq(write(out, buf, n), n);
                done += n;
        }
}

/* Changes the big file with change while its content is being written to the pipe. */
static void check_changed_while_read(void (*change)(const char *path))
{
        _cleanup_free_ char *big = NULL, *content = NULL;
        _cleanup_close_ int out = open_output();
        static char *paths[] = { "big", NULL };
        TarThread t = { .paths = paths };
        int pipe_fds[2];
        pthread_t thread;

        ck_assert_int_eq(mkdir(repo, 0755), 0);
        big = repo_path("big");
        content = malloc(BIG_SIZE);
        ck_assert_ptr_nonnull(content);
        memset(content, 'b', BIG_SIZE);
        ck_assert_int_eq(write_file_atomic(big, content, BIG_SIZE, 0644), 0);
        ck_assert_int_eq(pipe2(pipe_fds, O_CLOEXEC), 0);
        t.fd = pipe_fds[1];

        ck_assert_int_eq(pthread_create(&thread, NULL, tar_thread, &t), 0);
        /* Past the header of "big", the writer has opened the file. The
         * pipe and the writer's buffer take far less than the file, so it is still being read. */
        drain(pipe_fds[0], out, 4 * TAR_BLOCK_SIZE);
        change(big);
        drain(pipe_fds[0], out, 0);
        ck_assert_int_eq(pthread_join(thread, NULL), 0);
        close(pipe_fds[0]);

        ck_assert_int_eq(t.result, -EBUSY);
        ck_assert_ptr_nonnull(t.error);
        ck_assert_ptr_nonnull(strstr(t.error, "'big'"));
        ck_assert_ptr_nonnull(strstr(t.error, "changed while it was read"));
        ck_assert_int_ge(count_until_failure(out), 0);
        free(t.error);
}

static void shrink(const char *path)
{
        ck_assert_int_eq(truncate(path, 1000), 0);
}

static void grow(const char *path)
{
        _cleanup_close_ int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, "+", 1), 1);
}

START_TEST(test_tar_file_shrinks)
{
        check_changed_while_read(shrink);
}
END_TEST

START_TEST(test_tar_file_grows)
{
        check_changed_while_read(grow);
}
END_TEST

START_TEST(test_digest_stable)
{
        _cleanup_free_ char *a = NULL, *b = NULL;

        make_repo();
        a = digest_ok();
        b = digest_ok();

        ck_assert_str_eq(a, b);
}
END_TEST

/* Changes to the working tree after the first digest, and whether the digest must change. */
typedef struct DigestCase {
        const char *name;
        void (*change)(void);
        bool changes;
} DigestCase;

static void touch_readme(void)
{
        _cleanup_free_ char *p = repo_path("README");
        struct timespec times[2] = { { 1600000000, 0 }, { 1600000000, 0 } };

        ck_assert_int_eq(utimensat(AT_FDCWD, p, times, 0), 0);
}

static void edit_readme_same_size(void)
{
        put_file("README", "BANGER workspace\n", 0644);
}

static void add_untracked(void)
{
        put_file("docs/more.md", "more\n", 0644);
}

static void add_ignored(void)
{
        put_file("other.log", "ignored\n", 0644);
}

static void delete_tracked(void)
{
        _cleanup_free_ char *p = repo_path("src/main.c");

        ck_assert_int_eq(unlink(p), 0);
}

static void chmod_executable(void)
{
        _cleanup_free_ char *p = repo_path("README");

        ck_assert_int_eq(chmod(p, 0755), 0);
}

static void retarget_symlink(void)
{
        _cleanup_free_ char *p = repo_path("link");

        ck_assert_int_eq(unlink(p), 0);
        ck_assert_int_eq(symlink("README", p), 0);
}

static void rename_file(void)
{
        _cleanup_free_ char *from = repo_path("notes.md"), *to = repo_path("notes2.md");

        ck_assert_int_eq(rename(from, to), 0);
}

static const DigestCase digest_cases[] = {
        { "touch", touch_readme, false },
        { "ignored file added", add_ignored, false },
        { "edit of same size", edit_readme_same_size, true },
        { "untracked file added", add_untracked, true },
        { "tracked file deleted", delete_tracked, true },
        { "chmod +x", chmod_executable, true },
        { "symlink retargeted", retarget_symlink, true },
        { "file renamed", rename_file, true },
};

START_TEST(test_digest_changes)
{
        const DigestCase *c = &digest_cases[_i];
        _cleanup_free_ char *before = NULL, *after = NULL;

        make_repo();
        before = digest_ok();
        c->change();
        after = digest_ok();

        if (c->changes)
                ck_assert_msg(!streq(before, after), "%s: digest did not change", c->name);
        else
                ck_assert_msg(streq(before, after), "%s: digest changed", c->name);
}
END_TEST

START_TEST(test_digest_of_nothing)
{
        static char *const empty[] = { NULL };
        _cleanup_free_ char *a = NULL, *b = NULL;

        ck_assert_int_eq(mkdir(repo, 0755), 0);
        ck_assert_int_eq(workspace_digest(repo, empty, &a), 0);
        ck_assert_int_eq(workspace_digest(repo, NULL, &b), 0);

        ck_assert_str_eq(a, b);
        ck_assert_uint_eq(strlen(a), 64);
}
END_TEST

/* A directory to create below tmpdir, and the name that it must give. */
typedef struct NameCase {
        const char *dir;
        const char *name; /* NULL: -EINVAL */
} NameCase;

static const NameCase name_cases[] = {
        { "proj", "proj" },
        { "my project", "my_project" },
        { "a+b=c", "a_b_c" },
        { ".dotfiles", "dotfiles" },
        { "  .x y ", "x_y" },
        { "caf\xc3\xa9", "caf" },
        { "v1.2_rc-3", "v1.2_rc-3" },
        { "-x", "-x" },
        { "...", NULL },
        { "\xe6\x97\xa5\xe6\x9c\xac", NULL },
        { "+ + +", NULL },
};

START_TEST(test_name)
{
        const NameCase *c = &name_cases[_i];
        _cleanup_free_ char *dir = NULL, *name = NULL;

        ck_assert_int_ge(asprintf(&dir, "%s/%s", tmpdir, c->dir), 0);
        ck_assert_int_eq(mkdir(dir, 0755), 0);

        if (c->name) {
                ck_assert_int_eq(workspace_name(dir, &name), 0);
                ck_assert_str_eq(name, c->name);
        } else {
                ck_assert_int_eq(workspace_name(dir, &name), -EINVAL);
                ck_assert_ptr_null(name);
        }
}
END_TEST

START_TEST(test_name_long)
{
        char base[101], want[WORKSPACE_NAME_MAX + 1];
        _cleanup_free_ char *dir = NULL, *name = NULL, *gap_dir = NULL;

        memset(base, 'a', 100);
        base[100] = '\0';
        ck_assert_int_ge(asprintf(&dir, "%s/%s", tmpdir, base), 0);
        ck_assert_int_eq(mkdir(dir, 0755), 0);
        ck_assert_int_eq(workspace_name(dir, &name), 0);
        memset(want, 'a', WORKSPACE_NAME_MAX);
        want[WORKSPACE_NAME_MAX] = '\0';
        ck_assert_str_eq(name, want);
        free(TAKE_PTR(name));

        /* A gap at the limit ends the name instead of leaving a trailing '_'. */
        base[WORKSPACE_NAME_MAX - 1] = ' ';
        ck_assert_int_ge(asprintf(&gap_dir, "%s/%s", tmpdir, base), 0);
        ck_assert_int_eq(mkdir(gap_dir, 0755), 0);
        ck_assert_int_eq(workspace_name(gap_dir, &name), 0);
        ck_assert_uint_eq(strlen(name), WORKSPACE_NAME_MAX - 1);
        ck_assert_str_eq(name, want + 1);
}
END_TEST

START_TEST(test_name_relative_and_missing)
{
        _cleanup_free_ char *name = NULL, *dot = NULL;

        ck_assert_int_eq(mkdir(repo, 0755), 0);
        ck_assert_int_eq(chdir(repo), 0);
        ck_assert_int_eq(workspace_name(".", &name), 0);
        ck_assert_str_eq(name, "proj");
        ck_assert_int_eq(workspace_name("./", &dot), 0);
        ck_assert_str_eq(dot, "proj");
        ck_assert_int_eq(chdir("/"), 0);

        ck_assert_int_eq(workspace_name("/nonexistent/banger-workspace", &name), -ENOENT);
        ck_assert_int_eq(workspace_name("/", &name), -EINVAL);
}
END_TEST

static Suite *ctl_workspace_suite(void)
{
        Suite *s = suite_create("ctl-workspace");
        TCase *tc = tcase_create("list");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_list_tracked_and_untracked);
        tcase_add_test(tc, test_list_ignores_git_environment);
        tcase_add_test(tc, test_list_subdirectory);
        tcase_add_test(tc, test_list_submodule_and_nested_repo);
        tcase_add_test(tc, test_list_empty_repo);
        tcase_add_test(tc, test_list_not_git);
        tcase_add_test(tc, test_list_inside_git_dir);
        tcase_add_test(tc, test_list_missing_dir);
        tcase_add_test(tc, test_list_regular_file);
        tcase_add_test(tc, test_list_missing_git);
        suite_add_tcase(s, tc);

        tc = tcase_create("tar");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_tar_entries);
        tcase_add_test(tc, test_tar_keeps_file_mtime);
        tcase_add_test(tc, test_tar_submodule_is_empty_dir);
        tcase_add_test(tc, test_tar_skips_vanished_file);
        tcase_add_test(tc, test_tar_long_and_binary_names);
        tcase_add_loop_test(tc, test_tar_rejects_bad_paths, 0, ELEMENTSOF(bad_lists));
        tcase_add_test(tc, test_tar_rejects_fifo);
        tcase_add_test(tc, test_tar_ignores_dir_name);
        tcase_add_test(tc, test_tar_reader_gone);
        tcase_add_test(tc, test_tar_file_shrinks);
        tcase_add_test(tc, test_tar_file_grows);
        suite_add_tcase(s, tc);

        tc = tcase_create("digest");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_digest_stable);
        tcase_add_loop_test(tc, test_digest_changes, 0, ELEMENTSOF(digest_cases));
        tcase_add_test(tc, test_digest_of_nothing);
        suite_add_tcase(s, tc);

        tc = tcase_create("name");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_loop_test(tc, test_name, 0, ELEMENTSOF(name_cases));
        tcase_add_test(tc, test_name_long);
        tcase_add_test(tc, test_name_relative_and_missing);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(ctl_workspace_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
