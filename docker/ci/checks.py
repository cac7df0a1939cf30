"""Inputs and verdicts for the container tests (docker/ci/test-compose.sh), on the host.

Each subcommand prints what it found and exits 0 when it holds, 1 with one line on stderr
when it does not. Standard library only: it runs on the host's Python, outside the image.

    checks.py make-csv FILE N            N subscribers, with non-ASCII names and an IDN domain
    checks.py make-bad-csv FILE          one good new row and one bad address
    checks.py dry-run DIR N EMAIL        N messages in DIR; prints EMAIL's unsubscribe token
    checks.py caught DIR EMAIL...        a [TEST] message reached the catcher for each EMAIL
    checks.py exactly-once FILE N        N distinct subscribers in the fake's record, once each
    checks.py count JSON STATUS N        `subscribers count --format json` shows N STATUS
    checks.py status-unfinished TEXT     `newsletter status` shows rows still pending/in flight
    checks.py http URL STATUS [BODY]     GET (or POST BODY, urlencoded) answers STATUS
    checks.py prometheus-up URL JOB SECS Prometheus at URL scrapes JOB's targets as up within
                                         SECS; $CHECK_SECRET, if set, is in none of its answers
    checks.py prometheus-query URL EXPR  the query answers at least one series; prints them
    checks.py prometheus-dashboard URL FILE  each PromQL expression of the Grafana dashboard
                                         FILE is accepted by Prometheus at URL
"""

from __future__ import annotations

import collections
import csv
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

# The awkward ones first, so a small N still has them; the rest are plain.
SPECIAL_ROWS = [
    ("José Martí <jose@bücher.example>", "", "Havana"),
    ("zoe@example.org", "Zoë “Zed” O’Brien", "Dublin"),
    ("ana@example.com", "Ana 🚀 Lima", "São Paulo"),
    ("unal@example.net", "Ünal Çelik", "İzmir"),
    ("liu@example.com", "刘洋", "北京"),
]


class Failed(Exception):
    """A check that does not hold; its message is the one line printed."""


def make_csv(path: Path, n: int) -> list[str]:
    rows = list(SPECIAL_ROWS[:n])
    rows += [(f"reader{i:04d}@example.com", f"Reader {i} Ñandú", "Springfield")
             for i in range(len(rows), n)]
    _write_csv(path, rows)
    return [r[0] for r in rows]


def make_bad_csv(path: Path) -> None:
    _write_csv(path, [("newcomer@example.com", "Newcomer", "Lyon"),
                      ("not-an-address", "Broken", "Nowhere")])


def _write_csv(path: Path, rows: list[tuple[str, str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["email", "name", "city"])
        writer.writerows(rows)


def read_message(path: Path) -> EmailMessage:
    with path.open("rb") as fh:
        return BytesParser(policy=policy.default).parse(fh)


def unsubscribe_token(message: EmailMessage) -> str:
    """The token in the https target of List-Unsubscribe (``<https://.../unsubscribe/T>``)."""
    header = str(message.get("List-Unsubscribe", ""))
    match = re.search(r"<https?://[^>]*/unsubscribe/([^>/?#]+)>", header)
    if not match:
        raise Failed(f"no https unsubscribe link in List-Unsubscribe: {header!r}")
    return match.group(1)


def check_list_headers(message: EmailMessage, where: str) -> None:
    if str(message.get("List-Unsubscribe-Post", "")) != "List-Unsubscribe=One-Click":
        raise Failed(f"{where}: no RFC 8058 List-Unsubscribe-Post header")
    if message.get_content_type() != "multipart/alternative":
        raise Failed(f"{where}: {message.get_content_type()}, not multipart/alternative")
    kinds = [part.get_content_type() for part in message.iter_parts()]
    if kinds != ["text/plain", "text/html"]:
        raise Failed(f"{where}: parts {kinds}, expected text/plain then text/html")


def check_dry_run(folder: Path, n: int, email: str) -> str:
    files = sorted(folder.glob("*.eml"))
    if len(files) != n:
        raise Failed(f"{folder}: {len(files)} .eml file(s), expected {n}")
    wanted = email.casefold()
    for path in files:
        message = read_message(path)
        check_list_headers(message, path.name)
        to = message["To"]
        addresses = [a.addr_spec.casefold() for a in to.addresses] if to else []
        if wanted in addresses or _ascii_domain(wanted) in addresses:
            return unsubscribe_token(message)
    raise Failed(f"{folder}: no message to {email}")


def _ascii_domain(address: str) -> str:
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.encode('idna').decode('ascii')}"


def check_caught(folder: Path, emails: list[str]) -> list[str]:
    found = collections.defaultdict(list)
    for path in sorted(folder.glob("*.eml")):
        message = read_message(path)
        envelope = [str(v).strip("<>").casefold() for v in message.get_all("X-Envelope-To", [])]
        subject = str(message.get("Subject", ""))
        for rcpt in envelope:
            found[rcpt].append((path.name, subject, message))
    report = []
    for email in emails:
        hits = found.get(email.casefold()) or found.get(_ascii_domain(email.casefold()))
        if not hits:
            raise Failed(f"{folder}: nothing caught for {email} (caught: {sorted(found)})")
        name, subject, message = hits[-1]
        if not subject.startswith("[TEST]"):
            raise Failed(f"{name}: subject {subject!r} does not start with [TEST]")
        check_list_headers(message, name)
        report.append(f"{email}: {name} {subject!r}")
    return report


def check_exactly_once(path: Path, n: int) -> str:
    counts: collections.Counter[str] = collections.Counter()
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        record = json.loads(line)
        subscriber = (record.get("metadata") or {}).get("subscriber_id")
        if not subscriber:
            raise Failed(f"{path}:{line_no}: a message without metadata.subscriber_id")
        counts[subscriber] += 1
    twice = sorted(s for s, c in counts.items() if c > 1)
    if twice:
        raise Failed(f"{path}: {len(twice)} subscriber(s) got more than one copy, e.g. {twice[:5]}")
    if len(counts) != n:
        raise Failed(f"{path}: {len(counts)} distinct subscriber(s) received it, expected {n}")
    return f"{n} subscribers, one message each"


def check_count(raw: str, status: str, n: int) -> str:
    counts = json.loads(raw)
    if counts.get(status, 0) != n:
        raise Failed(f"{counts.get(status, 0)} {status} subscriber(s), expected {n}: {counts}")
    return f"{n} {status}"


def check_unfinished(text: str) -> str:
    numbers = {state: int(count) for count, state in re.findall(r"(\d+) (\w+)", text)}
    left = numbers.get("pending", 0) + numbers.get("in_flight", 0) + numbers.get("unknown", 0)
    if not left:
        raise Failed(f"the killed send left nothing unfinished: {text.strip()!r}")
    return f"{left} recipient(s) unfinished after the kill"


def check_http(url: str, status: int, body: str | None) -> str:
    data = body.encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    if data is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            got = answer.status
    except urllib.error.HTTPError as exc:
        got = exc.code
    except OSError as exc:
        raise Failed(f"{request.method} {url}: {exc}") from None
    if got != status:
        raise Failed(f"{request.method} {url} answered {got}, expected {status}")
    return f"{request.method} {url}: {got}"


def prometheus_api(base: str, path: str, params: dict[str, str] | None = None) -> Any:
    """The ``data`` of a Prometheus HTTP API answer; its own error message when it refuses."""
    url = base.rstrip("/") + path + ("?" + urllib.parse.urlencode(params) if params else "")
    try:
        with urllib.request.urlopen(url, timeout=15) as answer:
            body = json.load(answer)
    except urllib.error.HTTPError as exc:
        try:
            body = json.load(exc)
        except ValueError:
            raise Failed(f"GET {url} answered {exc.code}") from None
    except (OSError, ValueError) as exc:
        raise Failed(f"GET {url}: {exc}") from None
    if body.get("status") != "success":
        raise Failed(f"GET {url}: {body.get('errorType')}: {body.get('error')}")
    return body["data"]


def check_prometheus_up(base: str, job: str, wait: float, *,
                        fetch: Callable[[str, str], Any] = prometheus_api,
                        clock: Callable[[], float] = time.monotonic,
                        sleep: Callable[[float], None] = time.sleep,
                        secret: str = "") -> str:
    """Poll the active targets until every one of ``job`` is up; else fail with what
    Prometheus last said of them (its ``lastError``)."""
    deadline = clock() + wait
    while True:
        targets = [t for t in fetch(base, "/api/v1/targets?state=active")["activeTargets"]
                   if t.get("labels", {}).get("job") == job]
        if targets and all(t.get("health") == "up" for t in targets):
            break
        if clock() >= deadline:
            said = "; ".join(f"{t.get('scrapeUrl')} {t.get('health')}: "
                             f"{t.get('lastError') or 'not scraped yet'}" for t in targets)
            raise Failed(f"Prometheus's job {job!r} not up within {wait:g} s: "
                         f"{said or 'no such target'}")
        sleep(1.0)
    if secret:
        for path in ("/api/v1/targets", "/api/v1/status/config", "/api/v1/status/flags"):
            if secret in json.dumps(fetch(base, path), ensure_ascii=False):
                raise Failed(f"Prometheus shows the metrics token in {path}")
    return "; ".join(f"{t['scrapeUrl']} up, last scrape {t.get('lastScrapeDuration', 0):.3f} s"
                     for t in targets)


def check_prometheus_query(base: str, expr: str) -> str:
    data = prometheus_api(base, "/api/v1/query", {"query": expr})
    series = data.get("result") or []
    if not series:
        raise Failed(f"Prometheus has no series for {expr!r} yet")
    return "\n".join(_series_line(s) for s in series)


def _series_line(series: dict[str, Any]) -> str:
    labels = dict(series.get("metric", {}))
    name = labels.pop("__name__", "")
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}} {series.get('value', [None, '?'])[1]}"


# Grafana's own variables, as it would fill them in for a query of the last hour.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def dashboard_queries(path: Path) -> list[tuple[str, str]]:
    """(panel title, expression) for every query of a Grafana dashboard, rows' panels too."""
    found = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            for target in panel.get("targets", []):
                expr = target.get("expr", "")
                for name, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(name, value)
                found.append((panel.get("title", "?"), expr))
            walk(panel.get("panels", []))

    walk(json.loads(path.read_text(encoding="utf-8"))["panels"])
    return found


def check_prometheus_dashboard(base: str, path: Path) -> str:
    queries = dashboard_queries(path)
    with_data = 0
    for title, expr in queries:
        try:
            data = prometheus_api(base, "/api/v1/query", {"query": expr})
        except Failed as exc:
            raise Failed(f"{path.name}: panel {title!r}: {exc}") from None
        with_data += bool(data.get("result"))
    return f"{len(queries)} dashboard queries accepted by Prometheus, {with_data} with data now"


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    command, args = argv[0], argv[1:]
    try:
        if command == "make-csv":
            print("\n".join(make_csv(Path(args[0]), int(args[1]))))
        elif command == "make-bad-csv":
            make_bad_csv(Path(args[0]))
        elif command == "dry-run":
            print(check_dry_run(Path(args[0]), int(args[1]), args[2]))
        elif command == "caught":
            print("\n".join(check_caught(Path(args[0]), args[1:])))
        elif command == "exactly-once":
            print(check_exactly_once(Path(args[0]), int(args[1])))
        elif command == "count":
            print(check_count(args[0], args[1], int(args[2])))
        elif command == "status-unfinished":
            print(check_unfinished(args[0]))
        elif command == "http":
            print(check_http(args[0], int(args[1]), args[2] if len(args) > 2 else None))
        elif command == "prometheus-up":
            print(check_prometheus_up(args[0], args[1], float(args[2]),
                                      secret=os.environ.get("CHECK_SECRET", "")))
        elif command == "prometheus-query":
            print(check_prometheus_query(args[0], args[1]))
        elif command == "prometheus-dashboard":
            print(check_prometheus_dashboard(args[0], Path(args[1])))
        else:
            print(f"unknown check {command!r}", file=sys.stderr)
            return 2
    except Failed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
