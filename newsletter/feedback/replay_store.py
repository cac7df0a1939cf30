"""Mailgun's single-use tokens in the database, so every web process and restart shares them.

``claim_token`` is the rule (``replay.ReplayGuard``'s) inside a transaction: a new token is
recorded; the same token with the same event is a retry and passes; with another event it is a
replay and fails; an expired one is taken over. Expired tokens are deleted as claims go by.

Two guards use it. ``DatabaseReplayGuard`` claims in a transaction of its own.
``DeferredReplay`` serves one web request: verification asks it during parsing, it answers yes
and remembers the claim, and ``settle`` makes the real decision inside the transaction that
stores the request's events, so the token and the events are committed together or not at all
(one commit a request, and no database call on the event loop).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from ..clock import utc_now
from ..store.db import begin_write
from ..store.tables import webhook_tokens as tokens
from ._sql import insert_ignoring_duplicates
from .events import ReplayedRequest


@dataclass(frozen=True)
class Claim:
    provider: str
    token: str
    fingerprint: str
    expires_at: datetime


def claim_token(conn: sa.Connection, provider: str, token: str, fingerprint: str,
                expires_at: datetime, now: datetime) -> bool:
    """The claim, in the caller's transaction; False when the token is a replay."""
    try:
        settle(conn, [(Claim(provider, token, fingerprint, expires_at), now)])
    except ReplayedRequest:
        return False
    return True


def settle(conn: sa.Connection, claims: Sequence[tuple[Claim, datetime]]) -> None:
    """Make ``claims`` (each with the time it was made) in the caller's transaction, with one
    insert for all of them; ReplayedRequest (406, as Mailgun's) when one is a replay."""
    if not claims:
        return
    now = max(at for _, at in claims)
    conn.execute(tokens.delete().where(tokens.c.expires_at < now))
    wanted: dict[tuple[str, str], Claim] = {}
    for claim, _ in claims:
        earlier = wanted.setdefault((claim.provider, claim.token), claim)
        if earlier.fingerprint != claim.fingerprint:  # two events with one token, at once
            _refuse(claim)
    insert = insert_ignoring_duplicates(conn, tokens, ["provider", "token"]).returning(
        tokens.c.provider, tokens.c.token)
    # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT.
    inserted = {tuple(r) for r in conn.execute(insert, [
        {"provider": c.provider, "token": c.token, "fingerprint": c.fingerprint,
         "expires_at": c.expires_at} for c in wanted.values()])}
    for key, claim in wanted.items():
        if key in inserted:
            continue
        where = (tokens.c.provider == claim.provider) & (tokens.c.token == claim.token)
        row = conn.execute(sa.select(tokens.c.fingerprint, tokens.c.expires_at)
                           .where(where)).first()
        if row is not None and row.expires_at > now and row.fingerprint != claim.fingerprint:
            _refuse(claim)
        if row is None or row.expires_at <= now:  # expired: the token may serve again
            conn.execute(tokens.delete().where(where))
            conn.execute(tokens.insert().values(provider=claim.provider, token=claim.token,
                                                fingerprint=claim.fingerprint,
                                                expires_at=claim.expires_at))


def _refuse(claim: Claim) -> None:
    # Mailgun stops retrying only on 406 (see webhooks.mailgun).
    raise ReplayedRequest(f"{claim.provider} webhook: token already used for another event",
                          status=406 if claim.provider == "mailgun" else None)


class DatabaseReplayGuard:
    """A ``ReplayGuard`` over the ``webhook_tokens`` table, one transaction per claim."""

    def __init__(self, engine: sa.Engine, clock: Callable[[], datetime] = utc_now):
        self.engine = engine
        self.clock = clock

    def claim(self, provider: str, token: str, fingerprint: str, expires_at: datetime) -> bool:
        with begin_write(self.engine) as conn:
            return claim_token(conn, provider, token, fingerprint, expires_at, self.clock())


@dataclass
class DeferredReplay:
    """A ``ReplayGuard`` for one request: claims are settled later, with the events."""

    claims: list[Claim] = field(default_factory=list)

    def claim(self, provider: str, token: str, fingerprint: str, expires_at: datetime) -> bool:
        self.claims.append(Claim(provider, token, fingerprint, expires_at))
        return True

    def settle(self, conn: sa.Connection, now: datetime) -> None:
        """Make every claim for real; ReplayedRequest (406, as Mailgun's) when one fails."""
        settle(conn, [(c, now) for c in self.claims])

