"""The send loop against the fake provider: faults in, every recipient accounted for out."""

import dataclasses
import threading
from collections import Counter

import pytest
from click.testing import CliRunner

from newsletter.audience import changes, lookup
from newsletter.cli.main import cli
from newsletter.config import load_config
from newsletter.delivery import ledger
from newsletter.delivery.send import SendOptions, send_edition
from newsletter.devtools.fake_provider import FakeProvider, Faults
from tests.seeding import readers, seed
from tests.sending import send_deps, stop_after_first_batch

WEEK = "2026-W47"


@pytest.fixture
def fake():
    with FakeProvider(latency=0.002) as server:
        yield server


def make_config(project, database_url, fake, provider="postmark", **overrides):
    environ = {
        "NEWSLETTER_PROVIDER": provider, "NEWSLETTER_PROVIDER_BASE_URL": fake.base_url,
        "NEWSLETTER_PROVIDER_API_KEY": "re_token_123456", "NEWSLETTER_SECRET_KEY": "s" * 32,
        "NEWSLETTER_DATABASE_URL": database_url, "NEWSLETTER_BATCH_SIZE": "40",
        "NEWSLETTER_CONCURRENCY": "4", "NEWSLETTER_RETRY_DELAY": "0.01",
        "NEWSLETTER_MAX_ATTEMPTS": "10",
    }
    environ.update({f"NEWSLETTER_{k.upper()}": str(v) for k, v in overrides.items()})
    return load_config(project / "newsletter.toml", environ=environ)


def failed_rows(config):
    from newsletter.store.db import connect
    from newsletter.store.tables import deliveries

    with connect(config.database_url).connect() as conn:
        return conn.execute(deliveries.select().where(deliveries.c.status == "failed")).all()


def send_until_done(config, limit=10, **options):
    for _ in range(limit):
        result = send_edition(config, WEEK, SendOptions(interactive=False, **options),
                              deps=send_deps())
        if result is None or (not result.stopped and not result.counts.get("pending")):
            return result
    raise AssertionError("the send did not finish")


def ledger_counts(config):
    from newsletter.store.db import connect

    engine = connect(config.database_url)
    return ledger.counts(engine, ledger.find_send(engine, WEEK).id)


def test_a_clean_send_reaches_everyone_once(project, database_url, fake):
    seed(database_url, readers(200))
    result = send_until_done(make_config(project, database_url, fake))
    assert result.counts == {"sent": 200}
    assert sorted(fake.recipients()) == sorted(f"Reader {i - 1} <{e}>" for i, e in
                                               enumerate(readers(200), 1))
    edition_key = f"{WEEK}.{result.send.content_hash[:12]}"
    assert {r.metadata["edition"] for r in fake.records} == {edition_key}
    assert result.send.status == "done"
    assert send_edition(make_config(project, database_url, fake), WEEK) is None, \
        "a finished send sends nothing again"


def test_429_storms_and_5xx_bursts_end_with_everyone_sent_once(project, database_url, fake):
    seed(database_url, readers(300))
    fake.faults = Faults(p429=0.3, p500=0.2, fail_first=6, retry_after=0.01)
    result = send_until_done(make_config(project, database_url, fake))
    assert result.counts == {"sent": 300}
    assert len(fake.records) == 300 and len(set(fake.recipients())) == 300


def test_partial_batch_failures_fail_only_those_recipients(project, database_url, fake):
    engine = seed(database_url, readers(50) + ["bounce1@example.com", "invalid1@example.com"])
    result = send_until_done(make_config(project, database_url, fake))
    assert result.counts == {"sent": 50, "failed": 2}
    assert lookup.get(engine, "bounce1@example.com").status == "bounced"
    assert lookup.get(engine, "invalid1@example.com").status == "active"
    errors = {e[1] for e in ledger.top_errors(engine, result.send.id)}
    assert any("inactive" in e for e in errors) and any("Invalid" in e for e in errors)


def test_timeouts_without_idempotency_are_unknown_never_resent(project, database_url, fake):
    seed(database_url, readers(120))
    fake.faults = Faults(p_slow_after=0.3, slow_seconds=1.5)
    # SendGrid, with no webhook reporting `processed`, cannot be asked what it took.
    config = make_config(project, database_url, fake, provider="sendgrid", batch_size=10)
    result = send_until_done(config)
    unknown = result.counts.get("unknown", 0)
    assert unknown > 0, "some answers came after the client's timeout"
    assert result.counts == {"sent": 120 - unknown, "unknown": unknown}
    assert len(fake.records) == 120 and len(set(fake.recipients())) == 120, \
        "the provider got everyone once: the unknown batches were not sent blindly again"
    assert send_edition(config, WEEK, deps=send_deps()) is None
    fake.faults = Faults()
    again = send_edition(config, WEEK, SendOptions(retry_unknown=True), deps=send_deps())
    assert again.counts.get("sent") == 120, "--retry-unknown resends them on request"


def test_timeouts_with_a_searchable_provider_are_found_and_not_resent(project, database_url,
                                                                    fake):
    seed(database_url, readers(120))
    fake.faults = Faults(p_slow_after=0.3, slow_seconds=1.5)
    result = send_until_done(make_config(project, database_url, fake, batch_size=10))
    assert result.counts == {"sent": 120}
    assert result.reconciled is not None and result.reconciled.accepted > 0, \
        "some answers came after the client's timeout, and Postmark's search had them"
    assert len(fake.records) == 120 and len(set(fake.recipients())) == 120, "everyone once"


@pytest.mark.parametrize("faults", [Faults(p_slow_after=0.3, slow_seconds=1.5),
                                    Faults(p_drop_after=0.3)])
def test_with_idempotency_keys_lost_answers_still_end_exactly_once(project, database_url, fake,
                                                                   faults):
    seed(database_url, readers(150))
    fake.faults = faults
    result = send_until_done(make_config(project, database_url, fake, provider="resend",
                                         batch_size=30))
    assert result.counts == {"sent": 150}
    assert Counter(fake.recipients()) == Counter(
        f"Reader {i - 1} <{e}>" for i, e in enumerate(readers(150), 1))


def test_bad_credentials_abort_with_every_row_true(project, database_url, fake):
    engine = seed(database_url, readers(100))
    fake.faults = Faults(bad_token="re_token_123456")
    config = make_config(project, database_url, fake)
    result = send_edition(config, WEEK, deps=send_deps())
    assert result.aborted and "credentials refused" in result.stopped.detail
    assert result.send.status == "aborted"
    assert result.counts == {"pending": 100} and not fake.records
    fake.faults = Faults()
    assert send_until_done(config).counts == {"sent": 100}, "fixed, it resumes"
    assert ledger.find_send(engine, WEEK).status == "done"


def test_too_many_failures_abort_the_send(project, database_url, fake):
    seed(database_url, [f"invalid{i}@example.com" for i in range(300)] + readers(300))
    config = make_config(project, database_url, fake, max_error_rate="0.2")
    result = send_edition(config, WEEK, deps=send_deps())
    assert result.aborted and "max_error_rate" in result.stopped.detail
    counts = result.counts
    assert counts.get("failed", 0) >= 200 and "in_flight" not in counts
    assert sum(counts.values()) == 600


def test_a_stop_request_finishes_the_batches_in_flight_then_resumes(project, database_url,
                                                                    fake):
    seed(database_url, readers(400))
    stop = threading.Event()
    config = make_config(project, database_url, fake, batch_size=20, concurrency=2)
    # Asked to stop as the provider accepts the first batch (an event, not a timer): that
    # batch and the one beside it finish and are recorded, nothing more is claimed.
    stop_after_first_batch(fake, stop)
    first = send_edition(config, WEEK, stop_event=stop, deps=send_deps())
    fake.on_accept = None
    assert first.stopped and not first.aborted
    assert "in_flight" not in first.counts and "unknown" not in first.counts
    assert 20 <= first.counts["sent"] <= 40 and first.counts["pending"] >= 360
    assert send_until_done(config).counts == {"sent": 400}
    assert len(fake.records) == 400 and len(set(fake.recipients())) == 400


def test_people_who_leave_before_their_batch_are_skipped(project, database_url, fake):
    engine = seed(database_url, readers(10))
    config = make_config(project, database_url, fake)
    # Start the send (snapshot), then change the list before any batch goes out.
    from newsletter.edition.render import render_week

    rendered = render_week(config, WEEK)
    ledger.open_send(engine, WEEK, rendered.content_hash, rendered.subject, "postmark")
    changes.unsubscribe_address(engine, "reader3@example.com")
    seed(database_url, ["joined-later@example.com"])
    result = send_until_done(config)
    assert result.counts == {"sent": 9, "skipped": 1}
    assert not any("reader3@" in r or "joined-later" in r for r in fake.recipients())


def test_status_reports_counts_errors_and_what_to_run_next(project, database_url, fake):
    seed(database_url, readers(30) + ["invalid9@example.com"])
    # Every answer lost, and the search that could tell what was accepted is down too.
    fake.faults = Faults(p_slow_after=1.0, slow_seconds=1.5, search_p500=1.0)
    config = make_config(project, database_url, fake)
    send_edition(config, WEEK, deps=send_deps())
    fake.faults = Faults()
    env = {"NEWSLETTER_DATABASE_URL": database_url, "NEWSLETTER_PROVIDER": "postmark",
           "NEWSLETTER_SECRET_KEY": "s" * 32}
    out = CliRunner().invoke(cli, ["status", "--week", WEEK], env=env).output
    assert f"{WEEK}  done  31 recipient(s)" in out
    assert "0 sent, 0 failed, 31 unknown" in out
    assert f"newsletter send --week {WEEK} --reconcile" in out
    assert "`--retry-unknown` sends again (perhaps a second time)" in out


def test_a_message_the_provider_never_takes_fails_after_its_attempts(project, database_url,
                                                                     fake):
    # Every answer is lost; the search shows the 30 accepted, never the refused address,
    # which goes out again until its attempts are spent, then fails: nothing loops for ever.
    seed(database_url, readers(30) + ["invalid9@example.com"])
    fake.faults = Faults(p_slow_after=1.0, slow_seconds=1.5)
    config = make_config(project, database_url, fake, max_attempts=2, reconcile_settle=0.2)
    result = send_edition(config, WEEK, deps=send_deps())
    assert result.counts == {"sent": 30, "failed": 1}
    [refused] = failed_rows(config)
    assert refused.attempts == 2 and refused.error.startswith("gave up after 2 attempts")
    assert fake.recipients().count("invalid9@example.com") == 0
    assert len(fake.records) == 30


def test_status_of_a_week_never_sent_is_an_error(project, database_url):
    env = {"NEWSLETTER_DATABASE_URL": database_url}
    result = CliRunner().invoke(cli, ["status", "--week", "2026-W01"], env=env)
    assert result.exit_code == 1 and result.output == "error: no send for 2026-W01 yet\n"


def test_the_cli_send_prints_a_summary(project, database_url, fake):
    seed(database_url, readers(5))
    config = make_config(project, database_url, fake)
    env = {f"NEWSLETTER_{k.upper()}": str(v) for k, v in dataclasses.asdict(config).items()
           if k in ("provider", "provider_base_url", "provider_api_key", "secret_key",
                    "database_url")}
    result = CliRunner().invoke(cli, ["send", "--week", WEEK], env=env)
    assert result.exit_code == 0, result.output
    assert f"{WEEK}: 5 sent, 0 failed, 0 unknown" in result.output
    again = CliRunner().invoke(cli, ["send", "--week", WEEK], env=env)
    assert "was already sent; nothing to do" in again.output
