#include <errno.h>
#include <json.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "macro.h"
#include "oci-manifest.h"
#include "oci-ref.h"
#include "strv.h"

#define JSON_DEPTH_MAX 64

static int fail(char **ret_error, int error, const char *format, ...)
        __attribute__((format(printf, 3, 4)));

static int fail(char **ret_error, int error, const char *format, ...)
{
        va_list ap;

        if (ret_error) {
                va_start(ap, format);
                if (vasprintf(ret_error, format, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return error;
}

static void json_object_putp(json_object **j)
{
        if (*j)
                json_object_put(*j);
}
#define _cleanup_json_ _cleanup_(json_object_putp)

static int parse_json(const char *data, size_t size, size_t size_max, const char *what,
                      json_object **ret, char **ret_error)
{
        struct json_tokener *tok;
        json_object *j;
        enum json_tokener_error e;

        if (size > size_max)
                return fail(ret_error, -EFBIG, "The %s is %zu bytes, more than the limit of %zu",
                            what, size, size_max);
        if (size > INT32_MAX)
                return -EFBIG;

        tok = json_tokener_new_ex(JSON_DEPTH_MAX);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        j = json_tokener_parse_ex(tok, data, (int)size);
        e = json_tokener_get_error(tok);
        /* The whole input must be one JSON value. */
        if (j && e == json_tokener_success && json_tokener_get_parse_end(tok) < size) {
                for (size_t i = json_tokener_get_parse_end(tok); i < size; i++)
                        if (!strchr(" \t\r\n", data[i])) {
                                e = json_tokener_error_parse_unexpected;
                                break;
                        }
        }
        json_tokener_free(tok);

        if (!j || e != json_tokener_success) {
                json_object_put(j);
                return fail(ret_error, -EBADMSG, "The %s is not valid JSON: %s", what,
                            e == json_tokener_success ? "incomplete document"
                                                      : json_tokener_error_desc(e));
        }
        if (!json_object_is_type(j, json_type_object)) {
                json_object_put(j);
                return fail(ret_error, -EBADMSG, "The %s is not a JSON object", what);
        }
        *ret = j;
        return 0;
}

/* Returns the string member key, NULL when it is missing or not a string. */
static const char *get_string(json_object *j, const char *key)
{
        json_object *v;

        if (!json_object_object_get_ex(j, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static bool media_type_is_index(const char *t)
{
        return streq(t, OCI_MEDIA_TYPE_INDEX) || streq(t, DOCKER_MEDIA_TYPE_LIST);
}

static bool media_type_is_manifest(const char *t)
{
        return streq(t, OCI_MEDIA_TYPE_MANIFEST) || streq(t, DOCKER_MEDIA_TYPE_MANIFEST);
}

static bool media_type_is_config(const char *t)
{
        return streq(t, OCI_MEDIA_TYPE_CONFIG) || streq(t, DOCKER_MEDIA_TYPE_CONFIG);
}

static bool media_type_is_layer(const char *t)
{
        static const char *const types[] = {
                "application/vnd.oci.image.layer.v1.tar",
                "application/vnd.oci.image.layer.v1.tar+gzip",
                "application/vnd.oci.image.layer.v1.tar+zstd",
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "application/vnd.docker.image.rootfs.diff.tar.zstd",
        };

        for (size_t i = 0; i < ELEMENTSOF(types); i++)
                if (streq(t, types[i]))
                        return true;
        return false;
}

/* Strips parameters ("; charset=utf-8") and surrounding blanks from a Content-Type value. */
static char *content_type_base(const char *content_type)
{
        size_t n;

        content_type += strspn(content_type, " \t");
        n = strcspn(content_type, ";");
        while (n > 0 && strchr(" \t\r\n", content_type[n - 1]))
                n--;
        return strndup(content_type, n);
}

int oci_document_kind(const char *data, size_t size, const char *content_type, OciDocumentKind *ret,
                      char **ret_error)
{
        _cleanup_json_ json_object *j = NULL;
        _cleanup_free_ char *header = NULL;
        const char *type;
        int r;

        r = parse_json(data, size, OCI_MANIFEST_SIZE_MAX, "manifest", &j, ret_error);
        if (r < 0)
                return r;

        if (content_type) {
                header = content_type_base(content_type);
                if (!header)
                        return -ENOMEM;
        }

        type = get_string(j, "mediaType");
        if (type && header && !streq(header, type) &&
            (media_type_is_index(header) || media_type_is_manifest(header)))
                return fail(ret_error, -EBADMSG,
                            "The manifest's mediaType '%s' contradicts its Content-Type '%s'", type,
                            header);
        if (!type)
                type = header;
        if (!type)
                return fail(ret_error, -EBADMSG,
                            "The manifest has no mediaType and the registry sent no Content-Type");

        if (media_type_is_index(type))
                *ret = OCI_DOCUMENT_INDEX;
        else if (media_type_is_manifest(type))
                *ret = OCI_DOCUMENT_MANIFEST;
        else
                return fail(ret_error, -EMEDIUMTYPE,
                            "The manifest has the unsupported media type '%s': banger reads OCI "
                            "image indexes and manifests and Docker schema 2 manifests and lists",
                            type);
        return 0;
}

void oci_descriptor_done(OciDescriptor *d)
{
        free(d->media_type);
        free(d->digest);
        *d = (OciDescriptor){};
}

/* Reads mediaType, digest and size of a descriptor and checks digest and size. */
static int parse_descriptor(json_object *j, const char *what, uint64_t size_max, OciDescriptor *ret,
                            char **ret_error)
{
        const char *media_type = get_string(j, "mediaType");
        const char *digest = get_string(j, "digest");
        json_object *size;
        int64_t n;

        if (!json_object_is_type(j, json_type_object))
                return fail(ret_error, -EBADMSG, "The %s descriptor is not a JSON object", what);
        if (!media_type)
                return fail(ret_error, -EBADMSG, "The %s descriptor has no mediaType", what);
        if (!digest)
                return fail(ret_error, -EBADMSG, "The %s descriptor has no digest", what);
        if (!oci_digest_is_valid(digest))
                return fail(ret_error, -EBADMSG,
                            "The %s descriptor has the invalid or unsupported digest '%s': "
                            "banger accepts sha256 digests only",
                            what, digest);
        if (!json_object_object_get_ex(j, "size", &size) ||
            !json_object_is_type(size, json_type_int))
                return fail(ret_error, -EBADMSG, "The %s descriptor has no integer size", what);
        errno = 0;
        n = json_object_get_int64(size);
        if (errno != 0 || n < 0 || (uint64_t)n > size_max)
                return fail(ret_error, -EBADMSG,
                            "The %s descriptor has the size %s, outside 0 to %llu bytes", what,
                            json_object_get_string(size), (unsigned long long)size_max);

        ret->media_type = strdup(media_type);
        ret->digest = strdup(digest);
        if (!ret->media_type || !ret->digest) {
                oci_descriptor_done(ret);
                return -ENOMEM;
        }
        ret->size = (uint64_t)n;
        return 0;
}

static bool entry_is_runnable(json_object *entry, const char **ret_os, const char **ret_arch,
                              const char **ret_variant)
{
        json_object *platform, *annotations;
        const char *type = get_string(entry, "mediaType"), *reference_type = NULL;

        if (!type || !media_type_is_manifest(type))
                return false;
        if (json_object_object_get_ex(entry, "annotations", &annotations))
                reference_type = get_string(annotations, "vnd.docker.reference.type");
        if (reference_type && streq(reference_type, "attestation-manifest"))
                return false;
        if (!json_object_object_get_ex(entry, "platform", &platform))
                return false;
        *ret_os = get_string(platform, "os");
        *ret_arch = get_string(platform, "architecture");
        *ret_variant = get_string(platform, "variant");
        return *ret_os && *ret_arch && !streq(*ret_os, "unknown") && !streq(*ret_arch, "unknown");
}

/* The variant an image without one is built for, per the OCI image index platform list. */
static const char *baseline_variant(const char *architecture)
{
        if (streq(architecture, "arm64"))
                return "v8";
        if (streq(architecture, "amd64"))
                return "v1";
        return NULL;
}

/* Ranks an entry's variant against the requested one: 2 for an exact or baseline match, 1 for
 * another variant of the architecture when none was requested, 0 for no match. */
static int variant_rank(const char *entry_variant, const char *variant, const char *architecture)
{
        const char *baseline = baseline_variant(architecture);
        bool entry_is_baseline = !entry_variant || (baseline && streq(entry_variant, baseline));

        if (!variant)
                return entry_is_baseline ? 2 : 1;
        if (entry_variant)
                return streq(entry_variant, variant) ? 2 : 0;
        return baseline && streq(variant, baseline) ? 2 : 0;
}

int oci_index_select(const char *data, size_t size, const char *os, const char *platform_arch,
                     OciDescriptor *ret, char **ret_error)
{
        _cleanup_json_ json_object *j = NULL;
        _cleanup_free_ char *available = NULL, *architecture = strdup(platform_arch);
        json_object *manifests, *best = NULL;
        const char *variant = NULL;
        int best_rank = 0;
        size_t n;
        int r;

        if (!architecture)
                return -ENOMEM;
        /* "arm64/v8" requests a variant. "arm64" takes the baseline, or any variant if none. */
        char *slash = strchr(architecture, '/');
        if (slash) {
                *slash = '\0';
                variant = slash + 1;
        }

        r = parse_json(data, size, OCI_MANIFEST_SIZE_MAX, "image index", &j, ret_error);
        if (r < 0)
                return r;

        if (!json_object_object_get_ex(j, "manifests", &manifests) ||
            !json_object_is_type(manifests, json_type_array))
                return fail(ret_error, -EBADMSG, "The image index has no 'manifests' array");

        n = json_object_array_length(manifests);
        for (size_t i = 0; i < n; i++) {
                json_object *entry = json_object_array_get_idx(manifests, i);
                const char *entry_os, *entry_arch, *entry_variant;
                int rank;

                if (!json_object_is_type(entry, json_type_object))
                        return fail(ret_error, -EBADMSG,
                                    "Entry %zu of the image index is not a JSON object", i);
                if (!entry_is_runnable(entry, &entry_os, &entry_arch, &entry_variant))
                        continue;
                rank = streq(entry_os, os) && streq(entry_arch, architecture)
                               ? variant_rank(entry_variant, variant, architecture)
                               : 0;
                if (rank > best_rank) {
                        best = entry;
                        best_rank = rank;
                }

                char *joined;
                if (asprintf(&joined, "%s%s%s/%s%s%s", strempty(available), available ? ", " : "",
                             entry_os, entry_arch, entry_variant ? "/" : "",
                             strempty(entry_variant)) < 0)
                        return -ENOMEM;
                free(available);
                available = joined;
        }

        if (best)
                return parse_descriptor(best, "selected manifest", OCI_MANIFEST_SIZE_MAX, ret,
                                        ret_error);

        return fail(ret_error, -ENOENT,
                    "The image has no variant for the platform '%s/%s' (available: %s)", os,
                    platform_arch, available ? available : "none");
}

OciManifest *oci_manifest_free(OciManifest *m)
{
        if (!m)
                return NULL;
        oci_descriptor_done(&m->config);
        for (size_t i = 0; i < m->n_layers; i++)
                oci_descriptor_done(&m->layers[i]);
        free(m->layers);
        free(m);
        return NULL;
}

int oci_manifest_parse(const char *data, size_t size, OciManifest **ret, char **ret_error)
{
        _cleanup_json_ json_object *j = NULL;
        _cleanup_(oci_manifest_freep) OciManifest *m = NULL;
        json_object *config, *layers, *version;
        const char *type;
        size_t n;
        int r;

        r = parse_json(data, size, OCI_MANIFEST_SIZE_MAX, "image manifest", &j, ret_error);
        if (r < 0)
                return r;

        if (!json_object_object_get_ex(j, "schemaVersion", &version) ||
            !json_object_is_type(version, json_type_int) || json_object_get_int(version) != 2)
                return fail(ret_error, -EBADMSG, "The image manifest's schemaVersion is not 2");
        type = get_string(j, "mediaType");
        if (type && !media_type_is_manifest(type))
                return fail(ret_error, -EMEDIUMTYPE,
                            "The image manifest has the media type '%s', expected '%s' or '%s'",
                            type, OCI_MEDIA_TYPE_MANIFEST, DOCKER_MEDIA_TYPE_MANIFEST);

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;

        if (!json_object_object_get_ex(j, "config", &config))
                return fail(ret_error, -EBADMSG, "The image manifest has no config descriptor");
        r = parse_descriptor(config, "config", OCI_CONFIG_SIZE_MAX, &m->config, ret_error);
        if (r < 0)
                return r;
        if (!media_type_is_config(m->config.media_type))
                return fail(ret_error, -EMEDIUMTYPE,
                            "The image manifest's config has the media type '%s', expected '%s' "
                            "or '%s': it is not a container image",
                            m->config.media_type, OCI_MEDIA_TYPE_CONFIG, DOCKER_MEDIA_TYPE_CONFIG);

        if (!json_object_object_get_ex(j, "layers", &layers) ||
            !json_object_is_type(layers, json_type_array))
                return fail(ret_error, -EBADMSG, "The image manifest has no 'layers' array");
        n = json_object_array_length(layers);
        if (n == 0 || n > OCI_LAYERS_MAX)
                return fail(ret_error, -EBADMSG,
                            "The image manifest lists %zu layers, expected 1 to %d", n,
                            OCI_LAYERS_MAX);

        m->layers = calloc(n, sizeof(OciDescriptor));
        if (!m->layers)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                r = parse_descriptor(json_object_array_get_idx(layers, i), "layer",
                                     OCI_LAYER_SIZE_MAX, &m->layers[i], ret_error);
                if (r < 0)
                        return r;
                m->n_layers++;
                if (!media_type_is_layer(m->layers[i].media_type))
                        return fail(ret_error, -EMEDIUMTYPE,
                                    "Layer %zu of the image has the unsupported media type '%s': "
                                    "banger applies tar layers, uncompressed or with gzip or zstd",
                                    i + 1, m->layers[i].media_type);
        }

        *ret = TAKE_PTR(m);
        return 0;
}

OciImageConfig *oci_image_config_free(OciImageConfig *c)
{
        if (!c)
                return NULL;
        free(c->os);
        free(c->architecture);
        strv_free(c->entrypoint);
        strv_free(c->cmd);
        strv_free(c->env);
        free(c->user);
        free(c->working_dir);
        free(c);
        return NULL;
}

/* Copies a JSON array of strings. A missing key or null leaves *ret NULL. */
static int get_string_array(json_object *j, const char *key, char ***ret, char **ret_error)
{
        _cleanup_strv_free_ char **l = NULL;
        json_object *a;
        size_t n;
        int r;

        if (!json_object_object_get_ex(j, key, &a) || json_object_is_type(a, json_type_null))
                return 0;
        if (!json_object_is_type(a, json_type_array))
                return fail(ret_error, -EBADMSG, "The image config's '%s' is not an array", key);

        n = json_object_array_length(a);
        l = calloc(1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *s = json_object_array_get_idx(a, i);

                if (!json_object_is_type(s, json_type_string))
                        return fail(ret_error, -EBADMSG,
                                    "The image config's '%s' contains a value that is not a "
                                    "string",
                                    key);
                r = strv_extend(&l, json_object_get_string(s));
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

static int dup_nonempty(const char *s, char **ret)
{
        if (isempty(s))
                return 0;
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

int oci_image_config_parse(const char *data, size_t size, OciImageConfig **ret, char **ret_error)
{
        _cleanup_json_ json_object *j = NULL;
        _cleanup_(oci_image_config_freep) OciImageConfig *c = NULL;
        json_object *config, *rootfs, *diff_ids;
        const char *created;
        int r;

        r = parse_json(data, size, OCI_CONFIG_SIZE_MAX, "image config", &j, ret_error);
        if (r < 0)
                return r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;

        r = dup_nonempty(get_string(j, "os"), &c->os);
        if (r < 0)
                return r;
        r = dup_nonempty(get_string(j, "architecture"), &c->architecture);
        if (r < 0)
                return r;
        if (!c->os || !c->architecture)
                return fail(ret_error, -EBADMSG, "The image config has no 'os' or 'architecture'");

        created = get_string(j, "created");
        if (created && oci_parse_timestamp(created, &c->created_usec) < 0)
                return fail(ret_error, -EBADMSG,
                            "The image config has the invalid 'created' time '%s': expected "
                            "RFC 3339",
                            created);

        if (!json_object_object_get_ex(j, "rootfs", &rootfs) ||
            !json_object_object_get_ex(rootfs, "diff_ids", &diff_ids) ||
            !json_object_is_type(diff_ids, json_type_array))
                return fail(ret_error, -EBADMSG, "The image config has no 'rootfs.diff_ids' array");
        c->n_diff_ids = json_object_array_length(diff_ids);

        /* "config" is optional: an image without it runs nothing by default. */
        if (json_object_object_get_ex(j, "config", &config) &&
            json_object_is_type(config, json_type_object)) {
                r = get_string_array(config, "Entrypoint", &c->entrypoint, ret_error);
                if (r < 0)
                        return r;
                r = get_string_array(config, "Cmd", &c->cmd, ret_error);
                if (r < 0)
                        return r;
                r = get_string_array(config, "Env", &c->env, ret_error);
                if (r < 0)
                        return r;
                r = dup_nonempty(get_string(config, "User"), &c->user);
                if (r < 0)
                        return r;
                r = dup_nonempty(get_string(config, "WorkingDir"), &c->working_dir);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(c);
        return 0;
}

int oci_parse_timestamp(const char *s, uint64_t *ret)
{
        struct tm tm = {};
        const char *p;
        uint64_t usec = 0;
        int64_t offset = 0;
        time_t t;

        p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!p)
                return -EINVAL;
        if (*p == '.') {
                int digits = 0;

                for (p++; *p >= '0' && *p <= '9'; p++, digits++)
                        if (digits < 6)
                                usec = usec * 10 + (uint64_t)(*p - '0');
                if (digits == 0)
                        return -EINVAL;
                for (; digits < 6; digits++)
                        usec *= 10;
        }
        if (*p == 'Z' || *p == 'z') {
                p++;
        } else if (*p == '+' || *p == '-') {
                int hours, minutes, n = 0;

                if (sscanf(p + 1, "%2d:%2d%n", &hours, &minutes, &n) != 2 || n != 5 || hours > 23 ||
                    minutes > 59)
                        return -EINVAL;
                offset = (hours * 3600 + minutes * 60) * (*p == '+' ? 1 : -1);
                p += 6;
        } else {
                return -EINVAL;
        }
        if (*p != '\0')
                return -EINVAL;

        t = timegm(&tm);
        if (t == (time_t)-1 || t - offset < 0)
                return -EINVAL;
        *ret = (uint64_t)(t - offset) * 1000000 + usec;
        return 0;
}
