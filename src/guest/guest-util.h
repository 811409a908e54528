#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "guest-config.h"
#include "guest-user.h"

/* Helpers shared by banger-init and banger-agent. Both are static binaries that log to the
 * console, so messages go to stderr as "PROGRAM: message". */

void guest_log_open(const char *program);
void guest_log(const char *format, ...) __attribute__((format(printf, 1, 2)));
/* Logs the message followed by ": " and strerror(-error), and returns error. */
int guest_log_errno(int error, const char *format, ...) __attribute__((format(printf, 2, 3)));

uint64_t guest_now_usec(void);
void guest_sleep_usec(uint64_t usec);

/* Reads all of path, at most max bytes, into a NUL-terminated buffer. Returns -EFBIG for a
 * longer file. */
int guest_read_file(const char *path, size_t max, char **ret, size_t *ret_size);

/* Reads and parses path. A missing file yields an empty config. */
int guest_config_load(const char *path, GuestConfig **ret);

/* Builds the environment for a command: env (NULL means none) plus a default PATH when env
 * sets none. */
char **guest_env_with_defaults(char *const *env);
