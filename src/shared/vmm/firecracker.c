#include <ctype.h>
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "firecracker.h"
#include "log.h"
#include "macro.h"

/* Resource ids are limited to ASCII letters, digits, '_' and '-'. An id becomes a path
 * component, so nothing in it needs escaping. */
#define RESOURCE_ID_MAX 64U

/* A body that carries no fault_message is quoted in the error message up to this length. */
#define RAW_BODY_QUOTE_MAX 200U

/* A rejected boot argument is quoted up to this length. */
#define TOKEN_QUOTE_MAX 64

struct Firecracker {
        CURL *curl;
        char *socket_path;
        uint64_t timeout_usec;
        FirecrackerPhase phase;
        char *root_drive_id;  /* the drive sent with is_root_device, or NULL */
        char *boot_args_root; /* the root= argument of the boot arguments sent, or NULL */
};

typedef struct ResponseBuffer {
        char *data;
        size_t size;
        bool too_large;
} ResponseBuffer;

static inline void json_object_putp(json_object **o)
{
        if (*o)
                json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_object_putp)

static inline void json_tokener_freep(json_tokener **t)
{
        if (*t)
                json_tokener_free(*t);
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

static const char *const phase_table[_FIRECRACKER_PHASE_MAX] = {
        [FIRECRACKER_PHASE_PRE_BOOT] = "pre-boot",
        [FIRECRACKER_PHASE_RUNNING] = "running",
        [FIRECRACKER_PHASE_PAUSED] = "paused",
};

const char *firecracker_phase_to_string(FirecrackerPhase p)
{
        if (p < 0 || p >= _FIRECRACKER_PHASE_MAX)
                return NULL;
        return phase_table[p];
}

Firecracker *firecracker_free(Firecracker *f)
{
        if (!f)
                return NULL;
        if (f->curl)
                curl_easy_cleanup(f->curl);
        free(f->socket_path);
        free(f->root_drive_id);
        free(f->boot_args_root);
        free(f);
        return NULL;
}

int firecracker_new(const char *socket_path, uint64_t timeout_usec, Firecracker **ret)
{
        _cleanup_(firecracker_freep) Firecracker *f = NULL;

        assert(socket_path);
        assert(ret);

        if (isempty(socket_path) || timeout_usec == 0)
                return -EINVAL;

        f = calloc(1, sizeof(Firecracker));
        if (!f)
                return -ENOMEM;

        f->socket_path = strdup(socket_path);
        if (!f->socket_path)
                return -ENOMEM;

        f->curl = curl_easy_init();
        if (!f->curl)
                return -ENOMEM;

        f->timeout_usec = timeout_usec;
        f->phase = FIRECRACKER_PHASE_PRE_BOOT;
        *ret = TAKE_PTR(f);
        return 0;
}

FirecrackerPhase firecracker_get_phase(const Firecracker *f)
{
        assert(f);
        return f->phase;
}

void firecracker_instance_info_done(FirecrackerInstanceInfo *info)
{
        if (!info)
                return;
        free(info->app_name);
        free(info->id);
        free(info->state);
        free(info->vmm_version);
        *info = (FirecrackerInstanceInfo){};
}

/* Response parsing */

/* Copies up to max bytes of data, replacing each byte that is not printable ASCII with '?'. */
static char *quote_raw(const char *data, size_t size, size_t max)
{
        size_t n = size < max ? size : max;
        char *s = malloc(n + 1);

        if (!s)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)data[i];
                s[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
        }
        s[n] = '\0';
        return s;
}

/* Returns the fault_message of a JSON error body, or NULL when the body is not one. */
static char *fault_message_parse(const char *body, size_t size)
{
        _cleanup_(json_tokener_freep) json_tokener *tok = NULL;
        _cleanup_json_ json_object *o = NULL;
        json_object *msg;

        if (size == 0 || size > FIRECRACKER_RESPONSE_MAX)
                return NULL;

        tok = json_tokener_new();
        if (!tok)
                return NULL;

        o = json_tokener_parse_ex(tok, body, (int)size);
        if (!o || json_tokener_get_error(tok) != json_tokener_success)
                return NULL;

        /* Only whitespace may follow the object. */
        for (size_t i = json_tokener_get_parse_end(tok); i < size; i++)
                if (!isspace((unsigned char)body[i]))
                        return NULL;

        if (!json_object_is_type(o, json_type_object) ||
            !json_object_object_get_ex(o, "fault_message", &msg) ||
            !json_object_is_type(msg, json_type_string))
                return NULL;

        return quote_raw(json_object_get_string(msg), (size_t)json_object_get_string_len(msg),
                         FIRECRACKER_RESPONSE_MAX);
}

int firecracker_response_check(const char *method, const char *path, long status, const char *body,
                               size_t size, char **ret_error)
{
        _cleanup_free_ char *fault = NULL;
        int error;

        assert(method);
        assert(path);
        assert(body || size == 0);

        if (size > FIRECRACKER_RESPONSE_MAX)
                return fail(ret_error, -EMSGSIZE,
                            "Firecracker's response to %s %s has a body of %zu bytes, more than "
                            "the %u bytes accepted",
                            method, path, size, FIRECRACKER_RESPONSE_MAX);

        if (status >= 200 && status <= 299)
                return 0;

        error = status == 400 ? -EINVAL : -EIO;

        fault = fault_message_parse(body, size);
        if (fault)
                return fail(ret_error, error, "Firecracker rejected %s %s (HTTP %ld): %s", method,
                            path, status, fault);

        if (size == 0)
                return fail(ret_error, error,
                            "Firecracker rejected %s %s (HTTP %ld) with an empty body", method,
                            path, status);

        fault = quote_raw(body, size, RAW_BODY_QUOTE_MAX);
        if (!fault)
                return -ENOMEM;
        return fail(ret_error, error,
                    "Firecracker rejected %s %s (HTTP %ld) without a fault_message, body: '%s%s'",
                    method, path, status, fault, size > RAW_BODY_QUOTE_MAX ? "..." : "");
}

/* Requests */

static size_t on_response_data(char *data, size_t size, size_t n, void *userdata)
{
        ResponseBuffer *b = userdata;
        size_t len = size * n;
        char *p;

        if (b->size + len > FIRECRACKER_RESPONSE_MAX) {
                b->too_large = true;
                return 0;
        }

        p = realloc(b->data, b->size + len + 1);
        if (!p)
                return 0;
        memcpy(p + b->size, data, len);
        b->data = p;
        b->size += len;
        b->data[b->size] = '\0';
        return len;
}

static int curl_error_to_errno(Firecracker *f, CURLcode code)
{
        struct stat st;

        switch (code) {
        case CURLE_COULDNT_CONNECT:
                if (stat(f->socket_path, &st) < 0 && errno == ENOENT)
                        return -ENOENT;
                return -ECONNREFUSED;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        default:
                return -EIO;
        }
}

static int request_setup(Firecracker *f, const char *method, const char *url, const char *body,
                         ResponseBuffer *response, struct curl_slist *headers)
{
        CURL *c = f->curl;

        curl_easy_reset(c);

        if (curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, f->socket_path) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(f->timeout_usec / 1000 ?: 1)) !=
                    CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_response_data) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_WRITEDATA, response) != CURLE_OK)
                return -ENOMEM;

        if (body && (curl_easy_setopt(c, CURLOPT_POSTFIELDS, body) != CURLE_OK ||
                     curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body)) != CURLE_OK))
                return -ENOMEM;

        return 0;
}

static void curl_slist_free_allp(struct curl_slist **l)
{
        curl_slist_free_all(*l);
}

static void response_buffer_done(ResponseBuffer *b)
{
        free(b->data);
}

static int headers_new(bool has_body, struct curl_slist **ret)
{
        /* An empty Expect: stops libcurl from waiting for "100 Continue", which Firecracker
         * does not send. */
        static const char *const lines[] = { "Accept: application/json",
                                             "Expect:", "Content-Type: application/json" };
        _cleanup_(curl_slist_free_allp) struct curl_slist *headers = NULL;
        size_t n = has_body ? ELEMENTSOF(lines) : ELEMENTSOF(lines) - 1;

        for (size_t i = 0; i < n; i++) {
                struct curl_slist *h = curl_slist_append(headers, lines[i]);
                if (!h)
                        return -ENOMEM;
                headers = h;
        }

        *ret = TAKE_PTR(headers);
        return 0;
}

static int perform_error(Firecracker *f, CURLcode code, const ResponseBuffer *response,
                         const char *method, const char *path, char **ret_error)
{
        int r;

        if (response->too_large)
                return fail(ret_error, -EMSGSIZE,
                            "Firecracker's response to %s %s is larger than %u bytes", method, path,
                            FIRECRACKER_RESPONSE_MAX);

        r = curl_error_to_errno(f, code);
        log_debug("%s %s on '%s' failed: %s", method, path, f->socket_path,
                  curl_easy_strerror(code));
        return fail(ret_error, r,
                    "Failed to send %s %s to Firecracker's API socket '%s': %s. Check that "
                    "Firecracker runs with --api-sock '%s'",
                    method, path, f->socket_path, curl_easy_strerror(code), f->socket_path);
}

/* Sends one request with an optional JSON body. On success the response body (possibly empty)
 * goes to *ret_body when that is not NULL. */
static int request(Firecracker *f, const char *method, const char *path, json_object *body,
                   char **ret_body, char **ret_error)
{
        _cleanup_(curl_slist_free_allp) struct curl_slist *headers = NULL;
        _cleanup_(response_buffer_done) ResponseBuffer response = {};
        _cleanup_free_ char *url = NULL;
        const char *json = NULL;
        CURLcode code;
        long status = 0;
        int r;

        if (asprintf(&url, "http://localhost%s", path) < 0)
                return -ENOMEM;

        if (body) {
                json = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);
                if (!json)
                        return -ENOMEM;
        }

        r = headers_new(body, &headers);
        if (r < 0)
                return r;

        r = request_setup(f, method, url, json, &response, headers);
        if (r < 0)
                return r;

        code = curl_easy_perform(f->curl);
        /* The header list is freed on return, so the handle must not keep pointing to it. */
        curl_easy_setopt(f->curl, CURLOPT_HTTPHEADER, NULL);
        if (code != CURLE_OK)
                return perform_error(f, code, &response, method, path, ret_error);

        curl_easy_getinfo(f->curl, CURLINFO_RESPONSE_CODE, &status);
        r = firecracker_response_check(method, path, status, response.data, response.size,
                                       ret_error);
        if (r < 0)
                return r;

        if (!ret_body)
                return 0;

        char *data = response.data ? TAKE_PTR(response.data) : strdup("");
        if (!data)
                return -ENOMEM;
        *ret_body = data;
        return 0;
}

static int require_phase(Firecracker *f, bool pre_boot, const char *method, const char *path,
                         char **ret_error)
{
        if (pre_boot && f->phase != FIRECRACKER_PHASE_PRE_BOOT)
                return fail(ret_error, -EBUSY,
                            "%s %s is accepted only before InstanceStart, but the instance is "
                            "%s; stop it and configure a new Firecracker process",
                            method, path, firecracker_phase_to_string(f->phase));
        if (!pre_boot && f->phase == FIRECRACKER_PHASE_PRE_BOOT)
                return fail(ret_error, -EBUSY,
                            "%s %s is accepted only after InstanceStart, but the instance is "
                            "not started yet; call it after starting the instance",
                            method, path);
        return 0;
}

static int put_pre_boot(Firecracker *f, const char *path, json_object *body, char **ret_error)
{
        int r;

        if (!body)
                return -ENOMEM;

        r = require_phase(f, true, "PUT", path, ret_error);
        if (r < 0)
                return r;

        return request(f, "PUT", path, body, NULL, ret_error);
}

/* Body building: each helper returns 0 or -ENOMEM. */

static int add_string(json_object *o, const char *key, const char *value)
{
        json_object *v;

        if (!value)
                return 0;
        v = json_object_new_string(value);
        if (!v || json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int add_int(json_object *o, const char *key, int64_t value)
{
        json_object *v = json_object_new_int64(value);

        if (!v || json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int add_bool(json_object *o, const char *key, bool value)
{
        json_object *v = json_object_new_boolean(value);

        if (!v || json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static bool resource_id_is_valid(const char *id)
{
        size_t n = strlen(id);

        if (n == 0 || n > RESOURCE_ID_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)id[i]) && id[i] != '_' && id[i] != '-')
                        return false;
        return true;
}

static bool string_in(const char *s, const char *const *values, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (streq(s, values[i]))
                        return true;
        return false;
}

int firecracker_put_machine_config(Firecracker *f, const FirecrackerMachineConfig *c,
                                   char **ret_error)
{
        _cleanup_json_ json_object *o = json_object_new_object();

        assert(f);
        assert(c);

        if (c->vcpu_count < 1 || c->vcpu_count > 32 || (c->vcpu_count > 1 && c->vcpu_count % 2))
                return fail(ret_error, -EINVAL,
                            "Invalid vCPU count %u: Firecracker accepts 1 or an even number up "
                            "to 32",
                            c->vcpu_count);
        if (c->mem_size_mib < 1 || c->mem_size_mib > INT64_MAX)
                return fail(ret_error, -EINVAL,
                            "Invalid memory size %" PRIu64 " MiB: set at least 1 MiB",
                            c->mem_size_mib);

        if (!o || add_int(o, "vcpu_count", c->vcpu_count) < 0 ||
            add_int(o, "mem_size_mib", (int64_t)c->mem_size_mib) < 0 ||
            add_bool(o, "smt", c->smt) < 0 ||
            add_bool(o, "track_dirty_pages", c->track_dirty_pages) < 0)
                return -ENOMEM;

        return put_pre_boot(f, "/machine-config", o, ret_error);
}

typedef struct BootArgsState {
        const char *root; /* first root= token */
        size_t root_size;
        bool console;        /* an enabled console= seen */
        bool init;           /* after "--" */
        unsigned init_count; /* init arguments seen */
} BootArgsState;

static int boot_args_scan(const char *boot_args, BootArgsState *ret, char **ret_error);

int firecracker_put_boot_source(Firecracker *f, const FirecrackerBootSource *b, char **ret_error)
{
        _cleanup_json_ json_object *o = json_object_new_object();
        _cleanup_free_ char *root = NULL;
        BootArgsState state;
        int r;

        assert(f);
        assert(b);

        if (isempty(b->kernel_image_path))
                return fail(ret_error, -EINVAL,
                            "The boot source has no kernel image path; set kernel_image_path");

        /* Firecracker's default command line contains 8250.nr_uarts=0, which removes the serial
         * console (DEFAULT_KERNEL_CMDLINE in src/vmm/src/vmm_config/boot_source.rs). */
        if (!b->boot_args)
                return fail(ret_error, -EINVAL,
                            "The boot source has no boot arguments, and Firecracker's default "
                            "disables the serial console. Set them, including console=ttyS0");

        r = boot_args_scan(b->boot_args, &state, ret_error);
        if (r < 0)
                return r;
        if (state.root) {
                root = strndup(state.root, state.root_size);
                if (!root)
                        return -ENOMEM;
        }

        if (!o || add_string(o, "kernel_image_path", b->kernel_image_path) < 0 ||
            add_string(o, "initrd_path", b->initrd_path) < 0 ||
            add_string(o, "boot_args", b->boot_args) < 0)
                return -ENOMEM;

        r = put_pre_boot(f, "/boot-source", o, ret_error);
        if (r < 0)
                return r;

        free(f->boot_args_root);
        f->boot_args_root = TAKE_PTR(root);
        return 0;
}

/* Remembers which drive is the root device, because Firecracker then adds root= to the boot
 * arguments (attach_block_devices() in src/vmm/src/builder.rs). A drive sent again with the
 * same id replaces the earlier one. */
static int drive_track_root(Firecracker *f, const FirecrackerDrive *d)
{
        char *id;

        if (d->is_root_device) {
                id = strdup(d->drive_id);
                if (!id)
                        return -ENOMEM;
                free(f->root_drive_id);
                f->root_drive_id = id;
        } else if (f->root_drive_id && streq(f->root_drive_id, d->drive_id)) {
                free(f->root_drive_id);
                f->root_drive_id = NULL;
        }
        return 0;
}

int firecracker_put_drive(Firecracker *f, const FirecrackerDrive *d, char **ret_error)
{
        static const char *const cache_types[] = { "Unsafe", "Writeback" };
        static const char *const io_engines[] = { "Sync", "Async" };
        _cleanup_json_ json_object *o = json_object_new_object();
        _cleanup_free_ char *path = NULL;
        int r;

        assert(f);
        assert(d);

        if (!d->drive_id || !resource_id_is_valid(d->drive_id))
                return fail(ret_error, -EINVAL,
                            "Invalid drive id '%s': use 1 to %u ASCII letters, digits, '_' or '-'",
                            strempty(d->drive_id), RESOURCE_ID_MAX);
        if (isempty(d->path_on_host))
                return fail(ret_error, -EINVAL, "Drive '%s' has no path on the host", d->drive_id);
        if (d->cache_type && !string_in(d->cache_type, cache_types, ELEMENTSOF(cache_types)))
                return fail(ret_error, -EINVAL,
                            "Invalid cache type '%s' for drive '%s': use Unsafe or Writeback",
                            d->cache_type, d->drive_id);
        if (d->io_engine && !string_in(d->io_engine, io_engines, ELEMENTSOF(io_engines)))
                return fail(ret_error, -EINVAL,
                            "Invalid I/O engine '%s' for drive '%s': use Sync or Async",
                            d->io_engine, d->drive_id);

        if (!o || add_string(o, "drive_id", d->drive_id) < 0 ||
            add_string(o, "path_on_host", d->path_on_host) < 0 ||
            add_bool(o, "is_root_device", d->is_root_device) < 0 ||
            add_bool(o, "is_read_only", d->is_read_only) < 0 ||
            add_string(o, "cache_type", d->cache_type) < 0 ||
            add_string(o, "io_engine", d->io_engine) < 0)
                return -ENOMEM;

        if (asprintf(&path, "/drives/%s", d->drive_id) < 0)
                return -ENOMEM;

        r = put_pre_boot(f, path, o, ret_error);
        if (r < 0)
                return r;

        return drive_track_root(f, d);
}

static bool mac_is_valid(const char *mac)
{
        /* Six pairs of hex digits separated by ':'. */
        if (strlen(mac) != 17)
                return false;
        for (size_t i = 0; i < 17; i++) {
                if (i % 3 == 2 ? mac[i] != ':' : !isxdigit((unsigned char)mac[i]))
                        return false;
        }
        return true;
}

int firecracker_put_network_interface(Firecracker *f, const FirecrackerNetworkInterface *n,
                                      char **ret_error)
{
        _cleanup_json_ json_object *o = json_object_new_object();
        _cleanup_free_ char *path = NULL;

        assert(f);
        assert(n);

        if (!n->iface_id || !resource_id_is_valid(n->iface_id))
                return fail(ret_error, -EINVAL,
                            "Invalid interface id '%s': use 1 to %u ASCII letters, digits, '_' or "
                            "'-'",
                            strempty(n->iface_id), RESOURCE_ID_MAX);
        if (isempty(n->host_dev_name))
                return fail(ret_error, -EINVAL,
                            "Interface '%s' has no host device; set the name of a tap device",
                            n->iface_id);
        if (n->guest_mac && !mac_is_valid(n->guest_mac))
                return fail(ret_error, -EINVAL,
                            "Invalid MAC address '%s' for interface '%s': use the form "
                            "02:00:00:00:00:01",
                            n->guest_mac, n->iface_id);
        if (n->mtu != 0 && (n->mtu < 68 || n->mtu > 65535))
                return fail(ret_error, -EINVAL,
                            "Invalid MTU %u for interface '%s': use 68 to 65535, or 0 for the "
                            "guest's default",
                            n->mtu, n->iface_id);

        if (!o || add_string(o, "iface_id", n->iface_id) < 0 ||
            add_string(o, "host_dev_name", n->host_dev_name) < 0 ||
            add_string(o, "guest_mac", n->guest_mac) < 0 ||
            (n->mtu != 0 && add_int(o, "mtu", n->mtu) < 0))
                return -ENOMEM;

        if (asprintf(&path, "/network-interfaces/%s", n->iface_id) < 0)
                return -ENOMEM;

        return put_pre_boot(f, path, o, ret_error);
}

int firecracker_put_vsock(Firecracker *f, uint32_t guest_cid, const char *uds_path,
                          char **ret_error)
{
        _cleanup_json_ json_object *o = json_object_new_object();

        assert(f);

        /* CIDs 0 to 2 are the hypervisor, the local loopback and the host. */
        if (guest_cid < 3)
                return fail(ret_error, -EINVAL, "Invalid guest CID %" PRIu32 ": use 3 or more",
                            guest_cid);
        if (isempty(uds_path))
                return fail(ret_error, -EINVAL, "The vsock device has no unix socket path");

        if (!o || add_int(o, "guest_cid", guest_cid) < 0 || add_string(o, "uds_path", uds_path) < 0)
                return -ENOMEM;

        return put_pre_boot(f, "/vsock", o, ret_error);
}

int firecracker_put_entropy(Firecracker *f, char **ret_error)
{
        _cleanup_json_ json_object *o = json_object_new_object();

        assert(f);
        return put_pre_boot(f, "/entropy", o, ret_error);
}

int firecracker_put_logger(Firecracker *f, const FirecrackerLogger *l, char **ret_error)
{
        static const char *const levels[] = { "Error", "Warning", "Info", "Debug", "Trace", "Off" };
        _cleanup_json_ json_object *o = json_object_new_object();

        assert(f);
        assert(l);

        if (isempty(l->log_path))
                return fail(ret_error, -EINVAL, "The logger has no log path");
        if (l->level && !string_in(l->level, levels, ELEMENTSOF(levels)))
                return fail(ret_error, -EINVAL,
                            "Invalid log level '%s': use Error, Warning, Info, Debug, Trace or "
                            "Off",
                            l->level);

        if (!o || add_string(o, "log_path", l->log_path) < 0 ||
            add_string(o, "level", l->level) < 0 || add_bool(o, "show_level", l->show_level) < 0 ||
            add_bool(o, "show_log_origin", l->show_log_origin) < 0)
                return -ENOMEM;

        return put_pre_boot(f, "/logger", o, ret_error);
}

int firecracker_put_metrics(Firecracker *f, const char *metrics_path, char **ret_error)
{
        _cleanup_json_ json_object *o = json_object_new_object();

        assert(f);

        if (isempty(metrics_path))
                return fail(ret_error, -EINVAL, "The metrics output has no path");

        if (!o || add_string(o, "metrics_path", metrics_path) < 0)
                return -ENOMEM;

        return put_pre_boot(f, "/metrics", o, ret_error);
}

int firecracker_put_serial(Firecracker *f, const char *serial_out_path, char **ret_error)
{
        _cleanup_json_ json_object *o = json_object_new_object();

        assert(f);

        if (isempty(serial_out_path))
                return fail(ret_error, -EINVAL, "The serial device has no output path");

        if (!o || add_string(o, "serial_out_path", serial_out_path) < 0)
                return -ENOMEM;

        return put_pre_boot(f, "/serial", o, ret_error);
}

static int put_action(Firecracker *f, const char *action_type, char **ret_error)
{
        _cleanup_json_ json_object *o = json_object_new_object();

        if (!o || add_string(o, "action_type", action_type) < 0)
                return -ENOMEM;

        return request(f, "PUT", "/actions", o, NULL, ret_error);
}

int firecracker_start(Firecracker *f, char **ret_error)
{
        int r;

        assert(f);

        r = require_phase(f, true, "PUT", "/actions InstanceStart", ret_error);
        if (r < 0)
                return r;

        if (f->root_drive_id && f->boot_args_root)
                return fail(ret_error, -EINVAL,
                            "Invalid boot argument '%s': Firecracker adds root= for the root "
                            "drive '%s', so the kernel would get two. Drop it from the boot "
                            "arguments or send the drive with is_root_device false",
                            f->boot_args_root, f->root_drive_id);

        r = put_action(f, "InstanceStart", ret_error);
        if (r < 0)
                return r;

        f->phase = FIRECRACKER_PHASE_RUNNING;
        return 0;
}

static int patch_vm_state(Firecracker *f, const char *state, FirecrackerPhase next,
                          char **ret_error)
{
        _cleanup_json_ json_object *o = json_object_new_object();
        int r;

        r = require_phase(f, false, "PATCH", "/vm", ret_error);
        if (r < 0)
                return r;

        if (!o || add_string(o, "state", state) < 0)
                return -ENOMEM;

        r = request(f, "PATCH", "/vm", o, NULL, ret_error);
        if (r < 0)
                return r;

        f->phase = next;
        return 0;
}

int firecracker_pause(Firecracker *f, char **ret_error)
{
        assert(f);
        return patch_vm_state(f, "Paused", FIRECRACKER_PHASE_PAUSED, ret_error);
}

int firecracker_resume(Firecracker *f, char **ret_error)
{
        assert(f);
        return patch_vm_state(f, "Resumed", FIRECRACKER_PHASE_RUNNING, ret_error);
}

int firecracker_send_ctrl_alt_del(Firecracker *f, char **ret_error)
{
        int r;

        assert(f);

        r = require_phase(f, false, "PUT", "/actions SendCtrlAltDel", ret_error);
        if (r < 0)
                return r;

        return put_action(f, "SendCtrlAltDel", ret_error);
}

static int take_string(json_object *o, const char *key, char **ret)
{
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return -EBADMSG;
        *ret = strdup(json_object_get_string(v));
        return *ret ? 0 : -ENOMEM;
}

int firecracker_describe_instance(Firecracker *f, FirecrackerInstanceInfo *ret, char **ret_error)
{
        _cleanup_free_ char *body = NULL;
        _cleanup_json_ json_object *o = NULL;
        FirecrackerInstanceInfo info = {};
        int r;

        assert(f);
        assert(ret);

        r = request(f, "GET", "/", NULL, &body, ret_error);
        if (r < 0)
                return r;

        o = json_tokener_parse(body);
        if (!o || !json_object_is_type(o, json_type_object))
                return fail(ret_error, -EBADMSG,
                            "Firecracker's response to GET / is not a JSON object");

        if ((r = take_string(o, "app_name", &info.app_name)) < 0 ||
            (r = take_string(o, "id", &info.id)) < 0 ||
            (r = take_string(o, "state", &info.state)) < 0 ||
            (r = take_string(o, "vmm_version", &info.vmm_version)) < 0) {
                firecracker_instance_info_done(&info);
                return fail(ret_error, r,
                            "Firecracker's response to GET / lacks app_name, id, state or "
                            "vmm_version");
        }

        /* Firecracker's own state wins, for example after an InstanceStart whose reply was
         * lost. */
        if (streq(info.state, "Not started"))
                f->phase = FIRECRACKER_PHASE_PRE_BOOT;
        else if (streq(info.state, "Running"))
                f->phase = FIRECRACKER_PHASE_RUNNING;
        else if (streq(info.state, "Paused"))
                f->phase = FIRECRACKER_PHASE_PAUSED;

        *ret = info;
        return 0;
}

/* Boot arguments */

static int reject_token(char **ret_error, const char *token, size_t size, const char *reason)
{
        return fail(ret_error, -EINVAL, "Invalid boot argument '%.*s%s': %s",
                    (int)(size < TOKEN_QUOTE_MAX ? size : TOKEN_QUOTE_MAX), token,
                    size > TOKEN_QUOTE_MAX ? "..." : "", reason);
}

static bool token_has_key(const char *token, size_t size, const char *key)
{
        size_t n = strlen(key);

        return size > n && strneq(token, key, n) && token[n] == '=';
}

static int check_token(BootArgsState *s, const char *token, size_t size, char **ret_error)
{
        const char *value;
        size_t value_size;

        if (size == 2 && strneq(token, "--", 2)) {
                if (s->init)
                        return reject_token(ret_error, token, size,
                                            "a second '--'; Linux passes everything after the "
                                            "first one to init");
                s->init = true;
                return 0;
        }

        if (s->init) {
                s->init_count++;
                if (s->init_count > FIRECRACKER_INIT_ARGS_MAX)
                        return fail(ret_error, -EINVAL,
                                    "Invalid boot argument '%.*s%s': init argument %u, but Linux "
                                    "passes at most %u to init",
                                    (int)(size < TOKEN_QUOTE_MAX ? size : TOKEN_QUOTE_MAX), token,
                                    size > TOKEN_QUOTE_MAX ? "..." : "", s->init_count,
                                    FIRECRACKER_INIT_ARGS_MAX);
                if (size > FIRECRACKER_INIT_ARG_LENGTH_MAX)
                        return fail(ret_error, -EINVAL,
                                    "Invalid boot argument '%.*s...': an init argument of %zu "
                                    "bytes, longer than the maximum of %u",
                                    TOKEN_QUOTE_MAX, token, size, FIRECRACKER_INIT_ARG_LENGTH_MAX);
                return 0;
        }

        if (token_has_key(token, size, "root") || (size == 5 && strneq(token, "root=", 5))) {
                if (s->root)
                        return fail(ret_error, -EINVAL,
                                    "Invalid boot argument '%.*s': a second root= after '%.*s'; "
                                    "keep one",
                                    (int)(size < TOKEN_QUOTE_MAX ? size : TOKEN_QUOTE_MAX), token,
                                    (int)(s->root_size < TOKEN_QUOTE_MAX ? s->root_size
                                                                         : TOKEN_QUOTE_MAX),
                                    s->root);
                s->root = token;
                s->root_size = size;
                return 0;
        }

        if (size >= 8 && strneq(token, "console=", 8)) {
                value = token + 8;
                value_size = size - 8;
                if (value_size == 0 || (value_size == 4 && strneq(value, "null", 4)) ||
                    (value_size == 4 && strneq(value, "none", 4)))
                        return reject_token(ret_error, token, size,
                                            "disables the console, which carries the guest's "
                                            "log; use console=ttyS0");
                s->console = true;
                return 0;
        }

        if (size == 15 && strneq(token, "8250.nr_uarts=0", 15))
                return reject_token(ret_error, token, size,
                                    "removes the serial port that carries the guest's console; "
                                    "drop it");

        return 0;
}

static int boot_args_scan(const char *boot_args, BootArgsState *ret, char **ret_error)
{
        BootArgsState s = {};
        size_t n, i = 0;
        int r;

        assert(boot_args);

        n = strlen(boot_args);
        if (n > FIRECRACKER_BOOT_ARGS_MAX)
                return fail(ret_error, -EINVAL,
                            "Invalid boot arguments: %zu bytes, more than the maximum of %u; "
                            "drop some from the end, which starts '%.*s'",
                            n, FIRECRACKER_BOOT_ARGS_MAX, TOKEN_QUOTE_MAX,
                            boot_args + FIRECRACKER_BOOT_ARGS_MAX);

        for (size_t k = 0; k < n; k++) {
                unsigned char c = (unsigned char)boot_args[k];
                if (c < 0x20 || c > 0x7e)
                        return fail(ret_error, -EINVAL,
                                    "Invalid boot arguments: byte 0x%02x at offset %zu is not "
                                    "printable ASCII; separate arguments with spaces",
                                    c, k);
        }

        while (i < n) {
                size_t start;
                bool quoted = false;

                while (i < n && boot_args[i] == ' ')
                        i++;
                if (i >= n)
                        break;

                /* Linux splits at spaces outside double quotes (next_arg() in lib/cmdline.c). */
                start = i;
                for (; i < n && (quoted || boot_args[i] != ' '); i++)
                        if (boot_args[i] == '"')
                                quoted = !quoted;
                if (quoted)
                        return reject_token(ret_error, boot_args + start, i - start,
                                            "an opening double quote without a closing one");

                r = check_token(&s, boot_args + start, i - start, ret_error);
                if (r < 0)
                        return r;
        }

        if (!s.console)
                return fail(ret_error, -EINVAL,
                            "Invalid boot arguments: no console= argument, so the guest's log is "
                            "lost; add console=ttyS0");
        *ret = s;
        return 0;
}

int firecracker_boot_args_validate(const char *boot_args, char **ret_error)
{
        BootArgsState s;

        assert(boot_args);
        return boot_args_scan(boot_args, &s, ret_error);
}
