"""The states of a send and of each of its recipients in the delivery ledger.

A subscriber's own status (``audience.model.SubscriberStatus``) is another vocabulary: a
delivery row is ``pending`` while it awaits sending, a subscriber is ``pending`` while
awaiting confirmation.
"""

from __future__ import annotations

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


class OutcomeKind(StrEnum):
    """What one attempt of a recipient's message came to, as the send loop reports it."""

    SENT = "sent"          # accepted
    FAILED = "failed"      # refused for good
    RETRY = "retry"        # certainly not accepted, worth trying again later
    UNKNOWN = "unknown"    # may have been accepted
    UNTRIED = "untried"    # never handed over (the send stopped first): no attempt counted


SEND_STATUSES = tuple(SendStatus)
DELIVERY_STATUSES = tuple(DeliveryStatus)
# Rows with work left whatever the provider; an idempotent provider adds its repeatable unknowns.
OPEN_STATES = (DeliveryStatus.PENDING, DeliveryStatus.IN_FLIGHT)
