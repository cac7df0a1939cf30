"""Alerts to a Slack-compatible webhook: a real send (the fake provider) queues "started" and
"finished", a resume does not say "started" again, the brake's pause and the worker's stall
watch say theirs; the drain posts them once and in order, keeps one the webhook could not take
for a later drain, drops one it refused, and never shows the URL (a credential)."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import threading
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from click.testing import CliRunner

from newsletter.cli.main import cli
from newsletter.clock import utc_now
from newsletter.config import load_config
from newsletter.delivery import alerts as alerts_module
from newsletter.delivery import ledger
from newsletter.delivery.alert_outbox import drain_alerts, post_queued
from newsletter.devtools.fake_provider import FakeProvider, Faults
from newsletter.errors import ConfigError
from newsletter.store import db
from newsletter.store.tables import alerts, deliveries
from newsletter.worker.housekeeping import StallWatch, add_jobs
from tests.seeding import readers, seed
from tests.sending import WEEK, make_config, send, stop_after_first_batch
from tests.test_canary import (
    canary_config,
    canary_ids,
    later,
    post_webhooks,
    postmark_bounces,
)
from tests.test_migration_delivery import upgrade_to

TOKEN = "XyZ9secretTOKEN42"
URL = f"https://hooks.example.com/services/T0001/B0002/{TOKEN}"

pytestmark = pytest.mark.usefixtures("engines_disposed")


class Webhook:
    """The chat's end, through httpx.MockTransport: answers ``statuses`` in turn, then 200."""

    def __init__(self, *statuses: int):
        self.statuses = list(statuses)
        self.bodies: list[bytes] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(request.content)
        status = self.statuses.pop(0) if self.statuses else 200
        return httpx.Response(status, text="ok" if status == 200 else "no_service")

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    @property
    def texts(self) -> list[str]:
        return [json.loads(body)["text"] for body in self.bodies]


def alert_rows(database_url):
    with db.connect(database_url).connect() as conn:
        return conn.execute(sa.select(alerts).order_by(alerts.c.id)).all()


def kinds(database_url):
    return [row.kind for row in alert_rows(database_url)]


def due_now(database_url):
    """Time moves on: every alert waiting for a retry is due."""
    with db.connect(database_url).begin() as conn:
        conn.execute(alerts.update().where(alerts.c.next_attempt_at.is_not(None))
                     .values(next_attempt_at=utc_now() - timedelta(seconds=1)))


@pytest.fixture
def fake():
    with FakeProvider() as server:
        yield server


def test_a_send_says_it_started_and_finished_once_in_order(project, database_url, fake):
    seed(database_url, readers(5))
    config = make_config(project, database_url, fake, alert_webhook_url=URL)
    assert send(config).counts == {"sent": 5}
    assert kinds(database_url) == ["started", "finished"]

    hook = Webhook()
    engine = db.connect(database_url)
    assert drain_alerts(config, engine, hook.transport) == 2
    started, finished = hook.texts
    assert started.startswith(f"{config.name} {WEEK}: sending started to 5 recipients")
    assert finished.startswith(f"{config.name} {WEEK}: the send is done: 5 recipients, 5 sent, "
                               "0 failed, 0 unknown, 0 skipped, 0 pending, 0 in_flight")
    assert "\nSubject: " in started
    assert not any("@" in text for text in hook.texts), "names no reader"
    assert all(row.sent_at is not None and row.next_attempt_at is None
               for row in alert_rows(database_url))

    assert drain_alerts(config, engine, hook.transport) == 0
    assert len(hook.bodies) == 2, "delivered once"


def test_a_resume_does_not_say_started_again(project, database_url, fake):
    seed(database_url, readers(12))
    config = make_config(project, database_url, fake, alert_webhook_url=URL, batch_size=4,
                         concurrency=1)
    stop = threading.Event()
    stop_after_first_batch(fake, stop)
    assert send(config, stop_event=stop).stopped.kind == "shutdown"
    assert kinds(database_url) == ["started"]
    fake.on_accept = None
    assert send(config).counts == {"sent": 12}
    assert kinds(database_url) == ["started", "finished"]


def test_an_abort_says_why_and_the_resumed_send_then_finishes(project, database_url, fake):
    seed(database_url, readers(4))
    fake.faults = Faults(bad_token="re_token_123456")
    config = make_config(project, database_url, fake, alert_webhook_url=URL)
    assert send(config).send.status == "aborted"
    fake.faults = Faults()
    assert send(config).counts == {"sent": 4}
    assert kinds(database_url) == ["started", "aborted", "finished"]
    aborted = alert_rows(database_url)[1].text
    assert "the send was aborted: " in aborted and "credentials refused" in aborted
    assert "4 recipients, 0 sent, 0 failed, 0 unknown, 0 skipped, 4 pending" in aborted
    assert "@" not in aborted


def test_a_failing_webhook_keeps_the_alert_for_a_later_drain_and_never_shows_the_url(
        project, database_url, fake, caplog):
    seed(database_url, readers(3))
    config = make_config(project, database_url, fake, alert_webhook_url=URL)
    send(config)
    engine = db.connect(database_url)
    caplog.set_level(logging.DEBUG, logger="newsletter")

    hook = Webhook(500)
    assert drain_alerts(config, engine, hook.transport) == 0
    assert len(hook.bodies) == 1, "the rest waits behind the first, in order"
    first, second = alert_rows(database_url)
    assert (first.attempts, first.sent_at, first.last_error) == (1, None, "HTTP 500: no_service")
    assert first.next_attempt_at > utc_now() + timedelta(seconds=20)
    assert second.attempts == 0

    assert drain_alerts(config, engine, hook.transport) == 0, "not due yet"
    assert len(hook.bodies) == 1

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url}", request=request)

    due_now(database_url)
    assert drain_alerts(config, engine, httpx.MockTransport(unreachable)) == 0
    error = alert_rows(database_url)[0].last_error
    assert error.startswith("ConnectError: cannot reach") and TOKEN not in error

    due_now(database_url)
    assert drain_alerts(config, engine, hook.transport) == 2
    said = [text.split("\n")[0].removeprefix(f"{config.name} {WEEK}: ") for text in hook.texts]
    assert [s.split(":")[0] for s in said] == ["sending started to 3 recipients",
                                               "sending started to 3 recipients",
                                               "the send is done"]
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "not posted" in logged
    assert TOKEN not in logged and "hooks.example.com" not in logged


def test_an_alert_the_webhook_refuses_is_dropped_and_the_next_goes(project, database_url, fake,
                                                                 caplog):
    seed(database_url, readers(2))
    config = make_config(project, database_url, fake, alert_webhook_url=URL)
    send(config)
    hook = Webhook(404)
    caplog.set_level(logging.WARNING, logger="newsletter.alerts")
    assert drain_alerts(config, db.connect(database_url), hook.transport) == 1
    dropped, posted = alert_rows(database_url)
    assert dropped.next_attempt_at is None and dropped.sent_at is None
    assert dropped.last_error == "refused: HTTP 404: no_service"
    assert posted.sent_at is not None
    [line] = [r.getMessage() for r in caplog.records if r.name == "newsletter.alerts"]
    assert "alert 1 dropped" in line and TOKEN not in line


def test_curly_quotes_and_accents_in_the_subject_go_as_they_are(project, database_url, fake):
    edition = project / "items" / WEEK / "edition.md"
    edition.write_text(edition.read_text().replace(
        "headline: Small Teams’ Long Memories", "headline: Small Teams’ Café Édition"))
    seed(database_url, readers(2))
    config = make_config(project, database_url, fake, alert_webhook_url=URL)
    result = send(config)
    with db.connect(database_url).connect() as conn:
        subject = conn.execute(sa.text("SELECT subject FROM sends")).scalar_one()
    assert "Teams’ Café Édition" in subject and result.send.status == "done"
    hook = Webhook()
    drain_alerts(config, db.connect(database_url), hook.transport)
    assert all(text.endswith(f"\nSubject: {subject}") for text in hook.texts)
    assert "Café".encode() in hook.bodies[0] or b"Caf\\u00e9" in hook.bodies[0]


def test_the_brake_pause_says_why_with_the_rates(project, database_url):
    seed(database_url, readers(60))
    with FakeProvider() as fake:
        config = canary_config(project, database_url, fake, alert_webhook_url=URL)
        assert send(config).stopped.kind == "waiting"
        post_webhooks(config, postmark_bounces(database_url,
                                               sorted(canary_ids(database_url))[:4]))
        assert send(config, now=later()).stopped.kind == "paused"
        assert kinds(database_url) == ["started", "paused"]
        paused = alert_rows(database_url)[1].text
        assert "paused by the brake: hard bounces 40.00% (4 of 10 sent)" in paused
        assert "4 hard bounces (40.0%), 0 complaints (0.00%) of 10 sent" in paused
        assert "--resume-paused" in paused and "@" not in paused

        assert send(config, resume_paused=True, now=later()).counts == {"sent": 60}
        assert kinds(database_url) == ["started", "paused", "finished"]


def stalled_send(database_url):
    engine = seed(database_url, ["josé@bücher.example", "zoë@straße.example"])
    record, _ = ledger.open_send(engine, WEEK, "h" * 64, "Five things ’this’ week", "postmark")
    return engine, record


def test_the_stall_watch_queues_one_alert_per_stall(project, database_url):
    engine, record = stalled_send(database_url)
    config = load_config(project / "newsletter.toml",
                         environ={"NEWSLETTER_DATABASE_URL": database_url,
                                  "NEWSLETTER_ALERT_WEBHOOK_URL": URL})
    now = [utc_now() + timedelta(minutes=11)]
    assert len(StallWatch(clock=lambda: now[0])(config)) == 1
    assert len(StallWatch(clock=lambda: now[0])(config)) == 1, "a restarted worker logs..."
    [row] = alert_rows(database_url)  # ... but the alert is said once
    assert row.kind == "stalled" and row.send_id == record.id
    assert f"send {record.id} stalled, no progress for 11 min" in row.text
    assert "waiting for a sender: none is running it" in row.text
    assert "Five things ’this’ week" in row.text and "@" not in row.text

    with engine.begin() as conn:  # it moves, then stalls again: a new alert
        conn.execute(deliveries.update().values(updated_at=now[0]))
    now[0] += timedelta(minutes=11)
    StallWatch(clock=lambda: now[0])(config)
    assert kinds(database_url) == ["stalled", "stalled"]


def test_without_a_webhook_url_nothing_is_queued_and_there_is_no_job(project, database_url,
                                                                     fake):
    seed(database_url, readers(3))
    config = make_config(project, database_url, fake)
    send(config)
    engine = db.connect(database_url)
    ledger.open_send(engine, "2026-W48", "h" * 64, "Another week", "postmark")
    StallWatch(clock=lambda: utc_now() + timedelta(minutes=11))(config)
    assert kinds(database_url) == []
    assert drain_alerts(config, engine, Webhook().transport) == 0

    class Scheduler:
        def add_job(self, *args, **kwargs) -> None:
            pass

    assert "alerts" not in add_jobs(Scheduler(), config)
    with_url = dataclasses.replace(config, alert_webhook_url=URL)
    assert "alerts" in add_jobs(Scheduler(), with_url)


def test_a_failure_to_queue_is_one_warning_and_the_send_goes_on(project, database_url, fake,
                                                               caplog, monkeypatch):
    seed(database_url, readers(3))
    config = make_config(project, database_url, fake, alert_webhook_url=URL)

    def broken(engine):
        raise sa.exc.OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(alerts_module, "begin_write", broken)
    caplog.set_level(logging.WARNING, logger="newsletter.alerts")
    assert send(config).counts == {"sent": 3}
    lines = [r.getMessage() for r in caplog.records if r.name == "newsletter.alerts"]
    assert len(lines) == 2 and all(line.startswith("alert not queued for send ")
                                   for line in lines), lines
    assert "\n" not in lines[0]


def test_the_url_must_be_https_and_is_a_secret(project):
    def load(url):
        return load_config(project / "newsletter.toml",
                           environ={"NEWSLETTER_ALERT_WEBHOOK_URL": url})

    assert load(URL).redacted()["alert_webhook_url"] == "(set)"
    assert load("http://127.0.0.1:8099/hook").alert_webhook_url  # a local test server
    for bad in (f"http://hooks.example.com/services/{TOKEN}", f"ftp://x/{TOKEN}",
                f"hooks.example.com/{TOKEN}"):
        with pytest.raises(ConfigError) as caught:
            load(bad)
        message = str(caught.value)
        assert "'alert_webhook_url'" in message and TOKEN not in message
        assert "\n" not in message


def test_the_migration_goes_up_and_down(database_url):
    engine = db._engine(db.normalize_url(database_url))
    upgrade_to(engine, "0009_reconciled")
    assert "alerts" not in sa.inspect(engine).get_table_names()
    upgrade_to(engine, "head")
    assert "alerts" in sa.inspect(engine).get_table_names()
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(db.MIGRATIONS_DIR))
    with db.begin_write(engine) as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0009_reconciled")
    assert "alerts" not in sa.inspect(engine).get_table_names()
    upgrade_to(engine, "head")
    assert db.current_revision(engine) == db.head_revision()


# -- a cancel, and what `newsletter send` posts itself ----------------------------------------


class ChatServer:
    """A Slack-style webhook on loopback: records each text it is posted, answers 200."""

    def __init__(self):
        from http.server import BaseHTTPRequestHandler, HTTPServer

        texts = self.texts = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                texts.append(json.loads(body)["text"])
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/{TOKEN}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def chat():
    server = ChatServer()
    yield server
    server.close()


def cli_env(config, **extra):
    keys = ("provider", "provider_base_url", "provider_api_key", "secret_key", "database_url",
            "alert_webhook_url")
    env = {f"NEWSLETTER_{k.upper()}": str(getattr(config, k)) for k in keys}
    return env | {f"NEWSLETTER_{k.upper()}": str(v) for k, v in extra.items()}


def test_a_cancelled_send_says_so_with_its_counts(project, database_url, fake):
    from newsletter.delivery.send import cancel_week

    seed(database_url, readers(12))
    config = make_config(project, database_url, fake, alert_webhook_url=URL, batch_size=4,
                         concurrency=1)
    stop = threading.Event()
    stop_after_first_batch(fake, stop)
    send(config, stop_event=stop)
    cancel_week(config, WEEK)
    assert kinds(database_url) == ["started", "cancelled"]
    text = alert_rows(database_url)[1].text
    assert text.startswith(f"{config.name} {WEEK}: the send was cancelled: 12 recipients, 4 sent")
    assert "cancelled" in text.partition("recipients, ")[2], "the cancelled rows are counted"
    assert f"`newsletter send --week {WEEK}` starts a new send" in text
    assert "@" not in text


def test_the_cli_send_posts_its_alerts_before_it_exits(project, database_url, fake, chat):
    seed(database_url, readers(5))
    config = make_config(project, database_url, fake, alert_webhook_url=chat.url)
    result = CliRunner().invoke(cli, ["send", "--week", WEEK], env=cli_env(config))
    assert result.exit_code == 0, result.output
    started, finished = chat.texts
    assert started.startswith(f"{config.name} {WEEK}: sending started to 5 recipients")
    assert finished.startswith(f"{config.name} {WEEK}: the send is done: 5 recipients")
    assert all(row.sent_at is not None for row in alert_rows(database_url))
    assert TOKEN not in result.output


def test_the_cli_cancel_posts_its_alert(project, database_url, fake, chat):
    seed(database_url, readers(3))
    engine = db.connect(database_url)
    ledger.open_send(engine, WEEK, "h" * 64, "José’s “week”", "postmark")
    config = make_config(project, database_url, fake, alert_webhook_url=chat.url)
    result = CliRunner().invoke(cli, ["send", "--week", WEEK, "--cancel"], env=cli_env(config))
    assert result.exit_code == 0, result.output
    [text] = chat.texts
    assert "the send was cancelled: 3 recipients" in text
    assert "Subject: José’s “week”" in text


def test_a_webhook_that_is_down_changes_nothing_of_the_send_s_exit(project, database_url, fake):
    seed(database_url, readers(4))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/services/{TOKEN}"
    config = make_config(project, database_url, fake, alert_webhook_url=dead)
    result = CliRunner().invoke(cli, ["send", "--week", WEEK], env=cli_env(config))
    assert result.exit_code == 0, result.output
    assert f"{WEEK}: 4 sent" in result.output and TOKEN not in result.output
    first, second = alert_rows(database_url)
    assert first.sent_at is None and first.last_error, "kept for the worker's next drain"
    assert second.sent_at is None and second.attempts == 0, "held behind the first, in order"


def test_the_end_of_a_send_posts_for_a_few_seconds_at_most(project, database_url, fake):
    seed(database_url, readers(3))
    config = make_config(project, database_url, fake, alert_webhook_url=URL)
    send(config)
    ticks = [0.0]
    hook = Webhook()

    def slow(request):  # each post takes 4 s of the injected clock
        ticks[0] += 4.0
        return hook.handle(request)

    posted = post_queued(config, budget=5.0, transport=httpx.MockTransport(slow),
                         monotonic=lambda: ticks[0])
    assert posted == 2, "the second began within the budget"
    assert len(hook.bodies) == 2
    ledger.open_send(db.connect(database_url), "2026-W48", "h" * 64, "x", "postmark")
    ticks[0] = 0.0
    assert post_queued(config, budget=5.0, transport=httpx.MockTransport(slow),
                       monotonic=lambda: ticks[0]) == 0, "nothing more was due"


def test_posting_at_the_end_never_raises(project, fake):
    config = make_config(project, "postgresql://nobody@127.0.0.1:9/x", fake,
                         alert_webhook_url=URL)
    assert post_queued(config) == 0
