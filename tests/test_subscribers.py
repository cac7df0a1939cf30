"""newsletter.subscribers and newsletter.transfer as a library: streaming, status rules, atomic
import, round trips."""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.audience import bulk, changes, export, lookup, model, transfer
from newsletter.audience import subscribers as subs
from newsletter.audience.addresses import parse_address
from newsletter.audience.changes import Change, Consent, UnsubscribeMethod
from newsletter.audience.export import export_csv
from newsletter.audience.recipient import Recipient
from newsletter.clock import utc_now
from newsletter.errors import SubscriberError
from newsletter.store import db, tables
from tests.audience_helpers import mark_bounced


@pytest.fixture
def engine(database_url: str):
    yield db.connect(database_url)
    db.dispose_engines()


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- recipients


def test_iter_recipients_streams_active_in_id_order_across_pages(engine):
    for i in range(7):
        subs.add(engine, f"user{i}@example.com", name=f"User {i}" if i % 2 else None,
                 attributes={"n": str(i)})
    subs.add(engine, "pending@example.com", status="pending")
    changes.unsubscribe_address(engine, "user3@example.com")

    recipients = list(lookup.iter_recipients(engine, chunk=2))  # several pages
    assert [r.email for r in recipients] == [f"user{i}@example.com" for i in (0, 1, 2, 4, 5, 6)]
    assert all(isinstance(r, Recipient) for r in recipients)
    assert [r.id for r in recipients] == sorted(r.id for r in recipients)
    assert recipients[0].name == "" and recipients[1].name == "User 1"
    assert recipients[2].attributes == {"n": "2"}
    assert [r.email for r in lookup.iter_recipients(engine, status="pending")] == [
        "pending@example.com"
    ]


def test_iter_recipients_exact_page_boundary_and_empty(engine):
    assert list(lookup.iter_recipients(engine)) == []
    for i in range(4):
        subs.add(engine, f"u{i}@example.com")
    assert len(list(lookup.iter_recipients(engine, chunk=2))) == 4


def test_iter_recipients_rejects_unknown_status(engine):
    with pytest.raises(SubscriberError, match="unknown status"):
        list(lookup.iter_recipients(engine, status="everyone"))


# --------------------------------------------------------------------------- status changes


def test_an_unsubscribe_by_id_is_idempotent(engine):
    sub = subs.add(engine, "zoe@exämple.org", name="Zoë Ñúñez")
    first = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    done = changes.unsubscribe(engine, sub.id, UnsubscribeMethod.ONE_CLICK, Consent(), first)
    assert done == Change("active", "unsubscribed")
    stored = lookup.get(engine, "zoe@exämple.org")
    assert stored.unsubscribe_reason == "unsubscribed (one-click)"
    assert stored.unsubscribed_at == first and stored.unsubscribed_at.tzinfo is not None
    # The second click changes nothing: the first reason and time stand.
    again = changes.unsubscribe(engine, sub.id, UnsubscribeMethod.PAGE, Consent(),
                                first + timedelta(hours=1))
    assert again == Change("unsubscribed", "unsubscribed")
    assert lookup.get(engine, "zoe@exämple.org").unsubscribed_at == first
    assert changes.unsubscribe(engine, 999_999, UnsubscribeMethod.PAGE, Consent(), first) is None


def test_confirm_bounce_and_complaint(engine):
    pending = subs.add(engine, "p@example.com", status="pending")
    assert pending.confirmed_at is None
    assert changes.confirm(engine, pending.id, utc_now()) == Change("pending", "active")
    confirmed = lookup.get(engine, "p@example.com")
    assert confirmed.status == "active" and confirmed.confirmed_at is not None

    assert mark_bounced(engine, "P@example.com", "550 no such user").status == "bounced"
    # A stopped address is never re-activated by confirm either.
    assert changes.confirm(engine, pending.id, utc_now()) == Change("bounced", "bounced")
    assert lookup.get(engine, "p@example.com").status == "bounced"
    subs.add(engine, "c@example.com")
    assert changes.complain(engine, "c@example.com", "abuse report").status == "complained"
    assert lookup.count_by_status(engine) == {
        "pending": 0, "active": 0, "unsubscribed": 0, "bounced": 1, "complained": 1
    }
    with pytest.raises(SubscriberError, match="bounced; not re-subscribed"):
        subs.add(engine, "p@example.com")


def test_timestamps_are_aware_utc(engine):
    sub = subs.add(engine, "ada@example.com")
    stored = lookup.get(engine, "ada@example.com")
    for value in (stored.created_at, stored.updated_at, stored.consented_at, stored.confirmed_at):
        assert value.utcoffset() == timedelta(0)
    assert abs(stored.created_at - sub.created_at) < timedelta(seconds=1)


def test_import_reactivates_nothing_and_reports_each_case(engine, tmp_path):
    subs.add(engine, "unsub@example.com")
    changes.unsubscribe_address(engine, "unsub@example.com")
    subs.add(engine, "bounce@example.com")
    mark_bounced(engine, "bounce@example.com", "hard")
    subs.add(engine, "complain@example.com")
    changes.complain(engine, "complain@example.com", "spam")
    subs.add(engine, "erased@example.com")
    subs.remove(engine, "erased@example.com")
    subs.add(engine, "pend@example.com", status="pending")
    names = ("unsub", "bounce", "complain", "erased", "pend", "new")
    text = "email,status\n" + "".join(f"{a}@example.com,active\n" for a in names)
    report = transfer.import_csv(engine, write(tmp_path / "l.csv", text))
    assert report.added == 1 and report.unchanged == 1
    assert [(p.line, p.reason) for p in report.not_resubscribed] == [
        (2, "unsubscribed; not re-subscribed"),
        (3, "bounced; not re-subscribed"),
        (4, "complained; not re-subscribed"),
        (5, "address was removed on request; not re-subscribed"),
    ]
    statuses = {s.email: s.status for s in lookup.iter_subscribers(engine)}
    assert statuses == {
        "unsub@example.com": "unsubscribed",
        "bounce@example.com": "bounced",
        "complain@example.com": "complained",
        "pend@example.com": "pending",  # an import never changes an existing subscriber
        "new@example.com": "active",
    }


# --------------------------------------------------------------------------- atomic import


def test_failed_import_writes_nothing_even_after_some_batches(engine, tmp_path, monkeypatch):
    """A failure in the middle of the inserts (here: a row another process added while the
    import ran) rolls back the batches already inserted."""
    subs.add(engine, "taken@example.com")
    rows = [f"u{i}@example.com" for i in range(9)] + ["taken@example.com", "last@example.com"]
    path = write(tmp_path / "l.csv", "email\n" + "\n".join(rows) + "\n")
    monkeypatch.setattr(bulk, "_CHUNK", 2)  # inserts of 4 rows: two batches go in first
    monkeypatch.setattr(bulk, "existing_statuses", lambda conn, keys: {})  # the race
    with pytest.raises(SubscriberError, match="changed while importing; nothing was imported"):
        transfer.import_csv(engine, path)
    assert [s.email for s in lookup.iter_subscribers(engine)] == ["taken@example.com"]


def test_invalid_rows_abort_before_writing(engine, tmp_path):
    path = write(tmp_path / "l.csv", "email\n" + "ok@example.com\n" * 1 + "bad\nalso bad\n")
    with pytest.raises(transfer.ImportAborted) as caught:
        transfer.import_csv(engine, path)
    assert [(p.line, p.value) for p in caught.value.report.invalid] == [(3, "bad"), (4, "also bad")]
    assert lookup.count_by_status(engine)["active"] == 0


# --------------------------------------------------------------------------- properties

DOMAINS = [
    "example.com", "Example.ORG", "mail.example.net", "bücher.example", "xn--bcher-kva.example"
]
local_parts = st.from_regex(
    r"[A-Za-z0-9][A-Za-z0-9_+-]{0,12}(\.[A-Za-z0-9_+-]{1,6})?", fullmatch=True
)
addresses = st.builds(
    lambda local, domain: f"{local}@{domain}", local_parts, st.sampled_from(DOMAINS)
)
one_line = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=20
).map(str.strip).filter(bool)
any_text = st.text(  # anything a CSV cell can hold: line breaks, quotes, delimiters (no NUL)
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=20,
).map(
    str.strip
).filter(bool)
times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1), timezones=st.just(UTC)
)
attribute_names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda k: subs.attribute_name(k) == k and k not in model.EXPORT_COLUMNS
)


@given(
    address=addresses,
    wrap=st.sampled_from(["{}", "  {}  ", "Someone <{}>", '"Some, One" <{}>']),
    swap=st.booleans(),
)
@settings(max_examples=200, deadline=None)
def test_normalization_is_idempotent_and_case_insensitive(address, wrap, swap):
    given_text = wrap.format(address.swapcase() if swap else address)
    parsed = parse_address(given_text)
    assert parsed.key == parse_address(address).key  # same address, however written
    assert parse_address(parsed.key).key == parsed.key  # idempotent
    assert parse_address(parsed.email).key == parsed.key
    assert parsed.key == parsed.key.lower()


subscriber_records = st.fixed_dictionaries(
    {
        "email": addresses,
        "name": st.none() | one_line,
        "status": st.sampled_from(model.STATUSES),
        "source": st.sampled_from(["cli", "web", "import:old list.csv", "import:a;b,c.csv"]),
        "attributes": st.dictionaries(attribute_names, any_text, max_size=3),
        "consented_at": st.none() | times,
        "confirmed_at": st.none() | times,
        "unsubscribed_at": st.none() | times,
        "unsubscribe_reason": st.none() | one_line,
        "created_at": times,
    }
)


@given(records=st.lists(subscriber_records, max_size=6,
                        unique_by=lambda r: parse_address(r["email"]).key))
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_export_import_round_trip(engine, tmp_path, records):
    """Whatever the list holds, export -> import into an empty database gives it back."""
    _empty(engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for r in records:
            key = parse_address(r["email"]).key
            conn.execute(tables.subscribers.insert().values(email_key=key, updated_at=now, **r))
    original = [_comparable(s) for s in lookup.iter_subscribers(engine)]

    path = tmp_path / "export.csv"
    assert export_csv(engine, path) == len(records)
    _empty(engine)
    report = transfer.import_csv(engine, path)
    assert report.added == len(records) and not report.invalid

    assert [_comparable(s) for s in lookup.iter_subscribers(engine)] == original
    # And a second export is byte-identical to the first.
    again = io.StringIO()
    export_csv(engine, again)
    assert again.getvalue() == path.read_bytes().decode("utf-8")


def _empty(engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.delete(tables.subscribers))
        conn.execute(sa.delete(tables.suppressions))


def _comparable(sub: model.Subscriber) -> dict:
    out = sub.as_dict()
    del out["id"], out["updated_at"]
    return out


def test_failed_export_leaves_the_previous_file_and_no_temporary(engine, tmp_path, monkeypatch):
    subs.add(engine, "a@example.com")
    target = tmp_path / "out.csv"
    target.write_text("previous\n", encoding="utf-8")

    def broken(*_args, **_kwargs):
        yield from ()
        raise RuntimeError("disk full")

    monkeypatch.setattr(export, "iter_subscribers", broken)
    with pytest.raises(RuntimeError):
        export_csv(engine, target)
    assert target.read_text(encoding="utf-8") == "previous\n"
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_a_domain_validated_once_answers_the_same_for_every_address_at_it():
    """Each distinct domain is checked once per process (the import's cost at a million
    rows); what an address comes to must not depend on whether its domain was seen before."""
    first = [parse_address(a).key for a in ("Ana@Bücher.example", "bo@xn--bcher-kva.example")]
    again = [parse_address(a).key for a in ("Ana@Bücher.example", "bo@xn--bcher-kva.example")]
    assert first == again == ["ana@bücher.example", "bo@bücher.example"]
    for _ in range(2):  # a domain that fails is not remembered as good
        with pytest.raises(SubscriberError, match="hyphen"):
            parse_address("zoe@-bücher-.example")
