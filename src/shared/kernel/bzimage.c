#include <archive.h>
#include <ctype.h>
#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>
#include <sys/param.h>

#include "bzimage.h"
#include "kernel-util.h"
#include "log.h"
#include "macro.h"

int bzimage_parse_header(const void *data, size_t size, BzImageHeader *ret)
{
        const uint8_t *p = data;
        BzImageHeader h = {};
        uint64_t setup_size;

        if (size < BZIMAGE_VERSION_OFFSET ||
            memcmp(p + BZIMAGE_HEADER_MAGIC_OFFSET, "HdrS", 4) != 0)
                return -EMEDIUMTYPE;
        if (size < BZIMAGE_VERSION_OFFSET + 2)
                return -EBADMSG;

        h.protocol = read_le16(p + BZIMAGE_VERSION_OFFSET);
        if (h.protocol < BZIMAGE_MIN_PROTOCOL)
                return -EPROTONOSUPPORT;
        if (size < BZIMAGE_HEADER_END)
                return -EBADMSG;

        /* A setup_sects of 0 means 4, for compatibility with very old boot loaders. */
        h.setup_sects = p[BZIMAGE_SETUP_SECTS_OFFSET] ?: 4;
        setup_size = (uint64_t)(h.setup_sects + 1) * 512;

        /* payload_offset counts from the protected-mode code that follows the setup sectors. */
        h.payload_offset = setup_size + read_le32(p + BZIMAGE_PAYLOAD_OFFSET_OFFSET);
        h.payload_length = read_le32(p + BZIMAGE_PAYLOAD_LENGTH_OFFSET);
        if (h.payload_length <= 4) {
                log_debug("bzImage payload length %" PRIu64 " is too short", h.payload_length);
                return -EBADMSG;
        }
        if (h.payload_offset + h.payload_length > size) {
                log_debug("bzImage payload ends at %" PRIu64 " but the file has %zu bytes",
                          h.payload_offset + h.payload_length, size);
                return -EBADMSG;
        }

        *ret = h;
        return 0;
}

static bool release_char_valid(char c)
{
        return isalnum((unsigned char)c) || strchr("._+-~", c);
}

/* Copies the release at the start of s (at most max bytes, ending at a space or NUL). */
static int release_dup(const char *s, size_t max, char **ret)
{
        size_t n = 0;
        char *copy;

        while (n < max && release_char_valid(s[n]))
                n++;
        if (n == 0 || n == max || (s[n] != ' ' && s[n] != '\0'))
                return -ENOENT;
        if (!isdigit((unsigned char)s[0]))
                return -ENOENT;

        copy = strndup(s, n);
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

int bzimage_kernel_release(const void *data, size_t size, char **ret)
{
        const uint8_t *p = data;
        BzImageHeader h;
        uint64_t offset, setup_size;
        int r;

        r = bzimage_parse_header(data, size, &h);
        if (r < 0)
                return r;

        offset = read_le16(p + BZIMAGE_KERNEL_VERSION_OFFSET);
        if (offset == 0)
                return -ENOENT;

        /* The field is an offset from the end of the boot sector into the setup code. */
        offset += 0x200;
        setup_size = (uint64_t)(h.setup_sects + 1) * 512;
        if (offset >= setup_size || setup_size > size)
                return -ENOENT;

        return release_dup((const char *)p + offset, setup_size - offset, ret);
}

static int elf_header_check(const void *data, size_t size, Elf64_Ehdr *ret)
{
        Elf64_Ehdr eh;

        if (size < SELFMAG || memcmp(data, ELFMAG, SELFMAG) != 0)
                return -EMEDIUMTYPE;
        if (size < sizeof(eh))
                return -EBADMSG;

        memcpy(&eh, data, sizeof(eh));
        if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB) {
                log_debug("ELF file is not 64-bit little-endian");
                return -EBADMSG;
        }
        if (eh.e_machine != EM_X86_64 || eh.e_type != ET_EXEC) {
                log_debug("ELF file has machine %u and type %u, expected x86-64 executable",
                          eh.e_machine, eh.e_type);
                return -EBADMSG;
        }
        if (ret)
                *ret = eh;
        return 0;
}

int vmlinux_check(const void *data, size_t size)
{
        Elf64_Ehdr eh;
        int r;

        r = elf_header_check(data, size, &eh);
        if (r < 0)
                return r;

        if (eh.e_phnum == 0 || eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phoff > size ||
            (size - eh.e_phoff) / sizeof(Elf64_Phdr) < eh.e_phnum) {
                log_debug("ELF program headers are missing or out of bounds");
                return -EBADMSG;
        }
        return 0;
}

/* Looks for the PVH note among the length bytes of one PT_NOTE segment. */
static int notes_find_pvh(const uint8_t *notes, uint64_t length, uint32_t *ret)
{
        uint64_t pos = 0;

        while (length - pos >= sizeof(Elf64_Nhdr)) {
                Elf64_Nhdr nh;
                uint64_t name_size, desc_size;

                memcpy(&nh, notes + pos, sizeof(nh));
                pos += sizeof(nh);
                name_size = ((uint64_t)nh.n_namesz + 3) & ~UINT64_C(3);
                desc_size = ((uint64_t)nh.n_descsz + 3) & ~UINT64_C(3);
                if (name_size > length - pos || desc_size > length - pos - name_size)
                        return -ENOENT;

                if (nh.n_type == XEN_ELFNOTE_PHYS32_ENTRY && nh.n_namesz == 4 &&
                    memcmp(notes + pos, "Xen", 4) == 0 && nh.n_descsz >= 4) {
                        *ret = read_le32(notes + pos + name_size);
                        return 0;
                }
                pos += name_size + desc_size;
        }
        return -ENOENT;
}

int vmlinux_find_pvh_entry(const void *data, size_t size, uint32_t *ret)
{
        const uint8_t *p = data;
        Elf64_Ehdr eh;
        int r;

        r = vmlinux_check(data, size);
        if (r < 0)
                return r;
        memcpy(&eh, data, sizeof(eh));

        for (unsigned i = 0; i < eh.e_phnum; i++) {
                Elf64_Phdr ph;

                memcpy(&ph, p + eh.e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
                if (ph.p_type != PT_NOTE)
                        continue;
                if (ph.p_offset > size || ph.p_filesz > size - ph.p_offset)
                        continue;
                if (notes_find_pvh(p + ph.p_offset, ph.p_filesz, ret) == 0)
                        return 0;
        }
        return -ENOENT;
}

int kernel_find_release_banner(const void *data, size_t size, char **ret)
{
        static const char banner[] = "Linux version ";
        const char *p = data, *end = p + size;

        while (p < end) {
                const char *hit = memmem(p, end - p, banner, strlen(banner));
                const char *release;
                int r;

                if (!hit)
                        break;
                release = hit + strlen(banner);
                r = release_dup(release, end - release, ret);
                if (r != -ENOENT)
                        return r;
                p = hit + 1;
        }
        return -ENOENT;
}

typedef struct ExtractState {
        int out_fd;
        uint64_t written;
        uint64_t max_size;
        uint64_t expected_size;
        uint8_t head[sizeof(Elf64_Ehdr)];
} ExtractState;

static int extract_chunk(ExtractState *s, const void *buf, size_t n)
{
        int r;

        if (n > s->max_size - s->written)
                return -EFBIG;
        if (n > s->expected_size - s->written) {
                log_debug("bzImage payload decompresses to more than the recorded %" PRIu64
                          " bytes",
                          s->expected_size);
                return -EBADMSG;
        }

        /* Keep the first bytes for the ELF header check without reading the file back. */
        if (s->written < sizeof(s->head)) {
                size_t k = MIN(n, sizeof(s->head) - s->written);
                memcpy(s->head + s->written, buf, k);
        }

        r = write_full(s->out_fd, buf, n);
        if (r < 0)
                return r;
        s->written += n;
        return 0;
}

static int extract_payload(const uint8_t *payload, size_t length, ExtractState *s)
{
        _cleanup_archive_read_ struct archive *a = archive_read_new();
        struct archive_entry *entry;
        uint8_t buf[64 * 1024];
        int r;

        if (!a)
                return -ENOMEM;
        if (archive_read_support_format_raw(a) != ARCHIVE_OK)
                return -EOPNOTSUPP;
        r = archive_read_enable_kernel_filters(a);
        if (r < 0)
                return r;

        if (archive_read_open_memory(a, payload, length) != ARCHIVE_OK ||
            archive_read_next_header(a, &entry) != ARCHIVE_OK) {
                log_debug("bzImage payload is not readable: %s", archive_error_string(a));
                return -EBADMSG;
        }
        if (archive_filter_code(a, 0) == ARCHIVE_FILTER_NONE) {
                log_debug("bzImage payload is not in a supported compression format");
                return -EBADMSG;
        }

        for (;;) {
                la_ssize_t n = archive_read_data(a, buf, sizeof(buf));

                if (n == 0)
                        return 0;
                if (n < 0) {
                        log_debug("bzImage payload does not decompress: %s",
                                  archive_error_string(a));
                        return -EBADMSG;
                }
                r = extract_chunk(s, buf, n);
                if (r < 0)
                        return r;
        }
}

int bzimage_extract_vmlinux(const void *data, size_t size, int out_fd, uint64_t max_size,
                            uint64_t *ret_size)
{
        const uint8_t *payload;
        ExtractState s = { .out_fd = out_fd, .max_size = max_size };
        BzImageHeader h;
        size_t length;
        int r;

        r = bzimage_parse_header(data, size, &h);
        if (r < 0)
                return r;

        /* The kernel build appends the decompressed size as 4 little-endian bytes to every
         * compressed payload. For gzip these bytes are the gzip trailer's ISIZE field itself.
         * For the other formats they follow the stream and are not part of it. */
        payload = (const uint8_t *)data + h.payload_offset;
        length = h.payload_length;
        s.expected_size = read_le32(payload + length - 4);
        if (!(payload[0] == 0x1f && payload[1] == 0x8b))
                length -= 4;

        r = extract_payload(payload, length, &s);
        if (r < 0)
                return r;
        if (s.written != s.expected_size) {
                log_debug("bzImage payload decompressed to %" PRIu64 " bytes, expected %" PRIu64,
                          s.written, s.expected_size);
                return -EBADMSG;
        }

        r = elf_header_check(s.head, MIN(s.written, sizeof(s.head)), NULL);
        if (r < 0) {
                log_debug("bzImage payload is not an x86-64 vmlinux ELF");
                return -EBADMSG;
        }

        if (ret_size)
                *ret_size = s.written;
        return 0;
}
