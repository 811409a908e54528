#pragma once

#include <stddef.h>

/* Checking a kernel's build configuration (the .config text that Debian ships as
 * /boot/config-RELEASE) for the options a banger guest needs. */

/* Options the guest needs built in (y) or as modules (m), NULL-terminated. */
extern const char *const kconfig_guest_options[];

/* Returns the options of kconfig_guest_options that text (size bytes, not necessarily
 * NUL-terminated) leaves unset or sets to a value other than y or m, in table order, as a
 * NULL-terminated list in *ret (empty when nothing is missing). Lines that are not
 * "CONFIG_X=VALUE" are ignored, so "# CONFIG_X is not set" counts as missing. */
int kconfig_find_missing(const char *text, size_t size, char ***ret);

/* Checks text as kconfig_find_missing() does. Returns -ENOTSUP when an option is missing, with
 * *ret_error (when not NULL) naming every missing option and source_name. */
int kconfig_check_guest(const char *text, size_t size, const char *source_name, char **ret_error);
