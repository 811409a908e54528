#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"
#include "store.h"
#include "strv.h"

static char tmpdir[] = "/tmp/test-store-XXXXXX";

static void setup(void)
{
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
        ck_assert_int_eq(rm_rf(tmpdir), 0);
        strcpy(tmpdir, "/tmp/test-store-XXXXXX");
}

#define HOST_KEY \
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGQvci4JRxHk7yd0pzkEkfbUCMCMrcklz0wqHdbQd5kt dev1"
/* What ssh-keygen -l prints for HOST_KEY. */
#define HOST_KEY_FINGERPRINT "SHA256:t8h4fbdsqAx81K5rav0LQTRQo5U+GI1Lc5lwN/iwnEU"
#define DIGEST               "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static VmRecord *sample_record(void)
{
        VmRecord *r = calloc(1, sizeof(VmRecord));

        ck_assert_ptr_nonnull(r);
        r->name = strdup("dev1");
        r->id = strdup("0f8fad5b-d9cb-469f-a165-70867728950e");
        r->owner = 1000;
        r->image = strdup("docker.io/library/busybox:latest");
        r->kernel = strdup("6.1.0-28-cloud-amd64");
        r->vcpus = 2;
        r->memory_mib = 512;
        r->created_usec = 1733320000123456ULL;
        r->state = VM_RUNNING;
        r->state_reason = strdup("quote \" and \\ and\nnewline");
        r->pid = 4242;
        r->start_time = 18446744073709551615ULL;
        r->unit = strdup("banger-vm-dev1.scope");
        r->backend = strdup("qemu");
        r->slot = 7;
        r->tap = strdup("bngtap7");
        r->address = strdup("10.123.0.8");
        r->n_forwards = 2;
        r->forwards = calloc(2, sizeof(PortForward));
        ck_assert_ptr_nonnull(r->forwards);
        r->forwards[0] =
                (PortForward){ .proto = strdup("tcp"), .host_port = 8080, .guest_port = 80 };
        r->forwards[1] =
                (PortForward){ .proto = strdup("udp"), .host_port = 65535, .guest_port = 1 };
        r->host_key = strdup(HOST_KEY);
        r->host_key_fingerprint = strdup(HOST_KEY_FINGERPRINT);
        r->work_size_mib = 1024;
        r->workspace_name = strdup("my-project_2.0");
        r->workspace_path = strdup("/home/alice/src/my project");
        r->workspace_digest = strdup(DIGEST);
        return r;
}

START_TEST(vm_record_round_trip)
{
        _cleanup_(vm_record_freep) VmRecord *in = sample_record(), *out = NULL;
        _cleanup_free_ char *json = NULL;

        ck_assert_int_eq(vm_record_to_json(in, &json), 0);
        ck_assert_int_eq(vm_record_from_json(json, &out), 0);
        ck_assert_str_eq(out->name, in->name);
        ck_assert_str_eq(out->id, in->id);
        ck_assert_uint_eq(out->owner, in->owner);
        ck_assert_str_eq(out->image, in->image);
        ck_assert_str_eq(out->kernel, in->kernel);
        ck_assert_uint_eq(out->vcpus, in->vcpus);
        ck_assert_uint_eq(out->memory_mib, in->memory_mib);
        ck_assert_uint_eq(out->created_usec, in->created_usec);
        ck_assert_int_eq(out->state, VM_RUNNING);
        ck_assert_str_eq(out->state_reason, in->state_reason);
        ck_assert_int_eq(out->pid, 4242);
        ck_assert_uint_eq(out->start_time, in->start_time);
        ck_assert_str_eq(out->unit, in->unit);
        ck_assert_str_eq(out->backend, "qemu");
        ck_assert_uint_eq(out->slot, 7);
        ck_assert_str_eq(out->tap, "bngtap7");
        ck_assert_str_eq(out->address, "10.123.0.8");
        ck_assert_uint_eq(out->n_forwards, 2);
        ck_assert_str_eq(out->forwards[0].proto, "tcp");
        ck_assert_uint_eq(out->forwards[0].host_port, 8080);
        ck_assert_uint_eq(out->forwards[0].guest_port, 80);
        ck_assert_str_eq(out->forwards[1].proto, "udp");
        ck_assert_uint_eq(out->forwards[1].host_port, 65535);
        ck_assert_uint_eq(out->forwards[1].guest_port, 1);
        ck_assert_str_eq(out->host_key, HOST_KEY);
        ck_assert_str_eq(out->host_key_fingerprint, HOST_KEY_FINGERPRINT);
        ck_assert_uint_eq(out->work_size_mib, 1024);
        ck_assert_str_eq(out->workspace_name, "my-project_2.0");
        ck_assert_str_eq(out->workspace_path, "/home/alice/src/my project");
        ck_assert_str_eq(out->workspace_digest, DIGEST);
}
END_TEST

START_TEST(vm_record_access_fields_absent)
{
        _cleanup_(vm_record_freep) VmRecord *in = sample_record(), *out = NULL;
        _cleanup_free_ char *json = NULL;

        free(TAKE_PTR(in->host_key));
        free(TAKE_PTR(in->host_key_fingerprint));
        free(TAKE_PTR(in->workspace_name));
        free(TAKE_PTR(in->workspace_path));
        free(TAKE_PTR(in->workspace_digest));
        in->work_size_mib = 0;
        ck_assert_int_eq(vm_record_to_json(in, &json), 0);
        ck_assert_ptr_null(strstr(json, "\"host_key"));
        ck_assert_ptr_null(strstr(json, "\"workspace_"));
        ck_assert_int_eq(vm_record_from_json(json, &out), 0);
        ck_assert_ptr_null(out->host_key);
        ck_assert_ptr_null(out->host_key_fingerprint);
        ck_assert_uint_eq(out->work_size_mib, 0);
        ck_assert_ptr_null(out->workspace_name);
        ck_assert_ptr_null(out->workspace_path);
        ck_assert_ptr_null(out->workspace_digest);
}
END_TEST

START_TEST(vm_record_network_fields_absent)
{
        _cleanup_(vm_record_freep) VmRecord *in = sample_record(), *out = NULL;
        _cleanup_free_ char *json = NULL;

        in->slot = 0;
        free(in->tap);
        in->tap = NULL;
        free(in->address);
        in->address = NULL;
        port_forwards_free(in->forwards, in->n_forwards);
        in->forwards = NULL;
        in->n_forwards = 0;
        ck_assert_int_eq(vm_record_to_json(in, &json), 0);
        ck_assert_ptr_null(strstr(json, "\"tap\""));
        ck_assert_ptr_null(strstr(json, "\"address\""));
        ck_assert_int_eq(vm_record_from_json(json, &out), 0);
        ck_assert_uint_eq(out->slot, 0);
        ck_assert_ptr_null(out->tap);
        ck_assert_ptr_null(out->address);
        ck_assert_ptr_null(out->forwards);
        ck_assert_uint_eq(out->n_forwards, 0);
}
END_TEST

START_TEST(vm_record_optional_fields_absent)
{
        _cleanup_(vm_record_freep) VmRecord *in = sample_record(), *out = NULL;
        _cleanup_free_ char *json = NULL;

        free(in->state_reason);
        in->state_reason = NULL;
        free(in->unit);
        in->unit = NULL;
        ck_assert_int_eq(vm_record_to_json(in, &json), 0);
        ck_assert_ptr_null(strstr(json, "state_reason"));
        ck_assert_int_eq(vm_record_from_json(json, &out), 0);
        ck_assert_ptr_null(out->state_reason);
        ck_assert_ptr_null(out->unit);
}
END_TEST

#define BASE                                                                              \
        "\"id\":\"x\",\"image\":\"i\",\"kernel\":\"k\",\"backend\":\"qemu\",\"owner\":1," \
        "\"vcpus\":1,\"memory_mib\":256,\"created_usec\":1,\"pid\":0,\"start_time\":0"

static const struct {
        const char *json;
        int expected;
} records[] = {
        { "{\"name\":\"dev1\",\"state\":\"stopped\"," BASE "}", 0 },
        { "{\"name\":\"dev1\",\"state\":\"stopped\",\"extra\":true," BASE "}", 0 },
        { "", -EBADMSG },
        { "[]", -EBADMSG },
        { "{\"name\":\"dev1\",\"state\":\"stopped\"", -EBADMSG },
        { "{\"state\":\"stopped\"," BASE "}", -EBADMSG },
        { "{\"name\":\"Dev1\",\"state\":\"stopped\"," BASE "}", -EBADMSG },
        { "{\"name\":\"../x\",\"state\":\"stopped\"," BASE "}", -EBADMSG },
        { "{\"name\":\"dev1\",\"state\":\"paused\"," BASE "}", -EBADMSG },
        { "{\"name\":7,\"state\":\"stopped\"," BASE "}", -EBADMSG },
        { "{\"name\":\"dev1\",\"state\":\"stopped\",\"owner\":-1,\"id\":\"x\",\"image\":\"i\","
          "\"kernel\":\"k\",\"backend\":\"qemu\",\"vcpus\":1,\"memory_mib\":256,"
          "\"created_usec\":1,\"pid\":0,\"start_time\":0}",
          -EBADMSG },
        { "{\"name\":\"dev1\",\"state\":\"stopped\",\"owner\":1,\"id\":\"x\",\"image\":\"i\","
          "\"kernel\":\"k\",\"backend\":\"qemu\",\"vcpus\":\"1\",\"memory_mib\":256,"
          "\"created_usec\":1,\"pid\":0,\"start_time\":0}",
          -EBADMSG },
        { "{\"name\":\"dev1\",\"state\":\"stopped\",\"owner\":1,\"id\":\"x\",\"image\":\"i\","
          "\"kernel\":\"k\",\"backend\":\"qemu\",\"vcpus\":1,\"memory_mib\":256,"
          "\"created_usec\":1,\"pid\":4294967296,\"start_time\":0}",
          -EBADMSG },
};

/* A record in the format written before VMs had networking, with none of its fields. */
static const char old_record[] =
        "{\"name\":\"dev1\",\"id\":\"0f8fad5b-d9cb-469f-a165-70867728950e\",\"owner\":1000,"
        "\"image\":\"busybox\",\"kernel\":\"cloud\",\"vcpus\":1,\"memory_mib\":256,"
        "\"created_usec\":1,\"state\":\"stopped\",\"pid\":0,\"start_time\":0,"
        "\"unit\":\"banger-vm-dev1.scope\",\"backend\":\"qemu\"}";

START_TEST(vm_record_loads_old_format)
{
        _cleanup_(vm_record_freep) VmRecord *out = NULL;

        ck_assert_int_eq(vm_record_from_json(old_record, &out), 0);
        ck_assert_str_eq(out->name, "dev1");
        ck_assert_uint_eq(out->slot, 0);
        ck_assert_ptr_null(out->tap);
        ck_assert_ptr_null(out->address);
        ck_assert_ptr_null(out->forwards);
        ck_assert_uint_eq(out->n_forwards, 0);
        ck_assert_ptr_null(out->host_key);
        ck_assert_uint_eq(out->work_size_mib, 0);
        ck_assert_ptr_null(out->workspace_name);
}
END_TEST

#define NET_RECORD(fields) "{\"name\":\"dev1\",\"state\":\"stopped\"," BASE "," fields "}"
#define FORWARD(proto, host, guest) \
        "{\"proto\":\"" proto "\",\"host_port\":" host ",\"guest_port\":" guest "}"

static const struct {
        const char *name;
        const char *json;
        int expected;
} network_records[] = {
        { "all fields",
          NET_RECORD("\"slot\":3,\"tap\":\"bngtap3\",\"address\":\"10.0.0.4\","
                     "\"forwards\":[" FORWARD("tcp", "2222", "22") "]"),
          0 },
        { "empty forwards", NET_RECORD("\"forwards\":[]"), 0 },
        { "null forwards", NET_RECORD("\"forwards\":null"), 0 },
        { "highest slot", NET_RECORD("\"slot\":65533"), 0 },
        { "same port, tcp and udp",
          NET_RECORD(
                  "\"forwards\":[" FORWARD("tcp", "53", "53") "," FORWARD("udp", "53", "53") "]"),
          0 },
        { "slot above the maximum", NET_RECORD("\"slot\":65534"), -EBADMSG },
        { "negative slot", NET_RECORD("\"slot\":-1"), -EBADMSG },
        { "slot as string", NET_RECORD("\"slot\":\"3\""), -EBADMSG },
        { "host port 0", NET_RECORD("\"forwards\":[" FORWARD("tcp", "0", "80") "]"), -EBADMSG },
        { "guest port 0", NET_RECORD("\"forwards\":[" FORWARD("tcp", "80", "0") "]"), -EBADMSG },
        { "host port 70000", NET_RECORD("\"forwards\":[" FORWARD("tcp", "70000", "80") "]"),
          -EBADMSG },
        { "guest port 70000", NET_RECORD("\"forwards\":[" FORWARD("udp", "80", "70000") "]"),
          -EBADMSG },
        { "proto sctp", NET_RECORD("\"forwards\":[" FORWARD("sctp", "80", "80") "]"), -EBADMSG },
        { "proto upper case", NET_RECORD("\"forwards\":[" FORWARD("TCP", "80", "80") "]"),
          -EBADMSG },
        { "duplicate host port",
          NET_RECORD(
                  "\"forwards\":[" FORWARD("tcp", "80", "80") "," FORWARD("tcp", "80", "81") "]"),
          -EBADMSG },
        { "forward without guest port",
          NET_RECORD("\"forwards\":[{\"proto\":\"tcp\",\"host_port\":80}]"), -EBADMSG },
        { "forward not an object", NET_RECORD("\"forwards\":[80]"), -EBADMSG },
        { "forwards not an array", NET_RECORD("\"forwards\":{}"), -EBADMSG },
        { "tap name too long", NET_RECORD("\"tap\":\"bngtap1234567890\""), -EBADMSG },
        { "empty tap name", NET_RECORD("\"tap\":\"\""), -EBADMSG },
        { "tap name with slash", NET_RECORD("\"tap\":\"a/b\""), -EBADMSG },
        { "address with prefix", NET_RECORD("\"address\":\"10.0.0.4/24\""), -EBADMSG },
        { "address not IPv4", NET_RECORD("\"address\":\"fe80::1\""), -EBADMSG },
};

#define KEY_FIELDS \
        "\"host_key\":\"" HOST_KEY "\",\"host_key_fingerprint\":\"" HOST_KEY_FINGERPRINT "\""
#define WORKSPACE_FIELDS(name, path, digest)                         \
        "\"workspace_name\":\"" name "\",\"workspace_path\":\"" path \
        "\",\"workspace_digest\":\"" digest "\""

static const struct {
        const char *name;
        const char *json;
        int expected;
} access_records[] = {
        { "all fields",
          NET_RECORD(KEY_FIELDS
                     ",\"work_size_mib\":2048," WORKSPACE_FIELDS("proj", "/src/proj", DIGEST)),
          0 },
        { "host key without workspace", NET_RECORD(KEY_FIELDS ",\"work_size_mib\":16"), 0 },
        { "null workspace fields",
          NET_RECORD("\"workspace_name\":null,\"workspace_path\":null,\"workspace_digest\":null"),
          0 },
        { "host key without fingerprint", NET_RECORD("\"host_key\":\"" HOST_KEY "\""), -EBADMSG },
        { "fingerprint without host key",
          NET_RECORD("\"host_key_fingerprint\":\"" HOST_KEY_FINGERPRINT "\""), -EBADMSG },
        { "fingerprint of another key",
          NET_RECORD("\"host_key\":\"" HOST_KEY "\",\"host_key_fingerprint\":"
                     "\"SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\""),
          -EBADMSG },
        { "host key not a key",
          NET_RECORD("\"host_key\":\"ssh-ed25519 "
                     "AAAA\",\"host_key_fingerprint\":\"" HOST_KEY_FINGERPRINT "\""),
          -EBADMSG },
        { "work size negative", NET_RECORD("\"work_size_mib\":-1"), -EBADMSG },
        { "work size as string", NET_RECORD("\"work_size_mib\":\"16\""), -EBADMSG },
        { "workspace without digest",
          NET_RECORD("\"workspace_name\":\"proj\",\"workspace_path\":\"/src/proj\""), -EBADMSG },
        { "workspace name with slash", NET_RECORD(WORKSPACE_FIELDS("a/b", "/src", DIGEST)),
          -EBADMSG },
        { "workspace name with dot", NET_RECORD(WORKSPACE_FIELDS(".banger", "/src", DIGEST)),
          -EBADMSG },
        { "workspace path relative", NET_RECORD(WORKSPACE_FIELDS("proj", "src/proj", DIGEST)),
          -EBADMSG },
        { "workspace digest short", NET_RECORD(WORKSPACE_FIELDS("proj", "/src/proj", "abc")),
          -EBADMSG },
};

START_TEST(vm_record_access_table)
{
        _cleanup_(vm_record_freep) VmRecord *out = NULL;

        ck_assert_msg(vm_record_from_json(access_records[_i].json, &out) ==
                              access_records[_i].expected,
                      "case '%s'", access_records[_i].name);
        if (access_records[_i].expected < 0)
                ck_assert_ptr_null(out);
}
END_TEST

static const struct {
        const char *name;
        int expected;
} workspace_names[] = {
        { "proj", 0 },
        { "My_Project-2.0", 0 },
        { "a", 0 },
        { "-dash", 0 },
        { "x.", 0 },
        { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0 },
        { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", -EINVAL },
        { "", -EINVAL },
        { ".", -EINVAL },
        { "..", -EINVAL },
        { ".banger", -EINVAL },
        { "lost+found", -EINVAL },
        { "a/b", -EINVAL },
        { "a b", -EINVAL },
        { "a'b", -EINVAL },
        { "$(id)", -EINVAL },
        { "caf\xc3\xa9", -EINVAL },
        { "a\nb", -EINVAL },
};

START_TEST(vm_workspace_name_table)
{
        ck_assert_msg(vm_workspace_name_check(workspace_names[_i].name) ==
                              workspace_names[_i].expected,
                      "name '%s'", workspace_names[_i].name);
}
END_TEST

START_TEST(vm_workspace_digest_and_path)
{
        ck_assert_int_eq(vm_workspace_digest_check(DIGEST), 0);
        ck_assert_int_eq(vm_workspace_digest_check(NULL), -EINVAL);
        ck_assert_int_eq(vm_workspace_digest_check(""), -EINVAL);
        ck_assert_int_eq(vm_workspace_digest_check(DIGEST "0"), -EINVAL);
        ck_assert_int_eq(
                vm_workspace_digest_check(
                        "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"),
                -EINVAL);
        ck_assert_int_eq(
                vm_workspace_digest_check(
                        "g123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
                -EINVAL);

        ck_assert_int_eq(vm_workspace_path_check("/"), 0);
        ck_assert_int_eq(vm_workspace_path_check("/home/alice/my project"), 0);
        ck_assert_int_eq(vm_workspace_path_check(NULL), -EINVAL);
        ck_assert_int_eq(vm_workspace_path_check(""), -EINVAL);
        ck_assert_int_eq(vm_workspace_path_check("proj"), -EINVAL);
        ck_assert_int_eq(vm_workspace_path_check("/a\nb"), -EINVAL);
        ck_assert_int_eq(vm_workspace_path_check("/a\x1b[2Jb"), -EINVAL);
}
END_TEST

START_TEST(vm_workspace_path_too_long)
{
        char path[PATH_MAX + 1];

        memset(path, 'a', sizeof(path) - 1);
        path[0] = '/';
        path[PATH_MAX] = '\0';
        ck_assert_int_eq(vm_workspace_path_check(path), -EINVAL);
        path[PATH_MAX - 1] = '\0';
        ck_assert_int_eq(vm_workspace_path_check(path), 0);
}
END_TEST

START_TEST(vm_record_network_table)
{
        _cleanup_(vm_record_freep) VmRecord *out = NULL;

        ck_assert_msg(vm_record_from_json(network_records[_i].json, &out) ==
                              network_records[_i].expected,
                      "case '%s'", network_records[_i].name);
        if (network_records[_i].expected < 0)
                ck_assert_ptr_null(out);
}
END_TEST

START_TEST(vm_record_network_values)
{
        _cleanup_(vm_record_freep) VmRecord *out = NULL;

        ck_assert_int_eq(vm_record_from_json(network_records[0].json, &out), 0);
        ck_assert_uint_eq(out->slot, 3);
        ck_assert_str_eq(out->tap, "bngtap3");
        ck_assert_str_eq(out->address, "10.0.0.4");
        ck_assert_uint_eq(out->n_forwards, 1);
        ck_assert_str_eq(out->forwards[0].proto, "tcp");
        ck_assert_uint_eq(out->forwards[0].host_port, 2222);
        ck_assert_uint_eq(out->forwards[0].guest_port, 22);
}
END_TEST

START_TEST(vm_slot_pick_smallest_free)
{
        static const unsigned gap[] = { 3, 1, 2, 5 };
        static const unsigned ignored[] = { 0, 65534, 70000 };
        unsigned slot = 0;

        ck_assert_int_eq(vm_slot_pick(NULL, 0, &slot), 0);
        ck_assert_uint_eq(slot, 1);
        ck_assert_int_eq(vm_slot_pick(gap, ELEMENTSOF(gap), &slot), 0);
        ck_assert_uint_eq(slot, 4);
        ck_assert_int_eq(vm_slot_pick(ignored, ELEMENTSOF(ignored), &slot), 0);
        ck_assert_uint_eq(slot, 1);
}
END_TEST

START_TEST(vm_slot_pick_all_taken)
{
        _cleanup_free_ unsigned *used = calloc(65533, sizeof(unsigned));
        unsigned slot = 0;

        ck_assert_ptr_nonnull(used);
        for (unsigned i = 0; i < 65533; i++)
                used[i] = 65533 - i;
        ck_assert_int_eq(vm_slot_pick(used, 65533, &slot), -ENOSPC);
        ck_assert_uint_eq(slot, 0);

        used[100] = 0; /* frees slot 65433 */
        ck_assert_int_eq(vm_slot_pick(used, 65533, &slot), 0);
        ck_assert_uint_eq(slot, 65433);
}
END_TEST

START_TEST(vm_mac_from_id_stable)
{
        char a[VM_MAC_STRING_MAX], b[VM_MAC_STRING_MAX], c[VM_MAC_STRING_MAX];

        ck_assert_int_eq(vm_mac_from_id("0f8fad5b-d9cb-469f-a165-70867728950e", a), 0);
        ck_assert_int_eq(vm_mac_from_id("0f8fad5b-d9cb-469f-a165-70867728950e", b), 0);
        ck_assert_str_eq(a, b);
        /* 02, then for byte k (1 to 5) the UUID's bytes k-1, k+4, k+9 (and 15 for k = 1) XORed
         * together. */
        ck_assert_str_eq(a, "02:ba:4f:45:d2:29");

        /* Ids that differ in their last byte only get different addresses. */
        ck_assert_int_eq(vm_mac_from_id("0f8fad5b-d9cb-469f-a165-70867728950f", c), 0);
        ck_assert_str_ne(a, c);
        ck_assert_str_eq(c, "02:bb:4f:45:d2:29");
}
END_TEST

START_TEST(vm_mac_from_id_rejects_bad_id)
{
        char mac[VM_MAC_STRING_MAX] = "unchanged";

        ck_assert_int_eq(vm_mac_from_id(NULL, mac), -EINVAL);
        ck_assert_int_eq(vm_mac_from_id("", mac), -EINVAL);
        ck_assert_int_eq(vm_mac_from_id("x", mac), -EINVAL);
        ck_assert_int_eq(vm_mac_from_id("0f8fad5b-d9cb-469f-a165-70867728950", mac), -EINVAL);
        ck_assert_str_eq(mac, "unchanged");
}
END_TEST

START_TEST(vm_record_parse_table)
{
        _cleanup_(vm_record_freep) VmRecord *out = NULL;

        ck_assert_int_eq(vm_record_from_json(records[_i].json, &out), records[_i].expected);
        if (records[_i].expected < 0)
                ck_assert_ptr_null(out);
        else
                ck_assert_str_eq(out->name, "dev1");
}
END_TEST

START_TEST(vm_state_strings)
{
        for (VmState s = 0; s < _VM_STATE_MAX; s++)
                ck_assert_int_eq(vm_state_from_string(vm_state_to_string(s)), s);
        ck_assert_ptr_null(vm_state_to_string(_VM_STATE_MAX));
        ck_assert_int_eq(vm_state_from_string("RUNNING"), _VM_STATE_INVALID);
        ck_assert_int_eq(vm_state_from_string(NULL), _VM_STATE_INVALID);
}
END_TEST

static void write_record(const char *dir, const char *text)
{
        _cleanup_free_ char *p = NULL;

        ck_assert_int_ge(asprintf(&p, "%s/%s", dir, STORE_RECORD), 0);
        ck_assert_int_eq(write_file_atomic(p, text, strlen(text), 0644), 0);
}

START_TEST(store_publish_and_list)
{
        _cleanup_free_ char *tmp = NULL, *final = NULL;
        _cleanup_strv_free_ char **names = NULL;

        ck_assert_int_eq(store_list(tmpdir, STORE_IMAGES, &names), 0);
        ck_assert_uint_eq(strv_length(names), 0);
        names = strv_free(names);

        ck_assert_int_eq(store_make_temp_dir(tmpdir, STORE_IMAGES, &tmp), 0);
        ck_assert_ptr_nonnull(strstr(tmp, "/images/.tmp-"));
        write_record(tmp, "new");
        ck_assert_int_eq(store_object_dir(tmpdir, STORE_IMAGES, "docker.io/library/b:1", &final),
                         0);
        ck_assert_ptr_nonnull(strstr(final, "/images/docker.io%2Flibrary%2Fb:1"));

        /* A temporary directory is not listed. */
        ck_assert_int_eq(store_list(tmpdir, STORE_IMAGES, &names), 0);
        ck_assert_uint_eq(strv_length(names), 0);
        names = strv_free(names);

        ck_assert_int_eq(store_publish_dir(tmp, final), 0);
        ck_assert_int_eq(access(tmp, F_OK), -1);
        ck_assert_int_eq(store_list(tmpdir, STORE_IMAGES, &names), 0);
        ck_assert_uint_eq(strv_length(names), 1);
        ck_assert_str_eq(names[0], "docker.io/library/b:1");
}
END_TEST

START_TEST(store_publish_replaces_existing)
{
        _cleanup_free_ char *tmp1 = NULL, *tmp2 = NULL, *final = NULL, *record = NULL, *text = NULL;

        ck_assert_int_eq(store_object_dir(tmpdir, STORE_KERNELS, "k1", &final), 0);
        ck_assert_int_eq(store_make_temp_dir(tmpdir, STORE_KERNELS, &tmp1), 0);
        write_record(tmp1, "old");
        ck_assert_int_eq(store_publish_dir(tmp1, final), 0);

        ck_assert_int_eq(store_make_temp_dir(tmpdir, STORE_KERNELS, &tmp2), 0);
        write_record(tmp2, "new");
        ck_assert_int_eq(store_publish_dir(tmp2, final), 0);
        ck_assert_int_eq(access(tmp2, F_OK), -1);

        ck_assert_int_ge(asprintf(&record, "%s/%s", final, STORE_RECORD), 0);
        ck_assert_int_eq(read_full_file(record, 1024, &text, NULL), 0);
        ck_assert_str_eq(text, "new");
}
END_TEST

START_TEST(store_publish_with_record_writes_record)
{
        _cleanup_free_ char *tmp = NULL, *final = NULL, *record = NULL, *text = NULL;
        _cleanup_strv_free_ char **names = NULL;

        ck_assert_int_eq(store_object_dir(tmpdir, STORE_IMAGES, "c:1", &final), 0);
        ck_assert_int_eq(store_make_temp_dir(tmpdir, STORE_IMAGES, &tmp), 0);
        ck_assert_int_eq(store_publish_with_record(tmp, "{\"name\":\"c:1\"}", final), 0);
        ck_assert_int_eq(access(tmp, F_OK), -1);

        ck_assert_int_ge(asprintf(&record, "%s/%s", final, STORE_RECORD), 0);
        ck_assert_int_eq(read_full_file(record, 1024, &text, NULL), 0);
        ck_assert_str_eq(text, "{\"name\":\"c:1\"}");
        ck_assert_int_eq(store_list(tmpdir, STORE_IMAGES, &names), 0);
        ck_assert_uint_eq(strv_length(names), 1);
        ck_assert_str_eq(names[0], "c:1");
}
END_TEST

START_TEST(store_publish_with_record_missing_dir)
{
        _cleanup_free_ char *tmp = NULL, *final = NULL;

        ck_assert_int_ge(asprintf(&tmp, "%s/no-such-dir", tmpdir), 0);
        ck_assert_int_ge(asprintf(&final, "%s/final", tmpdir), 0);
        ck_assert_int_eq(store_publish_with_record(tmp, "{}", final), -ENOENT);
        ck_assert_int_eq(access(final, F_OK), -1);
}
END_TEST

START_TEST(store_list_skips_incomplete)
{
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;
        _cleanup_strv_free_ char **names = NULL;

        ck_assert_int_eq(store_object_dir(tmpdir, STORE_VMS, "zeta", &a), 0);
        ck_assert_int_eq(store_object_dir(tmpdir, STORE_VMS, "alpha", &b), 0);
        ck_assert_int_eq(store_object_dir(tmpdir, STORE_VMS, "norecord", &c), 0);
        ck_assert_int_eq(mkdir_p(a, 0755), 0);
        ck_assert_int_eq(mkdir_p(b, 0755), 0);
        ck_assert_int_eq(mkdir_p(c, 0755), 0);
        write_record(a, "{}");
        write_record(b, "{}");

        ck_assert_int_eq(store_list(tmpdir, STORE_VMS, &names), 0);
        ck_assert_uint_eq(strv_length(names), 2);
        ck_assert_str_eq(names[0], "alpha");
        ck_assert_str_eq(names[1], "zeta");
}
END_TEST

static void write_blob_file(const char *dir, const char *name)
{
        _cleanup_free_ char *path = NULL;

        ck_assert_int_ge(asprintf(&path, "%s/%s", dir, name), 0);
        ck_assert_int_eq(write_file_atomic(path, "partial", 7, 0644), 0);
}

static bool blob_file_exists(const char *dir, const char *name)
{
        _cleanup_free_ char *path = NULL;

        ck_assert_int_ge(asprintf(&path, "%s/%s", dir, name), 0);
        return access(path, F_OK) == 0;
}

START_TEST(store_removes_temporaries)
{
        _cleanup_free_ char *tmp = NULL, *keep = NULL;

        ck_assert_int_eq(store_make_temp_dir(tmpdir, STORE_VMS, &tmp), 0);
        write_record(tmp, "partial");
        ck_assert_int_eq(store_object_dir(tmpdir, STORE_VMS, "keep", &keep), 0);
        ck_assert_int_eq(mkdir_p(keep, 0755), 0);

        ck_assert_int_eq(store_remove_temporaries(tmpdir, STORE_VMS), 0);
        ck_assert_int_eq(access(tmp, F_OK), -1);
        ck_assert_int_eq(access(keep, F_OK), 0);
        ck_assert_int_eq(store_remove_temporaries(tmpdir, "missing"), 0);
}
END_TEST

START_TEST(store_removes_partial_blobs)
{
        static const char *const kept[] = {
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                ".keep",
                "#not-a-temporary",
        };
        static const char *const removed[] = {
                ".#e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.0badf00d",
                ".#x",
        };
        _cleanup_free_ char *dir = NULL;

        ck_assert_int_eq(store_remove_partial_blobs(tmpdir), 0); /* no cache yet */
        ck_assert_int_ge(asprintf(&dir, "%s/blobs/sha256", tmpdir), 0);
        ck_assert_int_eq(mkdir_p(dir, 0755), 0);
        for (size_t i = 0; i < ELEMENTSOF(kept); i++)
                write_blob_file(dir, kept[i]);
        for (size_t i = 0; i < ELEMENTSOF(removed); i++)
                write_blob_file(dir, removed[i]);

        ck_assert_int_eq(store_remove_partial_blobs(tmpdir), 0);
        for (size_t i = 0; i < ELEMENTSOF(kept); i++)
                ck_assert_msg(blob_file_exists(dir, kept[i]), "'%s' was removed", kept[i]);
        for (size_t i = 0; i < ELEMENTSOF(removed); i++)
                ck_assert_msg(!blob_file_exists(dir, removed[i]), "'%s' is still there",
                              removed[i]);
}
END_TEST

START_TEST(proc_start_time_of_self)
{
        uint64_t a = 0, b = 0, parent = 0;

        ck_assert_int_eq(proc_start_time(getpid(), &a), 0);
        ck_assert_int_eq(proc_start_time(getpid(), &b), 0);
        ck_assert_uint_eq(a, b);
        ck_assert_int_eq(proc_start_time(1, &parent), 0);
        ck_assert_uint_le(parent, a);
        ck_assert_int_eq(proc_start_time(0x3fffffff, &a), -ESRCH);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("store");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, vm_record_round_trip);
        tcase_add_test(tc, vm_record_optional_fields_absent);
        tcase_add_test(tc, vm_record_network_fields_absent);
        tcase_add_test(tc, vm_record_loads_old_format);
        tcase_add_loop_test(tc, vm_record_network_table, 0, ELEMENTSOF(network_records));
        tcase_add_test(tc, vm_record_network_values);
        tcase_add_test(tc, vm_record_access_fields_absent);
        tcase_add_loop_test(tc, vm_record_access_table, 0, ELEMENTSOF(access_records));
        tcase_add_loop_test(tc, vm_workspace_name_table, 0, ELEMENTSOF(workspace_names));
        tcase_add_test(tc, vm_workspace_digest_and_path);
        tcase_add_test(tc, vm_workspace_path_too_long);
        tcase_add_test(tc, vm_slot_pick_smallest_free);
        tcase_add_test(tc, vm_slot_pick_all_taken);
        tcase_add_test(tc, vm_mac_from_id_stable);
        tcase_add_test(tc, vm_mac_from_id_rejects_bad_id);
        tcase_add_loop_test(tc, vm_record_parse_table, 0, ELEMENTSOF(records));
        tcase_add_test(tc, vm_state_strings);
        tcase_add_test(tc, store_publish_and_list);
        tcase_add_test(tc, store_publish_replaces_existing);
        tcase_add_test(tc, store_publish_with_record_writes_record);
        tcase_add_test(tc, store_publish_with_record_missing_dir);
        tcase_add_test(tc, store_list_skips_incomplete);
        tcase_add_test(tc, store_removes_temporaries);
        tcase_add_test(tc, store_removes_partial_blobs);
        tcase_add_test(tc, proc_start_time_of_self);
        suite_add_tcase(s, tc);

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
