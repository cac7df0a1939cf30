"""What the send tests share: a config pointed at the fake provider, a send's parts for a test
(``send_deps``: fast retries, a transport of its own, a ledger that fails on cue, a clock), a
guard that turns a hung send into a failure, and direct looks at the ledger."""

from __future__ import annotations

import os
import threading

import httpx
import sqlalchemy as sa

from newsletter.config import load_config
from newsletter.delivery.send import SendDeps, SendOptions, make_week_transport, send_edition
from newsletter.providers import make_transport
from newsletter.providers._http import RetryPolicy
from newsletter.store.db import connect
from newsletter.store.tables import deliveries, sends

WEEK = "2026-W47"
FAST = {"retry": RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.01),
        "timeout": httpx.Timeout(1.0)}
# Only a bound on a send that should take well under a second: it turns a hang into a failure.
GUARD = float(os.environ.get("NEWSLETTER_TEST_GUARD", "60"))


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


def guarded(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a thread; an AssertionError if it has not returned within
    GUARD seconds (the thread is left behind: it is the hang being reported)."""
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the test's thread
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(GUARD)
    if thread.is_alive():
        raise AssertionError(f"{getattr(fn, '__name__', fn)} hung (still running after "
                             f"{GUARD:.0f} s)")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def send_deps(*, transport=None, wrap_book=None, now=None, client=None) -> SendDeps:
    """A send's parts for a test: ``transport`` itself, or the configured provider's with
    ``client`` options for its HTTP client (default: fast retries and timeouts); the ledger
    wrapped by ``wrap_book``; ``now``, the canary's clock."""
    def make(config, week):
        if transport is not None:
            return transport
        if config.provider == "eml":  # no HTTP client
            return make_week_transport(config, week)
        return make_transport(config, **(FAST if client is None else client))

    parts = {"transport": make}
    if wrap_book is not None:
        parts["book"] = wrap_book
    if now is not None:
        parts["clock"] = now
    return SendDeps(**parts)


def send(config, *, stop_event=None, transport=None, wrap_book=None, now=None, client=None,
         **options):
    """One guarded run of ``send_edition`` for WEEK: ``options`` are ``SendOptions``, the
    rest ``send_deps``'."""
    deps = send_deps(transport=transport, wrap_book=wrap_book, now=now, client=client)
    return guarded(send_edition, config, WEEK, SendOptions(interactive=False, **options),
                   stop_event=stop_event, deps=deps)


def send_until_done(config, limit=10, **options):
    for _ in range(limit):
        result = send(config, **options)
        if result is None or (not result.stopped and not result.counts.get("pending")):
            return result
    raise AssertionError("the send did not finish")


def rows(database_url, week=WEEK) -> dict[int, sa.Row]:
    """subscriber id -> its delivery row, in the week's newest send."""
    engine = connect(database_url)
    with engine.connect() as conn:
        send_id = conn.execute(sa.select(sa.func.max(sends.c.id))
                               .where(sends.c.week == week)).scalar()
        found = conn.execute(sa.select(deliveries)
                             .where(deliveries.c.send_id == send_id)).all()
    return {row.subscriber_id: row for row in found}


def states(database_url, week=WEEK) -> dict[int, str]:
    return {sid: row.status for sid, row in rows(database_url, week).items()}


def stop_after_first_batch(fake, stop: threading.Event) -> None:
    """Ask the send to stop once the provider has accepted its first batch (an event, not a
    timer): the batches in flight then finish and are recorded."""
    def on_accept(records) -> None:
        if records:
            stop.set()

    fake.on_accept = on_accept
