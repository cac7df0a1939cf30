"""``newsletter worker [--next N]``: the scheduled weekly send (see scheduler.py).

cli.py registers this command (``cli.add_command(worker)``); like cli_subscribers, this module
does not import cli.py. The config comes from ``ctx.obj`` (cli.AppContext).
"""

from __future__ import annotations

import logging
import sys

import click

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
LOG_DATEFMT = "%Y-%m-%dT%H:%M:%S%z"


def setup_logging(verbose: bool = False) -> None:
    """One line per event on stderr: ISO time with UTC offset, level, message."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATEFMT))
    handler.set_name("newsletter-worker")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "newsletter-worker"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    # APScheduler's own lines repeat ours ("Running job", "missed by"): keep its real problems.
    logging.getLogger("apscheduler").setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger("apscheduler.executors").setLevel(
        logging.DEBUG if verbose else logging.ERROR)


@click.command()
@click.option("--next", "next_count", type=click.IntRange(min=1), default=None, metavar="N",
              help="Print the next N scheduled run times (and their editions) and exit.")
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
    from ..worker.schedule import build_trigger, edition_week, next_run_times, serve

    config = app.config
    build_trigger(config)  # a bad schedule is a one-line ConfigError before anything else
    if next_count:
        for t in next_run_times(config, next_count):
            click.echo(f"{t.isoformat()}  {t:%a %Z}  {edition_week(t, config.timezone)}")
        return
    from ..delivery.sending import check_sender

    check_sender(config)  # every week would fail without these: say so now, not on Monday
    setup_logging(verbose)
    status = serve(config)
    if status:
        sys.exit(status)
