#!/usr/bin/env python3
"""Issue bearer tokens for docker-registry's token authentication.

Usage: token-server.py KEY CERT SERVICE ISSUER PORTFILE LOGFILE [STORAGE]

Listens on a free port on 127.0.0.1 and writes that port to PORTFILE. GET /token?service=S&scope=S
returns {"token": JWT} granting the actions the scope requests, signed RS256 with KEY and carrying
CERT in the x5c header, which docker-registry checks against its rootcertbundle. A repository
whose name ends in "private" gets 401. With STORAGE, GET /docker/registry/v2/PATH returns the
file STORAGE/docker/registry/v2/PATH, standing in for the blob storage that docker-registry's
redirect middleware sends clients to (it keeps only the scheme and host of its baseurl). Each request path is
appended to LOGFILE with whether it carried an Authorization header. When the environment
variable TOKEN_SERVER_CREDENTIALS is set to USER:PASSWORD, a token request without exactly
these Basic credentials gets 401. POST /token takes the OAuth2 refresh token grant
(grant_type, refresh_token, service and scope as a form), is logged as "POST PATH
grant=GRANT", and returns {"access_token": JWT} when the refresh token equals
TOKEN_SERVER_REFRESH_TOKEN, else 401. Signing runs the openssl command, so only the standard
library is needed.
"""

import base64
import http.server
import json
import os
import subprocess
import sys
import time
import urllib.parse


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main():
    key, cert, service, issuer, port_file, log_file = sys.argv[1:7]
    storage = sys.argv[7] if len(sys.argv) > 7 else None
    refresh_token = os.environ.get("TOKEN_SERVER_REFRESH_TOKEN")
    credentials = os.environ.get("TOKEN_SERVER_CREDENTIALS")
    expected_auth = ("Basic " + base64.b64encode(credentials.encode()).decode()
                     if credentials else None)
    der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"], check=True,
                         capture_output=True).stdout

    def sign(claims):
        header = {"alg": "RS256", "typ": "JWT", "x5c": [base64.b64encode(der).decode()]}
        payload = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key],
                                   input=payload.encode(), check=True,
                                   capture_output=True).stdout
        return payload + "." + b64url(signature)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format, *args):
            pass

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            with open(log_file, "a") as log:
                log.write("%s auth=%s\n" % (self.path, "Authorization" in self.headers))
            if storage and url.path.startswith("/docker/registry/v2/") and ".." not in url.path:
                self.send_file(os.path.join(storage, url.path.lstrip("/")))
                return
            if expected_auth and self.headers.get("Authorization") != expected_auth:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="banger-test"')
                self.end_headers()
                return
            self.send_token(query, "token")

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            grant = form.get("grant_type", [""])[0]
            with open(log_file, "a") as log:
                log.write("POST %s grant=%s\n" % (self.path, grant))
            if (grant != "refresh_token" or not refresh_token
                    or form.get("refresh_token", [""])[0] != refresh_token):
                self.send_response(401)
                self.end_headers()
                return
            self.send_token(form, "access_token")

        def send_token(self, query, field):
            access = []
            for scope in query.get("scope", []):
                kind, name, actions = scope.split(":")
                if name.endswith("private"):
                    self.send_response(401)
                    self.end_headers()
                    return
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
            now = int(time.time())
            token = sign({"iss": issuer, "sub": "", "aud": query.get("service", [""])[0],
                          "exp": now + 600, "nbf": now - 60, "iat": now,
                          "jti": b64url(os.urandom(12)), "access": access})
            body = json.dumps({field: token, "expires_in": 600}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def send_file(self, path):
            try:
                with open(path, "rb") as f:
                    body = f.read()
            except OSError:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
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
