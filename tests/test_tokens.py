from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsletter.audience.tokens import BadToken, ExpiredToken, make_token, read_token

KEY = "k" * 32


@given(st.integers(min_value=0, max_value=2**63))
def test_a_token_names_its_subscriber(subscriber_id):
    assert read_token(KEY, "unsubscribe", make_token(KEY, "unsubscribe", subscriber_id)) == (
        subscriber_id
    )


def test_an_altered_signature_is_refused():
    token = make_token(KEY, "unsubscribe", 42)
    ident, sig = token.split(".")
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    with pytest.raises(BadToken):
        read_token(KEY, "unsubscribe", f"{ident}.{flipped}")


def test_a_token_cannot_be_moved_to_another_subscriber():
    sig = make_token(KEY, "unsubscribe", 42).split(".")[1]
    with pytest.raises(BadToken):
        read_token(KEY, "unsubscribe", f"{43:x}.{sig}")


def test_tokens_are_scoped_to_their_purpose_and_key():
    token = make_token(KEY, "unsubscribe", 7)
    with pytest.raises(BadToken):
        read_token(KEY, "confirm", token)
    with pytest.raises(BadToken):
        read_token("another key", "unsubscribe", token)


@pytest.mark.parametrize("junk", ["", ".", "abc", "12.", ".abc", "1!.abc", "1.@@@@"])
def test_malformed_tokens_are_refused(junk):
    with pytest.raises(BadToken):
        read_token(KEY, "unsubscribe", junk)


def test_a_token_does_not_contain_the_address():
    token = make_token(KEY, "unsubscribe", 12345)
    assert "@" not in token and "example" not in token


# --------------------------------------------------------------------------- one spelling


def _spellings(token: str) -> list[str]:
    """Every other way to write the same bytes: base64's last character carries spare bits,
    base 36 reads upper case and leading zeros."""
    import base64

    ident, sig = token.split(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    out = []
    for c in alphabet:
        other = sig[:-1] + c
        if other != sig and base64.urlsafe_b64decode(other + "==") == raw:
            out.append(f"{ident}.{other}")
    return out + [f"{ident.upper()}.{sig}", f"0{ident}.{sig}"]


def test_only_the_canonical_spelling_verifies():
    token = make_token(KEY, "unsubscribe", 1234567)  # "qglj": has letters to upper-case
    others = _spellings(token)
    assert len(others) == 17  # 15 spare-bit spellings of the last character, 2 of the id
    for other in others:
        with pytest.raises(BadToken):
            read_token(KEY, "unsubscribe", other)
    assert read_token(KEY, "unsubscribe", token) == 1234567


def test_links_made_before_a_key_rotation_still_verify():
    old = make_token("old key", "unsubscribe", 5)
    new = make_token("new key", "unsubscribe", 6)
    keys = ("new key", "old key")
    assert read_token(keys, "unsubscribe", old) == 5
    assert read_token(keys, "unsubscribe", new) == 6
    with pytest.raises(BadToken):
        read_token(("new key",), "unsubscribe", old)
    with pytest.raises(BadToken):
        read_token((), "unsubscribe", new)


# --------------------------------------------------------------------------- expiring


ISSUED = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def test_a_confirmation_token_expires_after_max_age():
    token = make_token(KEY, "confirm", 9, issued_at=ISSUED)
    day = timedelta(days=1)
    assert read_token(KEY, "confirm", token, max_age=day, now=ISSUED + day) == 9
    assert read_token(KEY, "confirm", token, max_age=86400, now=ISSUED + day) == 9
    with pytest.raises(ExpiredToken) as err:
        read_token(KEY, "confirm", token, max_age=day, now=ISSUED + day + timedelta(seconds=1))
    assert err.value.subscriber_id == 9 and err.value.issued_at == ISSUED
    assert isinstance(err.value, BadToken)


def test_the_issue_time_is_signed():
    token = make_token(KEY, "confirm", 9, issued_at=ISSUED)
    ident, stamp, sig = token.split(".")
    later = make_token(KEY, "confirm", 9, issued_at=ISSUED + timedelta(days=30)).split(".")[1]
    with pytest.raises(BadToken) as err:
        read_token(KEY, "confirm", f"{ident}.{later}.{sig}", max_age=60, now=ISSUED)
    assert not isinstance(err.value, ExpiredToken)


def test_max_age_refuses_a_token_without_an_issue_time():
    with pytest.raises(BadToken, match="issue time"):
        read_token(KEY, "confirm", make_token(KEY, "confirm", 9), max_age=3600)


def test_an_expired_forgery_is_bad_not_expired():
    token = make_token("another key", "confirm", 9, issued_at=ISSUED)
    with pytest.raises(BadToken) as err:
        read_token(KEY, "confirm", token, max_age=1, now=ISSUED + timedelta(days=9))
    assert not isinstance(err.value, ExpiredToken)


@given(st.integers(min_value=0, max_value=2**63),
       st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 1, 1),
                    timezones=st.just(UTC)))
def test_an_expiring_token_names_its_subscriber(subscriber_id, issued):
    token = make_token(KEY, "confirm", subscriber_id, issued_at=issued)
    # Whole seconds are kept: a token is at most one second "older" than the time given.
    assert read_token(KEY, "confirm", token, max_age=1, now=issued) == subscriber_id


@pytest.mark.parametrize("junk", ["1.zzzzzzzzzzzzz.AAAAAAAAAAAAAAAAAAAAAA", "1..x", "1.2.3.4",
                                  "1." + "A" * 23, "\u0661.AAAAAAAAAAAAAAAAAAAAAA"])
def test_odd_shapes_are_malformed_not_errors(junk):
    with pytest.raises(BadToken):
        read_token(KEY, "confirm", junk, max_age=60)


@pytest.mark.parametrize("tail", ["\n", "\r\n", "\n\n"])
def test_a_token_with_a_line_break_after_it_is_not_the_same_token(tail):
    token = make_token("k" * 32, "unsubscribe", 42)
    assert read_token("k" * 32, "unsubscribe", token) == 42
    with pytest.raises(BadToken):
        read_token("k" * 32, "unsubscribe", token + tail)
