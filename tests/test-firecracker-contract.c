/* Contract test of the Firecracker API client.
 *
 * Firecracker is not packaged for Debian and needs /dev/kvm, so this test does not run it.
 * Instead a small HTTP server on a unix socket, in a thread of this test, records every request
 * that the client sends for a full boot sequence. Each request is then checked against
 * Firecracker's published OpenAPI description (swagger 2.0, v1.16.1). The path and method must
 * exist. The JSON body must have the schema's required properties, types, enum values and
 * integer bounds, and no property that the schema does not list. That last rule is stricter
 * than the description, which marks no schema "additionalProperties: false", because
 * Firecracker's parser rejects unknown fields.
 *
 * The description is read from ../shared/firecracker/ next to the source tree. When that file
 * is absent, the checks that need it pass with a message on stderr. */

#include <check.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>
#include <yaml.h>

#include "firecracker.h"
#include "macro.h"

#define SPEC_NAME    "firecracker-v1.16.1.yaml"
#define TIMEOUT_USEC (30ULL * 1000000ULL)
#define REQUESTS_MAX 64

/* OpenAPI description */

static yaml_document_t spec;
static bool spec_loaded;

static yaml_node_t *mapping_get(yaml_node_t *map, const char *key)
{
        yaml_node_pair_t *pair;

        if (!map || map->type != YAML_MAPPING_NODE)
                return NULL;
        for (pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
                yaml_node_t *k = yaml_document_get_node(&spec, pair->key);
                if (k && k->type == YAML_SCALAR_NODE && streq((char *)k->data.scalar.value, key))
                        return yaml_document_get_node(&spec, pair->value);
        }
        return NULL;
}

static const char *scalar(yaml_node_t *node)
{
        if (!node || node->type != YAML_SCALAR_NODE)
                return NULL;
        return (const char *)node->data.scalar.value;
}

/* Follows "$ref": "#/definitions/Name" to the definition. */
static yaml_node_t *resolve(yaml_node_t *schema)
{
        const char *ref = scalar(mapping_get(schema, "$ref"));

        if (!ref)
                return schema;
        if (!strneq(ref, "#/definitions/", 14))
                return NULL;
        return mapping_get(mapping_get(yaml_document_get_root_node(&spec), "definitions"),
                           ref + 14);
}

static bool sequence_has(yaml_node_t *seq, const char *value)
{
        if (!seq || seq->type != YAML_SEQUENCE_NODE)
                return false;
        for (yaml_node_item_t *i = seq->data.sequence.items.start; i < seq->data.sequence.items.top;
             i++) {
                const char *s = scalar(yaml_document_get_node(&spec, *i));
                if (s && streq(s, value))
                        return true;
        }
        return false;
}

/* Whether the path "/drives/rootfs" matches the template "/drives/{drive_id}". */
static bool path_matches(const char *template, const char *path)
{
        while (*template && *path) {
                if (*template == '{') {
                        const char *close = strchr(template, '}');
                        if (!close || *path == '/')
                                return false;
                        template = close + 1;
                        path += strcspn(path, "/");
                        continue;
                }
                if (*template ++ != *path++)
                        return false;
        }
        return *template == '\0' && *path == '\0';
}

static yaml_node_t *find_operation(const char *method, const char *path)
{
        yaml_node_t *paths = mapping_get(yaml_document_get_root_node(&spec), "paths");
        char lower[16];
        size_t i;

        for (i = 0; method[i] && i + 1 < sizeof(lower); i++)
                lower[i] = (char)tolower((unsigned char)method[i]);
        lower[i] = '\0';

        if (!paths || paths->type != YAML_MAPPING_NODE)
                return NULL;
        for (yaml_node_pair_t *p = paths->data.mapping.pairs.start;
             p < paths->data.mapping.pairs.top; p++) {
                const char *template = scalar(yaml_document_get_node(&spec, p->key));
                if (template && path_matches(template, path))
                        return mapping_get(yaml_document_get_node(&spec, p->value), lower);
        }
        return NULL;
}

static yaml_node_t *body_parameter(yaml_node_t *operation)
{
        yaml_node_t *params = mapping_get(operation, "parameters");

        if (!params || params->type != YAML_SEQUENCE_NODE)
                return NULL;
        for (yaml_node_item_t *i = params->data.sequence.items.start;
             i < params->data.sequence.items.top; i++) {
                yaml_node_t *p = yaml_document_get_node(&spec, *i);
                const char *in = scalar(mapping_get(p, "in"));
                if (in && streq(in, "body"))
                        return p;
        }
        return NULL;
}

static int reject(char **ret_reason, const char *format, ...) __attribute__((format(printf, 2, 3)));

static int reject(char **ret_reason, const char *format, ...)
{
        va_list ap;

        va_start(ap, format);
        ck_assert_int_ge(vasprintf(ret_reason, format, ap), 0);
        va_end(ap);
        return -1;
}

static int validate(yaml_node_t *schema, json_object *value, const char *where, char **ret_reason);

static int validate_object(yaml_node_t *schema, json_object *value, const char *where,
                           char **ret_reason)
{
        yaml_node_t *required = mapping_get(schema, "required");
        yaml_node_t *properties = mapping_get(schema, "properties");
        const char *additional = scalar(mapping_get(schema, "additionalProperties"));

        if (required && required->type == YAML_SEQUENCE_NODE)
                for (yaml_node_item_t *i = required->data.sequence.items.start;
                     i < required->data.sequence.items.top; i++) {
                        const char *name = scalar(yaml_document_get_node(&spec, *i));
                        if (name && !json_object_object_get_ex(value, name, NULL))
                                return reject(ret_reason, "%s: required property '%s' is missing",
                                              where, name);
                }

        json_object_object_foreach(value, key, member)
        {
                yaml_node_t *property = mapping_get(properties, key);
                _cleanup_free_ char *member_where = NULL;

                if (!property) {
                        if (additional && streq(additional, "true"))
                                continue;
                        return reject(ret_reason, "%s: property '%s' is not in the schema", where,
                                      key);
                }
                ck_assert_int_ge(asprintf(&member_where, "%s.%s", where, key), 0);
                if (validate(property, member, member_where, ret_reason) < 0)
                        return -1;
        }
        return 0;
}

static int validate_integer(yaml_node_t *schema, json_object *value, const char *where,
                            char **ret_reason)
{
        const char *minimum = scalar(mapping_get(schema, "minimum"));
        const char *maximum = scalar(mapping_get(schema, "maximum"));
        int64_t v = json_object_get_int64(value);

        if (minimum && v < strtoll(minimum, NULL, 10))
                return reject(ret_reason, "%s: %" PRId64 " is below the minimum %s", where, v,
                              minimum);
        if (maximum && v > strtoll(maximum, NULL, 10))
                return reject(ret_reason, "%s: %" PRId64 " is above the maximum %s", where, v,
                              maximum);
        return 0;
}

static int validate(yaml_node_t *schema, json_object *value, const char *where, char **ret_reason)
{
        yaml_node_t *enumeration;
        const char *type;

        schema = resolve(schema);
        if (!schema)
                return reject(ret_reason, "%s: the schema's $ref does not resolve", where);

        type = scalar(mapping_get(schema, "type"));
        if (!type && mapping_get(schema, "properties"))
                type = "object";
        if (!type)
                return reject(ret_reason, "%s: the schema has no type", where);

        if (streq(type, "object")) {
                if (!json_object_is_type(value, json_type_object))
                        return reject(ret_reason, "%s: expected an object", where);
                return validate_object(schema, value, where, ret_reason);
        }
        if (streq(type, "string")) {
                if (!json_object_is_type(value, json_type_string))
                        return reject(ret_reason, "%s: expected a string", where);
                enumeration = mapping_get(schema, "enum");
                if (enumeration && !sequence_has(enumeration, json_object_get_string(value)))
                        return reject(ret_reason, "%s: '%s' is not one of the enum values", where,
                                      json_object_get_string(value));
                return 0;
        }
        if (streq(type, "integer")) {
                if (!json_object_is_type(value, json_type_int))
                        return reject(ret_reason, "%s: expected an integer", where);
                return validate_integer(schema, value, where, ret_reason);
        }
        if (streq(type, "boolean")) {
                if (!json_object_is_type(value, json_type_boolean))
                        return reject(ret_reason, "%s: expected a boolean", where);
                return 0;
        }
        return reject(ret_reason, "%s: schema type '%s' is not checked by this test", where, type);
}

/* Checks one request against the description. Returns 0, or -1 with the reason in *ret_reason. */
static int check_request(const char *method, const char *path, const char *body, char **ret_reason)
{
        yaml_node_t *operation = find_operation(method, path);
        yaml_node_t *parameter;
        json_object *json;
        const char *required;
        int r;

        if (!operation)
                return reject(ret_reason, "%s %s is not in the API description", method, path);

        parameter = body_parameter(operation);
        if (!parameter) {
                if (!isempty(body))
                        return reject(ret_reason, "%s %s takes no body, but one was sent", method,
                                      path);
                return 0;
        }

        required = scalar(mapping_get(parameter, "required"));
        if (isempty(body)) {
                if (required && streq(required, "true"))
                        return reject(ret_reason, "%s %s requires a body", method, path);
                return 0;
        }

        json = json_tokener_parse(body);
        if (!json)
                return reject(ret_reason, "%s %s: the body is not JSON: %s", method, path, body);
        r = validate(mapping_get(parameter, "schema"), json, "body", ret_reason);
        json_object_put(json);
        return r;
}

static bool spec_load(void)
{
        const char *srcdir = getenv("BANGER_TEST_SRCDIR");
        _cleanup_free_ char *path = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        yaml_parser_t parser;
        bool ok;

        if (spec_loaded)
                return true;

        ck_assert_int_ge(
                asprintf(&path, "%s/../shared/firecracker/" SPEC_NAME, srcdir ? srcdir : ".."), 0);
        f = fopen(path, "re");
        if (!f) {
                fprintf(stderr,
                        "Skipping the Firecracker contract checks: '%s' not found; put the "
                        "OpenAPI description of Firecracker v1.16.1 there\n",
                        path);
                return false;
        }

        ck_assert(yaml_parser_initialize(&parser));
        yaml_parser_set_input_file(&parser, f);
        ok = yaml_parser_load(&parser, &spec);
        yaml_parser_delete(&parser);
        ck_assert_msg(ok, "Failed to parse '%s'", path);
        ck_assert_ptr_nonnull(yaml_document_get_root_node(&spec));

        spec_loaded = true;
        return true;
}

/* The validator itself: each broken body must be rejected, or the contract checks prove
 * nothing. */
static const struct {
        const char *method;
        const char *path;
        const char *body;
        const char *reason; /* NULL: valid */
} validator_cases[] = {
        { "PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 256}", NULL },
        { "PUT", "/machine-config", "{\"vcpu_count\": 2}", "'mem_size_mib' is missing" },
        { "PUT", "/machine-config", "{\"vcpu_count\": 64, \"mem_size_mib\": 256}",
          "above the maximum 32" },
        { "PUT", "/machine-config", "{\"vcpu_count\": \"2\", \"mem_size_mib\": 256}",
          "body.vcpu_count: expected an integer" },
        { "PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 256, \"x\": 1}",
          "'x' is not in the schema" },
        { "PUT", "/drives/rootfs", "{\"drive_id\": \"rootfs\", \"is_root_device\": 1}",
          "expected a boolean" },
        { "PUT", "/drives/", "{\"drive_id\": \"\", \"is_root_device\": true}",
          "is not in the API description" },
        { "PUT", "/drives/a/b", "{\"drive_id\": \"a\", \"is_root_device\": true}",
          "is not in the API description" },
        { "PUT", "/actions", "{\"action_type\": \"Reboot\"}", "'Reboot' is not one of" },
        { "PUT", "/actions", "", "requires a body" },
        { "PATCH", "/actions", "{\"action_type\": \"InstanceStart\"}",
          "is not in the API description" },
        { "GET", "/", "{}", "takes no body" },
        { "GET", "/", "", NULL },
        { "PUT", "/vsock", "{\"guest_cid\": 2, \"uds_path\": \"/v\"}", "below the minimum 3" },
        { "PUT", "/serial", "{\"rate_limiter\": {\"size\": 1}}", "'refill_time' is missing" },
};

START_TEST(test_validator_table)
{
        _cleanup_free_ char *reason = NULL;
        int r;

        if (!spec_load())
                return;

        r = check_request(validator_cases[_i].method, validator_cases[_i].path,
                          validator_cases[_i].body, &reason);
        if (!validator_cases[_i].reason) {
                ck_assert_msg(r == 0, "case %d: %s", _i, strempty(reason));
                return;
        }
        ck_assert_msg(r < 0, "case %d was accepted", _i);
        ck_assert_msg(strstr(reason, validator_cases[_i].reason), "case %d: '%s' lacks '%s'", _i,
                      reason, validator_cases[_i].reason);
}
END_TEST

/* The recording server */

typedef struct Request {
        char method[16];
        char path[256];
        char *body;
        bool json_content_type; /* "Content-Type: application/json" was sent */
} Request;

typedef struct Server {
        char dir[64];
        char path[108];
        int listen_fd;
        int stop_pipe[2];
        pthread_t thread;
        pthread_mutex_t lock;
        Request requests[REQUESTS_MAX];
        unsigned n_requests;
        bool overflow;
        /* A request to method fault_path gets fault_status with fault_body. */
        const char *fault_method;
        const char *fault_path;
        long fault_status;
        const char *fault_body;
} Server;

/* Waits for fd or the stop pipe. Returns false when the server is stopping. */
static bool server_wait(Server *s, int fd)
{
        struct pollfd fds[2] = { { .fd = fd, .events = POLLIN },
                                 { .fd = s->stop_pipe[0], .events = POLLIN } };

        while (poll(fds, 2, -1) < 0)
                if (errno != EINTR)
                        return false;
        return !fds[1].revents;
}

static void server_reply(int fd, long status, const char *body)
{
        char head[256];
        int n;

        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %ld %s\r\nServer: Firecracker API\r\nConnection: keep-alive\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     status,
                     status == 204  ? "No Content"
                     : status < 300 ? "OK"
                                    : "Error",
                     strlen(body));
        if (write(fd, head, (size_t)n) != n || write(fd, body, strlen(body)) < 0)
                return;
}

static void server_record(Server *s, const char *method, const char *path, char *body,
                          bool json_content_type)
{
        pthread_mutex_lock(&s->lock);
        if (s->n_requests < REQUESTS_MAX) {
                Request *r = &s->requests[s->n_requests++];
                snprintf(r->method, sizeof(r->method), "%s", method);
                snprintf(r->path, sizeof(r->path), "%s", path);
                r->body = body;
                r->json_content_type = json_content_type;
        } else {
                s->overflow = true;
                free(body);
        }
        pthread_mutex_unlock(&s->lock);
}

/* Serves one request from a connection. Returns false when the connection is done. */
static bool server_handle(Server *s, int fd)
{
        char head[8192], method[16], path[256];
        size_t n = 0, content_length = 0;
        bool json_content_type = false;
        char *end = NULL, *body, *p;
        ssize_t k;

        while (!end) {
                if (n + 1 >= sizeof(head) || !server_wait(s, fd))
                        return false;
                k = read(fd, head + n, sizeof(head) - 1 - n);
                if (k <= 0)
                        return false;
                n += (size_t)k;
                head[n] = '\0';
                end = strstr(head, "\r\n\r\n");
        }

        if (sscanf(head, "%15s %255s HTTP/1.1\r\n", method, path) != 2)
                return false;
        for (p = strstr(head, "\r\n"); p && p < end; p = strstr(p + 2, "\r\n"))
                if (strncasecmp(p + 2, "Content-Length:", 15) == 0)
                        content_length = strtoul(p + 2 + 15, NULL, 10);
                else if (strncasecmp(p + 2, "Content-Type: application/json\r\n", 32) == 0)
                        json_content_type = true;

        body = calloc(1, content_length + 1);
        if (!body)
                return false;
        size_t have = n - (size_t)(end + 4 - head);
        if (have > content_length)
                have = content_length; /* no pipelining from the client */
        memcpy(body, end + 4, have);
        while (have < content_length) {
                if (!server_wait(s, fd))
                        break;
                k = read(fd, body + have, content_length - have);
                if (k <= 0)
                        break;
                have += (size_t)k;
        }

        server_record(s, method, path, body, json_content_type);

        if (s->fault_path && streq(method, s->fault_method) && streq(path, s->fault_path))
                server_reply(fd, s->fault_status, s->fault_body);
        else if (streq(method, "GET") && streq(path, "/"))
                server_reply(fd, 200,
                             "{\"app_name\": \"Firecracker\", \"id\": \"anonymous-instance\", "
                             "\"state\": \"Running\", \"vmm_version\": \"1.16.1\"}");
        else
                server_reply(fd, 204, "");
        return true;
}

static void *server_run(void *userdata)
{
        Server *s = userdata;

        while (server_wait(s, s->listen_fd)) {
                int fd = accept(s->listen_fd, NULL, NULL);
                if (fd < 0)
                        break;
                while (server_handle(s, fd))
                        ;
                close(fd);
        }
        return NULL;
}

static void server_start(Server *s)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        *s = (Server){};
        strcpy(s->dir, "/tmp/banger-fc-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(s->dir));
        snprintf(s->path, sizeof(s->path), "%s/api.sock", s->dir);

        s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(s->listen_fd, 0);
        strcpy(sa.sun_path, s->path);
        ck_assert_int_eq(bind(s->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        ck_assert_int_eq(listen(s->listen_fd, 8), 0);
        ck_assert_int_eq(pipe(s->stop_pipe), 0);
        ck_assert_int_eq(pthread_mutex_init(&s->lock, NULL), 0);
        ck_assert_int_eq(pthread_create(&s->thread, NULL, server_run, s), 0);
}

static void server_stop(Server *s)
{
        ck_assert_int_eq(write(s->stop_pipe[1], "x", 1), 1);
        ck_assert_int_eq(pthread_join(s->thread, NULL), 0);
        close(s->listen_fd);
        close(s->stop_pipe[0]);
        close(s->stop_pipe[1]);
        unlink(s->path);
        rmdir(s->dir);
        ck_assert(!s->overflow);
}

static void server_free_requests(Server *s)
{
        for (unsigned i = 0; i < s->n_requests; i++)
                free(s->requests[i].body);
        pthread_mutex_destroy(&s->lock);
}

static const char *body_string(const Request *r, const char *key, char *buf, size_t size)
{
        json_object *o = json_tokener_parse(r->body), *v;

        buf[0] = '\0';
        if (o && json_object_object_get_ex(o, key, &v))
                snprintf(buf, size, "%s", json_object_get_string(v));
        json_object_put(o);
        return buf;
}

/* A full boot sequence */

static const struct {
        const char *method;
        const char *path;
        const char *key; /* a body member to compare, or NULL */
        const char *value;
} boot_sequence[] = {
        { "PUT", "/logger", "level", "Info" },
        { "PUT", "/metrics", "metrics_path", "/run/banger/vm/metrics.json" },
        { "PUT", "/machine-config", "mem_size_mib", "256" },
        { "PUT", "/boot-source", "boot_args", "console=ttyS0 reboot=k panic=1 pci=off" },
        { "PUT", "/drives/rootfs", "path_on_host", "/var/lib/banger/vm/root.ext4" },
        { "PUT", "/drives/data_1", "is_read_only", "true" },
        { "PUT", "/network-interfaces/eth0", "host_dev_name", "banger-tap0" },
        { "PUT", "/vsock", "guest_cid", "3" },
        { "PUT", "/entropy", NULL, NULL },
        { "PUT", "/serial", "serial_out_path", "/run/banger/vm/console.log" },
        { "PUT", "/actions", "action_type", "InstanceStart" },
        { "GET", "/", NULL, NULL },
        { "PATCH", "/vm", "state", "Paused" },
        { "PATCH", "/vm", "state", "Resumed" },
        { "PUT", "/actions", "action_type", "SendCtrlAltDel" },
};

static void run_boot_sequence(Firecracker *f)
{
        FirecrackerLogger logger = { .log_path = "/run/banger/vm/firecracker.log",
                                     .level = "Info",
                                     .show_level = true };
        FirecrackerMachineConfig machine = { .vcpu_count = 2, .mem_size_mib = 256 };
        FirecrackerBootSource boot = { .kernel_image_path = "/var/lib/banger/kernel/vmlinux",
                                       .initrd_path = "/var/lib/banger/kernel/initrd.img",
                                       .boot_args = "console=ttyS0 reboot=k panic=1 pci=off" };
        FirecrackerDrive root = { .drive_id = "rootfs",
                                  .path_on_host = "/var/lib/banger/vm/root.ext4",
                                  .is_root_device = true,
                                  .cache_type = "Writeback",
                                  .io_engine = "Sync" };
        FirecrackerDrive data = { .drive_id = "data_1",
                                  .path_on_host = "/var/lib/banger/vm/data.ext4",
                                  .is_read_only = true };
        FirecrackerNetworkInterface net = { .iface_id = "eth0",
                                            .host_dev_name = "banger-tap0",
                                            .guest_mac = "02:fc:00:00:00:05",
                                            .mtu = 1500 };
        _cleanup_(firecracker_instance_info_done) FirecrackerInstanceInfo info = {};
        _cleanup_free_ char *error = NULL;

        ck_assert_int_eq(firecracker_put_logger(f, &logger, &error), 0);
        ck_assert_int_eq(firecracker_put_metrics(f, "/run/banger/vm/metrics.json", &error), 0);
        ck_assert_int_eq(firecracker_put_machine_config(f, &machine, &error), 0);
        ck_assert_int_eq(firecracker_put_boot_source(f, &boot, &error), 0);
        ck_assert_int_eq(firecracker_put_drive(f, &root, &error), 0);
        ck_assert_int_eq(firecracker_put_drive(f, &data, &error), 0);
        ck_assert_int_eq(firecracker_put_network_interface(f, &net, &error), 0);
        ck_assert_int_eq(firecracker_put_vsock(f, 3, "/run/banger/vm/vsock.sock", &error), 0);
        ck_assert_int_eq(firecracker_put_entropy(f, &error), 0);
        ck_assert_int_eq(firecracker_put_serial(f, "/run/banger/vm/console.log", &error), 0);
        ck_assert_int_eq(firecracker_start(f, &error), 0);
        ck_assert_int_eq(firecracker_get_phase(f), FIRECRACKER_PHASE_RUNNING);

        ck_assert_int_eq(firecracker_describe_instance(f, &info, &error), 0);
        ck_assert_str_eq(info.app_name, "Firecracker");
        ck_assert_str_eq(info.id, "anonymous-instance");
        ck_assert_str_eq(info.state, "Running");
        ck_assert_str_eq(info.vmm_version, "1.16.1");

        ck_assert_int_eq(firecracker_pause(f, &error), 0);
        ck_assert_int_eq(firecracker_get_phase(f), FIRECRACKER_PHASE_PAUSED);
        ck_assert_int_eq(firecracker_resume(f, &error), 0);
        ck_assert_int_eq(firecracker_get_phase(f), FIRECRACKER_PHASE_RUNNING);
        ck_assert_int_eq(firecracker_send_ctrl_alt_del(f, &error), 0);
        ck_assert_ptr_null(error);
}

START_TEST(test_boot_sequence_matches_spec)
{
        _cleanup_(firecracker_freep) Firecracker *f = NULL;
        char value[256];
        Server s;

        if (!spec_load())
                return;

        server_start(&s);
        ck_assert_int_eq(firecracker_new(s.path, TIMEOUT_USEC, &f), 0);
        run_boot_sequence(f);
        server_stop(&s);

        ck_assert_uint_eq(s.n_requests, ELEMENTSOF(boot_sequence));
        for (unsigned i = 0; i < s.n_requests; i++) {
                const Request *r = &s.requests[i];
                _cleanup_free_ char *reason = NULL;

                ck_assert_msg(streq(r->method, boot_sequence[i].method) &&
                                      streq(r->path, boot_sequence[i].path),
                              "request %u: expected %s %s, got %s %s", i, boot_sequence[i].method,
                              boot_sequence[i].path, r->method, r->path);
                /* The description's "consumes: application/json" covers every body. */
                ck_assert_msg(isempty(r->body) || r->json_content_type,
                              "request %u (%s %s) has a body but no JSON content type", i,
                              r->method, r->path);
                ck_assert_msg(check_request(r->method, r->path, r->body, &reason) == 0,
                              "request %u (%s %s %s): %s", i, r->method, r->path, r->body, reason);
                if (boot_sequence[i].key)
                        ck_assert_str_eq(body_string(r, boot_sequence[i].key, value, sizeof(value)),
                                         boot_sequence[i].value);
        }
        server_free_requests(&s);
}
END_TEST

START_TEST(test_phase_ordering)
{
        _cleanup_(firecracker_freep) Firecracker *f = NULL;
        _cleanup_free_ char *error = NULL;
        FirecrackerDrive drive = { .drive_id = "late", .path_on_host = "/d" };
        Server s;

        server_start(&s);
        ck_assert_int_eq(firecracker_new(s.path, TIMEOUT_USEC, &f), 0);

        /* Post-boot calls before InstanceStart never reach the server. */
        ck_assert_int_eq(firecracker_resume(f, &error), -EBUSY);
        ck_assert_ptr_nonnull(strstr(error, "only after InstanceStart"));
        free(TAKE_PTR(error));

        ck_assert_int_eq(firecracker_start(f, &error), 0);

        /* Pre-boot calls after it do not either, and a second start is rejected. */
        ck_assert_int_eq(firecracker_put_drive(f, &drive, &error), -EBUSY);
        ck_assert_ptr_nonnull(strstr(error, "PUT /drives/late is accepted only before "
                                            "InstanceStart, but the instance is running"));
        free(TAKE_PTR(error));
        ck_assert_int_eq(firecracker_put_entropy(f, &error), -EBUSY);
        free(TAKE_PTR(error));
        ck_assert_int_eq(firecracker_put_serial(f, "/s", &error), -EBUSY);
        free(TAKE_PTR(error));
        ck_assert_int_eq(firecracker_start(f, &error), -EBUSY);
        free(TAKE_PTR(error));

        ck_assert_int_eq(firecracker_pause(f, &error), 0);
        ck_assert_int_eq(firecracker_put_vsock(f, 3, "/v", &error), -EBUSY);
        ck_assert_ptr_nonnull(strstr(error, "the instance is paused"));

        server_stop(&s);
        ck_assert_uint_eq(s.n_requests, 2);
        ck_assert_str_eq(s.requests[0].path, "/actions");
        ck_assert_str_eq(s.requests[1].path, "/vm");
        server_free_requests(&s);
}
END_TEST

static const struct {
        long status;
        const char *body;
        int result;
        const char *message;
} fault_cases[] = {
        { 400, "{\"fault_message\": \"Cannot start microvm without kernel configuration.\"}",
          -EINVAL,
          "Firecracker rejected PUT /actions (HTTP 400): Cannot start microvm without kernel "
          "configuration." },
        { 500, "{\"fault_message\": \"Internal error\"}", -EIO, "(HTTP 500): Internal error" },
        { 400, "", -EINVAL, "(HTTP 400) with an empty body" },
};

START_TEST(test_fault_becomes_error)
{
        _cleanup_(firecracker_freep) Firecracker *f = NULL;
        _cleanup_free_ char *error = NULL;
        Server s;

        server_start(&s);
        s.fault_method = "PUT";
        s.fault_path = "/actions";
        s.fault_status = fault_cases[_i].status;
        s.fault_body = fault_cases[_i].body;

        ck_assert_int_eq(firecracker_new(s.path, TIMEOUT_USEC, &f), 0);
        ck_assert_int_eq(firecracker_start(f, &error), fault_cases[_i].result);
        ck_assert_ptr_nonnull(error);
        ck_assert_msg(strstr(error, fault_cases[_i].message), "'%s' lacks '%s'", error,
                      fault_cases[_i].message);

        /* A failed start leaves the client in the pre-boot phase, so it can be retried. */
        ck_assert_int_eq(firecracker_get_phase(f), FIRECRACKER_PHASE_PRE_BOOT);
        ck_assert_int_eq(firecracker_put_entropy(f, NULL), 0);

        server_stop(&s);
        ck_assert_uint_eq(s.n_requests, 2);
        server_free_requests(&s);
}
END_TEST

START_TEST(test_server_gone)
{
        _cleanup_(firecracker_freep) Firecracker *f = NULL;
        _cleanup_free_ char *error = NULL;
        Server s;

        server_start(&s);
        ck_assert_int_eq(firecracker_new(s.path, TIMEOUT_USEC, &f), 0);
        ck_assert_int_eq(firecracker_put_entropy(f, &error), 0);

        /* The socket file stays, but nothing listens on it any more. */
        ck_assert_int_eq(write(s.stop_pipe[1], "x", 1), 1);
        ck_assert_int_eq(pthread_join(s.thread, NULL), 0);
        close(s.listen_fd);

        ck_assert_int_eq(firecracker_put_entropy(f, &error), -ECONNREFUSED);
        ck_assert_ptr_nonnull(strstr(error, s.path));

        close(s.stop_pipe[0]);
        close(s.stop_pipe[1]);
        unlink(s.path);
        rmdir(s.dir);
        server_free_requests(&s);
}
END_TEST

START_TEST(test_describe_sets_phase)
{
        _cleanup_(firecracker_instance_info_done) FirecrackerInstanceInfo info = {};
        _cleanup_(firecracker_freep) Firecracker *f = NULL;
        _cleanup_free_ char *error = NULL;
        Server s;

        /* A new client of a Firecracker process that is already running, as after a restart of
         * bangerd, takes the phase from GET /. */
        server_start(&s);
        ck_assert_int_eq(firecracker_new(s.path, TIMEOUT_USEC, &f), 0);
        ck_assert_int_eq(firecracker_get_phase(f), FIRECRACKER_PHASE_PRE_BOOT);
        ck_assert_int_eq(firecracker_describe_instance(f, &info, &error), 0);
        ck_assert_int_eq(firecracker_get_phase(f), FIRECRACKER_PHASE_RUNNING);
        ck_assert_int_eq(firecracker_pause(f, &error), 0);
        ck_assert_ptr_null(error);

        server_stop(&s);
        ck_assert_uint_eq(s.n_requests, 2);
        ck_assert_str_eq(s.requests[1].method, "PATCH");
        server_free_requests(&s);
}
END_TEST

START_TEST(test_root_drive_and_root_argument)
{
        _cleanup_(firecracker_freep) Firecracker *f = NULL;
        _cleanup_free_ char *error = NULL;
        FirecrackerBootSource boot = { .kernel_image_path = "/vmlinux",
                                       .boot_args = "console=ttyS0 root=/dev/vdb" };
        FirecrackerDrive root = { .drive_id = "rootfs",
                                  .path_on_host = "/r",
                                  .is_root_device = true };
        FirecrackerDrive plain = { .drive_id = "rootfs", .path_on_host = "/r" };
        Server s;

        server_start(&s);
        ck_assert_int_eq(firecracker_new(s.path, TIMEOUT_USEC, &f), 0);

        /* Firecracker adds root= for a root drive, so a root= of our own is a second one. The
         * check runs at InstanceStart because the two can be sent in either order. */
        ck_assert_int_eq(firecracker_put_drive(f, &root, &error), 0);
        ck_assert_int_eq(firecracker_put_boot_source(f, &boot, &error), 0);
        ck_assert_int_eq(firecracker_start(f, &error), -EINVAL);
        ck_assert_ptr_nonnull(strstr(error, "Invalid boot argument 'root=/dev/vdb'"));
        ck_assert_ptr_nonnull(strstr(error, "root drive 'rootfs'"));
        free(TAKE_PTR(error));
        ck_assert_int_eq(firecracker_get_phase(f), FIRECRACKER_PHASE_PRE_BOOT);

        /* The same drive sent again without is_root_device resolves it. */
        ck_assert_int_eq(firecracker_put_drive(f, &plain, &error), 0);
        ck_assert_int_eq(firecracker_start(f, &error), 0);
        ck_assert_ptr_null(error);

        server_stop(&s);
        ck_assert_uint_eq(s.n_requests, 4);
        ck_assert_str_eq(s.requests[3].path, "/actions");
        server_free_requests(&s);
}
END_TEST

START_TEST(test_root_argument_without_root_drive)
{
        _cleanup_(firecracker_freep) Firecracker *f = NULL;
        _cleanup_free_ char *error = NULL;
        FirecrackerBootSource boot = { .kernel_image_path = "/vmlinux",
                                       .boot_args = "console=ttyS0 root=/dev/vdb" };
        FirecrackerBootSource no_root = { .kernel_image_path = "/vmlinux",
                                          .boot_args = "console=ttyS0" };
        FirecrackerDrive root = { .drive_id = "rootfs",
                                  .path_on_host = "/r",
                                  .is_root_device = true };
        Server s;

        server_start(&s);
        ck_assert_int_eq(firecracker_new(s.path, TIMEOUT_USEC, &f), 0);

        /* Boot arguments sent again without root= replace the earlier ones. */
        ck_assert_int_eq(firecracker_put_boot_source(f, &boot, &error), 0);
        ck_assert_int_eq(firecracker_put_drive(f, &root, &error), 0);
        ck_assert_int_eq(firecracker_put_boot_source(f, &no_root, &error), 0);
        ck_assert_int_eq(firecracker_start(f, &error), 0);
        ck_assert_ptr_null(error);

        server_stop(&s);
        ck_assert_uint_eq(s.n_requests, 4);
        server_free_requests(&s);
}
END_TEST

static Suite *contract_suite(void)
{
        Suite *s = suite_create("firecracker-contract");
        TCase *tc = tcase_create("core");

        tcase_add_loop_test(tc, test_validator_table, 0, (int)ELEMENTSOF(validator_cases));
        tcase_add_test(tc, test_boot_sequence_matches_spec);
        tcase_add_test(tc, test_phase_ordering);
        tcase_add_loop_test(tc, test_fault_becomes_error, 0, (int)ELEMENTSOF(fault_cases));
        tcase_add_test(tc, test_server_gone);
        tcase_add_test(tc, test_describe_sets_phase);
        tcase_add_test(tc, test_root_drive_and_root_argument);
        tcase_add_test(tc, test_root_argument_without_root_drive);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(contract_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        if (spec_loaded)
                yaml_document_delete(&spec);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
