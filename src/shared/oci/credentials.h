#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Registry credentials from a Docker client configuration file (config.json):
 *
 *   {"auths": {"HOST": {"auth": "BASE64(user:password)"}
 *              "HOST": {"username": "user", "password": "password"}},
 *              "HOST": {"auth": "BASE64(user:)", "identitytoken": "TOKEN"}},
 *    "credHelpers": {"HOST": "NAME"},
 *    "credsStore": "NAME"}
 *
 * HOST may take every form that docker writes: "host", "host:port", "https://host/v1/",
 * "http://host:port", and "https://index.docker.io/v1/" for Docker Hub. A helper NAME runs as
 * the program docker-credential-NAME found in $PATH. The file is untrusted input: every
 * function here checks sizes and types and never logs a credential. */

typedef struct RegistryCredential {
        char *username;
        char *password;
        /* OAuth2 refresh token from an "identitytoken" entry or a helper's "<token>" user,
         * traded at the token realm for access tokens; NULL when none was given. */
        char *identity_token;
        /* The credential's origin, for messages: "credentials file 'PATH'" or "credential
         * helper 'docker-credential-NAME' (named in 'PATH')". */
        char *source;
} RegistryCredential;

RegistryCredential *registry_credential_free(RegistryCredential *c);
static inline void registry_credential_freep(RegistryCredential **p)
{
        registry_credential_free(*p);
}

typedef struct DockerConfig DockerConfig;

DockerConfig *docker_config_free(DockerConfig *c);
static inline void docker_config_freep(DockerConfig **p)
{
        docker_config_free(*p);
}

#define DOCKER_CONFIG_SIZE_MAX (4 * 1024 * 1024)

/* Parses the text of a config.json. source names the file in messages and in the credentials
 * found. Returns -EBADMSG with a message for invalid JSON or a malformed entry. */
int docker_config_parse(const char *text, size_t size, const char *source, DockerConfig **ret,
                        char **ret_error);

/* Reads and parses the file at path. Returns -ENOENT, with no message, when it does not
 * exist. */
int docker_config_load(const char *path, DockerConfig **ret, char **ret_error);

/* Turns a key of "auths" or "credHelpers" into the registry name that image references use:
 * "https://index.docker.io/v1/" -> "docker.io", "http://127.0.0.1:5000/v2/" ->
 * "127.0.0.1:5000", "Quay.io" -> "quay.io". */
int docker_config_normalize_host(const char *key, char **ret);

/* Finds the credential for registry (a reference's registry, "docker.io" or "host:port").
 * credHelpers has the first word, then an "auths" entry with a user name, then credsStore.
 * Returns 1 and the credential, 0 when the file has none for registry, or a negative errno
 * with a message when a helper fails. */
int docker_config_find_credential(const DockerConfig *c, const char *registry,
                                  RegistryCredential **ret, char **ret_error);

/* Runs "docker-credential-NAME get" with server_url on stdin, without a shell, and parses its
 * {"Username", "Secret"} output. The helper is killed when it has not finished after
 * timeout_sec. Returns 1 and the credential, 0 when the helper reports that it stores none
 * for server_url, or a negative errno with a message. */
int credential_helper_get(const char *name, const char *server_url, unsigned timeout_sec,
                          RegistryCredential **ret, char **ret_error);

/* Checks a helper NAME: letters, digits, '.', '_' and '-', so that it cannot name a path. */
bool credential_helper_name_is_valid(const char *name);

/* Decodes standard base64 with optional padding. Returns -EINVAL for invalid input. The
 * result is NUL-terminated; *ret_size excludes the NUL. */
int base64_decode(const char *text, char **ret, size_t *ret_size);
