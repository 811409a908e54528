#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bzimage.h"

/* Feeds arbitrary bytes to every kernel image parser. The output limit keeps decompression
 * bombs from dominating the run time. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        BzImageHeader h;
        char *release = NULL;
        uint32_t entry;
        int fd;

        (void)bzimage_parse_header(data, size, &h);
        if (bzimage_kernel_release(data, size, &release) == 0)
                free(release);
        (void)vmlinux_check(data, size);
        (void)vmlinux_find_pvh_entry(data, size, &entry);
        if (kernel_find_release_banner(data, size, &release) == 0)
                free(release);

        fd = memfd_create("vmlinux", MFD_CLOEXEC);
        if (fd >= 0) {
                (void)bzimage_extract_vmlinux(data, size, fd, 1 << 20, NULL);
                close(fd);
        }
        return 0;
}
