#include <archive.h>
#include <archive_entry.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fileio.h"
#include "guest-config.h"
#include "hostkey.h"
#include "macro.h"
#include "workdisk.h"

#include "test-ext4-util.c"

/* The entry tables below leave trailing fields out on purpose. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define MIB       (UINT64_C(1024) * 1024)
#define DISK_SIZE (64 * MIB)
#define BIG_SIZE  (3 * 1024 * 1024 + 123)

static char tmpdir[] = "/tmp/test-workdisk-XXXXXX";
static char disk[sizeof(tmpdir) + 16];

static void setup(void)
{
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
        snprintf(disk, sizeof(disk), "%s/work.ext4", tmpdir);
        /* A builder that stops reading must not kill the test with SIGPIPE in the writer. */
        signal(SIGPIPE, SIG_IGN);
}

static void teardown(void)
{
        ck_assert_int_eq(rm_rf(tmpdir), 0);
        strcpy(tmpdir, "/tmp/test-workdisk-XXXXXX");
}

/* One tar entry: type 'f' file, 'd' directory, 'l' symlink, 'h' hardlink, 'p' fifo, 'c'
 * character device. A file of size > 0 gets pattern_byte() content, else data. */
typedef struct TarEntry {
        char type;
        const char *path;
        const char *data; /* file content, symlink or hardlink target */
        mode_t mode;      /* permission bits; 0 means 0644 or 0755 */
        size_t size;
} TarEntry;

static unsigned char pattern_byte(size_t i)
{
        return (unsigned char)(i * 7 + i / 4096 + 1);
}

static void write_entry(struct archive *a, const TarEntry *t)
{
        struct archive_entry *e = archive_entry_new();
        mode_t perm = t->mode ? t->mode : (t->type == 'd' ? 0755 : 0644);
        size_t size = t->size ? t->size : strlen(strempty(t->data));
        static const mode_t types[] = { ['f'] = AE_IFREG, ['d'] = AE_IFDIR, ['l'] = AE_IFLNK,
                                        ['h'] = AE_IFREG, ['p'] = AE_IFIFO, ['c'] = AE_IFCHR };

        archive_entry_set_pathname(e, t->path);
        archive_entry_set_mtime(e, 1700000000, 5);
        archive_entry_set_uid(e, 1000);
        archive_entry_set_gid(e, 1000);
        archive_entry_set_mode(e, types[(unsigned char)t->type] | perm);
        if (t->type == 'f')
                archive_entry_set_size(e, size);
        if (t->type == 'l')
                archive_entry_set_symlink(e, t->data);
        if (t->type == 'h')
                archive_entry_set_hardlink(e, t->data);
        ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
        archive_entry_free(e);

        if (t->type == 'f' && t->size) {
                unsigned char *buf = malloc(t->size);

                for (size_t i = 0; i < t->size; i++)
                        buf[i] = pattern_byte(i);
                ck_assert_int_eq(archive_write_data(a, buf, t->size), (la_ssize_t)t->size);
                free(buf);
        } else if (t->type == 'f' && size > 0) {
                ck_assert_int_eq(archive_write_data(a, t->data, size), (la_ssize_t)size);
        }
}

/* Writes the entries as a pax tar file in tmpdir and returns its path. */
static char *write_tar(const TarEntry *entries, size_t n)
{
        struct archive *a = archive_write_new();
        char *path;

        ck_assert_int_ge(asprintf(&path, "%s/workspace.tar", tmpdir), 0);
        ck_assert_int_eq(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
        ck_assert_int_eq(archive_write_open_filename(a, path), ARCHIVE_OK);
        for (size_t i = 0; i < n; i++)
                write_entry(a, &entries[i]);
        ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
        archive_write_free(a);
        return path;
}

/* A tar stream through a pipe, fed by a child process, as a caller passes it over the bus. */
typedef struct Stream {
        int fd;
        pid_t writer;
} Stream;

static Stream stream_open(const char *file)
{
        int fds[2];
        pid_t pid;

        ck_assert_int_eq(pipe(fds), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int in = open(file, O_RDONLY);
                char buf[65536];
                ssize_t n;

                close(fds[0]);
                while ((n = read(in, buf, sizeof(buf))) > 0)
                        if (write(fds[1], buf, n) != n)
                                _exit(1);
                _exit(0);
        }
        close(fds[1]);
        return (Stream){ .fd = fds[0], .writer = pid };
}

static void stream_close(Stream *s)
{
        close(s->fd);
        ck_assert_int_eq(waitpid(s->writer, NULL, 0), s->writer);
}

static const char host_key_pub[] =
        "ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIAECAwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        " root@dev1\n";

static WorkDiskContent base_content(void)
{
        return (WorkDiskContent){
                .config = "hostname=dev1\n",
                .authorized_keys = "",
                .host_key = "-----BEGIN OPENSSH PRIVATE KEY-----\nkey\n"
                            "-----END OPENSSH PRIVATE KEY-----\n",
                .host_key_pub = host_key_pub,
                .workspace_fd = -1,
        };
}

/* Builds the disk from entries in a workspace called "src". */
static int build_with_entries(const TarEntry *entries, size_t n, uint64_t size, char **ret_error)
{
        _cleanup_free_ char *tar = write_tar(entries, n);
        WorkDiskContent c = base_content();
        Stream s = stream_open(tar);
        int r;

        c.workspace_name = "src";
        c.workspace_fd = s.fd;
        r = workdisk_build(disk, size, &c, ret_error);
        stream_close(&s);
        return r;
}

/* Counts the disk and its temporary siblings in tmpdir. */
static unsigned count_disk_files(void)
{
        DIR *d = opendir(tmpdir);
        struct dirent *de;
        unsigned n = 0;

        ck_assert_ptr_nonnull(d);
        while ((de = readdir(d)))
                if (strstr(de->d_name, "work.ext4"))
                        n++;
        closedir(d);
        return n;
}

/* Runs debugfs -R REQUEST on the disk and returns what it printed on stdout. */
static char *debugfs_output(const char *request)
{
        _cleanup_free_ char *command = NULL;
        char buf[8192];
        size_t n;
        FILE *p;

        ck_assert_int_ge(
                asprintf(&command, "/usr/sbin/debugfs -R '%s' '%s' 2>/dev/null", request, disk), 0);
        p = popen(command, "r");
        ck_assert_ptr_nonnull(p);
        n = fread(buf, 1, sizeof(buf) - 1, p);
        buf[n] = '\0';
        ck_assert_int_eq(pclose(p), 0);
        return strdup(buf);
}

static const TarEntry full_workspace[] = {
        { 'd', "./" },
        { 'd', "./lib/", NULL, 0750 },
        { 'd', "./lib/nested/deeper/" },
        { 'f', "./lib/nested/deeper/leaf.c", "int leaf;\n" },
        { 'f', "./run.sh", "#!/bin/sh\necho hi\n", 0755 },
        { 'f', "./empty" },
        { 'f', "./big.bin", NULL, 0644, BIG_SIZE },
        { 'f', "./name with spaces.txt", "spaces\n" },
        { 'l', "./lib-link", "lib/nested" },
        { 'l', "./absolute-link", "/etc/hostname" },
        /* A file whose parent directory has no entry of its own. */
        { 'f', "docs/guide/intro.md", "# intro\n" },
};

START_TEST(workdisk_full_content)
{
        _cleanup_free_ char *tar = write_tar(full_workspace, ELEMENTSOF(full_workspace));
        _cleanup_free_ char *error = NULL, *config = NULL, *conf_out = NULL, *keys = NULL;
        _cleanup_free_ char *leaf = NULL, *spaces = NULL, *link = NULL, *big = NULL;
        _cleanup_free_ char *pub = NULL, *keys_out = NULL;
        GuestConfig gc = { .hostname = (char *)"dev1", .agent_port = (char *)"org.banger1.agent" };
        WorkDiskContent c = base_content();
        char *ssh_keys[] = { (char *)host_key_pub, NULL };
        struct ext2_inode_large inode;
        Stream s = stream_open(tar);
        ext2_filsys fs;
        struct stat st;

        ck_assert_int_eq(guest_config_format(&gc, &config), 0);
        ck_assert_int_eq(ssh_authorized_keys_build(ssh_keys, &keys, NULL), 0);
        c.config = config;
        c.authorized_keys = keys;
        c.workspace_name = "project";
        c.workspace_fd = s.fd;

        ck_assert_int_eq(workdisk_build(disk, DISK_SIZE, &c, &error), 0);
        ck_assert_int_ge(fcntl(s.fd, F_GETFD), 0); /* still open */
        stream_close(&s);
        ck_assert_ptr_null(error);

        ck_assert_int_eq(stat(disk, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0600);
        ck_assert_uint_eq((uint64_t)st.st_size, DISK_SIZE);
        ck_assert_uint_lt((uint64_t)st.st_blocks * 512, DISK_SIZE / 2); /* sparse */
        ck_assert_uint_eq(count_disk_files(), 1);
        ck_assert_int_eq(run_e2fsck(disk), 0);

        conf_out = debugfs_output("cat /" WORKDISK_CONFIG);
        ck_assert_str_eq(conf_out, config);
        keys_out = debugfs_output("cat /" WORKDISK_AUTHORIZED_KEYS);
        ck_assert_str_eq(keys_out, host_key_pub);

        fs = open_fs(disk);
        inode = fs_inode(fs, WORKDISK_META_DIR);
        ck_assert_uint_eq(inode.i_mode, LINUX_S_IFDIR | 0700);
        ck_assert_uint_eq(fs_uid(&inode), 0);
        ck_assert_uint_eq(fs_inode(fs, WORKDISK_CONFIG).i_mode, LINUX_S_IFREG | 0600);
        ck_assert_uint_eq(fs_inode(fs, WORKDISK_AUTHORIZED_KEYS).i_mode, LINUX_S_IFREG | 0600);
        ck_assert_uint_eq(fs_inode(fs, WORKDISK_HOST_KEY).i_mode, LINUX_S_IFREG | 0600);
        ck_assert_uint_eq(fs_inode(fs, WORKDISK_HOST_KEY_PUB).i_mode, LINUX_S_IFREG | 0644);
        pub = fs_read(fs, WORKDISK_HOST_KEY_PUB);
        ck_assert_str_eq(pub, host_key_pub);

        ck_assert_uint_eq(fs_inode(fs, "project").i_mode, LINUX_S_IFDIR | 0755);
        ck_assert_uint_eq(fs_inode(fs, "project/lib").i_mode, LINUX_S_IFDIR | 0750);
        leaf = fs_read(fs, "project/lib/nested/deeper/leaf.c");
        ck_assert_str_eq(leaf, "int leaf;\n");
        inode = fs_inode(fs, "project/run.sh");
        ck_assert_uint_eq(inode.i_mode, LINUX_S_IFREG | 0755);
        ck_assert_uint_eq(fs_uid(&inode), 0);
        ck_assert_uint_eq(inode_gid(inode), 0);
        ck_assert_uint_eq(inode.i_mtime, 1700000000);
        inode = fs_inode(fs, "project/empty");
        ck_assert_uint_eq(EXT2_I_SIZE(&inode), 0);
        spaces = fs_read(fs, "project/name with spaces.txt");
        ck_assert_str_eq(spaces, "spaces\n");
        link = fs_read(fs, "project/lib-link");
        ck_assert_str_eq(link, "lib/nested");
        ck_assert_uint_eq(fs_inode(fs, "project/lib-link").i_mode & LINUX_S_IFMT, LINUX_S_IFLNK);
        free(link);
        link = fs_read(fs, "project/absolute-link");
        ck_assert_str_eq(link, "/etc/hostname");
        ck_assert_uint_ne(fs_lookup(fs, "project/docs/guide/intro.md"), 0);

        big = fs_read(fs, "project/big.bin");
        inode = fs_inode(fs, "project/big.bin");
        ck_assert_uint_eq(EXT2_I_SIZE(&inode), BIG_SIZE);
        for (size_t i = 0; i < BIG_SIZE; i++)
                if ((unsigned char)big[i] != pattern_byte(i))
                        ck_abort_msg("big.bin differs at byte %zu", i);
        ext2fs_close_free(&fs);

        ck_assert_str_eq(GUEST_WORK_PATH(WORKDISK_CONFIG), "/work/.banger/vm.conf");
}
END_TEST

START_TEST(workdisk_without_workspace)
{
        _cleanup_free_ char *keys = NULL, *config = NULL;
        WorkDiskContent c = base_content();
        ext2_filsys fs;

        c.authorized_keys = NULL;
        ck_assert_int_eq(workdisk_build(disk, WORKDISK_SIZE_MIN, &c, NULL), 0);
        ck_assert_int_eq(run_e2fsck(disk), 0);

        fs = open_fs(disk);
        keys = fs_read(fs, WORKDISK_AUTHORIZED_KEYS);
        ck_assert_str_eq(keys, "");
        config = fs_read(fs, WORKDISK_CONFIG);
        ck_assert_str_eq(config, "hostname=dev1\n");
        ext2fs_close_free(&fs);
}
END_TEST

START_TEST(workdisk_empty_stream)
{
        _cleanup_free_ char *tar = NULL;
        WorkDiskContent c = base_content();
        Stream s;
        ext2_filsys fs;

        ck_assert_int_ge(asprintf(&tar, "%s/empty.tar", tmpdir), 0);
        ck_assert_int_eq(write_file_atomic(tar, "", 0, 0644), 0);
        s = stream_open(tar);
        c.workspace_name = "src";
        c.workspace_fd = s.fd;
        ck_assert_int_eq(workdisk_build(disk, WORKDISK_SIZE_MIN, &c, NULL), 0);
        stream_close(&s);

        fs = open_fs(disk);
        ck_assert_uint_eq(fs_inode(fs, "src").i_mode, LINUX_S_IFDIR | 0755);
        ext2fs_close_free(&fs);
}
END_TEST

#define LONG_NAME_64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define LONG_NAME    LONG_NAME_64 LONG_NAME_64 LONG_NAME_64 LONG_NAME_64

/* Each case is a workspace that must be rejected, the entry its error names, and the error
 * when it is not -EINVAL. */
static const struct {
        TarEntry entries[3];
        const char *named;
        int error;
} hostile[] = {
        { { { 'f', "../x", "escape" } }, "'../x'" },
        { { { 'f', "/abs", "absolute" } }, "'/abs'" },
        { { { 'd', "a" }, { 'f', "a/../../x", "escape" } }, "'a/../../x'" },
        { { { 'l', "dir", "/etc" }, { 'f', "dir/passwd", "root::0:0::/:/bin/sh\n" } },
          "'dir/passwd'" },
        { { { 'd', "a" }, { 'l', "a/up", ".." }, { 'f', "a/up/x", "through" } }, "'a/up/x'" },
        { { { 'f', "file", "data" }, { 'f', "file/x", "below a file" } }, "'file/x'" },
        { { { 'f', "target", "data" }, { 'h', "link", "target" } }, "'link'" },
        { { { 'p', "fifo" } }, "'fifo'" },
        { { { 'c', "null" } }, "'null'" },
        /* A component of 256 bytes, over ext4's limit of 255, in a directory and in a file. */
        { { { 'f', "d/" LONG_NAME "/x", "x" } }, "'d/" LONG_NAME "/x'", -ENAMETOOLONG },
        { { { 'f', "d/" LONG_NAME, "x" } }, "'d/" LONG_NAME "'", -ENAMETOOLONG },
};

START_TEST(workdisk_rejects_hostile_entries)
{
        _cleanup_free_ char *error = NULL;
        size_t n = 0;

        while (n < ELEMENTSOF(hostile[_i].entries) && hostile[_i].entries[n].type)
                n++;
        ck_assert_int_eq(build_with_entries(hostile[_i].entries, n, WORKDISK_SIZE_MIN, &error),
                         hostile[_i].error ?: -EINVAL);
        ck_assert_ptr_nonnull(error);
        ck_assert_msg(strstr(error, hostile[_i].named), "'%s' does not name %s", error,
                      hostile[_i].named);
        ck_assert_uint_eq(count_disk_files(), 0);
}
END_TEST

/* Returns the size in bytes that an -ENOSPC message names in "needs about N MiB". */
static uint64_t size_from_error(const char *error)
{
        const char *p = strstr(error, "needs about ");
        uint64_t mib = 0;

        ck_assert_ptr_nonnull(p);
        ck_assert_int_eq(sscanf(p, "needs about %" SCNu64 " MiB", &mib), 1);
        return mib * MIB;
}

START_TEST(workdisk_too_small_for_data)
{
        const TarEntry entries[] = {
                { 'f', "one.bin", NULL, 0644, 20 * MIB },
                { 'f', "two.bin", NULL, 0644, 20 * MIB },
                { 'f', "after.txt", "counted after the disk was full" },
        };
        _cleanup_free_ char *error = NULL;
        uint64_t needed;

        ck_assert_int_eq(
                build_with_entries(entries, ELEMENTSOF(entries), WORKDISK_SIZE_MIN, &error),
                -ENOSPC);
        ck_assert_ptr_nonnull(strstr(error, "does not fit in 16 MiB"));
        ck_assert_ptr_nonnull(strstr(error, "--work-size"));
        ck_assert_uint_eq(count_disk_files(), 0);

        /* The size named in the error is enough, and not wildly more than the 40 MiB of data. */
        needed = size_from_error(error);
        ck_assert_uint_ge(needed, 40 * MIB);
        ck_assert_uint_le(needed, 80 * MIB);
        free(error);
        error = NULL;
        ck_assert_int_eq(build_with_entries(entries, ELEMENTSOF(entries), needed, &error), 0);
        ck_assert_int_eq(run_e2fsck(disk), 0);
}
END_TEST

START_TEST(workdisk_too_small_for_inodes)
{
        enum { N = 3000 };
        TarEntry *entries = calloc(N, sizeof(TarEntry));
        char(*names)[32] = calloc(N, 32);
        _cleanup_free_ char *error = NULL;
        uint64_t needed;

        for (size_t i = 0; i < N; i++) {
                snprintf(names[i], sizeof(names[i]), "files/f%zu", i);
                entries[i] = (TarEntry){ 'f', names[i] };
        }
        /* 16 MiB has 2048 inodes. */
        ck_assert_int_eq(build_with_entries(entries, N, WORKDISK_SIZE_MIN, &error), -ENOSPC);
        ck_assert_uint_eq(count_disk_files(), 0);

        needed = size_from_error(error);
        free(error);
        error = NULL;
        ck_assert_int_eq(build_with_entries(entries, N, needed, &error), 0);
        ck_assert_int_eq(run_e2fsck(disk), 0);
        free(entries);
        free(names);
}
END_TEST

START_TEST(workdisk_size_below_minimum)
{
        WorkDiskContent c = base_content();
        _cleanup_free_ char *error = NULL;

        ck_assert_int_eq(workdisk_build(disk, WORKDISK_SIZE_MIN - 4096, &c, &error), -EINVAL);
        ck_assert_ptr_nonnull(strstr(error, "16 MiB"));
        ck_assert_ptr_nonnull(strstr(error, "--work-size"));
        ck_assert_uint_eq(count_disk_files(), 0);
}
END_TEST

START_TEST(workdisk_existing_path_kept)
{
        WorkDiskContent c = base_content();
        _cleanup_free_ char *error = NULL, *text = NULL;

        ck_assert_int_eq(write_file_atomic(disk, "keep", 4, 0644), 0);
        ck_assert_int_eq(workdisk_build(disk, WORKDISK_SIZE_MIN, &c, &error), -EEXIST);
        ck_assert_ptr_nonnull(strstr(error, disk));
        ck_assert_int_eq(read_full_file(disk, 16, &text, NULL), 0);
        ck_assert_str_eq(text, "keep");
        ck_assert_uint_eq(count_disk_files(), 1);
}
END_TEST

static const char *const bad_names[] = { "", ".", "..", ".banger", "lost+found", "a/b", "/abs" };

START_TEST(workdisk_bad_workspace_name)
{
        WorkDiskContent c = base_content();
        _cleanup_free_ char *error = NULL;

        c.workspace_name = bad_names[_i];
        c.workspace_fd = STDIN_FILENO;
        ck_assert_int_eq(workdisk_build(disk, WORKDISK_SIZE_MIN, &c, &error), -EINVAL);
        ck_assert_ptr_nonnull(strstr(error, "Workspace name"));
        ck_assert_uint_eq(count_disk_files(), 0);
}
END_TEST

START_TEST(workdisk_long_workspace_name)
{
        WorkDiskContent c = base_content();
        char name[257];

        memset(name, 'n', 256);
        name[256] = '\0';
        c.workspace_name = name;
        c.workspace_fd = STDIN_FILENO;
        ck_assert_int_eq(workdisk_build(disk, WORKDISK_SIZE_MIN, &c, NULL), -EINVAL);
}
END_TEST

START_TEST(workdisk_compressed_stream_rejected)
{
        _cleanup_free_ char *tar = write_tar(full_workspace, 3), *gz = NULL, *error = NULL;
        _cleanup_free_ char *data = NULL;
        WorkDiskContent c = base_content();
        size_t size = 0;
        Stream s;

        /* A gzip header in front of tar bytes, which libarchive detects as a gzip stream. */
        ck_assert_int_eq(read_full_file(tar, 1024 * 1024, &data, &size), 0);
        ck_assert_int_ge(asprintf(&gz, "%s/workspace.tar.gz", tmpdir), 0);
        memcpy(data, "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 10);
        ck_assert_int_eq(write_file_atomic(gz, data, size, 0644), 0);

        s = stream_open(gz);
        c.workspace_name = "src";
        c.workspace_fd = s.fd;
        ck_assert_int_eq(workdisk_build(disk, WORKDISK_SIZE_MIN, &c, &error), -EBADMSG);
        stream_close(&s);
        ck_assert_ptr_nonnull(strstr(error, "uncompressed tar"));
        ck_assert_uint_eq(count_disk_files(), 0);
}
END_TEST

START_TEST(workdisk_truncated_stream_rejected)
{
        const TarEntry entries[] = { { 'f', "big.bin", NULL, 0644, 1024 * 1024 } };
        _cleanup_free_ char *tar = write_tar(entries, 1), *error = NULL;
        WorkDiskContent c = base_content();
        Stream s;

        ck_assert_int_eq(truncate(tar, 512 * 1024), 0);
        s = stream_open(tar);
        c.workspace_name = "src";
        c.workspace_fd = s.fd;
        ck_assert_int_eq(workdisk_build(disk, WORKDISK_SIZE_MIN, &c, &error), -EBADMSG);
        stream_close(&s);
        ck_assert_ptr_nonnull(strstr(error, "'big.bin'"));
        ck_assert_uint_eq(count_disk_files(), 0);
}
END_TEST

static Suite *workdisk_suite(void)
{
        Suite *s = suite_create("workdisk");
        TCase *tc = tcase_create("core");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, workdisk_full_content);
        tcase_add_test(tc, workdisk_without_workspace);
        tcase_add_test(tc, workdisk_empty_stream);
        tcase_add_loop_test(tc, workdisk_rejects_hostile_entries, 0, ELEMENTSOF(hostile));
        tcase_add_test(tc, workdisk_too_small_for_data);
        tcase_add_test(tc, workdisk_too_small_for_inodes);
        tcase_add_test(tc, workdisk_size_below_minimum);
        tcase_add_test(tc, workdisk_existing_path_kept);
        tcase_add_loop_test(tc, workdisk_bad_workspace_name, 0, ELEMENTSOF(bad_names));
        tcase_add_test(tc, workdisk_long_workspace_name);
        tcase_add_test(tc, workdisk_compressed_stream_rejected);
        tcase_add_test(tc, workdisk_truncated_stream_rejected);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(workdisk_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
