"""Webhook bodies against hostile clients: refused from the headers before a byte of the body
is read, capped per provider however the body is sent, and only so many read at once.

Most tests drive the app in-process, handing it the body only when it asks (``Upload``), so
they can tell exactly how much of a body was read, if any; one goes over a real socket.
"""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import timedelta

import pytest
import uvicorn

from newsletter.feedback.webhooks import resend, sendgrid
from newsletter.feedback.webhooks.inbound import PROVIDERS
from newsletter.store import db
from newsletter.web import webhooks
from tests import test_webhook_mailgun as mg
from tests import test_webhook_postmark as pm
from tests import test_webhook_resend as rs
from tests import test_webhook_sendgrid as sg
from tests import test_webhook_ses as ses
from tests.test_events_world import NOW, stored_events
from tests.webhook_helpers import SECRETS, SG, SNS, SNS_NOTIFICATION, signed_webhook_app

# Headers each provider's precheck accepts: with them, only the body can be wrong.
GOOD_HEADERS = {
    "sendgrid": SG.headers(b"", sg.TS),
    "mailgun": {"content-type": "application/json"},
    "resend": rs.sign(b""),
    "ses": SNS_NOTIFICATION,
    "postmark": pm.auth(pm.CREDENTIALS),
}
CHUNK = 64 * 1024
FLOOD = 8 * 1024 * 1024  # what the hostile clients of issue 20 sent


class Upload:
    """One client's body, handed over only when the app awaits ``receive``.

    ``stall`` holds the body after its first chunk until the event is set; the client then
    goes away (``http.disconnect``).
    """

    def __init__(self, body: bytes = b"", *, chunk: int = CHUNK,
                 stall: asyncio.Event | None = None):
        self.body, self.chunk, self.stall = body, chunk, stall
        self.asked = 0    # times the app awaited receive()
        self.handed = 0   # body bytes the app was given
        self.reading = asyncio.Event()

    async def receive(self) -> dict:
        self.asked += 1
        self.reading.set()
        if self.stall is not None and self.handed:
            await self.stall.wait()
            return {"type": "http.disconnect"}
        piece = self.body[self.handed:self.handed + self.chunk]
        self.handed += len(piece)
        more = self.stall is not None or self.handed < len(self.body)
        return {"type": "http.request", "body": piece, "more_body": more}


class Answer:
    def __init__(self):
        self.status, self.headers, self.body = 0, {}, b""

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")


async def call(app, path: str, upload: Upload, headers: dict | None = None, *,
               method: str = "POST", length: int | None = None) -> Answer:
    """One request through the whole app (middleware included), as a server would make it."""
    pairs = [(b"host", b"localhost:8000")] + [
        (k.lower().encode(), v.encode("latin-1")) for k, v in (headers or {}).items()]
    if length is not None:
        pairs.append((b"content-length", str(length).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": pairs,
             "client": ("127.0.0.1", 50000), "server": ("localhost", 8000)}
    answer = Answer()
    await asyncio.wait_for(app(scope, upload.receive, answer.send), timeout=30)
    return answer


@pytest.fixture
async def app(database_url):
    app = signed_webhook_app(database_url, **SECRETS)
    yield app
    await webhooks.close(app)
    db.dispose_engines()


@pytest.fixture
async def bare_app(database_url):
    """No webhook secret configured at all."""
    app = signed_webhook_app(database_url)
    yield app
    await webhooks.close(app)
    db.dispose_engines()


def padded(body: bytes, size: int) -> bytes:
    """``body`` followed by JSON whitespace up to ``size`` bytes: the same value, that long."""
    assert len(body) <= size
    return body + b" " * (size - len(body))


@pytest.mark.parametrize(("provider", "status"), [
    ("sendgrid", 403), ("mailgun", 406), ("resend", 403), ("ses", 403), ("postmark", 403)])
async def test_an_unconfigured_provider_is_refused_before_its_body_is_read(
        bare_app, provider, status):
    cap = PROVIDERS[provider].max_body
    upload = Upload(b" " * cap)
    answer = await call(bare_app, f"/webhooks/{provider}", upload, GOOD_HEADERS[provider],
                        length=cap)
    assert (answer.status, upload.asked) == (status, 0)
    assert b"is not set" in answer.body


async def test_wrong_basic_credentials_are_refused_before_the_body(app):
    body = pm.encode(dict(pm.BOUNCE, Email="zoë@bücher.example"))
    for headers in (pm.auth("postmark:“guess”-José"), {}, {"authorization": "Bearer x"}):
        upload = Upload(body)
        answer = await call(app, "/webhooks/postmark", upload, headers, length=len(body))
        assert (answer.status, upload.asked) == (401, 0)
        assert answer.headers["www-authenticate"].startswith("Basic realm=")
    upload = Upload(body)
    answer = await call(app, "/webhooks/postmark", upload, pm.auth(pm.CREDENTIALS),
                        length=len(body))
    assert answer.status == 200 and upload.handed == len(body), "the right pair is read"


STALE = NOW - timedelta(hours=26)


@pytest.mark.parametrize(("provider", "headers"), [
    ("sendgrid", {sendgrid.TIMESTAMP_HEADER: str(sg.TS)}),
    ("sendgrid", {sendgrid.SIGNATURE_HEADER: GOOD_HEADERS["sendgrid"][sendgrid.SIGNATURE_HEADER]}),
    ("sendgrid", SG.headers(b"", int(STALE.timestamp()))),
    ("sendgrid", dict(GOOD_HEADERS["sendgrid"], **{sendgrid.TIMESTAMP_HEADER: "¹²³"})),
    ("resend", {k: v for k, v in rs.sign(b"").items() if k != "svix-signature"}),
    ("resend", {k: v for k, v in rs.sign(b"").items() if k != "svix-id"}),
    ("resend", rs.sign(b"", when=NOW - resend.TOLERANCE - timedelta(seconds=1))),
    ("ses", {"content-type": "text/plain; charset=UTF-8"}),
    ("ses", {"x-amz-sns-message-type": "Notificación"}),
], ids=["sendgrid no signature", "sendgrid no timestamp", "sendgrid stale",
        "sendgrid odd digits", "resend no signature", "resend no id", "resend stale",
        "ses no message type", "ses unknown message type"])
async def test_missing_or_stale_signature_headers_are_refused_before_the_body(
        app, provider, headers):
    body = '[{"event": "bounce", "email": "zoë@bücher.example"}]'.encode()
    upload = Upload(body)
    answer = await call(app, f"/webhooks/{provider}", upload, headers, length=len(body))
    assert (answer.status, upload.asked) == (403, 0)
    assert stored_events(app.state.engine) == []


@pytest.mark.parametrize("provider", list(PROVIDERS))
async def test_a_declared_length_over_the_cap_is_a_413_before_the_body(app, provider):
    cap = PROVIDERS[provider].max_body
    upload = Upload(b" " * (cap + 1))
    answer = await call(app, f"/webhooks/{provider}", upload, GOOD_HEADERS[provider],
                        length=cap + 1)
    assert (answer.status, upload.asked) == (413, 0)


@pytest.mark.parametrize("declared", [None, 1024], ids=["chunked", "lying length"])
@pytest.mark.parametrize("provider", list(PROVIDERS))
async def test_a_body_past_the_cap_is_a_413_as_soon_as_it_passes(app, provider, declared):
    cap = PROVIDERS[provider].max_body
    upload = Upload(b" " * FLOOD)
    answer = await call(app, f"/webhooks/{provider}", upload, GOOD_HEADERS[provider],
                        length=declared)
    assert answer.status == 413
    assert cap < upload.handed <= cap + CHUNK, "read no further than the chunk past the cap"
    assert stored_events(app.state.engine) == []


def full_size(provider: str) -> tuple[bytes, dict]:
    """A real, signed request of each provider, padded to exactly its cap."""
    cap = PROVIDERS[provider].max_body
    if provider == "sendgrid":
        body = padded(sg.body_of(dict(sg.BOUNCE, reason="550 “José” unknown")), cap)
        return body, SG.headers(body, sg.TS)
    if provider == "mailgun":
        return padded(mg.signed(mg.FAILED), cap), {}
    if provider == "resend":
        body = padded(rs.encode(rs.BOUNCED), cap)
        return body, rs.sign(body)
    if provider == "ses":
        return padded(ses.body(SNS.sign(ses.notification(ses.BOUNCE))), cap), SNS_NOTIFICATION
    return padded(pm.encode(pm.BOUNCE), cap), pm.auth(pm.CREDENTIALS)


@pytest.mark.parametrize("provider", list(PROVIDERS))
@pytest.mark.parametrize("declared", [True, False], ids=["with length", "chunked"])
async def test_a_body_of_exactly_the_cap_is_taken(app, provider, declared):
    body, headers = full_size(provider)
    upload = Upload(body)
    answer = await call(app, f"/webhooks/{provider}", upload, headers,
                        length=len(body) if declared else None)
    assert answer.status == 200, answer.body
    assert json.loads(answer.body)["new"] >= 1


async def test_bodies_read_at_once_are_bounded_and_a_disconnect_frees_its_slot(app):
    async def stall_all() -> tuple[asyncio.Event, list[Upload], list[asyncio.Task]]:
        gone = asyncio.Event()
        uploads = [Upload(b" " * CHUNK, stall=gone) for _ in range(webhooks.MAX_READING)]
        tasks = [asyncio.create_task(call(app, "/webhooks/mailgun", u, GOOD_HEADERS["mailgun"]))
                 for u in uploads]
        await asyncio.wait_for(asyncio.gather(*(u.reading.wait() for u in uploads)), 30)
        return gone, uploads, tasks

    gone, uploads, tasks = await stall_all()
    late = Upload(mg.signed(mg.FAILED))
    answer = await call(app, "/webhooks/mailgun", late, GOOD_HEADERS["mailgun"])
    assert (answer.status, late.asked) == (503, 0), "told to come back, not queued"
    assert int(answer.headers["retry-after"]) > 0
    health = await call(app, "/healthz", Upload(), method="GET")
    assert health.status == 200, "the rest of the app still answers"

    gone.set()  # every stalled client goes away mid-body
    assert [a.status for a in await asyncio.gather(*tasks)] == [400] * webhooks.MAX_READING
    assert stored_events(app.state.engine) == []

    # Every slot was given back: as many stall again, and a complete body is still taken.
    gone, uploads, tasks = await stall_all()
    assert not any(t.done() for t in tasks), "none was turned away"
    gone.set()
    await asyncio.gather(*tasks)
    answer = await call(app, "/webhooks/mailgun", late, GOOD_HEADERS["mailgun"])
    assert answer.status == 200 and json.loads(answer.body)["new"] == 1


async def test_over_a_real_socket_the_refusal_comes_without_the_body_being_sent(database_url):
    app = signed_webhook_app(database_url, mailgun_webhook_signing_key=mg.KEY)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_config=None,
                                           access_log=False))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        while not server.started:  # the server says when it listens; nothing is timed
            await asyncio.sleep(0.01)
        for path, length, status in [("/webhooks/postmark", 900_000, b"403"),
                                     ("/webhooks/mailgun", FLOOD, b"413")]:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"POST {path} HTTP/1.1\r\nHost: localhost\r\n"
                         f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
                         .encode())
            await writer.drain()
            # Not one byte of the body is sent: an answer at all means it was not waited for.
            status_line = await asyncio.wait_for(reader.readline(), timeout=30)
            assert status_line.split()[1] == status, status_line
            writer.close()
            await writer.wait_closed()
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=30)
        await webhooks.close(app)
        db.dispose_engines()
