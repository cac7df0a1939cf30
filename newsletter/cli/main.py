"""The command line. Thin: it parses, calls the library, prints.

Heavy modules (Jinja2, MJML, SQLAlchemy) are imported inside the commands that use them, so
``newsletter subscribers count`` starts fast.
"""

from __future__ import annotations

import sys

import click

from ..errors import NewsletterError


class _Group(click.Group):
    """A group that turns every NewsletterError into one line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except NewsletterError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)


class AppContext:
    """What every command gets: the config, loaded on first use."""

    def __init__(self, config_path: str | None):
        self.config_path = config_path
        self._config = None

    @property
    def config(self):
        if self._config is None:
            from ..config import load_config

            self._config = load_config(self.config_path)
        return self._config


pass_app = click.make_pass_decorator(AppContext)


@click.group(cls=_Group)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Path to newsletter.toml (default: $NEWSLETTER_CONFIG, then ./newsletter.toml).",
)
@click.version_option(package_name="newsletter")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Deliver a weekly email newsletter kept in git."""
    ctx.obj = AppContext(config_path)


def _week_option(f):
    return click.option(
        "--week", default=None, metavar="YYYY-Www", help="ISO week (default: the current week)."
    )(f)


@cli.command()
@_week_option
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Where to write the HTML (default: <outbox_dir>/<week>.html).")
@pass_app
def preview(app: AppContext, week: str | None, out: str | None) -> None:
    """Render the week's edition to an HTML file, with the text part beside it."""
    from ..delivery.commands import preview_edition

    html_path, text_path = preview_edition(app.config, week, out)
    click.echo(f"wrote {html_path} and {text_path}")


@cli.command()
@_week_option
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
    from ..delivery import commands

    if test:
        if not to:
            raise click.UsageError("--test needs at least one --to EMAIL")
        if dry_run:
            raise click.UsageError("--test and --dry-run do not go together")
        failed = 0
        for outcome in commands.test_send(app.config, week, to):
            detail = outcome.message_id if outcome.status == "sent" else outcome.reason
            click.echo(f"{outcome.status:<8} {outcome.email}  {detail}")
            failed += outcome.status != "sent"
        if failed:
            raise NewsletterError(f"{failed} test message(s) not sent")
        return
    if to:
        raise click.UsageError("--to goes with --test")
    if dry_run:
        result = commands.dry_run_send(app.config, week, out)
        click.echo(f"wrote {result.count} message(s) to {result.out_dir}")
        return
    if out:
        raise click.UsageError("--out goes with --dry-run")
    _setup_logging()
    run = commands.send_edition(app.config, week, retry_failed=retry_failed,
                                retry_unknown=retry_unknown)
    if run is None:
        week_name = commands.resolve_week(app.config, week)
        click.echo(f"{week_name} was already sent; nothing to do "
                   f"(see `newsletter status --week {week_name}`)")
        return
    from ..providers import transport_class

    click.echo(f"{run.send.week}: {_counts_line(run.counts)}")
    idempotent = transport_class(app.config.provider).idempotent
    for hint in _hints(run.send.week, run.counts, idempotent=idempotent):
        click.echo(hint)
    if run.stopped:
        raise NewsletterError(f"{run.stopped}; run the same command to resume"
                              if not run.aborted else run.stopped)


@cli.command()
@_week_option
@pass_app
def status(app: AppContext, week: str | None) -> None:
    """What happened to the week's send: counts per state, times, rate, errors."""
    from ..delivery.commands import resolve_week, send_status

    report = send_status(app.config, week)
    if report is None:
        raise NewsletterError(f"no send for {resolve_week(app.config, week)} yet")
    s = report.send
    click.echo(f"{s.week}  {s.status}  {s.total} recipient(s)  content {s.content_hash[:12]}")
    click.echo(f"  started   {s.created_at:%Y-%m-%d %H:%M:%S %Z}")
    if s.finished_at:
        click.echo(f"  finished  {s.finished_at:%Y-%m-%d %H:%M:%S %Z}")
    if s.abort_reason:
        click.echo(f"  aborted   {s.abort_reason}")
    click.echo(f"  {_counts_line(report.counts)}")
    if report.first_sent and report.last_sent and report.last_sent > report.first_sent:
        seconds = (report.last_sent - report.first_sent).total_seconds()
        click.echo(f"  rate      {report.counts.get('sent', 0) / seconds:.0f} messages/s")
    for state, error, n in report.errors:
        click.echo(f"  {n:>6} {state}: {error}")
    for hint in _hints(s.week, report.counts, idempotent=report.idempotent):
        click.echo(hint)


STATES = ("sent", "failed", "unknown", "skipped", "pending", "in_flight")


def _counts_line(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts.get(state, 0)} {state}" for state in STATES)


def _hints(week: str, counts: dict[str, int], *, idempotent: bool) -> list[str]:
    hints = []
    unfinished = counts.get("pending") or counts.get("in_flight")
    # An idempotent provider's unknown rows are repeated by a resumed send; only those that
    # ran out of attempts need a person.
    if counts.get("unknown") and not (idempotent and unfinished):
        hints.append(f"{counts['unknown']} recipient(s) may or may not have received it; "
                     f"`newsletter send --week {week} --retry-unknown` sends to them again")
    if counts.get("failed"):
        hints.append(f"after fixing the cause, `newsletter send --week {week} --retry-failed` "
                     "retries the failed recipients")
    if counts.get("pending") or counts.get("in_flight"):
        hints.append(f"unfinished: `newsletter send --week {week}` resumes")
    return hints


def _setup_logging() -> None:
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise


def _register_subcommands() -> None:
    from .subscribers import db, subscribers
    from .worker import worker

    cli.add_command(subscribers)
    cli.add_command(db)
    cli.add_command(worker)


_register_subcommands()


def main() -> None:
    cli.main(prog_name="newsletter")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
