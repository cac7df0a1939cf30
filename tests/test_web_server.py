"""`newsletter web`: the rules for starting it, and the real server under uvicorn."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from newsletter.audience import subscribers
from newsletter.audience.tokens import make_token
from newsletter.cli.main import cli
from newsletter.config import DEMO_SECRET
from newsletter.errors import ConfigError
from newsletter.store.db import connect
from newsletter.web.server import check_can_serve
from tests.web_helpers import SECRET, row, web_config

NEWSLETTER = str(Path(sys.executable).parent / "newsletter")


@pytest.mark.parametrize(("changes", "refused"), [
    ({"secret_key": ""}, "secret_key"),
    ({"secret_key": DEMO_SECRET}, "secret_key"),
    ({"base_url": "http://news.example.com"}, "base_url"),
    ({"base_url": "http://10.0.0.5:8000"}, "base_url"),
])
def test_it_refuses_to_face_the_public_unsafely(project, changes, refused):
    config = web_config(project, "sqlite:///x.db", **changes)
    with pytest.raises(ConfigError, match=refused):
        check_can_serve(config)


@pytest.mark.parametrize("base_url", ["https://news.example.com", "http://localhost:8000",
                                      "http://127.0.0.1:8000", "http://[::1]:8000"])
def test_plain_http_only_for_loopback(project, base_url):
    check_can_serve(web_config(project, "sqlite:///x.db", base_url=base_url))


def test_the_command_says_what_is_wrong_on_one_line(project, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_BASE_URL", "http://news.example.com")
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET)
    result = CliRunner().invoke(cli, ["web"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: config key 'base_url' must start with https:// for the web app, got "
        "'http://news.example.com' (plain http only for localhost)"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_server_answers_logs_without_tokens_and_stops_cleanly_on_sigterm(
        project, database_url, tmp_path):
    port = free_port()
    engine = connect(database_url)
    sub = subscribers.add(engine, "reader@example.com")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(NEWSLETTER_SECRET_KEY=SECRET, NEWSLETTER_DATABASE_URL=database_url,
               NEWSLETTER_BASE_URL=f"http://127.0.0.1:{port}",
               NEWSLETTER_OUTBOX_DIR=str(tmp_path / "outbox"))
    log = tmp_path / "web.log"
    with log.open("w") as out:
        server = subprocess.Popen([NEWSLETTER, "web", "--port", str(port)], cwd=project,
                                  env=env, stdout=out, stderr=out)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        token = make_token(SECRET, "unsubscribe", sub.id)
        answer = httpx.post(f"{base}/unsubscribe/{token}",
                            content=b"List-Unsubscribe=One-Click",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert answer.status_code == 200
        assert row(engine, "reader@example.com")["status"] == "unsubscribed"
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    text = log.read_text()
    assert "POST /unsubscribe/[token] 200" in text and token not in text
    assert "web: stopped" in text and "Traceback" not in text
