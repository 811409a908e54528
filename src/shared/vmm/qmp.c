#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "qmp.h"

#define QMP_READ_CHUNK   (64U * 1024U)
#define QMP_JSON_DEPTH   32
#define CONNECT_RETRY_MS 10

struct Qmp {
        int fd;
        char *buf;
        size_t size;     /* bytes in buf */
        size_t alloc;    /* bytes allocated for buf */
        bool discarding; /* inside an over-long line: bytes are dropped up to its newline */
        int64_t next_id;
};

static inline void json_object_putp(json_object **o)
{
        if (*o)
                json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_object_putp)

static uint64_t now_usec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000U + (uint64_t)ts.tv_nsec / 1000U;
}

static uint64_t deadline_after(uint64_t timeout_usec)
{
        uint64_t now = now_usec();

        return timeout_usec > UINT64_MAX - now ? UINT64_MAX : now + timeout_usec;
}

/* Milliseconds left until deadline for poll(), rounded up so a short wait does not spin. */
static int poll_timeout_ms(uint64_t deadline)
{
        uint64_t now = now_usec(), left;

        if (deadline == UINT64_MAX)
                return -1;
        if (now >= deadline)
                return 0;
        left = (deadline - now + 999) / 1000;
        return left > INT32_MAX ? INT32_MAX : (int)left;
}

static int wait_fd(int fd, short events, uint64_t deadline)
{
        struct pollfd p = { .fd = fd, .events = events };
        int n;

        for (;;) {
                n = poll(&p, 1, poll_timeout_ms(deadline));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        return -ETIMEDOUT;
                return 0;
        }
}

void qmp_message_done(QmpMessage *m)
{
        if (!m)
                return;
        if (m->value)
                json_object_put(m->value);
        free(m->error_class);
        free(m->error_desc);
        free(m->event);
        *m = (QmpMessage){ .type = _QMP_MESSAGE_TYPE_INVALID, .id = -1 };
}

static int parse_json_object(const char *data, size_t size, json_object **ret)
{
        json_tokener *tok;
        json_object *o;
        size_t end;

        if (size > INT32_MAX)
                return -EMSGSIZE;

        tok = json_tokener_new_ex(QMP_JSON_DEPTH);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);

        o = json_tokener_parse_ex(tok, data, (int)size);
        end = json_tokener_get_parse_end(tok);
        if (!o)
                log_debug("Failed to parse QMP message: %s",
                          json_tokener_error_desc(json_tokener_get_error(tok)));
        json_tokener_free(tok);

        if (!o)
                return -EBADMSG;
        /* One object per line: anything after it is as wrong as a parse error. */
        if (end != size || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return -EBADMSG;
        }

        *ret = o;
        return 0;
}

static int64_t message_id(json_object *o)
{
        json_object *id;
        int64_t v;

        if (!json_object_object_get_ex(o, "id", &id) || !json_object_is_type(id, json_type_int))
                return -1;
        v = json_object_get_int64(id);
        return v < 0 ? -1 : v;
}

static int parse_error_member(json_object *error, QmpMessage *m)
{
        json_object *class = NULL, *desc = NULL;

        if (!json_object_is_type(error, json_type_object))
                return -EBADMSG;
        if (!json_object_object_get_ex(error, "desc", &desc) ||
            !json_object_is_type(desc, json_type_string))
                return -EBADMSG;
        if (json_object_object_get_ex(error, "class", &class) &&
            !json_object_is_type(class, json_type_string))
                return -EBADMSG;

        m->error_desc = strdup(json_object_get_string(desc));
        m->error_class = strdup(class ? json_object_get_string(class) : "GenericError");
        if (!m->error_desc || !m->error_class)
                return -ENOMEM;
        return 0;
}

/* Fills m from a parsed object; m owns nothing yet on entry and is cleaned by the caller. */
static int classify_message(json_object *o, QmpMessage *m)
{
        json_object *v;

        m->id = message_id(o);

        if (json_object_object_get_ex(o, "return", &v)) {
                m->type = QMP_MESSAGE_RETURN;
                m->value = json_object_get(v);
                return 0;
        }

        if (json_object_object_get_ex(o, "error", &v)) {
                m->type = QMP_MESSAGE_ERROR;
                return parse_error_member(v, m);
        }

        if (json_object_object_get_ex(o, "event", &v)) {
                if (!json_object_is_type(v, json_type_string))
                        return -EBADMSG;
                m->type = QMP_MESSAGE_EVENT;
                m->event = strdup(json_object_get_string(v));
                if (!m->event)
                        return -ENOMEM;
                m->value = json_object_get(o);
                return 0;
        }

        if (json_object_object_get_ex(o, "QMP", &v)) {
                if (!json_object_is_type(v, json_type_object))
                        return -EBADMSG;
                m->type = QMP_MESSAGE_GREETING;
                m->value = json_object_get(v);
                return 0;
        }

        return -EBADMSG;
}

int qmp_message_parse(const char *data, size_t size, QmpMessage *ret)
{
        QmpMessage m = { .type = _QMP_MESSAGE_TYPE_INVALID, .id = -1 };
        _cleanup_json_ json_object *o = NULL;
        int r;

        if (size > QMP_MESSAGE_MAX)
                return -EMSGSIZE;
        while (size > 0 && strchr(" \t\r\n", data[size - 1]))
                size--;
        /* json-c stops at a NUL byte, which would hide whatever follows it. */
        if (size == 0 || memchr(data, '\0', size))
                return -EBADMSG;

        r = parse_json_object(data, size, &o);
        if (r < 0)
                return r;

        r = classify_message(o, &m);
        if (r < 0) {
                qmp_message_done(&m);
                return r;
        }

        *ret = m;
        return 0;
}

Qmp *qmp_close(Qmp *q)
{
        if (!q)
                return NULL;
        safe_close(q->fd);
        free(q->buf);
        free(q);
        return NULL;
}

static int buffer_reserve(Qmp *q, size_t extra)
{
        size_t want;
        char *p;

        if (q->alloc - q->size >= extra)
                return 0;

        want = q->size + extra;
        p = realloc(q->buf, want);
        if (!p)
                return -ENOMEM;
        q->buf = p;
        q->alloc = want;
        return 0;
}

static void buffer_consume(Qmp *q, size_t n)
{
        memmove(q->buf, q->buf + n, q->size - n);
        q->size -= n;
}

static int fill_buffer(Qmp *q, uint64_t deadline)
{
        ssize_t n;
        int r;

        r = buffer_reserve(q, QMP_READ_CHUNK);
        if (r < 0)
                return r;

        for (;;) {
                n = read(q->fd, q->buf + q->size, QMP_READ_CHUNK);
                if (n > 0) {
                        q->size += n;
                        return 0;
                }
                if (n == 0)
                        return -ECONNRESET;
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN)
                        return negative_errno();

                r = wait_fd(q->fd, POLLIN, deadline);
                if (r < 0)
                        return r;
        }
}

/* Reads the next non-empty line and parses it. A malformed line returns -EBADMSG and an
 * over-long one -EMSGSIZE. In both cases the line is consumed so the next call continues with
 * the following message. */
static int read_message(Qmp *q, uint64_t deadline, QmpMessage *ret)
{
        char *nl;
        size_t len;
        int r;

        for (;;) {
                nl = q->size > 0 ? memchr(q->buf, '\n', q->size) : NULL;

                if (q->discarding) {
                        if (!nl) {
                                q->size = 0;
                        } else {
                                buffer_consume(q, nl - q->buf + 1);
                                q->discarding = false;
                                return -EMSGSIZE;
                        }
                } else if (nl) {
                        len = nl - q->buf;
                        if (strspn(q->buf, " \t\r") >= len) {
                                buffer_consume(q, len + 1);
                                continue;
                        }
                        r = qmp_message_parse(q->buf, len, ret);
                        buffer_consume(q, len + 1);
                        return r;
                } else if (q->size > QMP_MESSAGE_MAX) {
                        q->size = 0;
                        q->discarding = true;
                }

                r = fill_buffer(q, deadline);
                if (r < 0)
                        return r;
        }
}

static int send_all(Qmp *q, const char *data, size_t size, uint64_t deadline)
{
        ssize_t n;
        int r;

        while (size > 0) {
                n = send(q->fd, data, size, MSG_NOSIGNAL);
                if (n >= 0) {
                        data += n;
                        size -= n;
                        continue;
                }
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN)
                        return negative_errno();

                r = wait_fd(q->fd, POLLOUT, deadline);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int send_command(Qmp *q, const char *command, json_object *arguments, int64_t id,
                        uint64_t deadline)
{
        _cleanup_json_ json_object *o = json_object_new_object();
        _cleanup_free_ char *line = NULL;
        const char *text;

        if (!o)
                return -ENOMEM;
        if (json_object_object_add(o, "execute", json_object_new_string(command)) < 0)
                return -ENOMEM;
        if (arguments && json_object_object_add(o, "arguments", json_object_get(arguments)) < 0)
                return -ENOMEM;
        if (json_object_object_add(o, "id", json_object_new_int64(id)) < 0)
                return -ENOMEM;

        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        if (!text || asprintf(&line, "%s\n", text) < 0)
                return -ENOMEM;

        return send_all(q, line, strlen(line), deadline);
}

static int execute_until(Qmp *q, const char *command, json_object *arguments, uint64_t deadline,
                         json_object **ret_return, char **ret_error)
{
        int64_t id = q->next_id++;
        int r;

        r = send_command(q, command, arguments, id, deadline);
        if (r < 0)
                return r;

        for (;;) {
                QmpMessage m;

                r = read_message(q, deadline, &m);
                if (r < 0)
                        return r;

                /* Events and replies to commands that timed out earlier are not ours. */
                if (m.type == QMP_MESSAGE_EVENT || m.type == QMP_MESSAGE_GREETING ||
                    (m.id != -1 && m.id != id)) {
                        log_debug("Skipping QMP message of type %d with id %lld", m.type,
                                  (long long)m.id);
                        qmp_message_done(&m);
                        continue;
                }

                if (m.type == QMP_MESSAGE_ERROR) {
                        log_debug("QMP command '%s' failed: %s: %s", command, m.error_class,
                                  m.error_desc);
                        if (ret_error) {
                                *ret_error = m.error_desc;
                                m.error_desc = NULL;
                        }
                        qmp_message_done(&m);
                        return -EIO;
                }

                if (ret_return) {
                        *ret_return = m.value;
                        m.value = NULL;
                }
                qmp_message_done(&m);
                return 0;
        }
}

int qmp_execute(Qmp *q, const char *command, json_object *arguments, uint64_t timeout_usec,
                json_object **ret_return, char **ret_error)
{
        if (!q || isempty(command))
                return -EINVAL;
        if (arguments && !json_object_is_type(arguments, json_type_object))
                return -EINVAL;

        return execute_until(q, command, arguments, deadline_after(timeout_usec), ret_return,
                             ret_error);
}

static int connect_until(const char *path, uint64_t deadline, int *ret_fd)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd, r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, strlen(path) + 1);

        for (;;) {
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                if (fd < 0)
                        return negative_errno();

                if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) >= 0) {
                        *ret_fd = fd;
                        return 0;
                }

                r = negative_errno();
                safe_close(fd);
                /* QEMU creates the socket a moment after it starts. */
                if (r != -ENOENT && r != -ECONNREFUSED && r != -EAGAIN)
                        return r;
                if (now_usec() >= deadline)
                        return -ETIMEDOUT;
                (void)poll(NULL, 0, CONNECT_RETRY_MS);
        }
}

int qmp_open(const char *path, uint64_t timeout_usec, Qmp **ret)
{
        _cleanup_(qmp_closep) Qmp *q = NULL;
        uint64_t deadline = deadline_after(timeout_usec);
        QmpMessage greeting;
        int r;

        if (isempty(path))
                return -EINVAL;

        q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        q->fd = -EBADF;
        q->next_id = 1;

        r = connect_until(path, deadline, &q->fd);
        if (r < 0)
                return r;

        r = read_message(q, deadline, &greeting);
        if (r < 0)
                return r;
        if (greeting.type != QMP_MESSAGE_GREETING) {
                qmp_message_done(&greeting);
                return -EPROTO;
        }
        qmp_message_done(&greeting);

        r = execute_until(q, "qmp_capabilities", NULL, deadline, NULL, NULL);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(q);
        return 0;
}

int qmp_query_status(Qmp *q, uint64_t timeout_usec, char **ret)
{
        _cleanup_json_ json_object *reply = NULL;
        json_object *status;
        char *s;
        int r;

        r = qmp_execute(q, "query-status", NULL, timeout_usec, &reply, NULL);
        if (r < 0)
                return r;

        if (!json_object_is_type(reply, json_type_object) ||
            !json_object_object_get_ex(reply, "status", &status) ||
            !json_object_is_type(status, json_type_string))
                return -EBADMSG;

        s = strdup(json_object_get_string(status));
        if (!s)
                return -ENOMEM;

        *ret = s;
        return 0;
}

int qmp_chardev_connected(json_object *list, const char *label)
{
        size_t n;

        if (!json_object_is_type(list, json_type_array))
                return -EBADMSG;

        n = json_object_array_length(list);
        for (size_t i = 0; i < n; i++) {
                json_object *c = json_object_array_get_idx(list, i), *l, *filename;

                if (!json_object_is_type(c, json_type_object) ||
                    !json_object_object_get_ex(c, "label", &l) ||
                    !json_object_is_type(l, json_type_string))
                        return -EBADMSG;
                if (!streq(json_object_get_string(l), label))
                        continue;
                if (!json_object_object_get_ex(c, "filename", &filename) ||
                    !json_object_is_type(filename, json_type_string))
                        return -EBADMSG;
                return !strneq(json_object_get_string(filename),
                               "disconnected:", strlen("disconnected:"));
        }
        return -ENOENT;
}
