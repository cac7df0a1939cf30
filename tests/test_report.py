"""``newsletter report``, its figures against ``status``, ``sends``' sparkline, and the admin
route that serves the same page."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from newsletter.audience import changes
from newsletter.audience.history import ChangeMethod, StatusChange, record_many
from newsletter.cli.main import cli
from newsletter.feedback.events import EventKind
from newsletter.feedback.intake import Rules, take_in
from newsletter.report.sparkline import sparkline
from newsletter.store.db import connect
from newsletter.store.tables import deliveries, subscribers
from tests.test_events_world import (
    SECRET,
    add_subscribers,
    event,
    make_config,
    record_send,
    webhook_app,
)

pytestmark = pytest.mark.usefixtures("engines_disposed")

WEEK = "2026-W47"
SENT_AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # the Friday of 2026-W47
# Two internationalized domains, one given in its xn-- form, and non-ASCII names. (The
# list refuses non-ASCII before the @: it sends without SMTPUTF8.)
READERS = ["jose@bücher.example", "zoe@xn--strae-oqa.example", "ana@bücher.example",
           "ben@example.net", "cleo@example.org", "dan@XN--STRAE-OQA.example",
           "eve@example.com"]
NAMES = ["José Müller", "Zoë Þórsdóttir", "Ana Ñúñez", "Ben", "Cléo", "Dan", "Ève"]
ADMIN = "admin:pässwörd"


def run(env, *args):
    return CliRunner().invoke(cli, list(args), env=env)


@pytest.fixture
def world(project, database_url, monkeypatch):
    """W46 sent to three readers, W47 to seven: one failed, two hard bounces, a complaint, a
    deferral, an unsubscribe by the provider on day 2 and one on the web on day 1."""
    later = SENT_AT + timedelta(hours=3)
    # A bounce or a complaint stops the subscriber at the clock's time, not the event's.
    monkeypatch.setattr(changes, "utc_now", lambda: later)
    engine = connect(database_url)
    ids = add_subscribers(engine, READERS)
    with engine.begin() as conn:
        for subscriber_id, name in zip(ids, NAMES, strict=True):
            conn.execute(subscribers.update().values(name=name)
                         .where(subscribers.c.id == subscriber_id))
        record_many(conn, [StatusChange(i, SENT_AT - timedelta(days=14), None, "pending",
                                        ChangeMethod.WEB) for i in ids]
                    + [StatusChange(i, SENT_AT - timedelta(days=7), "pending", "active",
                                    ChangeMethod.WEB) for i in ids])
    record_send(engine, {i: f"w46-{i}" for i in ids[:3]}, week="2026-W46",
                created_at=SENT_AT - timedelta(days=7))
    w47 = record_send(engine, {i: f"w47-{i}" for i in ids}, week=WEEK, created_at=SENT_AT)
    with engine.begin() as conn:
        conn.execute(deliveries.update().values(status="failed", message_id=None)
                     .where(deliveries.c.send_id == w47, deliveries.c.subscriber_id == ids[6]))
    jose, zoe, ana, ben, cleo, dan, _ = ids
    take_in(engine, [
        event(EventKind.BOUNCED, event_id="b1", provider_message_id=f"w47-{jose}",
              occurred_at=later),
        event(EventKind.BOUNCED, event_id="b2", provider_message_id=f"w47-{dan}",
              occurred_at=later),
        # A second word of the same bounce: still one bounced subscriber.
        event(EventKind.BOUNCED, event_id="b2-again", provider_message_id=f"w47-{dan}",
              occurred_at=later),
        event(EventKind.COMPLAINED, event_id="c1", provider_message_id=f"w47-{zoe}",
              occurred_at=later),
        event(EventKind.DEFERRED, event_id="d1", provider_message_id=f"w47-{ben}",
              occurred_at=later),
    ], Rules((SECRET,), soft_bounce_limit=3), received_at=later, clock=lambda: later)
    next_day = SENT_AT + timedelta(days=1, hours=2)
    take_in(engine, [event(EventKind.UNSUBSCRIBED, event_id="u1",
                           provider_message_id=f"w47-{cleo}", occurred_at=next_day)],
            Rules((SECRET,)), received_at=next_day, clock=lambda: next_day)
    changes.unsubscribe(engine, ana, changes.UnsubscribeMethod.ONE_CLICK, changes.Consent(),
                        SENT_AT + timedelta(hours=2))
    env = {"NEWSLETTER_DATABASE_URL": database_url, "NEWSLETTER_SECRET_KEY": SECRET}
    return {"env": env, "engine": engine, "database_url": database_url}


def report_json(world, *args) -> dict:
    result = run(world["env"], "report", "--week", WEEK, "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def status_figures(output: str) -> dict[str, int]:
    """The figures ``newsletter status`` prints, read back from its lines."""
    head = re.search(r"(\d+) recipient\(s\)", output)
    sent, failed = re.search(r"(\d+) sent, (\d+) failed", output).groups()
    fb = re.search(r"feedback  (\d+) bounced .*?, (\d+) complained .*?, (\d+) unsubscribed",
                   output)
    soft = re.search(r"(\d+) soft-bounced", output)
    return {"subscribers_at_start": int(head[1]), "sent": int(sent), "failed": int(failed),
            "bounced_hard": int(fb[1]), "complained": int(fb[2]), "unsubscribed": int(fb[3]),
            "bounced_soft": int(soft[1]) if soft else 0}


def test_the_funnel_is_what_status_prints(world):
    status = run(world["env"], "status", "--week", WEEK)
    assert status.exit_code == 0, status.output
    funnel = report_json(world)["funnel"]
    assert funnel == status_figures(status.output)
    assert funnel == {"subscribers_at_start": 7, "sent": 6, "failed": 1, "bounced_hard": 2,
                      "bounced_soft": 1, "complained": 1, "unsubscribed": 2}


def test_domains_are_counted_per_subscriber_and_shown_in_unicode(world):
    found = report_json(world)
    assert found["domains"] == [
        {"domain": "straße.example", "bounced": 1, "complained": 1, "total": 2},
        {"domain": "bücher.example", "bounced": 1, "complained": 0, "total": 1}]
    assert found["other_domains"] is None


def test_no_address_or_name_appears_in_the_page_or_the_json(world):
    html = run(world["env"], "report", "--week", WEEK).output
    as_json = run(world["env"], "report", "--week", WEEK, "--format", "json").output
    for text in (html, as_json):
        for address in READERS:
            local = address.split("@")[0]
            assert address not in text and address.lower() not in text
            assert f"{local}@" not in text
        assert not any(name in text for name in NAMES)
        assert "@" not in text.replace("@media", "")


def test_the_page_is_self_contained(world):
    result = run(world["env"], "report", "--week", WEEK)
    assert result.exit_code == 0, result.output
    html = result.output
    assert html.count("<svg") == 4  # funnel, domains, growth, unsubscribes
    assert "<script" not in html.lower() and "javascript:" not in html.lower()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "@media print" in html and "<style>" in html
    assert not re.search(r"<link|<img|@import|url\(", html)
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", html))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
    assert "click counting is off (click_counts)" in html


def test_the_json_has_stable_keys_iso_dates_and_an_empty_clicks_hook(world):
    found = report_json(world)
    assert list(found) == ["week", "subject", "status", "provider", "started_at",
                           "finished_at", "generated_at", "funnel", "deliveries", "domains",
                           "other_domains", "growth", "unsubscribes", "clicks"]
    assert datetime.fromisoformat(found["started_at"]) == SENT_AT
    assert found["clicks"] == {"enabled": False,
                               "note": "click counting is off (click_counts)", "items": []}
    assert found["deliveries"]["sent"] == 6 and found["deliveries"]["failed"] == 1


def test_growth_over_twelve_weeks_from_the_status_history(world):
    growth = report_json(world)["growth"]
    assert [w["week"] for w in growth] == [f"2026-W{n}" for n in range(36, 48)]
    by_week = {w["week"]: (w["joined"], w["confirmed"], w["left"]) for w in growth}
    assert by_week["2026-W45"] == (7, 0, 0)
    assert by_week["2026-W46"] == (0, 7, 0)
    # Two bounced, one complained, two unsubscribed; the deferral and the failure stay.
    assert by_week["2026-W47"] == (0, 0, 5)
    assert sum(sum(v) for k, v in by_week.items() if k < "2026-W45") == 0


def test_unsubscribes_by_day_after_each_edition(world):
    after = report_json(world)["unsubscribes"]
    assert [(e["week"], e["by_day"], e["later"]) for e in after] == [
        ("2026-W46", [0] * 7, 0), (WEEK, [1, 1, 0, 0, 0, 0, 0], 0)]


def test_out_writes_the_file_whole_and_leaves_no_temporary_file(world, tmp_path):
    out = tmp_path / "reports" / "w47.html"
    out.parent.mkdir()
    out.write_text("an older report")
    result = run(world["env"], "report", "--week", WEEK, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert [p.name for p in out.parent.iterdir()] == ["w47.html"]
    as_json = tmp_path / "reports" / "w47.json"
    assert run(world["env"], "report", "--week", WEEK, "--format", "json",
               "--out", str(as_json)).exit_code == 0
    assert json.loads(as_json.read_text(encoding="utf-8"))["week"] == WEEK


def test_a_week_never_sent_is_a_one_line_error(world, tmp_path):
    out = tmp_path / "never.html"
    result = run(world["env"], "report", "--week", "2026-W10", "--out", str(out))
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: no send for 2026-W10: nothing to report"]
    assert "Traceback" not in result.output and not out.exists()
    bad = run(world["env"], "report", "--week", "2026-W99")
    assert bad.exit_code == 1 and len(bad.output.strip().splitlines()) == 1


def test_sends_shows_a_sparkline_a_send(world):
    result = run(world["env"], "sends")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert f"{WEEK}  ██▁▁▁▁▁  unsubscribes per day after the send: 2" in lines
    assert "2026-W46  ▁▁▁▁▁▁▁  unsubscribes per day after the send: 0" in lines
    # The JSON and CSV stay as they were: figures only.
    assert "▁" not in run(world["env"], "sends", "--format", "json").output


def test_sparkline_scales_to_the_largest_value():
    assert sparkline([0, 8, 4, 1]) == "▁█▅▂"
    assert sparkline([0, 0]) == "▁▁" and sparkline([]) == ""


def _client(world, **keys):
    from starlette.testclient import TestClient

    config = make_config(world["database_url"], **keys)
    return TestClient(webhook_app(config))


def _basic(credentials: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


def test_the_admin_route_does_not_exist_without_admin_auth(world):
    with _client(world) as client:
        assert client.get(f"/admin/report/{WEEK}", headers=_basic(ADMIN)).status_code == 404


def test_the_admin_route_wants_the_credentials(world):
    with _client(world, admin_auth=ADMIN) as client:
        for headers in ({}, _basic("admin:wrong"), {"Authorization": "Bearer x"},
                        {"Authorization": "Basic !!"}):
            response = client.get(f"/admin/report/{WEEK}", headers=headers)
            assert response.status_code == 401
            assert response.headers["WWW-Authenticate"].startswith(
                'Basic realm="newsletter admin"')
            assert response.headers["Cache-Control"] == "no-store"


def test_the_admin_route_serves_the_report(world):
    with _client(world, admin_auth=ADMIN) as client:
        response = client.get(f"/admin/report/{WEEK}", headers=_basic(ADMIN))
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        assert "script-src" not in response.headers["Content-Security-Policy"]
        assert "<svg" in response.text and "straße.example" in response.text
        assert "jose@" not in response.text
        for week in ("2026-W10", "not-a-week", "2026-W99"):
            missing = client.get(f"/admin/report/{week}", headers=_basic(ADMIN))
            assert missing.status_code == 404
            assert missing.headers["Cache-Control"] == "no-store"


def test_admin_auth_must_be_user_and_password(project):
    result = run({"NEWSLETTER_ADMIN_AUTH": "no-colon"}, "report")
    assert result.exit_code == 1
    assert "admin_auth" in result.output and "no-colon" not in result.output

