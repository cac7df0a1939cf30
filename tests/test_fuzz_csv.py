"""Fuzzing CSV import: random bytes, and well-formed files with hostile cells. The invariant:
a one-line SubscriberError naming the file, or an import whose every row passes today's rules
(no control character reaches a stored name or address), never a traceback."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from newsletter.audience import audit, lookup, transfer
from newsletter.errors import SubscriberError
from newsletter.store import db

FUZZ = settings(max_examples=120, deadline=3000,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
HOSTILE = st.sampled_from(["\r", "\n", "\x0b", "\x0c", "\x85", "\u2028", "\x00", "\t", '"',
                           ";", ",", "=cmd()", "+1", "@x", "\ufeff", "\xff", "<", ">", "'",
                           "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
                           "2026-02-30", "active", "bounced", "x@example.com",
                           "Jos\u00e9 <jose@b\u00fccher.example>", "jos\u00e9@example.com"])
cell = st.lists(st.text(max_size=8) | HOSTILE, max_size=4).map("".join)
COLUMNS = ["email", "name", "status", "consented_at", "created_at", "source", "city"]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    yield db.connect(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'n.db'}")
    db.dispose_engines()


def _clear(engine) -> None:
    import sqlalchemy as sa

    from newsletter.store.tables import subscribers, suppressions

    with engine.begin() as conn:
        conn.execute(sa.delete(subscribers))
        conn.execute(sa.delete(suppressions))


address = st.builds("{}{}@{}".format, st.sampled_from(["", "Ada <", '"O\'Neil, J" <']),
                    st.from_regex(r"[a-z][a-z0-9.+-]{0,8}", fullmatch=True),
                    st.sampled_from(["example.com", "b\u00fccher.example", "stra\u00dfe.de"])
                    ).map(lambda a: a + ">" if "<" in a else a)


@FUZZ
@given(head=st.sampled_from([b"", b"email,name\n", b"\xef\xbb\xbfemail;name;city\r\n"]),
       data=st.binary(max_size=300))
def test_random_bytes_are_a_one_line_error_or_an_import(engine, tmp_path, head, data):
    _clear(engine)
    path = tmp_path / "random.csv"
    path.write_bytes(head + data)
    _import_and_check(engine, path, skip_invalid=True)


@FUZZ
@given(header=st.lists(st.sampled_from(COLUMNS[1:]), max_size=5, unique=True),
       data=st.data(), delimiter=st.sampled_from([",", ";"]))
def test_hostile_cells_are_row_errors_or_clean_rows(engine, tmp_path, header, data, delimiter):
    _clear(engine)
    header = ["email", *header]
    rows = data.draw(st.lists(st.tuples(address | cell, *[cell] * (len(header) - 1)),
                              max_size=5))
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    path = tmp_path / "hostile.csv"
    path.write_text(out.getvalue(), encoding="utf-8", errors="surrogatepass")
    _import_and_check(engine, path, skip_invalid=True)


# Each --from source's header (tests/data/imports), its cells hostile.
SOURCE_HEADERS = {
    "mailchimp": ["Email Address", "First Name", "Last Name", "OPTIN_TIME", "OPTIN_IP",
                  "CONFIRM_TIME", "TAGS", "UNSUB_TIME", "UNSUB_REASON"],
    "substack": ["email", "active_subscription", "plan", "email_disabled", "created_at"],
    "buttondown": ["email", "creation_date", "subscriber_type", "notes", "tags", "metadata"],
    "listmonk": ["uuid", "email", "name", "attributes", "status", "created_at", "updated_at"],
}
SOURCE_CELL = cell | st.sampled_from([
    "2024-03-14 09:12:31", "2024-03-14T09:12:31Z", "2024-03-14 09:12:31.5 +0100 CET",
    "192.0.2.1", "2001:db8::1", "999.1.1.1", "true", "spammy", "unactivated", "blocklisted",
    '{"name": "Zoë"}', '{"email": "x"}', '{"a": "\u0000"}', "[1", '["a", 2]', "{}",
    "x@deletion-request.substack.com"])


@FUZZ
@given(source=st.sampled_from(sorted(SOURCE_HEADERS)), data=st.data())
def test_hostile_cells_in_a_service_export(engine, tmp_path, source, data):
    _clear(engine)
    header = SOURCE_HEADERS[source]
    at = header.index("email") if "email" in header else 0
    rows = data.draw(st.lists(st.tuples(*[address if i == at else SOURCE_CELL
                                          for i in range(len(header))]), max_size=4))
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([header, *rows])
    path = tmp_path / "export.csv"
    path.write_text(out.getvalue(), encoding="utf-8", errors="surrogatepass")
    _import_and_check(engine, path, skip_invalid=True, source=source)


def _import_and_check(engine, path, skip_invalid=False, source=None) -> None:
    try:
        report = transfer.import_csv(engine, path, skip_invalid=skip_invalid, source=source)
    except SubscriberError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        event("refused")
        return
    except UnicodeEncodeError:
        event("not writable as UTF-8")  # a lone surrogate in the generated text, not a file
        return
    event("imported" if report.added else "nothing to import")
    for problem in report.notes():
        assert "\n" not in str(problem) or "\\n" in repr(problem.value)
    for sub in lookup.iter_subscribers(engine):
        assert audit.row_problem(sub.email, sub.name) is None, sub
