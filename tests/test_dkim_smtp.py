"""DKIM over the SMTP path: messages signed by the transport, sent through a real aiosmtpd
server (which un-stuffs the dots), verify with dkimpy against a stub DNS answer; a whole
``send`` signs every message; without keys nothing is signed."""

from __future__ import annotations

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from newsletter.audience.recipient import Recipient
from newsletter.errors import ConfigError
from newsletter.providers._dkim import dns_record
from newsletter.providers.base import OutcomeKind
from tests.seeding import readers, seed
from tests.smtp_servers import Handler, send, smtp_config, transport_for
from tests.transport_fixtures import make_outgoing

pytest_plugins = ("tests.smtp_fixtures",)  # certs, start_server, handler, starttls_port

SELECTOR = "mail2026"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def key_file(tmp_path, key):
    path = tmp_path / "dkim.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    return path


def dns_for(key, domain: str):
    record = dns_record(key).encode("ascii")
    wanted = f"{SELECTOR}._domainkey.{domain}.".encode("ascii")

    def get_txt(name: bytes, timeout: float = 5):
        return record if name == wanted else None

    return get_txt


# Readers whose values land at the start of a quoted-printable line: a name that starts with
# a dot is stuffed on the wire and un-stuffed by the server, inside the signed body.
BATCH = [
    Recipient(id=1, email="ada@example.com", name=".Ada Dotted"),
    Recipient(id=2, email="jose@bücher.example", name="José “Pepe” Núñez 🎉"),
    Recipient(id=3, email="zoe@example.org", name="..Zoë"),
]


async def test_signed_messages_survive_an_smtp_round_trip_and_verify(
        project, handler, starttls_port, certs, key, key_file):
    config = smtp_config(project, starttls_port, dkim_selector=SELECTOR,
                         dkim_private_key=str(key_file))
    outgoing = make_outgoing(config)
    transport = transport_for(config, certs)
    try:
        results = await send(transport, outgoing, BATCH)
    finally:
        await transport.aclose()

    assert [r.kind for r in results] == [OutcomeKind.SENT] * 3, [r.reason for r in results]
    dns = dns_for(key, "fivethings.example.com")
    dotted = 0
    for item in handler.messages:
        content = item["content"]
        assert content.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;")
        assert dkim.verify(content, dnsfunc=dns), item["to"]
        dotted += any(line.startswith(b".") for line in content.split(b"\r\n"))
        # What the server got is what was signed: a changed byte of the body fails.
        assert not dkim.verify(content.replace(b"Every week", b"Every  weak", 1), dnsfunc=dns)
    assert dotted >= 2, "the names put lines that start with a dot into the signed bodies"


def test_a_whole_send_over_smtp_signs_every_message(project, database_url,
                                                          start_server, key):
    from newsletter.delivery.send import SendOptions, send_edition
    from tests.sending import WEEK, guarded, send_deps
    from tests.smtp_servers import FakeClock
    from tests.test_smtp_send import smtp_send_config

    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode("ascii")
    handler = Handler(pipelining=True)
    port = start_server(handler)
    emails = readers(30)
    seed(database_url, emails)
    config = smtp_send_config(project, database_url, port, dkim_selector=SELECTOR,
                              dkim_private_key=pem + "\n")
    clock = FakeClock()
    result = guarded(send_edition, config, WEEK, SendOptions(interactive=False),
                     deps=send_deps(client={"clock": clock, "sleep": clock.sleep}))

    assert result.counts == {"sent": 30}
    dns = dns_for(key, "fivethings.example.com")
    assert sorted(m["to"][0] for m in handler.messages) == sorted(emails)
    assert all(dkim.verify(m["content"], dnsfunc=dns) for m in handler.messages)


async def test_without_dkim_keys_nothing_is_signed(project, handler, starttls_port, certs):
    config = smtp_config(project, starttls_port)
    transport = transport_for(config, certs)
    try:
        await send(transport, make_outgoing(config), BATCH[:1])
    finally:
        await transport.aclose()
    assert b"DKIM-Signature" not in handler.messages[0]["content"]


def test_an_unreadable_key_stops_the_transport_with_one_line(project, tmp_path, certs):
    config = smtp_config(project, 2525, dkim_selector=SELECTOR,
                         dkim_private_key=str(tmp_path / "nowhere.pem"))
    with pytest.raises(ConfigError, match=r"config key 'dkim_private_key' names .*nowhere\.pem"
                                          r", which cannot be read"):
        transport_for(config, certs)
