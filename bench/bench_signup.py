"""How long a sign-up takes, by the standing of the address signed up: new, pending, active,
unsubscribed, bounced, complained, erased.

For each backend (SQLite, then PostgreSQL when it answers), in a fresh database: as many
addresses of each standing as there are rounds are put on the list; then each round signs up
one address of every standing through the app (Starlette's TestClient: the app's own work,
no network), in an order that changes every round, so whatever else the machine does weighs
on every standing alike. Each POST is timed with ``perf_counter_ns``; the first rounds warm up
and are not counted.

Target: no standing tells itself apart: every median within 25 % of every other, and inside
every other standing's range. (Before every sign-up did the same work: new addresses 4.0-10.3
ms, active ones 2.1-3.8 ms.)

    .venv/bin/python bench/bench_signup.py [--rounds 300] [--backends sqlite postgresql]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from figures import figure, table_judges  # noqa: E402

from bench.bench_web import database, each_backend, project  # noqa: E402
from tests.audience_helpers import STANDINGS, put_in_standing  # noqa: E402

SECRET = "bench-signup-secret-0123456789abcdef"
WARM_UP = 20
SPREAD_TARGET = 25.0  # % between the slowest standing's median and the fastest's
NAME = "Zoë “Zo” O’Brien"


def bench(backend: str, rounds: int) -> bool:
    from newsletter.config import load_config
    from newsletter.store.db import connect, dispose_engines
    from tests.web_helpers import Clock, field, make_app, web_client

    with tempfile.TemporaryDirectory(prefix="bench-signup-") as name, \
            database(backend, Path(name)) as url:
        folder = project(Path(name))
        environ = {"NEWSLETTER_SECRET_KEY": SECRET, "NEWSLETTER_DATABASE_URL": url,
                   "NEWSLETTER_BASE_URL": "https://news.example.com",
                   "NEWSLETTER_PROVIDER": "eml", "NEWSLETTER_OUTBOX_DIR": str(folder / "out")}
        config = load_config(folder / "newsletter.toml", environ={**os.environ, **environ})
        engine = connect(url)
        for i in range(rounds):
            for standing in STANDINGS:
                put_in_standing(engine, standing, f"{standing}.{i}@bücher.example", NAME)
        clock = Clock()
        client = web_client(make_app(config, clock, engine=engine))
        times: dict[str, list[int]] = {s: [] for s in STANDINGS}
        for i in range(rounds):
            shift = i % len(STANDINGS)
            for standing in STANDINGS[shift:] + STANDINGS[:shift]:
                page = client.get("/subscribe")
                clock.advance(minutes=3)  # past the form's minimum age and the per-IP limit
                data = {"email": f"{standing}.{i}@bücher.example", "name": NAME,
                        "website": "", "form_token": field(page.text, "form_token")}
                start = time.perf_counter_ns()
                response = client.post("/subscribe", data=data)
                elapsed = time.perf_counter_ns() - start
                assert response.status_code == 200, response.status_code
                if i >= WARM_UP:
                    times[standing].append(elapsed)
        dispose_engines()
    return report(backend, times)


def report(backend: str, times: dict[str, list[int]]) -> bool:
    print(f"{backend}: {len(times['new'])} sign-ups of each standing, in ms")
    print(f"  {'standing':<13}{'min':>7}{'p10':>7}{'median':>8}{'p90':>7}{'max':>8}")
    medians = {}
    for standing, values in times.items():
        deciles = statistics.quantiles(values, n=10)
        medians[standing] = statistics.median(values)
        print(f"  {standing:<13}{min(values) / 1e6:7.2f}{deciles[0] / 1e6:7.2f}"
              f"{medians[standing] / 1e6:8.2f}{deciles[-1] / 1e6:7.2f}"
              f"{max(values) / 1e6:8.2f}")
    spread = max(medians.values()) / min(medians.values())
    inside = all(min(times[other]) <= medians[standing] <= max(times[other])
                 for standing in STANDINGS for other in STANDINGS)
    close = 100 * (spread - 1) <= SPREAD_TARGET
    ok = close and inside
    figure(f"{backend}: sign-up medians apart, by standing", 100 * (spread - 1), "%",
           target=SPREAD_TARGET, better="lower",
           line=f"  medians within {100 * (spread - 1):.0f} % of each other (target "
                f"{SPREAD_TARGET:.0f} %), each inside every other range: "
                f"{'yes' if inside else 'no'} -> {'ok' if ok else 'FAILED'}")
    return inside and (close or table_judges())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    each_backend(args.backends, lambda backend: bench(backend, max(args.rounds, WARM_UP + 10)))


if __name__ == "__main__":
    main()
