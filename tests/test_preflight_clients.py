"""Email-client support against caniemail's data, and the fallbacks that excuse a feature.

Most tests use a small hand-made catalog in caniemail's format (tests/data/preflight), so
they do not change when the shipped data is refreshed; a few use the shipped copy.
"""

from datetime import date
from pathlib import Path

import pytest

from newsletter.preflight import caniemail
from newsletter.preflight.clients import check_clients
from newsletter.preflight.htmlscan import parse

DATA = Path(__file__).parent / "data" / "preflight"
MSO_TABLE = ('<!--[if mso | IE]><table role="presentation" width="600"><tr><td><![endif]-->'
             '{}<!--[if mso | IE]></td></tr></table><![endif]-->')


@pytest.fixture(scope="module")
def catalog():
    return caniemail.Catalog.from_file(DATA / "caniemail-mini.json")


def page(body: str, head: str = "", *, mso: bool = False) -> str:
    if mso:
        body = MSO_TABLE.format(body)
    return f"<!DOCTYPE html><html><head>{head}</head><body>{body}</body></html>"


def check(catalog, body: str, head: str = "", *, mso: bool = False, today=None):
    return check_clients(parse(page(body, head, mso=mso)), catalog, today=today)


def unsupported(findings) -> list[str]:
    return [f.message for f in findings if f.code == "clients.unsupported"]


def partial(findings) -> str:
    found = [f.message for f in findings if f.code == "clients.partial"]
    return found[0] if found else ""


def test_plain_supported_markup_passes(catalog):
    assert check(catalog, "<div><p>José’s “notes” 🎉</p></div>") == []


def test_a_css_property_outlook_on_windows_lacks_is_a_warning_naming_the_platforms(catalog):
    body = '<div style="background-image:url(https://cdn.example/bg.png)">José</div>'
    [message] = unsupported(check(catalog, body))
    assert message == "CSS background-image: not supported in Outlook (Windows, Windows Mail)."
    # Gmail lacked it in 2019 but has it in its latest test: the latest result counts.
    assert "Gmail" not in message


def test_mso_conditional_tables_spare_outlook_on_windows_from_css(catalog):
    body = '<div style="background-image:url(https://cdn.example/bg.png)">José</div>'
    assert check(catalog, body, mso=True) == []


def test_an_element_is_checked_even_with_mso_tables(catalog):
    [message] = unsupported(check(catalog, '<video src="a.mp4"></video>', mso=True))
    assert message == "<video>: not supported in Gmail (all); Outlook (Windows, Outlook.com)."


def test_what_the_document_hides_from_outlook_is_not_held_against_it(catalog):
    body = '<!--[if !mso]><!--><video src="a.mp4"></video><!--<![endif]-->'
    [message] = unsupported(check(catalog, body))
    assert message == "<video>: not supported in Gmail (all); Outlook (Outlook.com)."
    [message] = unsupported(check(catalog, '<video style="mso-hide:all" src="a.mp4"></video>'))
    assert "Windows" not in message


def test_media_query_rules_only_enhance_and_are_not_checked(catalog):
    rule = ".hero{background-image:url(https://cdn.example/bg.png)}"
    assert check(catalog, "<p>x</p>", f"<style>@media (max-width:480px){{{rule}}}</style>") == []
    assert check(catalog, "<p>x</p>", f'<style media="(min-width:480px)">{rule}</style>') == []
    [message] = unsupported(check(catalog, "<p>x</p>", f"<style>{rule}</style>"))
    assert message.startswith("CSS background-image: not supported in Outlook")


def test_hidden_elements_are_not_checked_but_visible_ones_are(catalog):
    preheader = '<div style="display:none;opacity:0;max-width:0">Five ideas</div>'
    assert check(catalog, preheader + "<p>x</p>") == []
    [message] = unsupported(check(catalog, '<p style="opacity:0.5">x</p>'))
    assert message == "CSS opacity: not supported in Gmail (Mobile Webmail); Outlook (Windows)."


def test_the_document_skeleton_is_not_reported(catalog):
    # <style> (Gmail mobile webmail) and <body> (Outlook for Mac) are in every email.
    assert check(catalog, "<p>x</p>", "<style>p{color:red}</style>") == []


def test_partial_support_is_one_note_listing_the_features_per_client(catalog):
    findings = check(catalog, '<p style="margin-top:-4px;max-width:600px">x</p>')
    assert unsupported(findings) == []
    assert partial(findings) == ("Partial support (limits on some values or elements): "
                                 "Gmail: CSS margin-top; Outlook: CSS max-width.")
    with_tables = check(catalog, '<p style="margin-top:-4px;max-width:600px">x</p>', mso=True)
    assert partial(with_tables).endswith("Gmail: CSS margin-top.")


def test_values_functions_units_and_at_rules_are_features_too(catalog):
    body = ('<div style="display:flex;background:linear-gradient(#fff,#000);'
            'font-size:1.2rem !important">x</div>')
    head = "<style>@font-face{font-family:X;src:url(x.woff2)}</style>"
    findings = check(catalog, body, head)
    assert unsupported(findings) == [
        "@font-face: not supported in Gmail (Desktop Webmail).",
        "display:flex: not supported in Gmail (iOS); Outlook (Windows).",
        "linear-gradient(): not supported in Outlook (Windows).",
        "rem units: not supported in Outlook (Windows).",
    ]
    assert "Gmail: !important" in partial(findings)


def test_attributes_links_and_image_formats(catalog):
    body = ('<table role="presentation"><tr><td><a href="mailto:ed@bücher.example">x</a>'
            '<img src="https://cdn.example/chart.webp?v=2" alt="" width="10"></td></tr></table>')
    assert unsupported(check(catalog, body)) == [
        "mailto: links: not supported in Apple Mail (iOS).",
        "the role attribute: not supported in Outlook (Windows Mail).",
        "WEBP images: not supported in Outlook (Windows).",
    ]
    assert unsupported(check(catalog, body, mso=True)) == [
        "mailto: links: not supported in Apple Mail (iOS).",
    ]


def test_css_longhands_map_to_their_feature(catalog):
    assert catalog.css_property("margin-top") == "css-margin"
    assert catalog.css_property("border-left") == "css-border"
    assert catalog.css_property("border-top-left-radius") == "css-border-radius"
    assert catalog.css_property("column-gap") == "css-gap"
    assert catalog.css_property("left") == "css-left-right-top-bottom"
    assert catalog.css_property("color") is None


def test_old_client_data_gets_a_note(catalog):
    assert [f.code for f in check(catalog, "<p>x</p>", today=date(2026, 3, 2))] == \
        ["clients.data-old"]
    assert check(catalog, "<p>x</p>", today=date(2026, 3, 1)) == []


def test_the_shipped_data_is_dated_and_knows_gmail_lacks_video():
    shipped = caniemail.load()
    assert shipped.updated_on == date(2026, 5, 13)
    [message] = unsupported(check_clients(parse(page("<video></video>")), shipped))
    assert "Gmail (all)" in message


def test_the_shipped_data_says_where_it_came_from_and_under_what_licence():
    readme = (caniemail.DATA_FILE.parent / "README.md").read_text(encoding="utf-8")
    for fact in ("https://www.caniemail.com/api/data.json", "2026-05-13", "MIT",
                 "caniemail@2.0.2", "sha256"):
        assert fact in readme
    assert (caniemail.DATA_FILE.parent / "LICENSE-caniemail.txt").is_file()
