"""Per-recipient values and headers for a RenderedEdition.

This is the one place that decides a recipient's template values, unsubscribe link and
per-message headers (To, Message-ID, List-Id, List-Unsubscribe, List-Unsubscribe-Post).
Transports and the MIME builder take them from here; none sets these headers itself.
"""

from __future__ import annotations

import html
import re
import secrets
from urllib.parse import quote

from ..audience.recipient import Recipient
from ..audience.tokens import make_token
from ..config import Config
from ..edition.render import RenderedEdition
from ..errors import HeaderError

NAME_FALLBACK = "there"


class Personalizer:
    def __init__(self, config: Config, rendered: RenderedEdition, *, test: bool = False):
        self.rendered = rendered
        self.test = test
        self._secret = config.signing_key
        self._base_url = config.base_url.rstrip("/")
        self._mailto = config.unsubscribe_mailto
        self._domain = config.sender_domain
        self._id_suffix = rendered.content_hash[:10]
        self.list_id = f"{config.name} <{_slug(config.name)}.{self._domain}>"

    def unsubscribe_url(self, recipient: Recipient) -> str:
        token = make_token(self._secret, "unsubscribe", recipient.id)
        return f"{self._base_url}/unsubscribe/{token}"

    def values(self, recipient: Recipient, unsubscribe_url: str) -> dict[str, str]:
        """Raw (unescaped) values for every recipient field the edition uses."""
        if "\r" in recipient.name or "\n" in recipient.name:
            raise HeaderError(f"subscriber {recipient.email}: name must be one line")
        name = recipient.name.strip()
        values = {
            "name": name,
            "first_name": name.split()[0] if name else NAME_FALLBACK,
            "email": recipient.email,
            "unsubscribe_url": unsubscribe_url,
        }
        for field in self.rendered.fields:
            if field.startswith("attributes."):
                value = recipient.attributes.get(field[len("attributes.") :], "")
                values[field] = "" if value is None else str(value)
        return values

    def html_values(self, values: dict[str, str]) -> dict[str, str]:
        """Escaped for HTML, and ASCII like the rendered page (non-ASCII as &#NNN;)."""
        out = {}
        for key, value in values.items():
            value = html.escape(value)
            if not value.isascii():
                value = value.encode("ascii", "xmlcharrefreplace").decode("ascii")
            out[key] = value
        return out

    def message_id(self, recipient: Recipient) -> str:
        # Stable per edition and subscriber, so a resent message is recognisably the same one;
        # test sends get a fresh id each time.
        if self.test:
            return f"<{self.rendered.week}.test.{secrets.token_hex(8)}@{self._domain}>"
        return f"<{self.rendered.week}.{recipient.id}.{self._id_suffix}@{self._domain}>"

    def headers(self, unsubscribe_url: str) -> dict[str, str]:
        """Per-message list headers: RFC 2369 List-Unsubscribe and RFC 8058 one-click.

        Every transport sends these as they are; the Message-ID is separate because HTTP
        providers assign their own.
        """
        targets = [f"<{unsubscribe_url}>"]
        if self._mailto:
            token = unsubscribe_url.rsplit("/", 1)[-1]
            subject = quote(f"unsubscribe {token}")
            targets.append(f"<mailto:{self._mailto}?subject={subject}>")
        return {
            "List-Id": self.list_id,
            "List-Unsubscribe": ", ".join(targets),
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "newsletter"
