#include <archive.h>
#include <archive_entry.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ext4.h"
#include "fileio.h"
#include "image-import.h"
#include "macro.h"
#include "oci-manifest.h"

#include "test-ext4-util.c"

/* The member tables below leave trailing fields out on purpose. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define MIB (1024 * 1024)

static char tmpdir[] = "/tmp/test-image-import-XXXXXX";
static char work_dir[sizeof(tmpdir) + 16];
static char output[sizeof(tmpdir) + 16];
static char source[sizeof(tmpdir) + 16];

static void setup(void)
{
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
        snprintf(work_dir, sizeof(work_dir), "%s/work", tmpdir);
        snprintf(output, sizeof(output), "%s/out.ext4", tmpdir);
        snprintf(source, sizeof(source), "%s/source", tmpdir);
        ck_assert_int_eq(mkdir(work_dir, 0755), 0);
}

static void teardown(void)
{
        ck_assert_int_eq(rm_rf(tmpdir), 0);
        strcpy(tmpdir, "/tmp/test-image-import-XXXXXX");
}

/* One member of a tarball: type 'f' file, 'd' directory, 'l' symlink. */
typedef struct Member {
        char type;
        const char *path;
        const char *data; /* file content or symlink target */
        size_t size;      /* content size for binary data; 0 means strlen(data) */
} Member;

enum { COMPRESS_NONE, COMPRESS_GZIP, COMPRESS_XZ, COMPRESS_BZIP2 };

/* Builds a tarball in memory. The caller frees *ret. */
static size_t build_tar(const Member *members, size_t n, int compression, void **ret)
{
        size_t capacity = 8 * MIB, used = 0;
        void *buf = malloc(capacity);
        struct archive *a = archive_write_new();

        ck_assert_ptr_nonnull(buf);
        ck_assert_int_eq(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
        if (compression == COMPRESS_GZIP)
                ck_assert_int_eq(archive_write_add_filter_gzip(a), ARCHIVE_OK);
        else if (compression == COMPRESS_XZ)
                ck_assert_int_eq(archive_write_add_filter_xz(a), ARCHIVE_OK);
        else if (compression == COMPRESS_BZIP2)
                ck_assert_int_eq(archive_write_add_filter_bzip2(a), ARCHIVE_OK);
        ck_assert_int_eq(archive_write_open_memory(a, buf, capacity, &used), ARCHIVE_OK);

        for (size_t i = 0; i < n; i++) {
                struct archive_entry *e = archive_entry_new();
                const Member *m = &members[i];
                size_t size = m->size ? m->size : strlen(strempty(m->data));

                archive_entry_set_pathname(e, m->path);
                archive_entry_set_mtime(e, 1600000000, 0);
                if (m->type == 'f') {
                        archive_entry_set_mode(e, AE_IFREG | 0644);
                        archive_entry_set_size(e, (la_int64_t)size);
                } else if (m->type == 'd') {
                        archive_entry_set_mode(e, AE_IFDIR | 0755);
                } else {
                        archive_entry_set_mode(e, AE_IFLNK | 0777);
                        archive_entry_set_symlink(e, m->data);
                }
                ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
                if (m->type == 'f' && size > 0)
                        ck_assert_int_eq(archive_write_data(a, m->data, size), (la_ssize_t)size);
                archive_entry_free(e);
        }
        ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
        archive_write_free(a);
        *ret = buf;
        return used;
}

static char *sha256_hex(const void *data, size_t size)
{
        unsigned char hash[32];
        unsigned n = 0;
        char *s = malloc(65);

        ck_assert_ptr_nonnull(s);
        ck_assert_int_eq(EVP_Digest(data, size, hash, &n, EVP_sha256(), NULL), 1);
        ck_assert_uint_eq(n, 32);
        for (unsigned i = 0; i < 32; i++)
                sprintf(s + 2 * i, "%02x", hash[i]);
        return s;
}

static void write_file(const char *dir, const char *name, const void *data, size_t size)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;

        ck_assert_int_ge(asprintf(&path, "%s/%s", dir, name), 0);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, data, size), (ssize_t)size);
}

static unsigned count_entries(const char *dir)
{
        DIR *d = opendir(dir);
        struct dirent *de;
        unsigned n = 0;

        ck_assert_ptr_nonnull(d);
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        n++;
        closedir(d);
        return n;
}

static const Member layer1[] = {
        { 'd', "etc" },
        { 'f', "etc/os-release", "ID=imported\n" },
        { 'd', "bin" },
        { 'f', "bin/sh", "#!shell\n" },
};
static const Member layer2[] = {
        { 'f', "etc/hostname", "layer-two\n" },
        { 'f', "etc/.wh.os-release", "" },
};

static const char config_template[] =
        "{\"architecture\":\"amd64\",\"os\":\"linux\",\"created\":\"2024-01-02T03:04:05Z\","
        "\"config\":{\"Cmd\":[\"/bin/sh\"],\"Env\":[\"PATH=/bin\"],\"WorkingDir\":\"/srv\"},"
        "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:%s\",\"sha256:%s\"]}}";

/* Writes a blob of the OCI layout and returns its hex digest. */
static char *put_blob(const char *layout, const void *data, size_t size)
{
        _cleanup_free_ char *dir = NULL;
        char *hex = sha256_hex(data, size);

        ck_assert_int_ge(asprintf(&dir, "%s/blobs/sha256", layout), 0);
        ck_assert_int_eq(mkdir_p(dir, 0755), 0);
        write_file(dir, hex, data, size);
        return hex;
}

typedef struct Layout {
        char *manifest_hex;
        char *layer_hex[2];
} Layout;

static void layout_done(Layout *l)
{
        free(l->manifest_hex);
        free(l->layer_hex[0]);
        free(l->layer_hex[1]);
}

/* Builds an OCI layout with two gzip layers at path. ref_name may be NULL. */
static void build_layout(const char *path, const char *ref_name, Layout *ret)
{
        _cleanup_free_ void *tar1 = NULL, *tar2 = NULL, *raw1 = NULL, *raw2 = NULL;
        _cleanup_free_ char *diff1 = NULL, *diff2 = NULL, *config = NULL, *config_hex = NULL;
        _cleanup_free_ char *manifest = NULL, *index = NULL, *annotations = NULL;
        size_t size1 = build_tar(layer1, ELEMENTSOF(layer1), COMPRESS_GZIP, &tar1);
        size_t size2 = build_tar(layer2, ELEMENTSOF(layer2), COMPRESS_GZIP, &tar2);
        size_t raw1_size = build_tar(layer1, ELEMENTSOF(layer1), COMPRESS_NONE, &raw1);
        size_t raw2_size = build_tar(layer2, ELEMENTSOF(layer2), COMPRESS_NONE, &raw2);
        Layout l = {};

        ck_assert_int_eq(mkdir_p(path, 0755), 0);
        write_file(path, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}", 31);

        diff1 = sha256_hex(raw1, raw1_size);
        diff2 = sha256_hex(raw2, raw2_size);
        ck_assert_int_ge(asprintf(&config, config_template, diff1, diff2), 0);
        config_hex = put_blob(path, config, strlen(config));
        l.layer_hex[0] = put_blob(path, tar1, size1);
        l.layer_hex[1] = put_blob(path, tar2, size2);

        ck_assert_int_ge(
                asprintf(&manifest,
                         "{\"schemaVersion\":2,\"mediaType\":\"" OCI_MEDIA_TYPE_MANIFEST "\","
                         "\"config\":{\"mediaType\":\"" OCI_MEDIA_TYPE_CONFIG "\","
                         "\"digest\":\"sha256:%s\",\"size\":%zu},\"layers\":["
                         "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
                         "\"digest\":\"sha256:%s\",\"size\":%zu},"
                         "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
                         "\"digest\":\"sha256:%s\",\"size\":%zu}]}",
                         config_hex, strlen(config), l.layer_hex[0], size1, l.layer_hex[1], size2),
                0);
        l.manifest_hex = put_blob(path, manifest, strlen(manifest));

        if (ref_name)
                ck_assert_int_ge(asprintf(&annotations,
                                          ",\"annotations\":{\"org.opencontainers.image.ref."
                                          "name\":\"%s\"}",
                                          ref_name),
                                 0);
        ck_assert_int_ge(asprintf(&index,
                                  "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":"
                                  "\"" OCI_MEDIA_TYPE_MANIFEST "\",\"digest\":\"sha256:%s\","
                                  "\"size\":%zu%s}]}",
                                  l.manifest_hex, strlen(manifest), strempty(annotations)),
                         0);
        write_file(path, "index.json", index, strlen(index));
        *ret = l;
}

static int run_import(int fd, ImageImportFormat format, const char *name, ImageInfo **ret,
                      char **ret_error)
{
        ImageImportOptions opts = {
                .source_fd = fd,
                .format = format,
                .name = name,
                .work_dir = work_dir,
                .output_path = output,
                .os = "linux",
                .architecture = "amd64",
        };

        return image_import(&opts, ret, ret_error);
}

static int open_source(void)
{
        int fd = open(source, O_RDONLY | O_CLOEXEC);

        ck_assert_int_ge(fd, 0);
        return fd;
}

static void assert_layered_content(void)
{
        ext2_filsys fs;
        _cleanup_free_ char *hostname = NULL, *sh = NULL;

        ck_assert_int_eq(run_e2fsck(output), 0);
        fs = open_fs(output);
        hostname = fs_read(fs, "etc/hostname");
        ck_assert_str_eq(hostname, "layer-two\n");
        sh = fs_read(fs, "bin/sh");
        ck_assert_str_eq(sh, "#!shell\n");
        ck_assert_uint_eq(fs_lookup(fs, "etc/os-release"), 0);
        ext2fs_close_free(&fs);
}

/* Asserts that a failed import left no output file and nothing in the work directory. */
static void assert_nothing_left(void)
{
        ck_assert_int_eq(access(output, F_OK), -1);
        ck_assert_uint_eq(count_entries(work_dir), 0);
        ck_assert_uint_eq(count_entries(tmpdir), 2); /* work and source */
}

START_TEST(import_oci_layout)
{
        _cleanup_(image_info_freep) ImageInfo *info = NULL;
        _cleanup_free_ char *error = NULL, *digest = NULL;
        _cleanup_close_ int fd = -EBADF;
        _cleanup_(layout_done) Layout l = {};

        build_layout(source, "127.0.0.1:5000/tools/app:2", &l);
        fd = open(source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);

        ck_assert_int_eq(run_import(fd, _IMAGE_IMPORT_FORMAT_INVALID, NULL, &info, &error), 0);
        ck_assert_ptr_null(error);
        ck_assert_str_eq(info->name, "127.0.0.1:5000/tools/app:2");
        ck_assert_str_eq(info->reference, "127.0.0.1:5000/tools/app:2");
        ck_assert_int_ge(asprintf(&digest, "sha256:%s", l.manifest_hex), 0);
        ck_assert_str_eq(info->digest, digest);
        ck_assert_str_eq(info->platform, "linux/amd64");
        ck_assert_ptr_nonnull(info->cmd);
        ck_assert_str_eq(info->cmd[0], "/bin/sh");
        ck_assert_ptr_null(info->cmd[1]);
        ck_assert_str_eq(info->working_dir, "/srv");
        ck_assert_uint_gt(info->size_bytes, 0);
        assert_layered_content();
        ck_assert_uint_eq(count_entries(work_dir), 0);
}
END_TEST

START_TEST(import_oci_layout_tag_only_needs_name)
{
        _cleanup_(image_info_freep) ImageInfo *info = NULL;
        _cleanup_free_ char *error = NULL;
        _cleanup_close_ int fd = -EBADF;
        _cleanup_(layout_done) Layout l = {};

        build_layout(source, "latest", &l);
        fd = open(source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);

        ck_assert_int_eq(run_import(fd, IMAGE_IMPORT_OCI_LAYOUT, NULL, &info, &error), -EINVAL);
        ck_assert_ptr_nonnull(strstr(error, "only the tag 'latest'"));
        ck_assert_ptr_nonnull(strstr(error, "--name"));
        assert_nothing_left();

        free(error);
        error = NULL;
        ck_assert_int_eq(run_import(fd, IMAGE_IMPORT_OCI_LAYOUT, "app", &info, &error), 0);
        ck_assert_str_eq(info->name, "docker.io/library/app:latest");
        ck_assert_str_eq(info->reference, "app");
}
END_TEST

/* Each case damages one file of a valid layout. */
static const struct {
        const char *what;
        int layer;        /* index of the layer blob to overwrite, or -1 */
        const char *file; /* a layout file to overwrite instead */
        const char *data;
        int expected;
        const char *message;
} bad_layouts[] = {
        { "flipped layer byte", 1, NULL, NULL, -EBADMSG, "has the digest" },
        { "truncated layer", 0, NULL, "", -EBADMSG, "has 0 bytes" },
        { "missing oci-layout", -1, "oci-layout", NULL, -ENOENT, "'oci-layout'" },
        { "newer layout version", -1, "oci-layout", "{\"imageLayoutVersion\":\"2.0.0\"}",
          -EOPNOTSUPP, "version '2.0.0'" },
        { "index.json not JSON", -1, "index.json", "{manifests", -EBADMSG, "'manifests'" },
        { "empty index.json", -1, "index.json", "{\"manifests\":[]}", -ENOENT, "no manifest" },
        { "index.json entry with bad digest", -1, "index.json",
          "{\"manifests\":[{\"digest\":\"sha256:../../etc\",\"size\":2}]}", -EBADMSG,
          "Invalid digest" },
};

START_TEST(import_oci_layout_rejects_damage)
{
        _cleanup_(image_info_freep) ImageInfo *info = NULL;
        _cleanup_free_ char *error = NULL, *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        _cleanup_(layout_done) Layout l = {};

        build_layout(source, "example/app:1", &l);
        if (bad_layouts[_i].layer >= 0) {
                _cleanup_free_ char *data = NULL;
                size_t size;

                ck_assert_int_ge(asprintf(&path, "%s/blobs/sha256/%s", source,
                                          l.layer_hex[bad_layouts[_i].layer]),
                                 0);
                ck_assert_int_eq(read_full_file(path, 16 * MIB, &data, &size), 0);
                if (bad_layouts[_i].data) {
                        size = strlen(bad_layouts[_i].data);
                } else {
                        ck_assert_uint_gt(size, 40);
                        data[size - 30] ^= 0x01;
                }
                ck_assert_int_eq(unlink(path), 0);
                ck_assert_int_eq(write_file_atomic(path, data, size, 0644), 0);
        } else {
                ck_assert_int_ge(asprintf(&path, "%s/%s", source, bad_layouts[_i].file), 0);
                ck_assert_int_eq(unlink(path), 0);
                if (bad_layouts[_i].data)
                        write_file(source, bad_layouts[_i].file, bad_layouts[_i].data,
                                   strlen(bad_layouts[_i].data));
        }
        fd = open(source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);

        ck_assert_int_eq(run_import(fd, _IMAGE_IMPORT_FORMAT_INVALID, NULL, &info, &error),
                         bad_layouts[_i].expected);
        ck_assert_ptr_null(info);
        ck_assert_ptr_nonnull(error);
        ck_assert_msg(strstr(error, bad_layouts[_i].message), "%s: unexpected message '%s'",
                      bad_layouts[_i].what, error);
        assert_nothing_left();
}
END_TEST

START_TEST(import_oci_layout_rejects_symlinked_blob)
{
        _cleanup_(image_info_freep) ImageInfo *info = NULL;
        _cleanup_free_ char *error = NULL, *path = NULL, *target = NULL;
        _cleanup_close_ int fd = -EBADF;
        _cleanup_(layout_done) Layout l = {};

        build_layout(source, "example/app:1", &l);
        ck_assert_int_ge(asprintf(&path, "%s/blobs/sha256/%s", source, l.layer_hex[0]), 0);
        ck_assert_int_ge(asprintf(&target, "%s/moved", tmpdir), 0);
        ck_assert_int_eq(rename(path, target), 0);
        ck_assert_int_eq(symlink(target, path), 0);
        fd = open(source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);

        ck_assert_int_eq(run_import(fd, IMAGE_IMPORT_OCI_LAYOUT, NULL, &info, &error), -ELOOP);
        ck_assert_ptr_nonnull(strstr(error, l.layer_hex[0]));
        ck_assert_int_eq(access(output, F_OK), -1);
        ck_assert_uint_eq(count_entries(work_dir), 0);
}
END_TEST

/* Writes a docker-archive to source: manifest.json (or the given text), the config as
 * HEX.json, the first layer uncompressed and the second gzip-compressed. */
static void build_docker_archive(const char *manifest_override, char **ret_config_hex)
{
        _cleanup_free_ void *raw1 = NULL, *raw2 = NULL, *gz2 = NULL, *archive = NULL;
        _cleanup_free_ char *diff1 = NULL, *diff2 = NULL, *config = NULL, *config_hex = NULL;
        _cleanup_free_ char *config_name = NULL, *manifest = NULL;
        size_t raw1_size = build_tar(layer1, ELEMENTSOF(layer1), COMPRESS_NONE, &raw1);
        size_t raw2_size = build_tar(layer2, ELEMENTSOF(layer2), COMPRESS_NONE, &raw2);
        size_t gz2_size = build_tar(layer2, ELEMENTSOF(layer2), COMPRESS_GZIP, &gz2);
        size_t size;

        diff1 = sha256_hex(raw1, raw1_size);
        diff2 = sha256_hex(raw2, raw2_size);
        ck_assert_int_ge(asprintf(&config, config_template, diff1, diff2), 0);
        config_hex = sha256_hex(config, strlen(config));
        ck_assert_int_ge(asprintf(&config_name, "%s.json", config_hex), 0);
        ck_assert_int_ge(asprintf(&manifest,
                                  "[{\"Config\":\"%s\",\"RepoTags\":[\"example/app:1\"],"
                                  "\"Layers\":[\"aaa/layer.tar\",\"./bbb/layer.tar\"]}]",
                                  config_name),
                         0);

        const Member members[] = {
                { 'd', "aaa" },
                { 'f', "aaa/layer.tar", raw1, raw1_size },
                { 'd', "bbb" },
                { 'f', "bbb/layer.tar", gz2, gz2_size },
                { 'f', config_name, config },
                { 'f', "manifest.json", manifest_override ? manifest_override : manifest },
        };
        size = build_tar(members, ELEMENTSOF(members), COMPRESS_NONE, &archive);
        write_file(tmpdir, "source", archive, size);
        if (ret_config_hex)
                *ret_config_hex = TAKE_PTR(config_hex);
}

START_TEST(import_docker_archive)
{
        _cleanup_(image_info_freep) ImageInfo *info = NULL;
        _cleanup_free_ char *error = NULL, *config_hex = NULL, *digest = NULL;
        _cleanup_close_ int fd = -EBADF;
        ImageImportFormat format;

        build_docker_archive(NULL, &config_hex);
        fd = open_source();
        ck_assert_int_eq(image_import_detect_format(fd, &format, NULL), 0);
        ck_assert_int_eq(format, IMAGE_IMPORT_DOCKER_ARCHIVE);

        ck_assert_int_eq(run_import(fd, _IMAGE_IMPORT_FORMAT_INVALID, NULL, &info, &error), 0);
        ck_assert_ptr_null(error);
        ck_assert_str_eq(info->name, "docker.io/example/app:1");
        ck_assert_int_ge(asprintf(&digest, "sha256:%s", config_hex), 0);
        ck_assert_str_eq(info->digest, digest);
        ck_assert_str_eq(info->env[0], "PATH=/bin");
        assert_layered_content();
        ck_assert_uint_eq(count_entries(work_dir), 0);
}
END_TEST

START_TEST(import_docker_archive_name_selects_tag)
{
        _cleanup_(image_info_freep) ImageInfo *info = NULL;
        _cleanup_free_ char *error = NULL;
        _cleanup_close_ int fd = -EBADF;

        build_docker_archive(NULL, NULL);
        fd = open_source();
        ck_assert_int_eq(run_import(fd, IMAGE_IMPORT_DOCKER_ARCHIVE, "renamed:3", &info, &error),
                         0);
        ck_assert_str_eq(info->name, "docker.io/library/renamed:3");
}
END_TEST

static const struct {
        const char *manifest;
        int expected;
        const char *message;
} bad_manifests[] = {
        { "not json at all", -EBADMSG, "not valid JSON" },
        { "[]", -EBADMSG, "non-empty JSON array" },
        { "{\"Config\":\"x.json\"}", -EBADMSG, "non-empty JSON array" },
        { "[42]", -EBADMSG, "Entry 0 of manifest.json" },
        { "[{\"RepoTags\":[\"a:1\"],\"Layers\":[]}]", -EBADMSG, "no 'Config'" },
        { "[{\"Config\":\"missing.json\",\"RepoTags\":[\"a:1\"],\"Layers\":[]}]", -EBADMSG,
          "'missing.json'" },
        { "[{\"Config\":\"../../etc/passwd\",\"RepoTags\":[\"a:1\"],\"Layers\":[]}]", -EBADMSG,
          "'../../etc/passwd'" },
        { "[{\"Config\":\"manifest.json\",\"RepoTags\":[\"a:1\"],\"Layers\":[]}]", -EBADMSG,
          "image config" },
        { "[{\"Config\":\"x\",\"RepoTags\":[1],\"Layers\":[]}]", -EBADMSG, "RepoTags" },
        { "[{\"Config\":\"x\",\"Layers\":[]}]", -EINVAL, "no RepoTags" },
        { "[{\"Config\":\"x\",\"RepoTags\":[\"a:1\"]},{\"Config\":\"y\",\"RepoTags\":[\"b:1\"]}]",
          -ENOENT, "contains 2 images" },
};

START_TEST(import_docker_archive_bad_manifest)
{
        _cleanup_(image_info_freep) ImageInfo *info = NULL;
        _cleanup_free_ char *error = NULL;
        _cleanup_close_ int fd = -EBADF;

        build_docker_archive(bad_manifests[_i].manifest, NULL);
        fd = open_source();
        ck_assert_int_eq(run_import(fd, IMAGE_IMPORT_DOCKER_ARCHIVE, NULL, &info, &error),
                         bad_manifests[_i].expected);
        ck_assert_ptr_nonnull(error);
        ck_assert_msg(strstr(error, bad_manifests[_i].message),
                      "manifest '%s': unexpected message '%s'", bad_manifests[_i].manifest, error);
        assert_nothing_left();
}
END_TEST

START_TEST(import_docker_archive_layer_count_mismatch)
{
        _cleanup_(image_info_freep) ImageInfo *info = NULL;
        _cleanup_free_ char *error = NULL, *config_hex = NULL, *manifest = NULL;
        _cleanup_close_ int fd = -EBADF;

        build_docker_archive(NULL, &config_hex);
        ck_assert_int_ge(asprintf(&manifest,
                                  "[{\"Config\":\"%s.json\",\"RepoTags\":[\"a:1\"],"
                                  "\"Layers\":[\"aaa/layer.tar\"]}]",
                                  config_hex),
                         0);
        build_docker_archive(manifest, NULL);
        fd = open_source();
        ck_assert_int_eq(run_import(fd, IMAGE_IMPORT_DOCKER_ARCHIVE, NULL, &info, &error),
                         -EBADMSG);
        ck_assert_ptr_nonnull(strstr(error, "lists 2 layers but its manifest 1"));
        assert_nothing_left();
}
END_TEST

static const Member rootfs[] = {
        { 'd', "etc" },
        { 'f', "etc/os-release", "ID=rootfs\n" },
        { 'd', "usr" },
        { 'd', "usr/bin" },
        { 'l', "bin", "usr/bin" },
        { 'f', "usr/bin/true",
          "\x7f"
          "ELF" },
};

static const int rootfs_compressions[] = { COMPRESS_NONE, COMPRESS_GZIP, COMPRESS_XZ,
                                           COMPRESS_BZIP2 };

START_TEST(import_rootfs_tarball)
{
        _cleanup_(image_info_freep) ImageInfo *info = NULL;
        _cleanup_free_ char *error = NULL, *os_release = NULL, *link = NULL;
        _cleanup_free_ void *archive = NULL;
        _cleanup_close_ int fd = -EBADF;
        ImageImportFormat format;
        ext2_filsys fs;
        size_t size;

        size = build_tar(rootfs, ELEMENTSOF(rootfs), rootfs_compressions[_i], &archive);
        write_file(tmpdir, "source", archive, size);
        fd = open_source();
        ck_assert_int_eq(image_import_detect_format(fd, &format, NULL), 0);
        ck_assert_int_eq(format, IMAGE_IMPORT_ROOTFS);

        ck_assert_int_eq(run_import(fd, _IMAGE_IMPORT_FORMAT_INVALID, "mine/base:1", &info, &error),
                         0);
        ck_assert_ptr_null(error);
        ck_assert_str_eq(info->name, "docker.io/mine/base:1");
        ck_assert_str_eq(info->platform, "linux/amd64");
        ck_assert_ptr_null(info->cmd);
        ck_assert_uint_eq(strlen(info->digest), strlen("sha256:") + 64);

        ck_assert_int_eq(run_e2fsck(output), 0);
        fs = open_fs(output);
        os_release = fs_read(fs, "etc/os-release");
        ck_assert_str_eq(os_release, "ID=rootfs\n");
        link = fs_read(fs, "bin");
        ck_assert_str_eq(link, "usr/bin");
        ck_assert_uint_ne(fs_lookup(fs, "usr/bin/true"), 0);
        ext2fs_close_free(&fs);
        ck_assert_uint_eq(count_entries(work_dir), 0);
}
END_TEST

START_TEST(import_rootfs_requires_name)
{
        _cleanup_(image_info_freep) ImageInfo *info = NULL;
        _cleanup_free_ char *error = NULL;
        _cleanup_free_ void *archive = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t size;

        size = build_tar(rootfs, ELEMENTSOF(rootfs), COMPRESS_GZIP, &archive);
        write_file(tmpdir, "source", archive, size);
        fd = open_source();
        ck_assert_int_eq(run_import(fd, IMAGE_IMPORT_ROOTFS, NULL, &info, &error), -EINVAL);
        ck_assert_ptr_nonnull(strstr(error, "--name"));
        assert_nothing_left();
}
END_TEST

static const char *const escaping_paths[] = {
        "../escape",
        "etc/../../escape",
        "/../../../etc/shadow",
};

START_TEST(import_rootfs_rejects_escape)
{
        _cleanup_(image_info_freep) ImageInfo *info = NULL;
        _cleanup_free_ char *error = NULL;
        _cleanup_free_ void *archive = NULL;
        _cleanup_close_ int fd = -EBADF;
        const Member members[] = {
                { 'd', "etc" },
                { 'f', "etc/os-release", "ID=rootfs\n" },
                { 'f', escaping_paths[_i], "owned\n" },
        };
        size_t size;

        size = build_tar(members, ELEMENTSOF(members), COMPRESS_XZ, &archive);
        write_file(tmpdir, "source", archive, size);
        fd = open_source();
        ck_assert_int_eq(run_import(fd, IMAGE_IMPORT_ROOTFS, "x", &info, &error), -EINVAL);
        ck_assert_msg(strstr(error, escaping_paths[_i]), "'%s' not named in '%s'",
                      escaping_paths[_i], error);
        assert_nothing_left();
}
END_TEST

START_TEST(import_docker_archive_rejects_escaping_member)
{
        _cleanup_(image_info_freep) ImageInfo *info = NULL;
        _cleanup_free_ char *error = NULL;
        _cleanup_free_ void *archive = NULL;
        _cleanup_close_ int fd = -EBADF;
        static const Member members[] = {
                { 'f', "manifest.json", "[]" },
                { 'f', "../outside.tar", "x" },
        };
        size_t size;

        size = build_tar(members, ELEMENTSOF(members), COMPRESS_NONE, &archive);
        write_file(tmpdir, "source", archive, size);
        fd = open_source();
        ck_assert_int_eq(run_import(fd, _IMAGE_IMPORT_FORMAT_INVALID, NULL, &info, &error),
                         -EINVAL);
        ck_assert_ptr_nonnull(strstr(error, "'../outside.tar'"));
        assert_nothing_left();
}
END_TEST

START_TEST(import_detect_rejects_oci_layout_tarball)
{
        _cleanup_(image_info_freep) ImageInfo *info = NULL;
        _cleanup_free_ char *error = NULL;
        _cleanup_free_ void *archive = NULL;
        _cleanup_close_ int fd = -EBADF;
        static const Member members[] = {
                { 'f', "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}" },
                { 'f', "index.json", "{\"manifests\":[]}" },
                { 'd', "blobs" },
        };
        size_t size;

        size = build_tar(members, ELEMENTSOF(members), COMPRESS_GZIP, &archive);
        write_file(tmpdir, "source", archive, size);
        fd = open_source();
        ck_assert_int_eq(run_import(fd, _IMAGE_IMPORT_FORMAT_INVALID, "x", &info, &error),
                         -EOPNOTSUPP);
        ck_assert_ptr_nonnull(strstr(error, "import the directory"));
        assert_nothing_left();
}
END_TEST

START_TEST(import_rejects_existing_output)
{
        _cleanup_(image_info_freep) ImageInfo *info = NULL;
        _cleanup_free_ char *error = NULL;
        _cleanup_free_ void *archive = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t size;

        size = build_tar(rootfs, ELEMENTSOF(rootfs), COMPRESS_NONE, &archive);
        write_file(tmpdir, "source", archive, size);
        write_file(tmpdir, "out.ext4", "keep", 4);
        fd = open_source();
        ck_assert_int_eq(run_import(fd, IMAGE_IMPORT_ROOTFS, "x", &info, &error), -EEXIST);
        ck_assert_ptr_nonnull(strstr(error, output));
}
END_TEST

START_TEST(import_format_strings)
{
        for (int f = 0; f < _IMAGE_IMPORT_FORMAT_MAX; f++)
                ck_assert_int_eq(image_import_format_from_string(image_import_format_to_string(f)),
                                 f);
        ck_assert_str_eq(image_import_format_to_string(IMAGE_IMPORT_DOCKER_ARCHIVE),
                         "docker-archive");
        ck_assert_int_eq(image_import_format_from_string("oci"), _IMAGE_IMPORT_FORMAT_INVALID);
        ck_assert_int_eq(image_import_format_from_string(NULL), _IMAGE_IMPORT_FORMAT_INVALID);
        ck_assert_ptr_null(image_import_format_to_string(_IMAGE_IMPORT_FORMAT_MAX));
}
END_TEST

static Suite *image_import_suite(void)
{
        Suite *s = suite_create("image-import");
        TCase *tc = tcase_create("core");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, import_oci_layout);
        tcase_add_test(tc, import_oci_layout_tag_only_needs_name);
        tcase_add_loop_test(tc, import_oci_layout_rejects_damage, 0, ELEMENTSOF(bad_layouts));
        tcase_add_test(tc, import_oci_layout_rejects_symlinked_blob);
        tcase_add_test(tc, import_docker_archive);
        tcase_add_test(tc, import_docker_archive_name_selects_tag);
        tcase_add_loop_test(tc, import_docker_archive_bad_manifest, 0, ELEMENTSOF(bad_manifests));
        tcase_add_test(tc, import_docker_archive_layer_count_mismatch);
        tcase_add_loop_test(tc, import_rootfs_tarball, 0, ELEMENTSOF(rootfs_compressions));
        tcase_add_test(tc, import_rootfs_requires_name);
        tcase_add_loop_test(tc, import_rootfs_rejects_escape, 0, ELEMENTSOF(escaping_paths));
        tcase_add_test(tc, import_docker_archive_rejects_escaping_member);
        tcase_add_test(tc, import_detect_rejects_oci_layout_tarball);
        tcase_add_test(tc, import_rejects_existing_output);
        tcase_add_test(tc, import_format_strings);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(image_import_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
