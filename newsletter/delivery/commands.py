"""What the CLI commands do, as plain functions the CLI (and tests) call."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..audience.recipient import Recipient
from ..config import Config
from ..edition.content import current_week, load_edition, parse_week
from ..edition.render import RenderedEdition, render_edition
from ..files import atomic_write

PREVIEW_RECIPIENT = Recipient(id=0, email="reader@example.com", name="Preview Reader")


def resolve_week(config: Config, week: str | None) -> str:
    return parse_week(week) if week else current_week(config.timezone)


def render_week(config: Config, week: str | None) -> RenderedEdition:
    return render_edition(config, load_edition(config.items_dir, resolve_week(config, week)))


def preview_edition(config: Config, week: str | None, out: str | None) -> tuple[Path, Path]:
    """Write the rendered HTML for an example reader, and the text part beside it."""
    from .personalize import Personalizer

    rendered = render_week(config, week)
    personalizer = Personalizer(config, rendered)
    values = personalizer.values(PREVIEW_RECIPIENT, personalizer.unsubscribe_url(PREVIEW_RECIPIENT))
    html_path = Path(out) if out else Path(config.outbox_dir) / f"{rendered.week}.html"
    text_path = html_path.with_suffix(".txt")
    atomic_write(html_path, rendered.html.fill(personalizer.html_values(values)).encode("utf-8"))
    atomic_write(text_path, rendered.text.fill(values).encode("utf-8"))
    return html_path, text_path


@dataclass(frozen=True)
class DryRunResult:
    count: int
    out_dir: Path


def dry_run_send(config: Config, week: str | None, out: str | None) -> DryRunResult:
    """One .eml per active subscriber. All or nothing: files are staged, then moved in."""
    from ..audience.subscribers import iter_recipients
    from ..providers.eml import eml_name
    from ..store.db import connect
    from .mime import MessageBuilder
    from .personalize import Personalizer

    rendered = render_week(config, week)
    builder = MessageBuilder(config, Personalizer(config, rendered))
    out_dir = Path(out) if out else Path(config.outbox_dir) / rendered.week
    engine = connect(config.database_url)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.partial-"))
    try:
        count = 0
        for recipient in iter_recipients(engine, status="active"):
            name = eml_name(recipient)
            (staging / name).write_bytes(builder.build(recipient))
            count += 1
        out_dir.mkdir(exist_ok=True)
        # Stream the directory rather than keep a list of names: memory stays flat.
        with os.scandir(staging) as entries:
            for entry in entries:
                os.replace(entry.path, out_dir / entry.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return DryRunResult(count=count, out_dir=out_dir)


def test_send(config: Config, week: str | None, addresses, **transport_options):
    """Render the week and send it to ``addresses`` only, through the configured provider."""
    from ..providers import make_transport
    from .sending import send_test, test_out_dir

    rendered = render_week(config, week)
    transport = make_transport(config, out_dir=test_out_dir(config, rendered.week),
                               **transport_options)
    return send_test(config, rendered, addresses, transport)


def send_edition(config: Config, week: str | None, *, retry_failed: bool = False,
                 retry_unknown: bool = False, interactive: bool | None = None,
                 stop_event=None, **transport_options):
    """Send the week's edition to its recipients through the ledger; resumable.

    Returns the RunResult, or None when the send had already completed.
    """
    import asyncio

    from ..providers import make_transport
    from ..store.db import connect
    from . import ledger
    from .loop import Delivery
    from .progress import progress_reporter
    from .sending import build_outgoing, check_sender

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
    delivery = Delivery(config, engine, transport, build_outgoing(config, rendered), send,
                        stop_event=stop_event)
    with progress_reporter(rendered.week, send.total, interactive=interactive) as report:
        delivery.on_progress = report
        return asyncio.run(delivery.run())


@dataclass(frozen=True)
class StatusReport:
    send: object
    counts: dict[str, int]
    first_sent: object
    last_sent: object
    errors: list[tuple[str, str, int]]
    idempotent: bool


def send_status(config: Config, week: str | None) -> StatusReport | None:
    from ..providers import transport_class
    from ..store.db import connect
    from . import ledger

    week = resolve_week(config, week)
    engine = connect(config.database_url)
    send = ledger.find_send(engine, week)
    if send is None:
        return None
    first, last = ledger.sent_span(engine, send.id)
    idempotent = transport_class(config.provider).idempotent
    return StatusReport(send, ledger.counts(engine, send.id), first, last,
                        ledger.top_errors(engine, send.id), idempotent)
