#!/usr/bin/env python3
"""Serve a directory over HTTP on 127.0.0.1 as a kernel catalog for banger's tests.

Usage: catalog-server.py DIR PORT_FILE LOG_FILE [PORT]

Binds PORT (default 0, an ephemeral port), writes the port to PORT_FILE once the socket listens (through a rename,
so a reader never sees a partial file) and appends one line per request to LOG_FILE:
"METHOD PATH STATUS". Runs until it receives SIGTERM.
"""

import functools
import http.server
import os
import signal
import sys


class LoggingHandler(http.server.SimpleHTTPRequestHandler):
    log_path = None

    def log_request(self, code="-", size="-"):
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(f"{self.command} {self.path} {code}\n")

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit("usage: catalog-server.py DIR PORT_FILE LOG_FILE [PORT]")
    root, port_file, log_file = sys.argv[1:4]
    port = int(sys.argv[4]) if len(sys.argv) == 5 else 0

    LoggingHandler.log_path = log_file
    handler = functools.partial(LoggingHandler, directory=root)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    with open(port_file + ".tmp", "w", encoding="utf-8") as f:
        f.write(f"{server.server_address[1]}\n")
    os.rename(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
