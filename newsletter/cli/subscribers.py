"""``newsletter subscribers ...``: parse, call ``audience.subscribers`` (CSV files:
``audience.transfer``), print.

Only click is imported at module level: SQLAlchemy, rich and email-validator are imported inside
the commands that need them, so ``newsletter subscribers count`` starts fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

STATUS_HELP = "pending, active, unsubscribed, bounced or complained"


def _engine(app):
    from ..store.db import connect

    return connect(app.config.database_url)


@click.group()
def subscribers() -> None:
    """Manage the subscriber list."""


@subscribers.command("add")
@click.argument("email")
@click.option("--name", default=None, help="Display name.")
@click.option("--status", default="active", show_default=True, help="active or pending.")
@click.option("--attr", "attrs", multiple=True, metavar="KEY=VALUE",
              help="An attribute for templates (repeatable).")
@click.option("--welcome", is_flag=True,
              help="Queue the welcome mail for the new subscriber (sent by `web` or `worker`).")
@click.pass_obj
def add_command(app, email: str, name: str | None, status: str, attrs: tuple[str, ...],
                welcome: bool) -> None:
    """Add one subscriber (EMAIL may be 'Name <addr>')."""
    from ..audience import subscribers as subs
    from ..delivery import confirmations
    from ..errors import SubscriberError

    attributes = {}
    for item in attrs:
        key, sep, value = item.partition("=")
        if not sep:
            raise SubscriberError(f"--attr expects KEY=VALUE, got {item!r}")
        attributes[key.strip()] = value.strip()
    if welcome:
        sub = confirmations.add_welcomed(_engine(app), email, name=name, status=status,
                                         attributes=attributes)
    else:
        sub = subs.add(_engine(app), email, name=name, status=status, attributes=attributes)
    click.echo(f"added {sub.email} ({sub.status}){', welcome mail queued' if welcome else ''}")


@subscribers.command("import")
@click.argument("file", type=click.Path(dir_okay=True))
@click.option("--from", "source", default=None, metavar="SERVICE",
              help="The file is this service's export, as it came: mailchimp, substack, "
                   "buttondown or listmonk (default: this program's CSV, or any CSV with an "
                   "email column).")
@click.option("--map", "mapping", multiple=True, metavar="COLUMN=field",
              help="Read COLUMN as this field (email, name, first_name, last_name, status, "
                   "consented_at, consent_ip, ... or ignore; repeatable).")
@click.option("--dry-run", is_flag=True, help="Report what would happen; write nothing.")
@click.option("--skip-invalid", is_flag=True,
              help="Import the valid rows and report the invalid ones (default: abort).")
@click.pass_obj
def import_command(app, file: str, source: str | None, mapping: tuple[str, ...],
                   dry_run: bool, skip_invalid: bool) -> None:
    """Import subscribers from a CSV file with a header row (email required), or from
    another service's export file (--from)."""
    from ..audience import transfer
    from ..audience.sources.layout import parse_map

    try:
        report = transfer.import_csv(_engine(app), file, dry_run=dry_run,
                                     skip_invalid=skip_invalid, source=source,
                                     mapping=parse_map(mapping))
    except transfer.ImportAborted as exc:
        for problem in exc.report.invalid:
            click.echo(str(problem), err=True)
        raise
    for problem in report.notes():
        click.echo(str(problem), err=True)
    click.echo(_import_summary(report))
    for status, count in report.by_status.items():
        click.echo(f"  {status:<14}{count:>8}")


def _import_summary(report) -> str:
    skipped = f", {len(report.skipped)} not imported" if report.skipped else ""
    details = (
        f"{report.rows} row(s): {report.unchanged} already on the list, "
        f"{len(report.not_resubscribed)} not re-subscribed, "
        f"{len(report.duplicates)} duplicate(s), {len(report.invalid)} invalid skipped"
        f"{skipped}"
    )
    origin = f"{report.path} ({report.source} export)" if report.source else report.path
    listed = "; by status:" if report.by_status else ""  # one line per status follows
    if report.dry_run:
        return (f"dry run: would import {report.added} new subscriber(s) from {origin} "
                f"({details}); nothing written{listed}")
    return f"imported {report.added} new subscriber(s) from {origin} ({details}){listed}"


@subscribers.command("export")
@click.argument("file", type=click.Path(dir_okay=False), required=False)
@click.option("--status", default=None, help=f"Only this status: {STATUS_HELP}.")
@click.option("--person", "person", default=None, metavar="EMAIL",
              help="Instead: everything stored about this one address, as JSON (a data "
                   "subject's access request).")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="With --person: write the JSON to this file (default: stdout).")
@click.pass_obj
def export_command(app, file: str | None, status: str | None, person: str | None,
                   out: str | None) -> None:
    """Write subscribers to a CSV file that `subscribers import` reads back; or, with
    --person, one person's data as JSON."""
    if person is not None:
        if file is not None or status is not None:
            raise click.UsageError("--person exports one address as JSON: give --out FILE "
                                   "instead of FILE, and no --status")
        from ..audience.person_export import person_record, write_json

        record = person_record(_engine(app), person)
        write_json(record, out if out is not None else sys.stdout)
        if out is not None:
            click.echo(f"exported what is stored about {person.strip()} to {out}")
        return
    if file is None or out is not None:
        raise click.UsageError("give FILE (the CSV to write); --out goes with --person")
    from ..audience.export import export_csv

    count = export_csv(_engine(app), file, status=status)
    click.echo(f"exported {count} subscriber(s) to {file}")


@subscribers.command("list")
@click.option("--status", default=None, help=f"Only this status: {STATUS_HELP}.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="csv and json stream any number of rows, for scripts.")
@click.pass_obj
def list_command(app, status: str | None, fmt: str) -> None:
    """List subscribers in id order."""
    from ..audience import lookup

    engine = _engine(app)
    if status is not None:
        lookup.check_status(status)
    out = sys.stdout
    if fmt == "csv":
        from ..audience.export import export_csv

        export_csv(engine, out, status=status)
    elif fmt == "json":
        _write_json(out, (s.as_dict() for s in lookup.iter_subscribers(engine, status)))
    else:
        _print_table(lookup.iter_subscribers(engine, status))


def _write_json(out, items) -> None:
    """A JSON array written one element at a time, so memory stays flat."""
    out.write("[")
    for i, item in enumerate(items):
        out.write(",\n " if i else "\n ")
        out.write(json.dumps(item, ensure_ascii=False))
    out.write("\n]\n")


def _print_table(subscribers) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "email", "name", "status", "source", "created", "consented")
    for sub in subscribers:
        table.add_row(
            str(sub.id), sub.email, sub.name or "", sub.status, sub.source,
            sub.created_at.strftime("%Y-%m-%d"),
            sub.consented_at.strftime("%Y-%m-%d") if sub.consented_at else "",
        )
    if not table.row_count:
        click.echo("no subscribers")
        return
    console = Console()
    if not console.is_terminal:
        # Piped or captured: nothing to fit, so never wrap or cut an address.
        console = Console(width=10_000)
    console.print(table)


@subscribers.command("show")
@click.argument("email")
@click.pass_obj
def show_command(app, email: str) -> None:
    """Show one subscriber, with the consent record and attributes."""
    from ..audience import lookup
    from ..errors import SubscriberError

    engine = _engine(app)
    sub = lookup.get(engine, email)
    if sub is None:
        raise SubscriberError(lookup.describe_missing(engine, email))
    for key, value in sub.as_dict().items():
        if key == "attributes":
            value = json.dumps(value, ensure_ascii=False, sort_keys=True)
        click.echo(f"{key + ':':<20}{'' if value is None else value}")


@subscribers.command("count")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.pass_obj
def count_command(app, fmt: str) -> None:
    """Count subscribers by status."""
    from ..audience import lookup

    counts = lookup.count_by_status(_engine(app))
    counts["total"] = sum(counts.values())
    if fmt == "json":
        click.echo(json.dumps(counts))
        return
    for status, n in counts.items():
        click.echo(f"{status:<14}{n:>10}")


@subscribers.command("unsubscribe")
@click.argument("email")
@click.option("--reason", default="unsubscribed via CLI", show_default=True)
@click.pass_obj
def unsubscribe_command(app, email: str, reason: str) -> None:
    """Stop sending to an address (kept on the list as unsubscribed)."""
    from ..audience import changes, lookup
    from ..errors import SubscriberError

    engine = _engine(app)
    before = lookup.get(engine, email)
    if before is None:
        raise SubscriberError(lookup.describe_missing(engine, email))
    sub = changes.unsubscribe_address(engine, email, reason=reason)
    if before.status in ("pending", "active"):
        click.echo(f"unsubscribed {sub.email}")
    else:
        click.echo(f"{sub.email} is already {sub.status}; nothing changed")


@subscribers.command("check")
@click.pass_obj
def check_command(app) -> None:
    """Report rows whose address or name today's rules refuse (exit 1 if any).

    Such a row is never mailed; erase it with `remove --id N` (and `add` it again, fixed).
    """
    from ..audience import audit

    found = 0
    for problem in audit.problems(_engine(app)):
        click.echo(str(problem))
        found += 1
    if found:
        click.echo(f"{found} subscriber(s) cannot be mailed as stored", err=True)
        sys.exit(1)
    click.echo("every subscriber's address and name pass today's rules")


@subscribers.command("remove")
@click.argument("email", required=False)
@click.option("--id", "subscriber_id", type=int, default=None,
              help="The row's id instead of EMAIL (for a row `check` reports).")
@click.option("--outbox", "outboxes", multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Another folder to clear of the address's messages, e.g. a dry run's "
                   "--out (repeatable; outbox_dir always is).")
@click.pass_obj
def remove_command(app, email: str | None, subscriber_id: int | None,
                   outboxes: tuple[Path, ...]) -> None:
    """Erase an address's personal data everywhere; keep only a hash so it is never re-added.

    The subscriber row, consent record, status history and confirmation mails go; the address
    and name are taken out of the ledger and the event log (their counts stay); every message
    file under outbox_dir and each --outbox that names the address is deleted (other files
    naming it are listed, not deleted).
    """
    from ..audience import subscribers as subs

    if (email is None) == (subscriber_id is None):
        raise click.UsageError("give EMAIL or --id N")
    folders = [Path(app.config.outbox_dir), *outboxes]
    if subscriber_id is not None:
        erased = subs.remove_by_id(_engine(app), subscriber_id, folders)
        click.echo(f"removed id {subscriber_id} ({erased.email!r}): personal data erased, "
                   "address suppressed (as a hash)")
    else:
        assert email is not None  # one of the two, checked above
        erased = subs.remove(_engine(app), email, folders)
        if erased:
            click.echo(f"removed {email.strip()}: personal data erased, address suppressed "
                       "(as a hash)")
        elif not erased.total and not erased.left:
            click.echo(f"{email.strip()} was already removed; nothing changed")
            return
        elif erased.before:
            click.echo(f"{email.strip()} was already removed; what named it since is erased")
        else:
            click.echo(f"{email.strip()} is not on the list; what named it is erased")
    click.echo(erased.summary())
    for path in erased.left:
        click.echo(f"warning: {path} names the address but is not a message: left as it is; "
                   "take the address out of it by hand", err=True)
