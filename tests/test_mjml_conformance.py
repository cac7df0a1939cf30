"""Our MJML against the reference renderer (the npm ``mjml`` package).

mjml-python renders the template in production; the reference implementation checks it:
the template must pass MJML's strict validation (mjml-python ignores unknown attributes
silently), and both renderers must produce the same text, links, columns and @media rules.
`make test` installs the pinned reference renderer into .mjml/ when npm is available.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
from pathlib import Path

import mjml
import pytest

from newsletter.config import load_config
from newsletter.edition import render
from newsletter.edition.content import load_edition

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / ".mjml" / "node_modules" / ".bin" / "mjml"


@pytest.fixture(scope="module")
def reference() -> Path:
    if not REFERENCE.exists():
        if os.environ.get("CI"):
            pytest.fail(f"the reference MJML renderer is missing: {REFERENCE}")
        pytest.skip("reference MJML renderer not installed (make test installs it with npm)")
    return REFERENCE


@pytest.fixture
def mjml_source(project) -> str:
    config = load_config(project / "newsletter.toml", environ={})
    edition = load_edition(config.items_dir, "2026-W47")
    env = render._environment(config.templates_dir)
    context = render._context(config, edition, render.RecipientMarkers("nlconformance"))
    return render._render_template(env, render.HTML_TEMPLATE, context)


def reference_html(reference: Path, source: str, tmp_path: Path) -> str:
    src, out = tmp_path / "edition.mjml", tmp_path / "edition.html"
    src.write_text(source, encoding="utf-8")
    result = subprocess.run(
        [str(reference), "--config.validationLevel=strict", str(src), "-o", str(out)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, f"MJML strict validation failed:\n{result.stderr}"
    return out.read_text(encoding="utf-8")


def visible_text(page: str) -> str:
    page = re.sub(r"<!--.*?-->", " ", page, flags=re.S)
    page = re.sub(r"<(style|title)[^>]*>.*?</\1>", " ", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def media_queries(page: str) -> set[str]:
    return {re.sub(r"\s+", "", m) for m in re.findall(r"@media[^{]+", page)}


def test_the_template_passes_strict_validation_and_matches_the_reference(
        reference, mjml_source, tmp_path):
    ours = mjml.mjml2html(mjml_source)
    theirs = reference_html(reference, mjml_source, tmp_path)
    assert visible_text(ours) == visible_text(theirs)
    assert re.findall(r'href="([^"]+)"', ours) == re.findall(r'href="([^"]+)"', theirs)
    assert media_queries(ours) == media_queries(theirs)
    columns = re.compile(r"mj-column-per-\d+")
    assert set(columns.findall(ours)) == set(columns.findall(theirs))


def test_strict_validation_catches_what_mjml_python_ignores(reference, mjml_source, tmp_path):
    broken = mjml_source.replace("<mj-divider ", '<mj-divider colour="red" ', 1)
    mjml.mjml2html(broken)  # no complaint here...
    with pytest.raises(AssertionError, match="strict validation failed"):
        reference_html(reference, broken, tmp_path)  # ...but the reference refuses it
