"""Link and image rules: https only, nothing local, unsubscribe links with a token, alt, width."""

import pytest

from newsletter.preflight.findings import Severity
from newsletter.preflight.htmlscan import parse
from newsletter.preflight.images import check_images, check_source_images
from newsletter.preflight.inputs import SourceImage
from newsletter.preflight.links import check_links, unsubscribe_token

BASE = "https://bücher.example/news"
TOKEN_URL = "https://bücher.example/news/unsubscribe/1.DGpUZtrxD0LGR-5JyE-j7g"
FOOTER = f'<p><a class="unsubscribe" href="{TOKEN_URL}">Abmelden</a></p>'
TEXT = f"José’s notes 🎉\n\nUnsubscribe: {TOKEN_URL}\n"


def links(body: str, text: str = TEXT, base_url: str = BASE):
    return check_links(parse(f"<html><body>{body}{FOOTER}</body></html>"), text,
                       base_url=base_url)


def codes(findings):
    return [(f.severity.value, f.code) for f in findings]


def test_https_links_mailto_and_anchors_pass():
    body = ('<p><a href="https://example.org/José’s-notes">José’s “notes”</a> '
            '<a href="mailto:editors@bücher.example">write</a> <a href="#top">top</a>'
            '<img src="https://cdn.bücher.example/a.png" alt="" width="600"></p>')
    assert links(body) == []


def test_plain_http_links_and_images_are_one_warning_with_the_count():
    body = '<a href="http://example.org/a">a</a><img src="http://example.org/b.png">'
    [finding] = links(body)
    assert (finding.severity, finding.code) == (Severity.WARNING, "links.http")
    assert finding.message.startswith("2 links or image sources use plain http://")
    assert "http://example.org/a" in finding.message


@pytest.mark.parametrize("url", [
    "http://localhost:8000/a", "https://127.0.0.1/a", "https://[::1]/x", "http://10.0.0.5/",
    "https://192.168.1.20/img.png", "https://preview.localhost/", "https://printer.local/",
])
def test_links_to_this_machine_or_a_private_network_are_an_error(url):
    [finding] = links(f'<a href="{url}">x</a>')
    assert (finding.severity, finding.code) == (Severity.ERROR, "links.local")
    assert url in finding.message


def test_relative_links_are_a_warning():
    assert codes(links('<a href="/archive/2026-W47">archive</a>')) == \
        [("warning", "links.relative")]


@pytest.mark.parametrize("href", [
    "https://bücher.example/news/unsubscribe",
    "https://bücher.example/news/unsubscribe/",
    "http://BÜCHER.example/news/unsubscribe",
    "https://xn--bcher-kva.example/news/unsubscribe",
    "/news/unsubscribe",
])
def test_an_unsubscribe_link_without_a_token_is_an_error(href):
    [finding] = links(f'<a href="{href}">Unsubscribe</a>')
    assert (finding.severity, finding.code) == (Severity.ERROR, "links.unsubscribe-no-token")


def test_pages_next_to_the_unsubscribe_page_are_not_unsubscribe_links():
    assert unsubscribe_token("https://bücher.example/news/unsubscribed", BASE) is None
    assert unsubscribe_token("https://other.example/news/unsubscribe", BASE) is None
    assert unsubscribe_token(TOKEN_URL, BASE) == "1.DGpUZtrxD0LGR-5JyE-j7g"
    assert unsubscribe_token("https://bücher.example/news/unsubscribe?t=abc", BASE) == "t=abc"


def test_the_body_needs_a_visible_unsubscribe_link():
    html = "<html><body><p>José’s notes</p></body></html>"
    assert codes(check_links(parse(html), TEXT, base_url=BASE)) == \
        [("error", "links.no-unsubscribe")]
    hidden = f'<html><body><div style="display:none">{FOOTER}</div></body></html>'
    assert codes(check_links(parse(hidden), TEXT, base_url=BASE)) == \
        [("error", "links.no-unsubscribe")]


def test_the_text_part_needs_an_unsubscribe_link_too():
    assert codes(links("", text="José’s notes\n")) == [("warning", "links.text-no-unsubscribe")]
    assert links("", text=f"Abmelden ({TOKEN_URL}).\n") == []


def images(body: str):
    return check_images(parse(f"<html><body>{body}</body></html>"))


def test_images_with_alt_and_width_pass_and_empty_alt_is_decorative():
    assert images('<img src="a.png" alt="José’s chart" width="600">'
                  '<img src="line.png" alt="" width="1">') == []


def test_images_without_alt_or_width_are_warnings_naming_the_image():
    found = images('<img src="https://cdn.example/chart.png"><img src="b.png" alt="b">')
    assert codes(found) == [("warning", "links.image-alt"), ("warning", "links.image-width")]
    assert found[0].message == "1 image has no alt text: https://cdn.example/chart.png"
    assert found[1].message == "2 images have no width attribute: " \
        "https://cdn.example/chart.png and 1 more"


def test_hidden_images_are_not_held_to_the_image_rules():
    assert images('<div style="display: none"><img src="pixel.gif"></div>') == []


def test_an_item_image_written_without_alt_text_is_a_warning_naming_file_and_image():
    found = check_source_images((
        SourceImage("items/2026-W48/01-chart.md", "chart.png", ""),
        SourceImage("items/2026-W48/01-chart.md", "ok.png", "José’s “sales” chart"),
        SourceImage("items/2026-W48/02-grüße.md", "https://cdn.bücher.example/a.png", " "),
    ))
    assert codes(found) == [("warning", "links.item-image-alt")] * 2
    assert found[0].message == "items/2026-W48/01-chart.md: the image chart.png has no alt text"
    assert found[1].message.startswith("items/2026-W48/02-grüße.md: the image "
                                       "https://cdn.bücher.example/a.png")
    assert "![" in found[0].fix
