/* Synthetic kernels, modules and packages for the kernel area's Check suites. Included by
 * test-bzimage.c, test-kmod.c, test-initramfs.c and test-kernel-import.c; not a suite itself. */

#include <archive.h>
#include <archive_entry.h>
#include <check.h>
#include <elf.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"

/* Each suite uses only some of these helpers. */
#pragma GCC diagnostic ignored "-Wunused-function"

typedef struct Buffer {
        uint8_t *data;
        size_t size;
} Buffer;

static void buffer_free(Buffer *b)
{
        free(b->data);
        *b = (Buffer){};
}

static void buffer_append(Buffer *b, const void *data, size_t size)
{
        b->data = realloc(b->data, b->size + size + 1);
        ck_assert_ptr_nonnull(b->data);
        if (size > 0)
                memcpy(b->data + b->size, data, size);
        b->size += size;
}

static void buffer_append_zeros(Buffer *b, size_t size)
{
        uint8_t *zeros = calloc(1, size + 1);

        buffer_append(b, zeros, size);
        free(zeros);
}

static void put_le16(uint8_t *p, uint16_t v)
{
        p[0] = v;
        p[1] = v >> 8;
}

static void put_le32(uint8_t *p, uint32_t v)
{
        for (int i = 0; i < 4; i++)
                p[i] = v >> (8 * i);
}

/* An x86-64 ELF executable with one PT_LOAD, an optional PT_NOTE holding the PVH note
 * (entry 0x1000850, as in Debian's 6.1 kernel), and the "Linux version RELEASE " banner. */
static Buffer fixture_vmlinux(const char *release, bool pvh)
{
        Buffer b = {};
        Elf64_Ehdr eh = {};
        Elf64_Phdr load = {}, note = {};
        Elf64_Nhdr nh = { .n_namesz = 4, .n_descsz = 8, .n_type = 18 };
        uint8_t desc[8] = { 0x50, 0x08, 0x00, 0x01 };
        char banner[256];
        size_t headers = sizeof(eh) + 2 * sizeof(Elf64_Phdr);

        memcpy(eh.e_ident, ELFMAG, SELFMAG);
        eh.e_ident[EI_CLASS] = ELFCLASS64;
        eh.e_ident[EI_DATA] = ELFDATA2LSB;
        eh.e_ident[EI_VERSION] = EV_CURRENT;
        eh.e_type = ET_EXEC;
        eh.e_machine = EM_X86_64;
        eh.e_version = EV_CURRENT;
        eh.e_phoff = sizeof(eh);
        eh.e_ehsize = sizeof(eh);
        eh.e_phentsize = sizeof(Elf64_Phdr);
        eh.e_phnum = pvh ? 2 : 1;

        note.p_type = PT_NOTE;
        note.p_offset = headers;
        note.p_filesz = sizeof(nh) + 4 + sizeof(desc);
        load.p_type = PT_LOAD;
        load.p_offset = 0;

        snprintf(banner, sizeof(banner),
                 "Linux version %s (builder@example) #1 SMP PREEMPT_DYNAMIC", release);
        load.p_filesz = headers + note.p_filesz + strlen(banner) + 1;

        buffer_append(&b, &eh, sizeof(eh));
        buffer_append(&b, &load, sizeof(load));
        buffer_append(&b, &note, sizeof(note));
        buffer_append(&b, &nh, sizeof(nh));
        buffer_append(&b, "Xen", 4);
        buffer_append(&b, desc, sizeof(desc));
        buffer_append(&b, banner, strlen(banner) + 1);
        /* Some bulk so that compression has something to do. */
        for (int i = 0; i < 64; i++)
                buffer_append(&b, "\x90\x90\x90\x90\xcc\xcc\xcc\xcc", 8);
        return b;
}

static la_ssize_t archive_write_buffer_cb(struct archive *a, void *userdata, const void *data,
                                          size_t n)
{
        buffer_append(userdata, data, n);
        return n;
}

/* Compresses data with one of libarchive's write filters: "gzip", "xz", "lzma", "lz4",
 * "zstd" or "bzip2". */
static Buffer fixture_compress(const char *filter, const void *data, size_t size)
{
        struct archive *a = archive_write_new();
        struct archive_entry *e = archive_entry_new();
        Buffer out = {};

        ck_assert_int_eq(archive_write_set_format_raw(a), ARCHIVE_OK);
        ck_assert_int_eq(archive_write_add_filter_by_name(a, filter), ARCHIVE_OK);
        ck_assert_int_eq(archive_write_set_bytes_in_last_block(a, 1), ARCHIVE_OK);
        ck_assert_int_eq(archive_write_open(a, &out, NULL, archive_write_buffer_cb, NULL),
                         ARCHIVE_OK);
        archive_entry_set_pathname(e, "data");
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_size(e, size);
        ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
        ck_assert_int_eq(archive_write_data(a, data, size), (la_ssize_t)size);
        ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
        archive_entry_free(e);
        archive_write_free(a);
        return out;
}

/* A bzImage of boot protocol 2.15 with one setup sector, the kernel_version string and a
 * compressed payload followed by the decompressed size, as the kernel build lays it out. */
#define FIXTURE_SETUP_SIZE     1024
#define FIXTURE_PAYLOAD_OFFSET 0x40
static Buffer fixture_bzimage_from(const char *filter, const Buffer *vmlinux, const char *release)
{
        Buffer b = {}, payload = fixture_compress(filter, vmlinux->data, vmlinux->size);
        uint8_t size[4];
        char version[128];

        /* For gzip the trailer's ISIZE already is the size; the others get it appended. */
        put_le32(size, vmlinux->size);
        if (!streq(filter, "gzip"))
                buffer_append(&payload, size, 4);

        buffer_append_zeros(&b, FIXTURE_SETUP_SIZE + FIXTURE_PAYLOAD_OFFSET);
        b.data[0x1f1] = FIXTURE_SETUP_SIZE / 512 - 1;
        put_le16(b.data + 0x1fe, 0xaa55);
        memcpy(b.data + 0x202, "HdrS", 4);
        put_le16(b.data + 0x206, 0x020f);
        put_le16(b.data + 0x20e, 0x300 - 0x200);
        snprintf(version, sizeof(version), "%s (builder@example) #1 SMP", release);
        memcpy(b.data + 0x300, version, strlen(version) + 1);
        put_le32(b.data + 0x248, FIXTURE_PAYLOAD_OFFSET);
        put_le32(b.data + 0x24c, payload.size);

        buffer_append(&b, payload.data, payload.size);
        buffer_append_zeros(&b, 100); /* trailing code and data of the decompressor */
        buffer_free(&payload);
        return b;
}

static Buffer fixture_bzimage(const char *filter, const char *release)
{
        Buffer vmlinux = fixture_vmlinux(release, true);
        Buffer b = fixture_bzimage_from(filter, &vmlinux, release);

        buffer_free(&vmlinux);
        return b;
}

/* A relocatable x86-64 module with a .modinfo section; NULL fields are left out. */
static Buffer fixture_module(const char *name, const char *depends, const char *vermagic)
{
        static const char shstrtab[] = "\0.modinfo\0.shstrtab\0.text";
        Buffer modinfo = {}, b = {};
        Elf64_Ehdr eh = {};
        Elf64_Shdr sh[4] = {};
        char entry[512];

        buffer_append(&modinfo, "license=GPL", 12);
        if (depends) {
                snprintf(entry, sizeof(entry), "depends=%s", depends);
                buffer_append(&modinfo, entry, strlen(entry) + 1);
        }
        if (name) {
                snprintf(entry, sizeof(entry), "name=%s", name);
                buffer_append(&modinfo, entry, strlen(entry) + 1);
        }
        if (vermagic) {
                snprintf(entry, sizeof(entry), "vermagic=%s", vermagic);
                buffer_append(&modinfo, entry, strlen(entry) + 1);
        }

        memcpy(eh.e_ident, ELFMAG, SELFMAG);
        eh.e_ident[EI_CLASS] = ELFCLASS64;
        eh.e_ident[EI_DATA] = ELFDATA2LSB;
        eh.e_ident[EI_VERSION] = EV_CURRENT;
        eh.e_type = ET_REL;
        eh.e_machine = EM_X86_64;
        eh.e_version = EV_CURRENT;
        eh.e_ehsize = sizeof(eh);
        eh.e_shentsize = sizeof(Elf64_Shdr);
        eh.e_shnum = 4;
        eh.e_shstrndx = 2;

        sh[1] = (Elf64_Shdr){ .sh_name = 1,
                              .sh_type = SHT_PROGBITS,
                              .sh_offset = sizeof(eh),
                              .sh_size = modinfo.size };
        sh[2] = (Elf64_Shdr){ .sh_name = 10,
                              .sh_type = SHT_STRTAB,
                              .sh_offset = sizeof(eh) + modinfo.size,
                              .sh_size = sizeof(shstrtab) };
        sh[3] = (Elf64_Shdr){ .sh_name = 20, .sh_type = SHT_PROGBITS };
        /* Section headers are 8-byte aligned, as linkers place them. */
        eh.e_shoff = (sizeof(eh) + modinfo.size + sizeof(shstrtab) + 7) & ~(size_t)7;

        buffer_append(&b, &eh, sizeof(eh));
        buffer_append(&b, modinfo.data, modinfo.size);
        buffer_append(&b, shstrtab, sizeof(shstrtab));
        buffer_append_zeros(&b, eh.e_shoff - b.size);
        buffer_append(&b, sh, sizeof(sh));
        /* Signed modules carry this trailer after the ELF data. */
        buffer_append(&b, "~Module signature appended~\n", 28);
        buffer_free(&modinfo);
        return b;
}

static void fixture_write(const char *dir, const char *path, const void *data, size_t size)
{
        _cleanup_free_ char *full = NULL, *parent = NULL;
        int fd;

        ck_assert_int_ge(asprintf(&full, "%s/%s", dir, path), 0);
        parent = strdup(full);
        *strrchr(parent, '/') = '\0';
        ck_assert_int_eq(mkdir_p(parent, 0755), 0);

        fd = open(full, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, data, size), (ssize_t)size);
        close(fd);
}

static void fixture_write_buffer(const char *dir, const char *path, Buffer b)
{
        fixture_write(dir, path, b.data, b.size);
        buffer_free(&b);
}

static char *fixture_tmpdir(void)
{
        char *dir = strdup("/tmp/test-kernel-XXXXXX");

        ck_assert_ptr_nonnull(mkdtemp(dir));
        return dir;
}

typedef struct CpioEntry {
        char *path;
        unsigned mode;
        unsigned rdev_major, rdev_minor;
        Buffer data;
} CpioEntry;

typedef struct CpioListing {
        CpioEntry entries[128];
        size_t n;
} CpioListing;

static void cpio_listing_free(CpioListing *l)
{
        for (size_t i = 0; i < l->n; i++) {
                free(l->entries[i].path);
                buffer_free(&l->entries[i].data);
        }
        l->n = 0;
}

/* Reads one cpio archive (compressed or not) with libarchive. */
static void cpio_read(const void *data, size_t size, CpioListing *ret)
{
        struct archive *a = archive_read_new();
        struct archive_entry *e;
        int r;

        ck_assert_int_eq(archive_read_support_format_cpio(a), ARCHIVE_OK);
        ck_assert_int_eq(archive_read_support_filter_gzip(a), ARCHIVE_OK);
        ck_assert_int_eq(archive_read_open_memory(a, data, size), ARCHIVE_OK);
        ret->n = 0;
        while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
                CpioEntry *c = &ret->entries[ret->n++];
                uint8_t buf[4096];
                la_ssize_t n;

                ck_assert_uint_lt(ret->n, ELEMENTSOF(ret->entries));
                *c = (CpioEntry){ .path = strdup(archive_entry_pathname(e)),
                                  .mode = archive_entry_mode(e),
                                  .rdev_major = archive_entry_rdevmajor(e),
                                  .rdev_minor = archive_entry_rdevminor(e) };
                while ((n = archive_read_data(a, buf, sizeof(buf))) > 0)
                        buffer_append(&c->data, buf, n);
                ck_assert_int_eq(n, 0);
        }
        ck_assert_int_eq(r, ARCHIVE_EOF);
        archive_read_free(a);
}

static const CpioEntry *cpio_find(const CpioListing *l, const char *path)
{
        for (size_t i = 0; i < l->n; i++)
                if (streq(l->entries[i].path, path))
                        return &l->entries[i];
        return NULL;
}

static size_t cpio_index(const CpioListing *l, const char *path)
{
        for (size_t i = 0; i < l->n; i++)
                if (streq(l->entries[i].path, path))
                        return i;
        return SIZE_MAX;
}

static uint32_t read_le32_test(const uint8_t *p)
{
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
