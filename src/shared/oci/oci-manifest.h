#pragma once

#include <stddef.h>
#include <stdint.h>

/* Parsers for the registry documents of an image: an OCI image index or Docker manifest list,
 * an OCI image manifest or Docker schema 2 manifest, and the image configuration. All input is
 * untrusted. On failure they return a negative errno and, when ret_error is not NULL, a
 * message naming the problem. */

#define OCI_MEDIA_TYPE_INDEX       "application/vnd.oci.image.index.v1+json"
#define OCI_MEDIA_TYPE_MANIFEST    "application/vnd.oci.image.manifest.v1+json"
#define OCI_MEDIA_TYPE_CONFIG      "application/vnd.oci.image.config.v1+json"
#define DOCKER_MEDIA_TYPE_LIST     "application/vnd.docker.distribution.manifest.list.v2+json"
#define DOCKER_MEDIA_TYPE_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define DOCKER_MEDIA_TYPE_CONFIG   "application/vnd.docker.container.image.v1+json"

/* The Accept header value for manifest requests. Unless a type is listed, distribution 2.8
 * returns 404 for an OCI manifest and converts a Docker one to schema 1. */
#define OCI_MANIFEST_ACCEPT                                                           \
        OCI_MEDIA_TYPE_INDEX ", " OCI_MEDIA_TYPE_MANIFEST ", " DOCKER_MEDIA_TYPE_LIST \
                             ", " DOCKER_MEDIA_TYPE_MANIFEST

#define OCI_MANIFEST_SIZE_MAX (4u * 1024 * 1024) /* the limit distribution enforces on push */
#define OCI_CONFIG_SIZE_MAX   (16u * 1024 * 1024)
#define OCI_LAYER_SIZE_MAX    (64ull * 1024 * 1024 * 1024)
#define OCI_LAYERS_MAX        256

typedef enum OciDocumentKind {
        OCI_DOCUMENT_INDEX,    /* OCI image index or Docker manifest list */
        OCI_DOCUMENT_MANIFEST, /* OCI image manifest or Docker schema 2 manifest */
        _OCI_DOCUMENT_KIND_MAX,
        _OCI_DOCUMENT_KIND_INVALID = -1,
} OciDocumentKind;

typedef struct OciDescriptor {
        char *media_type;
        char *digest; /* "sha256:HEX" */
        uint64_t size;
} OciDescriptor;

typedef struct OciManifest {
        OciDescriptor config;
        OciDescriptor *layers;
        size_t n_layers;
} OciManifest;

typedef struct OciImageConfig {
        char *os;
        char *architecture;
        char **entrypoint; /* NULL when unset */
        char **cmd;
        char **env;
        char *user; /* NULL when unset or empty */
        char *working_dir;
        uint64_t created_usec; /* 0 when unset */
        size_t n_diff_ids;     /* layers listed in rootfs.diff_ids */
} OciImageConfig;

void oci_descriptor_done(OciDescriptor *d);

OciManifest *oci_manifest_free(OciManifest *m);
static inline void oci_manifest_freep(OciManifest **p)
{
        oci_manifest_free(*p);
}

OciImageConfig *oci_image_config_free(OciImageConfig *c);
static inline void oci_image_config_freep(OciImageConfig **p)
{
        oci_image_config_free(*p);
}

/* Determines whether a manifest response is an index or a manifest, from its "mediaType"
 * field or, when the document has none, from the Content-Type header (may be NULL). A
 * mediaType field that contradicts the header is rejected. */
int oci_document_kind(const char *data, size_t size, const char *content_type, OciDocumentKind *ret,
                      char **ret_error);

/* Selects the manifest for os/architecture from an index, skipping entries that are no
 * runnable image: attestation manifests, "unknown" platforms and nested indexes.
 * architecture may name a variant ("arm64/v8"), which must then match; an entry without a
 * variant matches the architecture's baseline (amd64 v1, arm64 v8). Without a requested
 * variant, an entry with none or with the baseline wins over other variants. Returns
 * -ENOENT with a message listing the available platforms when none matches. */
int oci_index_select(const char *data, size_t size, const char *os, const char *architecture,
                     OciDescriptor *ret, char **ret_error);

int oci_manifest_parse(const char *data, size_t size, OciManifest **ret, char **ret_error);

int oci_image_config_parse(const char *data, size_t size, OciImageConfig **ret, char **ret_error);

/* Parses an RFC 3339 timestamp ("2024-01-02T03:04:05.123456789Z", or with a "+01:00" offset)
 * into microseconds since the epoch. */
int oci_parse_timestamp(const char *s, uint64_t *ret);
