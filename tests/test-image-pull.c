/* End-to-end pulls from a real docker-registry on loopback, fed with skopeo from the OCI layout
 * that integration/build-test-image.sh writes. */

#include <arpa/inet.h>
#include <curl/curl.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fileio.h"
#include "image-pull.h"
#include "macro.h"
#include "registry.h"
#include "strv.h"

#include "test-ext4-util.c"

#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif

static char tmpdir[] = "/tmp/test-image-pull-XXXXXX";
static pid_t registry_pid = -1, token_registry_pid = -1, token_pid = -1;
static char registry[64];          /* "127.0.0.1:PORT", anonymous access */
static char token_registry[64];    /* the same storage behind bearer token authentication */
static char *token_log;            /* requests the token server received */
static char redirect_registry[64]; /* the same with blobs redirected to the token server */
static pid_t redirect_registry_pid = -1;
static char token_port[16];
static const char *architecture = "amd64"; /* platform that pull() requests */
static char manifest_digest[80];           /* of the OCI push of test/busybox:1 */
static char corrupt_digest[80];            /* of the layer tampered with in test/corrupt:1 */

/* Runs argv with PATH set and returns its exit status; stdout goes to out when not NULL. */
static int run(char *const argv[], char *out, size_t out_size)
{
        posix_spawn_file_actions_t actions;
        int pipefd[2], status;
        pid_t pid;

        ck_assert_int_eq(pipe(pipefd), 0);
        ck_assert_int_eq(posix_spawn_file_actions_init(&actions), 0);
        ck_assert_int_eq(posix_spawn_file_actions_adddup2(&actions, pipefd[1], STDOUT_FILENO), 0);
        ck_assert_int_eq(posix_spawn_file_actions_addclose(&actions, pipefd[0]), 0);
        setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin", 1);
        ck_assert_int_eq(posix_spawnp(&pid, argv[0], &actions, NULL, argv, environ), 0);
        posix_spawn_file_actions_destroy(&actions);
        close(pipefd[1]);

        size_t used = 0;
        for (;;) {
                char buf[4096];
                ssize_t n = read(pipefd[0], buf, sizeof(buf));
                if (n <= 0)
                        break;
                if (out && used + 1 < out_size) {
                        size_t k = MIN((size_t)n, out_size - 1 - used);
                        memcpy(out + used, buf, k);
                        used += k;
                }
        }
        if (out)
                out[used] = '\0';
        close(pipefd[0]);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Returns a TCP port on 127.0.0.1 that nothing listened on a moment ago. */
static int free_port(void)
{
        struct sockaddr_in addr = { .sin_family = AF_INET,
                                    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(addr);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
        ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
        close(fd);
        return ntohs(addr.sin_port);
}

static bool port_accepts(int port)
{
        struct sockaddr_in addr = { .sin_family = AF_INET,
                                    .sin_port = htons(port),
                                    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;

        if (fd >= 0)
                close(fd);
        return ok;
}

/* Starts docker-registry on a free port over the shared storage, with extra configuration
 * appended, and waits until it accepts connections. */
static pid_t start_registry(const char *name, const char *extra, char *ret_address,
                            size_t address_size)
{
        _cleanup_free_ char *config = NULL, *text = NULL, *log_path = NULL;
        char *argv[] = { "docker-registry", "serve", NULL, NULL };
        posix_spawn_file_actions_t actions;
        int port = free_port();
        pid_t pid;

        snprintf(ret_address, address_size, "127.0.0.1:%d", port);
        ck_assert_int_ge(asprintf(&config, "%s/%s.yml", tmpdir, name), 0);
        ck_assert_int_ge(asprintf(&text,
                                  "version: 0.1\n"
                                  "log:\n  level: error\n  accesslog:\n    disabled: true\n"
                                  "storage:\n  filesystem:\n    rootdirectory: %s/storage\n"
                                  "http:\n  addr: %s\n%s",
                                  tmpdir, ret_address, extra),
                         0);
        ck_assert_int_eq(write_file_atomic(config, text, strlen(text), 0644), 0);

        argv[2] = config;
        ck_assert_int_ge(asprintf(&log_path, "%s/%s.log", tmpdir, name), 0);
        ck_assert_int_eq(posix_spawn_file_actions_init(&actions), 0);
        ck_assert_int_eq(posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log_path,
                                                          O_WRONLY | O_CREAT | O_TRUNC, 0644),
                         0);
        setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin", 1);
        ck_assert_int_eq(posix_spawnp(&pid, "docker-registry", &actions, NULL, argv, environ), 0);
        posix_spawn_file_actions_destroy(&actions);

        /* Wait until the registry accepts connections, and fail if it exits first. */
        while (!port_accepts(port)) {
                ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), 0);
                usleep(20 * 1000);
        }
        return pid;
}

/* Starts tests/data/oci/token-server.py with a new key pair and returns the registry
 * configuration that trusts it. */
static char *start_token_server(void)
{
        _cleanup_free_ char *key = NULL, *cert = NULL, *script = NULL, *port_file = NULL,
                            *port = NULL, *storage = NULL;
        char *auth;

        ck_assert_int_ge(asprintf(&key, "%s/token.key", tmpdir), 0);
        ck_assert_int_ge(asprintf(&cert, "%s/token.crt", tmpdir), 0);
        ck_assert_int_ge(asprintf(&port_file, "%s/token.port", tmpdir), 0);
        ck_assert_int_ge(asprintf(&token_log, "%s/token.log", tmpdir), 0);
        ck_assert_int_ge(asprintf(&script, "%s/tests/data/oci/token-server.py",
                                  getenv("BANGER_TEST_SRCDIR")),
                         0);

        /* openssl prints key generation progress on stderr. */
        char *req[] = { "openssl",  "req",
                        "-x509",    "-newkey",
                        "rsa:2048", "-nodes",
                        "-keyout",  key,
                        "-out",     cert,
                        "-days",    "2",
                        "-subj",    "/CN=banger-test-token",
                        NULL };
        ck_assert_int_eq(run(req, NULL, 0), 0);

        ck_assert_int_ge(asprintf(&storage, "%s/storage", tmpdir), 0);
        char *argv[] = { "python3", script,    key,     cert, "banger-test", "banger-test-issuer",
                         port_file, token_log, storage, NULL };
        ck_assert_int_eq(posix_spawnp(&token_pid, "python3", NULL, NULL, argv, environ), 0);
        while (read_full_file(port_file, 64, &port, NULL) < 0) {
                ck_assert_int_eq(waitpid(token_pid, NULL, WNOHANG), 0);
                usleep(20 * 1000);
        }

        ck_assert_int_ge(asprintf(&auth,
                                  "auth:\n  token:\n"
                                  "    realm: http://127.0.0.1:%s/token\n"
                                  "    service: banger-test\n"
                                  "    issuer: banger-test-issuer\n"
                                  "    rootcertbundle: %s\n",
                                  port, cert),
                         0);
        snprintf(token_port, sizeof(token_port), "%s", port);
        return auth;
}

static void build_and_push(const char *layout, const char *epoch, const char *reference,
                           const char *format, char *ret_digest, size_t digest_size)
{
        _cleanup_free_ char *script = NULL, *source = NULL, *destination = NULL;
        const char *srcdir = getenv("BANGER_TEST_SRCDIR");

        ck_assert_ptr_nonnull(srcdir);
        ck_assert_int_ge(asprintf(&script, "%s/integration/build-test-image.sh", srcdir), 0);
        setenv("SOURCE_DATE_EPOCH", epoch, 1);
        if (access(layout, F_OK) < 0) {
                char *build[] = { script, (char *)layout, NULL };
                char out[256];

                ck_assert_int_eq(run(build, out, sizeof(out)), 0);
                out[strcspn(out, "\n")] = '\0';
                if (ret_digest) {
                        ck_assert_uint_lt(strlen(out), digest_size);
                        memcpy(ret_digest, out, strlen(out) + 1);
                }
        }

        ck_assert_int_ge(asprintf(&source, "oci:%s:latest", layout), 0);
        ck_assert_int_ge(asprintf(&destination, "docker://%s/%s", registry, reference), 0);
        char *push[] = { "skopeo",
                         "copy",
                         "--quiet",
                         "--dest-tls-verify=false",
                         source,
                         destination,
                         format ? "--format" : NULL,
                         (char *)format,
                         NULL };
        ck_assert_int_eq(run(push, NULL, 0), 0);
}

static void push_index(const char *layout, const char *reference)
{
        _cleanup_free_ char *source = NULL, *destination = NULL;

        ck_assert_int_ge(asprintf(&source, "oci:%s:multi", layout), 0);
        ck_assert_int_ge(asprintf(&destination, "docker://%s/%s", registry, reference), 0);
        char *push[] = { "skopeo", "copy",      "--quiet", "--all", "--dest-tls-verify=false",
                         source,   destination, NULL };
        ck_assert_int_eq(run(push, NULL, 0), 0);
}

/* Flips one byte in the middle of the registry's copy of the first layer of the image. */
static void corrupt_first_layer(const char *layout)
{
        _cleanup_free_ char *index = NULL, *manifest_path = NULL, *manifest = NULL,
                            *data_path = NULL;
        const char *p;
        FILE *f;
        int c;

        ck_assert_int_ge(asprintf(&index, "%s/index.json", layout), 0);
        ck_assert_int_eq(read_full_file(index, 1 << 20, &manifest, NULL), 0);
        p = strstr(manifest, "\"digest\": \"sha256:");
        ck_assert_ptr_nonnull(p);
        ck_assert_int_ge(asprintf(&manifest_path, "%s/blobs/sha256/%.64s", layout, p + 18), 0);
        free(manifest);
        manifest = NULL;
        ck_assert_int_eq(read_full_file(manifest_path, 1 << 20, &manifest, NULL), 0);
        p = strstr(manifest, "\"layers\"");
        ck_assert_ptr_nonnull(p);
        p = strstr(p, "\"digest\": \"sha256:");
        ck_assert_ptr_nonnull(p);
        snprintf(corrupt_digest, sizeof(corrupt_digest), "sha256:%.64s", p + 18);

        ck_assert_int_ge(asprintf(&data_path,
                                  "%s/storage/docker/registry/v2/blobs/sha256/%.2s/%.64s/data",
                                  tmpdir, p + 18, p + 18),
                         0);
        f = fopen(data_path, "r+");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(fseek(f, 2000, SEEK_SET), 0);
        c = fgetc(f);
        ck_assert_int_ne(c, EOF);
        ck_assert_int_eq(fseek(f, 2000, SEEK_SET), 0);
        ck_assert_int_ne(fputc(c ^ 0xff, f), EOF);
        ck_assert_int_eq(fclose(f), 0);
}

/* Stores data as a blob of the layout and writes its "sha256:HEX" digest to ret_digest. */
static void write_blob(const char *layout, const char *data, char *ret_digest, size_t digest_size)
{
        _cleanup_free_ char *temp = NULL, *digest = NULL, *path = NULL;

        ck_assert_int_ge(asprintf(&temp, "%s/blobs/sha256/new", layout), 0);
        ck_assert_int_eq(write_file_atomic(temp, data, strlen(data), 0644), 0);
        ck_assert_int_eq(sha256_file(temp, &digest), 0);
        ck_assert_int_ge(asprintf(&path, "%s/blobs/sha256/%s", layout, digest + 7), 0);
        ck_assert_int_eq(rename(temp, path), 0);
        snprintf(ret_digest, digest_size, "%s", digest);
}

/* Writes an index entry for an OCI manifest. The "unknown" architecture also sets the os to
 * "unknown", as BuildKit does for attestation manifests. */
static void write_index_entry(FILE *f, const char *digest, size_t size, const char *arch,
                              const char *extra)
{
        fprintf(f,
                "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"%s\","
                "\"size\":%zu,\"platform\":{\"os\":\"%s\",\"architecture\":\"%s\"}%s}",
                digest, size, streq(arch, "unknown") ? "unknown" : "linux", arch, extra);
}

/* Copies the layout and tags as "multi" an image index over it. The linux/amd64 entry is the
 * image itself. An attestation entry and a linux/arm64 entry point to a variant of its
 * manifest with an extra annotation, so its digest shows which entry a pull selected. */
static void build_index_layout(const char *layout, const char *index_layout)
{
        _cleanup_free_ char *manifest_path = NULL, *manifest = NULL, *variant = NULL, *index = NULL,
                            *top = NULL, *top_path = NULL;
        char variant_digest[80], index_digest[80];
        char *copy[] = { "cp", "-a", (char *)layout, (char *)index_layout, NULL };
        size_t manifest_size, index_size = 0;
        FILE *index_file;

        ck_assert_int_eq(run(copy, NULL, 0), 0);
        ck_assert_int_ge(
                asprintf(&manifest_path, "%s/blobs/sha256/%s", index_layout, manifest_digest + 7),
                0);
        ck_assert_int_eq(read_full_file(manifest_path, 1 << 20, &manifest, &manifest_size), 0);
        ck_assert_int_eq(manifest[0], '{');
        ck_assert_int_ge(asprintf(&variant, "{\"annotations\":{\"org.example.variant\":\"1\"},%s",
                                  manifest + 1),
                         0);
        write_blob(index_layout, variant, variant_digest, sizeof(variant_digest));

        index_file = open_memstream(&index, &index_size);
        ck_assert_ptr_nonnull(index_file);
        fputs("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
              "\"manifests\":[",
              index_file);
        write_index_entry(index_file, variant_digest, strlen(variant), "unknown",
                          ",\"annotations\":{\"vnd.docker.reference.type\":"
                          "\"attestation-manifest\"}");
        fputc(',', index_file);
        write_index_entry(index_file, variant_digest, strlen(variant), "arm64", "");
        fputc(',', index_file);
        write_index_entry(index_file, manifest_digest, manifest_size, "amd64", "");
        fputs("]}", index_file);
        ck_assert_int_eq(fclose(index_file), 0);
        write_blob(index_layout, index, index_digest, sizeof(index_digest));

        ck_assert_int_ge(asprintf(&top,
                                  "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":"
                                  "\"application/vnd.oci.image.index.v1+json\",\"digest\":\"%s\","
                                  "\"size\":%zu,\"annotations\":{"
                                  "\"org.opencontainers.image.ref.name\":\"multi\"}}]}",
                                  index_digest, strlen(index)),
                         0);
        ck_assert_int_ge(asprintf(&top_path, "%s/index.json", index_layout), 0);
        ck_assert_int_eq(write_file_atomic(top_path, top, strlen(top), 0644), 0);
}

static void suite_setup(void)
{
        _cleanup_free_ char *layout = NULL, *index_layout = NULL, *corrupt_layout = NULL,
                            *auth = NULL, *redirect = NULL;

        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
        /* The token server first: its key generation is the step most likely to fail, and a
         * failing unchecked fixture leaves no chance to stop what it started. */
        auth = start_token_server();
        registry_pid = start_registry("registry", "", registry, sizeof(registry));
        token_registry_pid =
                start_registry("token-registry", auth, token_registry, sizeof(token_registry));
        ck_assert_int_ge(asprintf(&redirect,
                                  "%smiddleware:\n  storage:\n    - name: redirect\n"
                                  "      options:\n"
                                  "        baseurl: http://127.0.0.1:%s\n",
                                  auth, token_port),
                         0);
        redirect_registry_pid = start_registry("redirect-registry", redirect, redirect_registry,
                                               sizeof(redirect_registry));

        ck_assert_int_ge(asprintf(&layout, "%s/layout", tmpdir), 0);
        build_and_push(layout, "0", "test/busybox:1", NULL, manifest_digest,
                       sizeof(manifest_digest));
        build_and_push(layout, "0", "test/busybox-docker:1", "v2s2", NULL, 0);

        ck_assert_int_ge(asprintf(&index_layout, "%s/layout-index", tmpdir), 0);
        build_index_layout(layout, index_layout);
        push_index(index_layout, "test/multi:1");

        /* A distinct build date gives distinct blobs, so tampering leaves the others intact. */
        ck_assert_int_ge(asprintf(&corrupt_layout, "%s/layout-corrupt", tmpdir), 0);
        build_and_push(corrupt_layout, "86400", "test/corrupt:1", NULL, NULL, 0);
        corrupt_first_layer(corrupt_layout);
}

static void stop(pid_t *pid)
{
        if (*pid > 0) {
                kill(*pid, SIGTERM);
                waitpid(*pid, NULL, 0);
                *pid = -1;
        }
}

static void suite_teardown(void)
{
        stop(&registry_pid);
        stop(&token_registry_pid);
        stop(&redirect_registry_pid);
        stop(&token_pid);
        rm_rf(tmpdir);
        free(token_log);
        token_log = NULL;
}

typedef struct Seen {
        bool step[_IMAGE_PULL_STEP_MAX];
        uint64_t last_done[_IMAGE_PULL_STEP_MAX], last_total[_IMAGE_PULL_STEP_MAX];
        bool regressed;
} Seen;

static void on_progress(ImagePullStep step, uint64_t done, uint64_t total, void *userdata)
{
        Seen *seen = userdata;

        ck_assert_int_ge(step, 0);
        ck_assert_int_lt(step, _IMAGE_PULL_STEP_MAX);
        if (seen->step[step] && done < seen->last_done[step])
                seen->regressed = true;
        seen->step[step] = true;
        seen->last_done[step] = done;
        seen->last_total[step] = total;
}

/* Makes a fresh directory under tmpdir for one test's cache and output. */
static char *test_dir(const char *name)
{
        char *dir;

        ck_assert_int_ge(asprintf(&dir, "%s/%s", tmpdir, name), 0);
        ck_assert_int_eq(mkdir_p(dir, 0755), 0);
        return dir;
}

static int pull(const char *dir, const char *reference, const volatile bool *cancel, Seen *seen,
                ImageInfo **ret, char **ret_error)
{
        _cleanup_free_ char *cache = NULL, *output = NULL;
        char *insecure[] = { registry, token_registry, redirect_registry, NULL };
        ImagePullOptions opts = {
                .reference = reference,
                .insecure_registries = insecure,
                .os = "linux",
                .architecture = architecture,
                .progress = seen ? on_progress : NULL,
                .userdata = seen,
                .cancel = cancel,
        };

        ck_assert_int_ge(asprintf(&cache, "%s/cache", dir), 0);
        ck_assert_int_ge(asprintf(&output, "%s/image.ext4", dir), 0);
        opts.blob_cache_dir = cache;
        opts.output_path = output;
        return image_pull(&opts, ret, ret_error);
}

static unsigned count_dir(const char *path)
{
        DIR *d = opendir(path);
        struct dirent *de;
        unsigned n = 0;

        if (!d)
                return 0;
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        n++;
        closedir(d);
        return n;
}

static void assert_test_image(const char *dir)
{
        _cleanup_free_ char *image = NULL, *line = NULL, *sh = NULL, *new = NULL;
        ext2_filsys fs;

        ck_assert_int_ge(asprintf(&image, "%s/image.ext4", dir), 0);
        ck_assert_int_eq(run_e2fsck(image), 0);

        fs = open_fs(image);
        line = fs_read(fs, "etc/banger-test");
        ck_assert_str_eq(line, "banger test image, layer 2\n");
        ck_assert_uint_eq(fs_lookup(fs, "etc/delete-me"), 0);
        ck_assert_uint_ne(fs_lookup(fs, "etc/passwd"), 0);
        ck_assert_uint_eq(fs_lookup(fs, "srv/opaque/old"), 0);
        new = fs_read(fs, "srv/opaque/new");
        ck_assert_str_eq(new, "added in layer 2\n");
        ck_assert_uint_eq(fs_count_entries(fs, "srv/opaque"), 1);
        sh = fs_read(fs, "bin/sh");
        ck_assert_str_eq(sh, "../bin/busybox");
        ck_assert_uint_eq(fs_inode(fs, "bin/busybox").i_mode, LINUX_S_IFREG | 0755);
        ck_assert_uint_eq(fs_inode(fs, "tmp").i_mode, LINUX_S_IFDIR | 01777);
        ck_assert_uint_eq(fs_inode(fs, "root").i_mode, LINUX_S_IFDIR | 0700);
        ext2fs_close_free(&fs);
}

START_TEST(pull_oci_image)
{
        _cleanup_free_ char *dir = test_dir("oci"), *reference = NULL, *error = NULL, *image = NULL,
                            *blobs = NULL;
        _cleanup_(image_info_freep) ImageInfo *info = NULL;
        Seen seen = {};
        struct stat st;

        ck_assert_int_ge(asprintf(&reference, "%s/test/busybox:1", registry), 0);
        ck_assert_int_eq(pull(dir, reference, NULL, &seen, &info, &error), 0);
        ck_assert_ptr_null(error);

        assert_test_image(dir);

        ck_assert_str_eq(info->reference, reference);
        ck_assert_str_eq(info->name + strlen(registry), "/test/busybox:1");
        ck_assert_str_eq(info->digest, manifest_digest);
        ck_assert_str_eq(info->platform, "linux/amd64");
        ck_assert_ptr_null(info->entrypoint);
        ck_assert_uint_eq(strv_length(info->cmd), 1);
        ck_assert_str_eq(info->cmd[0], "/bin/sh");
        ck_assert_uint_eq(strv_length(info->env), 1);
        ck_assert_ptr_nonnull(strstr(info->env[0], "PATH="));
        ck_assert_ptr_null(info->user);
        ck_assert_uint_eq(info->created_usec, 0);
        ck_assert_int_ge(asprintf(&image, "%s/image.ext4", dir), 0);
        ck_assert_int_eq(stat(image, &st), 0);
        ck_assert_uint_eq(info->size_bytes, (uint64_t)st.st_size);
        ck_assert_uint_eq(st.st_mode & 0777, 0644);

        for (int step = 0; step < _IMAGE_PULL_STEP_MAX; step++)
                ck_assert_msg(seen.step[step], "no progress for step '%s'",
                              image_pull_step_to_string(step));
        ck_assert(!seen.regressed);
        ck_assert_uint_gt(seen.last_total[IMAGE_PULL_STEP_DOWNLOAD], 0);
        ck_assert_uint_eq(seen.last_done[IMAGE_PULL_STEP_DOWNLOAD],
                          seen.last_total[IMAGE_PULL_STEP_DOWNLOAD]);
        ck_assert_uint_eq(seen.last_done[IMAGE_PULL_STEP_UNPACK],
                          seen.last_total[IMAGE_PULL_STEP_UNPACK]);

        /* Config and two layers, nothing temporary. */
        ck_assert_int_ge(asprintf(&blobs, "%s/cache/sha256", dir), 0);
        ck_assert_uint_eq(count_dir(blobs), 3);
        ck_assert_uint_eq(count_dir(dir), 2);
}
END_TEST

START_TEST(pull_docker_format_and_cache_reuse)
{
        _cleanup_free_ char *dir = test_dir("docker"), *reference = NULL, *error = NULL,
                            *image = NULL;
        _cleanup_(image_info_freep) ImageInfo *info = NULL, *again = NULL;

        ck_assert_int_ge(asprintf(&reference, "%s/test/busybox-docker:1", registry), 0);
        ck_assert_int_eq(pull(dir, reference, NULL, NULL, &info, &error), 0);
        assert_test_image(dir);
        ck_assert_str_eq(info->cmd[0], "/bin/sh");

        /* A second pull into a new file takes every blob from the cache. */
        ck_assert_int_ge(asprintf(&image, "%s/image.ext4", dir), 0);
        ck_assert_int_eq(unlink(image), 0);
        ck_assert_int_eq(pull(dir, reference, NULL, NULL, &again, &error), 0);
        ck_assert_str_eq(again->digest, info->digest);
        assert_test_image(dir);
}
END_TEST

START_TEST(pull_by_digest)
{
        _cleanup_free_ char *dir = test_dir("digest"), *reference = NULL, *error = NULL;
        _cleanup_(image_info_freep) ImageInfo *info = NULL;

        ck_assert_int_ge(asprintf(&reference, "%s/test/busybox@%s", registry, manifest_digest), 0);
        ck_assert_int_eq(pull(dir, reference, NULL, NULL, &info, &error), 0);
        ck_assert_str_eq(info->digest, manifest_digest);
        ck_assert_ptr_nonnull(strstr(info->name, manifest_digest));
        assert_test_image(dir);
}
END_TEST

START_TEST(pull_index_selects_platform)
{
        _cleanup_free_ char *dir = test_dir("index"), *reference = NULL, *error = NULL;
        _cleanup_(image_info_freep) ImageInfo *info = NULL;

        ck_assert_int_ge(asprintf(&reference, "%s/test/multi:1", registry), 0);
        ck_assert_msg(pull(dir, reference, NULL, NULL, &info, &error) == 0, "pull failed: %s",
                      error);
        ck_assert_str_eq(info->digest, manifest_digest);
        ck_assert_str_eq(info->platform, "linux/amd64");
        assert_test_image(dir);
}
END_TEST

START_TEST(pull_index_config_platform_mismatch)
{
        _cleanup_free_ char *dir = test_dir("arm64"), *reference = NULL, *error = NULL;

        /* The arm64 entry leads to a config that declares amd64. */
        architecture = "arm64";
        ck_assert_int_ge(asprintf(&reference, "%s/test/multi:1", registry), 0);
        ck_assert_int_eq(pull(dir, reference, NULL, NULL, NULL, &error), -ENOEXEC);
        ck_assert_ptr_nonnull(strstr(error, "is built for 'linux/amd64', not for 'linux/arm64'"));
        ck_assert_uint_eq(count_dir(dir), 1); /* cache/ only, no image */
}
END_TEST

START_TEST(pull_index_platform_missing)
{
        _cleanup_free_ char *dir = test_dir("s390x"), *reference = NULL, *error = NULL;

        architecture = "s390x";
        ck_assert_int_ge(asprintf(&reference, "%s/test/multi:1", registry), 0);
        ck_assert_int_eq(pull(dir, reference, NULL, NULL, NULL, &error), -ENOENT);
        ck_assert_msg(strstr(error, "no variant for the platform 'linux/s390x' (available: "
                                    "linux/arm64, linux/amd64)"),
                      "message '%s'", error);
        ck_assert_uint_eq(count_dir(dir), 0);
}
END_TEST

START_TEST(pull_registry_down)
{
        _cleanup_free_ char *dir = test_dir("down"), *reference = NULL, *error = NULL,
                            *expected = NULL;
        int port = free_port();

        ck_assert_int_ge(asprintf(&reference, "127.0.0.1:%d/test/busybox:1", port), 0);
        ck_assert_int_eq(pull(dir, reference, NULL, NULL, NULL, &error), -ECONNREFUSED);
        ck_assert_int_ge(asprintf(&expected, "Registry '127.0.0.1:%d' is not reachable", port), 0);
        ck_assert_msg(strstr(error, expected), "message '%s' lacks '%s'", error, expected);
        ck_assert_uint_eq(count_dir(dir), 0);
}
END_TEST

START_TEST(pull_unknown_repository)
{
        _cleanup_free_ char *dir = test_dir("unknown"), *reference = NULL, *error = NULL,
                            *expected = NULL;

        ck_assert_int_ge(asprintf(&reference, "%s/test/nonexistent:1", registry), 0);
        ck_assert_int_eq(pull(dir, reference, NULL, NULL, NULL, &error), -ENOENT);
        ck_assert_int_ge(asprintf(&expected, "Image '%s/test/nonexistent:1' not found", registry),
                         0);
        ck_assert_msg(strstr(error, expected), "message '%s' lacks '%s'", error, expected);
        ck_assert_uint_eq(count_dir(dir), 0);
}
END_TEST

START_TEST(pull_unknown_tag)
{
        _cleanup_free_ char *dir = test_dir("tag"), *reference = NULL, *error = NULL;

        ck_assert_int_ge(asprintf(&reference, "%s/test/busybox:missing", registry), 0);
        ck_assert_int_eq(pull(dir, reference, NULL, NULL, NULL, &error), -ENOENT);
        ck_assert_ptr_nonnull(strstr(error, "test/busybox:missing' not found"));
}
END_TEST

START_TEST(pull_corrupt_blob_rejected)
{
        _cleanup_free_ char *dir = test_dir("corrupt"), *reference = NULL, *error = NULL,
                            *blob = NULL, *blobs = NULL;

        ck_assert_int_ge(asprintf(&reference, "%s/test/corrupt:1", registry), 0);
        ck_assert_int_eq(pull(dir, reference, NULL, NULL, NULL, &error), -EBADMSG);
        ck_assert_msg(strstr(error, corrupt_digest), "message '%s' lacks '%s'", error,
                      corrupt_digest);
        ck_assert_ptr_nonnull(strstr(error, "failed verification"));

        /* The tampered blob is not published and no temporary file remains: only the config
         * blob, fetched before it, is in the cache. */
        ck_assert_int_ge(asprintf(&blob, "%s/cache/sha256/%s", dir, corrupt_digest + 7), 0);
        ck_assert_int_eq(access(blob, F_OK), -1);
        ck_assert_int_ge(asprintf(&blobs, "%s/cache/sha256", dir), 0);
        ck_assert_uint_eq(count_dir(blobs), 1);
        ck_assert_uint_eq(count_dir(dir), 1); /* cache/ only, no image */
}
END_TEST

/* Counts the token server's log lines that start with prefix, and those among them that
 * carried an Authorization header. */
static unsigned count_token_log(const char *prefix, unsigned *ret_with_auth)
{
        _cleanup_free_ char *log = NULL;
        unsigned n = 0, with_auth = 0;
        int r = read_full_file(token_log, 1 << 20, &log, NULL);

        if (ret_with_auth)
                *ret_with_auth = 0;
        if (r == -ENOENT) /* no request yet */
                return 0;
        ck_assert_int_eq(r, 0);
        for (char *line = log; *line;) {
                char *end = strchrnul(line, '\n');

                if (strneq(line, prefix, strlen(prefix))) {
                        n++;
                        if (memmem(line, end - line, "auth=True", 9))
                                with_auth++;
                }
                line = *end ? end + 1 : end;
        }
        if (ret_with_auth)
                *ret_with_auth = with_auth;
        return n;
}

START_TEST(pull_with_bearer_token)
{
        _cleanup_free_ char *dir = test_dir("token"), *reference = NULL, *error = NULL;
        _cleanup_(image_info_freep) ImageInfo *info = NULL;
        unsigned before = count_token_log("/token?", NULL), with_auth;

        ck_assert_int_ge(asprintf(&reference, "%s/test/busybox:1", token_registry), 0);
        ck_assert_msg(pull(dir, reference, NULL, NULL, &info, &error) == 0, "pull failed: %s",
                      error);
        ck_assert_str_eq(info->digest, manifest_digest);
        assert_test_image(dir);

        /* One anonymous token request, reused for the manifest and every blob. */
        ck_assert_uint_eq(count_token_log("/token?service=banger-test&scope=repository%3Atest%2F"
                                          "busybox%3Apull ",
                                          &with_auth),
                          before + 1);
        ck_assert_uint_eq(with_auth, 0);
}
END_TEST

START_TEST(pull_blob_redirect_drops_token)
{
        _cleanup_free_ char *dir = test_dir("redirect"), *reference = NULL, *error = NULL;
        unsigned before = count_token_log("/docker/registry/v2/blobs/", NULL), with_auth;

        ck_assert_int_ge(asprintf(&reference, "%s/test/busybox:1", redirect_registry), 0);
        ck_assert_msg(pull(dir, reference, NULL, NULL, NULL, &error) == 0, "pull failed: %s",
                      error);
        assert_test_image(dir);

        /* The config and both layers came from the storage host, without the bearer token. */
        ck_assert_uint_eq(count_token_log("/docker/registry/v2/blobs/", &with_auth), before + 3);
        ck_assert_uint_eq(with_auth, 0);
}
END_TEST

START_TEST(pull_token_denied)
{
        _cleanup_free_ char *dir = test_dir("denied"), *reference = NULL, *error = NULL;

        ck_assert_int_ge(asprintf(&reference, "%s/test/private:1", token_registry), 0);
        ck_assert_int_eq(pull(dir, reference, NULL, NULL, NULL, &error), -EACCES);
        ck_assert_ptr_nonnull(strstr(error, "denied access to 'test/private' (HTTP 401)"));
        ck_assert_ptr_nonnull(strstr(error, token_registry));
        /* No credentials file was given, so the message explains how to configure one. */
        ck_assert_ptr_nonnull(strstr(error, "set [Registry] CredentialsFile"));
        ck_assert_uint_eq(count_dir(dir), 0);
}
END_TEST

START_TEST(pull_cancelled)
{
        _cleanup_free_ char *dir = test_dir("cancel"), *reference = NULL, *error = NULL;
        volatile bool cancel = true;

        ck_assert_int_ge(asprintf(&reference, "%s/test/busybox:1", registry), 0);
        ck_assert_int_eq(pull(dir, reference, &cancel, NULL, NULL, &error), -ECANCELED);
        ck_assert_ptr_nonnull(strstr(error, "cancelled"));
        ck_assert_uint_eq(count_dir(dir), 0);
}
END_TEST

START_TEST(pull_output_exists)
{
        _cleanup_free_ char *dir = test_dir("exists"), *reference = NULL, *error = NULL,
                            *image = NULL;

        ck_assert_int_ge(asprintf(&image, "%s/image.ext4", dir), 0);
        ck_assert_int_eq(write_file_atomic(image, "keep", 4, 0644), 0);
        ck_assert_int_ge(asprintf(&reference, "%s/test/busybox:1", registry), 0);
        ck_assert_int_eq(pull(dir, reference, NULL, NULL, NULL, &error), -EEXIST);
        ck_assert_ptr_nonnull(strstr(error, "already exists"));
}
END_TEST

START_TEST(pull_invalid_reference)
{
        _cleanup_free_ char *dir = test_dir("invalid"), *error = NULL;

        ck_assert_int_eq(pull(dir, "Not/Valid", NULL, NULL, NULL, &error), -EINVAL);
        ck_assert_ptr_nonnull(strstr(error, "'Not/Valid'"));
}
END_TEST

START_TEST(image_info_json_round_trip)
{
        char *entrypoint[] = { "/bin/sh", "-c", NULL }, *env[] = { "A=b \"c\"", NULL };
        ImageInfo info = {
                .name = "docker.io/library/busybox:latest",
                .reference = "busybox",
                .digest = "sha256:"
                          "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                .platform = "linux/amd64",
                .size_bytes = 1ULL << 40,
                .entrypoint = entrypoint,
                .env = env,
                .working_dir = "/srv",
                .created_usec = 1704164645123456ULL,
        };
        _cleanup_(image_info_freep) ImageInfo *back = NULL;
        _cleanup_free_ char *json = NULL;

        ck_assert_int_eq(image_info_to_json(&info, &json), 0);
        ck_assert_int_eq(image_info_from_json(json, &back), 0);
        ck_assert_str_eq(back->name, info.name);
        ck_assert_str_eq(back->reference, info.reference);
        ck_assert_str_eq(back->digest, info.digest);
        ck_assert_str_eq(back->platform, info.platform);
        ck_assert_uint_eq(back->size_bytes, info.size_bytes);
        ck_assert_uint_eq(strv_length(back->entrypoint), 2);
        ck_assert_str_eq(back->entrypoint[1], "-c");
        ck_assert_ptr_null(back->cmd);
        ck_assert_str_eq(back->env[0], "A=b \"c\"");
        ck_assert_ptr_null(back->user);
        ck_assert_str_eq(back->working_dir, "/srv");
        ck_assert_uint_eq(back->created_usec, info.created_usec);

        ck_assert_int_eq(image_info_from_json("{\"name\":\"x\"}", &back), -EBADMSG);
        ck_assert_int_eq(image_info_from_json("[]", &back), -EBADMSG);
        ck_assert_int_eq(image_info_from_json("{", &back), -EBADMSG);
}
END_TEST

START_TEST(step_names)
{
        ck_assert_str_eq(image_pull_step_to_string(IMAGE_PULL_STEP_RESOLVE), "resolve");
        ck_assert_str_eq(image_pull_step_to_string(IMAGE_PULL_STEP_DOWNLOAD), "download");
        ck_assert_str_eq(image_pull_step_to_string(IMAGE_PULL_STEP_VERIFY), "verify");
        ck_assert_str_eq(image_pull_step_to_string(IMAGE_PULL_STEP_UNPACK), "unpack");
        ck_assert_ptr_null(image_pull_step_to_string(_IMAGE_PULL_STEP_MAX));
        ck_assert_ptr_null(image_pull_step_to_string(_IMAGE_PULL_STEP_INVALID));
}
END_TEST

static Suite *image_pull_suite(void)
{
        Suite *s = suite_create("image-pull");
        TCase *registry_tests = tcase_create("registry");
        TCase *offline = tcase_create("offline");

        tcase_add_unchecked_fixture(registry_tests, suite_setup, suite_teardown);
        tcase_set_timeout(registry_tests, 300);
        tcase_add_test(registry_tests, pull_oci_image);
        tcase_add_test(registry_tests, pull_docker_format_and_cache_reuse);
        tcase_add_test(registry_tests, pull_by_digest);
        tcase_add_test(registry_tests, pull_index_selects_platform);
        tcase_add_test(registry_tests, pull_index_config_platform_mismatch);
        tcase_add_test(registry_tests, pull_index_platform_missing);
        tcase_add_test(registry_tests, pull_registry_down);
        tcase_add_test(registry_tests, pull_unknown_repository);
        tcase_add_test(registry_tests, pull_unknown_tag);
        tcase_add_test(registry_tests, pull_corrupt_blob_rejected);
        tcase_add_test(registry_tests, pull_with_bearer_token);
        tcase_add_test(registry_tests, pull_blob_redirect_drops_token);
        tcase_add_test(registry_tests, pull_token_denied);
        tcase_add_test(registry_tests, pull_cancelled);
        tcase_add_test(registry_tests, pull_output_exists);
        tcase_add_test(registry_tests, pull_invalid_reference);
        suite_add_tcase(s, registry_tests);

        tcase_add_test(offline, image_info_json_round_trip);
        tcase_add_test(offline, step_names);
        suite_add_tcase(s, offline);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(image_pull_suite());
        int failed;

        curl_global_init(CURL_GLOBAL_DEFAULT);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        curl_global_cleanup();
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
