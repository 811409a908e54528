#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "hostkey.h"
#include "log.h"
#include "macro.h"
#include "name.h"

#define KEYGEN_TIMEOUT_USEC (30 * 1000000ULL)
#define KEYGEN_OUTPUT_MAX   4096
#define COMMENT_MAX         255
#define ED25519_KEY_SIZE    32
#define RSA_MIN_BITS        1024 /* the range that ssh-keygen 9.2 accepts for -b */
#define RSA_MAX_BITS        16384
#define UUID_LENGTH         36
#define KNOWN_HOSTS_DOMAIN  ".banger"

/* The layout of each key type's decoded public key, after the type name (RFC 4253, RFC 5656
 * and OpenSSH's PROTOCOL.u2f). */
typedef struct SshKeyType {
        const char *name;
        const char *curve; /* the curve name that follows the type name, for ECDSA */
        size_t key_size;   /* exact size of the public key string, or 0 for RSA */
        bool application;  /* a security key: an application string follows the key */
} SshKeyType;

static const SshKeyType key_types[] = {
        { "ssh-ed25519", NULL, ED25519_KEY_SIZE, false },
        { "sk-ssh-ed25519@openssh.com", NULL, ED25519_KEY_SIZE, true },
        { "ssh-rsa", NULL, 0, false },
        /* ECDSA points are uncompressed: 0x04 followed by both coordinates. */
        { "ecdsa-sha2-nistp256", "nistp256", 1 + 2 * 32, false },
        { "ecdsa-sha2-nistp384", "nistp384", 1 + 2 * 48, false },
        { "ecdsa-sha2-nistp521", "nistp521", 1 + 2 * 66, false },
        { "sk-ecdsa-sha2-nistp256@openssh.com", "nistp256", 1 + 2 * 32, true },
};

/* A parsed public key line. type and b64 point into the line, and blob is allocated. */
typedef struct ParsedKey {
        const char *type;
        size_t type_len;
        const char *b64;
        size_t b64_len;
        uint8_t *blob;
        size_t blob_size;
} ParsedKey;

static void parsed_key_done(ParsedKey *k)
{
        free(k->blob);
}

static int fail(char **ret_error, int error, const char *format, ...)
        __attribute__((format(printf, 3, 4)));

static int fail(char **ret_error, int error, const char *format, ...)
{
        va_list ap;

        if (ret_error && !*ret_error) {
                va_start(ap, format);
                if (vasprintf(ret_error, format, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return error;
}

static int base64_value(char c)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

/* Decodes padded base64 and rejects every other spelling of the same bytes: characters
 * outside the alphabet, '=' anywhere but the end, and non-zero bits in the last character. */
static int base64_decode_strict(const char *s, size_t n, uint8_t **ret, size_t *ret_size)
{
        _cleanup_free_ uint8_t *out = NULL;
        size_t pad = 0, size = 0;

        if (n == 0 || n % 4 != 0)
                return -EINVAL;
        if (s[n - 1] == '=')
                pad = s[n - 2] == '=' ? 2 : 1;

        out = malloc(n / 4 * 3);
        if (!out)
                return -ENOMEM;

        for (size_t i = 0; i < n; i += 4) {
                bool last = i + 4 == n;
                int v[4];

                for (size_t j = 0; j < 4; j++) {
                        v[j] = last && j >= 4 - pad ? 0 : base64_value(s[i + j]);
                        if (v[j] < 0)
                                return -EINVAL;
                }
                if (last && ((pad == 1 && (v[2] & 0x3)) || (pad == 2 && (v[1] & 0xf))))
                        return -EINVAL;

                out[size++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
                if (!last || pad < 2)
                        out[size++] = (uint8_t)((v[1] & 0xf) << 4 | v[2] >> 2);
                if (!last || pad < 1)
                        out[size++] = (uint8_t)((v[2] & 0x3) << 6 | v[3]);
        }

        *ret = TAKE_PTR(out);
        *ret_size = size;
        return 0;
}

/* Reads one SSH wire-format string: a 32-bit big-endian length and that many bytes. */
static bool read_string(const uint8_t **p, size_t *left, const uint8_t **ret, size_t *ret_size)
{
        uint32_t n;

        if (*left < 4)
                return false;
        n = (uint32_t)(*p)[0] << 24 | (uint32_t)(*p)[1] << 16 | (uint32_t)(*p)[2] << 8 | (*p)[3];
        if (n > *left - 4)
                return false;
        *ret = *p + 4;
        *ret_size = n;
        *p += 4 + n;
        *left -= 4 + n;
        return true;
}

static bool string_is(const uint8_t *s, size_t n, const char *expected)
{
        return n == strlen(expected) && memcmp(s, expected, n) == 0;
}

/* Checks an RSA modulus: a positive multiple-precision integer of RSA_MIN_BITS to
 * RSA_MAX_BITS. */
static const char *check_rsa_modulus(const uint8_t *n, size_t size)
{
        size_t bits, lead;

        if (size == 0 || (n[0] & 0x80))
                return "the RSA modulus is not a positive integer";
        while (size > 0 && n[0] == 0) {
                n++;
                size--;
        }
        if (size == 0)
                return "the RSA modulus is zero";
        /* The leading zero bits of the first byte, which __builtin_clz() counts in an int. */
        lead = (size_t)__builtin_clz(n[0]) - (sizeof(unsigned) - 1) * 8;
        bits = size * 8 - lead;
        if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS)
                return "the RSA modulus is shorter than 1024 or longer than 16384 bits";
        return NULL;
}

/* Checks that the decoded key is TYPE followed by exactly the fields of that type. Returns a
 * reason for the rejection, or NULL. */
static const char *check_blob(const SshKeyType *t, const uint8_t *blob, size_t size)
{
        const uint8_t *p = blob, *s;
        size_t left = size, n;

        if (!read_string(&p, &left, &s, &n))
                return "the decoded key is truncated";
        if (!string_is(s, n, t->name))
                return "the key type inside the base64 data differs from the type before it";

        if (!t->key_size) {
                const uint8_t *e, *modulus;
                size_t e_size, modulus_size;

                if (!read_string(&p, &left, &e, &e_size) ||
                    !read_string(&p, &left, &modulus, &modulus_size))
                        return "the decoded key is truncated";
                if (e_size == 0 || (e[0] & 0x80))
                        return "the RSA exponent is not a positive integer";
                const char *reason = check_rsa_modulus(modulus, modulus_size);
                if (reason)
                        return reason;
        } else {
                if (t->curve) {
                        if (!read_string(&p, &left, &s, &n))
                                return "the decoded key is truncated";
                        if (!string_is(s, n, t->curve))
                                return "the curve name inside the key does not match its type";
                }
                if (!read_string(&p, &left, &s, &n))
                        return "the decoded key is truncated";
                if (n != t->key_size || (t->curve && s[0] != 0x04))
                        return "the public key has the wrong size for its type";
                if (t->application && !read_string(&p, &left, &s, &n))
                        return "the decoded key is truncated";
        }

        if (left != 0)
                return "the decoded key has trailing bytes";
        return NULL;
}

static const SshKeyType *key_type_find(const char *name, size_t n)
{
        for (size_t i = 0; i < ELEMENTSOF(key_types); i++)
                if (strlen(key_types[i].name) == n && memcmp(key_types[i].name, name, n) == 0)
                        return &key_types[i];
        return NULL;
}

/* Splits and checks a public key line. On -EINVAL, *ret_reason names the rule it breaks. */
static int pubkey_parse(const char *data, size_t size, ParsedKey *ret, const char **ret_reason)
{
        ParsedKey k = {};
        const SshKeyType *t;
        const char *p, *end;
        int r;

        *ret_reason = NULL;
        if (size > 0 && data[size - 1] == '\n')
                size--;
        if (size == 0) {
                *ret_reason = "the key is empty";
                return -EINVAL;
        }
        if (size > SSH_PUBKEY_LINE_MAX) {
                *ret_reason = "the key is longer than 16384 bytes";
                return -EINVAL;
        }
        for (size_t i = 0; i < size; i++)
                if ((uint8_t)data[i] < 0x20 || data[i] == 0x7f) {
                        *ret_reason = "the key contains a control character or a line break";
                        return -EINVAL;
                }

        end = data + size;
        p = memchr(data, ' ', size);
        if (!p) {
                *ret_reason = "the base64 key data after the key type is missing";
                return -EINVAL;
        }
        k.type = data;
        k.type_len = p - data;
        t = key_type_find(k.type, k.type_len);
        if (!t) {
                *ret_reason = "the key type is not one of ssh-ed25519, ssh-rsa, ecdsa-sha2-*, "
                              "sk-ssh-ed25519@openssh.com, sk-ecdsa-sha2-nistp256@openssh.com";
                return -EINVAL;
        }

        while (p < end && *p == ' ')
                p++;
        k.b64 = p;
        while (p < end && *p != ' ')
                p++;
        k.b64_len = p - k.b64;

        r = base64_decode_strict(k.b64, k.b64_len, &k.blob, &k.blob_size);
        if (r == -EINVAL)
                *ret_reason = "the key data is not valid base64";
        if (r < 0)
                return r;

        *ret_reason = check_blob(t, k.blob, k.blob_size);
        if (*ret_reason) {
                parsed_key_done(&k);
                return -EINVAL;
        }

        *ret = k;
        return 0;
}

int ssh_pubkey_parse_bytes(const char *data, size_t size, char **ret_type, char **ret_blob_b64)
{
        _cleanup_(parsed_key_done) ParsedKey k = {};
        _cleanup_free_ char *type = NULL, *b64 = NULL;
        const char *reason;
        int r;

        if (!data)
                return -EINVAL;
        r = pubkey_parse(data, size, &k, &reason);
        if (r < 0)
                return r;

        type = strndup(k.type, k.type_len);
        b64 = strndup(k.b64, k.b64_len);
        if (!type || !b64)
                return -ENOMEM;

        if (ret_type)
                *ret_type = TAKE_PTR(type);
        if (ret_blob_b64)
                *ret_blob_b64 = TAKE_PTR(b64);
        return 0;
}

int ssh_pubkey_parse(const char *line, char **ret_type, char **ret_blob_b64)
{
        if (!line)
                return -EINVAL;
        return ssh_pubkey_parse_bytes(line, strlen(line), ret_type, ret_blob_b64);
}

int ssh_pubkey_fingerprint(const char *line, char **ret)
{
        _cleanup_(parsed_key_done) ParsedKey k = {};
        unsigned char digest[EVP_MAX_MD_SIZE];
        /* 4 base64 characters per 3 bytes, plus the NUL that EVP_EncodeBlock() appends. */
        char b64[(EVP_MAX_MD_SIZE + 2) / 3 * 4 + 1];
        const char *reason;
        unsigned digest_size = 0;
        int n, r;

        if (!line)
                return -EINVAL;
        r = pubkey_parse(line, strlen(line), &k, &reason);
        if (r < 0)
                return r;

        if (EVP_Digest(k.blob, k.blob_size, digest, &digest_size, EVP_sha256(), NULL) != 1)
                return -EIO;
        n = EVP_EncodeBlock((unsigned char *)b64, digest, (int)digest_size);
        while (n > 0 && b64[n - 1] == '=')
                n--;
        b64[n] = '\0';

        if (asprintf(ret, "SHA256:%s", b64) < 0)
                return -ENOMEM;
        return 0;
}

/* Copies the start of an untrusted string for an error message, with bytes outside printable
 * ASCII replaced by '?' so the message cannot carry terminal escapes. */
static void printable_prefix(const char *s, size_t max, char *buf)
{
        size_t i;

        for (i = 0; i < max && s[i]; i++)
                buf[i] = (uint8_t)s[i] >= 0x20 && (uint8_t)s[i] < 0x7f ? s[i] : '?';
        buf[i] = '\0';
}

int ssh_authorized_keys_build(char **keys, char **ret_text, char **ret_error)
{
        _cleanup_free_ char *text = NULL;
        size_t n = 0, size = 0;
        FILE *f;

        for (char **k = keys; k && *k; k++)
                n++;
        if (n > SSH_AUTHORIZED_KEYS_MAX)
                return fail(ret_error, -EINVAL,
                            "%zu SSH keys were given, more than the maximum of %d: pass fewer "
                            "--ssh-key options",
                            n, SSH_AUTHORIZED_KEYS_MAX);

        f = open_memstream(&text, &size);
        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                _cleanup_(parsed_key_done) ParsedKey k = {};
                const char *reason;
                char prefix[21];
                size_t len = strlen(keys[i]);
                int r;

                r = pubkey_parse(keys[i], len, &k, &reason);
                if (r < 0) {
                        fclose(f);
                        if (r != -EINVAL)
                                return r;
                        printable_prefix(keys[i], 20, prefix);
                        return fail(ret_error, r,
                                    "SSH key %zu ('%s%s') is invalid, because %s: pass a valid "
                                    ".pub file with --ssh-key",
                                    i + 1, prefix, len > 20 ? "..." : "", reason);
                }
                /* The line without its newline, so each key ends in exactly one. */
                if (len > 0 && keys[i][len - 1] == '\n')
                        len--;
                fwrite(keys[i], 1, len, f);
                fputc('\n', f);
        }
        if (fclose(f) != 0)
                return -ENOMEM;

        *ret_text = TAKE_PTR(text);
        return 0;
}

static bool uuid_is_valid(const char *s)
{
        if (strlen(s) != UUID_LENGTH)
                return false;
        for (size_t i = 0; i < UUID_LENGTH; i++) {
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;

                if (dash ? s[i] != '-' : !strchr("0123456789abcdef", s[i]))
                        return false;
        }
        return true;
}

int ssh_known_hosts_write(const char *path, const SshKnownHost *hosts, size_t n)
{
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        FILE *f;

        if (isempty(path) || (n > 0 && !hosts))
                return -EINVAL;

        f = open_memstream(&text, &size);
        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                _cleanup_(parsed_key_done) ParsedKey k = {};
                const SshKnownHost *h = &hosts[i];
                const char *reason;
                int r;

                if (!h->name || !h->id || !h->public_key || vm_name_check(h->name, NULL) < 0 ||
                    !uuid_is_valid(h->id)) {
                        fclose(f);
                        return -EINVAL;
                }
                r = pubkey_parse(h->public_key, strlen(h->public_key), &k, &reason);
                if (r < 0) {
                        fclose(f);
                        return r;
                }
                fprintf(f, "%s" KNOWN_HOSTS_DOMAIN ",%s %.*s %.*s\n", h->name, h->id,
                        (int)k.type_len, k.type, (int)k.b64_len, k.b64);
        }
        if (fclose(f) != 0)
                return -ENOMEM;

        return write_file_atomic(path, text, size, 0644);
}

static uint64_t now_usec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000ULL;
}

/* Reads fd until end-of-file or the deadline, keeping the first size - 1 bytes in buf as a
 * NUL-terminated string and dropping the rest. */
static int drain_output(int fd, uint64_t deadline, char *buf, size_t size)
{
        size_t used = 0;
        char discard[512];

        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                uint64_t now = now_usec();
                ssize_t k;

                buf[used] = '\0';
                if (now >= deadline)
                        return -ETIMEDOUT;
                int r = poll(&p, 1, (int)((deadline - now + 999) / 1000));
                if (r < 0 && errno != EINTR)
                        return negative_errno();
                if (r <= 0)
                        continue;

                if (used < size - 1)
                        k = read(fd, buf + used, size - 1 - used);
                else
                        k = read(fd, discard, sizeof(discard));
                if (k < 0 && errno != EINTR)
                        return negative_errno();
                if (k == 0)
                        return 0;
                if (k > 0 && used < size - 1)
                        used += (size_t)k;
        }
}

/* Makes the program's output fit on one line of an error message. */
static void output_to_line(char *s)
{
        size_t n;

        for (char *p = s; *p; p++)
                if ((uint8_t)*p < 0x20 || *p == 0x7f)
                        *p = ' ';
        n = strlen(s);
        while (n > 0 && s[n - 1] == ' ')
                s[--n] = '\0';
}

/* Starts keygen_path with argv, stdin on /dev/null and stdout and stderr on out_fd, with an
 * empty environment, default signal handling and no other file descriptors. */
static int keygen_spawn(const char *keygen_path, char *const *argv, int out_fd, pid_t *ret_pid)
{
        char *const envp[] = { (char *)"LC_ALL=C", NULL };
        posix_spawn_file_actions_t actions;
        posix_spawnattr_t attr;
        sigset_t none, all;
        int r;

        sigemptyset(&none);
        sigfillset(&all);

        r = posix_spawnattr_init(&attr);
        if (r != 0)
                return -r;
        r = posix_spawn_file_actions_init(&actions);
        if (r != 0) {
                posix_spawnattr_destroy(&attr);
                return -r;
        }

        /* A daemon on sd-event blocks the signals it handles, so the child gets an empty mask
         * and default handlers. */
        r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        if (r == 0)
                r = posix_spawnattr_setsigmask(&attr, &none);
        if (r == 0)
                r = posix_spawnattr_setsigdefault(&attr, &all);
        if (r == 0)
                r = posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY,
                                                     0);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&actions, out_fd, STDERR_FILENO);
        if (r == 0)
                r = posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
        if (r == 0)
                r = posix_spawn(ret_pid, keygen_path, &actions, &attr, argv, envp);

        posix_spawn_file_actions_destroy(&actions);
        posix_spawnattr_destroy(&attr);
        return -r;
}

static int wait_exit(pid_t pid, int *ret_status)
{
        while (waitpid(pid, ret_status, 0) < 0)
                if (errno != EINTR)
                        return negative_errno();
        return 0;
}

/* Runs ssh-keygen to write the key pair at key_path and key_path.pub. */
static int keygen_run(const char *keygen_path, const char *key_path, const char *comment,
                      char **ret_error)
{
        char *argv[] = { (char *)"ssh-keygen", (char *)"-q",     (char *)"-t", (char *)"ed25519",
                         (char *)"-N",         (char *)"",       (char *)"-C", (char *)comment,
                         (char *)"-f",         (char *)key_path, NULL };
        char output[KEYGEN_OUTPUT_MAX];
        int pipe_fds[2], status = 0, r;
        pid_t pid;

        if (pipe2(pipe_fds, O_CLOEXEC) < 0)
                return negative_errno();
        r = keygen_spawn(keygen_path, argv, pipe_fds[1], &pid);
        safe_close(pipe_fds[1]);
        if (r == -ENOENT) {
                safe_close(pipe_fds[0]);
                return fail(ret_error, r,
                            "ssh-keygen ('%s') is missing: install the package openssh-client",
                            keygen_path);
        }
        if (r < 0) {
                safe_close(pipe_fds[0]);
                return fail(ret_error, r, "Failed to run ssh-keygen ('%s'): %s", keygen_path,
                            strerror(-r));
        }

        r = drain_output(pipe_fds[0], now_usec() + KEYGEN_TIMEOUT_USEC, output, sizeof(output));
        safe_close(pipe_fds[0]);
        if (r < 0)
                (void)kill(pid, SIGKILL);
        if (wait_exit(pid, &status) < 0)
                status = -1;

        if (r == -ETIMEDOUT)
                return fail(ret_error, r, "ssh-keygen ('%s') did not finish within 30 s",
                            keygen_path);
        if (r < 0)
                return fail(ret_error, r, "Failed to read the output of ssh-keygen ('%s'): %s",
                            keygen_path, strerror(-r));

        output_to_line(output);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
        if (WIFSIGNALED(status))
                return fail(ret_error, -EIO, "ssh-keygen ('%s') was killed by signal %d: %s",
                            keygen_path, WTERMSIG(status), output);
        return fail(ret_error, -EIO, "ssh-keygen ('%s') failed with exit status %d: %s",
                    keygen_path, WIFEXITED(status) ? WEXITSTATUS(status) : -1, output);
}

/* Checks the pair that ssh-keygen wrote and sets the modes that the work disk also uses. */
static int keygen_verify(const char *key_path, const char *pub_path, char **ret_error)
{
        _cleanup_free_ char *pub = NULL, *type = NULL;
        size_t size = 0;
        int r;

        r = read_full_file(pub_path, SSH_PUBKEY_LINE_MAX + 1, &pub, &size);
        if (r < 0)
                return fail(ret_error, -EBADMSG, "ssh-keygen wrote no public key to '%s': %s",
                            pub_path, strerror(-r));
        r = ssh_pubkey_parse_bytes(pub, size, &type, NULL);
        if (r < 0 || !streq(type, "ssh-ed25519"))
                return fail(ret_error, -EBADMSG,
                            "ssh-keygen wrote no valid Ed25519 public key to '%s'", pub_path);

        if (chmod(key_path, 0600) < 0 || chmod(pub_path, 0644) < 0) {
                r = negative_errno();
                return fail(ret_error, r, "Failed to set the mode of the SSH host key '%s': %s",
                            key_path, strerror(-r));
        }
        return 0;
}

static bool comment_is_valid(const char *comment)
{
        if (strlen(comment) > COMMENT_MAX)
                return false;
        for (const char *p = comment; *p; p++)
                if ((uint8_t)*p < 0x20 || *p == 0x7f)
                        return false;
        return true;
}

int ssh_hostkey_generate_with(const char *keygen_path, const char *dir, const char *comment,
                              char **ret_error)
{
        _cleanup_free_ char *key_path = NULL, *pub_path = NULL;
        char shown[65];
        struct stat st;
        int r;

        if (isempty(keygen_path) || isempty(dir) || !comment)
                return -EINVAL;
        if (!comment_is_valid(comment)) {
                printable_prefix(comment, sizeof(shown) - 1, shown);
                return fail(ret_error, -EINVAL,
                            "SSH host key comment '%s' is invalid: use at most %d characters "
                            "without control characters",
                            shown, COMMENT_MAX);
        }
        if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
                return fail(ret_error, -ENOTDIR,
                            "Directory '%s' for the SSH host key does not exist: create it first",
                            dir);

        if (asprintf(&key_path, "%s/" SSH_HOST_KEY_NAME, dir) < 0 ||
            asprintf(&pub_path, "%s/" SSH_HOST_KEY_PUB_NAME, dir) < 0)
                return -ENOMEM;
        if (access(key_path, F_OK) == 0 || access(pub_path, F_OK) == 0)
                return fail(ret_error, -EEXIST,
                            "An SSH host key already exists in '%s': remove %s and %s first", dir,
                            SSH_HOST_KEY_NAME, SSH_HOST_KEY_PUB_NAME);

        r = keygen_run(keygen_path, key_path, comment, ret_error);
        if (r >= 0)
                r = keygen_verify(key_path, pub_path, ret_error);
        if (r < 0) {
                (void)unlink(key_path);
                (void)unlink(pub_path);
                return r;
        }

        log_debug("ssh: generated host key '%s'", key_path);
        return 0;
}

int ssh_hostkey_generate(const char *dir, const char *comment, char **ret_error)
{
        return ssh_hostkey_generate_with(SSH_KEYGEN_PATH, dir, comment, ret_error);
}
