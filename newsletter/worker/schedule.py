"""The scheduled weekly send: an APScheduler 3.x cron trigger and an idempotent job.

Arithmetic first (pure functions of the config and a ``now``, no clock of their own), then the
``Worker`` (what one run of the job does, and what the worker does on start), then ``serve``
(the scheduler, the signals, the main thread's wait).

Which week a run sends
    The ISO week of the run's *scheduled* fire time in the configured time zone (a run that
    starts late, or a catch-up after a restart, still sends the week it was scheduled for).

The schedule
    Five fields are a standard crontab line (minute hour day-of-month month day-of-week),
    with crontab's weekday numbers (0 or 7 = Sunday, 1 = Monday); APScheduler 3 counts 0 as
    Monday, so numeric weekdays are translated to names before they reach it. Six fields put
    a *seconds* field first (``S M H DoM Mon DoW``): meant for tests and trying things out.
    As in APScheduler, day-of-month and day-of-week must both match (crontab fires on either).

Idempotency
    Every run asks the delivery ledger first. A week already sent is a no-op, an aborted one
    is left for a person, one being sent elsewhere is shared (PostgreSQL, SKIP LOCKED) or
    skipped (SQLite: AlreadyInProgress). So the fall-back hour's double fire, a restart or a
    second worker never start an edition twice.

Down at send time
    APScheduler's in-memory job store knows nothing of fire times before the process started,
    so on start the worker looks at the most recent scheduled time itself: within
    ``misfire_grace`` seconds and not yet sent, it sends now; later, it logs that the edition
    was missed and the command to send it by hand. A send that was started and interrupted is
    resumed on start however late (half the list already has it). ``misfire_grace = 0`` means
    no limit. The same grace applies while running (a process paused past a fire time).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from ..config import Config
from ..errors import ConfigError, NewsletterError

log = logging.getLogger("newsletter.worker")

JOB_ID = "weekly-send"
# How often the main thread nudges the scheduler to look at the wall clock again: its wait
# runs on the monotonic clock, which stands still while a machine or container is suspended.
WAKE_EVERY = 60.0
SIGNAL_POLL = 0.2  # seconds between the main thread's looks for a signal or a stop request
STATES = ("sent", "failed", "unknown", "skipped", "pending", "in_flight")

# -- the schedule -----------------------------------------------------------------------------

_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab numbering: 0 = Sunday
_MONDAY_FIRST = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _bad_schedule(schedule: str, why: str) -> ConfigError:
    return ConfigError(f"config key 'schedule' {why}, got {schedule!r}")


def schedule_fields(schedule: str) -> dict[str, str]:
    """The CronTrigger fields of a 5-field crontab line, or of 6 fields with seconds first."""
    parts = schedule.split()
    if len(parts) == 5:
        second, (minute, hour, day, month, dow) = "0", parts
    elif len(parts) == 6:
        second, minute, hour, day, month, dow = parts
    else:
        raise _bad_schedule(schedule, "must be a 5-field cron expression "
                                      "(minute hour day month weekday)")
    return {"second": second, "minute": minute, "hour": hour, "day": day, "month": month,
            "day_of_week": crontab_weekdays(dow, schedule)}


def crontab_weekdays(field: str, schedule: str = "") -> str:
    """A crontab day-of-week field with numbers (0/7 = Sunday) as APScheduler weekday names."""
    if not any(ch.isdigit() for ch in field):
        return field  # "*", "mon", "mon-fri": the names mean the same to both
    days: set[int] = set()
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if step < 1:
                raise ValueError
            if base == "*":
                first, last = 0, 6
            elif "-" in base:
                first, last = (_cron_day(x) for x in base.split("-", 1))
            else:
                first = _cron_day(base)
                last = 6 if step_text else first
        except ValueError:
            raise _bad_schedule(schedule or field, f"has a bad day-of-week field {field!r} "
                                "(use 0-7 or sun-sat)") from None
        if last < first:
            last += 7  # "sat-mon" wraps round the weekend
        days.update(d % 7 for d in range(first, last + 1, step))
    names = {_CRON_DAYS[d] for d in days}
    return ",".join(n for n in _MONDAY_FIRST if n in names)


def _cron_day(text: str) -> int:
    text = text.strip().lower()
    if text in _CRON_DAYS:
        return _CRON_DAYS.index(text)
    value = int(text)  # ValueError for anything else
    if not 0 <= value <= 7:
        raise ValueError(text)
    return value % 7 if value == 7 else value


def build_trigger(config: Config) -> CronTrigger:
    """The CronTrigger for ``config.schedule`` in ``config.timezone``.

    Equivalent to ``CronTrigger.from_crontab(schedule, timezone=ZoneInfo(tz))`` except for the
    weekday numbers (crontab's, see the module doc) and the optional seconds field.
    """
    fields = schedule_fields(config.schedule)
    try:
        return CronTrigger(**fields, timezone=ZoneInfo(config.timezone))
    except ValueError as exc:
        raise _bad_schedule(config.schedule, f"is not a valid cron expression ({exc})") from None


def fire_times(trigger: CronTrigger, after: datetime) -> Iterator[datetime]:
    """The trigger's fire times from ``after`` (inclusive) on, as APScheduler computes them.

    On the fall-back day a wall time in the repeated hour comes twice (fold 0, then fold 1).
    """
    horizon = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)
    previous = trigger.get_next_fire_time(None, after)
    while previous is not None:
        yield previous
        previous = trigger.get_next_fire_time(previous, horizon)


def next_run_times(config: Config, n: int, now: datetime | None = None) -> list[datetime]:
    """The next ``n`` scheduled times at or after ``now``, in the configured time zone."""
    now = now or datetime.now(UTC)
    times = fire_times(build_trigger(config), now)
    return [t for t, _ in zip(times, range(n), strict=False)]


# Windows to look back through for the previous fire time: small first, so that a schedule
# that fires every second is not walked through for a week.
_LOOK_BACK = (timedelta(minutes=2), timedelta(hours=2), timedelta(days=2), timedelta(days=8),
              timedelta(days=32), timedelta(days=367), timedelta(days=367 * 8 + 2))


def last_run_time(trigger: CronTrigger, now: datetime) -> datetime | None:
    """The most recent scheduled time at or before ``now`` (None if there is none in 8 years)."""
    now_utc = now.astimezone(UTC)
    for window in _LOOK_BACK:
        last = None
        for t in fire_times(trigger, now_utc - window):
            if t.astimezone(UTC) > now_utc:  # compare in UTC: same-zone datetimes ignore fold
                break
            last = t
        if last is not None:
            return last
    return None


def edition_week(fire_time: datetime, timezone: str) -> str:
    """The ISO week (``2026-W47``) of a scheduled time, in the configured time zone."""
    year, week, _ = fire_time.astimezone(ZoneInfo(timezone)).isocalendar()
    return f"{year}-W{week:02d}"


def grace_seconds(config: Config) -> int | None:
    """APScheduler's misfire_grace_time: None (no limit) for ``misfire_grace = 0``."""
    return config.misfire_grace or None


@dataclass(frozen=True)
class StartDecision:
    """What to do on start about the most recent scheduled run."""

    action: str                 # none | done | aborted | run | resume | missed
    week: str | None = None
    scheduled: datetime | None = None
    late: timedelta | None = None

    @property
    def run_now(self) -> bool:
        return self.action in ("run", "resume")


def decide_on_start(scheduled: datetime | None, now: datetime, grace: int | None,
                    send_status: str | None, week: str | None = None) -> StartDecision:
    """Decide from the last scheduled time, the clock, the grace and the ledger's status.

    ``send_status`` is the week's send status in the ledger (None: never started).
    """
    if scheduled is None:
        return StartDecision("none")
    late = now.astimezone(UTC) - scheduled.astimezone(UTC)
    if send_status == "done":
        action = "done"
    elif send_status == "aborted":
        action = "aborted"
    elif send_status is not None:
        action = "resume"  # started and interrupted: finish it, however late
    elif not grace or late <= timedelta(seconds=grace):
        action = "run"
    else:
        action = "missed"
    return StartDecision(action, week, scheduled, late)


# -- formatting for log lines -----------------------------------------------------------------

def format_time(t: datetime, timezone: str | None = None) -> str:
    local = t.astimezone(ZoneInfo(timezone)) if timezone else t
    return f"{local:%Y-%m-%d %H:%M:%S %Z} ({local:%a})"


def format_duration(delta: timedelta | float) -> str:
    seconds = int(delta.total_seconds() if isinstance(delta, timedelta) else delta)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "",
             f"{minutes}m" if minutes else "", f"{secs}s" if secs and not days else ""]
    return " ".join(p for p in parts if p) or "0s"


def counts_line(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts.get(state, 0)} {state}" for state in STATES)


def one_line(text: object) -> str:
    return re.sub(r"\s+", " ", str(text)).strip()


def redacted_config(config: Config) -> str:
    """The config as one log line; secrets (and a password in database_url) hidden."""
    from ..store.db import safe_url

    values = config.redacted()
    values["database_url"] = safe_url(config.database_url)
    return " ".join(f"{key}={value!r}" for key, value in values.items())


# -- the job ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class JobOutcome:
    """What one run of the job did (for tests and the log)."""

    week: str | None
    result: str        # sent | stopped | aborted | already-sent | aborted-before |
    #                    in-progress | error | not-started
    detail: str = ""


SendFunction = Callable[..., object]


class Worker:
    """The weekly job and the start-up check, with an injectable clock and send function."""

    def __init__(self, config: Config, *, send: SendFunction | None = None,
                 clock: Callable[[], datetime] | None = None):
        self.config = config
        self.trigger = build_trigger(config)
        self.clock = clock or (lambda: datetime.now(UTC))
        if send is None:
            from ..delivery.commands import send_edition

            send = send_edition
        self._send = send
        self._send_takes_stop = "stop_event" in inspect.signature(send).parameters
        self.stop_event = threading.Event()  # set: the worker is stopping; asks a send to stop
        self.current_week: str | None = None
        self._lock = threading.Lock()

    # -- ledger --------------------------------------------------------------------------

    def _find_send(self, week: str):
        from ..delivery import ledger
        from ..store.db import connect

        return ledger.find_send(connect(self.config.database_url), week)

    # -- start-up ------------------------------------------------------------------------

    def check_start(self, now: datetime | None = None) -> StartDecision:
        """Look at the most recent scheduled run; log what is to be done about it."""
        now = now or self.clock()
        scheduled = last_run_time(self.trigger, now)
        if scheduled is None:
            return StartDecision("none")
        week = edition_week(scheduled, self.config.timezone)
        try:
            send = self._find_send(week)
        except NewsletterError as exc:
            log.error("%s: cannot read the delivery ledger: %s", week, one_line(exc))
            return StartDecision("none", week, scheduled)
        decision = decide_on_start(scheduled, now, grace_seconds(self.config),
                                   send.status if send else None, week)
        due = format_time(scheduled, self.config.timezone)
        late = format_duration(decision.late or timedelta(0))
        if decision.action == "done":
            log.info("%s: last run, due %s, already sent; nothing to catch up", week, due)
        elif decision.action == "aborted":
            self._log_aborted(week, send)
        elif decision.action == "resume":
            log.info("%s: the send due %s is unfinished; resuming it now", week, due)
        elif decision.action == "run":
            log.info("%s: the run due %s (%s ago) was not sent; within misfire_grace (%s), "
                     "sending now", week, due, late, self._grace_text())
        elif decision.action == "missed":
            log.warning("%s: missed: the run due %s is %s late, more than misfire_grace (%s); "
                        "nothing sent. To send it by hand: newsletter send --week %s",
                        week, due, late, self._grace_text(), week)
        return decision

    def _grace_text(self) -> str:
        grace = grace_seconds(self.config)
        return format_duration(grace) if grace else "no limit"

    def _log_aborted(self, week: str, send) -> None:
        log.warning("%s: the send was aborted (%s); not retried automatically. Fix the cause, "
                    "then: newsletter send --week %s", week, one_line(send.abort_reason or "?"),
                    week)

    # -- the job -------------------------------------------------------------------------

    def run_due(self, now: datetime | None = None) -> JobOutcome:
        """The scheduled job: send the week of the most recent scheduled time."""
        now = now or self.clock()
        scheduled = last_run_time(self.trigger, now) or now
        return self.run_week(edition_week(scheduled, self.config.timezone), scheduled)

    def run_week(self, week: str, scheduled: datetime | None = None) -> JobOutcome:
        with self._lock:
            self.current_week = week
            try:
                return self._run_week(week, scheduled)
            except Exception as exc:  # a bug or an outage: keep the worker for next week
                log.error("%s: not sent: unexpected error %s: %s; the worker carries on%s",
                          week, type(exc).__name__, one_line(exc), self._next_text())
                log.debug("%s: traceback", week, exc_info=True)
                return JobOutcome(week, "error", one_line(exc))
            finally:
                self.current_week = None

    def _run_week(self, week: str, scheduled: datetime | None) -> JobOutcome:
        if self.stop_event.is_set():
            log.info("%s: not started: the worker is stopping", week)
            return JobOutcome(week, "not-started")
        try:
            send = self._find_send(week)
            if send is not None and send.status == "done":
                log.info("%s: already sent (finished %s); nothing to do", week,
                         _utc(send.finished_at))
                return JobOutcome(week, "already-sent")
            if send is not None and send.status == "aborted":
                self._log_aborted(week, send)
                return JobOutcome(week, "aborted-before", send.abort_reason or "")
            when = f" (scheduled {format_time(scheduled, self.config.timezone)})" \
                if scheduled else ""
            log.info("%s: sending%s", week, when)
            started = time.monotonic()
            result = self._call_send(week)
        except NewsletterError as exc:
            from ..delivery.ledger import AlreadyInProgress

            if isinstance(exc, AlreadyInProgress):
                log.warning("%s: skipped: %s", week, one_line(exc))
                return JobOutcome(week, "in-progress", one_line(exc))
            log.error("%s: not sent: %s; the worker carries on%s", week, one_line(exc),
                      self._next_text())
            return JobOutcome(week, "error", one_line(exc))
        if result is None:
            log.info("%s: already sent; nothing to do", week)
            return JobOutcome(week, "already-sent")
        return self._report(week, result, time.monotonic() - started)

    def _call_send(self, week: str):
        import sqlalchemy as sa

        kwargs = {"interactive": False}
        if self._send_takes_stop:
            kwargs["stop_event"] = self.stop_event
        try:
            return self._send(self.config, week, **kwargs)
        except sa.exc.IntegrityError:
            # Two workers opened the week's send at the same instant (PostgreSQL): the other
            # one's row is there now; join it.
            log.info("%s: another worker opened this send at the same moment; joining it",
                     week)
            return self._send(self.config, week, **kwargs)

    def _report(self, week: str, result, seconds: float) -> JobOutcome:
        counts = dict(result.counts)
        this_run = result.this_run.get("sent", 0)
        summary = f"{counts_line(counts)} ({this_run} sent by this run, {seconds:.1f}s)"
        if result.aborted:
            why = one_line(result.stopped).removeprefix("aborted: ")
            log.error("%s: aborted: %s; %s. Fix the cause, then: newsletter send --week %s",
                      week, why, summary, week)
            return JobOutcome(week, "aborted", one_line(result.stopped))
        if result.stopped:
            why = one_line(result.stopped).removeprefix("stopped: ")
            log.warning("%s: stopped: %s; %s; resumes on the next start (or: newsletter send "
                        "--week %s)", week, why, summary, week)
            return JobOutcome(week, "stopped", one_line(result.stopped))
        log.info("%s: sent: %s", week, summary)
        if counts.get("failed") or counts.get("unknown"):
            log.warning("%s: %d failed, %d unknown; see: newsletter status --week %s", week,
                        counts.get("failed", 0), counts.get("unknown", 0), week)
        return JobOutcome(week, "sent")

    def _next_text(self) -> str:
        upcoming = next_run_times(self.config, 1, self.clock() + timedelta(seconds=1))
        return f" (next run {format_time(upcoming[0])})" if upcoming else ""

    # -- APScheduler events ----------------------------------------------------------------

    def on_missed(self, event) -> None:
        scheduled = event.scheduled_run_time
        week = edition_week(scheduled, self.config.timezone)
        late = self.clock().astimezone(UTC) - scheduled.astimezone(UTC)
        log.warning("%s: missed: the run due %s started %s late, more than misfire_grace (%s); "
                    "nothing sent. To send it by hand: newsletter send --week %s", week,
                    format_time(scheduled, self.config.timezone), format_duration(late),
                    self._grace_text(), week)

    def on_max_instances(self, event) -> None:
        for scheduled in event.scheduled_run_times:
            week = edition_week(scheduled, self.config.timezone)
            log.info("%s: the schedule fired again (%s) while a send is still running; skipped",
                     week, format_time(scheduled, self.config.timezone))


def _utc(t: datetime | None) -> str:
    return f"{t:%Y-%m-%d %H:%M:%S} UTC" if t else "?"


# -- the long-running worker ------------------------------------------------------------------

def make_scheduler(worker: Worker, *, run_now: bool = False):
    """A BackgroundScheduler with the weekly job: one thread, coalesced, one at a time."""
    from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler

    config = worker.config
    scheduler = BackgroundScheduler(timezone=ZoneInfo(config.timezone),
                                    executors={"default": ThreadPoolExecutor(max_workers=1)})
    scheduler.add_listener(worker.on_missed, EVENT_JOB_MISSED)
    scheduler.add_listener(worker.on_max_instances, EVENT_JOB_MAX_INSTANCES)
    options = {}
    if run_now:
        options["next_run_time"] = worker.clock()
    scheduler.add_job(worker.run_due, trigger=worker.trigger, id=JOB_ID, name="weekly send",
                      coalesce=True, max_instances=1,
                      misfire_grace_time=grace_seconds(config), **options)
    return scheduler


def log_start(config: Config, worker: Worker, now: datetime, count: int = 3) -> None:
    log.info("worker starting: %s", redacted_config(config))
    upcoming = next_run_times(config, count, now)
    listed = ", ".join(f"{format_time(t)} -> {edition_week(t, config.timezone)}"
                       for t in upcoming)
    log.info("schedule %r in %s, misfire_grace %s; next runs: %s", config.schedule,
             config.timezone, worker._grace_text(), listed or "none")


def serve(config: Config, *, worker: Worker | None = None, install_signals: bool = True,
          stop: threading.Event | None = None) -> int:
    """Run until SIGTERM / SIGINT (or ``stop`` is set); return the exit status (0).

    The job runs in the scheduler's single pool thread; the main thread waits and handles
    signals. On the first signal the worker stops scheduling, asks a running send to stop
    through ``send_edition(..., stop_event=...)`` (the batches in flight are recorded, the rest
    stays pending; a send function without that parameter is waited for to its end) and exits
    once it has; a second signal exits at once (rows in flight become ``unknown``). Either way
    the send resumes on the next start.
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
    try:
        log_start(config, worker, worker.clock())
        decision = worker.check_start()
        if signals or stop.is_set():
            log.info("worker stopped (%s) before it started", signals[0] if signals else "stop")
            return 0
        scheduler = make_scheduler(worker, run_now=decision.run_now)
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
        elif worker._send_takes_stop:
            log.info("stopping (%s): asking the send of %s to stop cleanly", why, week)
        else:
            log.info("stopping (%s): waiting for the send of %s to finish (send %s again to "
                     "stop at once; it resumes on the next start)", why, week,
                     why if signals else "a signal")
        with contextlib.suppress(Exception):
            scheduler.shutdown(wait=True)
        log.info("worker stopped")
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
