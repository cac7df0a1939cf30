"""Reconciliation at scale: a send of 100,000 in which 5 % of the batch requests lose their
answer, per provider that can be asked what it accepted (issue 22).

The fake provider runs in a process of its own. Its ``Faults.script`` ends one batch request
in 20 unanswered: most after it accepted the batch (``drop_after``: the provider has the
messages), one in four before (``drop_before``: it has none). The sender cannot tell which,
and the batch's rows are ``unknown``. The send itself (``send_edition`` in this process, with
``reconcile_settle`` = 1 s) asks the provider about them before it ends, marks the found rows
sent and sends the others again; an idempotent provider (Resend) repeats them under their key
instead. Afterwards no row may be unknown, and the fake's record must hold every subscriber
exactly once. One subscriber in 50 has an IDN address and an accented, curly-quoted name.

Two seams, no patching: the provider's client is given an HTTP transport that passes every
request on and notes each search (its query, when, for which batch), and the transport the
send is given notes each ``reconcile`` call. Reported per provider: batch requests, lost
batches, batches asked about, search requests (the fake's own count), the most for one batch,
the time from the first question to the last answer, the largest page and offset asked for
and the peak request rate, each against the provider's documented limits.

Then ``send --reconcile`` (``reconcile_week``) once over a smaller send whose searches all
failed while it ran, and that send resumed. Exit 1 when a limit is exceeded, a recipient is
missing or doubled, or a row is left unknown.

Mailgun runs on a smaller list by default: its events search is a scan of the send's window
(a batch never accepted reads all of it, size / 300 pages), and the fake answers each page by
reading every message it holds, so 100,000 would take the fake hours, not the benchmark.

    .venv/bin/python bench/bench_reconcile.py [--size 100000] [--mailgun-size 15000]
        [--providers postmark mailgun resend] [--week-pass-size 15000]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import httpx
import sqlalchemy as sa
from bench_delivery import ROOT, database  # also puts the repository on sys.path
from figures import figure

from newsletter.audience.addresses import parse_address
from newsletter.config import Config, load_config
from newsletter.delivery.send import SendDeps, SendOptions, reconcile_week, send_edition
from newsletter.providers import make_transport, transport_class
from newsletter.providers.base import Finding, Transport, UnknownBatch
from newsletter.store.db import connect, dispose_engines
from newsletter.store.tables import deliveries, subscribers
from tests.process_helpers import (
    WEEK,
    FakeProviderProcess,
    read_records,
    recorded_ids,
    seed_subscribers,
    sender_env,
)

# Providers asked through their own API; each is benchmarked once its transport has
# ``reconcile``.
CANDIDATES = ("postmark", "mailgun", "resend")
LOST_EVERY = 20        # one batch request in 20 loses its answer: 5 %
BEFORE_EVERY = 4       # one lost request in 4 was never accepted
IDN_EVERY = 50
MAILGUN_DOMAIN = "mg.example.com"


@dataclass(frozen=True)
class Limits:
    """What one search request may ask for, as the provider documents it."""

    page: str                        # the query parameter that sets the page size
    max_page: int
    max_reach: int | None = None     # page + offset may not pass this (Postmark)
    per_second: float | None = None  # a published request rate, where there is one
    rate: str = ""                   # what is published about the rate, in words


LIMITS = {
    # Messages API, "Outbound message search" (postmarkapp.com/developer/api/messages-api):
    # count at most 500, count + offset at most 10,000. Postmark publishes no request rate:
    # its API overview (postmarkapp.com/developer/api/overview#error-codes) lists error 429,
    # "Rate Limit Exceeded", without a figure.
    "postmark": Limits("count", 500, max_reach=10_000, rate="none published"),
    # GET /v3/{domain}/events: "limit ... (300 max)" (tests/provider-specs/mailgun/openapi.yaml).
    # No rate is published for the events API; the same spec gives its Metrics API "500
    # requests every 10 seconds", shown beside the peak for scale only.
    "mailgun": Limits("limit", 300, rate="none published for events (Metrics API: 500 / 10 s)"),
    # GET /emails: limit 1 to 100 (tests/provider-specs/resend/resend.json). "The default
    # maximum rate limit is 5 requests per second per team" (resend.com/docs/api-reference/
    # rate-limit; 2 a second in earlier versions of the page), shared with sending.
    "resend": Limits("limit", 100, per_second=5.0, rate="5 / s per team"),
}


# -- the seams ---------------------------------------------------------------------------------

def _task() -> int:
    """The asyncio task a request runs in: the reconciliation asks about each batch in a
    task of its own, so a search is told apart from another batch's asked at the same time."""
    return id(asyncio.current_task())


@dataclass
class Query:
    task: int
    start: float
    end: float
    params: dict[str, str]
    status: int


@dataclass
class Ask:
    task: int
    batch_key: str
    start: float
    end: float


@dataclass
class Probe:
    """What the seams saw over one send (or pass)."""

    queries: list[Query] = field(default_factory=list)
    asks: list[Ask] = field(default_factory=list)

    def searches_of(self, ask: Ask) -> int:
        return sum(1 for q in self.queries
                   if q.task == ask.task and ask.start <= q.start <= ask.end)


class QueryLog(httpx.AsyncBaseTransport):
    """The HTTP transport under the provider's client: passes every request on and notes
    each search (a GET)."""

    def __init__(self, probe: Probe):
        self.inner = httpx.AsyncHTTPTransport()
        self.probe = probe

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "GET":
            return await self.inner.handle_async_request(request)
        start = time.perf_counter()
        response = await self.inner.handle_async_request(request)
        await response.aread()
        self.probe.queries.append(Query(_task(), start, time.perf_counter(),
                                        dict(request.url.params), response.status_code))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class Asked:
    """The provider's transport as the send is given it, each ``reconcile`` call noted;
    everything else is the transport's own."""

    def __init__(self, transport: Transport, probe: Probe):
        self._transport, self._probe = transport, probe

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    async def reconcile(self, batch: UnknownBatch, *, now: datetime) -> list[Finding]:
        start = time.perf_counter()
        try:  # a failed search (LookupFailed) is noted too
            findings: list[Finding] = await self._transport.reconcile(  # type: ignore[attr-defined]
                batch, now=now)
            return findings
        finally:
            self._probe.asks.append(Ask(_task(), batch.key, start, time.perf_counter()))


def deps_for(probe: Probe) -> SendDeps:
    """The real transport behind both seams; a fresh one each time a send makes one."""
    def transport(config: Config, week: str) -> Transport:
        made: Transport = make_transport(config, transport=QueryLog(probe))
        # Only a transport that can be asked gets a ``reconcile``: the send looks for one.
        return cast(Transport, Asked(made, probe)) if askable(config.provider) else made

    return SendDeps(transport=transport)


def provider_class(provider: str) -> type[Transport]:
    cls: type[Transport] = transport_class(provider)
    return cls


def askable(provider: str) -> bool:
    return callable(getattr(provider_class(provider), "reconcile", None))


# -- the setting ---------------------------------------------------------------------------------

def lost_script(requests: int) -> tuple[str, dict[int, str]]:
    """``Faults.script`` for ``requests`` batch requests, and the lost ones (1-based number
    -> drop_after or drop_before)."""
    lost = {}
    for n, number in enumerate(range(LOST_EVERY // 2, requests + 1, LOST_EVERY)):
        # The second lost, the sixth, ...: a send of 40 batches has one of each.
        lost[number] = "drop_before" if n % BEFORE_EVERY == 1 else "drop_after"
    return ",".join(lost.get(i, "ok") for i in range(1, requests + 1)), lost


def international(database_url: str) -> None:
    """One subscriber in IDN_EVERY gets an IDN address and an accented, curly-quoted name."""
    s = subscribers.c
    with connect(database_url).begin() as conn:
        ids = conn.execute(sa.select(s.id).where(s.id % IDN_EVERY == 0)).scalars().all()
        rows = []
        for i in ids:
            address = parse_address(f"jose{i}@bücher.example")
            rows.append({"sid": i, "email": address.email, "email_key": address.key,
                         "name": f"José “{i}” Ñúñez"})
        if rows:
            conn.execute(subscribers.update().where(s.id == sa.bindparam("sid"))
                         .values(email=sa.bindparam("email"), name=sa.bindparam("name"),
                                 email_key=sa.bindparam("email_key")), rows)


@contextmanager
def project_dir(tmp: Path) -> Iterator[Path]:
    """The repository's sample project, copied (bench_delivery.run makes the same one)."""
    project = tmp / "project"
    project.mkdir()
    shutil.copy(ROOT / "newsletter.toml", project / "newsletter.toml")
    shutil.copytree(ROOT / "templates", project / "templates")
    shutil.copytree(ROOT / "items", project / "items")
    yield project


def config_for(provider: str, project: Path, base_url: str, database_url: str,
               args: argparse.Namespace) -> Config:
    extra = {"mailgun_domain": MAILGUN_DOMAIN} if provider == "mailgun" else {}
    env = sender_env(provider, base_url, database_url, batch_size=args.batch_size,
                     concurrency=args.concurrency, reconcile_settle=1, **extra)
    return load_config(project / "newsletter.toml",
                       environ={k: v for k, v in env.items() if k.startswith("NEWSLETTER_")})


def fake_stats(base_url: str) -> dict[str, int]:
    return cast(dict[str, int], httpx.get(f"{base_url}/_fake/stats").json())


def ledger(database_url: str) -> tuple[Counter[str], Counter[str]]:
    """The rows by status, and by how reconciling resolved them."""
    d = deliveries.c
    with connect(database_url).connect() as conn:
        status = Counter({k: n for k, n in conn.execute(
            sa.select(d.status, sa.func.count()).group_by(d.status))})
        how = Counter({k: n for k, n in conn.execute(
            sa.select(d.reconciled, sa.func.count()).where(d.reconciled.is_not(None))
            .group_by(d.reconciled))})
    return status, how


def once_each(record: Path, active: set[int]) -> tuple[int, int]:
    """Subscribers the provider got more than once, and those it never got."""
    received = recorded_ids(read_records(record))
    return sum(1 for n in received.values() if n > 1), len(active - set(received))


@contextmanager
def quiet(logger: str) -> Iterator[None]:
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def send(config: Config, probe: Probe) -> float:
    start = time.perf_counter()
    send_edition(config, WEEK, SendOptions(interactive=False), deps=deps_for(probe))
    return time.perf_counter() - start


# -- what was measured ---------------------------------------------------------------------------

@dataclass
class Run:
    provider: str
    size: int
    probe: Probe
    batch_requests: int
    searches: int
    lost: dict[int, str]
    planned: int           # batch requests without any loss
    send_seconds: float
    status: Counter[str]
    reconciled: Counter[str]
    doubled: int
    missing: int

    def reached(self) -> list[str]:
        """The losses the script dealt (the requests numbered that high were made)."""
        return [kind for number, kind in self.lost.items() if number <= self.batch_requests]

    @property
    def lost_reached(self) -> int:
        return len(self.reached())

    @property
    def asked(self) -> int:
        return len({a.batch_key for a in self.probe.asks})

    def most_for_one(self) -> int:
        """The most searches made for one batch, over every time it was asked about (a batch
        asked before it settled is asked again once it has)."""
        per_batch: Counter[str] = Counter()
        for ask in self.probe.asks:
            per_batch[ask.batch_key] += self.probe.searches_of(ask)
        return max(per_batch.values(), default=0)

    def span(self) -> float:
        """First question to last answer, the wait for late batches to settle included."""
        asks = self.probe.asks
        return max(a.end for a in asks) - min(a.start for a in asks) if asks else 0.0

    def busy(self) -> float:
        """Seconds during which at least one question was out."""
        return union([(a.start, a.end) for a in self.probe.asks])


def union(intervals: list[tuple[float, float]]) -> float:
    total, reach = 0.0, -math.inf
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def peak(times: list[float], window: float) -> int:
    """The most requests begun within any ``window`` seconds."""
    times, most, first = sorted(times), 0, 0
    for last, moment in enumerate(times):
        while moment - times[first] >= window:
            first += 1
        most = max(most, last - first + 1)
    return most


def largest(queries: list[Query], name: str, plus: str = "") -> int:
    """The largest value of a query parameter (plus another's) over the searches."""
    def number(q: Query, key: str) -> int:
        value = q.params.get(key, "")
        return int(value) if value.isdigit() else 0

    return max((number(q, name) + (number(q, plus) if plus else 0) for q in queries), default=0)


def verdict(ok: bool) -> str:
    return "ok" if ok else "EXCEEDED"


def limit_lines(run: Run) -> tuple[list[str], bool]:
    """The searches against the provider's documented limits; False when one is exceeded.
    (Mailgun's next pages carry their size in the page token, as the first page set it.)"""
    limits, queries = LIMITS[run.provider], run.probe.queries
    page = largest(queries, limits.page)
    ok = page <= limits.max_page
    lines = [f"largest page ({limits.page}) {page:,} <= {limits.max_page:,}: {verdict(ok)}"]
    if limits.max_reach is not None:
        reach = largest(queries, limits.page, plus="offset")
        ok &= reach <= limits.max_reach
        lines.append(f"largest {limits.page} + offset {reach:,} <= {limits.max_reach:,}: "
                     f"{verdict(reach <= limits.max_reach)}")
    starts = [q.start for q in queries]
    per_second = peak(starts, 1.0)
    rate = (f"peak {per_second} searches in 1 s, {peak(starts, 10.0)} in 10 s; "
            f"published: {limits.rate}")
    if limits.per_second is not None:
        ok &= per_second <= limits.per_second
        rate += f": {verdict(per_second <= limits.per_second)}"
    lines.append(rate)
    refused = sum(1 for q in queries if q.status != 200)
    if refused:
        lines.append(f"{refused} search(es) answered other than 200")
    return lines, ok


def outcome_lines(run: Run) -> tuple[list[str], bool]:
    """Exactly once, nothing left unknown, every lost batch resolved."""
    unknown = run.status.get("unknown", 0)
    found, again = run.reconciled.get("accepted", 0), run.reconciled.get("not_accepted", 0)
    # Every batch went out, and the losses happened: a fake that ignored the script would
    # pass the rest of the checks with nothing to reconcile.
    right = (not run.doubled and not run.missing and not unknown
             and run.batch_requests >= run.planned and run.lost_reached > 0)
    if provider_class(run.provider).idempotent:
        right &= run.batch_requests > run.planned   # the repeats
        how = f"{run.lost_reached} lost batch requests repeated under their idempotency key"
    else:
        kinds = run.reached()
        right &= (run.asked >= run.lost_reached and ("drop_after" in kinds) == (found > 0)
                  and ("drop_before" in kinds) == (again > 0))
        how = f"{run.asked} of {run.lost_reached} lost batches asked about"
    return [f"{run.size:,} subscribers: {run.doubled} received twice, {run.missing} missing, "
            f"{unknown} rows unknown; {how}; {found:,} rows found accepted, {again:,} found "
            f"not accepted and sent again: {'ok' if right else 'FAILED'}"], right


# -- the runs ------------------------------------------------------------------------------------

def size_of(provider: str, args: argparse.Namespace) -> int:
    size: int = args.mailgun_size if provider == "mailgun" and args.mailgun_size else args.size
    return size


def requests_of(provider: str, size: int, args: argparse.Namespace) -> int:
    return math.ceil(size / min(int(args.batch_size), provider_class(provider).max_batch))


@contextmanager
def setting(provider: str, size: int, args: argparse.Namespace, *faults: str
            ) -> Iterator[tuple[Config, FakeProviderProcess, str, Path, set[int], dict[int, str]]]:
    """A fresh list of ``size`` in a fresh database, and the fake losing 5 % of the batch
    requests (and any other ``faults``, as its command line takes them)."""
    script, lost = lost_script(requests_of(provider, size, args))
    with tempfile.TemporaryDirectory(prefix="nl-bench-reconcile-") as tmp_name:
        tmp = Path(tmp_name)
        with project_dir(tmp) as project, database(None, tmp) as database_url:
            active, _ = seed_subscribers(database_url, size)
            international(database_url)
            record = tmp / "provider.jsonl"
            try:
                with FakeProviderProcess(record, latency_ms=args.latency_ms,
                                         extra=["--script", script, *faults]) as fake:
                    config = config_for(provider, project, fake.base_url, database_url, args)
                    yield config, fake, database_url, record, active, lost
            finally:
                dispose_engines()


def bench_send(provider: str, args: argparse.Namespace) -> Run:
    """A send with 5 % of its batch requests lost, reconciled as it goes."""
    size = size_of(provider, args)
    with setting(provider, size, args) as (config, fake, database_url, record, active, lost):
        probe = Probe()
        seconds = send(config, probe)
        stats = fake_stats(fake.base_url)
        status, how = ledger(database_url)
        doubled, missing = once_each(record, active)
    return Run(provider, size, probe, stats["requests"], stats["searches"], lost,
               requests_of(provider, size, args), seconds, status, how, doubled, missing)


@dataclass
class WeekPass:
    left_unknown: int
    seconds: float
    searches: int
    accepted: int
    not_accepted: int
    still_unknown: int
    resumed: Run   # the limits and the asks are the pass's; the outcome the resumed send's


def bench_week_pass(provider: str, args: argparse.Namespace) -> WeekPass:
    """A send whose searches all fail leaves its lost batches unknown; ``send --reconcile``
    then asks once, the search working again; the send resumed sends what was not accepted."""
    size = min(args.week_pass_size, size_of(provider, args))
    with setting(provider, size, args, "--search-p500", "1") as (
            config, fake, database_url, record, active, lost), quiet("newsletter.send"):
        send(config, Probe())  # its warnings, one per failed search, are expected
        left = ledger(database_url)[0].get("unknown", 0)
        httpx.post(f"{fake.base_url}/_fake/faults", json={"search_p500": 0}).raise_for_status()
        searched = fake_stats(fake.base_url)["searches"]
        probe = Probe()
        start = time.perf_counter()
        tally = reconcile_week(config, WEEK, deps=deps_for(probe)).tally
        seconds = time.perf_counter() - start
        searches = fake_stats(fake.base_url)["searches"] - searched
        resume_seconds = send(config, Probe())
        stats = fake_stats(fake.base_url)
        status, how = ledger(database_url)
        doubled, missing = once_each(record, active)
    resumed = Run(provider, size, probe, stats["requests"], searches, lost,
                  requests_of(provider, size, args), resume_seconds, status, how, doubled,
                  missing)
    if tally is None:
        return WeekPass(left, seconds, searches, 0, 0, left, resumed)
    return WeekPass(left, seconds, searches, tally.accepted, tally.not_accepted,
                    tally.undecided, resumed)


# -- the report ----------------------------------------------------------------------------------

def print_table(runs: list[Run]) -> None:
    print(f"{'provider':>9} {'list':>8} {'batches':>8} {'lost':>5} {'asked':>6} {'asks':>5} "
          f"{'searches':>9} {'most, 1 batch':>14} {'send s':>7} {'reconcile s':>12} "
          f"{'asking s':>9}")
    for r in runs:
        print(f"{r.provider:>9} {r.size:>8,} {r.batch_requests:>8,} {r.lost_reached:>5} "
              f"{r.asked:>6} {len(r.probe.asks):>5} {r.searches:>9,} {r.most_for_one():>14} "
              f"{r.send_seconds:>7.1f} {r.span():>12.2f} {r.busy():>9.2f}", flush=True)


def record(run: Run) -> None:
    """The run's headline figures for the table; the documented limits are their targets
    (the script exits 1 on any limit exceeded, whatever the table's margin)."""
    limits, starts = LIMITS[run.provider], [q.start for q in run.probe.queries]
    about = f"reconcile, {run.provider} on {run.size:,}"
    figure(f"{about}: the send", run.send_seconds, "s", better="lower")
    figure(f"{about}: first question to last answer", run.span(), "s", better="lower")
    figure(f"{about}: searches", run.searches, "requests", better="lower")
    figure(f"{about}: largest page", largest(run.probe.queries, limits.page), limits.page,
           target=limits.max_page, better="lower")
    figure(f"{about}: peak searches in 1 s", peak(starts, 1.0), "requests",
           target=limits.per_second, better="lower")


def report(run: Run, size: int) -> bool:
    """The run's lines; ``size`` is the list the others had, for a run on a smaller one."""
    limits, within = limit_lines(run)
    if run.size < size and run.asked:
        # A scan of the send's window: one batch's searches grow with the send.
        most = run.most_for_one()
        limits.append(f"most searches for one batch {most} on {run.size:,}; growing with "
                      f"the list, about {math.ceil(most * size / run.size):,} on {size:,}")
    outcome, right = outcome_lines(run)
    for line in limits + outcome:
        print(f"  {run.provider}: {line}", flush=True)
    return within and right


def report_week(provider: str, args: argparse.Namespace) -> bool:
    if provider_class(provider).idempotent:
        print(f"  {provider}: not run (within its key's window a lost batch is repeated, "
              "not left unknown)")
        return True
    w = bench_week_pass(provider, args)
    figure(f"send --reconcile, {provider} on {w.resumed.size:,}", w.seconds, "s",
           better="lower")
    print(f"  {provider}: {w.left_unknown:,} rows left unknown by a send of "
          f"{w.resumed.size:,} whose searches failed; `send --reconcile`: {w.searches} "
          f"searches in {w.seconds:.2f} s, {w.accepted:,} found accepted, {w.not_accepted:,} "
          f"not accepted, {w.still_unknown:,} still unknown; the resumed send took "
          f"{w.resumed.send_seconds:.1f} s")
    resolved = w.left_unknown > 0 and w.still_unknown == 0
    if not resolved:
        print(f"  {provider}: the pass had nothing to resolve, or left rows unknown: FAILED")
    return report(w.resumed, w.resumed.size) and resolved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--mailgun-size", type=int, default=15_000,
                        help="Mailgun's list (0: --size); see the module's docstring")
    parser.add_argument("--providers", nargs="+", choices=CANDIDATES,
                        default=[p for p in CANDIDATES if askable(p)])
    parser.add_argument("--week-pass-size", type=int, default=15_000,
                        help="the send `send --reconcile` is tried on (0: none)")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    print(f"newsletter send -> fake provider ({args.latency_ms:.0f} ms latency, batches of up "
          f"to {args.batch_size}, {args.concurrency} in flight, one batch request in "
          f"{LOST_EVERY} lost) on SQLite; reconcile_settle 1 s")
    runs = [bench_send(p, args) for p in args.providers]
    print_table(runs)
    for run in runs:
        record(run)
    good = all([report(r, args.size) for r in runs])
    if args.week_pass_size:
        print(f"`newsletter send --week {WEEK} --reconcile`, then the send resumed:")
        good &= all([report_week(p, args) for p in args.providers])
    print("within the documented limits, everyone exactly once, nothing unknown" if good
          else "FAILED")
    sys.exit(0 if good else 1)


if __name__ == "__main__":
    main()
