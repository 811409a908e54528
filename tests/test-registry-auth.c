/* Registry access beyond anonymous pulls: credentials files and helpers, Basic and token
 * authentication, TLS with a CA file, mirrors and rate limiting. The offline cases test the
 * parsers; the others run against real docker-registry instances on loopback, fed with skopeo
 * from the OCI layout that integration/build-test-image.sh writes. */

#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
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

#include "credentials.h"
#include "fileio.h"
#include "image-pull.h"
#include "macro.h"
#include "registry.h"
#include "strv.h"

#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif

#define USER          "alice"
#define PASSWORD      "wonderland"
#define TOKEN_USER    "bob"
#define TOKEN_SECRET  "builder"
#define HELPER_SECRET "looking-glass"
#define REFRESH_TOKEN "refresh-for-bob"

static char tmpdir[] = "/tmp/test-registry-auth-XXXXXX";
static pid_t registry_pid = -1, basic_pid = -1, tls_pid = -1, token_registry_pid = -1,
             token_pid = -1, limit_pid = -1;
static char registry[64];       /* anonymous, plain HTTP */
static char basic_registry[64]; /* htpasswd with USER:PASSWORD, plain HTTP */
static char tls_registry[64];   /* anonymous over TLS with a self-signed certificate */
static char
        token_registry[64];   /* token authentication, and the token server requires credentials */
static char limit_server[64]; /* rate-limit-server.py in front of registry */
/* Like basic_registry, with blobs redirected to the token server, which serves the storage. */
static char redirect_registry[64];
static pid_t redirect_pid = -1;
static char token_port[16];
static char *tls_cert, *other_cert, *token_log, *limit_log;
static char manifest_digest[80]; /* of test/busybox:1 */

/* Runs argv and returns its exit status; stdout goes to out when not NULL. */
static int run(char *const argv[], char *out, size_t out_size)
{
        posix_spawn_file_actions_t actions;
        int pipefd[2], status;
        pid_t pid;

        ck_assert_int_eq(pipe(pipefd), 0);
        ck_assert_int_eq(posix_spawn_file_actions_init(&actions), 0);
        ck_assert_int_eq(posix_spawn_file_actions_adddup2(&actions, pipefd[1], STDOUT_FILENO), 0);
        ck_assert_int_eq(posix_spawn_file_actions_addclose(&actions, pipefd[0]), 0);
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

static char *tmp_path(const char *name)
{
        char *p;

        ck_assert_int_ge(asprintf(&p, "%s/%s", tmpdir, name), 0);
        return p;
}

static void write_text(const char *path, const char *text)
{
        ck_assert_int_eq(write_file_atomic(path, text, strlen(text), 0600), 0);
}

/* Starts docker-registry on a free port over the shared storage, with extra configuration
 * appended to its http section, and waits until it accepts connections. */
static pid_t start_registry(const char *name, const char *http_extra, const char *extra,
                            char *ret_address, size_t address_size)
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
                                  "http:\n  addr: %s\n%s%s",
                                  tmpdir, ret_address, http_extra, extra),
                         0);
        write_text(config, text);

        argv[2] = config;
        ck_assert_int_ge(asprintf(&log_path, "%s/%s.log", tmpdir, name), 0);
        ck_assert_int_eq(posix_spawn_file_actions_init(&actions), 0);
        ck_assert_int_eq(posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log_path,
                                                          O_WRONLY | O_CREAT | O_TRUNC, 0644),
                         0);
        ck_assert_int_eq(posix_spawnp(&pid, "docker-registry", &actions, NULL, argv, environ), 0);
        posix_spawn_file_actions_destroy(&actions);

        while (!port_accepts(port)) {
                ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), 0);
                usleep(20 * 1000);
        }
        return pid;
}

/* Starts a python3 script from tests/data/oci that writes its port to a file, and waits for
 * that file. */
static pid_t start_script(char **argv, const char *port_file, char *ret_port, size_t port_size)
{
        _cleanup_free_ char *port = NULL;
        pid_t pid;

        ck_assert_int_eq(posix_spawnp(&pid, "python3", NULL, NULL, argv, environ), 0);
        while (read_full_file(port_file, 64, &port, NULL) < 0) {
                ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), 0);
                usleep(20 * 1000);
        }
        snprintf(ret_port, port_size, "%s", port);
        return pid;
}

static void make_certificate(const char *name, const char *cn, const char *san, char **ret_key,
                             char **ret_cert)
{
        _cleanup_free_ char *subject = NULL, *key_name = NULL, *cert_name = NULL;

        ck_assert_int_ge(asprintf(&key_name, "%s.key", name), 0);
        ck_assert_int_ge(asprintf(&cert_name, "%s.crt", name), 0);
        *ret_key = tmp_path(key_name);
        *ret_cert = tmp_path(cert_name);
        ck_assert_int_ge(asprintf(&subject, "/CN=%s", cn), 0);
        char *req[] = { "openssl",   "req",     "-x509",  "-newkey", "rsa:2048",
                        "-nodes",    "-keyout", *ret_key, "-out",    *ret_cert,
                        "-days",     "2",       "-subj",  subject,   san ? "-addext" : NULL,
                        (char *)san, NULL };
        ck_assert_int_eq(run(req, NULL, 0), 0);
}

static char *start_token_server(void)
{
        _cleanup_free_ char *key = NULL, *cert = NULL, *script = NULL, *port_file = NULL,
                            *storage = NULL;
        char port[16], *auth;

        make_certificate("token", "banger-test-token", NULL, &key, &cert);
        port_file = tmp_path("token.port");
        token_log = tmp_path("token.log");
        storage = tmp_path("storage");
        ck_assert_int_ge(asprintf(&script, "%s/tests/data/oci/token-server.py",
                                  getenv("BANGER_TEST_SRCDIR")),
                         0);
        setenv("TOKEN_SERVER_CREDENTIALS", TOKEN_USER ":" TOKEN_SECRET, 1);
        setenv("TOKEN_SERVER_REFRESH_TOKEN", REFRESH_TOKEN, 1);
        char *argv[] = { "python3", script,    key,     cert, "banger-test", "banger-test-issuer",
                         port_file, token_log, storage, NULL };
        token_pid = start_script(argv, port_file, port, sizeof(port));
        snprintf(token_port, sizeof(token_port), "%s", port);
        unsetenv("TOKEN_SERVER_CREDENTIALS");
        unsetenv("TOKEN_SERVER_REFRESH_TOKEN");

        ck_assert_int_ge(asprintf(&auth,
                                  "auth:\n  token:\n"
                                  "    realm: http://127.0.0.1:%s/token\n"
                                  "    service: banger-test\n"
                                  "    issuer: banger-test-issuer\n"
                                  "    rootcertbundle: %s\n",
                                  port, cert),
                         0);
        return auth;
}

static void push_test_image(void)
{
        _cleanup_free_ char *script = NULL, *layout = NULL, *source = NULL, *destination = NULL;
        char out[256];

        ck_assert_int_ge(asprintf(&script, "%s/integration/build-test-image.sh",
                                  getenv("BANGER_TEST_SRCDIR")),
                         0);
        layout = tmp_path("layout");
        setenv("SOURCE_DATE_EPOCH", "0", 1);
        char *build[] = { script, layout, NULL };
        ck_assert_int_eq(run(build, out, sizeof(out)), 0);
        out[strcspn(out, "\n")] = '\0';
        ck_assert_uint_eq(strlen(out), 71); /* "sha256:" and 64 hex digits */
        memcpy(manifest_digest, out, 72);

        ck_assert_int_ge(asprintf(&source, "oci:%s:latest", layout), 0);
        ck_assert_int_ge(asprintf(&destination, "docker://%s/test/busybox:1", registry), 0);
        char *push[] = { "skopeo", "copy",      "--quiet", "--dest-tls-verify=false",
                         source,   destination, NULL };
        ck_assert_int_eq(run(push, NULL, 0), 0);
}

static void suite_setup(void)
{
        _cleanup_free_ char *htpasswd = NULL, *htpasswd_path = NULL, *basic_auth = NULL,
                            *tls_key = NULL, *tls = NULL, *other_key = NULL, *token_auth = NULL,
                            *script = NULL, *upstream = NULL, *port_file = NULL, *redirect = NULL;
        char port[16];

        ck_assert_ptr_nonnull(mkdtemp(tmpdir));

        /* The key generations first: they are the steps most likely to fail, and a failing
         * unchecked fixture leaves no chance to stop what it started. */
        make_certificate("tls", "127.0.0.1", "subjectAltName=IP:127.0.0.1", &tls_key, &tls_cert);
        make_certificate("other", "banger-test-other-ca", NULL, &other_key, &other_cert);
        token_auth = start_token_server();

        registry_pid = start_registry("registry", "", "", registry, sizeof(registry));

        char *htpasswd_argv[] = { "htpasswd", "-Bbn", USER, PASSWORD, NULL };
        htpasswd = calloc(1, 512);
        ck_assert_ptr_nonnull(htpasswd);
        ck_assert_int_eq(run(htpasswd_argv, htpasswd, 512), 0);
        htpasswd_path = tmp_path("htpasswd");
        write_text(htpasswd_path, htpasswd);
        ck_assert_int_ge(asprintf(&basic_auth,
                                  "auth:\n  htpasswd:\n    realm: banger-test\n    path: %s\n",
                                  htpasswd_path),
                         0);
        basic_pid = start_registry("basic", "", basic_auth, basic_registry, sizeof(basic_registry));
        ck_assert_int_ge(asprintf(&redirect,
                                  "%smiddleware:\n  storage:\n    - name: redirect\n"
                                  "      options:\n"
                                  "        baseurl: http://127.0.0.1:%s\n",
                                  basic_auth, token_port),
                         0);
        redirect_pid = start_registry("redirect", "", redirect, redirect_registry,
                                      sizeof(redirect_registry));

        ck_assert_int_ge(
                asprintf(&tls, "  tls:\n    certificate: %s\n    key: %s\n", tls_cert, tls_key), 0);
        tls_pid = start_registry("tls", tls, "", tls_registry, sizeof(tls_registry));
        token_registry_pid = start_registry("token-registry", "", token_auth, token_registry,
                                            sizeof(token_registry));

        ck_assert_int_ge(asprintf(&script, "%s/tests/data/oci/rate-limit-server.py",
                                  getenv("BANGER_TEST_SRCDIR")),
                         0);
        ck_assert_int_ge(asprintf(&upstream, "http://%s", registry), 0);
        port_file = tmp_path("limit.port");
        limit_log = tmp_path("limit.log");
        char *limit_argv[] = { "python3", script, upstream, port_file, limit_log, NULL };
        limit_pid = start_script(limit_argv, port_file, port, sizeof(port));
        snprintf(limit_server, sizeof(limit_server), "127.0.0.1:%s", port);

        push_test_image();
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
        stop(&basic_pid);
        stop(&redirect_pid);
        stop(&tls_pid);
        stop(&token_registry_pid);
        stop(&token_pid);
        stop(&limit_pid);
        rm_rf(tmpdir);
        free(tls_cert);
        free(other_cert);
        free(token_log);
        free(limit_log);
}

/* Writes a credentials file with one "auths" entry for key and returns its path. */
static char *write_auths(const char *name, const char *key, const char *user, const char *password)
{
        _cleanup_free_ char *text = NULL;
        char *path = tmp_path(name);

        ck_assert_int_ge(asprintf(&text,
                                  "{\"auths\": {\"%s\": {\"username\": \"%s\", "
                                  "\"password\": \"%s\"}}}",
                                  key, user, password),
                         0);
        write_text(path, text);
        return path;
}

typedef struct PullSetup {
        const char *credentials_file;
        const char *ca_file;
        char **mirrors;
        char **insecure; /* NULL: every plain HTTP server of the fixture */
} PullSetup;

static int pull(const char *name, const char *reference, const PullSetup *setup, ImageInfo **ret,
                char **ret_error)
{
        _cleanup_free_ char *dir = tmp_path(name), *cache = NULL, *output = NULL;
        char *insecure[] = { registry,     basic_registry,    token_registry,
                             limit_server, redirect_registry, NULL };
        ImagePullOptions opts = {
                .reference = reference,
                .insecure_registries = setup->insecure ? setup->insecure : insecure,
                .credentials_file = setup->credentials_file,
                .ca_file = setup->ca_file,
                .mirrors = setup->mirrors,
                .os = "linux",
                .architecture = "amd64",
        };

        ck_assert_int_eq(mkdir_p(dir, 0755), 0);
        ck_assert_int_ge(asprintf(&cache, "%s/cache", dir), 0);
        ck_assert_int_ge(asprintf(&output, "%s/image.ext4", dir), 0);
        opts.blob_cache_dir = cache;
        opts.output_path = output;
        return image_pull(&opts, ret, ret_error);
}

/* Fetches the manifest of test/busybox:1 from address over plain HTTP with the credentials
 * file. */
static int get_manifest(const char *address, const char *credentials_file, char **ret_error)
{
        _cleanup_(oci_reference_freep) OciReference *ref = NULL;
        _cleanup_(registry_client_freep) RegistryClient *client = NULL;
        _cleanup_free_ char *reference = NULL, *data = NULL, *content_type = NULL, *digest = NULL;
        RegistryClientOptions opts = { .plain_http = true, .credentials_file = credentials_file };
        size_t size = 0;
        int r;

        ck_assert_int_ge(asprintf(&reference, "%s/test/busybox:1", address), 0);
        ck_assert_int_eq(oci_reference_parse(reference, &ref, NULL), 0);
        ck_assert_int_eq(registry_client_new_with_options(ref, &opts, &client, NULL), 0);
        r = registry_get_manifest(client, "1", NULL, &data, &size, &content_type, &digest,
                                  ret_error);
        if (r >= 0)
                ck_assert_str_eq(digest, manifest_digest);
        return r;
}

#define assert_contains(text, part)                                                \
        ck_assert_msg((text) && strstr((text), (part)), "message '%s' lacks '%s'", \
                      (text) ? (text) : "(null)", (part))

/* Offline parsers */

START_TEST(normalize_host_forms)
{
        static const struct {
                const char *key, *expected;
        } cases[] = {
                { "127.0.0.1:5000", "127.0.0.1:5000" },
                { "http://127.0.0.1:5000", "127.0.0.1:5000" },
                { "https://127.0.0.1:5000/v1/", "127.0.0.1:5000" },
                { "http://LocalHost:5000/v2/", "localhost:5000" },
                { "https://index.docker.io/v1/", "docker.io" },
                { "index.docker.io", "docker.io" },
                { "registry-1.docker.io", "docker.io" },
                { "docker.io", "docker.io" },
                { "HTTPS://Quay.IO", "quay.io" },
                { "ghcr.io/", "ghcr.io" },
                { "[::1]:5000", "[::1]:5000" },
                { "", NULL },
                { "https://", NULL },
                { "/v2/", NULL },
                { "a b", NULL },
                { "user@host", NULL },
                { "host?x", NULL },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *host = NULL;
                int r = docker_config_normalize_host(cases[i].key, &host);

                if (!cases[i].expected) {
                        ck_assert_msg(r == -EINVAL, "'%s' gave %d", cases[i].key, r);
                        ck_assert_ptr_null(host);
                        continue;
                }
                ck_assert_msg(r == 0, "'%s' gave %d", cases[i].key, r);
                ck_assert_str_eq(host, cases[i].expected);
        }
}
END_TEST

START_TEST(base64_decode_cases)
{
        static const struct {
                const char *text, *expected;
        } cases[] = {
                { "YWxpY2U6d29uZGVybGFuZA==", "alice:wonderland" },
                { "YWxpY2U6d29uZGVybGFuZA", "alice:wonderland" },
                { "YTpi", "a:b" },
                { "YTpiYw==", "a:bc" },
                { "YTpiY2Q=", "a:bcd" },
                { "", "" },
                { "Pz8/", "???" },
                { "+/+/", "\xfb\xff\xbf" },
                { "YTpi!", NULL },
                { "Y", NULL },
                { "YTpiY=", NULL },
                { "YWxp Y2U=", NULL },
                { "YTpiYw===", NULL },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char *out = NULL;
                size_t size = 0;
                int r = base64_decode(cases[i].text, &out, &size);

                if (!cases[i].expected) {
                        ck_assert_msg(r == -EINVAL, "'%s' gave %d", cases[i].text, r);
                        continue;
                }
                ck_assert_msg(r == 0, "'%s' gave %d", cases[i].text, r);
                ck_assert_uint_eq(size, strlen(cases[i].expected));
                ck_assert_str_eq(out, cases[i].expected);
                free(out);
        }
}
END_TEST

START_TEST(docker_config_entries)
{
        static const struct {
                const char *json, *registry;
                int result; /* of docker_config_find_credential, or of parsing when negative */
                const char *user, *password, *error;
        } cases[] = {
                { "{\"auths\":{\"127.0.0.1:5000\":{\"auth\":\"YWxpY2U6d29uZGVybGFuZA==\"}}}",
                  "127.0.0.1:5000", 1, "alice", "wonderland", NULL },
                /* The password is everything after the first colon. */
                { "{\"auths\":{\"r.example\":{\"auth\":\"dTpwOnE6cg==\"}}}", "r.example", 1, "u",
                  "p:q:r", NULL },
                { "{\"auths\":{\"https://index.docker.io/v1/\":{\"username\":\"hub\","
                  "\"password\":\"pw\"}}}",
                  "docker.io", 1, "hub", "pw", NULL },
                { "{\"auths\":{\"http://r.example:5000/v2/\":{\"username\":\"a\","
                  "\"password\":\"b\"}}}",
                  "r.example:5000", 1, "a", "b", NULL },
                /* A host without a port does not match the same host with one. */
                { "{\"auths\":{\"r.example\":{\"username\":\"a\",\"password\":\"b\"}}}",
                  "r.example:5000", 0, NULL, NULL, NULL },
                /* "auth" wins over username and password, as in docker. */
                { "{\"auths\":{\"r.example\":{\"auth\":\"YTpi\",\"username\":\"x\","
                  "\"password\":\"y\"}}}",
                  "r.example", 1, "a", "b", NULL },
                /* An empty entry, as docker leaves beside credsStore, has no credential. */
                { "{\"auths\":{\"r.example\":{}}}", "r.example", 0, NULL, NULL, NULL },
                { "{}", "r.example", 0, NULL, NULL, NULL },
                { "{\"auths\":null,\"credHelpers\":null,\"credsStore\":null}", "r.example", 0, NULL,
                  NULL, NULL },
                { "{\"auths\":{},\"HttpHeaders\":{\"User-Agent\":\"x\"}}", "r.example", 0, NULL,
                  NULL, NULL },
                { "", NULL, -EBADMSG, NULL, NULL, "is not a JSON object" },
                { "[]", NULL, -EBADMSG, NULL, NULL, "is not a JSON object" },
                { "{\"auths\":{}} trailing", NULL, -EBADMSG, NULL, NULL, "is not a JSON object" },
                { "{\"auths\":[]}", NULL, -EBADMSG, NULL, NULL, "\"auths\" value" },
                { "{\"auths\":{\"r.example\":\"x\"}}", NULL, -EBADMSG, NULL, NULL,
                  "entry for 'r.example'" },
                { "{\"auths\":{\"r.example\":{\"auth\":\"!!\"}}}", NULL, -EBADMSG, NULL, NULL,
                  "invalid \"auth\" value for 'r.example'" },
                { "{\"auths\":{\"r.example\":{\"auth\":\"YWxpY2U=\"}}}", NULL, -EBADMSG, NULL, NULL,
                  "invalid \"auth\" value" },
                { "{\"auths\":{\"https://\":{\"auth\":\"YTpi\"}}}", NULL, -EBADMSG, NULL, NULL,
                  "key 'https://'" },
                { "{\"credHelpers\":{\"r.example\":\"../../bin/sh\"}}", NULL, -EBADMSG, NULL, NULL,
                  "invalid helper for 'r.example'" },
                { "{\"credHelpers\":{\"r.example\":7}}", NULL, -EBADMSG, NULL, NULL,
                  "invalid helper" },
                { "{\"credsStore\":\"a b\"}", NULL, -EBADMSG, NULL, NULL,
                  "invalid \"credsStore\"" },
                { "{\"credsStore\":\"\"}", NULL, -EBADMSG, NULL, NULL, "invalid \"credsStore\"" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(docker_config_freep) DockerConfig *config = NULL;
                _cleanup_(registry_credential_freep) RegistryCredential *credential = NULL;
                _cleanup_free_ char *error = NULL;
                int r = docker_config_parse(cases[i].json, strlen(cases[i].json), "/etc/x.json",
                                            &config, &error);

                if (cases[i].result < 0) {
                        ck_assert_msg(r == cases[i].result, "'%s' gave %d", cases[i].json, r);
                        assert_contains(error, cases[i].error);
                        assert_contains(error, "'/etc/x.json'");
                        continue;
                }
                ck_assert_msg(r == 0, "'%s' gave %d: %s", cases[i].json, r, error);
                r = docker_config_find_credential(config, cases[i].registry, &credential, &error);
                ck_assert_msg(r == cases[i].result, "'%s' gave %d", cases[i].json, r);
                if (r == 0) {
                        ck_assert_ptr_null(credential);
                        continue;
                }
                ck_assert_str_eq(credential->username, cases[i].user);
                ck_assert_str_eq(credential->password, cases[i].password);
                ck_assert_str_eq(credential->source, "credentials file '/etc/x.json'");
        }
}
END_TEST

START_TEST(docker_config_identity_tokens)
{
        static const struct {
                const char *json, *user, *password;
        } cases[] = {
                /* Docker writes the user name in "auth" with an empty password. */
                { "{\"auths\":{\"r.example\":{\"auth\":\"Ym9iOg==\",\"identitytoken\":\"tok\"}}}",
                  "bob", "" },
                { "{\"auths\":{\"r.example\":{\"identitytoken\":\"tok\"}}}", "<token>", "" },
                { "{\"auths\":{\"r.example\":{\"username\":\"u\",\"password\":\"p\","
                  "\"identitytoken\":\"tok\"}}}",
                  "u", "p" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(docker_config_freep) DockerConfig *config = NULL;
                _cleanup_(registry_credential_freep) RegistryCredential *credential = NULL;
                _cleanup_free_ char *error = NULL;

                ck_assert_int_eq(docker_config_parse(cases[i].json, strlen(cases[i].json), "f.json",
                                                     &config, &error),
                                 0);
                ck_assert_int_eq(
                        docker_config_find_credential(config, "r.example", &credential, &error), 1);
                ck_assert_str_eq(credential->username, cases[i].user);
                ck_assert_str_eq(credential->password, cases[i].password);
                ck_assert_str_eq(credential->identity_token, "tok");
        }
}
END_TEST

START_TEST(docker_config_load_missing)
{
        _cleanup_(docker_config_freep) DockerConfig *config = NULL;
        _cleanup_free_ char *error = NULL;

        ck_assert_int_eq(docker_config_load("/nonexistent/registry-auth.json", &config, &error),
                         -ENOENT);
        ck_assert_ptr_null(config);
        ck_assert_ptr_null(error);
}
END_TEST

START_TEST(mirror_entries)
{
        static const struct {
                const char *entry, *registry, *scheme, *host;
        } cases[] = {
                { "docker.io=http://127.0.0.1:5001", "docker.io", "http", "127.0.0.1:5001" },
                { "docker.io=https://mirror.example.com/", "docker.io", "https",
                  "mirror.example.com" },
                { "127.0.0.1:5000=http://[::1]:5001", "127.0.0.1:5000", "http", "[::1]:5001" },
                { "docker.io", NULL, NULL, NULL },
                { "=http://m", NULL, NULL, NULL },
                { "docker.io=", NULL, NULL, NULL },
                { "docker.io=m.example", NULL, NULL, NULL },
                { "docker.io=ftp://m.example", NULL, NULL, NULL },
                { "docker.io=https://", NULL, NULL, NULL },
                { "docker.io=https://m.example/path", NULL, NULL, NULL },
                { "docker.io=https://user@m.example", NULL, NULL, NULL },
                { "docker.io/library=https://m.example", NULL, NULL, NULL },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *registry = NULL, *scheme = NULL, *host = NULL;
                int r = registry_mirror_parse(cases[i].entry, &registry, &scheme, &host);

                if (!cases[i].registry) {
                        ck_assert_msg(r == -EINVAL, "'%s' gave %d", cases[i].entry, r);
                        continue;
                }
                ck_assert_msg(r == 0, "'%s' gave %d", cases[i].entry, r);
                ck_assert_str_eq(registry, cases[i].registry);
                ck_assert_str_eq(scheme, cases[i].scheme);
                ck_assert_str_eq(host, cases[i].host);
        }
}
END_TEST

START_TEST(retry_after_values)
{
        /* Sun, 06 Nov 1994 08:49:37 GMT, the example date of RFC 9110. */
        const time_t now = 784111777;
        static const struct {
                const char *value;
                int result;
                unsigned seconds;
        } cases[] = {
                { "5", 0, 5 },
                { " 120 ", 0, 120 },
                { "0", 0, 0 },
                { "99999999999999999999999", 0, 366u * 24 * 3600 },
                { "Sun, 06 Nov 1994 08:50:07 GMT", 0, 30 },
                { "Sunday, 06-Nov-94 08:50:37 GMT", 0, 60 },
                { "Sun Nov  6 08:49:47 1994", 0, 10 },
                { "Sun, 06 Nov 1994 08:00:00 GMT", 0, 0 },
                { "Mon, 06 Nov 2095 08:00:00 GMT", 0, 366u * 24 * 3600 },
                { "5s", -EINVAL, 0 },
                { "-1", -EINVAL, 0 },
                { "soon", -EINVAL, 0 },
                { "", -EINVAL, 0 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                unsigned seconds = 12345;
                int r = registry_parse_retry_after(cases[i].value, now, &seconds);

                ck_assert_msg(r == cases[i].result, "'%s' gave %d", cases[i].value, r);
                if (r == 0)
                        ck_assert_msg(seconds == cases[i].seconds, "'%s' gave %u s", cases[i].value,
                                      seconds);
        }
}
END_TEST

START_TEST(helper_cases)
{
        static const struct {
                const char *name, *server;
                int result;
                const char *error;
        } cases[] = {
                { "banger-test", "r.example:5000", 1, NULL },
                { "banger-test", "other.example", 0, NULL },
                { "banger-test", "identity", 1, NULL },
                { "banger-test", "garbage", -EBADMSG, "printed no JSON object" },
                { "banger-test", "hang", -ETIMEDOUT, "did not finish within 1 s" },
                { "banger-missing", "r.example", -ENOENT,
                  "Failed to run credential helper 'docker-credential-banger-missing'" },
                { "../banger-test", "r.example", -EINVAL, "is invalid" },
                { "", "r.example", -EINVAL, "is invalid" },
        };

        setenv("BANGER_TEST_HELPER_SERVER", "r.example:5000", 1);
        setenv("BANGER_TEST_HELPER_SECRET", HELPER_SECRET, 1);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(registry_credential_freep) RegistryCredential *credential = NULL;
                _cleanup_free_ char *error = NULL;
                /* Only the helper that hangs gets the short timeout, so a slow machine cannot
                 * fail the others. */
                unsigned timeout_sec = streq(cases[i].server, "hang") ? 1 : 60;
                int r = credential_helper_get(cases[i].name, cases[i].server, timeout_sec,
                                              &credential, &error);

                ck_assert_msg(r == cases[i].result, "%s for '%s' gave %d: %s", cases[i].name,
                              cases[i].server, r, error);
                if (cases[i].error)
                        assert_contains(error, cases[i].error);
                if (r == 1 && streq(cases[i].server, "identity")) {
                        ck_assert_str_eq(credential->username, "<token>");
                        ck_assert_str_eq(credential->password, "");
                        ck_assert_str_eq(credential->identity_token, "refresh-1");
                } else if (r == 1) {
                        ck_assert_str_eq(credential->username, "alice");
                        ck_assert_str_eq(credential->password, HELPER_SECRET);
                        ck_assert_ptr_null(credential->identity_token);
                        ck_assert_str_eq(credential->source,
                                         "credential helper 'docker-credential-banger-test'");
                } else {
                        ck_assert_ptr_null(credential);
                }
        }
}
END_TEST

/* Basic authentication */

START_TEST(basic_pull_with_auth_field)
{
        _cleanup_free_ char *path = tmp_path("auth-field.json"), *text = NULL, *reference = NULL,
                            *error = NULL;
        _cleanup_(image_info_freep) ImageInfo *info = NULL;

        /* "YWxpY2U6d29uZGVybGFuZA==" is base64 of USER ":" PASSWORD. */
        ck_assert_int_ge(asprintf(&text,
                                  "{\"auths\":{\"%s\":{\"auth\":\"YWxpY2U6d29uZGVybGFuZA==\"}}}",
                                  basic_registry),
                         0);
        write_text(path, text);
        ck_assert_int_ge(asprintf(&reference, "%s/test/busybox:1", basic_registry), 0);
        PullSetup setup = { .credentials_file = path };
        ck_assert_msg(pull("basic-pull", reference, &setup, &info, &error) == 0, "pull failed: %s",
                      error);
        ck_assert_str_eq(info->digest, manifest_digest);
}
END_TEST

START_TEST(basic_host_key_forms)
{
        const char *forms[] = { "%s", "http://%s", "https://%s/v1/", "http://%s/v2/" };

        for (size_t i = 0; i < ELEMENTSOF(forms); i++) {
                _cleanup_free_ char *key = NULL, *path = NULL, *error = NULL;

                ck_assert_int_ge(asprintf(&key, forms[i], basic_registry), 0);
                path = write_auths("key-form.json", key, USER, PASSWORD);
                ck_assert_msg(get_manifest(basic_registry, path, &error) == 0,
                              "key '%s' failed: %s", key, error);
        }
}
END_TEST

START_TEST(basic_wrong_password)
{
        _cleanup_free_ char *path = write_auths("wrong.json", basic_registry, USER, "queen"),
                            *reference = NULL, *error = NULL, *expected = NULL;

        ck_assert_int_ge(asprintf(&reference, "%s/test/busybox:1", basic_registry), 0);
        PullSetup setup = { .credentials_file = path };
        ck_assert_int_eq(pull("basic-wrong", reference, &setup, NULL, &error), -EACCES);
        ck_assert_int_ge(asprintf(&expected, "Registry '%s' denied access", basic_registry), 0);
        assert_contains(error, expected);
        assert_contains(error, "user '" USER "'");
        assert_contains(error, path);
        assert_contains(error, "HTTP 401");
}
END_TEST

START_TEST(basic_without_credentials)
{
        _cleanup_free_ char *path = write_auths("elsewhere.json", "r.example", USER, PASSWORD),
                            *missing = tmp_path("missing.json"), *error = NULL, *expected = NULL;

        ck_assert_int_ge(asprintf(&expected,
                                  "add credentials for '%s' to the credentials file '%s'",
                                  basic_registry, path),
                         0);
        ck_assert_int_eq(get_manifest(basic_registry, path, &error), -EACCES);
        assert_contains(error, expected);

        free(error);
        error = NULL;
        ck_assert_int_eq(get_manifest(basic_registry, missing, &error), -EACCES);
        assert_contains(error, missing);

        free(error);
        error = NULL;
        ck_assert_int_eq(get_manifest(basic_registry, NULL, &error), -EACCES);
        assert_contains(error, "set [Registry] CredentialsFile");
}
END_TEST

START_TEST(basic_invalid_credentials_file)
{
        _cleanup_free_ char *path = tmp_path("invalid.json"), *error = NULL;

        write_text(path, "{\"auths\": {");
        ck_assert_int_eq(get_manifest(basic_registry, path, &error), -EBADMSG);
        assert_contains(error, path);
        assert_contains(error, "is not a JSON object");

        /* A path that cannot be read as a file fails with its reason. */
        free(error);
        error = NULL;
        ck_assert_int_eq(get_manifest(basic_registry, tmpdir, &error), -EISDIR);
        assert_contains(error, "Failed to read credentials file");
        assert_contains(error, tmpdir);

        /* An anonymous registry never reads the file. */
        free(error);
        error = NULL;
        ck_assert_msg(get_manifest(registry, path, &error) == 0, "pull failed: %s", error);
}
END_TEST

START_TEST(basic_with_cred_helpers)
{
        _cleanup_free_ char *path = tmp_path("helpers.json"), *text = NULL, *error = NULL;

        setenv("BANGER_TEST_HELPER_SERVER", basic_registry, 1);
        setenv("BANGER_TEST_HELPER_SECRET", PASSWORD, 1);

        /* credHelpers is asked before a wrong "auths" entry. */
        ck_assert_int_ge(asprintf(&text,
                                  "{\"auths\":{\"%s\":{\"auth\":\"YTpi\"}},"
                                  "\"credHelpers\":{\"%s\":\"banger-test\"}}",
                                  basic_registry, basic_registry),
                         0);
        write_text(path, text);
        ck_assert_msg(get_manifest(basic_registry, path, &error) == 0, "credHelpers failed: %s",
                      error);

        free(text);
        ck_assert_int_ge(asprintf(&text, "{\"auths\":{\"%s\":{}},\"credsStore\":\"banger-test\"}",
                                  basic_registry),
                         0);
        write_text(path, text);
        ck_assert_msg(get_manifest(basic_registry, path, &error) == 0, "credsStore failed: %s",
                      error);

        /* A wrong secret from the helper names the helper and the file. */
        setenv("BANGER_TEST_HELPER_SECRET", "queen", 1);
        ck_assert_int_eq(get_manifest(basic_registry, path, &error), -EACCES);
        assert_contains(error, "credential helper 'docker-credential-banger-test'");
        assert_contains(error, path);
}
END_TEST

/* Counts the lines of a log that contain both parts. */
static unsigned count_lines_with(const char *log_path, const char *part, const char *other_part)
{
        _cleanup_free_ char *log = NULL;
        unsigned n = 0;
        int r = read_full_file(log_path, 1 << 20, &log, NULL);

        if (r == -ENOENT)
                return 0;
        ck_assert_int_eq(r, 0);
        for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n"))
                if (strstr(line, part) && strstr(line, other_part))
                        n++;
        return n;
}

START_TEST(basic_redirect_drops_credentials)
{
        _cleanup_free_ char *path = write_auths("redirect.json", redirect_registry, USER, PASSWORD),
                            *reference = NULL, *error = NULL;
        _cleanup_(image_info_freep) ImageInfo *info = NULL;
        const char *blobs = "/docker/registry/v2/blobs/";
        unsigned before = count_lines_with(token_log, blobs, "auth=False");

        ck_assert_int_ge(asprintf(&reference, "%s/test/busybox:1", redirect_registry), 0);
        PullSetup setup = { .credentials_file = path };
        ck_assert_msg(pull("basic-redirect", reference, &setup, &info, &error) == 0,
                      "pull failed: %s", error);
        ck_assert_str_eq(info->digest, manifest_digest);

        /* The config and both layers came from the storage host, without the credentials. */
        ck_assert_uint_eq(count_lines_with(token_log, blobs, "auth=False"), before + 3);
        ck_assert_uint_eq(count_lines_with(token_log, blobs, "auth=True"), 0);
}
END_TEST

/* Token authentication with credentials */

static unsigned count_lines(const char *log_path, const char *part)
{
        _cleanup_free_ char *log = NULL;
        unsigned n = 0;
        int r = read_full_file(log_path, 1 << 20, &log, NULL);

        if (r == -ENOENT)
                return 0;
        ck_assert_int_eq(r, 0);
        for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n"))
                if (strstr(line, part))
                        n++;
        return n;
}

START_TEST(token_pull_with_credentials)
{
        _cleanup_free_ char *path = write_auths("token.json", token_registry, TOKEN_USER,
                                                TOKEN_SECRET),
                            *reference = NULL, *error = NULL;
        _cleanup_(image_info_freep) ImageInfo *info = NULL;
        unsigned before = count_lines(token_log, "/token?");

        ck_assert_int_ge(asprintf(&reference, "%s/test/busybox:1", token_registry), 0);
        PullSetup setup = { .credentials_file = path };
        ck_assert_msg(pull("token-pull", reference, &setup, &info, &error) == 0, "pull failed: %s",
                      error);
        ck_assert_str_eq(info->digest, manifest_digest);

        /* One token request, with the credentials and the pull scope of the repository. */
        ck_assert_uint_eq(count_lines(token_log, "/token?"), before + 1);
        ck_assert_uint_eq(count_lines(token_log, "scope=repository%3Atest%2Fbusybox%3Apull "
                                                 "auth=True"),
                          before + 1);
}
END_TEST

START_TEST(token_wrong_password)
{
        _cleanup_free_ char *path = write_auths("token-wrong.json", token_registry, TOKEN_USER,
                                                "bodger"),
                            *reference = NULL, *error = NULL, *expected = NULL;

        ck_assert_int_ge(asprintf(&reference, "%s/test/busybox:1", token_registry), 0);
        PullSetup setup = { .credentials_file = path };
        ck_assert_int_eq(pull("token-wrong", reference, &setup, NULL, &error), -EACCES);
        ck_assert_int_ge(asprintf(&expected, "of registry '%s' denied access to 'test/busybox'",
                                  token_registry),
                         0);
        assert_contains(error, expected);
        assert_contains(error, "user '" TOKEN_USER "'");
        assert_contains(error, path);
}
END_TEST

static char *write_identity_token(const char *name, const char *token)
{
        _cleanup_free_ char *text = NULL;
        char *path = tmp_path(name);

        /* "Ym9iOg==" is base64 of "bob:". */
        ck_assert_int_ge(asprintf(&text,
                                  "{\"auths\":{\"%s\":{\"auth\":\"Ym9iOg==\","
                                  "\"identitytoken\":\"%s\"}}}",
                                  token_registry, token),
                         0);
        write_text(path, text);
        return path;
}

START_TEST(token_pull_with_identity_token)
{
        _cleanup_free_ char *path = write_identity_token("identity.json", REFRESH_TOKEN),
                            *reference = NULL, *error = NULL;
        _cleanup_(image_info_freep) ImageInfo *info = NULL;
        unsigned before = count_lines(token_log, "POST /token grant=refresh_token");

        ck_assert_int_ge(asprintf(&reference, "%s/test/busybox:1", token_registry), 0);
        PullSetup setup = { .credentials_file = path };
        ck_assert_msg(pull("identity-pull", reference, &setup, &info, &error) == 0,
                      "pull failed: %s", error);
        ck_assert_str_eq(info->digest, manifest_digest);
        ck_assert_uint_eq(count_lines(token_log, "POST /token grant=refresh_token"), before + 1);
}
END_TEST

START_TEST(token_identity_token_rejected)
{
        _cleanup_free_ char *path = write_identity_token("identity-wrong.json", "expired"),
                            *reference = NULL, *error = NULL;

        ck_assert_int_ge(asprintf(&reference, "%s/test/busybox:1", token_registry), 0);
        PullSetup setup = { .credentials_file = path };
        ck_assert_int_eq(pull("identity-wrong", reference, &setup, NULL, &error), -EACCES);
        assert_contains(error, "denied access to 'test/busybox' (HTTP 401)");
        assert_contains(error, path);
}
END_TEST

/* TLS */

START_TEST(tls_pull_with_ca_file)
{
        _cleanup_free_ char *reference = NULL, *error = NULL;
        _cleanup_(image_info_freep) ImageInfo *info = NULL;
        char *insecure[] = { NULL };

        ck_assert_int_ge(asprintf(&reference, "%s/test/busybox:1", tls_registry), 0);
        PullSetup setup = { .ca_file = tls_cert, .insecure = insecure };
        ck_assert_msg(pull("tls-pull", reference, &setup, &info, &error) == 0, "pull failed: %s",
                      error);
        ck_assert_str_eq(info->digest, manifest_digest);
}
END_TEST

START_TEST(tls_untrusted_certificate)
{
        _cleanup_free_ char *reference = NULL, *error = NULL, *expected = NULL;
        char *insecure[] = { NULL };

        ck_assert_int_ge(asprintf(&reference, "%s/test/busybox:1", tls_registry), 0);
        ck_assert_int_ge(asprintf(&expected, "TLS certificate of registry '%s' is not trusted",
                                  tls_registry),
                         0);

        PullSetup other = { .ca_file = other_cert, .insecure = insecure };
        ck_assert_int_eq(pull("tls-other", reference, &other, NULL, &error), -EPROTO);
        assert_contains(error, expected);
        assert_contains(error, other_cert);
        assert_contains(error, "[Registry] CAFile");

        free(error);
        error = NULL;
        PullSetup none = { .insecure = insecure };
        ck_assert_int_eq(pull("tls-none", reference, &none, NULL, &error), -EPROTO);
        assert_contains(error, expected);
        assert_contains(error, "set [Registry] CAFile");

        free(error);
        error = NULL;
        PullSetup missing = { .ca_file = "/nonexistent/ca.pem", .insecure = insecure };
        ck_assert_int_eq(pull("tls-missing", reference, &missing, NULL, &error), -EPROTO);
        assert_contains(error, "CA file '/nonexistent/ca.pem' ([Registry] CAFile)");
}
END_TEST

/* Mirrors */

START_TEST(mirror_serves_pull)
{
        _cleanup_free_ char *reference = NULL, *mirror = NULL, *error = NULL;
        _cleanup_(image_info_freep) ImageInfo *info = NULL;
        int down = free_port();

        /* The upstream does not run, so only the mirror can serve the image. */
        ck_assert_int_ge(asprintf(&reference, "127.0.0.1:%d/test/busybox:1", down), 0);
        ck_assert_int_ge(asprintf(&mirror, "127.0.0.1:%d=http://%s", down, registry), 0);
        char *mirrors[] = { "docker.io=http://127.0.0.1:1", mirror, NULL };
        PullSetup setup = { .mirrors = mirrors };
        ck_assert_msg(pull("mirror", reference, &setup, &info, &error) == 0, "pull failed: %s",
                      error);
        ck_assert_str_eq(info->digest, manifest_digest);
        ck_assert_str_eq(info->reference, reference);
}
END_TEST

START_TEST(mirror_falls_back_to_upstream)
{
        _cleanup_free_ char *reference = NULL, *down_mirror = NULL, *empty_mirror = NULL,
                            *error = NULL;
        _cleanup_(image_info_freep) ImageInfo *info = NULL;

        /* The first mirror does not run and the second serves TLS only, so it rejects the
         * plain HTTP request. */
        ck_assert_int_ge(asprintf(&reference, "%s/test/busybox:1", basic_registry), 0);
        ck_assert_int_ge(
                asprintf(&down_mirror, "%s=http://127.0.0.1:%d", basic_registry, free_port()), 0);
        ck_assert_int_ge(asprintf(&empty_mirror, "%s=http://%s", basic_registry, tls_registry), 0);
        char *mirrors[] = { down_mirror, empty_mirror, NULL };
        _cleanup_free_ char *path = write_auths("mirror.json", basic_registry, USER, PASSWORD);
        PullSetup setup = { .mirrors = mirrors, .credentials_file = path };
        ck_assert_msg(pull("fallback", reference, &setup, &info, &error) == 0, "pull failed: %s",
                      error);
        ck_assert_str_eq(info->digest, manifest_digest);
}
END_TEST

START_TEST(mirror_failure_reports_upstream)
{
        _cleanup_free_ char *reference = NULL, *mirror = NULL, *error = NULL, *expected = NULL;
        int down = free_port();

        ck_assert_int_ge(asprintf(&reference, "127.0.0.1:%d/test/busybox:1", down), 0);
        ck_assert_int_ge(asprintf(&mirror, "127.0.0.1:%d=http://127.0.0.1:%d", down, down), 0);
        char *mirrors[] = { mirror, NULL };
        PullSetup setup = { .mirrors = mirrors };
        ck_assert_int_eq(pull("mirror-down", reference, &setup, NULL, &error), -ECONNREFUSED);
        ck_assert_int_ge(asprintf(&expected, "Registry '127.0.0.1:%d' is not reachable", down), 0);
        assert_contains(error, expected);
}
END_TEST

START_TEST(mirror_invalid_entry)
{
        _cleanup_free_ char *reference = NULL, *error = NULL;
        char *mirrors[] = { "docker.io=mirror.example", NULL };

        ck_assert_int_ge(asprintf(&reference, "%s/test/busybox:1", registry), 0);
        PullSetup setup = { .mirrors = mirrors };
        ck_assert_int_eq(pull("mirror-invalid", reference, &setup, NULL, &error), -EINVAL);
        assert_contains(error, "Registry mirror 'docker.io=mirror.example' is invalid");
}
END_TEST

/* Rate limiting */

START_TEST(rate_limit_retried)
{
        _cleanup_free_ char *reference = NULL, *error = NULL;
        _cleanup_(image_info_freep) ImageInfo *info = NULL;

        ck_assert_int_ge(asprintf(&reference, "%s/test/busybox:1", limit_server), 0);
        PullSetup setup = { 0 };
        ck_assert_msg(pull("limit", reference, &setup, &info, &error) == 0, "pull failed: %s",
                      error);
        ck_assert_str_eq(info->digest, manifest_digest);

        /* The manifest got 429 once and each of the three blobs 503 once, and each was asked
         * for again. */
        ck_assert_uint_eq(count_lines(limit_log, "429 /v2/test/busybox/manifests/1"), 1);
        ck_assert_uint_eq(count_lines(limit_log, "200 /v2/test/busybox/manifests/1"), 1);
        ck_assert_uint_eq(count_lines(limit_log, "503 /v2/test/busybox/blobs/"), 3);
        ck_assert_uint_eq(count_lines(limit_log, "200 /v2/test/busybox/blobs/"), 3);
}
END_TEST

START_TEST(rate_limit_gives_up)
{
        _cleanup_free_ char *reference = NULL, *error = NULL, *expected = NULL;

        ck_assert_int_ge(asprintf(&reference, "%s/test/limited:1", limit_server), 0);
        PullSetup setup = { 0 };
        ck_assert_int_eq(pull("limited", reference, &setup, NULL, &error), -EAGAIN);
        ck_assert_int_ge(asprintf(&expected,
                                  "Registry '%s' is rate-limiting pulls (HTTP 429): try again "
                                  "after 3600 s",
                                  limit_server),
                         0);
        assert_contains(error, expected);
        /* A wait longer than the maximum is not attempted. */
        ck_assert_uint_eq(count_lines(limit_log, "/v2/test/limited/"), 1);
}
END_TEST

START_TEST(rate_limit_backoff_bounded)
{
        _cleanup_free_ char *reference = NULL, *error = NULL, *expected = NULL;

        /* Without Retry-After the waits double from 1 s: 1, 2 and 4 s, and the fourth
         * response ends the pull with the wait that would come next. */
        ck_assert_int_ge(asprintf(&reference, "%s/test/busy:1", limit_server), 0);
        PullSetup setup = { 0 };
        ck_assert_int_eq(pull("busy", reference, &setup, NULL, &error), -EAGAIN);
        ck_assert_int_ge(asprintf(&expected,
                                  "Registry '%s' is unavailable (HTTP 503): try again after 8 s",
                                  limit_server),
                         0);
        assert_contains(error, expected);
        ck_assert_uint_eq(count_lines(limit_log, "503 /v2/test/busy/manifests/1"), 4);
}
END_TEST

static Suite *registry_auth_suite(void)
{
        Suite *s = suite_create("registry-auth");
        TCase *offline = tcase_create("offline");
        TCase *registries = tcase_create("registries");

        tcase_add_test(offline, normalize_host_forms);
        tcase_add_test(offline, base64_decode_cases);
        tcase_add_test(offline, docker_config_entries);
        tcase_add_test(offline, docker_config_identity_tokens);
        tcase_add_test(offline, docker_config_load_missing);
        tcase_add_test(offline, mirror_entries);
        tcase_add_test(offline, retry_after_values);
        tcase_add_test(offline, helper_cases);
        suite_add_tcase(s, offline);

        tcase_add_unchecked_fixture(registries, suite_setup, suite_teardown);
        tcase_set_timeout(registries, 300);
        tcase_add_test(registries, basic_pull_with_auth_field);
        tcase_add_test(registries, basic_host_key_forms);
        tcase_add_test(registries, basic_wrong_password);
        tcase_add_test(registries, basic_without_credentials);
        tcase_add_test(registries, basic_invalid_credentials_file);
        tcase_add_test(registries, basic_with_cred_helpers);
        tcase_add_test(registries, basic_redirect_drops_credentials);
        tcase_add_test(registries, token_pull_with_credentials);
        tcase_add_test(registries, token_wrong_password);
        tcase_add_test(registries, token_pull_with_identity_token);
        tcase_add_test(registries, token_identity_token_rejected);
        tcase_add_test(registries, tls_pull_with_ca_file);
        tcase_add_test(registries, tls_untrusted_certificate);
        tcase_add_test(registries, mirror_serves_pull);
        tcase_add_test(registries, mirror_falls_back_to_upstream);
        tcase_add_test(registries, mirror_failure_reports_upstream);
        tcase_add_test(registries, mirror_invalid_entry);
        tcase_add_test(registries, rate_limit_retried);
        tcase_add_test(registries, rate_limit_gives_up);
        tcase_add_test(registries, rate_limit_backoff_bounded);
        suite_add_tcase(s, registries);
        return s;
}

int main(void)
{
        SRunner *runner = srunner_create(registry_auth_suite());
        char *path;
        int failed;

        /* The fake credential helper lives in tests/data/oci. */
        if (asprintf(&path, "%s/tests/data/oci:/usr/sbin:/usr/bin:/sbin:/bin",
                     getenv("BANGER_TEST_SRCDIR")) < 0)
                return EXIT_FAILURE;
        setenv("PATH", path, 1);
        free(path);

        curl_global_init(CURL_GLOBAL_DEFAULT);
        srunner_run_all(runner, CK_NORMAL);
        failed = srunner_ntests_failed(runner);
        srunner_free(runner);
        curl_global_cleanup();
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
