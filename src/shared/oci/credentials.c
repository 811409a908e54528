#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <json.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "credentials.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"

#define HELPER_OUTPUT_MAX (64 * 1024)
#define HELPER_PREFIX     "docker-credential-"
#define HELPER_NAME_MAX   64
#define DOCKER_HUB        "docker.io"
#define DOCKER_HUB_URL    "https://index.docker.io/v1/" /* the key docker writes for Docker Hub */

extern char **environ;

typedef struct AuthEntry {
        char *host; /* normalised */
        char *username;
        char *password;
        char *identity_token;
} AuthEntry;

/* The user name that docker and its credential helpers use for an identity token. */
#define IDENTITY_TOKEN_USER "<token>"

typedef struct HelperEntry {
        char *host; /* normalised */
        char *helper;
} HelperEntry;

struct DockerConfig {
        char *source;
        AuthEntry *auths;
        size_t n_auths;
        HelperEntry *helpers;
        size_t n_helpers;
        char *store; /* credsStore; NULL when unset */
};

static int fail(char **ret_error, int error, const char *format, ...)
        __attribute__((format(printf, 3, 4)));

static int fail(char **ret_error, int error, const char *format, ...)
{
        va_list ap;

        if (ret_error && !*ret_error) {
                va_start(ap, format);
                if (vasprintf(ret_error, format, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return error;
}

static void free_secret(char *s)
{
        if (!s)
                return;
        explicit_bzero(s, strlen(s));
        free(s);
}

RegistryCredential *registry_credential_free(RegistryCredential *c)
{
        if (!c)
                return NULL;
        free(c->username);
        free_secret(c->password);
        free_secret(c->identity_token);
        free(c->source);
        free(c);
        return NULL;
}

DockerConfig *docker_config_free(DockerConfig *c)
{
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_auths; i++) {
                free(c->auths[i].host);
                free(c->auths[i].username);
                free_secret(c->auths[i].password);
                free_secret(c->auths[i].identity_token);
        }
        free(c->auths);
        for (size_t i = 0; i < c->n_helpers; i++) {
                free(c->helpers[i].host);
                free(c->helpers[i].helper);
        }
        free(c->helpers);
        free(c->store);
        free(c->source);
        free(c);
        return NULL;
}

static int base64_value(char c)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

int base64_decode(const char *text, char **ret, size_t *ret_size)
{
        size_t len = strlen(text), n = 0, padding = 0;
        uint32_t bits = 0;
        unsigned count = 0;
        char *out;

        while (len > 0 && text[len - 1] == '=' && padding < 2) {
                len--;
                padding++;
        }
        if (len % 4 == 1 || (padding > 0 && (len + padding) % 4 != 0))
                return -EINVAL;

        out = malloc(len / 4 * 3 + 3 + 1);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < len; i++) {
                int v = base64_value(text[i]);

                if (v < 0) {
                        explicit_bzero(out, n);
                        free(out);
                        return -EINVAL;
                }
                bits = bits << 6 | (uint32_t)v;
                if (++count == 4) {
                        out[n++] = (char)(bits >> 16);
                        out[n++] = (char)(bits >> 8);
                        out[n++] = (char)bits;
                        bits = 0;
                        count = 0;
                }
        }
        if (count == 2) {
                out[n++] = (char)(bits >> 4);
        } else if (count == 3) {
                out[n++] = (char)(bits >> 10);
                out[n++] = (char)(bits >> 2);
        }
        out[n] = '\0';
        *ret = out;
        *ret_size = n;
        return 0;
}

int docker_config_normalize_host(const char *key, char **ret)
{
        const char *p = key;
        size_t n;
        char *host;

        if (strncasecmp(p, "https://", 8) == 0)
                p += 8;
        else if (strncasecmp(p, "http://", 7) == 0)
                p += 7;
        n = strcspn(p, "/");
        if (n == 0)
                return -EINVAL;
        host = strndup(p, n);
        if (!host)
                return -ENOMEM;
        for (char *c = host; *c; c++) {
                if ((unsigned char)*c <= ' ' || *c == '@' || *c == '?' || *c == '#') {
                        free(host);
                        return -EINVAL;
                }
                *c = (char)tolower((unsigned char)*c);
        }
        if (streq(host, "index.docker.io") || streq(host, "registry-1.docker.io")) {
                free(host);
                host = strdup(DOCKER_HUB);
                if (!host)
                        return -ENOMEM;
        }
        *ret = host;
        return 0;
}

bool credential_helper_name_is_valid(const char *name)
{
        size_t n = strlen(name);

        if (n == 0 || n > HELPER_NAME_MAX || name[0] == '.' || name[0] == '-')
                return false;
        return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
               n;
}

static const char *get_string(json_object *o, const char *key)
{
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

/* Splits the decoded "auth" value at its first ':', as docker does. */
static int parse_auth_field(const char *auth, char **ret_username, char **ret_password)
{
        _cleanup_free_ char *username = NULL;
        char *decoded = NULL, *colon, *password;
        size_t size;
        int r;

        r = base64_decode(auth, &decoded, &size);
        if (r < 0)
                return r;
        colon = strchr(decoded, ':');
        if (!colon || colon == decoded || strlen(decoded) != size) {
                free_secret(decoded);
                return -EINVAL;
        }
        username = strndup(decoded, colon - decoded);
        password = strdup(colon + 1);
        free_secret(decoded);
        if (!username || !password) {
                free_secret(password);
                return -ENOMEM;
        }
        *ret_username = TAKE_PTR(username);
        *ret_password = password;
        return 0;
}

static int parse_auths(DockerConfig *c, json_object *auths, char **ret_error)
{
        size_t n = json_object_object_length(auths);
        int r;

        c->auths = calloc(n ? n : 1, sizeof(AuthEntry));
        if (!c->auths)
                return -ENOMEM;

        json_object_object_foreach(auths, key, value)
        {
                AuthEntry *e = &c->auths[c->n_auths];
                const char *auth, *username, *password, *identity_token;

                if (!json_object_is_type(value, json_type_object))
                        return fail(ret_error, -EBADMSG,
                                    "Credentials file '%s' has an \"auths\" entry for '%s' that "
                                    "is not an object",
                                    c->source, key);
                r = docker_config_normalize_host(key, &e->host);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return fail(ret_error, -EBADMSG,
                                    "Credentials file '%s' has an \"auths\" key '%s' that is no "
                                    "registry host",
                                    c->source, key);
                c->n_auths++;

                auth = get_string(value, "auth");
                username = get_string(value, "username");
                password = get_string(value, "password");
                identity_token = get_string(value, "identitytoken");
                if (!isempty(auth)) {
                        r = parse_auth_field(auth, &e->username, &e->password);
                        if (r == -ENOMEM)
                                return r;
                        if (r < 0)
                                return fail(ret_error, -EBADMSG,
                                            "Credentials file '%s' has an invalid \"auth\" value "
                                            "for '%s': it must be the base64 encoding of "
                                            "USER:PASSWORD",
                                            c->source, key);
                } else if (!isempty(username)) {
                        e->username = strdup(username);
                        e->password = strdup(strempty(password));
                        if (!e->username || !e->password)
                                return -ENOMEM;
                }
                if (!isempty(identity_token)) {
                        e->identity_token = strdup(identity_token);
                        if (!e->identity_token)
                                return -ENOMEM;
                        if (!e->username) {
                                e->username = strdup(IDENTITY_TOKEN_USER);
                                e->password = strdup("");
                                if (!e->username || !e->password)
                                        return -ENOMEM;
                        }
                }
                /* An entry without a user name is what docker leaves beside credsStore. */
        }
        return 0;
}

static int parse_helpers(DockerConfig *c, json_object *helpers, char **ret_error)
{
        size_t n = json_object_object_length(helpers);
        int r;

        c->helpers = calloc(n ? n : 1, sizeof(HelperEntry));
        if (!c->helpers)
                return -ENOMEM;

        json_object_object_foreach(helpers, key, value)
        {
                HelperEntry *e = &c->helpers[c->n_helpers];
                const char *name = json_object_is_type(value, json_type_string)
                                           ? json_object_get_string(value)
                                           : NULL;

                if (!name || !credential_helper_name_is_valid(name))
                        return fail(ret_error, -EBADMSG,
                                    "Credentials file '%s' names an invalid helper for '%s' in "
                                    "\"credHelpers\": use the NAME of docker-credential-NAME",
                                    c->source, key);
                r = docker_config_normalize_host(key, &e->host);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return fail(ret_error, -EBADMSG,
                                    "Credentials file '%s' has a \"credHelpers\" key '%s' that "
                                    "is no registry host",
                                    c->source, key);
                c->n_helpers++;
                e->helper = strdup(name);
                if (!e->helper)
                        return -ENOMEM;
        }
        return 0;
}

int docker_config_parse(const char *text, size_t size, const char *source, DockerConfig **ret,
                        char **ret_error)
{
        _cleanup_(docker_config_freep) DockerConfig *c = calloc(1, sizeof(DockerConfig));
        json_tokener *tokener = NULL;
        json_object *root = NULL, *v;
        int r;

        if (!c)
                return -ENOMEM;
        c->source = strdup(source);
        if (!c->source)
                return -ENOMEM;
        if (size > DOCKER_CONFIG_SIZE_MAX || memchr(text, '\0', size))
                return fail(ret_error, -EBADMSG,
                            "Credentials file '%s' is not a JSON text of at most %d bytes", source,
                            DOCKER_CONFIG_SIZE_MAX);

        tokener = json_tokener_new();
        if (!tokener)
                return -ENOMEM;
        root = json_tokener_parse_ex(tokener, text, (int)size);
        if (!root || json_tokener_get_error(tokener) != json_tokener_success ||
            json_tokener_get_parse_end(tokener) != size ||
            !json_object_is_type(root, json_type_object)) {
                r = fail(ret_error, -EBADMSG,
                         "Credentials file '%s' is not a JSON object: write it in the format of "
                         "docker's config.json",
                         source);
                goto finish;
        }

        if (json_object_object_get_ex(root, "auths", &v) &&
            !json_object_is_type(v, json_type_null)) {
                if (!json_object_is_type(v, json_type_object)) {
                        r = fail(ret_error, -EBADMSG,
                                 "Credentials file '%s' has an \"auths\" value that is not an "
                                 "object",
                                 source);
                        goto finish;
                }
                r = parse_auths(c, v, ret_error);
                if (r < 0)
                        goto finish;
        }
        if (json_object_object_get_ex(root, "credHelpers", &v) &&
            !json_object_is_type(v, json_type_null)) {
                if (!json_object_is_type(v, json_type_object)) {
                        r = fail(ret_error, -EBADMSG,
                                 "Credentials file '%s' has a \"credHelpers\" value that is not "
                                 "an object",
                                 source);
                        goto finish;
                }
                r = parse_helpers(c, v, ret_error);
                if (r < 0)
                        goto finish;
        }
        if (json_object_object_get_ex(root, "credsStore", &v) &&
            !json_object_is_type(v, json_type_null)) {
                const char *name =
                        json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";

                if (!credential_helper_name_is_valid(name)) {
                        r = fail(ret_error, -EBADMSG,
                                 "Credentials file '%s' names an invalid \"credsStore\": use the "
                                 "NAME of docker-credential-NAME",
                                 source);
                        goto finish;
                }
                c->store = strdup(name);
                if (!c->store) {
                        r = -ENOMEM;
                        goto finish;
                }
        }

        *ret = TAKE_PTR(c);
        r = 0;

finish:
        json_object_put(root);
        json_tokener_free(tokener);
        return r;
}

int docker_config_load(const char *path, DockerConfig **ret, char **ret_error)
{
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        int r;

        r = read_full_file(path, DOCKER_CONFIG_SIZE_MAX, &text, &size);
        if (r == -ENOENT)
                return r;
        if (r == -EFBIG || r == -E2BIG)
                return fail(ret_error, -EBADMSG,
                            "Credentials file '%s' is larger than %d bytes: remove unused entries",
                            path, DOCKER_CONFIG_SIZE_MAX);
        if (r < 0)
                return fail(ret_error, r,
                            "Failed to read credentials file '%s': %s: make it readable to the "
                            "user that bangerd runs as (chgrp bangerd FILE; chmod 0640 FILE)",
                            path, strerror(-r));
        r = docker_config_parse(text, size, path, ret, ret_error);
        explicit_bzero(text, size);
        return r;
}

static int credential_new(const char *username, const char *password, const char *identity_token,
                          const char *source, RegistryCredential **ret)
{
        _cleanup_(registry_credential_freep) RegistryCredential *c =
                calloc(1, sizeof(RegistryCredential));

        if (!c)
                return -ENOMEM;
        c->username = strdup(username);
        c->password = strdup(password);
        c->source = strdup(source);
        if (!c->username || !c->password || !c->source)
                return -ENOMEM;
        if (identity_token && !(c->identity_token = strdup(identity_token)))
                return -ENOMEM;
        *ret = TAKE_PTR(c);
        return 0;
}

#define HELPER_TIMEOUT_SEC 10

static int run_helper(const DockerConfig *c, const char *helper, const char *registry,
                      RegistryCredential **ret, char **ret_error)
{
        /* Helpers key Docker Hub by the URL that docker itself uses. */
        const char *server_url = streq(registry, DOCKER_HUB) ? DOCKER_HUB_URL : registry;
        RegistryCredential *credential = NULL;
        int r;

        r = credential_helper_get(helper, server_url, HELPER_TIMEOUT_SEC, &credential, ret_error);
        if (r <= 0)
                return r;
        /* The message names the file that chose the helper, too. */
        free(credential->source);
        if (asprintf(&credential->source,
                     "credential helper 'docker-credential-%s' (named in '%s')", helper,
                     c->source) < 0) {
                credential->source = NULL;
                registry_credential_free(credential);
                return -ENOMEM;
        }
        *ret = credential;
        return 1;
}

int docker_config_find_credential(const DockerConfig *c, const char *registry,
                                  RegistryCredential **ret, char **ret_error)
{
        _cleanup_free_ char *host = NULL;
        int r;

        r = docker_config_normalize_host(registry, &host);
        if (r < 0)
                return r;

        for (size_t i = 0; i < c->n_helpers; i++)
                if (streq(c->helpers[i].host, host))
                        return run_helper(c, c->helpers[i].helper, host, ret, ret_error);

        for (size_t i = 0; i < c->n_auths; i++) {
                const AuthEntry *e = &c->auths[i];

                if (!streq(e->host, host) || !e->username)
                        continue;
                _cleanup_free_ char *source = NULL;

                if (asprintf(&source, "credentials file '%s'", c->source) < 0)
                        return -ENOMEM;
                r = credential_new(e->username, e->password, e->identity_token, source, ret);
                return r < 0 ? r : 1;
        }

        if (c->store)
                return run_helper(c, c->store, host, ret, ret_error);
        return 0;
}

static uint64_t now_usec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000ULL;
}

/* Reads the helper's stdout until EOF, the size limit or the deadline. */
static int read_helper_output(int fd, uint64_t deadline, char *buf, size_t size_max,
                              size_t *ret_size)
{
        size_t n = 0;

        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                uint64_t now = now_usec();
                ssize_t k;
                int r;

                if (now >= deadline)
                        return -ETIMEDOUT;
                r = poll(&p, 1, (int)((deadline - now + 999) / 1000));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return negative_errno();
                if (r == 0)
                        return -ETIMEDOUT;
                k = read(fd, buf + n, size_max - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                if (k == 0)
                        break;
                n += (size_t)k;
                if (n == size_max)
                        return -EFBIG;
        }
        buf[n] = '\0';
        *ret_size = n;
        return 0;
}

static int parse_helper_output(const char *name, const char *output, RegistryCredential **ret,
                               char **ret_error)
{
        _cleanup_free_ char *source = NULL;
        json_object *j = json_tokener_parse(output);
        const char *username, *secret;
        int r;

        if (asprintf(&source, "credential helper '" HELPER_PREFIX "%s'", name) < 0) {
                json_object_put(j);
                return -ENOMEM;
        }
        username = j ? get_string(j, "Username") : NULL;
        secret = j ? get_string(j, "Secret") : NULL;
        if (!username || isempty(secret)) {
                json_object_put(j);
                return fail(ret_error, -EBADMSG,
                            "Credential helper '" HELPER_PREFIX
                            "%s' printed no JSON object with \"Username\" and \"Secret\"",
                            name);
        }
        /* A "<token>" user name means that the secret is an identity token. */
        if (streq(username, IDENTITY_TOKEN_USER))
                r = credential_new(username, "", secret, source, ret);
        else
                r = credential_new(username, secret, NULL, source, ret);
        json_object_put(j);
        return r < 0 ? r : 1;
}

int credential_helper_get(const char *name, const char *server_url, unsigned timeout_sec,
                          RegistryCredential **ret, char **ret_error)
{
        _cleanup_free_ char *program = NULL, *output = NULL;
        _cleanup_close_ int in_parent = -EBADF, out_parent = -EBADF;
        int in_pair[2], out_pipe[2], status = 0, r;
        posix_spawn_file_actions_t actions;
        char *argv[3];
        size_t size = 0;
        pid_t pid;

        if (!credential_helper_name_is_valid(name))
                return fail(ret_error, -EINVAL, "Credential helper name '%s' is invalid", name);
        if (asprintf(&program, HELPER_PREFIX "%s", name) < 0)
                return -ENOMEM;
        output = malloc(HELPER_OUTPUT_MAX + 1);
        if (!output)
                return -ENOMEM;

        /* stdin is a socket, so that writing to a helper that exited early fails with EPIPE
         * through MSG_NOSIGNAL instead of raising SIGPIPE in the caller. */
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in_pair) < 0)
                return negative_errno();
        in_parent = in_pair[0];
        if (pipe2(out_pipe, O_CLOEXEC) < 0) {
                r = negative_errno();
                close(in_pair[1]);
                return r;
        }
        out_parent = out_pipe[0];

        argv[0] = program;
        argv[1] = (char *)"get";
        argv[2] = NULL;
        r = posix_spawn_file_actions_init(&actions);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&actions, in_pair[1], STDIN_FILENO);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
        if (r == 0)
                r = posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY,
                                                     0);
        if (r == 0)
                r = posix_spawnp(&pid, program, &actions, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&actions);
        close(in_pair[1]);
        close(out_pipe[1]);
        if (r != 0)
                return fail(ret_error, -r,
                            "Failed to run credential helper '%s': %s: install it in bangerd's "
                            "PATH or remove it from the credentials file",
                            program, strerror(r));

        log_debug("credentials: running '%s get' for '%s'", program, server_url);
        if (send(in_parent, server_url, strlen(server_url), MSG_NOSIGNAL) < 0)
                log_debug("credentials: failed to write to '%s': %m", program);
        in_parent = safe_close(in_parent);

        r = read_helper_output(out_parent, now_usec() + (uint64_t)timeout_sec * 1000000ULL, output,
                               HELPER_OUTPUT_MAX, &size);
        if (r < 0)
                (void)kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0) {
                if (errno != EINTR) {
                        status = -1;
                        break;
                }
        }

        if (r == -ETIMEDOUT)
                r = fail(ret_error, r, "Credential helper '%s' did not finish within %u s", program,
                         timeout_sec);
        else if (r == -EFBIG)
                r = fail(ret_error, -EBADMSG, "Credential helper '%s' printed more than %d bytes",
                         program, HELPER_OUTPUT_MAX);
        else if (r < 0)
                r = fail(ret_error, r, "Failed to read the output of credential helper '%s': %s",
                         program, strerror(-r));
        else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                r = parse_helper_output(name, output, ret, ret_error);
        else if (strstr(output, "credentials not found"))
                /* The message that docker-credential-helpers prints when it stores nothing
                 * for the server. */
                r = 0;
        else {
                output[strcspn(output, "\r\n")] = '\0';
                r = fail(ret_error, -EACCES,
                         "Credential helper '%s' failed for '%s' (exit status %d): %.200s", program,
                         server_url, WIFEXITED(status) ? WEXITSTATUS(status) : -1, output);
        }
        explicit_bzero(output, HELPER_OUTPUT_MAX + 1);
        return r;
}
