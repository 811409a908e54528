#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Reading Linux kernel modules without libkmod: the .modinfo section of a module's ELF file,
 * the modules directory of one kernel release (lib/modules/RELEASE), and the load order of a
 * set of modules with their dependencies. */

typedef struct ModInfo {
        char *name;     /* "virtio_net"; NULL when the module has no name= entry */
        char *vermagic; /* "6.1.0-28-cloud-amd64 SMP mod_unload modversions " */
        char **depends; /* module names from depends=, never NULL */
} ModInfo;

ModInfo *modinfo_free(ModInfo *info);
static inline void modinfo_freep(ModInfo **p)
{
        modinfo_free(*p);
}

/* Parses the .modinfo section of an uncompressed module. Module names in name= and depends=
 * have '-' replaced by '_', as the kernel does. Returns -EMEDIUMTYPE when data is not ELF,
 * -EBADMSG for an ELF that is not a 64-bit little-endian x86-64 object or whose section table
 * is out of bounds, and -ENOENT when it has no .modinfo section. */
int modinfo_parse(const void *data, size_t size, ModInfo **ret);

/* Returns a copy of name with '-' replaced by '_'. */
char *module_name_normalize(const char *name);

/* Derives the module name from a file name: "kernel/net/virtio-foo.ko.xz" is "virtio_foo".
 * Returns -EINVAL when the file name does not end in .ko, .ko.gz, .ko.xz or .ko.zst. */
int module_name_from_path(const char *path, char **ret);

typedef struct KernelModule {
        char *name; /* module name with underscores */
        char *path; /* relative to the modules directory */
} KernelModule;

/* The modules of one kernel release: the module files found under lib/modules/RELEASE and the
 * names that modules.builtin lists as compiled into the kernel. */
typedef struct ModuleIndex {
        KernelModule *modules;
        size_t n_modules;
        char **builtin;
} ModuleIndex;

ModuleIndex *module_index_free(ModuleIndex *index);
static inline void module_index_freep(ModuleIndex **p)
{
        module_index_free(*p);
}

/* Walks the modules directory (lib/modules/RELEASE) and reads modules.builtin when present. */
int module_index_load(int modules_dir_fd, ModuleIndex **ret);
const KernelModule *module_index_find(const ModuleIndex *index, const char *name);
bool module_index_is_builtin(const ModuleIndex *index, const char *name);

/* Reads a module file relative to modules_dir_fd, decompressing .ko.gz, .ko.xz and .ko.zst, and
 * returns its ELF bytes. Files larger than 256 MiB after decompression are rejected with
 * -EFBIG. */
int module_read(int modules_dir_fd, const char *path, void **ret, size_t *ret_size);

/* Computes the modules to load for the requested names, dependencies first. A requested module
 * that is built in or absent is skipped, but a dependency that is absent and not built in is an
 * error. When release is not NULL, each module's vermagic must start with it. Returns the
 * module names and their paths in load order. On failure *ret_error (when not NULL) names the
 * module and the problem. */
int module_resolve_load_order(int modules_dir_fd, const ModuleIndex *index, char *const *requested,
                              const char *release, char ***ret_names, char ***ret_paths,
                              char **ret_error);
