"""Whether one fetch of a counted link is a reader's click, from the request alone.

Not a click (counted as "filtered"): a HEAD (a link checker asking whether the page is there;
it is answered all the same), a prefetch or prerender (``Sec-Purpose``, ``Purpose``,
``X-Purpose``, ``X-Moz``: the browser or mail app fetching ahead of a click that may never
come), no user agent at all (browsers always send one; scanners often do not), and a user
agent on the scanners' list. A burst (one client, several links in a moment) is judged later,
in ``burst.py``: it takes more than one request to see.
"""

from __future__ import annotations

from collections.abc import Mapping

from .scanners import is_scanner

PURPOSE_HEADERS = ("sec-purpose", "purpose", "x-purpose", "x-moz")
AHEAD = ("prefetch", "prerender", "preview")
MAX_AGENT = 1024  # characters of a user agent looked at: a scanner says who it is early


def why_filtered(method: str, headers: Mapping[str, str]) -> str | None:
    """``"head"``, ``"prefetch"``, ``"no user agent"`` or ``"scanner"``; None: a click (so
    far: it may still be part of a burst)."""
    if method == "HEAD":
        return "head"
    for name in PURPOSE_HEADERS:
        value = headers.get(name, "").lower()
        if any(word in value for word in AHEAD):
            return "prefetch"
    agent = headers.get("user-agent", "").strip()[:MAX_AGENT]
    if not agent:
        return "no user agent"
    if is_scanner(agent):
        return "scanner"
    return None
