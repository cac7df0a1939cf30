"""Headers a client writes change nothing the app writes; the headers the app adds to every
answer. The app runs behind a trusted proxy here (the README's setup), so a forged
``X-Forwarded-Host`` comes from a peer whose other forwarded headers are believed."""

from __future__ import annotations

import pytest
from starlette.routing import Route

from newsletter.audience import subscribers
from newsletter.audience.addresses import parse_address
from newsletter.audience.tokens import make_token
from newsletter.delivery import address_change, data_request, ledger
from newsletter.delivery.confirmations import drain_outbox
from newsletter.edition.click_tokens import ClickTarget, make_click_token
from newsletter.edition.render import render_week
from newsletter.store.db import connect
from newsletter.store.tables import confirmations
from tests.web_helpers import (
    PUBLIC,
    SECRET,
    Clock,
    confirm_link,
    field,
    make_app,
    outbox_rows,
    read_eml,
    row,
    sign_up,
    signed_up_from,
    web_client,
    web_config,
)

WEEK = "2026-W47"
EVIL = "evil.example"
PROXY = ("10.1.2.3", 4444)  # inside trusted_proxies
# What a hostile client (or a proxy passing a client's header on) can put in the request.
FORGED = {"Host": EVIL, "X-Forwarded-Host": EVIL, "X-Forwarded-Proto": "https"}
METRICS_TOKEN = "metrics-token-0123456789"  # so that /metrics is among the routes
ADMIN = ("editor", "pässwörd-0123456789")     # and /admin/report/{week}
# and /r/{token} (click_counts): a counted link to a page with non-ASCII in its address
CLICK = ClickTarget(WEEK, 1, 1, "https://xn--bcher-kva.example/z%C3%AB?a=1&b=2")
DENIED = ("camera", "microphone", "geolocation", "payment", "usb", "browsing-topics",
          "interest-cohort")


@pytest.fixture
def site(project, database_url):
    config = web_config(project, database_url, trusted_proxies="10.0.0.0/8",
                        metrics_token=METRICS_TOKEN, admin_auth=":".join(ADMIN),
                        click_counts="true")
    engine = connect(database_url)
    clock = Clock()
    reader = subscribers.add(engine, "Jose.Nunez@bücher.example", name="José “Pepe” Núñez")
    waiting = subscribers.add(engine, "zoe@bücher.example", name="Zoë Ångström",
                              status="pending")
    rendered = render_week(config, WEEK)
    ledger.open_send(engine, WEEK, rendered.content_hash, rendered.subject, "eml")
    app = make_app(config, clock, engine=engine)
    tokens = {"unsubscribe": make_token(SECRET, "unsubscribe", reader.id),
              "confirm": make_token(SECRET, "confirm", waiting.id, issued_at=clock.now),
              "r": make_click_token(SECRET, CLICK),
              "manage": make_token(SECRET, "manage", reader.id)}
    # An address change's link and a data download's, each naming its outbox row.
    address_change.request(engine, reader.id, parse_address("Zoe.N@bücher.example"), clock.now)
    data_request.request(engine, reader.id, clock.now)
    with engine.begin() as conn:  # as if mailed already: no drain of a test sends them
        conn.execute(confirmations.update().values(status="sent"))
    for link in outbox_rows(engine):
        purpose = {"address_confirm": "address", "data_link": "data"}[link["kind"]]
        tokens[purpose] = make_token(SECRET, purpose, link["id"], issued_at=link["created_at"])
    return config, engine, clock, app, web_client(app, client=PROXY), tokens, reader


def concrete(route: Route, tokens: dict[str, str]) -> str:
    """A path the route answers: its parameters filled with real values."""
    values = {"week": WEEK, "name": "site.css", "provider": "resend",
              "token": tokens.get(route.path.split("/")[1], "")}
    return route.path.format(**values)


def no_evil(response) -> None:
    assert "location" not in response.headers
    for name, value in response.headers.items():
        assert EVIL not in value, name
    assert EVIL not in response.text


# -- Host and X-Forwarded-Host ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/subscribe", "/embed/subscribe", "/api/subscribe",
                                  "/unsubscribe/{unsubscribe}", "/confirm/{confirm}",
                                  "/manage/{manage}", "/address/{address}", "/data/{data}",
                                  "/archive", f"/archive/{WEEK}", "/feed.xml", "/metrics",
                                  f"/admin/report/{WEEK}", "/no/such/page"])
def test_a_forged_host_changes_no_page(site, path):
    *_, client, tokens, _ = site
    path = path.format(**tokens)
    honest = client.get(path)
    forged = client.get(path, headers=FORGED)
    no_evil(forged)
    assert forged.status_code == honest.status_code
    assert forged.text == honest.text  # every link in it the same, from base_url


def test_a_forged_host_changes_no_counted_link_s_redirect(site):
    *_, client, tokens, _ = site
    forged = client.get(f"/r/{tokens['r']}", headers=FORGED, follow_redirects=False)
    assert forged.status_code == 302 and forged.headers["location"] == CLICK.url
    for name, value in forged.headers.items():
        assert EVIL not in value, name


def test_the_feed_and_the_archive_link_to_base_url_whatever_the_host(site):
    *_, client, _, _ = site
    feed = client.get("/feed.xml", headers=FORGED).text
    assert f'href="{PUBLIC}/archive/{WEEK}"' in feed and f'href="{PUBLIC}/feed.xml"' in feed
    assert f'href="{PUBLIC}/subscribe"' in client.get(f"/archive/{WEEK}", headers=FORGED).text


def test_a_sign_up_with_a_forged_host_is_mailed_a_link_to_base_url(site, project):
    config, engine, clock, _, client, _, _ = site
    client.headers.update(FORGED)
    response = sign_up(client, clock, "anders@bücher.example", name="Anders Ångström")
    no_evil(response)
    assert row(engine, "anders@bücher.example")["status"] == "pending"
    assert drain_outbox(config, engine, clock=clock) == 1
    mail = read_eml(next((project / "outbox" / "confirmations").glob("*.eml")))
    assert confirm_link(mail).startswith(f"{PUBLIC}/confirm/")
    assert EVIL not in mail.as_string()


@pytest.mark.parametrize("forged", [{"Host": EVIL}, {"X-Forwarded-Host": EVIL}])
def test_a_forged_host_does_not_make_another_site_s_form_post_ours(site, forged):
    _, engine, _, _, client, tokens, reader = site
    path = f"/unsubscribe/{tokens['unsubscribe']}"
    button = {"action": "unsubscribe", "csrf": field(client.get(path).text, "csrf")}
    for origin in (f"https://{EVIL}", f"http://{EVIL}"):
        cross = client.post(path, data=button, headers={**forged, "Origin": origin})
        assert cross.status_code == 403, origin
    assert row(engine, reader.email)["status"] == "active"
    ours = client.post(path, data=button, headers={**forged, "Origin": PUBLIC})
    assert ours.status_code == 200 and row(engine, reader.email)["status"] == "unsubscribed"


def test_a_trailing_slash_is_not_found_on_every_route_and_never_redirects(site):
    _, engine, _, app, client, tokens, reader = site
    routes = [r for r in app.routes if isinstance(r, Route) and r.path != "/"]
    assert len({r.path for r in routes}) >= 10  # every route of the app is here
    for route in routes:
        path = concrete(route, tokens) + "/"
        for method in sorted(route.methods):
            response = client.request(method, path, headers=FORGED, follow_redirects=False,
                                      data={"List-Unsubscribe": "One-Click"}
                                      if method == "POST" else None)
            assert response.status_code == 404, (method, path)
            no_evil(response)
    assert row(engine, reader.email)["status"] == "active"  # the one-click went nowhere
    assert client.get("/", headers=FORGED).status_code == 200


# -- client addresses -------------------------------------------------------------------------


def test_an_ipv4_client_is_one_bucket_however_its_address_is_written(site):
    _, engine, clock, app, *_ = site
    mapped = web_client(app, client=("::ffff:198.51.100.7", 50000))
    for i in range(5):  # the limit: five sign-ups per address in ten minutes
        sign_up(mapped, clock, f"lea{i}@bücher.example")
    assert signed_up_from(engine, "lea0@bücher.example") == "198.51.100.7"
    plain = web_client(app, client=("198.51.100.7", 50001))
    sign_up(plain, clock, "sixth@bücher.example")
    assert row(engine, "sixth@bücher.example") is None  # the same client, over its limit
    neighbour = web_client(app, client=("::ffff:198.51.100.8", 50002))
    sign_up(neighbour, clock, "nachbar@bücher.example")
    assert signed_up_from(engine, "nachbar@bücher.example") == "198.51.100.8"


def test_an_ipv4_mapped_address_from_the_proxy_is_the_ipv4_client(site):
    _, engine, _, _, client, tokens, reader = site
    client.post(f"/unsubscribe/{tokens['unsubscribe']}", data={"List-Unsubscribe": "One-Click"},
                headers={"X-Forwarded-For": "::ffff:203.0.113.9"})
    assert row(engine, reader.email)["unsubscribe_ip"] == "203.0.113.9"


def test_a_proxy_on_a_dual_stack_socket_is_still_trusted(site):
    _, engine, _, app, _, tokens, reader = site
    proxy = web_client(app, client=("::ffff:10.1.2.3", 4444))
    proxy.post(f"/unsubscribe/{tokens['unsubscribe']}", data={"List-Unsubscribe": "One-Click"},
               headers={"X-Forwarded-For": "198.51.100.23"})
    assert row(engine, reader.email)["unsubscribe_ip"] == "198.51.100.23"


# -- the headers every answer gets ------------------------------------------------------------


def every_kind_of_answer(client, tokens) -> dict[str, object]:
    unsubscribe = f"/unsubscribe/{tokens['unsubscribe']}"
    return {
        "page": client.get("/subscribe"),
        "embed": client.get("/embed/subscribe"),
        "json": client.get("/api/subscribe"),
        "token page": client.get(unsubscribe),
        "address page": client.get(f"/address/{tokens.get('address', 'none')}"),
        "data page": client.get(f"/data/{tokens.get('data', 'none')}"),
        "archive": client.get(f"/archive/{WEEK}"),
        "feed": client.get("/feed.xml"),
        "static": client.get("/static/site.css"),
        "health": client.get("/healthz"),
        "not found": client.get("/nowhere/"),
        "not allowed": client.delete("/subscribe"),
        "too large": client.post("/subscribe", data={"name": "ü" * 70_000}),
        "one-click": client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}),
        "webhook": client.post("/webhooks/resend", content=b"{}"),
        "metrics refused": client.get("/metrics"),
        "metrics": client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}),
        "admin refused": client.get(f"/admin/report/{WEEK}"),
        "admin": client.get(f"/admin/report/{WEEK}", auth=ADMIN),
        "admin forged": client.get(f"/admin/report/{WEEK}",
                                   headers={"Authorization": "Basic Zm9yZ2VkOm5vcGU="}),
        "admin junk": client.get(f"/admin/report/{WEEK}", headers={"Authorization": "Basic ???"}),
        "click": client.get(f"/r/{tokens.get('r', 'none')}", follow_redirects=False),
        "click forged": client.get("/r/2026-W47.1.1.aHR0cHM6Ly9ldmlsLmV4YW1wbGUv.AAAAAAAAAAAAAAAA"
                                   "AAAAAA", follow_redirects=False),
    }


def test_every_answer_denies_the_browser_features_no_page_needs(site):
    *_, client, tokens, _ = site
    for kind, response in every_kind_of_answer(client, tokens).items():
        policy = response.headers["permissions-policy"]
        for feature in DENIED:
            assert f"{feature}=()" in policy, (kind, feature)


def test_hsts_on_every_answer_when_base_url_is_https(site):
    *_, client, tokens, _ = site
    for kind, response in every_kind_of_answer(client, tokens).items():
        hsts = response.headers["strict-transport-security"]
        # No includeSubDomains: the publisher's other subdomains are not ours to lock.
        assert hsts == "max-age=31536000", kind


def test_no_hsts_when_base_url_is_plain_http(project, database_url):
    config = web_config(project, database_url, base_url="http://localhost:8000")
    engine = connect(database_url)
    reader = subscribers.add(engine, "soren@bücher.example")
    app = make_app(config, Clock(), engine=engine)
    tokens = {"unsubscribe": make_token(SECRET, "unsubscribe", reader.id)}
    client = web_client(app)
    for kind, response in every_kind_of_answer(client, tokens).items():
        assert "strict-transport-security" not in response.headers, kind
        assert "camera=()" in response.headers["permissions-policy"], kind


# -- hostile input on the reader's link pages -------------------------------------------------


@pytest.mark.parametrize("path", ["/address/{address}", "/data/{data}", "/manage/{manage}"])
def test_hostile_posts_to_the_link_pages_get_4xx_and_change_nothing(site, path):
    _, engine, clock, _, client, tokens, reader = site
    path = path.format(**tokens)
    csrf = field(client.get(path).text, "csrf")
    hostile = [
        {"data": {"csrf": csrf, "action": "’; DROP TABLE subscribers; --"}},
        {"data": {"csrf": csrf, "action": "address", "email": "ü" * 5000}},
        {"data": {"csrf": csrf, "action": "confirm", **{f"f{i}": "x" for i in range(40)}}},
        {"content": b"\xff\xfe\x00garbage",
         "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        {"content": b"--x\r\nnot multipart", "headers": {"Content-Type": "multipart/form-data"}},
        {"files": {"file": ("a.txt", b"x")}, "data": {"csrf": csrf}},
    ]
    for request in hostile:
        answer = client.post(path, **request)
        assert 400 <= answer.status_code < 500, (request, answer.status_code)
    assert row(engine, reader.email)["status"] == "active"
    assert row(engine, "zoe.n@bücher.example") is None
