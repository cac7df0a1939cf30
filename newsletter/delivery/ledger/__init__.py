"""The delivery ledger: one row per (send, subscriber), moved through its states in batches.

    pending ──claim──> in_flight ──record──> sent | failed | unknown
       ^                   │                         │
       └── retry / untried ┘          (ask the provider: found -> sent, not found -> pending;
                                       repeat under its key; or --retry-unknown)
    in_flight of a sender that died ──> unknown     not active any more at claim ──> skipped
    pending when the operator cancels ──> cancelled

A row only becomes ``sent`` after the provider accepted it, so a crash can never lose a
recipient, and a ``sent`` row is never claimed again. The ledger's parts, one job each:

- ``sends``: a week's send (snapshot, content and endpoint binding, finish, cancel, requeue);
- ``senders``: who is sending (a lock the system releases when a sender dies);
- ``claiming``: taking a fresh batch, or an unknown one whole under its key;
- ``recording``: a batch's outcomes, in one transaction;
- ``reconciling``: the unknown rows by batch, and the provider's answers about them;
- ``queries``: counts, the work left, errors.

This package's ``__init__`` is their common door, for callers that want one name to import.
"""

from __future__ import annotations

from ...providers.base import Outcome
from ..states import OPEN_STATES
from .claiming import Claim, claim, claim_unknown
from .queries import Repeats, counts, next_due, open_rows, sent_span, top_errors
from .recording import record
from .senders import AlreadyInProgress, RegisteredSender, abandon, recover
from .senders import register as register_sender
from .senders import release as release_sender
from .sends import (
    SendError,
    SendRecord,
    find_send,
    finish,
    get_send,
    open_send,
    requeue,
    sends_of_week,
)

__all__ = [
    "OPEN_STATES", "AlreadyInProgress", "Claim", "Outcome", "Repeats", "SendError",
    "RegisteredSender", "SendRecord", "abandon", "claim", "claim_unknown", "counts", "find_send",
    "finish", "get_send", "next_due", "open_rows", "open_send", "record", "recover",
    "register_sender", "release_sender", "requeue", "sends_of_week", "sent_span", "top_errors",
]
