"""What the reconciliation tests of each provider share: readers with the names and domains
real lists have, a batch as the ledger hands it over when unknown, a transport whose retries
are not slept, and a batch sent through it and then asked about."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from newsletter.audience.recipient import Recipient
from newsletter.providers._http import RetryPolicy
from newsletter.providers.base import UnknownBatch, UnknownRow, Verdict
from tests.transport_fixtures import personalized

KEY = "3f2a9c0d1e4b5a6c7d8e"  # 20 hex digits, like the ledger's batch keys
OTHER_KEY = "99990000aaaabbbbcccc"
PEOPLE = [Recipient(id=1, email="jose@bücher.example", name="José Ñúñez"),
          Recipient(id=2, email="zoe@münchen.example", name="Zoë Ångström"),
          Recipient(id=3, email="rene@café.example", name="René “Renny” Lévesque")]


def fast(transport_class, config, **options):
    """The transport as a send makes it, its retries made fast (the waits not slept)."""
    async def sleep(seconds):
        pass

    return transport_class(config, sleep=sleep,
                           retry=RetryPolicy(attempts=3, base_delay=0.01), **options)


def unknown(outgoing, people, *, key=KEY, sent_at=None) -> UnknownBatch:
    """``people``'s rows of batch ``key`` as the ledger hands them over when unknown."""
    return UnknownBatch(key, outgoing.edition_key, outgoing.subject, sent_at or datetime.now(UTC),
                        tuple(UnknownRow(p.id, p.email) for p in people))


async def send_then_reconcile(transport, outgoing, people, *, sent=None, sent_at=None,
                              after=timedelta(0), rows=None):
    """Send ``sent`` (default: ``people``) as batch KEY, then ask about ``rows`` (default:
    ``people``'s) ``after`` the batch was claimed at ``sent_at`` (default: now); the findings
    and the outcomes of the send. The transport is closed after."""
    try:
        batch = unknown(outgoing, people, sent_at=sent_at)
        if rows is not None:
            batch = dataclasses.replace(batch, rows=rows)
        outcomes = []
        if sent is None or sent:
            outcomes = await transport.send_batch(
                outgoing, personalized(outgoing, people if sent is None else sent),
                batch_key=KEY)
        return await transport.reconcile(batch, now=batch.sent_at + after), outcomes
    finally:
        await transport.aclose()


async def ask(transport, batch, now=None):
    """What the transport finds about ``batch`` (asked ``now``, default: now); closed after."""
    try:
        return await transport.reconcile(batch, now=now or datetime.now(UTC))
    finally:
        await transport.aclose()


def verdicts(findings) -> dict[int, Verdict]:
    return {f.subscriber_id: f.verdict for f in findings}
