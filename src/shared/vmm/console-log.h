#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Copies a VM's serial console into the journal. The VMM appends the console to console.log,
 * and banger-console-log, running in the VM's scope beside the VMM, follows that file and sends
 * each line to the journal, where journald files it under the scope's unit. */

/* The maximum length of a line sent as one journal entry. A longer line goes out in pieces of
 * this size. */
#define CONSOLE_LINE_MAX 4096U

/* Descriptors that console_log_spawn() hands to banger-console-log. */
#define CONSOLE_LOG_VMM_FD  3 /* pidfd of the VMM: the program exits once it is readable */
#define CONSOLE_LOG_GATE_FD 4 /* read end of a pipe: one byte starts the copying */

/* Receives one line without its "\n" or "\r\n", at most CONSOLE_LINE_MAX bytes, not
 * NUL-terminated. A negative return stops console_lines_feed() and is passed on. */
typedef int (*ConsoleLineFn)(const char *line, size_t size, void *userdata);

/* Splits a byte stream into lines. Empty lines are dropped. */
typedef struct ConsoleLines {
        char buf[CONSOLE_LINE_MAX];
        size_t size; /* bytes of an unfinished line in buf */
        ConsoleLineFn fn;
        void *userdata;
} ConsoleLines;

void console_lines_init(ConsoleLines *l, ConsoleLineFn fn, void *userdata);
/* Passes every line that data completes to the callback, and keeps the rest. */
int console_lines_feed(ConsoleLines *l, const void *data, size_t size);
/* Passes an unfinished line on, as at the end of the stream. */
int console_lines_flush(ConsoleLines *l);

/* Makes a console line fit for the journal, which shows a message with control characters or
 * invalid UTF-8 as a blob: drops terminal escape sequences and control characters but tabs, and
 * turns each byte of invalid UTF-8 into '?'. Writes at most size bytes to out and returns how
 * many. */
size_t console_line_clean(const char *line, size_t size, char *out);

/* Reads the console log fd from *offset to its current end into l, and advances *offset past
 * what was read. A file that has become shorter than *offset was truncated, and is read again
 * from its start. Returns 0 when nothing was new, 1 after data. */
int console_log_read(int fd, uint64_t *offset, ConsoleLines *l);

/* Starts binary (banger-console-log) to copy path from offset into the journal for VM
 * vm_name, with the pidfd vmm_pidfd as CONSOLE_LOG_VMM_FD. The program is a grandchild that
 * init reaps, so it survives bangerd and never becomes a zombie of bangerd's. *ret_gate_fd is
 * the write end of its gate: pass it to console_log_open_gate() once the program is in its
 * final cgroup, or close it to make the program exit without copying anything. */
int console_log_spawn(const char *binary, const char *path, uint64_t offset, const char *vm_name,
                      int vmm_pidfd, pid_t *ret_pid, int *ret_gate_fd);

/* Writes the byte that lets the program start, and closes gate_fd in every case. */
int console_log_open_gate(int gate_fd);
