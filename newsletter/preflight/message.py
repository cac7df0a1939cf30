"""Rules on one complete message: the headers every copy carries, its parts and its footer.

RFC 8058 one-click unsubscribe wants exactly one https URI in List-Unsubscribe and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click``; Gmail and Yahoo require both of bulk
senders. CAN-SPAM wants the sender's postal address in every message.
"""

from __future__ import annotations

import email
import re
from email import policy
from email.message import EmailMessage

from .findings import Finding, error, note, warning
from .inputs import Settings
from .links import unsubscribe_token

REQUIRED = ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version")
ONE_CLICK = "List-Unsubscribe=One-Click"
FREEMAIL = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "ymail.com", "aol.com", "outlook.com",
    "hotmail.com", "live.com", "msn.com", "icloud.com", "me.com", "mac.com", "gmx.com",
    "gmx.de", "web.de", "proton.me", "protonmail.com",
})
_NOREPLY = re.compile(r"^(?:no-?reply|do-?not-?reply)(?:[+.-].*)?$", re.I)
_TARGET = re.compile(r"<([^>]*)>")


def parse(message: bytes) -> EmailMessage:
    return email.message_from_bytes(message, policy=policy.default)


def check_message(message: bytes, settings: Settings, *, html_text: str, text: str
                  ) -> list[Finding]:
    msg = parse(message)
    return [
        *_required(msg), *_structure(msg), *_line_lengths(message), *_sender(msg),
        *_list_unsubscribe(msg, settings), *_list_id(msg),
        *_postal(settings.postal_address, html_text, text),
    ]


def _required(msg: EmailMessage) -> list[Finding]:
    missing = [name for name in REQUIRED if msg.get(name) is None]
    if not missing:
        return []
    return [error("message.header-missing", f"The message has no {', '.join(missing)} header.",
                  "The message builder sets these; a message without them is rejected or "
                  "filtered.")]


def _structure(msg: EmailMessage) -> list[Finding]:
    kinds = [part.get_content_type() for part in msg.iter_parts()] \
        if msg.is_multipart() else []
    if msg.get_content_type() == "multipart/alternative" and \
            kinds[:1] == ["text/plain"] and "text/html" in kinds:
        return []
    shown = msg.get_content_type() + (f" ({', '.join(kinds)})" if kinds else "")
    return [error("message.structure",
                  f"The message is {shown}, not multipart/alternative with a text part "
                  "then an HTML part.",
                  "Send both parts; a text part first lets every client show something.")]


def _line_lengths(message: bytes) -> list[Finding]:
    head = message.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    longest = max((len(line.rstrip(b"\r")) for line in head.split(b"\n")), default=0)
    if longest <= 998:
        return []
    return [error("message.line-length",
                  f"A header line is {longest} characters; RFC 5322 allows 998.",
                  "Fold long headers.")]


def _addresses(msg: EmailMessage, name: str) -> tuple | None:
    """The header's addresses; None when the header is missing or cannot be parsed."""
    header = msg.get(name)
    if header is None:
        return None
    try:
        found = tuple(a for a in header.addresses if a.addr_spec and a.domain)
    except (AttributeError, IndexError, TypeError, ValueError):
        return None
    return found or None


def _sender(msg: EmailMessage) -> list[Finding]:
    sender = _addresses(msg, "From")
    if sender is None:
        return [error("message.from-invalid", f"The From header is not an address: "
                      f"{str(msg.get('From', '(missing)'))!r}.", "Set from_address.")]
    findings = []
    if len(sender) > 1:
        findings.append(error("message.from-several", "The From header has several addresses.",
                              "Set from_address to one address."))
    address = sender[0]
    domain = address.domain.lower().rstrip(".")
    if domain in FREEMAIL:
        findings.append(error(
            "message.from-freemail",
            f"The From address is at {domain}, whose SPF, DKIM and DMARC you cannot set up.",
            "Send from a domain you own; Gmail and Yahoo require authenticated bulk mail "
            "(SPF, DKIM, DMARC) for the From domain.",
        ))
    reply_to = _addresses(msg, "Reply-To")
    if msg.get("Reply-To") is not None and reply_to is None:
        findings.append(error("message.reply-to-invalid",
                              f"The Reply-To header is not an address: {str(msg['Reply-To'])!r}.",
                              "Fix reply_to."))
    answering = reply_to or sender
    if all(_NOREPLY.match(a.username) for a in answering):
        findings.append(warning(
            "message.noreply", f"Replies go to {answering[0].addr_spec}, a no-reply address.",
            "Set reply_to to an address someone reads; replies are a good signal to mailbox "
            "providers.",
        ))
    return findings


def _list_unsubscribe(msg: EmailMessage, settings: Settings) -> list[Finding]:
    value = msg.get("List-Unsubscribe")
    if value is None:
        return [error("message.list-unsubscribe-missing", "There is no List-Unsubscribe header.",
                      "Gmail and Yahoo require one-click unsubscribe (RFC 8058) of bulk "
                      "senders; set base_url.")]
    targets = _TARGET.findall(str(value))
    https = [t for t in targets if t.lower().startswith("https://")]
    findings = []
    if not https:
        findings.append(error(
            "message.list-unsubscribe-https",
            f"List-Unsubscribe has no https address: {' '.join(targets) or str(value)!r}.",
            "RFC 8058 one-click needs an https URI: make base_url https://.",
        ))
    elif len(https) > 1:
        findings.append(warning("message.list-unsubscribe-several",
                                "List-Unsubscribe has more than one https address.",
                                "RFC 8058 wants exactly one."))
    for url in https[:1]:
        token = unsubscribe_token(url, settings.base_url)
        if token == "":
            findings.append(error("message.list-unsubscribe-token",
                                  f"List-Unsubscribe has no token: {url}",
                                  "The address must name the reader: /unsubscribe/<token>."))
        elif token is None and settings.base_url:
            findings.append(warning("message.list-unsubscribe-elsewhere",
                                    f"List-Unsubscribe points away from base_url: {url}",
                                    "Unsubscribes are handled by the web app at base_url."))
    if not any(t.lower().startswith("mailto:") for t in targets):
        findings.append(note("message.no-mailto", "List-Unsubscribe has no mailto: address.",
                             "Set unsubscribe_mailto for clients that only offer mailto."))
    post = msg.get("List-Unsubscribe-Post")
    if post is None or str(post).strip() != ONE_CLICK:
        shown = "missing" if post is None else repr(str(post))
        findings.append(error("message.one-click",
                              f"List-Unsubscribe-Post is {shown}, not {ONE_CLICK}.",
                              "RFC 8058 one-click needs exactly that value."))
    return findings


def _list_id(msg: EmailMessage) -> list[Finding]:
    value = msg.get("List-Id")
    if value is None:
        return [warning("message.list-id", "There is no List-Id header.",
                        "Set name and from_address; filters and mailbox rules use List-Id.")]
    if not re.search(r"<[^<>\s]+\.[^<>\s]+>", str(value)):
        return [warning("message.list-id", f"List-Id is not of the form <id.domain>: "
                        f"{str(value)!r}.", "See RFC 2919.")]
    return []


def _postal(postal: str, html_text: str, text: str) -> list[Finding]:
    if not postal.strip():
        return [error("message.postal-missing", "No postal address is configured.",
                      "Set postal_address; CAN-SPAM requires a postal address in every "
                      "message, and the footer prints it.")]
    wanted = _normal(postal)
    if wanted not in _normal(html_text):
        return [error("message.postal-not-shown",
                      "The HTML part does not show the postal address.",
                      "Print {{ newsletter.postal_address }} in the footer of edition.mjml.j2.")]
    if wanted not in _normal(text):
        return [warning("message.postal-not-in-text",
                        "The text part does not show the postal address.",
                        "Print {{ newsletter.postal_address }} at the end of edition.txt.j2.")]
    return []


def _normal(value: str) -> str:
    return " ".join(value.casefold().split())
