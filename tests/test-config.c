#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon-config.h"
#include "fileio.h"
#include "macro.h"
#include "strv.h"

#define SEC 1000000ULL

static char tmpdir[] = "/tmp/test-config-XXXXXX";

static void setup(void)
{
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
        ck_assert_int_eq(rm_rf(tmpdir), 0);
        strcpy(tmpdir, "/tmp/test-config-XXXXXX");
}

static char *write_in_tmpdir(const char *name, const char *text)
{
        char *path;

        ck_assert_int_ge(asprintf(&path, "%s/%s", tmpdir, name), 0);
        ck_assert_int_eq(write_file_atomic(path, text, strlen(text), 0644), 0);
        return path;
}

START_TEST(config_defaults)
{
        _cleanup_(daemon_config_freep) DaemonConfig *c = NULL;
        _cleanup_strv_free_ char **warnings = NULL;

        unsetenv("STATE_DIRECTORY");
        unsetenv("CACHE_DIRECTORY");
        unsetenv("RUNTIME_DIRECTORY");
        ck_assert_int_eq(daemon_config_load(NULL, NULL, &c, &warnings), 0);
        ck_assert_uint_eq(c->idle_timeout_usec, 60 * SEC);
        ck_assert_ptr_null(c->default_kernel);
        ck_assert_uint_eq(c->default_vcpus, 1);
        ck_assert_uint_eq(c->default_memory_mib, 256);
        ck_assert_uint_eq(c->default_work_disk_mib, 1024);
        ck_assert_int_eq(c->accelerator, QEMU_ACCEL_AUTO);
        ck_assert_str_eq(c->qemu_path, QEMU_SYSTEM_X86_64);
        ck_assert_uint_eq(c->boot_timeout_usec, 300 * SEC);
        ck_assert_int_eq(c->backend, VM_BACKEND_AUTO);
        ck_assert_str_eq(c->firecracker_path, "/usr/bin/firecracker");
        ck_assert_ptr_null(c->insecure_registries);
        ck_assert_str_eq(c->credentials_file, BANGER_SYSCONFDIR "/registry-auth.json");
        ck_assert_ptr_null(c->ca_file);
        ck_assert_ptr_null(c->mirrors);
        ck_assert_str_eq(c->os, "linux");
        ck_assert_str_eq(c->architecture, "amd64");
        ck_assert_str_eq(c->state_dir, BANGER_STATEDIR);
        ck_assert_str_eq(c->cache_dir, BANGER_CACHEDIR);
        ck_assert_str_eq(c->runtime_dir, BANGER_RUNTIMEDIR);
        ck_assert_uint_eq(c->helper_idle_timeout_usec, 30 * SEC);
        ck_assert(!c->subnet_set);
        ck_assert_uint_eq(strv_length(warnings), 0);
}
END_TEST

START_TEST(config_directories_from_env)
{
        _cleanup_(daemon_config_freep) DaemonConfig *c = NULL;

        setenv("STATE_DIRECTORY", "/var/lib/banger:/var/lib/other", 1);
        setenv("CACHE_DIRECTORY", "/srv/cache", 1);
        setenv("RUNTIME_DIRECTORY", "relative/ignored", 1);
        ck_assert_int_eq(daemon_config_load(NULL, NULL, &c, NULL), 0);
        ck_assert_str_eq(c->state_dir, "/var/lib/banger");
        ck_assert_str_eq(c->cache_dir, "/srv/cache");
        ck_assert_str_eq(c->runtime_dir, BANGER_RUNTIMEDIR);
        unsetenv("STATE_DIRECTORY");
        unsetenv("CACHE_DIRECTORY");
        unsetenv("RUNTIME_DIRECTORY");
}
END_TEST

START_TEST(config_missing_file_is_defaults)
{
        _cleanup_(daemon_config_freep) DaemonConfig *c = NULL;
        _cleanup_free_ char *missing = NULL, *dir = NULL;

        ck_assert_int_ge(asprintf(&missing, "%s/none.conf", tmpdir), 0);
        ck_assert_int_ge(asprintf(&dir, "%s/none.conf.d", tmpdir), 0);
        ck_assert_int_eq(daemon_config_load(missing, dir, &c, NULL), 0);
        ck_assert_uint_eq(c->default_vcpus, 1);
}
END_TEST

/* One file per row: the fields it must set and the warnings it must produce. */
static const struct {
        const char *text;
        uint64_t idle_timeout_usec;
        const char *default_kernel;
        unsigned vcpus;
        unsigned memory_mib;
        QemuAccel accel;
        uint64_t boot_timeout_usec;
        const char *registries; /* joined with '|', NULL when unset */
        const char *platform;
        unsigned n_warnings;
        const char *warning_part; /* must appear in the first warning */
} files[] = {
        { "", 60 * SEC, NULL, 1, 256, QEMU_ACCEL_AUTO, 300 * SEC, NULL, "linux/amd64", 0, NULL },
        { "[Daemon]\nIdleTimeoutSec=5\n", 5 * SEC, NULL, 1, 256, QEMU_ACCEL_AUTO, 300 * SEC, NULL,
          "linux/amd64", 0, NULL },
        { "[Daemon]\nIdleTimeoutSec=0\n", 0, NULL, 1, 256, QEMU_ACCEL_AUTO, 300 * SEC, NULL,
          "linux/amd64", 0, NULL },
        { "# comment\n; other\n[VM]\nDefaultKernel = 6.1\nDefaultVCPUs=4\nDefaultMemoryMiB=1024\n"
          "Accelerator=tcg\nBootTimeoutSec=30\n",
          60 * SEC, "6.1", 4, 1024, QEMU_ACCEL_TCG, 30 * SEC, NULL, "linux/amd64", 0, NULL },
        { "[VM]\nAccelerator=kvm\n", 60 * SEC, NULL, 1, 256, QEMU_ACCEL_KVM, 300 * SEC, NULL,
          "linux/amd64", 0, NULL },
        { "[Registry]\nInsecureRegistries=127.0.0.1:5000  localhost:5001\t[::1]:5002\n"
          "Platform=linux/arm64\n",
          60 * SEC, NULL, 1, 256, QEMU_ACCEL_AUTO, 300 * SEC,
          "127.0.0.1:5000|localhost:5001|[::1]:5002", "linux/arm64", 0, NULL },
        { "[Registry]\nInsecureRegistries=\n", 60 * SEC, NULL, 1, 256, QEMU_ACCEL_AUTO, 300 * SEC,
          "", "linux/amd64", 0, NULL },
        { "[VM]\nDefaultVCPU=2\n", 60 * SEC, NULL, 1, 256, QEMU_ACCEL_AUTO, 300 * SEC, NULL,
          "linux/amd64", 1, "f.conf:2: Unknown key 'DefaultVCPU' in section [VM]" },
        { "\n\n[Nope]\nX=1\n", 60 * SEC, NULL, 1, 256, QEMU_ACCEL_AUTO, 300 * SEC, NULL,
          "linux/amd64", 1, "f.conf:4: Unknown key 'X' in section [Nope]" },
        { "[VM]\nDefaultVCPUs=0\nDefaultMemoryMiB=-5\nAccelerator=hvf\nQemuPath=qemu\n", 60 * SEC,
          NULL, 1, 256, QEMU_ACCEL_AUTO, 300 * SEC, NULL, "linux/amd64", 4,
          "f.conf:2: Invalid value '0' for DefaultVCPUs" },
        { "[VM]\nDefaultVCPUs=99999999999999999999999\n", 60 * SEC, NULL, 1, 256, QEMU_ACCEL_AUTO,
          300 * SEC, NULL, "linux/amd64", 1, "Invalid value" },
        { "[Daemon]\nIdleTimeoutSec=5s\n", 60 * SEC, NULL, 1, 256, QEMU_ACCEL_AUTO, 300 * SEC, NULL,
          "linux/amd64", 1, "f.conf:2: Invalid value '5s'" },
        { "[Registry]\nPlatform=amd64\n", 60 * SEC, NULL, 1, 256, QEMU_ACCEL_AUTO, 300 * SEC, NULL,
          "linux/amd64", 1, "Invalid value 'amd64' for Platform" },
        { "IdleTimeoutSec=5\n", 60 * SEC, NULL, 1, 256, QEMU_ACCEL_AUTO, 300 * SEC, NULL,
          "linux/amd64", 1, "f.conf:1: Unknown key 'IdleTimeoutSec' in section []" },
        { "[VM]\nno equals sign\nDefaultVCPUs=3\n", 60 * SEC, NULL, 3, 256, QEMU_ACCEL_AUTO,
          300 * SEC, NULL, "linux/amd64", 1, "f.conf:2: Syntax error" },
};

START_TEST(config_file_table)
{
        _cleanup_(daemon_config_freep) DaemonConfig *c = NULL;
        _cleanup_strv_free_ char **warnings = NULL;
        _cleanup_free_ char *path = write_in_tmpdir("f.conf", files[_i].text);
        char platform[64];

        ck_assert_int_eq(daemon_config_load(path, NULL, &c, &warnings), 0);
        ck_assert_uint_eq(c->idle_timeout_usec, files[_i].idle_timeout_usec);
        if (files[_i].default_kernel)
                ck_assert_str_eq(c->default_kernel, files[_i].default_kernel);
        else
                ck_assert_ptr_null(c->default_kernel);
        ck_assert_uint_eq(c->default_vcpus, files[_i].vcpus);
        ck_assert_uint_eq(c->default_memory_mib, files[_i].memory_mib);
        ck_assert_int_eq(c->accelerator, files[_i].accel);
        ck_assert_str_eq(c->qemu_path, QEMU_SYSTEM_X86_64);
        ck_assert_uint_eq(c->boot_timeout_usec, files[_i].boot_timeout_usec);

        if (files[_i].registries) {
                char joined[256] = "";

                ck_assert_ptr_nonnull(c->insecure_registries);
                for (char **p = c->insecure_registries; *p; p++) {
                        if (p != c->insecure_registries)
                                strcat(joined, "|");
                        strcat(joined, *p);
                }
                ck_assert_str_eq(joined, files[_i].registries);
        } else
                ck_assert_ptr_null(c->insecure_registries);

        snprintf(platform, sizeof(platform), "%s/%s", c->os, c->architecture);
        ck_assert_str_eq(platform, files[_i].platform);

        ck_assert_uint_eq(strv_length(warnings), files[_i].n_warnings);
        if (files[_i].warning_part)
                ck_assert_msg(strstr(warnings[0], files[_i].warning_part),
                              "warning '%s' lacks '%s'", warnings[0], files[_i].warning_part);
}
END_TEST

/* [Kernel] CatalogURL values, the URL each leaves set (NULL for none) and the warnings. */
static const struct {
        const char *text;
        const char *url;
        unsigned n_warnings;
} catalog_files[] = {
        { "", NULL, 0 },
        { "[Kernel]\nCatalogURL=http://127.0.0.1:8080/index.json\n",
          "http://127.0.0.1:8080/index.json", 0 },
        { "[Kernel]\nCatalogURL=https://kernels.example/banger/\n",
          "https://kernels.example/banger/", 0 },
        { "[Kernel]\nCatalogURL=https://a/i.json\nCatalogURL=\n", NULL, 0 },
        { "[Kernel]\nCatalogURL=ftp://a/i.json\n", NULL, 1 },
        { "[Kernel]\nCatalogURL=file:///etc/index.json\n", NULL, 1 },
        { "[Kernel]\nCatalogURL=index.json\n", NULL, 1 },
        { "[Kernel]\nCatalogURL=https://a/i.json\nCatalogURL=nope\n", "https://a/i.json", 1 },
        { "[VM]\nCatalogURL=https://a/i.json\n", NULL, 1 },
};

START_TEST(config_catalog_url_table)
{
        _cleanup_(daemon_config_freep) DaemonConfig *c = NULL;
        _cleanup_strv_free_ char **warnings = NULL;
        _cleanup_free_ char *path = write_in_tmpdir("f.conf", catalog_files[_i].text);

        ck_assert_int_eq(daemon_config_load(path, NULL, &c, &warnings), 0);
        if (catalog_files[_i].url)
                ck_assert_str_eq(c->catalog_url, catalog_files[_i].url);
        else
                ck_assert_ptr_null(c->catalog_url);
        ck_assert_uint_eq(strv_length(warnings), catalog_files[_i].n_warnings);
}
END_TEST

/* [Registry] CredentialsFile, CAFile and Mirrors values, what each leaves set and the
 * warnings. The default credentials file is written "default", and NULL stands for unset. */
static const struct {
        const char *text;
        const char *credentials_file;
        const char *ca_file;
        const char *mirrors; /* joined with '|' */
        unsigned n_warnings;
        const char *warning_part; /* must appear in the first warning */
} registry_files[] = {
        { "", "default", NULL, NULL, 0, NULL },
        { "[Registry]\nCredentialsFile=/etc/banger/auth.json\nCAFile=/etc/ssl/ca.pem\n",
          "/etc/banger/auth.json", "/etc/ssl/ca.pem", NULL, 0, NULL },
        { "[Registry]\nCredentialsFile=\nCAFile=/a.pem\nCAFile=\n", NULL, NULL, NULL, 0, NULL },
        { "[Registry]\nCredentialsFile=auth.json\n", "default", NULL, NULL, 1,
          "Invalid value 'auth.json' for CredentialsFile" },
        { "[Registry]\nCAFile=ca.pem\n", "default", NULL, NULL, 1,
          "Invalid value 'ca.pem' for CAFile" },
        { "[Registry]\nMirrors=docker.io=http://127.0.0.1:5001  "
          "docker.io=https://mirror.example/\t127.0.0.1:5000=http://[::1]:5002\n",
          "default", NULL,
          "docker.io=http://127.0.0.1:5001|docker.io=https://mirror.example/|"
          "127.0.0.1:5000=http://[::1]:5002",
          0, NULL },
        { "[Registry]\nMirrors=\n", "default", NULL, "", 0, NULL },
        /* One invalid entry rejects the whole value, and the earlier one stays. */
        { "[Registry]\nMirrors=docker.io=http://m1\nMirrors=docker.io=http://m2 docker.io=m3\n",
          "default", NULL, "docker.io=http://m1", 1,
          "f.conf:3: Invalid value 'docker.io=http://m2 docker.io=m3' for Mirrors" },
        { "[Registry]\nMirrors=http://m1\n", "default", NULL, NULL, 1, "for Mirrors" },
};

START_TEST(config_registry_table)
{
        _cleanup_(daemon_config_freep) DaemonConfig *c = NULL;
        _cleanup_strv_free_ char **warnings = NULL;
        _cleanup_free_ char *path = write_in_tmpdir("f.conf", registry_files[_i].text);
        const char *credentials_file = registry_files[_i].credentials_file;

        ck_assert_int_eq(daemon_config_load(path, NULL, &c, &warnings), 0);
        if (credentials_file && streq(credentials_file, "default"))
                credentials_file = BANGER_SYSCONFDIR "/registry-auth.json";
        if (credentials_file)
                ck_assert_str_eq(c->credentials_file, credentials_file);
        else
                ck_assert_ptr_null(c->credentials_file);
        if (registry_files[_i].ca_file)
                ck_assert_str_eq(c->ca_file, registry_files[_i].ca_file);
        else
                ck_assert_ptr_null(c->ca_file);

        if (registry_files[_i].mirrors) {
                char joined[256] = "";

                ck_assert_ptr_nonnull(c->mirrors);
                for (char **p = c->mirrors; *p; p++) {
                        if (p != c->mirrors)
                                strcat(joined, "|");
                        strcat(joined, *p);
                }
                ck_assert_str_eq(joined, registry_files[_i].mirrors);
        } else
                ck_assert_ptr_null(c->mirrors);

        ck_assert_uint_eq(strv_length(warnings), registry_files[_i].n_warnings);
        if (registry_files[_i].warning_part)
                ck_assert_msg(strstr(warnings[0], registry_files[_i].warning_part),
                              "warning '%s' lacks '%s'", warnings[0],
                              registry_files[_i].warning_part);
}
END_TEST

/* [Network] Subnet and [Helper] IdleTimeoutSec: the subnet left set ("" for none), the helper's
 * idle timeout, and text the only warning must contain (NULL for no warning). */
static const struct {
        const char *text;
        const char *subnet;
        uint64_t helper_idle_timeout_usec;
        const char *warning_part;
} network_files[] = {
        { "", "", 30 * SEC, NULL },
        { "[Network]\nSubnet=10.123.0.0/24\n", "10.123.0.0/24", 30 * SEC, NULL },
        { "[Network]\nSubnet=172.20.0.0/16\n", "172.20.0.0/16", 30 * SEC, NULL },
        { "[Network]\nSubnet=10.1.2.4/30\n", "10.1.2.4/30", 30 * SEC, NULL },
        { "[Network]\nSubnet=10.123.0.0/24\nSubnet=\n", "", 30 * SEC, NULL },
        { "[Network]\nSubnet=10.123.0.1/24\n", "", 30 * SEC,
          "f.conf:2: Invalid value '10.123.0.1/24' for Subnet in section [Network]: expected a "
          "network address with a prefix from /16 to /30 and the host bits zero" },
        { "[Network]\nSubnet=10.0.0.0/8\n", "", 30 * SEC, "'10.0.0.0/8' for Subnet" },
        { "[Network]\nSubnet=10.123.0.0/31\n", "", 30 * SEC, "'10.123.0.0/31' for Subnet" },
        { "[Network]\nSubnet=10.123.0.0\n", "", 30 * SEC, "'10.123.0.0' for Subnet" },
        { "[Network]\nSubnet=10.123.0.0/024\n", "", 30 * SEC, "'10.123.0.0/024' for Subnet" },
        { "[Network]\nSubnet=10.123.0.0/24\nSubnet=banana\n", "10.123.0.0/24", 30 * SEC,
          "f.conf:3: Invalid value 'banana'" },
        { "[Helper]\nIdleTimeoutSec=0\n", "", 0, NULL },
        { "[Helper]\nIdleTimeoutSec=120\n", "", 120 * SEC, NULL },
        { "[Helper]\nIdleTimeoutSec=-1\n", "", 30 * SEC,
          "Invalid value '-1' for IdleTimeoutSec in section [Helper], ignoring" },
        { "[Daemon]\nIdleTimeoutSec=7\n", "", 30 * SEC, NULL },
        { "[Helper]\nSubnet=10.123.0.0/24\n", "", 30 * SEC,
          "Unknown key 'Subnet' in section [Helper]" },
};

START_TEST(config_network_table)
{
        _cleanup_(daemon_config_freep) DaemonConfig *c = NULL;
        _cleanup_strv_free_ char **warnings = NULL;
        _cleanup_free_ char *path = write_in_tmpdir("f.conf", network_files[_i].text);
        char subnet[IPV4_FORMAT_MAX] = "";

        ck_assert_int_eq(daemon_config_load(path, NULL, &c, &warnings), 0);
        if (c->subnet_set)
                ipv4_format(c->subnet.addr, c->subnet.prefix, true, subnet);
        ck_assert_str_eq(subnet, network_files[_i].subnet);
        ck_assert_uint_eq(c->helper_idle_timeout_usec, network_files[_i].helper_idle_timeout_usec);

        if (!network_files[_i].warning_part) {
                ck_assert_uint_eq(strv_length(warnings), 0);
                return;
        }
        ck_assert_uint_eq(strv_length(warnings), 1);
        ck_assert_msg(strstr(warnings[0], network_files[_i].warning_part),
                      "warning '%s' lacks '%s'", warnings[0], network_files[_i].warning_part);
}
END_TEST

/* Resolution of [VM] Backend for each key value and each state of the FirecrackerPath file.
 * Firecracker itself cannot run on the test machines, so booting through it is covered only by
 * the Firecracker client's contract test (test-firecracker-contract). */
typedef enum BinaryState {
        BINARY_ABSENT,
        BINARY_EXECUTABLE,
        BINARY_NOT_EXECUTABLE,
        BINARY_DIRECTORY,
} BinaryState;

static const struct {
        const char *backend_line; /* NULL: the key is unset */
        BinaryState binary;
        VmBackend configured;
        VmBackend chosen;
        unsigned n_warnings;
} backend_cases[] = {
        { NULL, BINARY_ABSENT, VM_BACKEND_AUTO, VM_BACKEND_QEMU, 0 },
        { NULL, BINARY_EXECUTABLE, VM_BACKEND_AUTO, VM_BACKEND_FIRECRACKER, 0 },
        { NULL, BINARY_NOT_EXECUTABLE, VM_BACKEND_AUTO, VM_BACKEND_QEMU, 0 },
        { NULL, BINARY_DIRECTORY, VM_BACKEND_AUTO, VM_BACKEND_QEMU, 0 },
        { "Backend=auto", BINARY_ABSENT, VM_BACKEND_AUTO, VM_BACKEND_QEMU, 0 },
        { "Backend=auto", BINARY_EXECUTABLE, VM_BACKEND_AUTO, VM_BACKEND_FIRECRACKER, 0 },
        { "Backend=qemu", BINARY_ABSENT, VM_BACKEND_QEMU, VM_BACKEND_QEMU, 0 },
        { "Backend=qemu", BINARY_EXECUTABLE, VM_BACKEND_QEMU, VM_BACKEND_QEMU, 0 },
        { "Backend=firecracker", BINARY_ABSENT, VM_BACKEND_FIRECRACKER, VM_BACKEND_FIRECRACKER, 0 },
        { "Backend=firecracker", BINARY_EXECUTABLE, VM_BACKEND_FIRECRACKER, VM_BACKEND_FIRECRACKER,
          0 },
        { "Backend=Firecracker", BINARY_EXECUTABLE, VM_BACKEND_AUTO, VM_BACKEND_FIRECRACKER, 1 },
        { "Backend=kvm", BINARY_ABSENT, VM_BACKEND_AUTO, VM_BACKEND_QEMU, 1 },
        { "Backend=", BINARY_ABSENT, VM_BACKEND_AUTO, VM_BACKEND_QEMU, 1 },
};

START_TEST(config_backend_choice_table)
{
        _cleanup_(daemon_config_freep) DaemonConfig *c = NULL;
        _cleanup_strv_free_ char **warnings = NULL;
        _cleanup_free_ char *binary = NULL, *text = NULL, *path = NULL;

        ck_assert_int_ge(asprintf(&binary, "%s/firecracker", tmpdir), 0);
        switch (backend_cases[_i].binary) {
        case BINARY_ABSENT:
                break;
        case BINARY_EXECUTABLE:
        case BINARY_NOT_EXECUTABLE:
                ck_assert_int_eq(write_file_atomic(binary, "#!/bin/sh\n", 10,
                                                   backend_cases[_i].binary == BINARY_EXECUTABLE
                                                           ? 0755
                                                           : 0644),
                                 0);
                break;
        case BINARY_DIRECTORY:
                ck_assert_int_eq(mkdir(binary, 0755), 0);
                break;
        }

        ck_assert_int_ge(asprintf(&text, "[VM]\nFirecrackerPath=%s\n%s\n", binary,
                                  strempty(backend_cases[_i].backend_line)),
                         0);
        path = write_in_tmpdir("f.conf", text);
        ck_assert_int_eq(daemon_config_load(path, NULL, &c, &warnings), 0);
        ck_assert_str_eq(c->firecracker_path, binary);
        ck_assert_int_eq(c->backend, backend_cases[_i].configured);
        ck_assert_uint_eq(strv_length(warnings), backend_cases[_i].n_warnings);
        ck_assert_int_eq(daemon_config_choose_backend(c), backend_cases[_i].chosen);
}
END_TEST

START_TEST(config_backend_names)
{
        ck_assert_str_eq(vm_backend_to_string(VM_BACKEND_AUTO), "auto");
        ck_assert_str_eq(vm_backend_to_string(VM_BACKEND_QEMU), "qemu");
        ck_assert_str_eq(vm_backend_to_string(VM_BACKEND_FIRECRACKER), "firecracker");
        ck_assert_ptr_null(vm_backend_to_string(_VM_BACKEND_MAX));
        ck_assert_int_eq(vm_backend_from_string("qemu"), VM_BACKEND_QEMU);
        ck_assert_int_eq(vm_backend_from_string("firecracker"), VM_BACKEND_FIRECRACKER);
        ck_assert_int_eq(vm_backend_from_string("QEMU"), _VM_BACKEND_INVALID);
        ck_assert_int_eq(vm_backend_from_string(""), _VM_BACKEND_INVALID);
        ck_assert_int_eq(vm_backend_from_string(NULL), _VM_BACKEND_INVALID);
}
END_TEST

START_TEST(config_firecracker_path_relative)
{
        _cleanup_(daemon_config_freep) DaemonConfig *c = NULL;
        _cleanup_strv_free_ char **warnings = NULL;
        _cleanup_free_ char *path = write_in_tmpdir("f.conf", "[VM]\nFirecrackerPath=fc\n");

        ck_assert_int_eq(daemon_config_load(path, NULL, &c, &warnings), 0);
        ck_assert_str_eq(c->firecracker_path, "/usr/bin/firecracker");
        ck_assert_uint_eq(strv_length(warnings), 1);
        ck_assert_ptr_nonnull(strstr(warnings[0], "Invalid value 'fc' for FirecrackerPath"));
}
END_TEST

/* Values of [VM] DefaultWorkDiskMiB and the size they must give, 1024 for a rejected one. */
static const struct {
        const char *value;
        unsigned work_disk_mib;
        bool warns;
} work_disk_values[] = {
        { "16", 16, false },
        { "4096", 4096, false },
        { "1048576", 1048576, false },
        { "15", 1024, true },
        { "0", 1024, true },
        { "1048577", 1024, true },
        { "-1", 1024, true },
        { "1G", 1024, true },
        { "", 1024, true },
        { "99999999999999999999999", 1024, true },
};

START_TEST(config_work_disk_table)
{
        _cleanup_(daemon_config_freep) DaemonConfig *c = NULL;
        _cleanup_strv_free_ char **warnings = NULL;
        _cleanup_free_ char *text = NULL, *path = NULL;

        ck_assert_int_ge(
                asprintf(&text, "[VM]\nDefaultWorkDiskMiB=%s\n", work_disk_values[_i].value), 0);
        path = write_in_tmpdir("f.conf", text);
        ck_assert_int_eq(daemon_config_load(path, NULL, &c, &warnings), 0);
        ck_assert_uint_eq(c->default_work_disk_mib, work_disk_values[_i].work_disk_mib);
        ck_assert_uint_eq(strv_length(warnings), work_disk_values[_i].warns ? 1 : 0);
        if (work_disk_values[_i].warns)
                ck_assert_ptr_nonnull(strstr(warnings[0], "for DefaultWorkDiskMiB"));
}
END_TEST

START_TEST(config_dropins_override_in_order)
{
        _cleanup_(daemon_config_freep) DaemonConfig *c = NULL;
        _cleanup_strv_free_ char **warnings = NULL;
        _cleanup_free_ char *main_conf = NULL, *dir = NULL, *a = NULL, *b = NULL, *skip = NULL,
                            *hidden = NULL;

        main_conf = write_in_tmpdir("bangerd.conf", "[VM]\nDefaultVCPUs=2\nDefaultMemoryMiB=512\n"
                                                    "DefaultKernel=main\n");
        ck_assert_int_ge(asprintf(&dir, "%s/bangerd.conf.d", tmpdir), 0);
        ck_assert_int_eq(mkdir(dir, 0755), 0);
        b = write_in_tmpdir("bangerd.conf.d/20-b.conf", "[VM]\nDefaultVCPUs=8\n");
        a = write_in_tmpdir("bangerd.conf.d/10-a.conf", "[VM]\nDefaultVCPUs=4\nBogus=1\n");
        skip = write_in_tmpdir("bangerd.conf.d/30-c.conf.disabled", "[VM]\nDefaultVCPUs=16\n");
        hidden = write_in_tmpdir("bangerd.conf.d/.40-d.conf", "[VM]\nDefaultVCPUs=32\n");

        ck_assert_int_eq(daemon_config_load(main_conf, dir, &c, &warnings), 0);
        ck_assert_uint_eq(c->default_vcpus, 8);
        ck_assert_uint_eq(c->default_memory_mib, 512);
        ck_assert_str_eq(c->default_kernel, "main");
        ck_assert_uint_eq(strv_length(warnings), 1);
        ck_assert_ptr_nonnull(strstr(warnings[0], "10-a.conf:3: Unknown key 'Bogus'"));
}
END_TEST

START_TEST(config_unreadable_path_fails)
{
        _cleanup_(daemon_config_freep) DaemonConfig *c = NULL;

        /* A directory where the file should be cannot be read as a file. */
        ck_assert_int_lt(daemon_config_load(tmpdir, NULL, &c, NULL), 0);
        ck_assert_ptr_null(c);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("config");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, config_defaults);
        tcase_add_test(tc, config_directories_from_env);
        tcase_add_test(tc, config_missing_file_is_defaults);
        tcase_add_loop_test(tc, config_file_table, 0, ELEMENTSOF(files));
        tcase_add_loop_test(tc, config_catalog_url_table, 0, ELEMENTSOF(catalog_files));
        tcase_add_loop_test(tc, config_registry_table, 0, ELEMENTSOF(registry_files));
        tcase_add_loop_test(tc, config_network_table, 0, ELEMENTSOF(network_files));
        tcase_add_loop_test(tc, config_backend_choice_table, 0, ELEMENTSOF(backend_cases));
        tcase_add_test(tc, config_backend_names);
        tcase_add_test(tc, config_firecracker_path_relative);
        tcase_add_loop_test(tc, config_work_disk_table, 0, ELEMENTSOF(work_disk_values));
        tcase_add_test(tc, config_dropins_override_in_order);
        tcase_add_test(tc, config_unreadable_path_fails);
        suite_add_tcase(s, tc);

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
