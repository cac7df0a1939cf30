"""DKIM signatures (RFC 6376) on the messages the SMTP transport hands to a relay itself.

The API providers sign with the keys their dashboards set up; over SMTP nobody does unless
this project does (or the relay is configured to). ``DkimSigner.header(message)`` returns the
``DKIM-Signature`` field for a complete, unstuffed message: rsa-sha256, relaxed/relaxed, ``h=``
covering the fields a receiver and RFC 8058 care about (List-Unsubscribe and its -Post must be
signed for one-click unsubscribe to be honoured).

dkimpy parses the header section, selects the signed fields and hashes them in the order
RFC 6376 prescribes (the parts that are easy to get subtly wrong), and verifies in the tests.
Three steps of its ``sign()`` are replaced, because together they cost about 9 ms a message,
twenty times what a whole message costs to build: its RSA is pure Python (7 ms; the key
held by ``cryptography`` signs through OpenSSL in about 0.3 ms), and its relaxed
canonicalization runs regular expressions that match every single space (0.7 ms on a 30 KB
edition). ``relaxed_body`` and ``relaxed_headers`` give the same bytes (property tests hold
them to dkimpy's) by finding only the runs of two or more spaces, and hand anything with a
tab or trailing white space, which quoted-printable bodies never have, to dkimpy's own.

Nothing can be signed once per edition: the body hash covers the reader's name and
unsubscribe link, and the header hash their To, Message-ID and List-Unsubscribe. What is done
once is everything else: the key is loaded and checked, and the fixed tags are formatted.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Callable
from pathlib import Path

import dkim
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from dkim.canonicalization import (
    CanonicalizationPolicy,
    correct_empty_body,
    strip_trailing_lines,
)

from ..config import DNS_NAME, Config
from ..errors import ConfigError

# Signed once each; those in OVERSIGNED once more, so that a second instance added on the way
# (a second From, another List-Unsubscribe) breaks the signature instead of riding on it. A
# field named here that a message lacks (Reply-To) may then not be added either.
SIGNED = ("from", "reply-to", "to", "subject", "date", "message-id", "mime-version",
          "content-type", "list-id", "list-unsubscribe", "list-unsubscribe-post")
OVERSIGNED = ("from", "subject", "list-unsubscribe", "list-unsubscribe-post")
MIN_BITS = 1024     # what receivers accept at all (RFC 8301); 2048 is what they recommend
WIDTH = 78          # folded lines of the signature field stay within this

_RELAXED = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
_RUN = re.compile(b" +")
_ODD_SPACE = re.compile(rb"[\t\n\r\x0b\x0c]")


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 section 3.4.4 "relaxed" body canonicalization, as dkimpy computes it."""
    if b"\t" in body or b" \r\n" in body or body.endswith(b" "):
        canonical: bytes = _RELAXED.canonicalize_body(body)
        return canonical
    canonical = correct_empty_body(strip_trailing_lines(_squeeze(body)))
    return canonical


def _squeeze(body: bytes) -> bytes:
    """Each run of two or more spaces as one space. A quoted-printable body has a handful of
    runs in tens of kilobytes, so finding them beats a regular expression's scan."""
    find, run = body.find, _RUN.match
    at = find(b"  ")
    if at < 0:
        return body
    parts, start = [], 0
    while at >= 0:
        parts.append(body[start:at + 1])
        spaces = run(body, at)
        assert spaces is not None  # "  " was found right here
        start = spaces.end()
        at = find(b"  ", start)
    parts.append(body[start:])
    return b"".join(parts)


def relaxed_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """RFC 6376 section 3.4.2 "relaxed" header canonicalization of dkimpy's parsed headers,
    as dkimpy computes it: names lower-cased, values unfolded, runs of white space one space,
    trimmed. A value with a tab or another control character goes through dkimpy's own."""
    out: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        unfolded = value.replace(b"\r\n", b"")
        if _ODD_SPACE.search(unfolded):
            out.extend(_RELAXED.canonicalize_headers([(name, value)]))
        else:
            out.append((name.lower().rstrip(), b" ".join(unfolded.split()) + b"\r\n"))
    return out


def body_hash(body: bytes) -> bytes:
    return base64.b64encode(hashlib.sha256(relaxed_body(body)).digest())


def check_selector(selector: str) -> None:
    if not DNS_NAME.match(selector):
        raise ValueError(f"a DKIM selector is a DNS name, not {selector!r}")


def load_private_key(value: str, base_dir: Path, origin: str) -> rsa.RSAPrivateKey:
    """``dkim_private_key``: a PEM itself, or the path of a PEM file (relative to the config's
    folder). ConfigError naming the key, and the file where there is one, never the key."""
    def bad(why: str) -> ConfigError:
        return ConfigError(f"config key 'dkim_private_key' {why} ({origin})")

    if value.lstrip().startswith("-----BEGIN"):
        pem, where = value.encode("ascii", "replace"), "the PEM given"
    else:
        path = Path(value).expanduser()
        path = path if path.is_absolute() else base_dir / path
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise bad(f"names {path}, which cannot be read: {exc.strerror}") from None
        where = str(path)
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise bad(f"is encrypted ({where}); give the key without a passphrase") from None
    except (ValueError, UnsupportedAlgorithm):
        raise bad(f"is not a PEM private key ({where})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise bad(f"must be an RSA key ({where}); rsa-sha256 is what every receiver checks")
    if key.key_size < MIN_BITS:
        raise bad(f"is a {key.key_size}-bit RSA key ({where}); receivers ignore signatures "
                  f"under {MIN_BITS} bits, 2048 is recommended")
    return key


def signer_for(config: Config) -> DkimSigner | None:
    """The signer ``config`` asks for (``dkim_private_key`` set), else None."""
    if not config.dkim_private_key:
        return None
    from ..audience.addresses import ascii_domain

    key = load_private_key(config.dkim_private_key, config.base_dir,
                           config.origin("dkim_private_key"))
    domain = ascii_domain(config.dkim_domain) if config.dkim_domain else config.sender_domain
    return DkimSigner(key, selector=config.dkim_selector, domain=domain)


def dns_record(key: rsa.RSAPrivateKey) -> str:
    """The TXT record to publish at ``<selector>._domainkey.<domain>`` for ``key``."""
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode('ascii')}"


class DkimSigner:
    """Signs messages for one domain and selector with one key."""

    def __init__(self, key: rsa.RSAPrivateKey, *, selector: str, domain: str,
                 clock: Callable[[], float] = time.time):
        check_selector(selector)
        self.key = key
        self.selector = selector
        self.domain = domain
        self._clock = clock
        names = (*SIGNED, *OVERSIGNED)
        self._include = tuple(n.encode("ascii") for n in names)
        # The tags every signature shares, folded once; t=, bh= and b= follow per message.
        self._head = _fold([b"DKIM-Signature:"], [
            b"v=1;", b"a=rsa-sha256;", b"c=relaxed/relaxed;", b"d=" + domain.encode("ascii") + b";",
            b"s=" + selector.encode("ascii") + b";", b"h=" + b":".join(self._include) + b";"])

    def header(self, message: bytes) -> bytes:
        """The ``DKIM-Signature`` field (CRLF-terminated) for ``message``, which must be the
        message exactly as the receiver will see it (so: before dot-stuffing)."""
        head, blank, body = message.partition(b"\r\n\r\n")
        if not blank:
            raise ValueError("a message without a blank line after its header")
        headers, _ = dkim.rfc822_parse(head + b"\r\n\r\n")
        tags = [b"t=%d;" % int(self._clock()), b"bh=" + body_hash(body) + b";", b"b="]
        unsigned = b"\r\n".join(_fold(list(self._head), tags))
        hasher = hashlib.sha256()
        dkim.hash_headers(hasher, _RELAXED, relaxed_headers(headers),
                          self._include, (b"DKIM-Signature", unsigned[len(b"DKIM-Signature:"):]),
                          None)
        signature = self.key.sign(hasher.digest(), padding.PKCS1v15(),
                                  Prehashed(hashes.SHA256()))
        return _append_b(unsigned, base64.b64encode(signature))

    def sign(self, message: bytes) -> bytes:
        """``message`` with its signature field in front."""
        return self.header(message) + message


def _fold(lines: list[bytes], tags: list[bytes]) -> list[bytes]:
    """``lines`` (the field so far) with ``tags`` added, a line broken between tags when it
    would grow past WIDTH; the h= list may also break after its colons (the verifier strips
    white space around the names)."""
    for tag in tags:
        for j, piece in enumerate(_pieces(tag)):
            glue = b" " if j == 0 else b""
            if len(lines[-1]) + len(glue) + len(piece) > WIDTH:
                lines.append(b"")
                glue = b" "
            lines[-1] += glue + piece
    return lines


def _pieces(tag: bytes) -> list[bytes]:
    if not tag.startswith(b"h="):
        return [tag]
    names = tag.split(b":")
    return [n + b":" for n in names[:-1]] + [names[-1]]


def _append_b(unsigned: bytes, value: bytes) -> bytes:
    """The signature after ``b=``, wrapped: white space inside b= is ignored (RFC 6376 3.5)."""
    room = max(WIDTH - len(unsigned.rpartition(b"\r\n")[2]), 8)
    out = [unsigned + value[:room]]
    for start in range(room, len(value), WIDTH - 1):
        out.append(b" " + value[start:start + WIDTH - 1])
    return b"\r\n".join(out) + b"\r\n"
