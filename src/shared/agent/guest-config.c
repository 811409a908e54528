#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guest-config.h"
#include "macro.h"
#include "strv.h"

/* Maximum line length the parser accepts, escapes included. An argv or env entry longer than this
 * is rejected by both the formatter and the parser. */
#define GUEST_CONFIG_LINE_MAX (64u * 1024u)

/* sethostname() accepts at most HOST_NAME_MAX (64) bytes. */
#define GUEST_CONFIG_HOSTNAME_MAX 64u

GuestConfig *guest_config_free(GuestConfig *c)
{
        if (!c)
                return NULL;
        free(c->hostname);
        strv_free(c->argv);
        strv_free(c->env);
        free(c->workdir);
        free(c->user);
        free(c->agent_port);
        free(c);
        return NULL;
}

static bool hostname_is_valid(const char *s)
{
        size_t n = strlen(s);

        return n > 0 && n <= GUEST_CONFIG_HOSTNAME_MAX;
}

/* An environment entry needs a non-empty name before its first '='. */
static bool env_entry_is_valid(const char *s)
{
        const char *eq = strchr(s, '=');

        return eq && eq != s;
}

typedef struct Buffer {
        char *data;
        size_t size;
        size_t allocated;
} Buffer;

static int buffer_reserve(Buffer *b, size_t extra)
{
        size_t need, n;
        char *d;

        if (extra > GUEST_CONFIG_MAX_SIZE || b->size + extra > GUEST_CONFIG_MAX_SIZE)
                return -EFBIG;

        need = b->size + extra + 1;
        if (need <= b->allocated)
                return 0;

        n = b->allocated ? b->allocated * 2 : 256;
        while (n < need)
                n *= 2;
        d = realloc(b->data, n);
        if (!d)
                return -ENOMEM;
        b->data = d;
        b->allocated = n;
        return 0;
}

static int buffer_append(Buffer *b, const char *s, size_t n)
{
        int r;

        r = buffer_reserve(b, n);
        if (r < 0)
                return r;

        memcpy(b->data + b->size, s, n);
        b->size += n;
        b->data[b->size] = '\0';
        return 0;
}

static int buffer_append_escaped(Buffer *b, const char *s)
{
        static const char hex[] = "0123456789abcdef";

        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                char esc[4];
                size_t n;

                if (*p == '\\') {
                        memcpy(esc, "\\\\", 2);
                        n = 2;
                } else if (*p == '\n') {
                        memcpy(esc, "\\n", 2);
                        n = 2;
                } else if (*p == '\t') {
                        memcpy(esc, "\\t", 2);
                        n = 2;
                } else if (*p < 0x20 || *p == 0x7f) {
                        esc[0] = '\\';
                        esc[1] = 'x';
                        esc[2] = hex[*p >> 4];
                        esc[3] = hex[*p & 0xf];
                        n = 4;
                } else {
                        esc[0] = (char)*p;
                        n = 1;
                }

                int r = buffer_append(b, esc, n);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int buffer_append_line(Buffer *b, const char *key, const char *value)
{
        size_t start = b->size;
        int r;

        if (!value)
                return 0;

        r = buffer_append(b, key, strlen(key));
        if (r < 0)
                return r;
        r = buffer_append(b, "=", 1);
        if (r < 0)
                return r;
        r = buffer_append_escaped(b, value);
        if (r < 0)
                return r;
        if (b->size - start > GUEST_CONFIG_LINE_MAX)
                return -E2BIG;
        return buffer_append(b, "\n", 1);
}

int guest_config_format(const GuestConfig *c, char **ret)
{
        Buffer b = {};
        int r;

        if (!c || !ret)
                return -EINVAL;
        if (c->hostname && !hostname_is_valid(c->hostname))
                return -EINVAL;
        for (char **e = c->env; e && *e; e++)
                if (!env_entry_is_valid(*e))
                        return -EINVAL;

        /* An empty config is valid, so the result is never NULL. */
        r = buffer_reserve(&b, 0);
        if (r < 0)
                goto fail;
        b.data[0] = '\0';

        r = buffer_append_line(&b, "hostname", c->hostname);
        if (r < 0)
                goto fail;
        for (char **a = c->argv; a && *a; a++) {
                r = buffer_append_line(&b, "arg", *a);
                if (r < 0)
                        goto fail;
        }
        for (char **e = c->env; e && *e; e++) {
                r = buffer_append_line(&b, "env", *e);
                if (r < 0)
                        goto fail;
        }
        r = buffer_append_line(&b, "workdir", c->workdir);
        if (r < 0)
                goto fail;
        r = buffer_append_line(&b, "user", c->user);
        if (r < 0)
                goto fail;
        r = buffer_append_line(&b, "agent_port", c->agent_port);
        if (r < 0)
                goto fail;

        *ret = b.data;
        return 0;

fail:
        free(b.data);
        return r;
}

static int hex_digit(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Decodes the escaped value s[0..n) into a new NUL-terminated string. Raw control bytes, a
 * trailing backslash, an unknown escape and an escaped NUL are all -EINVAL. */
static int unescape(const char *s, size_t n, char **ret)
{
        _cleanup_free_ char *out = NULL;
        size_t k = 0;

        out = malloc(n + 1);
        if (!out)
                return -ENOMEM;

        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];

                if (c < 0x20 || c == 0x7f)
                        return -EINVAL;
                if (c != '\\') {
                        out[k++] = (char)c;
                        continue;
                }

                if (++i >= n)
                        return -EINVAL;
                switch (s[i]) {
                case '\\':
                        out[k++] = '\\';
                        break;
                case 'n':
                        out[k++] = '\n';
                        break;
                case 't':
                        out[k++] = '\t';
                        break;
                case 'x': {
                        int hi, lo;

                        if (i + 2 >= n)
                                return -EINVAL;
                        hi = hex_digit(s[i + 1]);
                        lo = hex_digit(s[i + 2]);
                        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                                return -EINVAL;
                        out[k++] = (char)(hi << 4 | lo);
                        i += 2;
                        break;
                }
                default:
                        return -EINVAL;
                }
        }

        out[k] = '\0';
        *ret = TAKE_PTR(out);
        return 0;
}

static int set_once(char **field, char *value)
{
        if (*field) {
                free(value);
                return -EINVAL;
        }
        *field = value;
        return 0;
}

static int parse_line(GuestConfig *c, const char *line, size_t n)
{
        const char *eq = memchr(line, '=', n);
        size_t keylen;
        char *value = NULL;
        int r;

        if (!eq)
                return -EINVAL;
        keylen = (size_t)(eq - line);

        r = unescape(eq + 1, n - keylen - 1, &value);
        if (r < 0)
                return r;

#define KEY_IS(k) (keylen == strlen(k) && strneq(line, k, keylen))
        if (KEY_IS("hostname")) {
                if (!hostname_is_valid(value)) {
                        free(value);
                        return -EINVAL;
                }
                return set_once(&c->hostname, value);
        }
        if (KEY_IS("arg"))
                return strv_consume(&c->argv, value);
        if (KEY_IS("env")) {
                if (!env_entry_is_valid(value)) {
                        free(value);
                        return -EINVAL;
                }
                return strv_consume(&c->env, value);
        }
        if (KEY_IS("workdir"))
                return set_once(&c->workdir, value);
        if (KEY_IS("user"))
                return set_once(&c->user, value);
        if (KEY_IS("agent_port"))
                return set_once(&c->agent_port, value);
#undef KEY_IS

        free(value);
        return -EINVAL;
}

int guest_config_parse(const char *text, size_t size, GuestConfig **ret, unsigned *ret_line)
{
        GuestConfig *c;
        unsigned line = 0;
        size_t pos = 0;
        int r = 0;

        if (!text || !ret)
                return -EINVAL;
        if (size > GUEST_CONFIG_MAX_SIZE)
                return -EFBIG;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;

        while (pos < size) {
                const char *start = text + pos;
                const char *nl = memchr(start, '\n', size - pos);
                size_t n = nl ? (size_t)(nl - start) : size - pos;

                line++;
                pos += n + (nl ? 1 : 0);

                if (n > GUEST_CONFIG_LINE_MAX || memchr(start, '\0', n)) {
                        r = -EINVAL;
                        break;
                }
                /* Blank lines are allowed and ignored. */
                if (n == 0)
                        continue;

                r = parse_line(c, start, n);
                if (r < 0)
                        break;
        }

        if (r < 0) {
                guest_config_free(c);
                if (ret_line)
                        *ret_line = line;
                return r;
        }

        *ret = c;
        return 0;
}
