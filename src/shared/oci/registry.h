#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "oci-manifest.h"
#include "oci-ref.h"

/* A client for the registry HTTP API v2 (the OCI distribution specification). It pulls
 * anonymously until a registry returns 401. It then meets a Basic challenge with the credential
 * from the credentials file, or a Bearer challenge by fetching a token from the realm (with that
 * credential when the file has one). Mirrors of the registry are tried first, in order, and the
 * registry itself last. Every manifest and blob is checked against its sha256 digest.
 * Functions return a negative errno and, when ret_error is not NULL, a message for the user
 * that names the registry or the reference and what to do. Credentials and tokens are never
 * logged. */

typedef struct RegistryClient RegistryClient;

typedef struct RegistryTransferOptions {
        const volatile bool *cancel; /* may be NULL; when it becomes true, -ECANCELED */
        /* Called while a blob downloads with the bytes received for it so far. */
        void (*progress)(uint64_t done, void *userdata);
        void *userdata;
} RegistryTransferOptions;

typedef struct RegistryClientOptions {
        bool plain_http; /* reach the registry over http:// instead of https:// */
        /* PEM file of CA certificates that TLS connections trust besides the system's. NULL
         * trusts the system's only. */
        const char *ca_file;
        /* Docker config.json with credentials, see credentials.h. NULL or a missing file
         * means anonymous access. */
        const char *credentials_file;
        /* "REGISTRY=URL" entries, see registry_mirror_parse(). Those for ref's registry are
         * tried before it, in the order given. */
        char **mirrors;
} RegistryClientOptions;

/* Creates a client for ref's registry. Returns -EINVAL with a message for an invalid mirror
 * entry. */
int registry_client_new_with_options(const OciReference *ref, const RegistryClientOptions *opts,
                                     RegistryClient **ret, char **ret_error);

/* Creates a client with no mirrors, credentials or CA file. plain_http selects http://
 * instead of https://. */
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

/* Parses a mirror entry "REGISTRY=http[s]://HOST[:PORT][/]", for example
 * "docker.io=https://mirror.example.com". REGISTRY is a reference's registry as
 * oci_reference_parse() gives it ("docker.io", "host:port"). A mirror serves the same
 * repository names at /v2/ of its URL. Returns -EINVAL for an invalid entry; ret_scheme and
 * ret_host may be NULL. */
int registry_mirror_parse(const char *entry, char **ret_registry, char **ret_scheme,
                          char **ret_host);

/* Parses a Retry-After value: delay-seconds or an HTTP date, which gives the seconds from now
 * to it (0 when it has passed). Values are clamped to a year. Returns -EINVAL when the value
 * is neither. */
int registry_parse_retry_after(const char *value, time_t now, unsigned *ret_seconds);

/* Computes "sha256:HEX" of the file at path. */
int sha256_file(const char *path, char **ret_digest);
