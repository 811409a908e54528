#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <sys/mman.h>

#include "bzimage.h"
#include "test-kernel-fixtures.c"

static const char *const filters[] = { "gzip", "xz", "lzma", "lz4", "zstd", "bzip2" };

/* Extracts into a memfd and returns what was written. */
static int extract(const Buffer *bz, uint64_t max_size, Buffer *ret)
{
        int fd = memfd_create("vmlinux", MFD_CLOEXEC);
        uint64_t size = 0;
        int r;

        ck_assert_int_ge(fd, 0);
        r = bzimage_extract_vmlinux(bz->data, bz->size, fd, max_size, &size);
        *ret = (Buffer){};
        if (r == 0) {
                ck_assert_int_eq(lseek(fd, 0, SEEK_END), (off_t)size);
                ret->data = malloc(size);
                ret->size = size;
                ck_assert_int_eq(pread(fd, ret->data, size, 0), (ssize_t)size);
        }
        close(fd);
        return r;
}

START_TEST(bzimage_extracts_each_compression)
{
        const char *filter = filters[_i];
        Buffer vmlinux = fixture_vmlinux("6.1.0-99-test", true);
        Buffer bz = fixture_bzimage_from(filter, &vmlinux, "6.1.0-99-test");
        Buffer out;
        BzImageHeader h;

        ck_assert_int_eq(bzimage_parse_header(bz.data, bz.size, &h), 0);
        ck_assert_uint_eq(h.protocol, 0x020f);
        ck_assert_uint_eq(h.setup_sects, 1);
        ck_assert_uint_eq(h.payload_offset, FIXTURE_SETUP_SIZE + FIXTURE_PAYLOAD_OFFSET);

        ck_assert_msg(extract(&bz, UINT64_MAX, &out) == 0, "%s payload does not extract", filter);
        ck_assert_uint_eq(out.size, vmlinux.size);
        ck_assert_mem_eq(out.data, vmlinux.data, vmlinux.size);
        buffer_free(&out);
        buffer_free(&vmlinux);
        buffer_free(&bz);
}
END_TEST

START_TEST(bzimage_release_from_header)
{
        Buffer bz = fixture_bzimage("gzip", "6.1.0-28-cloud-amd64");
        _cleanup_free_ char *release = NULL;

        ck_assert_int_eq(bzimage_kernel_release(bz.data, bz.size, &release), 0);
        ck_assert_str_eq(release, "6.1.0-28-cloud-amd64");

        /* A zero kernel_version field means the header has no string. */
        put_le16(bz.data + BZIMAGE_KERNEL_VERSION_OFFSET, 0);
        ck_assert_int_eq(bzimage_kernel_release(bz.data, bz.size, &release), -ENOENT);
        buffer_free(&bz);
}
END_TEST

typedef void (*Damage)(Buffer *b);

static void damage_truncate_payload(Buffer *b)
{
        b->size = FIXTURE_SETUP_SIZE + FIXTURE_PAYLOAD_OFFSET + 10;
}
static void damage_truncate_header(Buffer *b)
{
        b->size = 0x210;
}
static void damage_old_protocol(Buffer *b)
{
        put_le16(b->data + BZIMAGE_VERSION_OFFSET, 0x0206);
}
static void damage_zero_length(Buffer *b)
{
        put_le32(b->data + BZIMAGE_PAYLOAD_LENGTH_OFFSET, 0);
}
static void damage_huge_offset(Buffer *b)
{
        put_le32(b->data + BZIMAGE_PAYLOAD_OFFSET_OFFSET, 0xffffffff);
}
static void damage_magic(Buffer *b)
{
        memcpy(b->data + BZIMAGE_HEADER_MAGIC_OFFSET, "HdrX", 4);
}

static const struct {
        const char *name;
        Damage damage;
        int expected;
} header_cases[] = {
        { "payload cut off", damage_truncate_payload, -EBADMSG },
        { "header cut off", damage_truncate_header, -EBADMSG },
        { "protocol 2.06", damage_old_protocol, -EPROTONOSUPPORT },
        { "zero payload length", damage_zero_length, -EBADMSG },
        { "payload offset past 4 GiB", damage_huge_offset, -EBADMSG },
        { "no HdrS magic", damage_magic, -EMEDIUMTYPE },
};

START_TEST(bzimage_header_rejects_damage)
{
        Buffer bz = fixture_bzimage("gzip", "6.1.0-1-test");
        BzImageHeader h;
        size_t size;

        header_cases[_i].damage(&bz);
        size = bz.size;
        ck_assert_msg(bzimage_parse_header(bz.data, size, &h) == header_cases[_i].expected,
                      "case '%s'", header_cases[_i].name);
        bz.size = size;
        buffer_free(&bz);
}
END_TEST

START_TEST(bzimage_header_rejects_non_kernels)
{
        static const char text[] = "#!/bin/sh\necho this is not a kernel\n";
        uint8_t zeros[0x300] = {};
        BzImageHeader h;

        ck_assert_int_eq(bzimage_parse_header(NULL, 0, &h), -EMEDIUMTYPE);
        ck_assert_int_eq(bzimage_parse_header(text, sizeof(text), &h), -EMEDIUMTYPE);
        ck_assert_int_eq(bzimage_parse_header(zeros, sizeof(zeros), &h), -EMEDIUMTYPE);
}
END_TEST

START_TEST(bzimage_rejects_corrupt_payload)
{
        const char *filter = filters[_i];
        Buffer bz = fixture_bzimage(filter, "6.1.0-1-test"), out;
        BzImageHeader h;
        int r;

        ck_assert_int_eq(bzimage_parse_header(bz.data, bz.size, &h), 0);
        /* Overwrite the second half of the compressed stream, past every format's header. */
        memset(bz.data + h.payload_offset + h.payload_length / 2, 0x5a, h.payload_length / 2 - 4);
        r = extract(&bz, UINT64_MAX, &out);
        ck_assert_msg(r == -EBADMSG, "%s corruption gave %d, payload length %" PRIu64, filter, r,
                      h.payload_length);
        buffer_free(&bz);
}
END_TEST

START_TEST(bzimage_rejects_wrong_recorded_size)
{
        Buffer bz = fixture_bzimage("xz", "6.1.0-1-test"), out;
        BzImageHeader h;
        uint8_t *size_field;

        ck_assert_int_eq(bzimage_parse_header(bz.data, bz.size, &h), 0);
        size_field = bz.data + h.payload_offset + h.payload_length - 4;
        put_le32(size_field, read_le32_test(size_field) + 1);
        ck_assert_int_eq(extract(&bz, UINT64_MAX, &out), -EBADMSG);
        put_le32(size_field, read_le32_test(size_field) - 2);
        ck_assert_int_eq(extract(&bz, UINT64_MAX, &out), -EBADMSG);
        buffer_free(&bz);
}
END_TEST

START_TEST(bzimage_rejects_uncompressed_and_non_elf)
{
        static const char text[] = "plain text, not an ELF file, long enough to be a payload";
        Buffer bz = fixture_bzimage("gzip", "6.1.0-1-test"), out, fake = {};

        /* A payload that is not compressed at all. */
        buffer_free(&bz);
        buffer_append(&fake, text, sizeof(text));
        bz = fixture_bzimage_from("gzip", &fake, "6.1.0-1-test");
        ck_assert_int_eq(extract(&bz, UINT64_MAX, &out), -EBADMSG);
        buffer_free(&bz);
        buffer_free(&fake);
}
END_TEST

START_TEST(bzimage_extract_enforces_max_size)
{
        Buffer bz = fixture_bzimage("zstd", "6.1.0-1-test"), out;

        ck_assert_int_eq(extract(&bz, 100, &out), -EFBIG);
        buffer_free(&bz);
}
END_TEST

START_TEST(vmlinux_pvh_note_found)
{
        Buffer with = fixture_vmlinux("6.1.0-1-test", true), without;
        uint32_t entry = 0;

        ck_assert_int_eq(vmlinux_check(with.data, with.size), 0);
        ck_assert_int_eq(vmlinux_find_pvh_entry(with.data, with.size, &entry), 0);
        ck_assert_uint_eq(entry, 0x1000850);

        without = fixture_vmlinux("6.1.0-1-test", false);
        ck_assert_int_eq(vmlinux_check(without.data, without.size), 0);
        ck_assert_int_eq(vmlinux_find_pvh_entry(without.data, without.size, &entry), -ENOENT);

        /* A note whose size runs past its segment is ignored. */
        ((Elf64_Nhdr *)(with.data + sizeof(Elf64_Ehdr) + 2 * sizeof(Elf64_Phdr)))->n_descsz = 4096;
        ck_assert_int_eq(vmlinux_find_pvh_entry(with.data, with.size, &entry), -ENOENT);
        buffer_free(&with);
        buffer_free(&without);
}
END_TEST

typedef void (*ElfDamage)(Elf64_Ehdr *eh);
static void elf_32bit(Elf64_Ehdr *eh)
{
        eh->e_ident[EI_CLASS] = ELFCLASS32;
}
static void elf_big_endian(Elf64_Ehdr *eh)
{
        eh->e_ident[EI_DATA] = ELFDATA2MSB;
}
static void elf_arm64(Elf64_Ehdr *eh)
{
        eh->e_machine = EM_AARCH64;
}
static void elf_relocatable(Elf64_Ehdr *eh)
{
        eh->e_type = ET_REL;
}
static void elf_phoff_past_end(Elf64_Ehdr *eh)
{
        eh->e_phoff = 1 << 20;
}
static void elf_phnum_huge(Elf64_Ehdr *eh)
{
        eh->e_phnum = 0xffff;
}
static void elf_no_phdrs(Elf64_Ehdr *eh)
{
        eh->e_phnum = 0;
}

static const ElfDamage elf_cases[] = { elf_32bit,       elf_big_endian,     elf_arm64,
                                       elf_relocatable, elf_phoff_past_end, elf_phnum_huge,
                                       elf_no_phdrs };

START_TEST(vmlinux_check_rejects_other_elf)
{
        Buffer b = fixture_vmlinux("6.1.0-1-test", true);

        elf_cases[_i]((Elf64_Ehdr *)b.data);
        ck_assert_int_eq(vmlinux_check(b.data, b.size), -EBADMSG);
        buffer_free(&b);
}
END_TEST

START_TEST(vmlinux_check_rejects_short_input)
{
        ck_assert_int_eq(vmlinux_check("\177ELF", 4), -EBADMSG);
        ck_assert_int_eq(vmlinux_check("\177EL", 3), -EMEDIUMTYPE);
        ck_assert_int_eq(vmlinux_check("", 0), -EMEDIUMTYPE);
}
END_TEST

static const struct {
        const char *text;
        const char *expected; /* NULL: -ENOENT */
} banner_cases[] = {
        { "xx Linux version 6.1.0-28-cloud-amd64 (gcc) #1", "6.1.0-28-cloud-amd64" },
        { "Linux version %s Linux version 5.10.0+ (x)", "5.10.0+" },
        { "Linux version ", NULL },
        { "Linux version 6.1.0", NULL }, /* no terminator inside the data */
        { "Linux version abc (x)", NULL },
        { "no banner at all", NULL },
};

START_TEST(release_banner_table)
{
        const char *text = banner_cases[_i].text;
        _cleanup_free_ char *release = NULL;
        int r = kernel_find_release_banner(text, strlen(text), &release);

        if (banner_cases[_i].expected) {
                ck_assert_int_eq(r, 0);
                ck_assert_str_eq(release, banner_cases[_i].expected);
        } else
                ck_assert_int_eq(r, -ENOENT);
}
END_TEST

static Suite *bzimage_suite(void)
{
        Suite *s = suite_create("bzimage");
        TCase *tc = tcase_create("core");

        tcase_add_loop_test(tc, bzimage_extracts_each_compression, 0, ELEMENTSOF(filters));
        tcase_add_test(tc, bzimage_release_from_header);
        tcase_add_loop_test(tc, bzimage_header_rejects_damage, 0, ELEMENTSOF(header_cases));
        tcase_add_test(tc, bzimage_header_rejects_non_kernels);
        tcase_add_loop_test(tc, bzimage_rejects_corrupt_payload, 0, ELEMENTSOF(filters));
        tcase_add_test(tc, bzimage_rejects_wrong_recorded_size);
        tcase_add_test(tc, bzimage_rejects_uncompressed_and_non_elf);
        tcase_add_test(tc, bzimage_extract_enforces_max_size);
        tcase_add_test(tc, vmlinux_pvh_note_found);
        tcase_add_loop_test(tc, vmlinux_check_rejects_other_elf, 0, ELEMENTSOF(elf_cases));
        tcase_add_test(tc, vmlinux_check_rejects_short_input);
        tcase_add_loop_test(tc, release_banner_table, 0, ELEMENTSOF(banner_cases));
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(bzimage_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
