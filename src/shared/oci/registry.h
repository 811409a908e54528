#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "oci-manifest.h"
#include "oci-ref.h"

/* A client for the registry HTTP API v2 (the OCI distribution specification) with anonymous
 * access and the bearer token flow that public registries use for anonymous pulls. Every
 * manifest and blob is checked against its sha256 digest. Functions return a negative errno
 * and, when ret_error is not NULL, a message for the user that names the registry or the
 * reference and what to do. */

typedef struct RegistryClient RegistryClient;

typedef struct RegistryTransferOptions {
        const volatile bool *cancel; /* may be NULL; when it becomes true, -ECANCELED */
        /* Called while a blob downloads with the bytes received for it so far. */
        void (*progress)(uint64_t done, void *userdata);
        void *userdata;
} RegistryTransferOptions;

/* Creates a client for ref's registry. plain_http selects http:// instead of https://. */
int registry_client_new(const OciReference *ref, bool plain_http, RegistryClient **ret);
RegistryClient *registry_client_free(RegistryClient *c);
static inline void registry_client_freep(RegistryClient **p)
{
        registry_client_free(*p);
}

/* Fetches the manifest or index for a tag or digest of the client's repository. *ret_digest
 * receives the sha256 of the bytes received; when reference is a digest, a mismatch fails
 * with -EBADMSG. *ret_content_type may be NULL when the registry sent none. */
int registry_get_manifest(RegistryClient *c, const char *reference,
                          const RegistryTransferOptions *opts, char **ret_data, size_t *ret_size,
                          char **ret_content_type, char **ret_digest, char **ret_error);

/* Makes sure the blob d is in cache_dir/sha256/HEX and returns that path. A cached blob is
 * checked again and reused. A new one goes to a temporary sibling, which is renamed into place
 * only after its size and digest match. */
int registry_fetch_blob(RegistryClient *c, const OciDescriptor *d, const char *cache_dir,
                        const RegistryTransferOptions *opts, char **ret_path, char **ret_error);

/* Parses a WWW-Authenticate value 'Bearer realm="...",service="...",scope="..."'. Missing
 * service or scope give NULL. Returns -EINVAL when it is no Bearer challenge with a realm. */
int registry_parse_bearer_challenge(const char *header, char **ret_realm, char **ret_service,
                                    char **ret_scope);

/* Computes "sha256:HEX" of the file at path. */
int sha256_file(const char *path, char **ret_digest);
