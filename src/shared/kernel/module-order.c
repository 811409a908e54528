#include <errno.h>
#include <string.h>

#include "kernel-util.h"
#include "kmod.h"
#include "log.h"
#include "macro.h"
#include "strv.h"

typedef struct Resolver {
        int modules_dir_fd;
        const ModuleIndex *index;
        const char *release;
        char **visiting; /* stack of modules whose dependencies are being resolved */
        char **names;    /* resolved modules in load order */
        char **paths;
        char **error;
} Resolver;

static int resolver_check_vermagic(Resolver *res, const KernelModule *m, const ModInfo *info)
{
        size_t n;

        if (!res->release)
                return 0;
        if (!info->vermagic)
                return error_set(res->error, -EBADMSG,
                                 "Module '%s' has no vermagic: it was not built for a kernel "
                                 "release, rebuild it or remove it",
                                 m->path);

        n = strcspn(info->vermagic, " ");
        if (n != strlen(res->release) || !strneq(info->vermagic, res->release, n))
                return error_set(res->error, -EBADMSG,
                                 "Module '%s' was built for kernel '%.*s', not '%s': pass the "
                                 "modules directory of the same kernel build",
                                 m->path, (int)n, info->vermagic, res->release);
        return 0;
}

static int resolver_visit(Resolver *res, const KernelModule *m, const char *parent);

static int resolver_visit_depends(Resolver *res, const KernelModule *m, char **depends)
{
        int r;

        for (char **d = depends; *d; d++) {
                const KernelModule *dep;

                if (module_index_is_builtin(res->index, *d))
                        continue;
                dep = module_index_find(res->index, *d);
                if (!dep)
                        return error_set(res->error, -ENOENT,
                                         "Module '%s' depends on '%s', which is neither a module "
                                         "file nor listed in modules.builtin: pass the complete "
                                         "modules directory",
                                         m->name, *d);
                r = resolver_visit(res, dep, m->name);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int resolver_visit(Resolver *res, const KernelModule *m, const char *parent)
{
        _cleanup_(modinfo_freep) ModInfo *info = NULL;
        _cleanup_free_ void *data = NULL;
        size_t size, depth;
        int r;

        if (strv_contains(res->names, m->name))
                return 0;
        if (strv_contains(res->visiting, m->name))
                return error_set(res->error, -ELOOP,
                                 "Modules '%s' and '%s' depend on each other: the modules "
                                 "directory is damaged",
                                 parent, m->name);

        r = module_read(res->modules_dir_fd, m->path, &data, &size);
        if (r < 0)
                return error_set(res->error, r, "Failed to read module '%s': %s", m->path,
                                 strerror(-r));
        r = modinfo_parse(data, size, &info);
        if (r < 0)
                return error_set(res->error, r,
                                 "Module '%s' is not a valid x86-64 module with .modinfo: %s",
                                 m->path, strerror(-r));
        r = resolver_check_vermagic(res, m, info);
        if (r < 0)
                return r;

        r = strv_extend(&res->visiting, m->name);
        if (r < 0)
                return r;
        r = resolver_visit_depends(res, m, info->depends);
        if (r < 0)
                return r;
        depth = strv_length(res->visiting);
        free(res->visiting[depth - 1]);
        res->visiting[depth - 1] = NULL;

        r = strv_extend(&res->names, m->name);
        if (r < 0)
                return r;
        return strv_extend(&res->paths, m->path);
}

int module_resolve_load_order(int modules_dir_fd, const ModuleIndex *index, char *const *requested,
                              const char *release, char ***ret_names, char ***ret_paths,
                              char **ret_error)
{
        _cleanup_strv_free_ char **names = NULL, **paths = NULL, **visiting = NULL;
        Resolver res = {
                .modules_dir_fd = modules_dir_fd,
                .index = index,
                .release = release,
                .error = ret_error,
        };
        int r = 0;

        for (char *const *i = requested; i && *i; i++) {
                const KernelModule *m;

                if (module_index_is_builtin(index, *i)) {
                        log_debug("Module '%s' is built in, skipping", *i);
                        continue;
                }
                m = module_index_find(index, *i);
                if (!m) {
                        log_debug("Module '%s' is not in the modules directory, skipping", *i);
                        continue;
                }
                r = resolver_visit(&res, m, *i);
                if (r < 0)
                        break;
        }

        names = res.names;
        paths = res.paths;
        visiting = res.visiting;
        if (r < 0)
                return r;

        /* An empty result is an empty list, not NULL. */
        if (!names) {
                names = calloc(1, sizeof(char *));
                paths = calloc(1, sizeof(char *));
                if (!names || !paths)
                        return -ENOMEM;
        }
        *ret_names = TAKE_PTR(names);
        *ret_paths = TAKE_PTR(paths);
        return 0;
}
