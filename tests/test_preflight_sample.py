"""The whole check on real editions: the sample (ready to send, SpamAssassin 0.0 or less) and
editions with faults a user would make, built through the project's own render and MIME code."""

import dataclasses
import json
import os
import re
import shutil
from datetime import date

import dns.rdata
import dns.resolver
import pytest

from newsletter.config import load_config
from newsletter.preflight import DEFAULT_SPAM, Severity, run_checks, to_json, to_text
from newsletter.preflight.project import build_inputs

WEEK = "2026-W47"


@pytest.fixture
def config(project):
    return load_config(project / "newsletter.toml", environ={})


def check(config, week=WEEK, **options):
    options.setdefault("spam", None)
    options.setdefault("today", date(2026, 11, 16))  # the client data is then six months old
    return run_checks(build_inputs(config, week), **options)


def errors_and_warnings(report):
    return [f.code for f in report.findings if f.severity is not Severity.NOTE]


def test_the_sample_edition_is_ready_to_send_without_a_warning(config):
    report = check(config)
    assert errors_and_warnings(report) == []
    assert report.ok and report.summary.endswith(": ready to send")
    assert "dns.skipped" in report.codes()


def test_the_sample_report_fits_one_screen(config):
    text = to_text(check(config))
    lines = text.splitlines()
    assert len(lines) <= 24 and max(len(line) for line in lines) <= 100
    assert lines[0] == "2026-W47: Five Things | Small Teams’ Long Memories"
    assert lines[-1] == "2 notes: ready to send"


def test_the_preheader_is_hidden_without_a_colour_trick(config):
    html = build_inputs(config, WEEK).html
    hidden = re.search(r'<div style="(display:none;[^"]*)">Five ideas', html)
    assert hidden, "the preheader is the first hidden text in the body"
    assert "color" not in hidden.group(1) and "mso-hide:all" in hidden.group(1)


def require_spamassassin():
    if not (shutil.which("spamassassin") or shutil.which("spamc")):
        if os.environ.get("CI"):
            pytest.fail("SpamAssassin is required in CI (apt-get install spamassassin spamc)")
        pytest.skip("SpamAssassin is not installed")


def test_the_sample_scores_zero_or_less_under_spamassassin(config):
    require_spamassassin()
    report = check(config, spam=DEFAULT_SPAM)
    [score] = [f for f in report.findings if f.code == "spam.score"]
    assert score.severity is Severity.NOTE, score.message
    assert "spam.rule" not in report.codes()
    assert re.search(r"scores it (0\.0|-\d+\.\d) ", score.message)


def test_the_old_colour_trick_preheader_is_caught_by_spamassassin(project, config):
    require_spamassassin()
    template = project / "templates" / "edition.mjml.j2"
    source = template.read_text(encoding="utf-8")
    source = re.sub(r"\{% if preheader %\}.*?\{% endif %\}\n", "", source, count=1, flags=re.S)
    source = source.replace("<mj-head>", "<mj-head>\n    <mj-preview>{{ preheader }}</mj-preview>")
    template.write_text(source, encoding="utf-8")
    report = check(config, spam=DEFAULT_SPAM)
    rules = [f.message for f in report.findings if f.code == "spam.rule"]
    assert [r.split()[0] for r in rules] == ["HTML_FONT_LOW_CONTRAST"]
    assert report.ok  # a warning: it may go out, but it should not


def write_week(project, week, edition, items):
    folder = project / "items" / week
    folder.mkdir()
    (folder / "edition.md").write_text(edition, encoding="utf-8")
    for name, text in items.items():
        (folder / name).write_text(text, encoding="utf-8")


CHART = {
    "01-chart.md": (
        "---\ntitle: The chart everyone shared.\nurl: http://example.org/chart\n---\n"
        "José’s “favourite” 🎉: ![Grüße chart](https://cdn.example.org/chart.png)\n"
    ),
}


def test_a_real_edition_with_mistakes_is_not_ready_and_says_why(project, config):
    write_week(project, "2026-W48", (
        "---\nheadline: A Long Weekend\npreheader: Three links, one chart 🎉\n---\n"
        "Hi {{ first_name }}, a short one this week.\n"
    ), CHART)
    report = check(config, "2026-W48")
    codes = errors_and_warnings(report)
    assert "content.template-left" in codes      # the pasted merge tag, in both parts
    assert "links.http" in codes                 # the item's http:// source link
    assert "links.image-width" in codes          # Markdown images carry no width
    assert not report.ok
    text = to_text(report)
    assert text.splitlines()[0] == "2026-W48: Five Things | A Long Weekend"
    assert text.rstrip().endswith(": not ready to send")
    assert json.loads(to_json(report))["ready"] is False


def test_an_edition_with_a_non_ascii_subject_can_be_checked(project, config):
    write_week(project, "2026-W48", "---\nheadline: José’s “Long Weekend” 🎉\n---\n", CHART)
    report = check(config, "2026-W48")
    assert report.title == "2026-W48: Five Things | José’s “Long Weekend” 🎉"


def test_no_postal_address_stops_the_send(config):
    report = check(dataclasses.replace(config, postal_address=""))
    assert errors_and_warnings(report) == ["message.postal-missing"]
    assert report.summary.startswith("1 error")


def test_an_http_base_url_breaks_one_click_unsubscribe(config):
    report = check(dataclasses.replace(config, base_url="http://fivethings.example.com"))
    assert "message.list-unsubscribe-https" in report.codes()
    assert "links.http" in report.codes()


class Zone:
    def __init__(self, records):
        self.records = records

    def resolve(self, name, rdtype):
        if (name, rdtype) not in self.records:
            raise dns.resolver.NoAnswer()
        return [dns.rdata.from_text("IN", rdtype, t) for t in self.records[(name, rdtype)]]


def test_with_dns_the_from_domain_is_looked_up(config):
    domain = "fivethings.example.com"
    resolver = Zone({
        (domain, "TXT"): ['"v=spf1 include:spf.mail.example -all"'],
        (f"_dmarc.{domain}", "TXT"): ['"v=DMARC1; p=none"'],
        (domain, "MX"): ["10 mx.mail.example."],
    })
    report = check(config, dns=True, resolver=resolver)
    assert errors_and_warnings(report) == []
    assert "dns.skipped" not in report.codes()
    found = [f.message for f in report.findings if f.code == "dns.found"]
    assert found == [f"{domain}: SPF, DMARC (p=none), MX."]
    assert "dns.dkim-unknown" in report.codes()


def test_an_item_image_without_alt_text_is_named_but_a_decorative_template_image_is_fine(
        project, config):
    template = project / "templates" / "edition.mjml.j2"
    source = template.read_text(encoding="utf-8")
    decorative = ('        <mj-image src="https://news.example/rule.png" alt="" width="600px">'
                  '</mj-image>\n')
    template.write_text(source.replace("      <mj-column>\n", "      <mj-column>\n" + decorative,
                                       1), encoding="utf-8")
    write_week(project, "2026-W48", "---\nheadline: Zoë’s “Charts” 🎉\n---\n", {
        "01-chart.md": ("---\ntitle: The chart everyone shared.\n---\n"
                        "José’s favourite: ![](https://cdn.example.org/chart.png)\n\n"
                        "And one described: ![Grüße chart](https://cdn.example.org/b.png)\n"),
    })
    report = check(config, "2026-W48")
    found = [f for f in report.findings if f.code.endswith("image-alt")]
    assert [(f.code, f.message) for f in found] == [(
        "links.item-image-alt",
        "items/2026-W48/01-chart.md: the image https://cdn.example.org/chart.png has no alt "
        "text")]
    assert "rule.png" in build_inputs(config, "2026-W48").html, "the template's image is there"
