"""A local mail catcher for the `dev` profile: accept every message over SMTP, deliver none.

Each message is written to the output folder as ``<time>-<n>.eml`` (the bytes as received,
headed by ``X-Envelope-From`` and ``X-Envelope-To`` lines), through a temporary file and a
rename, so a reader never sees half a message, and only then is the client told 250. UTF-8
envelopes (SMTPUTF8) and 8-bit bodies are accepted.

    python mailcatcher.py --host 0.0.0.0 --port 1025 --out /mail
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import time
from pathlib import Path

from aiosmtpd.controller import Controller


def envelope_lines(mail_from: str, rcpt_tos: list[str]) -> bytes:
    """The envelope as header lines; CR and LF are dropped so they cannot start a new header."""

    def clean(value: str) -> str:
        return value.replace("\r", "").replace("\n", "")

    lines = [f"X-Envelope-From: <{clean(mail_from)}>"]
    lines += [f"X-Envelope-To: <{clean(rcpt)}>" for rcpt in rcpt_tos]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


class SaveToFolder:
    """aiosmtpd handler: one file per message in ``out``."""

    def __init__(self, out: Path):
        self.out = out
        self._numbers = itertools.count(1)

    async def handle_DATA(self, server, session, envelope) -> str:
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8")
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{next(self._numbers):06d}.eml"
        tmp = self.out / f".{name}.tmp"
        tmp.write_bytes(envelope_lines(envelope.mail_from, envelope.rcpt_tos) + data)
        os.replace(tmp, self.out / name)
        print(f"caught {name} from <{envelope.mail_from}> to "
              f"{', '.join(f'<{r}>' for r in envelope.rcpt_tos)}", flush=True)
        return "250 Message accepted for delivery"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--out", type=Path, default=Path("mail"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    controller = Controller(SaveToFolder(args.out), hostname=args.host, port=args.port,
                            enable_SMTPUTF8=True, decode_data=False,
                            data_size_limit=50 * 1024 * 1024)
    controller.start()
    print(f"mail catcher listening on {args.host}:{args.port}, writing to {args.out}", flush=True)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        loop.run_until_complete(stop.wait())
    finally:
        controller.stop()
        loop.close()


if __name__ == "__main__":
    main()
