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

/* Reads the return value of query-chardev. Returns 1 when a client is connected to the socket
 * chardev label, 0 when none is (QEMU 7.2 prefixes its filename with "disconnected:"), -ENOENT
 * when there is no chardev label, and -EBADMSG for a malformed list. */
int qmp_chardev_connected(json_object *list, const char *label);

/* Parsing of single QMP messages, separate from the socket so it can be tested and fuzzed. */

/* The largest QMP message accepted, newline excluded. Replies to the commands banger sends are a
 * few hundred bytes. A longer line is skipped and reported as -EMSGSIZE. */
#define QMP_MESSAGE_MAX (1024U * 1024U)

typedef enum QmpMessageType {
        QMP_MESSAGE_GREETING, /* {"QMP": {...}} */
        QMP_MESSAGE_RETURN,   /* {"return": ...} */
        QMP_MESSAGE_ERROR,    /* {"error": {"class": ..., "desc": ...}} */
        QMP_MESSAGE_EVENT,    /* {"event": "NAME", ...} */
        _QMP_MESSAGE_TYPE_MAX,
        _QMP_MESSAGE_TYPE_INVALID = -1,
} QmpMessageType;

typedef struct QmpMessage {
        QmpMessageType type;
        int64_t id;         /* the integer "id" of a reply, -1 when absent or not an integer */
        json_object *value; /* "return" value, "QMP" object or the whole event; owned */
        char *error_class;  /* for QMP_MESSAGE_ERROR, else NULL */
        char *error_desc;   /* for QMP_MESSAGE_ERROR, else NULL */
        char *event;        /* for QMP_MESSAGE_EVENT, else NULL */
} QmpMessage;

/* Parses one message of size bytes, which need not end in NUL. Trailing whitespace such as "\r" is
 * ignored. Returns -EBADMSG for anything that is not a single JSON object of a known QMP shape,
 * and -EMSGSIZE above QMP_MESSAGE_MAX. On success *ret is filled and must be released with
 * qmp_message_done(). */
int qmp_message_parse(const char *data, size_t size, QmpMessage *ret);
void qmp_message_done(QmpMessage *m);
