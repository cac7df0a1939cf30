import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsletter.audience.tokens import BadToken, make_token, read_token

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
