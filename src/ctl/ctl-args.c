#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-args.h"
#include "macro.h"
#include "strv.h"

typedef enum CtlOption {
        OPT_HELP = 1u << 0,
        OPT_VERSION = 1u << 1,
        OPT_NO_ASK_PASSWORD = 1u << 2,
        OPT_JSON = 1u << 3,
        OPT_FORCE = 1u << 4,
        OPT_NO_START = 1u << 5,
        OPT_NAME = 1u << 6,
        OPT_MODULES = 1u << 7,
        OPT_IMAGE = 1u << 8,
        OPT_KERNEL = 1u << 9,
        OPT_VCPUS = 1u << 10,
        OPT_MEMORY = 1u << 11,
        OPT_ENV = 1u << 12,
        OPT_CWD = 1u << 13,
        OPT_FORMAT = 1u << 14,
        OPT_ALL = 1u << 15,
        OPT_SSH_KEY = 1u << 16,
        OPT_WORK_SIZE = 1u << 17,
        OPT_WORKSPACE = 1u << 18,
        OPT_USER = 1u << 19,
        OPT_TTY = 1u << 20,
} CtlOption;

/* Options every verb accepts. */
#define OPT_GLOBAL (OPT_HELP | OPT_VERSION | OPT_NO_ASK_PASSWORD)

typedef struct OptionInfo {
        CtlOption flag;
        const char *long_name;
        char short_name;
        const char *value_name; /* NULL when the option takes no value */
        const char *help;
} OptionInfo;

static const OptionInfo option_table[] = {
        { OPT_HELP, "help", 'h', NULL, "Show this help" },
        { OPT_VERSION, "version", 0, NULL, "Show the version" },
        { OPT_NO_ASK_PASSWORD, "no-ask-password", 0, NULL,
          "Do not ask for a password when an action needs authentication" },
        { OPT_JSON, "json", 0, NULL, "Print the output as JSON" },
        { OPT_FORCE, "force", 'f', NULL, "Stop the VM at once, without a clean shutdown" },
        { OPT_NO_START, "no-start", 0, NULL, "Create the VM without starting it" },
        { OPT_NAME, "name", 0, "NAME",
          "Name to store the import under (default: from the source)" },
        { OPT_MODULES, "modules", 0, "DIR",
          "The lib/modules/VERSION directory that belongs to a bare kernel file" },
        { OPT_IMAGE, "image", 0, "REF", "Image to boot, as a name or registry reference" },
        { OPT_KERNEL, "kernel", 0, "NAME", "Kernel to boot (default: the configured kernel)" },
        { OPT_VCPUS, "vcpus", 0, "N", "Number of virtual CPUs" },
        { OPT_MEMORY, "memory", 0, "MIB", "Guest memory in MiB" },
        { OPT_ENV, "env", 'e', "KEY=VALUE", "Set an environment variable; may be repeated" },
        { OPT_CWD, "cwd", 'w', "DIR", "Working directory of the command in the guest" },
        { OPT_FORMAT, "format", 0, "FORMAT",
          "Source format: oci-layout, docker-archive or rootfs (default: detected)" },
        { OPT_ALL, "all", 0, NULL,
          "Also remove other users' VMs (needs authorization 'org.banger1.vm.manage-any')" },
        { OPT_SSH_KEY, "ssh-key", 0, "FILE.pub",
          "Authorize the public keys in FILE.pub for ssh to the VM; may be repeated "
          "(default: ~/.ssh/*.pub)" },
        { OPT_WORK_SIZE, "work-size", 0, "MIB",
          "Size of the work disk in MiB (default: [VM] DefaultWorkDiskMiB of bangerd)" },
        { OPT_WORKSPACE, "workspace", 0, "DIR",
          "Copy the git working tree DIR into the VM at /work/NAME" },
        { OPT_USER, "user", 'u', "USER",
          "User in the VM: vm ssh logs in as USER (default: root), vm exec runs the command as "
          "USER, NAME:GROUP or UID:GID (default: the image's user)" },
        { OPT_TTY, "tty", 't', NULL,
          "Give the command a terminal and put this one in raw mode; off unless given, even on "
          "a terminal" },
};

typedef struct VerbInfo {
        const char *group;
        const char *name;
        unsigned options;     /* accepted options besides OPT_GLOBAL */
        const char *argument; /* the positional argument, NULL when none */
        const char *usage;    /* everything after "bangerctl GROUP VERB " */
        const char *summary;
} VerbInfo;

static const VerbInfo verb_table[_CTL_VERB_MAX] = {
        [CTL_IMAGE_PULL] = { "image", "pull", 0, "REF", "REF",
                             "Pull an image from a registry and convert it to a root disk" },
        [CTL_IMAGE_IMPORT] = { "image", "import", OPT_NAME | OPT_FORMAT, "PATH",
                               "PATH [--name NAME] [--format FORMAT]",
                               "Import an image from an OCI layout directory, a docker-archive "
                               "or a root file system tarball" },
        [CTL_IMAGE_LIST] = { "image", "list", OPT_JSON, NULL, "[--json]", "List images" },
        [CTL_IMAGE_RM] = { "image", "rm", 0, "NAME", "NAME", "Remove an image" },
        [CTL_IMAGE_SHOW] = { "image", "show", OPT_JSON, "NAME", "[--json] NAME",
                             "Show all properties of an image" },
        [CTL_KERNEL_IMPORT] = { "kernel", "import", OPT_NAME | OPT_MODULES, "PATH",
                                "PATH [--name NAME] [--modules DIR]",
                                "Import a kernel from a .deb, an unpacked package or a kernel "
                                "file" },
        [CTL_KERNEL_LIST] = { "kernel", "list", OPT_JSON, NULL, "[--json]", "List kernels" },
        [CTL_KERNEL_PULL] = { "kernel", "pull", 0, "NAME", "NAME",
                              "Download a kernel from the catalog set in [Kernel] CatalogURL" },
        [CTL_KERNEL_RM] = { "kernel", "rm", 0, "NAME", "NAME", "Remove a kernel" },
        [CTL_KERNEL_SHOW] = { "kernel", "show", OPT_JSON, "NAME", "[--json] NAME",
                              "Show all properties of a kernel" },
        [CTL_VM_CREATE] = { "vm", "create",
                            OPT_IMAGE | OPT_KERNEL | OPT_VCPUS | OPT_MEMORY | OPT_NO_START |
                                    OPT_SSH_KEY | OPT_WORK_SIZE | OPT_WORKSPACE,
                            "NAME",
                            "--image REF [--kernel NAME] [--vcpus N] [--memory MIB] "
                            "[--ssh-key FILE.pub]... [--work-size MIB] [--workspace DIR] "
                            "[--no-start] NAME",
                            "Create a VM and start it" },
        [CTL_VM_START] = { "vm", "start", 0, "NAME", "NAME", "Start a VM" },
        [CTL_VM_STOP] = { "vm", "stop", OPT_FORCE, "NAME", "[--force] NAME", "Stop a VM" },
        [CTL_VM_RESTART] = { "vm", "restart", 0, "NAME", "NAME", "Restart a VM" },
        [CTL_VM_RM] = { "vm", "rm", 0, "NAME", "NAME", "Remove a VM, stopping it first" },
        [CTL_VM_LIST] = { "vm", "list", OPT_JSON, NULL, "[--json]", "List VMs" },
        [CTL_VM_SHOW] = { "vm", "show", OPT_JSON, "NAME", "[--json] NAME",
                          "Show all properties of a VM" },
        [CTL_VM_EXEC] = { "vm", "exec", OPT_TTY | OPT_ENV | OPT_CWD | OPT_USER, "NAME",
                          "[-t] [-e KEY=VALUE]... [-w DIR] [-u USER] NAME -- CMD [ARG...]",
                          "Run a command in a VM and exit with its status" },
        [CTL_VM_PORTS] = { "vm", "ports", OPT_JSON, "NAME", "[--json] NAME",
                           "List the ports that programs in a VM listen on" },
        [CTL_VM_CONSOLE] = { "vm", "console", 0, "NAME", "NAME",
                             "Attach to the serial console of a VM" },
        [CTL_VM_CONSOLE_LOG] = { "vm", "console-log", 0, "NAME", "NAME",
                                 "Print the console log of a VM" },
        [CTL_VM_PORT_ADD] = { "vm", "port add", 0, "NAME", "NAME HOSTPORT:GUESTPORT[/tcp|/udp]",
                              "Forward a host port to a port of the VM" },
        [CTL_VM_PORT_LIST] = { "vm", "port list", OPT_JSON, "NAME", "[--json] NAME",
                               "List the port forwards of a VM" },
        [CTL_VM_PORT_RM] = { "vm", "port rm", 0, "NAME", "NAME HOSTPORT[/tcp|/udp]",
                             "Remove a port forward" },
        [CTL_VM_PRUNE] = { "vm", "prune", OPT_ALL | OPT_JSON, NULL, "[--all] [--json]",
                           "Remove the VMs that are created, stopped or failed" },
        [CTL_VM_SSH] = { "vm", "ssh", OPT_USER, "NAME", "[--user USER] NAME [-- CMD [ARG...]]",
                         "Log in to a VM with ssh, or run a command there" },
        [CTL_VM_SSH_PROXY] = { "vm", "ssh-proxy", 0, "HOST", "HOST PORT",
                               "Connect stdin and stdout to PORT of the VM HOST (NAME.banger), "
                               "as ssh's ProxyCommand" },
        [CTL_VM_SYNC] = { "vm", "sync", 0, "NAME", "NAME",
                          "Copy the workspace of a VM into it again" },
};

static const char *const group_table[] = { "image", "kernel", "vm" };

bool ctl_verb_needs_authorization(CtlVerb verb)
{
        switch (verb) {
        case CTL_IMAGE_LIST:
        case CTL_IMAGE_SHOW:
        case CTL_KERNEL_LIST:
        case CTL_KERNEL_SHOW:
        case CTL_VM_LIST:
        case CTL_VM_SHOW:
        case CTL_VM_PORT_LIST:
        case CTL_VM_SSH:
        case CTL_VM_SSH_PROXY:
                return false;
        default:
                return true;
        }
}

const char *ctl_verb_group(CtlVerb verb)
{
        if (verb < 0 || verb >= _CTL_VERB_MAX)
                return NULL;
        return verb_table[verb].group;
}

const char *ctl_verb_name(CtlVerb verb)
{
        if (verb < 0 || verb >= _CTL_VERB_MAX)
                return NULL;
        return verb_table[verb].name;
}

static const char *group_lookup(const char *s)
{
        for (size_t i = 0; i < ELEMENTSOF(group_table); i++)
                if (streq(group_table[i], s))
                        return group_table[i];
        return NULL;
}

static CtlVerb verb_lookup(const char *group, const char *s)
{
        for (CtlVerb v = 0; v < _CTL_VERB_MAX; v++)
                if (streq(verb_table[v].group, group) && streq(verb_table[v].name, s))
                        return v;
        return _CTL_VERB_INVALID;
}

/* Returns true when the name of verb is two words and the first is subgroup. */
static bool verb_in_subgroup(CtlVerb verb, const char *subgroup)
{
        size_t len = strlen(subgroup);

        return strneq(verb_table[verb].name, subgroup, len) && verb_table[verb].name[len] == ' ';
}

static bool group_has_subgroup(const char *group, const char *subgroup)
{
        for (CtlVerb v = 0; v < _CTL_VERB_MAX; v++)
                if (streq(verb_table[v].group, group) && verb_in_subgroup(v, subgroup))
                        return true;
        return false;
}

/* The second positional argument of the verbs that take a port forward, NULL for others. */
static const char *port_spec_argument(CtlVerb verb)
{
        switch (verb) {
        case CTL_VM_PORT_ADD:
                return "HOSTPORT:GUESTPORT[/tcp|/udp]";
        case CTL_VM_PORT_RM:
                return "HOSTPORT[/tcp|/udp]";
        default:
                return NULL;
        }
}

void ctl_args_init(CtlArgs *args, bool ask_password)
{
        *args = (CtlArgs){
                .action = CTL_ACTION_RUN,
                .verb = _CTL_VERB_INVALID,
                .ask_password = ask_password,
        };
}

void ctl_args_done(CtlArgs *args)
{
        args->env = strv_free(args->env);
        args->ssh_keys = strv_free(args->ssh_keys);
        free(args->error);
        args->error = NULL;
}

/* Formats a usage error into *ret. Returns -EINVAL, or -ENOMEM when formatting fails. */
__attribute__((format(printf, 2, 0))) static int format_error(char **ret, const char *format,
                                                              va_list ap)
{
        if (vasprintf(ret, format, ap) < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return -EINVAL;
}

/* Records the first usage error only, because later ones usually follow from it. */
__attribute__((format(printf, 2, 3))) static int args_fail(CtlArgs *args, const char *format, ...)
{
        va_list ap;
        int r;

        if (args->error)
                return -EINVAL;

        va_start(ap, format);
        r = format_error(&args->error, format, ap);
        va_end(ap);
        return r;
}

static const OptionInfo *option_lookup_long(const char *name, size_t len)
{
        for (size_t i = 0; i < ELEMENTSOF(option_table); i++)
                if (strlen(option_table[i].long_name) == len &&
                    strneq(option_table[i].long_name, name, len))
                        return &option_table[i];
        return NULL;
}

static const OptionInfo *option_lookup_short(char c)
{
        for (size_t i = 0; i < ELEMENTSOF(option_table); i++)
                if (option_table[i].short_name == c)
                        return &option_table[i];
        return NULL;
}

/* Parses a positive decimal number that fits in uint32_t, with nothing around it. */
static int parse_positive_u32(const char *s, uint32_t *ret)
{
        uintmax_t v;
        char *end;

        if (s[0] < '0' || s[0] > '9')
                return -EINVAL;

        errno = 0;
        v = strtoumax(s, &end, 10);
        if (errno != 0 || *end != '\0' || v == 0 || v > UINT32_MAX)
                return -EINVAL;

        *ret = (uint32_t)v;
        return 0;
}

/* Parses a port number from 1 to 65535 in the first len bytes of s, decimal digits only. */
static int parse_port(const char *s, size_t len, uint16_t *ret)
{
        unsigned v = 0;

        if (len == 0)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned)(s[i] - '0');
                if (v > UINT16_MAX)
                        return -ERANGE;
        }
        if (v == 0)
                return -ERANGE;
        *ret = (uint16_t)v;
        return 0;
}

__attribute__((format(printf, 2, 3))) static int port_spec_fail(char **ret_error,
                                                                const char *format, ...)
{
        va_list ap;
        int r;

        va_start(ap, format);
        r = format_error(ret_error, format, ap);
        va_end(ap);
        return r;
}

static int parse_port_part(const char *spec, const char *part, size_t len, const char *which,
                           uint16_t *ret, char **ret_error)
{
        if (len == 0)
                return port_spec_fail(ret_error, "invalid port forward '%s': missing the %s port",
                                      spec, which);
        if (parse_port(part, len, ret) < 0)
                return port_spec_fail(ret_error,
                                      "invalid port forward '%s': %s port '%.*s' is not a number "
                                      "from 1 to 65535",
                                      spec, which, (int)len, part);
        return 0;
}

int ctl_port_spec_parse(const char *s, bool with_guest, CtlPortSpec *ret, char **ret_error)
{
        const char *form = with_guest ? "HOSTPORT:GUESTPORT[/tcp|/udp], such as 8080:80 or "
                                        "5353:53/udp"
                                      : "HOSTPORT[/tcp|/udp], such as 8080 or 5353/udp";
        const char *slash = strchr(s, '/'), *colon;
        size_t ports_len = slash ? (size_t)(slash - s) : strlen(s), host_len;
        CtlPortSpec spec = { .proto = "tcp" };
        int r;

        if (slash && slash[1] == '\0')
                return port_spec_fail(ret_error,
                                      "invalid port forward '%s': missing the protocol after "
                                      "'/', use /tcp or /udp",
                                      s);
        if (slash && streq(slash + 1, "udp"))
                spec.proto = "udp";
        else if (slash && !streq(slash + 1, "tcp"))
                return port_spec_fail(ret_error,
                                      "invalid port forward '%s': protocol '%s' is not supported, "
                                      "use /tcp or /udp",
                                      s, slash + 1);

        colon = memchr(s, ':', ports_len);
        if (!!colon != with_guest)
                return port_spec_fail(ret_error, "invalid port forward '%s': expected %s", s, form);

        host_len = colon ? (size_t)(colon - s) : ports_len;
        r = parse_port_part(s, s, host_len, "host", &spec.host_port, ret_error);
        if (r < 0)
                return r;
        if (colon) {
                r = parse_port_part(s, colon + 1, ports_len - host_len - 1, "guest",
                                    &spec.guest_port, ret_error);
                if (r < 0)
                        return r;
        }

        *ret = spec;
        return 0;
}

/* The field that receives the value of a numeric option. */
static uint32_t *number_field(CtlArgs *args, CtlOption flag)
{
        switch (flag) {
        case OPT_VCPUS:
                return &args->vcpus;
        case OPT_MEMORY:
                return &args->memory_mib;
        default:
                return &args->work_size_mib;
        }
}

static int option_apply(CtlArgs *args, const OptionInfo *o, const char *value)
{
        switch (o->flag) {
        case OPT_HELP:
                args->action = CTL_ACTION_HELP;
                return 0;
        case OPT_VERSION:
                if (args->action != CTL_ACTION_HELP)
                        args->action = CTL_ACTION_VERSION;
                return 0;
        case OPT_NO_ASK_PASSWORD:
                args->ask_password = false;
                return 0;
        case OPT_JSON:
                args->json = true;
                return 0;
        case OPT_FORCE:
                args->force = true;
                return 0;
        case OPT_NO_START:
                args->no_start = true;
                return 0;
        case OPT_ALL:
                args->all = true;
                return 0;
        case OPT_TTY:
                args->tty = true;
                return 0;
        case OPT_VCPUS:
        case OPT_MEMORY:
        case OPT_WORK_SIZE:
                if (parse_positive_u32(value, number_field(args, o->flag)) < 0)
                        return args_fail(args,
                                         "invalid value '%s' for --%s: expected a whole number "
                                         "from 1 to %" PRIu32,
                                         value, o->long_name, UINT32_MAX);
                return 0;
        case OPT_ENV:
                if (value[0] == '=' || !strchr(value, '='))
                        return args_fail(args, "invalid value '%s' for --env: expected KEY=VALUE",
                                         value);
                return strv_extend(&args->env, value);
        default:
                break;
        }

        if (isempty(value))
                return args_fail(args, "empty value for --%s: expected %s", o->long_name,
                                 o->value_name);

        switch (o->flag) {
        case OPT_NAME:
                args->kernel_name = value;
                break;
        case OPT_MODULES:
                args->modules = value;
                break;
        case OPT_IMAGE:
                args->image = value;
                break;
        case OPT_KERNEL:
                args->kernel = value;
                break;
        case OPT_CWD:
                args->cwd = value;
                break;
        case OPT_SSH_KEY:
                return strv_extend(&args->ssh_keys, value);
        case OPT_WORKSPACE:
                args->workspace = value;
                break;
        case OPT_USER:
                args->user = value;
                break;
        case OPT_FORMAT:
                if (!streq(value, "oci-layout") && !streq(value, "docker-archive") &&
                    !streq(value, "rootfs"))
                        return args_fail(args,
                                         "invalid value '%s' for --format: expected oci-layout, "
                                         "docker-archive or rootfs",
                                         value);
                args->format = value;
                break;
        default:
                assert(!"option without a handler");
        }
        return 0;
}

/* Parses the option at argv[*i], consuming the next word when it is the option's value.
 * Returns the option's flag, or a negative errno. */
static int option_parse(CtlArgs *args, int argc, char *const argv[], int *i)
{
        const char *word = argv[*i], *value = NULL, *eq;
        const OptionInfo *o;
        char display[3];
        int r;

        if (word[1] == '-') {
                eq = strchr(word + 2, '=');
                o = option_lookup_long(word + 2, eq ? (size_t)(eq - word - 2) : strlen(word + 2));
                if (eq)
                        value = eq + 1;
        } else
                o = word[2] == '\0' ? option_lookup_short(word[1]) : NULL;
        if (!o)
                return args_fail(args, "unknown option '%s'", word);

        if (!o->value_name) {
                if (value)
                        return args_fail(args, "option '--%s' takes no value", o->long_name);
        } else if (!value) {
                if (*i + 1 >= argc) {
                        (void)snprintf(display, sizeof(display), "-%c", o->short_name);
                        return args_fail(args, "option '%s' requires a value %s",
                                         word[1] == '-' ? word : display, o->value_name);
                }
                value = argv[++*i];
        }

        r = option_apply(args, o, value);
        if (r < 0)
                return r;
        return (int)o->flag;
}

/* Recognises the verb word after the group, or after the subgroup of a two-word verb. */
static int verb_add(CtlArgs *args, const char *word)
{
        char name[64];

        if (args->subgroup) {
                if (snprintf(name, sizeof(name), "%s %s", args->subgroup, word) < (int)sizeof(name))
                        args->verb = verb_lookup(args->group, name);
                if (args->verb < 0)
                        return args_fail(args, "unknown command '%s %s %s'", args->group,
                                         args->subgroup, word);
                return 0;
        }

        args->verb = verb_lookup(args->group, word);
        if (args->verb >= 0)
                return 0;
        if (group_has_subgroup(args->group, word)) {
                args->subgroup = word;
                return 0;
        }
        return args_fail(args, "unknown command '%s %s'", args->group, word);
}

static int positional_add(CtlArgs *args, unsigned n, const char *word)
{
        /* Index of the first argument after the verb's words. */
        unsigned first = args->subgroup ? 3 : 2;
        int r;

        if (n == 0) {
                args->group = group_lookup(word);
                if (!args->group)
                        return args_fail(args, "unknown command '%s'", word);
                return 0;
        }

        if (args->verb < 0)
                return verb_add(args, word);

        if (n == first && verb_table[args->verb].argument) {
                args->name = word;
                return 0;
        }

        if (n == first + 1 && args->verb == CTL_VM_SSH_PROXY) {
                if (parse_port(word, strlen(word), &args->proxy_port) < 0)
                        return args_fail(
                                args, "invalid port '%s': expected a number from 1 to 65535", word);
                return 0;
        }

        if (n == first + 1 && port_spec_argument(args->verb)) {
                _cleanup_free_ char *error = NULL;

                r = ctl_port_spec_parse(word, args->verb == CTL_VM_PORT_ADD, &args->port, &error);
                if (r == -EINVAL)
                        return args_fail(args, "%s", error);
                return r;
        }

        if (args->verb == CTL_VM_EXEC || args->verb == CTL_VM_SSH)
                return args_fail(args, "missing '--' before the command '%s'", word);
        return args_fail(args, "unexpected argument '%s'", word);
}

static int check_options(CtlArgs *args, unsigned seen)
{
        unsigned allowed = OPT_GLOBAL;

        if (args->verb >= 0)
                allowed |= verb_table[args->verb].options;

        for (size_t i = 0; i < ELEMENTSOF(option_table); i++) {
                if (!(seen & option_table[i].flag) || (allowed & option_table[i].flag))
                        continue;
                if (args->verb >= 0)
                        return args_fail(args, "option '--%s' is not valid for '%s %s'",
                                         option_table[i].long_name, args->group,
                                         verb_table[args->verb].name);
                return args_fail(args, "option '--%s' needs a command", option_table[i].long_name);
        }
        return 0;
}

static int check_arguments(CtlArgs *args)
{
        const VerbInfo *info;

        if (!args->group)
                return args_fail(args, "missing command");
        if (args->verb < 0 && args->subgroup)
                return args_fail(args, "missing command after '%s %s'", args->group,
                                 args->subgroup);
        if (args->verb < 0)
                return args_fail(args, "missing command after '%s'", args->group);

        info = &verb_table[args->verb];
        if (info->argument && !args->name)
                return args_fail(args, "missing %s", info->argument);
        if (port_spec_argument(args->verb) && !args->port.proto)
                return args_fail(args, "missing %s", port_spec_argument(args->verb));
        if (args->verb == CTL_VM_CREATE && !args->image)
                return args_fail(args, "missing --image REF");
        if (args->verb == CTL_VM_EXEC && !args->command)
                return args_fail(args, "missing '--' and the command to run after NAME");
        if (args->verb == CTL_VM_EXEC && !args->command[0])
                return args_fail(args, "missing command after '--'");
        if (args->verb == CTL_VM_SSH && args->command && !args->command[0])
                return args_fail(args, "missing command after '--'");
        if (args->verb == CTL_VM_SSH_PROXY && args->proxy_port == 0)
                return args_fail(args, "missing PORT");
        return 0;
}

int ctl_args_parse(CtlArgs *args, int argc, char *const argv[])
{
        bool dashdash = false;
        unsigned seen = 0, n_positional = 0;
        int r;

        for (int i = 1; i < argc; i++) {
                const char *word = argv[i];

                if (!dashdash && streq(word, "--")) {
                        dashdash = true;
                        if (args->verb != CTL_VM_EXEC && args->verb != CTL_VM_SSH)
                                continue;
                        if (!args->name)
                                (void)args_fail(args, "missing NAME before '--'");
                        args->command = argv + i + 1;
                        break;
                }

                if (!dashdash && word[0] == '-' && word[1] != '\0') {
                        r = option_parse(args, argc, argv, &i);
                        if (r == -ENOMEM)
                                return r;
                        if (r > 0)
                                seen |= (unsigned)r;
                        continue;
                }

                r = positional_add(args, n_positional++, word);
                if (r == -ENOMEM)
                        return r;
                /* An unknown group or verb leaves nothing to attach later words to. */
                if (r < 0 && args->verb < 0)
                        break;
        }

        if (!args->error && args->action == CTL_ACTION_RUN)
                (void)check_options(args, seen);
        if (!args->error && args->action == CTL_ACTION_RUN)
                (void)check_arguments(args);

        return args->error ? -EINVAL : 0;
}

static void print_options(FILE *f, unsigned options)
{
        char left[64];

        for (size_t i = 0; i < ELEMENTSOF(option_table); i++) {
                const OptionInfo *o = &option_table[i];

                if (!(options & o->flag))
                        continue;

                if (o->short_name)
                        (void)snprintf(left, sizeof(left), "-%c --%s%s%s", o->short_name,
                                       o->long_name, o->value_name ? " " : "",
                                       strempty(o->value_name));
                else
                        (void)snprintf(left, sizeof(left), "   --%s%s%s", o->long_name,
                                       o->value_name ? " " : "", strempty(o->value_name));
                fprintf(f, "  %-24s %s\n", left, o->help);
        }
}

void ctl_print_verb_usage(FILE *f, CtlVerb verb)
{
        const VerbInfo *info = &verb_table[verb];

        fprintf(f, "bangerctl %s %s %s\n", info->group, info->name, info->usage);
}

static void print_group_verbs(FILE *f, const char *group)
{
        for (CtlVerb v = 0; v < _CTL_VERB_MAX; v++)
                if (!group || streq(verb_table[v].group, group))
                        fprintf(f, "  %-12s %-13s %s\n", verb_table[v].group, verb_table[v].name,
                                verb_table[v].summary);
}

void ctl_print_help(FILE *f, const char *group, CtlVerb verb)
{
        if (group && verb >= 0) {
                fprintf(f, "Usage: ");
                ctl_print_verb_usage(f, verb);
                fprintf(f, "\n%s.\n\nOptions:\n", verb_table[verb].summary);
                print_options(f, verb_table[verb].options | OPT_HELP | OPT_NO_ASK_PASSWORD);
                return;
        }

        if (group) {
                fprintf(f, "Usage: bangerctl %s COMMAND ...\n\nCommands:\n", group);
                print_group_verbs(f, group);
                fprintf(f, "\nRun 'bangerctl %s COMMAND --help' for the options of a command.\n",
                        group);
                return;
        }

        fprintf(f, "Usage: bangerctl [OPTIONS] {image|kernel|vm} COMMAND ...\n\n"
                   "Manage banger VMs, images and kernels through bangerd.\n\nCommands:\n");
        print_group_verbs(f, NULL);
        fprintf(f, "\nOptions:\n");
        print_options(f, OPT_GLOBAL);
        fprintf(f, "\nRun 'bangerctl GROUP COMMAND --help' for the options of a command.\n");
}

void ctl_print_usage_error(FILE *f, const CtlArgs *args)
{
        fprintf(f, "bangerctl: %s\n", strempty(args->error));

        if (args->verb >= 0) {
                fprintf(f, "Usage: ");
                ctl_print_verb_usage(f, args->verb);
        } else if (args->group) {
                fprintf(f, "Usage:\n");
                for (CtlVerb v = 0; v < _CTL_VERB_MAX; v++)
                        if (streq(verb_table[v].group, args->group) &&
                            (!args->subgroup || verb_in_subgroup(v, args->subgroup))) {
                                fprintf(f, "  ");
                                ctl_print_verb_usage(f, v);
                        }
        } else
                fprintf(f, "Usage: bangerctl [OPTIONS] {image|kernel|vm} COMMAND ...\n"
                           "Run 'bangerctl --help' for the list of commands.\n");
}
