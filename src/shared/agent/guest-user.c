#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guest-user.h"
#include "macro.h"

static bool parse_id(const char *s, unsigned *ret)
{
        char *end;
        unsigned long v;

        if (isempty(s) || s[0] < '0' || s[0] > '9')
                return false;
        errno = 0;
        v = strtoul(s, &end, 10);
        /* (uid_t)-1 means "unchanged" to setresuid() and chown(), so it is not a valid id. */
        if (errno != 0 || *end != '\0' || v >= (unsigned long)UINT32_MAX)
                return false;
        *ret = (unsigned)v;
        return true;
}

typedef struct DbEntry {
        unsigned id;  /* field 3: uid or gid */
        unsigned gid; /* field 4 of a passwd entry */
} DbEntry;

/* Finds the entry of a passwd- or group-style file under root whose name (field 1) is name, or
 * when name is NULL whose id (field 3) is id. Returns -ESRCH when no entry matches. When
 * ret_home is not NULL, it receives a copy of field 6, the home directory of a passwd entry,
 * or NULL when the entry has none. */
static int lookup_db(const char *root, const char *file, const char *name, unsigned id,
                     DbEntry *ret, char **ret_home)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        char line[4096];

        if (asprintf(&path, "%s%s", root, file) < 0)
                return -ENOMEM;

        f = fopen(path, "re");
        if (!f)
                return errno == ENOENT ? -ESRCH : negative_errno();

        while (fgets(line, sizeof(line), f)) {
                char *fields[6] = {};
                char *p = line;
                DbEntry e = {};

                line[strcspn(line, "\n")] = '\0';
                for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                        fields[i] = strsep(&p, ":");

                if (!fields[0] || !fields[2] || !parse_id(fields[2], &e.id))
                        continue;
                if (name ? !streq(fields[0], name) : e.id != id)
                        continue;
                if (fields[3] && !parse_id(fields[3], &e.gid))
                        e.gid = 0;

                if (ret_home) {
                        *ret_home = NULL;
                        if (!isempty(fields[5]) && !(*ret_home = strdup(fields[5])))
                                return -ENOMEM;
                }
                *ret = e;
                return 0;
        }
        return -ESRCH;
}

int guest_user_resolve(const char *root, const char *spec, uid_t *ret_uid, gid_t *ret_gid)
{
        _cleanup_free_ char *user = NULL;
        DbEntry e;
        char *group;
        unsigned uid, gid;
        int r;

        if (isempty(spec)) {
                *ret_uid = 0;
                *ret_gid = 0;
                return 0;
        }

        user = strdup(spec);
        if (!user)
                return -ENOMEM;
        group = strchr(user, ':');
        if (group)
                *group++ = '\0';
        if (isempty(user) || (group && isempty(group)))
                return -EINVAL;

        if (parse_id(user, &uid)) {
                r = lookup_db(root, "/etc/passwd", NULL, uid, &e, NULL);
                if (r < 0 && r != -ESRCH)
                        return r;
                gid = r >= 0 ? e.gid : 0;
        } else {
                r = lookup_db(root, "/etc/passwd", user, 0, &e, NULL);
                if (r < 0)
                        return r;
                uid = e.id;
                gid = e.gid;
        }

        if (group && !parse_id(group, &gid)) {
                r = lookup_db(root, "/etc/group", group, 0, &e, NULL);
                if (r < 0)
                        return r;
                gid = e.id;
        }

        *ret_uid = uid;
        *ret_gid = gid;
        return 0;
}

int guest_user_home(const char *root, uid_t uid, char **ret)
{
        _cleanup_free_ char *home = NULL;
        DbEntry e;
        int r;

        r = lookup_db(root, "/etc/passwd", NULL, uid, &e, &home);
        if (r < 0)
                return r;
        if (!home || home[0] != '/')
                return -EINVAL;
        *ret = TAKE_PTR(home);
        return 0;
}
