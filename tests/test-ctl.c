#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The parser and the formatting helpers belong to bangerctl, not to the core library, so their
 * sources are compiled into this test. */
#include "../src/ctl/ctl-args.c"
#include "../src/ctl/ctl-format.c"

#define MAX_WORDS 16

typedef struct GoodCase {
        const char *words[MAX_WORDS];
        CtlAction action;
        CtlVerb verb;
        const char *name;
} GoodCase;

static const GoodCase good_cases[] = {
        { { "image", "pull", "debian:bookworm" },
          CTL_ACTION_RUN,
          CTL_IMAGE_PULL,
          "debian:bookworm" },
        { { "image", "list" }, CTL_ACTION_RUN, CTL_IMAGE_LIST, NULL },
        { { "image", "list", "--json" }, CTL_ACTION_RUN, CTL_IMAGE_LIST, NULL },
        { { "--json", "image", "list" }, CTL_ACTION_RUN, CTL_IMAGE_LIST, NULL },
        { { "image", "rm", "alpine" }, CTL_ACTION_RUN, CTL_IMAGE_RM, "alpine" },
        { { "image", "import", "./oci-dir" }, CTL_ACTION_RUN, CTL_IMAGE_IMPORT, "./oci-dir" },
        { { "image", "import", "root.tar.xz", "--name", "base:1", "--format=rootfs" },
          CTL_ACTION_RUN,
          CTL_IMAGE_IMPORT,
          "root.tar.xz" },
        { { "kernel", "import", "/tmp/k.deb" }, CTL_ACTION_RUN, CTL_KERNEL_IMPORT, "/tmp/k.deb" },
        { { "kernel", "import", "vmlinuz", "--name", "k1", "--modules", "/lib/modules/6.1" },
          CTL_ACTION_RUN,
          CTL_KERNEL_IMPORT,
          "vmlinuz" },
        { { "kernel", "list" }, CTL_ACTION_RUN, CTL_KERNEL_LIST, NULL },
        { { "kernel", "pull", "debian-cloud-6.1" },
          CTL_ACTION_RUN,
          CTL_KERNEL_PULL,
          "debian-cloud-6.1" },
        { { "kernel", "show", "--json", "k1" }, CTL_ACTION_RUN, CTL_KERNEL_SHOW, "k1" },
        { { "image", "show", "alpine" }, CTL_ACTION_RUN, CTL_IMAGE_SHOW, "alpine" },
        { { "kernel", "rm", "k1" }, CTL_ACTION_RUN, CTL_KERNEL_RM, "k1" },
        { { "vm", "create", "--image", "debian:bookworm", "dev1" },
          CTL_ACTION_RUN,
          CTL_VM_CREATE,
          "dev1" },
        { { "vm", "create", "dev1", "--image=alpine", "--kernel", "k1", "--vcpus", "2", "--memory",
            "512", "--no-start" },
          CTL_ACTION_RUN,
          CTL_VM_CREATE,
          "dev1" },
        { { "vm", "start", "dev1" }, CTL_ACTION_RUN, CTL_VM_START, "dev1" },
        { { "vm", "stop", "--force", "dev1" }, CTL_ACTION_RUN, CTL_VM_STOP, "dev1" },
        { { "vm", "stop", "dev1", "-f" }, CTL_ACTION_RUN, CTL_VM_STOP, "dev1" },
        { { "vm", "restart", "dev1" }, CTL_ACTION_RUN, CTL_VM_RESTART, "dev1" },
        { { "vm", "rm", "--no-ask-password", "dev1" }, CTL_ACTION_RUN, CTL_VM_RM, "dev1" },
        { { "vm", "list", "--json" }, CTL_ACTION_RUN, CTL_VM_LIST, NULL },
        { { "vm", "show", "dev1", "--json" }, CTL_ACTION_RUN, CTL_VM_SHOW, "dev1" },
        { { "vm", "exec", "dev1", "--", "uname", "-a" }, CTL_ACTION_RUN, CTL_VM_EXEC, "dev1" },
        { { "vm", "exec", "--env", "A=1", "--cwd", "/tmp", "dev1", "--", "ls", "--", "-x" },
          CTL_ACTION_RUN,
          CTL_VM_EXEC,
          "dev1" },
        { { "vm", "exec", "-t", "-u", "app:staff", "-w", "/srv", "dev1", "--", "sh" },
          CTL_ACTION_RUN,
          CTL_VM_EXEC,
          "dev1" },
        { { "vm", "ports", "dev1" }, CTL_ACTION_RUN, CTL_VM_PORTS, "dev1" },
        { { "vm", "ports", "--json", "dev1" }, CTL_ACTION_RUN, CTL_VM_PORTS, "dev1" },
        { { "vm", "console", "dev1" }, CTL_ACTION_RUN, CTL_VM_CONSOLE, "dev1" },
        { { "vm", "console", "--help" }, CTL_ACTION_HELP, CTL_VM_CONSOLE, NULL },
        { { "vm", "console-log", "dev1" }, CTL_ACTION_RUN, CTL_VM_CONSOLE_LOG, "dev1" },
        { { "vm", "port", "add", "dev1", "8080:80" }, CTL_ACTION_RUN, CTL_VM_PORT_ADD, "dev1" },
        { { "vm", "port", "add", "dev1", "5353:53/udp", "--no-ask-password" },
          CTL_ACTION_RUN,
          CTL_VM_PORT_ADD,
          "dev1" },
        { { "vm", "port", "list", "--json", "dev1" }, CTL_ACTION_RUN, CTL_VM_PORT_LIST, "dev1" },
        { { "vm", "port", "rm", "dev1", "5353/udp" }, CTL_ACTION_RUN, CTL_VM_PORT_RM, "dev1" },
        { { "vm", "prune" }, CTL_ACTION_RUN, CTL_VM_PRUNE, NULL },
        { { "vm", "prune", "--all", "--json" }, CTL_ACTION_RUN, CTL_VM_PRUNE, NULL },
        { { "vm", "port", "add", "--help" }, CTL_ACTION_HELP, CTL_VM_PORT_ADD, NULL },
        { { "vm", "create", "--image", "x", "--ssh-key", "a.pub", "--ssh-key=b.pub", "--work-size",
            "64", "--workspace", ".", "dev1" },
          CTL_ACTION_RUN,
          CTL_VM_CREATE,
          "dev1" },
        { { "vm", "ssh", "dev1" }, CTL_ACTION_RUN, CTL_VM_SSH, "dev1" },
        { { "vm", "ssh", "-u", "app", "dev1", "--", "ls", "-l" },
          CTL_ACTION_RUN,
          CTL_VM_SSH,
          "dev1" },
        { { "vm", "ssh-proxy", "dev1.banger", "22" },
          CTL_ACTION_RUN,
          CTL_VM_SSH_PROXY,
          "dev1.banger" },
        { { "vm", "sync", "dev1" }, CTL_ACTION_RUN, CTL_VM_SYNC, "dev1" },
        /* "--" ends the options, so a name may start with a dash. */
        { { "image", "rm", "--", "-odd" }, CTL_ACTION_RUN, CTL_IMAGE_RM, "-odd" },
        { { "--help" }, CTL_ACTION_HELP, _CTL_VERB_INVALID, NULL },
        { { "-h" }, CTL_ACTION_HELP, _CTL_VERB_INVALID, NULL },
        { { "vm", "--help" }, CTL_ACTION_HELP, _CTL_VERB_INVALID, NULL },
        { { "vm", "create", "--help" }, CTL_ACTION_HELP, CTL_VM_CREATE, NULL },
        { { "vm", "exec", "-h" }, CTL_ACTION_HELP, CTL_VM_EXEC, NULL },
        { { "--version" }, CTL_ACTION_VERSION, _CTL_VERB_INVALID, NULL },
        { { "--version", "--help" }, CTL_ACTION_HELP, _CTL_VERB_INVALID, NULL },
};

typedef struct BadCase {
        const char *words[MAX_WORDS];
        const char *error;
        CtlVerb verb; /* the verb whose usage line goes with the error */
} BadCase;

static const BadCase bad_cases[] = {
        { { NULL }, "missing command", _CTL_VERB_INVALID },
        { { "vm" }, "missing command after 'vm'", _CTL_VERB_INVALID },
        { { "machine", "list" }, "unknown command 'machine'", _CTL_VERB_INVALID },
        { { "vm", "frobnicate", "dev1" }, "unknown command 'vm frobnicate'", _CTL_VERB_INVALID },
        { { "vm", "start" }, "missing NAME", CTL_VM_START },
        { { "image", "show", "--json" }, "missing NAME", CTL_IMAGE_SHOW },
        { { "image", "pull" }, "missing REF", CTL_IMAGE_PULL },
        { { "kernel", "import" }, "missing PATH", CTL_KERNEL_IMPORT },
        { { "kernel", "pull" }, "missing NAME", CTL_KERNEL_PULL },
        { { "kernel", "pull", "--modules", "/lib/modules", "k1" },
          "option '--modules' is not valid for 'kernel pull'",
          CTL_KERNEL_PULL },
        { { "image", "import", "--name", "x" }, "missing PATH", CTL_IMAGE_IMPORT },
        { { "image", "import", "--format", "zip", "a.zip" },
          "invalid value 'zip' for --format: expected oci-layout, docker-archive or rootfs",
          CTL_IMAGE_IMPORT },
        { { "image", "import", "--format=", "a.tar" },
          "empty value for --format: expected FORMAT",
          CTL_IMAGE_IMPORT },
        { { "kernel", "import", "--format", "rootfs", "k.deb" },
          "option '--format' is not valid for 'kernel import'",
          CTL_KERNEL_IMPORT },
        { { "vm", "start", "a", "b" }, "unexpected argument 'b'", CTL_VM_START },
        { { "vm", "list", "extra" }, "unexpected argument 'extra'", CTL_VM_LIST },
        { { "vm", "start", "--bogus", "dev1" }, "unknown option '--bogus'", CTL_VM_START },
        { { "vm", "start", "-x", "dev1" }, "unknown option '-x'", CTL_VM_START },
        { { "vm", "start", "-hf", "dev1" }, "unknown option '-hf'", CTL_VM_START },
        { { "--bogus", "vm", "list" }, "unknown option '--bogus'", CTL_VM_LIST },
        { { "vm", "start", "--force", "dev1" },
          "option '--force' is not valid for 'vm start'",
          CTL_VM_START },
        { { "vm", "list", "--image", "x" },
          "option '--image' is not valid for 'vm list'",
          CTL_VM_LIST },
        { { "image", "rm", "--json", "x" },
          "option '--json' is not valid for 'image rm'",
          CTL_IMAGE_RM },
        { { "--json" }, "option '--json' needs a command", _CTL_VERB_INVALID },
        { { "vm", "create", "dev1" }, "missing --image REF", CTL_VM_CREATE },
        { { "vm", "create", "--image" }, "option '--image' requires a value REF", CTL_VM_CREATE },
        { { "vm", "create", "--image", "", "dev1" },
          "empty value for --image: expected REF",
          CTL_VM_CREATE },
        { { "vm", "create", "--image=x", "--vcpus", "0", "dev1" },
          "invalid value '0' for --vcpus: expected a whole number from 1 to 4294967295",
          CTL_VM_CREATE },
        { { "vm", "create", "--image=x", "--vcpus", "-1", "dev1" },
          "invalid value '-1' for --vcpus: expected a whole number from 1 to 4294967295",
          CTL_VM_CREATE },
        { { "vm", "create", "--image=x", "--memory", "512M", "dev1" },
          "invalid value '512M' for --memory: expected a whole number from 1 to 4294967295",
          CTL_VM_CREATE },
        { { "vm", "create", "--image=x", "--memory", "4294967296", "dev1" },
          "invalid value '4294967296' for --memory: expected a whole number from 1 to "
          "4294967295",
          CTL_VM_CREATE },
        { { "vm", "create", "--image=x", "--memory", " 5", "dev1" },
          "invalid value ' 5' for --memory: expected a whole number from 1 to 4294967295",
          CTL_VM_CREATE },
        { { "vm", "stop", "--force=yes", "dev1" }, "option '--force' takes no value", CTL_VM_STOP },
        { { "vm", "exec", "dev1" }, "missing '--' and the command to run after NAME", CTL_VM_EXEC },
        { { "vm", "exec", "dev1", "ls", "-l" },
          "missing '--' before the command 'ls'",
          CTL_VM_EXEC },
        { { "vm", "exec", "dev1", "--" }, "missing command after '--'", CTL_VM_EXEC },
        { { "vm", "exec", "--", "ls" }, "missing NAME before '--'", CTL_VM_EXEC },
        { { "vm", "exec", "--env", "NOVALUE", "dev1", "--", "ls" },
          "invalid value 'NOVALUE' for --env: expected KEY=VALUE",
          CTL_VM_EXEC },
        { { "vm", "exec", "--env", "=x", "dev1", "--", "ls" },
          "invalid value '=x' for --env: expected KEY=VALUE",
          CTL_VM_EXEC },
        { { "vm", "exec", "dev1", "--", "ls", "--cwd" }, NULL, CTL_VM_EXEC },
        { { "vm", "exec", "--tty=yes", "dev1", "--", "sh" },
          "option '--tty' takes no value",
          CTL_VM_EXEC },
        { { "vm", "exec", "-u", "", "dev1", "--", "sh" },
          "empty value for --user: expected USER",
          CTL_VM_EXEC },
        { { "vm", "exec", "dev1", "-w" }, "option '-w' requires a value DIR", CTL_VM_EXEC },
        { { "vm", "ports" }, "missing NAME", CTL_VM_PORTS },
        { { "vm", "ports", "dev1", "dev2" }, "unexpected argument 'dev2'", CTL_VM_PORTS },
        { { "vm", "ports", "-t", "dev1" },
          "option '--tty' is not valid for 'vm ports'",
          CTL_VM_PORTS },
        { { "vm", "console" }, "missing NAME", CTL_VM_CONSOLE },
        { { "vm", "console", "dev1", "--", "sh" }, "unexpected argument 'sh'", CTL_VM_CONSOLE },
        { { "vm", "console", "--json", "dev1" },
          "option '--json' is not valid for 'vm console'",
          CTL_VM_CONSOLE },
        { { "vm", "bogus", "--help" }, "unknown command 'vm bogus'", _CTL_VERB_INVALID },
        { { "vm", "port" }, "missing command after 'vm port'", _CTL_VERB_INVALID },
        { { "vm", "port", "frob", "dev1" }, "unknown command 'vm port frob'", _CTL_VERB_INVALID },
        { { "vm", "port", "add", "dev1" },
          "missing HOSTPORT:GUESTPORT[/tcp|/udp]",
          CTL_VM_PORT_ADD },
        { { "vm", "port", "add" }, "missing NAME", CTL_VM_PORT_ADD },
        { { "vm", "port", "add", "dev1", "80" },
          "invalid port forward '80': expected HOSTPORT:GUESTPORT[/tcp|/udp], such as 8080:80 or "
          "5353:53/udp",
          CTL_VM_PORT_ADD },
        { { "vm", "port", "add", "dev1", "80:80", "x" },
          "unexpected argument 'x'",
          CTL_VM_PORT_ADD },
        { { "vm", "port", "rm", "dev1" }, "missing HOSTPORT[/tcp|/udp]", CTL_VM_PORT_RM },
        { { "vm", "port", "rm", "dev1", "80:80" },
          "invalid port forward '80:80': expected HOSTPORT[/tcp|/udp], such as 8080 or 5353/udp",
          CTL_VM_PORT_RM },
        { { "vm", "port", "list", "--all", "dev1" },
          "option '--all' is not valid for 'vm port list'",
          CTL_VM_PORT_LIST },
        { { "vm", "port", "list", "dev1", "80" }, "unexpected argument '80'", CTL_VM_PORT_LIST },
        { { "vm", "prune", "dev1" }, "unexpected argument 'dev1'", CTL_VM_PRUNE },
        { { "vm", "prune", "--force" },
          "option '--force' is not valid for 'vm prune'",
          CTL_VM_PRUNE },
        { { "vm", "list", "--all" }, "option '--all' is not valid for 'vm list'", CTL_VM_LIST },
        { { "vm", "create", "--image=x", "--work-size", "0", "dev1" },
          "invalid value '0' for --work-size: expected a whole number from 1 to 4294967295",
          CTL_VM_CREATE },
        { { "vm", "create", "--image=x", "--work-size", "1G", "dev1" },
          "invalid value '1G' for --work-size: expected a whole number from 1 to 4294967295",
          CTL_VM_CREATE },
        { { "vm", "create", "--image=x", "--ssh-key=", "dev1" },
          "empty value for --ssh-key: expected FILE.pub",
          CTL_VM_CREATE },
        { { "vm", "create", "--image=x", "--workspace", "", "dev1" },
          "empty value for --workspace: expected DIR",
          CTL_VM_CREATE },
        { { "vm", "exec", "--workspace", ".", "dev1", "--", "ls" },
          "option '--workspace' is not valid for 'vm exec'",
          CTL_VM_EXEC },
        { { "vm", "ssh" }, "missing NAME", CTL_VM_SSH },
        { { "vm", "ssh", "dev1", "ls" }, "missing '--' before the command 'ls'", CTL_VM_SSH },
        { { "vm", "ssh", "dev1", "--" }, "missing command after '--'", CTL_VM_SSH },
        { { "vm", "ssh", "--user", "", "dev1" },
          "empty value for --user: expected USER",
          CTL_VM_SSH },
        { { "vm", "start", "--user", "app", "dev1" },
          "option '--user' is not valid for 'vm start'",
          CTL_VM_START },
        { { "vm", "ssh-proxy", "dev1.banger" }, "missing PORT", CTL_VM_SSH_PROXY },
        { { "vm", "ssh-proxy" }, "missing HOST", CTL_VM_SSH_PROXY },
        { { "vm", "ssh-proxy", "dev1.banger", "0" },
          "invalid port '0': expected a number from 1 to 65535",
          CTL_VM_SSH_PROXY },
        { { "vm", "ssh-proxy", "dev1.banger", "65536" },
          "invalid port '65536': expected a number from 1 to 65535",
          CTL_VM_SSH_PROXY },
        { { "vm", "ssh-proxy", "dev1.banger", "22", "x" },
          "unexpected argument 'x'",
          CTL_VM_SSH_PROXY },
        { { "vm", "sync" }, "missing NAME", CTL_VM_SYNC },
};

typedef struct GoodPortCase {
        const char *spec;
        bool with_guest;
        const char *proto;
        uint16_t host_port;
        uint16_t guest_port;
} GoodPortCase;

static const GoodPortCase good_port_cases[] = {
        { "8080:80", true, "tcp", 8080, 80 },     { "8080:80/udp", true, "udp", 8080, 80 },
        { "8080:80/tcp", true, "tcp", 8080, 80 }, { "1:65535", true, "tcp", 1, 65535 },
        { "0080:08", true, "tcp", 80, 8 },        { "80", false, "tcp", 80, 0 },
        { "5353/udp", false, "udp", 5353, 0 },
};

START_TEST(test_port_spec_good)
{
        const GoodPortCase *c = &good_port_cases[_i];
        CtlPortSpec spec = { 0 };
        char *error = NULL;

        ck_assert_int_eq(ctl_port_spec_parse(c->spec, c->with_guest, &spec, &error), 0);
        ck_assert_ptr_null(error);
        ck_assert_str_eq(spec.proto, c->proto);
        ck_assert_uint_eq(spec.host_port, c->host_port);
        ck_assert_uint_eq(spec.guest_port, c->guest_port);
}
END_TEST

typedef struct BadPortCase {
        const char *spec;
        bool with_guest;
        const char *error;
} BadPortCase;

static const BadPortCase bad_port_cases[] = {
        { "0:80", true,
          "invalid port forward '0:80': host port '0' is not a number from 1 to 65535" },
        { "65536:80", true,
          "invalid port forward '65536:80': host port '65536' is not a number from 1 to 65535" },
        { "99999999999999999999:80", true,
          "invalid port forward '99999999999999999999:80': host port '99999999999999999999' is not "
          "a number from 1 to 65535" },
        { "80:0", true,
          "invalid port forward '80:0': guest port '0' is not a number from 1 to 65535" },
        { "80:65536", true,
          "invalid port forward '80:65536': guest port '65536' is not a number from 1 to 65535" },
        { "80", true,
          "invalid port forward '80': expected HOSTPORT:GUESTPORT[/tcp|/udp], such as 8080:80 or "
          "5353:53/udp" },
        { "", true,
          "invalid port forward '': expected HOSTPORT:GUESTPORT[/tcp|/udp], such as 8080:80 or "
          "5353:53/udp" },
        { "80:", true, "invalid port forward '80:': missing the guest port" },
        { ":80", true, "invalid port forward ':80': missing the host port" },
        { "a:b", true,
          "invalid port forward 'a:b': host port 'a' is not a number from 1 to 65535" },
        { "80:b", true,
          "invalid port forward '80:b': guest port 'b' is not a number from 1 to 65535" },
        { "-1:80", true,
          "invalid port forward '-1:80': host port '-1' is not a number from 1 to 65535" },
        { "+80:80", true,
          "invalid port forward '+80:80': host port '+80' is not a number from 1 to 65535" },
        { " 80:80", true,
          "invalid port forward ' 80:80': host port ' 80' is not a number from 1 to 65535" },
        { "80:80 ", true,
          "invalid port forward '80:80 ': guest port '80 ' is not a number from 1 to 65535" },
        { "80:80:80", true,
          "invalid port forward '80:80:80': guest port '80:80' is not a number from 1 to 65535" },
        { "80:80/sctp", true,
          "invalid port forward '80:80/sctp': protocol 'sctp' is not supported, use /tcp or /udp" },
        { "80:80/UDP", true,
          "invalid port forward '80:80/UDP': protocol 'UDP' is not supported, use /tcp or /udp" },
        { "80:80/udp/x", true,
          "invalid port forward '80:80/udp/x': protocol 'udp/x' is not supported, use /tcp or "
          "/udp" },
        { "80:80/", true,
          "invalid port forward '80:80/': missing the protocol after '/', use /tcp or /udp" },
        { "/udp", false, "invalid port forward '/udp': missing the host port" },
        { "0", false, "invalid port forward '0': host port '0' is not a number from 1 to 65535" },
        { "80:80", false,
          "invalid port forward '80:80': expected HOSTPORT[/tcp|/udp], such as 8080 or 5353/udp" },
};

START_TEST(test_port_spec_bad)
{
        const BadPortCase *c = &bad_port_cases[_i];
        CtlPortSpec spec = { .proto = "unset", .host_port = 7, .guest_port = 7 };
        char *error = NULL;

        ck_assert_int_eq(ctl_port_spec_parse(c->spec, c->with_guest, &spec, &error), -EINVAL);
        ck_assert_str_eq(error, c->error);
        /* A failed parse leaves the output alone. */
        ck_assert_str_eq(spec.proto, "unset");
        ck_assert_uint_eq(spec.host_port, 7);
        ck_assert_uint_eq(spec.guest_port, 7);
        free(error);
}
END_TEST

static int words_to_argv(const char *const *words, char *argv[])
{
        int argc = 0;

        argv[argc++] = (char *)"bangerctl";
        for (size_t i = 0; i < MAX_WORDS && words[i]; i++)
                argv[argc++] = (char *)words[i];
        argv[argc] = NULL;
        return argc;
}

START_TEST(test_parse_good)
{
        const GoodCase *c = &good_cases[_i];
        char *argv[MAX_WORDS + 2];
        int argc = words_to_argv(c->words, argv);
        CtlArgs args;

        ctl_args_init(&args, true);
        ck_assert_int_eq(ctl_args_parse(&args, argc, argv), 0);
        ck_assert_ptr_null(args.error);
        ck_assert_int_eq(args.action, c->action);
        ck_assert_int_eq(args.verb, c->verb);
        if (c->name)
                ck_assert_str_eq(args.name, c->name);
        else
                ck_assert_ptr_null(args.name);
        ctl_args_done(&args);
}
END_TEST

START_TEST(test_parse_bad)
{
        const BadCase *c = &bad_cases[_i];
        char *argv[MAX_WORDS + 2];
        int argc = words_to_argv(c->words, argv);
        CtlArgs args;

        ctl_args_init(&args, true);
        if (!c->error) {
                /* Words after "--" belong to the command, even when they look like options. */
                ck_assert_int_eq(ctl_args_parse(&args, argc, argv), 0);
                ctl_args_done(&args);
                return;
        }
        ck_assert_int_eq(ctl_args_parse(&args, argc, argv), -EINVAL);
        ck_assert_ptr_nonnull(args.error);
        ck_assert_str_eq(args.error, c->error);
        ck_assert_int_eq(args.verb, c->verb);
        ctl_args_done(&args);
}
END_TEST

START_TEST(test_parse_create_values)
{
        char *argv[] = { "bangerctl",   "vm",      "create", "--image",  "debian:bookworm",
                         "--kernel=k1", "--vcpus", "4",      "--memory", "2048",
                         "--no-start",  "dev1",    NULL };
        CtlArgs args;

        ctl_args_init(&args, true);
        ck_assert_int_eq(ctl_args_parse(&args, ELEMENTSOF(argv) - 1, argv), 0);
        ck_assert_str_eq(args.image, "debian:bookworm");
        ck_assert_str_eq(args.kernel, "k1");
        ck_assert_uint_eq(args.vcpus, 4);
        ck_assert_uint_eq(args.memory_mib, 2048);
        ck_assert(args.no_start);
        ck_assert(args.ask_password);
        ck_assert_str_eq(args.name, "dev1");
        ctl_args_done(&args);
}
END_TEST

START_TEST(test_parse_access_values)
{
        char *create[] = { "bangerctl", "vm", "create",    "--image", "x",    "--ssh-key",
                           "a.pub",     "-h", "--ssh-key", "b.pub",   "dev1", NULL };
        char *create_run[] = { "bangerctl", "vm",          "create",          "--image=x",
                               "--ssh-key", "a.pub",       "--ssh-key=b.pub", "--work-size",
                               "2048",      "--workspace", "/src/proj",       "dev1",
                               NULL };
        char *ssh[] = { "bangerctl", "vm", "ssh", "--user=app", "dev1", "--", "ls", "-l", NULL };
        char *proxy[] = { "bangerctl", "vm", "ssh-proxy", "dev1.banger", "2222", NULL };
        CtlArgs args;

        ctl_args_init(&args, true);
        ck_assert_int_eq(ctl_args_parse(&args, ELEMENTSOF(create) - 1, create), 0);
        ck_assert_int_eq(args.action, CTL_ACTION_HELP);
        ctl_args_done(&args);

        ctl_args_init(&args, true);
        ck_assert_int_eq(ctl_args_parse(&args, ELEMENTSOF(create_run) - 1, create_run), 0);
        ck_assert_uint_eq(strv_length(args.ssh_keys), 2);
        ck_assert_str_eq(args.ssh_keys[0], "a.pub");
        ck_assert_str_eq(args.ssh_keys[1], "b.pub");
        ck_assert_uint_eq(args.work_size_mib, 2048);
        ck_assert_str_eq(args.workspace, "/src/proj");
        ctl_args_done(&args);
        ck_assert_ptr_null(args.ssh_keys);

        ctl_args_init(&args, true);
        ck_assert_int_eq(ctl_args_parse(&args, ELEMENTSOF(ssh) - 1, ssh), 0);
        ck_assert_str_eq(args.user, "app");
        ck_assert_str_eq(args.name, "dev1");
        ck_assert_str_eq(args.command[0], "ls");
        ck_assert_str_eq(args.command[1], "-l");
        ck_assert_ptr_null(args.command[2]);
        ck_assert(!ctl_verb_needs_authorization(CTL_VM_SSH));
        ctl_args_done(&args);

        ctl_args_init(&args, true);
        ck_assert_int_eq(ctl_args_parse(&args, ELEMENTSOF(proxy) - 1, proxy), 0);
        ck_assert_str_eq(args.name, "dev1.banger");
        ck_assert_uint_eq(args.proxy_port, 2222);
        ck_assert_ptr_null(args.command);
        ck_assert(!ctl_verb_needs_authorization(CTL_VM_SSH_PROXY));
        ck_assert(ctl_verb_needs_authorization(CTL_VM_SYNC));
        ctl_args_done(&args);
}
END_TEST

START_TEST(test_parse_image_import_values)
{
        char *argv[] = { "bangerctl", "image", "import",       "--format", "docker-archive",
                         "--name",    "app:2", "/srv/app.tar", NULL };
        CtlArgs args;

        ctl_args_init(&args, true);
        ck_assert_int_eq(ctl_args_parse(&args, ELEMENTSOF(argv) - 1, argv), 0);
        ck_assert_int_eq(args.verb, CTL_IMAGE_IMPORT);
        ck_assert_str_eq(args.format, "docker-archive");
        ck_assert_str_eq(args.kernel_name, "app:2");
        ck_assert_str_eq(args.name, "/srv/app.tar");
        ck_assert(ctl_verb_needs_authorization(CTL_IMAGE_IMPORT));
        ctl_args_done(&args);
}
END_TEST

START_TEST(test_parse_exec_command)
{
        char *argv[] = { "bangerctl", "vm", "exec", "-e", "A=1", "--env=B=2=3", "--cwd", "/srv",
                         "dev1",      "--", "sh",   "-c", "--",  "exit 3",      NULL };
        CtlArgs args;

        ctl_args_init(&args, true);
        ck_assert_int_eq(ctl_args_parse(&args, ELEMENTSOF(argv) - 1, argv), 0);
        ck_assert_str_eq(args.name, "dev1");
        ck_assert_str_eq(args.cwd, "/srv");
        ck_assert_uint_eq(strv_length(args.env), 2);
        ck_assert_str_eq(args.env[0], "A=1");
        ck_assert_str_eq(args.env[1], "B=2=3");
        ck_assert_ptr_nonnull(args.command);
        ck_assert_str_eq(args.command[0], "sh");
        ck_assert_str_eq(args.command[1], "-c");
        ck_assert_str_eq(args.command[2], "--");
        ck_assert_str_eq(args.command[3], "exit 3");
        ck_assert_ptr_null(args.command[4]);
        ctl_args_done(&args);
}
END_TEST

START_TEST(test_parse_exec_terminal_and_user)
{
        char *argv[] = { "bangerctl", "vm",   "exec", "-t",  "--user=app", "-w",
                         "/work/x",   "dev1", "--",   "top", NULL };
        char *plain[] = { "bangerctl", "vm", "exec", "dev1", "--", "true", NULL };
        CtlArgs args;

        ctl_args_init(&args, true);
        ck_assert_int_eq(ctl_args_parse(&args, ELEMENTSOF(argv) - 1, argv), 0);
        ck_assert(args.tty);
        ck_assert_str_eq(args.user, "app");
        ck_assert_str_eq(args.cwd, "/work/x");
        ck_assert_str_eq(args.command[0], "top");
        ctl_args_done(&args);

        ctl_args_init(&args, true);
        ck_assert_int_eq(ctl_args_parse(&args, ELEMENTSOF(plain) - 1, plain), 0);
        ck_assert(!args.tty);
        ck_assert_ptr_null(args.user);
        ck_assert_ptr_null(args.cwd);
        ctl_args_done(&args);
}
END_TEST

START_TEST(test_parse_port_values)
{
        char *add[] = { "bangerctl", "vm", "port", "add", "web", "8080:80/udp", NULL };
        char *rm[] = { "bangerctl", "vm", "port", "rm", "web", "8080", NULL };
        char *prune[] = { "bangerctl", "vm", "prune", "--all", NULL };
        CtlArgs args;

        ctl_args_init(&args, true);
        ck_assert_int_eq(ctl_args_parse(&args, ELEMENTSOF(add) - 1, add), 0);
        ck_assert_str_eq(args.subgroup, "port");
        ck_assert_str_eq(args.name, "web");
        ck_assert_str_eq(args.port.proto, "udp");
        ck_assert_uint_eq(args.port.host_port, 8080);
        ck_assert_uint_eq(args.port.guest_port, 80);
        ctl_args_done(&args);

        ctl_args_init(&args, true);
        ck_assert_int_eq(ctl_args_parse(&args, ELEMENTSOF(rm) - 1, rm), 0);
        ck_assert_int_eq(args.verb, CTL_VM_PORT_RM);
        ck_assert_str_eq(args.port.proto, "tcp");
        ck_assert_uint_eq(args.port.host_port, 8080);
        ck_assert_uint_eq(args.port.guest_port, 0);
        ctl_args_done(&args);

        ctl_args_init(&args, true);
        ck_assert_int_eq(ctl_args_parse(&args, ELEMENTSOF(prune) - 1, prune), 0);
        ck_assert_int_eq(args.verb, CTL_VM_PRUNE);
        ck_assert_ptr_null(args.subgroup);
        ck_assert(args.all);
        ck_assert(ctl_verb_needs_authorization(CTL_VM_PRUNE));
        ck_assert(ctl_verb_needs_authorization(CTL_VM_PORT_ADD));
        ck_assert(ctl_verb_needs_authorization(CTL_VM_PORT_RM));
        ck_assert(!ctl_verb_needs_authorization(CTL_VM_PORT_LIST));
        ctl_args_done(&args);
}
END_TEST

START_TEST(test_parse_flags)
{
        char *argv[] = { "bangerctl", "--no-ask-password", "vm", "stop", "-f", "dev1", NULL };
        CtlArgs args;

        ctl_args_init(&args, true);
        ck_assert_int_eq(ctl_args_parse(&args, ELEMENTSOF(argv) - 1, argv), 0);
        ck_assert(!args.ask_password);
        ck_assert(args.force);
        ck_assert(!args.json);
        ctl_args_done(&args);
}
END_TEST

START_TEST(test_verbs_needing_authorization)
{
        ck_assert(!ctl_verb_needs_authorization(CTL_VM_LIST));
        ck_assert(!ctl_verb_needs_authorization(CTL_VM_SHOW));
        ck_assert(!ctl_verb_needs_authorization(CTL_IMAGE_LIST));
        ck_assert(!ctl_verb_needs_authorization(CTL_KERNEL_LIST));
        ck_assert(!ctl_verb_needs_authorization(CTL_IMAGE_SHOW));
        ck_assert(!ctl_verb_needs_authorization(CTL_KERNEL_SHOW));
        ck_assert(ctl_verb_needs_authorization(CTL_VM_EXEC));
        ck_assert(ctl_verb_needs_authorization(CTL_VM_PORTS));
        ck_assert(ctl_verb_needs_authorization(CTL_VM_CONSOLE));
        ck_assert(ctl_verb_needs_authorization(CTL_VM_CONSOLE_LOG));
        ck_assert(ctl_verb_needs_authorization(CTL_IMAGE_PULL));
        ck_assert(ctl_verb_needs_authorization(CTL_KERNEL_RM));
}
END_TEST

/* Reads what a print function wrote to a memory stream. */
static char *capture(void (*print)(FILE *f, const CtlArgs *args), const CtlArgs *args)
{
        char *text = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&text, &size);

        ck_assert_ptr_nonnull(f);
        print(f, args);
        ck_assert_int_eq(fclose(f), 0);
        return text;
}

START_TEST(test_usage_error_shows_verb)
{
        char *argv[] = { "bangerctl", "vm", "exec", "dev1", "ls", NULL };
        CtlArgs args;
        char *text;

        ctl_args_init(&args, true);
        ck_assert_int_eq(ctl_args_parse(&args, ELEMENTSOF(argv) - 1, argv), -EINVAL);
        text = capture(ctl_print_usage_error, &args);
        ck_assert_str_eq(text, "bangerctl: missing '--' before the command 'ls'\n"
                               "Usage: bangerctl vm exec [-t] [-e KEY=VALUE]... [-w DIR] [-u USER] "
                               "NAME -- CMD [ARG...]\n");
        free(text);
        ctl_args_done(&args);
}
END_TEST

START_TEST(test_usage_error_lists_subgroup)
{
        char *argv[] = { "bangerctl", "vm", "port", NULL };
        CtlArgs args;
        char *text;

        ctl_args_init(&args, true);
        ck_assert_int_eq(ctl_args_parse(&args, ELEMENTSOF(argv) - 1, argv), -EINVAL);
        text = capture(ctl_print_usage_error, &args);
        ck_assert_str_eq(text, "bangerctl: missing command after 'vm port'\n"
                               "Usage:\n"
                               "  bangerctl vm port add NAME HOSTPORT:GUESTPORT[/tcp|/udp]\n"
                               "  bangerctl vm port list [--json] NAME\n"
                               "  bangerctl vm port rm NAME HOSTPORT[/tcp|/udp]\n");
        free(text);
        ctl_args_done(&args);
}
END_TEST

static void print_help(FILE *f, const CtlArgs *args)
{
        ctl_print_help(f, args->group, args->verb);
}

START_TEST(test_help_lists_every_verb)
{
        CtlArgs args;
        char *text;

        ctl_args_init(&args, true);
        text = capture(print_help, &args);
        for (CtlVerb v = 0; v < _CTL_VERB_MAX; v++) {
                char line[64];

                snprintf(line, sizeof(line), "%-12s %-13s", ctl_verb_group(v), ctl_verb_name(v));
                ck_assert_msg(strstr(text, line), "help lacks '%s'", line);
        }
        ck_assert_ptr_nonnull(strstr(text, "--no-ask-password"));
        free(text);
        ctl_args_done(&args);
}
END_TEST

START_TEST(test_help_of_verb_lists_options)
{
        char *argv[] = { "bangerctl", "vm", "create", "--help", NULL };
        CtlArgs args;
        char *text;

        ctl_args_init(&args, true);
        ck_assert_int_eq(ctl_args_parse(&args, ELEMENTSOF(argv) - 1, argv), 0);
        text = capture(print_help, &args);
        ck_assert_ptr_nonnull(strstr(text, "Usage: bangerctl vm create --image REF"));
        ck_assert_ptr_nonnull(strstr(text, "--memory MIB"));
        ck_assert_ptr_nonnull(strstr(text, "--no-start"));
        ck_assert_ptr_null(strstr(text, "--force"));
        free(text);
        ctl_args_done(&args);
}
END_TEST

typedef struct BytesCase {
        uint64_t bytes;
        const char *text;
} BytesCase;

static const BytesCase bytes_cases[] = {
        { 0, "0 B" },
        { 1, "1 B" },
        { 1023, "1023 B" },
        { 1024, "1.0 KiB" },
        { 1536, "1.5 KiB" },
        { 1024 * 1024 - 1, "1.0 MiB" },
        { 1024 * 1024, "1.0 MiB" },
        { UINT64_C(12897484), "12.3 MiB" },
        { UINT64_C(41943040), "40.0 MiB" },
        { UINT64_C(1073741824), "1.0 GiB" },
        { UINT64_C(1099511627776), "1.0 TiB" },
        { UINT64_C(1152921504606846976), "1.0 EiB" },
        { UINT64_MAX, "16.0 EiB" },
};

START_TEST(test_format_bytes)
{
        char buf[FORMAT_BYTES_MAX];

        ck_assert_str_eq(format_bytes(buf, sizeof(buf), bytes_cases[_i].bytes),
                         bytes_cases[_i].text);
}
END_TEST

START_TEST(test_format_progress_plain)
{
        char buf[128];

        ck_assert_str_eq(format_progress_plain(buf, sizeof(buf), "resolve", 0, 0), "resolve");
        ck_assert_str_eq(format_progress_plain(buf, sizeof(buf), "download", UINT64_C(12897484),
                                               UINT64_C(41943040)),
                         "download 12.3 MiB / 40.0 MiB");
        ck_assert_str_eq(format_progress_plain(buf, sizeof(buf), "unpack", 5, 0), "unpack");
        ck_assert_str_eq(format_progress_plain(buf, sizeof(buf), "unpack", 4096, 4096), "unpack");
        ck_assert_str_eq(format_progress_plain(buf, sizeof(buf), "verify", 0, 2048),
                         "verify 0 B / 2.0 KiB");
}
END_TEST

typedef struct BarCase {
        size_t width;
        const char *step;
        double progress;
        uint64_t done;
        uint64_t total;
        const char *text;
} BarCase;

static const BarCase bar_cases[] = {
        { 60, "download", 0.5, 20 * 1024 * 1024, 40 * 1024 * 1024,
          "download [###########            ]  50% 20.0 MiB / 40.0 MiB" },
        { 40, "resolve", 0.0, 0, 0, "resolve [                        ]   0%" },
        /* Out-of-range progress is clamped; NaN counts as none. */
        { 30, "build", 7.0, 0, 0, "build [################] 100%" },
        { 30, "build", -1.0, 0, 0, "build [                ]   0%" },
        { 30, "build", 0.0 / 0.0, 0, 0, "build [                ]   0%" },
        /* Too narrow for a bar: the step and the numbers, then the step alone. */
        { 35, "download", 0.25, 1024, 4096, "download  25% 1.0 KiB / 4.0 KiB" },
        { 8, "download", 0.25, 1024, 4096, "downloa" },
        { 0, "download", 0.25, 1024, 4096, "" },
        /* A finished transfer from an earlier step shows no byte counts. */
        { 30, "build", 0.9, 4096, 4096, "build [##############  ]  90%" },
        /* Wide terminals cap the bar at 50 cells. */
        { 200, "boot", 1.0, 0, 0,
          "boot [##################################################] 100%" },
};

START_TEST(test_format_progress_bar)
{
        const BarCase *c = &bar_cases[_i];
        char buf[512];

        format_progress_bar(buf, sizeof(buf), c->width, c->step, c->progress, c->done, c->total);
        ck_assert_str_eq(buf, c->text);
        ck_assert_uint_lt(strlen(buf), c->width > 0 ? c->width : 1);
}
END_TEST

START_TEST(test_format_timestamp)
{
        char buf[FORMAT_TIMESTAMP_MAX];

        ck_assert_str_eq(format_timestamp(buf, sizeof(buf), 0), "n/a");
        ck_assert_str_eq(format_timestamp(buf, sizeof(buf), UINT64_C(1000000)),
                         "1970-01-01 00:00:01 UTC");
        ck_assert_str_eq(format_timestamp(buf, sizeof(buf), UINT64_C(1796400300000000)),
                         "2026-12-04 16:05:00 UTC");
}
END_TEST

START_TEST(test_format_port_forward)
{
        char buf[FORMAT_FORWARD_MAX];

        ck_assert_str_eq(format_port_forward(buf, sizeof(buf), "tcp", 8080, 80), "8080:80/tcp");
        ck_assert_str_eq(format_port_forward(buf, sizeof(buf), "udp", 65535, 65535),
                         "65535:65535/udp");
}
END_TEST

START_TEST(test_table_aligns_columns)
{
        static const char *const header[] = { "NAME", "STATE", "IMAGE" };
        Table *t = NULL;
        char *text = NULL;
        size_t size = 0;
        FILE *f;

        ck_assert_int_eq(table_new(&t, header, 3), 0);
        ck_assert_int_eq(table_add(t, "dev1"), 0);
        ck_assert_int_eq(table_add(t, "running"), 0);
        ck_assert_int_eq(table_add(t, "debian:bookworm"), 0);
        ck_assert_int_eq(table_add(t, "a-much-longer-name"), 0);
        ck_assert_int_eq(table_add(t, NULL), 0);
        ck_assert_int_eq(table_add(t, "alpine"), 0);
        ck_assert_uint_eq(table_rows(t), 3);

        f = open_memstream(&text, &size);
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(table_print(t, f), 0);
        ck_assert_int_eq(fclose(f), 0);
        ck_assert_str_eq(text, "NAME                STATE    IMAGE\n"
                               "dev1                running  debian:bookworm\n"
                               "a-much-longer-name  -        alpine\n");
        free(text);
        table_free(t);
}
END_TEST

static Suite *ctl_suite(void)
{
        Suite *s = suite_create("ctl");
        TCase *tc = tcase_create("parse");

        tcase_add_loop_test(tc, test_parse_good, 0, ELEMENTSOF(good_cases));
        tcase_add_loop_test(tc, test_parse_bad, 0, ELEMENTSOF(bad_cases));
        tcase_add_test(tc, test_parse_create_values);
        tcase_add_test(tc, test_parse_image_import_values);
        tcase_add_test(tc, test_parse_access_values);
        tcase_add_test(tc, test_parse_exec_command);
        tcase_add_test(tc, test_parse_exec_terminal_and_user);
        tcase_add_test(tc, test_parse_flags);
        tcase_add_test(tc, test_parse_port_values);
        tcase_add_loop_test(tc, test_port_spec_good, 0, ELEMENTSOF(good_port_cases));
        tcase_add_loop_test(tc, test_port_spec_bad, 0, ELEMENTSOF(bad_port_cases));
        tcase_add_test(tc, test_usage_error_lists_subgroup);
        tcase_add_test(tc, test_verbs_needing_authorization);
        tcase_add_test(tc, test_usage_error_shows_verb);
        tcase_add_test(tc, test_help_lists_every_verb);
        tcase_add_test(tc, test_help_of_verb_lists_options);
        suite_add_tcase(s, tc);

        tc = tcase_create("format");
        tcase_add_loop_test(tc, test_format_bytes, 0, ELEMENTSOF(bytes_cases));
        tcase_add_test(tc, test_format_progress_plain);
        tcase_add_loop_test(tc, test_format_progress_bar, 0, ELEMENTSOF(bar_cases));
        tcase_add_test(tc, test_format_timestamp);
        tcase_add_test(tc, test_format_port_forward);
        tcase_add_test(tc, test_table_aligns_columns);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(ctl_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
