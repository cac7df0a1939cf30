"""The worker's schedule arithmetic and job, on a controlled clock: no real sleeping.

Sends go through the real ``send_edition`` and ledger (eml provider) where idempotency is the
point; a stand-in send function where only the worker's reaction matters.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from newsletter.cli.main import cli
from newsletter.config import load_config
from newsletter.delivery import ledger
from newsletter.delivery.ledger.sends import SendRecord
from newsletter.delivery.run_result import RunResult
from newsletter.delivery.send import cancel_send
from newsletter.delivery.states import StopKind, StopReason
from newsletter.errors import ConfigError
from newsletter.store.db import connect
from newsletter.worker.job import Worker
from newsletter.worker.schedule import (
    build_trigger,
    crontab_weekdays,
    decide_on_start,
    edition_week,
    fire_times,
    last_run_time,
    next_run_times,
)
from newsletter.worker.service import log_start, make_scheduler, serve

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
SAMPLE_WEEK = "2026-W47"
SECRET = "test-secret-key-0123456789"


def cfg(**overrides):
    """The sample config with overrides (values already valid: no re-validation needed)."""
    return dataclasses.replace(load_config(environ={}), **overrides)


def local(tz: ZoneInfo, *args, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=tz, fold=fold)


def utc(t: datetime) -> datetime:
    return t.astimezone(UTC)


# -- schedule parsing -------------------------------------------------------------------------

@pytest.mark.parametrize("field, expected", [
    ("*", "*"),
    ("mon", "mon"),
    ("mon-fri", "mon-fri"),
    ("1", "mon"),
    ("0", "sun"),
    ("7", "sun"),
    ("1-5", "mon,tue,wed,thu,fri"),
    ("5-7", "fri,sat,sun"),
    ("6-1", "mon,sat,sun"),
    ("*/2", "tue,thu,sat,sun"),
    ("1,3,5", "mon,wed,fri"),
    ("1/3", "mon,thu"),
    ("mon-3", "mon,tue,wed"),
])
def test_crontab_weekday_numbers_mean_what_they_mean_in_crontab(field, expected):
    assert crontab_weekdays(field) == expected


@pytest.mark.parametrize("schedule, weekday", [
    ("0 8 * * 1", "Monday"), ("0 8 * * mon", "Monday"), ("0 8 * * 0", "Sunday"),
    ("0 8 * * 7", "Sunday"), ("0 8 * * 5", "Friday"),
])
def test_the_trigger_fires_on_the_crontab_weekday(project, schedule, weekday):
    times = next_run_times(cfg(schedule=schedule), 3, datetime(2026, 11, 23, tzinfo=UTC))
    assert {f"{t:%A %H:%M}" for t in times} == {f"{weekday} 08:00"}


def test_a_sixth_field_in_front_is_seconds(project):
    config = cfg(schedule="*/20 * * * * *", timezone="UTC")
    times = next_run_times(config, 4, datetime(2026, 11, 23, 10, 0, 5, tzinfo=UTC))
    assert [f"{t:%H:%M:%S}" for t in times] == ["10:00:20", "10:00:40", "10:01:00", "10:01:20"]


@pytest.mark.parametrize("schedule", ["0 8 * *", "0 8 * * 9", "61 8 * * mon", "0 8 * * x-y",
                                      "0 8 * * */0", "0 8 * * mon 1 2"])
def test_a_bad_schedule_is_a_config_error_naming_the_key(project, schedule):
    with pytest.raises(ConfigError, match="config key 'schedule'"):
        build_trigger(cfg(schedule=schedule))


# -- weekly times across DST ------------------------------------------------------------------

def test_weekly_times_across_spring_and_autumn_changes_in_berlin(project):
    config = cfg(schedule="0 8 * * mon", timezone="Europe/Berlin")
    spring = next_run_times(config, 3, local(BERLIN, 2026, 3, 20))
    assert [t.isoformat() for t in spring] == [
        "2026-03-23T08:00:00+01:00", "2026-03-30T08:00:00+02:00", "2026-04-06T08:00:00+02:00"]
    assert utc(spring[1]) - utc(spring[0]) == timedelta(hours=167)  # a week less an hour
    autumn = next_run_times(config, 3, local(BERLIN, 2026, 10, 20))
    assert [t.isoformat() for t in autumn] == [
        "2026-10-26T08:00:00+01:00", "2026-11-02T08:00:00+01:00", "2026-11-09T08:00:00+01:00"]
    before = next_run_times(config, 1, local(BERLIN, 2026, 10, 13))[0]
    assert utc(autumn[0]) - utc(before) == timedelta(hours=169)  # a week and an hour
    assert [edition_week(t, config.timezone) for t in spring] == [
        "2026-W13", "2026-W14", "2026-W15"]


def test_weekly_times_across_spring_and_autumn_changes_in_new_york(project):
    config = cfg(schedule="0 8 * * mon", timezone="America/New_York")
    spring = next_run_times(config, 2, local(NEW_YORK, 2026, 3, 3))
    assert [t.isoformat() for t in spring] == ["2026-03-09T08:00:00-04:00",
                                               "2026-03-16T08:00:00-04:00"]
    before = next_run_times(config, 1, local(NEW_YORK, 2026, 2, 28))[0]
    assert before.isoformat() == "2026-03-02T08:00:00-05:00"
    assert utc(spring[0]) - utc(before) == timedelta(hours=167)
    autumn = next_run_times(config, 2, local(NEW_YORK, 2026, 10, 27))
    assert [t.isoformat() for t in autumn] == ["2026-11-02T08:00:00-05:00",
                                               "2026-11-09T08:00:00-05:00"]


def test_a_time_skipped_by_the_spring_change_fires_once_an_hour_later(project):
    config = cfg(schedule="30 2 * * sun", timezone="Europe/Berlin")
    times = next_run_times(config, 2, local(BERLIN, 2026, 3, 28))
    # 02:30 does not exist on 29 March: the run is at 03:30 CEST (01:30 UTC), once.
    assert [utc(t).isoformat() for t in times] == ["2026-03-29T01:30:00+00:00",
                                                   "2026-04-05T00:30:00+00:00"]


def test_the_week_is_that_of_the_scheduled_time_in_the_configured_zone():
    late_sunday = local(NEW_YORK, 2026, 11, 22, 23, 30)  # Monday 04:30 UTC: already W48 there
    assert edition_week(late_sunday, "America/New_York") == "2026-W47"
    assert edition_week(late_sunday, "UTC") == "2026-W48"


# -- the fall-back hour: two fires, one send --------------------------------------------------

FALL_BACK = [
    pytest.param("Europe/Berlin", "30 2 * * sun", (2026, 10, 24), "2026-W43", id="berlin"),
    pytest.param("America/New_York", "30 1 * * sun", (2026, 10, 31), "2026-W44",
                 id="new-york"),
]


@pytest.mark.parametrize("tz, schedule, day_before, week", FALL_BACK)
def test_the_fall_back_hour_fires_twice(project, tz, schedule, day_before, week):
    trigger = build_trigger(cfg(schedule=schedule, timezone=tz))
    start = datetime(*day_before, tzinfo=ZoneInfo(tz))
    fires = [t for t, _ in zip(fire_times(trigger, start), range(3), strict=False)]
    first, second, after = fires
    assert f"{first:%H:%M}" == f"{second:%H:%M}" and (first.fold, second.fold) == (0, 1)
    assert utc(second) - utc(first) == timedelta(hours=1)
    assert utc(after) - utc(second) == timedelta(days=7)
    assert edition_week(first, tz) == edition_week(second, tz) == week
    # Just after the second fire, the last run is the second one, not the first (fold-aware).
    assert last_run_time(trigger, second + timedelta(minutes=10)) == second


@pytest.fixture
def subscribed(project, database_url, monkeypatch):
    """The sample project, its subscribers imported; returns the number of active ones."""
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    result = CliRunner().invoke(cli, ["subscribers", "import", "subscribers/sample.csv"])
    assert result.exit_code == 0, result.output
    from newsletter.audience.lookup import iter_recipients

    return sum(1 for _ in iter_recipients(connect(database_url), status="active"))


def add_week(project, week: str) -> None:
    shutil.copytree(project / "items" / SAMPLE_WEEK, project / "items" / week)


def sent_files(project, week: str) -> int:
    return len(list((project / "outbox" / week).glob("*.eml")))


@pytest.mark.parametrize("tz, schedule, day_before, week", FALL_BACK)
def test_the_fall_back_double_fire_sends_once(project, subscribed, database_url, tz, schedule,
                                              day_before, week):
    add_week(project, week)
    config = cfg(schedule=schedule, timezone=tz, database_url=database_url)
    trigger = build_trigger(config)
    start = datetime(*day_before, tzinfo=ZoneInfo(tz))
    clock = [start]
    worker = Worker(config, clock=lambda: clock[0])
    outcomes = []
    for fire in [t for t, _ in zip(fire_times(trigger, start), range(2), strict=False)]:
        clock[0] = fire + timedelta(seconds=1)
        outcomes.append(worker.run_due())
    assert [(o.week, o.result) for o in outcomes] == [(week, "sent"), (week, "already-sent")]
    assert sent_files(project, week) == subscribed
    send = ledger.find_send(connect(database_url), week)
    assert send.status == "done" and send.total == subscribed


# -- restarts: within and past the grace ------------------------------------------------------

MONDAY_8 = local(BERLIN, 2026, 11, 23, 8, 0)  # "0 8 * * mon" -> 2026-W48


@pytest.fixture
def weekly(project, subscribed, database_url):
    add_week(project, "2026-W48")
    return cfg(schedule="0 8 * * mon", timezone="Europe/Berlin", database_url=database_url,
               misfire_grace=6 * 3600)


def test_a_restart_within_the_grace_sends_then_a_second_restart_does_nothing(
        project, subscribed, weekly, caplog):
    caplog.set_level(logging.INFO, logger="newsletter.worker")
    now = MONDAY_8 + timedelta(hours=2)
    worker = Worker(weekly, clock=lambda: now)
    decision = worker.check_start()
    assert (decision.action, decision.week, decision.scheduled) == ("run", "2026-W48", MONDAY_8)
    assert "within misfire_grace (6h), sending now" in caplog.text
    assert worker.run_due().result == "sent"
    assert sent_files(project, "2026-W48") == subscribed

    later = MONDAY_8 + timedelta(hours=3)
    again = Worker(weekly, clock=lambda: later)
    assert again.check_start().action == "done"
    assert again.run_due().result == "already-sent"
    assert sent_files(project, "2026-W48") == subscribed


def test_a_restart_past_the_grace_logs_the_missed_edition_and_sends_nothing(
        project, weekly, database_url, caplog):
    caplog.set_level(logging.INFO, logger="newsletter.worker")
    now = MONDAY_8 + timedelta(hours=6, seconds=1)
    decision = Worker(weekly, clock=lambda: now).check_start()
    assert (decision.action, decision.week) == ("missed", "2026-W48")
    assert not decision.run_now
    line = next(r for r in caplog.records if "missed" in r.message).message
    assert "6h 1s late" in line and "newsletter send --week 2026-W48" in line
    assert ledger.find_send(connect(database_url), "2026-W48") is None
    assert sent_files(project, "2026-W48") == 0


def test_the_grace_is_measured_from_the_most_recent_run_not_an_older_one(project, weekly):
    # A week later, the run due is the next Monday's (W49), not the missed W48.
    now = MONDAY_8 + timedelta(days=7, minutes=5)
    decision = Worker(weekly, clock=lambda: now).check_start()
    assert (decision.action, decision.week) == ("run", "2026-W49")


def test_an_interrupted_send_is_resumed_on_start_however_late(project, weekly, database_url):
    engine = connect(database_url)
    ledger.open_send(engine, "2026-W48", "somehash", "subject", "eml")
    now = MONDAY_8 + timedelta(days=2)
    assert Worker(weekly, clock=lambda: now).check_start().action == "resume"


def test_an_aborted_send_is_left_for_a_person(project, weekly, database_url, caplog):
    engine = connect(database_url)
    send, _ = ledger.open_send(engine, "2026-W48", "somehash", "subject", "eml")
    ledger.finish(engine, send.id, aborted="aborted: postmark: bad token")
    calls = []
    worker = Worker(weekly, send=lambda *a, **k: calls.append(a),
                    clock=lambda: MONDAY_8 + timedelta(minutes=1))
    assert worker.check_start().action == "aborted"
    assert worker.run_due().result == "aborted-before"
    assert calls == []
    assert "not retried automatically" in caplog.text
    assert "newsletter send --week 2026-W48" in caplog.text


@pytest.mark.parametrize("status, late_hours, grace, action", [
    (None, 0, 3600, "run"), (None, 1, 3600, "run"), (None, 1.01, 3600, "missed"),
    (None, 500, None, "run"), ("sending", 500, 3600, "resume"), ("done", 0, 3600, "done"),
    ("aborted", 0, 3600, "aborted"),
])
def test_decide_on_start(status, late_hours, grace, action):
    now = MONDAY_8 + timedelta(hours=late_hours)
    assert decide_on_start(MONDAY_8, now, grace, status).action == action
    assert decide_on_start(None, now, grace, status).action == "none"


def test_last_run_time(project):
    trigger = build_trigger(cfg(schedule="0 8 * * mon", timezone="Europe/Berlin"))
    assert last_run_time(trigger, MONDAY_8) == MONDAY_8
    assert last_run_time(trigger, MONDAY_8 - timedelta(microseconds=1)) == \
        MONDAY_8 - timedelta(days=7)
    every_second = build_trigger(cfg(schedule="* * * * * *", timezone="UTC"))
    now = datetime(2026, 11, 23, 10, 0, 5, 500000, tzinfo=UTC)
    assert last_run_time(every_second, now) == datetime(2026, 11, 23, 10, 0, 5, tzinfo=UTC)
    yearly = build_trigger(cfg(schedule="0 0 29 2 *", timezone="UTC"))  # leap days only
    assert last_run_time(yearly, now) == datetime(2024, 2, 29, tzinfo=UTC)


# -- a bad edition at send time ---------------------------------------------------------------

def test_a_missing_edition_is_logged_nothing_sent_and_the_worker_carries_on(
        project, weekly, database_url, caplog):
    caplog.set_level(logging.INFO, logger="newsletter.worker")
    shutil.rmtree(project / "items" / "2026-W48")
    clock = [MONDAY_8 + timedelta(seconds=2)]
    worker = Worker(weekly, clock=lambda: clock[0])
    outcome = worker.run_due()
    assert (outcome.week, outcome.result) == ("2026-W48", "error")
    line = next(r for r in caplog.records if r.levelno == logging.ERROR).message
    assert line.startswith("2026-W48: not sent: no folder for week 2026-W48: ")
    assert str(project / "items" / "2026-W48") in line
    assert "the worker carries on (next run 2026-11-30 08:00:00 CET (Mon))" in line
    assert ledger.find_send(connect(database_url), "2026-W48") is None
    assert not (project / "outbox" / "2026-W48").exists()

    add_week(project, "2026-W49")  # the next week's edition is there: it goes out
    clock[0] = MONDAY_8 + timedelta(days=7, seconds=2)
    assert worker.run_due().result == "sent"


def test_an_invalid_item_is_logged_with_the_file_at_fault(project, weekly, caplog):
    item = sorted((project / "items" / "2026-W48").glob("0*.md"))[0]
    item.write_text(item.read_text().replace("title:", "titel:", 1))
    worker = Worker(weekly, clock=lambda: MONDAY_8 + timedelta(seconds=2))
    assert worker.run_due().result == "error"
    errors = [r.message for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and str(item) in errors[0]


# -- the job's other outcomes, with a stand-in send -------------------------------------------

def fake_result(week="2026-W48", stopped=None, sent=6):
    send = SendRecord(1, week, "c" * 64, "sending" if stopped else "done", sent, MONDAY_8,
                      None, None, provider="eml")
    return RunResult(send, {"sent": sent}, Counter(sent=sent), stopped)


def test_a_send_already_in_progress_elsewhere_is_skipped(project, weekly, caplog):
    def busy(config, week, options, **kwargs):
        raise ledger.AlreadyInProgress("a send of this edition is already in progress")

    worker = Worker(weekly, send=busy, clock=lambda: MONDAY_8)
    assert worker.run_due().result == "in-progress"
    assert "2026-W48: skipped: a send of this edition is already in progress" in caplog.text




def test_an_unexpected_error_is_one_line_and_the_worker_carries_on(project, weekly, caplog):
    def broken(config, week, options, **kwargs):
        raise RuntimeError("disk on fire\nsecond line")

    worker = Worker(weekly, send=broken, clock=lambda: MONDAY_8)
    outcome = worker.run_due()
    assert outcome.result == "error"
    errors = [r.message for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == ["2026-W48: not sent: unexpected error RuntimeError: disk on fire second "
                      "line; the worker carries on (next run 2026-11-30 08:00:00 CET (Mon))"]


def test_a_send_aborted_by_the_provider_is_reported_with_the_command(project, weekly, caplog):
    def refused(config, week, options, **kwargs):
        return fake_result(stopped=StopReason(StopKind.ABORTED, "postmark: bad token"), sent=0)

    outcome = Worker(weekly, send=refused, clock=lambda: MONDAY_8).run_due()
    assert (outcome.result, outcome.detail) == ("aborted", "aborted: postmark: bad token")
    errors = [r.message for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith("2026-W48: aborted: postmark: bad token; 0 sent, 0 failed")
    assert errors[0].endswith("Fix the cause, then: newsletter send --week 2026-W48")


def test_the_send_gets_the_stop_event_when_it_takes_one(project, weekly, caplog):
    seen = {}

    def stoppable(config, week, options, *, stop_event):
        seen.update(interactive=options.interactive, stop_event=stop_event)
        return fake_result(stopped=StopReason(StopKind.SHUTDOWN, "interrupted by the worker"))

    worker = Worker(weekly, send=stoppable, clock=lambda: MONDAY_8)
    assert worker.run_due().result == "stopped"
    assert seen == {"interactive": False, "stop_event": worker.stop_event}
    assert "resumes on the next start" in caplog.text




def test_no_send_starts_once_the_worker_is_stopping(project, weekly):
    calls = []
    worker = Worker(weekly, send=lambda *a, **k: calls.append(a), clock=lambda: MONDAY_8)
    worker.stop_event.set()
    assert worker.run_due().result == "not-started"
    assert calls == []


# -- the scheduler and the main loop ----------------------------------------------------------

def test_the_job_is_coalesced_single_and_has_the_grace(project, weekly):
    scheduler = make_scheduler(Worker(weekly))
    job = scheduler.get_job("weekly-send")
    assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, 6 * 3600)
    assert str(job.trigger.timezone) == "Europe/Berlin"
    unlimited = make_scheduler(Worker(dataclasses.replace(weekly, misfire_grace=0)))
    assert unlimited.get_job("weekly-send").misfire_grace_time is None


def test_a_misfire_while_running_is_logged_with_the_command(project, weekly, caplog):
    worker = Worker(weekly, clock=lambda: MONDAY_8 + timedelta(hours=7))
    worker.on_missed(SimpleNamespace(scheduled_run_time=MONDAY_8))
    assert "2026-W48: missed: the run due 2026-11-23 08:00:00 CET (Mon) started 7h late" \
        in caplog.text
    assert "newsletter send --week 2026-W48" in caplog.text


def test_the_start_log_hides_secrets(project, caplog):
    caplog.set_level(logging.INFO, logger="newsletter.worker")
    config = cfg(secret_key="s3cr3t-signing-key", provider_api_key="pm-token-123",
                 smtp_password="hunter2", aws_secret_access_key="aws-secret-xyz",
                 database_url="postgresql://app:db-password@db.example/news")
    log_start(config, Worker(config), datetime(2026, 11, 23, tzinfo=UTC))
    text = caplog.text
    for secret in ("s3cr3t-signing-key", "pm-token-123", "hunter2", "aws-secret-xyz",
                   "db-password"):
        assert secret not in text
    assert "secret_key='(set)'" in text and "schedule '0 8 * * mon' in Europe/Berlin" in text
    assert "next runs: 2026-11-23 08:00:00 CET (Mon) -> 2026-W48, 2026-11-30" in text
    assert all("\n" not in r.getMessage() for r in caplog.records)


def run_serve(config, worker):
    stop = threading.Event()
    status = []
    thread = threading.Thread(
        target=lambda: status.append(serve(config, worker=worker, install_signals=False,
                                           stop=stop)))
    thread.start()
    return stop, status, thread


def test_stopping_asks_a_running_send_to_stop_and_exits_cleanly(project, weekly, caplog):
    caplog.set_level(logging.INFO, logger="newsletter.worker")
    started = threading.Event()

    def slow(config, week, options, *, stop_event):
        started.set()
        assert stop_event.wait(10), "the worker never asked the send to stop"
        return fake_result(stopped=StopReason(StopKind.SHUTDOWN, "interrupted by the worker"))

    config = dataclasses.replace(weekly, misfire_grace=0)  # catch up whatever is due: now
    stop, status, thread = run_serve(config, Worker(config, send=slow))
    assert started.wait(10)
    stop.set()
    thread.join(10)
    assert status == [0]
    assert "asking the send of" in caplog.text and "worker stopped" in caplog.text




# -- the command line -------------------------------------------------------------------------

def test_worker_next_prints_the_next_run_times_and_exits(project):
    result = CliRunner().invoke(cli, ["worker", "--next", "5"],
                                env={"NEWSLETTER_SCHEDULE": "0 8 * * 1"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 5
    stamps = [datetime.fromisoformat(line.split()[0]) for line in lines]
    assert stamps == sorted(stamps) and stamps[0] > datetime.now(UTC)
    assert all(f"{t.astimezone(BERLIN):%a %H:%M}" == "Mon 08:00" for t in stamps)
    assert all(line.split()[3] == edition_week(t, "Europe/Berlin")
               for line, t in zip(lines, stamps, strict=True))


def test_worker_with_a_bad_schedule_is_one_line_and_exit_1(project):
    result = CliRunner().invoke(cli, ["worker", "--next", "1"],
                                env={"NEWSLETTER_SCHEDULE": "0 8 * * 8"})
    assert result.exit_code == 1
    assert result.output.strip().startswith("error: config key 'schedule'")


# -- schedules that never fire, and the first run ---------------------------------------------

@pytest.mark.parametrize("schedule", ["0 8 31 2 *", "0 8 30 2 *", "0 0 31 4 *"])
def test_a_schedule_that_never_fires_is_refused(project, schedule):
    with pytest.raises(ConfigError, match="never fires"):
        build_trigger(cfg(schedule=schedule))
    result = CliRunner().invoke(cli, ["worker"], env={"NEWSLETTER_SCHEDULE": schedule})
    assert result.exit_code == 1
    assert result.output.startswith("error: config key 'schedule'") and "never fires" in \
        result.output


def test_the_first_run_is_computed_from_the_same_now_as_the_start_check(project, weekly):
    """A fire time after the start-up check but before the scheduler starts is the
    scheduler's first run, not lost between the two."""
    from newsletter.worker.service import JOB_ID

    now = MONDAY_8 - timedelta(seconds=1)
    worker = Worker(weekly, clock=lambda: now)
    decision = worker.check_start(now)
    assert decision.action == "missed" and decision.week == "2026-W47"  # last week's
    scheduler = make_scheduler(worker, now=now, run_now=decision.run_now)
    scheduler.start(paused=True)
    try:
        assert scheduler.get_job(JOB_ID).next_run_time == MONDAY_8
    finally:
        scheduler.shutdown(wait=False)


def test_serve_takes_the_time_once_for_the_check_and_the_scheduler(project, weekly):
    calls = []

    def clock():
        calls.append(1)
        return MONDAY_8 - timedelta(seconds=1)

    stop = threading.Event()
    stop.set()  # stops as soon as it is up
    worker = Worker(weekly, send=lambda *a, **k: None, clock=clock)
    assert serve(weekly, worker=worker, install_signals=False, stop=stop) == 0
    assert len(calls) == 1


def test_a_cancelled_send_is_left_for_a_person(project, weekly, database_url, caplog):
    engine = connect(database_url)
    send, _ = ledger.open_send(engine, "2026-W48", "somehash", "subject", "eml")
    cancel_send(engine, "2026-W48")
    calls = []
    worker = Worker(weekly, send=lambda *a, **k: calls.append(a),
                    clock=lambda: MONDAY_8 + timedelta(minutes=1))
    assert worker.check_start().action == "cancelled"
    assert worker.run_due().result == "cancelled-before"
    assert calls == []
    assert "cancelled" in caplog.text and "newsletter send --week 2026-W48" in caplog.text
