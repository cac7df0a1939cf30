"""The worker's beats and its GET /healthz: the heartbeat and the mailbox's last poll in the
database (and so on /metrics), and the health endpoint served over a real socket: 200 while
all is well, 503 naming the stall or the database, 404 elsewhere, and bounded against hostile
clients (idle, oversized, too many)."""

from __future__ import annotations

import dataclasses
import http.client
import json
import logging
import socket
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from newsletter.clock import utc_now
from newsletter.delivery import beats, ledger
from newsletter.errors import ConfigError
from newsletter.store.db import connect
from newsletter.store.tables import deliveries, sends, service_beats
from newsletter.worker import health, housekeeping
from newsletter.worker.job import Worker
from newsletter.worker.service import serve
from tests.seeding import seed
from tests.web_helpers import web_config

WEEK = "2026-W47"
READERS = ["josé@bücher.example", "zoë@straße.example", "rené@café.example"]
LATER = timedelta(minutes=11)  # past the default stall_after (600 s)

pytestmark = pytest.mark.usefixtures("engines_disposed")


def beat_rows(database_url):
    with connect(database_url).connect() as conn:
        return {row.name: row for row in conn.execute(sa.select(service_beats))}


# -- the beats --------------------------------------------------------------------------------


def test_the_heartbeat_is_one_row_moved_on_each_beat(project, database_url):
    config = web_config(project, database_url)
    first = utc_now()
    assert housekeeping.beat(config, clock=lambda: first)
    assert housekeeping.beat(config, clock=lambda: first + timedelta(seconds=30))
    rows = beat_rows(database_url)
    assert list(rows) == ["worker"]
    assert rows["worker"].beat_at == first + timedelta(seconds=30) and rows["worker"].ok


def test_a_heartbeat_the_database_refuses_is_one_warning(project, caplog):
    config = web_config(project, "postgresql://nobody@127.0.0.1:9/newsletter")
    caplog.set_level(logging.WARNING, logger="newsletter.worker")
    assert not housekeeping.beat(config)
    assert "heartbeat: not recorded" in caplog.text and "Traceback" not in caplog.text


def test_a_failed_mailbox_poll_is_recorded_without_the_password(project, database_url):
    password = "pässwörd-“🔑”"
    config = dataclasses.replace(
        web_config(project, database_url), imap_host="127.0.0.1", imap_port=9,
        imap_username="bounces@bücher.example", imap_password=password, imap_security="none")
    when = utc_now()
    housekeeping.poll_mailbox(config, clock=lambda: when)
    [row] = beat_rows(database_url).values()
    assert (row.name, row.beat_at, row.ok) == ("mailbox", when, False)
    assert row.error and "\n" not in row.error and password not in row.error
    assert "bücher.example" not in row.error


def test_a_recorded_error_is_one_line_with_no_secret_and_no_address():
    line = beats.safe_line("login as josé@bücher.example with s3cr€t\nrefused", ["s3cr€t"])
    assert line == "login as (an address) with (hidden) refused"
    assert len(beats.safe_line("x" * 5000)) == beats.MAX_ERROR


# -- /healthz over a socket -------------------------------------------------------------------


@pytest.fixture
def open_send(database_url):
    engine = seed(database_url, READERS)
    record, _ = ledger.open_send(engine, WEEK, "h" * 64, "Five things ’this’ week",
                                 "postmark")
    return engine, record


class Running:
    """The scheduler's state as the check sees it: None before there is one."""

    def __init__(self, value=True):
        self.value = value

    def __call__(self):
        return self.value


@pytest.fixture
def served(project, database_url):
    """A health server on a free loopback port; (server, config, running, now)."""
    config = web_config(project, database_url)
    running, now = Running(), [utc_now()]
    server = health.HealthServer("127.0.0.1", 0, health.HealthCheck(config, running,
                                                                     clock=lambda: now[0]))
    server.start()
    yield server, config, running, now
    server.close()


def get(port, path="/healthz", method="GET"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        answer = conn.getresponse()
        body = answer.read()
        return answer.status, answer.getheader("Content-Type"), body
    finally:
        conn.close()


def test_healthz_is_200_while_the_scheduler_runs_and_the_database_answers(served, open_send):
    server, config, _, _ = served
    housekeeping.beat(config)
    status, kind, body = get(server.port)
    assert (status, kind) == (200, "application/json")
    answer = json.loads(body)
    assert answer["status"] == "ok" and answer["database"] == "ok" and answer["stalls"] == []
    assert answer["heartbeat"]
    assert get(server.port, method="HEAD")[:2] == (200, "application/json")


def test_a_stalled_send_is_503_with_its_line_and_no_address(served, open_send):
    server, _, _, now = served
    _, record = open_send
    now[0] = utc_now() + LATER
    status, _, body = get(server.port)
    answer = json.loads(body)
    assert status == 503 and answer["status"] == "stalled"
    [line] = answer["stalls"]
    assert line.startswith(f"{WEEK}: send {record.id} stalled, no progress for 1")
    assert "waiting for a sender" in line
    assert "@" not in body.decode()


def test_a_finished_send_is_no_stall(served, open_send):
    server, _, _, now = served
    engine, _ = open_send
    with engine.begin() as conn:
        conn.execute(sends.update().values(status="done"))
        conn.execute(deliveries.update().values(status="sent"))
    now[0] = utc_now() + LATER
    assert get(server.port)[0] == 200


def test_no_scheduler_yet_or_any_more_is_503(served):
    server, _, running, _ = served
    running.value = None
    status, _, body = get(server.port)
    assert status == 503 and json.loads(body)["status"] == "starting"
    running.value = False
    assert json.loads(get(server.port)[2])["status"] == "stopped"


def test_a_database_that_does_not_answer_is_503_and_names_no_host(project, caplog):
    config = web_config(project, "postgresql://nobody:hunter2@127.0.0.1:9/newsletter")
    caplog.set_level(logging.WARNING, logger="newsletter.worker")
    server = health.HealthServer("127.0.0.1", 0, health.HealthCheck(config, Running()))
    server.start()
    try:
        status, _, body = get(server.port)
    finally:
        server.close()
    assert status == 503 and json.loads(body) == {
        "status": "unavailable", "scheduler": "running", "database": "unavailable"}
    assert "healthz: database unavailable" in caplog.text and "hunter2" not in caplog.text


def test_any_other_path_is_404(served):
    server, *_ = served
    for path in ("/", "/metrics", "/healthz/../etc/passwd", "/h%C3%A9lloz"):
        status, _, body = get(server.port, path)
        assert status == 404 and json.loads(body) == {"status": "not found"}
    assert get(server.port, "/healthz?verbose=1")[0] == 200


def raw(port, data: bytes, timeout=10.0) -> bytes:
    """Send ``data`` and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_huge_or_too_many_headers_are_refused_and_the_server_goes_on(served):
    server, *_ = served
    huge = raw(server.port, b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
    assert huge.startswith(b"HTTP/1.0 431")
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(200))
    assert raw(server.port, b"GET /healthz HTTP/1.1\r\n" + many + b"\r\n").startswith(
        b"HTTP/1.0 431")
    assert raw(server.port, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n").startswith(
        b"HTTP/1.0 414")
    garbage = raw(server.port, b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
    assert garbage.startswith(b"HTTP/1.0 400")
    assert garbage.endswith(b'{"status": "bad request"}\n'), "JSON, not the client's words"
    assert get(server.port)[0] == 200


def test_an_idle_connection_is_closed_after_the_read_timeout(served, monkeypatch):
    server, *_ = served
    monkeypatch.setattr(health._Handler, "timeout", 0.2)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as idle:
        assert idle.recv(1) == b"", "the server hung up on it"


def test_a_connection_past_the_deadline_is_cut_however_it_trickles(served, monkeypatch):
    server, *_ = served
    monkeypatch.setattr(health._Handler, "timeout", 30.0)
    monkeypatch.setattr(health, "DEADLINE", 0.2)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as slow:
        slow.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
        assert slow.recv(1) == b""


def test_connections_past_the_bound_are_closed_at_once(project, database_url):
    config = web_config(project, database_url)
    server = health.HealthServer("127.0.0.1", 0, health.HealthCheck(config, Running()),
                                 max_connections=2)
    server.start()
    try:
        held = [socket.create_connection(("127.0.0.1", server.port), timeout=10)
                for _ in range(2)]
        for s in held:
            s.sendall(b"GET /healthz HTTP/1.1\r\n")
        for _ in range(200):  # until the server has taken both in
            if server.busy == 2:
                break
            threading.Event().wait(0.05)
        assert raw(server.port, b"GET /healthz HTTP/1.0\r\n\r\n") == b"", "turned away"
        for s in held:
            s.sendall(b"\r\n")
            assert s.recv(12).startswith(b"HTTP/1.0 200")
            s.close()
        for _ in range(200):  # until both handlers have let their places go
            if server.busy == 0:
                break
            threading.Event().wait(0.05)
        assert get(server.port)[0] == 200
    finally:
        server.close()


# -- in the running worker --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_worker_serves_healthz_on_its_port_and_beats_at_once(project, database_url):
    port = free_port()
    config = web_config(project, database_url, worker_health_port=port)
    stop, status = threading.Event(), []
    worker = Worker(config, send=lambda *a, **k: None)
    thread = threading.Thread(target=lambda: status.append(
        serve(config, worker=worker, install_signals=False, stop=stop)))
    thread.start()
    try:
        answer = None
        for _ in range(100):  # until the server is up and the first beat recorded
            try:
                answer = get(port)
            except OSError:
                answer = None
            if answer and answer[0] == 200 and json.loads(answer[2])["heartbeat"]:
                break
            threading.Event().wait(0.1)
        assert answer is not None and answer[0] == 200, answer
        assert "worker" in beat_rows(database_url)
    finally:
        stop.set()
        thread.join(20)
    assert status == [0]
    with pytest.raises(OSError):
        get(port)  # closed with the worker


def test_a_port_already_taken_is_one_line_naming_the_key(project, database_url):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = web_config(project, database_url, worker_health_port=taken.getsockname()[1])
        with pytest.raises(ConfigError) as caught:
            health.start(config, Running())
    message = str(caught.value)
    assert "'worker_health_port'" in message and "NEWSLETTER_WORKER_HEALTH_PORT" in message
    assert "\n" not in message


def test_the_health_port_must_be_a_port(project):
    with pytest.raises(ConfigError, match="'worker_health_port'"):
        web_config(project, "sqlite:///x.db", worker_health_port=70000)
    assert web_config(project, "sqlite:///x.db").worker_health_port == 0, "off by default"


def test_the_migration_goes_up_and_down(database_url):
    from alembic import command
    from alembic.config import Config as AlembicConfig

    from newsletter.store import db
    from tests.test_migration_delivery import upgrade_to

    engine = db._engine(db.normalize_url(database_url))
    upgrade_to(engine, "0010_alerts")
    assert "service_beats" not in sa.inspect(engine).get_table_names()
    upgrade_to(engine, "0012_service_beats")
    assert "service_beats" in sa.inspect(engine).get_table_names()
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(db.MIGRATIONS_DIR))
    with db.begin_write(engine) as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0010_alerts")
    assert "service_beats" not in sa.inspect(engine).get_table_names()
