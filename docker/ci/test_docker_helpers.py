"""The container helpers on their own, without Docker: the image's health check, the dev mail
catcher (a real aiosmtpd server on a free port) and the container test's verdicts.

    .venv/bin/python -m pytest docker/ci -q      (test-compose.sh runs it first)
"""

from __future__ import annotations

import importlib.util
import json
import os
import smtplib
import socket
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest

DOCKER = Path(__file__).resolve().parent.parent


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


healthcheck = _load("nl_healthcheck", DOCKER / "healthcheck.py")
mailcatcher = _load("nl_mailcatcher", DOCKER / "mailcatcher" / "mailcatcher.py")
checks = _load("nl_checks", DOCKER / "ci" / "checks.py")


# --- the image's HEALTHCHECK ---------------------------------------------------------------

@pytest.mark.parametrize(("cmdline", "expected"), [
    (b"/opt/newsletter/bin/python3\0/opt/newsletter/bin/newsletter\0web\0--host\0"
     b"0.0.0.0\0--port\x008000\0", "web"),
    (b"newsletter\0worker\0", "worker"),
    (b"newsletter\0--config\0/content/web\0worker\0", "worker"),    # a value, not a command
    (b"/sbin/docker-init\0--\0newsletter\0--verbose\0web\0", "web"),  # `init: true`
    (b"newsletter\0send\0--test\0--to\0web@example.com\0", "other"),
    (b"python3\0-m\0newsletter.devtools.fake_provider\0", "other"),
    (b"", "other"),
])
def test_health_role_comes_from_the_main_command(cmdline, expected):
    assert healthcheck.role(healthcheck.main_command(cmdline)) == expected


def test_health_web_port_from_flag_then_environment_then_default():
    argv = ["newsletter", "web", "--port", "9001"]
    assert healthcheck.web_port(argv, {"NEWSLETTER_WEB_PORT": "7000"}) == 9001
    assert healthcheck.web_port(["newsletter", "web", "--port=9002"], {}) == 9002
    assert healthcheck.web_port(["newsletter", "web"], {"NEWSLETTER_WEB_PORT": "7000"}) == 7000
    assert healthcheck.web_port(["newsletter", "web"], {}) == 8000


def test_health_web_check_reports_a_dead_port_as_unhealthy():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ok, detail = healthcheck.check_web(port)  # nothing listens there any more
    assert not ok and f"127.0.0.1:{port}/healthz" in detail


def test_health_worker_port_comes_from_the_environment_and_none_is_zero():
    assert healthcheck.worker_health_port({"NEWSLETTER_WORKER_HEALTH_PORT": "8001"}) == 8001
    for unset in ({}, {"NEWSLETTER_WORKER_HEALTH_PORT": ""},
                  {"NEWSLETTER_WORKER_HEALTH_PORT": "0"},
                  {"NEWSLETTER_WORKER_HEALTH_PORT": "acht"}):
        assert healthcheck.worker_health_port(unset) == 0


def test_health_worker_check_asks_the_worker_s_healthz_and_shows_the_stall():
    from newsletter.worker.health import Answer, HealthServer

    stall = ("2026-W47: send 3 stalled, no progress for 12 min (since 2026-11-16 08:00:00 UTC);"
             " waiting for the provider to answer for 500 recipient(s)")
    answers = [Answer(200, {"status": "ok", "stalls": []}),
               Answer(503, {"status": "stalled", "stalls": [stall]})]
    server = HealthServer("127.0.0.1", 0, lambda: answers.pop(0))
    server.start()
    try:
        assert healthcheck.check_web(server.port) == (
            True, f"http://127.0.0.1:{server.port}/healthz answered 200")
        ok, detail = healthcheck.check_web(server.port)
    finally:
        server.close()
    assert not ok and detail.endswith(f"answered 503: stalled; {stall}")


# --- the dev mail catcher --------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mail_catcher_keeps_each_message_as_an_eml_file(tmp_path):
    from aiosmtpd.controller import Controller

    controller = Controller(mailcatcher.SaveToFolder(tmp_path), hostname="127.0.0.1",
                            port=_free_port(), enable_SMTPUTF8=True, decode_data=False)
    controller.start()
    try:
        message = EmailMessage()
        message["From"] = "Zoë “Zed” O’Brien <zoe@example.org>"
        message["To"] = "José <josé@bücher.example>"
        message["Subject"] = "[TEST] Grüße 🚀"
        message.set_content("Line one\nCurly ’quotes’ and accents: José\n")
        with smtplib.SMTP(controller.hostname, controller.port, timeout=10) as client:
            client.send_message(message)
            client.sendmail("a@example.com", ["b@example.com"], b"Subject: two\r\n\r\nx\r\n")
    finally:
        controller.stop()
    files = sorted(tmp_path.glob("*.eml"))
    assert len(files) == 2
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary file, then renamed
    first = checks.read_message(files[0])
    assert first.get_all("X-Envelope-To") == ["<josé@bücher.example>"]
    assert str(first["Subject"]) == "[TEST] Grüße 🚀"
    assert "José" in first.get_content()


def test_mail_catcher_envelope_lines_cannot_inject_headers():
    lines = mailcatcher.envelope_lines("a@example.com\r\nBcc: x@example.com",
                                       ["b@example.com\nX-Evil: 1"])
    assert lines.count(b"\r\n") == 2  # exactly the two envelope lines
    assert b"\nBcc" not in lines and b"\nX-Evil" not in lines


# --- the container test's verdicts -----------------------------------------------------------

def _records(path: Path, ids: list[str]) -> Path:
    path.write_text("".join(json.dumps({"to": f"r{i}@example.com",
                                        "metadata": {"subscriber_id": i}}) + "\n"
                            for i in ids), encoding="utf-8")
    return path


def test_exactly_once_holds_only_for_every_subscriber_once(tmp_path):
    once = _records(tmp_path / "a", ["1", "2", "3"])
    assert "3 subscribers" in checks.check_exactly_once(once, 3)
    with pytest.raises(checks.Failed, match="more than one copy"):
        checks.check_exactly_once(_records(tmp_path / "b", ["1", "2", "2", "3"]), 3)
    with pytest.raises(checks.Failed, match="2 distinct"):
        checks.check_exactly_once(_records(tmp_path / "c", ["1", "2"]), 3)


def test_unfinished_needs_rows_left_after_a_kill():
    assert "12" in checks.check_unfinished("  30 sent, 0 failed, 2 unknown, 0 skipped, "
                                           "0 pending, 10 in_flight")
    with pytest.raises(checks.Failed):
        checks.check_unfinished("  200 sent, 0 failed, 0 unknown, 0 skipped, 0 pending, "
                                "0 in_flight")


def _message(to: str, subject: str, token: str, post: bool = True) -> bytes:
    message = EmailMessage()
    message["To"] = to
    message["Subject"] = subject
    message["List-Unsubscribe"] = f"<https://news.example/unsubscribe/{token}>"
    if post:
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content("text")
    message.add_alternative("<p>html</p>", subtype="html")
    return bytes(message)


def test_dry_run_finds_the_recipient_by_idn_address_and_returns_the_token(tmp_path):
    (tmp_path / "1.eml").write_bytes(_message("Ada <ada@example.com>", "Hi", "tok1"))
    (tmp_path / "2.eml").write_bytes(_message("José Martí <jose@bücher.example>", "Hi", "tok2"))
    assert checks.check_dry_run(tmp_path, 2, "jose@bücher.example") == "tok2"
    with pytest.raises(checks.Failed, match="3 expected|expected 3"):
        checks.check_dry_run(tmp_path, 3, "jose@bücher.example")


def test_caught_wants_a_test_subject_and_one_click_headers(tmp_path):
    envelope = b"X-Envelope-From: <e@example.com>\r\nX-Envelope-To: <you@example.com>\r\n"
    (tmp_path / "a.eml").write_bytes(envelope + _message("you@example.com", "Weekly", "t"))
    with pytest.raises(checks.Failed, match=r"\[TEST\]"):
        checks.check_caught(tmp_path, ["you@example.com"])
    (tmp_path / "b.eml").write_bytes(envelope + _message("you@example.com", "[TEST] Weekly",
                                                         "t", post=False))
    with pytest.raises(checks.Failed, match="8058"):
        checks.check_caught(tmp_path, ["you@example.com"])
    with pytest.raises(checks.Failed, match="nothing caught for other@example.com"):
        checks.check_caught(tmp_path, ["other@example.com"])


def test_the_generated_list_has_the_awkward_names_first(tmp_path):
    emails = checks.make_csv(tmp_path / "list.csv", 7)
    text = (tmp_path / "list.csv").read_text(encoding="utf-8")
    assert len(emails) == 7 and emails[0].endswith("<jose@bücher.example>")
    assert "Zoë “Zed” O’Brien" in text and "🚀" in text


# --- the monitoring profile's Prometheus entry point ------------------------------------------

ENTRYPOINT = DOCKER / "prometheus" / "entrypoint.sh"


def _run_entrypoint(tmp_path: Path, token: str | None):
    """The entry point under sh, with a stand-in `prometheus` that reports what it was given."""
    fake = tmp_path / "prometheus"
    fake.write_text('#!/bin/sh\necho "args: $*"\n'
                    'echo "env token: ${NEWSLETTER_METRICS_TOKEN:-none}"\n', encoding="utf-8")
    fake.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "PROMETHEUS": str(fake),
           "METRICS_TOKEN_FILE": str(tmp_path / "run" / "metrics_token")}
    if token is not None:
        env["NEWSLETTER_METRICS_TOKEN"] = token
    return subprocess.run(["sh", str(ENTRYPOINT), "--config.file=/etc/p.yml", "--web.x=ü"],
                          env=env, capture_output=True, text=True, timeout=30)


def test_prometheus_entrypoint_writes_the_token_for_prometheus_alone(tmp_path):
    token = "tökén-“quoted”-0123456789"
    done = _run_entrypoint(tmp_path, token)
    assert done.returncode == 0, done.stderr
    written = tmp_path / "run" / "metrics_token"
    assert written.read_text(encoding="utf-8") == token  # no newline added
    assert written.stat().st_mode & 0o777 == 0o600
    assert not list(written.parent.glob("*.tmp"))
    assert "args: --config.file=/etc/p.yml --web.x=ü" in done.stdout
    assert "env token: none" in done.stdout  # taken out of Prometheus's environment
    assert token not in done.stdout + done.stderr


@pytest.mark.parametrize("token", [None, ""])
def test_prometheus_entrypoint_without_a_token_stops_with_one_line(tmp_path, token):
    done = _run_entrypoint(tmp_path, token)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "NEWSLETTER_METRICS_TOKEN is not set" in done.stderr
    assert not (tmp_path / "run" / "metrics_token").exists()


# --- Prometheus's answers, as test-compose reads them ----------------------------------------

class FakePrometheus:
    """Prometheus's HTTP API as ``checks.check_prometheus_up`` calls it: one answer of
    /api/v1/targets per poll, in order, and a clock that moves a second per sleep."""

    def __init__(self, polls, config=None):
        self.polls, self.config, self.now, self.asked = list(polls), config or {}, 0.0, []

    def fetch(self, base, path):
        self.asked.append(path)
        if path.startswith("/api/v1/targets?"):
            return {"activeTargets": self.polls.pop(0) if len(self.polls) > 1 else self.polls[0]}
        return self.config

    def sleep(self, seconds):
        self.now += seconds


def _target(health, error=""):
    return {"labels": {"job": "newsletter"}, "scrapeUrl": "http://web:8000/metrics",
            "health": health, "lastError": error, "lastScrapeDuration": 0.012}


def _up(fake, wait=10.0, secret=""):
    return checks.check_prometheus_up("http://prom", "newsletter", wait, fetch=fake.fetch,
                                      clock=lambda: fake.now, sleep=fake.sleep, secret=secret)


def test_prometheus_up_waits_for_the_first_good_scrape():
    fake = FakePrometheus([[], [_target("unknown")], [_target("up")]])
    assert "http://web:8000/metrics up" in _up(fake)
    assert fake.now == 2.0


def test_prometheus_not_up_in_time_fails_with_its_last_error():
    fake = FakePrometheus([[_target("down", "server returned HTTP status 401 Unauthorized")]])
    with pytest.raises(checks.Failed, match=r"not up within 10 s: .*web:8000.* down: "
                                            r"server returned HTTP status 401"):
        _up(fake)
    with pytest.raises(checks.Failed, match="no such target"):
        _up(FakePrometheus([[]]), wait=3)


def test_prometheus_up_fails_when_an_answer_shows_the_token():
    leaky = FakePrometheus([[_target("up")]], config={"yaml": "credentials: sekrit-tökén"})
    with pytest.raises(checks.Failed, match="metrics token"):
        _up(leaky, secret="sekrit-tökén")
    masked = FakePrometheus([[_target("up")]], config={"yaml": "credentials: <secret>"})
    assert "up" in _up(masked, secret="sekrit-tökén")
    assert "/api/v1/status/config" in masked.asked


def test_dashboard_queries_fill_in_grafana_variables(tmp_path):
    dashboard = tmp_path / "d.json"
    dashboard.write_text(json.dumps({"panels": [
        {"title": "Zählung", "targets": [{"expr": "rate(x_total[$__rate_interval])"}]},
        {"type": "row", "title": "Web", "panels": [
            {"title": "“p95”", "targets": [{"expr": "max(y)"}, {"expr": "z[$__range]"}]}]},
    ]}, ensure_ascii=False), encoding="utf-8")
    assert checks.dashboard_queries(dashboard) == [
        ("Zählung", "rate(x_total[1m])"), ("“p95”", "max(y)"), ("“p95”", "z[1h]")]
