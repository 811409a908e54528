/* Applies one input as two consecutive layers to a fresh ext4 file, so whiteouts and opaque
 * markers in the second pass meet entries from the first, then drops SSH host keys. */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ext4.h"
#include "layer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char path[] = "/tmp/fuzz-layer-XXXXXX";
        Ext4Writer *writer = NULL;
        char *error = NULL;
        int fd;

        /* mkstemp() reserves a unique name; the writer creates the file itself. */
        fd = mkstemp(path);
        if (fd < 0)
                abort();
        close(fd);
        unlink(path);
        if (ext4_writer_create(path, 16 * 1024 * 1024, 4096, &writer) < 0)
                abort();

        for (int pass = 0; pass < 2; pass++) {
                (void)layer_apply_memory(writer, data, size, NULL, &error);
                free(error);
                error = NULL;
        }
        (void)layer_drop_ssh_host_keys(writer);

        ext4_writer_free(writer);
        unlink(path);
        return 0;
}
