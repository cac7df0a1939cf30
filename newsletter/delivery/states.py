"""The states of a send and of each of its recipients in the delivery ledger.

What one attempt of a recipient's message came to is the transport's ``Outcome`` and its
``OutcomeKind`` (``providers.base``), recorded by the ledger as it is.

A subscriber's own status (``audience.model.SubscriberStatus``) is another vocabulary: a
delivery row is ``pending`` while it awaits sending, a subscriber is ``pending`` while
awaiting confirmation. The confirmation outbox has a third (``ConfirmationStatus``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class SendStatus(StrEnum):
    SENDING = "sending"      # started; rows remain to be sent (or the sender was interrupted)
    DONE = "done"            # every row is in a final state
    ABORTED = "aborted"      # stopped by a fatal error or the error rate; a person must look
    CANCELLED = "cancelled"  # ended for good by the operator; a new send of the week may start
    PAUSED = "paused"        # the brake stopped it (bounces, complaints); `--resume-paused` goes on


class DeliveryStatus(StrEnum):
    PENDING = "pending"        # awaiting sending (or a retry)
    IN_FLIGHT = "in_flight"    # claimed by a sender, with the provider now
    SENT = "sent"              # accepted by the provider; never sent again
    FAILED = "failed"          # refused for good
    UNKNOWN = "unknown"        # may or may not have been accepted
    SKIPPED = "skipped"        # no longer active when its batch went out
    CANCELLED = "cancelled"    # never sent: the operator cancelled the send first


class ConfirmationStatus(StrEnum):
    """A row of the confirmation outbox (``delivery.confirmations``): one double opt-in mail."""

    PENDING = "pending"      # to be mailed when due (again, after a failure worth retrying)
    SENT = "sent"            # accepted by the provider
    FAILED = "failed"        # refused for good, or out of attempts
    CANCELLED = "cancelled"  # not mailed: the person is not pending, or the cooldown holds


class OutboxKind(StrEnum):
    """Which mail a row of the confirmation outbox is (``delivery.confirmations``)."""

    CONFIRM = "confirm"                  # the double opt-in link
    WELCOME = "welcome"                  # after a confirmation: what the newsletter is
    ADDRESS_CONFIRM = "address_confirm"  # to a new address: the link that makes it theirs
    ADDRESS_NOTICE = "address_notice"    # to the old address, once the new one is confirmed
    DATA_LINK = "data_link"              # a link to a one-time download of the person's data


class StopKind(StrEnum):
    """Why a run of a send ended before the send was done."""

    INTERRUPTED = "interrupted"  # a signal: the send stays resumable
    SHUTDOWN = "shutdown"        # the worker stopping: resumable likewise
    ABORTED = "aborted"          # a fatal provider error, too many failures: the send is aborted
    PAUSED = "paused"            # the brake: the send waits for `--resume-paused`
    WAITING = "waiting"          # the canary's wait: the send goes on when run after ``until``


@dataclass(frozen=True)
class StopReason:
    """Why a run ended before the send was done: its ``kind``, the words for a person, and
    (``waiting``) when the canary's wait ends."""

    kind: StopKind
    detail: str
    until: datetime | None = None

    def __str__(self) -> str:
        if self.kind in (StopKind.ABORTED, StopKind.PAUSED):
            return f"{self.kind}: {self.detail.removeprefix('the brake: ')}"
        return self.detail


SEND_STATUSES = tuple(SendStatus)
DELIVERY_STATUSES = tuple(DeliveryStatus)
CONFIRMATION_STATUSES = tuple(ConfirmationStatus)
OUTBOX_KINDS = tuple(OutboxKind)
# Rows with work left whatever the provider; an idempotent provider adds its repeatable unknowns.
OPEN_STATES = (DeliveryStatus.PENDING, DeliveryStatus.IN_FLIGHT)
# Every other state: the rows a run counts as finished, in the enum's order.
FINAL_STATES = tuple(s for s in DeliveryStatus if s not in OPEN_STATES)
