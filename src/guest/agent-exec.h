#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "agent-proto.h"
#include "guest-config.h"

/* Descriptors of a command that banger-agent started, all non-blocking and close-on-exec. */
typedef struct ExecFds {
        int out; /* read end of the stdout pipe, or the terminal's master side with a TTY */
        int err; /* read end of the stderr pipe; -EBADF with a TTY */
        int in;  /* write end of the stdin pipe, or a second descriptor of the master side;
                  * -EBADF without AGENT_EXEC_FLAG_STDIN */
} ExecFds;

/* Starts req chrooted in root (not when root is "/") as uid and gid, with config's environment
 * and working directory unless req sets them. With AGENT_EXEC_FLAG_TTY the command runs on a
 * new pseudo-terminal of root's devpts, as its controlling terminal, so tty(1) inside root
 * names it. Errors after fork() are written to the command's stderr and end it with status
 * 126, or 127 when argv[0] is not found. */
int exec_spawn(const char *root, const GuestConfig *config, const AgentExec *req, uid_t uid,
               gid_t gid, pid_t *ret_pid, ExecFds *ret_fds);

/* Sets the window size of the terminal whose master side is fd; the kernel sends SIGWINCH to
 * its foreground process group. */
int exec_resize(int fd, uint32_t rows, uint32_t cols);

/* Types the end-of-file character into the terminal whose master side is fd, when it is in
 * canonical mode, so a command reading the terminal gets end of file. Like Ctrl-D, this ends
 * a read only at the start of a line. */
int exec_terminal_eof(int fd);
