"""A local fake email provider for tests, benchmarks and trying a configuration.

It answers Postmark's ``POST /email/batch`` and Resend's ``POST /emails/batch`` the way the
real services do (and, more simply, SendGrid's ``/v3/mail/send``, Mailgun's
``/v3/<domain>/messages`` and SES's ``/v2/email/outbound-emails``, for benchmarks), records
every message it accepts, and misbehaves on request: latency, 429
storms, 5xx bursts, connections dropped before or after accepting a batch, answers slower than
the client's timeout, and per-message failures for addresses containing a marker. Resend's
``Idempotency-Key`` is honoured as Resend documents it: a repeated key with the same body returns
the first answer and sends nothing; with another body it is refused (409
``invalid_idempotent_request``), and while the first request is still running, a second one
is refused too (409 ``concurrent_idempotent_requests``). ``script`` plays a fixed sequence of
faults, one per batch request, for tests that need an exact order of events.

    python -m newsletter.devtools.fake_provider --port 8025 --latency-ms 20 --record sent.jsonl

then ``provider = "postmark"`` (or ``"resend"``) with
``provider_base_url = "http://127.0.0.1:8025"``. ``GET /_fake/messages`` lists what was
accepted, ``GET /_fake/stats`` counts requests, bytes and messages, and ``POST /_fake/faults``
changes the faults (a JSON body with ``Faults`` fields).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

# orjson keeps a fake that parses gigabytes in a benchmark from being the bottleneck.
_loads = orjson.loads


@dataclass
class Faults:
    p429: float = 0.0           # answer 429 with Retry-After
    p500: float = 0.0           # answer 500, accepting nothing
    p_drop_before: float = 0.0  # close the connection without accepting anything
    p_drop_after: float = 0.0   # accept the batch, then close the connection unanswered
    p_slow_after: float = 0.0   # accept the batch, then answer after `slow_seconds`
    slow_seconds: float = 5.0
    retry_after: float = 1.0
    bounce_marker: str = "bounce"   # addresses containing it fail (Postmark 406)
    invalid_marker: str = "invalid"  # addresses containing it fail (Postmark 300)
    fail_first: int = 0         # answer the first N requests with 500 (a burst)
    bad_token: str = ""         # this API token is refused with 401
    # Comma-separated faults for the 1st, 2nd, ... batch request (ok, 429, 500, drop_before,
    # drop_after, slow_after); requests after the last one are answered normally.
    script: str = ""


@dataclass
class Record:
    provider: str
    to: str
    message_id: str
    subject: str
    metadata: dict[str, Any]
    idempotency_key: str = ""


class FakeProvider:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0,
                 faults: Faults | None = None, record_path: Path | None = None, seed: int = 0):
        self.latency = latency
        self.faults = faults or Faults()
        self.record_path = Path(record_path) if record_path else None
        self.records: list[Record] = []
        self.requests = 0
        self.bytes_received = 0
        self._idempotent: dict[str, tuple[str, tuple[int, bytes]]] = {}
        self._running_keys: set[str] = set()
        # Called with each accepted batch's records before the answer goes out: tests trigger
        # on it ("once the provider has accepted a batch") instead of on a timer.
        self.on_accept: Callable[[list[Record]], None] | None = None
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._server = _Server((host, port), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeProvider:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def recipients(self) -> list[str]:
        with self._lock:
            return [r.to for r in self.records]

    # -- request handling, called from server threads -------------------------------------

    def roll(self, p: float) -> bool:
        with self._lock:
            return p > 0 and self._random.random() < p

    def accept(self, records: list[Record]) -> None:
        with self._lock:
            self.records.extend(records)
            if self.record_path:
                with self.record_path.open("a", encoding="utf-8") as fh:
                    for r in records:
                        fh.write(json.dumps(asdict(r)) + "\n")
        if self.on_accept is not None:
            self.on_accept(records)

    def scripted(self, number: int) -> str:
        """The scripted fault for the ``number``-th batch request ('' when none)."""
        steps = [s.strip() for s in self.faults.script.split(",") if s.strip()]
        return steps[number - 1] if number <= len(steps) else ""

    def idempotent_answer(self, key: str, digest: str) -> tuple[int, bytes] | None:
        """The first answer for ``key``; a 409 when the key is running or carried another
        body. Marks the key running otherwise (``remember`` or ``release`` ends that)."""
        with self._lock:
            if key in self._running_keys:
                return 409, json.dumps({"statusCode": 409, "name": "concurrent_idempotent_"
                                        "requests", "message": "Same idempotency key used "
                                        "while original request is still in progress"}).encode()
            seen = self._idempotent.get(key)
            if seen is None:
                self._running_keys.add(key)
                return None
            if seen[0] != digest:
                return 409, json.dumps({"statusCode": 409, "name": "invalid_idempotent_request",
                                        "message": "Same idempotency key used with a "
                                        "different request payload"}).encode()
            return seen[1]

    def remember(self, key: str, digest: str, answer: tuple[int, bytes]) -> None:
        with self._lock:
            self._idempotent[key] = (digest, answer)
            self._running_keys.discard(key)

    def release(self, key: str) -> None:
        with self._lock:
            self._running_keys.discard(key)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # A client that gave up waiting (the timeouts we inject) is expected, not an error.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler(fake: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; without this, Nagle and delayed ACKs add
        # ~40 ms to every answer.
        disable_nagle_algorithm = True

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            if self.path == "/_fake/messages":
                with fake._lock:
                    body = [asdict(r) for r in fake.records]
                return self._json(200, body)
            if self.path == "/_fake/stats":
                with fake._lock:
                    stats = {"requests": fake.requests, "bytes_received": fake.bytes_received,
                             "messages": len(fake.records)}
                return self._json(200, stats)
            self._json(404, {"message": "not found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length)
            with fake._lock:
                fake.bytes_received += length
            if self.path == "/_fake/faults":
                fake.faults = Faults(**{**asdict(fake.faults), **json.loads(raw or b"{}")})
                return self._json(200, asdict(fake.faults))
            if self.path == "/email/batch":
                return self._batch("postmark", raw)
            if self.path == "/emails/batch":
                return self._batch("resend", raw)
            if self.path in SIMPLE_ROUTES or self.path.endswith("/messages"):
                return self._simple(raw)
            self._json(404, {"message": "not found"})

        def _simple(self, raw: bytes) -> None:
            """SendGrid, Mailgun, SES: accept after the latency; record the recipients."""
            if fake.latency:
                time.sleep(fake.latency)
            if self.path == "/v3/mail/send":
                body = _loads(raw)
                to = [t["email"] for p in body["personalizations"] for t in p["to"]]
                fake.accept([Record("sendgrid", t, "", body.get("subject", ""), {}) for t in to])
                message_id = uuid.uuid4().hex
                return self._send(202, b"", {"X-Message-Id": message_id})
            if self.path == "/v2/email/outbound-emails":
                body = _loads(raw)
                to = body["Destination"]["ToAddresses"]
                message_id = uuid.uuid4().hex
                fake.accept([Record("ses", t, message_id, "", {}) for t in to])
                return self._json(200, {"MessageId": message_id})
            to = _form_values(self.headers.get("Content-Type", ""), raw, "to")
            message_id = f"<{uuid.uuid4().hex}@fake>"
            fake.accept([Record("mailgun", t, message_id, "", {}) for t in to])
            self._json(200, {"id": message_id, "message": "Queued. Thank you."})

        def _batch(self, provider: str, raw: bytes) -> None:
            with fake._lock:
                fake.requests += 1
                burst = fake.requests <= fake.faults.fail_first
                step = fake.scripted(fake.requests)
            if fake.latency:
                time.sleep(fake.latency)
            faults = fake.faults
            token = (self.headers.get("X-Postmark-Server-Token")
                     or self.headers.get("Authorization", "").removeprefix("Bearer "))
            if faults.bad_token and token == faults.bad_token:
                return self._json(401, {"ErrorCode": 10, "name": "invalid_api_key",
                                        "Message": "Bad or missing Server API token."})
            if provider == "postmark" and not self.headers.get("X-Postmark-Server-Token"):
                return self._json(401, {"ErrorCode": 10, "Message": "No Account or Server API "
                                        "tokens were supplied in the HTTP headers."})
            if provider == "resend" and not self.headers.get("Authorization"):
                return self._json(401, {"statusCode": 401, "name": "missing_api_key",
                                        "message": "Missing API key"})
            if step == "429" or fake.roll(faults.p429):
                return self._json(429, {"message": "rate limited"},
                                  {"Retry-After": str(faults.retry_after)})
            if step == "500" or burst or fake.roll(faults.p500):
                return self._json(500, {"message": "internal error"})
            if step == "drop_before" or fake.roll(faults.p_drop_before):
                return self._drop()
            key = self.headers.get("Idempotency-Key", "") if provider == "resend" else ""
            digest = hashlib.sha256(raw).hexdigest()
            if key:
                cached = fake.idempotent_answer(key, digest)
                if cached:
                    return self._send(*cached)
            try:
                messages = _loads(raw)
            except ValueError:
                if key:
                    fake.release(key)
                return self._json(422 if provider == "postmark" else 400,
                                  {"ErrorCode": 402, "Message": "Received invalid JSON input."})
            status, answer, records = _answer(provider, messages, faults, key)
            fake.accept(records)
            payload = json.dumps(answer).encode()
            if key:
                fake.remember(key, digest, (status, payload))
            if step == "drop_after" or fake.roll(faults.p_drop_after):
                return self._drop()
            if step == "slow_after" or fake.roll(faults.p_slow_after):
                time.sleep(faults.slow_seconds)
            self._send(status, payload)

        def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(body).encode(), headers)

        def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def _drop(self) -> None:
            self.close_connection = True
            self.connection.close()

    return Handler


SIMPLE_ROUTES = ("/v3/mail/send", "/v2/email/outbound-emails")


def _form_values(content_type: str, raw: bytes, name: str) -> list[str]:
    """The values of one field of a multipart/form-data body."""
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    values = []
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == name:
            values.append(part.get_content().strip())
    return values


def _answer(provider: str, messages: Any, faults: Faults, key: str):
    """The provider's answer to a well-formed batch, and the messages it accepted."""
    if not isinstance(messages, list):
        return 422, {"ErrorCode": 402, "Message": "expected a list"}, []
    if provider == "resend":
        return _answer_resend(messages, key)
    results, records = [], []
    for msg in messages:
        to = str(msg.get("To", ""))
        if faults.bounce_marker and faults.bounce_marker in to:
            results.append({"ErrorCode": 406, "To": to, "Message": "You tried to send to "
                            "recipient(s) that have been marked as inactive."})
            continue
        if faults.invalid_marker and faults.invalid_marker in to:
            results.append({"ErrorCode": 300, "To": to, "Message": "Invalid 'To' address."})
            continue
        message_id = str(uuid.uuid4())
        results.append({"ErrorCode": 0, "Message": "OK", "MessageID": message_id, "To": to,
                        "SubmittedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        records.append(Record("postmark", to, message_id, str(msg.get("Subject", "")),
                              dict(msg.get("Metadata") or {})))
    return 200, results, records


def _answer_resend(messages: list, key: str):
    if len(messages) > 100:
        return 422, {"statusCode": 422, "name": "validation_error",
                     "message": "Too many emails in batch (max 100)."}, []
    data, records = [], []
    for msg in messages:
        to = msg.get("to")
        to = ", ".join(to) if isinstance(to, list) else str(to)
        message_id = str(uuid.uuid4())
        data.append({"id": message_id})
        tags = {t.get("name"): t.get("value") for t in msg.get("tags") or []}
        records.append(Record("resend", to, message_id, str(msg.get("subject", "")), tags, key))
    return 200, {"data": data}, records


FAULT_HELP = {
    "p429": "share of requests answered 429 with Retry-After (0 to 1)",
    "p500": "share of requests answered 500, accepting nothing (0 to 1)",
    "p_drop_before": "share of connections closed before accepting anything (0 to 1)",
    "p_drop_after": "share of batches accepted, then the connection closed unanswered",
    "p_slow_after": "share of batches accepted, then answered after --slow-seconds",
    "slow_seconds": "how late a slow answer comes (default: %(default)s)",
    "retry_after": "the Retry-After seconds of a 429 (default: %(default)s)",
    "bounce_marker": "addresses containing this fail as bounced (default: %(default)s)",
    "invalid_marker": "addresses containing this fail as invalid (default: %(default)s)",
    "fail_first": "answer the first N requests with 500, a burst (default: 0)",
    "bad_token": "refuse this API token with 401",
    "script": "comma-separated faults for the 1st, 2nd, ... batch request (ok, 429, 500, "
              "drop_before, drop_after, slow_after); later requests are answered normally",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m newsletter.devtools.fake_provider",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on "
                        "(default: %(default)s)")
    parser.add_argument("--port", type=int, default=8025,
                        help="port to listen on; 0 picks a free one (default: %(default)s)")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="wait this long before answering each request (default: 0)")
    parser.add_argument("--record", type=Path, default=None, help="append accepted messages "
                        "to this JSON-lines file")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed for the random faults, so a run can be repeated")
    for f in fields(Faults):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default),
                            default=f.default, help=FAULT_HELP.get(f.name))
    args = parser.parse_args(argv)
    faults = Faults(**{f.name: getattr(args, f.name) for f in fields(Faults)})
    fake = FakeProvider(host=args.host, port=args.port, latency=args.latency_ms / 1000,
                        faults=faults, record_path=args.record, seed=args.seed)
    print(f"fake provider listening on {fake.base_url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        fake._server.serve_forever()


if __name__ == "__main__":
    main()
