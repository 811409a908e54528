#pragma once

#include <stddef.h>
#include <stdint.h>

/* Recognising x86 Linux kernel images: the bzImage of the x86 boot protocol
 * (Documentation/arch/x86/boot.rst in the Linux sources) and the vmlinux ELF inside it. */

/* Offsets into a bzImage of the real-mode header fields used here. */
#define BZIMAGE_SETUP_SECTS_OFFSET    0x1f1
#define BZIMAGE_BOOT_FLAG_OFFSET      0x1fe
#define BZIMAGE_HEADER_MAGIC_OFFSET   0x202
#define BZIMAGE_VERSION_OFFSET        0x206
#define BZIMAGE_KERNEL_VERSION_OFFSET 0x20e
#define BZIMAGE_PAYLOAD_OFFSET_OFFSET 0x248
#define BZIMAGE_PAYLOAD_LENGTH_OFFSET 0x24c
#define BZIMAGE_HEADER_END            0x250

/* payload_offset and payload_length exist since boot protocol 2.08 (Linux 2.6.26). */
#define BZIMAGE_MIN_PROTOCOL 0x0208

typedef struct BzImageHeader {
        uint16_t protocol;       /* boot protocol version, e.g. 0x020f for 2.15 */
        unsigned setup_sects;    /* 512-byte setup sectors after the boot sector */
        uint64_t payload_offset; /* of the compressed vmlinux, from the start of the file */
        uint64_t payload_length; /* in bytes, including the trailing 4-byte size */
} BzImageHeader;

/* Parses the setup header. Returns -EMEDIUMTYPE when data is not a bzImage,
 * -EPROTONOSUPPORT for a boot protocol older than 2.08 and -EBADMSG when the header points
 * past the end of data (a truncated file). */
int bzimage_parse_header(const void *data, size_t size, BzImageHeader *ret);

/* Returns the kernel release ("6.1.0-28-cloud-amd64") from the header's kernel_version
 * string, or -ENOENT when the header has none. */
int bzimage_kernel_release(const void *data, size_t size, char **ret);

/* Decompresses the payload of a bzImage into out_fd (at its current position) and checks that
 * the result is an x86-64 vmlinux ELF whose size matches the size recorded after the payload.
 * Decompression stops with -EFBIG once the output would exceed max_size bytes. Returns
 * -EBADMSG for a payload that does not decompress to a vmlinux.
 * NOTE: damage that keeps the decompressed size is caught only where libarchive verifies the
 * format's checksum (xz, bzip2, zstd with a checksum), not for gzip, lzma or legacy lz4. */
int bzimage_extract_vmlinux(const void *data, size_t size, int out_fd, uint64_t max_size,
                            uint64_t *ret_size);

/* Checks that data is an ELF64 little-endian x86-64 executable. Returns -EMEDIUMTYPE when it is
 * not ELF at all and -EBADMSG for an ELF of another kind or with headers out of bounds. */
int vmlinux_check(const void *data, size_t size);

/* Finds the PVH entry point: the ELF note "Xen" of type XEN_ELFNOTE_PHYS32_ENTRY (18) that
 * QEMU needs to boot a vmlinux directly. Returns -ENOENT when there is none. */
#define XEN_ELFNOTE_PHYS32_ENTRY 18
int vmlinux_find_pvh_entry(const void *data, size_t size, uint32_t *ret);

/* Finds the release in the "Linux version RELEASE " banner (linux_banner in init/version.c). */
int kernel_find_release_banner(const void *data, size_t size, char **ret);
