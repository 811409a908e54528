#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ext4.h"
#include "fileio.h"
#include "image-import.h"
#include "layer.h"
#include "log.h"
#include "macro.h"
#include "oci-manifest.h"
#include "oci-ref.h"
#include "strv.h"

#define ARCHIVE_BLOCK       (64 * 1024)
#define ARCHIVE_MEMBERS_MAX 65536 /* members of a docker-archive, far above what docker writes */
#define OCI_LAYOUT_VERSION  "1.0.0"
#define REF_NAME_ANNOTATION "org.opencontainers.image.ref.name"

static const char *const format_table[_IMAGE_IMPORT_FORMAT_MAX] = {
        [IMAGE_IMPORT_OCI_LAYOUT] = "oci-layout",
        [IMAGE_IMPORT_DOCKER_ARCHIVE] = "docker-archive",
        [IMAGE_IMPORT_ROOTFS] = "rootfs",
};

const char *image_import_format_to_string(ImageImportFormat f)
{
        if (f < 0 || f >= _IMAGE_IMPORT_FORMAT_MAX)
                return NULL;
        return format_table[f];
}

ImageImportFormat image_import_format_from_string(const char *s)
{
        if (!s)
                return _IMAGE_IMPORT_FORMAT_INVALID;
        for (int i = 0; i < _IMAGE_IMPORT_FORMAT_MAX; i++)
                if (streq(format_table[i], s))
                        return i;
        return _IMAGE_IMPORT_FORMAT_INVALID;
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

static void json_object_putp(json_object **j)
{
        if (*j)
                json_object_put(*j);
}
#define _cleanup_json_ _cleanup_(json_object_putp)

static void archive_read_freep(struct archive **a)
{
        if (*a)
                archive_read_free(*a);
}

static void evp_md_ctx_freep(EVP_MD_CTX **md)
{
        EVP_MD_CTX_free(*md);
}

static int digest_finish(EVP_MD_CTX *md, char **ret)
{
        unsigned char hash[EVP_MAX_MD_SIZE];
        unsigned n;
        char *s;

        if (EVP_DigestFinal_ex(md, hash, &n) != 1 || n != 32)
                return -EIO;
        s = malloc(strlen("sha256:") + 64 + 1);
        if (!s)
                return -ENOMEM;
        strcpy(s, "sha256:");
        for (unsigned i = 0; i < n; i++)
                sprintf(s + 7 + 2 * i, "%02x", hash[i]);
        *ret = s;
        return 0;
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

typedef struct ImportState {
        const ImageImportOptions *opts;
        char *scratch;      /* private directory under opts->work_dir */
        char *name;         /* normalised image name */
        char *reference;    /* the name as given or found */
        char *digest;       /* "sha256:HEX" */
        char **layer_paths; /* uncompressed or compressed tars in scratch, in order */
        size_t n_layers;
        OciImageConfig *config; /* NULL for a rootfs */
        uint64_t layers_bytes;
} ImportState;

static void import_state_done(ImportState *s)
{
        if (s->scratch)
                (void)rm_rf(s->scratch);
        free(s->scratch);
        free(s->name);
        free(s->reference);
        free(s->digest);
        strv_free(s->layer_paths);
        oci_image_config_free(s->config);
}

static bool cancelled(const ImageImportOptions *opts)
{
        return opts->cancel && *opts->cancel;
}

static void report(const ImportState *s, ImagePullStep step, uint64_t done, uint64_t total)
{
        if (s->opts->progress)
                s->opts->progress(step, done, total, s->opts->userdata);
}

/* Creates scratch/NAME for writing and returns its path and fd. */
static int scratch_create(ImportState *s, const char *name, char **ret_path, int *ret_fd)
{
        _cleanup_free_ char *path = NULL;
        int fd;

        if (asprintf(&path, "%s/%s", s->scratch, name) < 0)
                return -ENOMEM;
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
                return negative_errno();
        *ret_path = TAKE_PTR(path);
        *ret_fd = fd;
        return 0;
}

static int write_all(int fd, const void *data, size_t size)
{
        const char *p = data;

        while (size > 0) {
                ssize_t n = write(fd, p, size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                p += n;
                size -= (size_t)n;
        }
        return 0;
}

static int set_name(ImportState *s, const char *name, char **ret_error)
{
        char *normalized;
        int r;

        r = oci_reference_normalize(name, &normalized);
        if (r < 0)
                return fail(ret_error, r,
                            "Invalid image name '%s': use NAME[:TAG] or REGISTRY/NAME[:TAG]", name);
        free(s->name);
        s->name = normalized;
        free(s->reference);
        s->reference = strdup(name);
        return s->reference ? 0 : -ENOMEM;
}

/* Parses the image config and checks it against the layer count and the requested platform. */
static int use_config(ImportState *s, const char *data, size_t size, const char *what,
                      char **ret_error)
{
        const ImageImportOptions *opts = s->opts;
        int r;

        r = oci_image_config_parse(data, size, &s->config, ret_error);
        if (r < 0)
                return r;
        if (s->config->n_diff_ids != s->n_layers)
                return fail(ret_error, -EBADMSG,
                            "The config of %s lists %zu layers but its manifest %zu: the image "
                            "is corrupt",
                            what, s->config->n_diff_ids, s->n_layers);
        if (!streq(s->config->os, opts->os) || !streq(s->config->architecture, opts->architecture))
                return fail(ret_error, -ENOEXEC, "Image %s is built for '%s/%s', not for '%s/%s'",
                            what, s->config->os, s->config->architecture, opts->os,
                            opts->architecture);
        return 0;
}

/* OCI image layout */

/* Opens name below dir_fd without following symlinks, so a layout cannot point the daemon at
 * files outside it. */
static int open_beneath(int dir_fd, const char *name, int flags)
{
        int fd = openat(dir_fd, name, flags | O_NOFOLLOW | O_CLOEXEC);

        return fd < 0 ? negative_errno() : fd;
}

static int read_fd_bounded(int fd, size_t max_size, char **ret, size_t *ret_size)
{
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, allocated = 0;

        for (;;) {
                if (size == allocated) {
                        if (allocated > max_size)
                                return -EFBIG;
                        allocated = allocated ? allocated * 2 : 4096;
                        char *p = realloc(buf, allocated + 1);
                        if (!p)
                                return -ENOMEM;
                        buf = p;
                }
                ssize_t n = read(fd, buf + size, allocated - size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        break;
                size += (size_t)n;
        }
        if (size > max_size)
                return -EFBIG;
        buf[size] = '\0';
        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}

static int read_layout_file(int dir_fd, const char *name, size_t max_size, char **ret,
                            size_t *ret_size, char **ret_error)
{
        _cleanup_close_ int fd = -EBADF;
        int r;

        fd = open_beneath(dir_fd, name, O_RDONLY);
        if (fd < 0)
                return fail(ret_error, fd,
                            "Failed to open '%s' in the OCI layout: %s: the directory must "
                            "contain oci-layout, index.json and blobs/",
                            name, strerror(-fd));
        r = read_fd_bounded(fd, max_size, ret, ret_size);
        if (r < 0)
                return fail(ret_error, r, "Failed to read '%s' in the OCI layout: %s", name,
                            strerror(-r));
        return 0;
}

static int open_blob(int dir_fd, const OciDescriptor *d, char **ret_error)
{
        _cleanup_close_ int blobs_fd = -EBADF, algorithm_fd = -EBADF;
        int fd;

        if (!oci_digest_is_valid(d->digest))
                return fail(ret_error, -EBADMSG, "Invalid digest '%s' in the OCI layout",
                            d->digest);

        blobs_fd = open_beneath(dir_fd, "blobs", O_RDONLY | O_DIRECTORY);
        if (blobs_fd < 0)
                return fail(ret_error, blobs_fd, "The OCI layout has no blobs directory: %s",
                            strerror(-blobs_fd));
        algorithm_fd = open_beneath(blobs_fd, "sha256", O_RDONLY | O_DIRECTORY);
        if (algorithm_fd < 0)
                return fail(ret_error, algorithm_fd,
                            "The OCI layout has no blobs/sha256 directory: %s",
                            strerror(-algorithm_fd));
        fd = open_beneath(algorithm_fd, d->digest + strlen("sha256:"), O_RDONLY);
        if (fd < 0)
                return fail(ret_error, fd, "Blob '%s' of the OCI layout is missing: %s", d->digest,
                            strerror(-fd));
        return fd;
}

static int check_blob(const OciDescriptor *d, uint64_t size, const char *digest, char **ret_error)
{
        if (size != d->size)
                return fail(ret_error, -EBADMSG,
                            "Blob '%s' of the OCI layout has %" PRIu64 " bytes but its "
                            "descriptor says %" PRIu64 ": the layout is corrupt",
                            d->digest, size, d->size);
        if (!streq(digest, d->digest))
                return fail(ret_error, -EBADMSG,
                            "Blob '%s' of the OCI layout has the digest '%s': the layout is "
                            "corrupt",
                            d->digest, digest);
        return 0;
}

/* Reads a JSON blob (manifest, index or config) into memory and verifies it. */
static int read_blob(int dir_fd, const OciDescriptor *d, size_t max_size, char **ret,
                     size_t *ret_size, char **ret_error)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *data = NULL, *digest = NULL;
        size_t size;
        int r;

        if (d->size > max_size)
                return fail(ret_error, -EFBIG,
                            "Blob '%s' of the OCI layout is larger than %zu bytes", d->digest,
                            max_size);
        fd = open_blob(dir_fd, d, ret_error);
        if (fd < 0)
                return fd;
        r = read_fd_bounded(fd, max_size, &data, &size);
        if (r < 0)
                return fail(ret_error, r, "Failed to read blob '%s' of the OCI layout: %s",
                            d->digest, strerror(-r));
        r = sha256_buffer(data, size, &digest);
        if (r < 0)
                return r;
        r = check_blob(d, size, digest, ret_error);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(data);
        *ret_size = size;
        return 0;
}

/* Copies a layer blob into scratch while hashing it, so the bytes applied later are the bytes
 * verified, even when the layout changes meanwhile. */
static int copy_layer_blob(ImportState *s, int dir_fd, const OciDescriptor *d, size_t index,
                           uint64_t *done, uint64_t total, char **ret_path, char **ret_error)
{
        _cleanup_close_ int in = -EBADF, out = -EBADF;
        _cleanup_(evp_md_ctx_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
        _cleanup_free_ char *path = NULL, *name = NULL, *digest = NULL;
        _cleanup_free_ char *buf = malloc(ARCHIVE_BLOCK);
        uint64_t size = 0;
        int r;

        if (!md || !buf)
                return -ENOMEM;
        if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
                return -EIO;
        in = open_blob(dir_fd, d, ret_error);
        if (in < 0)
                return in;
        if (asprintf(&name, "layer-%zu", index) < 0)
                return -ENOMEM;
        r = scratch_create(s, name, &path, &out);
        if (r < 0)
                return r;

        for (;;) {
                ssize_t n;

                if (cancelled(s->opts))
                        return -ECANCELED;
                n = read(in, buf, ARCHIVE_BLOCK);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return fail(ret_error, negative_errno(),
                                    "Failed to read blob '%s' of the OCI layout: %m", d->digest);
                if (n == 0)
                        break;
                size += (uint64_t)n;
                if (size > d->size)
                        break; /* check_blob() names the size mismatch */
                if (EVP_DigestUpdate(md, buf, (size_t)n) != 1)
                        return -EIO;
                r = write_all(out, buf, (size_t)n);
                if (r < 0)
                        return fail(ret_error, r, "Failed to copy blob '%s' to '%s': %s", d->digest,
                                    path, strerror(-r));
                *done += (uint64_t)n;
                report(s, IMAGE_PULL_STEP_VERIFY, *done, total);
        }

        r = digest_finish(md, &digest);
        if (r < 0)
                return r;
        r = check_blob(d, size, digest, ret_error);
        if (r < 0)
                return r;
        *ret_path = TAKE_PTR(path);
        return 0;
}

static int check_layout_version(int dir_fd, char **ret_error)
{
        _cleanup_free_ char *data = NULL;
        _cleanup_json_ json_object *j = NULL;
        json_object *version;
        size_t size;
        int r;

        r = read_layout_file(dir_fd, "oci-layout", 64 * 1024, &data, &size, ret_error);
        if (r < 0)
                return r;
        j = json_tokener_parse(data);
        if (!j || !json_object_object_get_ex(j, "imageLayoutVersion", &version) ||
            !json_object_is_type(version, json_type_string))
                return fail(ret_error, -EBADMSG,
                            "The oci-layout file of the OCI layout has no imageLayoutVersion");
        if (!streq(json_object_get_string(version), OCI_LAYOUT_VERSION))
                return fail(ret_error, -EOPNOTSUPP,
                            "OCI layout version '%s' is not supported: banger reads "
                            "version " OCI_LAYOUT_VERSION,
                            json_object_get_string(version));
        return 0;
}

/* Picks the manifest descriptor from index.json: the only entry, or the entry for the
 * platform. Stores the entry's ref.name annotation in *ret_ref_name (NULL when none). */
static int select_from_index_json(ImportState *s, const char *data, size_t size, OciDescriptor *ret,
                                  char **ret_ref_name, char **ret_error)
{
        _cleanup_json_ json_object *j = json_tokener_parse(data);
        json_object *manifests, *entry, *v, *annotations;
        OciDescriptor d = {};
        int r;

        if (!j || !json_object_object_get_ex(j, "manifests", &manifests) ||
            !json_object_is_type(manifests, json_type_array))
                return fail(ret_error, -EBADMSG,
                            "index.json of the OCI layout has no 'manifests' array");
        if (json_object_array_length(manifests) == 0)
                return fail(ret_error, -ENOENT,
                            "index.json of the OCI layout lists no manifest: the layout is empty");

        if (json_object_array_length(manifests) > 1) {
                r = oci_index_select(data, size, s->opts->os, s->opts->architecture, &d, ret_error);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < json_object_array_length(manifests); i++) {
                        entry = json_object_array_get_idx(manifests, i);
                        if (json_object_object_get_ex(entry, "digest", &v) &&
                            json_object_is_type(v, json_type_string) &&
                            streq(json_object_get_string(v), d.digest))
                                break;
                        entry = NULL;
                }
        } else {
                entry = json_object_array_get_idx(manifests, 0);
                if (!json_object_is_type(entry, json_type_object) ||
                    !json_object_object_get_ex(entry, "digest", &v) ||
                    !json_object_is_type(v, json_type_string))
                        return fail(ret_error, -EBADMSG,
                                    "The manifest entry of index.json has no digest");
                d.digest = strdup(json_object_get_string(v));
                if (!d.digest)
                        return -ENOMEM;
                if (json_object_object_get_ex(entry, "size", &v) &&
                    json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0)
                        d.size = (uint64_t)json_object_get_int64(v);
                else {
                        oci_descriptor_done(&d);
                        return fail(ret_error, -EBADMSG,
                                    "The manifest entry of index.json has no valid size");
                }
                if (json_object_object_get_ex(entry, "mediaType", &v) &&
                    json_object_is_type(v, json_type_string))
                        d.media_type = strdup(json_object_get_string(v));
        }

        *ret_ref_name = NULL;
        if (entry && json_object_object_get_ex(entry, "annotations", &annotations) &&
            json_object_object_get_ex(annotations, REF_NAME_ANNOTATION, &v) &&
            json_object_is_type(v, json_type_string)) {
                *ret_ref_name = strdup(json_object_get_string(v));
                if (!*ret_ref_name) {
                        oci_descriptor_done(&d);
                        return -ENOMEM;
                }
        }
        *ret = d;
        return 0;
}

/* Reads the manifest that desc names, going through a nested index to the platform's manifest. */
static int read_layout_manifest(ImportState *s, int dir_fd, const OciDescriptor *desc,
                                OciManifest **ret, char **ret_error)
{
        _cleanup_free_ char *data = NULL;
        OciDocumentKind kind;
        size_t size;
        int r;

        r = read_blob(dir_fd, desc, OCI_MANIFEST_SIZE_MAX, &data, &size, ret_error);
        if (r < 0)
                return r;
        r = oci_document_kind(data, size, desc->media_type, &kind, ret_error);
        if (r < 0)
                return r;

        if (kind == OCI_DOCUMENT_INDEX) {
                OciDescriptor selected = {};

                r = oci_index_select(data, size, s->opts->os, s->opts->architecture, &selected,
                                     ret_error);
                if (r < 0)
                        return r;
                free(TAKE_PTR(data));
                r = read_blob(dir_fd, &selected, OCI_MANIFEST_SIZE_MAX, &data, &size, ret_error);
                if (r >= 0)
                        r = oci_document_kind(data, size, selected.media_type, &kind, ret_error);
                if (r >= 0 && kind != OCI_DOCUMENT_MANIFEST)
                        r = fail(ret_error, -EBADMSG,
                                 "The index '%s' of the OCI layout points to another index",
                                 desc->digest);
                if (r >= 0) {
                        free(s->digest);
                        s->digest = strdup(selected.digest);
                        if (!s->digest)
                                r = -ENOMEM;
                }
                oci_descriptor_done(&selected);
                if (r < 0)
                        return r;
        } else {
                s->digest = strdup(desc->digest);
                if (!s->digest)
                        return -ENOMEM;
        }

        return oci_manifest_parse(data, size, ret, ret_error);
}

/* A ref.name annotation is either a full reference or only a tag, which is what
 * "skopeo copy ... oci:DIR:TAG" writes. Only a full reference names the image on its own. */
static bool ref_name_is_reference(const char *ref_name)
{
        return strchr(ref_name, '/') || strchr(ref_name, ':') || strchr(ref_name, '@');
}

static int import_oci_layout(ImportState *s, char **ret_error)
{
        const ImageImportOptions *opts = s->opts;
        _cleanup_(oci_manifest_freep) OciManifest *m = NULL;
        _cleanup_free_ char *index = NULL, *ref_name = NULL, *config = NULL;
        OciDescriptor desc = {};
        uint64_t done = 0, total = 0;
        size_t index_size, config_size;
        int r;

        r = check_layout_version(opts->source_fd, ret_error);
        if (r < 0)
                return r;
        r = read_layout_file(opts->source_fd, "index.json", OCI_MANIFEST_SIZE_MAX, &index,
                             &index_size, ret_error);
        if (r < 0)
                return r;
        r = select_from_index_json(s, index, index_size, &desc, &ref_name, ret_error);
        if (r < 0)
                return r;
        r = read_layout_manifest(s, opts->source_fd, &desc, &m, ret_error);
        oci_descriptor_done(&desc);
        if (r < 0)
                return r;

        if (opts->name)
                r = set_name(s, opts->name, ret_error);
        else if (ref_name && ref_name_is_reference(ref_name))
                r = set_name(s, ref_name, ret_error);
        else
                r = fail(ret_error, -EINVAL,
                         "The OCI layout names no image%s%s%s: pass a name with --name",
                         ref_name ? " (its ref.name annotation is only the tag '" : "",
                         strempty(ref_name), ref_name ? "')" : "");
        if (r < 0)
                return r;

        r = read_blob(opts->source_fd, &m->config, OCI_CONFIG_SIZE_MAX, &config, &config_size,
                      ret_error);
        if (r < 0)
                return r;
        s->n_layers = m->n_layers;
        r = use_config(s, config, config_size, s->name, ret_error);
        if (r < 0)
                return r;

        for (size_t i = 0; i < m->n_layers; i++)
                total += m->layers[i].size;
        report(s, IMAGE_PULL_STEP_VERIFY, 0, total);
        s->layer_paths = calloc(m->n_layers + 1, sizeof(char *));
        if (!s->layer_paths)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_layers; i++) {
                r = copy_layer_blob(s, opts->source_fd, &m->layers[i], i, &done, total,
                                    &s->layer_paths[i], ret_error);
                if (r < 0)
                        return r;
        }
        s->layers_bytes = total;
        return 0;
}

/* Tarballs */

static int archive_open_fd(int fd, bool raw, struct archive **ret, char **ret_error)
{
        _cleanup_(archive_read_freep) struct archive *a = archive_read_new();
        int r;

        if (!a)
                return -ENOMEM;
        if (lseek(fd, 0, SEEK_SET) < 0)
                return fail(ret_error, negative_errno(),
                            "The image source is not seekable: pass a regular file");
        /* Only filters that libarchive implements in-process: for a filter it was built
         * without it would run an external program on untrusted input. */
        if (archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
            archive_read_support_filter_bzip2(a) != ARCHIVE_OK ||
            archive_read_support_filter_xz(a) != ARCHIVE_OK ||
            archive_read_support_filter_lzma(a) != ARCHIVE_OK ||
            archive_read_support_filter_lz4(a) != ARCHIVE_OK ||
            archive_read_support_filter_zstd(a) != ARCHIVE_OK)
                return fail(ret_error, -EOPNOTSUPP,
                            "libarchive lacks a built-in gzip, bzip2, xz, lz4 or zstd decoder: "
                            "install a libarchive built with them");
        r = raw ? archive_read_support_format_raw(a) : archive_read_support_format_tar(a);
        if (r != ARCHIVE_OK)
                return -EOPNOTSUPP;
        if (archive_read_open_fd(a, fd, ARCHIVE_BLOCK) != ARCHIVE_OK)
                return fail(ret_error, -EBADMSG, "The image source is no readable archive: %s",
                            archive_error_string(a));
        *ret = TAKE_PTR(a);
        return 0;
}

/* True for the top-level directories of a root file system, which never occur in a
 * docker-archive, so detection can stop there instead of reading the whole tarball. */
static bool is_rootfs_marker(const char *path)
{
        static const char *const markers[] = { "bin", "etc", "lib", "usr", "sbin", "var" };
        size_t n = strcspn(path, "/");

        for (size_t i = 0; i < ELEMENTSOF(markers); i++)
                if (strlen(markers[i]) == n && strneq(path, markers[i], n))
                        return true;
        return false;
}

int image_import_detect_format(int source_fd, ImageImportFormat *ret, char **ret_error)
{
        _cleanup_(archive_read_freep) struct archive *a = NULL;
        struct archive_entry *entry;
        bool oci_layout = false;
        struct stat st;
        int r;

        if (fstat(source_fd, &st) < 0)
                return negative_errno();
        if (S_ISDIR(st.st_mode)) {
                *ret = IMAGE_IMPORT_OCI_LAYOUT;
                return 0;
        }
        if (!S_ISREG(st.st_mode))
                return fail(ret_error, -EINVAL,
                            "The image source is neither a directory nor a regular file");

        r = archive_open_fd(source_fd, false, &a, ret_error);
        if (r < 0)
                return r;
        for (;;) {
                _cleanup_free_ char *path = NULL;

                r = archive_read_next_header(a, &entry);
                if (r == ARCHIVE_EOF)
                        break;
                if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
                        return fail(ret_error, -EBADMSG, "The image source is no tar archive: %s",
                                    archive_error_string(a));
                if (layer_normalize_path(archive_entry_pathname(entry), &path) < 0)
                        continue;
                if (streq(path, "manifest.json")) {
                        *ret = IMAGE_IMPORT_DOCKER_ARCHIVE;
                        return 0;
                }
                if (streq(path, "oci-layout"))
                        oci_layout = true;
                if (is_rootfs_marker(path))
                        break;
        }
        if (oci_layout)
                return fail(ret_error, -EOPNOTSUPP,
                            "The tarball is an OCI layout without a manifest.json: unpack it "
                            "with tar and import the directory");
        *ret = IMAGE_IMPORT_ROOTFS;
        return 0;
}

/* docker-archive */

typedef struct Member {
        char *path; /* normalised path inside the archive */
        char *file; /* the extracted copy in scratch */
} Member;

typedef struct MemberList {
        Member *members;
        size_t n;
} MemberList;

static void member_list_done(MemberList *l)
{
        for (size_t i = 0; i < l->n; i++) {
                free(l->members[i].path);
                free(l->members[i].file);
        }
        free(l->members);
}

static const char *member_file(const MemberList *l, const char *path)
{
        _cleanup_free_ char *normalized = NULL;

        if (layer_normalize_path(path, &normalized) < 0)
                return NULL;
        for (size_t i = 0; i < l->n; i++)
                if (streq(l->members[i].path, normalized))
                        return l->members[i].file;
        return NULL;
}

/* Extracts one member while hashing it. A member under blobs/sha256/ must match its name. */
static int extract_member(ImportState *s, struct archive *a, const char *path, MemberList *l,
                          char **ret_error)
{
        _cleanup_(evp_md_ctx_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
        _cleanup_free_ char *file = NULL, *name = NULL, *digest = NULL;
        _cleanup_free_ char *buf = malloc(ARCHIVE_BLOCK);
        _cleanup_close_ int fd = -EBADF;
        Member *members;
        int r;

        if (!md || !buf)
                return -ENOMEM;
        if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
                return -EIO;
        if (asprintf(&name, "member-%zu", l->n) < 0)
                return -ENOMEM;
        r = scratch_create(s, name, &file, &fd);
        if (r < 0)
                return r;

        for (;;) {
                la_ssize_t n;

                if (cancelled(s->opts))
                        return -ECANCELED;
                n = archive_read_data(a, buf, ARCHIVE_BLOCK);
                if (n < 0)
                        return fail(ret_error, -EBADMSG,
                                    "Failed to read '%s' from the docker-archive: %s", path,
                                    archive_error_string(a));
                if (n == 0)
                        break;
                if (EVP_DigestUpdate(md, buf, (size_t)n) != 1)
                        return -EIO;
                r = write_all(fd, buf, (size_t)n);
                if (r < 0)
                        return fail(ret_error, r, "Failed to extract '%s' to '%s': %s", path, file,
                                    strerror(-r));
        }

        if (strneq(path, "blobs/sha256/", 13)) {
                r = digest_finish(md, &digest);
                if (r < 0)
                        return r;
                if (!streq(digest + 7, path + 13))
                        return fail(ret_error, -EBADMSG,
                                    "Member '%s' of the docker-archive has the digest '%s': the "
                                    "archive is corrupt",
                                    path, digest);
        }

        members = reallocarray(l->members, l->n + 1, sizeof(Member));
        if (!members)
                return -ENOMEM;
        l->members = members;
        l->members[l->n].path = strdup(path);
        if (!l->members[l->n].path)
                return -ENOMEM;
        l->members[l->n].file = TAKE_PTR(file);
        l->n++;
        return 0;
}

static int extract_archive(ImportState *s, MemberList *l, char **ret_error)
{
        _cleanup_(archive_read_freep) struct archive *a = NULL;
        struct archive_entry *entry;
        int r;

        r = archive_open_fd(s->opts->source_fd, false, &a, ret_error);
        if (r < 0)
                return r;
        for (;;) {
                _cleanup_free_ char *path = NULL;

                r = archive_read_next_header(a, &entry);
                if (r == ARCHIVE_EOF)
                        return 0;
                if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
                        return fail(ret_error, -EBADMSG, "Failed to read the docker-archive: %s",
                                    archive_error_string(a));
                if (archive_entry_filetype(entry) != AE_IFREG)
                        continue;
                if (layer_normalize_path(archive_entry_pathname(entry), &path) < 0)
                        return fail(ret_error, -EINVAL,
                                    "Member '%s' of the docker-archive leaves the archive root",
                                    archive_entry_pathname(entry));
                if (l->n >= ARCHIVE_MEMBERS_MAX)
                        return fail(ret_error, -E2BIG, "The docker-archive has more than %d files",
                                    ARCHIVE_MEMBERS_MAX);
                r = extract_member(s, a, path, l, ret_error);
                if (r < 0)
                        return r;
        }
}

static int json_get_string_array(json_object *j, const char *key, char ***ret)
{
        _cleanup_strv_free_ char **l = NULL;
        json_object *a;
        int r;

        if (!json_object_object_get_ex(j, key, &a) || json_object_is_type(a, json_type_null)) {
                *ret = NULL;
                return 0;
        }
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

/* Finds the manifest.json entry to import: the one whose RepoTags contain the requested name,
 * else the only one. */
static int select_docker_entry(ImportState *s, json_object *manifest, json_object **ret,
                               char ***ret_tags, char **ret_error)
{
        _cleanup_free_ char *requested = NULL;
        size_t n;
        int r;

        if (!json_object_is_type(manifest, json_type_array) ||
            (n = json_object_array_length(manifest)) == 0)
                return fail(ret_error, -EBADMSG,
                            "manifest.json of the docker-archive is no non-empty JSON array");
        if (s->opts->name && oci_reference_normalize(s->opts->name, &requested) < 0)
                return fail(ret_error, -EINVAL,
                            "Invalid image name '%s': use NAME[:TAG] or REGISTRY/NAME[:TAG]",
                            s->opts->name);

        for (size_t i = 0; i < n; i++) {
                json_object *entry = json_object_array_get_idx(manifest, i);
                _cleanup_strv_free_ char **tags = NULL;

                if (!json_object_is_type(entry, json_type_object))
                        return fail(ret_error, -EBADMSG,
                                    "Entry %zu of manifest.json is no JSON object", i);
                r = json_get_string_array(entry, "RepoTags", &tags);
                if (r < 0)
                        return fail(ret_error, r,
                                    "RepoTags of entry %zu of manifest.json is no "
                                    "array of strings",
                                    i);
                bool match = n == 1;
                for (char **t = tags; requested && t && *t; t++) {
                        _cleanup_free_ char *normalized = NULL;
                        if (oci_reference_normalize(*t, &normalized) >= 0 &&
                            streq(normalized, requested))
                                match = true;
                }
                if (match) {
                        *ret = entry;
                        *ret_tags = TAKE_PTR(tags);
                        return 0;
                }
        }
        return fail(ret_error, -ENOENT,
                    "The docker-archive contains %zu images and none is tagged '%s': pass one of "
                    "its RepoTags with --name",
                    n, strempty(s->opts->name));
}

static int import_docker_archive(ImportState *s, char **ret_error)
{
        _cleanup_(member_list_done) MemberList members = {};
        _cleanup_json_ json_object *manifest = NULL;
        _cleanup_free_ char *data = NULL, *config = NULL;
        _cleanup_strv_free_ char **tags = NULL, **layers = NULL;
        json_object *entry = NULL, *v;
        const char *file;
        size_t size, config_size;
        int r;

        report(s, IMAGE_PULL_STEP_VERIFY, 0, 0);
        r = extract_archive(s, &members, ret_error);
        if (r < 0)
                return r;

        file = member_file(&members, "manifest.json");
        if (!file)
                return fail(ret_error, -EBADMSG,
                            "The docker-archive has no manifest.json: write it with 'docker save'");
        r = read_full_file(file, OCI_MANIFEST_SIZE_MAX, &data, &size);
        if (r < 0)
                return fail(ret_error, r, "Failed to read manifest.json of the docker-archive: %s",
                            strerror(-r));
        manifest = json_tokener_parse(data);
        if (!manifest)
                return fail(ret_error, -EBADMSG,
                            "manifest.json of the docker-archive is not valid JSON");
        r = select_docker_entry(s, manifest, &entry, &tags, ret_error);
        if (r < 0)
                return r;

        if (s->opts->name)
                r = set_name(s, s->opts->name, ret_error);
        else if (tags && tags[0])
                r = set_name(s, tags[0], ret_error);
        else
                r = fail(ret_error, -EINVAL,
                         "The docker-archive has no RepoTags: pass a name with --name");
        if (r < 0)
                return r;

        if (!json_object_object_get_ex(entry, "Config", &v) ||
            !json_object_is_type(v, json_type_string))
                return fail(ret_error, -EBADMSG, "The manifest.json entry has no 'Config' string");
        file = member_file(&members, json_object_get_string(v));
        if (!file)
                return fail(ret_error, -EBADMSG,
                            "Config '%s' named in manifest.json is missing from the archive",
                            json_object_get_string(v));
        r = read_full_file(file, OCI_CONFIG_SIZE_MAX, &config, &config_size);
        if (r < 0)
                return fail(ret_error, r, "Failed to read the config of the docker-archive: %s",
                            strerror(-r));
        r = sha256_buffer(config, config_size, &s->digest);
        if (r < 0)
                return r;

        r = json_get_string_array(entry, "Layers", &layers);
        if (r < 0 || !layers)
                return fail(ret_error, -EBADMSG,
                            "The manifest.json entry has no 'Layers' array of strings");
        s->n_layers = strv_length(layers);
        if (s->n_layers > OCI_LAYERS_MAX)
                return fail(ret_error, -E2BIG, "The docker-archive has %zu layers, more than %d",
                            s->n_layers, OCI_LAYERS_MAX);
        r = use_config(s, config, config_size, s->name, ret_error);
        if (r < 0)
                return r;

        s->layer_paths = calloc(s->n_layers + 1, sizeof(char *));
        if (!s->layer_paths)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_layers; i++) {
                struct stat st;

                file = member_file(&members, layers[i]);
                if (!file)
                        return fail(ret_error, -EBADMSG,
                                    "Layer '%s' named in manifest.json is missing from the "
                                    "archive",
                                    layers[i]);
                s->layer_paths[i] = strdup(file);
                if (!s->layer_paths[i])
                        return -ENOMEM;
                if (stat(file, &st) >= 0)
                        s->layers_bytes += (uint64_t)st.st_size;
        }
        return 0;
}

/* rootfs tarball */

/* Decompresses the tarball into scratch, so the layer code, which decodes only gzip and zstd,
 * reads a plain tar, and the bytes cannot change between sizing and applying. */
static int import_rootfs(ImportState *s, char **ret_error)
{
        _cleanup_(archive_read_freep) struct archive *a = NULL;
        _cleanup_(evp_md_ctx_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
        _cleanup_free_ char *buf = malloc(ARCHIVE_BLOCK), *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct archive_entry *entry;
        uint64_t done = 0;
        int r;

        if (!s->opts->name)
                return fail(ret_error, -EINVAL,
                            "A rootfs tarball carries no image name: pass one with --name");
        r = set_name(s, s->opts->name, ret_error);
        if (r < 0)
                return r;
        if (!md || !buf)
                return -ENOMEM;
        if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
                return -EIO;

        r = archive_open_fd(s->opts->source_fd, true, &a, ret_error);
        if (r < 0)
                return r;
        r = archive_read_next_header(a, &entry);
        if (r != ARCHIVE_OK)
                return fail(ret_error, -EBADMSG, "Failed to read the rootfs tarball: %s",
                            archive_error_string(a));
        r = scratch_create(s, "rootfs.tar", &path, &fd);
        if (r < 0)
                return r;

        report(s, IMAGE_PULL_STEP_VERIFY, 0, 0);
        for (;;) {
                la_ssize_t n;

                if (cancelled(s->opts))
                        return -ECANCELED;
                n = archive_read_data(a, buf, ARCHIVE_BLOCK);
                if (n < 0)
                        return fail(ret_error, -EBADMSG,
                                    "Failed to decompress the rootfs tarball: %s",
                                    archive_error_string(a));
                if (n == 0)
                        break;
                if (EVP_DigestUpdate(md, buf, (size_t)n) != 1)
                        return -EIO;
                r = write_all(fd, buf, (size_t)n);
                if (r < 0)
                        return fail(ret_error, r, "Failed to write '%s': %s", path, strerror(-r));
                done += (uint64_t)n;
                report(s, IMAGE_PULL_STEP_VERIFY, done, 0);
        }

        r = digest_finish(md, &s->digest);
        if (r < 0)
                return r;
        /* NOTE: the tar is applied as an image layer, so ".wh."-prefixed entries act as
         * whiteouts instead of becoming files. */
        r = strv_extend(&s->layer_paths, path);
        if (r < 0)
                return r;
        s->n_layers = 1;
        s->layers_bytes = done;
        return 0;
}

/* Writing the ext4 file */

typedef struct UnpackProgress {
        const ImportState *state;
        uint64_t base;
} UnpackProgress;

static void on_layer_bytes(uint64_t done, void *userdata)
{
        UnpackProgress *p = userdata;

        report(p->state, IMAGE_PULL_STEP_UNPACK, p->base + done, p->state->layers_bytes);
}

static void on_layer_done(size_t index, void *userdata)
{
        UnpackProgress *p = userdata;
        struct stat st;

        if (stat(p->state->layer_paths[index], &st) >= 0)
                p->base += (uint64_t)st.st_size;
}

static int unpack(ImportState *s, uint64_t *ret_size, char **ret_error)
{
        UnpackProgress progress = { .state = s };
        LayerImageOptions build = {
                .layer_paths = s->layer_paths,
                .name = s->name,
                .output_path = s->opts->output_path,
                .apply = {
                        .cancel = s->opts->cancel,
                        .progress = on_layer_bytes,
                        .userdata = &progress,
                },
                .layer_done = on_layer_done,
        };
        int r;

        report(s, IMAGE_PULL_STEP_UNPACK, 0, s->layers_bytes);
        r = layer_build_image(&build, ret_size, ret_error);
        if (r < 0)
                return r;

        report(s, IMAGE_PULL_STEP_UNPACK, s->layers_bytes, s->layers_bytes);
        return 0;
}

static int build_info(ImportState *s, uint64_t size, ImageInfo **ret)
{
        _cleanup_(image_info_freep) ImageInfo *info = calloc(1, sizeof(ImageInfo));
        const char *os = s->config ? s->config->os : s->opts->os;
        const char *architecture = s->config ? s->config->architecture : s->opts->architecture;

        if (!info)
                return -ENOMEM;
        info->name = strdup(s->name);
        info->reference = strdup(s->reference);
        info->digest = strdup(s->digest);
        if (asprintf(&info->platform, "%s/%s", os, architecture) < 0)
                info->platform = NULL;
        if (!info->name || !info->reference || !info->digest || !info->platform)
                return -ENOMEM;
        info->size_bytes = size;
        if (s->config) {
                info->entrypoint = TAKE_PTR(s->config->entrypoint);
                info->cmd = TAKE_PTR(s->config->cmd);
                info->env = TAKE_PTR(s->config->env);
                info->user = TAKE_PTR(s->config->user);
                info->working_dir = TAKE_PTR(s->config->working_dir);
                info->created_usec = s->config->created_usec;
        }
        *ret = TAKE_PTR(info);
        return 0;
}

static int import(ImportState *s, ImageInfo **ret, char **ret_error)
{
        const ImageImportOptions *opts = s->opts;
        ImageImportFormat format = opts->format;
        uint64_t size = 0;
        int r;

        if (opts->source_fd < 0 || isempty(opts->work_dir) || isempty(opts->output_path) ||
            isempty(opts->os) || isempty(opts->architecture))
                return fail(ret_error, -EINVAL,
                            "Import options are incomplete: source, work directory, output path, "
                            "os and architecture are required");
        if (access(opts->output_path, F_OK) == 0)
                return fail(ret_error, -EEXIST,
                            "Output file '%s' already exists: remove it or choose another path",
                            opts->output_path);

        if (format == _IMAGE_IMPORT_FORMAT_INVALID) {
                r = image_import_detect_format(opts->source_fd, &format, ret_error);
                if (r < 0)
                        return r;
        }
        if (format < 0 || format >= _IMAGE_IMPORT_FORMAT_MAX)
                return -EINVAL;

        if (asprintf(&s->scratch, "%s/import-XXXXXX", opts->work_dir) < 0)
                return -ENOMEM;
        if (!mkdtemp(s->scratch)) {
                r = negative_errno();
                free(s->scratch);
                s->scratch = NULL;
                return fail(ret_error, r, "Failed to create a directory under '%s': %s",
                            opts->work_dir, strerror(-r));
        }

        if (format == IMAGE_IMPORT_OCI_LAYOUT)
                r = import_oci_layout(s, ret_error);
        else if (format == IMAGE_IMPORT_DOCKER_ARCHIVE)
                r = import_docker_archive(s, ret_error);
        else
                r = import_rootfs(s, ret_error);
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

int image_import(const ImageImportOptions *opts, ImageInfo **ret, char **ret_error)
{
        ImportState s = { .opts = opts };
        char *error = NULL;
        int r;

        r = import(&s, ret, &error);
        if (r == -ECANCELED) {
                free(error);
                error = NULL;
                fail(&error, r, "Import of '%s' was cancelled", strempty(opts->name));
        } else if (r < 0 && !error) {
                fail(&error, r, "Failed to import image '%s': %s", strempty(opts->name),
                     strerror(-r));
        }

        if (r < 0)
                log_debug("image-import: %s", strempty(error));
        import_state_done(&s);
        if (ret_error)
                *ret_error = error;
        else
                free(error);
        return r;
}
