"""The states of a send and of each of its recipients in the delivery ledger.

A subscriber's own status (``audience.model.SubscriberStatus``) is another vocabulary: a
delivery row is ``pending`` while it awaits sending, a subscriber is ``pending`` while
awaiting confirmation.
"""

from __future__ import annotations

from enum import StrEnum


class SendStatus(StrEnum):
    SENDING = "sending"    # started; rows remain to be sent (or the sender was interrupted)
    DONE = "done"          # every row is in a final state
    ABORTED = "aborted"    # stopped by a fatal error or the error rate; a person must look


class DeliveryStatus(StrEnum):
    PENDING = "pending"        # awaiting sending (or a retry)
    IN_FLIGHT = "in_flight"    # claimed by a sender, with the provider now
    SENT = "sent"              # accepted by the provider; never sent again
    FAILED = "failed"          # refused for good
    UNKNOWN = "unknown"        # may or may not have been accepted
    SKIPPED = "skipped"        # no longer active when its batch went out


SEND_STATUSES = tuple(SendStatus)
DELIVERY_STATUSES = tuple(DeliveryStatus)
