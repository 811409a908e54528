#pragma once

#include <stdbool.h>

#include "image-pull.h"

/* Importing an image without a registry, into a new ext4 file, from one of:
 * - an OCI image layout directory (oci-layout, index.json, blobs/sha256/HEX), whose blobs are
 *   checked against their digests and sizes;
 * - a docker-archive tarball as "docker save" writes it (manifest.json, the config and one tar
 *   per layer, each possibly compressed);
 * - a plain root file system tarball, in any compression libarchive decodes in-process (gzip,
 *   bzip2, xz, lzma, lz4, zstd).
 * All input is untrusted. Like image_pull(), image_import() is synchronous and thread-safe. */

typedef enum ImageImportFormat {
        IMAGE_IMPORT_OCI_LAYOUT,
        IMAGE_IMPORT_DOCKER_ARCHIVE,
        IMAGE_IMPORT_ROOTFS,
        _IMAGE_IMPORT_FORMAT_MAX,
        _IMAGE_IMPORT_FORMAT_INVALID = -1,
} ImageImportFormat;

/* "oci-layout", "docker-archive", "rootfs". */
const char *image_import_format_to_string(ImageImportFormat f);
ImageImportFormat image_import_format_from_string(const char *s);

typedef struct ImageImportOptions {
        int source_fd; /* a directory for an OCI layout, else a regular file; not closed */
        /* _IMAGE_IMPORT_FORMAT_INVALID to detect it: a directory is an OCI layout, a tarball
         * with a top-level manifest.json a docker-archive, any other tarball a rootfs. */
        ImageImportFormat format;
        /* The image name, normalised like a reference. Required for a rootfs. The default for
         * the others is the archive's RepoTags entry or the layout's ref.name annotation. */
        const char *name;
        const char *work_dir;    /* scratch space for extracted layers, removed afterwards */
        const char *output_path; /* the ext4 file to create; must not exist */
        const char *os;          /* platform to select and to expect: "linux" */
        const char *architecture;
        ImagePullProgress progress; /* may be NULL; reports the verify and unpack steps */
        void *userdata;
        const volatile bool *cancel; /* when it becomes true the import stops with -ECANCELED */
} ImageImportOptions;

/* Imports opts->source_fd and writes the root file system to opts->output_path. On success
 * *ret (when not NULL) describes the image: its digest is the manifest digest for an OCI
 * layout, the config digest (the image ID) for a docker-archive and the digest of the
 * uncompressed tar for a rootfs. On failure nothing is left at output_path or in work_dir, a
 * negative errno is returned and *ret_error (when not NULL) receives a message that names the
 * failing value and what to do. */
int image_import(const ImageImportOptions *opts, ImageInfo **ret, char **ret_error);

/* Determines the format of source_fd as image_import() does when none is given. A regular file
 * is read from offset 0 and must be seekable. */
int image_import_detect_format(int source_fd, ImageImportFormat *ret, char **ret_error);
