#pragma once

#include <sys/types.h>

/* Resolves the guest config's user spec ("name", "uid", "name:group", "uid:gid" and mixes, as
 * in an OCI image's User field) against root's /etc/passwd and /etc/group, without NSS so it
 * works in a static binary. NULL or "" is root. A name without a group takes the group of its
 * passwd entry, and so does a uid listed there; an unlisted uid gets gid 0. Returns -ESRCH
 * for a name that is not listed and -EINVAL for a malformed spec or entry. */
int guest_user_resolve(const char *root, const char *spec, uid_t *ret_uid, gid_t *ret_gid);

/* Stores the home directory (field 6) of uid's entry in root's /etc/passwd. Returns -ESRCH when
 * uid is not listed and -EINVAL when its home directory is empty or not absolute. */
int guest_user_home(const char *root, uid_t uid, char **ret);
