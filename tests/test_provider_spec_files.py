"""The providers' API descriptions the spec tests read are part of the project: a fresh clone
runs every spec test instead of skipping it."""

from pathlib import Path

from tests.provider_specs import SPECS

HERE = Path(__file__).resolve().parent / "provider-specs"
SES_MODEL = "amazon-ses/sesv2-2019-09-27-service-2.json"


def test_every_spec_the_tests_read_is_in_the_repository_with_its_source():
    for relative in [*SPECS.values(), SES_MODEL]:
        path = HERE / relative
        assert path.is_file() and path.stat().st_size > 10_000, relative
        sources = (path.parent / "SOURCES.md").read_text(encoding="utf-8")
        assert f"| {path.name} | https://github.com/" in sources, f"{relative}: no source noted"


def test_only_files_the_tests_read_are_kept():
    kept = {str(p.relative_to(HERE)) for p in HERE.rglob("*") if p.is_file()}
    wanted = {*SPECS.values(), SES_MODEL, "README.md"}
    wanted |= {str(Path(v).parent / "SOURCES.md") for v in [*SPECS.values(), SES_MODEL]}
    assert kept == wanted
