"""Mailgun: the content-once form against Mailgun's spec, what each recipient receives after
Mailgun's recipient-variable substitution, and every answer shape."""

import base64
import json
import re
from email.utils import parseaddr

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.audience.recipient import Recipient
from newsletter.errors import ConfigError
from newsletter.providers.base import (
    BatchRejected,
    FatalTransportError,
    OutcomeKind,
    OutcomeUnknown,
)
from newsletter.providers.mailgun import (
    MailgunTransport,
    base_url,
    build_form,
    multipart,
    parse_queued,
)
from tests.provider_specs import load_spec, validate_request, validate_response
from tests.transport_fixtures import (
    API_KEY,
    make_config,
    make_outgoing,
    personal_parts,
    personalized,
    recipients,
    send_with,
)

SPEC_PATH = "/v3/{domain_name}/messages"
FORM = "multipart/form-data"
DOMAIN = "mg.example.com"
# A subscriber's name: one line, any other character a database can hold.
NAME_CHARS = st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"))  # names are one line
BOB = Recipient(id=42, email="bob@exämple.com", name='<Bob> & "B"')
QUEUED = {"id": "<20261123080000.1.ABC@mg.example.com>", "message": "Queued. Thank you."}


@pytest.fixture
def config(project):
    return make_config(project, provider="mailgun", mailgun_domain=DOMAIN)


@pytest.fixture
def outgoing(config):
    return make_outgoing(config)


def as_fields(form):
    """The form as the spec's object: ``to`` (an array there) a list, the rest strings."""
    fields: dict = {}
    for name, value in form:
        if name == "to":
            fields.setdefault("to", []).append(value)
        else:
            assert name not in fields, f"{name} sent twice"
            fields[name] = value
    return fields


def validate_form(form):
    fields = as_fields(form)
    validate_request("mailgun", SPEC_PATH, "post", fields, content_type=FORM)
    # The schema allows any other field; the only other names Mailgun documents are the
    # h:<header> and v:<variable> families (its spec lists them as h:X-My-Header, v:my-var).
    props = load_spec("mailgun")["components"]["schemas"][
        "POST-v3-domain_name-messages-multipart-form-data-RequestBody"]["properties"]
    extra = [k for k in fields if k not in props and not k.startswith(("h:", "v:"))]
    assert not extra, f"undocumented fields sent: {extra}"


def parse_multipart(request):
    """(name, value) pairs of a multipart/form-data request, exactly as sent."""
    boundary = re.search(r"boundary=([^;]+)", request.headers["content-type"]).group(1)
    parts = request.content.split(b"--" + boundary.encode())
    assert parts[0] == b"" and parts[-1] == b"--\r\n"
    out = []
    for part in parts[1:-1]:
        head, _, value = part.partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]*)"', head).group(1).decode()
        assert b"filename" not in head and b"Content-Type" not in head
        assert value.endswith(b"\r\n")
        out.append((name, value[:-2].decode("utf-8")))
    return out


def deliver(form):
    """What each ``to`` receives: Mailgun replaces %recipient.KEY% with that recipient's
    value everywhere (body, h: headers, v: variables), in one pass; a placeholder without a
    value would raise KeyError here."""
    fields = as_fields(form)
    variables = json.loads(fields["recipient-variables"])
    out = []
    for to in fields["to"]:
        mine = variables[parseaddr(to)[1]]

        def fill(text, mine=mine):
            return re.sub(r"%recipient\.([^%]+)%", lambda m: mine[m.group(1)], text)

        filled = {k: fill(v) for k, v in fields.items() if k not in ("to", "recipient-variables")}
        out.append((to, filled))
    return out


def assert_delivered_faithfully(outgoing, batch):
    form = build_form(outgoing, personalized(outgoing, batch), batch_key="b1")
    for recipient, (_, filled) in zip(batch, deliver(form), strict=True):
        personal = personal_parts(outgoing, recipient)
        assert filled["html"] == personal.html
        assert filled["text"] == personal.text
        headers = {k[2:]: v for k, v in filled.items() if k.startswith("h:")}
        assert headers.pop("Reply-To") == outgoing.sender.reply_to
        assert headers == personal.headers
        assert filled["v:subscriber_id"] == str(recipient.id)
        assert filled["v:edition"] == outgoing.edition_key
        assert filled["v:batch"] == "b1"
    return form


async def send(config, outgoing, handler, n=3, sleeps=None, batch=None):
    return await send_with(MailgunTransport, config, outgoing, handler, n=n, sleeps=sleeps,
                           batch=batch)


def queued(request):
    return httpx.Response(200, json=QUEUED)


# --- the request ---------------------------------------------------------------------------


def test_form_matches_mailguns_spec(outgoing):
    form = build_form(outgoing, personalized(outgoing, [*recipients(2), BOB]), batch_key="b1")
    validate_form(form)
    fields = as_fields(form)
    assert fields["from"] == "Five Things <editors@fivethings.example.com>"
    assert fields["to"] == ["Reader 1 <reader1@example.com>", "Reader 2 <reader2@example.com>",
                            '"<Bob> & \\"B\\"" <bob@xn--exmple-cua.com>']
    variables = json.loads(fields["recipient-variables"])
    assert list(variables) == ["reader1@example.com", "reader2@example.com",
                               "bob@xn--exmple-cua.com"]
    # Headers the same for everyone go in as they are; the unsubscribe link per recipient.
    assert fields["h:List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert fields["h:List-Id"] == outgoing.list_id
    assert re.fullmatch(r"%recipient\.\w+%", fields["h:List-Unsubscribe"])
    assert fields["v:edition"] == outgoing.edition_key
    assert re.fullmatch(r"%recipient\.\w+%", fields["v:subscriber_id"])
    assert fields["v:batch"] == "b1", "Mailgun's events name the batch (reconcile reads it)"


def test_each_recipient_receives_exactly_their_own_message(outgoing):
    batch = [*recipients(3), BOB]
    form = assert_delivered_faithfully(outgoing, batch)
    delivered = deliver(form)
    links = {filled["h:List-Unsubscribe"] for _, filled in delivered}
    assert len(links) == 4, "each recipient has their own unsubscribe link"
    for (_, filled), recipient in zip(delivered, batch, strict=True):
        url = outgoing.personalize(recipient).values["unsubscribe_url"]
        assert f'href="{url}"' in filled["html"] and f"Unsubscribe: {url}" in filled["text"]
    bob = delivered[3][1]
    assert "Hi &lt;Bob&gt;," in bob["html"] and "Hi <Bob>," in bob["text"]


def test_a_single_recipient_gets_every_header_as_it_is(outgoing):
    form = assert_delivered_faithfully(outgoing, recipients(1))
    assert "%recipient." not in as_fields(form)["h:List-Unsubscribe"]


def test_the_content_is_sent_once_with_separate_escaped_and_raw_variables(outgoing):
    fields = as_fields(build_form(outgoing, personalized(outgoing, recipients(3)),
                                  batch_key="b1"))
    rendered = outgoing
    html_keys = set(re.findall(r"%recipient\.(\w+)%", fields["html"]))
    text_keys = set(re.findall(r"%recipient\.(\w+)%", fields["text"]))
    assert len(html_keys) == len(set(rendered.html.fields))
    assert len(text_keys) == len(set(rendered.text.fields))
    assert not html_keys & text_keys
    assert "reader1@example.com" not in fields["html"]


def test_a_nonce_found_in_a_value_is_not_used(outgoing):
    first = build_form(outgoing, personalized(outgoing, recipients(1)), batch_key="b1")
    key = re.search(r"%recipient\.nl(\w{8})", as_fields(first)["html"]).group(1)
    sly = Recipient(id=9, email="sly@example.com", name=f"%recipient.nl{key}h0%")
    form = assert_delivered_faithfully(outgoing, [sly, *recipients(2)])
    assert key not in as_fields(form)["html"]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.text(NAME_CHARS, max_size=30), min_size=1, max_size=4))
def test_any_names_survive_the_substitution(outgoing, names):
    batch = [Recipient(id=i + 1, email=f"r{i}@example.com", name=name)
             for i, name in enumerate(names)]
    validate_form(assert_delivered_faithfully(outgoing, batch))


async def test_the_wire_carries_exactly_the_form(config, outgoing):
    seen = {}

    def handler(request):
        seen["form"] = parse_multipart(request)
        seen["url"] = str(request.url)
        seen["auth"] = request.headers["Authorization"]
        return queued(request)

    batch = [*recipients(2), BOB]
    await send(config, outgoing, handler, batch=batch)
    assert seen["form"] == build_form(outgoing, personalized(outgoing, batch), batch_key="b1")
    assert seen["url"] == f"https://api.mailgun.net/v3/{DOMAIN}/messages"
    assert seen["auth"] == "Basic " + base64.b64encode(f"api:{API_KEY}".encode()).decode()


async def test_a_batch_of_1000_costs_well_under_2kb_per_recipient(config, outgoing):
    seen = {}

    def handler(request):
        seen["size"] = len(request.content)
        return queued(request)

    results = await send(config, outgoing, handler, n=1000)
    assert len(results) == 1000
    rendered = outgoing
    edition = sum(len(x) for x in rendered.html.literals + rendered.text.literals)
    assert edition > 25_000, "the edition itself is large; it must be sent only once"
    assert seen["size"] / 1000 < 2048, f"{seen['size'] / 1000:.0f} bytes per recipient"


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(("configured", "expected"), [
    ("", "https://api.mailgun.net"),
    ("https://api.eu.mailgun.net", "https://api.eu.mailgun.net"),
    ("https://api.eu.mailgun.net/v3/", "https://api.eu.mailgun.net"),
])
def test_base_url(configured, expected):
    assert base_url(configured) == expected


async def test_the_eu_endpoint_is_one_setting_away(project, outgoing):
    config = make_config(project, provider="mailgun", mailgun_domain=DOMAIN,
                         provider_base_url="https://api.eu.mailgun.net")
    urls = []

    def handler(request):
        urls.append(str(request.url))
        return queued(request)

    await send(config, outgoing, handler, n=1)
    assert urls == [f"https://api.eu.mailgun.net/v3/{DOMAIN}/messages"]


@pytest.mark.parametrize("key", ["mailgun_domain", "provider_api_key"])
def test_required_settings(project, key):
    settings_ = {"provider": "mailgun", "mailgun_domain": DOMAIN, key: ""}
    with pytest.raises(ConfigError, match=key):
        MailgunTransport(make_config(project, **settings_))


def test_a_domain_with_a_slash_is_refused(project):
    with pytest.raises(ConfigError, match="mailgun_domain"):
        MailgunTransport(make_config(project, provider="mailgun", mailgun_domain="a/b"))


# --- the answers ---------------------------------------------------------------------------


def test_fake_answers_match_the_spec():
    validate_response("mailgun", SPEC_PATH, "post", 200, QUEUED)


async def test_queued_marks_everyone_sent_with_the_message_id(config, outgoing):
    results = await send(config, outgoing, queued)
    assert [r.kind for r in results] == [OutcomeKind.SENT] * 3
    assert {r.message_id for r in results} == {QUEUED["id"]}


def test_an_answer_without_an_id_is_unknown(outgoing):
    with pytest.raises(OutcomeUnknown):
        parse_queued(personalized(outgoing, recipients(2)), {"message": "Queued. Thank you."})


async def test_a_wrong_url_answered_with_mailguns_home_page_stops_the_send(config, outgoing):
    with pytest.raises(FatalTransportError, match="provider_base_url"):
        await send(config, outgoing, lambda r: httpx.Response(200, text="Mailgun Magnificent "
                                                              "API"))


async def test_400_rejects_the_batch(config, outgoing):
    answer = {"message": "to parameter is not a valid address. please check documentation"}
    validate_response("mailgun", SPEC_PATH, "post", 400, answer)
    with pytest.raises(BatchRejected) as err:
        await send(config, outgoing, lambda r: httpx.Response(400, json=answer))
    assert err.value.status == 400 and "valid address" in str(err.value)


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_credentials_stop_the_send_and_never_show_the_key(config, outgoing,
                                                                         status):
    validate_response("mailgun", SPEC_PATH, "post", 401, "Forbidden")
    text = f"Forbidden: key {API_KEY}"
    with pytest.raises(FatalTransportError) as err:
        await send(config, outgoing, lambda r: httpx.Response(status, text=text))
    assert err.value.status == status
    assert API_KEY not in str(err.value) and API_KEY not in err.value.body
    assert "[redacted]" in str(err.value)


async def test_an_unknown_domain_stops_the_send(config, outgoing):
    answer = {"message": "Domain not found: mg.example.com"}
    with pytest.raises(FatalTransportError, match="mailgun_domain"):
        await send(config, outgoing, lambda r: httpx.Response(404, json=answer))


async def test_429_is_retried_after_the_time_asked(config, outgoing):
    calls, sleeps = [], []
    answer = {"message": "Domain mg.example.com is not allowed to send: "
              "account-requests-per-sec limit exceeded, try again after 5 seconds"}
    validate_response("mailgun", SPEC_PATH, "post", 429, answer)

    def handler(request):
        calls.append(1)
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "5"}, json=answer)
        return queued(request)

    results = await send(config, outgoing, handler, sleeps=sleeps)
    assert [r.kind for r in results] == [OutcomeKind.SENT] * 3
    assert len(calls) == 2 and sleeps[0] >= 5










def test_the_form_is_sent_as_plain_fields():
    assert multipart([("to", "Zoë <z@example.com>")]) == [("to", (None, "Zoë <z@example.com>"
                                                                   .encode()))]


async def test_more_than_1000_recipients_is_refused(config, outgoing):
    transport = MailgunTransport(config, transport=httpx.MockTransport(queued))
    with pytest.raises(ValueError, match="maximum of 1000"):
        await transport.send_batch(outgoing, personalized(outgoing, recipients(1001)),
                                   batch_key="x")
    await transport.aclose()
