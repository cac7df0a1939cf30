"""The fake provider's HTTP side: the request handler and each provider's answers."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import orjson

from . import fake_search, fake_search_mailgun
from .fake_model import Faults, Record

if TYPE_CHECKING:
    from .fake_provider import FakeProvider

# orjson keeps a fake that parses gigabytes in a benchmark from being the bottleneck.
_loads = orjson.loads


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # A client that gave up waiting (the timeouts we inject) is expected, not an error.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def handler(fake: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; without this, Nagle and delayed ACKs add
        # ~40 ms to every answer.
        disable_nagle_algorithm = True

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            found = search_answer(fake, self.path, self.headers)
            if found is not None:
                return self._json(*found)
            if self.path == "/_fake/messages":
                with fake._lock:
                    body = [asdict(r) for r in fake.records]
                return self._json(200, body)
            if self.path == "/_fake/stats":
                with fake._lock:
                    stats = {"requests": fake.requests, "bytes_received": fake.bytes_received,
                             "messages": len(fake.records), "searches": fake.searches}
                return self._json(200, stats)
            self._json(404, {"message": "not found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length)
            if len(raw) < length:
                # The client went away mid-body: a provider takes nothing of a cut request.
                self.close_connection = True
                return
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
            """SendGrid, Mailgun, SES: accept after the latency; record the recipients. Their
            requests are numbered like the batch requests, so that ``script`` (and the random
            faults) can lose one before or after it is accepted, or answer it late."""
            with fake._lock:
                fake.requests += 1
                step = fake.scripted(fake.requests)
            if fake.latency:
                time.sleep(fake.latency)
            faults = fake.faults
            if step == "drop_before" or fake.roll(faults.p_drop_before):
                return self._drop()
            status, payload, headers = self._accept_simple(raw)
            if step == "drop_after" or fake.roll(faults.p_drop_after):
                return self._drop()
            if step == "slow_after" or fake.roll(faults.p_slow_after):
                time.sleep(faults.slow_seconds)
            self._send(status, payload, headers)

        def _accept_simple(self, raw: bytes) -> tuple[int, bytes, dict[str, str] | None]:
            if self.path == "/v3/mail/send":
                body = _loads(raw)
                to = [t["email"] for p in body["personalizations"] for t in p["to"]]
                fake.accept([Record("sendgrid", t, "", body.get("subject", ""), {}) for t in to])
                return 202, b"", {"X-Message-Id": uuid.uuid4().hex}
            if self.path == "/v2/email/outbound-emails":
                body = _loads(raw)
                to = body["Destination"]["ToAddresses"]
                message_id = uuid.uuid4().hex
                fake.accept([Record("ses", t, message_id, "", {}) for t in to])
                return 200, json.dumps({"MessageId": message_id}).encode(), None
            message_id = f"<{uuid.uuid4().hex}@fake>"
            fake.accept(fake_search_mailgun.records_from_form(
                self.headers.get("Content-Type", ""), raw, message_id))
            return 200, json.dumps({"id": message_id, "message": "Queued. Thank you."}).encode(), \
                None

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


def search_answer(fake: FakeProvider, path: str, headers: Any) -> tuple[int, Any] | None:
    """A provider search's (status, JSON body), or None when ``path`` is none of them. Each
    provider's search is its own module, answering as the provider documents it."""
    return fake_search.answer(fake, path, headers)


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
                              dict(msg.get("Metadata") or {}),
                              stream=str(msg.get("MessageStream") or "outbound")))
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
        records.append(Record("resend", to, message_id, str(msg.get("subject", "")), tags, key,
                              sender=str(msg.get("from", ""))))
    return 200, {"data": data}, records
