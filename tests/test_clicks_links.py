"""click_counts at render time: the items' links become ``{base_url}/r/<token>``, once per
edition, the same for every reader; the token round trip, and tokens that must not verify."""

from __future__ import annotations

import base64
import re
from html import unescape

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsletter.audience.recipient import Recipient
from newsletter.config import load_config
from newsletter.edition.click_tokens import (
    MAX_TOKEN,
    MAX_URL,
    BadClickToken,
    ClickTarget,
    make_click_token,
    peek_click_token,
    read_click_token,
)
from newsletter.edition.render import render_week
from newsletter.errors import ConfigError
from newsletter.message.outgoing import prepare

WEEK = "2026-W47"
PUBLIC = "https://news.xn--bcher-kva.example"  # base_url is ASCII: an IDN in its xn-- form
SECRET = "click-test-secret-0123456789abcdef"
OLD = "click-old-secret-0123456789abcdef"
REDIRECT = re.compile(re.escape(PUBLIC) + r"/r/([A-Za-z0-9_.-]+)")
ITEM = """---
title: Die “Bücherei” von Zoë
take: Unser Fazit – lesen.
source: Zoës Notizen
url: https://bücher.example/zoë?lang=de&page=2#kapitel-3
---
Read [the “long” piece](https://example.org/a?x=1&y=ä#frag), the
[same one again](https://example.org/a?x=1&y=ä#frag), write to
[the editors](mailto:redaktion@bücher.example), jump [up](#top), and see
<https://straße.example/weg>.
"""


def configure(project, **overrides):
    environ = {"NEWSLETTER_SECRET_KEY": SECRET, "NEWSLETTER_BASE_URL": PUBLIC,
               "NEWSLETTER_CLICK_COUNTS": "true"}
    environ.update({f"NEWSLETTER_{k.upper()}": str(v) for k, v in overrides.items()})
    return load_config(project / "newsletter.toml", environ=environ)


def filled(config, reader: Recipient) -> tuple[str, str]:
    rendered = render_week(config, WEEK)
    person = prepare(config, rendered).personalize(reader)
    return rendered.html.fill(person.html_values), rendered.text.fill(person.values)


JOSE = Recipient(id=7, email="jose@bücher.example", name="José Núñez")
ZOE = Recipient(id=8, email="zoe@straße.example", name="Zoë Ångström")


@pytest.fixture
def project_item(project):
    (project / "items" / WEEK / "06-bucherei.md").write_text(ITEM, encoding="utf-8")
    return project


def targets(part: str) -> list[ClickTarget]:
    return [read_click_token(SECRET, token) for token in REDIRECT.findall(part)]


def test_the_items_links_go_through_the_redirect_in_both_parts(project_item):
    html, text = filled(configure(project_item), JOSE)
    for part in (html, text):
        mine = [t for t in targets(part) if t.item == 6]
        assert {(t.link, t.url) for t in mine} == {
            (1, "https://example.org/a?x=1&y=%C3%A4#frag"),  # the body's link, twice: one link
            (2, "https://xn--strae-oqa.example/weg"),
            (3, "https://xn--bcher-kva.example/zo%C3%AB?lang=de&page=2#kapitel-3"),
        }
        assert all(t.week == WEEK for t in mine)
        assert "https://example.org/a?" not in part and "straße.example/weg (" not in part
    assert 'href="mailto:redaktion@xn--bcher-kva.example"' in html and 'href="#top"' in html
    # What the reader sees of the source is the address as written, not the redirect.
    assert ">Zoës Notizen</a>" in unescape(html)
    assert "Source: Zoës Notizen (" + PUBLIC + "/r/" in text


def test_the_source_link_shows_the_original_address_when_it_has_no_name(project):
    path = project / "items" / WEEK / "01-evaluation-is-the-product.md"
    path.write_text(path.read_text(encoding="utf-8").replace(
        "source: Notes from a panel on applied machine learning\n", ""), encoding="utf-8")
    html, text = filled(configure(project), JOSE)
    assert ">https://example.org/notes/evaluation-as-spec</a>" in html
    assert "Source: https://example.org/notes/evaluation-as-spec (" + PUBLIC + "/r/" in text


def test_the_templates_own_links_are_left_alone(project_item):
    html, text = filled(configure(project_item), JOSE)
    hrefs = re.findall(r'href="([^"]+)"', html)
    assert f"{PUBLIC}/archive/{WEEK}" in hrefs
    assert any(h.startswith(f"{PUBLIC}/unsubscribe/") for h in hrefs)
    assert f"Unsubscribe: {PUBLIC}/unsubscribe/" in text
    assert len(set(targets(html))) == 5 + 3  # five sample items with one link each, and ours


def test_two_readers_messages_carry_the_same_links(project_item):
    config = configure(project_item)
    (html_a, text_a), (html_b, text_b) = filled(config, JOSE), filled(config, ZOE)
    assert REDIRECT.findall(html_a) == REDIRECT.findall(html_b) != []
    assert REDIRECT.findall(text_a) == REDIRECT.findall(text_b) != []
    for token in REDIRECT.findall(html_a):
        assert "jose" not in base64.urlsafe_b64decode(token.split(".")[3] + "==").decode()


def test_without_click_counts_nothing_changes(project_item):
    on = configure(project_item)
    off = configure(project_item, click_counts="false")
    assert "/r/" not in filled(off, JOSE)[0]
    assert render_week(off, WEEK).content_hash == render_week(
        configure(project_item, click_counts="false"), WEEK).content_hash
    assert render_week(off, WEEK).content_hash != render_week(on, WEEK).content_hash


def test_the_archive_s_web_version_links_straight_to_the_sources(project_item):
    from newsletter.edition.content import load_edition
    from newsletter.edition.render import render_edition

    config = configure(project_item)
    web = render_edition(config, load_edition(config.items_dir, WEEK), audience="web")
    assert "/r/" not in web.html.fill({})


def test_click_counts_needs_base_url(project):
    with pytest.raises(ConfigError, match="config key 'click_counts' needs base_url"):
        configure(project, base_url="")


def test_a_link_too_long_for_a_token_is_left_as_it_is(project, caplog):
    long = "https://example.org/" + "ä" * MAX_URL
    path = project / "items" / WEEK / "01-evaluation-is-the-product.md"
    text = path.read_text(encoding="utf-8")
    path.write_text(text + f"\nAnd [a long one]({long}).\n", encoding="utf-8")
    html, _ = filled(configure(project), JOSE)
    assert "https://example.org/%C3%A4%C3%A4" in html
    assert "is not counted" in caplog.text and "01-evaluation-is-the-product.md" in caplog.text


# -- the token ----------------------------------------------------------------------------

urls = st.builds(
    lambda scheme, host, path, query: f"{scheme}://{host}/{path}{query}",
    st.sampled_from(["http", "https", "HTTPS"]),
    st.from_regex(r"[a-z0-9-]{1,20}(\.[a-z0-9-]{1,10}){1,3}", fullmatch=True),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=200),
    st.sampled_from(["", "?a=1&b=2", "#frag", "?q=%E2%80%9C"]),
)


@given(url=urls, week=st.from_regex(r"20[0-9]{2}-W[0-5][0-9]", fullmatch=True),
       item=st.integers(1, 9999), link=st.integers(1, 9999))
def test_a_token_reads_back_what_it_was_made_of(url, week, item, link):
    target = ClickTarget(week, item, link, url)
    token = make_click_token(SECRET, target)
    assert len(token) <= MAX_TOKEN and re.fullmatch(r"[A-Za-z0-9_.-]+", token)
    assert read_click_token(SECRET, token) == target
    assert read_click_token([SECRET, OLD], token) == target
    assert peek_click_token(token) == target


@given(url=urls, position=st.integers(0, 10_000), char=st.sampled_from("A_-9z."))
def test_an_altered_token_never_verifies(url, position, char):
    token = make_click_token(SECRET, ClickTarget(WEEK, 2, 1, url))
    position %= len(token)
    altered = token[:position] + char + token[position + 1:]
    if altered != token:
        with pytest.raises(BadClickToken):
            read_click_token(SECRET, altered)


def test_a_token_signed_with_a_previous_key_still_verifies_and_another_does_not():
    target = ClickTarget(WEEK, 1, 1, "https://example.org/%E2%80%9Cx%E2%80%9D")
    old = make_click_token(OLD, target)
    assert read_click_token([SECRET, OLD], old) == target
    with pytest.raises(BadClickToken):
        read_click_token(SECRET, old)
    with pytest.raises(BadClickToken):
        read_click_token([], old)


def test_a_forged_token_to_another_site_does_not_verify():
    real = make_click_token(SECRET, ClickTarget(WEEK, 1, 1, "https://example.org/a"))
    week, item, link, _url, signature = real.split(".")
    evil = base64.urlsafe_b64encode(b"https://evil.example/").rstrip(b"=").decode()
    for forged in (f"{week}.{item}.{link}.{evil}.{signature}",
                   f"{week}.{item}.2.{_url}.{signature}",
                   f"{week}.0{item}.{link}.{_url}.{signature}"):
        with pytest.raises(BadClickToken):
            read_click_token(SECRET, forged)


def test_spare_bits_make_another_spelling_that_does_not_verify():
    url = "https://example.org/ab"  # 22 bytes: the last base64 character has spare bits
    token = make_click_token(SECRET, ClickTarget(WEEK, 1, 1, url))
    week, item, link, encoded, signature = token.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = encoded[:-1] + alphabet[alphabet.index(encoded[-1]) + 1]
    assert base64.urlsafe_b64decode(twin + "==") == url.encode()
    with pytest.raises(BadClickToken):
        read_click_token(SECRET, f"{week}.{item}.{link}.{twin}.{signature}")


@pytest.mark.parametrize("token", [
    "", "x" * (MAX_TOKEN + 1), "2026-W47.1.1..AAAAAAAAAAAAAAAAAAAAAA",
    "2026-W47.1.1.amF2YXNjcmlwdDphbGVydCgxKQ.AAAAAAAAAAAAAAAAAAAAAA",  # javascript:alert(1)
    "2026-W47.1.1.aHR0cHM6Ly9leGFtcGxlLm9yZy8g.AAAAAAAAAAAAAAAAAAAAAA",  # a space
    "2026-W47.1.1.aHR0cHM6Ly9leGFtcGxlLm9yZy8.AAAAAAAAAAAAAAAAAAAAAA/..",
    "Zoë.1.1.aHR0cHM6Ly9leGFtcGxlLm9yZy8.AAAAAAAAAAAAAAAAAAAAAA",
])
def test_malformed_tokens_are_refused(token):
    with pytest.raises(BadClickToken):
        read_click_token(SECRET, token)
    assert peek_click_token(token) is None
