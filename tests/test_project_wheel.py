"""The package on its own: a wheel built from this repository, installed into a fresh
virtualenv, runs a newsletter made by `newsletter init` with no repository file in reach.

Building and installing take a few seconds, so the test is marked slow. The new virtualenv
gets the wheel (and with it the `newsletter` command) in its own site-packages; the
dependencies come from this virtualenv's site-packages, named in a `.pth` file, which Python
appends to sys.path after the venv's own folder. That is robust (the same interpreter, the
dependencies already built for it) and fast (nothing is downloaded or compiled), and the
repository's editable install is not seen: `.pth` files in a folder added that way are not
run, so its import hook never loads.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the sources (no build files land in the repository)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src)
    for folder in ("newsletter", "templates"):
        shutil.copytree(ROOT / folder, src / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--no-index", "--quiet", "--wheel-dir", str(dist), str(src)],
                   check=True, capture_output=True, timeout=300)
    [built] = dist.glob("newsletter-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home)], check=True,
                   timeout=120)
    python = home / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; "
                           "print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                    "--no-deps", "--no-index", "--quiet", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    return home


def source_files(folder: Path) -> list[str]:
    """Every file under a folder of the repository, as paths relative to it."""
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*")
                  if path.is_file() and "__pycache__" not in path.parts)


def test_the_wheel_carries_every_template_inside_the_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = source_files(ROOT / "templates")
    assert {"edition.mjml.j2", "confirm.txt.j2", "web/base.html.j2", "web/site.css"} <= set(
        templates)
    missing = [name for name in templates if f"newsletter/templates/{name}" not in names]
    assert missing == []
    assert not any(name.startswith("templates/") for name in names), "inside the package only"


def test_the_wheel_carries_every_module_and_data_file(wheel):
    """The packages are listed by hand in pyproject.toml: a new one left out fails here."""
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in source_files(ROOT / "newsletter")
               if f"newsletter/{name}" not in names]
    assert missing == []
    assert "newsletter/schemas/items.schema.json" in names


def test_the_wheel_carries_its_licence(wheel):
    with zipfile.ZipFile(wheel) as archive:
        [metadata] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        [licence] = [n for n in archive.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
        assert "License-Expression: MIT" in archive.read(metadata).decode().splitlines()
        assert archive.read(licence) == (ROOT / "LICENSE").read_bytes()


def test_a_project_of_ones_own_works_from_the_installed_wheel(venv, tmp_path):
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NEWSLETTER_", "PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"

    def run(*args, cwd, stdin=None):
        result = subprocess.run([str(venv / "bin" / "newsletter"), *args], cwd=cwd, env=env,
                                input=stdin, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
        return result.stdout

    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import newsletter; print(newsletter.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()).is_relative_to(venv), "the wheel, not the repository"

    run("init", "mynews", "--name", "Zoë’s Notes", "--no-templates", cwd=work)
    project = work / "mynews"
    [week] = [p.name for p in (project / "items").iterdir()]
    assert "wrote" in run("preview", cwd=project)
    assert "Zo&#235;&#8217;s Notes" in (project / "outbox" / f"{week}.html").read_text()
    run("subscribers", "add", "José <jose@bücher.example>", cwd=project)
    assert "wrote 1 message(s)" in run("send", "--dry-run", cwd=project)
    [eml] = (project / "outbox" / "dry-run" / week).glob("*.eml")
    assert b"jose@xn--bcher-kva.example" in eml.read_bytes()
    assert "item stubs" in run("new", "--week", "2040-W01", "--items", "2", cwd=project)
    data = {"headline": "Data “in”", "items": [{"title": "One.", "body": "Body, *one*."}]}
    run("new", "--from", "-", "--week", "2040-W02", cwd=project, stdin=json.dumps(data))
    assert "wrote" in run("preview", "--week", "2040-W02", cwd=project)
    assert json.loads(run("schema", "items", cwd=project))["required"] == ["headline", "items"]
    # Next Monday's week has no folder; this week's (on a Monday morning) lacks a postal address.
    upcoming = run("worker", "--next", "1", cwd=project)
    assert "  missing: no folder" in upcoming or "  not ready: " in upcoming
