#!/usr/bin/env python3
"""A webhook receiver for orgsync's sinks, with the Python standard library only.

It verifies each delivery as Standard Webhooks specifies (docs/sinks.md), then prints each event
it accepts as one JSON line on stdout, and answers:

  204  verified and accepted (orgsync moves the sink's cursor past it)
  401  the signature does not verify, or the timestamp is too old or too new
  400  the body is not a CloudEvent (or a batch of them)

    python3 webhook_verify.py --secret-file /etc/orgsync/crm.whsec [--port 8080]

The secret file is the one orgsync signs with: one `whsec_...` secret per line (two while
rotating). The first line it prints is `listening on PORT` (with --port 0, the port the system
chose); every later line is an event.

A real receiver does the same checks in its web framework: take the raw body before parsing it,
call `verify()` below, and dedupe by the event's `seq` (delivery is at least once).
"""

import argparse
import base64
import hashlib
import hmac
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# How far a webhook-timestamp may be from now, in seconds (replayed requests are refused).
TOLERANCE = 5 * 60


def load_keys(path):
    """The signing keys: the base64-decoded part after `whsec_` of each line."""
    keys = []
    with open(path, encoding="utf-8") as secrets:
        for line in secrets:
            line = line.strip()
            if line:
                if not line.startswith("whsec_"):
                    raise ValueError("a secret must start with whsec_")
                keys.append(base64.b64decode(line[len("whsec_"):]))
    return keys


def verify(keys, headers, body, now=None):
    """True when one of the `v1,` signatures in `webhook-signature` is the HMAC-SHA256 of
    `{webhook-id}.{webhook-timestamp}.{body}` under one of `keys`, and the timestamp is recent.
    `body` is the raw request body, as bytes."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not msg_id or not timestamp or not signatures:
        return False
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((now if now is not None else time.time()) - sent) > TOLERANCE:
        return False
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = [
        base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()) for key in keys
    ]
    for signature in signatures.split(" "):
        version, _, value = signature.partition(",")
        if version != "v1":
            continue
        for candidate in expected:
            if hmac.compare_digest(candidate, value.encode()):
                return True
    return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secret-file", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    keys = load_keys(args.secret_file)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            if not verify(keys, self.headers, body):
                self.send_response(401)
                self.end_headers()
                return
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            batch = self.headers.get("content-type", "").startswith(
                "application/cloudevents-batch+json"
            )
            events = parsed if batch else [parsed]
            if not isinstance(events, list) or not all(
                isinstance(e, dict) and "id" in e and "seq" in e for e in events
            ):
                self.send_response(400)
                self.end_headers()
                return
            for event in events:
                print(json.dumps(event, ensure_ascii=False), flush=True)
            self.send_response(204)
            self.end_headers()

        def log_message(self, format, *args):  # keep stdout for the events
            pass

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"listening on {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
