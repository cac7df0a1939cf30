"""A send's life: bound to the provider it started with, never started for nobody, and ended
for good by the operator (``send --cancel``) when it is no longer wanted."""

import dataclasses
import threading

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from newsletter.cli.main import cli
from newsletter.clock import utc_now
from newsletter.delivery import ledger
from newsletter.delivery.send import SendOptions, send_edition
from newsletter.devtools.fake_provider import FakeProvider
from newsletter.store.db import connect
from newsletter.store.tables import sends
from tests import ledger_helpers
from tests.seeding import readers, seed
from tests.sending import WEEK, make_config, send, states, stop_after_first_batch


@pytest.fixture
def fake():
    with FakeProvider(latency=0.002) as server:
        yield server


def env_of(config, **overrides) -> dict[str, str]:
    keys = ("provider", "provider_base_url", "provider_api_key", "secret_key", "database_url",
            "batch_size", "concurrency", "retry_delay")
    env = {f"NEWSLETTER_{k.upper()}": str(v) for k, v in dataclasses.asdict(config).items()
           if k in keys}
    env.update({f"NEWSLETTER_{k.upper()}": str(v) for k, v in overrides.items()})
    return env


def cli_run(*args, env):
    return CliRunner().invoke(cli, list(args), env=env)


def start_and_stop(project, database_url, fake, n=200):
    """A postmark send stopped after its first batches: sent to some, pending for the rest."""
    seed(database_url, readers(n))
    config = make_config(project, database_url, fake, batch_size=20, concurrency=1)
    stop = threading.Event()
    stop_after_first_batch(fake, stop)
    first = send(config, stop_event=stop)
    fake.on_accept = None
    assert first.stopped and 0 < first.counts["sent"] < n
    return config, first


# -- bound to its provider ------------------------------------------------------------------

def test_resuming_with_another_provider_is_refused_with_what_to_do(project, database_url,
                                                                    fake):
    config, first = start_and_stop(project, database_url, fake)
    before = states(database_url)
    result = cli_run("send", "--week", WEEK, env=env_of(config, provider="eml"))
    assert result.exit_code == 1
    line = result.output.strip()
    assert line.startswith("error: ") and "\n" not in line
    assert "started with postmark" in line and "eml" in line and "--cancel" in line
    assert not (project / "outbox" / WEEK).exists(), "nobody written as a file"
    assert states(database_url) == before, "and nobody recorded as sent"


def test_resuming_at_another_endpoint_is_refused(project, database_url, fake):
    config, _ = start_and_stop(project, database_url, fake)
    with FakeProvider() as elsewhere:
        result = cli_run("send", "--week", WEEK,
                         env=env_of(config, provider_base_url=elsewhere.base_url))
        assert result.exit_code == 1 and elsewhere.records == []
    assert fake.base_url in result.output and elsewhere.base_url in result.output


def test_the_same_provider_and_endpoint_resume(project, database_url, fake):
    config, _ = start_and_stop(project, database_url, fake)
    result = cli_run("send", "--week", WEEK, env=env_of(config))
    assert result.exit_code == 0, result.output
    assert len(fake.records) == 200 and len(set(fake.recipients())) == 200


# -- never started for nobody ---------------------------------------------------------------

def test_a_send_to_an_empty_list_refuses_to_start_and_records_nothing(project, database_url,
                                                                      fake):
    config = make_config(project, database_url, fake)
    result = cli_run("send", "--week", WEEK, env=env_of(config))
    assert result.exit_code == 1
    assert "no active subscribers" in result.output and "\n" not in result.output.strip()
    assert ledger.find_send(connect(database_url), WEEK) is None, "the week is not used up"
    added = cli_run("subscribers", "add", "jose@bücher.example", "--name", "José",
                    env=env_of(config))
    assert added.exit_code == 0, added.output
    again = cli_run("send", "--week", WEEK, env=env_of(config))
    assert again.exit_code == 0, again.output
    assert len(fake.records) == 1 and fake.records[0].to.endswith(
        "<jose@xn--bcher-kva.example>")


# -- ended for good by the operator -----------------------------------------------------------

def test_cancel_ends_an_unfinished_send_and_a_new_one_can_be_started(project, database_url,
                                                                     fake):
    config, first = start_and_stop(project, database_url, fake)
    sent_before = first.counts["sent"]
    env = env_of(config)
    cancelled = cli_run("send", "--week", WEEK, "--cancel", env=env)
    assert cancelled.exit_code == 0, cancelled.output
    assert f"{WEEK}: cancelled" in cancelled.output
    assert f"{sent_before} sent" in cancelled.output
    assert f"{200 - sent_before} cancelled" in cancelled.output
    assert set(states(database_url).values()) == {"sent", "cancelled"}

    status = cli_run("status", "--week", WEEK, env=env).output
    assert f"{WEEK}  cancelled  200 recipient(s)" in status
    assert f"{200 - sent_before} cancelled" in status

    worker_env = cli_run("send", "--week", WEEK, env=env)  # deliberately: a new send
    assert worker_env.exit_code == 0, worker_env.output
    assert f"{WEEK}: 200 sent" in worker_env.output
    engine = connect(database_url)
    with engine.connect() as conn:
        weeks = conn.execute(sa.select(sends.c.status).where(sends.c.week == WEEK)
                             .order_by(sends.c.id)).scalars().all()
    assert weeks == ["cancelled", "done"]
    status = cli_run("status", "--week", WEEK, env=env).output
    assert f"{WEEK}  done  200 recipient(s)" in status and "cancelled" in status


def test_cancel_needs_an_unfinished_send(project, database_url, fake):
    config = make_config(project, database_url, fake)
    env = env_of(config)
    nothing = cli_run("send", "--week", WEEK, "--cancel", env=env)
    assert nothing.exit_code == 1 and f"no send of {WEEK} to cancel" in nothing.output
    seed(database_url, readers(3))
    assert cli_run("send", "--week", WEEK, env=env).exit_code == 0
    finished = cli_run("send", "--week", WEEK, "--cancel", env=env)
    assert finished.exit_code == 1 and "finished" in finished.output
    assert cli_run("send", "--week", WEEK, "--cancel", "--dry-run", env=env).exit_code == 2


def test_an_empty_send_from_before_can_be_cancelled(project, database_url, fake):
    """Older versions recorded a send of nobody as done: the week seemed used up for good."""
    engine = connect(database_url)
    now = utc_now()
    with engine.begin() as conn:
        conn.execute(sends.insert().values(week=WEEK, content_hash="0" * 64, subject="s",
                                           provider="postmark", status="done", total=0,
                                           created_at=now, updated_at=now, finished_at=now))
    seed(database_url, readers(2))
    config = make_config(project, database_url, fake)
    assert cli_run("send", "--week", WEEK, "--cancel", env=env_of(config)).exit_code == 0
    again = cli_run("send", "--week", WEEK, env=env_of(config))
    assert again.exit_code == 0, again.output
    assert len(fake.records) == 2


def test_a_send_in_progress_cannot_be_cancelled(tmp_path, project, fake):
    database_url = f"sqlite:///{tmp_path / 'n.db'}"
    engine = seed(database_url, readers(5))
    config = make_config(project, database_url, fake)
    record, _ = ledger.open_send(engine, WEEK, "h" * 64, "Subject", "postmark")
    holder = ledger_helpers.register_worker(engine, record.id)
    try:
        result = cli_run("send", "--week", WEEK, "--cancel", env=env_of(config))
    finally:
        ledger_helpers.unregister_worker(engine, holder)
    assert result.exit_code == 1 and "in progress" in result.output
    assert ledger.find_send(engine, WEEK).status == "sending"


def test_after_a_cancel_the_next_send_is_a_new_one_to_everyone(project, database_url,
                                                                       fake):
    config, _ = start_and_stop(project, database_url, fake)
    assert cli_run("send", "--week", WEEK, "--cancel", env=env_of(config)).exit_code == 0
    status = ledger.find_send(connect(database_url), WEEK).status
    assert status == "cancelled"
    fresh = send_edition(config, WEEK, SendOptions(interactive=False))
    assert fresh.send.status == "done" and fresh.counts == {"sent": 200}
