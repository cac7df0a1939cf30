"""Provider webhooks under load: 20,000 SendGrid events in signed batches of 500, then 5,000
single signed Mailgun events, against a running `newsletter web`.

For each backend (SQLite, then PostgreSQL when it answers), in a fresh database:

1. 25,000 active subscribers and two sends are put in the ledger: one through SendGrid (one
   message id per request of 1,000 recipients, as SendGrid answers) and one through Mailgun.
2. `newsletter web` starts as a child process (uvicorn, one worker).
3. Another process posts the 40 SendGrid batches (4 at a time) and, at the same time, the
   5,000 Mailgun events (32 at a time), each signed as the provider signs it, over keep-alive
   connections. The events are what a send hears back: mostly deliveries, some deferrals,
   hard bounces, complaints, unsubscribes and opens. The clock runs from the first request to
   the last answer.
4. Then a tenth of the requests is sent again, as providers retry; the database must hold
   each event exactly once, and the subscribers the bounces, complaints and unsubscribes
   named must be stopped.

Target: every request answered 200, every event stored exactly once, at least 2,000 events/s.

    .venv/bin/python bench/bench_webhooks.py [--backends sqlite postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from figures import figure, table_judges  # noqa: E402

from bench.bench_web import (  # noqa: E402
    NEWSLETTER,
    cpu_seconds,
    database,
    each_backend,
    free_port,
    project,
    wait_healthy,
)
from bench.http_load import Connection, raw_request  # noqa: E402
from tests.process_helpers import seed_subscribers, stop_process  # noqa: E402

SECRET = "bench-webhooks-secret-0123456789abcdef"
MAILGUN_KEY = "bench-mailgun-signing-key"
SENDGRID_EVENTS, BATCH, MAILGUN_EVENTS = 20_000, 500, 5_000
PER_REQUEST_ID = 1_000  # recipients SendGrid and Mailgun answer one message id for
TARGET = 2_000
# What comes back from a send, roughly: (SendGrid event, Mailgun event, share)
MIX = [("delivered", "delivered", 0.90), ("deferred", "failed:temporary", 0.04),
       ("bounce", "failed:permanent", 0.03), ("spamreport", "complained", 0.01),
       ("unsubscribe", "unsubscribed", 0.01), ("open", "opened", 0.01)]
STOPPING = {"bounce", "spamreport", "unsubscribe", "failed:permanent", "complained",
            "unsubscribed"}


# -- the load, in a process of its own ------------------------------------------------------


async def _post_all(port: int, requests: list[dict], concurrency: int) -> dict:
    queue: asyncio.Queue[dict] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    statuses: Counter = Counter()
    new = duplicates = 0
    errors: list[str] = []

    host = f"127.0.0.1:{port}"

    async def worker(connection: Connection) -> None:
        nonlocal new, duplicates
        while True:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                status, body = await connection.send(raw_request(
                    "POST", item["path"], host, headers=item["headers"],
                    body=base64.b64decode(item["body"])))
            except (OSError, asyncio.IncompleteReadError) as exc:
                errors.append(type(exc).__name__)
                await connection.close()
                continue
            statuses[status] += 1
            if status == 200:
                answer = json.loads(body)
                new += answer["new"]
                duplicates += answer["duplicates"]

    connections = [Connection("127.0.0.1", port) for _ in range(concurrency)]
    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in connections))
    seconds = time.perf_counter() - start
    for connection in connections:
        await connection.close()
    return {"seconds": seconds, "statuses": {str(k): v for k, v in statuses.items()},
            "errors": len(errors), "new": new, "duplicates": duplicates}


async def _phases(port: int, phases: dict) -> dict:
    """Every phase at once, as providers post: returns each phase's result and the wall time
    from the first request to the last answer."""
    start = time.perf_counter()
    results = await asyncio.gather(*(_post_all(port, p["requests"], p["concurrency"])
                                     for p in phases.values()))
    out = dict(zip(phases, results, strict=True))
    out["_wall"] = time.perf_counter() - start
    return out


def load_main(args: argparse.Namespace) -> None:
    phases = json.loads(Path(args.requests).read_text())
    cpu = time.process_time()
    out = asyncio.run(_phases(args.port, phases))
    out["_client_cpu"] = time.process_time() - cpu
    print(json.dumps(out))


def run_load(port: int, phases: dict, tmp: Path) -> dict:
    """The load generator as a child process, so it does not share the server's GIL."""
    path = tmp / f"requests-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(phases))
    out = subprocess.run([sys.executable, __file__, "_load", str(path), "--port", str(port)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


# -- the events, signed as the providers sign them ------------------------------------------


def _kinds(n: int, column: int, rng: random.Random) -> list[str]:
    names = [m[column] for m in MIX]
    return rng.choices(names, weights=[m[2] for m in MIX], k=n)


def sendgrid_requests(signer, ids: list[int], week_key: str, rng: random.Random) -> list[dict]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    now = int(time.time())
    kinds = _kinds(len(ids), 0, rng)
    events = [{"email": f"reader{i - 1}@example.com", "event": kind, "timestamp": now,
               "sg_event_id": uuid.uuid4().hex, "type": "bounce",
               "sg_message_id": f"sg-{(i - 1) // PER_REQUEST_ID}.filterdrecv-0",
               "smtp-id": f"<sg-{i}@ismtpd.sendgrid.net>", "edition": week_key,
               "subscriber_id": str(i), "reason": "452 4.2.2 mailbox full “José”"}
              for i, kind in zip(ids, kinds, strict=True)]
    out = []
    for start in range(0, len(events), BATCH):
        body = json.dumps(events[start:start + BATCH], ensure_ascii=False).encode()
        signature = signer.sign(str(now).encode() + body, ec.ECDSA(hashes.SHA256()))
        out.append({"path": "/webhooks/sendgrid", "body": base64.b64encode(body).decode(),
                    "headers": {"X-Twilio-Email-Event-Webhook-Signature":
                                base64.b64encode(signature).decode(),
                                "X-Twilio-Email-Event-Webhook-Timestamp": str(now),
                                "Content-Type": "application/json"},
                    "kinds": Counter(kinds[start:start + BATCH])})
    return out


def mailgun_requests(ids: list[int], week_key: str, rng: random.Random) -> list[dict]:
    now = str(int(time.time()))
    out = []
    for i, kind in zip(ids, _kinds(len(ids), 1, rng), strict=True):
        event, _, severity = kind.partition(":")
        data = {"event": event, "id": secrets.token_urlsafe(16), "timestamp": time.time(),
                "recipient": f"reader{i - 1}@example.com",
                "message": {"headers": {"message-id": f"mg-{(i - 1) // PER_REQUEST_ID}@mg"}},
                "user-variables": {"edition": week_key, "subscriber_id": str(i)}}
        if severity:
            data.update(severity=severity, reason="bounce" if severity == "permanent" else
                        "generic", **{"delivery-status": {"code": 550 if severity ==
                                                          "permanent" else 452}})
        token = secrets.token_hex(25)
        signature = hmac.new(MAILGUN_KEY.encode(), (now + token).encode(),
                             hashlib.sha256).hexdigest()
        body = json.dumps({"signature": {"timestamp": now, "token": token,
                                         "signature": signature}, "event-data": data}).encode()
        out.append({"path": "/webhooks/mailgun", "body": base64.b64encode(body).decode(),
                    "headers": {"Content-Type": "application/json"}, "kinds": Counter([kind])})
    return out


# -- the setup ----------------------------------------------------------------------------


def seed(url: str) -> dict[str, tuple[str, list[int]]]:
    """Subscribers and two sends; week -> (edition key, subscriber ids)."""
    import sqlalchemy as sa

    from newsletter.store.db import connect, dispose_engines
    from newsletter.store.tables import deliveries, sends

    active, _ = seed_subscribers(url, SENDGRID_EVENTS + MAILGUN_EVENTS)
    ids = sorted(active)
    engine = connect(url)
    now = datetime.now(UTC)
    plan = {"2026-W46": ("sendgrid", ids[:SENDGRID_EVENTS], "sg-{}"),
            "2026-W47": ("mailgun", ids[SENDGRID_EVENTS:], "<mg-{}@mg>")}
    out = {}
    with engine.begin() as conn:
        for week, (provider, members, pattern) in plan.items():
            content_hash = hashlib.sha256(week.encode()).hexdigest()
            send_id = conn.execute(sends.insert().values(
                week=week, content_hash=content_hash, subject="Bench", provider=provider,
                status="done", total=len(members), created_at=now, updated_at=now,
                finished_at=now)).inserted_primary_key[0]
            conn.execute(deliveries.insert(), [
                {"send_id": send_id, "subscriber_id": i, "status": "sent", "attempts": 1,
                 "message_id": pattern.format((i - 1) // PER_REQUEST_ID), "updated_at": now}
                for i in members])
            out[week] = (f"{week}.{content_hash[:12]}", members)
        assert conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar() == \
            SENDGRID_EVENTS + MAILGUN_EVENTS
    dispose_engines()
    return out


def tally(url: str) -> dict[str, int]:
    import sqlalchemy as sa

    from newsletter.store.db import connect, dispose_engines

    engine = connect(url)
    with engine.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT count(*), count(DISTINCT provider || ':' || event_id), "
            "sum(CASE WHEN effect IS NULL THEN 1 ELSE 0 END) FROM events")).one()
        stopped = conn.execute(sa.text(
            "SELECT count(*) FROM subscribers WHERE status <> 'active'")).scalar()
    dispose_engines()
    return {"events": row[0], "distinct": row[1], "pending": row[2] or 0, "stopped": stopped}


def bench(backend: str) -> bool:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    rng = random.Random(2026)
    signer = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(signer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as name:
        tmp = Path(name)
        cwd = project(tmp)
        with database(backend, tmp) as url:
            port = free_port()
            weeks = seed(url)
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith("NEWSLETTER_")}
            env.update({"NEWSLETTER_SECRET_KEY": SECRET, "NEWSLETTER_DATABASE_URL": url,
                        "NEWSLETTER_BASE_URL": f"http://127.0.0.1:{port}",
                        "NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY": public,
                        "NEWSLETTER_MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY})
            log = (tmp / "web.log").open("w")
            server = subprocess.Popen([NEWSLETTER, "web", "--port", str(port)], env=env,
                                      cwd=cwd, stdout=log, stderr=log)
            try:
                wait_healthy(port, server)
                sendgrid = sendgrid_requests(signer, weeks["2026-W46"][1],
                                             weeks["2026-W46"][0], rng)
                mailgun = mailgun_requests(weeks["2026-W47"][1], weeks["2026-W47"][0], rng)
                expected = sum((r.pop("kinds") for r in sendgrid + mailgun), Counter())
                before = cpu_seconds(server.pid)
                first = run_load(port, {
                    "sendgrid": {"requests": sendgrid, "concurrency": 4},
                    "mailgun": {"requests": mailgun, "concurrency": 32}}, tmp)
                cpu = cpu_seconds(server.pid) - before
                retries = run_load(port, {"retries": {
                    "requests": sendgrid[::10] + mailgun[::10], "concurrency": 8}}, tmp)
            finally:
                stop_process(server)
                log.close()
            counts = tally(url)
    total = SENDGRID_EVENTS + MAILGUN_EVENTS
    seconds = first["_wall"]
    rate = total / seconds
    stopping = sum(n for kind, n in expected.items() if kind in STOPPING)
    answers_ok = all(p["statuses"] == {"200": n} and p["errors"] == 0 for p, n in (
        (first["sendgrid"], len(sendgrid)), (first["mailgun"], len(mailgun)),
        (retries["retries"], len(sendgrid[::10]) + len(mailgun[::10]))))
    once = (counts["events"] == counts["distinct"] == total and counts["pending"] == 0
            and first["sendgrid"]["new"] + first["mailgun"]["new"] == total
            and retries["retries"]["new"] == 0)
    right = answers_ok and once and counts["stopped"] == stopping
    ok = right and rate >= TARGET
    for phase, n, requests in (("sendgrid", SENDGRID_EVENTS, len(sendgrid)),
                               ("mailgun", MAILGUN_EVENTS, len(mailgun))):
        p = first[phase]
        print(f"{backend:10} {phase:8} {n:6} events in {requests:5} requests, done in "
              f"{p['seconds']:5.1f} s  answers {p['statuses']}  errors {p['errors']}")
    figure(f"{backend}: webhook events, SendGrid and Mailgun at once", rate, "events/s",
           target=TARGET,
           line=f"{'':10} all      {total:6} events at once: {rate:7.0f} events/s in "
                f"{seconds:.1f} s  server CPU {cpu / total * 1000:.2f} ms/event  client CPU "
                f"{first['_client_cpu']:.1f} s")
    figure(f"{backend}: webhook server CPU", cpu / total * 1000, "ms/event", better="lower")
    print(f"{'':10} retried {len(sendgrid[::10]) + len(mailgun[::10])} requests: "
          f"{retries['retries']['duplicates']} duplicates, {retries['retries']['new']} new")
    print(f"{'':10} stored {counts['events']} ({counts['distinct']} distinct, "
          f"{counts['pending']} effects pending); stopped subscribers {counts['stopped']} "
          f"(expected {stopping})")
    print(f"{'':10} {'PASS' if ok else 'FAIL'} (target {TARGET} events/s)")
    return ok or (right and table_judges())


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_load":
        parser = argparse.ArgumentParser()
        parser.add_argument("_load")
        parser.add_argument("requests")
        parser.add_argument("--port", type=int, required=True)
        return load_main(parser.parse_args())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    each_backend(args.backends, bench)


if __name__ == "__main__":
    main()
