"""``newsletter check`` with click_counts: a warning naming the domains when the counted
links redirect from base_url's registrable domain to others."""

from __future__ import annotations

from newsletter.config import load_config
from newsletter.edition.click_tokens import ClickTarget, make_click_token
from newsletter.preflight.click_domains import check_click_domains, registrable
from newsletter.preflight.findings import Severity
from newsletter.preflight.htmlscan import parse
from newsletter.preflight.project import check_week

BASE = "https://news.xn--bcher-kva.example"
SECRET = "preflight-secret-0123456789abcdef"


def counted(url: str, link: int = 1) -> str:
    token = make_click_token(SECRET, ClickTarget("2026-W47", 1, link, url))
    return f'<a href="{BASE}/r/{token}">José’s “link”</a>'


def findings(*urls: str, base_url: str = BASE):
    body = "".join(counted(url, n) for n, url in enumerate(urls, 1))
    return check_click_domains(parse(f"<html><body>{body}</body></html>"), base_url=base_url)


def test_links_to_other_domains_are_one_warning_naming_them():
    [finding] = findings("https://www.example.org/a", "https://example.org/b?x=1&y=2",
                         "https://xn--strae-oqa.example/weg", "https://shop.example.co.uk/")
    assert (finding.severity, finding.code) == (Severity.WARNING, "links.click-domain")
    assert finding.message == ("Counted links go through bücher.example to other domains: "
                               "example.org, straße.example, example.co.uk.")


def test_links_to_base_url_s_own_domain_need_no_warning():
    assert findings("https://xn--bcher-kva.example/artikel",
                    "https://blog.xn--bcher-kva.example/zo%C3%AB") == []
    assert registrable("news.bücher.example") == "xn--bcher-kva.example"


def test_no_counted_links_no_warning():
    page = parse('<html><body><a href="https://example.org/a">a</a></body></html>')
    assert check_click_domains(page, base_url=BASE) == []
    assert findings("https://example.org/a", base_url="") == []


def test_the_check_of_a_week_warns_with_click_counts_only(project):
    environ = {"NEWSLETTER_SECRET_KEY": SECRET, "NEWSLETTER_BASE_URL": BASE}
    config = load_config(project / "newsletter.toml", environ=environ)
    on = load_config(project / "newsletter.toml",
                     environ={**environ, "NEWSLETTER_CLICK_COUNTS": "true"})
    codes = [f.code for f in check_week(config, "2026-W47", spam=None).findings]
    assert "links.click-domain" not in codes
    [warning] = [f for f in check_week(on, "2026-W47", spam=None).findings
                 if f.code == "links.click-domain"]
    assert "example.org" in warning.message and "bücher.example" in warning.message
