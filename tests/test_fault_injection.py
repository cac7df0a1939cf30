"""Random faults on every request and random kills, then resumes until the send is done.

Each seed draws a scenario: rates of 429s, 5xx, connections dropped before or after the
provider accepted a batch, answers slower than the client's timeout, batch size, concurrency,
and the points at which the sender dies. A kill is the ledger refusing every further write in
the middle of a run (what ``kill -9`` leaves: batches with the provider and nothing recorded
about them), then the run's requests cancelled. The property, whatever the draw:

- Resend (idempotency keys) and Postmark (none, but an outbound search that shows what it
  accepted): every active subscriber receives the edition exactly once, and the ledger says
  ``sent`` for each.
"""

from __future__ import annotations

import random
from collections import Counter

import httpx
import pytest

from newsletter.delivery.send import SendOptions, send_edition
from newsletter.devtools.fake_provider import FakeProvider, Faults
from newsletter.providers._http import RetryPolicy
from tests.seeding import readers, seed
from tests.sending import WEEK, guarded, make_config, send_deps, states

N = 240
MAX_RUNS = 30

pytestmark = pytest.mark.slow


class Killed(BaseException):
    """The sender's death: not an error anything may catch and record."""


class DyingBook:
    """A ledger that works for ``records`` recordings, then is gone (every call raises)."""

    def __init__(self, book, records: int):
        self._book = book
        self._left = records

    def __getattr__(self, name):
        attribute = getattr(self._book, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            if self._left <= 0:
                raise Killed
            if name == "record":
                self._left -= 1
            return attribute(*args, **kwargs)

        return call


def scenario(seed_value: int) -> tuple[Faults, dict, list[int]]:
    rng = random.Random(seed_value)
    faults = Faults(p429=rng.uniform(0, 0.5), p500=rng.uniform(0, 0.2),
                    p_drop_before=rng.uniform(0, 0.2), p_drop_after=rng.uniform(0, 0.25),
                    p_slow_after=rng.uniform(0, 0.1), slow_seconds=0.4, retry_after=0.001)
    knobs = {"batch_size": rng.choice([7, 20, 50]), "concurrency": rng.choice([1, 2, 4])}
    batches = N // knobs["batch_size"]
    # Each run dies after this many recordings: early enough that it dies before it is done.
    kills = [rng.randint(1, max(1, batches // 3)) for _ in range(rng.randint(1, 3))]
    return faults, knobs, kills


def run_until_done(config, fake, kills: list[int], **options) -> list:
    results = []
    for attempt in range(MAX_RUNS):
        wrap = None
        if attempt < len(kills):
            def wrap(book, records=kills[attempt]):
                return DyingBook(book, records)
        try:
            client = {"retry": RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.005),
                      "timeout": httpx.Timeout(0.15)}
            result = guarded(send_edition, config, WEEK,
                             SendOptions(interactive=False, **options),
                             deps=send_deps(wrap_book=wrap, client=client))
        except Killed:
            results.append("killed")
            continue
        results.append(result)
        if result is None or (not result.stopped and result.send.status == "done"):
            return results
    raise AssertionError(f"not done after {MAX_RUNS} runs: {results[-3:]}")


SEEDS = [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("seed_value", SEEDS)
def test_resend_under_random_faults_and_kills_delivers_exactly_once(project, tmp_path,
                                                                    seed_value):
    database_url = f"sqlite:///{tmp_path / 'newsletter.db'}"
    seed(database_url, readers(N))
    faults, knobs, kills = scenario(seed_value)
    with FakeProvider(faults=faults, seed=seed_value) as fake:
        config = make_config(project, database_url, fake, provider="resend",
                             max_attempts=40, retry_delay=0.002, **knobs)
        runs = run_until_done(config, fake, kills)
        received = Counter(fake.recipients())
    assert "killed" in runs, "the sender died at least once"
    assert len(received) == N and set(received.values()) == {1}, \
        f"duplicates: {[r for r, n in received.items() if n > 1][:5]}"
    assert set(states(database_url).values()) == {"sent"}


@pytest.mark.parametrize("seed_value", SEEDS)
def test_postmark_under_random_faults_and_kills_delivers_exactly_once(project, tmp_path,
                                                                     seed_value):
    # Postmark has no idempotency key: what a lost answer or a kill leaves unknown is
    # resolved by its outbound search (the fake indexes at once, so a short settle is honest).
    database_url = f"sqlite:///{tmp_path / 'newsletter.db'}"
    engine = seed(database_url, readers(N))
    faults, knobs, kills = scenario(seed_value)
    emails = {i: e for i, e in enumerate(readers(N), 1)}
    by_email = {f"Reader {i - 1} <{e}>": i for i, e in emails.items()}
    with FakeProvider(faults=faults, seed=seed_value) as fake:
        config = make_config(project, database_url, fake, max_attempts=40,
                             retry_delay=0.002, reconcile_settle=0.05, **knobs)
        runs = run_until_done(config, fake, kills)
        received = Counter(by_email[to] for to in fake.recipients())
    assert "killed" in runs, "the sender died at least once"
    assert set(received) == set(emails) and set(received.values()) == {1}, \
        f"duplicates: {[i for i, n in received.items() if n > 1][:5]}"
    assert set(states(database_url).values()) == {"sent"}
    engine.dispose()
