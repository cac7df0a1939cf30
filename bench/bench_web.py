"""The web app under load: 20,000 one-click unsubscribes, then the archive, on a real server.

For each backend (SQLite, then PostgreSQL when it answers), in a fresh database:

1. 20,000 active subscribers are seeded and `newsletter send --week 2026-W47` sends them the
   edition with the eml provider; every message's List-Unsubscribe URL is read back from the
   .eml files it wrote (the links a mailbox provider would POST to).
2. `newsletter web` starts as a child process (uvicorn, one worker).
3. Another process fires the 20,000 RFC 8058 one-click POSTs (``List-Unsubscribe=One-Click``,
   urlencoded) over 64 concurrent keep-alive connections, and reports requests/s and latency
   percentiles; then the same process GETs ``/archive/2026-W47`` 10,000 times. The server's
   own CPU time per request is read from /proc, a figure other load on the machine does not
   change.
4. The database must then hold 20,000 unsubscribed subscribers, each recorded as one-click.

Targets: every POST answered 200 and honoured; at least 500 requests/s with p99 at most
100 ms; the archive page at least 1,000 requests/s.

    .venv/bin/python bench/bench_web.py [--subscribers 20000] [--backends sqlite postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from email.parser import BytesHeaderParser
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from figures import figure, table_judges  # noqa: E402

from bench.http_load import load, raw_request  # noqa: E402
from tests.process_helpers import WEEK, seed_subscribers, stop_process  # noqa: E402

NEWSLETTER = str(Path(sys.executable).parent / "newsletter")
POSTGRES = os.environ.get("NEWSLETTER_TEST_POSTGRES_URL",
                          "postgresql://postgres@127.0.0.1:5432/test")
SECRET = "bench-web-secret-0123456789abcdef"
CONCURRENCY = 64
ARCHIVE_REQUESTS = 10_000
POST_RATE_TARGET, POST_P99_TARGET, ARCHIVE_RATE_TARGET = 500, 100, 1_000  # req/s, ms, req/s


# -- the load, in a process of its own ------------------------------------------------------


def one_click(url: str) -> bytes:
    parts = urlsplit(url)
    return raw_request("POST", parts.path, parts.netloc, body=b"List-Unsubscribe=One-Click",
                       headers={"User-Agent": "bench_web",
                                "Content-Type": "application/x-www-form-urlencoded"})


def page(url: str) -> bytes:
    parts = urlsplit(url)
    return raw_request("GET", parts.path, parts.netloc, headers={"User-Agent": "bench_web"})


async def _load(urls: list[str], method: str, concurrency: int) -> dict:
    parts = urlsplit(urls[0])
    requests = [one_click(url) if method == "POST" else page(url) for url in urls]
    return await load(parts.hostname, parts.port, requests, concurrency)


def load_main(args: argparse.Namespace) -> None:
    urls = Path(args.urls).read_text().split()
    result = asyncio.run(_load(urls, args.method, args.concurrency))
    print(json.dumps(result))


def run_load(urls: list[str], method: str, tmp: Path) -> dict:
    """The load generator as a child process, so it does not share the server's GIL."""
    path = tmp / f"urls-{method}.txt"
    path.write_text("\n".join(urls))
    out = subprocess.run([sys.executable, __file__, "_load", str(path), "--method", method,
                          "--concurrency", str(CONCURRENCY)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


# -- the setup ----------------------------------------------------------------------------


@contextmanager
def database(backend: str, tmp: Path):
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'newsletter.db'}"
        return
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in POSTGRES else "?"
    try:
        yield f"{POSTGRES}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def project(tmp: Path) -> Path:
    dest = tmp / "project"
    dest.mkdir()
    shutil.copytree(ROOT / "items", dest / "items")
    shutil.copy(ROOT / "newsletter.toml", dest / "newsletter.toml")
    return dest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(database_url: str, port: int, outbox: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update({"NEWSLETTER_SECRET_KEY": SECRET, "NEWSLETTER_DATABASE_URL": database_url,
                "NEWSLETTER_BASE_URL": f"http://127.0.0.1:{port}",
                "NEWSLETTER_PROVIDER": "eml", "NEWSLETTER_OUTBOX_DIR": str(outbox)})
    return env


def unsubscribe_urls(folder: Path) -> list[str]:
    parser = BytesHeaderParser()
    urls = []
    for path in sorted(folder.glob("*.eml")):
        with path.open("rb") as fh:
            header = parser.parse(fh)["List-Unsubscribe"]
        urls.append(header.split(",")[0].strip().strip("<>"))
    return urls


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"newsletter web exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("newsletter web did not become healthy")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux): what the server itself spent,
    whatever else the machine is doing."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tally(database_url: str) -> tuple[int, int]:
    import sqlalchemy as sa

    from newsletter.store.db import connect, dispose_engines

    engine = connect(database_url)
    with engine.connect() as conn:
        unsubscribed = conn.execute(sa.text(
            "SELECT count(*) FROM subscribers WHERE status = 'unsubscribed'")).scalar()
        one_click = conn.execute(sa.text(
            "SELECT count(*) FROM consent_details WHERE unsubscribe_method = 'one-click'")
        ).scalar()
    dispose_engines()
    return unsubscribed, one_click


def bench(backend: str, n: int) -> bool:
    with tempfile.TemporaryDirectory(prefix="bench-web-") as name:
        tmp = Path(name)
        cwd = project(tmp)
        with database(backend, tmp) as url:
            port = free_port()
            env = environment(url, port, tmp / "outbox")
            seed_subscribers(url, n)
            # --force: the benchmark serves the app on http://127.0.0.1, which the check refuses
            subprocess.run([NEWSLETTER, "send", "--week", WEEK, "--force"], env=env, cwd=cwd,
                           check=True, stdout=subprocess.DEVNULL)
            urls = unsubscribe_urls(tmp / "outbox" / WEEK)
            assert len(urls) == n, f"{len(urls)} messages, expected {n}"
            log = (tmp / "web.log").open("w")
            server = subprocess.Popen([NEWSLETTER, "web", "--port", str(port)], env=env, cwd=cwd,
                                      stdout=log, stderr=log)
            try:
                wait_healthy(port, server)
                before = cpu_seconds(server.pid)
                posts = run_load(urls, "POST", tmp)
                middle = cpu_seconds(server.pid)
                archive = run_load([f"http://127.0.0.1:{port}/archive/{WEEK}"] * ARCHIVE_REQUESTS,
                                   "GET", tmp)
                posts["server_cpu_ms"] = (middle - before) / n * 1000
                archive["server_cpu_ms"] = ((cpu_seconds(server.pid) - middle)
                                            / ARCHIVE_REQUESTS * 1000)
            finally:
                stop_process(server)
                log.close()
            unsubscribed, one_click = tally(url)
    right = (posts["statuses"] == {"200": n} and posts["errors"] == 0 and unsubscribed == n
             and one_click == n and archive["statuses"] == {"200": ARCHIVE_REQUESTS})
    fast = (posts["rate"] >= POST_RATE_TARGET and posts["p99_ms"] <= POST_P99_TARGET
            and archive["rate"] >= ARCHIVE_RATE_TARGET)
    ok = right and fast
    figure(f"{backend}: one-click unsubscribe POSTs", posts["rate"], "req/s",
           target=POST_RATE_TARGET,
           line=f"{backend:10} one-click POST x{n}: {posts['rate']:7.0f} req/s  "
                f"p50 {posts['p50_ms']:5.1f} ms  p99 {posts['p99_ms']:5.1f} ms  "
                f"max {posts['max_ms']:6.1f} ms  answers {posts['statuses']}  "
                f"errors {posts['errors']}  server CPU {posts['server_cpu_ms']:.2f} ms/request")
    figure(f"{backend}: one-click unsubscribe p99", posts["p99_ms"], "ms",
           target=POST_P99_TARGET, better="lower")
    figure(f"{backend}: one-click unsubscribe server CPU", posts["server_cpu_ms"], "ms/request",
           better="lower")
    print(f"{'':10} unsubscribed afterwards: {unsubscribed}  recorded one-click: {one_click}")
    figure(f"{backend}: GET /archive/{WEEK}", archive["rate"], "req/s",
           target=ARCHIVE_RATE_TARGET,
           line=f"{'':10} GET /archive/{WEEK} x{ARCHIVE_REQUESTS}: {archive['rate']:7.0f} "
                f"req/s  p50 {archive['p50_ms']:5.1f} ms  p99 {archive['p99_ms']:5.1f} ms  "
                f"answers {archive['statuses']}  server CPU {archive['server_cpu_ms']:.2f} "
                "ms/request")
    print(f"{'':10} {'PASS' if ok else 'FAIL'}")
    return right and (fast or table_judges())


def postgres_available() -> bool:
    import psycopg

    try:
        with psycopg.connect(POSTGRES, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def each_backend(backends: list[str], run: Callable[[str], bool]) -> None:
    """``run(backend)`` for each backend named, PostgreSQL skipped when it does not answer;
    exits 0 only when every run met its target."""
    results = []
    for backend in backends:
        if backend == "postgresql" and not postgres_available():
            print("postgresql: not reachable, skipped")
            continue
        results.append(run(backend))
    sys.exit(0 if all(results) else 1)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_load":
        parser = argparse.ArgumentParser()
        parser.add_argument("_load")
        parser.add_argument("urls")
        parser.add_argument("--method", default="POST")
        parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
        return load_main(parser.parse_args())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    each_backend(args.backends, lambda backend: bench(backend, args.subscribers))


if __name__ == "__main__":
    main()
