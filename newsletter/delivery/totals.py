"""The whole database in a few figures, for monitoring (the web app's ``/metrics``): sends and
ledger rows by state, messages sent per provider, the providers' error codes, events by kind,
sends the brake holds, the confirmation outbox's depth, the senders' last heartbeat, and the
worker's own heartbeat and last poll of the feedback mailbox (``beats``); the
click counts summed over every link (``click_counts``: counted and filtered).

Every figure is a grouped COUNT (or a MAX), never a row load: on a ledger of a million rows
the counts walk the ``(send_id, status, ...)`` index, and the small ``sends`` table maps a
send to its provider here in Python rather than in a join.

Nothing read here names a person: the labels are states, kinds, provider names and error
codes, and an error code that is not a short token (``CODE``) is counted as ``other``, as are
the codes past the ``MAX_CODES`` most common, so a provider's odd answer cannot turn into an
unbounded set of labels or carry an address out.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from ..clock import utc_now
from ..store.tables import (
    EVENT_KINDS,
    click_counts,
    confirmations,
    deliveries,
    events,
    send_workers,
    sends,
)
from . import beats
from .stalls import stalls_in
from .states import ConfirmationStatus, DeliveryStatus, SendStatus

# The states whose error_code is the provider's answer (or ours, on its behalf).
ERROR_STATES = (DeliveryStatus.FAILED, DeliveryStatus.UNKNOWN)
CODE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_CODES = 20
OTHER = "other"
NO_CODE = "none"


@dataclass(frozen=True)
class Totals:
    sends: dict[str, int]                  # send status -> sends
    deliveries: dict[str, int]             # delivery status -> rows, over every send
    sent: dict[str, int]                   # provider -> rows sent
    errors: dict[tuple[str, str], int]     # (provider, error code) -> failed or unknown rows
    events: dict[str, int]                 # event kind -> events
    brake_paused: int                      # sends the brake paused, waiting for a resume
    outbox_pending: int                    # confirmation mails waiting to go
    last_heartbeat: datetime | None        # the newest heartbeat of a registered sender
    stalled: int = 0                       # sends sending without progress (``stalls``)
    worker_beat: datetime | None = None    # the worker's last heartbeat (``beats``)
    mailbox_poll: beats.Beat | None = None  # the worker's last poll of the mailbox
    # "counted" and "filtered" -> fetches of counted links, summed over every link
    clicks: dict[str, int] = field(default_factory=lambda: {"counted": 0, "filtered": 0})


def read_totals(engine: sa.Engine, *, stall_after: float | None = None) -> Totals:
    """Every figure, in one read-only transaction (one snapshot on PostgreSQL); stalls too
    when ``stall_after`` is given."""
    with engine.connect() as conn:
        providers = dict(conn.execute(sa.select(sends.c.id, sends.c.provider)).all())
        send_states = _grouped(conn, sends.c.status)
        beaten = beats.read(conn)
        worker = beaten.get(beats.BeatName.WORKER)
        rows = conn.execute(sa.select(deliveries.c.send_id, deliveries.c.status,
                                      sa.func.count())
                            .group_by(deliveries.c.send_id, deliveries.c.status)).all()
        return Totals(
            sends={s.value: send_states.get(s.value, 0) for s in SendStatus},
            deliveries=_by_state(rows),
            sent=_sent_by_provider(rows, providers),
            errors=_errors(conn, providers),
            events={str(kind): 0 for kind in EVENT_KINDS} | _grouped(conn, events.c.kind),
            brake_paused=send_states.get(SendStatus.PAUSED.value, 0),
            outbox_pending=_count(conn, confirmations,
                                  confirmations.c.status == ConfirmationStatus.PENDING),
            last_heartbeat=conn.execute(
                sa.select(sa.func.max(send_workers.c.heartbeat_at))).scalar(),
            stalled=len(stalls_in(conn, stall_after=stall_after, now=utc_now()))
            if stall_after is not None else 0,
            worker_beat=worker.at if worker is not None else None,
            mailbox_poll=beaten.get(beats.BeatName.MAILBOX),
            clicks=_clicks(conn),
        )


def _clicks(conn: sa.Connection) -> dict[str, int]:
    c = click_counts.c
    counted, filtered = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(c.clicks), 0),
                                               sa.func.coalesce(sa.func.sum(c.filtered), 0))
                                     ).one()
    return {"counted": int(counted), "filtered": int(filtered)}


def _grouped(conn: sa.Connection, column: sa.Column[str]) -> dict[str, int]:
    found = conn.execute(sa.select(column, sa.func.count()).group_by(column)).all()
    return {value: n for value, n in found}


def _count(conn: sa.Connection, table: sa.Table, where: sa.ColumnElement[bool]) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(table).where(where)).scalar_one()


def _by_state(rows: Sequence[sa.Row[int, str, int]]) -> dict[str, int]:
    """Every state, a state without rows as 0, so that a graph of it starts at zero."""
    out = {s.value: 0 for s in DeliveryStatus}
    for _, status, n in rows:
        out[status] = out.get(status, 0) + n
    return out


def _sent_by_provider(rows: Sequence[sa.Row[int, str, int]],
                      providers: dict[int, str]) -> dict[str, int]:
    out: Counter[str] = Counter({provider: 0 for provider in providers.values()})
    for send_id, status, n in rows:
        if status == DeliveryStatus.SENT:
            out[providers.get(send_id, OTHER)] += n
    return dict(out)


def _errors(conn: sa.Connection, providers: dict[int, str]) -> dict[tuple[str, str], int]:
    d = deliveries.c
    found = conn.execute(sa.select(d.send_id, d.error_code, sa.func.count())
                         .where(d.status.in_(ERROR_STATES))
                         .group_by(d.send_id, d.error_code)).all()
    counted: Counter[tuple[str, str]] = Counter()
    for send_id, code, n in found:
        counted[(providers.get(send_id, OTHER), _code_label(code))] += n
    return _fold_rare(counted)


def _code_label(code: str | None) -> str:
    if not code:
        return NO_CODE
    return code if CODE.fullmatch(code) else OTHER


def _fold_rare(counted: Counter[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The ``MAX_CODES`` most common (provider, code) pairs; the rest under their provider's
    ``other``."""
    out: Counter[tuple[str, str]] = Counter()
    for rank, ((provider, code), n) in enumerate(counted.most_common()):
        out[(provider, code) if rank < MAX_CODES else (provider, OTHER)] += n
    return dict(out)
