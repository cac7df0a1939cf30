"""``newsletter preview``, ``send`` (with ``--dry-run`` and ``--test``) and ``status``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

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
              help="Send again to recipients whose outcome is unknown and could not be "
                   "resolved by asking the provider (they may get it twice).")
@click.option("--reconcile", is_flag=True,
              help="Only ask the provider which unknown recipients it accepted; mails nobody.")
@click.option("--cancel", is_flag=True,
              help="End the week's unfinished send for good (pending recipients are not sent); "
                   "a new send of the week can then be started.")
@click.option("--force", is_flag=True,
              help="Start the send even though `newsletter check` finds errors (recorded "
                   "with the send).")
@click.option("--resume-paused", is_flag=True,
              help="Go on with a send the brake paused (bounces or complaints too high).")
@pass_app
def send(app: AppContext, week: str | None, dry_run: bool, out: str | None, test: bool,
         to: tuple[str, ...], retry_failed: bool, retry_unknown: bool, reconcile: bool,
         cancel: bool, force: bool, resume_paused: bool) -> None:
    """Send the week's edition to every active subscriber.

    A new send is checked first (`newsletter check`) and refused on an error. Every
    recipient's outcome is recorded; run the same command again after a crash or an
    interruption and it carries on where it stopped, never sending anyone a second copy.
    """
    if (force or resume_paused) and (cancel or test or to or dry_run or out):
        raise click.UsageError("--force and --resume-paused go with a real send only")
    if reconcile:
        if (cancel or test or to or dry_run or out or retry_failed or retry_unknown or force
                or resume_paused):
            raise click.UsageError("--reconcile goes with --week only")
        _reconcile(app, week)
    elif cancel:
        if test or to or dry_run or out or retry_failed or retry_unknown:
            raise click.UsageError("--cancel goes with --week only")
        with _alerts_posted(app):
            _cancel(app, week)
    elif test:
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
        with _alerts_posted(app):
            _send(app, week, retry_failed=retry_failed, retry_unknown=retry_unknown,
                  force=force, resume_paused=resume_paused)


@contextmanager
def _alerts_posted(app: AppContext) -> Iterator[None]:
    """However the run ends, the alerts it queued go now (a few seconds at most, never
    changing the exit status), not on the worker's next drain half a minute later."""
    try:
        yield
    finally:
        if app.loaded:  # a config that did not load has queued nothing
            from ..delivery.alert_outbox import post_queued

            post_queued(app.config)


def _test_send(app: AppContext, week: str | None, to: tuple[str, ...]) -> None:
    from ..delivery.trial import send_test
    from ..providers.base import OutcomeKind

    failed = 0
    for outcome in send_test(app.config, week, to):
        sent = outcome.kind == OutcomeKind.SENT
        detail = outcome.message_id if sent else outcome.reason
        click.echo(f"{outcome.status:<8} {outcome.email}  {detail}")
        failed += not sent
    if failed:
        raise NewsletterError(f"{failed} test message(s) not sent")


def _dry_run(app: AppContext, week: str | None, out: str | None) -> None:
    from ..delivery.dry_run import dry_run

    result = dry_run(app.config, week, out)
    click.echo(f"wrote {result.count} message(s) to {result.out_dir}")


def _send(app: AppContext, week: str | None, *, retry_failed: bool, retry_unknown: bool,
          force: bool = False, resume_paused: bool = False) -> None:
    from ..delivery.arenas import limit_arenas
    from ..delivery.send import NotReady, SendOptions, send_edition
    from ..delivery.states import StopKind
    from ..edition.content import resolve_week
    from ..preflight.verdicts import check_before_send
    from .output import setup_logging

    limit_arenas()
    setup_logging(log_format=app.config.log_format)
    options = SendOptions(retry_failed=retry_failed, retry_unknown=retry_unknown, force=force,
                          resume_paused=resume_paused, check=check_before_send)
    try:
        run = send_edition(app.config, week, options)
    except NotReady as exc:
        from ..preflight import Report, to_text

        # The check given, check_before_send, makes a preflight Report.
        click.echo(to_text(cast(Report, exc.report)), err=True)
        raise
    if run is None:
        week_name = resolve_week(week, app.config.timezone)
        click.echo(f"{week_name} was already sent; nothing to do "
                   f"(see `newsletter status --week {week_name}`)")
        return
    click.echo(f"{run.send.week}: {run.summary()}")
    for hint in run.next_steps():
        click.echo(hint)
    if run.send.forced:
        click.echo(f"warning: sent past `newsletter check` with --force: {run.send.forced}",
                   err=True)
    if run.note:  # an abort that came with the last batch: the send is done all the same
        click.echo(f"warning: {run.note}", err=True)
    stopped, name = run.stopped, run.send.week
    if stopped is None:
        return
    if stopped.kind is StopKind.WAITING:
        click.echo(f"{stopped.detail}; `newsletter send --week {name}` after that sends the "
                   "rest (the worker does it by itself)")
    elif stopped.kind in (StopKind.PAUSED, StopKind.ABORTED):
        raise NewsletterError(str(stopped))
    else:
        raise NewsletterError(f"{stopped}; run the same command to resume")


def _reconcile(app: AppContext, week: str | None) -> None:
    from ..delivery.send import reconcile_week
    from ..delivery.states import DeliveryStatus
    from ..delivery.status import counts_line

    result = reconcile_week(app.config, week)
    name, provider = result.send.week, result.send.provider
    if result.tally is None:
        raise NewsletterError(f"{provider} cannot be asked what it accepted; "
                              f"`newsletter send --week {name} --retry-unknown` sends the "
                              "unknown recipients again (perhaps a second time)")
    t = result.tally
    click.echo(f"{name}: asked {provider}: {t.accepted} found sent, {t.not_accepted} found not "
               f"sent, {t.undecided} still unknown")
    click.echo(f"  {counts_line(result.counts)}")
    if result.counts.get(DeliveryStatus.PENDING):
        click.echo(f"`newsletter send --week {name}` sends to those found not sent")
    if t.undecided:
        click.echo(f"the still unknown: see `newsletter status --week {name}` for why; ask "
                   "again later, or `--retry-unknown` sends to them again")


def _cancel(app: AppContext, week: str | None) -> None:
    from ..delivery.send import cancel_week
    from ..delivery.status import counts_line
    from ..edition.content import resolve_week

    week_name = resolve_week(week, app.config.timezone)
    send, counts = cancel_week(app.config, week_name)
    click.echo(f"{send.week}: cancelled; {counts_line(counts)}")
    click.echo(f"`newsletter send --week {send.week}` starts a new send of the week to every "
               "active subscriber")


@click.command()
@week_option
@pass_app
def status(app: AppContext, week: str | None) -> None:
    """What happened to the week's send: counts per state, times, rate, errors."""
    from ..delivery.states import DeliveryStatus
    from ..delivery.status import (
        counts_line,
        gate_lines,
        next_steps,
        reconciled_words,
        send_status,
    )
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
    if s.forced:
        click.echo(f"  forced    sent past `newsletter check` with --force: {s.forced}")
    if report.stall is not None:
        click.echo(f"  stalled   {report.stall.words()}")
    if report.worker_beat is not None:
        click.echo(f"  worker    last heartbeat {report.worker_beat:%Y-%m-%d %H:%M:%S %Z}")
    for line in gate_lines(app.config, s):
        click.echo(line)
    click.echo(f"  {counts_line(report.counts)}")
    if report.first_sent and report.last_sent and report.last_sent > report.first_sent:
        seconds = (report.last_sent - report.first_sent).total_seconds()
        sent = report.counts.get(DeliveryStatus.SENT, 0)
        click.echo(f"  rate      {sent / seconds:.0f} messages/s")
    if report.reconciled:
        click.echo(f"  reconciled  {reconciled_words(report.reconciled)}")
    for state, error, n in report.errors:
        click.echo(f"  {n:>6} {state}: {error}")
    for earlier, counts in report.earlier:
        started = f"{earlier.created_at:%Y-%m-%d %H:%M %Z}"
        click.echo(f"  earlier   {earlier.status} send started {started}: "
                   f"{counts_line(counts)}")
    for hint in next_steps(s.week, report.counts, idempotent=s.idempotent, status=s.status,
                           provider=s.provider):
        click.echo(hint)
    # What came back: bounces, complaints, unsubscribes (newsletter.feedback.report).
    from ..feedback.report import feedback_lines
    from ..store.db import connect

    for line in feedback_lines(connect(app.config.database_url), s.id):
        click.echo(line)
