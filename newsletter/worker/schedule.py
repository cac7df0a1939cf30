"""Schedule arithmetic: pure functions of the config and a ``now``, no clock of their own.

Which week a run sends
    The ISO week of the run's *scheduled* fire time in the configured time zone (a run that
    starts late, or a catch-up after a restart, still sends the week it was scheduled for).

The schedule
    Five fields are a standard crontab line (minute hour day-of-month month day-of-week),
    with crontab's weekday numbers (0 or 7 = Sunday, 1 = Monday); APScheduler 3 counts 0 as
    Monday, so numeric weekdays are translated to names before they reach it. Six fields put
    a *seconds* field first (``S M H DoM Mon DoW``): meant for tests and trying things out.
    As in APScheduler, day-of-month and day-of-week must both match (crontab fires on either).

Down at send time
    ``decide_on_start`` looks at the most recent scheduled time: within ``misfire_grace``
    seconds and not yet sent, send now; later, it was missed. A send that was started and
    interrupted is resumed however late (half the list already has it). ``misfire_grace = 0``
    means no limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from ..clock import utc_now
from ..config import Config
from ..delivery.states import SendStatus
from ..errors import ConfigError

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
        trigger = CronTrigger(**fields, timezone=ZoneInfo(config.timezone))
    except ValueError as exc:
        raise _bad_schedule(config.schedule, f"is not a valid cron expression ({exc})") from None
    # A date that no year has (31 February): a worker would wait for ever, sending nothing.
    # Without a year field, a schedule that fires at all fires within eight years (29 Feb).
    if trigger.get_next_fire_time(None, _EPOCH) is None:
        raise _bad_schedule(config.schedule, "never fires (no month has that day)")
    return trigger


_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


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
    now = now or utc_now()
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


class StartAction(StrEnum):
    """What the worker does on start about the most recent scheduled run."""

    NONE = "none"            # no run was scheduled yet (or the ledger cannot be read)
    DONE = "done"            # its week is sent
    ABORTED = "aborted"      # its send was aborted, cancelled or paused: left for a person
    CANCELLED = "cancelled"
    PAUSED = "paused"
    RESUME = "resume"        # its send was started and interrupted: finished, however late
    RUN = "run"              # not started, within misfire_grace: sent now
    MISSED = "missed"        # not started, later than misfire_grace: not sent


@dataclass(frozen=True)
class StartDecision:
    """What to do on start about the most recent scheduled run."""

    action: StartAction
    week: str | None = None
    scheduled: datetime | None = None
    late: timedelta | None = None

    @property
    def run_now(self) -> bool:
        return self.action in (StartAction.RUN, StartAction.RESUME)


def decide_on_start(scheduled: datetime | None, now: datetime, grace: int | None,
                    send_status: str | None, week: str | None = None) -> StartDecision:
    """Decide from the last scheduled time, the clock, the grace and the ledger's status.

    ``send_status`` is the week's send status in the ledger (None: never started).
    """
    if scheduled is None:
        return StartDecision(StartAction.NONE)
    late = now.astimezone(UTC) - scheduled.astimezone(UTC)
    if send_status == SendStatus.DONE:
        action = StartAction.DONE
    elif send_status in (SendStatus.ABORTED, SendStatus.CANCELLED, SendStatus.PAUSED):
        action = StartAction(send_status)  # left for a person
    elif send_status is not None:
        action = StartAction.RESUME  # started and interrupted: finish it, however late
    elif not grace or late <= timedelta(seconds=grace):
        action = StartAction.RUN
    else:
        action = StartAction.MISSED
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
