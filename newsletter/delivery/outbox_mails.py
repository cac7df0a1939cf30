"""The mails of the confirmation outbox, one kind each (``OutboxKind``): its templates, its
subject, and the links each recipient's copy carries.

Each kind renders once per drain through the edition's render path (``render_message``), its
links left as placeholders filled in per message, like an edition's fields. A kind's
templates are ``<kind>.mjml.j2`` and ``<kind>.txt.j2``, shipped in the package and overridable
in the project's ``templates_dir`` like the others. The links:

* ``confirm``: ``confirm_url`` (``/confirm/<token>``, naming the subscriber, issued now);
* ``welcome``: ``manage_url`` and ``unsubscribe_url`` (tokens that never expire), and
  ``latest_url``, the newest sent edition's page in the archive (or the archive);
* ``address_confirm``: ``confirm_url`` (``/address/<token>``) and ``data_link``:
  ``download_url`` (``/data/<token>``): tokens naming the outbox row, issued when it was
  written, so they expire ``confirm_max_age`` after the request;
* ``address_notice``: none; it tells the old address what happened, and nothing else.
"""

from __future__ import annotations

import html
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ..audience.addresses import envelope_address
from ..audience.recipient import Recipient
from ..audience.tokens import make_token
from ..config import Config
from ..edition.placeholders import FieldTemplate, RecipientMarkers
from ..edition.render import render_message
from ..message.mime import MessageBuilder
from ..message.model import Personalized
from ..message.outgoing import sender_of
from .states import OutboxKind


@dataclass(frozen=True)
class Due:
    """A claimed outbox row: ``recipient`` is who gets it (the subscriber's id, and the address
    the row mails), None when it is not mailed, for the reason in ``skip``."""

    row_id: int
    attempts: int
    kind: OutboxKind
    created_at: datetime
    recipient: Recipient | None
    skip: str = ""


@dataclass(frozen=True)
class _Kind:
    subject: str  # with {name}: the newsletter's
    links: tuple[str, ...]


KINDS: dict[OutboxKind, _Kind] = {
    OutboxKind.CONFIRM: _Kind("Confirm your subscription to {name}", ("confirm_url",)),
    OutboxKind.WELCOME: _Kind("Welcome to {name}", ("manage_url", "unsubscribe_url")),
    OutboxKind.ADDRESS_CONFIRM: _Kind("Confirm your new address for {name}", ("confirm_url",)),
    OutboxKind.ADDRESS_NOTICE: _Kind("Your address for {name} has changed", ()),
    OutboxKind.DATA_LINK: _Kind("Your data at {name}", ("download_url",)),
}


def templates(kind: OutboxKind) -> tuple[str, str]:
    return f"{kind}.mjml.j2", f"{kind}.txt.j2"


class OutboxMail:
    """One kind's mail, rendered once, as a transport's ``Outgoing``."""

    def __init__(self, config: Config, now: datetime, kind: OutboxKind, *,
                 latest_url: str = ""):
        self._config = config
        self._now = now
        self.kind = kind
        self._base_url = config.base_url.rstrip("/")
        self._domain = config.sender_domain
        spec = KINDS[kind]
        nonce = "nlc" + secrets.token_hex(8)
        markers = RecipientMarkers(nonce)
        context: dict[str, object] = {
            "recipient": markers, "max_age_days": max(1, config.confirm_max_age // 86400),
            "latest_url": latest_url, "description": config.description,
            **{link: markers.marker(link) for link in spec.links}}
        page, text = render_message(config, *templates(kind), context)
        self.sender = sender_of(config)
        self.subject = spec.subject.format(name=config.name)
        self.edition_key = str(kind)
        self.content_hash = ""
        self.html = FieldTemplate.split(page, nonce)
        self.text = FieldTemplate.split(text, nonce)
        self._builder = MessageBuilder(self.sender, self.subject, self.html, self.text)

    def _links(self, due: Due, recipient: Recipient) -> dict[str, Callable[[], str]]:
        key = self._config.signing_key

        def link(path: str, purpose: str, ident: int, issued: datetime | None) -> str:
            return f"{self._base_url}/{path}/{make_token(key, purpose, ident, issued_at=issued)}"

        if self.kind is OutboxKind.ADDRESS_CONFIRM:
            confirm = lambda: link("address", "address", due.row_id, due.created_at)  # noqa: E731
        else:
            confirm = lambda: link("confirm", "confirm", recipient.id, self._now)  # noqa: E731
        return {
            "confirm_url": confirm,
            "manage_url": lambda: link("manage", "manage", recipient.id, None),
            "unsubscribe_url": lambda: link("unsubscribe", "unsubscribe", recipient.id, None),
            "download_url": lambda: link("data", "data", due.row_id, due.created_at),
        }

    def personalize(self, recipient: Recipient) -> Personalized:
        """``Outgoing``'s: a copy for a recipient outside the outbox (links that name a row
        name none)."""
        return self.personalize_row(Due(0, 0, self.kind, self._now, recipient))

    def personalize_row(self, due: Due) -> Personalized:
        """The copy a claimed row mails."""
        recipient = due.recipient
        assert recipient is not None
        name = recipient.name.strip()
        known = {"name": name, "first_name": name.split()[0] if name else "there",
                 "email": recipient.email}
        links = self._links(due, recipient)
        fields = set(self.html.fields) | set(self.text.fields)
        values = {field: known[field] if field in known
                  else links[field]() if field in links else "" for field in fields}
        html_values = {k: html.escape(v).encode("ascii", "xmlcharrefreplace").decode("ascii")
                       for k, v in values.items()}
        message_id = f"<{self.kind}.{recipient.id}.{secrets.token_hex(6)}@{self._domain}>"
        return Personalized(recipient=recipient, email=envelope_address(recipient.email),
                            name=name, values=values, html_values=html_values, headers={},
                            message_id=message_id)

    def message(self, person: Personalized, *, dot_stuffed: bool = False) -> bytes:
        return self._builder.build(person, dot_stuffed=dot_stuffed)
