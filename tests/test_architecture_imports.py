"""ARCHITECTURE.md's package table, checked: `lint-imports` runs the contracts in
pyproject.toml (the layers, the documented exceptions, no circles) over the package.

The repository must keep them; and a copy of the package given one forbidden import must
break them, so a contract that checks nothing cannot pass unnoticed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` over the `newsletter` package found first from ``cwd``."""
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_package_keeps_the_table():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "broken"), [
    # The bottom row reaching the top one: errors -> cli -> ... -> errors.
    ("errors.py", "from . import cli", "newsletter.errors is not allowed to import newsletter.cli"),
    # store/ may import the status vocabularies only, not the ledger.
    ("store/tables.py", "from ..delivery import send",
     "newsletter.store is not allowed to import newsletter.delivery"),
    # A circle inside one package: the send loop's states importing the loop.
    ("delivery/states.py", "from . import loop", "No cycles are allowed in newsletter.delivery"),
])
def test_a_forbidden_import_breaks_the_build(tmp_path, module, line, broken):
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copytree(ROOT / "newsletter", tmp_path / "newsletter",
                    ignore=shutil.ignore_patterns("__pycache__"))
    path = tmp_path / "newsletter" / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}  # “forbidden”\n",
                    encoding="utf-8")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert broken in result.stdout, result.stdout
