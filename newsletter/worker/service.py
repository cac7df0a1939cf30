"""The running worker: ``serve`` (the scheduler, the signals, the main thread's wait) around
the weekly job (``worker.job``) and the housekeeping jobs (``worker.housekeeping``), with its
``/healthz`` beside them when ``worker_health_port`` is set (``worker.health``). The
arithmetic is in ``worker.schedule``.

Canary and brake
    A send whose canary slice is out stops, ``waiting``; the worker runs it again when the
    wait ends (a one-off job; on start, a waiting send is resumed and so rescheduled). A send
    the brake paused, like an aborted one, is left for a person (``--resume-paused``). A new
    week is checked first (``newsletter check``); an edition with errors is not sent.

Down at send time
    APScheduler's in-memory job store knows nothing of fire times before the process started,
    so on start the worker applies ``decide_on_start`` itself and logs what it does (sends now,
    resumes, or says the edition was missed and how to send it by hand). The same grace applies
    while running (a process paused past a fire time). The check and the scheduler's first run
    are computed from one ``now``: a fire time between the two is the first run, not lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from ..config import Config
from . import health, housekeeping
from .job import Worker, redacted_config
from .schedule import edition_week, format_time, grace_seconds, next_run_times

log = logging.getLogger("newsletter.worker")

JOB_ID = "weekly-send"
# How often the main thread nudges the scheduler to look at the wall clock again: its wait
# runs on the monotonic clock, which stands still while a machine or container is suspended.
WAKE_EVERY = 60.0
SIGNAL_POLL = 0.2  # seconds between the main thread's looks for a signal or a stop request


# -- the long-running worker ------------------------------------------------------------------

def make_scheduler(worker: Worker, *, now: datetime | None = None, run_now: bool = False):
    """A BackgroundScheduler with the weekly job (one thread, coalesced, one at a time) and
    the housekeeping jobs (``worker.housekeeping``) in threads of their own.

    Its first run is computed from ``now`` (the start-up check's): at once for ``run_now``,
    else the first fire time after ``now``, even if that has passed by the time the scheduler
    starts (it then runs at once, or is reported missed past the grace)."""
    from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler

    config = worker.config
    scheduler = BackgroundScheduler(timezone=ZoneInfo(config.timezone),
                                    executors={"default": ThreadPoolExecutor(max_workers=1),
                                               "housekeeping": ThreadPoolExecutor(max_workers=4)})
    scheduler.add_listener(worker.on_missed, EVENT_JOB_MISSED)
    scheduler.add_listener(worker.on_max_instances, EVENT_JOB_MAX_INSTANCES)
    now = now or worker.clock()
    first = now if run_now else worker.trigger.get_next_fire_time(None, now)
    options = {"next_run_time": first} if first is not None else {}
    scheduler.add_job(worker.run_due, trigger=worker.trigger, id=JOB_ID, name="weekly send",
                      coalesce=True, max_instances=1,
                      misfire_grace_time=grace_seconds(config), **options)
    housekeeping.add_jobs(scheduler, config)
    worker.scheduler = scheduler
    return scheduler


def log_start(config: Config, worker: Worker, now: datetime, count: int = 3) -> None:
    log.info("worker starting: %s", redacted_config(config))
    upcoming = next_run_times(config, count, now)
    listed = ", ".join(f"{format_time(t)} -> {edition_week(t, config.timezone)}"
                       for t in upcoming)
    log.info("schedule %r in %s, misfire_grace %s; next runs: %s", config.schedule,
             config.timezone, worker.grace_text(), listed or "none")


def serve(config: Config, *, worker: Worker | None = None, install_signals: bool = True,
          stop: threading.Event | None = None) -> int:
    """Run until SIGTERM / SIGINT (or ``stop`` is set); return the exit status (0).

    The job runs in the scheduler's single pool thread; the main thread waits and handles
    signals. On the first signal the worker stops scheduling, asks a running send to stop
    through ``send_edition(..., stop_event=...)`` (the batches in flight are recorded, the rest
    stays pending) and exits once it has; a second signal exits at once (rows in flight become
    ``unknown``). Either way the send resumes on the next start.
    """
    worker = worker or Worker(config)
    stop = stop or threading.Event()
    signals: list[str] = []
    previous = {}

    def on_signal(signum, _frame) -> None:
        name = signal.Signals(signum).name
        if signals:  # the second one: leave now
            log.warning("%s again: stopping now; an unfinished send resumes on the next start",
                        name)
            logging.shutdown()
            os._exit(128 + signum)
        # Only note it: the handler runs on the main thread, which may be holding the lock
        # inside stop (a threading.Event) at that instant; stop.set() here could deadlock.
        signals.append(name)

    if install_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    health = None
    try:
        now = worker.clock()  # one now for the check and the first run: nothing falls between
        log_start(config, worker, now)
        health = _serve_health(config, worker)  # a port taken: one line, before anything runs
        decision = worker.check_start(now)
        if signals or stop.is_set():
            log.info("worker stopped (%s) before it started", signals[0] if signals else "stop")
            return 0
        scheduler = make_scheduler(worker, now=now, run_now=decision.run_now)
        scheduler.start()
        log.info("worker running (pid %d); SIGTERM or Ctrl-C stops it", os.getpid())
        last_wake = time.monotonic()
        while not signals and not stop.is_set():  # is_set() takes no lock
            time.sleep(SIGNAL_POLL)
            if time.monotonic() - last_wake >= WAKE_EVERY:
                scheduler.wakeup()
                last_wake = time.monotonic()
        stop.set()
        why = signals[0] if signals else "stop requested"
        worker.stop_event.set()
        week = worker.current_week
        if week is None:
            log.info("stopping (%s)", why)
        else:
            log.info("stopping (%s): asking the send of %s to stop cleanly", why, week)
        with contextlib.suppress(Exception):
            scheduler.shutdown(wait=True)
        log.info("worker stopped")
        return 0
    finally:
        if health is not None:
            health.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _serve_health(config: Config, worker: Worker) -> health.HealthServer | None:
    """The worker's ``/healthz`` (``worker.health``) when ``worker_health_port`` is set; it
    answers "starting" until ``make_scheduler`` has given the worker its scheduler."""
    if not config.worker_health_port:
        return None

    def running() -> bool | None:
        scheduler = worker.scheduler
        return None if scheduler is None else bool(scheduler.running)

    return health.start(config, running)
