#pragma once

#include <stddef.h>

/* SSH keys of banger's VMs: the host key generated on the host before first boot, the
 * authorized keys of the VM's owner, and the known_hosts file that pins each host key.
 * Public key lines use OpenSSH's format "TYPE BASE64 [COMMENT]". */

#define SSH_KEYGEN_PATH       "/usr/bin/ssh-keygen"
#define SSH_HOST_KEY_NAME     "ssh_host_ed25519_key"
#define SSH_HOST_KEY_PUB_NAME SSH_HOST_KEY_NAME ".pub"

/* The maximum length of a public key line, without its trailing newline. An RSA key of 16384
 * bits, the largest that ssh-keygen makes, takes about 2.8 KiB. */
#define SSH_PUBKEY_LINE_MAX     (16 * 1024)
#define SSH_AUTHORIZED_KEYS_MAX 128

/* Generates an Ed25519 key pair as DIR/ssh_host_ed25519_key (mode 0600) and
 * DIR/ssh_host_ed25519_key.pub (0644) by running /usr/bin/ssh-keygen without a passphrase.
 * Returns -EEXIST when either file exists, -ENOENT when ssh-keygen is missing, -EIO when it
 * fails, -EBADMSG when it writes no valid key, -ETIMEDOUT when it runs longer than 30 s, or
 * another negative errno, each with a message in *ret_error. On failure neither file is left
 * behind. */
int ssh_hostkey_generate(const char *dir, const char *comment, char **ret_error);

/* The same with another ssh-keygen program, which tests use to provoke failures. */
int ssh_hostkey_generate_with(const char *keygen_path, const char *dir, const char *comment,
                              char **ret_error);

/* Parses one untrusted public key line: "TYPE BASE64" with an optional comment after a space,
 * and at most one trailing newline. TYPE is one of ssh-ed25519, ssh-rsa,
 * ecdsa-sha2-nistp256/384/521, sk-ssh-ed25519@openssh.com and
 * sk-ecdsa-sha2-nistp256@openssh.com. The base64 must be canonical, the decoded key must start
 * with the same TYPE and have that type's layout with nothing after it, and the line must be
 * at most SSH_PUBKEY_LINE_MAX bytes without control bytes. Returns -EINVAL for anything else.
 * Stores copies of TYPE and BASE64 in *ret_type and *ret_blob_b64; either may be NULL. */
int ssh_pubkey_parse(const char *line, char **ret_type, char **ret_blob_b64);

/* The same for size bytes that may contain NUL bytes, which are rejected. */
int ssh_pubkey_parse_bytes(const char *data, size_t size, char **ret_type, char **ret_blob_b64);

/* Validates each key of the NULL-terminated list (which may be NULL) with ssh_pubkey_parse()
 * and joins them into the text of an authorized_keys file, one key a line. An invalid key
 * gives -EINVAL and a message naming its 1-based index and its first 20 characters. */
int ssh_authorized_keys_build(char **keys, char **ret_text, char **ret_error);

/* Stores the fingerprint of a public key line as ssh-keygen -l prints it: "SHA256:" and the
 * unpadded base64 of the SHA-256 digest of the decoded key. Returns -EINVAL for a line that
 * ssh_pubkey_parse() rejects. */
int ssh_pubkey_fingerprint(const char *line, char **ret);

/* One VM in the known_hosts file. */
typedef struct SshKnownHost {
        const char *name;       /* VM name, which ssh reaches as NAME.banger */
        const char *id;         /* VM id, a lower-case UUID */
        const char *public_key; /* the VM's host key line, whose comment is dropped */
} SshKnownHost;

/* Replaces the file at path (mode 0644) with one line per host, "NAME.banger,ID TYPE BASE64",
 * written to a temporary sibling, fsynced and renamed over path, after which the directory is
 * fsynced. Hosts are keyed by name and id, never by address, because addresses are reused.
 * Returns -EINVAL when a name, id or key is invalid, without touching the file. */
int ssh_known_hosts_write(const char *path, const SshKnownHost *hosts, size_t n);
