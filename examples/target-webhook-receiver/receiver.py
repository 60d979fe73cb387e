#!/usr/bin/env python3
"""An example receiver for Portcullis's webhook target (standard library only).

What it does:
- POST (any path): an operation {"op": "grant"|"revoke", "id": OP_ID, "grant": {...}}.
  "grant" stores the grant under its id, "revoke" removes it; both are idempotent, and an
  idempotency-key already applied is answered 200 without doing anything again.
- GET /grants: {"grants": [...]}, every grant held now (Portcullis's observe_url).

Invariants:
- Every request must carry x-portcullis-signature: t=UNIX,v1=HEX, HMAC-SHA256 with the key in
  PORTCULLIS_WEBHOOK_KEY over "UNIX.BODY" (the empty body for GET). It is compared in constant
  time, and a timestamp more than 300 s away from now is refused (401), so a captured request
  cannot be replayed later.
- State is in memory only: a restart forgets every grant (Portcullis's reconciler then reports
  them missing). A real receiver keeps its state, and the applied idempotency keys, durably.

Usage: PORTCULLIS_WEBHOOK_KEY=... python3 receiver.py [HOST:PORT]   (default 127.0.0.1:8099)
"""

import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_AGE = 300  # seconds a signature stays valid (either way, for clock skew)
MAX_BODY = 1024 * 1024  # largest operation accepted

KEY = os.environ.get("PORTCULLIS_WEBHOOK_KEY", "").encode()

LOCK = threading.Lock()
HELD = {}  # grant id -> grant object
APPLIED = set()  # idempotency keys already applied


def signature_ok(header, body):
    """Whether `header` (t=UNIX,v1=HEX) signs `body` with KEY and is fresh."""
    if not header:
        return False
    parts = {}
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        parts[name] = value
    try:
        t = int(parts.get("t", ""))
    except ValueError:
        return False
    if abs(time.time() - t) > MAX_AGE:
        return False
    expected = hmac.new(KEY, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


class Handler(BaseHTTPRequestHandler):
    def answer(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if not signature_ok(self.headers.get("x-portcullis-signature"), b""):
            return self.answer(401, {"error": "bad or stale signature"})
        if self.path.split("?", 1)[0] != "/grants":
            return self.answer(404, {"error": "not found"})
        with LOCK:
            grants = list(HELD.values())
        self.answer(200, {"grants": grants})

    def do_POST(self):
        try:
            length = int(self.headers.get("content-length", "0"))
        except ValueError:
            return self.answer(400, {"error": "bad content-length"})
        if length < 0 or length > MAX_BODY:
            return self.answer(413, {"error": "body too large"})
        body = self.rfile.read(length)
        if not signature_ok(self.headers.get("x-portcullis-signature"), body):
            return self.answer(401, {"error": "bad or stale signature"})
        try:
            op = json.loads(body)
            kind = op["op"]
            grant = op["grant"]
            grant_id = grant["id"]
        except (ValueError, KeyError, TypeError):
            return self.answer(400, {"error": "not an operation"})
        key = self.headers.get("idempotency-key") or op.get("id")
        with LOCK:
            if key in APPLIED:
                return self.answer(200, {"status": "already applied"})
            if kind == "grant":
                HELD[grant_id] = grant
            elif kind == "revoke" and str(grant_id).startswith("drift:"):
                # Drift being reverted: a right held without a grant from Portcullis.
                gone = set(grant.get("target_grants") or [])
                for gid, held in list(HELD.items()):
                    if held.get("person") == grant.get("person"):
                        held["target_grants"] = [r for r in held.get("target_grants", []) if r not in gone]
                        if not held["target_grants"]:
                            del HELD[gid]
            elif kind == "revoke":
                HELD.pop(grant_id, None)
            else:
                return self.answer(400, {"error": f"unknown op {kind!r}"})
            if key:
                APPLIED.add(key)
        sys.stderr.write(f"{kind} {grant_id} {grant.get('person')} {grant.get('target_grants')}\n")
        self.answer(200, {"status": "applied"})


def main():
    if not KEY:
        sys.exit("set PORTCULLIS_WEBHOOK_KEY to the target's secret")
    addr = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8099"
    host, _, port = addr.rpartition(":")
    server = ThreadingHTTPServer((host.strip("[]") or "127.0.0.1", int(port)), Handler)
    sys.stderr.write(f"listening on {addr}\n")
    server.serve_forever()


if __name__ == "__main__":
    main()
