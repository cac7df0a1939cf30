"""``newsletter check`` as a user runs it: the report on one screen with a summary line, exit
status 1 on an error, JSON for scripts, and the refresh of the email-client data (from a
local HTTP server standing in for caniemail.com) into the project, which check then reads."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from tests.test_preflight_caniemail import MINI, server  # noqa: F401 (a fixture)

WEEK = "2026-W47"


def run(*args: str, env: dict | None = None):
    return CliRunner(env=env).invoke(cli, ["check", *args])


def test_the_sample_is_ready_to_send_on_one_screen(project):
    result = run("--week", WEEK)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "2026-W47: Five Things | Small Teams’ Long Memories"
    assert lines[-1].endswith("ready to send") and "not ready" not in lines[-1]
    assert len(lines) <= 40 and max(map(len, lines)) <= 100


def test_an_edition_with_an_error_exits_1_and_says_how_to_fix_it(project):
    week = project / "items" / "2026-W48"
    shutil.copytree(project / "items" / WEEK, week)
    item = sorted(week.glob("0*.md"))[0]
    item.write_text(item.read_text(encoding="utf-8") + "\nMore at [José’s notes]"
                    "(http://bücher.example/notes) and {{ recipient.nickname }}.\n",
                    encoding="utf-8")
    (week / "edition.md").write_text("---\nheadline: Small Teams’ Long Memories 🎉\n---\n",
                                     encoding="utf-8")

    result = run("--week", "2026-W48")

    assert result.exit_code == 1
    assert "not ready to send" in result.output.splitlines()[-1]
    assert "[links.http]" in result.output and "fix:" in result.output
    assert "Traceback" not in result.output


def test_json_for_scripts(project):
    result = run("--week", WEEK, "--format", "json")
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert report["ready"] is True and report["counts"]["error"] == 0
    assert {"severity", "area", "code", "message", "fix"} <= set(report["findings"][0])


def test_over_smtp_without_dkim_keys_it_warns_and_with_them_it_shows_the_signature(
        project, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    env = {"NEWSLETTER_PROVIDER": "smtp", "NEWSLETTER_SECRET_KEY": "k" * 32}
    unsigned = run("--week", WEEK, "--format", "json", env=env)
    codes = [f["code"] for f in json.loads(unsigned.output)["findings"]]
    assert unsigned.exit_code == 0 and "message.dkim-unsigned" in codes

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    env |= {"NEWSLETTER_DKIM_SELECTOR": "nl2026", "NEWSLETTER_DKIM_PRIVATE_KEY": pem}
    signed = run("--week", WEEK, "--format", "json", env=env)
    findings = {f["code"]: f for f in json.loads(signed.output)["findings"]}
    assert "message.dkim-unsigned" not in findings
    assert "selector nl2026" in findings["message.dkim-signed"]["message"]


def test_a_missing_week_is_one_line(project):
    result = run("--week", "2026-W01")
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and result.output.startswith("error: ")
    assert "2026-W01" in result.output


def test_refreshed_client_data_lands_beside_the_config_and_is_used(project, server):  # noqa: F811
    base, routes = server
    routes["/api/data.json"] = (200, MINI.read_bytes())

    result = run("--refresh-client-data", "--source", f"{base}/api/data.json")

    assert result.exit_code == 0, result.output
    assert result.output == (f"wrote {project / 'caniemail.json'}: caniemail data of "
                             "2025-03-01 10:00:00 +0000\n")
    assert (project / "caniemail.json").read_bytes() == MINI.read_bytes()
    report = json.loads(run("--week", WEEK, "--format", "json").output)
    old = [f["message"] for f in report["findings"] if f["code"] == "clients.data-old"]
    assert old and "2025-03-01" in old[0]


def test_a_failed_refresh_is_one_line_and_keeps_the_old_copy(project, server, tmp_path):  # noqa: F811
    base, routes = server
    routes["/api/data.json"] = (503, b"busy")
    dest = tmp_path / "kept.json"
    dest.write_bytes(MINI.read_bytes())

    result = run("--refresh-client-data", "--to", str(dest), "--source",
                 f"{base}/api/data.json")

    assert result.exit_code == 1
    assert result.output == f"error: {base}/api/data.json: HTTP 503: busy\n"
    assert dest.read_bytes() == MINI.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.json", "project"]


def test_refresh_options_do_not_mix_with_a_check(project):
    assert run("--to", "x.json").exit_code == 2
    assert run("--refresh-client-data", "--dns").exit_code == 2


def test_the_check_a_send_runs_in_a_child_process_finds_the_same_and_raises_the_same(project):
    from newsletter.config import load_config
    from newsletter.edition.render import render_week
    from newsletter.errors import NewsletterError
    from newsletter.preflight.isolated import check_hashed_apart
    from newsletter.preflight.project import check_week

    config = load_config(project / "newsletter.toml")
    (apart, checked), here = check_hashed_apart(config, WEEK), check_week(config, WEEK)
    assert checked == render_week(config, WEEK).content_hash
    assert [(f.code, f.message) for f in apart.findings] == \
        [(f.code, f.message) for f in here.findings]
    with pytest.raises(NewsletterError, match="2026-W01"):
        check_hashed_apart(config, "2026-W01")
