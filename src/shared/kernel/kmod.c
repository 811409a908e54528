#include <archive.h>
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "kernel-util.h"
#include "kmod.h"
#include "log.h"
#include "macro.h"
#include "strv.h"

#define MODULE_MAX_SIZE (UINT64_C(256) * 1024 * 1024)

/* Guards the directory walk against symlink loops and absurd trees. */
#define MODULE_DIR_MAX_DEPTH 16

ModInfo *modinfo_free(ModInfo *info)
{
        if (!info)
                return NULL;
        free(info->name);
        free(info->vermagic);
        strv_free(info->depends);
        free(info);
        return NULL;
}

char *module_name_normalize(const char *name)
{
        char *copy = strdup(name);

        if (!copy)
                return NULL;
        for (char *p = copy; *p; p++)
                if (*p == '-')
                        *p = '_';
        return copy;
}

static const char *const module_suffixes[] = { ".ko", ".ko.gz", ".ko.xz", ".ko.zst" };

int module_name_from_path(const char *path, char **ret)
{
        const char *base = strrchr(path, '/');
        size_t len;

        base = base ? base + 1 : path;
        len = strlen(base);

        for (size_t i = 0; i < ELEMENTSOF(module_suffixes); i++) {
                size_t suffix_len = strlen(module_suffixes[i]);
                _cleanup_free_ char *stem = NULL;
                char *name;

                if (len <= suffix_len || !streq(base + len - suffix_len, module_suffixes[i]))
                        continue;

                stem = strndup(base, len - suffix_len);
                if (!stem)
                        return -ENOMEM;
                name = module_name_normalize(stem);
                if (!name)
                        return -ENOMEM;
                *ret = name;
                return 0;
        }
        return -EINVAL;
}

/* Finds the .modinfo section and returns its bounds within data. */
static int elf_find_modinfo(const uint8_t *data, size_t size, uint64_t *ret_offset,
                            uint64_t *ret_size)
{
        Elf64_Ehdr eh;
        Elf64_Shdr strtab;

        if (size < SELFMAG || memcmp(data, ELFMAG, SELFMAG) != 0)
                return -EMEDIUMTYPE;
        if (size < sizeof(eh))
                return -EBADMSG;
        memcpy(&eh, data, sizeof(eh));

        if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
            eh.e_machine != EM_X86_64)
                return -EBADMSG;
        if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shnum == 0 || eh.e_shoff > size ||
            (size - eh.e_shoff) / sizeof(Elf64_Shdr) < eh.e_shnum || eh.e_shstrndx >= eh.e_shnum)
                return -EBADMSG;

        memcpy(&strtab, data + eh.e_shoff + (uint64_t)eh.e_shstrndx * sizeof(strtab),
               sizeof(strtab));
        if (strtab.sh_offset > size || strtab.sh_size > size - strtab.sh_offset)
                return -EBADMSG;

        for (unsigned i = 0; i < eh.e_shnum; i++) {
                static const char wanted[] = ".modinfo";
                Elf64_Shdr sh;

                memcpy(&sh, data + eh.e_shoff + (uint64_t)i * sizeof(sh), sizeof(sh));
                if (sh.sh_name >= strtab.sh_size || strtab.sh_size - sh.sh_name < sizeof(wanted) ||
                    memcmp(data + strtab.sh_offset + sh.sh_name, wanted, sizeof(wanted)) != 0)
                        continue;

                if (sh.sh_type == SHT_NOBITS || sh.sh_offset > size ||
                    sh.sh_size > size - sh.sh_offset)
                        return -EBADMSG;
                *ret_offset = sh.sh_offset;
                *ret_size = sh.sh_size;
                return 0;
        }
        return -ENOENT;
}

/* Splits a comma-separated depends= value into normalized module names. */
static int depends_parse(const char *value, char ***deps)
{
        const char *p = value;

        while (*p) {
                size_t n = strcspn(p, ",");
                _cleanup_free_ char *word = NULL;
                char *name;
                int r;

                if (n > 0) {
                        word = strndup(p, n);
                        if (!word)
                                return -ENOMEM;
                        name = module_name_normalize(word);
                        if (!name)
                                return -ENOMEM;
                        if (strv_contains(*deps, name))
                                free(name);
                        else {
                                r = strv_consume(deps, name);
                                if (r < 0)
                                        return r;
                        }
                }
                p += n;
                if (*p == ',')
                        p++;
        }
        return 0;
}

static int modinfo_entry_apply(ModInfo *info, const char *entry)
{
        if (strneq(entry, "name=", 5) && !info->name) {
                info->name = module_name_normalize(entry + 5);
                return info->name ? 0 : -ENOMEM;
        }
        if (strneq(entry, "vermagic=", 9) && !info->vermagic) {
                info->vermagic = strdup(entry + 9);
                return info->vermagic ? 0 : -ENOMEM;
        }
        if (strneq(entry, "depends=", 8))
                return depends_parse(entry + 8, &info->depends);
        return 0;
}

int modinfo_parse(const void *data, size_t size, ModInfo **ret)
{
        _cleanup_(modinfo_freep) ModInfo *info = NULL;
        uint64_t offset, length, pos = 0;
        int r;

        r = elf_find_modinfo(data, size, &offset, &length);
        if (r < 0)
                return r;

        info = calloc(1, sizeof(*info));
        if (!info)
                return -ENOMEM;
        info->depends = calloc(1, sizeof(char *));
        if (!info->depends)
                return -ENOMEM;

        /* The section is a sequence of "key=value" strings, each NUL-terminated, possibly with
         * padding NULs between them. The last one may lack its NUL in a damaged file. */
        while (pos < length) {
                const char *entry = (const char *)data + offset + pos;
                size_t n = strnlen(entry, length - pos);
                _cleanup_free_ char *copy = NULL;

                if (n > 0) {
                        copy = strndup(entry, n);
                        if (!copy)
                                return -ENOMEM;
                        r = modinfo_entry_apply(info, copy);
                        if (r < 0)
                                return r;
                }
                pos += n + 1;
        }

        *ret = TAKE_PTR(info);
        return 0;
}

ModuleIndex *module_index_free(ModuleIndex *index)
{
        if (!index)
                return NULL;
        for (size_t i = 0; i < index->n_modules; i++) {
                free(index->modules[i].name);
                free(index->modules[i].path);
        }
        free(index->modules);
        strv_free(index->builtin);
        free(index);
        return NULL;
}

static int module_index_add(ModuleIndex *index, const char *path)
{
        _cleanup_free_ char *name = NULL, *copy = NULL;
        KernelModule *modules;

        if (module_name_from_path(path, &name) < 0)
                return 0;
        /* Two files for one module name: the first found wins, as with an unsorted depmod. */
        if (module_index_find(index, name)) {
                log_debug("Module '%s' appears twice, ignoring '%s'", name, path);
                return 0;
        }

        copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        modules = reallocarray(index->modules, index->n_modules + 1, sizeof(KernelModule));
        if (!modules)
                return -ENOMEM;
        index->modules = modules;
        index->modules[index->n_modules++] =
                (KernelModule){ .name = TAKE_PTR(name), .path = TAKE_PTR(copy) };
        return 0;
}

static int module_index_walk(ModuleIndex *index, int dir_fd, const char *prefix, unsigned depth)
{
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;
        int fd, r;

        if (depth > MODULE_DIR_MAX_DEPTH)
                return -ELOOP;

        fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return negative_errno();
        }

        while ((de = readdir(d))) {
                _cleanup_free_ char *path = NULL;
                struct stat st;

                if (de->d_name[0] == '.')
                        continue;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        return negative_errno();
                if (asprintf(&path, "%s%s%s", prefix, isempty(prefix) ? "" : "/", de->d_name) < 0)
                        return -ENOMEM;

                if (S_ISDIR(st.st_mode)) {
                        _cleanup_close_ int sub =
                                openat(dirfd(d), de->d_name,
                                       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub < 0)
                                return negative_errno();
                        r = module_index_walk(index, sub, path, depth + 1);
                } else if (S_ISREG(st.st_mode))
                        r = module_index_add(index, path);
                else
                        r = 0;
                if (r < 0)
                        return r;
        }
        return 0;
}

static int builtin_list_load(ModuleIndex *index, int modules_dir_fd)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *line = NULL;
        size_t allocated = 0;
        ssize_t n;
        int r;

        fd = openat(modules_dir_fd, "modules.builtin", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return errno == ENOENT ? 0 : negative_errno();
        f = fdopen(fd, "r");
        if (!f)
                return negative_errno();
        TAKE_FD(fd);

        while ((n = getline(&line, &allocated, f)) > 0) {
                char *name;

                line[strcspn(line, "\r\n")] = '\0';
                if (module_name_from_path(line, &name) < 0)
                        continue;
                r = strv_consume(&index->builtin, name);
                if (r < 0)
                        return r;
        }
        return ferror(f) ? -EIO : 0;
}

int module_index_load(int modules_dir_fd, ModuleIndex **ret)
{
        _cleanup_(module_index_freep) ModuleIndex *index = calloc(1, sizeof(ModuleIndex));
        int r;

        if (!index)
                return -ENOMEM;

        r = module_index_walk(index, modules_dir_fd, "", 0);
        if (r < 0)
                return r;
        r = builtin_list_load(index, modules_dir_fd);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(index);
        return 0;
}

const KernelModule *module_index_find(const ModuleIndex *index, const char *name)
{
        for (size_t i = 0; i < index->n_modules; i++)
                if (streq(index->modules[i].name, name))
                        return &index->modules[i];
        return NULL;
}

bool module_index_is_builtin(const ModuleIndex *index, const char *name)
{
        return strv_contains(index->builtin, name);
}

static int module_decompress(int fd, void **ret, size_t *ret_size)
{
        _cleanup_archive_read_ struct archive *a = archive_read_new();
        _cleanup_free_ uint8_t *buf = NULL;
        struct archive_entry *entry;
        size_t size = 0, allocated = 0;
        int r;

        if (!a)
                return -ENOMEM;
        if (archive_read_support_format_raw(a) != ARCHIVE_OK)
                return -EOPNOTSUPP;
        r = archive_read_enable_kernel_filters(a);
        if (r < 0)
                return r;
        if (archive_read_open_fd(a, fd, 64 * 1024) != ARCHIVE_OK ||
            archive_read_next_header(a, &entry) != ARCHIVE_OK ||
            archive_filter_code(a, 0) == ARCHIVE_FILTER_NONE) {
                log_debug("Compressed module is not readable: %s", archive_error_string(a));
                return -EBADMSG;
        }

        for (;;) {
                la_ssize_t n;

                if (allocated - size < 64 * 1024) {
                        uint8_t *p;

                        allocated = allocated ? allocated * 2 : 256 * 1024;
                        if (allocated > MODULE_MAX_SIZE + 64 * 1024)
                                return -EFBIG;
                        p = realloc(buf, allocated);
                        if (!p)
                                return -ENOMEM;
                        buf = p;
                }
                n = archive_read_data(a, buf + size, allocated - size);
                if (n == 0)
                        break;
                if (n < 0) {
                        log_debug("Compressed module does not decompress: %s",
                                  archive_error_string(a));
                        return -EBADMSG;
                }
                size += n;
        }

        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}

int module_read(int modules_dir_fd, const char *path, void **ret, size_t *ret_size)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *data = NULL;
        size_t size = 0;
        struct stat st;

        fd = openat(modules_dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADFD;

        if (!(strlen(path) > 3 && streq(path + strlen(path) - 3, ".ko")))
                return module_decompress(fd, ret, ret_size);

        if ((uint64_t)st.st_size > MODULE_MAX_SIZE)
                return -EFBIG;
        data = malloc(st.st_size ?: 1);
        if (!data)
                return -ENOMEM;
        while (size < (size_t)st.st_size) {
                ssize_t n = read(fd, data + size, st.st_size - size);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        return -EIO;
                size += n;
        }

        *ret = TAKE_PTR(data);
        *ret_size = size;
        return 0;
}
