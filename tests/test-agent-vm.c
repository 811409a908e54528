/* Boots a real guest under QEMU (microvm, TCG) with banger-init and banger-agent from this build
 * and drives the agent through agent-client. The network cases, which need root, give the guest
 * a tap on a bridge in a network namespace of their own.
 *
 * Needs BANGER_TEST_KERNEL_DIR: an unpacked Debian cloud kernel package (boot/vmlinuz-* and
 * lib/modules/RELEASE), e.g. from `apt-get download linux-image-6.1.0-NN-cloud-amd64` and
 * `dpkg -x`. Without it every test is skipped. Also needs cpio, mke2fs and busybox-static. */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent-client.h"
#include "agent-proto.h"
#include "agent-test-util.h"
#include "config.h"
#include "fileio.h"
#include "guest-config.h"
#include "macro.h"

#define SEC          1000000ull
#define EXEC_TIMEOUT (120 * SEC)

static char workdir[] = "/tmp/banger-test-agent-vm.XXXXXX";
static char socket_path[256];
static char qmp_path[256];
static pid_t qemu_pid;
static const char *skip_reason;
/* Parameters the next VM gets on its kernel command line, and whether it gets a tap. */
static const char *vm_cmdline_network = "";
static bool vm_with_tap;
static int host_netns_fd = -EBADF;

#define TEST_BRIDGE "bngtestbr0"
#define TEST_TAP    "bngtesttap0"
#define NET_CMDLINE " banger.address=10.77.0.2/24 banger.gateway=10.77.0.1 banger.dns=10.77.0.1"

static void agent_exec_result_freep(AgentExecResult **r)
{
        agent_exec_result_free(*r);
}
#define _cleanup_result_ _cleanup_(agent_exec_result_freep)

static int run_shell(const char *command)
{
        int status = system(command);

        if (status < 0 || !WIFEXITED(status))
                return -EIO;
        return WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

/* Builds initramfs.img (banger-init as /init, banger-agent, the virtio modules and a vm.conf)
 * and root.ext4 (busybox) in workdir. */
static int build_images(const char *kernel_dir, const char *build_dir)
{
        static const char script[] =
                "set -eu\n"
                "cd \"$W\"\n"
                "REL=$(ls \"$K/lib/modules\" | head -n1)\n"
                "mkdir -p initrd/etc/banger initrd/dev initrd/lib/modules/$REL\n"
                "cp \"$B/src/guest/banger-init\" initrd/init\n"
                "cp \"$B/src/guest/banger-agent\" initrd/banger-agent\n"
                "for m in virtio_ring virtio virtio_mmio virtio_blk failover net_failover "
                "virtio_net virtio_console button evdev; do\n"
                "  p=$(find \"$K/lib/modules/$REL\" -name \"$m.ko\" | head -n1)\n"
                "  cp \"$p\" initrd/lib/modules/$REL/\n"
                "  echo \"/lib/modules/$REL/$m.ko\" >> initrd/etc/banger/modules\n"
                "done\n"
                "printf 'hostname=agentvm\\nenv=GREETING=hi there\\nworkdir=/tmp\\n"
                "arg=/bin/sh\\narg=-c\\narg=echo image command ran\\n' > "
                "initrd/etc/banger/vm.conf\n"
                "(cd initrd && find . | cpio -o -H newc --quiet) > initramfs.img\n"
                /* No /tmp: banger-init mounts a tmpfs there. */
                "mkdir -p rootfs/bin rootfs/etc rootfs/proc rootfs/sys rootfs/dev rootfs/run\n"
                "cp /bin/busybox rootfs/bin/\n"
                "for c in sh cat echo head sleep kill yes dd pwd hostname grep ip ping test tee "
                "sha256sum cut tty stty nc httpd; do\n"
                "  ln -s busybox rootfs/bin/$c\n"
                "done\n"
                /* A link to a stub resolver's file, as systemd images ship. */
                "ln -s ../run/systemd/resolve/stub-resolv.conf rootfs/etc/resolv.conf\n"
                "mke2fs -q -t ext4 -d rootfs root.ext4 64M\n"
                "ls \"$K\"/boot/vmlinuz-* | head -n1 > kernel-path\n";
        _cleanup_free_ char *command = NULL;

        if (asprintf(&command, "W='%s' K='%s' B='%s' sh -c '%s' >'%s/build.log' 2>&1", workdir,
                     kernel_dir, build_dir, "eval \"$S\"", workdir) < 0)
                return -ENOMEM;
        if (setenv("S", script, 1) < 0)
                return -errno;
        return run_shell(command);
}

static unsigned host_khz(void)
{
        _cleanup_fclose_ FILE *f = fopen("/proc/cpuinfo", "re");
        char line[256];
        double mhz;

        while (f && fgets(line, sizeof(line), f))
                if (sscanf(line, "cpu MHz : %lf", &mhz) == 1)
                        return (unsigned)(mhz * 1000);
        return 0;
}

static int start_qemu(void)
{
        _cleanup_free_ char *kernel = NULL, *kernel_path_file = NULL, *append = NULL,
                            *initrd = NULL, *drive = NULL, *serial = NULL, *chardev = NULL,
                            *qmp = NULL;
        size_t size;
        int r;

        if (asprintf(&kernel_path_file, "%s/kernel-path", workdir) < 0)
                return -ENOMEM;
        r = read_full_file(kernel_path_file, 4096, &kernel, &size);
        if (r < 0)
                return r;
        kernel[strcspn(kernel, "\n")] = '\0';

        snprintf(socket_path, sizeof(socket_path), "%s/agent.sock", workdir);
        snprintf(qmp_path, sizeof(qmp_path), "%s/qmp.sock", workdir);
        if (asprintf(&append, "console=ttyS0 reboot=t panic=-1 tsc_early_khz=%u%s", host_khz(),
                     vm_cmdline_network) < 0 ||
            asprintf(&initrd, "%s/initramfs.img", workdir) < 0 ||
            asprintf(&drive, "id=root,file=%s/root.ext4,format=raw,if=none", workdir) < 0 ||
            asprintf(&serial, "file:%s/console.log", workdir) < 0 ||
            asprintf(&chardev, "socket,id=agent,path=%s,server=on,wait=off", socket_path) < 0 ||
            asprintf(&qmp, "unix:%s,server=on,wait=off", qmp_path) < 0)
                return -ENOMEM;

        char *argv[] = {
                (char *)QEMU_SYSTEM_X86_64,
                "-M",
                "microvm",
                "-accel",
                "tcg",
                "-nodefaults",
                "-no-user-config",
                "-no-reboot",
                "-display",
                "none",
                "-m",
                "256",
                "-kernel",
                kernel,
                "-initrd",
                initrd,
                "-append",
                append,
                "-serial",
                serial,
                "-drive",
                drive,
                "-device",
                "virtio-blk-device,drive=root",
                "-device",
                "virtio-serial-device",
                "-chardev",
                chardev,
                "-device",
                "virtserialport,chardev=agent,name=" GUEST_AGENT_PORT_NAME,
                "-qmp",
                qmp,
                NULL, /* room for the network device */
                NULL,
                NULL,
                NULL,
                NULL,
        };

        if (vm_with_tap) {
                size_t n = ELEMENTSOF(argv) - 5;

                argv[n++] = "-netdev";
                argv[n++] = "tap,id=net0,ifname=" TEST_TAP ",script=no,downscript=no";
                argv[n++] = "-device";
                argv[n++] = "virtio-net-device,netdev=net0";
        }

        qemu_pid = fork();
        if (qemu_pid < 0)
                return -errno;
        if (qemu_pid == 0) {
                int fd = open("/dev/null", O_RDWR);
                dup2(fd, STDIN_FILENO);
                execv(argv[0], argv);
                _exit(127);
        }
        return 0;
}

static void vm_setup(void)
{
        const char *kernel_dir = getenv("BANGER_TEST_KERNEL_DIR");
        const char *build_dir = getenv("BANGER_TEST_BUILDDIR");

        skip_reason = NULL;
        if (isempty(kernel_dir)) {
                skip_reason = "BANGER_TEST_KERNEL_DIR is not set: set it to an unpacked "
                              "linux-image-*-cloud-amd64 package to boot a guest";
                return;
        }
        if (isempty(build_dir)) {
                skip_reason = "BANGER_TEST_BUILDDIR is not set: run this test with meson test";
                return;
        }

        ck_assert_ptr_nonnull(mkdtemp(workdir));
        ck_assert_int_eq(build_images(kernel_dir, build_dir), 0);
        ck_assert_int_eq(start_qemu(), 0);
        ck_assert_int_eq(agent_wait_ready(socket_path, EXEC_TIMEOUT), 0);
}

static void vm_teardown(void)
{
        if (qemu_pid > 0) {
                (void)kill(qemu_pid, SIGKILL);
                (void)waitpid(qemu_pid, NULL, 0);
                qemu_pid = 0;
        }
        if (workdir[sizeof(workdir) - 2] != 'X' && !getenv("BANGER_TEST_KEEP"))
                (void)rm_rf(workdir);
        /* Restore the template for the next test case's mkdtemp(). */
        memcpy(workdir + sizeof(workdir) - 7, "XXXXXX", 6);
}

/* Boots the VM in a new network namespace that contains a bridge with the gateway's address and a
 * tap on it for QEMU. The namespace goes away with the VM, so nothing is left on the host. */
static void network_vm_setup(void)
{
        if (geteuid() != 0) {
                skip_reason = "the network cases create a network namespace, which needs root";
                return;
        }
        host_netns_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(host_netns_fd, 0);
        ck_assert_int_eq(unshare(CLONE_NEWNET), 0);
        ck_assert_int_eq(run_shell("ip link add " TEST_BRIDGE " type bridge && "
                                   "ip address add 10.77.0.1/24 dev " TEST_BRIDGE " && "
                                   "ip link set " TEST_BRIDGE " up && "
                                   "ip tuntap add dev " TEST_TAP " mode tap && "
                                   "ip link set " TEST_TAP " master " TEST_BRIDGE " up"),
                         0);

        vm_cmdline_network = NET_CMDLINE;
        vm_with_tap = true;
        vm_setup();
}

static void network_vm_teardown(void)
{
        vm_teardown();
        vm_cmdline_network = "";
        vm_with_tap = false;
        if (host_netns_fd >= 0) {
                ck_assert_int_eq(setns(host_netns_fd, CLONE_NEWNET), 0);
                host_netns_fd = safe_close(host_netns_fd);
        }
}

/* Boots a VM whose network parameters are invalid, with no network device. */
static void bad_network_vm_setup(void)
{
        vm_cmdline_network = " banger.address=10.77.0.2/33 banger.gateway=10.77.0.1 "
                             "banger.dns=10.77.0.1";
        vm_setup();
}

static void bad_network_vm_teardown(void)
{
        vm_teardown();
        vm_cmdline_network = "";
}

#define SKIP_WITHOUT_VM()                                           \
        do {                                                        \
                if (skip_reason) {                                  \
                        fprintf(stderr, "SKIP: %s\n", skip_reason); \
                        return;                                     \
                }                                                   \
        } while (0)

static AgentExecResult *exec_sh(const char *script, char *const *env, const char *cwd)
{
        char *argv[] = { "/bin/sh", "-c", (char *)script, NULL };
        AgentExecRequest req = { .argv = argv, .env = env, .cwd = cwd };
        AgentExecResult *res = NULL;

        ck_assert_int_eq(agent_exec(socket_path, &req, EXEC_TIMEOUT, &res), 0);
        return res;
}

START_TEST(test_exec_hostname)
{
        SKIP_WITHOUT_VM();
        char *argv[] = { "cat", "/etc/hostname", NULL };
        AgentExecRequest req = { .argv = argv };
        _cleanup_result_ AgentExecResult *res = NULL;

        ck_assert_int_eq(agent_exec(socket_path, &req, EXEC_TIMEOUT, &res), 0);
        ck_assert_str_eq(res->out, "agentvm\n");
        ck_assert_str_eq(res->err, "");
        ck_assert_int_eq(res->exit_status, 0);
        ck_assert_int_eq(res->signal, 0);
}
END_TEST

START_TEST(test_hosts_file_written)
{
        SKIP_WITHOUT_VM();
        char *argv[] = { "cat", "/etc/hosts", NULL };
        AgentExecRequest req = { .argv = argv };
        _cleanup_result_ AgentExecResult *res = NULL;

        /* The image has no /etc/hosts, so banger-init writes one that names the VM. */
        ck_assert_int_eq(agent_exec(socket_path, &req, EXEC_TIMEOUT, &res), 0);
        ck_assert_int_eq(res->exit_status, 0);
        ck_assert_ptr_nonnull(strstr(res->out, "127.0.0.1\tlocalhost\n"));
        ck_assert_ptr_nonnull(strstr(res->out, "127.0.1.1\tagentvm\n"));
}
END_TEST

START_TEST(test_exec_config_defaults)
{
        SKIP_WITHOUT_VM();
        _cleanup_result_ AgentExecResult *res =
                exec_sh("echo \"$GREETING\"; pwd; hostname; grep -c ' /tmp tmpfs ' /proc/mounts",
                        NULL, NULL);

        ck_assert_str_eq(res->out, "hi there\n/tmp\nagentvm\n1\n");
        ck_assert_int_eq(res->exit_status, 0);
}
END_TEST

START_TEST(test_exec_env_and_cwd)
{
        SKIP_WITHOUT_VM();
        char *env[] = { "FOO=bar", NULL };
        _cleanup_result_ AgentExecResult *res =
                exec_sh("echo \"$FOO|$GREETING|$PATH\"; pwd", env, "/bin");

        ck_assert_str_eq(
                res->out,
                "bar||/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n/bin\n");
}
END_TEST

START_TEST(test_exec_large_output)
{
        SKIP_WITHOUT_VM();
        const size_t size = 6u * 1024u * 1024u;
        _cleanup_result_ AgentExecResult *res = NULL;

        /* 6 MiB on stdout and 1 MiB on stderr, interleaved by the pipes. */
        res = exec_sh("yes 0123456789abcde | head -c 6291456 & "
                      "yes eeeeeeeeeeeeeee | head -c 1048576 >&2; wait",
                      NULL, NULL);
        ck_assert_int_eq(res->exit_status, 0);
        ck_assert_uint_eq(res->out_size, size);
        ck_assert_uint_eq(strlen(res->out), size);
        for (size_t i = 0; i < size; i += 16)
                ck_assert_int_eq(memcmp(res->out + i, "0123456789abcde\n", 16), 0);
        ck_assert_uint_eq(res->err_size, 1048576);
}
END_TEST

START_TEST(test_exec_exit_status)
{
        SKIP_WITHOUT_VM();
        _cleanup_result_ AgentExecResult *res =
                exec_sh("echo out; echo oops >&2; exit 3", NULL, NULL);

        ck_assert_int_eq(res->exit_status, 3);
        ck_assert_int_eq(res->signal, 0);
        ck_assert_str_eq(res->out, "out\n");
        ck_assert_str_eq(res->err, "oops\n");
}
END_TEST

START_TEST(test_exec_killed_by_signal)
{
        SKIP_WITHOUT_VM();
        _cleanup_result_ AgentExecResult *res = exec_sh("kill -9 $$", NULL, NULL);

        ck_assert_int_eq(res->exit_status, -1);
        ck_assert_int_eq(res->signal, SIGKILL);
}
END_TEST

START_TEST(test_exec_command_not_found)
{
        SKIP_WITHOUT_VM();
        char *argv[] = { "/no/such/program", NULL };
        AgentExecRequest req = { .argv = argv };
        _cleanup_result_ AgentExecResult *res = NULL;

        ck_assert_int_eq(agent_exec(socket_path, &req, EXEC_TIMEOUT, &res), 0);
        ck_assert_int_eq(res->exit_status, 127);
        ck_assert_ptr_nonnull(strstr(res->err, "/no/such/program"));
}
END_TEST

START_TEST(test_stream_stdin_through_cat)
{
        SKIP_WITHOUT_VM();
        /* Four windows of stdin. */
        check_stream_stdin_through_cat(socket_path, 1024u * 1024u + 3u);
}
END_TEST

START_TEST(test_stream_output_over_10mb)
{
        SKIP_WITHOUT_VM();
        check_stream_output_hash(socket_path, 12582912, "/tmp/data", EXEC_TIMEOUT);
}
END_TEST

START_TEST(test_stream_stderr_and_exit_status)
{
        SKIP_WITHOUT_VM();
        check_stream_stderr_and_exit_status(socket_path);
}
END_TEST

START_TEST(test_stream_killed_by_signal)
{
        SKIP_WITHOUT_VM();
        check_stream_killed_by_signal(socket_path);
}
END_TEST

START_TEST(test_stream_tty_name_and_size)
{
        SKIP_WITHOUT_VM();
        check_stream_tty_size(socket_path, 33, 99);
}
END_TEST

START_TEST(test_stream_tty_resize)
{
        SKIP_WITHOUT_VM();
        check_stream_tty_resize(socket_path, EXEC_TIMEOUT);
}
END_TEST

static const AgentPort *find_tcp_port(const AgentPortList *l, uint16_t port)
{
        for (size_t i = 0; i < l->n_ports; i++)
                if (l->ports[i].protocol == IPPROTO_TCP && l->ports[i].port == port)
                        return &l->ports[i];
        return NULL;
}

START_TEST(test_ports_list_exec_listeners)
{
        SKIP_WITHOUT_VM();
        _cleanup_result_ AgentExecResult *res =
                exec_sh("nc -l -p 7070 </dev/null >/dev/null 2>&1 & echo $!; "
                        "httpd -f -p 8080 -h /tmp </dev/null >/dev/null 2>&1 & echo $!",
                        NULL, NULL);
        const AgentPort *nc = NULL, *httpd = NULL;
        _cleanup_free_ char *kill_script = NULL;
        AgentPortList l = {};
        pid_t nc_pid, httpd_pid;
        char *second;

        ck_assert_int_eq(res->exit_status, 0);
        nc_pid = parse_pid_line(res->out);
        second = strchr(res->out, '\n');
        ck_assert_ptr_nonnull(second);
        httpd_pid = parse_pid_line(second + 1);

        /* The listeners start in the background: ask until both are there. */
        for (unsigned i = 0; i < 100 && (!nc || !httpd); i++) {
                struct timespec ts = { .tv_nsec = 100 * 1000 * 1000 };

                agent_port_list_done(&l);
                ck_assert_int_eq(agent_list_ports(socket_path, EXEC_TIMEOUT, &l), 0);
                nc = find_tcp_port(&l, 7070);
                httpd = find_tcp_port(&l, 8080);
                if (!nc || !httpd)
                        nanosleep(&ts, NULL);
        }
        ck_assert_ptr_nonnull(nc);
        ck_assert_ptr_nonnull(httpd);
        ck_assert_uint_eq(nc->pid, (uint32_t)nc_pid);
        ck_assert_str_eq(nc->comm, "nc");
        ck_assert_uint_eq(nc->uid, 0);
        ck_assert_uint_eq(httpd->pid, (uint32_t)httpd_pid);
        ck_assert_str_eq(httpd->comm, "httpd");
        agent_port_list_done(&l);

        ck_assert_int_ge(asprintf(&kill_script, "kill %d %d", (int)nc_pid, (int)httpd_pid), 0);
        agent_exec_result_free(TAKE_PTR(res));
        res = exec_sh(kill_script, NULL, NULL);
        ck_assert_int_eq(res->exit_status, 0);
}
END_TEST

static char *console_log(void)
{
        _cleanup_free_ char *path = NULL;
        char *text = NULL;
        size_t size;

        ck_assert_int_ge(asprintf(&path, "%s/console.log", workdir), 0);
        ck_assert_int_eq(read_full_file(path, 16 * 1024 * 1024, &text, &size), 0);
        return text;
}

START_TEST(test_no_network_keys)
{
        SKIP_WITHOUT_VM();
        _cleanup_free_ char *console = console_log();
        _cleanup_result_ AgentExecResult *res = NULL;

        /* Without banger.* parameters nothing is configured beyond lo, and the image's link
         * stays. */
        res = exec_sh("readlink /etc/resolv.conf; cat /sys/class/net/lo/flags; "
                      "ip -4 address show dev lo | grep -c 'inet 127.0.0.1/8'",
                      NULL, NULL);
        ck_assert_str_eq(res->out, "../run/systemd/resolve/stub-resolv.conf\n0x9\n1\n");
        ck_assert_int_eq(res->exit_status, 0);
        ck_assert_ptr_null(strstr(console, "network"));
}
END_TEST

START_TEST(test_network_address_and_route)
{
        SKIP_WITHOUT_VM();
        _cleanup_result_ AgentExecResult *res = NULL;

        res = exec_sh("ip -4 address show dev eth0 | grep -o 'inet [0-9./]* brd [0-9.]*'; "
                      "ip -4 route show default",
                      NULL, NULL);
        ck_assert_str_eq(res->out, "inet 10.77.0.2/24 brd 10.77.0.255\n"
                                   "default via 10.77.0.1 dev eth0 \n");
        ck_assert_int_eq(res->exit_status, 0);
}
END_TEST

START_TEST(test_network_resolv_conf)
{
        SKIP_WITHOUT_VM();
        _cleanup_result_ AgentExecResult *res = NULL;

        /* The image's link to a stub resolver is replaced by a file. */
        res = exec_sh("test ! -L /etc/resolv.conf && cat /etc/resolv.conf", NULL, NULL);
        ck_assert_str_eq(res->out, "nameserver 10.77.0.1\nsearch banger\n");
        ck_assert_int_eq(res->exit_status, 0);
}
END_TEST

START_TEST(test_network_ping_gateway)
{
        SKIP_WITHOUT_VM();
        _cleanup_result_ AgentExecResult *res = exec_sh("ping -c 1 -W 10 10.77.0.1", NULL, NULL);

        ck_assert_msg(res->exit_status == 0, "ping failed: %s%s", res->out, res->err);
}
END_TEST

START_TEST(test_network_console_line)
{
        SKIP_WITHOUT_VM();
        _cleanup_free_ char *console = console_log();

        ck_assert_ptr_nonnull(
                strstr(console, "banger-init: network 10.77.0.2/24 via 10.77.0.1\r\n"));
}
END_TEST

START_TEST(test_bad_network_reported)
{
        SKIP_WITHOUT_VM();
        _cleanup_free_ char *console = console_log();
        _cleanup_result_ AgentExecResult *res = NULL;

        ck_assert_ptr_nonnull(strstr(console, "banger-init: Invalid banger.address='10.77.0.2/33': "
                                              "the prefix length must be a number from 1 to 32, "
                                              "expected A.B.C.D/N, starting without network"));

        /* The VM boots without network and keeps the image's files. */
        res = exec_sh("readlink /etc/resolv.conf", NULL, NULL);
        ck_assert_str_eq(res->out, "../run/systemd/resolve/stub-resolv.conf\n");
}
END_TEST

/* Reads until at least min bytes of agent output arrived; returns how many did. */
static size_t raw_read_some(int fd, size_t min)
{
        char buf[65536];
        size_t total = 0;

        while (total < min) {
                ssize_t n = recv(fd, buf, sizeof(buf), 0);

                ck_assert_int_gt(n, 0);
                total += (size_t)n;
        }
        return total;
}

static void assert_echo_works(const char *word)
{
        _cleanup_free_ char *script = NULL, *expected = NULL;
        _cleanup_result_ AgentExecResult *res = NULL;

        ck_assert_int_ge(asprintf(&script, "echo %s", word), 0);
        ck_assert_int_ge(asprintf(&expected, "%s\n", word), 0);
        res = exec_sh(script, NULL, NULL);
        ck_assert_str_eq(res->out, expected);
        ck_assert_int_eq(res->exit_status, 0);
}

START_TEST(test_disconnect_mid_exec)
{
        SKIP_WITHOUT_VM();
        char *argv[] = { "yes", "stale output", NULL };
        AgentHello hello = { .version = AGENT_PROTOCOL_VERSION, .nonce = 1 };
        AgentExec e = { .argv = argv };
        AgentBuffer b = {};
        int fd;

        /* Start an endless command, take some of its output and hang up. */
        fd = raw_connect(socket_path);
        ck_assert_int_eq(agent_hello_append(&b, AGENT_MSG_HELLO, 0, &hello), 0);
        ck_assert_int_eq(agent_exec_append(&b, 77, &e), 0);
        raw_send(fd, &b);
        ck_assert_uint_ge(raw_read_some(fd, 256 * 1024), 256 * 1024);
        close(fd);
        agent_buffer_done(&b);

        assert_echo_works("after-disconnect");
        assert_echo_works("and-again");
}
END_TEST

START_TEST(test_disconnect_mid_frame)
{
        SKIP_WITHOUT_VM();
        char *argv[] = { "echo", "never run", NULL };
        AgentExec e = { .argv = argv };
        AgentBuffer b = {};
        int fd;

        /* Garbage, then half an EXEC frame, then hang up: the next client must not see
         * either. */
        fd = raw_connect(socket_path);
        ck_assert_int_eq(agent_buffer_append(&b, "garbage\nBNG", 11), 0);
        ck_assert_int_eq(agent_exec_append(&b, 78, &e), 0);
        b.size -= 6;
        raw_send(fd, &b);
        close(fd);
        agent_buffer_done(&b);

        assert_echo_works("after-partial-frame");
}
END_TEST

START_TEST(test_disconnect_mid_large_frame)
{
        SKIP_WITHOUT_VM();
        _cleanup_free_ char *big = malloc(65536);
        char *argv[] = { "echo", big, NULL };
        AgentExec e = { .argv = argv };
        AgentBuffer b = {};
        int fd;

        /* Half of a 64 KiB EXEC frame: the agent waits for 32 KiB more, far more than the next
         * client's handshake sends, so it has to spot the new HELLO inside. */
        ck_assert_ptr_nonnull(big);
        memset(big, 'x', 65535);
        big[65535] = '\0';
        fd = raw_connect(socket_path);
        ck_assert_int_eq(agent_exec_append(&b, 79, &e), 0);
        b.size /= 2;
        raw_send(fd, &b);
        close(fd);
        agent_buffer_done(&b);

        assert_echo_works("after-large-partial-frame");
}
END_TEST

START_TEST(test_exec_timeout_then_exec)
{
        SKIP_WITHOUT_VM();
        char *argv[] = { "sleep", "600", NULL };
        AgentExecRequest req = { .argv = argv };
        AgentExecResult *res = NULL;

        ck_assert_int_eq(agent_exec(socket_path, &req, 3 * SEC, &res), -ETIMEDOUT);
        ck_assert_ptr_null(res);

        assert_echo_works("after-timeout");
}
END_TEST

START_TEST(test_agent_restarted_after_crash)
{
        SKIP_WITHOUT_VM();
        char *argv[] = { "/bin/sh", "-c", "kill -9 $PPID", NULL };
        AgentExecRequest req = { .argv = argv };
        AgentExecResult *res = NULL;

        /* The command's parent is the agent: it dies before it can send EXIT. */
        ck_assert_int_eq(agent_exec(socket_path, &req, 5 * SEC, &res), -ETIMEDOUT);
        ck_assert_ptr_null(res);

        /* banger-init starts a new agent, which the next request reaches. */
        assert_echo_works("after-agent-restart");
}
END_TEST

static bool process_exited(pid_t pid)
{
        _cleanup_free_ char *path = NULL, *stat = NULL;
        size_t size;
        const char *state;

        ck_assert_int_ge(asprintf(&path, "/proc/%d/stat", (int)pid), 0);
        if (read_full_file(path, 4096, &stat, &size) < 0)
                return true;
        /* The state letter follows the parenthesised command name. */
        state = strrchr(stat, ')');
        return !state || state[1] == '\0' || state[2] == 'Z';
}

START_TEST(test_shutdown_ends_qemu)
{
        SKIP_WITHOUT_VM();
        ck_assert_int_eq(agent_shutdown(socket_path, EXEC_TIMEOUT), 0);

        /* The guest powers off and QEMU exits on its own; the test timeout bounds the wait.
         * QEMU is a child of the process that ran the fixture, not of this one, so it stays a
         * zombie here instead of being reaped. */
        while (!process_exited(qemu_pid)) {
                struct timespec ts = { .tv_nsec = 100 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
}
END_TEST

START_TEST(test_power_button_ends_qemu)
{
        SKIP_WITHOUT_VM();
        static const char commands[] = "{\"execute\": \"qmp_capabilities\"}\n"
                                       "{\"execute\": \"system_powerdown\"}\n";
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        strcpy(sa.sun_path, qmp_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        ck_assert_int_eq(send(fd, commands, strlen(commands), MSG_NOSIGNAL),
                         (ssize_t)strlen(commands));

        /* banger-init handles the ACPI power button and powers off, which ends QEMU. */
        while (!process_exited(qemu_pid)) {
                struct timespec ts = { .tv_nsec = 100 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        close(fd);
}
END_TEST

static Suite *agent_vm_suite(void)
{
        Suite *s = suite_create("agent-vm");
        TCase *tc = tcase_create("vm");

        /* One VM for the whole case, booted in the parent process so that every test (run in
         * its own child) talks to it, in the order added. */
        tcase_add_unchecked_fixture(tc, vm_setup, vm_teardown);
        tcase_set_timeout(tc, 600);
        tcase_add_test(tc, test_exec_hostname);
        tcase_add_test(tc, test_hosts_file_written);
        tcase_add_test(tc, test_no_network_keys);
        tcase_add_test(tc, test_exec_config_defaults);
        tcase_add_test(tc, test_exec_env_and_cwd);
        tcase_add_test(tc, test_exec_large_output);
        tcase_add_test(tc, test_exec_exit_status);
        tcase_add_test(tc, test_exec_killed_by_signal);
        tcase_add_test(tc, test_exec_command_not_found);
        tcase_add_test(tc, test_stream_stdin_through_cat);
        tcase_add_test(tc, test_stream_output_over_10mb);
        tcase_add_test(tc, test_stream_stderr_and_exit_status);
        tcase_add_test(tc, test_stream_killed_by_signal);
        tcase_add_test(tc, test_stream_tty_name_and_size);
        tcase_add_test(tc, test_stream_tty_resize);
        tcase_add_test(tc, test_ports_list_exec_listeners);
        tcase_add_test(tc, test_disconnect_mid_exec);
        tcase_add_test(tc, test_disconnect_mid_frame);
        tcase_add_test(tc, test_disconnect_mid_large_frame);
        tcase_add_test(tc, test_exec_timeout_then_exec);
        tcase_add_test(tc, test_agent_restarted_after_crash);
        tcase_add_test(tc, test_shutdown_ends_qemu);
        suite_add_tcase(s, tc);

        tc = tcase_create("network");
        tcase_add_unchecked_fixture(tc, network_vm_setup, network_vm_teardown);
        tcase_set_timeout(tc, 600);
        tcase_add_test(tc, test_network_address_and_route);
        tcase_add_test(tc, test_network_resolv_conf);
        tcase_add_test(tc, test_network_ping_gateway);
        tcase_add_test(tc, test_network_console_line);
        suite_add_tcase(s, tc);

        tc = tcase_create("bad-network");
        tcase_add_unchecked_fixture(tc, bad_network_vm_setup, bad_network_vm_teardown);
        tcase_set_timeout(tc, 600);
        tcase_add_test(tc, test_bad_network_reported);
        suite_add_tcase(s, tc);

        /* Another VM, for the power-off path the VMM uses without the agent. */
        tc = tcase_create("power-button");
        tcase_add_unchecked_fixture(tc, vm_setup, vm_teardown);
        tcase_set_timeout(tc, 600);
        tcase_add_test(tc, test_power_button_ends_qemu);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(agent_vm_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
