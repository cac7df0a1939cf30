"""Per-recipient values and headers for a RenderedEdition: the one place that decides them.

``Personalizer.personalize(recipient)`` gives a recipient's template values (raw and
HTML-escaped), unsubscribe and manage-your-subscription links, Message-ID and per-message
list headers (List-Id, List-Unsubscribe, List-Unsubscribe-Post). Every transport, the dry
run, the test send and the preview take them from here; none builds these itself.

A recipient whose stored name or address breaks today's rules (a row from before them: a
control character, an address no message can carry) is refused here with a HeaderError naming
the subscriber, so it is never mailed; ``newsletter subscribers check`` lists such rows.
"""

from __future__ import annotations

import html
import re
import secrets
import unicodedata
from urllib.parse import quote

from ..audience.addresses import envelope_address
from ..audience.recipient import Recipient
from ..audience.tokens import make_token
from ..config import DEMO_SECRET, Config
from ..edition.render import RenderedEdition
from ..errors import HeaderError
from ..text import has_control
from .model import Personalized

NAME_FALLBACK = "there"


class Personalizer:
    """``preview``: links for looking at, not for sending (signed with the demo key when no
    ``secret_key`` is set, whatever the provider)."""

    def __init__(self, config: Config, rendered: RenderedEdition, *, test: bool = False,
                 preview: bool = False):
        self.rendered = rendered
        self.test = test
        self._secret = (config.secret_key or DEMO_SECRET) if preview else config.signing_key
        self._base_url = config.base_url.rstrip("/")
        mailto = config.unsubscribe_mailto
        self._mailto = envelope_address(mailto) if mailto else ""
        self._domain = config.sender_domain
        self._id_suffix = rendered.content_hash[:10]
        self._attributes = sorted(f for f in rendered.fields if f.startswith("attributes."))
        self.list_id = f"{config.name} <{_slug(config.name)}.{self._domain}>"

    def personalize(self, recipient: Recipient) -> Personalized:
        """Raises HeaderError naming the subscriber when the row cannot make a message."""
        email = _envelope(recipient)
        token = make_token(self._secret, "unsubscribe", recipient.id)
        url = f"{self._base_url}/unsubscribe/{token}"
        values = self._values(recipient, url)
        if "manage_url" in self.rendered.fields:  # signed only for an edition that links it
            manage = make_token(self._secret, "manage", recipient.id)
            values["manage_url"] = f"{self._base_url}/manage/{manage}"
        return Personalized(
            recipient=recipient,
            email=email,
            name=recipient.name.strip(),
            values=values,
            html_values=_html_values(values),
            headers=self._headers(url, token),
            message_id=self._message_id(recipient),
        )

    def _values(self, recipient: Recipient, unsubscribe_url: str) -> dict[str, str]:
        """Raw (unescaped) values for every recipient field the edition uses."""
        if has_control(recipient.name):
            raise HeaderError(f"subscriber {recipient.id} ({recipient.email!r}): the name "
                              "contains a control character; fix or remove the row "
                              "(see `newsletter subscribers check`)")
        name = recipient.name.strip()
        values = {
            "name": name,
            "first_name": name.split()[0] if name else NAME_FALLBACK,
            "email": recipient.email,
            "unsubscribe_url": unsubscribe_url,
        }
        for field in self._attributes:
            value = recipient.attributes.get(field[len("attributes."):], "")
            values[field] = "" if value is None else str(value)
        return values

    def _message_id(self, recipient: Recipient) -> str:
        # Stable per edition and subscriber, so a resent message is recognisably the same one;
        # test sends get a fresh id each time.
        if self.test:
            return f"<{self.rendered.week}.test.{secrets.token_hex(8)}@{self._domain}>"
        return f"<{self.rendered.week}.{recipient.id}.{self._id_suffix}@{self._domain}>"

    def _headers(self, unsubscribe_url: str, token: str) -> dict[str, str]:
        """RFC 2369 List-Unsubscribe and RFC 8058 one-click; the mailto target carries the
        token in its subject so that a mailbox reader can match the request."""
        targets = [f"<{unsubscribe_url}>"]
        if self._mailto:
            targets.append(f"<mailto:{self._mailto}?subject={quote(f'unsubscribe {token}')}>")
        return {
            "List-Id": self.list_id,
            "List-Unsubscribe": ", ".join(targets),
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }


def _html_values(values: dict[str, str]) -> dict[str, str]:
    """Escaped for HTML, and ASCII like the rendered page (non-ASCII as &#NNN;)."""
    out = {}
    for key, value in values.items():
        value = html.escape(value)
        if not value.isascii():
            value = value.encode("ascii", "xmlcharrefreplace").decode("ascii")
        out[key] = value
    return out


def _envelope(recipient: Recipient) -> str:
    try:
        return envelope_address(recipient.email)
    except HeaderError as exc:
        raise HeaderError(f"subscriber {recipient.id}: {exc}; fix or remove the row "
                          "(see `newsletter subscribers check`)") from None


def _slug(name: str) -> str:
    """The List-Id's local part: ASCII, accents dropped (Café -> cafe)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-") or "newsletter"
