"""Refreshing the caniemail data: download to a temp file, check, rename; never half-written.

A local HTTP server (http.server in a thread) stands in for caniemail.com.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from newsletter.preflight import caniemail

MINI = Path(__file__).parent / "data" / "preflight" / "caniemail-mini.json"


class _Handler(BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, bytes]] = {}

    def do_GET(self):
        status, body = self.routes.get(self.path, (404, b"no such file"))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    routes: dict[str, tuple[int, bytes]] = {}
    handler = type("Handler", (_Handler,), {"routes": routes})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", routes
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def installed(tmp_path):
    """A data file as shipped (older), to be replaced."""
    dest = tmp_path / "data" / "caniemail.json"
    dest.parent.mkdir()
    old = json.loads(MINI.read_text(encoding="utf-8"))
    old["last_update_date"] = "2024-01-01 00:00:00 +0000"
    dest.write_text(json.dumps(old), encoding="utf-8")
    return dest


def leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.parent.iterdir() if p != dest)


def test_refresh_replaces_the_file_with_the_download(server, installed):
    base, routes = server
    routes["/api/data.json"] = (200, MINI.read_bytes())
    catalog = caniemail.refresh(installed, url=f"{base}/api/data.json")
    assert catalog.updated == "2025-03-01 10:00:00 +0000"
    assert installed.read_bytes() == MINI.read_bytes()
    assert caniemail.load(installed).updated == "2025-03-01 10:00:00 +0000"
    assert leftovers(installed) == []


@pytest.mark.parametrize("status, body, words", [
    (404, b"Not Found", "HTTP 404: Not Found"),
    (503, b"<html>busy</html>", "HTTP 503"),
    (200, b'{"data": [', "not valid JSON"),
    (200, b'{"hello": "world"}', "not caniemail's feature data"),
    (200, "[\"“José”\"]".encode(), "not caniemail's feature data"),
])
def test_a_failed_download_leaves_the_old_file_in_place(server, installed, status, body, words):
    base, routes = server
    routes["/api/data.json"] = (status, body)
    before = installed.read_bytes()
    with pytest.raises(caniemail.CatalogError) as caught:
        caniemail.refresh(installed, url=f"{base}/api/data.json")
    assert words in str(caught.value)
    assert f"{base}/api/data.json" in str(caught.value)
    assert installed.read_bytes() == before
    assert leftovers(installed) == []


def test_a_server_that_does_not_answer_leaves_the_old_file_in_place(installed):
    before = installed.read_bytes()

    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    client = httpx.Client(transport=httpx.MockTransport(refuse))
    with pytest.raises(caniemail.CatalogError, match="download failed: connection refused"):
        caniemail.refresh(installed, url="https://www.caniemail.com/api/data.json",
                          client=client)
    assert installed.read_bytes() == before
    assert leftovers(installed) == []


def test_an_oversized_download_is_refused(server, installed, monkeypatch):
    base, routes = server
    routes["/big"] = (200, b" " * 2048)
    monkeypatch.setattr(caniemail, "MAX_BYTES", 1024)
    with pytest.raises(caniemail.CatalogError, match="more than"):
        caniemail.refresh(installed, url=f"{base}/big")
    assert leftovers(installed) == []


def test_a_destination_that_cannot_be_written_is_a_one_line_error(tmp_path):
    with pytest.raises(caniemail.CatalogError, match=r"missing/caniemail\.json: cannot write"):
        caniemail.refresh(tmp_path / "missing" / "caniemail.json", url="http://127.0.0.1:9/x")


def test_loading_a_missing_or_broken_file_is_a_one_line_error(tmp_path):
    with pytest.raises(caniemail.CatalogError, match="cannot read"):
        caniemail.load(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(caniemail.CatalogError, match=r"broken\.json: not valid JSON"):
        caniemail.load(broken)
