/* Builds work disks with the real ssh-keygen and reads them back with debugfs and e2fsck from
 * e2fsprogs. */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fileio.h"
#include "hostkey.h"
#include "macro.h"
#include "store.h"
#include "vm-workdisk.h"

#define CONFIG "hostname=dev1\narg=/bin/sh\n"
#define KEYS   "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGQvci4JRxHk7yd0pzkEkfbUCMCMrcklz0wqHdbQd5kt a\n"
#define ID_1   "0f8fad5b-d9cb-469f-a165-70867728950e"
#define ID_2   "7c9e6679-7425-40de-944b-e07fc1f90ae7"

static char tmpdir[] = "/tmp/test-vm-workdisk-XXXXXX";

static void setup(void)
{
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
        ck_assert_int_eq(rm_rf(tmpdir), 0);
        strcpy(tmpdir, "/tmp/test-vm-workdisk-XXXXXX");
}

static char *tmp_path(const char *name)
{
        char *p;

        ck_assert_int_ge(asprintf(&p, "%s/%s", tmpdir, name), 0);
        return p;
}

static VmRecord *new_record(const char *name, const char *id)
{
        VmRecord *r = calloc(1, sizeof(VmRecord));

        ck_assert_ptr_nonnull(r);
        r->name = strdup(name);
        r->id = strdup(id);
        ck_assert_ptr_nonnull(r->name);
        ck_assert_ptr_nonnull(r->id);
        return r;
}

/* Runs command through sh and returns its standard output. */
static char *run(const char *command)
{
        _cleanup_free_ char *out = tmp_path("out"), *full = NULL;
        char *text;
        int status;

        ck_assert_int_ge(asprintf(&full, "%s >'%s' 2>/dev/null", command, out), 0);
        status = system(full);
        ck_assert_msg(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "'%s' failed",
                      command);
        ck_assert_int_eq(read_full_file(out, 1024 * 1024, &text, NULL), 0);
        return text;
}

/* Returns the content of path in the ext4 image disk. */
static char *disk_cat(const char *disk, const char *path)
{
        _cleanup_free_ char *command = NULL;

        ck_assert_int_ge(asprintf(&command, "debugfs -R 'cat %s' '%s'", path, disk), 0);
        return run(command);
}

static void check_fsck(const char *disk)
{
        _cleanup_free_ char *command = NULL, *out = NULL;

        ck_assert_int_ge(asprintf(&command, "e2fsck -fn '%s'", disk), 0);
        out = run(command);
}

static VmWorkDiskSpec spec_without_workspace(void)
{
        VmWorkDiskSpec s = { .size_mib = 32, .workspace_fd = -EBADF };

        s.authorized_keys = strdup(KEYS);
        ck_assert_ptr_nonnull(s.authorized_keys);
        return s;
}

START_TEST(build_without_workspace)
{
        _cleanup_(vm_record_freep) VmRecord *rec = new_record("dev1", ID_1);
        _cleanup_(vm_work_disk_spec_done) VmWorkDiskSpec spec = spec_without_workspace();
        _cleanup_free_ char *error = NULL, *disk = tmp_path(VM_WORK_DISK_NAME),
                            *key = tmp_path(SSH_HOST_KEY_NAME),
                            *pub = tmp_path(SSH_HOST_KEY_PUB_NAME), *pub_text = NULL,
                            *fingerprint = NULL, *config = NULL, *keys = NULL, *disk_pub = NULL,
                            *disk_key = NULL;
        struct stat st;

        ck_assert_msg(vm_work_disk_build(tmpdir, CONFIG, &spec, rec, &error) == 0, "%s",
                      strempty(error));

        ck_assert_ptr_nonnull(rec->host_key);
        ck_assert(strneq(rec->host_key, "ssh-ed25519 ", strlen("ssh-ed25519 ")));
        ck_assert_ptr_null(strchr(rec->host_key, '\n'));
        ck_assert_ptr_nonnull(strstr(rec->host_key, " dev1.banger"));
        ck_assert_int_eq(ssh_pubkey_fingerprint(rec->host_key, &fingerprint), 0);
        ck_assert_str_eq(rec->host_key_fingerprint, fingerprint);
        ck_assert_uint_eq(rec->work_size_mib, 32);

        /* The private key is on the disk only, the public key stays beside it. */
        ck_assert_int_eq(access(key, F_OK), -1);
        ck_assert_int_eq(read_full_file(pub, 4096, &pub_text, NULL), 0);
        ck_assert(strneq(pub_text, rec->host_key, strlen(rec->host_key)));

        ck_assert_int_eq(stat(disk, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0600);
        ck_assert_uint_eq(st.st_size, 32 * 1024 * 1024);
        check_fsck(disk);
        config = disk_cat(disk, "/.banger/vm.conf");
        ck_assert_str_eq(config, CONFIG);
        keys = disk_cat(disk, "/.banger/authorized_keys");
        ck_assert_str_eq(keys, KEYS);
        disk_pub = disk_cat(disk, "/.banger/ssh_host_ed25519_key.pub");
        ck_assert_str_eq(disk_pub, pub_text);
        disk_key = disk_cat(disk, "/.banger/ssh_host_ed25519_key");
        ck_assert(strneq(disk_key, "-----BEGIN OPENSSH PRIVATE KEY-----",
                         strlen("-----BEGIN OPENSSH PRIVATE KEY-----")));
}
END_TEST

START_TEST(build_with_workspace)
{
        _cleanup_(vm_record_freep) VmRecord *rec = new_record("dev1", ID_1);
        _cleanup_(vm_work_disk_spec_done) VmWorkDiskSpec spec = spec_without_workspace();
        _cleanup_free_ char *error = NULL, *disk = tmp_path(VM_WORK_DISK_NAME),
                            *src = tmp_path("src"), *tar = tmp_path("ws.tar"), *command = NULL,
                            *content = NULL;

        ck_assert_int_eq(mkdir(src, 0755), 0);
        {
                _cleanup_free_ char *file = tmp_path("src/hello.txt");

                ck_assert_int_eq(write_file_atomic(file, "hello\n", 6, 0644), 0);
        }
        ck_assert_int_ge(asprintf(&command, "tar -C '%s' -cf '%s' hello.txt", src, tar), 0);
        free(run(command));
        spec.workspace_name = strdup("proj");
        spec.workspace_fd = open(tar, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(spec.workspace_fd, 0);

        ck_assert_msg(vm_work_disk_build(tmpdir, CONFIG, &spec, rec, &error) == 0, "%s",
                      strempty(error));

        check_fsck(disk);
        content = disk_cat(disk, "/proj/hello.txt");
        ck_assert_str_eq(content, "hello\n");
}
END_TEST

START_TEST(build_workspace_too_big)
{
        _cleanup_(vm_record_freep) VmRecord *rec = new_record("dev1", ID_1);
        _cleanup_(vm_work_disk_spec_done) VmWorkDiskSpec spec = spec_without_workspace();
        _cleanup_free_ char *error = NULL, *disk = tmp_path(VM_WORK_DISK_NAME),
                            *src = tmp_path("src"), *tar = tmp_path("ws.tar"), *command = NULL;

        ck_assert_int_eq(mkdir(src, 0755), 0);
        ck_assert_int_ge(asprintf(&command,
                                  "head -c 40000000 /dev/urandom >'%s/big' && tar -C '%s' -cf "
                                  "'%s' big",
                                  src, src, tar),
                         0);
        free(run(command));
        spec.size_mib = 16;
        spec.workspace_name = strdup("proj");
        spec.workspace_fd = open(tar, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(spec.workspace_fd, 0);

        ck_assert_int_eq(vm_work_disk_build(tmpdir, CONFIG, &spec, rec, &error), -ENOSPC);
        ck_assert_ptr_nonnull(error);
        ck_assert_ptr_nonnull(strstr(error, "--work-size"));
        ck_assert_int_eq(access(disk, F_OK), -1);
}
END_TEST

START_TEST(build_rejects_existing_key)
{
        _cleanup_(vm_record_freep) VmRecord *rec = new_record("dev1", ID_1);
        _cleanup_(vm_work_disk_spec_done) VmWorkDiskSpec spec = spec_without_workspace();
        _cleanup_free_ char *error = NULL, *key = tmp_path(SSH_HOST_KEY_NAME),
                            *disk = tmp_path(VM_WORK_DISK_NAME);

        ck_assert_int_eq(write_file_atomic(key, "old", 3, 0600), 0);

        ck_assert_int_eq(vm_work_disk_build(tmpdir, CONFIG, &spec, rec, &error), -EEXIST);
        ck_assert_ptr_nonnull(error);
        ck_assert_ptr_null(rec->host_key);
        ck_assert_int_eq(access(disk, F_OK), -1);
}
END_TEST

START_TEST(known_hosts_lists_keyed_records)
{
        _cleanup_(vm_record_freep) VmRecord *a = new_record("dev1", ID_1);
        _cleanup_(vm_record_freep) VmRecord *b = new_record("old", ID_2);
        _cleanup_(vm_record_freep) VmRecord *c = new_record("dev2", ID_2);
        _cleanup_free_ char *path = tmp_path(VM_KNOWN_HOSTS), *dir = tmp_path(VM_KNOWN_HOSTS_DIR),
                            *text = NULL;
        VmRecord *records[] = { a, b, c };
        struct stat st;
        mode_t old_umask;

        a->host_key =
                strdup("ssh-ed25519 "
                       "AAAAC3NzaC1lZDI1NTE5AAAAIGQvci4JRxHk7yd0pzkEkfbUCMCMrcklz0wqHdbQd5kt x");
        c->host_key = strdup(
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGQvci4JRxHk7yd0pzkEkfbUCMCMrcklz0wqHdbQd5kt");

        /* bangerd runs with umask 0027, which must not hide the file from users. */
        old_umask = umask(0077);
        ck_assert_int_eq(vm_known_hosts_write(tmpdir, records, ELEMENTSOF(records)), 0);
        umask(old_umask);

        ck_assert_int_eq(stat(dir, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0755);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0644);
        ck_assert_int_eq(read_full_file(path, 4096, &text, NULL), 0);
        ck_assert_str_eq(text,
                         "dev1.banger," ID_1 " ssh-ed25519 "
                         "AAAAC3NzaC1lZDI1NTE5AAAAIGQvci4JRxHk7yd0pzkEkfbUCMCMrcklz0wqHdbQd5kt\n"
                         "dev2.banger," ID_2 " ssh-ed25519 "
                         "AAAAC3NzaC1lZDI1NTE5AAAAIGQvci4JRxHk7yd0pzkEkfbUCMCMrcklz0wqHdbQd5kt\n");
}
END_TEST

START_TEST(known_hosts_empty_and_rewritten)
{
        _cleanup_(vm_record_freep) VmRecord *a = new_record("dev1", ID_1);
        _cleanup_free_ char *path = tmp_path(VM_KNOWN_HOSTS), *text = NULL;
        VmRecord *records[] = { a };

        a->host_key = strdup(KEYS);
        a->host_key[strlen(a->host_key) - 1] = '\0';
        ck_assert_int_eq(vm_known_hosts_write(tmpdir, records, 1), 0);
        ck_assert_int_eq(read_full_file(path, 4096, &text, NULL), 0);
        ck_assert(strneq(text, "dev1.banger,", strlen("dev1.banger,")));
        free(TAKE_PTR(text));

        ck_assert_int_eq(vm_known_hosts_write(tmpdir, NULL, 0), 0);
        ck_assert_int_eq(read_full_file(path, 4096, &text, NULL), 0);
        ck_assert_str_eq(text, "");
}
END_TEST

START_TEST(known_hosts_bad_key_keeps_file)
{
        _cleanup_(vm_record_freep) VmRecord *a = new_record("dev1", ID_1);
        _cleanup_free_ char *path = tmp_path(VM_KNOWN_HOSTS), *text = NULL;
        VmRecord *records[] = { a };

        ck_assert_int_eq(vm_known_hosts_write(tmpdir, NULL, 0), 0);
        a->host_key = strdup("ssh-ed25519 not-base64!");
        ck_assert_int_eq(vm_known_hosts_write(tmpdir, records, 1), -EINVAL);
        ck_assert_int_eq(read_full_file(path, 4096, &text, NULL), 0);
        ck_assert_str_eq(text, "");
}
END_TEST

#define DIGEST "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* A request with a workspace on a pipe. The caller closes fds[0] and fds[1]. */
static VmWorkDiskRequest workspace_request(int fds[2])
{
        VmWorkDiskRequest req = {
                .workspace_name = "proj",
                .workspace_path = "/home/alice/proj",
                .workspace_digest = DIGEST,
        };

        ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
        req.workspace_fd = fds[0];
        return req;
}

START_TEST(request_defaults)
{
        VmWorkDiskRequest req = { .workspace_fd = -EBADF };
        _cleanup_(vm_work_disk_spec_done) VmWorkDiskSpec spec = { .workspace_fd = -EBADF };
        _cleanup_free_ char *message = NULL;

        ck_assert_int_eq(vm_work_disk_spec_from_request("dev1", &req, 1024, &spec, &message), 0);
        ck_assert_ptr_null(message);
        ck_assert_str_eq(spec.authorized_keys, "");
        ck_assert_uint_eq(spec.size_mib, 1024);
        ck_assert_ptr_null(spec.workspace_name);
        ck_assert_int_lt(spec.workspace_fd, 0);
}
END_TEST

START_TEST(request_keys_size_and_workspace)
{
        char *keys[] = {
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGQvci4JRxHk7yd0pzkEkfbUCMCMrcklz0wqHdbQd5kt "
                "a",
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGQvci4JRxHk7yd0pzkEkfbUCMCMrcklz0wqHdbQd5kt",
                NULL
        };
        _cleanup_(vm_work_disk_spec_done) VmWorkDiskSpec spec = { .workspace_fd = -EBADF };
        _cleanup_free_ char *message = NULL;
        int fds[2];
        VmWorkDiskRequest req = workspace_request(fds);

        req.ssh_keys = keys;
        req.size_mib = 16;
        ck_assert_int_eq(vm_work_disk_spec_from_request("dev1", &req, 1024, &spec, &message), 0);
        ck_assert_str_eq(spec.authorized_keys,
                         "ssh-ed25519 "
                         "AAAAC3NzaC1lZDI1NTE5AAAAIGQvci4JRxHk7yd0pzkEkfbUCMCMrcklz0wqHdbQd5kt a\n"
                         "ssh-ed25519 "
                         "AAAAC3NzaC1lZDI1NTE5AAAAIGQvci4JRxHk7yd0pzkEkfbUCMCMrcklz0wqHdbQd5kt\n");
        ck_assert_uint_eq(spec.size_mib, 16);
        ck_assert_str_eq(spec.workspace_name, "proj");
        /* A copy of the fd, which stays open when the message's fd closes. */
        ck_assert_int_ge(spec.workspace_fd, 3);
        ck_assert_int_ne(spec.workspace_fd, fds[0]);
        close(fds[0]);
        ck_assert_int_eq(write(fds[1], "x", 1), 1);
        {
                char c;

                ck_assert_int_eq(read(spec.workspace_fd, &c, 1), 1);
        }
        close(fds[1]);
}
END_TEST

/* Changes that make a valid request with a workspace invalid, each with a part of the message
 * it must give. */
static void bad_key(VmWorkDiskRequest *r)
{
        static char *keys[] = {
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGQvci4JRxHk7yd0pzkEkfbUCMCMrcklz0wqHdbQd5kt",
                "ssh-ed25519 not-base64", NULL
        };
        r->ssh_keys = keys;
}
static void size_too_small(VmWorkDiskRequest *r)
{
        r->size_mib = 15;
}
static void size_too_big(VmWorkDiskRequest *r)
{
        r->size_mib = 1024 * 1024 + 1;
}
static void no_workspace_fd(VmWorkDiskRequest *r)
{
        r->workspace_fd = -EBADF;
}
static void no_workspace_name(VmWorkDiskRequest *r)
{
        r->workspace_name = NULL;
}
static void no_workspace_digest(VmWorkDiskRequest *r)
{
        r->workspace_digest = NULL;
}
static void bad_workspace_name(VmWorkDiskRequest *r)
{
        r->workspace_name = "../etc";
}
static void bad_workspace_path(VmWorkDiskRequest *r)
{
        r->workspace_path = "relative/proj";
}
static void bad_workspace_digest(VmWorkDiskRequest *r)
{
        r->workspace_digest = "ABC";
}
static void workspace_fd_write_only(VmWorkDiskRequest *r)
{
        r->workspace_fd = r->workspace_fd + 1; /* the write end of the pipe */
}
static void workspace_fd_closed(VmWorkDiskRequest *r)
{
        r->workspace_fd = 1000;
}

static const struct {
        void (*change)(VmWorkDiskRequest *r);
        const char *message_part;
} bad_requests[] = {
        { bad_key, "SSH key 2" },
        { size_too_small, "15 MiB" },
        { size_too_big, "1048577 MiB" },
        { no_workspace_fd, "need the key 'workspace'" },
        { no_workspace_name, "'workspace_name'" },
        { no_workspace_digest, "'workspace_digest'" },
        { bad_workspace_name, "'../etc'" },
        { bad_workspace_path, "absolute path" },
        { bad_workspace_digest, "'ABC'" },
        { workspace_fd_write_only, "not a readable fd" },
        { workspace_fd_closed, "not a readable fd" },
};

START_TEST(request_rejected)
{
        _cleanup_(vm_work_disk_spec_done) VmWorkDiskSpec spec = { .workspace_fd = -EBADF };
        _cleanup_free_ char *message = NULL;
        int fds[2];
        VmWorkDiskRequest req = workspace_request(fds);

        ck_assert_int_eq(fds[1], fds[0] + 1);
        bad_requests[_i].change(&req);
        ck_assert_int_eq(vm_work_disk_spec_from_request("dev1", &req, 1024, &spec, &message),
                         -EINVAL);
        ck_assert_ptr_nonnull(message);
        ck_assert_msg(strstr(message, bad_requests[_i].message_part), "message '%s' lacks '%s'",
                      message, bad_requests[_i].message_part);
        ck_assert_ptr_nonnull(strstr(message, "'dev1'"));
        ck_assert_ptr_null(spec.authorized_keys);
        ck_assert_int_lt(spec.workspace_fd, 0);
        close(fds[0]);
        close(fds[1]);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("vm-workdisk");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, build_without_workspace);
        tcase_add_test(tc, build_with_workspace);
        tcase_add_test(tc, build_workspace_too_big);
        tcase_add_test(tc, build_rejects_existing_key);
        tcase_add_test(tc, known_hosts_lists_keyed_records);
        tcase_add_test(tc, known_hosts_empty_and_rewritten);
        tcase_add_test(tc, known_hosts_bad_key_keeps_file);
        tcase_add_test(tc, request_defaults);
        tcase_add_test(tc, request_keys_size_and_workspace);
        tcase_add_loop_test(tc, request_rejected, 0, ELEMENTSOF(bad_requests));
        suite_add_tcase(s, tc);

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
