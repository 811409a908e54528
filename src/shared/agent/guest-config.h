#pragma once

/* The per-VM configuration that bangerd hands to banger-init as /etc/banger/vm.conf.
 *
 * Format: UTF-8 text, one "key=value" per line; values escape backslash, newline, tab and
 * other control bytes as \\, \n, \t and \xHH. Keys: hostname (once), arg (repeated: the
 * command's argv in order, entrypoint followed by cmd), env (repeated: "NAME=value"), workdir,
 * user, agent_port (virtio-serial port name). Unknown keys are rejected. This file is parsed
 * inside the guest by a static binary, so it uses no library beyond libc. */

#define GUEST_CONFIG_PATH     "/etc/banger/vm.conf"
#define GUEST_AGENT_PORT_NAME "org.banger1.agent"
#define GUEST_CONFIG_MAX_SIZE (1024 * 1024)

typedef struct GuestConfig {
        char *hostname;
        char **argv; /* NULL-terminated, NULL or empty when the image has no command */
        char **env;  /* NULL-terminated "NAME=value" */
        char *workdir;
        char *user;
        char *agent_port;
} GuestConfig;

GuestConfig *guest_config_free(GuestConfig *c);

/* Serialises c to the text format; *ret is NUL-terminated and owned by the caller. */
int guest_config_format(const GuestConfig *c, char **ret);

/* Parses text of size bytes. Returns -EINVAL for a malformed line, unknown key, bad escape or
 * NUL byte, with *ret_line (when not NULL) set to the 1-based line number. */
int guest_config_parse(const char *text, size_t size, GuestConfig **ret, unsigned *ret_line);
