"""Amazon SNS HTTP deliveries: signature (versions 1 and 2), certificates, subscriptions.

Spec: https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html and
.../sns-verify-signature-of-message-verify-message-signature.html : the string to sign is
``key\\nvalue\\n`` for each signed field present, in byte order (Notification: Message,
MessageId, Subject, Timestamp, TopicArn, Type; the confirmations: Message, MessageId,
SubscribeURL, Timestamp, Token, TopicArn, Type); version 1 is RSA PKCS#1 v1.5 with SHA1,
version 2 with SHA256; the certificate comes from ``SigningCertURL``, which must be https on
``sns.<region>.amazonaws.com`` (``.com.cn`` in China) and end in ``.pem`` (the host pattern of
aws/aws-php-sns-message-validator, pinned here to the region of the TopicArn). Subscription:
https://docs.aws.amazon.com/sns/latest/dg/http-subscription-confirmation-json.html .

A valid signature proves only that AWS sent the message, not that the topic is ours, so only
topics in ``ses_sns_topic_arns`` are accepted, and only those get their subscription confirmed.
Retries keep the original ``Timestamp``; SNS stops retrying an HTTP endpoint within 3,600 s
(https://docs.aws.amazon.com/sns/latest/dg/sns-message-delivery-retries.html), hence a window
of 75 minutes. Certificate validity dates are not checked: the trust is in the URL rule, and
AWS's own published test messages are signed by a certificate that has since expired.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..events import (
    BadSignature,
    MalformedPayload,
    NotConfigured,
    UnknownTopic,
    WebhookUnavailable,
)
from ..times import from_iso
from ._common import check_window, header, load_json, secrets_list

PROVIDER = "ses"
TOLERANCE = timedelta(minutes=75)
# An SNS message is at most 256 KiB (the SNS quotas page: "Message size: 256 KB"). The HTTP
# delivery carries it as a JSON string inside the envelope, so an SES event, itself JSON, grows
# by a backslash for each of its quotes and backslashes: at most twice. The envelope's other
# fields (ids, ARNs, URLs, the signature) add under 4 KB; 16 KiB is spare.
MAX_BODY = 2 * 256 * 1024 + 16 * 1024
TYPE_HEADER = "x-amz-sns-message-type"
_CONFIRMATION_KEYS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn",
                      "Type")
SIGNED_KEYS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": _CONFIRMATION_KEYS,
    "UnsubscribeConfirmation": _CONFIRMATION_KEYS,
}
_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
_ARN = re.compile(r"^arn:aws(?:-[a-z]+)*:sns:([a-z0-9-]{3,}):\d{12}:[A-Za-z0-9_.-]{1,256}\Z")
_CERT_FILE = re.compile(r"^/[A-Za-z0-9_.-]+\.pem\Z")


def precheck(headers: Mapping[str, str], topic_arns: str | Sequence[str]) -> None:
    """What the headers alone can refuse, before the body is read: no topic configured, or
    not an SNS delivery (SNS names the message's type in ``x-amz-sns-message-type``)."""
    if not secrets_list(topic_arns):
        raise NotConfigured("ses webhook: ses_sns_topic_arns is not set")
    if header(headers, TYPE_HEADER) not in SIGNED_KEYS:
        raise BadSignature(f"ses webhook: no SNS message type in {TYPE_HEADER}")


def read_envelope(body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """The SNS message, its signed fields checked for presence and type (SNS posts text/plain)."""
    envelope = load_json(body, PROVIDER)
    if not isinstance(envelope, dict) or not isinstance(envelope.get("Type"), str) \
            or envelope["Type"] not in SIGNED_KEYS:
        raise MalformedPayload("ses webhook: not an SNS message")
    if envelope.get("Subject") is None:
        envelope.pop("Subject", None)  # null, as Lambda-style deliveries send it, is absent
    for key in SIGNED_KEYS[envelope["Type"]]:
        if key != "Subject" and not isinstance(envelope.get(key), str):
            raise MalformedPayload(f"ses webhook: SNS field {key} missing")
    for name, key in ((TYPE_HEADER, "Type"), ("x-amz-sns-message-id", "MessageId")):
        value = header(headers, name)
        if value and value != envelope[key]:
            raise MalformedPayload(f"ses webhook: {name} does not match the body's {key}")
    return envelope


def string_to_sign(envelope: Mapping[str, Any]) -> bytes:
    keys = SIGNED_KEYS[envelope["Type"]]
    return "".join(f"{k}\n{envelope[k]}\n" for k in keys if k in envelope).encode("utf-8")


def topic_region(topic_arn: str) -> str:
    match = _ARN.match(topic_arn)
    if match is None:
        raise MalformedPayload("ses webhook: TopicArn is not an SNS topic ARN")
    return match[1]


def check_topic(envelope: Mapping[str, Any], topic_arns: str | Sequence[str]) -> None:
    allowed = secrets_list(topic_arns)  # a list, or a comma-separated string
    if envelope["TopicArn"] not in allowed:
        raise UnknownTopic(f"ses webhook: topic {envelope['TopicArn']} is not in "
                           "ses_sns_topic_arns")


def aws_url(url: object, topic_arn: str, what: str, *, pem: bool) -> str:
    """``url`` if it is https on the SNS host of the topic's region, else BadSignature."""
    region = topic_region(topic_arn)
    hosts = {f"sns.{region}.amazonaws.com", f"sns.{region}.amazonaws.com.cn"}
    if not isinstance(url, str) or not _on_hosts(url, hosts, pem=pem):
        shape = "an https .pem URL" if pem else "an https URL"
        raise BadSignature(f"ses webhook: {what} is not {shape} on sns.{region}.amazonaws.com")
    return url


def _on_hosts(url: str, hosts: set[str], *, pem: bool) -> bool:
    """https on one of ``hosts``, port 443, no credentials; for a certificate, a ``.pem`` file
    and no query."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # an unclosed IPv6 bracket, a port that is not a number
        return False
    return (parts.scheme == "https" and parts.hostname in hosts and port in (None, 443)
            and not parts.username and not parts.password
            and not (pem and (parts.query or not _CERT_FILE.match(parts.path))))


def signing_cert_url(envelope: Mapping[str, Any]) -> str:
    url = envelope.get("SigningCertURL", envelope.get("SigningCertUrl"))
    return aws_url(url, envelope["TopicArn"], "SigningCertURL", pem=True)


def verify_signature(envelope: Mapping[str, Any], public_key: rsa.RSAPublicKey) -> None:
    algorithm = _HASHES.get(str(envelope.get("SignatureVersion")))
    if algorithm is None:
        raise BadSignature("ses webhook: SignatureVersion must be 1 or 2")
    try:
        signature = base64.b64decode(str(envelope.get("Signature", "")), validate=True)
        public_key.verify(signature, string_to_sign(envelope), padding.PKCS1v15(), algorithm())
    except (binascii.Error, ValueError, InvalidSignature):
        raise BadSignature("ses webhook: SNS signature does not match") from None


def verify(envelope: Mapping[str, Any], public_key: rsa.RSAPublicKey, *,
           topic_arns: str | Sequence[str], now: datetime,
           tolerance: timedelta = TOLERANCE) -> None:
    """Every check on a message whose certificate is at hand: topic, URL, signature, time."""
    check_topic(envelope, topic_arns)
    signing_cert_url(envelope)
    verify_signature(envelope, public_key)
    signed_at = from_iso(envelope["Timestamp"])
    if signed_at is None:
        raise MalformedPayload("ses webhook: SNS Timestamp is not an ISO 8601 time")
    check_window(signed_at, now, tolerance, PROVIDER)


def load_certificate(pem: bytes) -> rsa.RSAPublicKey:
    try:
        key = x509.load_pem_x509_certificate(pem).public_key()
    except ValueError:
        raise WebhookUnavailable("ses webhook: the SNS signing certificate is not PEM") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise WebhookUnavailable("ses webhook: the SNS signing certificate is not RSA")
    return key


class Certificates:
    """SNS signing certificates by URL, fetched once and kept.

    ``base_url`` (``ses_sns_cert_base_url``) fetches the same file name from a mirror instead:
    an ``http(s)://`` URL or a ``file://`` folder, for installs that cannot reach AWS.
    """

    def __init__(self, *, base_url: str = "", transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float = 5.0, max_entries: int = 64):
        self._base = base_url.strip().rstrip("/")
        self._client = httpx.AsyncClient(transport=transport, timeout=timeout,
                                         follow_redirects=False)
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        self._max = max_entries

    async def public_key(self, url: str) -> rsa.RSAPublicKey:
        key = self._keys.get(url)
        if key is None:
            key = load_certificate(await self._fetch(url))
            if len(self._keys) >= self._max:
                self._keys.pop(next(iter(self._keys)))
            self._keys[url] = key
        return key

    async def _fetch(self, url: str) -> bytes:
        name = urlsplit(url).path.rsplit("/", 1)[-1]
        if self._base.startswith("file://"):
            path = Path(unquote(urlsplit(self._base).path)) / name
            try:
                return path.read_bytes()
            except OSError as exc:
                raise WebhookUnavailable(f"ses webhook: cannot read {path}: "
                                         f"{exc.strerror}") from None
        source = f"{self._base}/{name}" if self._base else url
        try:
            response = await self._client.get(source)
        except httpx.HTTPError as exc:
            raise WebhookUnavailable(f"ses webhook: cannot fetch {source}: "
                                     f"{type(exc).__name__}") from None
        if response.status_code != 200:
            raise WebhookUnavailable(f"ses webhook: {source} answered {response.status_code}")
        return response.content

    async def aclose(self) -> None:
        await self._client.aclose()


async def authenticate(body: bytes, headers: Mapping[str, str], *,
                       topic_arns: str | Sequence[str], certificates: Certificates,
                       now: datetime, tolerance: timedelta = TOLERANCE) -> dict[str, Any]:
    """The verified SNS message; the topic and URL are checked before anything is fetched."""
    envelope = read_envelope(body, headers)
    check_topic(envelope, topic_arns)
    key = await certificates.public_key(signing_cert_url(envelope))
    verify(envelope, key, topic_arns=topic_arns, now=now, tolerance=tolerance)
    return envelope


async def confirm_subscription(envelope: Mapping[str, Any], client: httpx.AsyncClient) -> None:
    """Confirm an (already verified, allowed) SubscriptionConfirmation by GET of SubscribeURL."""
    url = aws_url(envelope.get("SubscribeURL"), envelope["TopicArn"], "SubscribeURL", pem=False)
    try:
        response = await client.get(url)
    except httpx.HTTPError as exc:
        raise WebhookUnavailable(f"ses webhook: confirming {envelope['TopicArn']} failed: "
                                 f"{type(exc).__name__}") from None
    if response.status_code != 200:
        raise WebhookUnavailable(f"ses webhook: confirming {envelope['TopicArn']}: SNS answered "
                                 f"{response.status_code}")
