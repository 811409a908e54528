#include <archive_entry.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog.h"
#include "fileio.h"
#include "kconfig.h"
#include "kernel-util.h"
#include "log.h"
#include "macro.h"
#include "name.h"

/* The index is a short list of entries, so anything larger is not a catalog. */
#define INDEX_MAX_SIZE (UINT64_C(4) << 20)
/* Debian's 6.1 cloud kernel has a 51 MiB vmlinux and 91 MiB of modules before compression. The
 * limit bounds what a hostile server can make banger store before the digest check. */
#define ARTIFACT_MAX_SIZE (UINT64_C(2) << 30)
#define CONFIG_MAX_SIZE   (UINT64_C(4) << 20)

#define CONNECT_TIMEOUT_SEC 30L
#define STALL_TIMEOUT_SEC   60L
#define REDIRECTS_MAX       5L

static const char *const artifact_type_table[_CATALOG_ARTIFACT_MAX] = {
        [CATALOG_ARTIFACT_VMLINUX] = "vmlinux",
        [CATALOG_ARTIFACT_MODULES] = "modules",
        [CATALOG_ARTIFACT_CONFIG] = "config",
};

const char *catalog_artifact_type_to_string(CatalogArtifactType t)
{
        if (t < 0 || t >= _CATALOG_ARTIFACT_MAX)
                return NULL;
        return artifact_type_table[t];
}

static void json_object_putp(json_object **o)
{
        if (*o)
                json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_object_putp)

static void curl_url_cleanupp(CURLU **u)
{
        if (*u)
                curl_url_cleanup(*u);
}

static void curl_easy_cleanupp(CURL **c)
{
        if (*c)
                curl_easy_cleanup(*c);
}

static void curl_freep(char **s)
{
        if (*s)
                curl_free(*s);
}

static void catalog_kernel_done(CatalogKernel *k)
{
        free(k->name);
        free(k->version);
        free(k->arch);
        for (size_t i = 0; i < _CATALOG_ARTIFACT_MAX; i++) {
                free(k->artifacts[i].url);
                free(k->artifacts[i].sha256);
        }
}

Catalog *catalog_free(Catalog *c)
{
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_kernels; i++)
                catalog_kernel_done(&c->kernels[i]);
        free(c->kernels);
        free(c);
        return NULL;
}

int catalog_resolve_url(const char *base_url, const char *reference, char **ret)
{
        _cleanup_(curl_url_cleanupp) CURLU *u = curl_url();
        _cleanup_(curl_freep) char *scheme = NULL, *url = NULL;
        char *copy;

        if (!u)
                return -ENOMEM;
        if (!base_url || !reference || isempty(reference))
                return -EINVAL;

        /* Setting a relative URL on a handle that contains base_url resolves it as RFC 3986
         * section 5 describes. */
        if (curl_url_set(u, CURLUPART_URL, base_url, 0) != CURLUE_OK)
                return -EINVAL;
        if (curl_url_set(u, CURLUPART_URL, reference, 0) != CURLUE_OK)
                return -EINVAL;
        if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK)
                return -EINVAL;
        if (!streq(scheme, "http") && !streq(scheme, "https"))
                return -EPROTONOSUPPORT;
        if (curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK)
                return -EINVAL;

        copy = strdup(url);
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

/* Parsing */

typedef struct Parser {
        const char *base_url;
        size_t index; /* entry being parsed, for messages */
        char **error;
} Parser;

static int parse_fail(Parser *p, const char *format, ...) __attribute__((format(printf, 2, 3)));

static int parse_fail(Parser *p, const char *format, ...)
{
        _cleanup_free_ char *detail = NULL;
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(&detail, format, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        return error_set(p->error, -EBADMSG, "Kernel catalog '%s' is invalid: entry %zu %s",
                         p->base_url, p->index, detail);
}

/* Reads a string member. Returns 0 with *ret NULL when the member is absent. Strings with an
 * embedded NUL are rejected, because they would be cut short in C. */
static int parse_string(Parser *p, json_object *o, const char *key, const char *where, char **ret)
{
        json_object *v;
        const char *s;
        char *copy;

        if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) {
                *ret = NULL;
                return 0;
        }
        if (!json_object_is_type(v, json_type_string))
                return parse_fail(p, "has a '%s%s' that is not a string", where, key);
        s = json_object_get_string(v);
        if (strlen(s) != (size_t)json_object_get_string_len(v))
                return parse_fail(p, "has a '%s%s' containing a NUL character", where, key);

        copy = strdup(s);
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

static int parse_required_string(Parser *p, json_object *o, const char *key, const char *where,
                                 char **ret)
{
        int r;

        r = parse_string(p, o, key, where, ret);
        if (r < 0)
                return r;
        if (isempty(*ret)) {
                free(*ret);
                *ret = NULL;
                return parse_fail(p, "has no '%s%s'", where, key);
        }
        return 0;
}

/* Checks a sha256 of 64 hex digits and lower-cases it in place. */
static bool sha256_hex_normalize(char *s)
{
        size_t n = strlen(s);

        if (n != 64)
                return false;
        for (size_t i = 0; i < n; i++) {
                if (s[i] >= 'A' && s[i] <= 'F')
                        s[i] = (char)(s[i] - 'A' + 'a');
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        }
        return true;
}

static int parse_artifact(Parser *p, json_object *artifacts, CatalogArtifactType type,
                          CatalogArtifact *ret)
{
        const char *key = catalog_artifact_type_to_string(type);
        _cleanup_free_ char *where = NULL, *url = NULL, *sha256 = NULL;
        json_object *o;
        int r;

        if (!json_object_object_get_ex(artifacts, key, &o) ||
            json_object_is_type(o, json_type_null)) {
                if (type == CATALOG_ARTIFACT_VMLINUX)
                        return parse_fail(p, "has no 'artifacts.vmlinux'");
                return 0;
        }
        if (!json_object_is_type(o, json_type_object))
                return parse_fail(p, "has an 'artifacts.%s' that is not an object", key);
        if (asprintf(&where, "artifacts.%s.", key) < 0)
                return -ENOMEM;

        r = parse_required_string(p, o, "url", where, &url);
        if (r < 0)
                return r;
        r = parse_required_string(p, o, "sha256", where, &sha256);
        if (r < 0)
                return r;
        if (!sha256_hex_normalize(sha256))
                return parse_fail(p, "has an invalid '%ssha256' '%s': expected 64 hex digits",
                                  where, sha256);

        ret->url = NULL;
        r = catalog_resolve_url(p->base_url, url, &ret->url);
        if (r == -EPROTONOSUPPORT)
                return parse_fail(p, "has an '%surl' '%s' that is not http or https", where, url);
        if (r < 0)
                return parse_fail(p, "has an invalid '%surl' '%s'", where, url);
        ret->sha256 = TAKE_PTR(sha256);
        return 0;
}

static int parse_kernel(Parser *p, json_object *o, CatalogKernel *k)
{
        json_object *artifacts;
        int r;

        if (!json_object_is_type(o, json_type_object))
                return parse_fail(p, "is not an object");

        r = parse_required_string(p, o, "name", "", &k->name);
        if (r < 0)
                return r;
        if (kernel_name_check(k->name, NULL) < 0)
                return parse_fail(p,
                                  "has an invalid 'name' '%s': use 1 to %d characters of "
                                  "[A-Za-z0-9._+-]",
                                  k->name, KERNEL_NAME_MAX);
        r = parse_required_string(p, o, "version", "", &k->version);
        if (r < 0)
                return r;
        /* The version names the lib/modules directory, so it must be one path component. */
        if (kernel_name_check(k->version, NULL) < 0)
                return parse_fail(p,
                                  "has an invalid 'version' '%s': use the kernel release "
                                  "as 'uname -r' prints it",
                                  k->version);
        r = parse_required_string(p, o, "arch", "", &k->arch);
        if (r < 0)
                return r;

        if (!json_object_object_get_ex(o, "artifacts", &artifacts))
                return parse_fail(p, "has no 'artifacts'");
        if (!json_object_is_type(artifacts, json_type_object))
                return parse_fail(p, "has an 'artifacts' that is not an object");
        for (CatalogArtifactType t = 0; t < _CATALOG_ARTIFACT_MAX; t++) {
                r = parse_artifact(p, artifacts, t, &k->artifacts[t]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static json_object *parse_json(const char *json, size_t size)
{
        json_tokener *tok;
        json_object *o;

        if (size > INT32_MAX)
                return NULL;
        tok = json_tokener_new();
        if (!tok)
                return NULL;
        o = json_tokener_parse_ex(tok, json, (int)size);
        /* Trailing bytes other than white space make the document invalid. */
        if (o && json_tokener_get_error(tok) == json_tokener_success) {
                for (size_t i = json_tokener_get_parse_end(tok); i < size; i++)
                        if (!strchr(" \t\r\n", json[i])) {
                                json_object_put(o);
                                o = NULL;
                                break;
                        }
        } else if (o) {
                json_object_put(o);
                o = NULL;
        }
        json_tokener_free(tok);
        return o;
}

int catalog_parse(const char *json, size_t size, const char *base_url, Catalog **ret,
                  char **ret_error)
{
        _cleanup_(catalog_freep) Catalog *c = calloc(1, sizeof(Catalog));
        _cleanup_json_ json_object *root = NULL;
        Parser p = { .base_url = base_url, .error = ret_error };
        json_object *list;
        size_t n;
        int r;

        if (!c)
                return -ENOMEM;
        if (!json || !base_url)
                return -EINVAL;

        root = parse_json(json, size);
        if (!root)
                return error_set(ret_error, -EBADMSG,
                                 "Kernel catalog '%s' is not valid JSON: check the URL and the "
                                 "server",
                                 base_url);
        if (!json_object_is_type(root, json_type_object) ||
            !json_object_object_get_ex(root, "kernels", &list) ||
            !json_object_is_type(list, json_type_array))
                return error_set(ret_error, -EBADMSG,
                                 "Kernel catalog '%s' is invalid: expected an object with a "
                                 "'kernels' array",
                                 base_url);

        n = json_object_array_length(list);
        c->kernels = calloc(n ?: 1, sizeof(CatalogKernel));
        if (!c->kernels)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                CatalogKernel *k = &c->kernels[i];

                p.index = i;
                c->n_kernels = i + 1;
                r = parse_kernel(&p, json_object_array_get_idx(list, i), k);
                if (r < 0)
                        return r;
                for (size_t j = 0; j < i; j++)
                        if (streq(c->kernels[j].name, k->name) &&
                            streq(c->kernels[j].arch, k->arch))
                                return parse_fail(&p,
                                                  "repeats name '%s' for arch '%s' of entry "
                                                  "%zu",
                                                  k->name, k->arch, j);
        }

        *ret = TAKE_PTR(c);
        return 0;
}

int catalog_find(const Catalog *c, const char *name, const char *arch, const CatalogKernel **ret)
{
        bool name_seen = false;

        for (size_t i = 0; i < c->n_kernels; i++) {
                if (!streq(c->kernels[i].name, name))
                        continue;
                name_seen = true;
                if (streq(c->kernels[i].arch, arch)) {
                        *ret = &c->kernels[i];
                        return 0;
                }
        }
        return name_seen ? -ENXIO : -ENOENT;
}

/* Downloading */

typedef struct Download {
        const CatalogPullOptions *opts;
        const char *step;
        int fd;
        EVP_MD_CTX *md;
        uint64_t size;
        uint64_t max_size;
        int write_error;
} Download;

static size_t on_body(char *data, size_t size, size_t n, void *userdata)
{
        Download *d = userdata;
        size_t length = size * n;
        int r;

        if (d->size + length > d->max_size) {
                d->write_error = -EFBIG;
                return 0;
        }
        if (EVP_DigestUpdate(d->md, data, length) != 1) {
                d->write_error = -EIO;
                return 0;
        }
        r = write_full(d->fd, data, length);
        if (r < 0) {
                d->write_error = r;
                return 0;
        }
        d->size += length;
        return length;
}

static int on_transfer_info(void *userdata, curl_off_t total, curl_off_t done, curl_off_t ut,
                            curl_off_t ud)
{
        Download *d = userdata;

        (void)ut;
        (void)ud;
        if (d->opts->cancel && *d->opts->cancel)
                return 1;
        if (d->opts->progress)
                d->opts->progress(d->step, (uint64_t)done, total > 0 ? (uint64_t)total : 0,
                                  d->opts->userdata);
        return 0;
}

static int download_failure(const char *url, CURLcode code, const Download *d, char **ret_error)
{
        log_debug("catalog: GET '%s' failed: %s", url, curl_easy_strerror(code));

        switch (code) {
        case CURLE_ABORTED_BY_CALLBACK:
                return error_set(ret_error, -ECANCELED, "Download of '%s' was cancelled", url);
        case CURLE_COULDNT_CONNECT:
                return error_set(ret_error, -ECONNREFUSED,
                                 "Kernel catalog server of '%s' is not reachable (Connection "
                                 "refused): check that it runs and that [Kernel] CatalogURL is "
                                 "right",
                                 url);
        case CURLE_COULDNT_RESOLVE_HOST:
                return error_set(ret_error, -EHOSTUNREACH,
                                 "Host of '%s' could not be resolved: check the name and the DNS "
                                 "configuration",
                                 url);
        case CURLE_OPERATION_TIMEDOUT:
                return error_set(ret_error, -ETIMEDOUT,
                                 "Download of '%s' timed out: check the network and try again",
                                 url);
        case CURLE_WRITE_ERROR:
                if (d->write_error == -EFBIG)
                        return error_set(ret_error, -EFBIG,
                                         "'%s' is larger than %" PRIu64 " MiB: the catalog "
                                         "entry is wrong",
                                         url, d->max_size >> 20);
                if (d->write_error < 0)
                        return error_set(ret_error, d->write_error,
                                         "Failed to store the download of '%s': %s", url,
                                         strerror(-d->write_error));
                __attribute__((fallthrough));
        default:
                return error_set(ret_error, -EIO, "Download of '%s' failed: %s", url,
                                 curl_easy_strerror(code));
        }
}

/* GETs url into fd and stores the lower-case hex sha256 of the body in hex (65 bytes). */
static int download(const CatalogPullOptions *opts, const char *step, const char *url, int fd,
                    uint64_t max_size, char hex[static 65], char **ret_error)
{
        _cleanup_(curl_easy_cleanupp) CURL *curl = curl_easy_init();
        Download d = { .opts = opts, .step = step, .fd = fd, .max_size = max_size };
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned md_size = 0;
        CURLcode code;
        long status = 0;
        int r;

        if (!curl)
                return -ENOMEM;
        d.md = EVP_MD_CTX_new();
        if (!d.md)
                return -ENOMEM;
        if (EVP_DigestInit_ex(d.md, EVP_sha256(), NULL) != 1) {
                EVP_MD_CTX_free(d.md);
                return -EIO;
        }

        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
        /* Never follow a redirect from https down to http. */
        curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR,
                         strneq(url, "https:", 6) ? "https" : "http,https");
        curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(curl, CURLOPT_MAXREDIRS, REDIRECTS_MAX);
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_SEC);
        curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, STALL_TIMEOUT_SEC);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_USERAGENT, "banger");
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &d);
        curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_transfer_info);
        curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &d);

        code = curl_easy_perform(curl);
        if (code == CURLE_OK && EVP_DigestFinal_ex(d.md, md, &md_size) != 1)
                code = CURLE_WRITE_ERROR;
        EVP_MD_CTX_free(d.md);
        if (code != CURLE_OK)
                return download_failure(url, code, &d, ret_error);

        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        if (status != 200)
                return error_set(ret_error, status == 404 ? -ENOENT : -EIO,
                                 "Download of '%s' failed with HTTP status %ld: check the "
                                 "catalog and the server",
                                 url, status);
        if (fsync(fd) < 0 && errno != EINVAL)
                return negative_errno();

        for (unsigned i = 0; i < md_size && i < 32; i++)
                snprintf(hex + i * 2, 3, "%02x", md[i]);
        r = md_size == 32 ? 0 : -EIO;
        return r;
}

/* Pulling */

typedef struct Pull {
        const CatalogPullOptions *opts;
        char *staging; /* OUTPUT_DIR/.#catalog.XXXXXX */
        int staging_fd;
        char **error;
} Pull;

static int pull_fetch_index(Pull *pl, Catalog **ret)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *text = NULL;
        char hex[65];
        struct stat st;
        ssize_t n;
        int r;

        fd = openat(pl->staging_fd, "index.json", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
                return negative_errno();
        r = download(pl->opts, "download", pl->opts->catalog_url, fd, INDEX_MAX_SIZE, hex,
                     pl->error);
        if (r < 0)
                return r;

        if (fstat(fd, &st) < 0)
                return negative_errno();
        text = malloc((size_t)st.st_size + 1);
        if (!text)
                return -ENOMEM;
        n = pread(fd, text, (size_t)st.st_size, 0);
        if (n != st.st_size)
                return n < 0 ? negative_errno() : -EIO;
        text[n] = '\0';

        return catalog_parse(text, (size_t)n, pl->opts->catalog_url, ret, pl->error);
}

/* Downloads one artifact into the staging directory and returns an fd of the file. */
static int pull_artifact(Pull *pl, const CatalogKernel *k, CatalogArtifactType type,
                         uint64_t max_size, int *ret_fd)
{
        const CatalogArtifact *a = &k->artifacts[type];
        const char *name = catalog_artifact_type_to_string(type);
        _cleanup_close_ int fd = -EBADF;
        char hex[65];
        int r;

        fd = openat(pl->staging_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
                return negative_errno();
        r = download(pl->opts, "download", a->url, fd, max_size, hex, pl->error);
        if (r < 0)
                return r;
        if (!streq(hex, a->sha256))
                return error_set(pl->error, -EBADMSG,
                                 "Artifact '%s' of kernel '%s' has sha256 %s, but the catalog "
                                 "lists %s: the download is corrupt or the catalog is out of "
                                 "date",
                                 a->url, k->name, hex, a->sha256);
        log_debug("catalog: '%s' matches sha256 %s", a->url, hex);

        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int pull_check_config(Pull *pl, const CatalogKernel *k)
{
        _cleanup_close_ int fd = -EBADF;
        MappedFile m;
        int r;

        r = pull_artifact(pl, k, CATALOG_ARTIFACT_CONFIG, CONFIG_MAX_SIZE, &fd);
        if (r < 0)
                return r;
        r = mapped_file_open(fd, &m);
        if (r < 0)
                return r;
        r = kconfig_check_guest(m.data, m.size, k->artifacts[CATALOG_ARTIFACT_CONFIG].url,
                                pl->error);
        mapped_file_close(&m);
        return r;
}

/* Checks that an archive path has no empty, "." or ".." component. */
static bool path_is_safe(const char *path)
{
        const char *p = path;

        if (*p == '/' || *p == '\0')
                return false;
        while (*p) {
                size_t n = strcspn(p, "/");

                if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
                        return false;
                p += n;
                if (*p == '/')
                        p++;
        }
        return true;
}

/* Creates the directories of path below dir_fd, like mkdir -p on its dirname. */
static int mkdir_parents_at(int dir_fd, const char *path)
{
        _cleanup_free_ char *copy = strdup(path);

        if (!copy)
                return -ENOMEM;
        for (char *s = strchr(copy, '/'); s; s = strchr(s + 1, '/')) {
                *s = '\0';
                if (mkdirat(dir_fd, copy, 0755) < 0 && errno != EEXIST)
                        return negative_errno();
                *s = '/';
        }
        return 0;
}

static int entry_extract(struct archive *a, int dir_fd, const char *path)
{
        _cleanup_close_ int fd = -EBADF;
        const void *buffer;
        size_t size;
        int64_t offset;
        int r;

        r = mkdir_parents_at(dir_fd, path);
        if (r < 0)
                return r;
        /* Directories are created here and never come from the archive as symlinks, so
         * O_NOFOLLOW on the last component is all the protection the walk needs. */
        fd = openat(dir_fd, path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0)
                return negative_errno();

        while ((r = archive_read_data_block(a, &buffer, &size, &offset)) == ARCHIVE_OK) {
                if (pwrite(fd, buffer, size, offset) != (ssize_t)size)
                        return negative_errno();
        }
        return r == ARCHIVE_EOF ? 0 : -EBADMSG;
}

/* Unpacks the regular files under lib/modules/VERSION/ of the modules tarball into the
 * staging directory and returns an fd of that directory. Symlinks such as build and source
 * and all other paths are skipped, because the guest needs only the module files. */
static int pull_unpack_modules(Pull *pl, const CatalogKernel *k, int tar_fd, int *ret_fd)
{
        _cleanup_archive_read_ struct archive *a = archive_read_new();
        _cleanup_free_ char *prefix = NULL, *modules_path = NULL;
        const char *url = k->artifacts[CATALOG_ARTIFACT_MODULES].url;
        struct archive_entry *entry;
        size_t files = 0;
        int fd, r;

        if (!a)
                return -ENOMEM;
        if (asprintf(&prefix, "lib/modules/%s/", k->version) < 0)
                return -ENOMEM;
        r = archive_read_support_format_tar(a);
        if (r == ARCHIVE_OK)
                r = archive_read_support_format_gnutar(a);
        if (r != ARCHIVE_OK)
                return -EOPNOTSUPP;
        r = archive_read_enable_kernel_filters(a);
        if (r < 0)
                return r;
        if (archive_read_open_fd(a, tar_fd, 64 * 1024) != ARCHIVE_OK)
                return error_set(pl->error, -EBADMSG,
                                 "Modules artifact '%s' is not a tar archive: %s", url,
                                 archive_error_string(a));

        while ((r = archive_read_next_header(a, &entry)) == ARCHIVE_OK) {
                const char *path = archive_entry_pathname(entry);

                if (!path)
                        continue;
                if (strneq(path, "./", 2))
                        path += 2;
                if (!strneq(path, prefix, strlen(prefix)) ||
                    archive_entry_filetype(entry) != AE_IFREG)
                        continue;
                if (!path_is_safe(path))
                        return error_set(pl->error, -EBADMSG,
                                         "Modules artifact '%s' contains the unsafe path '%s'", url,
                                         path);

                r = entry_extract(a, pl->staging_fd, path);
                if (r < 0)
                        return error_set(pl->error, r, "Failed to unpack '%s' from '%s': %s", path,
                                         url, strerror(-r));
                files++;
        }
        if (r != ARCHIVE_EOF)
                return error_set(pl->error, -EBADMSG, "Modules artifact '%s' is damaged: %s", url,
                                 archive_error_string(a));
        if (files == 0)
                return error_set(pl->error, -ENOENT,
                                 "Modules artifact '%s' contains no files under '%s': pack "
                                 "lib/modules/%s of kernel '%s'",
                                 url, prefix, k->version, k->name);

        modules_path = strndup(prefix, strlen(prefix) - 1);
        if (!modules_path)
                return -ENOMEM;
        fd = openat(pl->staging_fd, modules_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        *ret_fd = fd;
        return 0;
}

/* The files kernel_import() writes into its output directory. */
static const char *const import_outputs[] = { "vmlinux", "bzImage", "initramfs.img" };

static int pull_import(Pull *pl, const CatalogKernel *k, int vmlinux_fd, int modules_fd,
                       KernelInfo **ret)
{
        _cleanup_(kernel_info_freep) KernelInfo *info = NULL;
        const CatalogPullOptions *opts = pl->opts;
        _cleanup_close_ int output_fd = -EBADF;
        int r;

        output_fd = open(opts->output_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (output_fd < 0)
                return negative_errno();
        if (opts->progress)
                opts->progress("build", 0, 0, opts->userdata);

        KernelImportOptions import = {
                .source_fd = vmlinux_fd,
                .modules_fd = modules_fd,
                .source_name = k->artifacts[CATALOG_ARTIFACT_VMLINUX].url,
                .name = k->name,
                .output_dir = opts->output_dir,
                .init_path = opts->init_path,
                .agent_path = opts->agent_path,
        };
        r = kernel_import(&import, &info, pl->error);
        if (r < 0)
                return r;

        if (!streq(info->version, k->version)) {
                /* kernel_import() published its outputs, so take them back. */
                for (size_t i = 0; i < ELEMENTSOF(import_outputs); i++)
                        (void)unlinkat(output_fd, import_outputs[i], 0);
                r = error_set(pl->error, -EBADMSG,
                              "Kernel '%s' reports release '%s', but the catalog lists version "
                              "'%s': fix the catalog entry",
                              k->name, info->version, k->version);
                return r;
        }

        *ret = TAKE_PTR(info);
        return 0;
}

static int pull_run(Pull *pl, KernelInfo **ret)
{
        const CatalogPullOptions *opts = pl->opts;
        _cleanup_(catalog_freep) Catalog *catalog = NULL;
        _cleanup_close_ int vmlinux_fd = -EBADF, tar_fd = -EBADF, modules_fd = -EBADF;
        const CatalogKernel *k;
        int r;

        r = pull_fetch_index(pl, &catalog);
        if (r < 0)
                return r;

        r = catalog_find(catalog, opts->name, opts->arch, &k);
        if (r == -ENOENT)
                return error_set(pl->error, r,
                                 "Kernel '%s' is not in catalog '%s': check the name against "
                                 "the catalog",
                                 opts->name, opts->catalog_url);
        if (r < 0)
                return error_set(pl->error, r,
                                 "Kernel '%s' in catalog '%s' has no build for architecture "
                                 "'%s'",
                                 opts->name, opts->catalog_url, opts->arch);

        /* The configuration is small and rules the kernel out early, so it comes first. */
        if (k->artifacts[CATALOG_ARTIFACT_CONFIG].url) {
                r = pull_check_config(pl, k);
                if (r < 0)
                        return r;
        }
        r = pull_artifact(pl, k, CATALOG_ARTIFACT_VMLINUX, ARTIFACT_MAX_SIZE, &vmlinux_fd);
        if (r < 0)
                return r;
        if (k->artifacts[CATALOG_ARTIFACT_MODULES].url) {
                r = pull_artifact(pl, k, CATALOG_ARTIFACT_MODULES, ARTIFACT_MAX_SIZE, &tar_fd);
                if (r < 0)
                        return r;
                if (lseek(tar_fd, 0, SEEK_SET) < 0)
                        return negative_errno();
                r = pull_unpack_modules(pl, k, tar_fd, &modules_fd);
                if (r < 0)
                        return r;
        }

        return pull_import(pl, k, vmlinux_fd, modules_fd, ret);
}

int catalog_pull_kernel(const CatalogPullOptions *opts, KernelInfo **ret, char **ret_error)
{
        _cleanup_free_ char *error = NULL;
        KernelInfo *info = NULL;
        Pull pl = { .opts = opts, .staging_fd = -EBADF, .error = &error };
        int r;

        if (!opts || !opts->catalog_url || !opts->name || !opts->arch || !opts->output_dir ||
            !opts->init_path || !opts->agent_path)
                return -EINVAL;

        if (asprintf(&pl.staging, "%s/.#catalog.XXXXXX", opts->output_dir) < 0)
                return -ENOMEM;
        if (!mkdtemp(pl.staging)) {
                r = error_set(&error, negative_errno(), "Failed to create '%s': %s", pl.staging,
                              strerror(errno));
                free(pl.staging);
                pl.staging = NULL;
                goto finish;
        }
        pl.staging_fd = open(pl.staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (pl.staging_fd < 0)
                r = negative_errno();
        else
                r = pull_run(&pl, &info);

finish:
        safe_close(pl.staging_fd);
        if (pl.staging) {
                (void)rm_rf(pl.staging);
                free(pl.staging);
        }
        if (r < 0) {
                if (ret_error)
                        *ret_error = error ? TAKE_PTR(error) : strdup(strerror(-r));
                return r;
        }
        *ret = info;
        return 0;
}
