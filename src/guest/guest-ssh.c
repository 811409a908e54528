#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest-paths.h"
#include "guest-ssh.h"
#include "guest-util.h"
#include "hostkey.h"
#include "macro.h"

#define SSH_DIR "/etc/ssh"
/* An authorized_keys file of SSH_AUTHORIZED_KEYS_MAX keys of SSH_PUBKEY_LINE_MAX bytes. */
#define AUTHORIZED_KEYS_MAX ((size_t)SSH_AUTHORIZED_KEYS_MAX * (SSH_PUBKEY_LINE_MAX + 1))
#define HOST_KEY_MAX        (64 * 1024)

static int read_work_file(const char *root, const char *relative, size_t max, char **ret,
                          size_t *ret_size)
{
        _cleanup_free_ char *path = NULL;
        int r;

        if (asprintf(&path, "%s" GUEST_WORK_MOUNT "/%s", root, relative) < 0)
                return -ENOMEM;
        r = guest_read_file(path, max, ret, ret_size);
        if (r < 0)
                return guest_log_errno(r, "Failed to read '%s'", path);
        return 0;
}

static int write_all(int fd, const char *data, size_t size)
{
        while (size > 0) {
                ssize_t n = write(fd, data, size);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                data += n;
                size -= (size_t)n;
        }
        return 0;
}

/* Replaces path with a file of data, mode and owner, written under a temporary name and
 * renamed over path, so that no reader sees a partial file and a symlink at path is replaced
 * rather than followed. */
static int replace_file(const char *path, const char *data, size_t size, mode_t mode, uid_t uid,
                        gid_t gid)
{
        _cleanup_free_ char *temp = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (asprintf(&temp, "%s.banger-new", path) < 0)
                return -ENOMEM;
        if (unlink(temp) < 0 && errno != ENOENT)
                return guest_log_errno(-errno, "Failed to remove '%s'", temp);

        fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd < 0)
                return guest_log_errno(-errno, "Failed to create '%s'", temp);
        r = write_all(fd, data, size);
        if (r >= 0 && (fchown(fd, uid, gid) < 0 || fchmod(fd, mode) < 0))
                r = negative_errno();
        if (r >= 0 && rename(temp, path) < 0)
                r = negative_errno();
        if (r < 0) {
                (void)unlink(temp);
                return guest_log_errno(r, "Failed to write '%s'", path);
        }
        return 0;
}

/* Creates the directory path with mode and owner. An existing directory keeps its mode and
 * owner unless strict, which sets them as sshd's StrictModes requires of ~/.ssh. */
static int make_dir(const char *path, mode_t mode, uid_t uid, gid_t gid, bool strict)
{
        struct stat st;

        if (mkdir(path, mode) >= 0) {
                if (chown(path, uid, gid) < 0 || chmod(path, mode) < 0)
                        return guest_log_errno(-errno, "Failed to set the owner and mode of '%s'",
                                               path);
                return 0;
        }
        if (errno != EEXIST)
                return guest_log_errno(-errno, "Failed to create '%s'", path);
        if (lstat(path, &st) < 0)
                return guest_log_errno(-errno, "Failed to look up '%s'", path);
        if (!S_ISDIR(st.st_mode))
                return guest_log_errno(-ENOTDIR, "Failed to create directory '%s'", path);
        if (strict && (chown(path, uid, gid) < 0 || chmod(path, mode) < 0))
                return guest_log_errno(-errno, "Failed to set the owner and mode of '%s'", path);
        return 0;
}

/* Removes the files in dir whose names start with "ssh_host_". */
static int remove_host_keys(const char *dir)
{
        DIR *d = opendir(dir);
        struct dirent *de;
        int r = 0;

        if (!d)
                return guest_log_errno(-errno, "Failed to open '%s'", dir);
        while ((de = readdir(d))) {
                if (!strneq(de->d_name, "ssh_host_", strlen("ssh_host_")) || de->d_type == DT_DIR)
                        continue;
                if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT) {
                        r = guest_log_errno(-errno, "Failed to remove '%s/%s'", dir, de->d_name);
                        break;
                }
        }
        closedir(d);
        return r;
}

int guest_ssh_install_host_key(const char *root)
{
        _cleanup_free_ char *key = NULL, *key_pub = NULL, *dir = NULL, *path = NULL,
                            *path_pub = NULL;
        size_t key_size, key_pub_size;
        int r;

        r = read_work_file(root, WORKDISK_HOST_KEY, HOST_KEY_MAX, &key, &key_size);
        if (r < 0)
                return r;
        r = read_work_file(root, WORKDISK_HOST_KEY_PUB, HOST_KEY_MAX, &key_pub, &key_pub_size);
        if (r < 0)
                return r;

        if (asprintf(&dir, "%s%s", root, SSH_DIR) < 0 ||
            asprintf(&path, "%s/%s", dir, SSH_HOST_KEY_NAME) < 0 ||
            asprintf(&path_pub, "%s/%s", dir, SSH_HOST_KEY_PUB_NAME) < 0)
                return -ENOMEM;
        r = make_dir(dir, 0755, 0, 0, false);
        if (r < 0)
                return r;
        r = remove_host_keys(dir);
        if (r < 0)
                return r;

        r = replace_file(path, key, key_size, 0600, 0, 0);
        if (r < 0)
                return r;
        return replace_file(path_pub, key_pub, key_pub_size, 0644, 0, 0);
}

/* Writes HOME/.ssh/authorized_keys under root, owned by uid and gid. */
static int install_for(const char *root, const char *home, uid_t uid, gid_t gid, const char *keys,
                       size_t size)
{
        _cleanup_free_ char *dir = NULL, *path = NULL;
        int r;

        if (asprintf(&dir, "%s%s/.ssh", root, streq(home, "/") ? "" : home) < 0 ||
            asprintf(&path, "%s/authorized_keys", dir) < 0)
                return -ENOMEM;
        r = make_dir(dir, 0700, uid, gid, true);
        if (r < 0)
                return r;
        return replace_file(path, keys, size, 0600, uid, gid);
}

/* Installs the keys for the image's user. A user that the image does not list, or whose home
 * directory does not exist, is skipped. */
static int install_for_user(const char *root, const char *user, const char *keys, size_t size)
{
        _cleanup_free_ char *home = NULL, *home_path = NULL;
        struct stat st;
        uid_t uid;
        gid_t gid;
        int r;

        r = guest_user_resolve(root, user, &uid, &gid);
        if (r == -ESRCH || (r >= 0 && uid == 0))
                return 0;
        if (r < 0)
                return guest_log_errno(r, "Failed to resolve user '%s'", user);

        r = guest_user_home(root, uid, &home);
        if (r == -ESRCH)
                return 0;
        if (r < 0)
                return guest_log_errno(r, "Failed to find the home directory of user '%s'", user);
        if (asprintf(&home_path, "%s%s", root, home) < 0)
                return -ENOMEM;
        if (stat(home_path, &st) < 0 || !S_ISDIR(st.st_mode)) {
                guest_log("Home directory '%s' of user '%s' does not exist, so its "
                          "authorized_keys are not installed",
                          home, user);
                return 0;
        }
        return install_for(root, home, uid, gid, keys, size);
}

int guest_ssh_install_authorized_keys(const char *root, const char *user)
{
        _cleanup_free_ char *keys = NULL, *root_home = NULL;
        size_t size;
        int r;

        r = read_work_file(root, WORKDISK_AUTHORIZED_KEYS, AUTHORIZED_KEYS_MAX, &keys, &size);
        if (r < 0)
                return r;

        if (asprintf(&root_home, "%s/root", root) < 0)
                return -ENOMEM;
        r = make_dir(root_home, 0700, 0, 0, false);
        if (r < 0)
                return r;
        r = install_for(root, "/root", 0, 0, keys, size);
        if (r < 0)
                return r;

        if (isempty(user))
                return 0;
        return install_for_user(root, user, keys, size);
}
