#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fileio.h"
#include "hostkey.h"
#include "macro.h"

extern char **environ;

#define VM_ID  "6c1f0a52-9a0e-4b7c-8d3e-2f4a5b6c7d8e"
#define VM_ID2 "0b5d3c8e-1f2a-4e6b-9c7d-8a9b0c1d2e3f"

static char tmpdir[] = "/tmp/test-hostkey-XXXXXX";

static void setup(void)
{
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
        ck_assert_int_eq(rm_rf(tmpdir), 0);
        strcpy(tmpdir, "/tmp/test-hostkey-XXXXXX");
}

static char *path_in_tmpdir(const char *name)
{
        char *p;

        ck_assert_int_ge(asprintf(&p, "%s/%s", tmpdir, name), 0);
        return p;
}

/* Runs argv with stdout captured and stderr discarded. Returns the exit status and stores the
 * output in *ret_output. */
static int run_capture(char *const *argv, char **ret_output)
{
        posix_spawn_file_actions_t actions;
        char buf[65536];
        size_t used = 0;
        int fds[2], status;
        pid_t pid;
        ssize_t n;

        ck_assert_int_eq(pipe(fds), 0);
        ck_assert_int_eq(posix_spawn_file_actions_init(&actions), 0);
        ck_assert_int_eq(posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO), 0);
        ck_assert_int_eq(
                posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0),
                0);
        ck_assert_int_eq(posix_spawn(&pid, argv[0], &actions, NULL, argv, environ), 0);
        posix_spawn_file_actions_destroy(&actions);
        close(fds[1]);
        while ((n = read(fds[0], buf + used, sizeof(buf) - 1 - used)) > 0)
                used += (size_t)n;
        close(fds[0]);
        buf[used] = '\0';
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        *ret_output = strdup(buf);
        return WEXITSTATUS(status);
}

static char *read_text(const char *path)
{
        char *text = NULL;

        ck_assert_int_eq(read_full_file(path, 1024 * 1024, &text, NULL), 0);
        return text;
}

static mode_t file_mode(const char *path)
{
        struct stat st;

        ck_assert_int_eq(stat(path, &st), 0);
        return st.st_mode & 07777;
}

/* Generates a key with ssh-keygen in tmpdir and returns its public key line, newline
 * included. bits is NULL for the type's default. */
static char *keygen_public(const char *name, const char *type, const char *bits)
{
        _cleanup_free_ char *key = path_in_tmpdir(name), *pub = NULL, *output = NULL;
        char *argv[] = {
                "/usr/bin/ssh-keygen", "-q", "-t", (char *)type,       "-N",         "",  "-C",
                "alice@host",          "-f", key,  bits ? "-b" : NULL, (char *)bits, NULL
        };

        ck_assert_int_eq(run_capture(argv, &output), 0);
        ck_assert_int_ge(asprintf(&pub, "%s.pub", key), 0);
        return read_text(pub);
}

/* Returns the SHA256 field of "ssh-keygen -lf FILE" for a public key line. */
static char *keygen_fingerprint(const char *line)
{
        _cleanup_free_ char *file = path_in_tmpdir("fingerprint.pub"), *output = NULL;
        char *argv[] = { "/usr/bin/ssh-keygen", "-lf", file, NULL };
        char *start, *end;

        ck_assert_int_eq(write_file_atomic(file, line, strlen(line), 0644), 0);
        ck_assert_int_eq(run_capture(argv, &output), 0);
        start = strchr(output, ' ');
        ck_assert_ptr_nonnull(start);
        start++;
        end = strchr(start, ' ');
        ck_assert_ptr_nonnull(end);
        return strndup(start, end - start);
}

/* A buffer of SSH wire-format strings. */
typedef struct Blob {
        unsigned char data[4096];
        size_t size;
} Blob;

static void blob_put(Blob *b, const void *s, size_t n)
{
        ck_assert_uint_le(b->size + 4 + n, sizeof(b->data));
        b->data[b->size++] = (unsigned char)(n >> 24);
        b->data[b->size++] = (unsigned char)(n >> 16);
        b->data[b->size++] = (unsigned char)(n >> 8);
        b->data[b->size++] = (unsigned char)n;
        memcpy(b->data + b->size, s, n);
        b->size += n;
}

static void blob_put_str(Blob *b, const char *s)
{
        blob_put(b, s, strlen(s));
}

/* Returns "TYPE BASE64(blob)" followed by suffix. */
static char *blob_line(const char *type, const Blob *b, const char *suffix)
{
        char b64[sizeof(b->data) * 2];
        char *line;

        EVP_EncodeBlock((unsigned char *)b64, b->data, (int)b->size);
        ck_assert_int_ge(asprintf(&line, "%s %s%s", type, b64, suffix), 0);
        return line;
}

static char *ed25519_line(const char *text_type, const char *blob_type, size_t key_size,
                          const char *suffix)
{
        unsigned char key[64] = { 1, 2, 3 };
        Blob b = {};

        blob_put_str(&b, blob_type);
        blob_put(&b, key, key_size);
        return blob_line(text_type, &b, suffix);
}

START_TEST(hostkey_generate_writes_pair)
{
        _cleanup_free_ char *key = path_in_tmpdir(SSH_HOST_KEY_NAME);
        _cleanup_free_ char *pub = path_in_tmpdir(SSH_HOST_KEY_PUB_NAME);
        _cleanup_free_ char *error = NULL, *line = NULL, *private = NULL, *type = NULL;
        mode_t old_umask = umask(077);

        ck_assert_int_eq(ssh_hostkey_generate(tmpdir, "root@dev1", &error), 0);
        umask(old_umask);
        ck_assert_ptr_null(error);

        ck_assert_uint_eq(file_mode(key), 0600);
        ck_assert_uint_eq(file_mode(pub), 0644);
        private = read_text(key);
        ck_assert(strneq(private, "-----BEGIN OPENSSH PRIVATE KEY-----\n", 36));
        line = read_text(pub);
        ck_assert_int_eq(ssh_pubkey_parse(line, &type, NULL), 0);
        ck_assert_str_eq(type, "ssh-ed25519");
        ck_assert_ptr_nonnull(strstr(line, " root@dev1\n"));
}
END_TEST

START_TEST(hostkey_generate_existing_key_rejected)
{
        _cleanup_free_ char *pub = path_in_tmpdir(SSH_HOST_KEY_PUB_NAME);
        _cleanup_free_ char *error = NULL, *before = NULL, *after = NULL;

        ck_assert_int_eq(ssh_hostkey_generate(tmpdir, "first", NULL), 0);
        before = read_text(pub);

        ck_assert_int_eq(ssh_hostkey_generate(tmpdir, "second", &error), -EEXIST);
        ck_assert_ptr_nonnull(strstr(error, tmpdir));
        after = read_text(pub);
        ck_assert_str_eq(before, after);
}
END_TEST

START_TEST(hostkey_generate_missing_keygen)
{
        _cleanup_free_ char *key = path_in_tmpdir(SSH_HOST_KEY_NAME);
        _cleanup_free_ char *error = NULL;

        ck_assert_int_eq(ssh_hostkey_generate_with("/nonexistent/ssh-keygen", tmpdir, "c", &error),
                         -ENOENT);
        ck_assert_ptr_nonnull(strstr(error, "ssh-keygen"));
        ck_assert_ptr_nonnull(strstr(error, "openssh-client"));
        ck_assert_int_eq(access(key, F_OK), -1);
}
END_TEST

/* Stand-ins for ssh-keygen that fail in different ways, the error they cause and two parts of
 * its message. The key path is the script's last argument. */
static const struct {
        const char *script;
        int error;
        const char *message1, *message2;
} broken_keygens[] = {
        { "eval last=\\${$#}\n"
          "echo half > \"$last\"\n"
          "echo half > \"$last.pub\"\n"
          "echo 'Saving key failed: disk full' >&2\n"
          "exit 3\n",
          -EIO, "exit status 3", ": Saving key failed: disk full" },
        { "eval last=\\${$#}\n"
          "echo key > \"$last\"\n"
          "echo 'ssh-rsa notbase64' > \"$last.pub\"\n",
          -EBADMSG, "no valid Ed25519 public key", SSH_HOST_KEY_PUB_NAME },
        { "exit 0\n", -EBADMSG, "no public key", SSH_HOST_KEY_PUB_NAME },
        { "eval last=\\${$#}\n"
          "echo half > \"$last\"\n"
          "kill -9 $$\n",
          -EIO, "killed by signal 9", "ssh-keygen" },
};

START_TEST(hostkey_generate_broken_keygen)
{
        _cleanup_free_ char *key = path_in_tmpdir(SSH_HOST_KEY_NAME);
        _cleanup_free_ char *pub = path_in_tmpdir(SSH_HOST_KEY_PUB_NAME);
        _cleanup_free_ char *script = path_in_tmpdir("keygen.sh");
        _cleanup_free_ char *text = NULL, *error = NULL;

        ck_assert_int_ge(asprintf(&text, "#!/bin/sh\n%s", broken_keygens[_i].script), 0);
        ck_assert_int_eq(write_file_atomic(script, text, strlen(text), 0755), 0);
        ck_assert_int_eq(ssh_hostkey_generate_with(script, tmpdir, "c", &error),
                         broken_keygens[_i].error);
        ck_assert_ptr_nonnull(strstr(error, broken_keygens[_i].message1));
        ck_assert_ptr_nonnull(strstr(error, broken_keygens[_i].message2));
        ck_assert_int_eq(access(key, F_OK), -1);
        ck_assert_int_eq(access(pub, F_OK), -1);
}
END_TEST

START_TEST(hostkey_generate_bad_arguments)
{
        _cleanup_free_ char *missing = path_in_tmpdir("missing");
        _cleanup_free_ char *error1 = NULL, *error2 = NULL;

        ck_assert_int_eq(ssh_hostkey_generate(tmpdir, "two\nlines", &error1), -EINVAL);
        ck_assert_ptr_nonnull(strstr(error1, "'two?lines'"));
        ck_assert_int_eq(ssh_hostkey_generate(missing, "c", &error2), -ENOTDIR);
        ck_assert_ptr_nonnull(strstr(error2, missing));
        ck_assert_int_eq(ssh_hostkey_generate("", "c", NULL), -EINVAL);
}
END_TEST

/* Key types that ssh-keygen makes without a security key. */
static const struct {
        const char *keygen_type;
        const char *bits;
        const char *type;
} generated[] = {
        { "ed25519", NULL, "ssh-ed25519" },
        { "rsa", "1024", "ssh-rsa" },
        { "rsa", "3072", "ssh-rsa" },
        { "ecdsa", "256", "ecdsa-sha2-nistp256" },
        { "ecdsa", "384", "ecdsa-sha2-nistp384" },
        { "ecdsa", "521", "ecdsa-sha2-nistp521" },
};

START_TEST(pubkey_parse_generated_keys)
{
        _cleanup_free_ char *line =
                keygen_public("key", generated[_i].keygen_type, generated[_i].bits);
        _cleanup_free_ char *type = NULL, *b64 = NULL, *expected_b64 = NULL;
        _cleanup_free_ char *fingerprint = NULL, *expected_fingerprint = NULL;

        ck_assert_int_eq(ssh_pubkey_parse(line, &type, &b64), 0);
        ck_assert_str_eq(type, generated[_i].type);
        expected_b64 = strndup(line + strlen(type) + 1, strcspn(line + strlen(type) + 1, " "));
        ck_assert_str_eq(b64, expected_b64);

        ck_assert_int_eq(ssh_pubkey_fingerprint(line, &fingerprint), 0);
        expected_fingerprint = keygen_fingerprint(line);
        ck_assert_str_eq(fingerprint, expected_fingerprint);
}
END_TEST

/* Security keys need hardware to generate, so these are built from an ECDSA key and a fixed
 * Ed25519 key in the layout of OpenSSH's PROTOCOL.u2f, which ssh-keygen -l accepts. */
START_TEST(pubkey_parse_security_keys)
{
        _cleanup_free_ char *ecdsa = keygen_public("key", "ecdsa", "256");
        _cleanup_free_ char *sk_ed25519 = NULL, *sk_ecdsa = NULL, *type = NULL;
        _cleanup_free_ char *fingerprint = NULL, *expected = NULL;
        unsigned char decoded[512], key[32] = { 9, 8, 7 };
        const unsigned char *p = decoded;
        Blob ed = {}, ec = {};
        int n;

        blob_put_str(&ed, "sk-ssh-ed25519@openssh.com");
        blob_put(&ed, key, sizeof(key));
        blob_put_str(&ed, "ssh:");
        sk_ed25519 = blob_line("sk-ssh-ed25519@openssh.com", &ed, " token\n");

        /* The ECDSA blob is type, curve and point: keep curve and point, change the type. */
        ecdsa[strcspn(ecdsa, "\n")] = '\0';
        n = EVP_DecodeBlock(decoded, (unsigned char *)strchr(ecdsa, ' ') + 1,
                            (int)strcspn(strchr(ecdsa, ' ') + 1, " "));
        ck_assert_int_gt(n, 4 + 19);
        p += 4 + 19; /* the type string "ecdsa-sha2-nistp256" */
        blob_put_str(&ec, "sk-ecdsa-sha2-nistp256@openssh.com");
        memcpy(ec.data + ec.size, p, 4 + 8 + 4 + 65);
        ec.size += 4 + 8 + 4 + 65;
        blob_put_str(&ec, "ssh:");
        sk_ecdsa = blob_line("sk-ecdsa-sha2-nistp256@openssh.com", &ec, "");

        ck_assert_int_eq(ssh_pubkey_parse(sk_ed25519, &type, NULL), 0);
        ck_assert_str_eq(type, "sk-ssh-ed25519@openssh.com");
        ck_assert_int_eq(ssh_pubkey_fingerprint(sk_ed25519, &fingerprint), 0);
        expected = keygen_fingerprint(sk_ed25519);
        ck_assert_str_eq(fingerprint, expected);

        free(type);
        free(fingerprint);
        free(expected);
        ck_assert_int_eq(ssh_pubkey_parse(sk_ecdsa, &type, NULL), 0);
        ck_assert_str_eq(type, "sk-ecdsa-sha2-nistp256@openssh.com");
        ck_assert_int_eq(ssh_pubkey_fingerprint(sk_ecdsa, &fingerprint), 0);
        expected = keygen_fingerprint(sk_ecdsa);
        ck_assert_str_eq(fingerprint, expected);
}
END_TEST

START_TEST(pubkey_parse_forms_accepted)
{
        _cleanup_free_ char *plain = ed25519_line("ssh-ed25519", "ssh-ed25519", 32, "");
        _cleanup_free_ char *comment = ed25519_line("ssh-ed25519", "ssh-ed25519", 32,
                                                    " alice@host with spaces \xc3\xa9\n");
        _cleanup_free_ char *spaces = NULL, *type = NULL, *b64 = NULL;

        ck_assert_int_eq(ssh_pubkey_parse(plain, NULL, NULL), 0);
        ck_assert_int_eq(ssh_pubkey_parse(comment, &type, &b64), 0);
        ck_assert_str_eq(type, "ssh-ed25519");
        ck_assert_str_eq(b64, plain + strlen("ssh-ed25519 "));

        ck_assert_int_ge(asprintf(&spaces, "ssh-ed25519   %s", b64), 0);
        ck_assert_int_eq(ssh_pubkey_parse(spaces, NULL, NULL), 0);
}
END_TEST

START_TEST(pubkey_parse_length_limit)
{
        _cleanup_free_ char *base = ed25519_line("ssh-ed25519", "ssh-ed25519", 32, " ");
        size_t n = strlen(base);
        _cleanup_free_ char *line = malloc(20 * 1024 + 2);

        /* Exactly SSH_PUBKEY_LINE_MAX bytes plus a newline is accepted, one more byte is not. */
        memcpy(line, base, n);
        memset(line + n, 'c', SSH_PUBKEY_LINE_MAX - n);
        strcpy(line + SSH_PUBKEY_LINE_MAX, "\n");
        ck_assert_int_eq(ssh_pubkey_parse(line, NULL, NULL), 0);
        strcpy(line + SSH_PUBKEY_LINE_MAX, "c\n");
        ck_assert_int_eq(ssh_pubkey_parse(line, NULL, NULL), -EINVAL);

        memset(line + n, 'c', 20 * 1024 - n);
        line[20 * 1024] = '\0';
        ck_assert_int_eq(ssh_pubkey_parse(line, NULL, NULL), -EINVAL);
}
END_TEST

START_TEST(pubkey_parse_nul_byte)
{
        _cleanup_free_ char *line = ed25519_line("ssh-ed25519", "ssh-ed25519", 32, " comment");
        size_t n = strlen(line);

        ck_assert_int_eq(ssh_pubkey_parse_bytes(line, n, NULL, NULL), 0);
        line[n - 3] = '\0';
        ck_assert_int_eq(ssh_pubkey_parse_bytes(line, n, NULL, NULL), -EINVAL);
}
END_TEST

/* Lines built from a blob: the text type, the blob's fields and a suffix. */
typedef enum {
        BAD_TYPE_MISMATCH,
        BAD_TYPE_MISMATCH_SAME_LAYOUT,
        BAD_UNKNOWN_TYPE,
        BAD_CERTIFICATE,
        BAD_KEY_TOO_SHORT,
        BAD_KEY_TOO_LONG,
        BAD_TRAILING_BYTES,
        BAD_TRUNCATED,
        BAD_CURVE_MISMATCH,
        BAD_RSA_512,
        BAD_RSA_NEGATIVE,
        BAD_NEWLINE_INSIDE,
        BAD_TAB_SEPARATOR,
        BAD_ESCAPE_IN_COMMENT,
        BAD_TWO_NEWLINES,
        BAD_BLOB_MAX,
} BadBlob;

static char *bad_blob_line(BadBlob which)
{
        unsigned char bytes[512] = { 0x04 };
        Blob b = {};

        switch (which) {
        case BAD_TYPE_MISMATCH:
                return ed25519_line("ssh-rsa", "ssh-ed25519", 32, "");
        case BAD_TYPE_MISMATCH_SAME_LAYOUT:
                return ed25519_line("ssh-ed25519", "ssh-ed25520", 32, "");
        case BAD_UNKNOWN_TYPE:
                return ed25519_line("ssh-dss", "ssh-dss", 32, "");
        case BAD_CERTIFICATE:
                return ed25519_line("ssh-ed25519-cert-v01@openssh.com",
                                    "ssh-ed25519-cert-v01@openssh.com", 32, "");
        case BAD_KEY_TOO_SHORT:
                return ed25519_line("ssh-ed25519", "ssh-ed25519", 31, "");
        case BAD_KEY_TOO_LONG:
                return ed25519_line("ssh-ed25519", "ssh-ed25519", 33, "");
        case BAD_TRAILING_BYTES:
                blob_put_str(&b, "ssh-ed25519");
                blob_put(&b, bytes, 32);
                b.data[b.size++] = 0;
                return blob_line("ssh-ed25519", &b, "");
        case BAD_TRUNCATED:
                blob_put_str(&b, "ssh-ed25519");
                blob_put(&b, bytes, 32);
                b.size -= 5;
                return blob_line("ssh-ed25519", &b, "");
        case BAD_CURVE_MISMATCH:
                blob_put_str(&b, "ecdsa-sha2-nistp256");
                blob_put_str(&b, "nistp384");
                blob_put(&b, bytes, 65);
                return blob_line("ecdsa-sha2-nistp256", &b, "");
        case BAD_RSA_512:
                blob_put_str(&b, "ssh-rsa");
                blob_put(&b, "\x01\x00\x01", 3);
                bytes[0] = 0x00;
                bytes[1] = 0xc1;
                blob_put(&b, bytes, 65);
                return blob_line("ssh-rsa", &b, "");
        case BAD_RSA_NEGATIVE:
                blob_put_str(&b, "ssh-rsa");
                blob_put(&b, "\x01\x00\x01", 3);
                memset(bytes, 0xff, 256);
                blob_put(&b, bytes, 256);
                return blob_line("ssh-rsa", &b, "");
        case BAD_NEWLINE_INSIDE:
                return ed25519_line("ssh-ed25519", "ssh-ed25519", 32, " one\nssh-ed25519 AAAA two");
        case BAD_TAB_SEPARATOR: {
                char *line = ed25519_line("ssh-ed25519", "ssh-ed25519", 32, "");
                line[strlen("ssh-ed25519")] = '\t';
                return line;
        }
        case BAD_ESCAPE_IN_COMMENT:
                return ed25519_line("ssh-ed25519", "ssh-ed25519", 32, " \x1b[2Jcleared");
        case BAD_TWO_NEWLINES:
                return ed25519_line("ssh-ed25519", "ssh-ed25519", 32, "\n\n");
        default:
                ck_abort();
                return NULL;
        }
}

START_TEST(pubkey_parse_rejects_bad_blobs)
{
        _cleanup_free_ char *line = bad_blob_line((BadBlob)_i);

        ck_assert_msg(ssh_pubkey_parse(line, NULL, NULL) == -EINVAL, "accepted case %d: %s", _i,
                      line);
}
END_TEST

/* A valid Ed25519 key (51 bytes, no padding) and two security keys whose base64 ends in one
 * and two '=', which the bad lines below spoil in one place each. */
#define ED25519_B64 "AAAAC3NzaC1lZDI1NTE5AAAAIAECAwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define SK_B64_HEAD                                                                          \
        "AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIAECAwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" \
        "AAAAAAAAAA"
#define SK_TYPE "sk-ssh-ed25519@openssh.com "

static const char *const good_lines[] = {
        "ssh-ed25519 " ED25519_B64,
        SK_TYPE SK_B64_HEAD "BHNzaDo=",
        SK_TYPE SK_B64_HEAD "A3NzaA==",
};

static const char *const bad_lines[] = {
        "",
        "\n",
        "ssh-ed25519",
        "ssh-ed25519 ",
        " ssh-ed25519 " ED25519_B64,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAECAwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA*",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAECAwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA=AECAwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "ssh-ed25519 ====",
        "ssh-ed25519 A===",
        SK_TYPE SK_B64_HEAD "BHNzaDo",  /* missing padding */
        SK_TYPE SK_B64_HEAD "BHNzaDp=", /* non-zero bits before one '=' */
        SK_TYPE SK_B64_HEAD "A3NzaB==", /* non-zero bits before two '=' */
        SK_TYPE SK_B64_HEAD "A3Nz===",
        SK_TYPE SK_B64_HEAD "BHNzaDo=A===",
        "command=\"/bin/sh\" ssh-ed25519 " ED25519_B64,
        "SSH-ED25519 " ED25519_B64,
        "ssh-rsa " ED25519_B64,
};

START_TEST(pubkey_parse_rejects_bad_lines)
{
        ck_assert_msg(ssh_pubkey_parse(bad_lines[_i], NULL, NULL) == -EINVAL, "accepted '%s'",
                      bad_lines[_i]);
}
END_TEST

START_TEST(pubkey_parse_accepts_good_lines)
{
        ck_assert_msg(ssh_pubkey_parse(good_lines[_i], NULL, NULL) == 0, "rejected '%s'",
                      good_lines[_i]);
}
END_TEST

START_TEST(pubkey_parse_null)
{
        char *fingerprint = NULL;

        ck_assert_int_eq(ssh_pubkey_parse(NULL, NULL, NULL), -EINVAL);
        ck_assert_int_eq(ssh_pubkey_parse_bytes(NULL, 0, NULL, NULL), -EINVAL);
        ck_assert_int_eq(ssh_pubkey_fingerprint(NULL, &fingerprint), -EINVAL);
        ck_assert_int_eq(ssh_pubkey_fingerprint("ssh-ed25519 AAAA", &fingerprint), -EINVAL);
        ck_assert_ptr_null(fingerprint);
}
END_TEST

START_TEST(authorized_keys_joined)
{
        _cleanup_free_ char *a = ed25519_line("ssh-ed25519", "ssh-ed25519", 32, " alice\n");
        _cleanup_free_ char *b = keygen_public("key", "ecdsa", "256");
        _cleanup_free_ char *text = NULL, *empty = NULL, *expected = NULL;
        char *keys[] = { a, b, NULL };
        char *none[] = { NULL };

        b[strcspn(b, "\n")] = '\0';
        ck_assert_int_eq(ssh_authorized_keys_build(keys, &text, NULL), 0);
        ck_assert_int_ge(asprintf(&expected, "%s%s\n", a, b), 0);
        ck_assert_str_eq(text, expected);

        ck_assert_int_eq(ssh_authorized_keys_build(none, &empty, NULL), 0);
        ck_assert_str_eq(empty, "");
        free(empty);
        empty = NULL;
        ck_assert_int_eq(ssh_authorized_keys_build(NULL, &empty, NULL), 0);
        ck_assert_str_eq(empty, "");
}
END_TEST

START_TEST(authorized_keys_bad_key_named)
{
        _cleanup_free_ char *a = ed25519_line("ssh-ed25519", "ssh-ed25519", 32, "");
        _cleanup_free_ char *text = NULL, *error = NULL, *error2 = NULL;
        char *keys[] = { a, (char *)"ssh-rsa \x1b[31mAAAAB3NzaC1yc2EAAAADAQAB", NULL };
        char *short_keys[] = { a, a, (char *)"ssh-foo", NULL };

        ck_assert_int_eq(ssh_authorized_keys_build(keys, &text, &error), -EINVAL);
        ck_assert_ptr_null(text);
        ck_assert_ptr_nonnull(strstr(error, "SSH key 2 "));
        ck_assert_ptr_nonnull(strstr(error, "'ssh-rsa ?[31mAAAAB3N...'"));
        ck_assert_ptr_nonnull(strstr(error, "control character"));
        ck_assert_ptr_nonnull(strstr(error, "--ssh-key"));

        ck_assert_int_eq(ssh_authorized_keys_build(short_keys, &text, &error2), -EINVAL);
        ck_assert_ptr_nonnull(strstr(error2, "SSH key 3 ('ssh-foo')"));
}
END_TEST

START_TEST(authorized_keys_too_many)
{
        _cleanup_free_ char *a = ed25519_line("ssh-ed25519", "ssh-ed25519", 32, "");
        char *keys[SSH_AUTHORIZED_KEYS_MAX + 2];
        _cleanup_free_ char *text = NULL, *error = NULL;

        for (size_t i = 0; i < SSH_AUTHORIZED_KEYS_MAX + 1; i++)
                keys[i] = a;
        keys[SSH_AUTHORIZED_KEYS_MAX + 1] = NULL;
        ck_assert_int_eq(ssh_authorized_keys_build(keys, &text, &error), -EINVAL);
        ck_assert_ptr_nonnull(strstr(error, "129 SSH keys"));

        keys[SSH_AUTHORIZED_KEYS_MAX] = NULL;
        ck_assert_int_eq(ssh_authorized_keys_build(keys, &text, NULL), 0);
        ck_assert_uint_eq(strlen(text), SSH_AUTHORIZED_KEYS_MAX * (strlen(a) + 1));
}
END_TEST

START_TEST(known_hosts_content_exact)
{
        _cleanup_free_ char *path = path_in_tmpdir("known_hosts");
        _cleanup_free_ char *a = keygen_public("a", "ed25519", NULL);
        _cleanup_free_ char *b = keygen_public("b", "rsa", "1024");
        _cleanup_free_ char *text = NULL, *expected = NULL, *type_a = NULL, *b64_a = NULL;
        _cleanup_free_ char *type_b = NULL, *b64_b = NULL;
        SshKnownHost hosts[] = {
                { .name = "dev1", .id = VM_ID, .public_key = a },
                { .name = "web-2", .id = VM_ID2, .public_key = b },
        };
        mode_t old_umask = umask(077);

        ck_assert_int_eq(write_file_atomic(path, "old\n", 4, 0600), 0);
        ck_assert_int_eq(ssh_known_hosts_write(path, hosts, 2), 0);
        umask(old_umask);

        ck_assert_int_eq(ssh_pubkey_parse(a, &type_a, &b64_a), 0);
        ck_assert_int_eq(ssh_pubkey_parse(b, &type_b, &b64_b), 0);
        ck_assert_int_ge(asprintf(&expected,
                                  "dev1.banger," VM_ID " %s %s\nweb-2.banger," VM_ID2 " %s %s\n",
                                  type_a, b64_a, type_b, b64_b),
                         0);
        text = read_text(path);
        ck_assert_str_eq(text, expected);
        ck_assert_uint_eq(file_mode(path), 0644);
}
END_TEST

START_TEST(known_hosts_read_by_ssh_keygen)
{
        _cleanup_free_ char *path = path_in_tmpdir("known_hosts");
        _cleanup_free_ char *a = keygen_public("a", "ed25519", NULL);
        _cleanup_free_ char *b = keygen_public("b", "ecdsa", "384");
        _cleanup_free_ char *by_name = NULL, *by_id = NULL, *other = NULL, *b64 = NULL;
        char *find_name[] = { "/usr/bin/ssh-keygen", "-F", "web-2.banger", "-f", path, NULL };
        char *find_id[] = { "/usr/bin/ssh-keygen", "-F", VM_ID2, "-f", path, NULL };
        char *find_other[] = { "/usr/bin/ssh-keygen", "-F", "dev3.banger", "-f", path, NULL };
        SshKnownHost hosts[] = {
                { .name = "dev1", .id = VM_ID, .public_key = a },
                { .name = "web-2", .id = VM_ID2, .public_key = b },
        };

        ck_assert_int_eq(ssh_known_hosts_write(path, hosts, 2), 0);
        ck_assert_int_eq(ssh_pubkey_parse(b, NULL, &b64), 0);

        ck_assert_int_eq(run_capture(find_name, &by_name), 0);
        ck_assert_ptr_nonnull(strstr(by_name, "found: line 2"));
        ck_assert_ptr_nonnull(strstr(by_name, b64));
        ck_assert_int_eq(run_capture(find_id, &by_id), 0);
        ck_assert_ptr_nonnull(strstr(by_id, b64));
        ck_assert_int_eq(run_capture(find_other, &other), 1);
}
END_TEST

START_TEST(known_hosts_bad_input_keeps_file)
{
        _cleanup_free_ char *path = path_in_tmpdir("known_hosts");
        _cleanup_free_ char *a = ed25519_line("ssh-ed25519", "ssh-ed25519", 32, "");
        _cleanup_free_ char *text = NULL;
        const SshKnownHost bad[] = {
                { .name = "Dev1", .id = VM_ID, .public_key = a },
                { .name = "dev1,*", .id = VM_ID, .public_key = a },
                { .name = "dev1", .id = "6C1F0A52-9A0E-4B7C-8D3E-2F4A5B6C7D8E", .public_key = a },
                { .name = "dev1", .id = "*", .public_key = a },
                { .name = "dev1", .id = VM_ID, .public_key = "ssh-ed25519 AAAA" },
                { .name = "dev1", .id = VM_ID, .public_key = NULL },
                { .name = NULL, .id = VM_ID, .public_key = a },
        };

        ck_assert_int_eq(write_file_atomic(path, "old\n", 4, 0644), 0);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                SshKnownHost hosts[] = { { .name = "ok", .id = VM_ID2, .public_key = a }, bad[i] };
                ck_assert_msg(ssh_known_hosts_write(path, hosts, 2) == -EINVAL, "accepted %zu", i);
        }
        text = read_text(path);
        ck_assert_str_eq(text, "old\n");
}
END_TEST

START_TEST(known_hosts_empty)
{
        _cleanup_free_ char *path = path_in_tmpdir("known_hosts");
        _cleanup_free_ char *text = NULL;

        ck_assert_int_eq(ssh_known_hosts_write(path, NULL, 0), 0);
        text = read_text(path);
        ck_assert_str_eq(text, "");
}
END_TEST

static Suite *hostkey_suite(void)
{
        Suite *s = suite_create("hostkey");
        TCase *tc = tcase_create("core");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, hostkey_generate_writes_pair);
        tcase_add_test(tc, hostkey_generate_existing_key_rejected);
        tcase_add_test(tc, hostkey_generate_missing_keygen);
        tcase_add_loop_test(tc, hostkey_generate_broken_keygen, 0, ELEMENTSOF(broken_keygens));
        tcase_add_test(tc, hostkey_generate_bad_arguments);
        tcase_add_loop_test(tc, pubkey_parse_generated_keys, 0, ELEMENTSOF(generated));
        tcase_add_test(tc, pubkey_parse_security_keys);
        tcase_add_test(tc, pubkey_parse_forms_accepted);
        tcase_add_test(tc, pubkey_parse_length_limit);
        tcase_add_test(tc, pubkey_parse_nul_byte);
        tcase_add_loop_test(tc, pubkey_parse_rejects_bad_blobs, 0, BAD_BLOB_MAX);
        tcase_add_loop_test(tc, pubkey_parse_rejects_bad_lines, 0, ELEMENTSOF(bad_lines));
        tcase_add_loop_test(tc, pubkey_parse_accepts_good_lines, 0, ELEMENTSOF(good_lines));
        tcase_add_test(tc, pubkey_parse_null);
        tcase_add_test(tc, authorized_keys_joined);
        tcase_add_test(tc, authorized_keys_bad_key_named);
        tcase_add_test(tc, authorized_keys_too_many);
        tcase_add_test(tc, known_hosts_content_exact);
        tcase_add_test(tc, known_hosts_read_by_ssh_keygen);
        tcase_add_test(tc, known_hosts_bad_input_keeps_file);
        tcase_add_test(tc, known_hosts_empty);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(hostkey_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
