#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "config.h"
#include "catalog.h"
#include "daemon-config.h"
#include "log.h"
#include "macro.h"
#include "registry.h"
#include "strv.h"

#define USEC_PER_SEC 1000000ULL

/* Limits that keep a typo from asking for an absurd VM or timeout. */
#define VCPUS_MAX       256u
#define MEMORY_MIB_MAX  (1024u * 1024u)
#define TIMEOUT_SEC_MAX (7ULL * 24 * 3600)

/* A /16 has room for as many VM slots as banger-helper's tap names allow, and a /30 for one. */
#define SUBNET_PREFIX_MIN 16u
#define SUBNET_PREFIX_MAX 30u

static const char *const vm_backend_names[_VM_BACKEND_MAX] = {
        [VM_BACKEND_AUTO] = "auto",
        [VM_BACKEND_QEMU] = "qemu",
        [VM_BACKEND_FIRECRACKER] = "firecracker",
};

const char *vm_backend_to_string(VmBackend b)
{
        if (b < 0 || b >= _VM_BACKEND_MAX)
                return NULL;
        return vm_backend_names[b];
}

VmBackend vm_backend_from_string(const char *s)
{
        for (size_t i = 0; s && i < ELEMENTSOF(vm_backend_names); i++)
                if (streq(s, vm_backend_names[i]))
                        return (VmBackend)i;
        return _VM_BACKEND_INVALID;
}

VmBackend daemon_config_choose_backend(const DaemonConfig *c)
{
        struct stat st;

        if (c->backend != VM_BACKEND_AUTO)
                return c->backend;
        if (c->firecracker_path && stat(c->firecracker_path, &st) >= 0 && S_ISREG(st.st_mode) &&
            access(c->firecracker_path, X_OK) >= 0)
                return VM_BACKEND_FIRECRACKER;
        return VM_BACKEND_QEMU;
}

DaemonConfig *daemon_config_free(DaemonConfig *c)
{
        if (!c)
                return NULL;
        free(c->default_kernel);
        free(c->qemu_path);
        free(c->firecracker_path);
        free(c->catalog_url);
        strv_free(c->insecure_registries);
        free(c->credentials_file);
        free(c->ca_file);
        strv_free(c->mirrors);
        free(c->os);
        free(c->architecture);
        free(c->state_dir);
        free(c->cache_dir);
        free(c->runtime_dir);
        free(c);
        return NULL;
}

/* systemd passes a colon-separated list when a unit names several directories; banger uses the
 * first. */
static int directory_from_env(const char *variable, const char *fallback, char **ret)
{
        const char *e = getenv(variable);
        size_t n;
        char *p;

        if (isempty(e) || e[0] != '/')
                e = fallback;
        n = strcspn(e, ":");
        p = strndup(e, n);
        if (!p)
                return -ENOMEM;
        *ret = p;
        return 0;
}

int daemon_config_new(DaemonConfig **ret)
{
        _cleanup_(daemon_config_freep) DaemonConfig *c = calloc(1, sizeof(DaemonConfig));
        int r;

        if (!c)
                return -ENOMEM;

        c->idle_timeout_usec = 60 * USEC_PER_SEC;
        c->helper_idle_timeout_usec = 30 * USEC_PER_SEC;
        c->default_vcpus = 1;
        c->default_memory_mib = 256;
        c->default_work_disk_mib = 1024;
        c->accelerator = QEMU_ACCEL_AUTO;
        c->boot_timeout_usec = 300 * USEC_PER_SEC;
        c->qemu_path = strdup(QEMU_SYSTEM_X86_64);
        c->backend = VM_BACKEND_AUTO;
        c->firecracker_path = strdup(DAEMON_CONFIG_FIRECRACKER_PATH);
        c->os = strdup("linux");
        c->architecture = strdup("amd64");
        c->credentials_file = strdup(DAEMON_CONFIG_CREDENTIALS_FILE);
        if (!c->qemu_path || !c->firecracker_path || !c->os || !c->architecture ||
            !c->credentials_file)
                return -ENOMEM;

        r = directory_from_env("STATE_DIRECTORY", BANGER_STATEDIR, &c->state_dir);
        if (r < 0)
                return r;
        r = directory_from_env("CACHE_DIRECTORY", BANGER_CACHEDIR, &c->cache_dir);
        if (r < 0)
                return r;
        r = directory_from_env("RUNTIME_DIRECTORY", BANGER_RUNTIMEDIR, &c->runtime_dir);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(c);
        return 0;
}

typedef struct ParseState {
        DaemonConfig *config;
        const char *path;
        FILE *file;
        unsigned line;
        char ***warnings;
        int error; /* -ENOMEM when a warning could not be recorded */
} ParseState;

static void warn(ParseState *s, const char *format, ...) __attribute__((format(printf, 2, 3)));

static void warn(ParseState *s, const char *format, ...)
{
        _cleanup_free_ char *text = NULL;
        va_list ap;
        char *m;
        int n;

        va_start(ap, format);
        n = vasprintf(&text, format, ap);
        va_end(ap);
        if (n < 0 || asprintf(&m, "%s:%u: %s", s->path, s->line, text) < 0) {
                s->error = -ENOMEM;
                return;
        }
        log_debug("%s", m);
        if (!s->warnings) {
                free(m);
                return;
        }
        if (strv_consume(s->warnings, m) < 0)
                s->error = -ENOMEM;
}

static int parse_uint(const char *value, unsigned long long max, unsigned long long *ret)
{
        unsigned long long v;
        char *end;

        if (isempty(value) || value[0] == '-' || value[0] == '+')
                return -EINVAL;
        errno = 0;
        v = strtoull(value, &end, 10);
        if (errno != 0 || *end != '\0' || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

static int parse_accel(const char *value, QemuAccel *ret)
{
        static const char *const names[_QEMU_ACCEL_MAX] = {
                [QEMU_ACCEL_AUTO] = "auto",
                [QEMU_ACCEL_KVM] = "kvm",
                [QEMU_ACCEL_TCG] = "tcg",
        };

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (streq(value, names[i])) {
                        *ret = (QemuAccel)i;
                        return 0;
                }
        return -EINVAL;
}

static int replace_string(char **field, const char *value)
{
        char *copy = strdup(value);

        if (!copy)
                return -ENOMEM;
        free(*field);
        *field = copy;
        return 0;
}

static int split_words(const char *value, char ***ret)
{
        _cleanup_strv_free_ char **l = NULL;
        const char *p = value;

        for (;;) {
                size_t n;
                char *w;

                p += strspn(p, " \t");
                n = strcspn(p, " \t");
                if (n == 0)
                        break;
                w = strndup(p, n);
                if (!w)
                        return -ENOMEM;
                if (strv_consume(&l, w) < 0)
                        return -ENOMEM;
                p += n;
        }

        if (!l) {
                l = calloc(1, sizeof(char *));
                if (!l)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

static int parse_platform(DaemonConfig *c, const char *value)
{
        const char *slash = strchr(value, '/');
        _cleanup_free_ char *os = NULL, *arch = NULL;

        if (!slash || slash == value || isempty(slash + 1) || strchr(slash + 1, '/'))
                return -EINVAL;
        os = strndup(value, slash - value);
        arch = strdup(slash + 1);
        if (!os || !arch)
                return -ENOMEM;

        free(c->os);
        free(c->architecture);
        c->os = TAKE_PTR(os);
        c->architecture = TAKE_PTR(arch);
        return 0;
}

int daemon_config_subnet_parse(const char *s, Ipv4Net *ret)
{
        Ipv4Net net;
        int r;

        r = ipv4_net_parse(s, &net);
        if (r < 0)
                return r;
        if (net.prefix < SUBNET_PREFIX_MIN || net.prefix > SUBNET_PREFIX_MAX)
                return -EINVAL;

        *ret = net;
        return 0;
}

static int parse_subnet(DaemonConfig *c, const char *value)
{
        int r;

        if (isempty(value)) {
                c->subnet_set = false;
                return 0;
        }

        r = daemon_config_subnet_parse(value, &c->subnet);
        if (r < 0)
                return r;

        c->subnet_set = true;
        return 0;
}

/* The rule for valid values of section and key, for the warnings that spell it out; NULL for
 * keys whose warning needs none. */
static const char *value_hint(const char *section, const char *key)
{
        if (streq(section, "Network") && streq(key, "Subnet"))
                return DAEMON_CONFIG_SUBNET_RULE;
        return NULL;
}

/* Applies one key. Returns -EINVAL for an invalid value, -ENOENT for an unknown key. */
static int apply_key(DaemonConfig *c, const char *section, const char *key, const char *value)
{
        unsigned long long v;
        int r;

        if (streq(key, "IdleTimeoutSec") &&
            (streq(section, "Daemon") || streq(section, "Helper"))) {
                r = parse_uint(value, TIMEOUT_SEC_MAX, &v);
                if (r < 0)
                        return r;
                if (streq(section, "Daemon"))
                        c->idle_timeout_usec = v * USEC_PER_SEC;
                else
                        c->helper_idle_timeout_usec = v * USEC_PER_SEC;
                return 0;
        }

        if (streq(section, "Network") && streq(key, "Subnet"))
                return parse_subnet(c, value);

        if (streq(section, "Kernel") && streq(key, "CatalogURL")) {
                _cleanup_free_ char *url = NULL;

                if (isempty(value)) {
                        free(c->catalog_url);
                        c->catalog_url = NULL;
                        return 0;
                }
                /* Resolving the URL against itself checks its syntax and scheme. */
                r = catalog_resolve_url(value, value, &url);
                if (r < 0)
                        return r == -ENOMEM ? r : -EINVAL;
                return replace_string(&c->catalog_url, value);
        }

        if (streq(section, "VM")) {
                if (streq(key, "DefaultKernel")) {
                        if (!isempty(value))
                                return replace_string(&c->default_kernel, value);
                        free(c->default_kernel);
                        c->default_kernel = NULL;
                        return 0;
                }
                if (streq(key, "DefaultVCPUs")) {
                        r = parse_uint(value, VCPUS_MAX, &v);
                        if (r < 0 || v == 0)
                                return -EINVAL;
                        c->default_vcpus = v;
                        return 0;
                }
                if (streq(key, "DefaultMemoryMiB")) {
                        r = parse_uint(value, MEMORY_MIB_MAX, &v);
                        if (r < 0 || v < 16)
                                return -EINVAL;
                        c->default_memory_mib = v;
                        return 0;
                }
                if (streq(key, "DefaultWorkDiskMiB")) {
                        r = parse_uint(value, VM_WORK_DISK_MIB_MAX, &v);
                        if (r < 0 || v < VM_WORK_DISK_MIB_MIN)
                                return -EINVAL;
                        c->default_work_disk_mib = v;
                        return 0;
                }
                if (streq(key, "Accelerator"))
                        return parse_accel(value, &c->accelerator);
                if (streq(key, "QemuPath")) {
                        if (value[0] != '/')
                                return -EINVAL;
                        return replace_string(&c->qemu_path, value);
                }
                if (streq(key, "Backend")) {
                        VmBackend b = vm_backend_from_string(value);

                        if (b < 0)
                                return -EINVAL;
                        c->backend = b;
                        return 0;
                }
                if (streq(key, "FirecrackerPath")) {
                        if (value[0] != '/')
                                return -EINVAL;
                        return replace_string(&c->firecracker_path, value);
                }
                if (streq(key, "BootTimeoutSec")) {
                        r = parse_uint(value, TIMEOUT_SEC_MAX, &v);
                        if (r < 0 || v == 0)
                                return -EINVAL;
                        c->boot_timeout_usec = v * USEC_PER_SEC;
                        return 0;
                }
                return -ENOENT;
        }

        if (streq(section, "Registry")) {
                if (streq(key, "InsecureRegistries")) {
                        char **l;

                        r = split_words(value, &l);
                        if (r < 0)
                                return r;
                        strv_free(c->insecure_registries);
                        c->insecure_registries = l;
                        return 0;
                }
                if (streq(key, "Platform"))
                        return parse_platform(c, value);
                if (streq(key, "CredentialsFile") || streq(key, "CAFile")) {
                        char **field = streq(key, "CAFile") ? &c->ca_file : &c->credentials_file;

                        /* An empty value means no file: anonymous pulls, or the system CAs. */
                        if (isempty(value)) {
                                free(*field);
                                *field = NULL;
                                return 0;
                        }
                        if (value[0] != '/')
                                return -EINVAL;
                        return replace_string(field, value);
                }
                if (streq(key, "Mirrors")) {
                        _cleanup_strv_free_ char **l = NULL;

                        r = split_words(value, &l);
                        if (r < 0)
                                return r;
                        for (char **m = l; *m; m++) {
                                _cleanup_free_ char *registry = NULL;

                                r = registry_mirror_parse(*m, &registry, NULL, NULL);
                                if (r < 0)
                                        return r;
                        }
                        strv_free(c->mirrors);
                        c->mirrors = TAKE_PTR(l);
                        return 0;
                }
                return -ENOENT;
        }

        return -ENOENT;
}

static int on_key(void *userdata, const char *section, const char *key, const char *value)
{
        ParseState *s = userdata;
        int r;

        r = apply_key(s->config, section, key, value);
        if (r == -ENOMEM) {
                s->error = r;
                return 0;
        }
        if (r == -ENOENT)
                warn(s, "Unknown key '%s' in section [%s], ignoring", key, section);
        else if (r < 0 && value_hint(section, key))
                warn(s, "Invalid value '%s' for %s in section [%s]: %s, ignoring", value, key,
                     section, value_hint(section, key));
        else if (r < 0)
                warn(s, "Invalid value '%s' for %s in section [%s], ignoring", value, key, section);
        return 1;
}

/* inih calls the reader once per line, so counting here gives the handler its line number. */
static char *read_line(char *str, int num, void *stream)
{
        ParseState *s = stream;
        char *p = fgets(str, num, s->file);

        if (p)
                s->line++;
        return p;
}

int daemon_config_parse_file(DaemonConfig *c, const char *path, char ***warnings)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        ParseState s = {
                .config = c,
                .path = path,
                .warnings = warnings,
        };
        struct stat st;
        int r;

        if (!f)
                return errno == ENOENT ? 0 : negative_errno();
        if (fstat(fileno(f), &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return S_ISDIR(st.st_mode) ? -EISDIR : -EBADFD;
        s.file = f;

        r = ini_parse_stream(read_line, &s, on_key, &s);
        if (s.error < 0)
                return s.error;
        if (ferror(f))
                return -EIO;
        if (r > 0) {
                s.line = r;
                warn(&s, "Syntax error, ignoring the line");
                if (s.error < 0)
                        return s.error;
        } else if (r < 0)
                return -ENOMEM;
        return 0;
}

static int filter_conf(const struct dirent *de)
{
        size_t n = strlen(de->d_name);

        return de->d_name[0] != '.' && n > 5 && streq(de->d_name + n - 5, ".conf");
}

int daemon_config_load(const char *config_file, const char *dropin_dir, DaemonConfig **ret,
                       char ***ret_warnings)
{
        _cleanup_(daemon_config_freep) DaemonConfig *c = NULL;
        _cleanup_strv_free_ char **warnings = NULL;
        struct dirent **entries = NULL;
        int n, r;

        r = daemon_config_new(&c);
        if (r < 0)
                return r;

        if (config_file) {
                r = daemon_config_parse_file(c, config_file, &warnings);
                if (r < 0)
                        return r;
        }

        if (dropin_dir) {
                n = scandir(dropin_dir, &entries, filter_conf, alphasort);
                if (n < 0 && errno != ENOENT)
                        return negative_errno();

                r = 0;
                for (int i = 0; i < n; i++) {
                        _cleanup_free_ char *p = NULL;

                        if (r >= 0 && asprintf(&p, "%s/%s", dropin_dir, entries[i]->d_name) < 0)
                                r = -ENOMEM;
                        if (r >= 0)
                                r = daemon_config_parse_file(c, p, &warnings);
                        free(entries[i]);
                }
                free(entries);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(c);
        if (ret_warnings)
                *ret_warnings = TAKE_PTR(warnings);
        return 0;
}
