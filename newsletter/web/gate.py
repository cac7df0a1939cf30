"""The bot gate every sign-up passes, from the HTML form and the JSON API alike.

1. A honeypot: a text field people never see (moved off-screen by CSS, not ``type=hidden``,
   which bots skip) and leave empty.
2. A form token signed with the secret key and its issue time: a submission faster than
   ``MIN_FILL`` after the form was served, or without a genuine token, is a bot; one older than
   ``MAX_AGE`` is a person who left the page open (they get the form again).
3. A per-IP limit (IPv6 counted per /64; an IPv4-mapped ``::ffff:a.b.c.d`` is its IPv4
   address, not one /64 shared by every IPv4 client).
4. With ``subscribe_captcha = "altcha"``, a self-hosted proof of work (the ``altcha``
   package's challenge; our page's script solves it), each solution good once.

A bot that trips 1-4 is told the sign-up worked, and nothing is stored or mailed.
"""

from __future__ import annotations

import base64
import ipaddress
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from .. import json_input
from . import security

HONEYPOT = "website"
TOKEN_FIELD = "form_token"
ALTCHA_FIELD = "altcha"
FORM_PURPOSE = "form:subscribe"
MIN_FILL = timedelta(seconds=2)
MAX_AGE = timedelta(days=1)
PER_IP = 5                     # sign-ups from one address ...
PER_IP_WINDOW = timedelta(minutes=10)  # ... in this long
ALTCHA_MAX_NUMBER = 50_000     # about a second of hashing in a browser
_TRACKED_IPS = 10_000          # memory bound of the per-IP table


class Verdict(StrEnum):
    PASS = "pass"
    BOT = "bot"          # answer "done", do nothing
    EXPIRED = "expired"  # show the form again


@dataclass(frozen=True)
class FormFields:
    """What the form (or an API client) must send back."""

    token: str
    altcha_challenge: dict | None


class SignupGate:
    def __init__(self, keys: list[str], clock: Callable[[], datetime], *, captcha: str = ""):
        self._keys = keys
        self._clock = clock
        self._captcha = captcha
        self._hits: OrderedDict[str, deque[datetime]] = OrderedDict()
        self._used: OrderedDict[str, datetime] = OrderedDict()  # altcha solutions seen

    def fields(self) -> FormFields:
        now = self._clock()
        return FormFields(security.sign(self._keys[0], FORM_PURPOSE, now),
                          self._challenge(now) if self._captcha == "altcha" else None)

    def check(self, data: Mapping[str, object], ip: str) -> Verdict:
        """Judge one submission (form fields or JSON members)."""
        now = self._clock()
        if not self._under_limit(ip, now):
            return Verdict.BOT
        if str(data.get(HONEYPOT) or "").strip():
            return Verdict.BOT
        issued = security.issued_at(self._keys, FORM_PURPOSE, str(data.get(TOKEN_FIELD) or ""))
        if issued is None or now - issued < MIN_FILL:
            return Verdict.BOT
        if now - issued > MAX_AGE:
            return Verdict.EXPIRED
        if self._captcha == "altcha" and not self._solved(str(data.get(ALTCHA_FIELD) or ""), now):
            return Verdict.BOT
        return Verdict.PASS

    # -- per-IP limit -----------------------------------------------------------------------

    def _under_limit(self, ip: str, now: datetime) -> bool:
        key = _ip_key(ip)
        hits = self._hits.pop(key, None) or deque()
        while hits and now - hits[0] > PER_IP_WINDOW:
            hits.popleft()
        hits.append(now)
        self._hits[key] = hits  # most recent last, so the oldest is dropped first
        while len(self._hits) > _TRACKED_IPS:
            self._hits.popitem(last=False)
        return len(hits) <= PER_IP

    # -- altcha -----------------------------------------------------------------------------

    def _altcha_key(self) -> str:
        return security.derived_key(self._keys[0], "altcha")

    def _challenge(self, now: datetime) -> dict:
        import altcha

        challenge = altcha.create_challenge_v1(
            algorithm="SHA-256", max_number=ALTCHA_MAX_NUMBER, hmac_key=self._altcha_key(),
            expires=now + MAX_AGE)
        return challenge.to_dict()

    def _solved(self, payload: str, now: datetime) -> bool:
        import altcha

        if not payload or len(payload) > 2000:
            return False
        try:
            ok, _ = altcha.verify_solution_v1(payload, self._altcha_key(), check_expires=True)
        except Exception:  # malformed payloads raise more than the library documents
            return False
        if not ok:
            return False
        # One use per challenge, however the payload around it is spelled.
        try:
            challenge = json_input.loads(base64.b64decode(payload))["challenge"]
        except (ValueError, TypeError, KeyError):  # json_input.UnreadableJSON is a ValueError
            return False
        if not isinstance(challenge, str) or challenge in self._used:
            return False
        self._used[challenge] = now
        while self._used and now - next(iter(self._used.values())) > MAX_AGE:
            self._used.popitem(last=False)
        return True


def _ip_key(ip: str) -> str:
    try:
        address = ipaddress.ip_address(security.plain_ip(ip))
    except ValueError:
        return ip
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
