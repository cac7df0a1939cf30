"""``newsletter worker [--next N]``: the scheduled weekly send (``newsletter.worker``)."""

from __future__ import annotations

import sys

import click

from .output import setup_logging


@click.command()
@click.option("--next", "next_count", type=click.IntRange(min=1), default=None, metavar="N",
              help="Print the next N scheduled run times, the edition each sends and whether it "
                   "is ready, and exit.")
@click.option("--verbose", "-v", is_flag=True,
              help="Log debug detail too (tracebacks, APScheduler's own lines).")
@click.pass_obj
def worker(app, next_count: int | None, verbose: bool) -> None:
    """Send each week's edition on `schedule` (cron, in `timezone`) until stopped.

    An edition already sent, or being sent, is never started twice. A worker that was down at
    send time sends on start if it is back within `misfire_grace` seconds; later, it logs the
    command to send by hand. SIGTERM or Ctrl-C stops it cleanly; a send it interrupted
    resumes on the next start.
    """
    from ..worker.schedule import build_trigger, edition_week, next_run_times
    from ..worker.service import serve

    config = app.config
    build_trigger(config)  # a bad schedule is a one-line ConfigError before anything else
    if next_count:
        from ..project.readiness import week_readiness

        ready: dict[str, str] = {}  # a daily schedule sends one week seven times
        for t in next_run_times(config, next_count):
            week = edition_week(t, config.timezone)
            if week not in ready:
                ready[week] = week_readiness(config, week).line
            click.echo(f"{t.isoformat()}  {t:%a %Z}  {week}  {ready[week]}")
        return
    from ..delivery.arenas import limit_arenas
    from ..delivery.send import check_sender

    limit_arenas()

    check_sender(config)  # every week would fail without these: say so now, not on Monday
    setup_logging(verbose, config.log_format)
    status = serve(config)
    if status:
        sys.exit(status)
