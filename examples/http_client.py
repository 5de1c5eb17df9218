#!/usr/bin/env python3
"""A host application's side of orgsync's HTTP API, in the Python standard library only.

List, then watch: takes a snapshot of the directory (GET /v1/snapshot), then follows the
events committed after it with long-polls (GET /v1/events?wait=...), acknowledging each page
(POST /v1/consumers/NAME/ack), so that a restart resumes after the last acknowledged event.
See docs/http.md.

    python3 examples/http_client.py --url http://127.0.0.1:8787 \\
        --token-file /etc/orgsync/crm.token --consumer crm

Prints `snapshot seq=N store=ID departments=D members=M links=L` once, then
`event SEQ TYPE SUBJECT` per event. Exit status: 0 on Ctrl-C, 2 when the daemon refuses the
token or the request, 3 on a gap or a replaced store (reconcile: start again without a cursor).
"""

import argparse
import json
import sys
import urllib.error
import urllib.request

WAIT_SECS = 30
EXIT_REFUSED = 2
EXIT_RECONCILE = 3


class ApiError(Exception):
    def __init__(self, status, code, message):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code = status, code


def request(url, token, method="GET", body=None, timeout=WAIT_SECS + 30):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        return urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as error:
        try:
            detail = json.load(error)["error"]
        except (ValueError, KeyError):
            detail = {"code": "http", "message": error.reason}
        raise ApiError(error.code, detail.get("code"), detail.get("message")) from None


def snapshot(base, token):
    """Reads the snapshot line by line (it is streamed); returns its last line."""
    with request(f"{base}/v1/snapshot", token) as response:
        for raw in response:
            line = json.loads(raw)
            if "ok" in line:
                if not line["ok"]:
                    raise ApiError(500, line["error"]["code"], line["error"]["message"])
                return line
            # A real application stores line["department"], line["member"], line["link"].
    raise ApiError(500, "truncated", "the snapshot ended without its last line")


def follow(base, token, consumer, since, store):
    while True:
        query = f"since={since}&wait={WAIT_SECS}&store={store}"
        with request(f"{base}/v1/events?{query}", token) as response:
            next_since = int(response.headers["X-Orgsync-Next-Since"])
            for raw in response:
                event = json.loads(raw)
                print(f"event {event['seq']} {event['type']} {event['subject']}", flush=True)
        if next_since > since:
            request(
                f"{base}/v1/consumers/{consumer}/ack", token, "POST", {"seq": next_since}
            ).close()
            since = next_since


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8787")
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--consumer", required=True)
    args = parser.parse_args()
    with open(args.token_file, encoding="utf-8") as file:
        token = file.read().strip()
    base = args.url.rstrip("/")
    try:
        end = snapshot(base, token)
        print(
            f"snapshot seq={end['seq']} store={end['store']} departments={end['departments']} "
            f"members={end['members']} links={end['links']}",
            flush=True,
        )
        follow(base, token, args.consumer, end["seq"], end["store"])
    except KeyboardInterrupt:
        return 0
    except ApiError as error:
        print(f"http_client: {error}", file=sys.stderr)
        return EXIT_RECONCILE if error.code in ("gap", "store_changed") else EXIT_REFUSED
    return 0


if __name__ == "__main__":
    sys.exit(main())
