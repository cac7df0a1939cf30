"""The edition's look: a masthead with the date and the issue number, numbered items with a
rule between them, "View in your browser" when the archive is on, small enough for Gmail, and
dark-mode colours that stay readable (checked in Chromium, photographed at 800 and 375 px)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.config import load_config
from newsletter.edition import masthead
from newsletter.edition.render import render_week

WEEK = "2026-W47"
VALUES = {"first_name": "Zoë", "email": "zoe@bücher.example",
          "unsubscribe_url": "https://fivethings.example.com/unsubscribe/TOKEN", "name": "Zoë",
          "manage_url": "https://fivethings.example.com/manage/TOKEN"}
CHROMIUM = "/usr/bin/chromium"
SCREENS = Path(os.environ.get("NEWSLETTER_EDITION_SCREENS", "/work/screens/edition"))


def config_of(project, **env):
    environ = {f"NEWSLETTER_{k.upper()}": str(v) for k, v in env.items()}
    return load_config(project / "newsletter.toml", environ=environ)


def parts(config, week=WEEK):
    rendered = render_week(config, week)
    return rendered.html.fill(VALUES), rendered.text.fill(VALUES)


def copy_week(project, to: str) -> None:
    import shutil

    shutil.copytree(project / "items" / WEEK, project / "items" / to)


# -- the masthead ------------------------------------------------------------------------------

def test_the_masthead_has_the_name_the_weeks_monday_and_the_issue(project):
    html, text = parts(config_of(project))
    assert re.search(r'class="masthead"[^>]*>.*?Five Things', html, re.S)
    assert "Issue 1 &#183; 16 November 2026" in html
    assert text.splitlines()[0] == "Five Things · Issue 1 · 16 November 2026"


def test_issue_numbers_count_weeks_from_the_first(project):
    copy_week(project, "2026-W50")
    copy_week(project, "2027-W01")
    config = config_of(project)
    assert parts(config, "2026-W50")[1].startswith("Five Things · Issue 4 · 7 December 2026")
    assert "Issue 8 · 4 January 2027" in parts(config, "2027-W01")[1]
    pinned = config_of(project, first_week="2026-W40", issue_start=100)
    assert "Issue 107 · 16 November 2026" in parts(pinned, WEEK)[1]
    before_the_first = config_of(project, first_week="2026-W48")
    assert parts(before_the_first, WEEK)[1].splitlines()[0] == "Five Things · 16 November 2026"


def test_the_masthead_arithmetic():
    assert str(masthead.week_monday("2026-W01")) == "2025-12-29"
    assert masthead.issue_number("2027-W01", "2026-W53", 1) == 2
    assert masthead.issue_number("2026-W47", "2026-W47", 0) == 0
    assert masthead.issue_number("2026-W46", "2026-W47", 1) is None
    assert masthead.issue_number("2026-W47", None, 1) is None
    assert masthead.date_text(masthead.week_monday("2026-W47")) == "16 November 2026"


@pytest.mark.parametrize(("key", "value", "error"), [
    ("issue_start", "-1", "config key 'issue_start' must be 0 or more"),
    ("first_week", "2026-47", "config key 'first_week' must be an ISO week like 2026-W47"),
    ("first_week", "2026-W60", "config key 'first_week' '2026-W60' is not a week"),
])
def test_bad_issue_settings_are_one_line_naming_the_key(project, key, value, error):
    result = CliRunner().invoke(cli, ["preview"], env={f"NEWSLETTER_{key.upper()}": value})
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {error}")
    assert f"NEWSLETTER_{key.upper()}" in result.output


# -- items, rules, the browser link ------------------------------------------------------------

def test_items_are_numbered_with_a_rule_between_them(project):
    config = config_of(project)
    html, text = parts(config)
    numbers = re.findall(r'<p class="item-number"[^>]*>(\d+)</p>', html)
    assert numbers == ["1", "2", "3", "4", "5"]
    for n in range(1, 6):
        assert re.search(rf"^{n}\. ", text, re.M)
    # One rule under the dek, one between each two items, one before the sign-off.
    rules = re.findall(r'class="rule"', html)
    assert len(rules) == 1 + 4 + 1
    # Each item runs from its number to the next one's; all but the last end with a rule.
    chunks = html.split('class="item-number"')[1:]
    assert ['class="rule"' in chunk for chunk in chunks] == [True] * 4 + [True]
    assert chunks[-1].index('class="rule"') < chunks[-1].index("share another edition")


def test_view_in_your_browser_follows_the_archive_setting(project):
    html, text = parts(config_of(project))
    url = "https://fivethings.example.com/archive/2026-W47"
    assert re.search(rf'<a class="view-online-link" href="{re.escape(url)}"[^>]*>View in your '
                     r'browser</a>', html)
    assert text.splitlines()[1] == f"View in your browser: {url}"
    html, text = parts(config_of(project, archive="false"))
    assert "View in your browser" not in html and "View in your browser" not in text


def test_the_mail_stays_light_and_keeps_its_dark_mode(project):
    html, _ = parts(config_of(project))
    assert len(html.encode()) < 60 * 1024, "well under Gmail's 102 KB clipping"
    assert '<meta name="color-scheme" content="light dark">' in html
    dark = re.search(r"@media \(prefers-color-scheme: dark\)\s*\{(.*?)\n\}", html, re.S)
    assert dark, "css-inline keeps the dark-mode block"
    assert "background-color: #202327 !important" in dark.group(1)


# -- in a browser ------------------------------------------------------------------------------

def luminance(rgb: str) -> float:
    values = [int(v) / 255 for v in re.findall(r"\d+", rgb)[:3]]
    linear = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in values]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


# What a reader sees: (selector of the text, selector of the background it sits on).
READABLE = [
    (".masthead div", "body"),
    (".issue-line div", "body"),
    (".headline-text", ".card"),
    (".dek-text", ".card"),
    (".intro div", ".card"),
    (".lead-sentence", ".card"),
    (".take", ".card"),
    (".source-link", ".card"),
    (".item-number", ".card"),
    (".footer div", "body"),
]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is required in CI")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield chromium
        chromium.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [800, 375])
def test_the_edition_is_readable_light_and_dark(project, browser, width, scheme):
    html, _ = parts(config_of(project))
    page = browser.new_page(viewport={"width": width, "height": 1000}, color_scheme=scheme)
    try:
        page.set_content(html, wait_until="load")
        colours = {}
        for text_sel, back_sel in READABLE:
            colours[text_sel] = page.eval_on_selector(
                text_sel, "e => getComputedStyle(e).color")
            colours[back_sel] = page.eval_on_selector(
                back_sel, "e => getComputedStyle(e).backgroundColor")
        for text_sel, back_sel in READABLE:
            ratio = contrast(colours[text_sel], colours[back_sel])
            assert ratio >= 4.5, f"{scheme}: {text_sel} on {back_sel} is {ratio:.1f}:1"
        body = luminance(colours["body"])
        assert (body < 0.05) if scheme == "dark" else (body > 0.8)
        card_width = page.eval_on_selector(".card", "e => e.getBoundingClientRect().width")
        assert card_width <= width  # nothing sideways at 375 px
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width
        SCREENS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENS / f"edition-{width}-{scheme}.png"), full_page=True)
    finally:
        page.close()


# -- worker --next -----------------------------------------------------------------------------

def test_worker_next_says_whether_each_weeks_folder_is_ready(project):
    from newsletter.worker.schedule import edition_week, next_run_times

    config = config_of(project, schedule="0 8 * * mon")
    upcoming = [edition_week(t, config.timezone) for t in next_run_times(config, 3)]
    copy_week(project, upcoming[0])
    broken = project / "items" / upcoming[1]
    broken.mkdir()
    (broken / "edition.md").write_text("---\nheadline: Half done\n---\n")
    result = CliRunner().invoke(cli, ["worker", "--next", "3"],
                                env={"NEWSLETTER_SCHEDULE": "0 8 * * mon"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    if [line.split()[3] for line in lines] != upcoming:
        pytest.skip("a scheduled time passed while the test ran")
    assert lines[0].endswith(f"{upcoming[0]}  ready")
    assert f"{upcoming[1]}  not ready: " in lines[1] and "no item files" in lines[1]
    assert f"{upcoming[2]}  missing: no folder" in lines[2]
    assert f"newsletter new --week {upcoming[2]}" in lines[2]


def test_readiness_is_the_preflight_verdict_without_spamassassin(project):
    import dataclasses

    from newsletter.project.readiness import week_readiness

    config = config_of(project)
    assert week_readiness(config, WEEK).line == "ready"
    item = next((project / "items" / WEEK).glob("01-*.md"))
    item.write_text(item.read_text().replace("url: https://", "url: http://", 1))
    assert week_readiness(config, WEEK).line == (
        f"ready (1 warning: newsletter check --week {WEEK})")
    no_address = dataclasses.replace(config, postal_address="")
    verdict = week_readiness(no_address, WEEK)
    assert verdict.state == "not ready" and "postal" in verdict.detail.lower()
    assert week_readiness(config, "2031-W02").state == "missing"
