#pragma once

#include <stdbool.h>

/* A parsed image reference, following the grammar of the distribution project's reference
 * package: [registry[:port]/]repository[:tag][@digest]. */
typedef struct OciReference {
        char *registry;   /* "docker.io", "127.0.0.1:5000" */
        char *repository; /* "library/busybox" */
        char *tag;        /* "latest"; NULL when the reference gives only a digest */
        char *digest;     /* "sha256:HEX"; NULL unless the reference pins one */
} OciReference;

#define OCI_NAME_MAX 255 /* repository name with its registry, as distribution enforces */
#define OCI_TAG_MAX  128

OciReference *oci_reference_free(OciReference *ref);
static inline void oci_reference_freep(OciReference **p)
{
        oci_reference_free(*p);
}

/* Parses and normalises a reference: Docker Hub names get the "docker.io" registry and the
 * "library/" namespace for single-component names, and the tag defaults to "latest" when
 * neither a tag nor a digest is given. Returns -EINVAL for a malformed reference, and then
 * stores a message naming the problem in *ret_error when ret_error is not NULL. */
int oci_reference_parse(const char *s, OciReference **ret, char **ret_error);

/* Formats "registry/repository[:tag][@digest]". */
int oci_reference_to_string(const OciReference *ref, char **ret);

/* Returns the host[:port] that serves the registry API: "registry-1.docker.io" for Docker Hub,
 * the registry itself otherwise. */
const char *oci_reference_api_host(const OciReference *ref);

/* Checks "sha256:" followed by 64 lower-case hex digits, the only algorithm banger accepts. */
bool oci_digest_is_valid(const char *digest);
