#!/usr/bin/env python3
"""Play the network outside banger's host in the network scenario.

Usage: outside-server.py ADDRESS FILES_DIR

Serves, on ADDRESS:
  - DNS on port 53 over UDP and TCP: the name outside.test has the A record ADDRESS, any other
    name gets NXDOMAIN. One line per query goes to stdout: "dns CLIENT NAME TYPE".
  - HTTP on port 8000: GET / returns the client's address and a newline, so a caller behind
    NAT can check which source address reached this server. GET /files/NAME returns the file NAME
    from FILES_DIR.
Runs until it receives SIGTERM.
"""

import functools
import http.server
import ipaddress
import signal
import socketserver
import struct
import sys
import threading

DNS_NAME = "outside.test"
TYPE_A = 1
RCODE_NXDOMAIN = 3


def parse_question(query):
    """Return (name, qtype, end offset) of the first question of a DNS query."""
    labels = []
    offset = 12
    while True:
        length = query[offset]
        offset += 1
        if length == 0:
            break
        if length & 0xC0:
            raise ValueError("compressed name in a question")
        labels.append(query[offset : offset + length].decode("ascii", "replace"))
        offset += length
    qtype, _qclass = struct.unpack("!HH", query[offset : offset + 4])
    return ".".join(labels).lower(), qtype, offset + 4


def dns_reply(query, address, client):
    """Build the reply to one query, or None when the query cannot be parsed."""
    try:
        qid, flags = struct.unpack("!HH", query[:4])
        name, qtype, end = parse_question(query)
    except (IndexError, ValueError, struct.error):
        return None
    print(f"dns {client} {name} {qtype}", flush=True)

    answers = b""
    rcode = 0
    if name == DNS_NAME.lower():
        if qtype == TYPE_A:
            # A pointer to the question's name at offset 12, type A, class IN, TTL 60.
            answers = struct.pack("!HHHIH", 0xC00C, TYPE_A, 1, 60, 4) + address.packed
    else:
        rcode = RCODE_NXDOMAIN
    # QR and RA set; opcode and RD copied from the query.
    reply_flags = 0x8000 | (flags & 0x7900) | 0x0080 | rcode
    header = struct.pack("!HHHHHH", qid, reply_flags, 1, 1 if answers else 0, 0, 0)
    return header + query[12:end] + answers


class DnsUdpHandler(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        reply = dns_reply(data, self.server.dns_address, self.client_address[0])
        if reply:
            sock.sendto(reply, self.client_address)


class DnsTcpHandler(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            prefix = self.rfile.read(2)
            if len(prefix) < 2:
                return
            (length,) = struct.unpack("!H", prefix)
            query = self.rfile.read(length)
            reply = dns_reply(query, self.server.dns_address, self.client_address[0])
            if not reply:
                return
            self.wfile.write(struct.pack("!H", len(reply)) + reply)


class OutsideHttpHandler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/files/"):
            self.path = self.path[len("/files") :]
            super().do_GET()
            return
        body = f"{self.client_address[0]}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        print(f"http {self.client_address[0]} {format % args}", flush=True)


class ThreadingUdpServer(socketserver.ThreadingMixIn, socketserver.UDPServer):
    allow_reuse_address = True


class ThreadingTcpServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: outside-server.py ADDRESS FILES_DIR")
    address = ipaddress.IPv4Address(sys.argv[1])
    files = sys.argv[2]

    servers = [
        ThreadingUdpServer((str(address), 53), DnsUdpHandler),
        ThreadingTcpServer((str(address), 53), DnsTcpHandler),
        http.server.ThreadingHTTPServer(
            (str(address), 8000), functools.partial(OutsideHttpHandler, directory=files)
        ),
    ]
    for server in servers:
        server.dns_address = address
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"serving DNS on {address}:53 and HTTP on {address}:8000", flush=True)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
