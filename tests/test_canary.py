"""The canary and the brake in a real send (SQLite and PostgreSQL, the fake provider in
process): the slice goes first and alone, the send waits, a healthy one then goes on; one
whose slice bounces (signed Postmark webhooks on the web app's route) is paused before the
rest is mailed, refuses to go on until --resume-paused, then finishes. Plus the slice's
sampling and the check before a send (--force)."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from starlette.testclient import TestClient

from newsletter.cli.main import cli
from newsletter.delivery.canary import Canary, Phase, parse_canary, phase, pick, seed_of
from newsletter.delivery.ledger.sends import SendError, find_send
from newsletter.delivery.send import NotReady
from newsletter.devtools.fake_provider import FakeProvider
from newsletter.preflight import Report, Severity
from newsletter.preflight.findings import Finding
from newsletter.store import db
from newsletter.store.tables import deliveries, subscribers
from tests import test_webhook_postmark as pm
from tests.seeding import readers, seed
from tests.sending import WEEK, make_config, rows, send
from tests.test_events_world import webhook_app

WAIT = 600


pytestmark = pytest.mark.usefixtures("engines_disposed")


# -- the slice on its own --------------------------------------------------------------------

@pytest.mark.parametrize("value, canary", [
    ("0", Canary()), (0, Canary()), ("25", Canary(count=25)), (25, Canary(count=25)),
    ("0.05", Canary(share=0.05)), ("10%", Canary(share=0.1)), (" 2.5 % ", Canary(share=0.025)),
])
def test_the_canary_setting(value, canary):
    assert parse_canary(value) == canary


@pytest.mark.parametrize("value", ["abc", "-1", "2.5", "100%", "nan", "inf", "10 %%", "’5’"])
def test_a_bad_canary_setting_says_what_it_takes(value):
    with pytest.raises(ValueError):
        parse_canary(value)


def test_the_slice_size():
    assert Canary(count=25).size(1000) == 25
    assert Canary(share=0.1).size(1000) == 100
    assert Canary(share=0.001).size(10) == 1            # at least one
    assert Canary(count=25).size(25) == 0               # everyone is no canary
    assert Canary().size(1000) == 0 and Canary(share=0.5).size(1) == 0


def test_the_sample_is_random_but_fixed_per_send():
    ids = list(range(1, 10_001))
    first = pick(ids, 100, seed_of(7, "c" * 64))
    assert first == pick(list(reversed(ids)), 100, seed_of(7, "c" * 64))  # same send: same
    assert first != pick(ids, 100, seed_of(8, "c" * 64))                  # another: another
    assert first != ids[:100] and len(set(first)) == 100 and first == sorted(first)


def test_the_phases():
    now = datetime(2026, 11, 16, 8, tzinfo=UTC)
    assert phase(0, 0, None, now) is Phase.NONE
    assert phase(10, 3, None, now) is Phase.CANARY
    assert phase(10, 0, None, now) is Phase.WAITING
    assert phase(10, 0, now + timedelta(seconds=1), now) is Phase.WAITING
    assert phase(10, 0, now, now) is Phase.REST


# -- a send with a canary ---------------------------------------------------------------------

def canary_config(project, database_url, fake, **overrides):
    values = {"canary": 10, "canary_wait": WAIT, "brake_min_events": 3, "batch_size": 4,
              "postmark_webhook_auth": pm.CREDENTIALS}
    return make_config(project, database_url, fake, **{**values, **overrides})


def later(seconds: float = WAIT + 1):
    return lambda: datetime.now(UTC) + timedelta(seconds=seconds)


def sent_ids(fake) -> list[int]:
    return [int(r.metadata["subscriber_id"]) for r in fake.records]


def canary_ids(database_url) -> set[int]:
    return {sid for sid, row in rows(database_url).items() if row.canary}


def test_the_slice_goes_alone_then_the_send_waits_then_goes_on(project, database_url):
    seed(database_url, readers(60))
    with FakeProvider() as fake:
        config = canary_config(project, database_url, fake)
        first = send(config)
        assert first.stopped.kind == "waiting" and "canary sent to 10" in first.stopped.detail
        slice_ = canary_ids(database_url)
        assert len(slice_) == 10 and sorted(sent_ids(fake)) == sorted(slice_)
        assert first.counts == {"sent": 10, "pending": 50}
        send_row = find_send(db.connect(database_url), WEEK)
        assert send_row.canary_size == 10
        assert send_row.canary_until > datetime.now(UTC) + timedelta(seconds=WAIT - 60)

        again = send(config)  # before the wait has ended: nothing more goes out
        assert again.stopped.kind == "waiting" and len(fake.records) == 10

        done = send(config, now=later())
        assert done.stopped is None and done.counts == {"sent": 60}
        got = sent_ids(fake)
        assert Counter(got) == Counter({sid: 1 for sid in rows(database_url)})
        assert set(got[:10]) == slice_, "the slice went first"


def postmark_bounces(database_url, ids, kind="bounced"):
    """Postmark's webhook bodies for ``ids``' messages of this week's send."""
    found = rows(database_url)
    with db.connect(database_url).connect() as conn:
        emails = dict(conn.execute(sa.select(subscribers.c.id, subscribers.c.email)).all())
    when = datetime.now(UTC).isoformat()
    out = []
    for sid in ids:
        row = found[sid]
        record = ({"RecordType": "SpamComplaint", "Type": "SpamComplaint"} if kind == "complained"
                  else {"RecordType": "Bounce", "Type": "HardBounce"})
        record |= {"ID": uuid.uuid4().int % 10**9, "MessageID": row.message_id,
                   "Email": emails[sid], "BouncedAt": when, "Inactive": True}
        out.append(pm.encode(record))
    return out


def post_webhooks(config, bodies) -> None:
    app = webhook_app(config, clock=lambda: datetime.now(UTC))
    with TestClient(app) as client:
        for body in bodies:
            answer = client.post("/webhooks/postmark", content=body,
                                 headers=pm.auth(pm.CREDENTIALS))
            assert answer.status_code == 200, answer.text


def test_a_slice_that_bounces_pauses_the_send_before_the_rest_is_mailed(project, database_url):
    seed(database_url, readers(60))
    with FakeProvider() as fake:
        config = canary_config(project, database_url, fake)
        assert send(config).stopped.kind == "waiting"
        slice_ = sorted(canary_ids(database_url))
        post_webhooks(config, postmark_bounces(database_url, slice_[:4]))

        paused = send(config, now=later())  # the wait is over, but the slice bounced
        assert paused.stopped.kind == "paused"
        assert "hard bounces 40.00% (4 of 10 sent)" in str(paused.stopped)
        assert len(fake.records) == 10, "nobody past the slice was mailed"
        engine = db.connect(database_url)
        record = find_send(engine, WEEK)
        assert record.status == "paused" and "40.00%" in record.abort_reason

        with pytest.raises(SendError, match="is paused: the brake: hard bounces 40.00%.*"
                                            "--resume-paused"):
            send(config, now=later())
        status = CliRunner().invoke(cli, ["--config", str(project / "newsletter.toml"),
                                          "status", "--week", WEEK],
                                    env={"NEWSLETTER_DATABASE_URL": database_url})
        assert "paused" in status.output and "--resume-paused" in status.output
        assert "brake     4 hard bounces (40.0%)" in status.output

        resumed = send(config, resume_paused=True, now=later())
        assert resumed.stopped is None
        assert resumed.counts == {"sent": 60}
        assert Counter(sent_ids(fake)) == Counter({sid: 1 for sid in rows(database_url)})
        assert find_send(engine, WEEK).brake_since is not None


def test_complaints_and_suppression_echoes(project, database_url):
    """Complaints trip it too; a bounce the provider reports as an address it already
    suppresses (a rejected event) does not."""
    seed(database_url, readers(40))
    with FakeProvider() as fake:
        config = canary_config(project, database_url, fake, brake_complaint_rate=0.2)
        send(config)
        slice_ = sorted(canary_ids(database_url))
        post_webhooks(config, postmark_bounces(database_url, slice_[:3], kind="complained"))
        paused = send(config, now=later())
        assert paused.stopped.kind == "paused" and "complaints 30.00%" in str(paused.stopped)


def test_a_send_without_a_canary_is_still_braked_between_batches(project, database_url):
    seed(database_url, readers(30))
    with FakeProvider() as fake:
        config = canary_config(project, database_url, fake, canary=0, brake_min_sent=4,
                               concurrency=1)
        stop = threading.Event()
        fake.on_accept = lambda records: stop.set()  # one batch, then the run stops
        first = send(config, stop_event=stop)
        assert first.stopped.kind == "shutdown" and len(fake.records) == 4
        post_webhooks(config, postmark_bounces(database_url, sent_ids(fake)[:3]))
        fake.on_accept = None

        result = send(config)

        assert result.stopped.kind == "paused" and "75.00% (3 of 4 sent)" in str(result.stopped)
        assert len(fake.records) == 4


def test_resume_paused_on_a_send_that_is_not_paused_is_refused(project, database_url):
    seed(database_url, readers(12))
    with FakeProvider() as fake:
        config = canary_config(project, database_url, fake)
        send(config)
        with pytest.raises(SendError, match="is not paused"):
            send(config, resume_paused=True)


# -- the check before a send ------------------------------------------------------------------

def failing(config, week, content_hash):
    return Report.of([Finding(Severity.ERROR, "links.http", "A link is http://", "Use https."),
                      Finding(Severity.WARNING, "content.size", "Big", "")], week)


def test_a_send_with_check_errors_is_refused_and_nothing_is_recorded(project, database_url):
    seed(database_url, readers(5))
    with FakeProvider() as fake:
        config = canary_config(project, database_url, fake, canary=0)
        with pytest.raises(NotReady, match="1 error, 1 warning: not ready to send "
                                           r"\(links.http\).*--force"):
            send(config, check=failing)
        assert find_send(db.connect(database_url), WEEK) is None and not fake.records

        forced = send(config, check=failing, force=True)
        assert forced.counts == {"sent": 5}
        assert forced.send.forced == "1 error, 1 warning: not ready to send (links.http)"


def test_a_resume_is_not_checked_again(project, database_url):
    seed(database_url, readers(12))
    with FakeProvider() as fake:
        config = canary_config(project, database_url, fake)
        send(config)                                   # started: the slice is out
        resumed = send(config, check=failing, now=later())
        assert resumed.counts == {"sent": 12}


def test_send_prints_the_report_and_force_says_so(project, database_url):
    (project / "items" / WEEK / "01-evaluation.md").write_text(
        "---\ntitle: José’s “notes” 🎉\n---\nHi {{ first_name }}, a pasted merge tag.\n",
        encoding="utf-8")
    seed(database_url, readers(3))
    with FakeProvider() as fake:
        env = {"NEWSLETTER_PROVIDER": "postmark", "NEWSLETTER_PROVIDER_BASE_URL": fake.base_url,
               "NEWSLETTER_PROVIDER_API_KEY": "re_token_123456",
               "NEWSLETTER_SECRET_KEY": "s" * 32, "NEWSLETTER_DATABASE_URL": database_url}
        refused = CliRunner().invoke(cli, ["send", "--week", WEEK], env=env)
        assert refused.exit_code == 1 and "[content.template-left]" in refused.output
        assert "error: 2026-W47 is not sent: " in refused.output and "--force" in refused.output
        assert not fake.records

        forced = CliRunner().invoke(cli, ["send", "--week", WEEK, "--force"], env=env)
        assert forced.exit_code == 0, forced.output
        assert "warning: sent past `newsletter check` with --force" in forced.output
        status = CliRunner().invoke(cli, ["status", "--week", WEEK], env=env)
        assert "forced    sent past `newsletter check` with --force: 1 error" in status.output
    with db.connect(database_url).connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar() == 3


# -- the worker -------------------------------------------------------------------------------

def test_the_worker_goes_on_after_the_wait_by_itself_across_a_restart(project, database_url):
    from newsletter.worker.job import Worker
    from newsletter.worker.service import make_scheduler

    seed(database_url, readers(30))
    with FakeProvider() as fake:
        config = canary_config(project, database_url, fake, canary_wait=2)
        first = Worker(config).run_week(WEEK)
        assert first.result == "waiting" and len(fake.records) == 10
        until = find_send(db.connect(database_url), WEEK).canary_until

        restarted = Worker(config)          # a new process: its start-up resume
        again = restarted.run_week(WEEK)
        assert again.result == "waiting" and restarted.resumes == {WEEK: until}
        assert len(fake.records) == 10, "the restart did not cut the wait short"

        scheduler = make_scheduler(restarted)
        restarted._resume_at(WEEK, until)   # what the start-up run scheduled, now live
        scheduler.start()
        try:
            deadline = time.monotonic() + 60
            while len(fake.records) < 30 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            scheduler.shutdown(wait=True)
        assert Counter(sent_ids(fake)) == Counter({sid: 1 for sid in rows(database_url)})
        assert find_send(db.connect(database_url), WEEK).status == "done"


def test_the_worker_leaves_a_paused_send_for_a_person(project, database_url, caplog):
    from newsletter.worker.job import Worker

    seed(database_url, readers(20))
    with FakeProvider() as fake:
        config = canary_config(project, database_url, fake)
        send(config)
        post_webhooks(config, postmark_bounces(database_url, sorted(canary_ids(database_url))[:3]))
        assert Worker(config).run_week(WEEK).result == "paused"
        outcome = Worker(config).run_week(WEEK)
        assert outcome.result == "paused-before" and len(fake.records) == 10
        assert "newsletter send --week 2026-W47 --resume-paused" in caplog.text
