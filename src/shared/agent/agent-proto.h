#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Wire protocol between the host (agent-client.c) and banger-agent in the guest, carried over
 * a virtio-serial port (QEMU) or a vsock stream (Firecracker). Shared by host and guest, so it
 * uses no library beyond libc.
 *
 * Every frame is a 16-byte header followed by the payload, all integers little-endian:
 *
 *   u32 magic        AGENT_FRAME_MAGIC, so a reader can find the next frame after garbage
 *   u32 length       payload bytes, at most AGENT_FRAME_MAX
 *   u16 type         AgentMessageType
 *   u16 flags        reserved, must be 0
 *   u32 request id   chosen by the host per request and echoed in every reply
 *
 * Payload fields are u32, i32 and u64 integers and counted strings (u32 length, then bytes with
 * no NUL). The host opens each connection with HELLO carrying a random nonce and ignores every
 * frame until the HELLO_REPLY with that nonce, so bytes left over from an earlier connection
 * cannot be taken for replies. A HELLO also makes the agent abandon whatever request it was
 * serving. Both sides reject a peer of another protocol version: the agent replies to such a
 * HELLO with its own version and then replies to every well-formed request with ERROR
 * EPROTONOSUPPORT.
 *
 * An EXEC request ends with one EXIT or one ERROR frame. In between, the agent streams the
 * command's output as STDOUT and STDERR frames of at most AGENT_OUTPUT_CHUNK_MAX bytes, and the
 * host may send STDIN, STDIN_EOF, WINDOW and RESIZE frames with the EXEC's request id.
 *
 * Flow control: each side has credit for the payload bytes it may still send, STDOUT and
 * STDERR together for the agent and STDIN for the host. Both start at AGENT_WINDOW_INITIAL when
 * the EXEC is sent. A WINDOW frame adds its value to the credit of the side that receives it.
 * The host sends WINDOW once it has written output on, and the agent once it has written input
 * into the command, so neither buffers more than a window however slow the other side is.
 * Sending past one's credit, or a WINDOW that raises the peer's credit above AGENT_WINDOW_MAX,
 * breaks the protocol: the agent replies with ERROR EPROTO and kills the command, the host
 * fails the call with -EPROTO. */

#define AGENT_PROTOCOL_VERSION  2u
#define AGENT_FRAME_MAGIC       0x41474e42u /* "BNGA" on the wire */
#define AGENT_FRAME_HEADER_SIZE 16u
#define AGENT_FRAME_MAX         (1024u * 1024u)

/* The agent sends output in chunks small enough that header and payload fit one virtio-serial
 * write, which Linux (drivers/char/virtio_console.c) passes on as one buffer of at most 32 KiB.
 * So a disconnect never cuts a frame inside the guest. */
#define AGENT_OUTPUT_CHUNK_MAX (32u * 1024u - AGENT_FRAME_HEADER_SIZE)

/* Credit each side of an EXEC starts with, and the most it may ever hold, in payload bytes. */
#define AGENT_WINDOW_INITIAL (256u * 1024u)
#define AGENT_WINDOW_MAX     (16u * 1024u * 1024u)

/* Path of banger-agent inside the initramfs, where banger-init starts it. */
#define AGENT_GUEST_PATH "/banger-agent"

/* vsock port banger-agent listens on, chosen by banger. The host reaches it through
 * Firecracker's hybrid vsock socket (see vsock.h). */
#define AGENT_VSOCK_PORT 1024U

typedef enum AgentMessageType {
        AGENT_MSG_HELLO = 1,         /* host: u32 version, u64 nonce */
        AGENT_MSG_HELLO_REPLY = 2,   /* agent: u32 version, u64 nonce, string agent info */
        AGENT_MSG_EXEC = 3,          /* host: see AgentExec */
        AGENT_MSG_STDOUT = 4,        /* agent: raw bytes */
        AGENT_MSG_STDERR = 5,        /* agent: raw bytes */
        AGENT_MSG_EXIT = 6,          /* agent: i32 exit status (-1 when signalled), i32 signal */
        AGENT_MSG_STDIN = 7,         /* host: raw bytes, for AGENT_EXEC_FLAG_STDIN */
        AGENT_MSG_STDIN_EOF = 8,     /* host: empty; no STDIN may follow */
        AGENT_MSG_SHUTDOWN = 9,      /* host: empty */
        AGENT_MSG_SHUTDOWN_ACK = 10, /* agent: empty */
        AGENT_MSG_ERROR = 11,        /* agent: i32 errno value (positive), string message */
        AGENT_MSG_PORTS = 12,        /* host: empty */
        AGENT_MSG_PORTS_REPLY = 13,  /* agent: see AgentPortList */
        AGENT_MSG_WINDOW = 14,       /* both: u32 credit added, at least 1 */
        AGENT_MSG_RESIZE = 15,       /* host: u32 rows, u32 columns, each 1 to 65535 */
        _AGENT_MSG_MAX,
        _AGENT_MSG_INVALID = -EINVAL,
} AgentMessageType;

const char *agent_message_type_to_string(AgentMessageType t);

/* Flags of an EXEC request. Agents reject unknown flags with ERROR EOPNOTSUPP. */
#define AGENT_EXEC_FLAG_TTY   (1u << 0) /* run on a pseudo-terminal, output comes as STDOUT */
#define AGENT_EXEC_FLAG_STDIN (1u << 1) /* stream stdin with STDIN frames, else /dev/null */
#define AGENT_EXEC_FLAGS_ALL  (AGENT_EXEC_FLAG_TTY | AGENT_EXEC_FLAG_STDIN)

/* Terminal size of a TTY command whose EXEC gives 0 rows or columns. */
#define AGENT_TTY_ROWS_DEFAULT 24u
#define AGENT_TTY_COLS_DEFAULT 80u

typedef struct AgentFrame {
        uint16_t type;
        uint16_t flags;
        uint32_t request_id;
        const uint8_t *payload; /* points into the decoder's input buffer */
        uint32_t payload_size;
} AgentFrame;

/* Decodes one frame from the start of buf. Returns 0 when buf contains only part of a frame, so
 * the caller reads more and calls again with the longer buffer. Returns 1 with *ret and
 * *ret_consumed set when a whole frame was decoded. Returns -EBADMSG when buf does not start
 * with a valid header: a wrong magic, a payload over AGENT_FRAME_MAX, an unknown type or
 * non-zero flags. */
int agent_frame_decode(const uint8_t *buf, size_t size, AgentFrame *ret, size_t *ret_consumed);

/* Returns how many leading bytes of buf to drop after -EBADMSG: the offset of the next
 * possible magic after the first byte, or the whole buffer minus a tail that may still grow
 * into a magic. Always at least 1 when size > 0. */
size_t agent_frame_resync(const uint8_t *buf, size_t size);

/* Returns the offset of the first complete HELLO frame that starts after the first header byte
 * of buf, or 0 when there is none. A reader waiting for the rest of an incomplete frame calls
 * this to notice that the frame was cut off by a disconnect and a new client is talking.
 * NOTE: an EXEC payload that contains the exact bytes of a HELLO frame is taken for one. */
size_t agent_frame_find_hello(const uint8_t *buf, size_t size);

/* A growable output buffer that frames are appended to. */
typedef struct AgentBuffer {
        uint8_t *data;
        size_t size;
        size_t allocated;
} AgentBuffer;

void agent_buffer_done(AgentBuffer *b);
/* Drops the first n bytes. */
void agent_buffer_consume(AgentBuffer *b, size_t n);
int agent_buffer_append(AgentBuffer *b, const void *data, size_t size);

/* Appends a frame with a raw payload. Returns -EMSGSIZE for a payload over AGENT_FRAME_MAX. */
int agent_frame_append(AgentBuffer *b, AgentMessageType type, uint32_t request_id,
                       const void *payload, size_t size);

/* Reads fields of a payload in order. Every getter returns -EBADMSG when the payload is too
 * short. */
typedef struct AgentReader {
        const uint8_t *p;
        size_t left;
} AgentReader;

static inline AgentReader agent_reader_init(const AgentFrame *f)
{
        return (AgentReader){ .p = f->payload, .left = f->payload_size };
}

int agent_read_u32(AgentReader *r, uint32_t *ret);
int agent_read_i32(AgentReader *r, int32_t *ret);
int agent_read_u64(AgentReader *r, uint64_t *ret);
/* Returns a new NUL-terminated copy. A string containing a NUL byte is -EBADMSG. */
int agent_read_string(AgentReader *r, char **ret);
/* Returns -EBADMSG unless every byte has been read. */
int agent_read_end(const AgentReader *r);

typedef struct AgentHello {
        uint32_t version;
        uint64_t nonce;
        char *info; /* HELLO_REPLY only: "banger-agent VERSION" */
} AgentHello;

typedef struct AgentExec {
        uint32_t flags;
        char **argv;   /* at least one entry */
        char **env;    /* NULL: the guest config's environment */
        char *cwd;     /* NULL: the guest config's working directory, else "/" */
        uint32_t rows; /* terminal size with AGENT_EXEC_FLAG_TTY, at most 65535; 0: default */
        uint32_t cols;
        char *user; /* "name", "uid", "name:group" or "uid:gid"; NULL: the guest config's user */
} AgentExec;

typedef struct AgentExit {
        int32_t exit_status; /* -1 when killed by a signal */
        int32_t signal;
} AgentExit;

typedef struct AgentError {
        int32_t code; /* positive errno value */
        char *message;
} AgentError;

/* A listening TCP socket or a bound, unconnected UDP socket in the guest. */
typedef struct AgentPort {
        int protocol;        /* IPPROTO_TCP or IPPROTO_UDP */
        int family;          /* AF_INET or AF_INET6 */
        uint8_t address[16]; /* network byte order; AF_INET uses the first 4 bytes */
        uint16_t port;
        uint32_t uid;  /* owner of the socket */
        uint32_t pid;  /* lowest process id holding the socket, 0 when none was found */
        char comm[16]; /* that process's name, at most 15 bytes as in /proc/PID/comm */
} AgentPort;

/* Payload of PORTS_REPLY: u32 flags (bit 0: truncated), u32 count, then per port u32 protocol
 * (6 TCP, 17 UDP), u32 IP version (4 or 6), 16 address bytes, u32 port, u32 uid, u32 pid and
 * the string comm. */
typedef struct AgentPortList {
        AgentPort *ports;
        size_t n_ports;
        bool truncated; /* the guest had more than AGENT_PORTS_MAX sockets to list */
} AgentPortList;

#define AGENT_PORTS_MAX 8192u

void agent_hello_done(AgentHello *h);
void agent_exec_done(AgentExec *e);
void agent_error_done(AgentError *e);
void agent_port_list_done(AgentPortList *l);

/* Encoders append a whole frame to b. Decoders parse the payload of a frame of the matching
 * type and return -EBADMSG for a malformed payload or one with bytes left over. */
int agent_hello_append(AgentBuffer *b, AgentMessageType type, uint32_t request_id,
                       const AgentHello *h);
int agent_hello_decode(const AgentFrame *f, AgentHello *ret);
int agent_exec_append(AgentBuffer *b, uint32_t request_id, const AgentExec *e);
int agent_exec_decode(const AgentFrame *f, AgentExec *ret);
int agent_exit_append(AgentBuffer *b, uint32_t request_id, const AgentExit *e);
int agent_exit_decode(const AgentFrame *f, AgentExit *ret);
int agent_error_append(AgentBuffer *b, uint32_t request_id, int code, const char *message);
int agent_error_decode(const AgentFrame *f, AgentError *ret);
int agent_window_append(AgentBuffer *b, uint32_t request_id, uint32_t credit);
int agent_window_decode(const AgentFrame *f, uint32_t *ret_credit);
int agent_resize_append(AgentBuffer *b, uint32_t request_id, uint32_t rows, uint32_t cols);
int agent_resize_decode(const AgentFrame *f, uint32_t *ret_rows, uint32_t *ret_cols);
/* Returns -EMSGSIZE for more than AGENT_PORTS_MAX ports. */
int agent_ports_reply_append(AgentBuffer *b, uint32_t request_id, const AgentPortList *l);
int agent_ports_reply_decode(const AgentFrame *f, AgentPortList *ret);

/* Flow control bookkeeping, the same on both sides. agent_credit_grant() adds the credit of a
 * WINDOW frame and returns -EPROTO when that raises *credit above AGENT_WINDOW_MAX.
 * agent_credit_take() subtracts the size of a payload about to be sent or just received and
 * returns -EPROTO, leaving *credit alone, when size is more than *credit. */
int agent_credit_grant(uint64_t *credit, uint32_t n);
int agent_credit_take(uint64_t *credit, size_t size);
