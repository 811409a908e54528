#include <check.h>
#include <curl/curl.h>
#include <dirent.h>
#include <openssl/evp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include "bzimage.h"
#include "catalog.h"
#include "kconfig.h"
#include "kernel-util.h"
#include "strv.h"
#include "test-kernel-fixtures.c"

#define BASE    "http://127.0.0.1:8080/catalog/index.json"
#define SHA_A   "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define RELEASE "6.1.0-99-test"

/* Parsing */

static const char *const good_index =
        "{\"kernels\": [\n"
        "  {\"name\": \"cloud-6.1\", \"version\": \"6.1.0-28-cloud-amd64\", \"arch\": \"amd64\",\n"
        "   \"artifacts\": {\n"
        "     \"vmlinux\": {\"url\": \"6.1/vmlinux\", \"sha256\": \"" SHA_A "\"},\n"
        "     \"modules\": {\"url\": \"/abs/modules.tar.gz\", \"sha256\": "
        "\"0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF\"},\n"
        "     \"config\": {\"url\": \"https://mirror.example/config\", \"sha256\": \"" SHA_A
        "\"}}},\n"
        "  {\"name\": \"cloud-6.1\", \"version\": \"6.1.0-28-cloud-arm64\", \"arch\": \"arm64\",\n"
        "   \"artifacts\": {\"vmlinux\": {\"url\": \"../up/Image\", \"sha256\": \"" SHA_A "\"},\n"
        "                 \"modules\": null}}\n"
        "]}\n";

START_TEST(catalog_parse_good_index)
{
        _cleanup_(catalog_freep) Catalog *c = NULL;
        _cleanup_free_ char *error = NULL;
        const CatalogKernel *k;

        ck_assert_int_eq(catalog_parse(good_index, strlen(good_index), BASE, &c, &error), 0);
        ck_assert_ptr_null(error);
        ck_assert_uint_eq(c->n_kernels, 2);

        ck_assert_int_eq(catalog_find(c, "cloud-6.1", "amd64", &k), 0);
        ck_assert_str_eq(k->version, "6.1.0-28-cloud-amd64");
        ck_assert_str_eq(k->artifacts[CATALOG_ARTIFACT_VMLINUX].url,
                         "http://127.0.0.1:8080/catalog/6.1/vmlinux");
        ck_assert_str_eq(k->artifacts[CATALOG_ARTIFACT_VMLINUX].sha256, SHA_A);
        ck_assert_str_eq(k->artifacts[CATALOG_ARTIFACT_MODULES].url,
                         "http://127.0.0.1:8080/abs/modules.tar.gz");
        /* Upper-case hex is accepted and stored in lower case. */
        ck_assert_str_eq(k->artifacts[CATALOG_ARTIFACT_MODULES].sha256, SHA_A);
        ck_assert_str_eq(k->artifacts[CATALOG_ARTIFACT_CONFIG].url,
                         "https://mirror.example/config");

        ck_assert_int_eq(catalog_find(c, "cloud-6.1", "arm64", &k), 0);
        ck_assert_str_eq(k->artifacts[CATALOG_ARTIFACT_VMLINUX].url,
                         "http://127.0.0.1:8080/up/Image");
        ck_assert_ptr_null(k->artifacts[CATALOG_ARTIFACT_MODULES].url);
        ck_assert_ptr_null(k->artifacts[CATALOG_ARTIFACT_CONFIG].url);

        ck_assert_int_eq(catalog_find(c, "cloud-6.1", "riscv64", &k), -ENXIO);
        ck_assert_int_eq(catalog_find(c, "cloud-6.2", "amd64", &k), -ENOENT);
}
END_TEST

START_TEST(catalog_parse_empty_list)
{
        _cleanup_(catalog_freep) Catalog *c = NULL;
        const CatalogKernel *k;
        const char *json = " {\"kernels\": []} \n";

        ck_assert_int_eq(catalog_parse(json, strlen(json), BASE, &c, NULL), 0);
        ck_assert_uint_eq(c->n_kernels, 0);
        ck_assert_int_eq(catalog_find(c, "x", "amd64", &k), -ENOENT);
}
END_TEST

#define VMLINUX_OK    "\"vmlinux\": {\"url\": \"v\", \"sha256\": \"" SHA_A "\"}"
#define ENTRY(fields) "{\"kernels\": [{" fields "}]}"
#define GOOD_HEAD     "\"name\": \"k\", \"version\": \"6.1\", \"arch\": \"amd64\", "

/* Invalid indexes and a fragment of the message each one must give. */
static const struct {
        const char *json;
        const char *message;
} bad_cases[] = {
        { "", "not valid JSON" },
        { "{\"kernels\": [", "not valid JSON" },
        { "{\"kernels\": []} x", "not valid JSON" },
        { "[]", "'kernels' array" },
        { "{\"kernels\": {}}", "'kernels' array" },
        { "{\"kernels\": [1]}", "entry 0 is not an object" },
        { ENTRY("\"version\": \"6.1\", \"arch\": \"amd64\", \"artifacts\": {" VMLINUX_OK "}"),
          "has no 'name'" },
        { ENTRY("\"name\": \"\", \"version\": \"6.1\", \"arch\": \"amd64\", \"artifacts\": {}"),
          "has no 'name'" },
        { ENTRY("\"name\": 7, \"version\": \"6.1\", \"arch\": \"amd64\", \"artifacts\": {}"),
          "'name' that is not a string" },
        { ENTRY("\"name\": \"a/b\", \"version\": \"6.1\", \"arch\": \"amd64\", "
                "\"artifacts\": {}"),
          "invalid 'name' 'a/b'" },
        { ENTRY("\"name\": \"k\\u0000x\", \"version\": \"6.1\", \"arch\": \"amd64\", "
                "\"artifacts\": {}"),
          "NUL character" },
        { ENTRY("\"name\": \"k\", \"arch\": \"amd64\", \"artifacts\": {" VMLINUX_OK "}"),
          "has no 'version'" },
        { ENTRY("\"name\": \"k\", \"version\": \"..\", \"arch\": \"amd64\", \"artifacts\": {}"),
          "invalid 'version' '..'" },
        { ENTRY("\"name\": \"k\", \"version\": \"6.1\", \"artifacts\": {" VMLINUX_OK "}"),
          "has no 'arch'" },
        { ENTRY(GOOD_HEAD "\"x\": 1"), "has no 'artifacts'" },
        { ENTRY(GOOD_HEAD "\"artifacts\": []"), "'artifacts' that is not an object" },
        { ENTRY(GOOD_HEAD "\"artifacts\": {}"), "has no 'artifacts.vmlinux'" },
        { ENTRY(GOOD_HEAD "\"artifacts\": {\"vmlinux\": \"v\"}"),
          "'artifacts.vmlinux' that is not an object" },
        { ENTRY(GOOD_HEAD "\"artifacts\": {\"vmlinux\": {\"sha256\": \"" SHA_A "\"}}"),
          "has no 'artifacts.vmlinux.url'" },
        { ENTRY(GOOD_HEAD "\"artifacts\": {\"vmlinux\": {\"url\": \"v\"}}"),
          "has no 'artifacts.vmlinux.sha256'" },
        { ENTRY(GOOD_HEAD "\"artifacts\": {\"vmlinux\": {\"url\": \"v\", \"sha256\": \"abc\"}}"),
          "invalid 'artifacts.vmlinux.sha256' 'abc'" },
        { ENTRY(GOOD_HEAD "\"artifacts\": {\"vmlinux\": {\"url\": \"v\", \"sha256\": "
                          "\"sha256:" SHA_A "\"}}"),
          "expected 64 hex digits" },
        { ENTRY(GOOD_HEAD "\"artifacts\": {\"vmlinux\": {\"url\": \"v\", \"sha256\": "
                          "\"g123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}}"),
          "expected 64 hex digits" },
        { ENTRY(GOOD_HEAD "\"artifacts\": {\"vmlinux\": {\"url\": \"v\", \"sha256\": "
                          "\"" SHA_A "0\"}}"),
          "expected 64 hex digits" },
        { ENTRY(GOOD_HEAD "\"artifacts\": {" VMLINUX_OK ", \"modules\": {\"url\": "
                          "\"file:///etc/passwd\", \"sha256\": \"" SHA_A "\"}}"),
          "'artifacts.modules.url' 'file:///etc/passwd' that is not http or https" },
        { ENTRY(GOOD_HEAD "\"artifacts\": {" VMLINUX_OK ", \"config\": {\"url\": "
                          "\"ftp://h/c\", \"sha256\": \"" SHA_A "\"}}"),
          "not http or https" },
        { ENTRY(GOOD_HEAD "\"artifacts\": {" VMLINUX_OK ", \"config\": 5}"),
          "'artifacts.config' that is not an object" },
        { "{\"kernels\": [{" GOOD_HEAD "\"artifacts\": {" VMLINUX_OK "}}, {" GOOD_HEAD
          "\"artifacts\": {" VMLINUX_OK "}}]}",
          "entry 1 repeats name 'k' for arch 'amd64' of entry 0" },
};

START_TEST(catalog_parse_rejects_invalid)
{
        _cleanup_(catalog_freep) Catalog *c = NULL;
        _cleanup_free_ char *error = NULL;
        const char *json = bad_cases[_i].json;

        ck_assert_int_eq(catalog_parse(json, strlen(json), BASE, &c, &error), -EBADMSG);
        ck_assert_ptr_null(c);
        ck_assert_ptr_nonnull(error);
        ck_assert_msg(strstr(error, bad_cases[_i].message), "case %d: '%s' not in '%s'", _i,
                      bad_cases[_i].message, error);
        ck_assert_ptr_nonnull(strstr(error, BASE));
}
END_TEST

static const struct {
        const char *base;
        const char *reference;
        int result;
        const char *url;
} url_cases[] = {
        { "http://h:1/a/index.json", "vmlinux", 0, "http://h:1/a/vmlinux" },
        { "http://h:1/a/index.json", "b/c?x=1", 0, "http://h:1/a/b/c?x=1" },
        { "http://h:1/a/b/index.json", "../../../k", 0, "http://h:1/k" },
        { "http://h:1/a/index.json", "/root/k", 0, "http://h:1/root/k" },
        { "http://h:1/a/index.json", "//other/k", 0, "http://other/k" },
        { "https://h/a/", "k", 0, "https://h/a/k" },
        { "http://h/a/index.json", "https://m/k", 0, "https://m/k" },
        { "http://h/a/index.json", "", -EINVAL, NULL },
        { "http://h/a/index.json", "file:///k", -EPROTONOSUPPORT, NULL },
        { "ftp://h/a/index.json", "k", -EPROTONOSUPPORT, NULL },
        { "not a url", "k", -EINVAL, NULL },
};

START_TEST(catalog_resolve_url_table)
{
        _cleanup_free_ char *url = NULL;

        ck_assert_int_eq(catalog_resolve_url(url_cases[_i].base, url_cases[_i].reference, &url),
                         url_cases[_i].result);
        if (url_cases[_i].url)
                ck_assert_str_eq(url, url_cases[_i].url);
        else
                ck_assert_ptr_null(url);
}
END_TEST

/* Pulling from a catalog served on 127.0.0.1 */

static char *dir, *serve_dir, *out_dir, *init_path, *agent_path, *log_path;
static pid_t server_pid;
static unsigned server_port;

static void server_start(void)
{
        const char *srcdir = getenv("BANGER_TEST_SRCDIR");
        _cleanup_free_ char *script = NULL, *port_path = NULL;
        char *argv[6];
        FILE *f = NULL;

        ck_assert_ptr_nonnull(srcdir);
        ck_assert_int_ge(asprintf(&script, "%s/integration/catalog-server.py", srcdir), 0);
        ck_assert_int_ge(asprintf(&port_path, "%s/port", dir), 0);
        argv[0] = "python3";
        argv[1] = script;
        argv[2] = serve_dir;
        argv[3] = port_path;
        argv[4] = log_path;
        argv[5] = NULL;
        ck_assert_int_eq(posix_spawnp(&server_pid, "python3", NULL, NULL, argv, environ), 0);

        /* The server writes the port file once it listens; Check's timeout bounds the wait. */
        while (!(f = fopen(port_path, "re"))) {
                ck_assert_int_eq(waitpid(server_pid, NULL, WNOHANG), 0);
                usleep(20 * 1000);
        }
        ck_assert_int_eq(fscanf(f, "%u", &server_port), 1);
        fclose(f);
}

static void setup(void)
{
        /* Checked before anything is created, because a failed setup skips the teardown. */
        ck_assert_ptr_nonnull(getenv("BANGER_TEST_SRCDIR"));
        dir = fixture_tmpdir();
        ck_assert_int_ge(asprintf(&serve_dir, "%s/serve", dir), 0);
        ck_assert_int_ge(asprintf(&out_dir, "%s/out", dir), 0);
        ck_assert_int_ge(asprintf(&log_path, "%s/requests.log", dir), 0);
        ck_assert_int_eq(mkdir(serve_dir, 0755), 0);
        ck_assert_int_eq(mkdir(out_dir, 0755), 0);
        ck_assert_int_ge(asprintf(&init_path, "%s/banger-init", dir), 0);
        ck_assert_int_ge(asprintf(&agent_path, "%s/banger-agent", dir), 0);
        fixture_write(dir, "banger-init", "init", 4);
        fixture_write(dir, "banger-agent", "agent", 5);
        server_start();
}

static void teardown(void)
{
        ck_assert_int_eq(kill(server_pid, SIGTERM), 0);
        ck_assert_int_eq(waitpid(server_pid, NULL, 0), server_pid);
        ck_assert_int_eq(rm_rf(dir), 0);
        free(dir);
        free(serve_dir);
        free(out_dir);
        free(log_path);
        free(init_path);
        free(agent_path);
}

static size_t dir_count(const char *path)
{
        DIR *d = opendir(path);
        struct dirent *de;
        size_t n = 0;

        ck_assert_ptr_nonnull(d);
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        n++;
        closedir(d);
        return n;
}

static void sha256_file(const char *path, char hex[static 65])
{
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned md_size;
        _cleanup_free_ char *data = NULL;
        size_t size;

        ck_assert_int_eq(read_full_file(path, SIZE_MAX, &data, &size), 0);
        ck_assert_int_eq(EVP_Digest(data, size, md, &md_size, EVP_sha256(), NULL), 1);
        ck_assert_uint_eq(md_size, 32);
        for (unsigned i = 0; i < 32; i++)
                snprintf(hex + i * 2, 3, "%02x", md[i]);
}

/* Writes serve_dir/index.json with one amd64 entry for the files under serve_dir. A NULL
 * file leaves that artifact out; a non-NULL sha256 replaces the file's real digest. */
static void index_write(const char *name, const char *version, const char *vmlinux,
                        const char *modules, const char *config, const char *bad_sha256)
{
        const char *files[] = { vmlinux, modules, config };
        const char *keys[] = { "vmlinux", "modules", "config" };
        _cleanup_free_ char *json = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&json, &size);

        fprintf(f,
                "{\"kernels\": [{\"name\": \"%s\", \"version\": \"%s\", \"arch\": \"amd64\", "
                "\"artifacts\": {",
                name, version);
        for (size_t i = 0, n = 0; i < ELEMENTSOF(files); i++) {
                _cleanup_free_ char *path = NULL;
                char hex[65];

                if (!files[i])
                        continue;
                ck_assert_int_ge(asprintf(&path, "%s/%s", serve_dir, files[i]), 0);
                sha256_file(path, hex);
                fprintf(f, "%s\"%s\": {\"url\": \"%s\", \"sha256\": \"%s\"}", n++ ? ", " : "",
                        keys[i], files[i], bad_sha256 && i == 0 ? bad_sha256 : hex);
        }
        fprintf(f, "}}]}\n");
        ck_assert_int_eq(fclose(f), 0);
        fixture_write(serve_dir, "index.json", json, size);
}

static char *index_url(void)
{
        char *url;

        ck_assert_int_ge(asprintf(&url, "http://127.0.0.1:%u/index.json", server_port), 0);
        return url;
}

static int pull(const char *name, KernelInfo **ret, char **ret_error)
{
        _cleanup_free_ char *url = index_url();
        CatalogPullOptions opts = {
                .catalog_url = url,
                .name = name,
                .arch = "amd64",
                .output_dir = out_dir,
                .init_path = init_path,
                .agent_path = agent_path,
        };

        return catalog_pull_kernel(&opts, ret, ret_error);
}

static size_t log_count(const char *path)
{
        _cleanup_free_ char *log = NULL, *needle = NULL;
        size_t n = 0;

        if (read_full_file(log_path, SIZE_MAX, &log, NULL) < 0)
                return 0;
        ck_assert_int_ge(asprintf(&needle, "GET /%s ", path), 0);
        for (const char *p = log; (p = strstr(p, needle)); p++)
                n++;
        return n;
}

static void tar_add(struct archive *a, const char *path, const Buffer *data, bool symlink)
{
        struct archive_entry *e = archive_entry_new();

        archive_entry_set_pathname(e, path);
        archive_entry_set_perm(e, 0644);
        if (symlink) {
                archive_entry_set_filetype(e, AE_IFLNK);
                archive_entry_set_symlink(e, "/usr/src/linux");
        } else {
                archive_entry_set_filetype(e, AE_IFREG);
                archive_entry_set_size(e, data->size);
        }
        ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
        if (!symlink)
                ck_assert_int_eq(archive_write_data(a, data->data, data->size),
                                 (la_ssize_t)data->size);
        archive_entry_free(e);
}

/* Writes serve_dir/modules.tar.gz with three modules under lib/modules/RELEASE, the build
 * symlink a Debian tree has, and a file outside that directory that must be skipped. */
static void modules_tarball_write(void)
{
        _cleanup_free_ char *path = NULL;
        struct archive *a = archive_write_new();
        Buffer ring = fixture_module("virtio_ring", "", RELEASE " SMP mod_unload "),
               virtio = fixture_module("virtio", "virtio_ring", RELEASE " SMP mod_unload "),
               net = fixture_module("virtio_net", "virtio,virtio_ring", RELEASE " SMP mod_unload "),
               other = {};

        buffer_append(&other, "x", 1);
        ck_assert_int_ge(asprintf(&path, "%s/modules.tar.gz", serve_dir), 0);
        ck_assert_int_eq(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
        ck_assert_int_eq(archive_write_add_filter_gzip(a), ARCHIVE_OK);
        ck_assert_int_eq(archive_write_open_filename(a, path), ARCHIVE_OK);
        tar_add(a, "./lib/modules/" RELEASE "/kernel/drivers/virtio/virtio_ring.ko", &ring, false);
        tar_add(a, "lib/modules/" RELEASE "/kernel/drivers/virtio/virtio.ko", &virtio, false);
        tar_add(a, "lib/modules/" RELEASE "/kernel/drivers/net/virtio_net.ko", &net, false);
        tar_add(a, "lib/modules/" RELEASE "/build", NULL, true);
        tar_add(a, "etc/passwd", &other, false);
        ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
        archive_write_free(a);
        buffer_free(&ring);
        buffer_free(&virtio);
        buffer_free(&net);
        buffer_free(&other);
}

static void config_write(const char *skip)
{
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&text, &size);

        for (size_t i = 0; kconfig_guest_options[i]; i++)
                if (!skip || !streq(kconfig_guest_options[i], skip))
                        fprintf(f, "%s=y\n", kconfig_guest_options[i]);
        ck_assert_int_eq(fclose(f), 0);
        fixture_write(serve_dir, "config", text, size);
}

START_TEST(catalog_pull_synthetic)
{
        _cleanup_(kernel_info_freep) KernelInfo *info = NULL;
        _cleanup_free_ char *error = NULL, *served = NULL, *pulled = NULL;
        char served_hex[65], pulled_hex[65];

        fixture_write_buffer(serve_dir, "k/vmlinux", fixture_vmlinux(RELEASE, true));
        modules_tarball_write();
        config_write(NULL);
        index_write("test-6.1", RELEASE, "k/vmlinux", "modules.tar.gz", "config", NULL);

        ck_assert_msg(pull("test-6.1", &info, &error) == 0, "pull failed: %s", error);
        ck_assert_str_eq(info->name, "test-6.1");
        ck_assert_str_eq(info->version, RELEASE);
        ck_assert_ptr_nonnull(strstr(info->source, "/k/vmlinux"));
        ck_assert(strv_contains(info->modules, "virtio_net"));
        ck_assert(strv_contains(info->modules, "virtio_ring"));

        /* Only the import's outputs remain: the staging directory is gone. */
        ck_assert_uint_eq(dir_count(out_dir), 2);
        ck_assert_int_ge(asprintf(&served, "%s/k/vmlinux", serve_dir), 0);
        ck_assert_int_ge(asprintf(&pulled, "%s/vmlinux", out_dir), 0);
        sha256_file(served, served_hex);
        sha256_file(pulled, pulled_hex);
        ck_assert_str_eq(pulled_hex, served_hex);
        ck_assert_str_eq(info->digest + strlen("sha256:"), served_hex);

        ck_assert_uint_eq(log_count("index.json"), 1);
        ck_assert_uint_eq(log_count("k/vmlinux"), 1);
        ck_assert_uint_eq(log_count("modules.tar.gz"), 1);
        ck_assert_uint_eq(log_count("config"), 1);
}
END_TEST

START_TEST(catalog_pull_rejects_bad_sha256)
{
        _cleanup_(kernel_info_freep) KernelInfo *info = NULL;
        _cleanup_free_ char *error = NULL;

        fixture_write_buffer(serve_dir, "k/vmlinux", fixture_vmlinux(RELEASE, true));
        modules_tarball_write();
        index_write("test-6.1", RELEASE, "k/vmlinux", "modules.tar.gz", NULL, SHA_A);

        ck_assert_int_eq(pull("test-6.1", &info, &error), -EBADMSG);
        ck_assert_ptr_null(info);
        ck_assert_ptr_nonnull(strstr(error, "lists " SHA_A));
        ck_assert_ptr_nonnull(strstr(error, "/k/vmlinux"));
        ck_assert_uint_eq(dir_count(out_dir), 0);
}
END_TEST

/* Each case breaks one thing about an otherwise good pull, with a fragment of the expected
 * error. */
static const struct {
        const char *name;    /* entry to pull */
        const char *version; /* version the index lists */
        const char *skip_option;
        bool modules;
        int result;
        const char *message;
} pull_fail_cases[] = {
        { "other", RELEASE, NULL, true, -ENOENT, "'other' is not in catalog" },
        { "test-6.1", "6.1.0-98-test", NULL, true, -ENOENT, "no files under" },
        { "test-6.1", "6.1.0-98-test", NULL, false, -EBADMSG, "reports release '" RELEASE "'" },
        { "test-6.1", RELEASE, "CONFIG_VIRTIO_MMIO", true, -ENOTSUP, "CONFIG_VIRTIO_MMIO" },
};

START_TEST(catalog_pull_failures_publish_nothing)
{
        _cleanup_(kernel_info_freep) KernelInfo *info = NULL;
        _cleanup_free_ char *error = NULL;

        fixture_write_buffer(serve_dir, "k/vmlinux", fixture_vmlinux(RELEASE, true));
        modules_tarball_write();
        config_write(pull_fail_cases[_i].skip_option);
        index_write("test-6.1", pull_fail_cases[_i].version, "k/vmlinux",
                    pull_fail_cases[_i].modules ? "modules.tar.gz" : NULL, "config", NULL);

        ck_assert_int_eq(pull(pull_fail_cases[_i].name, &info, &error), pull_fail_cases[_i].result);
        ck_assert_ptr_null(info);
        ck_assert_msg(strstr(error, pull_fail_cases[_i].message), "'%s' not in '%s'",
                      pull_fail_cases[_i].message, error);
        ck_assert_uint_eq(dir_count(out_dir), 0);
}
END_TEST

START_TEST(catalog_pull_missing_index)
{
        _cleanup_(kernel_info_freep) KernelInfo *info = NULL;
        _cleanup_free_ char *error = NULL;

        /* Nothing is served yet, so the index is a 404. */
        ck_assert_int_eq(pull("test-6.1", &info, &error), -ENOENT);
        ck_assert_ptr_nonnull(strstr(error, "HTTP status 404"));
        ck_assert_uint_eq(dir_count(out_dir), 0);
}
END_TEST

START_TEST(catalog_pull_connection_refused)
{
        _cleanup_(kernel_info_freep) KernelInfo *info = NULL;
        _cleanup_free_ char *error = NULL;
        CatalogPullOptions opts = {
                .catalog_url = "http://127.0.0.1:1/index.json",
                .name = "test-6.1",
                .arch = "amd64",
                .output_dir = out_dir,
                .init_path = init_path,
                .agent_path = agent_path,
        };

        /* NOTE: assumes that nothing listens on 127.0.0.1 port 1. */
        ck_assert_int_eq(catalog_pull_kernel(&opts, &info, &error), -ECONNREFUSED);
        ck_assert_ptr_nonnull(strstr(error, "'http://127.0.0.1:1/index.json'"));
        ck_assert_ptr_nonnull(strstr(error, "CatalogURL"));
        ck_assert_uint_eq(dir_count(out_dir), 0);
}
END_TEST

/* The real Debian kernel, from the .deb named by BANGER_TEST_KERNEL_DEB. */

START_TEST(catalog_pull_debian_kernel)
{
        const char *deb = getenv("BANGER_TEST_KERNEL_DEB");
        _cleanup_(kernel_info_freep) KernelInfo *info = NULL;
        _cleanup_free_ char *cmd = NULL, *tree = NULL, *error = NULL, *release = NULL,
                            *vmlinuz = NULL, *vmlinux = NULL;
        _cleanup_close_ int vmlinux_fd = -EBADF;
        MappedFile bz;
        struct dirent *de;
        DIR *d;
        int fd;

        if (!deb) {
                fprintf(stderr, "BANGER_TEST_KERNEL_DEB is unset, skipping the Debian kernel "
                                "pull: set it to a linux-image-*-cloud-amd64 .deb "
                                "(integration/fetch-kernel.sh prints one)\n");
                return;
        }

        /* Build the artifacts a catalog would publish from the unpacked package. */
        ck_assert_int_ge(asprintf(&tree, "%s/tree", dir), 0);
        ck_assert_int_ge(asprintf(&cmd, "dpkg -x '%s' '%s'", deb, tree), 0);
        ck_assert_int_eq(system(cmd), 0);
        free(cmd);
        ck_assert_int_ge(asprintf(&cmd, "%s/boot", tree), 0);
        d = opendir(cmd);
        ck_assert_ptr_nonnull(d);
        while ((de = readdir(d)))
                if (strneq(de->d_name, "vmlinuz-", 8))
                        release = strdup(de->d_name + 8);
        closedir(d);
        ck_assert_ptr_nonnull(release);

        ck_assert_int_ge(asprintf(&vmlinuz, "%s/boot/vmlinuz-%s", tree, release), 0);
        fd = open(vmlinuz, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(mapped_file_open(fd, &bz), 0);
        close(fd);
        ck_assert_int_ge(asprintf(&vmlinux, "%s/vmlinux", serve_dir), 0);
        vmlinux_fd = open(vmlinux, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        ck_assert_int_ge(vmlinux_fd, 0);
        ck_assert_int_eq(
                bzimage_extract_vmlinux(bz.data, bz.size, vmlinux_fd, UINT64_C(1) << 30, NULL), 0);
        mapped_file_close(&bz);

        free(cmd);
        ck_assert_int_ge(asprintf(&cmd, "tar -C '%s' -czf '%s/modules.tar.gz' lib/modules/%s", tree,
                                  serve_dir, release),
                         0);
        ck_assert_int_eq(system(cmd), 0);
        free(cmd);
        ck_assert_int_ge(
                asprintf(&cmd, "cp '%s/boot/config-%s' '%s/config'", tree, release, serve_dir), 0);
        ck_assert_int_eq(system(cmd), 0);
        index_write("debian-cloud", release, "vmlinux", "modules.tar.gz", "config", NULL);

        ck_assert_msg(pull("debian-cloud", &info, &error) == 0, "pull failed: %s", error);
        ck_assert_str_eq(info->version, release);
        ck_assert(strv_contains(info->modules, "virtio_mmio"));
        ck_assert(strv_contains(info->modules, "virtio_blk"));
        ck_assert(strv_contains(info->modules, "virtio_net"));
        ck_assert(strv_contains(info->modules, "virtio_console"));
        ck_assert_uint_eq(dir_count(out_dir), 2);
        ck_assert_uint_eq(log_count("vmlinux"), 1);
        ck_assert_uint_eq(log_count("modules.tar.gz"), 1);

        /* The same artifacts with a wrong digest for the vmlinux publish nothing. */
        ck_assert_int_eq(rm_rf(out_dir), 0);
        ck_assert_int_eq(mkdir(out_dir, 0755), 0);
        kernel_info_free(info);
        info = NULL;
        free(error);
        error = NULL;
        index_write("debian-cloud", release, "vmlinux", "modules.tar.gz", "config", SHA_A);
        ck_assert_int_eq(pull("debian-cloud", &info, &error), -EBADMSG);
        ck_assert_ptr_null(info);
        ck_assert_ptr_nonnull(strstr(error, "sha256"));
        ck_assert_uint_eq(dir_count(out_dir), 0);
}
END_TEST

static Suite *catalog_suite(void)
{
        Suite *s = suite_create("catalog");
        TCase *parse = tcase_create("parse"), *pulls = tcase_create("pull"),
              *real = tcase_create("real");

        tcase_add_test(parse, catalog_parse_good_index);
        tcase_add_test(parse, catalog_parse_empty_list);
        tcase_add_loop_test(parse, catalog_parse_rejects_invalid, 0, ELEMENTSOF(bad_cases));
        tcase_add_loop_test(parse, catalog_resolve_url_table, 0, ELEMENTSOF(url_cases));
        suite_add_tcase(s, parse);

        tcase_add_checked_fixture(pulls, setup, teardown);
        tcase_add_test(pulls, catalog_pull_synthetic);
        tcase_add_test(pulls, catalog_pull_rejects_bad_sha256);
        tcase_add_loop_test(pulls, catalog_pull_failures_publish_nothing, 0,
                            ELEMENTSOF(pull_fail_cases));
        tcase_add_test(pulls, catalog_pull_missing_index);
        tcase_add_test(pulls, catalog_pull_connection_refused);
        suite_add_tcase(s, pulls);

        tcase_add_checked_fixture(real, setup, teardown);
        tcase_add_test(real, catalog_pull_debian_kernel);
        suite_add_tcase(s, real);
        return s;
}

int main(void)
{
        SRunner *sr;
        int failed;

        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return EXIT_FAILURE;
        sr = srunner_create(catalog_suite());
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        curl_global_cleanup();
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
