"""Amazon SES v2: the request against botocore's service model, every answer, and moto end to end.

The end-to-end tests run moto's server on 127.0.0.1 with IAM signature checking on, so a
correctly signed request passes and a wrong secret key is refused with 403.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from email import message_from_bytes, policy
from functools import lru_cache
from typing import Any

import httpx
import pytest

from newsletter.audience.addresses import envelope_address
from newsletter.audience.recipient import Recipient
from newsletter.errors import ConfigError, NewsletterError
from newsletter.providers import make_transport
from newsletter.providers._http import RetryPolicy
from newsletter.providers.base import FatalTransportError, OutcomeKind
from newsletter.providers.ses import SEND_PATH, SesTransport, build_request, error_type, tag_value
from tests.provider_specs import SPEC_DIR
from tests.transport_fixtures import make_config, make_outgoing, personalized, recipients

KEY_ID = "AKIAEXAMPLE0123456789"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
MODEL = SPEC_DIR / "amazon-ses" / "sesv2-2019-09-27-service-2.json"


@pytest.fixture
def config(project):
    return make_config(project, provider="ses", aws_access_key_id=KEY_ID,
                       aws_secret_access_key=SECRET, aws_region="us-east-1")


@pytest.fixture
def outgoing(config):
    return make_outgoing(config)


# --- the botocore service model -------------------------------------------------------------

@lru_cache(maxsize=1)
def service_model() -> dict:
    if not MODEL.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"provider spec missing: {MODEL}")
        pytest.skip(f"provider spec not found: {MODEL}")
    return json.loads(MODEL.read_text(encoding="utf-8"))


def shape_problems(model: dict, shape_name: str, value: Any, where: str = "body") -> list[str]:
    """Check ``value`` against a botocore shape: member names, types, required members,
    lengths, enums. Members bound to the URI, headers or query string must not be in a
    JSON body."""
    shape = model["shapes"][shape_name]
    kind = shape["type"]
    problems: list[str] = []
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{where}: expected an object ({shape_name})"]
        members = shape.get("members", {})
        for name in shape.get("required", []):
            if name not in value:
                problems.append(f"{where}.{name}: required by {shape_name}")
        for name, item in value.items():
            member = members.get(name)
            if member is None:
                problems.append(f"{where}.{name}: not a member of {shape_name}")
            elif "location" in member:
                problems.append(f"{where}.{name}: belongs in the {member['location']}")
            else:
                problems += shape_problems(model, member["shape"], item, f"{where}.{name}")
    elif kind == "list":
        if not isinstance(value, list):
            return [f"{where}: expected a list ({shape_name})"]
        if "min" in shape and len(value) < shape["min"]:
            problems.append(f"{where}: fewer than {shape['min']} items")
        if "max" in shape and len(value) > shape["max"]:
            problems.append(f"{where}: more than {shape['max']} items")
        for i, item in enumerate(value):
            problems += shape_problems(model, shape["member"]["shape"], item, f"{where}[{i}]")
    elif kind == "map":
        if not isinstance(value, dict):
            return [f"{where}: expected a map ({shape_name})"]
        for key, item in value.items():
            problems += shape_problems(model, shape["key"]["shape"], key, f"{where} key")
            problems += shape_problems(model, shape["value"]["shape"], item, f"{where}.{key}")
    elif kind == "string":
        if not isinstance(value, str):
            return [f"{where}: expected a string ({shape_name})"]
        if "min" in shape and len(value) < shape["min"]:
            problems.append(f"{where}: shorter than {shape['min']}")
        if "max" in shape and len(value) > shape["max"]:
            problems.append(f"{where}: longer than {shape['max']}")
        if "enum" in shape and value not in shape["enum"]:
            problems.append(f"{where}: {value!r} not in {shape['enum']}")
    elif kind == "blob":
        # rest-json sends a blob as base64 text.
        try:
            base64.b64decode(value, validate=True)
        except (TypeError, ValueError):
            problems.append(f"{where}: not base64 ({shape_name})")
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{where}: expected an integer ({shape_name})")
    elif kind == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{where}: expected a boolean ({shape_name})")
    else:
        problems.append(f"{where}: unchecked shape type {kind} ({shape_name})")
    return problems


def test_the_model_says_post_to_our_path():
    model = service_model()
    op = model["operations"]["SendEmail"]
    assert op["http"] == {"method": "POST", "requestUri": SEND_PATH}
    assert op["input"]["shape"] == "SendEmailRequest"
    assert model["metadata"]["signingName"] == "ses"
    assert model["metadata"]["endpointPrefix"] == "email"


def test_the_shape_checker_catches_mistakes():
    model = service_model()
    assert shape_problems(model, "SendEmailRequest", {}) == [
        "body.Content: required by SendEmailRequest"]
    bad = {"Content": {"Raw": {"Data": "not base64!"}}, "Destination": {"To": ["a@b.c"]},
           "EmailTags": [{"Name": "x"}]}
    problems = shape_problems(model, "SendEmailRequest", bad)
    assert "body.Content.Raw.Data: not base64 (RawMessageData)" in problems
    assert "body.Destination.To: not a member of Destination" in problems
    assert "body.EmailTags[0].Value: required by MessageTag" in problems


@pytest.mark.parametrize("stream", ["", "newsletters"])
def test_request_body_matches_the_service_model(project, stream):
    config = make_config(project, provider="ses", aws_access_key_id=KEY_ID,
                         aws_secret_access_key=SECRET, provider_stream=stream)
    outgoing = make_outgoing(config)
    transport = SesTransport(config)
    recipient = Recipient(id=7, email="juergen@bücher.example", name="Jürgen Ö")
    body = build_request(outgoing, outgoing.personalize(recipient),
                         configuration_set=transport.configuration_set)
    assert shape_problems(service_model(), "SendEmailRequest", body) == []
    assert body["FromEmailAddress"] == config.from_address
    assert body["Destination"] == {"ToAddresses": ["juergen@xn--bcher-kva.example"]}
    tags = {t["Name"]: t["Value"] for t in body["EmailTags"]}
    assert tags == {"edition": tag_value(outgoing.edition_key), "subscriber_id": "7"}
    assert "." in outgoing.edition_key and "." not in tags["edition"]
    if not stream:  # the config default: no configuration set
        assert "ConfigurationSetName" not in body
    else:
        assert body["ConfigurationSetName"] == "newsletters"
    raw = base64.b64decode(body["Content"]["Raw"]["Data"])
    message = message_from_bytes(raw, policy=policy.default)
    assert message["Message-ID"] == outgoing.personalize(recipient).message_id
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert outgoing.personalize(recipient).values["unsubscribe_url"] in message["List-Unsubscribe"]


def test_tag_values_keep_only_what_ses_allows():
    assert tag_value("2026-W47.0123abcd") == "2026-W47_0123abcd"
    assert tag_value("a b/c@d") == "a_b_c_d"
    assert tag_value("") == "_"
    assert len(tag_value("x" * 300)) == 256
    assert envelope_address("a@example.com") == "a@example.com"


def test_fake_answers_match_the_service_model():
    model = service_model()
    assert shape_problems(model, "SendEmailResponse", {"MessageId": "0100-abc"}) == []
    for name in ("MessageRejected", "AccountSuspendedException", "SendingPausedException",
                 "MailFromDomainNotVerifiedException", "LimitExceededException",
                 "TooManyRequestsException", "NotFoundException", "BadRequestException"):
        assert {"shape": name} in model["operations"]["SendEmail"]["errors"], name
        assert model["shapes"][name]["exception"] is True


# --- answers, through httpx.MockTransport ---------------------------------------------------

def ses_error(status: int, kind: str, message: str, *, in_body: bool = False) -> httpx.Response:
    if in_body:
        return httpx.Response(status, json={"__type": f"com.amazonaws.sesv2#{kind}",
                                            "message": message})
    return httpx.Response(status, headers={"x-amzn-ErrorType": f"{kind}:http://internal/"},
                          json={"message": message})


def recipient_of(request: httpx.Request) -> str:
    return json.loads(request.content)["Destination"]["ToAddresses"][0]


async def send(config, outgoing, handler, n=3, sleeps=None, **options):
    sleeps = [] if sleeps is None else sleeps

    async def sleep(seconds):
        sleeps.append(seconds)

    transport = SesTransport(config, transport=httpx.MockTransport(handler), sleep=sleep,
                             retry=RetryPolicy(attempts=3, base_delay=0.01), **options)
    try:
        return await transport.send_batch(outgoing, personalized(outgoing, recipients(n)),
                                          batch_key="b1")
    finally:
        await transport.aclose()


def signature_ok(request: httpx.Request, secret: str = SECRET) -> bool:
    """Verify a request's SigV4 signature the way AWS (and moto) do."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    auth = request.headers["authorization"]
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    headers = {k: v for k, v in request.headers.items() if k.lower() in signed}
    aws = AWSRequest(method=request.method, url=str(request.url), data=request.content,
                     headers=headers)
    aws.context["timestamp"] = request.headers["x-amz-date"]
    signer = SigV4Auth(Credentials(KEY_ID, secret), "ses", "us-east-1")
    expected = signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws)
    return auth.split("Signature=")[1] == expected


async def test_success_is_signed_and_records_sess_message_ids(config, outgoing):
    seen = []

    def handler(request):
        seen.append(request)
        n = recipient_of(request).split("@")[0].removeprefix("reader")
        return httpx.Response(200, json={"MessageId": f"ses-{n}"})

    results = await send(config, outgoing, handler)
    assert [r.kind for r in results] == [OutcomeKind.SENT] * 3
    assert [r.message_id for r in results] == ["ses-1", "ses-2", "ses-3"]
    assert len(seen) == 3
    for request in seen:
        assert request.url == "https://email.us-east-1.amazonaws.com" + SEND_PATH
        assert request.headers["authorization"].startswith(
            f"AWS4-HMAC-SHA256 Credential={KEY_ID}/")
        assert "/us-east-1/ses/aws4_request" in request.headers["authorization"]
        assert signature_ok(request)
        assert not signature_ok(request, secret="x" * 40)


async def test_every_retry_is_signed_afresh(config, outgoing):
    seen = []

    def handler(request):
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(500, json={"message": "internal"})
        return httpx.Response(200, json={"MessageId": "m"})

    results = await send(config, outgoing, handler, n=1)
    assert results[0].kind == OutcomeKind.SENT
    assert len(seen) == 2 and all(signature_ok(r) for r in seen)


async def test_endpoint_follows_region_and_base_url(project, outgoing):
    hosts = []

    def handler(request):
        hosts.append(str(request.url))
        return httpx.Response(200, json={"MessageId": "m"})

    for overrides, expected in [
        ({"aws_region": "eu-west-1"}, "https://email.eu-west-1.amazonaws.com" + SEND_PATH),
        ({"provider_base_url": "http://127.0.0.1:9"}, "http://127.0.0.1:9" + SEND_PATH),
    ]:
        config = make_config(project, provider="ses", aws_access_key_id=KEY_ID,
                             aws_secret_access_key=SECRET, **overrides)
        await send(config, outgoing, handler, n=1)
        assert hosts[-1] == expected


SUPPRESSED = "Email address is on the suppression list for your account."
SANDBOX = ("Email address is not verified. The following identities failed the check in "
           "region US-EAST-1: reader3@example.com")


@pytest.mark.parametrize(("response", "status", "bad_address"), [
    (ses_error(400, "MessageRejected", SUPPRESSED), OutcomeKind.FAILED, True),
    (ses_error(400, "MessageRejected", SUPPRESSED, in_body=True), OutcomeKind.FAILED, True),
    (ses_error(400, "MessageRejected", SANDBOX), OutcomeKind.FAILED, False),
    (ses_error(400, "BadRequestException", "Illegal address"), OutcomeKind.FAILED, True),
    (ses_error(400, "BadRequestException", "Tag value is invalid"), OutcomeKind.FAILED, False),
    (ses_error(400, "LimitExceededException", "Maximum sending rate exceeded."),
     OutcomeKind.RETRY, False),
    (ses_error(400, "ThrottlingException", "Rate exceeded"), OutcomeKind.RETRY, False),
    (ses_error(429, "TooManyRequestsException", "Too many requests"), OutcomeKind.RETRY, False),
    (httpx.Response(503, text="Service Unavailable"), OutcomeKind.RETRY, False),
    (httpx.Response(504, text="Gateway Timeout"), OutcomeKind.UNKNOWN, False),
    (httpx.Response(200, json={"unexpected": True}), OutcomeKind.UNKNOWN, False),
])
async def test_one_messages_answer_is_that_recipients_result(config, outgoing, response,
                                                             status, bad_address):
    # The last message of the batch gets the answer: a throttled message stops the batch
    # from starting more (see test_throttling_stops_starting_more_messages).
    def handler(request):
        if recipient_of(request) == "reader3@example.com":
            return response
        return httpx.Response(200, json={"MessageId": "ok"})

    results = await send(config, outgoing, handler, max_in_flight=1)
    assert [r.kind for r in results] == [OutcomeKind.SENT, OutcomeKind.SENT, status]
    assert results[2].bad_address is bad_address
    assert not results[2].fatal
    assert SECRET not in results[2].reason


async def test_a_timeout_is_unknown_for_that_recipient_only_and_not_resent(config, outgoing):
    calls = []

    def handler(request):
        calls.append(recipient_of(request))
        if recipient_of(request) == "reader2@example.com":
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(200, json={"MessageId": "ok"})

    results = await send(config, outgoing, handler, max_in_flight=1)
    # The message after it is not started (no more unknowns while SES is not answering).
    assert [r.kind for r in results] == [OutcomeKind.SENT, OutcomeKind.UNKNOWN,
                                         OutcomeKind.UNTRIED]
    assert calls.count("reader2@example.com") == 1
    assert "not sent" in results[2].reason


async def test_concurrent_messages_keep_their_own_outcomes(config, outgoing):
    async def handler(request):
        await asyncio.sleep(0.01)  # all three are in flight together
        if recipient_of(request) == "reader2@example.com":
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(200, json={"MessageId": recipient_of(request)})

    results = await send(config, outgoing, handler, max_in_flight=3)
    assert [r.kind for r in results] == [OutcomeKind.SENT, OutcomeKind.UNKNOWN, OutcomeKind.SENT]
    assert results[2].message_id == "reader3@example.com"


@pytest.mark.parametrize("response", [
    ses_error(400, "AccountSuspendedException", "Account suspended"),
    ses_error(400, "SendingPausedException", "Sending paused for this account"),
    ses_error(400, "MailFromDomainNotVerifiedException", "MAIL FROM domain not verified"),
    ses_error(404, "NotFoundException", "Configuration set <x> does not exist."),
    ses_error(403, "InvalidSignatureException", f"signature mismatch for {SECRET}"),
    ses_error(403, "UnrecognizedClientException", "The security token is invalid."),
    ses_error(403, "AccessDeniedException", "not authorized to perform ses:SendEmail"),
    httpx.Response(403, text="<Error><Code>SignatureDoesNotMatch</Code></Error>"),
    ses_error(400, "MessageRejected", "Email address is not verified. The following "
              "identities failed the check in region US-EAST-1: editors@fivethings.example.com"),
])
async def test_account_errors_stop_the_send_and_never_show_the_secret(config, outgoing,
                                                                      response):
    with pytest.raises(FatalTransportError) as err:
        await send(config, outgoing, lambda r: response)
    assert SECRET not in str(err.value) and SECRET not in err.value.body
    assert err.value.status == response.status_code


async def test_an_account_error_after_some_were_sent_is_flagged_fatal(config, outgoing):
    def handler(request):
        if recipient_of(request) == "reader1@example.com":
            return httpx.Response(200, json={"MessageId": "ok"})
        return ses_error(400, "SendingPausedException", "paused")

    results = await send(config, outgoing, handler, max_in_flight=1)
    assert [r.kind for r in results] == [OutcomeKind.SENT, OutcomeKind.UNTRIED,
                                         OutcomeKind.UNTRIED]
    assert not results[0].fatal and results[1].fatal
    assert "not sent" in results[2].reason


async def test_throttling_stops_starting_more_messages(config, outgoing):
    calls = []

    def handler(request):
        calls.append(1)
        if len(calls) == 1:
            return httpx.Response(200, json={"MessageId": "ok"})
        return ses_error(400, "LimitExceededException", "Maximum sending rate exceeded.")

    results = await send(config, outgoing, handler, n=4, max_in_flight=1)
    assert [r.kind for r in results] == [OutcomeKind.SENT, OutcomeKind.RETRY] + \
        [OutcomeKind.UNTRIED] * 2
    assert len(calls) == 2


async def test_messages_go_concurrently_within_the_bound(config, outgoing):
    in_flight, peak = 0, 0

    async def handler(request):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(200, json={"MessageId": recipient_of(request)})

    results = await send(config, outgoing, handler, n=30, max_in_flight=10)
    assert [r.message_id for r in results] == [f"reader{i}@example.com" for i in range(1, 31)]
    assert 1 < peak <= 10


def test_error_type_reads_header_json_and_xml():
    assert error_type(ses_error(400, "MessageRejected", "m")) == ("MessageRejected", "m")
    assert error_type(ses_error(400, "MessageRejected", "m", in_body=True)) == (
        "MessageRejected", "m")
    xml = httpx.Response(403, text="<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code>"
                         "<Message>no</Message></Error></ErrorResponse>")
    assert error_type(xml) == ("SignatureDoesNotMatch", "no")


async def test_more_than_50_messages_is_refused(config, outgoing):
    transport = SesTransport(config, transport=httpx.MockTransport(
        lambda r: httpx.Response(200, json={"MessageId": "m"})))
    with pytest.raises(ValueError, match="maximum of 50"):
        await transport.send_batch(outgoing, personalized(outgoing, recipients(51)),
                                   batch_key="x")
    await transport.aclose()


def test_make_transport_picks_ses(config):
    assert isinstance(make_transport(config), SesTransport)


def test_missing_credentials_name_the_key(project):
    config = make_config(project, provider="ses", aws_access_key_id=KEY_ID)
    with pytest.raises(ConfigError, match="aws_secret_access_key"):
        SesTransport(config)


def test_a_bad_region_is_a_config_error(project):
    config = make_config(project, provider="ses", aws_access_key_id=KEY_ID,
                         aws_secret_access_key=SECRET, aws_region="evil.example.com/x")
    with pytest.raises(ConfigError, match="aws_region"):
        SesTransport(config)


def test_without_botocore_the_error_says_what_to_install(config, monkeypatch):
    monkeypatch.setitem(sys.modules, "botocore.auth", None)
    with pytest.raises(NewsletterError, match=r"pip install 'newsletter\[ses\]'") as err:
        SesTransport(config)
    assert len(str(err.value).splitlines()) == 1


# --- end to end against moto's server, signatures checked ------------------------------------

SENDER = "editors@fivethings.example.com"  # from_address in the sample newsletter.toml
ALLOW_SES = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "ses:*", "Resource": "*"}]})


@pytest.fixture(scope="module")
def moto_url():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_ses(moto_url):
    """A fresh moto with an IAM user allowed ses:*, a verified sender, and auth switched on.

    moto 5 reads INITIAL_NO_AUTH_ACTION_COUNT from the environment once, when ``moto.settings``
    is imported, and this server runs in the test process, so an environment variable would
    only work if set before anything imported moto. Server mode has an endpoint for it
    instead (the one moto's own ``set_initial_no_auth_action_count`` uses against a server):
    ``POST /moto-api/reset-auth`` with the number of requests to let through unchecked. The
    setup below runs unchecked (IAM calls need credentials to exist first); then it is set to
    0 and every request must be signed by a known key whose user's policy allows the action.
    """
    import boto3

    with httpx.Client(base_url=moto_url) as api:
        api.post("/moto-api/reset").raise_for_status()
        api.post("/moto-api/reset-auth", content=b"inf").raise_for_status()
        setup = {"endpoint_url": moto_url, "region_name": "us-east-1",
                 "aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
        iam = boto3.client("iam", **setup)
        iam.create_user(UserName="newsletter")
        iam.put_user_policy(UserName="newsletter", PolicyName="send", PolicyDocument=ALLOW_SES)
        key = iam.create_access_key(UserName="newsletter")["AccessKey"]
        boto3.client("sesv2", **setup).create_email_identity(EmailIdentity=SENDER)
        previous = api.post("/moto-api/reset-auth", content=b"0").json()
        try:
            yield {"url": moto_url, "key_id": key["AccessKeyId"],
                   "secret": key["SecretAccessKey"]}
        finally:
            api.post("/moto-api/reset-auth",
                     content=previous["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"].encode())


def moto_config(project, moto_ses, **overrides):
    values = {"provider": "ses", "provider_base_url": moto_ses["url"], "aws_region": "us-east-1",
              "aws_access_key_id": moto_ses["key_id"],
              "aws_secret_access_key": moto_ses["secret"]}
    values.update(overrides)
    return make_config(project, **values)


def sent_by_moto(url: str) -> list[dict]:
    data = httpx.get(f"{url}/moto-api/data.json").json()
    return data.get("ses", {}).get("RawMessage", [])


async def test_moto_accepts_our_signed_raw_messages(project, moto_ses):
    config = moto_config(project, moto_ses)
    outgoing = make_outgoing(config)
    batch = recipients(4) + [Recipient(id=9, email="zoe@bücher.example", name="Zoë Ü")]
    transport = SesTransport(config)
    try:
        results = await transport.send_batch(outgoing, personalized(outgoing, batch),
                                             batch_key="b1")
    finally:
        await transport.aclose()
    assert [r.kind for r in results] == [OutcomeKind.SENT] * 5, [r.reason for r in results]

    stored = {m["id"]: m for m in sent_by_moto(moto_ses["url"])}
    assert len(stored) == 5
    links = set()
    for recipient, result in zip(batch, results, strict=True):
        item = stored[result.message_id]
        assert item["source"] == SENDER
        assert item["destinations"][0] == envelope_address(recipient.email)
        message = message_from_bytes(item["raw_data"].encode("utf-8"), policy=policy.default)
        assert all(not part.defects for part in message.walk()), recipient
        assert message["Message-ID"] == outgoing.personalize(recipient).message_id
        assert message["To"].addresses[0].addr_spec.endswith(
            envelope_address(recipient.email).split("@")[1])
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        url = outgoing.personalize(recipient).values["unsubscribe_url"]
        assert f"<{url}>" in message["List-Unsubscribe"]
        assert url in message.get_body(("plain",)).get_content()
        links.add(url)
    assert len(links) == 5, "each recipient has their own unsubscribe link"


async def test_moto_refuses_a_wrong_secret_and_the_error_hides_it(project, moto_ses):
    wrong = "WrongSecretKey0123456789abcdefghijklmnop"
    config = moto_config(project, moto_ses, aws_secret_access_key=wrong)
    transport = SesTransport(config)
    outgoing = make_outgoing(config)
    try:
        with pytest.raises(FatalTransportError) as err:
            await transport.send_batch(outgoing, personalized(outgoing, recipients(3)),
                                       batch_key="b1")
    finally:
        await transport.aclose()
    assert err.value.status == 403
    assert "SignatureDoesNotMatch" in str(err.value)
    assert wrong not in str(err.value) and wrong not in err.value.body
    assert sent_by_moto(moto_ses["url"]) == []


async def test_moto_refuses_an_unverified_sender_and_the_send_stops(project, moto_ses):
    config = moto_config(project, moto_ses, from_address="someone@elsewhere.example")
    transport = SesTransport(config)
    outgoing = make_outgoing(config)
    try:
        with pytest.raises(FatalTransportError, match="MessageRejected"):
            await transport.send_batch(outgoing, personalized(outgoing, recipients(2)),
                                       batch_key="b1")
    finally:
        await transport.aclose()
