"""The database's figures (``delivery.totals``) as Prometheus metric families, read at most
once every ``CACHE_SECONDS``: Prometheus scrapes every 15 s or so, and the counts of a
million-row ledger cost more than a scrape should each time. Two scrapes within the cache
time answer the same figures; a scrape never waits for a lock held longer than one read.

The clock is ``time.monotonic`` unless a test gives its own, so that no test depends on the
wall clock (and a change of the system's time cannot stall or hurry the cache).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..delivery.totals import Totals

CACHE_SECONDS = 10.0
# The families' names and help, without a figure: what ``describe`` answers.
NOTHING = Totals(sends={}, deliveries={}, sent={}, errors={}, events={}, brake_paused=0,
                 outbox_pending=0, last_heartbeat=None)


class CachedTotals:
    """``read()``'s answer, kept for ``ttl`` seconds of ``clock``; a failed read is not kept."""

    def __init__(self, read: Callable[[], Totals], *,
                 clock: Callable[[], float] = time.monotonic, ttl: float = CACHE_SECONDS):
        self._read, self._clock, self._ttl = read, clock, ttl
        self._lock = threading.Lock()  # concurrent scrapes read the database once
        self._value: Totals | None = None
        self._read_at = 0.0

    def get(self) -> Totals:
        with self._lock:
            now = self._clock()
            if self._value is None or now - self._read_at >= self._ttl:
                self._value, self._read_at = self._read(), now
            return self._value


class DatabaseCollector(Collector):
    """The figures of ``totals`` as gauges: each is a count of rows as they are now (rows
    change state, so none of them only grows); but the click counts, which only grow."""

    def __init__(self, totals: CachedTotals):
        self._totals = totals

    def describe(self) -> Iterable[Metric]:
        # Without this the registry would call collect(), and so the database, on register.
        return list(_families(NOTHING))

    def collect(self) -> Iterable[Metric]:
        return list(_families(self._totals.get()))


def _families(t: Totals) -> Iterator[Metric]:
    yield _labelled("newsletter_sends", "Sends (one a week) by state.", ["status"],
                    t.sends)
    yield _labelled("newsletter_deliveries", "Ledger rows (one per send and recipient) "
                    "by state, over every send.", ["status"], t.deliveries)
    yield _labelled("newsletter_messages_sent", "Ledger rows sent, by the send's provider.",
                    ["provider"], t.sent)
    yield _labelled("newsletter_provider_errors", "Failed or unknown ledger rows by provider "
                    "and error code.", ["provider", "code"], t.errors)
    yield _labelled("newsletter_events", "Stored provider and mailbox events by kind.",
                    ["kind"], t.events)
    yield _single("newsletter_brake_paused_sends", "Sends the brake paused (bounces, "
                  "complaints), waiting for `send --resume-paused`.", t.brake_paused)
    yield _single("newsletter_confirmation_outbox_pending", "Confirmation mails waiting in "
                  "the outbox.", t.outbox_pending)
    yield _single("newsletter_stalled_sends", "Sends `sending` with no progress for "
                  "stall_after seconds.", t.stalled)
    clicks = CounterMetricFamily("newsletter_clicks", "Fetches of the items' counted links "
                                 "(click_counts): reader clicks (counted), and HEAD requests, "
                                 "prefetches, scanners and bursts (filtered).", labels=["kind"])
    for kind, value in t.clicks.items():
        clicks.add_metric([kind], value)
    yield clicks
    # Absent while no sender is registered (the rows go when a sender stops).
    heartbeat = t.last_heartbeat.timestamp() if t.last_heartbeat else None
    yield _single("newsletter_sender_heartbeat_timestamp_seconds", "The newest heartbeat of "
                  "a running sender, in Unix time.", heartbeat)
    # Absent until the worker has beaten, or polled the mailbox, once (``delivery.beats``).
    yield _single("newsletter_worker_heartbeat_timestamp_seconds", "The worker's last "
                  "heartbeat (every 30 s while it runs), in Unix time.",
                  None if t.worker_beat is None else t.worker_beat.timestamp())
    poll = t.mailbox_poll
    yield _single("newsletter_mailbox_last_poll_timestamp_seconds", "When the worker last "
                  "polled the feedback mailbox, in Unix time.",
                  None if poll is None else poll.at.timestamp())
    yield _single("newsletter_mailbox_last_poll_ok", "1 if the worker's last poll of the "
                  "feedback mailbox worked, 0 if it failed.",
                  None if poll is None else float(poll.ok))


def _labelled(name: str, doc: str, labels: list[str], values: Mapping[Any, int]) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for key, value in values.items():
        family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return family


def _single(name: str, doc: str, value: float | None) -> Metric:
    family = GaugeMetricFamily(name, doc)
    if value is not None:
        family.add_metric([], value)
    return family
