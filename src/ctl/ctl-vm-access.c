#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ctl-bus.h"
#include "ctl-verbs.h"
#include "ctl-vm-access.h"
#include "ctl-workspace.h"
#include "fileio.h"
#include "guest-paths.h"
#include "hostkey.h"
#include "macro.h"
#include "strv.h"

#define KEY_FILE_MAX (1024 * 1024)
#define HOST_SUFFIX  ".banger"
#define PROXY_BUFFER (64 * 1024)

/* SSH keys */

/* Appends the public key lines of text, read from path, to keys. Empty lines and lines that
 * start with '#' are skipped. An invalid line is an error with strict and skipped without.
 * Returns the number of keys added. */
static int keys_from_text(const char *path, char *text, bool strict, char ***keys)
{
        unsigned line_number = 0;
        int n = 0, r;

        for (char *line = text, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                line_number++;
                if (line[strspn(line, " \t\r")] == '\0' || line[0] == '#')
                        continue;
                if (ssh_pubkey_parse(line, NULL, NULL) < 0) {
                        if (!strict)
                                continue;
                        return ctl_log_errno(-EINVAL,
                                             "Invalid SSH public key on line %u of '%s': pass a "
                                             "file in the format of id_ed25519.pub",
                                             line_number, path);
                }
                r = strv_extend(keys, line);
                if (r < 0)
                        return ctl_log_errno(r, "Failed to read '%s'", path);
                n++;
        }
        return n;
}

static int keys_from_file(const char *path, bool strict, char ***keys)
{
        _cleanup_free_ char *text = NULL;
        int r;

        r = read_full_file(path, KEY_FILE_MAX, &text, NULL);
        if (r < 0 && !strict)
                return 0;
        if (r < 0)
                return ctl_log_errno(r, "Failed to read SSH public key file '%s'", path);
        r = keys_from_text(path, text, strict, keys);
        if (r == 0 && strict)
                return ctl_log_errno(-EINVAL,
                                     "SSH public key file '%s' contains no key: pass a file in "
                                     "the format of id_ed25519.pub",
                                     path);
        return r;
}

static const char *home_dir(void)
{
        const char *home = getenv("HOME");
        struct passwd *pw;

        if (!isempty(home))
                return home;
        pw = getpwuid(getuid());
        return pw ? pw->pw_dir : NULL;
}

/* Reads the keys of the files ~/.ssh/NAME.pub, in the order of their names, skipping what is not a
 * public key. */
static int default_keys(char ***keys)
{
        _cleanup_free_ char *pattern = NULL;
        const char *home = home_dir();
        glob_t g = {};
        int r = 0;

        if (!home)
                return 0;
        r = ctl_format(&pattern, "%s/.ssh/*.pub", home);
        if (r < 0)
                return r;
        if (glob(pattern, 0, NULL, &g) != 0)
                return 0;
        for (size_t i = 0; i < g.gl_pathc && r >= 0; i++)
                r = keys_from_file(g.gl_pathv[i], false, keys);
        globfree(&g);
        return r < 0 ? r : 0;
}

/* Collects the keys of --ssh-key, or of ~/.ssh/NAME.pub without it. */
static int collect_keys(const CtlArgs *args, char ***ret)
{
        _cleanup_strv_free_ char **keys = NULL;
        int r;

        keys = calloc(1, sizeof(char *));
        if (!keys)
                return ctl_log_errno(-ENOMEM, "Failed to read SSH keys");
        if (!args->ssh_keys) {
                r = default_keys(&keys);
                if (r < 0)
                        return r;
                if (strv_length(keys) == 0)
                        fprintf(stderr,
                                "bangerctl: Warning: no SSH public key found in ~/.ssh/*.pub, so "
                                "ssh to VM '%s' will not work: pass --ssh-key FILE.pub ('vm "
                                "exec' works without a key)\n",
                                args->name);
        }
        for (char **f = args->ssh_keys; f && *f; f++) {
                r = keys_from_file(*f, true, &keys);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(keys);
        return 0;
}

/* Workspaces */

typedef struct CtlWorkspace {
        char *dir;    /* canonical path on this host */
        char *name;   /* directory under /work in the guest */
        char **paths; /* files to copy */
        char *digest;
} CtlWorkspace;

static void workspace_done(CtlWorkspace *w)
{
        free(w->dir);
        free(w->name);
        strv_free(w->paths);
        free(w->digest);
        *w = (CtlWorkspace){};
}

/* Lists and digests the workspace at dir. Prints the failure unless quiet. */
static int workspace_prepare(const char *dir, bool quiet, CtlWorkspace *ret)
{
        _cleanup_(workspace_done) CtlWorkspace w = {};
        _cleanup_free_ char *error = NULL;
        int r;

        w.dir = realpath(dir, NULL);
        if (!w.dir)
                return quiet ? negative_errno()
                             : ctl_log_errno(negative_errno(), "Failed to find workspace '%s'",
                                             dir);
        r = workspace_name(w.dir, &w.name);
        if (r == -EINVAL && !quiet)
                return ctl_log_errno(r,
                                     "Workspace directory '%s' has no ASCII letter, digit, '_' or "
                                     "'-' in its name: rename it or copy the tree to a directory "
                                     "with such a name",
                                     dir);
        if (r < 0)
                return quiet ? r : ctl_log_errno(r, "Failed to name workspace '%s'", dir);
        r = workspace_list(w.dir, &w.paths, &error);
        if (r < 0 && !quiet)
                fprintf(stderr, "bangerctl: Failed to list the files of workspace '%s': %s\n", dir,
                        error ?: strerror(-r));
        if (r < 0)
                return r;
        r = workspace_digest(w.dir, w.paths, &w.digest);
        if (r < 0)
                return quiet ? r : ctl_log_errno(r, "Failed to read workspace '%s'", dir);

        *ret = w;
        w = (CtlWorkspace){};
        return 0;
}

struct CtlUpload {
        CtlWorkspace workspace;
        int fd; /* the write end of the pipe */
        pthread_t thread;
        int result;
        char *error;
};

static void *upload_thread(void *userdata)
{
        CtlUpload *u = userdata;
        sigset_t pipe_signal;

        /* A reader that goes away makes the write fail with EPIPE instead of killing
         * bangerctl. SIGPIPE of a write goes to the thread that wrote. */
        sigemptyset(&pipe_signal);
        sigaddset(&pipe_signal, SIGPIPE);
        (void)pthread_sigmask(SIG_BLOCK, &pipe_signal, NULL);

        u->result =
                workspace_write_tar(u->workspace.dir, u->workspace.paths, u->fd, NULL, &u->error);
        u->fd = safe_close(u->fd);
        return NULL;
}

/* Starts writing the tar of w into a new pipe and returns its read end in *ret_fd. */
static int upload_start(CtlWorkspace *w, CtlUpload **ret, int *ret_fd)
{
        CtlUpload *u = calloc(1, sizeof(CtlUpload));
        int fds[2], r;

        if (!u)
                return ctl_log_errno(-ENOMEM, "Failed to copy workspace '%s'", w->dir);
        if (pipe2(fds, O_CLOEXEC) < 0) {
                free(u);
                return ctl_log_errno(negative_errno(), "Failed to copy workspace '%s'", w->dir);
        }
        u->workspace = *w;
        *w = (CtlWorkspace){};
        u->fd = fds[1];
        r = pthread_create(&u->thread, NULL, upload_thread, u);
        if (r != 0) {
                safe_close(fds[0]);
                safe_close(fds[1]);
                workspace_done(&u->workspace);
                free(u);
                return ctl_log_errno(-r, "Failed to start copying a workspace");
        }
        *ret = u;
        *ret_fd = fds[0];
        return 0;
}

int ctl_upload_finish(CtlUpload *u, int result)
{
        if (!u)
                return result;
        (void)pthread_join(u->thread, NULL);
        if (u->result < 0 && (result >= 0 || u->result != -EPIPE))
                fprintf(stderr, "bangerctl: Failed to copy workspace '%s': %s\n", u->workspace.dir,
                        u->error ?: strerror(-u->result));
        if (result >= 0 && u->result < 0)
                result = u->result;
        workspace_done(&u->workspace);
        free(u->error);
        free(u);
        return result;
}

/* Appends the workspace keys of the CreateVM spec and starts the upload. */
static int append_workspace(sd_bus_message *m, const char *dir, CtlUpload **ret_upload)
{
        _cleanup_(workspace_done) CtlWorkspace w = {};
        _cleanup_close_ int fd = -EBADF;
        CtlUpload *u;
        int r;

        r = workspace_prepare(dir, false, &w);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "{sv}{sv}{sv}", "workspace_name", "s", w.name,
                                  "workspace_path", "s", w.dir, "workspace_digest", "s", w.digest);
        if (r < 0)
                return ctl_log_errno(r, "Failed to copy workspace '%s'", dir);

        r = upload_start(&w, &u, &fd);
        if (r < 0)
                return r;
        /* The message keeps a copy of fd, which reaches bangerd. */
        r = sd_bus_message_append(m, "{sv}", "workspace", "h", fd);
        if (r < 0) {
                fd = safe_close(fd);
                (void)ctl_upload_finish(u, r);
                return ctl_log_errno(r, "Failed to copy workspace '%s'", dir);
        }
        *ret_upload = u;
        return 0;
}

int ctl_create_spec_append_access(sd_bus_message *m, const CtlArgs *args, CtlUpload **ret_upload)
{
        _cleanup_strv_free_ char **keys = NULL;
        int r;

        *ret_upload = NULL;
        r = collect_keys(args, &keys);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'e', "sv");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", "ssh_keys");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'v', "as");
        if (r >= 0)
                r = sd_bus_message_append_strv(m, keys);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0 && args->work_size_mib > 0)
                r = sd_bus_message_append(m, "{sv}", "work_size_mib", "u", args->work_size_mib);
        if (r < 0)
                return ctl_log_errno(r, "Failed to create VM '%s'", args->name);

        if (!args->workspace)
                return 0;
        return append_workspace(m, args->workspace, ret_upload);
}

/* The workspace properties of a VM, as strings that are empty when unset. */
typedef struct VmWorkspace {
        const char *name;
        const char *path;
        const char *digest;
} VmWorkspace;

static const char *json_string_of(json_object *o, const char *key)
{
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return "";
        return json_object_get_string(v);
}

/* Warns when the workspace on this host differs from the copy in the VM. A workspace that is
 * gone or unreadable here, such as another user's, gets no warning. */
static void warn_if_changed(const char *vm_name, const VmWorkspace *ws)
{
        _cleanup_(workspace_done) CtlWorkspace w = {};
        struct stat st;

        if (isempty(ws->path) || stat(ws->path, &st) < 0 || !S_ISDIR(st.st_mode))
                return;
        if (workspace_prepare(ws->path, true, &w) < 0 || streq(w.digest, ws->digest))
                return;
        fprintf(stderr,
                "bangerctl: Warning: workspace '%s' changed since it was copied into VM '%s': "
                "run 'bangerctl vm sync %s' to copy it again\n",
                ws->path, vm_name, vm_name);
}

int ctl_exec_workspace(sd_bus *bus, const char *path, const char *vm_name, char **ret_cwd)
{
        _cleanup_free_ char *what = NULL;
        json_object *properties = NULL;
        VmWorkspace ws;
        int r;

        r = ctl_format(&what, "Failed to run a command in VM '%s'", vm_name);
        if (r < 0)
                return r;
        r = ctl_get_properties(bus, path, BANGER_VM_IFACE, what, &properties);
        if (r < 0)
                return r;

        ws = (VmWorkspace){
                .name = json_string_of(properties, "Workspace"),
                .path = json_string_of(properties, "WorkspacePath"),
                .digest = json_string_of(properties, "WorkspaceDigest"),
        };
        *ret_cwd = NULL;
        if (!isempty(ws.name)) {
                r = ctl_format(ret_cwd, GUEST_WORK_MOUNT "/%s", ws.name);
                if (r >= 0)
                        warn_if_changed(vm_name, &ws);
        }
        json_object_put(properties);
        return r;
}

/* vm sync */

/* Reads the host path of the VM's workspace and lists and digests it. */
static int sync_prepare(sd_bus *bus, const char *path, const char *what, CtlWorkspace *ret)
{
        json_object *properties = NULL;
        const char *dir;
        int r;

        r = ctl_get_properties(bus, path, BANGER_VM_IFACE, what, &properties);
        if (r < 0)
                return r;
        dir = json_string_of(properties, "WorkspacePath");
        if (isempty(dir))
                r = ctl_log_errno(-ENOENT,
                                  "%s: it has no workspace, only VMs created with --workspace "
                                  "DIR have one",
                                  what);
        else
                r = workspace_prepare(dir, false, ret);
        json_object_put(properties);
        return r;
}

int verb_vm_sync(sd_bus *bus, const CtlArgs *args)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_free_ char *what = NULL, *path = NULL, *digest = NULL;
        _cleanup_(workspace_done) CtlWorkspace w = {};
        _cleanup_close_ int fd = -EBADF;
        CtlUpload *u = NULL;
        int r;

        r = ctl_format(&what, "Failed to sync the workspace of VM '%s'", args->name);
        if (r < 0)
                return r;
        r = ctl_get_object(bus, "GetVM", args->name, what, &path);
        if (r >= 0)
                r = sync_prepare(bus, path, what, &w);
        if (r >= 0)
                r = ctl_message_new(bus, &m, path, BANGER_VM_IFACE, "SyncWorkspace");
        if (r < 0)
                return r;
        digest = strdup(w.digest);
        if (!digest)
                return ctl_log_errno(-ENOMEM, "%s", what);

        r = upload_start(&w, &u, &fd);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "hs", fd, digest);
        fd = safe_close(fd);
        if (r < 0)
                r = ctl_log_errno(r, "%s", what);
        else
                r = ctl_call(bus, m, CTL_TIMEOUT_INFINITE, what, NULL);
        /* Drops the message's copy of the pipe, so that the thread cannot wait for a reader. */
        m = sd_bus_message_unref(m);
        return ctl_upload_finish(u, r);
}

/* vm ssh */

static int vm_address(sd_bus *bus, const char *vm_name, const char *what, char **ret)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *path = NULL;
        const char *address;
        int r;

        r = ctl_get_object(bus, "GetVM", vm_name, what, &path);
        if (r >= 0)
                r = ctl_get_property(bus, path, BANGER_VM_IFACE, "Address", "s", what, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "s", &address);
        if (r < 0)
                return ctl_log_errno(r, "%s: invalid Address property", what);
        if (isempty(address))
                return ctl_log_errno(-EADDRNOTAVAIL,
                                     "%s: it has no address yet, start it with 'bangerctl vm "
                                     "start %s'",
                                     what, vm_name);
        return ctl_format(ret, "%s", address);
}

int verb_vm_ssh(sd_bus *bus, const CtlArgs *args)
{
        _cleanup_free_ char *what = NULL, *address = NULL, *alias = NULL;
        _cleanup_strv_free_ char **argv = NULL;
        int r;

        r = ctl_format(&what, "Failed to connect to VM '%s'", args->name);
        if (r < 0)
                return r;
        r = vm_address(bus, args->name, what, &address);
        if (r < 0)
                return r;
        r = ctl_format(&alias, "HostKeyAlias=%s" HOST_SUFFIX, args->name);
        if (r < 0)
                return r;

        /* The pin in banger's known_hosts is keyed by NAME.banger, never by the address. */
        const char *const words[] = {
                "ssh",
                "-o",
                "UserKnownHostsFile=" CTL_KNOWN_HOSTS,
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "CheckHostIP=no",
                "-o",
                alias,
                "-l",
                args->user ?: "root",
                address,
        };

        r = 0;
        for (size_t i = 0; i < ELEMENTSOF(words) && r >= 0; i++)
                r = strv_extend(&argv, words[i]);
        /* "--" ends ssh's options, so a command that starts with '-' stays the command. */
        if (r >= 0 && args->command)
                r = strv_extend(&argv, "--");
        for (char *const *word = args->command; word && *word && r >= 0; word++)
                r = strv_extend(&argv, *word);
        if (r < 0)
                return ctl_log_errno(r, "%s", what);

        fflush(stdout);
        execvp(argv[0], argv);
        return ctl_log_errno(negative_errno(), "%s: failed to run 'ssh', install openssh-client",
                             what);
}

/* vm ssh-proxy */

/* Returns the VM name in host, "NAME.banger" in any letter case, or NULL for another name. */
static char *vm_name_of_host(const char *host)
{
        size_t len = strlen(host), suffix = strlen(HOST_SUFFIX);

        if (len <= suffix || strcasecmp(host + len - suffix, HOST_SUFFIX) != 0)
                return NULL;
        return strndup(host, len - suffix);
}

static int proxy_connect(const char *address, uint16_t port, int *ret_fd)
{
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
        int fd;

        if (inet_pton(AF_INET, address, &sa.sin_addr) != 1)
                return -EINVAL;
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int r = negative_errno();

                safe_close(fd);
                return r;
        }
        *ret_fd = fd;
        return 0;
}

/* Copies one read from from_fd to to_fd. Returns 0 at end of file, 1 after data. */
static int proxy_copy(int from_fd, int to_fd, char *buf)
{
        ssize_t n = read(from_fd, buf, PROXY_BUFFER);
        int r;

        if (n < 0)
                return errno == EINTR || errno == EAGAIN ? 1 : negative_errno();
        if (n == 0)
                return 0;
        r = loop_write(to_fd, buf, (size_t)n);
        return r < 0 ? r : 1;
}

/* Copies stdin to sock and sock to stdout until sock ends. The end of stdin is passed on as a
 * shutdown of the socket's sending side. */
static int proxy_pump(int sock)
{
        _cleanup_free_ char *buf = malloc(PROXY_BUFFER);
        struct pollfd p[2] = { { .fd = STDIN_FILENO, .events = POLLIN },
                               { .fd = sock, .events = POLLIN } };

        if (!buf)
                return -ENOMEM;
        for (;;) {
                int r;

                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (p[1].revents) {
                        r = proxy_copy(sock, STDOUT_FILENO, buf);
                        if (r <= 0)
                                return r;
                }
                if (p[0].revents) {
                        r = proxy_copy(STDIN_FILENO, sock, buf);
                        if (r < 0)
                                return r;
                        if (r == 0) {
                                (void)shutdown(sock, SHUT_WR);
                                p[0].fd = -1;
                        }
                }
        }
}

int verb_vm_ssh_proxy(sd_bus *bus, const CtlArgs *args)
{
        _cleanup_free_ char *name = vm_name_of_host(args->name), *what = NULL, *address = NULL;
        _cleanup_close_ int sock = -EBADF;
        int r;

        if (!name)
                return ctl_log_errno(-EINVAL,
                                     "Host '%s' is not a banger VM: use NAME" HOST_SUFFIX
                                     " for the VM called NAME",
                                     args->name);
        r = ctl_format(&what, "Failed to connect to port %u of VM '%s'", args->proxy_port, name);
        if (r < 0)
                return r;
        r = vm_address(bus, name, what, &address);
        if (r < 0)
                return r;
        r = proxy_connect(address, args->proxy_port, &sock);
        if (r < 0)
                return ctl_log_errno(r, "%s at %s", what, address);

        /* Writing to a closed stdout fails with EPIPE instead of killing bangerctl. */
        (void)signal(SIGPIPE, SIG_IGN);
        r = proxy_pump(sock);
        if (r < 0 && r != -EPIPE && r != -ECONNRESET)
                return ctl_log_errno(r, "%s", what);
        return 0;
}
