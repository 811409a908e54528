/* Installs SSH files from a fake work disk into a directory tree standing for the guest's root.
 * Setting owners needs root, so every test is skipped for other users. */

#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "guest-ssh.h"
#include "macro.h"

#define HOST_KEY     "-----BEGIN OPENSSH PRIVATE KEY-----\nnew\n-----END OPENSSH PRIVATE KEY-----\n"
#define HOST_KEY_PUB "ssh-ed25519 AAAAnew vm\n"
#define KEYS         "ssh-ed25519 AAAAalice alice\nssh-rsa AAAAbob bob\n"

static char root[] = "/tmp/banger-test-guest-ssh.XXXXXX";

static char *root_path(const char *relative)
{
        char *path;

        ck_assert_int_ge(asprintf(&path, "%s/%s", root, relative), 0);
        return path;
}

static void put_file(const char *relative, const char *text, mode_t mode)
{
        _cleanup_free_ char *path = root_path(relative);

        ck_assert_int_eq(write_file_atomic(path, text, strlen(text), mode), 0);
}

static void put_dir(const char *relative, mode_t mode)
{
        _cleanup_free_ char *path = root_path(relative);

        ck_assert_int_eq(mkdir_p(path, mode), 0);
        ck_assert_int_eq(chmod(path, mode), 0);
}

static void check_file(const char *relative, const char *text, mode_t mode, uid_t uid, gid_t gid)
{
        _cleanup_free_ char *path = root_path(relative), *content = NULL;
        struct stat st;
        size_t size;

        ck_assert_msg(lstat(path, &st) == 0, "'%s' is missing", relative);
        ck_assert_msg(S_ISREG(st.st_mode), "'%s' is not a regular file", relative);
        ck_assert_msg((st.st_mode & 07777) == mode, "'%s' has mode %o", relative,
                      (unsigned)(st.st_mode & 07777));
        ck_assert_uint_eq(st.st_uid, uid);
        ck_assert_uint_eq(st.st_gid, gid);
        ck_assert_int_eq(read_full_file(path, 1024 * 1024, &content, &size), 0);
        ck_assert_str_eq(content, text);
}

static void check_dir(const char *relative, mode_t mode, uid_t uid, gid_t gid)
{
        _cleanup_free_ char *path = root_path(relative);
        struct stat st;

        ck_assert_msg(lstat(path, &st) == 0, "'%s' is missing", relative);
        ck_assert_msg(S_ISDIR(st.st_mode), "'%s' is not a directory", relative);
        ck_assert_msg((st.st_mode & 07777) == mode, "'%s' has mode %o", relative,
                      (unsigned)(st.st_mode & 07777));
        ck_assert_uint_eq(st.st_uid, uid);
        ck_assert_uint_eq(st.st_gid, gid);
}

static bool exists(const char *relative)
{
        _cleanup_free_ char *path = root_path(relative);
        struct stat st;

        return lstat(path, &st) == 0;
}

static void setup(void)
{
        ck_assert_ptr_nonnull(mkdtemp(root));
        put_dir("work/.banger", 0700);
        put_file("work/.banger/ssh_host_ed25519_key", HOST_KEY, 0600);
        put_file("work/.banger/ssh_host_ed25519_key.pub", HOST_KEY_PUB, 0644);
        put_file("work/.banger/authorized_keys", KEYS, 0600);
        put_dir("etc", 0755);
        put_file("etc/passwd",
                 "root:x:0:0:root:/root:/bin/sh\n"
                 "app:x:1000:1001:App:/home/app:/bin/sh\n"
                 "homeless:x:1002:1002:No home:/home/none:/bin/sh\n"
                 "top:x:1003:1003:Home is /:/:/bin/sh\n",
                 0644);
        put_file("etc/group", "root:x:0:\napp:x:1001:\nstaff:x:50:app\n", 0644);
        put_dir("home/app", 0755);
}

static void teardown(void)
{
        ck_assert_int_eq(rm_rf(root), 0);
        memcpy(root + sizeof(root) - 7, "XXXXXX", 6);
}

static bool skip_unless_root(void)
{
        if (geteuid() == 0)
                return false;
        fprintf(stderr, "test-guest-ssh: skipped, setting file owners needs root\n");
        return true;
}

START_TEST(host_key_replaces_image_keys)
{
        if (skip_unless_root())
                return;
        put_dir("etc/ssh", 0755);
        put_file("etc/ssh/ssh_host_rsa_key", "old rsa", 0600);
        put_file("etc/ssh/ssh_host_ecdsa_key.pub", "old ecdsa", 0644);
        put_file("etc/ssh/ssh_host_ed25519_key", "old ed25519", 0644);
        put_file("etc/ssh/sshd_config", "Port 22\n", 0644);

        ck_assert_int_eq(guest_ssh_install_host_key(root), 0);

        check_file("etc/ssh/ssh_host_ed25519_key", HOST_KEY, 0600, 0, 0);
        check_file("etc/ssh/ssh_host_ed25519_key.pub", HOST_KEY_PUB, 0644, 0, 0);
        ck_assert(!exists("etc/ssh/ssh_host_rsa_key"));
        ck_assert(!exists("etc/ssh/ssh_host_ecdsa_key.pub"));
        ck_assert(!exists("etc/ssh/ssh_host_ed25519_key.banger-new"));
        check_file("etc/ssh/sshd_config", "Port 22\n", 0644, 0, 0);
}
END_TEST

START_TEST(host_key_creates_ssh_dir)
{
        if (skip_unless_root())
                return;

        ck_assert_int_eq(guest_ssh_install_host_key(root), 0);

        check_dir("etc/ssh", 0755, 0, 0);
        check_file("etc/ssh/ssh_host_ed25519_key", HOST_KEY, 0600, 0, 0);
}
END_TEST

START_TEST(host_key_replaces_symlink)
{
        _cleanup_free_ char *outside = root_path("outside");
        _cleanup_free_ char *link = root_path("etc/ssh/ssh_host_ed25519_key");

        if (skip_unless_root())
                return;
        put_file("outside", "untouched", 0644);
        put_dir("etc/ssh", 0755);
        ck_assert_int_eq(symlink(outside, link), 0);

        ck_assert_int_eq(guest_ssh_install_host_key(root), 0);

        check_file("etc/ssh/ssh_host_ed25519_key", HOST_KEY, 0600, 0, 0);
        check_file("outside", "untouched", 0644, 0, 0);
}
END_TEST

START_TEST(host_key_missing_on_work_disk)
{
        _cleanup_free_ char *key = root_path("work/.banger/ssh_host_ed25519_key");

        if (skip_unless_root())
                return;
        put_dir("etc/ssh", 0755);
        put_file("etc/ssh/ssh_host_rsa_key", "old rsa", 0600);
        ck_assert_int_eq(unlink(key), 0);

        ck_assert_int_eq(guest_ssh_install_host_key(root), -ENOENT);

        /* Nothing was removed before the new key was read. */
        check_file("etc/ssh/ssh_host_rsa_key", "old rsa", 0600, 0, 0);
}
END_TEST

START_TEST(authorized_keys_for_root_and_user)
{
        if (skip_unless_root())
                return;
        /* A ~/.ssh that sshd's StrictModes would reject is fixed. */
        put_dir("home/app/.ssh", 0777);
        put_file("home/app/.ssh/authorized_keys", "ssh-ed25519 AAAAold image-key\n", 0644);

        ck_assert_int_eq(guest_ssh_install_authorized_keys(root, "app"), 0);

        check_dir("root", 0700, 0, 0);
        check_dir("root/.ssh", 0700, 0, 0);
        check_file("root/.ssh/authorized_keys", KEYS, 0600, 0, 0);
        check_dir("home/app/.ssh", 0700, 1000, 1001);
        check_file("home/app/.ssh/authorized_keys", KEYS, 0600, 1000, 1001);
        check_dir("home/app", 0755, 0, 0);
}
END_TEST

START_TEST(authorized_keys_user_with_group)
{
        if (skip_unless_root())
                return;

        ck_assert_int_eq(guest_ssh_install_authorized_keys(root, "1000:staff"), 0);

        check_file("home/app/.ssh/authorized_keys", KEYS, 0600, 1000, 50);
}
END_TEST

/* Users whose keys are not installed: root gets them all the same. */
static const char *const skipped_users[] = {
        "root", "0", "nobody-here", "4242", "homeless", "top",
};

START_TEST(authorized_keys_skipped_users)
{
        const char *user = skipped_users[_i];

        if (skip_unless_root())
                return;

        ck_assert_int_eq(guest_ssh_install_authorized_keys(root, user), 0);

        check_file("root/.ssh/authorized_keys", KEYS, 0600, 0, 0);
        ck_assert(!exists("home/app/.ssh"));
        ck_assert(!exists("home/none"));
        /* A home directory of "/" would put the keys in /.ssh. */
        if (!streq(user, "top"))
                ck_assert(!exists(".ssh"));
}
END_TEST

START_TEST(authorized_keys_home_is_root_dir)
{
        if (skip_unless_root())
                return;

        ck_assert_int_eq(guest_ssh_install_authorized_keys(root, "top"), 0);

        check_file(".ssh/authorized_keys", KEYS, 0600, 1003, 1003);
}
END_TEST

START_TEST(authorized_keys_empty)
{
        if (skip_unless_root())
                return;
        put_file("work/.banger/authorized_keys", "", 0600);
        put_dir("root/.ssh", 0700);
        put_file("root/.ssh/authorized_keys", "ssh-ed25519 AAAAold image-key\n", 0600);

        ck_assert_int_eq(guest_ssh_install_authorized_keys(root, NULL), 0);

        check_file("root/.ssh/authorized_keys", "", 0600, 0, 0);
}
END_TEST

START_TEST(authorized_keys_ssh_dir_is_file)
{
        if (skip_unless_root())
                return;
        put_dir("root", 0700);
        put_file("root/.ssh", "not a directory", 0644);

        ck_assert_int_eq(guest_ssh_install_authorized_keys(root, NULL), -ENOTDIR);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("guest-ssh");
        TCase *tc = tcase_create("install");
        SRunner *sr;
        int failed;

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, host_key_replaces_image_keys);
        tcase_add_test(tc, host_key_creates_ssh_dir);
        tcase_add_test(tc, host_key_replaces_symlink);
        tcase_add_test(tc, host_key_missing_on_work_disk);
        tcase_add_test(tc, authorized_keys_for_root_and_user);
        tcase_add_test(tc, authorized_keys_user_with_group);
        tcase_add_loop_test(tc, authorized_keys_skipped_users, 0, ELEMENTSOF(skipped_users));
        tcase_add_test(tc, authorized_keys_home_is_root_dir);
        tcase_add_test(tc, authorized_keys_empty);
        tcase_add_test(tc, authorized_keys_ssh_dir_is_file);
        suite_add_tcase(s, tc);

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
