#pragma once

#include <sys/types.h>

/* Resolves the guest config's user spec ("name", "uid", "name:group", "uid:gid" and mixes, as
 * in an OCI image's User field) against root's /etc/passwd and /etc/group, without NSS so it
 * works in a static binary. NULL or "" is root. A name without a group takes the group of its
 * passwd entry, and so does a uid listed there; an unlisted uid gets gid 0. Returns -ESRCH
 * for a name that is not listed and -EINVAL for a malformed spec or entry. */
int guest_user_resolve(const char *root, const char *spec, uid_t *ret_uid, gid_t *ret_gid);
