#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "oci-manifest.h"
#include "strv.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"
#define D4 "sha256:4444444444444444444444444444444444444444444444444444444444444444"

#define OCI_MANIFEST                                                                      \
        "{\"schemaVersion\":2,\"mediaType\":\"" OCI_MEDIA_TYPE_MANIFEST "\","             \
        "\"config\":{\"mediaType\":\"" OCI_MEDIA_TYPE_CONFIG "\",\"digest\":\"" D1        \
        "\",\"size\":1234},"                                                              \
        "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","     \
        "\"digest\":\"" D2 "\",\"size\":100},"                                            \
        "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+zstd\",\"digest\":\"" D3 \
        "\",\"size\":200}]}"

#define DOCKER_MANIFEST                                                                     \
        "{\"schemaVersion\":2,\"mediaType\":\"" DOCKER_MEDIA_TYPE_MANIFEST "\","            \
        "\"config\":{\"mediaType\":\"" DOCKER_MEDIA_TYPE_CONFIG "\",\"digest\":\"" D1       \
        "\",\"size\":5},"                                                                   \
        "\"layers\":[{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\"," \
        "\"digest\":\"" D2 "\",\"size\":7}]}"

START_TEST(manifest_parse_oci)
{
        _cleanup_(oci_manifest_freep) OciManifest *m = NULL;
        _cleanup_free_ char *error = NULL;

        ck_assert_int_eq(oci_manifest_parse(OCI_MANIFEST, strlen(OCI_MANIFEST), &m, &error), 0);
        ck_assert_str_eq(m->config.digest, D1);
        ck_assert_uint_eq(m->config.size, 1234);
        ck_assert_uint_eq(m->n_layers, 2);
        ck_assert_str_eq(m->layers[0].digest, D2);
        ck_assert_uint_eq(m->layers[0].size, 100);
        ck_assert_str_eq(m->layers[1].media_type, "application/vnd.oci.image.layer.v1.tar+zstd");
        ck_assert_str_eq(m->layers[1].digest, D3);
}
END_TEST

START_TEST(manifest_parse_docker)
{
        _cleanup_(oci_manifest_freep) OciManifest *m = NULL;

        ck_assert_int_eq(oci_manifest_parse(DOCKER_MANIFEST, strlen(DOCKER_MANIFEST), &m, NULL), 0);
        ck_assert_str_eq(m->config.media_type, DOCKER_MEDIA_TYPE_CONFIG);
        ck_assert_uint_eq(m->n_layers, 1);
        ck_assert_uint_eq(m->layers[0].size, 7);
}
END_TEST

#define CFG                                                                                       \
        "\"config\":{\"mediaType\":\"" OCI_MEDIA_TYPE_CONFIG "\",\"digest\":\"" D1 "\",\"size\":" \
        "1}"
#define LAYER(digest, size)                                                              \
        "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"" digest \
        "\",\"size\":" size "}"

static const struct {
        const char *json;
        int error;
        const char *message_part;
} bad_manifests[] = {
        { "", -EBADMSG, "not valid JSON" },
        { "[]", -EBADMSG, "not a JSON object" },
        { "{\"schemaVersion\":2", -EBADMSG, "not valid JSON" },
        { OCI_MANIFEST "x", -EBADMSG, "not valid JSON" },
        { "{\"schemaVersion\":1," CFG ",\"layers\":[" LAYER(D2, "1") "]}", -EBADMSG,
          "schemaVersion" },
        { "{\"schemaVersion\":\"2\"," CFG ",\"layers\":[" LAYER(D2, "1") "]}", -EBADMSG,
          "schemaVersion" },
        { "{\"schemaVersion\":2,\"mediaType\":\"" OCI_MEDIA_TYPE_INDEX "\"," CFG
          ",\"layers\":[" LAYER(D2, "1") "]}",
          -EMEDIUMTYPE, "media type" },
        { "{\"schemaVersion\":2,\"layers\":[" LAYER(D2, "1") "]}", -EBADMSG,
          "no config descriptor" },
        { "{\"schemaVersion\":2," CFG "}", -EBADMSG, "no 'layers' array" },
        { "{\"schemaVersion\":2," CFG ",\"layers\":[]}", -EBADMSG, "lists 0 layers" },
        { "{\"schemaVersion\":2," CFG ",\"layers\":[" LAYER("sha256:abc", "1") "]}", -EBADMSG,
          "invalid or unsupported digest 'sha256:abc'" },
        { "{\"schemaVersion\":2," CFG ",\"layers\":[" LAYER("sha512:"
                                                            "1111",
                                                            "1") "]}",
          -EBADMSG, "digest" },
        { "{\"schemaVersion\":2," CFG ",\"layers\":[" LAYER(D2, "-1") "]}", -EBADMSG, "size -1" },
        { "{\"schemaVersion\":2," CFG ",\"layers\":[" LAYER(D2, "68719476737") "]}", -EBADMSG,
          "size 68719476737" },
        { "{\"schemaVersion\":2," CFG ",\"layers\":[" LAYER(D2, "99999999999999999999") "]}",
          -EBADMSG, "size" },
        { "{\"schemaVersion\":2," CFG ",\"layers\":[" LAYER(D2, "1.5") "]}", -EBADMSG,
          "no integer size" },
        { "{\"schemaVersion\":2," CFG ",\"layers\":[{\"digest\":\"" D2 "\",\"size\":1}]}", -EBADMSG,
          "no mediaType" },
        { "{\"schemaVersion\":2," CFG ",\"layers\":[{\"mediaType\":\"x\",\"size\":1}]}", -EBADMSG,
          "no digest" },
        { "{\"schemaVersion\":2," CFG ",\"layers\":[7]}", -EBADMSG, "not a JSON object" },
        { "{\"schemaVersion\":2," CFG ",\"layers\":[{\"mediaType\":\"application/"
          "vnd.in-toto+json\",\"digest\":\"" D2 "\",\"size\":1}]}",
          -EMEDIUMTYPE, "unsupported media type 'application/vnd.in-toto+json'" },
        { "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/vnd.cncf.helm.config."
          "v1+json\",\"digest\":\"" D1 "\",\"size\":1},\"layers\":[" LAYER(D2, "1") "]}",
          -EMEDIUMTYPE, "not a container image" },
        { "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" OCI_MEDIA_TYPE_CONFIG
          "\",\"digest\":\"" D1 "\",\"size\":16777217},\"layers\":[" LAYER(D2, "1") "]}",
          -EBADMSG, "outside 0 to 16777216" },
};

START_TEST(manifest_parse_bad)
{
        _cleanup_(oci_manifest_freep) OciManifest *m = NULL;
        _cleanup_free_ char *error = NULL;
        const char *json = bad_manifests[_i].json;

        ck_assert_int_eq(oci_manifest_parse(json, strlen(json), &m, &error),
                         bad_manifests[_i].error);
        ck_assert_ptr_null(m);
        ck_assert_ptr_nonnull(error);
        ck_assert_msg(strstr(error, bad_manifests[_i].message_part), "message '%s' lacks '%s'",
                      error, bad_manifests[_i].message_part);
}
END_TEST

START_TEST(manifest_too_many_layers)
{
        _cleanup_free_ char *json = NULL, *error = NULL;
        _cleanup_(oci_manifest_freep) OciManifest *m = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&json, &len);

        ck_assert_ptr_nonnull(f);
        fputs("{\"schemaVersion\":2," CFG ",\"layers\":[", f);
        for (int i = 0; i <= OCI_LAYERS_MAX; i++)
                fprintf(f, "%s" LAYER(D2, "1"), i ? "," : "");
        fputs("]}", f);
        ck_assert_int_eq(fclose(f), 0);

        ck_assert_int_eq(oci_manifest_parse(json, len, &m, &error), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(error, "lists 257 layers"));
}
END_TEST

START_TEST(manifest_size_limit)
{
        size_t size = OCI_MANIFEST_SIZE_MAX + 1;
        _cleanup_free_ char *json = malloc(size), *error = NULL;
        OciManifest *m = NULL;

        ck_assert_ptr_nonnull(json);
        memset(json, ' ', size);
        ck_assert_int_eq(oci_manifest_parse(json, size, &m, &error), -EFBIG);
        ck_assert_ptr_nonnull(strstr(error, "more than the limit"));
}
END_TEST

#define ENTRY(type, digest, os, arch, extra)                                  \
        "{\"mediaType\":\"" type "\",\"digest\":\"" digest "\",\"size\":500," \
        "\"platform\":{\"os\":\"" os "\",\"architecture\":\"" arch "\"}" extra "}"

#define ENTRY_VARIANT(digest, arch, variant)                                                     \
        "{\"mediaType\":\"" OCI_MEDIA_TYPE_MANIFEST "\",\"digest\":\"" digest "\",\"size\":500," \
        "\"platform\":{\"os\":\"linux\",\"architecture\":\"" arch "\",\"variant\":\"" variant    \
        "\"}}"

#define ATTESTATION                                                                 \
        ",\"annotations\":{\"vnd.docker.reference.type\":\"attestation-manifest\"," \
        "\"vnd.docker.reference.digest\":\"" D1 "\"}"

static const struct {
        const char *json;
        const char *os, *arch;
        int error;
        const char *digest_or_message;
} indexes[] = {
        /* Docker list: amd64 second. */
        { "{\"schemaVersion\":2,\"mediaType\":\"" DOCKER_MEDIA_TYPE_LIST "\",\"manifests\":[" ENTRY(
                  DOCKER_MEDIA_TYPE_MANIFEST, D1, "linux", "arm64",
                  "") "," ENTRY(DOCKER_MEDIA_TYPE_MANIFEST, D2, "linux", "amd64", "") "]}",
          "linux", "amd64", 0, D2 },
        /* OCI index from BuildKit: the attestation comes first and is skipped. */
        { "{\"schemaVersion\":2,\"mediaType\":\"" OCI_MEDIA_TYPE_INDEX "\",\"manifests\":[" ENTRY(
                  OCI_MEDIA_TYPE_MANIFEST, D3, "unknown", "unknown",
                  ATTESTATION) "," ENTRY(OCI_MEDIA_TYPE_MANIFEST, D1, "linux", "amd64", "") "]}",
          "linux", "amd64", 0, D1 },
        /* An attestation that claims the platform is still skipped. */
        { "{\"schemaVersion\":2,\"manifests\":[" ENTRY(
                  OCI_MEDIA_TYPE_MANIFEST, D3, "linux", "amd64",
                  ATTESTATION) "," ENTRY(OCI_MEDIA_TYPE_MANIFEST, D4, "linux", "amd64", "") "]}",
          "linux", "amd64", 0, D4 },
        /* Nested indexes and entries without a platform are skipped. */
        { "{\"schemaVersion\":2,\"manifests\":[" ENTRY(
                  OCI_MEDIA_TYPE_INDEX, D3, "linux", "amd64",
                  "") ","
                      "{\"mediaType\":\"" OCI_MEDIA_TYPE_MANIFEST "\",\"digest\":\"" D2
                      "\",\"size\":1}," ENTRY(OCI_MEDIA_TYPE_MANIFEST, D1, "linux", "amd64",
                                              "") "]}",
          "linux", "amd64", 0, D1 },
        { "{\"schemaVersion\":2,\"manifests\":[" ENTRY(
                  OCI_MEDIA_TYPE_MANIFEST, D1, "linux", "arm64",
                  "") "," ENTRY(OCI_MEDIA_TYPE_MANIFEST, D2, "windows", "amd64",
                                "") "," ENTRY(OCI_MEDIA_TYPE_MANIFEST, D3, "unknown", "unknown",
                                              ATTESTATION) "]}",
          "linux", "amd64", -ENOENT,
          "no variant for the platform 'linux/amd64' (available: linux/arm64, windows/amd64)" },
        /* Without a requested variant, the baseline (no variant) wins over amd64/v3. */
        { "{\"schemaVersion\":2,\"manifests\":[" ENTRY_VARIANT(D1, "amd64", "v3") "," ENTRY(
                  OCI_MEDIA_TYPE_MANIFEST, D2, "linux", "amd64", "") "]}",
          "linux", "amd64", 0, D2 },
        /* Only another variant is there: it is taken. */
        { "{\"schemaVersion\":2,\"manifests\":[" ENTRY_VARIANT(D1, "amd64", "v3") "]}", "linux",
          "amd64", 0, D1 },
        /* A requested variant must match. */
        { "{\"schemaVersion\":2,\"manifests\":[" ENTRY_VARIANT(D1, "arm64", "v7") "," ENTRY_VARIANT(
                  D2, "arm64", "v8") "]}",
          "linux", "arm64/v8", 0, D2 },
        /* An entry without a variant is the baseline, arm64 v8. */
        { "{\"schemaVersion\":2,\"manifests\":[" ENTRY(OCI_MEDIA_TYPE_MANIFEST, D3, "linux",
                                                       "arm64", "") "]}",
          "linux", "arm64/v8", 0, D3 },
        { "{\"schemaVersion\":2,\"manifests\":[" ENTRY_VARIANT(D1, "arm64", "v8") "]}", "linux",
          "arm64/v7", -ENOENT, "'linux/arm64/v7' (available: linux/arm64/v8)" },
        { "{\"schemaVersion\":2,\"manifests\":[]}", "linux", "amd64", -ENOENT,
          "(available: none)" },
        { "{\"schemaVersion\":2}", "linux", "amd64", -EBADMSG, "no 'manifests' array" },
        { "{\"manifests\":[1]}", "linux", "amd64", -EBADMSG, "Entry 0" },
        { "{\"manifests\":[" ENTRY(OCI_MEDIA_TYPE_MANIFEST, "sha256:xyz", "linux", "amd64",
                                   "") "]}",
          "linux", "amd64", -EBADMSG, "digest 'sha256:xyz'" },
};

START_TEST(index_select_table)
{
        OciDescriptor d = {};
        _cleanup_free_ char *error = NULL;
        const char *json = indexes[_i].json;
        int r = oci_index_select(json, strlen(json), indexes[_i].os, indexes[_i].arch, &d, &error);

        ck_assert_int_eq(r, indexes[_i].error);
        if (r == 0) {
                ck_assert_str_eq(d.digest, indexes[_i].digest_or_message);
                ck_assert_uint_eq(d.size, 500);
                ck_assert_ptr_null(error);
        } else {
                ck_assert_ptr_null(d.digest);
                ck_assert_msg(strstr(error, indexes[_i].digest_or_message),
                              "message '%s' lacks '%s'", error, indexes[_i].digest_or_message);
        }
        oci_descriptor_done(&d);
}
END_TEST

static const struct {
        const char *json;
        const char *content_type;
        int error;
        OciDocumentKind kind;
} kinds[] = {
        { "{\"mediaType\":\"" OCI_MEDIA_TYPE_INDEX "\"}", NULL, 0, OCI_DOCUMENT_INDEX },
        { "{\"mediaType\":\"" DOCKER_MEDIA_TYPE_LIST "\"}", DOCKER_MEDIA_TYPE_LIST, 0,
          OCI_DOCUMENT_INDEX },
        { "{}", OCI_MEDIA_TYPE_MANIFEST, 0, OCI_DOCUMENT_MANIFEST },
        { "{}", " " OCI_MEDIA_TYPE_INDEX " ; charset=utf-8", 0, OCI_DOCUMENT_INDEX },
        { "{\"mediaType\":\"" DOCKER_MEDIA_TYPE_MANIFEST "\"}", "application/json", 0,
          OCI_DOCUMENT_MANIFEST },
        { "{\"mediaType\":\"" OCI_MEDIA_TYPE_MANIFEST "\"}", OCI_MEDIA_TYPE_INDEX, -EBADMSG, 0 },
        { "{}", NULL, -EBADMSG, 0 },
        { "{}", "application/json", -EMEDIUMTYPE, 0 },
        { "{\"mediaType\":\"application/vnd.docker.distribution.manifest.v1+prettyjws\"}", NULL,
          -EMEDIUMTYPE, 0 },
        { "not json", OCI_MEDIA_TYPE_MANIFEST, -EBADMSG, 0 },
};

START_TEST(document_kind_table)
{
        OciDocumentKind kind = _OCI_DOCUMENT_KIND_INVALID;
        _cleanup_free_ char *error = NULL;
        const char *json = kinds[_i].json;

        ck_assert_int_eq(
                oci_document_kind(json, strlen(json), kinds[_i].content_type, &kind, &error),
                kinds[_i].error);
        if (kinds[_i].error == 0)
                ck_assert_int_eq(kind, kinds[_i].kind);
        else
                ck_assert_ptr_nonnull(error);
}
END_TEST

START_TEST(config_parse_full)
{
        static const char json[] =
                "{\"architecture\":\"amd64\",\"os\":\"linux\","
                "\"created\":\"2024-01-02T03:04:05.123456789Z\","
                "\"config\":{\"Entrypoint\":[\"/bin/sh\",\"-c\"],\"Cmd\":[\"echo hi\"],"
                "\"Env\":[\"PATH=/usr/bin:/bin\",\"A=b c\"],\"User\":\"1000:1000\","
                "\"WorkingDir\":\"/srv\"},"
                "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" D1 "\",\"" D2 "\"]}}";
        _cleanup_(oci_image_config_freep) OciImageConfig *c = NULL;

        ck_assert_int_eq(oci_image_config_parse(json, strlen(json), &c, NULL), 0);
        ck_assert_str_eq(c->os, "linux");
        ck_assert_str_eq(c->architecture, "amd64");
        ck_assert_uint_eq(strv_length(c->entrypoint), 2);
        ck_assert_str_eq(c->entrypoint[1], "-c");
        ck_assert_uint_eq(strv_length(c->cmd), 1);
        ck_assert_str_eq(c->cmd[0], "echo hi");
        ck_assert_uint_eq(strv_length(c->env), 2);
        ck_assert_str_eq(c->env[1], "A=b c");
        ck_assert_str_eq(c->user, "1000:1000");
        ck_assert_str_eq(c->working_dir, "/srv");
        ck_assert_uint_eq(c->created_usec, 1704164645123456ULL);
        ck_assert_uint_eq(c->n_diff_ids, 2);
}
END_TEST

START_TEST(config_parse_minimal)
{
        static const char json[] = "{\"architecture\":\"amd64\",\"os\":\"linux\","
                                   "\"config\":{\"Entrypoint\":null,\"Cmd\":[],\"User\":\"\"},"
                                   "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
        _cleanup_(oci_image_config_freep) OciImageConfig *c = NULL;

        ck_assert_int_eq(oci_image_config_parse(json, strlen(json), &c, NULL), 0);
        ck_assert_ptr_null(c->entrypoint);
        ck_assert_ptr_nonnull(c->cmd);
        ck_assert_uint_eq(strv_length(c->cmd), 0);
        ck_assert_ptr_null(c->env);
        ck_assert_ptr_null(c->user);
        ck_assert_ptr_null(c->working_dir);
        ck_assert_uint_eq(c->created_usec, 0);
}
END_TEST

static const struct {
        const char *json;
        const char *message_part;
} bad_configs[] = {
        { "{\"os\":\"linux\",\"rootfs\":{\"diff_ids\":[]}}", "'architecture'" },
        { "{\"os\":\"linux\",\"architecture\":\"amd64\"}", "rootfs.diff_ids" },
        { "{\"os\":\"linux\",\"architecture\":\"amd64\",\"rootfs\":{\"diff_ids\":[]},"
          "\"created\":\"yesterday\"}",
          "'created' time 'yesterday'" },
        { "{\"os\":\"linux\",\"architecture\":\"amd64\",\"rootfs\":{\"diff_ids\":[]},"
          "\"config\":{\"Cmd\":\"sh\"}}",
          "'Cmd' is not an array" },
        { "{\"os\":\"linux\",\"architecture\":\"amd64\",\"rootfs\":{\"diff_ids\":[]},"
          "\"config\":{\"Env\":[1]}}",
          "'Env' contains a value that is not a string" },
};

START_TEST(config_parse_bad)
{
        _cleanup_(oci_image_config_freep) OciImageConfig *c = NULL;
        _cleanup_free_ char *error = NULL;
        const char *json = bad_configs[_i].json;

        ck_assert_int_eq(oci_image_config_parse(json, strlen(json), &c, &error), -EBADMSG);
        ck_assert_ptr_null(c);
        ck_assert_msg(strstr(error, bad_configs[_i].message_part), "message '%s' lacks '%s'", error,
                      bad_configs[_i].message_part);
}
END_TEST

static const struct {
        const char *input;
        int error;
        uint64_t usec;
} timestamps[] = {
        { "1970-01-01T00:00:00Z", 0, 0 },
        { "2024-01-02T03:04:05Z", 0, 1704164645000000ULL },
        { "2024-01-02T03:04:05.5Z", 0, 1704164645500000ULL },
        { "2024-01-02T04:04:05+01:00", 0, 1704164645000000ULL },
        { "2024-01-02T02:04:05.000001-01:00", 0, 1704164645000001ULL },
        { "2024-01-02T03:04:05", -EINVAL, 0 },
        { "2024-01-02T03:04:05.Z", -EINVAL, 0 },
        { "2024-01-02T03:04:05Zjunk", -EINVAL, 0 },
        { "2024-01-02T03:04:05+1:00", -EINVAL, 0 },
        { "1969-12-31T23:59:59Z", -EINVAL, 0 },
        { "", -EINVAL, 0 },
};

START_TEST(timestamp_table)
{
        uint64_t usec = 42;

        ck_assert_int_eq(oci_parse_timestamp(timestamps[_i].input, &usec), timestamps[_i].error);
        ck_assert_uint_eq(usec, timestamps[_i].error == 0 ? timestamps[_i].usec : 42);
}
END_TEST

static Suite *oci_manifest_suite(void)
{
        Suite *s = suite_create("oci-manifest");
        TCase *tc = tcase_create("parse");

        tcase_add_test(tc, manifest_parse_oci);
        tcase_add_test(tc, manifest_parse_docker);
        tcase_add_loop_test(tc, manifest_parse_bad, 0, ELEMENTSOF(bad_manifests));
        tcase_add_test(tc, manifest_too_many_layers);
        tcase_add_test(tc, manifest_size_limit);
        tcase_add_loop_test(tc, index_select_table, 0, ELEMENTSOF(indexes));
        tcase_add_loop_test(tc, document_kind_table, 0, ELEMENTSOF(kinds));
        tcase_add_test(tc, config_parse_full);
        tcase_add_test(tc, config_parse_minimal);
        tcase_add_loop_test(tc, config_parse_bad, 0, ELEMENTSOF(bad_configs));
        tcase_add_loop_test(tc, timestamp_table, 0, ELEMENTSOF(timestamps));
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(oci_manifest_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
