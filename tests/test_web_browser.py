"""End to end in a real browser (Debian's Chromium driven by Playwright), JavaScript off:
sign up, open the confirmation mail the eml provider wrote, confirm; then open a dry-run
message's unsubscribe link, unsubscribe, resubscribe; read the archive; and change an
address from the manage page, with the link mailed to the new address.

The app runs under uvicorn in this process, with a clock the test moves (the sign-up form's
"not faster than a person" rule is met without sleeping). Every page is photographed at 1280
and 375 pixels wide, into $NEWSLETTER_SCREENSHOTS or the test's temporary folder.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from newsletter.delivery import ledger
from newsletter.delivery.dry_run import dry_run
from newsletter.edition.render import render_week
from newsletter.store.db import connect
from tests.web_helpers import Clock, confirm_link, make_app, read_eml, row, web_config

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
WEEK = "2026-W47"
WIDTHS = (1280, 375)
# Read now: the project fixture clears NEWSLETTER_* variables from the environment.
SCREENSHOTS = os.environ.get("NEWSLETTER_SCREENSHOTS")

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)",
                allow_module_level=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def captcha() -> str:
    return ""


@pytest.fixture
def server(project, tmp_path, captcha):
    import uvicorn

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    database_url = f"sqlite:///{tmp_path / 'newsletter.db'}"
    config = web_config(project, database_url, base_url=base, subscribe_captcha=captcha)
    engine = connect(database_url)
    clock = Clock()
    app = make_app(config, clock, engine=engine)
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                       access_log=False, proxy_headers=False))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    started = threading.Event()
    while not started.wait(0.05):
        if uv.started:
            started.set()
        assert thread.is_alive()
    yield config, engine, clock, app, base
    uv.should_exit = True
    thread.join(timeout=30)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(SCREENSHOTS or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def photograph(page, shots: Path, name: str) -> None:
    """Both widths; at 375 px nothing may stick out sideways."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=shots / f"{name}-{width}.png", full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= width, f"{name} is {overflow}px wide at {width}px"
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})


def test_sign_up_confirm_unsubscribe_resubscribe(server, browser, shots, project, tmp_path):
    # expect(...) retries until the page that a submission navigates to has arrived; a plain
    # read right after a key press can still see the page the form was on.
    from playwright.sync_api import expect

    config, engine, clock, app, base = server
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()

    # -- sign up, with the keyboard only ---------------------------------------------------
    page.goto(f"{base}/subscribe")
    assert page.title() == "Subscribe · Five Things"
    photograph(page, shots, "01-subscribe")
    honeypot = page.locator("input[name=website]")
    box = honeypot.bounding_box()
    assert box is None or box["x"] + box["width"] <= 0  # off-screen, not merely hidden
    page.get_by_label("Email address").focus()
    page.keyboard.type("Zoe@bücher.example")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.name") == "name"
    page.keyboard.type("Zoë “Zo” O’Brien")
    page.keyboard.press("Tab")  # the honeypot is skipped: tabindex=-1
    assert page.evaluate("document.activeElement.type") == "submit"
    clock.advance(seconds=5)  # a person takes a few seconds
    app.state.outbox.sent.clear()
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Check your inbox")
    assert "Zoe@bücher.example" in page.locator("main").inner_text()  # not its xn-- form
    photograph(page, shots, "02-check-your-inbox")

    # -- the confirmation mail, and the link in it ---------------------------------------
    assert app.state.outbox.sent.wait(timeout=30)
    (mail,) = (project / "outbox" / "confirmations").glob("*.eml")
    link = confirm_link(read_eml(mail))
    assert link.startswith(f"{base}/confirm/")
    page.goto(link)
    expect(page.locator("h1")).to_have_text("Confirm your subscription")
    assert row(engine, "zoe@bücher.example")["status"] == "pending"
    photograph(page, shots, "03-confirm")
    app.state.outbox.sent.clear()
    page.get_by_role("button", name="Confirm subscription").click()
    expect(page.locator("h1")).to_have_text("You are subscribed")
    assert row(engine, "zoe@bücher.example")["status"] == "active"
    photograph(page, shots, "04-confirmed")

    # -- the welcome mail, and its links ---------------------------------------------------
    assert app.state.outbox.sent.wait(timeout=30)
    (welcome,) = [m for m in map(read_eml, (project / "outbox" / "confirmations").glob("*.eml"))
                  if m["Subject"] == "Welcome to Five Things"]
    text = welcome.get_body(("plain",)).get_content()
    assert "Hi Zoë," in text
    latest = next(line.split(": ", 1)[1] for line in text.splitlines()
                  if line.startswith("Read the latest edition: "))
    assert latest == f"{base}/archive"  # nothing sent yet
    page.goto(latest)
    expect(page).to_have_url(f"{base}/archive")

    # -- a dry-run message's unsubscribe link ----------------------------------------------
    out = tmp_path / "dry-run"
    assert dry_run(config, WEEK, str(out)).count == 1
    (message,) = out.glob("*.eml")
    header = read_eml(message)["List-Unsubscribe"]
    unsubscribe_url = header.split(",")[0].strip().strip("<>")
    page.goto(unsubscribe_url)
    expect(page.locator("h1")).to_have_text("Unsubscribe from Five Things?")
    assert "Z•••@b•••.example" in page.locator("main").inner_text()
    photograph(page, shots, "05-unsubscribe")
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.locator("h1")).to_have_text("You are unsubscribed")
    assert row(engine, "zoe@bücher.example")["unsubscribe_method"] == "page"
    photograph(page, shots, "06-unsubscribed")
    page.get_by_role("button", name="Resubscribe").click()
    expect(page.locator("h1")).to_have_text("You are subscribed again")
    assert row(engine, "zoe@bücher.example")["status"] == "active"
    photograph(page, shots, "07-resubscribed")

    # -- the archive ---------------------------------------------------------------------
    rendered = render_week(config, WEEK)
    ledger.open_send(engine, WEEK, rendered.content_hash, rendered.subject, "eml")
    page.goto(f"{base}/archive")
    photograph(page, shots, "08-archive")
    page.locator(f"a[href='/archive/{WEEK}']").click()
    expect(page).to_have_url(f"{base}/archive/{WEEK}")
    body = page.locator("body").inner_text()
    assert "Hi there," in body and "Zoë" not in body and "Zoe@" not in body
    photograph(page, shots, "09-archive-edition")
    context.close()


@pytest.mark.parametrize("captcha", ["altcha"])
def test_with_altcha_the_pages_script_solves_the_proof_of_work(server, browser, shots):
    config, engine, clock, app, base = server
    page = browser.new_context().new_page()  # JavaScript on
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" else None)
    page.goto(f"{base}/subscribe")
    photograph(page, shots, "10-subscribe-altcha")
    page.get_by_label("Email address").fill("pow@example.com")
    clock.advance(seconds=5)
    page.get_by_role("button", name="Subscribe").click()
    page.wait_for_selector("h1:text('Check your inbox')", timeout=60_000)
    assert row(engine, "pow@example.com")["status"] == "pending"
    assert errors == []  # no CSP violation, no script error


def test_change_of_address_from_the_manage_page(server, browser, shots, project, tmp_path):
    from playwright.sync_api import expect

    from newsletter.audience import subscribers
    from tests.web_helpers import outbox_rows

    config, engine, clock, app, base = server
    reader = subscribers.add(engine, "Jose.Nunez@bücher.example", name="José “Pepe” O’Núñez")
    out = tmp_path / "dry-run"
    assert dry_run(config, WEEK, str(out)).count == 1
    (message,) = out.glob("*.eml")
    text = read_eml(message).get_body(("plain",)).get_content()
    manage_url = next(line.split(": ", 1)[1] for line in text.splitlines()
                      if line.startswith("Manage your subscription: "))
    page = browser.new_context(java_script_enabled=False).new_page()

    # -- the manage page: a new address, typed as a person would --------------------------
    page.goto(manage_url)
    expect(page.locator("h1")).to_have_text("Your subscription")
    photograph(page, shots, "11-manage")
    page.get_by_label("A new address").fill("Zoe.Nunez@bücher.example")
    app.state.outbox.sent.clear()
    page.get_by_role("button", name="Change the address").click()
    expect(page.locator("h1")).to_have_text("Check your inbox")
    assert "Zoe.Nunez@bücher.example" in page.locator("main").inner_text()
    assert row(engine, "jose.nunez@bücher.example")["id"] == reader.id  # nothing yet
    photograph(page, shots, "12-manage-address-asked")

    # -- the mail to the new address, and its link ----------------------------------------
    assert app.state.outbox.sent.wait(timeout=30)
    (mail,) = [m for m in map(read_eml, (project / "outbox" / "confirmations").glob("*.eml"))
               if m["Subject"] == "Confirm your new address for Five Things"]
    assert mail["To"].endswith("<Zoe.Nunez@xn--bcher-kva.example>")
    link = next(word for word in mail.get_body(("plain",)).get_content().split()
                if word.startswith(f"{base}/address/"))
    page.goto(link)
    expect(page.locator("h1")).to_have_text("Confirm your new address")
    assert row(engine, "zoe.nunez@bücher.example") is None  # the page changes nothing
    photograph(page, shots, "13-address-confirm")
    app.state.outbox.sent.clear()
    page.get_by_role("button", name="Confirm your new address").click()
    expect(page.locator("h1")).to_have_text("Your address is changed")
    photograph(page, shots, "14-address-changed")
    moved = row(engine, "zoe.nunez@bücher.example")
    assert moved["id"] == reader.id and moved["status"] == "active"
    assert row(engine, "jose.nunez@bücher.example") is None

    # -- the old address's notice -----------------------------------------------------------
    notice = [r for r in outbox_rows(engine) if r["kind"] == "address_notice"]
    assert [r["address"] for r in notice] == ["Jose.Nunez@bücher.example"]
    assert app.state.outbox.sent.wait(timeout=30)
    (told,) = [m for m in map(read_eml, (project / "outbox" / "confirmations").glob("*.eml"))
               if m["Subject"] == "Your address for Five Things has changed"]
    assert told["To"].endswith("<Jose.Nunez@xn--bcher-kva.example>")

    # -- the link works once -----------------------------------------------------------------
    page.goto(link)
    expect(page.locator("h1")).to_have_text("This link has been used")
