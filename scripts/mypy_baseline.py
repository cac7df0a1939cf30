"""mypy over the package, held to a baseline that only shrinks.

mypy checks ``newsletter/`` as pyproject.toml's ``[tool.mypy]`` says: strict, except the
modules its "not yet strict" override lists, which it checks by plain mypy's rules. Those
still have errors, counted per file in ``scripts/mypy-baseline.txt``. This fails when

* a file has more errors than its line allows, or a file without a line has any (they are
  printed, as mypy prints them);
* a file has fewer: its line must come down in the same change (``--shrink`` writes the
  lower counts), so a fixed error cannot come back unnoticed;
* a line names a file of a strict module (strict means no errors at all), or an override
  sets ``ignore_errors`` (which would hide a module's errors from the count).

Usage, from anywhere, with the venv's Python::

    .venv/bin/python scripts/mypy_baseline.py           # the check (make lint, make test)
    .venv/bin/python scripts/mypy_baseline.py --shrink  # after fixing errors: lower the file
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "scripts" / "mypy-baseline.txt"
SHOWN = "scripts/mypy-baseline.txt"  # the baseline as messages name it
HEADER = """\
# mypy's errors per file in the modules not yet strict (pyproject.toml's [tool.mypy]).
# scripts/mypy_baseline.py fails when a file has more than its number, and when it has fewer:
# then lower the number (`scripts/mypy_baseline.py --shrink` does). Never raise one.
"""


def run_mypy() -> list[dict[str, Any]]:
    """mypy's errors over the package (notes left out); exits when mypy could not check."""
    done = subprocess.run([sys.executable, "-m", "mypy", "-O", "json"], cwd=ROOT,
                          capture_output=True, text=True)
    sys.stderr.write(done.stderr)
    found = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    errors = [e for e in found if e["severity"] == "error"]
    if done.returncode not in (0, 1):  # a syntax error or a bad config stops mypy short
        show(errors)
        sys.exit(f"mypy could not check the package (exit {done.returncode})")
    return errors


def show(errors: list[dict[str, Any]]) -> None:
    for e in errors:
        print(f"{e['file']}:{e['line']}:{e['column'] + 1}: error: {e['message']}  [{e['code']}]")


def read_baseline() -> Counter[str]:
    counts: Counter[str] = Counter()
    if not BASELINE.exists():  # no file: no errors allowed anywhere
        return counts
    for number, line in enumerate(BASELINE.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip() and not line.startswith("#"):
            try:
                path, count = line.split()
                counts[path] = int(count)
            except ValueError:
                sys.exit(f"{SHOWN}:{number}: expected `path count`, got {line!r}")
    return counts


def write_baseline(counts: Counter[str]) -> None:
    lines = [f"{path} {count}\n" for path, count in sorted(counts.items()) if count]
    BASELINE.write_text(HEADER + "".join(lines), encoding="utf-8")


def not_yet_strict() -> list[str]:
    """The module patterns of the override that turns strict mode off again."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    overrides = config["tool"]["mypy"].get("overrides", [])
    if hidden := [o["module"] for o in overrides if o.get("ignore_errors")]:
        sys.exit(f"pyproject.toml: ignore_errors hides these from the baseline: {hidden}")
    return [m for o in overrides if o.get("disallow_untyped_defs") is False for m in o["module"]]


def module_of(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".").removesuffix(".__init__")


def matches(module: str, pattern: str) -> bool:
    """mypy's reading of an override's module pattern: ``a.b.*`` is a.b and all below it."""
    if pattern.endswith(".*"):
        return module == pattern[:-2] or module.startswith(pattern[:-1])
    return module == pattern


def compare(errors: list[dict[str, Any]], allowed: Counter[str],
            relaxed: list[str]) -> tuple[bool, bool]:
    """Print what differs from the baseline; (any file got worse, any file got better)."""
    found = Counter(e["file"] for e in errors)
    worse = better = False
    for path in sorted(allowed):
        if not any(matches(module_of(path), p) for p in relaxed):
            print(f"{path} is in a strict module: it may have no line in {SHOWN}")
            worse = True
    for path in sorted(found.keys() | allowed.keys()):
        if found[path] > allowed[path]:
            worse = True
            print(f"\n{path}: {_errors(found[path])}, the baseline allows {allowed[path]}:")
            show([e for e in errors if e["file"] == path])
        elif found[path] < allowed[path]:
            better = True
            print(f"{path}: {_errors(found[path])}, fewer than the baseline's "
                  f"{allowed[path]}: lower its line in {SHOWN} (--shrink does)")
    return worse, better


def _errors(n: int) -> str:
    return f"{n} mypy error" + ("" if n == 1 else "s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shrink", action="store_true",
                        help="write the lower counts to the baseline (never higher ones)")
    shrink = parser.parse_args().shrink
    relaxed = not_yet_strict()
    allowed = read_baseline()
    errors = run_mypy()
    worse, better = compare(errors, allowed, relaxed)
    if worse:
        print("\nmypy: fix the errors above (the baseline only shrinks)")
        return 1
    if better and shrink:
        write_baseline(Counter(e["file"] for e in errors))
        print(f"mypy: {SHOWN} lowered")
        return 0
    if better:
        return 1
    print(f"mypy: {_errors(len(errors))}, none beyond {SHOWN}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
