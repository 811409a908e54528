#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A blocking client for Firecracker's REST API (v1.16.1) on its unix socket. Each Firecracker
 * object owns one connection and is not shared between threads.
 *
 * Every call that talks to Firecracker takes an optional ret_error. On failure it receives a
 * message for the user (owned by the caller), and the call returns:
 *   -EBUSY   the call belongs to the other phase: pre-boot resources are accepted only before
 *            InstanceStart, post-boot calls only after it. Nothing is sent in that case.
 *   -EINVAL  an argument is invalid (checked before sending), or Firecracker returned 400.
 *   -EIO     Firecracker returned another error status; its fault_message is in ret_error.
 *   -ECONNREFUSED, -ENOENT, -ETIMEDOUT  the socket could not be reached or did not reply. */

typedef struct Firecracker Firecracker;

typedef enum FirecrackerPhase {
        FIRECRACKER_PHASE_PRE_BOOT, /* configuring; InstanceStart not sent yet */
        FIRECRACKER_PHASE_RUNNING,
        FIRECRACKER_PHASE_PAUSED,
        _FIRECRACKER_PHASE_MAX,
        _FIRECRACKER_PHASE_INVALID = -1,
} FirecrackerPhase;

const char *firecracker_phase_to_string(FirecrackerPhase p);

/* Creates a client for the API socket at socket_path. Each request must complete within
 * timeout_usec. No connection is made until the first request. */
int firecracker_new(const char *socket_path, uint64_t timeout_usec, Firecracker **ret);
Firecracker *firecracker_free(Firecracker *f);
static inline void firecracker_freep(Firecracker **f)
{
        firecracker_free(*f);
}

FirecrackerPhase firecracker_get_phase(const Firecracker *f);

typedef struct FirecrackerMachineConfig {
        unsigned vcpu_count;   /* 1 or an even number up to 32 */
        uint64_t mem_size_mib; /* at least 1 */
        bool smt;
        bool track_dirty_pages;
} FirecrackerMachineConfig;

typedef struct FirecrackerBootSource {
        const char *kernel_image_path; /* required: an uncompressed ELF vmlinux on x86_64 */
        const char *initrd_path;       /* NULL: none */
        const char *boot_args;         /* required, checked as below */
} FirecrackerBootSource;

typedef struct FirecrackerDrive {
        const char *drive_id; /* required, also the last component of the request path */
        const char *path_on_host;
        bool is_root_device;
        bool is_read_only;
        const char *cache_type; /* NULL, "Unsafe" or "Writeback" */
        const char *io_engine;  /* NULL, "Sync" or "Async" */
} FirecrackerDrive;

typedef struct FirecrackerNetworkInterface {
        const char *iface_id; /* required, also the last component of the request path */
        const char *host_dev_name;
        const char *guest_mac; /* NULL: the guest driver picks a random one */
        unsigned mtu;          /* 0: not advertised to the guest, else 68 to 65535 */
} FirecrackerNetworkInterface;

typedef struct FirecrackerLogger {
        const char *log_path;
        const char *level; /* NULL, "Error", "Warning", "Info", "Debug", "Trace" or "Off" */
        bool show_level;
        bool show_log_origin;
} FirecrackerLogger;

typedef struct FirecrackerInstanceInfo {
        char *app_name;
        char *id;
        char *state; /* "Not started", "Running" or "Paused" */
        char *vmm_version;
} FirecrackerInstanceInfo;

void firecracker_instance_info_done(FirecrackerInstanceInfo *info);

/* Pre-boot resources. */
int firecracker_put_machine_config(Firecracker *f, const FirecrackerMachineConfig *c,
                                   char **ret_error);
int firecracker_put_boot_source(Firecracker *f, const FirecrackerBootSource *b, char **ret_error);
int firecracker_put_drive(Firecracker *f, const FirecrackerDrive *d, char **ret_error);
int firecracker_put_network_interface(Firecracker *f, const FirecrackerNetworkInterface *n,
                                      char **ret_error);
/* guest_cid is at least 3. Firecracker creates and listens on uds_path for host-initiated
 * connections (see vsock.h). */
int firecracker_put_vsock(Firecracker *f, uint32_t guest_cid, const char *uds_path,
                          char **ret_error);
int firecracker_put_entropy(Firecracker *f, char **ret_error);
int firecracker_put_logger(Firecracker *f, const FirecrackerLogger *l, char **ret_error);
int firecracker_put_metrics(Firecracker *f, const char *metrics_path, char **ret_error);
/* The guest's serial output reaches serial_out_path only when its boot arguments contain
 * console=ttyS0. */
int firecracker_put_serial(Firecracker *f, const char *serial_out_path, char **ret_error);

/* Sends InstanceStart. On success the client moves to FIRECRACKER_PHASE_RUNNING. Returns
 * -EINVAL without sending when a root drive was sent and the boot arguments contain root=,
 * because Firecracker adds its own root= for the root drive. */
int firecracker_start(Firecracker *f, char **ret_error);

/* Post-boot calls. */
int firecracker_pause(Firecracker *f, char **ret_error);
int firecracker_resume(Firecracker *f, char **ret_error);
int firecracker_send_ctrl_alt_del(Firecracker *f, char **ret_error);

/* Sends GET /, which is allowed in every phase. The client's phase follows the returned state
 * ("Not started", "Running" or "Paused"), and any other state leaves it unchanged. */
int firecracker_describe_instance(Firecracker *f, FirecrackerInstanceInfo *ret, char **ret_error);

/* Boot arguments. Linux on x86 stops reading the command line at COMMAND_LINE_SIZE (2048 bytes
 * including the NUL). Firecracker adds arguments of its own to the same line, such as root= and
 * rw for a root drive (attach_block_devices() in its src/vmm/src/builder.rs).
 * TODO: the room that Firecracker's own arguments take is not subtracted from the limit. */
#define FIRECRACKER_BOOT_ARGS_MAX 2047U
/* Linux passes at most MAX_INIT_ARGS arguments to init (init/main.c), which is
 * CONFIG_INIT_ENV_ARG_LIMIT, 32 by default. */
#define FIRECRACKER_INIT_ARGS_MAX 32U
/* banger's own bound on one init argument. */
#define FIRECRACKER_INIT_ARG_LENGTH_MAX 256U

/* Checks boot arguments before they are sent: at most one root=, a console= that is not
 * disabled and no 8250.nr_uarts=0 (the serial console carries the guest's log), at most one
 * "--", at most FIRECRACKER_INIT_ARGS_MAX init arguments after it, each at most
 * FIRECRACKER_INIT_ARG_LENGTH_MAX bytes, a total of at most FIRECRACKER_BOOT_ARGS_MAX bytes,
 * printable ASCII only and balanced double quotes. Returns -EINVAL with a message that names the
 * offending token. */
int firecracker_boot_args_validate(const char *boot_args, char **ret_error);

/* Parsing of one API response, separate from the socket so it can be tested and fuzzed. */

/* Largest response body accepted. The bodies of the calls above are a few hundred bytes. */
#define FIRECRACKER_RESPONSE_MAX (64U * 1024U)

/* Turns the HTTP status and body of a response to "method path" into a result. A 2xx status
 * returns 0. Any other returns -EINVAL for 400 and -EIO otherwise, with a message in *ret_error
 * that contains the body's fault_message. A body without one is quoted instead, shortened and
 * with each byte that is not printable ASCII replaced. body need not end in NUL. */
int firecracker_response_check(const char *method, const char *path, long status, const char *body,
                               size_t size, char **ret_error);
