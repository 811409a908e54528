#pragma once

#include <stdint.h>
#include <sys/types.h>

/* Host side of the guest agent protocol (see agent-proto.h), over the unix socket that QEMU
 * connects to the guest's virtio-serial port. The socket takes one client at a time, so callers
 * serialise calls per VM. All calls are blocking with a deadline and safe to use from a worker
 * thread; they share no state between sockets. */

typedef struct AgentExecRequest {
        char *const *argv; /* required, argv[0] is looked up in the guest's PATH */
        char *const *env;  /* NULL: the image's environment from the guest config */
        const char *cwd;   /* NULL: the image's working directory, else "/" */
} AgentExecRequest;

typedef struct AgentExecResult {
        char *out; /* stdout bytes, NUL-terminated for convenience */
        size_t out_size;
        char *err; /* stderr bytes, NUL-terminated */
        size_t err_size;
        int exit_status; /* exit code, or -1 when terminated by a signal */
        int signal;      /* terminating signal number, or 0 */
} AgentExecResult;

AgentExecResult *agent_exec_result_free(AgentExecResult *r);

/* Waits until the agent replies to a handshake with a compatible protocol version.
 * Returns -ETIMEDOUT when timeout_usec passes first, -EPROTO on a version mismatch. */
int agent_wait_ready(const char *socket_path, uint64_t timeout_usec);

/* Runs a command in the guest and collects its output (each stream capped at
 * AGENT_EXEC_OUTPUT_MAX bytes; more is an -EFBIG error). */
int agent_exec(const char *socket_path, const AgentExecRequest *req, uint64_t timeout_usec,
               AgentExecResult **ret);

/* Runs a command like agent_exec() over fd, a connected non-blocking stream socket such as
 * the one vsock_connect() returns. The call takes fd over and closes it, also on failure. */
int agent_exec_fd(int fd, const AgentExecRequest *req, uint64_t timeout_usec,
                  AgentExecResult **ret);

/* Asks the guest to sync, unmount and power off. Returns once the agent has acknowledged. */
int agent_shutdown(const char *socket_path, uint64_t timeout_usec);

/* Variants of agent_wait_ready() and agent_shutdown() over fd, a connected non-blocking stream
 * socket such as the one vsock_connect() returns. They take fd over and close it, also on
 * failure. agent_wait_ready_fd() makes one handshake attempt and does not retry. */
int agent_wait_ready_fd(int fd, uint64_t timeout_usec);
int agent_shutdown_fd(int fd, uint64_t timeout_usec);

#define AGENT_EXEC_OUTPUT_MAX (64u * 1024u * 1024u)
