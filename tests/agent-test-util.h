#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent-client.h"

/* Helpers of the suites that drive banger-agent (test-agent-local.c, test-agent-vm.c). They
 * fail the running Check test on any error. */

/* An agent_exec_stream() call running in a thread, with the test's ends of its pipes. */
typedef struct StreamRun {
        pthread_t thread;
        const char *socket_path;
        AgentExecRequest req;
        AgentExecStdio stdio;
        uint64_t timeout_usec; /* set before stream_start(); 0: 60 s */
        int result;
        AgentExit exit;
        int stdin_w; /* -1 when the command gets no stdin */
        int stdout_r;
        int stderr_r;
        int control_w;
} StreamRun;

/* Starts req on the agent at socket_path in a thread. */
void stream_start(StreamRun *s, const char *socket_path, const AgentExecRequest *req,
                  bool with_stdin);
/* Waits for the call to return and closes the test's ends. */
void stream_join(StreamRun *s);

/* Reads fd to end of file. The result is NUL-terminated. */
char *read_all(int fd, size_t *ret_size);
/* Reads fd until text has appeared, and returns everything read, NUL-terminated. */
char *read_until(int fd, const char *text);
void write_all(int fd, const void *data, size_t size);

/* Writes the sha256 of data as 64 hex digits and a NUL. */
void sha256_hex(const void *data, size_t size, char ret[static 65]);

/* Parses the process id at the start of text, as "echo $$" prints it. */
pid_t parse_pid_line(const char *text);

/* Connects to the agent's unix socket without a handshake. */
int raw_connect(const char *socket_path);
/* Sends all of b in one send(). */
void raw_send(int fd, const AgentBuffer *b);

/* Checks that both suites run against their agent through agent_exec_stream(). */

/* size bytes of stdin, written by a child process, come back from cat unchanged. */
void check_stream_stdin_through_cat(const char *socket_path, size_t size);
/* size random bytes on stdout match the sha256 that the command prints on stderr. The command
 * stores the data at scratch_path to hash it there. */
void check_stream_output_hash(const char *socket_path, size_t size, const char *scratch_path,
                              uint64_t timeout_usec);
/* Output on each stream stays apart, and an exit status comes back. */
void check_stream_stderr_and_exit_status(const char *socket_path);
/* A command killed by SIGKILL reports the signal after its output. */
void check_stream_killed_by_signal(const char *socket_path);
/* A TTY command sees a /dev/pts/N terminal of the requested size, rows and cols of 0 meaning
 * 24 and 80, which carries its stderr too. */
void check_stream_tty_size(const char *socket_path, unsigned rows, unsigned cols);
/* agent_exec_stream_resize() reaches a TTY command as SIGWINCH and a new size. */
void check_stream_tty_resize(const char *socket_path, uint64_t timeout_usec);
