"""``newsletter preview``, ``send`` (with ``--dry-run`` and ``--test``) and ``status``."""

from __future__ import annotations

import click

from ..errors import NewsletterError
from .context import AppContext, pass_app, week_option


@click.command()
@week_option
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Where to write the HTML (default: <outbox_dir>/<week>.html).")
@pass_app
def preview(app: AppContext, week: str | None, out: str | None) -> None:
    """Render the week's edition to an HTML file, with the text part beside it."""
    from ..delivery.preview import write_preview

    html_path, text_path = write_preview(app.config, week, out)
    click.echo(f"wrote {html_path} and {text_path}")


@click.command()
@week_option
@click.option("--dry-run", is_flag=True, help="Write one .eml per recipient instead of sending.")
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="With --dry-run: the folder for the .eml files (default: <outbox_dir>/<week>).")
@click.option("--test", "test", is_flag=True,
              help="Send only to the --to addresses, subject prefixed [TEST]; records nothing.")
@click.option("--to", "to", multiple=True, metavar="EMAIL", help="With --test: a recipient.")
@click.option("--retry-failed", is_flag=True,
              help="Send again to recipients whose messages failed permanently.")
@click.option("--retry-unknown", is_flag=True,
              help="Send again to recipients whose outcome is unknown (they may get it twice).")
@pass_app
def send(app: AppContext, week: str | None, dry_run: bool, out: str | None, test: bool,
         to: tuple[str, ...], retry_failed: bool, retry_unknown: bool) -> None:
    """Send the week's edition to every active subscriber.

    Every recipient's outcome is recorded; run the same command again after a crash or an
    interruption and it carries on where it stopped, never sending anyone a second copy.
    """
    if test:
        if not to:
            raise click.UsageError("--test needs at least one --to EMAIL")
        if dry_run or out or retry_failed or retry_unknown:
            raise click.UsageError("--test goes with --to and --week only")
        _test_send(app, week, to)
    elif to:
        raise click.UsageError("--to goes with --test")
    elif dry_run:
        if retry_failed or retry_unknown:
            raise click.UsageError("--dry-run does not go with --retry-failed/--retry-unknown")
        _dry_run(app, week, out)
    elif out:
        raise click.UsageError("--out goes with --dry-run")
    else:
        _send(app, week, retry_failed=retry_failed, retry_unknown=retry_unknown)


def _test_send(app: AppContext, week: str | None, to: tuple[str, ...]) -> None:
    from ..delivery.test_send import send_test

    failed = 0
    for outcome in send_test(app.config, week, to):
        detail = outcome.message_id if outcome.status == "sent" else outcome.reason
        click.echo(f"{outcome.status:<8} {outcome.email}  {detail}")
        failed += outcome.status != "sent"
    if failed:
        raise NewsletterError(f"{failed} test message(s) not sent")


def _dry_run(app: AppContext, week: str | None, out: str | None) -> None:
    from ..delivery.dry_run import dry_run

    result = dry_run(app.config, week, out)
    click.echo(f"wrote {result.count} message(s) to {result.out_dir}")


def _send(app: AppContext, week: str | None, *, retry_failed: bool, retry_unknown: bool) -> None:
    from ..delivery.send import send_edition
    from ..delivery.status import counts_line, next_steps
    from ..edition.content import resolve_week
    from ..providers import transport_class
    from .output import setup_logging

    setup_logging()
    run = send_edition(app.config, week, retry_failed=retry_failed, retry_unknown=retry_unknown)
    if run is None:
        week_name = resolve_week(week, app.config.timezone)
        click.echo(f"{week_name} was already sent; nothing to do "
                   f"(see `newsletter status --week {week_name}`)")
        return
    click.echo(f"{run.send.week}: {counts_line(run.counts)}")
    idempotent = transport_class(app.config.provider).idempotent
    for hint in next_steps(run.send.week, run.counts, idempotent=idempotent):
        click.echo(hint)
    if run.stopped:
        raise NewsletterError(f"{run.stopped}; run the same command to resume"
                              if not run.aborted else run.stopped)


@click.command()
@week_option
@pass_app
def status(app: AppContext, week: str | None) -> None:
    """What happened to the week's send: counts per state, times, rate, errors."""
    from ..delivery.status import counts_line, next_steps, send_status
    from ..edition.content import resolve_week

    report = send_status(app.config, week)
    if report is None:
        raise NewsletterError(f"no send for {resolve_week(week, app.config.timezone)} yet")
    s = report.send
    click.echo(f"{s.week}  {s.status}  {s.total} recipient(s)  content {s.content_hash[:12]}")
    click.echo(f"  started   {s.created_at:%Y-%m-%d %H:%M:%S %Z}")
    if s.finished_at:
        click.echo(f"  finished  {s.finished_at:%Y-%m-%d %H:%M:%S %Z}")
    if s.abort_reason:
        click.echo(f"  reason    {s.abort_reason}")
    click.echo(f"  {counts_line(report.counts)}")
    if report.first_sent and report.last_sent and report.last_sent > report.first_sent:
        seconds = (report.last_sent - report.first_sent).total_seconds()
        click.echo(f"  rate      {report.counts.get('sent', 0) / seconds:.0f} messages/s")
    for state, error, n in report.errors:
        click.echo(f"  {n:>6} {state}: {error}")
    for hint in next_steps(s.week, report.counts, idempotent=report.idempotent):
        click.echo(hint)
