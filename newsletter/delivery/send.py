"""``newsletter send``: the week's edition to every active subscriber, through the ledger.

Resumable: run it again after a crash or an interruption and it carries on where it stopped.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from ..config import Config
from ..edition.render import render_week
from ..providers import make_transport
from ..store.db import connect
from . import ledger
from .loop import Delivery, RunResult
from .outgoing import prepare
from .progress import progress_reporter


def check_sender(config: Config) -> None:
    """What every real message needs; a send without them would fail for every recipient."""
    config.require("from_address", "base_url", "postal_address")


def send_edition(config: Config, week: str | None, *, retry_failed: bool = False,
                 retry_unknown: bool = False, interactive: bool | None = None,
                 stop_event: threading.Event | None = None,
                 **transport_options) -> RunResult | None:
    """Send (or resume) the week's send. None when it had already completed."""
    check_sender(config)
    rendered = render_week(config, week)
    engine = connect(config.database_url)
    send, _ = ledger.open_send(engine, rendered.week, rendered.content_hash, rendered.subject,
                               config.provider)
    requeued = 0
    if retry_unknown:
        requeued += ledger.requeue(engine, send.id, "unknown")
    if retry_failed:
        requeued += ledger.requeue(engine, send.id, "failed")
    if send.status == "done" and not requeued:
        return None
    transport = make_transport(config, out_dir=Path(config.outbox_dir) / rendered.week,
                               **transport_options)
    delivery = Delivery(config, engine, transport, prepare(config, rendered), send,
                        stop_event=stop_event)
    with progress_reporter(rendered.week, send.total, interactive=interactive) as report:
        delivery.on_progress = report
        return asyncio.run(delivery.run())
