#!/usr/bin/python3
"""Run a command on a pseudo-terminal, as a user at a terminal would, and print what it wrote.

Usage: pty-run.py [--rows N --cols N] [STEP]... -- CMD...

The steps run in order:
  --expect TEXT       wait up to 60 s until the output contains TEXT
  --send DATA         type DATA, which may use Python escapes such as \\r and \\x1d
  --resize ROWSxCOLS  change the terminal's size, which sends SIGWINCH to the command
  --sleep SECONDS     wait
The output is printed once the command has exited, followed by a line "exit N". Exits 1 when an
expected text never came.
"""

import fcntl
import os
import pty
import select
import struct
import sys
import termios
import time

TIMEOUT = 60


def set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def read_some(fd, seconds):
    """Returns the bytes the command wrote within seconds, or None at end of file."""
    ready, _, _ = select.select([fd], [], [], seconds)
    if not ready:
        return b""
    try:
        return os.read(fd, 65536) or None
    except OSError:
        return None


def parse(argv):
    steps, rows, cols = [], 24, 80
    i = 0
    while i < len(argv) and argv[i] != "--":
        option, value = argv[i], argv[i + 1]
        if option == "--rows":
            rows = int(value)
        elif option == "--cols":
            cols = int(value)
        elif option == "--expect":
            steps.append(("expect", value.encode()))
        elif option == "--send":
            steps.append(("send", value.encode().decode("unicode_escape").encode("latin-1")))
        elif option == "--resize":
            steps.append(("resize", tuple(int(n) for n in value.split("x"))))
        elif option == "--sleep":
            steps.append(("sleep", float(value)))
        else:
            sys.exit(f"pty-run: unknown option '{option}'")
        i += 2
    if i + 1 >= len(argv):
        sys.exit("pty-run: missing '--' and the command")
    return steps, rows, cols, argv[i + 1:]


def main():
    steps, rows, cols, command = parse(sys.argv[1:])
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(command[0], command)
    set_size(fd, rows, cols)

    output, ok, open_ = b"", True, True
    for kind, value in steps:
        if kind == "expect":
            deadline = time.time() + TIMEOUT
            while open_ and value not in output and time.time() < deadline:
                data = read_some(fd, 0.2)
                open_ = data is not None
                output += data or b""
            if value not in output:
                output += b"\n[pty-run: never saw " + value + b"]\n"
                ok = False
                break
        elif kind == "send":
            os.write(fd, value)
        elif kind == "resize":
            set_size(fd, *value)
        else:
            deadline = time.time() + value
            while open_ and time.time() < deadline:
                data = read_some(fd, 0.1)
                open_ = data is not None
                output += data or b""

    deadline = time.time() + TIMEOUT
    while open_ and time.time() < deadline:
        data = read_some(fd, 0.2)
        open_ = data is not None
        output += data or b""
    if open_:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    sys.stdout.write(output.decode(errors="replace"))
    print(f"\nexit {os.waitstatus_to_exitcode(status)}")
    sys.exit(0 if ok else 1)


main()
