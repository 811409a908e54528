#include <errno.h>
#include <fcntl.h>
#include <json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ext4.h"
#include "fileio.h"
#include "image-pull.h"
#include "layer.h"
#include "log.h"
#include "macro.h"
#include "oci-manifest.h"
#include "oci-ref.h"
#include "registry.h"
#include "strv.h"

static const char *const step_table[_IMAGE_PULL_STEP_MAX] = {
        [IMAGE_PULL_STEP_RESOLVE] = "resolve",
        [IMAGE_PULL_STEP_DOWNLOAD] = "download",
        [IMAGE_PULL_STEP_VERIFY] = "verify",
        [IMAGE_PULL_STEP_UNPACK] = "unpack",
};

const char *image_pull_step_to_string(ImagePullStep step)
{
        if (step < 0 || step >= _IMAGE_PULL_STEP_MAX)
                return NULL;
        return step_table[step];
}

ImageInfo *image_info_free(ImageInfo *info)
{
        if (!info)
                return NULL;
        free(info->name);
        free(info->reference);
        free(info->digest);
        free(info->platform);
        strv_free(info->entrypoint);
        strv_free(info->cmd);
        strv_free(info->env);
        free(info->user);
        free(info->working_dir);
        free(info);
        return NULL;
}

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

/* Tracks the byte progress of the running step across several blobs or layers. */
typedef struct Progress {
        const ImagePullOptions *opts;
        ImagePullStep step;
        uint64_t base; /* bytes of the blobs or layers already finished */
        uint64_t total;
} Progress;

static void progress_report(Progress *p, uint64_t done)
{
        if (p->opts->progress)
                p->opts->progress(p->step, p->base + done, p->total, p->opts->userdata);
}

static void on_bytes(uint64_t done, void *userdata)
{
        progress_report(userdata, done);
}

static void progress_start(Progress *p, ImagePullStep step, uint64_t total)
{
        p->step = step;
        p->base = 0;
        p->total = total;
        progress_report(p, 0);
}

static bool cancelled(const ImagePullOptions *opts)
{
        return opts->cancel && *opts->cancel;
}

typedef struct PullState {
        const ImagePullOptions *opts;
        OciReference *ref;
        char *name;
        RegistryClient *client;
        OciManifest *manifest;
        char *manifest_digest;
        OciImageConfig *config;
        char **layer_paths;
        Progress progress;
} PullState;

static void pull_state_done(PullState *s)
{
        oci_reference_free(s->ref);
        free(s->name);
        registry_client_free(s->client);
        oci_manifest_free(s->manifest);
        free(s->manifest_digest);
        oci_image_config_free(s->config);
        strv_free(s->layer_paths);
}

/* Reads the manifest for the reference, going through an index to the platform's manifest. */
static int resolve(PullState *s, char **ret_error)
{
        const ImagePullOptions *opts = s->opts;
        RegistryTransferOptions transfer = { .cancel = opts->cancel };
        _cleanup_free_ char *data = NULL, *content_type = NULL, *digest = NULL;
        OciDocumentKind kind;
        size_t size;
        int r;

        progress_start(&s->progress, IMAGE_PULL_STEP_RESOLVE, 0);

        r = registry_get_manifest(s->client, s->ref->digest ? s->ref->digest : s->ref->tag,
                                  &transfer, &data, &size, &content_type, &digest, ret_error);
        if (r < 0)
                return r;

        r = oci_document_kind(data, size, content_type, &kind, ret_error);
        if (r < 0)
                return r;

        if (kind == OCI_DOCUMENT_INDEX) {
                OciDescriptor selected = {};

                r = oci_index_select(data, size, opts->os, opts->architecture, &selected,
                                     ret_error);
                if (r < 0)
                        return r;

                free(data);
                free(content_type);
                free(digest);
                data = content_type = digest = NULL;
                r = registry_get_manifest(s->client, selected.digest, &transfer, &data, &size,
                                          &content_type, &digest, ret_error);
                oci_descriptor_done(&selected);
                if (r < 0)
                        return r;

                r = oci_document_kind(data, size, content_type, &kind, ret_error);
                if (r < 0)
                        return r;
                if (kind != OCI_DOCUMENT_MANIFEST)
                        return fail(ret_error, -EBADMSG,
                                    "The index of '%s' points to another index for '%s/%s'",
                                    s->name, opts->os, opts->architecture);
        }

        r = oci_manifest_parse(data, size, &s->manifest, ret_error);
        if (r < 0)
                return r;
        s->manifest_digest = TAKE_PTR(digest);
        return 0;
}

static int download(PullState *s, char **ret_error)
{
        const ImagePullOptions *opts = s->opts;
        RegistryTransferOptions transfer = {
                .cancel = opts->cancel,
                .progress = on_bytes,
                .userdata = &s->progress,
        };
        const OciManifest *m = s->manifest;
        _cleanup_free_ char *config_path = NULL, *config_data = NULL;
        uint64_t total = m->config.size;
        size_t config_size;
        int r;

        for (size_t i = 0; i < m->n_layers; i++)
                total += m->layers[i].size;
        progress_start(&s->progress, IMAGE_PULL_STEP_DOWNLOAD, total);

        r = registry_fetch_blob(s->client, &m->config, opts->blob_cache_dir, &transfer,
                                &config_path, ret_error);
        if (r < 0)
                return r;
        s->progress.base += m->config.size;

        s->layer_paths = calloc(m->n_layers + 1, sizeof(char *));
        if (!s->layer_paths)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_layers; i++) {
                if (cancelled(opts))
                        return -ECANCELED;
                r = registry_fetch_blob(s->client, &m->layers[i], opts->blob_cache_dir, &transfer,
                                        &s->layer_paths[i], ret_error);
                if (r < 0)
                        return r;
                s->progress.base += m->layers[i].size;
        }

        /* Every blob was checked against its digest while it streamed in. What remains to
         * verify is that the config describes this manifest and platform. */
        progress_start(&s->progress, IMAGE_PULL_STEP_VERIFY, total);
        r = read_full_file(config_path, OCI_CONFIG_SIZE_MAX, &config_data, &config_size);
        if (r < 0)
                return fail(ret_error, r, "Failed to read the config of '%s': %s", s->name,
                            strerror(-r));
        r = oci_image_config_parse(config_data, config_size, &s->config, ret_error);
        if (r < 0)
                return r;
        if (s->config->n_diff_ids != m->n_layers)
                return fail(ret_error, -EBADMSG,
                            "The config of '%s' lists %zu layers but its manifest %zu: the image "
                            "is corrupt",
                            s->name, s->config->n_diff_ids, m->n_layers);
        if (!streq(s->config->os, opts->os) || !streq(s->config->architecture, opts->architecture))
                return fail(ret_error, -ENOEXEC, "Image '%s' is built for '%s/%s', not for '%s/%s'",
                            s->name, s->config->os, s->config->architecture, opts->os,
                            opts->architecture);
        progress_report(&s->progress, total);
        return 0;
}

static void on_layer_bytes(uint64_t done, void *userdata)
{
        PullState *s = userdata;

        progress_report(&s->progress, done);
}

static void on_layer_done(size_t index, void *userdata)
{
        PullState *s = userdata;

        s->progress.base += s->manifest->layers[index].size;
}

static int unpack(PullState *s, uint64_t *ret_size, char **ret_error)
{
        LayerImageOptions build = {
                .layer_paths = s->layer_paths,
                .layers = s->manifest->layers,
                .name = s->name,
                .output_path = s->opts->output_path,
                .apply = {
                        .cancel = s->opts->cancel,
                        .progress = on_layer_bytes,
                        .userdata = s,
                },
                .layer_done = on_layer_done,
        };
        uint64_t total = 0;
        int r;

        for (size_t i = 0; i < s->manifest->n_layers; i++)
                total += s->manifest->layers[i].size;
        progress_start(&s->progress, IMAGE_PULL_STEP_UNPACK, total);

        r = layer_build_image(&build, ret_size, ret_error);
        if (r < 0)
                return r;

        s->progress.base = 0;
        progress_report(&s->progress, total);
        return 0;
}

static int build_info(PullState *s, uint64_t size, ImageInfo **ret)
{
        _cleanup_(image_info_freep) ImageInfo *info = calloc(1, sizeof(ImageInfo));

        if (!info)
                return -ENOMEM;
        info->name = strdup(s->name);
        info->reference = strdup(s->opts->reference);
        info->digest = strdup(s->manifest_digest);
        if (asprintf(&info->platform, "%s/%s", s->config->os, s->config->architecture) < 0)
                info->platform = NULL;
        if (!info->name || !info->reference || !info->digest || !info->platform)
                return -ENOMEM;
        info->size_bytes = size;
        info->entrypoint = TAKE_PTR(s->config->entrypoint);
        info->cmd = TAKE_PTR(s->config->cmd);
        info->env = TAKE_PTR(s->config->env);
        info->user = TAKE_PTR(s->config->user);
        info->working_dir = TAKE_PTR(s->config->working_dir);
        info->created_usec = s->config->created_usec;
        *ret = TAKE_PTR(info);
        return 0;
}

static int pull(PullState *s, ImageInfo **ret, char **ret_error)
{
        const ImagePullOptions *opts = s->opts;
        uint64_t size = 0;
        int r;

        if (isempty(opts->reference) || isempty(opts->blob_cache_dir) ||
            isempty(opts->output_path) || isempty(opts->os) || isempty(opts->architecture))
                return fail(ret_error, -EINVAL,
                            "Pull options are incomplete: reference, blob cache directory, "
                            "output path, os and architecture are required");
        if (access(opts->output_path, F_OK) == 0)
                return fail(ret_error, -EEXIST,
                            "Output file '%s' already exists: remove it or choose another path",
                            opts->output_path);

        r = oci_reference_parse(opts->reference, &s->ref, ret_error);
        if (r < 0)
                return r;
        r = oci_reference_to_string(s->ref, &s->name);
        if (r < 0)
                return r;

        RegistryClientOptions client_opts = {
                .plain_http =
                        strv_contains(opts->insecure_registries, s->ref->registry) ||
                        strv_contains(opts->insecure_registries, oci_reference_api_host(s->ref)),
                .ca_file = opts->ca_file,
                .credentials_file = opts->credentials_file,
                .mirrors = opts->mirrors,
        };
        r = registry_client_new_with_options(s->ref, &client_opts, &s->client, ret_error);
        if (r < 0)
                return r;

        r = resolve(s, ret_error);
        if (r < 0)
                return r;
        if (cancelled(opts))
                return -ECANCELED;

        r = download(s, ret_error);
        if (r < 0)
                return r;
        if (cancelled(opts))
                return -ECANCELED;

        r = unpack(s, &size, ret_error);
        if (r < 0)
                return r;

        if (ret) {
                r = build_info(s, size, ret);
                if (r < 0) {
                        (void)unlink(opts->output_path);
                        return r;
                }
        }
        return 0;
}

int image_pull(const ImagePullOptions *opts, ImageInfo **ret, char **ret_error)
{
        PullState s = { .opts = opts, .progress.opts = opts };
        char *error = NULL;
        int r;

        r = pull(&s, ret, &error);
        if (r == -ECANCELED) {
                free(error);
                error = NULL;
                fail(&error, r, "Pull of '%s' was cancelled", strempty(opts->reference));
        } else if (r < 0 && !error) {
                fail(&error, r, "Failed to pull '%s': %s", strempty(opts->reference), strerror(-r));
        }

        if (r < 0)
                log_debug("image-pull: %s", strempty(error));
        pull_state_done(&s);
        if (ret_error)
                *ret_error = error;
        else
                free(error);
        return r;
}

/* ImageInfo as JSON: {"name", "reference", "digest", "platform", "sizeBytes", "entrypoint",
 * "cmd", "env", "user", "workingDir", "createdUsec"}, with unset fields left out. */

static int add_string(json_object *j, const char *key, const char *value)
{
        json_object *v;

        if (!value)
                return 0;
        v = json_object_new_string(value);
        if (!v || json_object_object_add(j, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int add_strv(json_object *j, const char *key, char **l)
{
        json_object *a;

        if (!l)
                return 0;
        a = json_object_new_array();
        if (!a)
                return -ENOMEM;
        for (char **p = l; *p; p++) {
                json_object *v = json_object_new_string(*p);
                if (!v || json_object_array_add(a, v) < 0) {
                        json_object_put(v);
                        json_object_put(a);
                        return -ENOMEM;
                }
        }
        if (json_object_object_add(j, key, a) < 0) {
                json_object_put(a);
                return -ENOMEM;
        }
        return 0;
}

static int add_uint64(json_object *j, const char *key, uint64_t value)
{
        json_object *v = json_object_new_uint64(value);

        if (!v || json_object_object_add(j, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

int image_info_to_json(const ImageInfo *info, char **ret)
{
        json_object *j = json_object_new_object();
        char *s;
        int r = 0;

        if (!j)
                return -ENOMEM;
        if (add_string(j, "name", info->name) < 0 ||
            add_string(j, "reference", info->reference) < 0 ||
            add_string(j, "digest", info->digest) < 0 ||
            add_string(j, "platform", info->platform) < 0 ||
            add_uint64(j, "sizeBytes", info->size_bytes) < 0 ||
            add_strv(j, "entrypoint", info->entrypoint) < 0 || add_strv(j, "cmd", info->cmd) < 0 ||
            add_strv(j, "env", info->env) < 0 || add_string(j, "user", info->user) < 0 ||
            add_string(j, "workingDir", info->working_dir) < 0 ||
            add_uint64(j, "createdUsec", info->created_usec) < 0)
                r = -ENOMEM;

        if (r == 0) {
                s = strdup(json_object_to_json_string_ext(
                        j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                   JSON_C_TO_STRING_NOSLASHESCAPE));
                if (s)
                        *ret = s;
                else
                        r = -ENOMEM;
        }
        json_object_put(j);
        return r;
}

static int get_string(json_object *j, const char *key, bool required, char **ret)
{
        json_object *v;

        if (!json_object_object_get_ex(j, key, &v) || json_object_is_type(v, json_type_null))
                return required ? -EBADMSG : 0;
        if (!json_object_is_type(v, json_type_string))
                return -EBADMSG;
        *ret = strdup(json_object_get_string(v));
        return *ret ? 0 : -ENOMEM;
}

static int get_strv(json_object *j, const char *key, char ***ret)
{
        _cleanup_strv_free_ char **l = NULL;
        json_object *a;
        int r;

        if (!json_object_object_get_ex(j, key, &a) || json_object_is_type(a, json_type_null))
                return 0;
        if (!json_object_is_type(a, json_type_array))
                return -EBADMSG;
        l = calloc(1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < json_object_array_length(a); i++) {
                json_object *v = json_object_array_get_idx(a, i);
                if (!json_object_is_type(v, json_type_string))
                        return -EBADMSG;
                r = strv_extend(&l, json_object_get_string(v));
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

static int get_uint64(json_object *j, const char *key, uint64_t *ret)
{
        json_object *v;

        if (!json_object_object_get_ex(j, key, &v))
                return 0;
        if (!json_object_is_type(v, json_type_int))
                return -EBADMSG;
        *ret = json_object_get_uint64(v);
        return 0;
}

int image_info_from_json(const char *json, ImageInfo **ret)
{
        _cleanup_(image_info_freep) ImageInfo *info = calloc(1, sizeof(ImageInfo));
        json_object *j;
        int r;

        if (!info)
                return -ENOMEM;
        j = json_tokener_parse(json);
        if (!j)
                return -EBADMSG;
        if (!json_object_is_type(j, json_type_object)) {
                json_object_put(j);
                return -EBADMSG;
        }

        r = get_string(j, "name", true, &info->name);
        if (r >= 0)
                r = get_string(j, "reference", true, &info->reference);
        if (r >= 0)
                r = get_string(j, "digest", true, &info->digest);
        if (r >= 0)
                r = get_string(j, "platform", true, &info->platform);
        if (r >= 0)
                r = get_uint64(j, "sizeBytes", &info->size_bytes);
        if (r >= 0)
                r = get_strv(j, "entrypoint", &info->entrypoint);
        if (r >= 0)
                r = get_strv(j, "cmd", &info->cmd);
        if (r >= 0)
                r = get_strv(j, "env", &info->env);
        if (r >= 0)
                r = get_string(j, "user", false, &info->user);
        if (r >= 0)
                r = get_string(j, "workingDir", false, &info->working_dir);
        if (r >= 0)
                r = get_uint64(j, "createdUsec", &info->created_usec);
        json_object_put(j);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(info);
        return 0;
}
