"""An SMTP sink for the peer benchmark: accepts every message, answers after a set latency.

Built on aiosmtpd, with one change: DATA is read whole (up to the terminating ``.`` line) in
one ``readuntil`` and un-stuffed with one ``replace``, instead of stock aiosmtpd's line by line
loop, which costs about 4 ms of CPU per 25 KB message and would make the sink the bottleneck.
It offers PIPELINING (as Postfix and the big relays do). Each accepted message is appended to
``--record`` as ``<unix time> <recipient> <bytes> <ok|MISMATCH>``; MISMATCH means the
message's headers do not name the envelope recipient (a client that mixed up its pipelined
replies would show it).

    .venv/bin/python bench/smtp_sink.py --port 0 --latency-ms 20 --record sink.log

It prints ``smtp sink listening on 127.0.0.1:<port>`` once ready, stops on SIGTERM, and then
prints its own CPU time (``sink cpu <seconds> s for <n> messages``) on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal
import sys
import time
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session


async def read_data(reader: asyncio.StreamReader) -> bytes:
    """The message up to (not including) the line that is a single dot, still stuffed.

    Reads to each ".CRLF" and stops at the first whose dot starts a line, so a line that merely
    ends in a dot costs one more call, and nothing after the message is consumed.
    """
    data = bytearray()
    while True:
        data += await reader.readuntil(b".\r\n")
        dot = len(data) - 3
        if dot == 0 or data[dot - 2:dot] == b"\r\n":
            return bytes(data[:dot])


def unstuff(data: bytes) -> bytes:
    """RFC 5321 section 4.5.2: drop the first dot of every line that starts with one."""
    if data.startswith(b"."):
        data = data[1:]
    return data.replace(b"\r\n..", b"\r\n.")


class WholeDataSMTP(SMTP):
    """aiosmtpd's server, reading the message of a DATA command in one piece."""

    # The stream reader's limit: a whole message must fit (aiosmtpd's default is one line).
    line_length_limit = 64 * 1024 * 1024

    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            raw = await read_data(self._reader)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            self._writer.close()
            return
        content = unstuff(raw)
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is None else status)


class Recorder:
    """The handler: offers PIPELINING, waits ``latency`` per message, writes one line each."""

    def __init__(self, latency: float, record, pipelining: bool = True):
        self.latency = latency
        self.record = record
        self.pipelining = pipelining
        self.messages = 0

    async def handle_EHLO(self, server, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_DATA(self, server, session: Session, envelope: Envelope) -> str:
        if self.latency:
            await asyncio.sleep(self.latency)
        content = envelope.content
        headers = content[: content.find(b"\r\n\r\n")]
        stamp = time.time()
        self.messages += 1
        for rcpt in envelope.rcpt_tos:
            ok = "ok" if rcpt.encode() in headers else "MISMATCH"
            self.record.write(f"{stamp:.6f} {rcpt} {len(content)} {ok}\n")
        return "250 2.0.0 Ok: queued"


async def serve(host: str, port: int, latency: float, record_path: Path,
                pipelining: bool) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with record_path.open("a", encoding="utf-8", buffering=1 << 16) as record:
        handler = Recorder(latency, record, pipelining)
        server = await loop.create_server(
            lambda: WholeDataSMTP(handler, hostname="sink.test", data_size_limit=None,
                                  enable_SMTPUTF8=True, loop=loop), host, port)
        bound = server.sockets[0].getsockname()
        print(f"smtp sink listening on {bound[0]}:{bound[1]}", flush=True)
        async with server:
            await stop.wait()
        record.flush()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"sink cpu {usage.ru_utime + usage.ru_stime:.3f} s for {handler.messages} messages",
          file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--no-pipelining", action="store_true")
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.latency_ms / 1000, args.record,
                      not args.no_pipelining))


if __name__ == "__main__":
    main()
