#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "agent-proto.h"
#include "macro.h"
#include "strv.h"

/* Decodes the single frame in b and checks that it takes all of b. */
static AgentFrame decode_whole(const AgentBuffer *b)
{
        AgentFrame f;
        size_t consumed = 0;

        ck_assert_int_eq(agent_frame_decode(b->data, b->size, &f, &consumed), 1);
        ck_assert_uint_eq(consumed, b->size);
        return f;
}

START_TEST(test_hello_round_trip)
{
        AgentBuffer b = {};
        AgentHello in = { .version = 7, .nonce = 0x0123456789abcdefull }, out;
        AgentFrame f;

        ck_assert_int_eq(agent_hello_append(&b, AGENT_MSG_HELLO, 5, &in), 0);
        ck_assert_uint_eq(b.size, AGENT_FRAME_HEADER_SIZE + 12);
        f = decode_whole(&b);
        ck_assert_uint_eq(f.type, AGENT_MSG_HELLO);
        ck_assert_uint_eq(f.request_id, 5);
        ck_assert_int_eq(agent_hello_decode(&f, &out), 0);
        ck_assert_uint_eq(out.version, 7);
        ck_assert_uint_eq(out.nonce, 0x0123456789abcdefull);
        ck_assert_ptr_null(out.info);
        agent_buffer_done(&b);
}
END_TEST

START_TEST(test_hello_reply_round_trip)
{
        AgentBuffer b = {};
        AgentHello in = { .version = 1, .nonce = 42, .info = (char *)"banger-agent 0.1" }, out;
        AgentFrame f;

        ck_assert_int_eq(agent_hello_append(&b, AGENT_MSG_HELLO_REPLY, 0, &in), 0);
        f = decode_whole(&b);
        ck_assert_int_eq(agent_hello_decode(&f, &out), 0);
        ck_assert_uint_eq(out.nonce, 42);
        ck_assert_str_eq(out.info, "banger-agent 0.1");
        agent_hello_done(&out);
        agent_buffer_done(&b);
}
END_TEST

START_TEST(test_exec_round_trip)
{
        char *argv[] = { (char *)"sh", (char *)"-c", (char *)"", (char *)"\xff\n", NULL };
        char *env[] = { (char *)"A=1", NULL };
        char *no_env[] = { NULL };
        const AgentExec cases[] = {
                { .argv = argv },
                { .flags = AGENT_EXEC_FLAG_STDIN, .argv = argv, .env = env, .cwd = (char *)"/x" },
                { .argv = argv, .env = no_env, .cwd = (char *)"" },
                { .flags = AGENT_EXEC_FLAGS_ALL, .argv = argv, .rows = 65535, .cols = 1 },
                { .argv = argv, .user = (char *)"nobody:65534" },
                { .argv = argv, .cwd = (char *)"/", .user = (char *)"" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                AgentBuffer b = {};
                AgentExec out;
                AgentFrame f;

                ck_assert_int_eq(agent_exec_append(&b, 99, &cases[i]), 0);
                f = decode_whole(&b);
                ck_assert_uint_eq(f.type, AGENT_MSG_EXEC);
                ck_assert_int_eq(agent_exec_decode(&f, &out), 0);

                ck_assert_uint_eq(out.flags, cases[i].flags);
                ck_assert_uint_eq(out.rows, cases[i].rows);
                ck_assert_uint_eq(out.cols, cases[i].cols);
                ck_assert_uint_eq(strv_length(out.argv), 4);
                for (size_t j = 0; j < 4; j++)
                        ck_assert_str_eq(out.argv[j], argv[j]);
                if (cases[i].env) {
                        ck_assert_ptr_nonnull(out.env);
                        ck_assert_uint_eq(strv_length(out.env), strv_length(cases[i].env));
                } else
                        ck_assert_ptr_null(out.env);
                if (cases[i].cwd)
                        ck_assert_str_eq(out.cwd, cases[i].cwd);
                else
                        ck_assert_ptr_null(out.cwd);
                if (cases[i].user)
                        ck_assert_str_eq(out.user, cases[i].user);
                else
                        ck_assert_ptr_null(out.user);

                agent_exec_done(&out);
                agent_buffer_done(&b);
        }
}
END_TEST

/* An EXEC without a user has the layout of the first version 2 agents, which reject any byte
 * after the columns, and a user flag of 0 is accepted too. */
START_TEST(test_exec_user_optional)
{
        char *argv[] = { (char *)"sh", NULL };
        AgentExec e = { .argv = argv }, out;
        AgentBuffer b = {};
        uint8_t payload[64] = {};
        AgentFrame f;
        size_t size;

        ck_assert_int_eq(agent_exec_append(&b, 1, &e), 0);
        /* flags, argc, "sh", env flag, cwd flag, rows, cols */
        ck_assert_uint_eq(b.size, AGENT_FRAME_HEADER_SIZE + 4 + 4 + 4 + 2 + 4 + 4 + 4 + 4);

        /* The same payload followed by a user flag of 0. */
        f = decode_whole(&b);
        size = f.payload_size + 4;
        ck_assert_uint_le(size, sizeof(payload));
        memcpy(payload, f.payload, f.payload_size);
        f.payload = payload;
        f.payload_size = (uint32_t)size;
        ck_assert_int_eq(agent_exec_decode(&f, &out), 0);
        ck_assert_ptr_null(out.user);
        ck_assert_str_eq(out.argv[0], "sh");
        agent_exec_done(&out);

        /* A user flag of 2, or a flag of 1 without its string, is malformed. */
        payload[size - 4] = 2;
        ck_assert_int_eq(agent_exec_decode(&f, &out), -EBADMSG);
        payload[size - 4] = 1;
        ck_assert_int_eq(agent_exec_decode(&f, &out), -EBADMSG);

        agent_buffer_done(&b);
}
END_TEST

START_TEST(test_exec_requires_argv)
{
        char *empty[] = { NULL };
        AgentExec e = { .argv = empty };
        AgentBuffer b = {};

        ck_assert_int_eq(agent_exec_append(&b, 1, &e), -EINVAL);
        ck_assert_uint_eq(b.size, 0);
}
END_TEST

START_TEST(test_exec_rejects_huge_terminal)
{
        char *argv[] = { "sh", NULL };
        AgentExec rows = { .argv = argv, .rows = 65536 }, cols = { .argv = argv, .cols = 70000 };
        AgentBuffer b = {};

        ck_assert_int_eq(agent_exec_append(&b, 1, &rows), -EINVAL);
        ck_assert_int_eq(agent_exec_append(&b, 1, &cols), -EINVAL);
        ck_assert_uint_eq(b.size, 0);
}
END_TEST

START_TEST(test_window_round_trip)
{
        static const uint32_t values[] = { 1, AGENT_WINDOW_INITIAL, UINT32_MAX };
        AgentBuffer b = {};

        for (size_t i = 0; i < ELEMENTSOF(values); i++) {
                uint32_t credit = 0;
                AgentFrame f;

                b.size = 0;
                ck_assert_int_eq(agent_window_append(&b, 12, values[i]), 0);
                f = decode_whole(&b);
                ck_assert_uint_eq(f.type, AGENT_MSG_WINDOW);
                ck_assert_uint_eq(f.request_id, 12);
                ck_assert_int_eq(agent_window_decode(&f, &credit), 0);
                ck_assert_uint_eq(credit, values[i]);
        }

        b.size = 0;
        ck_assert_int_eq(agent_window_append(&b, 12, 0), -EINVAL);
        ck_assert_uint_eq(b.size, 0);
        agent_buffer_done(&b);
}
END_TEST

START_TEST(test_resize_round_trip)
{
        AgentBuffer b = {};
        uint32_t rows = 0, cols = 0;
        AgentFrame f;

        ck_assert_int_eq(agent_resize_append(&b, 3, 50, 132), 0);
        f = decode_whole(&b);
        ck_assert_uint_eq(f.type, AGENT_MSG_RESIZE);
        ck_assert_int_eq(agent_resize_decode(&f, &rows, &cols), 0);
        ck_assert_uint_eq(rows, 50);
        ck_assert_uint_eq(cols, 132);

        b.size = 0;
        ck_assert_int_eq(agent_resize_append(&b, 3, 0, 80), -EINVAL);
        ck_assert_int_eq(agent_resize_append(&b, 3, 24, 0), -EINVAL);
        ck_assert_int_eq(agent_resize_append(&b, 3, 65536, 80), -EINVAL);
        ck_assert_uint_eq(b.size, 0);
        agent_buffer_done(&b);
}
END_TEST

START_TEST(test_ports_reply_round_trip)
{
        AgentPort ports[] = {
                { .protocol = IPPROTO_TCP,
                  .family = AF_INET,
                  .address = { 127, 0, 0, 1 },
                  .port = 22,
                  .uid = 0,
                  .pid = 1,
                  .comm = "sshd" },
                { .protocol = IPPROTO_UDP,
                  .family = AF_INET6,
                  .address = { [15] = 1 },
                  .port = 65535,
                  .uid = 4294967294u,
                  .pid = 0,
                  .comm = "" },
                { .protocol = IPPROTO_TCP,
                  .family = AF_INET6,
                  .address = { 0xfe, 0x80, [15] = 7 },
                  .port = 8080,
                  .uid = 1000,
                  .pid = 4242,
                  .comm = "fifteen-chars-x" },
        };
        AgentPortList in = { .ports = ports, .n_ports = ELEMENTSOF(ports), .truncated = true };
        AgentPortList out;
        AgentBuffer b = {};
        AgentFrame f;

        ck_assert_int_eq(agent_ports_reply_append(&b, 9, &in), 0);
        f = decode_whole(&b);
        ck_assert_uint_eq(f.type, AGENT_MSG_PORTS_REPLY);
        ck_assert_int_eq(agent_ports_reply_decode(&f, &out), 0);
        ck_assert(out.truncated);
        ck_assert_uint_eq(out.n_ports, ELEMENTSOF(ports));
        for (size_t i = 0; i < ELEMENTSOF(ports); i++) {
                ck_assert_int_eq(out.ports[i].protocol, ports[i].protocol);
                ck_assert_int_eq(out.ports[i].family, ports[i].family);
                ck_assert_int_eq(memcmp(out.ports[i].address, ports[i].address, 16), 0);
                ck_assert_uint_eq(out.ports[i].port, ports[i].port);
                ck_assert_uint_eq(out.ports[i].uid, ports[i].uid);
                ck_assert_uint_eq(out.ports[i].pid, ports[i].pid);
                ck_assert_str_eq(out.ports[i].comm, ports[i].comm);
        }
        agent_port_list_done(&out);
        ck_assert_ptr_null(out.ports);
        agent_buffer_done(&b);
}
END_TEST

START_TEST(test_ports_reply_empty)
{
        AgentPortList in = {}, out = { .truncated = true };
        AgentBuffer b = {};
        AgentFrame f;

        ck_assert_int_eq(agent_ports_reply_append(&b, 1, &in), 0);
        f = decode_whole(&b);
        ck_assert_int_eq(agent_ports_reply_decode(&f, &out), 0);
        ck_assert_uint_eq(out.n_ports, 0);
        ck_assert_ptr_null(out.ports);
        ck_assert(!out.truncated);
        agent_buffer_done(&b);
}
END_TEST

START_TEST(test_ports_reply_rejects_bad_entries)
{
        AgentPort bad[] = {
                { .protocol = IPPROTO_ICMP, .family = AF_INET },
                { .protocol = IPPROTO_TCP, .family = AF_UNIX },
                { .protocol = IPPROTO_TCP,
                  .family = AF_INET,
                  .comm = { 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n',
                            'o', 'p' } },
        };
        AgentPortList many = { .n_ports = AGENT_PORTS_MAX + 1 };
        AgentBuffer b = {};

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                AgentPortList l = { .ports = &bad[i], .n_ports = 1 };

                ck_assert_int_eq(agent_ports_reply_append(&b, 1, &l), -EINVAL);
                ck_assert_uint_eq(b.size, 0);
        }
        ck_assert_int_eq(agent_ports_reply_append(&b, 1, &many), -EMSGSIZE);
        ck_assert_uint_eq(b.size, 0);
}
END_TEST

START_TEST(test_credit_bounds)
{
        uint64_t credit = AGENT_WINDOW_INITIAL;

        ck_assert_int_eq(agent_credit_take(&credit, AGENT_WINDOW_INITIAL + 1), -EPROTO);
        ck_assert_uint_eq(credit, AGENT_WINDOW_INITIAL);
        ck_assert_int_eq(agent_credit_take(&credit, AGENT_WINDOW_INITIAL), 0);
        ck_assert_uint_eq(credit, 0);
        ck_assert_int_eq(agent_credit_take(&credit, 0), 0);
        ck_assert_int_eq(agent_credit_take(&credit, 1), -EPROTO);

        ck_assert_int_eq(agent_credit_grant(&credit, AGENT_WINDOW_MAX), 0);
        ck_assert_uint_eq(credit, AGENT_WINDOW_MAX);
        ck_assert_int_eq(agent_credit_grant(&credit, 1), -EPROTO);
        ck_assert_uint_eq(credit, AGENT_WINDOW_MAX);
        credit = 0;
        ck_assert_int_eq(agent_credit_grant(&credit, UINT32_MAX), -EPROTO);
        ck_assert_uint_eq(credit, 0);
}
END_TEST

START_TEST(test_exit_and_error_round_trip)
{
        AgentBuffer b = {};
        AgentExit ex = { .exit_status = -1, .signal = 9 }, ex_out;
        AgentError err_out;
        AgentFrame f;
        size_t consumed;

        ck_assert_int_eq(agent_exit_append(&b, 3, &ex), 0);
        ck_assert_int_eq(agent_error_append(&b, 4, -ENOENT, "no such thing"), 0);

        ck_assert_int_eq(agent_frame_decode(b.data, b.size, &f, &consumed), 1);
        ck_assert_int_eq(agent_exit_decode(&f, &ex_out), 0);
        ck_assert_int_eq(ex_out.exit_status, -1);
        ck_assert_int_eq(ex_out.signal, 9);

        ck_assert_int_eq(agent_frame_decode(b.data + consumed, b.size - consumed, &f, &consumed),
                         1);
        ck_assert_uint_eq(f.request_id, 4);
        ck_assert_int_eq(agent_error_decode(&f, &err_out), 0);
        ck_assert_int_eq(err_out.code, ENOENT);
        ck_assert_str_eq(err_out.message, "no such thing");
        agent_error_done(&err_out);
        agent_buffer_done(&b);
}
END_TEST

START_TEST(test_decode_byte_by_byte)
{
        AgentBuffer b = {};
        uint8_t payload[100];
        AgentFrame f;
        size_t consumed;

        memset(payload, 0xab, sizeof(payload));
        ck_assert_int_eq(agent_frame_append(&b, AGENT_MSG_STDOUT, 8, payload, sizeof(payload)), 0);

        /* Every proper prefix of a valid frame is "need more", never an error. */
        for (size_t n = 0; n < b.size; n++)
                ck_assert_int_eq(agent_frame_decode(b.data, n, &f, &consumed), 0);
        ck_assert_int_eq(agent_frame_decode(b.data, b.size, &f, &consumed), 1);
        ck_assert_uint_eq(f.payload_size, sizeof(payload));
        ck_assert_int_eq(memcmp(f.payload, payload, sizeof(payload)), 0);
        agent_buffer_done(&b);
}
END_TEST

/* Headers written out byte by byte: magic, length, type, flags, request id. */
#define MAGIC 0x42, 0x4e, 0x47, 0x41
static const struct {
        const char *name;
        uint8_t bytes[20];
        size_t size;
} bad_frames[] = {
        { "wrong magic", { 0x42, 0x4e, 0x47, 0x42, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0 }, 16 },
        { "wrong first byte only", { 0x00 }, 1 },
        { "length over maximum", { MAGIC, 0x01, 0x00, 0x10, 0x00 }, 8 },
        { "length of 4 GiB", { MAGIC, 0xff, 0xff, 0xff, 0xff }, 8 },
        { "type zero", { MAGIC, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, 16 },
        { "type past the last", { MAGIC, 0, 0, 0, 0, 0xff, 0x00, 0, 0, 0, 0, 0, 0 }, 16 },
        { "type 0xffff", { MAGIC, 0, 0, 0, 0, 0xff, 0xff, 0, 0 }, 12 },
        { "non-zero flags", { MAGIC, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0 }, 16 },
        { "high flag bit", { MAGIC, 0, 0, 0, 0, 1, 0, 0, 0x80, 0, 0, 0, 0 }, 16 },
};

START_TEST(test_decode_bad_frame)
{
        AgentFrame f;
        size_t consumed;
        int r;

        r = agent_frame_decode(bad_frames[_i].bytes, bad_frames[_i].size, &f, &consumed);
        ck_assert_msg(r == -EBADMSG, "%s: expected -EBADMSG, got %d", bad_frames[_i].name, r);
}
END_TEST

/* Payloads that are well framed but do not match their type's encoding. */
static const struct {
        const char *name;
        uint16_t type;
        uint8_t payload[40];
        size_t size;
} bad_payloads[] = {
        { "hello too short", AGENT_MSG_HELLO, { 1, 0, 0, 0, 1, 2, 3 }, 7 },
        { "hello trailing byte", AGENT_MSG_HELLO, { 1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 }, 13 },
        { "hello reply without info",
          AGENT_MSG_HELLO_REPLY,
          { 1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8 },
          12 },
        { "string longer than payload",
          AGENT_MSG_HELLO_REPLY,
          { 1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 5, 0, 0, 0, 'a', 'b' },
          18 },
        { "string with NUL",
          AGENT_MSG_HELLO_REPLY,
          { 1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 2, 0, 0, 0, 'a', 0 },
          18 },
        { "exec with no argv",
          AGENT_MSG_EXEC,
          { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
          16 },
        { "exec argc beyond payload", AGENT_MSG_EXEC, { 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f }, 8 },
        { "exec env presence of 2",
          AGENT_MSG_EXEC,
          { 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 'x', 2, 0, 0, 0, 0, 0, 0, 0 },
          21 },
        { "exec missing cwd presence",
          AGENT_MSG_EXEC,
          { 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 'x', 0, 0, 0, 0 },
          17 },
        { "exec in the version 1 layout",
          AGENT_MSG_EXEC,
          { 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 'x', 0, 0, 0, 0, 0, 0, 0, 0 },
          21 },
        { "exec rows above 65535",
          AGENT_MSG_EXEC,
          { 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 'x', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80, 0, 0, 0 },
          29 },
        { "exec cut in the columns",
          AGENT_MSG_EXEC,
          { 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 'x', 0, 0, 0, 0, 0, 0, 0, 0, 24, 0, 0, 0, 80 },
          26 },
        { "exit too short", AGENT_MSG_EXIT, { 0, 0, 0, 0 }, 4 },
        { "error code zero", AGENT_MSG_ERROR, { 0, 0, 0, 0, 0, 0, 0, 0 }, 8 },
        { "error negative code", AGENT_MSG_ERROR, { 0xfe, 0xff, 0xff, 0xff, 0, 0, 0, 0 }, 8 },
        { "window of zero", AGENT_MSG_WINDOW, { 0, 0, 0, 0 }, 4 },
        { "window too short", AGENT_MSG_WINDOW, { 1, 0, 0 }, 3 },
        { "window trailing byte", AGENT_MSG_WINDOW, { 1, 0, 0, 0, 0 }, 5 },
        { "resize of zero rows", AGENT_MSG_RESIZE, { 0, 0, 0, 0, 80, 0, 0, 0 }, 8 },
        { "resize columns above 65535", AGENT_MSG_RESIZE, { 24, 0, 0, 0, 0, 0, 1, 0 }, 8 },
        { "resize without columns", AGENT_MSG_RESIZE, { 24, 0, 0, 0 }, 4 },
        { "ports unknown flag", AGENT_MSG_PORTS_REPLY, { 2, 0, 0, 0, 0, 0, 0, 0 }, 8 },
        { "ports count beyond payload",
          AGENT_MSG_PORTS_REPLY,
          { 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff },
          8 },
        { "ports count without entries", AGENT_MSG_PORTS_REPLY, { 0, 0, 0, 0, 1, 0, 0, 0 }, 8 },
        { "ports without count", AGENT_MSG_PORTS_REPLY, { 0, 0, 0, 0 }, 4 },
};

/* One PORTS_REPLY entry after flags 0 and count 1, with one field changed by each case. */
#define PORT_ENTRY(protocol, version, address_tail, port_hi, comm_length)                        \
        0, 0, 0, 0, 1, 0, 0, 0, protocol, 0, 0, 0, version, 0, 0, 0, 127, 0, 0, 1, address_tail, \
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 80, 0, port_hi, 0, 0, 0, 0, 0, 1, 0, 0, 0,      \
                comm_length, 0, 0, 0
static const struct {
        const char *name;
        uint8_t payload[80];
        size_t size;
} bad_port_entries[] = {
        { "valid entry", { PORT_ENTRY(6, 4, 0, 0, 0) }, 48 },
        { "protocol 1", { PORT_ENTRY(1, 4, 0, 0, 0) }, 48 },
        { "ip version 5", { PORT_ENTRY(17, 5, 0, 0, 0) }, 48 },
        { "ipv4 with bytes past 4", { PORT_ENTRY(6, 4, 9, 0, 0) }, 48 },
        { "port above 65535", { PORT_ENTRY(6, 6, 0, 1, 0) }, 48 },
        { "comm of 16 bytes",
          { PORT_ENTRY(6, 4, 0, 0, 16), 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l',
            'm', 'n', 'o', 'p' },
          64 },
        { "entry cut in the address", { PORT_ENTRY(6, 4, 0, 0, 0) }, 20 },
        { "trailing byte", { PORT_ENTRY(6, 4, 0, 0, 0), 0 }, 49 },
};

START_TEST(test_ports_reply_bad_entry)
{
        AgentFrame f = {
                .type = AGENT_MSG_PORTS_REPLY,
                .payload = bad_port_entries[_i].payload,
                .payload_size = (uint32_t)bad_port_entries[_i].size,
        };
        AgentPortList l;
        int r, expected = _i == 0 ? 0 : -EBADMSG;

        r = agent_ports_reply_decode(&f, &l);
        ck_assert_msg(r == expected, "%s: expected %d, got %d", bad_port_entries[_i].name, expected,
                      r);
        if (r >= 0) {
                ck_assert_uint_eq(l.n_ports, 1);
                ck_assert_uint_eq(l.ports[0].port, 80);
                agent_port_list_done(&l);
        }
}
END_TEST

START_TEST(test_decode_bad_payload)
{
        AgentFrame f = {
                .type = bad_payloads[_i].type,
                .payload = bad_payloads[_i].payload,
                .payload_size = (uint32_t)bad_payloads[_i].size,
        };
        AgentHello h;
        AgentExec e;
        AgentExit x;
        AgentError err;
        AgentPortList ports;
        uint32_t credit, rows, cols;
        int r;

        switch (f.type) {
        case AGENT_MSG_HELLO:
        case AGENT_MSG_HELLO_REPLY:
                r = agent_hello_decode(&f, &h);
                break;
        case AGENT_MSG_EXEC:
                r = agent_exec_decode(&f, &e);
                break;
        case AGENT_MSG_EXIT:
                r = agent_exit_decode(&f, &x);
                break;
        case AGENT_MSG_WINDOW:
                r = agent_window_decode(&f, &credit);
                break;
        case AGENT_MSG_RESIZE:
                r = agent_resize_decode(&f, &rows, &cols);
                break;
        case AGENT_MSG_PORTS_REPLY:
                r = agent_ports_reply_decode(&f, &ports);
                break;
        default:
                r = agent_error_decode(&f, &err);
        }
        ck_assert_msg(r == -EBADMSG, "%s: expected -EBADMSG, got %d", bad_payloads[_i].name, r);
}
END_TEST

START_TEST(test_decode_wrong_type)
{
        AgentBuffer b = {};
        AgentExit ex = {};
        AgentHello h;
        AgentFrame f;

        ck_assert_int_eq(agent_exit_append(&b, 1, &ex), 0);
        f = decode_whole(&b);
        ck_assert_int_eq(agent_hello_decode(&f, &h), -EBADMSG);
        agent_buffer_done(&b);
}
END_TEST

START_TEST(test_frame_too_big)
{
        AgentBuffer b = {};
        uint8_t *big = calloc(1, AGENT_FRAME_MAX + 1);

        ck_assert_ptr_nonnull(big);
        ck_assert_int_eq(agent_frame_append(&b, AGENT_MSG_STDOUT, 1, big, AGENT_FRAME_MAX + 1),
                         -EMSGSIZE);
        ck_assert_uint_eq(b.size, 0);
        ck_assert_int_eq(agent_frame_append(&b, AGENT_MSG_STDOUT, 1, big, AGENT_FRAME_MAX), 0);
        ck_assert_uint_eq(b.size, AGENT_FRAME_HEADER_SIZE + AGENT_FRAME_MAX);
        agent_buffer_done(&b);
        free(big);
}
END_TEST

START_TEST(test_resync_after_garbage)
{
        static const uint8_t garbage[] = { 'x', 0x42, 0x4e, 'y', 0x42, 0x42, 0x4e, 0x47 };
        AgentBuffer b = {};
        AgentExit ex = { .exit_status = 3 }, out;
        AgentFrame f;
        size_t pos = 0, consumed;
        int r;

        ck_assert_int_eq(agent_buffer_append(&b, garbage, sizeof(garbage)), 0);
        ck_assert_int_eq(agent_exit_append(&b, 11, &ex), 0);

        /* Skip forward the way a reader does until a frame decodes. */
        while ((r = agent_frame_decode(b.data + pos, b.size - pos, &f, &consumed)) < 0) {
                size_t skip = agent_frame_resync(b.data + pos, b.size - pos);

                ck_assert_uint_ge(skip, 1);
                pos += skip;
        }
        ck_assert_int_eq(r, 1);
        ck_assert_uint_eq(pos, sizeof(garbage));
        ck_assert_int_eq(agent_exit_decode(&f, &out), 0);
        ck_assert_int_eq(out.exit_status, 3);
        agent_buffer_done(&b);
}
END_TEST

START_TEST(test_resync_keeps_partial_magic)
{
        static const uint8_t tail[] = { 'x', 'y', 0x42, 0x4e };

        /* The last two bytes may be the start of a magic that the next read completes. */
        ck_assert_uint_eq(agent_frame_resync(tail, sizeof(tail)), 2);
        ck_assert_uint_eq(agent_frame_resync(tail, 2), 2);
        ck_assert_uint_eq(agent_frame_resync(tail, 0), 0);
}
END_TEST

START_TEST(test_find_hello_in_cut_frame)
{
        char *argv[] = { "echo", "cut off", NULL };
        AgentExec e = { .argv = argv };
        AgentHello h = { .version = AGENT_PROTOCOL_VERSION, .nonce = 5 };
        AgentBuffer b = {};
        AgentFrame f;
        size_t consumed, cut;

        /* An EXEC frame that lost its last 6 bytes, then a new client's HELLO. */
        ck_assert_int_eq(agent_exec_append(&b, 1, &e), 0);
        b.size -= 6;
        cut = b.size;
        ck_assert_int_eq(agent_frame_find_hello(b.data, b.size), 0);
        ck_assert_int_eq(agent_hello_append(&b, AGENT_MSG_HELLO, 0, &h), 0);

        /* The decoder alone takes HELLO's bytes as the rest of the EXEC payload. */
        ck_assert_int_eq(agent_frame_decode(b.data, b.size, &f, &consumed), 1);
        ck_assert_uint_eq(f.type, AGENT_MSG_EXEC);
        ck_assert_uint_eq(agent_frame_find_hello(b.data, b.size), cut);

        /* A HELLO frame that is itself incomplete is not found. */
        ck_assert_uint_eq(agent_frame_find_hello(b.data, b.size - 1), 0);
        agent_buffer_done(&b);
}
END_TEST

START_TEST(test_message_type_names)
{
        ck_assert_str_eq(agent_message_type_to_string(AGENT_MSG_EXEC), "exec");
        ck_assert_str_eq(agent_message_type_to_string(AGENT_MSG_SHUTDOWN_ACK), "shutdown-ack");
        ck_assert_str_eq(agent_message_type_to_string(AGENT_MSG_WINDOW), "window");
        ck_assert_str_eq(agent_message_type_to_string(AGENT_MSG_RESIZE), "resize");
        ck_assert_ptr_null(agent_message_type_to_string(0));
        ck_assert_ptr_null(agent_message_type_to_string(_AGENT_MSG_MAX));
        for (int t = 1; t < _AGENT_MSG_MAX; t++)
                ck_assert_ptr_nonnull(agent_message_type_to_string(t));
}
END_TEST

static Suite *agent_proto_suite(void)
{
        Suite *s = suite_create("agent-proto");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_hello_round_trip);
        tcase_add_test(tc, test_hello_reply_round_trip);
        tcase_add_test(tc, test_exec_round_trip);
        tcase_add_test(tc, test_exec_user_optional);
        tcase_add_test(tc, test_exec_requires_argv);
        tcase_add_test(tc, test_exec_rejects_huge_terminal);
        tcase_add_test(tc, test_window_round_trip);
        tcase_add_test(tc, test_resize_round_trip);
        tcase_add_test(tc, test_ports_reply_round_trip);
        tcase_add_test(tc, test_ports_reply_empty);
        tcase_add_test(tc, test_ports_reply_rejects_bad_entries);
        tcase_add_loop_test(tc, test_ports_reply_bad_entry, 0, ELEMENTSOF(bad_port_entries));
        tcase_add_test(tc, test_credit_bounds);
        tcase_add_test(tc, test_exit_and_error_round_trip);
        tcase_add_test(tc, test_decode_byte_by_byte);
        tcase_add_loop_test(tc, test_decode_bad_frame, 0, ELEMENTSOF(bad_frames));
        tcase_add_loop_test(tc, test_decode_bad_payload, 0, ELEMENTSOF(bad_payloads));
        tcase_add_test(tc, test_decode_wrong_type);
        tcase_add_test(tc, test_frame_too_big);
        tcase_add_test(tc, test_resync_after_garbage);
        tcase_add_test(tc, test_resync_keeps_partial_magic);
        tcase_add_test(tc, test_find_hello_in_cut_frame);
        tcase_add_test(tc, test_message_type_names);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(agent_proto_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
