"""Sender registration by worker id, for tests that drive the ledger step by step."""

from __future__ import annotations

import sqlalchemy as sa

from newsletter.delivery import ledger

_registered: dict[str, ledger.RegisteredSender] = {}


def register_worker(engine: sa.Engine, send_id: int) -> str:
    """Register a sender of the send ``send_id`` (holding its lock); its worker id."""
    sender = ledger.register_sender(engine, ledger.get_send(engine, send_id))
    _registered[sender.worker_id] = sender
    return sender.worker_id


def unregister_worker(engine: sa.Engine, worker_id: str) -> None:
    sender = _registered.pop(worker_id, None)
    if sender is not None:
        ledger.release_sender(engine, sender)


def abandon_worker(worker_id: str) -> None:
    """Drop a sender's lock with nothing cleaned up, as its death would."""
    sender = _registered.pop(worker_id, None)
    if sender is not None:
        ledger.abandon(sender)
