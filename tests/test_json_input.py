"""JSON from outside: nesting measured before decoding, strict UTF-8, and the sign-up API's 400."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter import json_input
from newsletter.store.db import connect
from tests.web_helpers import Clock, make_app, row, web_client, web_config

values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False,
                                                                      allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from('[]{}"\\“é')),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=30)


def depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


@given(value=values, limit=st.integers(0, 8))
def test_the_nesting_is_measured_exactly_whatever_the_strings_hold(value, limit):
    text = json.dumps(value, ensure_ascii=False).encode()
    assert json_input.nests_deeper(text, limit) == (depth(value) > limit)
    assert json_input.loads(text) == value


@pytest.mark.parametrize("opener", ["[", '{"ä":'])
def test_sixty_four_levels_are_read_and_sixty_five_refused(opener):
    closer = "]" if opener == "[" else "}"
    assert json_input.loads(opener * 64 + "1" + closer * 64) is not None
    with pytest.raises(json_input.UnreadableJSON, match="nested deeper than 64 levels"):
        json_input.loads(opener * 65 + "1" + closer * 65)


def test_a_million_levels_are_refused_without_recursion():
    with pytest.raises(json_input.UnreadableJSON, match="nested deeper"):
        json_input.loads(b"[" * 1_000_000 + b"]" * 1_000_000)
    with pytest.raises(json_input.UnreadableJSON):
        json_input.loads(b'{"a":' * 1_000_000)  # never closed


def test_brackets_in_strings_and_escaped_quotes_do_not_count():
    text = '["\\"[[[[", "\\\\", {"k": "]]]}}"}, "“[”"]'
    assert json_input.loads(text) == ['"[[[[', "\\", {"k": "]]]}}"}, "“[”"]
    assert not json_input.nests_deeper(text.encode(), 2)
    assert json_input.nests_deeper(b'"unclosed [[[' + b"[" * 3, 2) is False  # all one string


@pytest.mark.parametrize(("data", "why"), [
    (b"\xff\xfe{}", "not UTF-8"),
    ("{\"a\": \"\ud800\"}", "not UTF-8"),  # a lone surrogate cannot be UTF-8
    (b'"\\ud800"', "not JSON"),  # nor can its escape stand for text
    (b"\xef\xbb\xbf{}", "not JSON"),  # a byte order mark
    (b"NaN", "not JSON"), (b"[1e400]", "not JSON"), (b"{'a': 1}", "not JSON"), (b"", "not JSON"),
])
def test_what_is_not_json_is_refused_in_a_few_words(data, why):
    with pytest.raises(json_input.UnreadableJSON) as info:
        json_input.loads(data)
    assert str(info.value) == why


# -- the sign-up API ---------------------------------------------------------------------------


@pytest.fixture
def client(project, database_url):
    config = web_config(project, database_url)
    engine = connect(database_url)
    clock = Clock()
    with web_client(make_app(config, clock, engine=engine),
                    raise_server_exceptions=False) as test_client:
        test_client.engine, test_client.clock = engine, clock
        yield test_client
    engine.dispose()


@pytest.mark.parametrize("body", [
    b"[" * 1000 + b"]" * 1000,
    '{"email": "ana@bücher.example", "x": '.encode() + b"[" * 1000 + b"]" * 1000 + b"}",
    "{\"email\": \"josé@bücher.example\"}".encode("latin-1"),
], ids=["deep", "deep-field", "latin-1"])
def test_the_sign_up_api_answers_400_and_the_next_request_is_served(client, body):
    answer = client.post("/api/subscribe", content=body,
                         headers={"content-type": "application/json"})
    assert answer.status_code == 400
    assert answer.json() == {"error": "the body must be a JSON object"}
    token = client.get("/api/subscribe").json()["form_token"]
    client.clock.advance(seconds=3)
    ok = client.post("/api/subscribe", json={"email": "zoe@bücher.example", "name": "Zoë",
                                             "form_token": token})
    assert ok.status_code == 200 and row(client.engine, "zoe@bücher.example") is not None


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values | st.dictionaries(st.sampled_from(["email", "name", "form_token", "website",
                                                       "altcha"]), values, max_size=5))
def test_the_sign_up_api_answers_any_json_with_a_4xx_or_its_one_answer(client, value):
    answer = client.post("/api/subscribe", json=value)
    assert answer.status_code in (200, 400, 409, 422), answer.status_code
