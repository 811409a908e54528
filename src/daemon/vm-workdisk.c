#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon-config.h"
#include "fileio.h"
#include "hostkey.h"
#include "log.h"
#include "macro.h"
#include "strv.h"
#include "vm-workdisk.h"
#include "workdisk.h"

#define HOST_KEY_FILE_MAX (64 * 1024)
#define MIB               (UINT64_C(1024) * 1024)

void vm_work_disk_spec_done(VmWorkDiskSpec *s)
{
        free(s->authorized_keys);
        free(s->workspace_name);
        safe_close(s->workspace_fd);
        *s = (VmWorkDiskSpec){ .workspace_fd = -EBADF };
}

void vm_work_disk_request_done(VmWorkDiskRequest *r)
{
        strv_free(r->ssh_keys);
        *r = (VmWorkDiskRequest){ .workspace_fd = -EBADF };
}

static int invalid(char **ret_message, const char *format, ...)
        __attribute__((format(printf, 2, 3)));

static int invalid(char **ret_message, const char *format, ...)
{
        va_list ap;

        va_start(ap, format);
        if (vasprintf(ret_message, format, ap) < 0)
                *ret_message = NULL;
        va_end(ap);
        return -EINVAL;
}

/* Checks the workspace keys of req and copies its fd into *ret_fd. */
static int check_workspace(const char *vm_name, const VmWorkDiskRequest *req, int *ret_fd,
                           char **ret_message)
{
        int flags, fd;

        if (req->workspace_fd < 0) {
                if (req->workspace_name || req->workspace_path || req->workspace_digest)
                        return invalid(ret_message,
                                       "CreateVM spec keys 'workspace_name', 'workspace_path' "
                                       "and 'workspace_digest' of VM '%s' need the key "
                                       "'workspace', the fd of the workspace's tar stream",
                                       vm_name);
                *ret_fd = -EBADF;
                return 0;
        }
        if (!req->workspace_name || !req->workspace_path || !req->workspace_digest)
                return invalid(ret_message,
                               "CreateVM spec key 'workspace' of VM '%s' needs the keys "
                               "'workspace_name', 'workspace_path' and 'workspace_digest' too",
                               vm_name);
        if (vm_workspace_name_check(req->workspace_name) < 0)
                return invalid(ret_message,
                               "Invalid workspace name '%s' for VM '%s': use 1 to %d characters "
                               "of [A-Za-z0-9._-] that do not start with '.'",
                               req->workspace_name, vm_name, VM_WORKSPACE_NAME_MAX);
        if (vm_workspace_path_check(req->workspace_path) < 0)
                return invalid(ret_message,
                               "Invalid workspace path for VM '%s': pass the absolute path of "
                               "the directory, without control characters",
                               vm_name);
        if (vm_workspace_digest_check(req->workspace_digest) < 0)
                return invalid(ret_message,
                               "Invalid workspace digest '%s' for VM '%s': use %d lower-case "
                               "hex digits",
                               req->workspace_digest, vm_name, VM_WORKSPACE_DIGEST_LEN);

        flags = fcntl(req->workspace_fd, F_GETFL);
        if (flags < 0 || (flags & O_ACCMODE) == O_WRONLY || (flags & O_PATH))
                return invalid(ret_message,
                               "CreateVM spec key 'workspace' of VM '%s' is not a readable fd: "
                               "pass the read end of a pipe that carries the tar stream",
                               vm_name);
        fd = fcntl(req->workspace_fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return negative_errno();
        *ret_fd = fd;
        return 0;
}

int vm_work_disk_spec_from_request(const char *vm_name, const VmWorkDiskRequest *req,
                                   unsigned default_size_mib, VmWorkDiskSpec *ret,
                                   char **ret_message)
{
        _cleanup_(vm_work_disk_spec_done) VmWorkDiskSpec s = { .workspace_fd = -EBADF };
        _cleanup_free_ char *keys_error = NULL;
        int r;

        s.size_mib = req->size_mib > 0 ? req->size_mib : default_size_mib;
        if (s.size_mib < VM_WORK_DISK_MIB_MIN || s.size_mib > VM_WORK_DISK_MIB_MAX)
                return invalid(ret_message,
                               "Invalid work disk size %u MiB for VM '%s': use %u to %u MiB",
                               s.size_mib, vm_name, VM_WORK_DISK_MIB_MIN, VM_WORK_DISK_MIB_MAX);

        if (strv_length(req->ssh_keys) > SSH_AUTHORIZED_KEYS_MAX)
                return invalid(ret_message,
                               "VM '%s' got %zu SSH keys, more than the %d allowed: pass fewer "
                               "keys",
                               vm_name, strv_length(req->ssh_keys), SSH_AUTHORIZED_KEYS_MAX);
        r = ssh_authorized_keys_build(req->ssh_keys, &s.authorized_keys, &keys_error);
        if (r == -EINVAL)
                return invalid(ret_message, "Invalid SSH key for VM '%s': %s", vm_name,
                               strempty(keys_error));
        if (r < 0)
                return r;

        r = check_workspace(vm_name, req, &s.workspace_fd, ret_message);
        if (r < 0)
                return r;
        if (s.workspace_fd >= 0) {
                s.workspace_name = strdup(req->workspace_name);
                if (!s.workspace_name)
                        return -ENOMEM;
        }

        *ret = s;
        s = (VmWorkDiskSpec){ .workspace_fd = -EBADF };
        return 0;
}

static char *join(const char *dir, const char *name)
{
        char *p;

        return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

static int set_error(char **ret_error, int r, const char *format, const char *value)
{
        if (ret_error && !*ret_error && asprintf(ret_error, format, value, strerror(-r)) < 0)
                *ret_error = NULL;
        return r;
}

/* Reads the key files that ssh_hostkey_generate() wrote to dir. */
static int read_host_key(const char *dir, char **ret_key, char **ret_pub, char **ret_error)
{
        _cleanup_free_ char *key_path = join(dir, SSH_HOST_KEY_NAME);
        _cleanup_free_ char *pub_path = join(dir, SSH_HOST_KEY_PUB_NAME);
        int r;

        if (!key_path || !pub_path)
                return -ENOMEM;
        r = read_full_file(key_path, HOST_KEY_FILE_MAX, ret_key, NULL);
        if (r < 0)
                return set_error(ret_error, r, "Failed to read the host key '%s': %s", key_path);
        r = read_full_file(pub_path, HOST_KEY_FILE_MAX, ret_pub, NULL);
        if (r < 0) {
                free(TAKE_PTR(*ret_key));
                return set_error(ret_error, r, "Failed to read the host key '%s': %s", pub_path);
        }
        return 0;
}

/* Fills the host key fields of rec from the public key line, which ends with a newline. */
static int record_host_key(VmRecord *rec, const char *pub)
{
        _cleanup_free_ char *line = strndup(pub, strcspn(pub, "\n"));
        char *fingerprint;
        int r;

        if (!line)
                return -ENOMEM;
        r = ssh_pubkey_fingerprint(line, &fingerprint);
        if (r < 0)
                return r;
        free(rec->host_key);
        free(rec->host_key_fingerprint);
        rec->host_key = TAKE_PTR(line);
        rec->host_key_fingerprint = fingerprint;
        return 0;
}

int vm_work_disk_build(const char *dir, const char *config, const VmWorkDiskSpec *spec,
                       VmRecord *rec, char **ret_error)
{
        _cleanup_free_ char *comment = NULL, *key = NULL, *pub = NULL, *disk = NULL,
                            *key_path = NULL;
        WorkDiskContent content;
        int r;

        if (asprintf(&comment, "%s.banger", rec->name) < 0)
                return -ENOMEM;
        r = ssh_hostkey_generate(dir, comment, ret_error);
        if (r < 0)
                return r;
        r = read_host_key(dir, &key, &pub, ret_error);
        if (r < 0)
                return r;
        r = record_host_key(rec, pub);
        if (r < 0)
                return set_error(ret_error, r, "Failed to read the host key of VM '%s': %s",
                                 rec->name);

        disk = join(dir, VM_WORK_DISK_NAME);
        key_path = join(dir, SSH_HOST_KEY_NAME);
        if (!disk || !key_path)
                return -ENOMEM;
        content = (WorkDiskContent){
                .config = config,
                .authorized_keys = spec->authorized_keys,
                .host_key = key,
                .host_key_pub = pub,
                .workspace_name = spec->workspace_name,
                .workspace_fd = spec->workspace_fd,
        };
        r = workdisk_build(disk, (uint64_t)spec->size_mib * MIB, &content, ret_error);
        if (r < 0)
                return r;
        rec->work_size_mib = spec->size_mib;

        /* The work disk contains the only copy of the private key that the VM needs. */
        if (unlink(key_path) < 0)
                return set_error(ret_error, negative_errno(), "Failed to remove '%s': %s",
                                 key_path);
        return 0;
}

int vm_known_hosts_write(const char *state_dir, VmRecord *const *records, size_t n)
{
        _cleanup_free_ SshKnownHost *hosts = calloc(n ?: 1, sizeof(SshKnownHost));
        _cleanup_free_ char *dir = join(state_dir, VM_KNOWN_HOSTS_DIR);
        _cleanup_free_ char *path = join(state_dir, VM_KNOWN_HOSTS);
        size_t n_hosts = 0;

        if (!hosts || !dir || !path)
                return -ENOMEM;
        /* Every user's ssh reads the file, whatever bangerd's umask. */
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return negative_errno();
        if (chmod(dir, 0755) < 0)
                return negative_errno();

        for (size_t i = 0; i < n; i++) {
                if (!records[i]->host_key)
                        continue;
                hosts[n_hosts++] = (SshKnownHost){
                        .name = records[i]->name,
                        .id = records[i]->id,
                        .public_key = records[i]->host_key,
                };
        }
        return ssh_known_hosts_write(path, hosts, n_hosts);
}
