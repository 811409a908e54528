#!/usr/bin/env python3
"""Stand in front of a registry and rate-limit the first request of each path.

Usage: rate-limit-server.py UPSTREAM PORTFILE LOGFILE

Listens on a free port on 127.0.0.1, writes that port to PORTFILE and forwards GET requests to
the registry at UPSTREAM ("http://127.0.0.1:PORT"), with their Accept header. The first request
for each manifest path gets 429 with "Retry-After: 1". The first request for each blob path gets
503 with a Retry-After HTTP date one second ahead. Every manifest request for a repository whose
name ends in "limited" gets 429 with "Retry-After: 3600", and for one whose name ends in "busy"
503 without Retry-After. Each request is appended to LOGFILE as "STATUS PATH". Only the standard
library is needed.
"""

import email.utils
import http.server
import os
import sys
import time
import urllib.error
import urllib.request


def main():
    upstream, port_file, log_file = sys.argv[1:4]
    seen = set()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format, *args):
            pass

        def log(self, status):
            with open(log_file, "a") as log:
                log.write("%d %s\n" % (status, self.path))

        def refuse(self, status, retry_after):
            self.log(status)
            self.send_response(status)
            if retry_after:
                self.send_header("Retry-After", retry_after)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            parts = self.path.split("/")
            if "/manifests/" in self.path and parts[-3].endswith("limited"):
                self.refuse(429, "3600")
                return
            if "/manifests/" in self.path and parts[-3].endswith("busy"):
                self.refuse(503, None)
                return
            if self.path not in seen and ("/manifests/" in self.path or "/blobs/" in self.path):
                seen.add(self.path)
                if "/manifests/" in self.path:
                    self.refuse(429, "1")
                else:
                    self.refuse(503, email.utils.formatdate(time.time() + 1, usegmt=True))
                return

            request = urllib.request.Request(upstream + self.path)
            if self.headers.get("Accept"):
                request.add_header("Accept", self.headers["Accept"])
            try:
                response = urllib.request.urlopen(request)
            except urllib.error.HTTPError as e:
                response = e
            body = response.read()
            status = response.getcode()
            self.log(status)
            self.send_response(status)
            for name in ("Content-Type", "Docker-Content-Digest"):
                if response.headers.get(name):
                    self.send_header(name, response.headers[name])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
