#pragma once

#include <stdbool.h>

/* Names of banger's objects and their form on disk. */

#define VM_NAME_MAX     63
#define KERNEL_NAME_MAX 128

/* Checks that name is a valid VM name, which is also the guest's hostname: 1 to 63 characters
 * of [a-z0-9-], neither starting nor ending with '-'. Returns -EINVAL and, when ret_message is
 * not NULL, a message that names the value and the rule. */
int vm_name_check(const char *name, char **ret_message);

/* Checks a kernel name: 1 to 128 characters of [A-Za-z0-9._+-], not "." or "..". */
int kernel_name_check(const char *name, char **ret_message);

/* Escapes a name into one path component: bytes outside [A-Za-z0-9_+:@-] and a '.' at the
 * start become "%XX", so "docker.io/library/busybox:latest" becomes
 * "docker.io%2Flibrary%2Fbusybox:latest". The result never starts with '.'. */
int name_escape(const char *name, char **ret);

/* Reverses name_escape(). Returns -EINVAL for a malformed escape or an escaped NUL. */
int name_unescape(const char *escaped, char **ret);
