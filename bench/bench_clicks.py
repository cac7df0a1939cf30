"""Counted links under load: ``GET /r/<token>`` redirects per second, on a real server.

For each backend (SQLite, then PostgreSQL when it answers), in a fresh database:

1. The sample week is rendered with ``click_counts`` on and its counted links read from the
   HTML (the links every reader's message carries).
2. `newsletter web` starts as a child process (uvicorn, one worker).
3. Another process fetches those links 20,000 times over 64 concurrent keep-alive
   connections, each request with a user agent of its own (so each is a reader, not a burst),
   and reports requests/s and latency percentiles; the server's own CPU time per request is
   read from /proc.
4. The server is stopped (SIGTERM: the lifespan writes what it still holds); the table must
   then count every request as a click, the sum over the links equal to the requests made.

Targets: every request answered 302; at least 1,000 requests/s with p99 at most 100 ms (the
redirect never waits on the database); no click lost.

    .venv/bin/python bench/bench_clicks.py [--requests 20000] [--backends sqlite postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from figures import figure, table_judges  # noqa: E402

from bench.bench_web import (  # noqa: E402
    NEWSLETTER,
    cpu_seconds,
    database,
    each_backend,
    environment,
    free_port,
    project,
    wait_healthy,
)
from bench.http_load import load, raw_request  # noqa: E402
from tests.process_helpers import WEEK, stop_process  # noqa: E402

CONCURRENCY = 64
RATE_TARGET, P99_TARGET = 1000, 100  # requests/s, ms


async def _load(urls: list[str], concurrency: int) -> dict:
    """Each request with a user agent of its own: each a reader, none a burst."""
    parts = urlsplit(urls[0])
    requests = [raw_request("GET", urlsplit(url).path, parts.netloc, headers={
        "User-Agent": f"Mozilla/5.0 (X11; Linux x86_64) bench-reader/{n} Firefox/128.0"})
        for n, url in enumerate(urls)]
    return await load(parts.hostname, parts.port, requests, concurrency)


def run_load(urls: list[str], tmp: Path) -> dict:
    """The load generator as a child process, so it does not share the server's GIL."""
    path = tmp / "urls.txt"
    path.write_text("\n".join(urls))
    out = subprocess.run([sys.executable, __file__, "_load", str(path)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def counted_links(cwd: Path, env: dict[str, str]) -> list[str]:
    from newsletter.config import load_config
    from newsletter.edition.render import render_week

    environ = {k: v for k, v in env.items() if k.startswith("NEWSLETTER_")}
    config = load_config(cwd / "newsletter.toml", environ=environ)
    html = render_week(config, WEEK).html.fill(
        {"first_name": "José", "name": "José Núñez", "email": "jose@bücher.example",
         "unsubscribe_url": "x", "manage_url": "m"})
    base = re.escape(config.base_url.rstrip("/"))
    return list(dict.fromkeys(re.findall(base + r"/r/[A-Za-z0-9_.-]+", html)))


def tally(database_url: str) -> tuple[int, int]:
    import sqlalchemy as sa

    from newsletter.store.db import connect, dispose_engines
    from newsletter.store.tables import click_counts

    engine = connect(database_url)
    with engine.connect() as conn:
        clicks, filtered = conn.execute(sa.select(
            sa.func.coalesce(sa.func.sum(click_counts.c.clicks), 0),
            sa.func.coalesce(sa.func.sum(click_counts.c.filtered), 0))).one()
    dispose_engines()
    return int(clicks), int(filtered)


def bench(backend: str, n: int) -> bool:
    with tempfile.TemporaryDirectory(prefix="bench-clicks-") as name:
        tmp = Path(name)
        cwd = project(tmp)
        with database(backend, tmp) as url:
            port = free_port()
            env = {**environment(url, port, tmp / "outbox"), "NEWSLETTER_CLICK_COUNTS": "true"}
            links = counted_links(cwd, env)
            urls = [links[i % len(links)] for i in range(n)]
            log = (tmp / "web.log").open("w")
            server = subprocess.Popen([NEWSLETTER, "web", "--port", str(port)], env=env,
                                      cwd=cwd, stdout=log, stderr=log)
            try:
                wait_healthy(port, server)
                before = cpu_seconds(server.pid)
                result = run_load(urls, tmp)
                result["server_cpu_ms"] = (cpu_seconds(server.pid) - before) / n * 1000
            finally:
                stop_process(server)
                log.close()
            clicks, filtered = tally(url)
    right = (result["statuses"] == {"302": n} and result["errors"] == 0 and clicks == n
             and filtered == 0)
    fast = result["rate"] >= RATE_TARGET and result["p99_ms"] <= P99_TARGET
    figure(f"{backend}: GET /r/<token> redirects", result["rate"], "req/s", target=RATE_TARGET,
           line=f"{backend:10} GET /r/<token> x{n} over {len(links)} links: "
                f"{result['rate']:7.0f} req/s  p50 {result['p50_ms']:5.1f} ms  "
                f"p99 {result['p99_ms']:5.1f} ms  max {result['max_ms']:6.1f} ms  "
                f"answers {result['statuses']}  errors {result['errors']}  "
                f"server CPU {result['server_cpu_ms']:.2f} ms/request")
    figure(f"{backend}: GET /r/<token> p99", result["p99_ms"], "ms", target=P99_TARGET,
           better="lower")
    print(f"{'':10} counted afterwards: {clicks} clicks, {filtered} filtered")
    print(f"{'':10} {'PASS' if right and fast else 'FAIL'}")
    return right and (fast or table_judges())


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_load":
        urls = Path(sys.argv[2]).read_text().split()
        print(json.dumps(asyncio.run(_load(urls, CONCURRENCY))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    each_backend(args.backends, lambda backend: bench(backend, args.requests))


if __name__ == "__main__":
    main()
