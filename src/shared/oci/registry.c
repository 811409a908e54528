#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <json.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "registry.h"

#define TOKEN_SIZE_MAX      (1024 * 1024)
#define ERROR_BODY_MAX      4096
#define RETRY_ATTEMPTS      3
#define RETRY_AFTER_MAX_SEC 30
#define CONNECT_TIMEOUT_SEC 30L
#define STALL_TIMEOUT_SEC   60L /* abort a transfer that moves no byte for this long */
#define REDIRECTS_MAX       5L

#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif
#ifndef MAX
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#endif

struct RegistryClient {
        CURL *curl;
        char *registry;   /* as the user named it, for messages */
        char *host;       /* host[:port] that serves the API */
        char *repository; /* "library/busybox" */
        char *scheme;     /* "https" or "http" */
        char *token;      /* bearer token once the registry asked for one */
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

RegistryClient *registry_client_free(RegistryClient *c)
{
        if (!c)
                return NULL;
        if (c->curl)
                curl_easy_cleanup(c->curl);
        free(c->registry);
        free(c->host);
        free(c->repository);
        free(c->scheme);
        if (c->token) {
                explicit_bzero(c->token, strlen(c->token));
                free(c->token);
        }
        free(c);
        return NULL;
}

int registry_client_new(const OciReference *ref, bool plain_http, RegistryClient **ret)
{
        _cleanup_(registry_client_freep) RegistryClient *c = calloc(1, sizeof(RegistryClient));

        if (!c)
                return -ENOMEM;
        c->curl = curl_easy_init();
        c->registry = strdup(ref->registry);
        c->host = strdup(oci_reference_api_host(ref));
        c->repository = strdup(ref->repository);
        c->scheme = strdup(plain_http ? "http" : "https");
        if (!c->curl || !c->registry || !c->host || !c->repository || !c->scheme)
                return -ENOMEM;
        *ret = TAKE_PTR(c);
        return 0;
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

/* Turns a transport failure into a message that names the registry. */
static int curl_failure(RegistryClient *c, CURLcode code, const Sink *s, char **ret_error)
{
        log_debug("registry: request to '%s' failed: %s", c->host, curl_easy_strerror(code));

        switch (code) {
        case CURLE_ABORTED_BY_CALLBACK:
                return -ECANCELED;
        case CURLE_COULDNT_CONNECT:
                return fail(ret_error, -ECONNREFUSED,
                            "Registry '%s' is not reachable (Connection refused): check that it "
                            "runs and that the host and port are right",
                            c->registry);
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return fail(ret_error, -EHOSTUNREACH,
                            "Registry host '%s' could not be resolved: check the name and the "
                            "DNS configuration",
                            c->host);
        case CURLE_OPERATION_TIMEDOUT:
                return fail(ret_error, -ETIMEDOUT,
                            "Registry '%s' timed out: check the network and try again",
                            c->registry);
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
                return fail(ret_error, -EPROTO,
                            "TLS connection to registry '%s' failed (%s): if it serves plain "
                            "HTTP, list it among the insecure registries",
                            c->registry, curl_easy_strerror(code));
        case CURLE_WRITE_ERROR:
                if (s->overflow)
                        return fail(ret_error, -EBADMSG,
                                    "Registry '%s' sent more data than expected: the registry "
                                    "or the image is corrupt",
                                    c->registry);
                if (s->write_error < 0)
                        return fail(ret_error, s->write_error,
                                    "Failed to store data from registry '%s': %s", c->registry,
                                    strerror(-s->write_error));
                __attribute__((fallthrough));
        default:
                return fail(ret_error, -EIO, "Request to registry '%s' failed: %s", c->registry,
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
                         streq(c->scheme, "https") ? "https" : "http,https");
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
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, s);
        curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_transfer_info);
        curl_easy_setopt(curl, CURLOPT_XFERINFODATA, s);
}

/* Sends one GET and returns the HTTP status. */
static int get_once(RegistryClient *c, const char *url, const char *accept, bool with_token,
                    Sink *s, long *ret_status, char **ret_error)
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
        if (with_token && c->token) {
                if (asprintf(&auth_header, "Authorization: Bearer %s", c->token) < 0)
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
        code = curl_easy_perform(c->curl);
        if (code != CURLE_OK)
                return curl_failure(c, code, s, ret_error);

        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, ret_status);
        return 0;
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

/* Fetches an anonymous bearer token from the realm of the challenge. */
static int fetch_token(RegistryClient *c, const char *challenge, char **ret_error)
{
        _cleanup_free_ char *realm = NULL, *service = NULL, *scope = NULL, *url = NULL,
                            *default_scope = NULL;
        char *service_escaped = NULL, *scope_escaped = NULL;
        Sink s = { .curl = c->curl, .fd = -EBADF, .size_max = TOKEN_SIZE_MAX };
        json_object *j = NULL, *token;
        long status = 0;
        int r;

        r = registry_parse_bearer_challenge(challenge, &realm, &service, &scope);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return fail(ret_error, -EACCES,
                            "Registry '%s' requires authentication ('%s'): banger pulls "
                            "anonymously, so only public images can be pulled from it",
                            c->registry, challenge);
        if (!strneq(realm, "https://", 8) && !strneq(realm, "http://", 7))
                return fail(ret_error, -EPROTO,
                            "Registry '%s' sent the token realm '%s', which is not an HTTP URL",
                            c->registry, realm);
        if (!scope && asprintf(&default_scope, "repository:%s:pull", c->repository) < 0)
                return -ENOMEM;

        service_escaped = service ? curl_easy_escape(c->curl, service, 0) : NULL;
        scope_escaped = curl_easy_escape(c->curl, scope ? scope : default_scope, 0);
        if (!scope_escaped || (service && !service_escaped)) {
                curl_free(service_escaped);
                curl_free(scope_escaped);
                return -ENOMEM;
        }
        r = asprintf(&url, "%s%c%s%s%sscope=%s", realm, strchr(realm, '?') ? '&' : '?',
                     service ? "service=" : "", strempty(service_escaped), service ? "&" : "",
                     scope_escaped);
        curl_free(service_escaped);
        curl_free(scope_escaped);
        if (r < 0)
                return -ENOMEM;

        log_debug("registry: fetching a token for '%s' from '%s'", c->repository, realm);
        r = get_once(c, url, NULL, false, &s, &status, ret_error);
        if (r < 0)
                goto finish;
        if (status != 200) {
                r = fail(ret_error, -EACCES,
                         "Token server '%s' of registry '%s' returned HTTP %ld: the repository "
                         "may be private",
                         realm, c->registry, status);
                goto finish;
        }

        j = s.buf ? json_tokener_parse(s.buf) : NULL;
        if (!j ||
            (!json_object_object_get_ex(j, "token", &token) &&
             !json_object_object_get_ex(j, "access_token", &token)) ||
            !json_object_is_type(token, json_type_string) ||
            isempty(json_object_get_string(token))) {
                r = fail(ret_error, -EBADMSG, "Token server '%s' of registry '%s' sent no token",
                         realm, c->registry);
                goto finish;
        }
        free(c->token);
        c->token = strdup(json_object_get_string(token));
        r = c->token ? 0 : -ENOMEM;

finish:
        json_object_put(j);
        if (s.buf) {
                explicit_bzero(s.buf, s.size);
                free(s.buf);
        }
        return r;
}

/* Returns the delay in seconds that a 429 or 503 response requests, 0 for no retry.
 * NOTE: no test reaches the retry path, because docker-registry sends neither status. */
static unsigned retry_delay(CURL *curl, long status, unsigned attempt)
{
        const char *retry_after;
        unsigned delay = 1u << attempt;

        if (status != 429 && status != 503)
                return 0;
        retry_after = response_header(curl, "Retry-After");
        if (retry_after && strspn(retry_after, "0123456789") == strlen(retry_after) && *retry_after)
                delay = (unsigned)MIN(strtoul(retry_after, NULL, 10),
                                      (unsigned long)RETRY_AFTER_MAX_SEC);
        return MAX(delay, 1u);
}

/* Sends a GET, handling one Bearer challenge and retrying 429 and 503 responses. */
static int get(RegistryClient *c, const char *url, const char *accept, Sink *s, long *ret_status,
               char **ret_error)
{
        bool token_fetched = false;
        long status = 0;
        int r;

        for (unsigned attempt = 0;; attempt++) {
                r = get_once(c, url, accept, true, s, &status, ret_error);
                if (r < 0)
                        return r;

                if (status == 401 && !token_fetched) {
                        _cleanup_free_ char *challenge = NULL;
                        const char *h = response_header(c->curl, "WWW-Authenticate");

                        if (!h)
                                break;
                        challenge = strdup(h);
                        if (!challenge)
                                return -ENOMEM;
                        r = fetch_token(c, challenge, ret_error);
                        if (r < 0)
                                return r;
                        token_fetched = true;
                        continue;
                }

                unsigned delay = retry_delay(c->curl, status, attempt);
                if (delay == 0 || attempt + 1 >= RETRY_ATTEMPTS)
                        break;
                log_debug("registry: '%s' returned HTTP %ld, retrying in %u s", c->host, status,
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
        log_debug("registry: '%s' returned HTTP %ld for %s: %s", c->host, status, what,
                  s->error_body);

        if (status == 404)
                return fail(ret_error, -ENOENT,
                            "%s not found in registry '%s': check the repository name and the "
                            "tag",
                            what, c->registry);
        if (status == 401 || status == 403)
                return fail(ret_error, -EACCES,
                            "Registry '%s' denied access to %s (HTTP %ld): the repository is "
                            "private or does not exist",
                            c->registry, what, status);
        return fail(ret_error, -EIO, "Registry '%s' returned HTTP %ld for %s", c->registry, status,
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

int registry_get_manifest(RegistryClient *c, const char *reference,
                          const RegistryTransferOptions *opts, char **ret_data, size_t *ret_size,
                          char **ret_content_type, char **ret_digest, char **ret_error)
{
        _cleanup_free_ char *url = NULL, *what = NULL, *digest = NULL, *content_type = NULL;
        Sink s = { .curl = c->curl, .fd = -EBADF, .size_max = OCI_MANIFEST_SIZE_MAX, .opts = opts };
        const char *h;
        long status = 0;
        int r;

        if (asprintf(&url, "%s://%s/v2/%s/manifests/%s", c->scheme, c->host, c->repository,
                     reference) < 0 ||
            asprintf(&what, "Image '%s/%s%s%s'", c->registry, c->repository,
                     strneq(reference, "sha256:", 7) ? "@" : ":", reference) < 0)
                return -ENOMEM;

        r = get(c, url, OCI_MANIFEST_ACCEPT, &s, &status, ret_error);
        if (r >= 0 && status != 200)
                r = http_failure(c, status, what, &s, ret_error);
        if (r >= 0 && !s.buf)
                r = fail(ret_error, -EBADMSG, "Registry '%s' sent an empty manifest for %s",
                         c->registry, what);
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

int registry_fetch_blob(RegistryClient *c, const OciDescriptor *d, const char *cache_dir,
                        const RegistryTransferOptions *opts, char **ret_path, char **ret_error)
{
        _cleanup_free_ char *path = NULL, *dir = NULL, *url = NULL, *what = NULL, *digest = NULL;
        _cleanup_unlink_ char *temp = NULL;
        _cleanup_(evp_md_ctx_freep) EVP_MD_CTX *md = NULL;
        _cleanup_close_ int fd = -EBADF;
        Sink s = { .curl = c->curl, .fd = -EBADF, .opts = opts };
        long status = 0;
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
        if (asprintf(&url, "%s://%s/v2/%s/blobs/%s", c->scheme, c->host, c->repository, d->digest) <
                    0 ||
            asprintf(&what, "Blob '%s' of '%s/%s'", d->digest, c->registry, c->repository) < 0)
                return -ENOMEM;

        r = get(c, url, NULL, &s, &status, ret_error);
        if (r < 0)
                return r;
        if (status != 200)
                return http_failure(c, status, what, &s, ret_error);

        r = digest_finish(md, &digest);
        if (r < 0)
                return r;
        if (s.size != d->size || !streq(digest, d->digest))
                return fail(ret_error, -EBADMSG,
                            "%s failed verification: received %zu bytes with digest '%s', "
                            "expected %llu bytes: the registry's copy is corrupt or was "
                            "replaced",
                            what, s.size, digest, (unsigned long long)d->size);

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
