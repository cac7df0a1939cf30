"""One figure a benchmark measured, printed as the script prints it and, under `make bench`
(``bench/run_all.py``), recorded for the table of every figure beside its target.

A script calls ``figure(name, value, unit, target=..., better=...)`` for each headline
figure. When the environment variable ``NEWSLETTER_BENCH_FIGURES`` names a file, one JSON
line is appended to it::

    {"script": "bench_import.py", "name": "import of 100,000 rows", "value": 4.1,
     "unit": "s", "target": 10, "better": "lower"}

Without the variable nothing is written: a script run alone prints what it always printed.
Only the standard library, so that every script can import it; the scripts import it as
``figures`` (their own folder is first on ``sys.path``), so that one copy holds the variable.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

ENV = "NEWSLETTER_BENCH_FIGURES"
BETTER = ("higher", "lower")
# Taken out of the environment as the script starts: the `newsletter` processes a benchmark
# starts with its environment would warn about a NEWSLETTER_ variable that is no config key.
_TAKEN = os.environ.pop(ENV, None)


def figure(name: str, value: float | None, unit: str, *, target: float | None = None,
           better: str = "higher", line: str | None = None) -> None:
    """Report one figure: print ``line`` (the script's own words for it) when given, and
    record it when the figures are being collected. ``target`` is the figure the script
    states (None where it states none); ``better`` says which way the figure should go."""
    if better not in BETTER:
        raise ValueError(f"better must be one of {BETTER}, not {better!r}")
    if target is not None and target <= 0:
        raise ValueError(f"{name}: a target must be positive, not {target!r}")
    if line is not None:
        print(line, flush=True)
    path = _destination()
    if not path:
        return
    record = {"script": Path(sys.argv[0]).name, "name": name, "value": _finite(value),
              "unit": unit, "target": target, "better": better}
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, ensure_ascii=False) + "\n")


def table_judges() -> bool:
    """True when the figures are collected for ``run_all``'s table, which judges every target
    with its 30 % margin: a script then exits non-zero only for what went wrong (a recipient
    missing, an answer not 200), not for a figure short of its target, which it still prints."""
    return bool(_destination())


def _destination() -> str | None:
    return os.environ.get(ENV) or _TAKEN


def _finite(value: float | None) -> float | None:
    """A figure that could not be measured (NaN, or infinity for a probe never answered)
    is recorded as no value: strict JSON has neither, and the table counts it as a miss."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)
