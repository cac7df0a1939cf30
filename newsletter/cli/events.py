"""``newsletter events``, ``newsletter sends`` and ``newsletter mailbox poll``."""

from __future__ import annotations

import json
import sys

import click

from .context import AppContext, pass_app, week_option

EVENT_KINDS = ("bounced", "deferred", "complained", "unsubscribed", "rejected", "delivered",
               "accepted", "unknown")
FORMATS = click.Choice(["table", "csv", "json"])


def _engine(app: AppContext):
    from ..store.db import connect

    return connect(app.config.database_url)


@click.command("events")
@week_option
@click.option("--kind", type=click.Choice(EVENT_KINDS), default=None, help="Only this kind.")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True,
              help="csv and json stream any number of events, for scripts.")
@pass_app
def events(app: AppContext, week: str | None, kind: str | None, fmt: str) -> None:
    """The event log: what providers and the mailbox reported, oldest first.

    Without --week, every event, including those that matched no send.
    """
    from ..edition.content import resolve_week
    from ..feedback.listing import COLUMNS, iter_events

    week_name = resolve_week(week, app.config.timezone) if week else None
    rows = iter_events(_engine(app), week=week_name, kind=kind)
    if fmt == "csv":
        from ..audience.csvfile import write_rows

        write_rows(sys.stdout, list(COLUMNS), (e.cells() for e in rows))
    elif fmt == "json":
        _write_json(e.as_dict() for e in rows)
    else:
        _table(("received", "provider", "kind", "recipient", "week", "effect", "reason"),
               ([f"{e.received_at:%Y-%m-%d %H:%M}", e.provider, e.kind, e.recipient,
                 e.week or "", e.effect or "(pending)", _short(e.reason)] for e in rows),
               empty="no events")


@click.command("sends")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@pass_app
def sends(app: AppContext, fmt: str) -> None:
    """Every send, newest first, with its counts and bounce, complaint, unsubscribe rates."""
    from ..feedback.report import send_summaries

    summaries = send_summaries(_engine(app))
    if fmt == "json":
        _write_json(_summary_dict(s) for s in summaries)
        return
    columns = ["week", "status", "provider", "started", "recipients", "sent", "failed",
               "bounced", "complained", "unsubscribed", "soft"]
    if fmt == "csv":
        from ..audience.csvfile import write_rows

        write_rows(sys.stdout, columns, (
            [s.week, s.status, s.provider, s.created_at.isoformat(), str(s.total),
             str(s.feedback.sent), str(s.failed)]
            + [str(getattr(s.feedback, k)) for k in columns[7:]] for s in summaries))
        return
    shown = list(summaries)
    _table(columns, ([s.week, s.status, s.provider, f"{s.created_at:%Y-%m-%d %H:%M}",
                      str(s.total), str(s.feedback.sent), str(s.failed)] + _rates(s.feedback)
                     for s in shown), empty="no sends yet")
    # Below the table, one line a send: its unsubscribes over the days after it started.
    from ..report.unsubscribes import DAYS, for_sends, sparkline_line

    for edition in for_sends(_engine(app), [s.id for s in shown]):
        click.echo(sparkline_line(edition))
    if shown:
        click.echo(f"(one block a day, the first {DAYS} days; `newsletter report --week W` "
                   "shows more)")


@click.group("mailbox")
def mailbox() -> None:
    """The feedback mailbox (imap_host): bounces, complaints, mailto unsubscribes."""


@mailbox.command("poll")
@pass_app
def poll(app: AppContext) -> None:
    """Read the mailbox once: store what it reports, apply it, file the mail away."""
    from ..errors import NewsletterError
    from ..feedback.mailbox_job import poll_once
    from .output import setup_logging

    setup_logging(log_format=app.config.log_format)
    summary = poll_once(app.config, _engine(app))
    click.echo(summary.line())
    for line in summary.failed:
        click.echo(f"  failed: {line}", err=True)
    if summary.failed:
        raise NewsletterError(f"{len(summary.failed)} mail(s) could not be stored; they stay "
                              "in the mailbox for the next poll")


def _rates(fb) -> list[str]:
    return [f"{getattr(fb, k)} ({fb.rate(k):.2%})" for k in
            ("bounced", "complained", "unsubscribed")] + [str(fb.soft)]


def _summary_dict(s) -> dict:
    return {"week": s.week, "status": s.status, "provider": s.provider,
            "started": s.created_at.isoformat(),
            "finished": s.finished_at.isoformat() if s.finished_at else None,
            "recipients": s.total, "failed": s.failed, **s.feedback.as_dict()}


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _write_json(items) -> None:
    """A JSON array written one element at a time, so memory stays flat."""
    out = sys.stdout
    out.write("[")
    for i, item in enumerate(items):
        out.write(",\n " if i else "\n ")
        out.write(json.dumps(item, ensure_ascii=False))
    out.write("\n]\n")


def _table(columns, rows, *, empty: str) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(*columns)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # reported text is never markup
    if not table.row_count:
        click.echo(empty)
        return
    console = Console()
    if not console.is_terminal:
        console = Console(width=10_000)  # piped: never wrap or cut an address
    console.print(table)


def register(group: click.Group) -> None:
    for command in (events, sends, mailbox):
        group.add_command(command)
