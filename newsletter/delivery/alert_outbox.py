"""Posting the ``alerts`` outbox to ``alert_webhook_url``: Slack's incoming-webhook JSON,
``{"text": "..."}``, which Mattermost and Discord's Slack-compatible endpoint take too.

Oldest first, one at a time, and in order: an alert that cannot be posted now holds back the
ones after it (they go to the same webhook, which is down for them too), so the channel reads
in the order things happened. At least once: a row is marked sent only after a 2xx; one
claimed by a drain that died is posted again once its lease runs out. The worker drains every
30 s; ``newsletter send`` posts what is due at its end, within a few seconds (``post_queued``).

- 2xx: sent.
- 429, 5xx, a network error or a timeout: tried again after 30 s, doubling up to an hour;
  after a day it is dropped (an alert that late says nothing any more), with a warning.
- any other answer (a 4xx, a redirect): dropped at once with one warning. The webhook refused
  this message, or the URL is wrong or revoked (Slack: 404 no_service, 410
  channel_is_archived, 403 invalid_token); retrying cannot change that, and the rows after it
  must not wait a day behind it.

The URL is a credential (Slack's token is its path): no log line or stored error shows it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from ..clock import utc_now
from ..config import Config
from ..store.db import begin_write
from ..store.tables import alerts

log = logging.getLogger("newsletter.alerts")

TIMEOUT = 10.0               # seconds: a chat webhook answers in well under one
FIRST_RETRY = 30.0           # seconds, doubling, at most MAX_RETRY
MAX_RETRY = 3600.0
GIVE_UP = timedelta(days=1)  # from when the alert was queued
LEASE = timedelta(minutes=2)  # a row claimed by a drain that died is taken again after this
FLUSH_BUDGET = 5.0           # seconds `newsletter send` may spend posting at its end


@dataclass(frozen=True)
class _Answer:
    sent: bool = False
    retry: bool = False      # neither sent nor retried: dropped
    error: str = ""


def drain_alerts(config: Config, engine: sa.Engine,
                 transport: httpx.BaseTransport | None = None, *, limit: int = 50,
                 clock: Callable[[], datetime] = utc_now, budget: float | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> int:
    """Post the due alerts, oldest first; how many the webhook took. ``budget``: seconds
    after which no further alert is tried (each request's timeout is cut to what is left).
    ``transport`` is the tests' seam (``httpx.MockTransport``)."""
    url = config.alert_webhook_url
    if not url:
        return 0
    sent = 0
    end = None if budget is None else monotonic() + budget
    with httpx.Client(transport=transport, timeout=TIMEOUT, follow_redirects=False) as client:
        for _ in range(limit):
            left = TIMEOUT if end is None else min(TIMEOUT, end - monotonic())
            if left <= 0:
                break
            row = _claim_next(engine, clock())
            if row is None:
                break
            answer = _post(client, url, row.text, left)
            _record(engine, row, answer, clock())
            if answer.retry:
                break  # the webhook is down for the rest too; keep their order
            sent += answer.sent
    return sent


def _claim_next(engine: sa.Engine, now: datetime) -> Any:
    """The oldest alert still to post, claimed for ``LEASE``; None when there is none, or when
    the oldest is not due yet (the ones after it wait their turn)."""
    a = alerts.c
    with begin_write(engine) as conn:
        row = conn.execute(sa.select(a.id, a.text, a.attempts, a.created_at, a.next_attempt_at)
                           .where(a.next_attempt_at.is_not(None))
                           .order_by(a.id).limit(1)).first()
        if row is None or row.next_attempt_at > now:
            return None
        # Claimed only if no other drain took it meanwhile (its attempts would have moved).
        taken = conn.execute(alerts.update()
                             .where(a.id == row.id, a.attempts == row.attempts)
                             .values(attempts=row.attempts + 1, next_attempt_at=now + LEASE))
        return row if taken.rowcount == 1 else None


def post_queued(config: Config, *, budget: float = FLUSH_BUDGET,
                transport: httpx.BaseTransport | None = None,
                monotonic: Callable[[], float] = time.monotonic) -> int:
    """What ``newsletter send`` does at its end: post the alerts due now (the ones its run
    queued among them) within ``budget`` seconds; how many went. Never raises: the worker
    posts whatever is left."""
    if not config.alert_webhook_url:
        return 0
    from ..store.db import connect

    try:
        return drain_alerts(config, connect(config.database_url), transport, budget=budget,
                            monotonic=monotonic)
    except Exception as exc:  # an alert must never change how a send ends
        log.warning("alerts not posted now (%s); the worker posts them",
                    _redact(f"{type(exc).__name__}: {exc}", config.alert_webhook_url)[:300])
        return 0


def _post(client: httpx.Client, url: str, text: str, timeout: float = TIMEOUT) -> _Answer:
    try:
        response = client.post(url, json={"text": text}, timeout=timeout)
    except httpx.HTTPError as exc:
        return _Answer(retry=True, error=_redact(f"{type(exc).__name__}: {exc}", url))
    if response.is_success:
        return _Answer(sent=True)
    said = _redact(" ".join(response.text.split())[:200], url)
    error = f"HTTP {response.status_code}" + (f": {said}" if said else "")
    code = response.status_code
    return _Answer(retry=code == 429 or code >= 500, error=error)


def _record(engine: sa.Engine, row: Any, answer: _Answer, now: datetime) -> None:
    a = alerts.c
    values: dict[str, object]
    if answer.sent:
        values = {"sent_at": now, "next_attempt_at": None, "last_error": None}
    elif answer.retry and now - row.created_at < GIVE_UP:
        delay = min(FIRST_RETRY * 2 ** row.attempts, MAX_RETRY)
        values = {"next_attempt_at": now + timedelta(seconds=delay),
                  "last_error": answer.error}
        log.warning("alert %d not posted (%s); tried again in %.0f s", row.id, answer.error,
                    delay)
    else:
        why = "given up after a day" if answer.retry else "refused"
        values = {"next_attempt_at": None, "last_error": f"{why}: {answer.error}"}
        log.warning("alert %d dropped, %s: %s (check alert_webhook_url)", row.id, why,
                    answer.error)
    with begin_write(engine) as conn:
        conn.execute(alerts.update().where(a.id == row.id).values(values))


def _redact(text: str, url: str) -> str:
    """``text`` without the URL or any part of its path (Slack's token)."""
    text = text.replace(url, "(alert_webhook_url)")
    for part in httpx.URL(url).path.split("/"):
        if len(part) >= 6:
            text = text.replace(part, "(hidden)")
    return re.sub(r"\s+", " ", text).strip()
