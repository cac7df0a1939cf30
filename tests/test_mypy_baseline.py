"""mypy in the build (`make lint`, `make test`), through scripts/mypy_baseline.py: strict for
the packages pyproject.toml does not list as not yet strict, the rest held to
scripts/mypy-baseline.txt, which only shrinks.

A copy of the repository given one type error must fail the check, in a strict package and in
a listed one alike, and a fixed error must be taken off the baseline before the check passes
again; so a check that checks nothing cannot pass unnoticed.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "mypy_baseline.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("mypy_baseline", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


baseline = _load_script()


def error(path: str, message: str = "Incompatible types in assignment (“zwölf”)") -> dict:
    return {"file": path, "line": 7, "column": 4, "message": message, "code": "assignment",
            "severity": "error"}


RELAXED = ["newsletter.cli.*", "newsletter.files"]


def test_a_file_with_more_errors_than_its_line_fails_and_shows_them(capsys):
    errors = [error("newsletter/cli/main.py"), error("newsletter/cli/main.py", "Müller’s")]
    worse, _ = baseline.compare(errors, Counter({"newsletter/cli/main.py": 1}), RELAXED)
    out = capsys.readouterr().out
    assert worse
    assert "newsletter/cli/main.py: 2 mypy errors, the baseline allows 1" in out
    assert "newsletter/cli/main.py:7:5: error: Müller’s  [assignment]" in out


def test_an_error_in_a_file_without_a_line_fails():
    worse, _ = baseline.compare([error("newsletter/cli/send.py")],
                                Counter({"newsletter/cli/main.py": 1}), RELAXED)
    assert worse


def test_a_fixed_error_must_come_off_the_baseline(capsys):
    worse, better = baseline.compare([], Counter({"newsletter/files.py": 1}), RELAXED)
    assert (worse, better) == (False, True)
    assert "lower its line in scripts/mypy-baseline.txt" in capsys.readouterr().out


def test_a_strict_module_may_have_no_baseline_line(capsys):
    allowed = Counter({"newsletter/audience/signup.py": 2})
    worse, _ = baseline.compare([error("newsletter/audience/signup.py")] * 2, allowed, RELAXED)
    assert worse
    assert "newsletter/audience/signup.py is in a strict module" in capsys.readouterr().out


@pytest.mark.parametrize(("module", "pattern", "matched"), [
    ("newsletter.cli", "newsletter.cli.*", True),
    ("newsletter.cli.send", "newsletter.cli.*", True),
    ("newsletter.client", "newsletter.cli.*", False),
    ("newsletter.files", "newsletter.files", True),
    ("newsletter.files_extra", "newsletter.files", False),
])
def test_module_patterns_read_as_mypy_reads_them(module, pattern, matched):
    assert baseline.matches(module, pattern) is matched


def test_the_strict_packages_are_not_listed_as_relaxed():
    relaxed = baseline.not_yet_strict()
    for module in ("newsletter.audience.signup", "newsletter.feedback.webhooks.ses"):
        assert not any(baseline.matches(module, p) for p in relaxed), module


def test_a_malformed_baseline_line_is_one_line_naming_it(tmp_path, monkeypatch):
    path = tmp_path / "mypy-baseline.txt"
    path.write_text("# “header”\nnewsletter/cli/main.py one\n", encoding="utf-8")
    monkeypatch.setattr(baseline, "BASELINE", path)
    with pytest.raises(SystemExit) as exc:
        baseline.read_baseline()
    assert str(exc.value) == ("scripts/mypy-baseline.txt:2: expected `path count`, "
                              "got 'newsletter/cli/main.py one'")


# -- the check itself, over a copy of the repository ----------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The package, its config, the script and its baseline, and mypy's cache (so that only
    what a test changes is checked again)."""
    for name in ("pyproject.toml", "scripts"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "newsletter", tmp_path / "newsletter",
                    ignore=shutil.ignore_patterns("__pycache__"))
    if (ROOT / ".mypy_cache").is_dir():
        shutil.copytree(ROOT / ".mypy_cache", tmp_path / ".mypy_cache")
    return tmp_path


def check(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(repo / "scripts" / "mypy_baseline.py"), *args],
                          cwd=repo, capture_output=True, text=True, timeout=600)


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


@pytest.mark.parametrize(("module", "code", "reported"), [
    # A strict package: a function without annotations.
    ("audience/tokens.py", "\n\ndef greeting(name):\n    return f'“Hallo”, {name}'\n",
     "no-untyped-def"),
    # A package not yet strict: a plain type error, beyond what its baseline allows.
    ("cli/main.py", "\n\nFAVOURITE: int = '“zwölf”'\n", "assignment"),
], ids=["strict package", "package not yet strict"])
def test_a_type_error_breaks_the_build(repo, module, code, reported):
    append(repo / "newsletter" / module, code)
    result = check(repo)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"newsletter/{module}:" in result.stdout
    assert f"[{reported}]" in result.stdout


def test_the_baseline_only_shrinks(repo):
    assert check(repo).returncode == 0
    # A file that has lost an error (its line says one more than mypy finds) ...
    lines = (repo / "scripts" / "mypy-baseline.txt").read_text(encoding="utf-8").splitlines()
    listed = [i for i, line in enumerate(lines) if line and not line.startswith("#")]
    if not listed:
        pytest.skip("every package is strict: no baseline left to shrink")
    first = listed[0]
    path, count = lines[first].split()
    lines[first] = f"{path} {int(count) + 1}"
    (repo / "scripts" / "mypy-baseline.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # ... fails until its line is lowered; --shrink lowers it.
    refused = check(repo)
    assert refused.returncode == 1
    assert f"{path}: " in refused.stdout and "lower its line" in refused.stdout
    assert check(repo, "--shrink").returncode == 0
    assert f"{path} {count}\n" in (repo / "scripts" / "mypy-baseline.txt").read_text("utf-8")
    assert check(repo).returncode == 0
