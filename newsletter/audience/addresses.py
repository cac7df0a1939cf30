"""Email addresses and display names: the one validating ``Address`` type, used at every door
(the CLI, CSV import, the web form, the test send, the config).

An address is validated for syntax only (no network), with email-validator. Its ``key`` is the
normalized, lower-cased form that makes it unique on the list; ``email`` is kept as given for
display and sending. ``envelope_address`` gives the form mail is sent to: the domain in its
ASCII form under IDNA 2008 (the ``idna`` package), the same rules the validation used. Python's
own ``"idna"`` codec is IDNA 2003, which maps ß to ss and ς to σ: another, stranger's domain.

The rules, the same at every door: no control character anywhere (CR, LF, tab, vertical tab,
form feed, NUL, the Unicode line and paragraph separators), in the address or the name; an
ASCII part before the @ (a non-ASCII one needs SMTPUTF8, which the providers do not offer);
a name of at most ``MAX_NAME`` characters.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass

from ..errors import HeaderError, SubscriberError
from ..text import has_control

MAX_NAME = 256
_NAME_ADDR = re.compile(r"^(?P<name>[^<>]*?)\s*<(?P<addr>[^<>]*)>$")
_QUOTED_PAIR = re.compile(r"\\(.)")
CONTROL_REASON = "contains a control character (a line break, tab, NUL or the like)"


@dataclass(frozen=True)
class Address:
    """A validated address: as given, its unique key, and a display name if one came with it."""

    email: str
    key: str
    name: str | None = None


def parse_address(value: str) -> Address:
    """Validate ``addr`` or ``Name <addr>``; raise SubscriberError saying what is wrong."""
    if not isinstance(value, str):
        raise SubscriberError("an address must be text")
    # Checked before anything is split or stripped: a control character is never part of a
    # name or an address, and str.strip() or splitlines() would otherwise hide or act on it.
    if has_control(value):
        raise SubscriberError(f"the address {CONTROL_REASON}")
    text = value.strip()
    name = None
    match = _NAME_ADDR.match(text)
    if match:
        text = match["addr"].strip()
        name = clean_name(_unquote(match["name"]))
    if not text:
        raise SubscriberError("empty address")
    ev = _validator()
    try:
        valid = ev.validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except ev.EmailNotValidError as exc:
        raise SubscriberError(f"invalid address: {exc}") from None
    # Unicode domain (IDNA-decoded, so "xn--..." and its Unicode form are one address), and the
    # whole address lower-cased: unique case-insensitively.
    key = f"{valid.local_part}@{valid.domain}".lower()
    return Address(email=text, key=key, name=name)


@functools.cache
def _validator():  # type: ignore[no-untyped-def]
    """email-validator, its domain check remembered per domain.

    Imported on first use, not with the module: `subscribers count` never needs it. The domain
    check (IDNA 2008 and UTS-46, character by character) is two thirds of what validating an
    address costs, and a list of a million addresses has a few thousand domains: each distinct
    domain is checked once (a domain that fails is not remembered, and fails again). The rest
    of the address is validated every time, by the library, exactly as before.
    """
    import importlib

    import email_validator as ev

    # The module, not the function of the same name the package exports.
    module = importlib.import_module("email_validator.validate_email")

    check = getattr(module, "validate_email_domain_name", None)
    if check is not None:  # once per process: this function's own cache sees to that
        remembered = functools.lru_cache(maxsize=65_536)(check)

        def domain_name(domain: str, **options: bool) -> dict[str, str]:
            return dict(remembered(domain, **options))  # a copy: the caller may change it

        module.validate_email_domain_name = domain_name  # type: ignore[attr-defined]
    return ev


def _unquote(name: str) -> str:
    """A display name as written before ``<addr>``: a quoted string loses its quotes and
    backslash escapes (``"Ada \\"AL\\" Lovelace"`` is ``Ada "AL" Lovelace``)."""
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        return _QUOTED_PAIR.sub(r"\1", name[1:-1])
    return name


def clean_name(name: str | None) -> str | None:
    """A display name fit for a mail header: one line, bounded; None when empty."""
    if name is None:
        return None
    if not isinstance(name, str):
        raise SubscriberError("a name must be text")
    if has_control(name):
        raise SubscriberError(f"the name {CONTROL_REASON}")
    name = name.strip()
    if len(name) > MAX_NAME:
        raise SubscriberError(f"the name is longer than {MAX_NAME} characters")
    return name or None


def email_hash(key: str) -> str:
    """What ``suppressions`` keeps of an erased address: sha256 of its normalized form."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def envelope_address(email: str) -> str:
    """The bare address mail is sent to: the domain in its ASCII form (IDNA 2008).

    Raises HeaderError for what no message can carry (a row stored before today's rules).
    """
    local, at, domain = email.strip().rpartition("@")
    if has_control(email):
        raise HeaderError(f"the address {CONTROL_REASON}")
    if not at or not local or not domain:
        raise HeaderError(f"{email!r} is not an email address")
    if not local.isascii():
        raise HeaderError(f"{email!r}: internationalized characters before the @ are not "
                          "supported")
    return f"{local}@{ascii_domain(domain)}"


@functools.lru_cache(maxsize=4096)
def ascii_domain(domain: str) -> str:
    """``domain`` as DNS and SMTP see it: IDNA 2008 (UTS 46 mapping, non-transitional, so
    ß, ς and the joiners are kept, never folded into another name)."""
    if domain.isascii():
        return domain
    import idna

    try:
        return idna.encode(domain, uts46=True, transitional=False).decode("ascii")
    except idna.IDNAError as exc:
        raise HeaderError(f"the domain {domain!r} is not a valid internationalized domain "
                          f"name: {exc}") from None


def display_domain(email: str) -> str:
    """The domain of ``email`` as people read it: lower-cased, an ASCII (``xn--``) form
    decoded to Unicode under IDNA 2008; a domain that does not decode stays as written. For
    figures per domain, which must never show the address itself."""
    domain = email.rpartition("@")[2].strip().lower()
    if "xn--" not in domain:
        return domain
    import idna

    try:
        return idna.decode(domain)
    except (idna.IDNAError, UnicodeError):
        return domain
