"""Polling the feedback mailbox over IMAP: read each mail once, hand it on, file it away.

For SMTP senders' bounces (mail to the envelope sender) and the ``mailto:`` unsubscribe
address. Each mail is classified (``classify``); delivery reports, complaints and
unsubscribe requests go to ``handle``, and only once ``handle`` returns is the mail moved to
``processed_folder``, so a mail whose handling failed is read again on the next poll. A move
that fails after ``handle`` succeeded means the mail is handled again; its events carry the same
ids, so a store keyed on them keeps them once.

Mail that is none of those (a reader's reply, an auto-responder, an unreadable report) stays
where it is, unread: the mailbox is often a person's too, and moving mail they need out of
sight would hide it. It is flagged ``$NewsletterSkipped`` so later polls pass over it.

IMAP: RFC 9051/3501 via the standard library's ``imaplib`` (blocking: run ``poll`` in a
thread from async code); MOVE is RFC 6851, with COPY + UID EXPUNGE (RFC 4315) as the fallback;
folder names are sent in modified UTF-7 (RFC 3501 5.1.3); the login uses AUTHENTICATE PLAIN
(RFC 4616) in UTF-8 when offered, so a non-ASCII password works.
"""

from __future__ import annotations

import base64
import contextlib
import imaplib
import logging
import re
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .classify import MailItem, MailKind, classify
from .events import MailboxError

log = logging.getLogger(__name__)
SECURITY = ("tls", "starttls", "none")
DEFAULT_PORTS = {"tls": 993, "starttls": 143, "none": 143}
PROCESSED_FOLDER = "newsletter-processed"
SKIPPED_FLAG = "$NewsletterSkipped"
_LITERAL = re.compile(rb"\{(\d+)\}$")
_INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')


@dataclass
class PollResult:
    processed: list[MailItem] = field(default_factory=list)
    skipped: list[MailItem] = field(default_factory=list)  # left in place, not ours to read
    failed: list[tuple[MailItem, str]] = field(default_factory=list)  # handle raised; retried


def poll(*, host: str, username: str, password: str, handle: Callable[[MailItem], None],
         port: int | None = None, folder: str = "INBOX", security: str = "tls",
         processed_folder: str = PROCESSED_FOLDER, ssl_context: ssl.SSLContext | None = None,
         timeout: float = 30.0, limit: int = 500) -> PollResult:
    """Read up to ``limit`` mails of ``folder`` not read before; see the module docstring."""
    if security not in SECURITY:
        raise MailboxError(f"imap_security must be one of {', '.join(SECURITY)}, not "
                           f"{security!r}")
    port = port or DEFAULT_PORTS[security]
    where = f"IMAP {host}:{port}"
    imap = _connect(host, port, security, ssl_context, timeout, where)
    try:
        _login(imap, username, password, where)
        _select(imap, folder, where)
        _ensure_folder(imap, processed_folder, where)
        return _read_all(imap, handle, processed_folder, limit, where)
    except (imaplib.IMAP4.error, OSError) as exc:
        raise MailboxError(f"{where}: {_words(exc)}") from None
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            imap.logout()


def _connect(host: str, port: int, security: str, context: ssl.SSLContext | None,
             timeout: float, where: str) -> imaplib.IMAP4:
    context = context or ssl.create_default_context()
    try:
        if security == "tls":
            return imaplib.IMAP4_SSL(host, port, ssl_context=context, timeout=timeout)
        imap = imaplib.IMAP4(host, port, timeout=timeout)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise MailboxError(f"{where}: cannot connect ({_words(exc)})") from None
    if security == "starttls":
        if "STARTTLS" not in imap.capabilities:
            imap.shutdown()
            raise MailboxError(f"{where}: the server does not offer STARTTLS "
                               "(imap_security = starttls)")
        try:
            imap.starttls(ssl_context=context)
        except (OSError, imaplib.IMAP4.error) as exc:
            imap.shutdown()
            raise MailboxError(f"{where}: STARTTLS failed ({_words(exc)})") from None
    return imap


def _login(imap: imaplib.IMAP4, username: str, password: str, where: str) -> None:
    try:
        if "AUTH=PLAIN" in imap.capabilities:
            secret = f"\0{username}\0{password}".encode()
            imap.authenticate("PLAIN", lambda _challenge: secret)
        else:
            imap.login(username, password)
    except (imaplib.IMAP4.error, UnicodeEncodeError):
        # The server's words are not repeated: some echo what was sent.
        raise MailboxError(f"{where}: login as {username!r} refused") from None
    # imaplib keeps the capabilities from before the login; MOVE and UIDPLUS appear after it.
    status, data = imap.capability()
    if status == "OK" and data and isinstance(data[-1], bytes):
        imap.capabilities = tuple(data[-1].decode("ascii", "replace").upper().split())


def _select(imap: imaplib.IMAP4, folder: str, where: str) -> None:
    status, data = imap.select(mailbox_name(folder))
    if status != "OK":
        raise MailboxError(f"{where}: cannot open folder {folder!r} ({_text(data)})")


def _ensure_folder(imap: imaplib.IMAP4, folder: str, where: str) -> None:
    name = mailbox_name(folder)
    status, data = imap.list('""', name)
    if status == "OK" and any(item for item in data if item):
        return
    status, data = imap.create(name)
    if status != "OK":
        raise MailboxError(f"{where}: cannot create folder {folder!r} ({_text(data)})")
    imap.subscribe(name)


def _read_all(imap: imaplib.IMAP4, handle: Callable[[MailItem], None], processed: str,
              limit: int, where: str) -> PollResult:
    result = PollResult()
    status, data = imap.uid("SEARCH", "UNKEYWORD", SKIPPED_FLAG)
    if status != "OK":
        raise MailboxError(f"{where}: search failed ({_text(data)})")
    # UIDs are ASCII digits; as text, which imaplib sends as the same bytes.
    for uid in (data[0] or b"").decode("ascii", "replace").split()[:limit]:
        raw, received = _fetch(imap, uid)
        if raw is None:
            continue  # expunged by someone else meanwhile
        item = _classify(raw, received, uid)
        if item.kind == MailKind.OTHER:
            imap.uid("STORE", uid, "+FLAGS.SILENT", f"({SKIPPED_FLAG})")
            result.skipped.append(item)
            continue
        try:
            handle(item)
        except Exception as exc:  # whatever went wrong, the mail stays for the next poll
            log.warning("mailbox: handling %s %s failed, left for the next poll: %s",
                        item.kind, item.message_id or f"uid {uid}", exc)
            result.failed.append((item, str(exc)))
            continue
        _move(imap, uid, processed, where)
        result.processed.append(item)
    return result


def _classify(raw: bytes, received: datetime | None, uid: str) -> MailItem:
    try:
        return classify(raw, received_at=received)
    except Exception as exc:  # a mail no parser foresaw must not stop every later poll
        log.warning("mailbox: uid %s could not be read, left in place: %r", uid, exc)
        return MailItem(MailKind.OTHER, note=f"could not be read: {exc!r}")


def _fetch(imap: imaplib.IMAP4, uid: str) -> tuple[bytes | None, datetime | None]:
    status, data = imap.uid("FETCH", uid, "(INTERNALDATE BODY.PEEK[])")
    if status != "OK":
        return None, None
    for item in data:
        if isinstance(item, tuple) and _LITERAL.search(item[0]):
            return item[1], _internaldate(item[0])
    return None, None


def _internaldate(line: bytes) -> datetime | None:
    match = _INTERNALDATE.search(line)
    if match is None:
        return None
    try:  # "17-Jul-1996 02:44:25 -0700", the day space-padded
        parsed = datetime.strptime(match[1].decode("ascii").strip(), "%d-%b-%Y %H:%M:%S %z")
    except (UnicodeDecodeError, ValueError):
        return None
    return parsed.astimezone(UTC)


def _move(imap: imaplib.IMAP4, uid: str, folder: str, where: str) -> None:
    name = mailbox_name(folder)
    if "MOVE" in imap.capabilities:
        status, data = imap.uid("MOVE", uid, name)
    else:
        status, data = imap.uid("COPY", uid, name)
        if status == "OK":
            imap.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)")
            # UID EXPUNGE removes only this mail; plain EXPUNGE would also remove any other
            # mail a person marked deleted, so it is the last resort.
            if "UIDPLUS" in imap.capabilities:
                status, data = imap.uid("EXPUNGE", uid)
            else:
                status, data = imap.expunge()
    if status != "OK":
        raise MailboxError(f"{where}: cannot move mail to {folder!r} ({_text(data)})")


def mailbox_name(name: str) -> str:
    """A folder name as an IMAP quoted string, non-ASCII in modified UTF-7 (RFC 3501 5.1.3)."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            encoded = base64.b64encode("".join(run).encode("utf-16-be")).rstrip(b"=")
            out.append("&" + encoded.decode("ascii").replace("/", ",") + "-")
            run.clear()

    for char in name:
        if " " <= char <= "~":
            flush()
            out.append("&-" if char == "&" else char)
        else:
            run.append(char)
    flush()
    text = "".join(out).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _text(data: object) -> str:
    if isinstance(data, list):
        data = b" ".join(d for d in data if isinstance(d, bytes))
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    return " ".join(str(data).split())[:200]


def _words(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    return " ".join(str(exc).split())[:200] or type(exc).__name__
