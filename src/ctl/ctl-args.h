#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Command-line parsing for bangerctl. The parser does no I/O and touches no bus, so every
 * command line can be checked in a unit test. */

typedef enum CtlVerb {
        CTL_IMAGE_PULL,
        CTL_IMAGE_IMPORT,
        CTL_IMAGE_LIST,
        CTL_IMAGE_RM,
        CTL_IMAGE_SHOW,
        CTL_KERNEL_IMPORT,
        CTL_KERNEL_LIST,
        CTL_KERNEL_PULL,
        CTL_KERNEL_RM,
        CTL_KERNEL_SHOW,
        CTL_VM_CREATE,
        CTL_VM_START,
        CTL_VM_STOP,
        CTL_VM_RESTART,
        CTL_VM_RM,
        CTL_VM_LIST,
        CTL_VM_SHOW,
        CTL_VM_EXEC,
        CTL_VM_PORTS,
        CTL_VM_CONSOLE,
        CTL_VM_CONSOLE_LOG,
        CTL_VM_PORT_ADD,
        CTL_VM_PORT_LIST,
        CTL_VM_PORT_RM,
        CTL_VM_PRUNE,
        CTL_VM_SSH,
        CTL_VM_SSH_PROXY,
        CTL_VM_SYNC,
        _CTL_VERB_MAX,
        _CTL_VERB_INVALID = -EINVAL,
} CtlVerb;

typedef enum CtlAction {
        CTL_ACTION_RUN,     /* run args->verb */
        CTL_ACTION_HELP,    /* print help for args->group and args->verb, exit 0 */
        CTL_ACTION_VERSION, /* print the version, exit 0 */
} CtlAction;

/* A port forward as given on the command line. */
typedef struct CtlPortSpec {
        const char *proto; /* "tcp" or "udp", a static string */
        uint16_t host_port;
        uint16_t guest_port; /* 0 when the spec has no guest port */
} CtlPortSpec;

typedef struct CtlArgs {
        CtlAction action;
        /* The verb group ("vm") and verb that were recognised, also after a usage error, so
         * the caller can print the matching usage line. NULL and _CTL_VERB_INVALID when none. */
        const char *group;
        CtlVerb verb;
        /* The first word of a two-word verb ("port" of "vm port add"), NULL for other verbs. */
        const char *subgroup;

        bool json;
        bool ask_password;
        bool force;
        bool no_start;
        bool all;
        bool tty; /* vm exec -t */

        /* The positional argument: NAME, REF or PATH. Points into argv. */
        const char *name;
        const char *image;
        const char *kernel;
        const char *kernel_name; /* --name of kernel import and image import */
        const char *format;      /* image import --format */
        const char *modules;
        const char *cwd;
        uint32_t vcpus;         /* 0 when not given */
        uint32_t memory_mib;    /* 0 when not given */
        char **env;             /* --env KEY=VALUE, owned, NULL when none */
        char *const *command;   /* vm exec and vm ssh: the words after "--", points into argv */
        CtlPortSpec port;       /* vm port add and vm port rm */
        char **ssh_keys;        /* vm create --ssh-key FILE, owned, NULL when none */
        uint32_t work_size_mib; /* vm create --work-size, 0 when not given */
        const char *workspace;  /* vm create --workspace DIR */
        const char *user;       /* vm ssh --user */
        uint16_t proxy_port;    /* vm ssh-proxy HOST PORT */

        /* Usage error message, owned, set when ctl_args_parse() returns -EINVAL. */
        char *error;
} CtlArgs;

/* Initializes args with the defaults. Authentication prompts are on when ask_password is true. */
void ctl_args_init(CtlArgs *args, bool ask_password);
void ctl_args_done(CtlArgs *args);

/* Parses argv (argv[0] is the program name). Returns 0 on success, -EINVAL on a usage error
 * with args->error describing it, or -ENOMEM. */
int ctl_args_parse(CtlArgs *args, int argc, char *const argv[]);

/* Parses a port forward: "HOSTPORT:GUESTPORT[/tcp|/udp]" when with_guest is true, else
 * "HOSTPORT[/tcp|/udp]". The protocol defaults to tcp. Returns 0, -EINVAL with *ret_error set
 * to a message that names the value and the expected form, or -ENOMEM. */
int ctl_port_spec_parse(const char *s, bool with_guest, CtlPortSpec *ret, char **ret_error);

/* Returns true for verbs whose methods check polkit, false for the ones that only read. */
bool ctl_verb_needs_authorization(CtlVerb verb);

const char *ctl_verb_group(CtlVerb verb);
const char *ctl_verb_name(CtlVerb verb);

/* Writes the usage line of one verb ("bangerctl vm stop [--force] NAME"). */
void ctl_print_verb_usage(FILE *f, CtlVerb verb);

/* Writes the help text: of everything when group is NULL, of a group when verb is invalid, and
 * of one verb otherwise. */
void ctl_print_help(FILE *f, const char *group, CtlVerb verb);

/* Writes "bangerctl: " and the usage error, then the usage lines that apply to it. */
void ctl_print_usage_error(FILE *f, const CtlArgs *args);
