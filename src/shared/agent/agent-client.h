#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent-proto.h"

/* Host side of the guest agent protocol (see agent-proto.h), over the unix socket that QEMU
 * connects to the guest's virtio-serial port, or over any connected stream socket to the agent
 * (the _fd variants, for vsock). The virtio-serial socket takes one client at a time, so
 * callers serialise calls per VM there. All calls are blocking with a deadline and safe to use
 * from a worker thread; they share no state between sockets.
 *
 * Every call fails with -EPROTONOSUPPORT when the agent speaks another protocol version, which
 * means its initramfs was built by another version of banger: importing the kernel again
 * rebuilds it. -EPROTO means the agent broke the protocol. */

typedef struct AgentExecRequest {
        char *const *argv; /* required, argv[0] is looked up in the guest's PATH */
        char *const *env;  /* NULL: the image's environment from the guest config */
        const char *cwd;   /* NULL: the image's working directory, else "/" */
        const char *user;  /* "name", "uid", "name:group" or "uid:gid"; NULL: the image's user */
        bool tty;          /* run on a pseudo-terminal, which merges stderr into stdout */
        unsigned rows;     /* terminal size with tty, at most 65535; 0: 24 rows, 80 columns */
        unsigned cols;
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
 * Returns -ETIMEDOUT when timeout_usec passes first. */
int agent_wait_ready(const char *socket_path, uint64_t timeout_usec);

/* Runs a command in the guest with its stdin closed and collects its output (each stream
 * capped at AGENT_EXEC_OUTPUT_MAX bytes; more is an -EFBIG error). */
int agent_exec(const char *socket_path, const AgentExecRequest *req, uint64_t timeout_usec,
               AgentExecResult **ret);

/* Runs a command like agent_exec() over fd, a connected non-blocking stream socket such as
 * the one vsock_connect() returns. The call takes fd over and closes it, also on failure. */
int agent_exec_fd(int fd, const AgentExecRequest *req, uint64_t timeout_usec,
                  AgentExecResult **ret);

/* Descriptors that agent_exec_stream() pumps between the caller and the command. They stay
 * open and keep their flags. Output never blocks the call: pipes and terminals are opened
 * again through /proc/self/fd with O_NONBLOCK, and sockets are written with MSG_DONTWAIT. So a
 * reader that stops reading only stalls the command. Writing to a pipe without a reader
 * raises SIGPIPE unless the caller ignores it, as daemons do; the call then fails with -EPIPE. */
typedef struct AgentExecStdio {
        int stdin_fd;  /* read until end of file into the command; < 0: stdin is /dev/null, or
                        * with tty a terminal without input */
        int stdout_fd; /* < 0: output is dropped */
        int stderr_fd; /* < 0: dropped; unused with tty */
        /* < 0: none. Otherwise the read end of a pipe: agent_exec_stream_resize() writes
         * terminal sizes into it, and end of file (every write end closed) kills the command
         * and makes the call return -ECANCELED. */
        int control_fd;
} AgentExecStdio;

/* Runs a command in the guest, streaming stdin to it and its output to stdout and stderr as
 * they come, with no limit on their size. Returns once the command has exited and its output
 * is written, with *ret set. timeout_usec bounds the whole call, UINT64_MAX for no limit.
 * When writing to stdout or stderr fails (-EPIPE) or reading stdin fails, the command is
 * killed and the error returned. */
int agent_exec_stream(const char *socket_path, const AgentExecRequest *req,
                      const AgentExecStdio *stdio, uint64_t timeout_usec, AgentExit *ret);

/* Like agent_exec_stream() over fd; takes fd over and closes it, also on failure. */
int agent_exec_stream_fd(int fd, const AgentExecRequest *req, const AgentExecStdio *stdio,
                         uint64_t timeout_usec, AgentExit *ret);

/* Asks a running agent_exec_stream() to resize the command's terminal: writes one record to
 * fd, the write end of the pipe given as control_fd. rows and cols are 1 to 65535. */
int agent_exec_stream_resize(int fd, unsigned rows, unsigned cols);

/* Lists the guest's listening TCP sockets and bound UDP sockets, IPv4 and IPv6, each with a
 * process that has it open. Returns 1 instead of 0 when the agent found more than
 * AGENT_PORTS_MAX and sent only those. */
int agent_list_ports(const char *socket_path, uint64_t timeout_usec, AgentPortList *ret);
int agent_list_ports_fd(int fd, uint64_t timeout_usec, AgentPortList *ret);

/* Asks the guest to sync, unmount and power off. Returns once the agent has acknowledged. */
int agent_shutdown(const char *socket_path, uint64_t timeout_usec);

/* Variants of agent_wait_ready() and agent_shutdown() over fd, a connected non-blocking stream
 * socket such as the one vsock_connect() returns. They take fd over and close it, also on
 * failure. agent_wait_ready_fd() makes one handshake attempt and does not retry. */
int agent_wait_ready_fd(int fd, uint64_t timeout_usec);
int agent_shutdown_fd(int fd, uint64_t timeout_usec);

#define AGENT_EXEC_OUTPUT_MAX (64u * 1024u * 1024u)
