#!/usr/bin/env python3
"""A host application's side of orgsync's socket, in the Python standard library only.

Subscribes as a named consumer, prints every event it receives, and acknowledges what it has
printed, so that a restart (of this script or of the daemon) resumes right after the last
acknowledged event. See docs/protocol.md for the protocol.

    python3 examples/subscribe.py --consumer my-app
    python3 examples/subscribe.py --consumer my-app --types 'orgsync.member.*' --json
    python3 examples/subscribe.py --consumer my-app --since 0 --count 100

Exit status: 0 after --count events (or Ctrl-C), 2 when the daemon refuses the subscription,
3 on a gap (events this consumer never received were pruned: reconcile the application's copy
of the directory, then start again with --since set to the oldest available seq minus one).
"""

import argparse
import collections
import json
import signal
import socket
import sys
import threading
import time

# Acknowledge after this many events, or as soon as the stream pauses: each ack is a durable
# write in the daemon, so one per event would be wasteful during a large first sync.
ACK_EVERY = 100
# How long the stream must be quiet before the events printed so far are acknowledged.
ACK_AFTER_IDLE = 0.5
RECONNECT_FIRST_DELAY = 0.5
RECONNECT_MAX_DELAY = 30.0
EXIT_REFUSED = 2
EXIT_GAP = 3

# Set by SIGINT and SIGTERM. A flag rather than an exception, so that a stop never falls
# between printing an event and recording it: the script stops at the next quiet moment
# (at most ACK_AFTER_IDLE later), after acknowledging everything it printed.
STOP = threading.Event()


class Refused(Exception):
    """The daemon answered with an error that retrying will not fix."""

    def __init__(self, error):
        super().__init__(error.get("message", ""))
        self.code = error.get("code")
        self.error = error


class Connection:
    """One connection to the daemon: newline-delimited JSON both ways."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise
        self.lines = collections.deque()
        self.partial = b""

    def send(self, request):
        self.sock.settimeout(None)
        self.sock.sendall(json.dumps(request, ensure_ascii=False).encode() + b"\n")

    def receive(self, timeout=None):
        """The next line as a JSON object; None if nothing arrives within `timeout` seconds."""
        while not self.lines:
            self.sock.settimeout(timeout)
            try:
                chunk = self.sock.recv(1 << 16)
            except socket.timeout:
                return None
            if not chunk:
                raise ConnectionError("the daemon closed the connection")
            parts = (self.partial + chunk).split(b"\n")
            self.partial = parts.pop()
            self.lines.extend(parts)
        return json.loads(self.lines.popleft())

    def close(self):
        self.sock.close()


class Consumer:
    def __init__(self, args):
        self.args = args
        # The last seq printed. Delivery is at least once: after a reconnect the daemon may
        # send again what was printed but not yet acknowledged, and `seq` tells them apart.
        self.last_seq = None
        # The last seq acknowledged on the current connection.
        self.acked_seq = None
        self.unacked = 0
        self.printed = 0
        self.conn = None
        self.pending_acks = 0

    def subscribe(self):
        request = {"op": "subscribe", "consumer": self.args.consumer}
        if self.last_seq is not None:
            # Resume after what this process printed, acknowledged or not.
            request["since"] = self.last_seq
        elif self.args.since is not None:
            request["since"] = self.args.since
        # Otherwise the daemon resumes after this consumer's last ack (or, for a consumer it
        # has never seen, sends only new events).
        if self.args.types:
            request["types"] = self.args.types
        self.conn = Connection(self.args.socket)
        # An ack sent on a connection that broke may not have been stored: send it again.
        self.pending_acks = 0
        self.acked_seq = None
        self.conn.send(request)
        reply = self.conn.receive()
        if not reply.get("ok"):
            error = reply.get("error", {})
            if error.get("code") == "too_many_connections":
                raise ConnectionError(error.get("message"))
            raise Refused(error)
        log(f"subscribed as {self.args.consumer!r}; the daemon's head is seq {reply['head']}")

    def ack(self):
        if self.last_seq is not None and self.last_seq != self.acked_seq:
            self.conn.send({"op": "ack", "consumer": self.args.consumer, "seq": self.last_seq})
            self.pending_acks += 1
            self.acked_seq = self.last_seq
            self.unacked = 0

    def handle(self, message):
        if "specversion" not in message:
            # A reply to one of our acks, or an error ending the subscription.
            if not message.get("ok"):
                raise Refused(message.get("error", {}))
            self.pending_acks -= 1
            return
        seq = message["seq"]
        if self.last_seq is not None and seq <= self.last_seq:
            return
        if self.args.json:
            print(json.dumps(message, ensure_ascii=False))
        else:
            print(f"{seq} {message['type']} {message.get('subject', '')}")
        # Printed (processed) before it is acknowledged: a crash in between means redelivery,
        # never a lost event.
        sys.stdout.flush()
        self.last_seq = seq
        self.printed += 1
        self.unacked += 1
        if self.unacked >= ACK_EVERY:
            self.ack()

    def done(self):
        return self.args.count is not None and self.printed >= self.args.count

    def stream(self):
        while not self.done() and not STOP.is_set():
            message = self.conn.receive(timeout=ACK_AFTER_IDLE)
            if message is None:
                self.ack()
            else:
                self.handle(message)
        self.finish()

    def finish(self):
        """Acknowledges what was printed and waits until the daemon has stored it."""
        self.ack()
        while self.pending_acks > 0:
            message = self.conn.receive()
            if "specversion" not in message:
                self.handle(message)

    def run(self):
        delay = RECONNECT_FIRST_DELAY
        while not STOP.is_set():
            try:
                self.subscribe()
                delay = RECONNECT_FIRST_DELAY
                self.stream()
                return 0
            except (ConnectionError, OSError) as error:
                if self.conn is not None:
                    self.conn.close()
                    self.conn = None
                if STOP.is_set():
                    break
                # The daemon restarted or is not up yet: the ack cursor makes this safe.
                log(f"{error}; reconnecting in {delay:g}s")
                pause(delay)
                delay = min(delay * 2, RECONNECT_MAX_DELAY)
        if self.last_seq != self.acked_seq:
            log("stopped before the last ack was stored; those events will come again")
        return 0


def pause(seconds):
    """Sleeps, but wakes up for a stop."""
    deadline = time.monotonic() + seconds
    while not STOP.is_set() and time.monotonic() < deadline:
        time.sleep(max(0.0, min(0.1, deadline - time.monotonic())))


def log(text):
    print(f"subscribe.py: {text}", file=sys.stderr, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", default="/run/orgsync/orgsync.sock", help="the daemon's socket.path")
    parser.add_argument("--consumer", required=True, help="this application's consumer name")
    parser.add_argument("--since", type=int, help="start after this seq instead of after the last ack")
    parser.add_argument("--types", nargs="+", metavar="PATTERN", help="event types, or prefixes like orgsync.member.*")
    parser.add_argument("--count", type=int, help="exit after this many events")
    parser.add_argument("--json", action="store_true", help="print each event's JSON instead of a summary")
    args = parser.parse_args()

    # Ctrl-C, and a service manager stopping us.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, lambda *_: STOP.set())
    try:
        return Consumer(args).run()
    except Refused as refused:
        log(f"{refused.code}: {refused}")
        return EXIT_GAP if refused.code == "gap" else EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
