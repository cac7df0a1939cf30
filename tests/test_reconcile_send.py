"""A send that asks the provider what it took: lost answers end exactly once in the same run,
a failing search leaves rows unknown and mails nobody twice, and ``send --reconcile`` (asking
only) and ``status`` say what was learnt.

Against the fake provider in this process, whose Postmark and Mailgun searches answer as the
providers document them. ``reconcile_settle`` is a fraction of a second, so "not found" is
trusted at once; the waits for it are the loop's own (``Reconciliation.next_ask``).
"""

import time
from collections import Counter

import pytest
from click.testing import CliRunner

from newsletter.cli.main import cli
from newsletter.devtools.fake_provider import FakeProvider, Faults
from newsletter.store.tables import subscribers
from tests.seeding import readers, seed
from tests.sending import WEEK, make_config, rows, send, states

# Real content: accented names, curly quotes, an IDN domain.
PEOPLE = {"jose@bücher.example": "José Ñúñez", "zoe@münchen.example": "Zoë Ångström",
          "rene@café.example": "René “Renny” Lévesque"}
SETTLE = 0.3


@pytest.fixture
def fake():
    with FakeProvider(latency=0.002) as server:
        yield server


def config_for(project, database_url, fake, provider="postmark", **overrides):
    overrides.setdefault("reconcile_settle", SETTLE)
    return make_config(project, database_url, fake, provider=provider, batch_size=10,
                       mailgun_domain="mg.bücher.example", **overrides)


def audience(database_url, n=40):
    engine = seed(database_url, [*PEOPLE, *readers(n - len(PEOPLE))])
    with engine.begin() as conn:
        for email, name in PEOPLE.items():
            conn.execute(subscribers.update().where(subscribers.c.email == email)
                         .values(name=name))


def received(fake) -> Counter:
    return Counter(r.to for r in fake.records)


def cli_env(database_url, fake, provider="postmark"):
    return {"NEWSLETTER_DATABASE_URL": database_url, "NEWSLETTER_SECRET_KEY": "s" * 32,
            "NEWSLETTER_PROVIDER": provider, "NEWSLETTER_PROVIDER_BASE_URL": fake.base_url,
            "NEWSLETTER_PROVIDER_API_KEY": "re_token_123456",
            "NEWSLETTER_RECONCILE_SETTLE": str(SETTLE)}


@pytest.mark.parametrize("provider", ["postmark", "mailgun"])
@pytest.mark.parametrize("step", ["drop_after", "slow_after"])
def test_a_lost_answer_is_found_at_the_provider_and_not_sent_again(project, database_url,
                                                                    fake, provider, step):
    audience(database_url)
    fake.faults = Faults(script=f"ok,{step}", slow_seconds=1.5)
    result = send(config_for(project, database_url, fake, provider))
    assert result.counts == {"sent": 40} and result.send.status == "done"
    assert result.reconciled.accepted == 10 and result.reconciled.not_accepted == 0
    assert max(received(fake).values()) == 1 and len(received(fake)) == 40, "everyone once"
    found = [r for r in rows(database_url).values() if r.reconciled == "accepted"]
    assert len(found) == 10 and all(r.message_id for r in found), \
        "each found row keeps the provider's message id"


@pytest.mark.parametrize("provider", ["postmark", "mailgun"])
def test_a_batch_the_provider_never_took_is_sent_in_the_same_run_once_settled(
        project, database_url, fake, provider):
    audience(database_url)
    fake.faults = Faults(script="ok,drop_before")
    result = send(config_for(project, database_url, fake, provider))
    assert result.counts == {"sent": 40} and result.send.status == "done"
    assert result.reconciled.not_accepted == 10
    assert max(received(fake).values()) == 1 and len(received(fake)) == 40, "everyone once"


def test_a_failing_search_leaves_rows_unknown_and_a_later_reconcile_resolves_them(
        project, database_url, fake):
    audience(database_url)
    # The batch's answer is lost, and every search request of this run fails.
    fake.faults = Faults(script="ok,drop_after", search_p500=1.0)
    result = send(config_for(project, database_url, fake))
    assert result.counts == {"sent": 30, "unknown": 10}
    assert result.reconciled.failed_lookups == 1 and result.reconciled.undecided == 10
    assert len(fake.records) == 40 and max(received(fake).values()) == 1, "nobody twice"
    status = CliRunner().invoke(cli, ["status", "--week", WEEK],
                                env=cli_env(database_url, fake)).output
    assert "--reconcile" in status and "10 recipient(s) may or may not" in status

    fake.faults = Faults()  # the search is back
    out = CliRunner().invoke(cli, ["send", "--week", WEEK, "--reconcile"],
                             env=cli_env(database_url, fake))
    assert out.exit_code == 0, out.output
    assert f"{WEEK}: asked postmark: 10 found sent, 0 found not sent, 0 still unknown" \
        in out.output
    assert set(states(database_url).values()) == {"sent"}
    assert len(fake.records) == 40, "asking mails nobody"
    status = CliRunner().invoke(cli, ["status", "--week", WEEK],
                                env=cli_env(database_url, fake)).output
    assert "reconciled  10 found accepted, 0 found not accepted (sent again)" in status


def test_reconcile_finds_what_was_never_taken_and_the_next_run_sends_it(project, database_url,
                                                                       fake):
    audience(database_url, 20)
    fake.faults = Faults(script="drop_before", search_p500=1.0)
    first = send(config_for(project, database_url, fake))
    assert first.counts == {"sent": 10, "unknown": 10}
    fake.faults = Faults()
    time.sleep(SETTLE)  # "not found" counts once the batch has settled, not before
    out = CliRunner().invoke(cli, ["send", "--week", WEEK, "--reconcile"],
                             env=cli_env(database_url, fake)).output
    assert "0 found sent, 10 found not sent, 0 still unknown" in out
    assert f"`newsletter send --week {WEEK}` sends to those found not sent" in out
    assert len(fake.records) == 10, "asking mails nobody"
    again = send(config_for(project, database_url, fake))
    assert again.counts == {"sent": 20}
    assert len(received(fake)) == 20 and max(received(fake).values()) == 1


def test_a_search_slow_to_index_is_waited_for_not_guessed(project, database_url, fake):
    audience(database_url, 20)
    # Messages show in the search only after the batch has settled: until then "not found"
    # means nothing; afterwards they are found and not resent.
    # (A settle long beside the delay: a loaded machine may take a while between claiming
    # the batch and the provider taking it, and the delay counts from the taking.)
    fake.faults = Faults(script="drop_after", index_delay=1.0)
    result = send(config_for(project, database_url, fake, reconcile_settle=4.0))
    assert result.counts == {"sent": 20}
    assert result.reconciled.accepted == 10 and result.reconciled.not_accepted == 0
    assert len(fake.records) == 20


def test_without_acceptance_events_sendgrids_unknowns_stay_unknown_and_are_named(
        project, database_url, fake):
    audience(database_url, 10)
    fake.faults = Faults(script="drop_after")
    first = send(config_for(project, database_url, fake, "sendgrid"))
    assert first.counts == {"unknown": 10}, "no `processed` event came: nothing to go by"
    out = CliRunner().invoke(cli, ["send", "--week", WEEK, "--reconcile"],
                             env=cli_env(database_url, fake, "sendgrid")).output
    assert "asked sendgrid: 0 found sent, 0 found not sent, 10 still unknown" in out
    assert "--retry-unknown" in out
    assert len(fake.records) == 10, "nobody twice"
    why = {r.error for r in rows(database_url).values()}
    assert len(why) == 1 and "'processed'" in why.pop(), "the row says what was missing"


def test_reconcile_says_when_the_provider_cannot_be_asked(project, database_url, tmp_path):
    audience(database_url, 5)
    env = {"NEWSLETTER_DATABASE_URL": database_url, "NEWSLETTER_SECRET_KEY": "s" * 32,
           "NEWSLETTER_PROVIDER": "eml", "NEWSLETTER_OUTBOX_DIR": str(tmp_path / "out")}
    assert CliRunner().invoke(cli, ["send", "--week", WEEK], env=env).exit_code == 0
    out = CliRunner().invoke(cli, ["send", "--week", WEEK, "--reconcile"], env=env)
    assert out.exit_code == 1, out.output
    assert "eml cannot be asked what it accepted" in out.output
    assert "--retry-unknown" in out.output and "Traceback" not in out.output


def test_reconcile_goes_with_week_only(project, database_url, fake):
    out = CliRunner().invoke(cli, ["send", "--week", WEEK, "--reconcile", "--dry-run"],
                             env=cli_env(database_url, fake))
    assert out.exit_code == 2 and "--reconcile goes with --week only" in out.output


def test_reconcile_of_a_week_never_sent_is_a_one_line_error(project, database_url, fake):
    audience(database_url, 3)
    result = CliRunner().invoke(cli, ["send", "--week", WEEK, "--reconcile"],
                                env=cli_env(database_url, fake, "postmark"))
    assert result.exit_code == 1
    assert result.output == f"error: {WEEK} has no send to reconcile\n"
    assert len(fake.records) == 0
