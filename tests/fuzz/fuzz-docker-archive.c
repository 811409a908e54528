/* Imports one input as a docker-archive: the tar reader, the manifest.json and config parsers,
 * the member lookup and, for a well-formed archive, the layers and the ext4 writer. A failed
 * import must leave the work directory empty. */

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fileio.h"
#include "image-import.h"

static void assert_empty(const char *dir)
{
        DIR *d = opendir(dir);
        struct dirent *de;

        if (!d)
                abort();
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                        abort();
        closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char dir[] = "/tmp/fuzz-docker-archive-XXXXXX", output[sizeof(dir) + 16];
        ImageInfo *info = NULL;
        char *error = NULL;
        int fd;

        if (!mkdtemp(dir))
                abort();
        snprintf(output, sizeof(output), "%s/out.ext4", dir);
        fd = memfd_create("docker-archive", MFD_CLOEXEC);
        if (fd < 0 || write(fd, data, size) != (ssize_t)size)
                abort();

        ImageImportOptions opts = {
                .source_fd = fd,
                .format = IMAGE_IMPORT_DOCKER_ARCHIVE,
                .work_dir = dir,
                .output_path = output,
                .os = "linux",
                .architecture = "amd64",
        };
        if (image_import(&opts, &info, &error) < 0)
                assert_empty(dir);

        image_info_free(info);
        free(error);
        close(fd);
        (void)rm_rf(dir);
        return 0;
}
