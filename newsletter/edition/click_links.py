"""The items' links as counted links (``click_counts``): ``{base_url}/r/<token>``.

The render makes these once per edition, never per recipient: the token names the week, the
item and the link (``click_tokens``), so every reader's message carries the same link. Only
the links inside the items are rewritten (the body's links and the item's source ``url``);
the templates' own links (unsubscribe, archive, sign-up) are not, nor is anything that is not
an absolute http(s) link (``mailto:``, ``#anchors``), nor a link too long for a token.
"""

from __future__ import annotations

import logging
from pathlib import Path

from markdown_it.common.normalize_url import normalizeLink

from .click_tokens import MAX_NUMBER, MAX_URL, ClickTarget, carried, make_click_token

log = logging.getLogger("newsletter.edition")

ROUTE = "/r/"


class ItemLinks:
    """The counted links of one item: each distinct URL numbered in the order first met,
    so the body's link and the same URL as the item's source are one link."""

    def __init__(self, base_url: str, secret: str, week: str, item: int, path: Path):
        self._prefix = base_url.rstrip("/") + ROUTE
        self._secret, self._week, self._item, self._path = secret, week, item, path
        self._numbers: dict[str, int] = {}

    def __call__(self, url: str) -> str:
        """The link to write for ``url``: its counted link, or ``url`` as it is."""
        stripped = url.strip()
        if not stripped.lower().startswith(("http://", "https://")):
            return url
        # markdown-it's own normalization (IDNA host, percent-encoded path): the body's hrefs
        # already are, and the front matter's url becomes the same ASCII spelling.
        normal = normalizeLink(stripped)
        if not carried(normal):
            log.warning("%s: a link of %d characters is not counted (at most %d): %.60s...",
                        self._path, len(normal), MAX_URL, normal)
            return url
        number = self._numbers.setdefault(normal, len(self._numbers) + 1)
        if number > MAX_NUMBER:
            return url
        target = ClickTarget(self._week, self._item, number, normal)
        return self._prefix + make_click_token(self._secret, target)
