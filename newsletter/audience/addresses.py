"""Email addresses and display names: the one validating ``Address`` type, used at every door
(the CLI, CSV import, the web form, the test send, the config).

An address is validated for syntax only (no network), with email-validator. Its ``key`` is the
normalized, lower-cased form that makes it unique on the list; ``email`` is kept as given for
display and sending. ``envelope_address`` gives the form mail is sent to: the domain in its
ASCII (IDNA) form.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass

from ..errors import SubscriberError
from ..text import has_control

MAX_NAME = 256
_NAME_ADDR = re.compile(r"^(?P<name>[^<>]*?)\s*<(?P<addr>[^<>]*)>$")


@dataclass(frozen=True)
class Address:
    """A validated address: as given, its unique key, and a display name if one came with it."""

    email: str
    key: str
    name: str | None = None


@functools.cache
def _email_validator():
    # Imported on first use, not with the module: `subscribers count` never needs it.
    import email_validator

    return email_validator


def parse_address(value: str) -> Address:
    """Validate ``addr`` or ``Name <addr>``; raise SubscriberError saying what is wrong."""
    ev = _email_validator()
    text = value.strip()
    name = None
    match = _NAME_ADDR.match(text)
    if match:
        text = match["addr"].strip()
        name = clean_name(match["name"].strip().strip('"'))
    if not text:
        raise SubscriberError("empty address")
    if has_control(text):
        raise SubscriberError("the address contains a control character")
    try:
        valid = ev.validate_email(text, check_deliverability=False)
    except ev.EmailNotValidError as exc:
        raise SubscriberError(f"invalid address: {exc}") from None
    # Unicode domain (IDNA-decoded, so "xn--..." and its Unicode form are one address), and the
    # whole address lower-cased: unique case-insensitively.
    key = f"{valid.local_part}@{valid.domain}".lower()
    return Address(email=text, key=key, name=name)


def clean_name(name: str | None) -> str | None:
    """A display name fit for a mail header: one line, bounded; None when empty."""
    if name is None:
        return None
    name = name.strip()
    if has_control(name):
        raise SubscriberError("name contains a line break or control character")
    if len(name) > MAX_NAME:
        raise SubscriberError(f"name is longer than {MAX_NAME} characters")
    return name or None


def email_hash(key: str) -> str:
    """What ``suppressions`` keeps of an erased address: sha256 of its normalized form."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def envelope_address(email: str) -> str:
    """The bare address with an internationalized domain in its ASCII (IDNA) form."""
    local, _, domain = email.strip().rpartition("@")
    if not domain.isascii():
        domain = domain.encode("idna").decode("ascii")
    return f"{local}@{domain}"
