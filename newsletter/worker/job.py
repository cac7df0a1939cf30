"""The weekly job: what one scheduled run does (send the week, or log why not), and what the
worker does about the most recent scheduled run when it starts.

Idempotency
    Every run asks the delivery ledger first. A week already sent is a no-op, an aborted or
    cancelled one is left for a person, one being sent elsewhere is shared (PostgreSQL) or
    skipped (SQLite: AlreadyInProgress). So the fall-back hour's double fire, a restart or a
    second worker never start an edition twice. A new week is checked first (``newsletter
    check``); an edition with errors is not sent.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from ..clock import utc_now
from ..config import Config
from ..delivery.ledger.sends import SendRecord
from ..delivery.run_result import RunResult
from ..delivery.states import SendStatus, StopKind
from ..errors import NewsletterError
from ..logs import about
from .schedule import (
    StartAction,
    StartDecision,
    build_trigger,
    decide_on_start,
    edition_week,
    format_duration,
    format_time,
    grace_seconds,
    last_run_time,
    next_run_times,
)

log = logging.getLogger("newsletter.worker")

def one_line(text: object) -> str:
    return re.sub(r"\s+", " ", str(text)).strip()


def redacted_config(config: Config) -> str:
    """The config as one log line; secrets (and every password in database_url) hidden."""
    values = config.redacted()  # database_url through store.db.safe_url
    return " ".join(f"{key}={value!r}" for key, value in values.items())



# -- the job ----------------------------------------------------------------------------------

class JobResult(StrEnum):
    """What one run of the job came to."""

    SENT = "sent"                          # the send is done
    STOPPED = "stopped"                    # interrupted, or the worker stopping: resumable
    ABORTED = "aborted"                    # this run aborted the send
    PAUSED = "paused"                      # the brake paused it during this run
    WAITING = "waiting"                    # the canary is out: the rest goes when it ends
    ALREADY_SENT = "already-sent"          # nothing to do
    ABORTED_BEFORE = "aborted-before"      # left for a person, as the ledger has it
    CANCELLED_BEFORE = "cancelled-before"
    PAUSED_BEFORE = "paused-before"
    IN_PROGRESS = "in-progress"            # another sender has it (SQLite)
    ERROR = "error"                        # not sent: the log says why
    NOT_STARTED = "not-started"            # the worker was stopping


@dataclass(frozen=True)
class JobOutcome:
    """What one run of the job did (for tests and the log)."""

    week: str | None
    result: JobResult
    detail: str = ""


# send_edition's shape: (config, week, options, *, stop_event) -> the run, or None.
SendFunction = Callable[..., RunResult | None]


class Worker:
    """The weekly job and the start-up check, with an injectable clock and send function."""

    def __init__(self, config: Config, *, send: SendFunction | None = None,
                 clock: Callable[[], datetime] | None = None):
        self.config = config
        self.trigger = build_trigger(config)
        self.clock = clock or utc_now
        self._check = None  # the preflight report a new send must pass (the real send only)
        if send is None:
            from ..delivery.send import send_edition
            from ..preflight.verdicts import check_before_send

            send, self._check = send_edition, check_before_send
        self._send = send
        self.scheduler = None   # set by make_scheduler: where a canary's resume is scheduled
        self.resumes: dict[str, datetime] = {}  # week -> when its canary wait ends
        self.stop_event = threading.Event()  # set: the worker is stopping; asks a send to stop
        self.current_week: str | None = None
        self._lock = threading.Lock()

    # -- ledger --------------------------------------------------------------------------

    def _find_send(self, week: str) -> SendRecord | None:
        from ..delivery import ledger
        from ..store.db import connect

        return ledger.find_send(connect(self.config.database_url), week)

    # -- start-up ------------------------------------------------------------------------

    def check_start(self, now: datetime | None = None) -> StartDecision:
        """Look at the most recent scheduled run; log what is to be done about it."""
        now = now or self.clock()
        scheduled = last_run_time(self.trigger, now)
        if scheduled is None:
            return StartDecision(StartAction.NONE)
        week = edition_week(scheduled, self.config.timezone)
        try:
            send = self._find_send(week)
        except NewsletterError as exc:
            log.error("%s: cannot read the delivery ledger: %s", week, one_line(exc))
            return StartDecision(StartAction.NONE, week, scheduled)
        decision = decide_on_start(scheduled, now, grace_seconds(self.config),
                                   send.status if send else None, week)
        due = format_time(scheduled, self.config.timezone)
        late = format_duration(decision.late or timedelta(0))
        action = decision.action
        if action is StartAction.DONE:
            log.info("%s: last run, due %s, already sent; nothing to catch up", week, due)
        elif action is StartAction.ABORTED and send is not None:
            self._log_aborted(week, send)
        elif action is StartAction.CANCELLED:
            self._log_cancelled(week)
        elif action is StartAction.PAUSED and send is not None:
            self._log_paused(week, send)
        elif action is StartAction.RESUME:
            log.info("%s: the send due %s is unfinished; resuming it now", week, due)
        elif action is StartAction.RUN:
            log.info("%s: the run due %s (%s ago) was not sent; within misfire_grace (%s), "
                     "sending now", week, due, late, self.grace_text())
        elif action is StartAction.MISSED:
            log.warning("%s: missed: the run due %s is %s late, more than misfire_grace (%s); "
                        "nothing sent. To send it by hand: newsletter send --week %s",
                        week, due, late, self.grace_text(), week)
        return decision

    def grace_text(self) -> str:
        grace = grace_seconds(self.config)
        return format_duration(grace) if grace else "no limit"

    def _log_cancelled(self, week: str) -> None:
        log.warning("%s: the send was cancelled; not restarted automatically. To send the week "
                    "anew: newsletter send --week %s", week, week)

    def _log_paused(self, week: str, send: SendRecord) -> None:
        log.warning("%s: paused by the brake (%s); not resumed automatically. Look into it "
                    "(newsletter status --week %s), then: newsletter send --week %s "
                    "--resume-paused", week, one_line(send.abort_reason or "?"), week, week)

    def _log_aborted(self, week: str, send: SendRecord) -> None:
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
        # Every line of the run names its week (newsletter.logs), the send's own lines too.
        with self._lock, about(week):
            self.current_week = week
            try:
                return self._run_week(week, scheduled)
            except Exception as exc:  # a bug or an outage: keep the worker for next week
                log.error("%s: not sent: unexpected error %s: %s; the worker carries on%s",
                          week, type(exc).__name__, one_line(exc), self._next_text())
                log.debug("%s: traceback", week, exc_info=True)
                return JobOutcome(week, JobResult.ERROR, one_line(exc))
            finally:
                self.current_week = None

    def _run_week(self, week: str, scheduled: datetime | None) -> JobOutcome:
        if self.stop_event.is_set():
            log.info("%s: not started: the worker is stopping", week)
            return JobOutcome(week, JobResult.NOT_STARTED)
        try:
            send = self._find_send(week)
            if send is not None and send.status == SendStatus.DONE:
                log.info("%s: already sent (finished %s); nothing to do", week,
                         _utc(send.finished_at))
                return JobOutcome(week, JobResult.ALREADY_SENT)
            if send is not None and send.status == SendStatus.ABORTED:
                self._log_aborted(week, send)
                return JobOutcome(week, JobResult.ABORTED_BEFORE, send.abort_reason or "")
            if send is not None and send.status == SendStatus.CANCELLED:
                self._log_cancelled(week)
                return JobOutcome(week, JobResult.CANCELLED_BEFORE)
            if send is not None and send.status == SendStatus.PAUSED:
                self._log_paused(week, send)
                return JobOutcome(week, JobResult.PAUSED_BEFORE, send.abort_reason or "")
            when = f" (scheduled {format_time(scheduled, self.config.timezone)})" \
                if scheduled else ""
            log.info("%s: sending%s", week, when)
            started = time.monotonic()
            result = self._call_send(week)
        except NewsletterError as exc:
            from ..delivery.ledger import AlreadyInProgress

            if isinstance(exc, AlreadyInProgress):
                log.warning("%s: skipped: %s", week, one_line(exc))
                return JobOutcome(week, JobResult.IN_PROGRESS, one_line(exc))
            log.error("%s: not sent: %s; the worker carries on%s", week, one_line(exc),
                      self._next_text())
            return JobOutcome(week, JobResult.ERROR, one_line(exc))
        if result is None:
            log.info("%s: already sent; nothing to do", week)
            return JobOutcome(week, JobResult.ALREADY_SENT)
        return self._report(week, result, time.monotonic() - started)

    def _call_send(self, week: str) -> RunResult | None:
        from ..delivery.send import SendOptions

        options = SendOptions(interactive=False, check=self._check)
        return self._send(self.config, week, options, stop_event=self.stop_event)

    def _report(self, week: str, result: RunResult, seconds: float) -> JobOutcome:
        summary = result.summary(seconds)
        stopped = result.stopped
        if stopped is None:
            log.info("%s: sent: %s", week, summary)
            if result.note:  # an abort that came with the last batch
                log.warning("%s: %s", week, one_line(result.note))
            for hint in result.next_steps():  # failed or unknown rows: what a person can do
                log.warning("%s: %s", week, hint)
            return JobOutcome(week, JobResult.SENT)
        if stopped.kind is StopKind.ABORTED:
            log.error("%s: aborted: %s; %s. Fix the cause, then: newsletter send --week %s",
                      week, one_line(stopped.detail), summary, week)
            return JobOutcome(week, JobResult.ABORTED, one_line(stopped))
        if stopped.kind is StopKind.PAUSED:
            log.error("%s: %s; %s. Look into it (newsletter status --week %s), then: "
                      "newsletter send --week %s --resume-paused", week, one_line(stopped),
                      summary, week, week)
            return JobOutcome(week, JobResult.PAUSED, one_line(stopped))
        if stopped.kind is StopKind.WAITING:
            log.info("%s: %s; %s; the rest goes out then", week, one_line(stopped.detail),
                     summary)
            self._resume_at(week, stopped.until)
            return JobOutcome(week, JobResult.WAITING, one_line(stopped.detail))
        why = one_line(stopped.detail).removeprefix("stopped: ")
        log.warning("%s: stopped: %s; %s; resumes on the next start (or: newsletter send "
                    "--week %s)", week, why, summary, week)
        return JobOutcome(week, JobResult.STOPPED, one_line(stopped))

    def _resume_at(self, week: str, when: datetime | None) -> None:
        """Run the week's send again when its canary wait ends."""
        if when is None:
            return
        self.resumes[week] = when
        if self.scheduler is not None:
            self.scheduler.add_job(self.run_week, trigger="date", run_date=when, args=[week],
                                   id=f"canary-{week}", name=f"{week} after its canary",
                                   replace_existing=True, misfire_grace_time=None)

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
                    self.grace_text(), week)

    def on_max_instances(self, event) -> None:
        for scheduled in event.scheduled_run_times:
            week = edition_week(scheduled, self.config.timezone)
            log.info("%s: the schedule fired again (%s) while a send is still running; skipped",
                     week, format_time(scheduled, self.config.timezone))


def _utc(t: datetime | None) -> str:
    return f"{t:%Y-%m-%d %H:%M:%S} UTC" if t else "?"
