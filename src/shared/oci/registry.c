#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "credentials.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "registry.h"
#include "strv.h"

#define TOKEN_SIZE_MAX      (1024 * 1024)
#define ERROR_BODY_MAX      4096
#define RETRY_ATTEMPTS      4  /* requests per URL while the registry returns 429 or 503 */
#define RETRY_WAIT_MAX_SEC  30 /* a longer Retry-After fails the pull instead of waiting */
#define RETRY_AFTER_SEC_MAX (366u * 24 * 3600) /* Retry-After values are clamped to a year */
#define CONNECT_TIMEOUT_SEC 30L
#define STALL_TIMEOUT_SEC   60L /* abort a transfer that moves no byte for this long */
#define REDIRECTS_MAX       5L

#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif
#ifndef MAX
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#endif

/* A server that serves the repository: a mirror or the registry itself. */
typedef struct Endpoint {
        char *name;           /* for messages: the registry as the user named it, or a mirror URL */
        char *scheme;         /* "https" or "http" */
        char *host;           /* host[:port] that serves the API */
        char *credential_key; /* the registry name that the credentials file lists it under */
        char *token;          /* bearer token once the endpoint asked for one */
        RegistryCredential *credential;
        bool credential_loaded;
        bool basic; /* the endpoint asked for Basic authentication */
} Endpoint;

struct RegistryClient {
        CURL *curl;
        char *registry;   /* as the user named it, for messages */
        char *repository; /* "library/busybox" */
        char *ca_file;
        char *credentials_file;
        DockerConfig *docker_config;
        bool docker_config_loaded;
        Endpoint *endpoints; /* the mirrors in configured order, then the registry */
        size_t n_endpoints;
        size_t current; /* the endpoint that served the last manifest */
        Endpoint *e;    /* the endpoint of the request in progress */
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

static void endpoint_done(Endpoint *e)
{
        free(e->name);
        free(e->scheme);
        free(e->host);
        free(e->credential_key);
        free_secret(e->token);
        registry_credential_free(e->credential);
}

RegistryClient *registry_client_free(RegistryClient *c)
{
        if (!c)
                return NULL;
        if (c->curl)
                curl_easy_cleanup(c->curl);
        free(c->registry);
        free(c->repository);
        free(c->ca_file);
        free(c->credentials_file);
        docker_config_free(c->docker_config);
        for (size_t i = 0; i < c->n_endpoints; i++)
                endpoint_done(&c->endpoints[i]);
        free(c->endpoints);
        free(c);
        return NULL;
}

int registry_mirror_parse(const char *entry, char **ret_registry, char **ret_scheme,
                          char **ret_host)
{
        _cleanup_free_ char *registry = NULL, *scheme = NULL, *host = NULL;
        const char *equals = strchr(entry, '='), *url, *rest;
        size_t n;

        if (!equals || equals == entry)
                return -EINVAL;
        registry = strndup(entry, equals - entry);
        if (!registry)
                return -ENOMEM;
        if (strpbrk(registry, "/= \t"))
                return -EINVAL;

        url = equals + 1;
        if (strneq(url, "https://", 8)) {
                scheme = strdup("https");
                rest = url + 8;
        } else if (strneq(url, "http://", 7)) {
                scheme = strdup("http");
                rest = url + 7;
        } else {
                return -EINVAL;
        }
        if (!scheme)
                return -ENOMEM;

        /* host[:port] with an optional trailing '/': mirrors serve the API at /v2/. */
        n = strcspn(rest, "/");
        if (n == 0 || (rest[n] == '/' && rest[n + 1] != '\0') || strpbrk(rest, "@?# \t=") ||
            n > 255)
                return -EINVAL;
        host = strndup(rest, n);
        if (!host)
                return -ENOMEM;

        *ret_registry = TAKE_PTR(registry);
        if (ret_scheme)
                *ret_scheme = TAKE_PTR(scheme);
        if (ret_host)
                *ret_host = TAKE_PTR(host);
        return 0;
}

static int endpoint_init(Endpoint *e, const char *name, const char *scheme, const char *host,
                         const char *credential_key)
{
        e->name = strdup(name);
        e->scheme = strdup(scheme);
        e->host = strdup(host);
        e->credential_key = strdup(credential_key);
        return e->name && e->scheme && e->host && e->credential_key ? 0 : -ENOMEM;
}

/* Adds an endpoint for each mirror entry of ref's registry, in the order given. */
static int add_mirrors(RegistryClient *c, char **mirrors, char **ret_error)
{
        for (char **m = mirrors; m && *m; m++) {
                _cleanup_free_ char *registry = NULL, *scheme = NULL, *host = NULL, *name = NULL;
                int r;

                r = registry_mirror_parse(*m, &registry, &scheme, &host);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return fail(ret_error, -EINVAL,
                                    "Registry mirror '%s' is invalid: write "
                                    "REGISTRY=http[s]://HOST[:PORT], for example "
                                    "docker.io=https://mirror.example.com",
                                    *m);
                if (!streq(registry, c->registry))
                        continue;
                if (asprintf(&name, "%s://%s", scheme, host) < 0)
                        return -ENOMEM;
                r = endpoint_init(&c->endpoints[c->n_endpoints], name, scheme, host, host);
                c->n_endpoints++;
                if (r < 0)
                        return r;
        }
        return 0;
}

int registry_client_new_with_options(const OciReference *ref, const RegistryClientOptions *opts,
                                     RegistryClient **ret, char **ret_error)
{
        _cleanup_(registry_client_freep) RegistryClient *c = calloc(1, sizeof(RegistryClient));
        int r;

        if (!c)
                return -ENOMEM;
        c->curl = curl_easy_init();
        c->registry = strdup(ref->registry);
        c->repository = strdup(ref->repository);
        c->endpoints = calloc(strv_length(opts->mirrors) + 1, sizeof(Endpoint));
        if (!c->curl || !c->registry || !c->repository || !c->endpoints)
                return -ENOMEM;
        if (opts->ca_file && !(c->ca_file = strdup(opts->ca_file)))
                return -ENOMEM;
        if (opts->credentials_file && !(c->credentials_file = strdup(opts->credentials_file)))
                return -ENOMEM;

        r = add_mirrors(c, opts->mirrors, ret_error);
        if (r < 0)
                return r;
        r = endpoint_init(&c->endpoints[c->n_endpoints], ref->registry,
                          opts->plain_http ? "http" : "https", oci_reference_api_host(ref),
                          ref->registry);
        c->n_endpoints++;
        if (r < 0)
                return r;

        c->e = &c->endpoints[0];
        *ret = TAKE_PTR(c);
        return 0;
}

int registry_client_new(const OciReference *ref, bool plain_http, RegistryClient **ret)
{
        RegistryClientOptions opts = { .plain_http = plain_http };

        return registry_client_new_with_options(ref, &opts, ret, NULL);
}

/* Destination of a response body: a bounded memory buffer, or a file with a running sha256. */
typedef struct Sink {
        CURL *curl;
        char *buf;
        size_t size, size_max;
        int fd;
        EVP_MD_CTX *md;
        uint64_t expected_size; /* for files: more bytes than this is an error */
        bool overflow;
        int write_error;
        char error_body[ERROR_BODY_MAX + 1]; /* start of a non-2xx body, for messages */
        size_t error_body_size;
        const RegistryTransferOptions *opts;
} Sink;

static int sink_reset(Sink *s)
{
        s->size = 0;
        s->overflow = false;
        s->write_error = 0;
        s->error_body_size = 0;
        s->error_body[0] = '\0';
        if (s->md && EVP_DigestInit_ex(s->md, EVP_sha256(), NULL) != 1)
                return -EIO;
        if (s->fd >= 0 && (ftruncate(s->fd, 0) < 0 || lseek(s->fd, 0, SEEK_SET) < 0))
                return negative_errno();
        return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
        Sink *s = userdata;
        size_t n = size * nmemb;
        long status = 0;

        curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
        if (status < 200 || status >= 300) {
                size_t room = ERROR_BODY_MAX - s->error_body_size;
                size_t k = MIN(room, n);

                memcpy(s->error_body + s->error_body_size, data, k);
                s->error_body_size += k;
                s->error_body[s->error_body_size] = '\0';
                return n;
        }

        if (s->fd >= 0) {
                if ((uint64_t)s->size + n > s->expected_size) {
                        s->overflow = true;
                        return 0;
                }
                for (size_t done = 0; done < n;) {
                        ssize_t w = write(s->fd, data + done, n - done);
                        if (w < 0) {
                                s->write_error = negative_errno();
                                return 0;
                        }
                        done += (size_t)w;
                }
                if (EVP_DigestUpdate(s->md, data, n) != 1) {
                        s->write_error = -EIO;
                        return 0;
                }
                s->size += n;
                if (s->opts && s->opts->progress)
                        s->opts->progress(s->size, s->opts->userdata);
                return n;
        }

        if (s->size + n > s->size_max) {
                s->overflow = true;
                return 0;
        }
        char *p = realloc(s->buf, s->size + n + 1);
        if (!p) {
                s->write_error = -ENOMEM;
                return 0;
        }
        s->buf = p;
        memcpy(s->buf + s->size, data, n);
        s->size += n;
        s->buf[s->size] = '\0';
        return n;
}

static int on_transfer_info(void *userdata, curl_off_t dltotal, curl_off_t dlnow,
                            curl_off_t ultotal, curl_off_t ulnow)
{
        const Sink *s = userdata;

        return s->opts && s->opts->cancel && *s->opts->cancel ? 1 : 0;
}

static void curl_slist_freep(struct curl_slist **l)
{
        curl_slist_free_all(*l);
}

/* Returns a header of the last response, NULL when absent. Names match case-insensitively. */
static const char *response_header(CURL *curl, const char *name)
{
        struct curl_header *h = NULL;

        if (curl_easy_header(curl, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
                return NULL;
        return h->value;
}

/* Turns a transport failure into a message that names the endpoint. */
static int curl_failure(RegistryClient *c, CURLcode code, const Sink *s, char **ret_error)
{
        const char *name = c->e->name;

        log_debug("registry: request to '%s' failed: %s", c->e->host, curl_easy_strerror(code));

        switch (code) {
        case CURLE_ABORTED_BY_CALLBACK:
                return -ECANCELED;
        case CURLE_COULDNT_CONNECT:
                return fail(ret_error, -ECONNREFUSED,
                            "Registry '%s' is not reachable (Connection refused): check that it "
                            "runs and that the host and port are right",
                            name);
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return fail(ret_error, -EHOSTUNREACH,
                            "Registry host '%s' could not be resolved: check the name and the "
                            "DNS configuration",
                            c->e->host);
        case CURLE_OPERATION_TIMEDOUT:
                return fail(ret_error, -ETIMEDOUT,
                            "Registry '%s' timed out: check the network and try again", name);
        case CURLE_PEER_FAILED_VERIFICATION:
                if (c->ca_file)
                        return fail(ret_error, -EPROTO,
                                    "TLS certificate of registry '%s' is not trusted (%s): add "
                                    "the certificate of the CA that signed it to '%s' "
                                    "([Registry] CAFile)",
                                    name, curl_easy_strerror(code), c->ca_file);
                return fail(ret_error, -EPROTO,
                            "TLS certificate of registry '%s' is not trusted (%s): set "
                            "[Registry] CAFile to a PEM file with the certificate of the CA "
                            "that signed it",
                            name, curl_easy_strerror(code));
        case CURLE_SSL_CACERT_BADFILE:
                return fail(ret_error, -EPROTO,
                            "CA file '%s' ([Registry] CAFile) could not be loaded for registry "
                            "'%s': it must be a readable file of PEM certificates",
                            strempty(c->ca_file), name);
        case CURLE_SSL_CONNECT_ERROR:
                return fail(ret_error, -EPROTO,
                            "TLS connection to registry '%s' failed (%s): if it serves plain "
                            "HTTP, list it among the insecure registries",
                            name, curl_easy_strerror(code));
        case CURLE_WRITE_ERROR:
                if (s->overflow)
                        return fail(ret_error, -EBADMSG,
                                    "Registry '%s' sent more data than expected: the registry "
                                    "or the image is corrupt",
                                    name);
                if (s->write_error < 0)
                        return fail(ret_error, s->write_error,
                                    "Failed to store data from registry '%s': %s", name,
                                    strerror(-s->write_error));
                __attribute__((fallthrough));
        default:
                return fail(ret_error, -EIO, "Request to registry '%s' failed: %s", name,
                            curl_easy_strerror(code));
        }
}

static void configure(RegistryClient *c, const char *url, struct curl_slist *headers, Sink *s)
{
        CURL *curl = c->curl;

        curl_easy_reset(curl);
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
        /* Blob redirects may go to storage hosts; never downgrade a TLS registry. */
        curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR,
                         streq(c->e->scheme, "https") ? "https" : "http,https");
        curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(curl, CURLOPT_MAXREDIRS, REDIRECTS_MAX);
        /* Left at its default of 0, so curl drops Authorization on a redirect to another host
         * or port and the bearer token never reaches blob storage. */
        curl_easy_setopt(curl, CURLOPT_UNRESTRICTED_AUTH, 0L);
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_SEC);
        curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, STALL_TIMEOUT_SEC);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_USERAGENT, "banger");
        /* NOTE: the system's CAs stay trusted beside ca_file only because curl keeps its
         * built-in CA path (/etc/ssl/certs in Debian's libcurl 7.88) when CAINFO changes. */
        if (c->ca_file)
                curl_easy_setopt(curl, CURLOPT_CAINFO, c->ca_file);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, s);
        curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_transfer_info);
        curl_easy_setopt(curl, CURLOPT_XFERINFODATA, s);
}

/* Formats "Basic BASE64(user:password)". */
static int basic_authorization(const RegistryCredential *credential, char **ret)
{
        _cleanup_free_ char *plain = NULL;
        size_t n;
        char *out;
        int r;

        r = asprintf(&plain, "%s:%s", credential->username, credential->password);
        if (r < 0)
                return -ENOMEM;
        n = (size_t)r;
        out = malloc(6 + 4 * ((n + 2) / 3) + 1);
        if (!out) {
                explicit_bzero(plain, n);
                return -ENOMEM;
        }
        strcpy(out, "Basic ");
        EVP_EncodeBlock((unsigned char *)out + 6, (const unsigned char *)plain, (int)n);
        explicit_bzero(plain, n);
        *ret = out;
        return 0;
}

/* Sends one GET, or a POST of the form post_fields when that is not NULL, and returns the
 * HTTP status. authorization is the value of an Authorization header, or NULL for none. */
static int get_once(RegistryClient *c, const char *url, const char *accept,
                    const char *authorization, const char *post_fields, Sink *s, long *ret_status,
                    char **ret_error)
{
        _cleanup_(curl_slist_freep) struct curl_slist *headers = NULL;
        _cleanup_free_ char *accept_header = NULL, *auth_header = NULL;
        CURLcode code;
        int r;

        if (accept) {
                if (asprintf(&accept_header, "Accept: %s", accept) < 0)
                        return -ENOMEM;
                headers = curl_slist_append(headers, accept_header);
                if (!headers)
                        return -ENOMEM;
        }
        if (authorization) {
                if (asprintf(&auth_header, "Authorization: %s", authorization) < 0)
                        return -ENOMEM;
                struct curl_slist *l = curl_slist_append(headers, auth_header);
                explicit_bzero(auth_header, strlen(auth_header));
                if (!l)
                        return -ENOMEM;
                headers = l;
        }

        r = sink_reset(s);
        if (r < 0)
                return r;
        configure(c, url, headers, s);
        if (post_fields)
                curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, post_fields);
        code = curl_easy_perform(c->curl);
        if (code != CURLE_OK)
                return curl_failure(c, code, s, ret_error);

        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, ret_status);
        return 0;
}

/* Looks up the credential of the current endpoint once. A missing credentials file means
 * anonymous access; a file that cannot be read or parsed fails. */
static int load_credential(RegistryClient *c, char **ret_error)
{
        Endpoint *e = c->e;
        int r;

        if (e->credential_loaded)
                return 0;
        if (!c->credentials_file) {
                e->credential_loaded = true;
                return 0;
        }
        if (!c->docker_config_loaded) {
                r = docker_config_load(c->credentials_file, &c->docker_config, ret_error);
                if (r < 0 && r != -ENOENT)
                        return r;
                if (r == -ENOENT)
                        log_debug("registry: credentials file '%s' does not exist",
                                  c->credentials_file);
                c->docker_config_loaded = true;
        }
        if (c->docker_config) {
                r = docker_config_find_credential(c->docker_config, e->credential_key,
                                                  &e->credential, ret_error);
                if (r < 0)
                        return r;
                log_debug("registry: %s credential for '%s'", r > 0 ? "using a" : "no",
                          e->credential_key);
        }
        e->credential_loaded = true;
        return 0;
}

/* Writes a hint for messages about missing or rejected credentials. */
static int credential_hint(RegistryClient *c, char **ret)
{
        const Endpoint *e = c->e;
        int r;

        if (e->credential)
                r = asprintf(ret,
                             "the credentials of user '%s' from the %s were rejected: correct "
                             "the entry for '%s'",
                             e->credential->username, e->credential->source, e->credential_key);
        else if (c->credentials_file)
                r = asprintf(ret,
                             "add credentials for '%s' to the credentials file '%s' "
                             "([Registry] CredentialsFile)",
                             e->credential_key, c->credentials_file);
        else
                r = asprintf(ret,
                             "set [Registry] CredentialsFile to a file with credentials for '%s'",
                             e->credential_key);
        return r < 0 ? -ENOMEM : 0;
}

int registry_parse_bearer_challenge(const char *header, char **ret_realm, char **ret_service,
                                    char **ret_scope)
{
        _cleanup_free_ char *realm = NULL, *service = NULL, *scope = NULL;
        const char *p = header;

        p += strspn(p, " \t");
        if (strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t'))
                return -EINVAL;
        p += 6;

        while (*p) {
                const char *key, *value_start;
                size_t key_len;
                char *value, **target;

                p += strspn(p, " \t,");
                if (!*p)
                        break;
                key = p;
                key_len = strcspn(p, "= \t");
                p += key_len;
                p += strspn(p, " \t");
                if (*p != '=')
                        return -EINVAL;
                p++;
                p += strspn(p, " \t");

                if (*p == '"') {
                        size_t n = 0;

                        value = malloc(strlen(p));
                        if (!value)
                                return -ENOMEM;
                        for (p++; *p && *p != '"'; p++) {
                                if (*p == '\\' && p[1])
                                        p++;
                                value[n++] = *p;
                        }
                        value[n] = '\0';
                        if (*p != '"') {
                                free(value);
                                return -EINVAL;
                        }
                        p++;
                } else {
                        value_start = p;
                        p += strcspn(p, ", \t");
                        value = strndup(value_start, p - value_start);
                        if (!value)
                                return -ENOMEM;
                }

                if (key_len == 5 && strncasecmp(key, "realm", 5) == 0)
                        target = &realm;
                else if (key_len == 7 && strncasecmp(key, "service", 7) == 0)
                        target = &service;
                else if (key_len == 5 && strncasecmp(key, "scope", 5) == 0)
                        target = &scope;
                else
                        target = NULL;
                if (target) {
                        free(*target);
                        *target = value;
                } else {
                        free(value);
                }
        }

        if (isempty(realm))
                return -EINVAL;
        *ret_realm = TAKE_PTR(realm);
        *ret_service = TAKE_PTR(service);
        *ret_scope = TAKE_PTR(scope);
        return 0;
}

/* Formats the POST body that trades an identity token for an access token. */
static int identity_token_form(RegistryClient *c, const char *query, const char *identity_token,
                               char **ret)
{
        char *escaped = curl_easy_escape(c->curl, identity_token, 0);
        int r;

        if (!escaped)
                return -ENOMEM;
        r = asprintf(ret, "grant_type=refresh_token&client_id=banger&%s&refresh_token=%s", query,
                     escaped);
        explicit_bzero(escaped, strlen(escaped));
        curl_free(escaped);
        return r < 0 ? -ENOMEM : 0;
}

/* Fetches a bearer token from the realm of the challenge. An identity token in the endpoint's
 * credential is sent as an OAuth2 refresh token grant in a POST. A user name and password go
 * in a GET with Basic authentication, and without a credential the GET is anonymous. */
static int fetch_token(RegistryClient *c, const char *challenge, char **ret_error)
{
        _cleanup_free_ char *realm = NULL, *service = NULL, *scope = NULL, *url = NULL,
                            *default_scope = NULL, *hint = NULL, *query = NULL;
        char *service_escaped = NULL, *scope_escaped = NULL, *authorization = NULL,
             *post_fields = NULL;
        Sink s = { .curl = c->curl, .fd = -EBADF, .size_max = TOKEN_SIZE_MAX };
        Endpoint *e = c->e;
        json_object *j = NULL, *token;
        long status = 0;
        int r;

        r = registry_parse_bearer_challenge(challenge, &realm, &service, &scope);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return fail(ret_error, -EACCES,
                            "Registry '%s' requires an authentication scheme that banger does "
                            "not support ('%s'): only Basic and Bearer are implemented",
                            e->name, challenge);
        if (!strneq(realm, "https://", 8) && !strneq(realm, "http://", 7))
                return fail(ret_error, -EPROTO,
                            "Registry '%s' sent the token realm '%s', which is not an HTTP URL",
                            e->name, realm);
        if (!scope && asprintf(&default_scope, "repository:%s:pull", c->repository) < 0)
                return -ENOMEM;

        r = load_credential(c, ret_error);
        if (r < 0)
                return r;

        service_escaped = service ? curl_easy_escape(c->curl, service, 0) : NULL;
        scope_escaped = curl_easy_escape(c->curl, scope ? scope : default_scope, 0);
        if (!scope_escaped || (service && !service_escaped)) {
                curl_free(service_escaped);
                curl_free(scope_escaped);
                return -ENOMEM;
        }
        r = asprintf(&query, "%s%s%sscope=%s", service ? "service=" : "", strempty(service_escaped),
                     service ? "&" : "", scope_escaped);
        curl_free(service_escaped);
        curl_free(scope_escaped);
        if (r < 0)
                return -ENOMEM;

        if (e->credential && e->credential->identity_token) {
                /* The OAuth2 refresh token grant that docker uses for identity tokens. */
                r = identity_token_form(c, query, e->credential->identity_token, &post_fields);
                if (r < 0)
                        return r;
                url = strdup(realm);
                if (!url) {
                        free_secret(post_fields);
                        return -ENOMEM;
                }
        } else {
                if (asprintf(&url, "%s%c%s", realm, strchr(realm, '?') ? '&' : '?', query) < 0)
                        return -ENOMEM;
                if (e->credential) {
                        r = basic_authorization(e->credential, &authorization);
                        if (r < 0)
                                return r;
                }
        }

        log_debug("registry: fetching a token for '%s' from '%s'%s", c->repository, realm,
                  post_fields     ? " with an identity token"
                  : authorization ? " with credentials"
                                  : "");
        r = get_once(c, url, NULL, authorization, post_fields, &s, &status, ret_error);
        free_secret(authorization);
        free_secret(post_fields);
        if (r < 0)
                goto finish;
        if (status == 401 || status == 403) {
                r = credential_hint(c, &hint);
                if (r < 0)
                        goto finish;
                r = fail(ret_error, -EACCES,
                         "Token server '%s' of registry '%s' denied access to '%s' (HTTP %ld): "
                         "%s",
                         realm, e->name, c->repository, status, hint);
                goto finish;
        }
        if (status == 429 || status == 503) {
                r = fail(ret_error, -EAGAIN,
                         "Token server '%s' of registry '%s' is not issuing tokens now (HTTP "
                         "%ld): try again later",
                         realm, e->name, status);
                goto finish;
        }
        if (status != 200) {
                r = fail(ret_error, -EACCES,
                         "Token server '%s' of registry '%s' returned HTTP %ld: the repository "
                         "may be private",
                         realm, e->name, status);
                goto finish;
        }

        j = s.buf ? json_tokener_parse(s.buf) : NULL;
        if (!j ||
            (!json_object_object_get_ex(j, "token", &token) &&
             !json_object_object_get_ex(j, "access_token", &token)) ||
            !json_object_is_type(token, json_type_string) ||
            isempty(json_object_get_string(token))) {
                r = fail(ret_error, -EBADMSG, "Token server '%s' of registry '%s' sent no token",
                         realm, e->name);
                goto finish;
        }
        free_secret(e->token);
        e->token = strdup(json_object_get_string(token));
        r = e->token ? 0 : -ENOMEM;

finish:
        json_object_put(j);
        if (s.buf) {
                explicit_bzero(s.buf, s.size);
                free(s.buf);
        }
        return r;
}

int registry_parse_retry_after(const char *value, time_t now, unsigned *ret_seconds)
{
        time_t when;

        value += strspn(value, " \t");
        if (*value >= '0' && *value <= '9') {
                size_t n = strspn(value, "0123456789");
                unsigned long long v;

                if (value[n + strspn(value + n, " \t")] != '\0')
                        return -EINVAL;
                errno = 0;
                v = strtoull(value, NULL, 10);
                *ret_seconds = errno == ERANGE || v > RETRY_AFTER_SEC_MAX ? RETRY_AFTER_SEC_MAX
                                                                          : (unsigned)v;
                return 0;
        }

        when = curl_getdate(value, NULL);
        if (when < 0)
                return -EINVAL;
        if (when <= now)
                *ret_seconds = 0;
        else if (when - now > RETRY_AFTER_SEC_MAX)
                *ret_seconds = RETRY_AFTER_SEC_MAX;
        else
                *ret_seconds = (unsigned)(when - now);
        return 0;
}

/* Returns how long a 429 or 503 response requests to wait: its Retry-After, else a back-off
 * that doubles with each attempt. */
static unsigned retry_delay(CURL *curl, unsigned attempt)
{
        const char *retry_after = response_header(curl, "Retry-After");
        unsigned delay;

        if (!retry_after || registry_parse_retry_after(retry_after, time(NULL), &delay) < 0)
                delay = 1u << attempt;
        return MAX(delay, 1u);
}

static int rate_limit_failure(RegistryClient *c, long status, unsigned delay, char **ret_error)
{
        if (status == 429)
                return fail(ret_error, -EAGAIN,
                            "Registry '%s' is rate-limiting pulls (HTTP 429): try again after "
                            "%u s",
                            c->e->name, delay);
        return fail(ret_error, -EAGAIN,
                    "Registry '%s' is unavailable (HTTP 503): try again after %u s", c->e->name,
                    delay);
}

/* Returns the Authorization value for a request to the current endpoint, or NULL. */
static int endpoint_authorization(RegistryClient *c, char **ret)
{
        Endpoint *e = c->e;

        *ret = NULL;
        if (e->token)
                return asprintf(ret, "Bearer %s", e->token) < 0 ? -ENOMEM : 0;
        if (e->basic && e->credential)
                return basic_authorization(e->credential, ret);
        return 0;
}

/* Sends a GET to the current endpoint. It responds to one authentication challenge (Basic
 * with the endpoint's credential, or Bearer through the token realm). While the endpoint
 * returns 429 or 503 it waits and retries, for at most RETRY_ATTEMPTS requests and
 * RETRY_WAIT_MAX_SEC per wait. */
static int get(RegistryClient *c, const char *url, const char *accept, Sink *s, long *ret_status,
               char **ret_error)
{
        bool challenge_answered = false;
        long status = 0;
        int r;

        for (unsigned attempt = 0;; attempt++) {
                char *authorization = NULL;

                r = endpoint_authorization(c, &authorization);
                if (r < 0)
                        return r;
                r = get_once(c, url, accept, authorization, NULL, s, &status, ret_error);
                free_secret(authorization);
                if (r < 0)
                        return r;

                if (status == 401 && !challenge_answered) {
                        _cleanup_free_ char *challenge = NULL;
                        const char *h = response_header(c->curl, "WWW-Authenticate");

                        if (!h)
                                break;
                        challenge = strdup(h);
                        if (!challenge)
                                return -ENOMEM;
                        challenge_answered = true;

                        if (strncasecmp(challenge + strspn(challenge, " \t"), "Basic", 5) == 0) {
                                /* A Basic endpoint that already got the credential rejected
                                 * it. */
                                if (c->e->basic)
                                        break;
                                r = load_credential(c, ret_error);
                                if (r < 0)
                                        return r;
                                if (!c->e->credential)
                                        break;
                                c->e->basic = true;
                                continue;
                        }

                        r = fetch_token(c, challenge, ret_error);
                        if (r < 0)
                                return r;
                        continue;
                }

                if (status != 429 && status != 503)
                        break;
                unsigned delay = retry_delay(c->curl, attempt);
                if (delay > RETRY_WAIT_MAX_SEC || attempt + 1 >= RETRY_ATTEMPTS)
                        return rate_limit_failure(c, status, delay, ret_error);
                log_debug("registry: '%s' returned HTTP %ld, retrying in %u s", c->e->host, status,
                          delay);
                for (unsigned i = 0; i < delay; i++) {
                        if (s->opts && s->opts->cancel && *s->opts->cancel)
                                return -ECANCELED;
                        sleep(1);
                }
        }

        *ret_status = status;
        return 0;
}

static int http_failure(RegistryClient *c, long status, const char *what, const Sink *s,
                        char **ret_error)
{
        _cleanup_free_ char *hint = NULL;

        log_debug("registry: '%s' returned HTTP %ld for %s: %s", c->e->host, status, what,
                  s->error_body);

        if (status == 404)
                return fail(ret_error, -ENOENT,
                            "%s not found in registry '%s': check the repository name and the "
                            "tag",
                            what, c->e->name);
        if (status == 401 && (c->e->basic || !c->e->token)) {
                if (credential_hint(c, &hint) < 0)
                        return -ENOMEM;
                return fail(ret_error, -EACCES, "Registry '%s' denied access to %s (HTTP 401): %s",
                            c->e->name, what, hint);
        }
        if (status == 401 || status == 403)
                return fail(ret_error, -EACCES,
                            "Registry '%s' denied access to %s (HTTP %ld): the repository is "
                            "private or does not exist",
                            c->e->name, what, status);
        return fail(ret_error, -EIO, "Registry '%s' returned HTTP %ld for %s", c->e->name, status,
                    what);
}

static int digest_finish(EVP_MD_CTX *md, char **ret)
{
        unsigned char hash[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        char *s;

        if (EVP_DigestFinal_ex(md, hash, &n) != 1 || n != 32)
                return -EIO;
        s = malloc(7 + 64 + 1);
        if (!s)
                return -ENOMEM;
        strcpy(s, "sha256:");
        for (unsigned i = 0; i < n; i++)
                sprintf(s + 7 + 2 * i, "%02x", hash[i]);
        *ret = s;
        return 0;
}

static void evp_md_ctx_freep(EVP_MD_CTX **md)
{
        EVP_MD_CTX_free(*md);
}

static int sha256_buffer(const void *data, size_t size, char **ret)
{
        _cleanup_(evp_md_ctx_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();

        if (!md)
                return -ENOMEM;
        if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 || EVP_DigestUpdate(md, data, size) != 1)
                return -EIO;
        return digest_finish(md, ret);
}

int sha256_file(const char *path, char **ret_digest)
{
        _cleanup_(evp_md_ctx_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
        _cleanup_free_ char *buf = malloc(64 * 1024);
        _cleanup_close_ int fd = -EBADF;

        if (!md || !buf)
                return -ENOMEM;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
                return -EIO;
        for (;;) {
                ssize_t n = read(fd, buf, 64 * 1024);
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        break;
                if (EVP_DigestUpdate(md, buf, (size_t)n) != 1)
                        return -EIO;
        }
        return digest_finish(md, ret_digest);
}

static int get_manifest_from_endpoint(RegistryClient *c, const char *reference,
                                      const RegistryTransferOptions *opts, char **ret_data,
                                      size_t *ret_size, char **ret_content_type, char **ret_digest,
                                      char **ret_error)
{
        _cleanup_free_ char *url = NULL, *what = NULL, *digest = NULL, *content_type = NULL;
        Sink s = { .curl = c->curl, .fd = -EBADF, .size_max = OCI_MANIFEST_SIZE_MAX, .opts = opts };
        const char *h;
        long status = 0;
        int r;

        if (asprintf(&url, "%s://%s/v2/%s/manifests/%s", c->e->scheme, c->e->host, c->repository,
                     reference) < 0 ||
            asprintf(&what, "Image '%s/%s%s%s'", c->registry, c->repository,
                     strneq(reference, "sha256:", 7) ? "@" : ":", reference) < 0)
                return -ENOMEM;

        r = get(c, url, OCI_MANIFEST_ACCEPT, &s, &status, ret_error);
        if (r >= 0 && status != 200)
                r = http_failure(c, status, what, &s, ret_error);
        if (r >= 0 && !s.buf)
                r = fail(ret_error, -EBADMSG, "Registry '%s' sent an empty manifest for %s",
                         c->e->name, what);
        if (r < 0) {
                free(s.buf);
                return r;
        }

        h = response_header(c->curl, "Content-Type");
        if (h) {
                content_type = strdup(h);
                if (!content_type) {
                        free(s.buf);
                        return -ENOMEM;
                }
        }

        r = sha256_buffer(s.buf, s.size, &digest);
        if (r < 0) {
                free(s.buf);
                return r;
        }
        if (strneq(reference, "sha256:", 7) && !streq(digest, reference)) {
                free(s.buf);
                return fail(ret_error, -EBADMSG,
                            "The manifest of %s has the digest '%s': the registry sent "
                            "different content than requested",
                            what, digest);
        }

        *ret_data = s.buf;
        *ret_size = s.size;
        *ret_content_type = TAKE_PTR(content_type);
        *ret_digest = TAKE_PTR(digest);
        return 0;
}

/* Whether a failure at one endpoint lets the next one try: anything but a cancellation or
 * lack of memory. */
static bool try_next_endpoint(RegistryClient *c, size_t i, int r)
{
        return r != -ECANCELED && r != -ENOMEM && i + 1 < c->n_endpoints;
}

int registry_get_manifest(RegistryClient *c, const char *reference,
                          const RegistryTransferOptions *opts, char **ret_data, size_t *ret_size,
                          char **ret_content_type, char **ret_digest, char **ret_error)
{
        int r = -EINVAL;

        for (size_t i = 0; i < c->n_endpoints; i++) {
                char *error = NULL;

                c->e = &c->endpoints[i];
                r = get_manifest_from_endpoint(c, reference, opts, ret_data, ret_size,
                                               ret_content_type, ret_digest, &error);
                if (r >= 0) {
                        c->current = i;
                        return r;
                }
                if (!try_next_endpoint(c, i, r)) {
                        if (ret_error)
                                *ret_error = error;
                        else
                                free(error);
                        return r;
                }
                log_debug("registry: mirror '%s' failed, trying the next: %s", c->e->name,
                          strempty(error));
                free(error);
        }
        return r;
}

static int blob_path(const char *cache_dir, const char *digest, char **ret)
{
        return asprintf(ret, "%s/sha256/%s", cache_dir, digest + 7) < 0 ? -ENOMEM : 0;
}

/* Returns 1 when a cached blob exists and matches, 0 when it must be fetched. A cached blob
 * that no longer matches is removed. */
static int check_cached_blob(const char *path, const OciDescriptor *d)
{
        _cleanup_free_ char *digest = NULL;
        struct stat st;
        int r;

        if (stat(path, &st) < 0)
                return errno == ENOENT ? 0 : negative_errno();
        if (S_ISREG(st.st_mode) && (uint64_t)st.st_size == d->size) {
                r = sha256_file(path, &digest);
                if (r < 0)
                        return r;
                if (streq(digest, d->digest))
                        return 1;
        }
        log_debug("registry: cached blob '%s' does not match, fetching it again", path);
        if (unlink(path) < 0 && errno != ENOENT)
                return negative_errno();
        return 0;
}

/* Downloads a blob from the current endpoint into s and checks its size and digest. */
static int fetch_blob_from_endpoint(RegistryClient *c, const char *url, const char *what,
                                    const OciDescriptor *d, Sink *s, char **ret_error)
{
        _cleanup_free_ char *digest = NULL;
        long status = 0;
        int r;

        r = get(c, url, NULL, s, &status, ret_error);
        if (r < 0)
                return r;
        if (status != 200)
                return http_failure(c, status, what, s, ret_error);

        r = digest_finish(s->md, &digest);
        if (r < 0)
                return r;
        if (s->size != d->size || !streq(digest, d->digest))
                return fail(ret_error, -EBADMSG,
                            "%s failed verification: received %zu bytes with digest '%s', "
                            "expected %llu bytes: the registry's copy is corrupt or was "
                            "replaced",
                            what, s->size, digest, (unsigned long long)d->size);
        return 0;
}

int registry_fetch_blob(RegistryClient *c, const OciDescriptor *d, const char *cache_dir,
                        const RegistryTransferOptions *opts, char **ret_path, char **ret_error)
{
        _cleanup_free_ char *path = NULL, *dir = NULL, *what = NULL;
        _cleanup_unlink_ char *temp = NULL;
        _cleanup_(evp_md_ctx_freep) EVP_MD_CTX *md = NULL;
        _cleanup_close_ int fd = -EBADF;
        Sink s = { .curl = c->curl, .fd = -EBADF, .opts = opts };
        int r;

        if (!oci_digest_is_valid(d->digest))
                return -EINVAL;

        r = blob_path(cache_dir, d->digest, &path);
        if (r < 0)
                return r;
        r = check_cached_blob(path, d);
        if (r < 0)
                return fail(ret_error, r, "Failed to read cached blob '%s': %s", path,
                            strerror(-r));
        if (r > 0) {
                if (opts && opts->progress)
                        opts->progress(d->size, opts->userdata);
                *ret_path = TAKE_PTR(path);
                return 0;
        }

        if (asprintf(&dir, "%s/sha256", cache_dir) < 0)
                return -ENOMEM;
        r = mkdir_p(dir, 0755);
        if (r < 0)
                return fail(ret_error, r, "Failed to create the blob cache '%s': %s", dir,
                            strerror(-r));

        r = tempfn_random(path, &temp);
        if (r < 0)
                return r;
        fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0) {
                r = negative_errno();
                free(TAKE_PTR(temp));
                return fail(ret_error, r, "Failed to create a file in the blob cache '%s': %s", dir,
                            strerror(-r));
        }
        md = EVP_MD_CTX_new();
        if (!md)
                return -ENOMEM;

        s.fd = fd;
        s.md = md;
        s.expected_size = d->size;
        if (asprintf(&what, "Blob '%s' of '%s/%s'", d->digest, c->registry, c->repository) < 0)
                return -ENOMEM;

        /* Start at the endpoint that served the manifest; a failing mirror falls back to the
         * endpoints after it. */
        for (size_t i = c->current; i < c->n_endpoints; i++) {
                _cleanup_free_ char *url = NULL;
                char *error = NULL;

                c->e = &c->endpoints[i];
                if (asprintf(&url, "%s://%s/v2/%s/blobs/%s", c->e->scheme, c->e->host,
                             c->repository, d->digest) < 0)
                        return -ENOMEM;
                r = fetch_blob_from_endpoint(c, url, what, d, &s, &error);
                if (r >= 0)
                        break;
                if (!try_next_endpoint(c, i, r)) {
                        if (ret_error)
                                *ret_error = error;
                        else
                                free(error);
                        return r;
                }
                log_debug("registry: mirror '%s' failed, trying the next: %s", c->e->name,
                          strempty(error));
                free(error);
        }

        if (fsync(fd) < 0 || rename(temp, path) < 0) {
                r = negative_errno();
                return fail(ret_error, r, "Failed to store blob '%s' in the cache: %s", path,
                            strerror(-r));
        }
        free(TAKE_PTR(temp));
        (void)fsync_parent(path);

        *ret_path = TAKE_PTR(path);
        return 0;
}
