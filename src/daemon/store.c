#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>
#include <systemd/sd-id128.h>

#include "fileio.h"
#include "helper-bus.h"
#include "hostkey.h"
#include "macro.h"
#include "name.h"
#include "store.h"
#include "strv.h"

static const char *const vm_state_table[_VM_STATE_MAX] = {
        [VM_CREATED] = "created",   [VM_STARTING] = "starting", [VM_RUNNING] = "running",
        [VM_STOPPING] = "stopping", [VM_STOPPED] = "stopped",   [VM_FAILED] = "failed",
};

const char *vm_state_to_string(VmState s)
{
        if (s < 0 || s >= _VM_STATE_MAX)
                return NULL;
        return vm_state_table[s];
}

VmState vm_state_from_string(const char *s)
{
        if (!s)
                return _VM_STATE_INVALID;
        for (size_t i = 0; i < ELEMENTSOF(vm_state_table); i++)
                if (streq(s, vm_state_table[i]))
                        return (VmState)i;
        return _VM_STATE_INVALID;
}

VmRecord *vm_record_free(VmRecord *r)
{
        if (!r)
                return NULL;
        free(r->name);
        free(r->id);
        free(r->image);
        free(r->kernel);
        free(r->state_reason);
        free(r->unit);
        free(r->backend);
        free(r->tap);
        free(r->address);
        port_forwards_free(r->forwards, r->n_forwards);
        free(r->host_key);
        free(r->host_key_fingerprint);
        free(r->workspace_name);
        free(r->workspace_path);
        free(r->workspace_digest);
        free(r);
        return NULL;
}

void port_forwards_free(PortForward *forwards, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(forwards[i].proto);
        free(forwards);
}

bool port_forward_proto_is_valid(const char *proto)
{
        return proto && (streq(proto, "tcp") || streq(proto, "udp"));
}

static void json_object_putp(json_object **o)
{
        if (*o)
                json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_object_putp)

static int add(json_object *o, const char *key, json_object *value)
{
        if (!value)
                return -ENOMEM;
        if (json_object_object_add(o, key, value) < 0) {
                json_object_put(value);
                return -ENOMEM;
        }
        return 0;
}

static int add_string(json_object *o, const char *key, const char *value)
{
        if (!value)
                return 0;
        return add(o, key, json_object_new_string(value));
}

/* Returns a new array, or NULL when out of memory. */
static json_object *forwards_to_json(const PortForward *forwards, size_t n)
{
        json_object *a = json_object_new_array();

        if (!a)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                json_object *f = json_object_new_object();

                if (!f || json_object_array_add(a, f) < 0) {
                        json_object_put(f);
                        json_object_put(a);
                        return NULL;
                }
                if (add_string(f, "proto", forwards[i].proto) < 0 ||
                    add(f, "host_port", json_object_new_int64(forwards[i].host_port)) < 0 ||
                    add(f, "guest_port", json_object_new_int64(forwards[i].guest_port)) < 0) {
                        json_object_put(a);
                        return NULL;
                }
        }
        return a;
}

int vm_record_to_json(const VmRecord *r, char **ret)
{
        _cleanup_json_ json_object *o = json_object_new_object();
        const char *text;
        char *copy;

        if (!o)
                return -ENOMEM;
        if (add_string(o, "name", r->name) < 0 || add_string(o, "id", r->id) < 0 ||
            add(o, "owner", json_object_new_int64(r->owner)) < 0 ||
            add_string(o, "image", r->image) < 0 || add_string(o, "kernel", r->kernel) < 0 ||
            add(o, "vcpus", json_object_new_int64(r->vcpus)) < 0 ||
            add(o, "memory_mib", json_object_new_int64(r->memory_mib)) < 0 ||
            add(o, "created_usec", json_object_new_uint64(r->created_usec)) < 0 ||
            add_string(o, "state", vm_state_to_string(r->state)) < 0 ||
            add_string(o, "state_reason", r->state_reason) < 0 ||
            add(o, "pid", json_object_new_int64(r->pid)) < 0 ||
            add(o, "start_time", json_object_new_uint64(r->start_time)) < 0 ||
            add_string(o, "unit", r->unit) < 0 || add_string(o, "backend", r->backend) < 0 ||
            add(o, "slot", json_object_new_int64(r->slot)) < 0 ||
            add_string(o, "tap", r->tap) < 0 || add_string(o, "address", r->address) < 0 ||
            add(o, "forwards", forwards_to_json(r->forwards, r->n_forwards)) < 0 ||
            add_string(o, "host_key", r->host_key) < 0 ||
            add_string(o, "host_key_fingerprint", r->host_key_fingerprint) < 0 ||
            add(o, "work_size_mib", json_object_new_int64(r->work_size_mib)) < 0 ||
            add_string(o, "workspace_name", r->workspace_name) < 0 ||
            add_string(o, "workspace_path", r->workspace_path) < 0 ||
            add_string(o, "workspace_digest", r->workspace_digest) < 0)
                return -ENOMEM;

        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                         JSON_C_TO_STRING_NOSLASHESCAPE);
        copy = text ? strdup(text) : NULL;
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

static int get_string(json_object *o, const char *key, bool required, char **ret)
{
        json_object *v;
        char *s;

        if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) {
                if (required)
                        return -EBADMSG;
                *ret = NULL;
                return 0;
        }
        if (!json_object_is_type(v, json_type_string))
                return -EBADMSG;
        s = strdup(json_object_get_string(v));
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int get_uint(json_object *o, const char *key, uint64_t max, uint64_t *ret)
{
        json_object *v;
        uint64_t u;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return -EBADMSG;
        if (json_object_get_int64(v) < 0)
                return -EBADMSG;
        u = json_object_get_uint64(v);
        if (u > max)
                return -EBADMSG;
        *ret = u;
        return 0;
}

/* Reads key when present; a missing key gives 0. */
static int get_uint_optional(json_object *o, const char *key, uint64_t max, uint64_t *ret)
{
        if (!json_object_object_get_ex(o, key, NULL)) {
                *ret = 0;
                return 0;
        }
        return get_uint(o, key, max, ret);
}

static int get_port(json_object *o, const char *key, uint16_t *ret)
{
        uint64_t port;
        int r;

        r = get_uint(o, key, UINT16_MAX, &port);
        if (r < 0)
                return r;
        if (port == 0)
                return -EBADMSG;
        *ret = port;
        return 0;
}

static int parse_forward(json_object *f, PortForward *ret)
{
        int r;

        if (!json_object_is_type(f, json_type_object))
                return -EBADMSG;
        r = get_string(f, "proto", true, &ret->proto);
        if (r < 0)
                return r;
        if (!port_forward_proto_is_valid(ret->proto))
                return -EBADMSG;
        r = get_port(f, "host_port", &ret->host_port);
        if (r < 0)
                return r;
        return get_port(f, "guest_port", &ret->guest_port);
}

/* Reads the optional "forwards" array. Two forwards of one protocol and host port cannot both
 * be installed, so a record with both is rejected. */
static int get_forwards(json_object *o, PortForward **ret, size_t *ret_n)
{
        PortForward *forwards;
        json_object *a;
        size_t n;
        int r = 0;

        if (!json_object_object_get_ex(o, "forwards", &a) ||
            json_object_is_type(a, json_type_null)) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        if (!json_object_is_type(a, json_type_array))
                return -EBADMSG;
        n = json_object_array_length(a);
        if (n == 0) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        forwards = calloc(n, sizeof(PortForward));
        if (!forwards)
                return -ENOMEM;

        for (size_t i = 0; i < n && r >= 0; i++) {
                r = parse_forward(json_object_array_get_idx(a, i), &forwards[i]);
                for (size_t j = 0; j < i && r >= 0; j++)
                        if (forwards[j].host_port == forwards[i].host_port &&
                            streq(forwards[j].proto, forwards[i].proto))
                                r = -EBADMSG;
        }
        if (r < 0) {
                port_forwards_free(forwards, n);
                return r;
        }
        *ret = forwards;
        *ret_n = n;
        return 0;
}

/* Checks the network fields: a tap name fits a link name, and the address is dotted IPv4. */
static int check_network_fields(const VmRecord *r)
{
        struct in_addr a;

        if (r->tap && (isempty(r->tap) || strlen(r->tap) >= IFNAMSIZ || strchr(r->tap, '/')))
                return -EBADMSG;
        if (r->address && inet_pton(AF_INET, r->address, &a) != 1)
                return -EBADMSG;
        return 0;
}

/* Checks that the host key parses and has the stored fingerprint, and that the workspace
 * fields are either all set and valid or all missing. */
static int check_access_fields(const VmRecord *r)
{
        _cleanup_free_ char *fingerprint = NULL;
        bool has_workspace = r->workspace_name || r->workspace_path || r->workspace_digest;

        if (!r->host_key != !r->host_key_fingerprint)
                return -EBADMSG;
        if (r->host_key) {
                if (ssh_pubkey_fingerprint(r->host_key, &fingerprint) < 0 ||
                    !streq(fingerprint, r->host_key_fingerprint))
                        return -EBADMSG;
        }
        if (has_workspace && (vm_workspace_name_check(r->workspace_name) < 0 ||
                              vm_workspace_path_check(r->workspace_path) < 0 ||
                              vm_workspace_digest_check(r->workspace_digest) < 0))
                return -EBADMSG;
        return 0;
}

int vm_record_from_json(const char *json, VmRecord **ret)
{
        _cleanup_(vm_record_freep) VmRecord *r = calloc(1, sizeof(VmRecord));
        _cleanup_json_ json_object *o = NULL;
        _cleanup_free_ char *state = NULL;
        uint64_t owner, vcpus, memory, pid, slot, work_size;
        int k;

        if (!r)
                return -ENOMEM;
        o = json_tokener_parse(json);
        if (!o || !json_object_is_type(o, json_type_object))
                return -EBADMSG;

        if ((k = get_string(o, "name", true, &r->name)) < 0 ||
            (k = get_string(o, "id", true, &r->id)) < 0 ||
            (k = get_string(o, "image", true, &r->image)) < 0 ||
            (k = get_string(o, "kernel", true, &r->kernel)) < 0 ||
            (k = get_string(o, "state", true, &state)) < 0 ||
            (k = get_string(o, "state_reason", false, &r->state_reason)) < 0 ||
            (k = get_string(o, "unit", false, &r->unit)) < 0 ||
            (k = get_string(o, "backend", true, &r->backend)) < 0 ||
            (k = get_string(o, "tap", false, &r->tap)) < 0 ||
            (k = get_string(o, "address", false, &r->address)) < 0 ||
            (k = get_string(o, "host_key", false, &r->host_key)) < 0 ||
            (k = get_string(o, "host_key_fingerprint", false, &r->host_key_fingerprint)) < 0 ||
            (k = get_string(o, "workspace_name", false, &r->workspace_name)) < 0 ||
            (k = get_string(o, "workspace_path", false, &r->workspace_path)) < 0 ||
            (k = get_string(o, "workspace_digest", false, &r->workspace_digest)) < 0)
                return k;

        if ((k = get_uint(o, "owner", UINT32_MAX - 1, &owner)) < 0 ||
            (k = get_uint(o, "vcpus", UINT32_MAX, &vcpus)) < 0 ||
            (k = get_uint(o, "memory_mib", UINT32_MAX, &memory)) < 0 ||
            (k = get_uint(o, "created_usec", UINT64_MAX, &r->created_usec)) < 0 ||
            (k = get_uint(o, "pid", INT32_MAX, &pid)) < 0 ||
            (k = get_uint(o, "start_time", UINT64_MAX, &r->start_time)) < 0 ||
            (k = get_uint_optional(o, "slot", HELPER_MAX_SLOT, &slot)) < 0 ||
            (k = get_forwards(o, &r->forwards, &r->n_forwards)) < 0 ||
            (k = get_uint_optional(o, "work_size_mib", UINT32_MAX, &work_size)) < 0)
                return k;

        if (vm_name_check(r->name, NULL) < 0 || check_network_fields(r) < 0 ||
            check_access_fields(r) < 0)
                return -EBADMSG;
        r->state = vm_state_from_string(state);
        if (r->state < 0)
                return -EBADMSG;
        r->owner = owner;
        r->vcpus = vcpus;
        r->memory_mib = memory;
        r->pid = pid;
        r->slot = slot;
        r->work_size_mib = work_size;

        *ret = TAKE_PTR(r);
        return 0;
}

int vm_workspace_name_check(const char *name)
{
        size_t n;

        if (!name || name[0] == '.')
                return -EINVAL;
        n = strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-");
        if (n == 0 || name[n] != '\0' || n > VM_WORKSPACE_NAME_MAX)
                return -EINVAL;
        return 0;
}

int vm_workspace_digest_check(const char *digest)
{
        if (!digest || strlen(digest) != VM_WORKSPACE_DIGEST_LEN ||
            strspn(digest, "0123456789abcdef") != VM_WORKSPACE_DIGEST_LEN)
                return -EINVAL;
        return 0;
}

int vm_workspace_path_check(const char *path)
{
        if (!path || path[0] != '/' || strlen(path) >= PATH_MAX)
                return -EINVAL;
        for (const char *p = path; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        return -EINVAL;
        return 0;
}

int vm_slot_pick(const unsigned *used, size_t n_used, unsigned *ret)
{
        _cleanup_free_ uint8_t *taken = calloc(HELPER_MAX_SLOT / 8 + 1, 1);

        if (!taken)
                return -ENOMEM;
        for (size_t i = 0; i < n_used; i++)
                if (used[i] > 0 && used[i] <= HELPER_MAX_SLOT)
                        taken[used[i] / 8] |= 1U << (used[i] % 8);

        for (unsigned slot = 1; slot <= HELPER_MAX_SLOT; slot++)
                if (!(taken[slot / 8] & (1U << (slot % 8)))) {
                        *ret = slot;
                        return 0;
                }
        return -ENOSPC;
}

int vm_mac_from_id(const char *id, char ret[VM_MAC_STRING_MAX])
{
        uint8_t mac[6] = { 0x02 }; /* locally administered, unicast */
        sd_id128_t uuid;

        if (!id || sd_id128_from_string(id, &uuid) < 0)
                return -EINVAL;

        /* Every byte of the id counts, so ids that share a prefix still differ. */
        for (size_t i = 0; i < sizeof(uuid.bytes); i++)
                mac[1 + i % 5] ^= uuid.bytes[i];

        snprintf(ret, VM_MAC_STRING_MAX, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2],
                 mac[3], mac[4], mac[5]);
        return 0;
}

int store_object_dir(const char *state_dir, const char *kind, const char *name, char **ret)
{
        _cleanup_free_ char *escaped = NULL;
        char *p;
        int r;

        r = name_escape(name, &escaped);
        if (r < 0)
                return r;
        if (isempty(escaped))
                return -EINVAL;
        if (asprintf(&p, "%s/%s/%s", state_dir, kind, escaped) < 0)
                return -ENOMEM;
        *ret = p;
        return 0;
}

int store_make_temp_dir(const char *state_dir, const char *kind, char **ret)
{
        _cleanup_free_ char *parent = NULL, *p = NULL;
        int r;

        if (asprintf(&parent, "%s/%s", state_dir, kind) < 0)
                return -ENOMEM;
        r = mkdir_p(parent, 0755);
        if (r < 0)
                return r;
        if (asprintf(&p, "%s/.tmp-XXXXXX", parent) < 0)
                return -ENOMEM;
        if (!mkdtemp(p))
                return negative_errno();
        if (chmod(p, 0755) < 0) {
                r = negative_errno();
                (void)rm_rf(p);
                return r;
        }
        *ret = TAKE_PTR(p);
        return 0;
}

int store_publish_dir(const char *tmp, const char *final)
{
        int r;

        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_NOREPLACE) >= 0)
                return fsync_parent(final);
        if (errno != EEXIST)
                return negative_errno();

        /* Swap, so the old object stays complete until the new one is in place. */
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_EXCHANGE) < 0)
                return negative_errno();
        r = fsync_parent(final);
        (void)rm_rf(tmp);
        return r;
}

int store_publish_with_record(const char *tmp, const char *json, const char *final)
{
        _cleanup_free_ char *path = NULL;
        int r;

        if (asprintf(&path, "%s/%s", tmp, STORE_RECORD) < 0)
                return -ENOMEM;
        r = write_file_atomic(path, json, strlen(json), 0644);
        if (r < 0)
                return r;

        return store_publish_dir(tmp, final);
}

static int compare_strings(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

int store_list(const char *state_dir, const char *kind, char ***ret)
{
        _cleanup_strv_free_ char **names = NULL;
        _cleanup_free_ char *parent = NULL;
        DIR *d;
        struct dirent *de;
        int r = 0;

        if (asprintf(&parent, "%s/%s", state_dir, kind) < 0)
                return -ENOMEM;

        names = calloc(1, sizeof(char *));
        if (!names)
                return -ENOMEM;

        d = opendir(parent);
        if (!d) {
                if (errno != ENOENT)
                        return negative_errno();
                *ret = TAKE_PTR(names);
                return 0;
        }

        while ((de = readdir(d))) {
                char *name;
                struct stat st;
                char record[NAME_MAX + sizeof(STORE_RECORD) + 2];

                if (de->d_name[0] == '.')
                        continue;
                snprintf(record, sizeof(record), "%s/%s", de->d_name, STORE_RECORD);
                if (fstatat(dirfd(d), record, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
                        continue;
                if (name_unescape(de->d_name, &name) < 0)
                        continue;
                r = strv_consume(&names, name);
                if (r < 0)
                        break;
        }
        closedir(d);
        if (r < 0)
                return r;

        qsort(names, strv_length(names), sizeof(char *), compare_strings);
        *ret = TAKE_PTR(names);
        return 0;
}

int store_remove_temporaries(const char *state_dir, const char *kind)
{
        _cleanup_free_ char *parent = NULL;
        struct dirent *de;
        DIR *d;
        int r = 0;

        if (asprintf(&parent, "%s/%s", state_dir, kind) < 0)
                return -ENOMEM;
        d = opendir(parent);
        if (!d)
                return errno == ENOENT ? 0 : negative_errno();

        while ((de = readdir(d))) {
                _cleanup_free_ char *p = NULL;

                if (!strneq(de->d_name, ".tmp-", 5))
                        continue;
                if (asprintf(&p, "%s/%s", parent, de->d_name) < 0) {
                        r = -ENOMEM;
                        break;
                }
                r = rm_rf(p);
                if (r < 0)
                        break;
        }
        closedir(d);
        return r;
}

int store_remove_partial_blobs(const char *cache_dir)
{
        _cleanup_free_ char *parent = NULL;
        struct dirent *de;
        DIR *d;
        int r = 0;

        if (asprintf(&parent, "%s/blobs/sha256", cache_dir) < 0)
                return -ENOMEM;
        d = opendir(parent);
        if (!d)
                return errno == ENOENT ? 0 : negative_errno();

        while ((de = readdir(d))) {
                /* registry_fetch_blob() downloads into ".#HEX.RANDOM" and renames the file
                 * to HEX once it is verified. */
                if (!strneq(de->d_name, ".#", 2))
                        continue;
                if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT) {
                        r = negative_errno();
                        break;
                }
        }
        closedir(d);
        return r;
}

int proc_start_time(pid_t pid, uint64_t *ret)
{
        _cleanup_free_ char *text = NULL;
        char path[64];
        const char *p;
        unsigned long long v;
        int r;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        r = read_full_file(path, 4096, &text, NULL);
        if (r == -ENOENT)
                return -ESRCH;
        if (r < 0)
                return r;

        /* The command name in field 2 may contain spaces and parentheses: skip past the last
         * ')'. Field 3 follows, so starttime (field 22) is the 20th field after it. */
        p = strrchr(text, ')');
        if (!p)
                return -EBADMSG;
        p++;
        for (int field = 3; field < 22; field++) {
                p = strchr(p + 1, ' ');
                if (!p)
                        return -EBADMSG;
        }
        if (sscanf(p, " %llu", &v) != 1)
                return -EBADMSG;
        *ret = v;
        return 0;
}
