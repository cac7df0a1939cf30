"""A sign-up takes as long for an address already on the list as for a new one, so the form's
answer time does not tell who is subscribed.

Many sign-ups of new and of active addresses go through the app, interleaved so that whatever
else the machine is doing weighs on both kinds alike, each timed with ``perf_counter_ns`` (the
clock for durations). The two distributions must overlap: medians within 25 % of each other,
each median inside the other kind's range. Before every sign-up wrote the same rows, a new
address took about twice as long as an active one on PostgreSQL, and half as long again on
SQLite: the ranges barely met.
"""

from __future__ import annotations

import statistics
import time

from newsletter.audience import subscribers
from newsletter.store.db import connect
from tests.web_helpers import Clock, field, main_text, make_app, web_client, web_config

WARM_UP = 10  # pairs of sign-ups not counted: caches, pools, prepared statements
PAIRS = 150
NAME = "Zoë “Zo” O’Brien"


def _timed_sign_up(client, clock: Clock, email: str) -> tuple[int, str]:
    """Open the form, wait like a person, send it: the POST's duration and its answer."""
    page = client.get("/subscribe")
    clock.advance(minutes=3)  # past the form's minimum age, and the per-IP window stays open
    data = {"email": email, "name": NAME, "website": "",
            "form_token": field(page.text, "form_token")}
    start = time.perf_counter_ns()
    response = client.post("/subscribe", data=data)
    elapsed = time.perf_counter_ns() - start
    assert response.status_code == 200
    return elapsed, main_text(response.text).replace(email, "ADDRESS")


def test_a_sign_up_takes_as_long_for_an_active_address_as_for_a_new_one(project, database_url):
    engine = connect(database_url)
    clock = Clock()
    client = web_client(make_app(web_config(project, database_url), clock, engine=engine))
    for i in range(WARM_UP + PAIRS):
        subscribers.add(engine, f"old.{i}@bücher.example", name=NAME)
    times: dict[str, list[int]] = {"new": [], "old": []}
    answers = set()
    for i in range(WARM_UP + PAIRS):
        order = ("new", "old") if i % 2 else ("old", "new")
        for kind in order:
            elapsed, answer = _timed_sign_up(client, clock, f"{kind}.{i}@bücher.example")
            answers.add(answer)
            if i >= WARM_UP:
                times[kind].append(elapsed)
    assert len(answers) == 1, "the answer's content differs between new and active addresses"
    new, old = (statistics.median(times[k]) for k in ("new", "old"))
    figures = (f"median new {new / 1e6:.2f} ms, active {old / 1e6:.2f} ms; "
               f"range new {min(times['new']) / 1e6:.2f}-{max(times['new']) / 1e6:.2f} ms, "
               f"active {min(times['old']) / 1e6:.2f}-{max(times['old']) / 1e6:.2f} ms")
    assert max(new, old) <= 1.25 * min(new, old), figures
    assert min(times["new"]) <= old <= max(times["new"]), figures
    assert min(times["old"]) <= new <= max(times["old"]), figures
