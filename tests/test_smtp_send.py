"""A whole ``send`` over SMTP, on SQLite and PostgreSQL, into a real aiosmtpd server that
pipelines: batches in flight at once over their own connections, everyone exactly once, and a
relay that throttles costs retries, not recipients."""

from __future__ import annotations

from collections import Counter

from newsletter.config import load_config
from newsletter.delivery.send import SendOptions, send_edition
from tests.seeding import readers, seed
from tests.sending import WEEK, guarded, rows, send_deps
from tests.smtp_servers import FakeClock, Handler

pytest_plugins = ("tests.smtp_fixtures",)


def smtp_send_config(project, database_url, port, **overrides):
    environ = {
        "NEWSLETTER_PROVIDER": "smtp", "NEWSLETTER_SMTP_HOST": "127.0.0.1",
        "NEWSLETTER_SMTP_PORT": str(port), "NEWSLETTER_SMTP_SECURITY": "none",
        "NEWSLETTER_SECRET_KEY": "s" * 32, "NEWSLETTER_DATABASE_URL": database_url,
        "NEWSLETTER_BATCH_SIZE": "20", "NEWSLETTER_CONCURRENCY": "3",
        "NEWSLETTER_RETRY_DELAY": "0.01", "NEWSLETTER_MAX_ATTEMPTS": "5",
    }
    environ.update({f"NEWSLETTER_{k.upper()}": str(v) for k, v in overrides.items()})
    return load_config(project / "newsletter.toml", environ=environ)


def smtp_send(config, **options):
    clock = FakeClock()  # the transport's pauses are recorded, not slept
    deps = send_deps(client={"clock": clock, "sleep": clock.sleep})
    return guarded(send_edition, config, WEEK, SendOptions(interactive=False, **options),
                   deps=deps), clock


def test_a_send_runs_its_batches_side_by_side_each_on_its_own_connection(
        project, database_url, start_server):
    handler = Handler(pipelining=True, barrier=3)  # DATA waits until 3 sessions are in DATA
    port = start_server(handler)
    emails = readers(100)
    seed(database_url, emails)
    config = smtp_send_config(project, database_url, port)

    result, _ = smtp_send(config)

    assert result.counts == {"sent": 100}
    got = Counter(m["to"][0] for m in handler.messages)
    assert set(got) == set(emails) and set(got.values()) == {1}
    assert handler.connections == 3, "one connection per batch in flight, reused"
    assert all(row.message_id for row in rows(database_url).values())


def test_a_relay_that_throttles_slows_the_send_and_everyone_still_gets_it(
        project, database_url, start_server):
    handler = Handler(pipelining=True)
    slow_down = "451 4.7.1 Sending rate exceeded, slow down"
    handler.mail_script = ["", "", slow_down, slow_down, "", "", "", slow_down]
    port = start_server(handler)
    emails = readers(60)
    seed(database_url, emails)
    config = smtp_send_config(project, database_url, port)

    result, clock = smtp_send(config)
    for _ in range(5):  # the throttled ones wait for their retry time (a few ms here)
        if not result.counts.get("pending"):
            break
        result, _ = smtp_send(config)

    assert result.counts == {"sent": 60}, "throttling failed no one"
    assert Counter(m["to"][0] for m in handler.messages) == Counter(emails)
    assert clock.sleeps and max(clock.sleeps) >= 1.0, "the sending paused"
