"""A local fake email provider for tests, benchmarks and trying a configuration.

It answers Postmark's ``POST /email/batch`` and Resend's ``POST /emails/batch`` the way the
real services do (and, more simply, SendGrid's ``/v3/mail/send``, Mailgun's
``/v3/<domain>/messages`` and SES's ``/v2/email/outbound-emails``, for benchmarks), records
every message it accepts, and misbehaves on request: latency, 429
storms, 5xx bursts, connections dropped before or after accepting a batch, answers slower than
the client's timeout, and per-message failures for addresses containing a marker. Resend's
``Idempotency-Key`` is honoured as Resend documents it: a repeated key with the same body returns
the first answer and sends nothing; with another body it is refused (409
``invalid_idempotent_request``), and while the first request is still running, a second one
is refused too (409 ``concurrent_idempotent_requests``). ``script`` plays a fixed sequence of
faults, one per batch request, for tests that need an exact order of events.

    python -m newsletter.devtools.fake_provider --port 8025 --latency-ms 20 --record sent.jsonl

then ``provider = "postmark"`` (or ``"resend"``) with
``provider_base_url = "http://127.0.0.1:8025"``. ``GET /_fake/messages`` lists what was
accepted, ``GET /_fake/stats`` counts requests, bytes and messages, and ``POST /_fake/faults``
changes the faults (a JSON body with ``Faults`` fields).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import threading
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path

from .fake_http import Server, handler
from .fake_model import FAULT_HELP, Faults, Record

__all__ = ["FakeProvider", "Faults", "Record", "main"]


class FakeProvider:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0,
                 faults: Faults | None = None, record_path: Path | None = None, seed: int = 0):
        self.latency = latency
        self.faults = faults or Faults()
        self.record_path = Path(record_path) if record_path else None
        # A provider remembers what it took: a fake started again on the same record file
        # finds (and searches) what it accepted before.
        self.records: list[Record] = _recorded(self.record_path)
        self.requests = 0
        self.searches = 0  # search requests (GET) answered, by all providers
        self.bytes_received = 0
        self._idempotent: dict[str, tuple[str, tuple[int, bytes]]] = {}
        self._running_keys: set[str] = set()
        # Called with each accepted batch's records before the answer goes out: tests trigger
        # on it ("once the provider has accepted a batch") instead of on a timer.
        self.on_accept: Callable[[list[Record]], None] | None = None
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._server = Server((host, port), handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeProvider:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def recipients(self) -> list[str]:
        with self._lock:
            return [r.to for r in self.records]

    # -- request handling, called from server threads -------------------------------------

    def roll(self, p: float) -> bool:
        with self._lock:
            return p > 0 and self._random.random() < p

    def accept(self, records: list[Record]) -> None:
        with self._lock:
            self.records.extend(records)
            if self.record_path:
                with self.record_path.open("a", encoding="utf-8") as fh:
                    for r in records:
                        fh.write(json.dumps(asdict(r)) + "\n")
        if self.on_accept is not None:
            self.on_accept(records)

    def scripted(self, number: int) -> str:
        """The scripted fault for the ``number``-th batch request ('' when none)."""
        steps = [s.strip() for s in self.faults.script.split(",") if s.strip()]
        return steps[number - 1] if number <= len(steps) else ""

    def idempotent_answer(self, key: str, digest: str) -> tuple[int, bytes] | None:
        """The first answer for ``key``; a 409 when the key is running or carried another
        body. Marks the key running otherwise (``remember`` or ``release`` ends that)."""
        with self._lock:
            if key in self._running_keys:
                return 409, json.dumps({"statusCode": 409, "name": "concurrent_idempotent_"
                                        "requests", "message": "Same idempotency key used "
                                        "while original request is still in progress"}).encode()
            seen = self._idempotent.get(key)
            if seen is None:
                self._running_keys.add(key)
                return None
            if seen[0] != digest:
                return 409, json.dumps({"statusCode": 409, "name": "invalid_idempotent_request",
                                        "message": "Same idempotency key used with a "
                                        "different request payload"}).encode()
            return seen[1]

    def remember(self, key: str, digest: str, answer: tuple[int, bytes]) -> None:
        with self._lock:
            self._idempotent[key] = (digest, answer)
            self._running_keys.discard(key)

    def release(self, key: str) -> None:
        with self._lock:
            self._running_keys.discard(key)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m newsletter.devtools.fake_provider",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on "
                        "(default: %(default)s)")
    parser.add_argument("--port", type=int, default=8025,
                        help="port to listen on; 0 picks a free one (default: %(default)s)")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="wait this long before answering each request (default: 0)")
    parser.add_argument("--record", type=Path, default=None, help="append accepted messages "
                        "to this JSON-lines file")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed for the random faults, so a run can be repeated")
    for f in fields(Faults):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default),
                            default=f.default, help=FAULT_HELP.get(f.name))
    args = parser.parse_args(argv)
    faults = Faults(**{f.name: getattr(args, f.name) for f in fields(Faults)})
    fake = FakeProvider(host=args.host, port=args.port, latency=args.latency_ms / 1000,
                        faults=faults, record_path=args.record, seed=args.seed)
    print(f"fake provider listening on {fake.base_url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        fake._server.serve_forever()


def _recorded(path: Path | None) -> list[Record]:
    if path is None or not path.exists():
        return []
    with path.open(encoding="utf-8") as fh:
        return [Record(**json.loads(line)) for line in fh if line.strip()]


if __name__ == "__main__":
    main()

