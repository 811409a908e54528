#pragma once

#include <stddef.h>
#include <stdint.h>

/* Host side of Firecracker's hybrid vsock. Firecracker listens on the unix socket given as
 * uds_path in PUT /vsock. A host program connects to it, sends "CONNECT <port>\n", and
 * Firecracker either replies "OK <host port>\n" and from then on forwards the stream to the
 * guest's vsock port, or closes the connection when nothing in the guest listens on that port. */

/* Longest reply line accepted, newline included: "OK " and a 32-bit port fit with room to
 * spare. */
#define VSOCK_REPLY_MAX 32U

/* Connects to guest port through uds_path. Each attempt (connect, CONNECT, reply) must finish
 * within attempt_timeout_usec. A missing or refusing socket, a closed connection and a stalled
 * attempt are retried until timeout_usec passes, then the call returns:
 *   -ECONNREFUSED  Firecracker closed the last connection: nothing listens on port in the guest
 *   -ETIMEDOUT     the last attempt got no reply within attempt_timeout_usec
 *   -ENOENT        uds_path never appeared
 * A reply other than "OK <port>" is -EBADMSG at once. On success *ret_fd is the connected,
 * non-blocking, close-on-exec socket, and *ret_host_port (when not NULL) the port number of
 * Firecracker's reply. On failure *ret_error (when not NULL) receives a message. */
int vsock_connect(const char *uds_path, uint32_t port, uint64_t attempt_timeout_usec,
                  uint64_t timeout_usec, int *ret_fd, uint32_t *ret_host_port, char **ret_error);

/* Parses one reply line of size bytes, "\n" included. Returns -EBADMSG for anything other than
 * "OK " followed by a decimal number up to UINT32_MAX and "\n". */
int vsock_reply_parse(const char *line, size_t size, uint32_t *ret_host_port);
