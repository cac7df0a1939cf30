"""One HTTP request to a provider, retried only when that is safe.

- Never reached the provider (connect error, pool timeout): retried with backoff.
- 429 and 5xx: the provider did not accept the request; retried with exponential backoff and
  jitter, waiting at least what Retry-After / X-RateLimit-Reset / RateLimit-Reset ask for.
- Timeout or broken connection after the request was sent, or a 504: the outcome is unknown.
  Resent only when the request carries an idempotency key; otherwise ``OutcomeUnknown``.
  Once any attempt's outcome was unknown the request stays unknown, whatever later attempts
  answer: a 429 after a lost answer does not mean the first attempt was refused, and "retry
  later" would put the batch back under a new key.
- A request that cannot be made at all (a header no request can carry, such as an API key
  with a trailing space): ``FatalTransportError``, nothing sent, every request would fail.
- Any other response is returned for the provider module to parse.

``watch_requests()`` tells the caller whether a request may have left: the send loop uses it
to record a batch truthfully when something unexpected is raised.

Tests inject an ``httpx.MockTransport`` (or any ``httpx.AsyncBaseTransport``) and a fake
``sleep``; nothing here is patched.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson

from ..config import Config
from ._json_body import array_fragments, stream
from .base import (
    BatchRetryable,
    ErrorT,
    FatalTransportError,
    LookupFailed,
    OutcomeUnknown,
    TransportError,
)

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


@dataclass
class RequestWatch:
    """What the HTTP requests made inside ``watch_requests()`` came to."""

    used: bool = False   # a request was begun (its body built)
    sent: bool = False   # a request was handed to the network: it may have arrived


_watch: ContextVar[RequestWatch | None] = ContextVar("newsletter_request_watch", default=None)


@contextmanager
def watch_requests() -> Iterator[RequestWatch]:
    """Watch the requests made in this context (an asyncio task keeps its own)."""
    watch = RequestWatch()
    token = _watch.set(watch)
    try:
        yield watch
    finally:
        _watch.reset(token)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4          # requests in all, the first one included
    base_delay: float = 0.5    # seconds before the first retry, doubling each time
    max_delay: float = 30.0    # cap on one computed backoff
    max_wait: float = 300.0    # a provider asking for a longer pause ends the retries


class HttpClient:
    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retry: RetryPolicy = RetryPolicy(),
        transport: httpx.AsyncBaseTransport | None = None,
        secrets: Iterable[str] = (),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        is_fatal: Callable[[httpx.Response], bool] | None = None,
    ):
        self.provider = provider
        self.secrets = tuple(s for s in secrets if s)
        self.retry = retry
        self._sleep = sleep
        # A provider's way to say that a 429 or 5xx will not get better by waiting (a quota
        # used up for the day): such an answer stops the send instead of being retried.
        self._is_fatal = is_fatal
        self._client = httpx.AsyncClient(
            base_url=base_url, headers=headers, auth=auth, timeout=timeout, transport=transport
        )

    def error(self, cls: type[ErrorT], message: str, response: httpx.Response | None = None,
              **kw: Any) -> ErrorT:
        status = response.status_code if response is not None else None
        body = response.text if response is not None else ""
        return cls(self.provider, message, status=status, body=body, secrets=self.secrets, **kw)

    async def request(self, method: str, url: str, *, idempotent: bool = False,
                      json: Any = None, json_items: Iterable[Any] | None = None,
                      **kwargs: Any) -> httpx.Response:
        """Send with the retry rules above. ``json_items`` is a JSON array given item by item,
        kept as fragments that share the edition's text (see ``_json_body``)."""
        watch = _watch.get()
        if watch is not None:
            watch.used = True
        fragments: list[bytes] | None = None
        if json is not None:
            # orjson: a batch of 500 full messages is ~15 MB of JSON; the stdlib takes twice
            # as long to write it.
            kwargs["content"] = orjson.dumps(json)
        elif json_items is not None:
            fragments = array_fragments(json_items)
            kwargs["headers"] = {"Content-Length": str(sum(map(len, fragments))),
                                 **kwargs.get("headers", {})}
        if json is not None or json_items is not None:
            kwargs["headers"] = {"Content-Type": "application/json", **kwargs.get("headers", {})}
        last: TransportError | None = None
        unknown: TransportError | None = None  # the first attempt that may have been accepted
        for attempt in range(1, self.retry.attempts + 1):
            wait: float | None = None
            if fragments is not None:  # a fresh stream of the same bytes for every attempt
                kwargs["content"] = stream(fragments)
            if watch is not None:
                watch.sent = True
            try:
                response = await self._client.request(method, url, **kwargs)
                # httpx keeps a response and its stream in a reference cycle, so a finished
                # request (its whole body included) would wait for the cycle collector.
                response.stream = httpx.ByteStream(response.content)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                last = self.error(BatchRetryable, f"could not connect: {type(exc).__name__}")
            except (httpx.LocalProtocolError, httpx.UnsupportedProtocol) as exc:
                # Refused by the client itself before a byte left (h11 checks the headers).
                raise _stop(self.error(FatalTransportError,
                                       f"the request cannot be made: {exc}"), unknown) from None
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                last = self.error(OutcomeUnknown, f"no answer after sending: {type(exc).__name__}")
                unknown = unknown or last
                if not idempotent:
                    raise last from None
            else:
                status = response.status_code
                if status == 504:
                    last = self.error(OutcomeUnknown, "gateway timeout", response)
                    unknown = unknown or last
                    if not idempotent:
                        raise last
                elif (status == 429 or status >= 500) and self._is_fatal and \
                        self._is_fatal(response):
                    raise _stop(self.error(FatalTransportError,
                                           "provider refuses further sending", response), unknown)
                elif status == 429 or status >= 500:
                    wait = retry_after(response)
                    last = self.error(BatchRetryable, "provider asked to retry later", response,
                                      retry_after=wait)
                else:
                    return response
            if attempt == self.retry.attempts:
                break
            delay = max(wait or 0.0, self._backoff(attempt))
            if delay > self.retry.max_wait:
                break
            await self._sleep(delay)
        assert last is not None
        raise unknown or last

    async def lookup(self, url: str, params: dict[str, str] | None, *, what: str) -> Any:
        """One GET of a provider's search (``what`` names it in errors), retried by the rules
        above since a GET is safe to repeat; its JSON answer, or ``LookupFailed``."""
        try:
            response = await self.request("GET", url, idempotent=True, params=params)
        except TransportError as exc:
            # With a status the error says it (and the body); without, its own words say why.
            cause = (f": {str(exc).removeprefix(f'{self.provider}: ')}"
                     if exc.status is None else "")
            raise LookupFailed(self.provider, f"{what} failed{cause}", status=exc.status,
                               body=exc.body, secrets=self.secrets) from exc
        if response.status_code != 200:
            raise self.error(LookupFailed, f"{what} refused", response)
        try:
            return response.json()
        except ValueError:
            raise self.error(LookupFailed, f"{what}: the answer is not JSON",
                             response) from None

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.retry.max_delay, self.retry.base_delay * 2.0 ** (attempt - 1))
        return ceiling / 2 + random.random() * ceiling / 2  # "equal jitter"

    async def aclose(self) -> None:
        await self._client.aclose()


def _stop(error: FatalTransportError,
          unknown: TransportError | None) -> FatalTransportError:
    """A fatal error ends the send; after an attempt that may have been accepted it says so
    (``maybe_accepted``), so the batch is recorded unknown, not as never sent."""
    error.maybe_accepted = unknown is not None
    return error


def api_client(provider: str, config: Config, default_base_url: str, *, bearer: bool = False,
               headers: dict[str, str] | None = None, **options: Any) -> HttpClient:
    """The HttpClient of a provider keyed by ``provider_api_key`` (required, and redacted)."""
    config.require("provider_api_key")
    key = config.provider_api_key
    all_headers = {"Accept": "application/json", **(headers or {})}
    if bearer:
        all_headers["Authorization"] = f"Bearer {key}"
    return HttpClient(provider, config.provider_base_url or default_base_url,
                      headers=all_headers, secrets=[key], **options)


def retry_after(response: httpx.Response, now: float | None = None) -> float | None:
    """Seconds the provider asks us to wait, from whichever header it uses."""
    now = time.time() if now is None else now
    headers = response.headers
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - now)
            except (TypeError, ValueError):
                pass
    for name in ("x-ratelimit-reset", "ratelimit-reset"):
        value = headers.get(name)
        if value:
            try:
                number = float(value)
            except ValueError:
                continue
            # Large values are a Unix time (SendGrid); small ones a number of seconds.
            return max(0.0, number - now) if number > 1e9 else max(0.0, number)
    return None


def raise_for_status(client: HttpClient, response: httpx.Response) -> None:
    """The common mapping of a final non-success answer; provider modules refine it first."""
    from .base import BatchRejected

    status = response.status_code
    if status in (401, 403):
        raise client.error(FatalTransportError, "credentials refused", response)
    if status >= 400:
        raise client.error(BatchRejected, "request refused", response)
