"""Polling a real IMAP server (Dovecot, started here with a throwaway config) for feedback mail."""

import contextlib
import grp
import imaplib
import ipaddress
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from newsletter.feedback.classify import MailKind
from newsletter.feedback.events import EventKind, MailboxError
from newsletter.feedback.mailbox import PROCESSED_FOLDER, SKIPPED_FLAG, mailbox_name, poll

DATA = Path(__file__).parent / "data" / "feedback"
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
PASSWORD = "pässwörd-“🔑”"
FIXTURES = ["postfix-bounce.eml", "exim-bounce.eml", "gmail-bounce.eml", "arf-redacted.eml",
            "mailto-unsubscribe.eml", "out-of-office.eml"]
NO_MOVE = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ NAMESPACE UIDPLUS CHILDREN"


@dataclass
class Server:
    plain_port: int
    tls_port: int | None
    context: ssl.SSLContext | None  # trusts the server's generated certificate
    root: Path

    def client(self, user: str) -> imaplib.IMAP4:
        imap = imaplib.IMAP4("127.0.0.1", self.plain_port, timeout=10)
        imap.authenticate("PLAIN", lambda _: f"\0{user}\0{PASSWORD}".encode())
        return imap


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _certificate(root: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (root / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (root / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return ssl.create_default_context(cafile=str(root / "cert.pem"))


def _config(root: Path, user: pwd.struct_passwd, plain: int, tls: int | None) -> str:
    ssl_lines = (f"ssl = yes\nssl_cert = <{root}/cert.pem\nssl_key = <{root}/key.pem\n"
                 if tls else f"ssl = no\nimap_capability = {NO_MOVE}\n")
    group = user.pw_gid
    return f"""
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
default_internal_user = {user.pw_name}
default_internal_group = {_group_name(group)}
default_login_user = {user.pw_name}
disable_plaintext_auth = no
auth_mechanisms = plain login
# no delay after a failed login: a test fails one on purpose
auth_failure_delay = 0
{ssl_lines}
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = uid={user.pw_uid} gid={group} home={root}/home/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {plain}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls or 0}
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
"""


def _group_name(gid: int) -> str:
    return grp.getgrgid(gid).gr_name


@contextlib.contextmanager
def dovecot(*, tls: bool):
    """A Dovecot of our own: unprivileged, in a temporary folder, on free local ports."""
    if not Path(DOVECOT).exists():
        if os.environ.get("CI"):
            pytest.fail(f"dovecot is required in CI but {DOVECOT} is missing")
        pytest.skip("dovecot is not installed (Debian: dovecot-imapd)")
    # Run as ourselves; as root, as 'nobody' (Dovecot refuses to serve mail as root). The folder
    # is outside pytest's tmp_path, whose parents 'nobody' cannot enter.
    user = pwd.getpwuid(os.getuid()) if os.getuid() else pwd.getpwnam("nobody")
    root = Path(tempfile.mkdtemp(prefix="newsletter-dovecot-"))
    for sub in ("run", "state", "home"):
        (root / sub).mkdir()
    context = _certificate(root) if tls else None
    plain, tls_port = _free_port(), (_free_port() if tls else None)
    conf = root / "dovecot.conf"
    conf.write_text(_config(root, user, plain, tls_port), encoding="utf-8")
    if os.getuid() == 0:
        for path in [root, *root.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)
    as_user = {} if os.getuid() else {"user": user.pw_uid, "group": user.pw_gid,
                                      "extra_groups": []}
    proc = subprocess.Popen([DOVECOT, "-F", "-c", str(conf)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, **as_user)
    try:
        _wait_for_greeting(proc, plain, root)
        yield Server(plain, tls_port, context, root)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


def _wait_for_greeting(proc: subprocess.Popen, port: int, root: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
            pytest.fail(f"dovecot exited: {proc.stdout.read().decode()} {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.recv(100).startswith(b"* OK"):
                    return
        except OSError:
            time.sleep(0.05)  # not listening yet
    pytest.fail("dovecot did not start listening within 20 s")


@pytest.fixture(scope="module")
def server():
    with dovecot(tls=True) as running:
        yield running


@pytest.fixture(scope="module")
def plain_server():
    with dovecot(tls=False) as running:
        yield running


ARRIVED = datetime(2026, 11, 23, 11, 0, 30, tzinfo=UTC)


def append(server: Server, user: str, names: list[str], folder: str = "INBOX") -> None:
    imap = server.client(user)
    if folder != "INBOX":
        imap.create(mailbox_name(folder))
    for name in names:
        data = (DATA / name).read_bytes().replace(b"\n", b"\r\n")
        status, _ = imap.append(mailbox_name(folder), None, imaplib.Time2Internaldate(ARRIVED),
                                data)
        assert status == "OK"
    imap.logout()


def folder_state(server: Server, user: str, folder: str) -> list[tuple[bytes, bytes]]:
    """(flags, Message-ID header) of every mail in ``folder``."""
    imap = server.client(user)
    imap.select(mailbox_name(folder), readonly=True)
    _, data = imap.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    imap.logout()
    return [(item[0], item[1].strip()) for item in data if isinstance(item, tuple)]


def run_poll(server: Server, user: str, handle, **options):
    settings = {"host": "127.0.0.1", "username": user, "password": PASSWORD,
                "security": "tls", "port": server.tls_port, "ssl_context": server.context}
    settings.update(options)
    return poll(handle=handle, **settings)


def test_poll_over_tls_reads_reports_moves_them_and_leaves_other_mail(server):
    append(server, "tls-reader", FIXTURES)
    seen = []
    result = run_poll(server, "tls-reader", seen.append)
    assert [item.kind for item in seen] == [MailKind.DSN, MailKind.DSN, MailKind.DSN,
                                            MailKind.ARF, MailKind.UNSUBSCRIBE]
    assert [item.kind for item in result.processed] == [item.kind for item in seen]
    events = [e for item in seen for e in item.events]
    assert [(e.kind, e.recipient) for e in events] == [
        (EventKind.BOUNCED, "jose@xn--bcher-kva.example"),
        (EventKind.BOUNCED, "ana@example.net"), (EventKind.BOUNCED, "lucía@example.net"),
        (EventKind.BOUNCED, "nobody.here.2026@gmail.com"),
        (EventKind.COMPLAINED, ""),
        (EventKind.UNSUBSCRIBED, "jose@bücher.example"),
    ]
    unsubscribe = events[-1]
    assert unsubscribe.metadata == {"unsubscribe_token": "16.sk3rib8cnCNbldYlHS_ipg"}
    assert unsubscribe.occurred_at == ARRIVED  # the server's INTERNALDATE, not the mail's Date

    processed = folder_state(server, "tls-reader", PROCESSED_FOLDER)
    inbox = folder_state(server, "tls-reader", "INBOX")
    assert len(processed) == 5
    assert [mid for _, mid in inbox] == [b"Message-ID: <ooo-1@example.net>"]
    flags = inbox[0][0]
    assert SKIPPED_FLAG.encode() in flags and b"\\Seen" not in flags  # still unread for a person

    again = run_poll(server, "tls-reader", seen.append)
    assert (again.processed, again.skipped, again.failed) == ([], [], [])
    assert len(seen) == 5  # nothing handled twice


def test_a_mail_whose_handling_fails_stays_and_is_read_again(server):
    append(server, "flaky-reader", ["postfix-bounce.eml", "arf-redacted.eml"])

    def fail_on_dsn(item):
        if item.kind == MailKind.DSN:
            raise RuntimeError("database is down")

    first = run_poll(server, "flaky-reader", fail_on_dsn)
    assert [(item.kind, why) for item, why in first.failed] == [(MailKind.DSN, "database is down")]
    assert [item.kind for item in first.processed] == [MailKind.ARF]
    assert len(folder_state(server, "flaky-reader", "INBOX")) == 1

    seen = []
    second = run_poll(server, "flaky-reader", seen.append)
    assert [item.kind for item in second.processed] == [MailKind.DSN]
    assert seen[0].events[0].event_id == first.failed[0][0].events[0].event_id
    assert folder_state(server, "flaky-reader", "INBOX") == []


def test_starttls_with_non_ascii_folder_names(server):
    append(server, "starttls-reader", ["exim-bounce.eml", "out-of-office.eml"],
           folder="Rückläufer & Co")
    seen = []
    result = run_poll(server, "starttls-reader", seen.append, security="starttls",
                      port=server.plain_port, folder="Rückläufer & Co",
                      processed_folder="Verarbeitet ✓")
    assert [item.kind for item in result.processed] == [MailKind.DSN]
    assert [item.kind for item in result.skipped] == [MailKind.OTHER]
    assert len(folder_state(server, "starttls-reader", "Verarbeitet ✓")) == 1
    imap = server.client("starttls-reader")
    _, folders = imap.list()
    imap.logout()
    assert any(b'"R&APw-ckl&AOQ-ufer &- Co"' in f for f in folders)  # modified UTF-7


def test_no_tls_and_no_move_falls_back_to_copy_and_expunge(plain_server):
    append(plain_server, "plain-reader", ["postfix-delayed.eml", "out-of-office.eml"])
    result = poll(host="127.0.0.1", port=plain_server.plain_port, username="plain-reader",
                  password=PASSWORD, security="none", handle=lambda item: None)
    assert [item.events[0].kind for item in result.processed] == [EventKind.DEFERRED]
    inbox = folder_state(plain_server, "plain-reader", "INBOX")
    assert [mid for _, mid in inbox] == [b"Message-ID: <ooo-1@example.net>"]
    assert len(folder_state(plain_server, "plain-reader", PROCESSED_FOLDER)) == 1


def test_starttls_is_never_silently_skipped(plain_server):
    with pytest.raises(MailboxError, match="does not offer STARTTLS"):
        poll(host="127.0.0.1", port=plain_server.plain_port, username="u", password=PASSWORD,
             security="starttls", handle=lambda item: None)


def test_an_untrusted_certificate_is_refused(server):
    with pytest.raises(MailboxError, match="cannot connect.*CERTIFICATE_VERIFY_FAILED"):
        run_poll(server, "someone", lambda item: None, ssl_context=ssl.create_default_context())


def test_a_missing_folder_and_a_closed_port(server):
    with pytest.raises(MailboxError, match="cannot open folder 'Nowhere'"):
        run_poll(server, "folderless", lambda item: None, folder="Nowhere")
    with pytest.raises(MailboxError, match="cannot connect"):
        run_poll(server, "someone", lambda item: None, port=_free_port())
    with pytest.raises(MailboxError, match="imap_security"):
        run_poll(server, "someone", lambda item: None, security="ssl")


def test_a_wrong_password_is_one_line_without_the_password(plain_server):
    # Last, and on its own server: Dovecot slows down later logins from an address that failed.
    with pytest.raises(MailboxError) as info:
        poll(host="127.0.0.1", port=plain_server.plain_port, username="someone",
             password="wrong-“secret”", security="none", handle=lambda item: None)
    message = str(info.value)
    assert message == f"IMAP 127.0.0.1:{plain_server.plain_port}: login as 'someone' refused"
    assert "secret" not in message
