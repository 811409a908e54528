#pragma once

#include <stdint.h>

#include <json-c/json.h>

/* A minimal blocking QMP client. Each Qmp owns one connection; not shared between threads. */

typedef struct Qmp Qmp;

/* Connects to path, reads the greeting and enters command mode, retrying the connection until
 * timeout_usec passes (QEMU creates the socket shortly after it starts). */
int qmp_open(const char *path, uint64_t timeout_usec, Qmp **ret);
Qmp *qmp_close(Qmp *q);
static inline void qmp_closep(Qmp **q)
{
        qmp_close(*q);
}

/* Runs command with optional arguments; *ret_return (when not NULL) receives the "return"
 * member. A QMP error becomes -EIO with its description in *ret_error when not NULL.
 * Asynchronous events that arrive meanwhile are skipped. */
int qmp_execute(Qmp *q, const char *command, json_object *arguments, uint64_t timeout_usec,
                json_object **ret_return, char **ret_error);

/* The "status" of query-status: "running", "paused", "internal-error", "shutdown", ... */
int qmp_query_status(Qmp *q, uint64_t timeout_usec, char **ret);
