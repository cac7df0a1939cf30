"""Asking the event log instead of the provider: SendGrid and SES report every message they
take (SendGrid's ``processed`` event, SES's ``Send`` event) through the webhook the project
already verifies; neither has a search we may count on. An unknown row whose acceptance event
is in the log was accepted.

Its absence proves less than a search's: the webhook may not be subscribed to those events,
or may be behind. So "not accepted" needs the batch settled *and* an acceptance event heard
for a message claimed after this batch, showing that the webhook reports them and has caught
up past it; otherwise the row stays unknown, saying why.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import sqlalchemy as sa

from ..providers.base import Finding, UnknownBatch, findings_from, settled
from .ledger import reconciling

# Webhooks post in batches, and retry: SendGrid within seconds to minutes, SNS likewise.
DEFAULT_SETTLE = timedelta(minutes=10)


class EventLogReconciler:
    def __init__(self, provider: str, engine: sa.Engine, send_id: int, *,
                 settle: timedelta = DEFAULT_SETTLE) -> None:
        self.name = provider
        self.engine = engine
        self.send_id = send_id
        self._settle = settle
        self._heard = False

    @property
    def settle(self) -> timedelta:
        """The time a batch is given before its missing events mean "not accepted"; none
        while the webhook has reported no acceptance of this send at all, since waiting would
        then hold the send for an answer that may never come."""
        return self._settle if self._heard else timedelta(0)

    @settle.setter
    def settle(self, value: timedelta) -> None:
        # ``Reconciler`` declares ``settle`` a plain attribute, which a read-only property
        # does not satisfy.
        self._settle = value

    async def reconcile(self, batch: UnknownBatch, *, now: datetime) -> list[Finding]:
        return await asyncio.to_thread(self._reconcile, batch, now)

    def _reconcile(self, batch: UnknownBatch, now: datetime) -> list[Finding]:
        self._heard = self._heard or reconciling.heard_any(self.engine, self.name,
                                                           self.send_id)
        found = reconciling.accepted_events(self.engine, self.name, self.send_id,
                                            [r.subscriber_id for r in batch.rows])
        ripe = settled(batch, self.settle, now)
        proven = ripe and reconciling.heard_after(self.engine, self.name, self.send_id,
                                                  batch.sent_at)
        return findings_from(batch, found, where=f"{self.name}'s acceptance events",
                             absent=(f"not in {self.name}'s acceptance events, which reported "
                                     "later batches") if proven else None,
                             waiting=self._why_undecided(batch, ripe, bool(found)))

    def _why_undecided(self, batch: UnknownBatch, ripe: bool, some_found: bool) -> str:
        """Why a row without an acceptance event is not yet taken as "not accepted"."""
        event = _EVENT_NAMES.get(self.name, "acceptance")
        if not ripe:
            wait = (batch.sent_at + self.settle).strftime("%Y-%m-%d %H:%M:%S UTC")
            return f"no {event} event from {self.name} yet; asked again after {wait}"
        if some_found:
            # The webhook does report acceptances (others of this batch came): it may only be
            # behind, which an event for a later batch would rule out.
            return (f"no {event} event from {self.name}, and none heard yet for a later "
                    "batch of this send")
        # Nothing at all for this batch, nor since: the likeliest cause is a webhook that is
        # not subscribed to the event, which only the account's owner can change.
        return (f"no {event} event from {self.name}, nor for a later batch of this send: "
                f"is the webhook subscribed to {event} events?")


_EVENT_NAMES = {"sendgrid": "'processed'", "ses": "'Send'"}
