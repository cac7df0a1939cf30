"""`make bench`: every benchmark in turn, then one table of every figure beside its target.

Each script runs as a child process, its own output shown as it goes, with
``NEWSLETTER_BENCH_FIGURES`` naming a file where ``bench/figures.py`` records its headline
figures. The table then shows each figure, its target, the ratio of the two and a verdict:

- ``ok``: the target is met;
- ``miss``: short of it by at most 30 % (noise on a loaded machine, or a start of a drift);
- ``FAIL``: short by more than 30 %, or no value could be measured: a regression.

A script that exits non-zero (a recipient missing, an answer not 200: with the figures
collected, a script leaves its targets to this table) is a ``failed`` row. Exit 1 when any
row is FAIL or failed, 0 otherwise. Benchmarks are not timed tests: `make test` never runs this.

    .venv/bin/python bench/run_all.py [--only NAME ...] [--list]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from bench.figures import ENV  # noqa: E402

# The benchmarks `make bench` runs, in this order. A new one is a line here.
SCRIPTS = (
    "bench_personalize",
    "bench_dry_run",
    "bench_import",
    "bench_list_memory",
    "bench_cold_start",
    "bench_check_cache",
    "bench_transports",
    "bench_delivery",
    "bench_million",
    "bench_reconcile",
    "bench_metrics",
    "bench_web",
    "bench_clicks",
    "bench_signup",
    "bench_webhooks",
    "bench_hostile",
    "bench_dkim",
    "bench_peers",
)
MARGIN = 0.30      # a figure short of its target by more than this share is a FAIL
_SLACK = 1e-9      # so that exactly 30 % short, computed in floating point, is a miss
OK, MISS, FAIL, FAILED = "ok", "miss", "FAIL", "failed"
FAILING = (FAIL, FAILED)


@dataclass(frozen=True)
class Row:
    script: str
    name: str
    value: float | None
    unit: str = ""
    target: float | None = None
    better: str = "higher"
    failure: str | None = None   # why the script failed, for a script's "failed" row

    @property
    def ratio(self) -> float | None:
        """The figure over its target (above 1 is better for a higher-is-better figure,
        below 1 for a lower-is-better one)."""
        if self.target is None or self.value is None:
            return None
        return self.value / self.target

    @property
    def verdict(self) -> str:
        if self.failure is not None:
            return FAILED
        return judge(self.value, self.target, self.better)


def judge(value: float | None, target: float | None, better: str) -> str:
    """ok, miss (short by at most MARGIN of the target) or FAIL; "" without a target."""
    if target is None:
        return ""
    if value is None or not math.isfinite(value):
        return FAIL
    short = (target - value if better == "higher" else value - target) / target
    if short <= 0:
        return OK
    return MISS if short <= MARGIN + _SLACK else FAIL


def rows_of(script: str, records: Iterable[dict], returncode: int) -> list[Row]:
    """One script's figures, then a ``failed`` row when it exited non-zero."""
    rows = [Row(script, r["name"], r.get("value"), r.get("unit", ""), r.get("target"),
                r.get("better", "higher")) for r in records]
    if returncode != 0:
        rows.append(Row(script, "the script itself", None, failure=f"exit {returncode}"))
    return rows


def read_records(path: Path) -> tuple[list[dict], int]:
    """The JSON lines a script recorded, and how many lines could not be read."""
    if not path.exists():
        return [], 0
    records, bad = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(record, dict) and isinstance(record.get("name"), str):
            records.append(record)
        else:
            bad += 1
    return records, bad


def number(value: float) -> str:
    """A figure as a person reads it: thousands separated, about three significant digits."""
    size = abs(value)
    if size >= 100 or value == int(value):
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def cells(row: Row) -> list[str]:
    if row.failure is not None:
        return [f"  {row.name}", "-", "", "", "", f"{FAILED} ({row.failure})"]
    value = "-" if row.value is None else number(row.value)
    target = "" if row.target is None else \
        f"{'>=' if row.better == 'higher' else '<='} {number(row.target)}"
    ratio = "" if row.ratio is None else f"{row.ratio:.2f}"
    return [f"  {row.name}", value, row.unit, target, ratio, row.verdict]


HEADER = ["figure", "value", "unit", "target", "ratio", "verdict"]
RIGHT = {1, 3, 4}  # value, target and ratio line up on the right


def table(rows: list[Row]) -> str:
    """Every row under its script's name, the columns aligned, and a summary line."""
    body = [cells(r) for r in rows]
    widths = [max(len(c[i]) for c in [HEADER, *body]) for i in range(len(HEADER))]

    def line(columns: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in RIGHT else c.ljust(w)
                         for i, (c, w) in enumerate(zip(columns, widths, strict=True))).rstrip()

    out = [line(HEADER), line(["-" * w for w in widths])]
    script = None
    for row, columns in zip(rows, body, strict=True):
        if row.script != script:
            script = row.script
            out.append(script)
        out.append(line(columns))
    out.append(summary(rows))
    return "\n".join(out)


def summary(rows: list[Row]) -> str:
    verdicts = [r.verdict for r in rows]
    counts = ", ".join(f"{verdicts.count(v)} {v or 'without target'}"
                       for v in (OK, MISS, FAIL, "") if verdicts.count(v))
    figures = sum(1 for r in rows if r.failure is None)
    failed = verdicts.count(FAILED)
    text = f"{figures} figures" + (f": {counts}" if counts else "")
    if failed:
        text += f"; {failed} script{'s' if failed > 1 else ''} failed"
    return text + (" -> FAIL" if failing(rows) else " -> ok")


def failing(rows: list[Row]) -> bool:
    return any(r.verdict in FAILING for r in rows)


# -- running the scripts -------------------------------------------------------------------------

def run_script(script: str, folder: Path) -> list[Row]:
    """Run one benchmark, its output passed through; its rows for the table."""
    path = folder / f"{script}.jsonl"
    print(f"== {script} ==", flush=True)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(BENCH / f"{script}.py")], cwd=ROOT,
                          env={**os.environ, ENV: str(path)}, check=False)
    print(f"== {script}: {'done' if done.returncode == 0 else f'exit {done.returncode}'} "
          f"in {time.perf_counter() - start:.0f} s ==\n", flush=True)
    records, bad = read_records(path)
    rows = rows_of(script, records, done.returncode)
    if bad:
        rows.append(Row(script, "its figures", None, failure=f"{bad} unreadable lines"))
    return rows


def chosen(names: list[str] | None) -> list[str]:
    """The scripts named (``bench_web``, ``web`` or ``bench_web.py``), in SCRIPTS' order."""
    if not names:
        return list(SCRIPTS)
    wanted = {_script_name(n) for n in names}
    unknown = sorted(wanted - set(SCRIPTS))
    if unknown:
        raise SystemExit(f"run_all.py: no benchmark {', '.join(unknown)} "
                         f"(--list shows them)")
    return [s for s in SCRIPTS if s in wanted]


def _script_name(name: str) -> str:
    name = name.removesuffix(".py").rsplit("/", 1)[-1]
    return name if name.startswith("bench_") else f"bench_{name}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="run only these benchmarks (bench_web, or web)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and stop")
    args = parser.parse_args(argv)
    scripts = chosen(args.only)
    if args.list:
        print("\n".join(scripts))
        return 0
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="nl-bench-figures-") as tmp:
        for script in scripts:
            rows += run_script(script, Path(tmp))
    print(table(rows))
    return 1 if failing(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
