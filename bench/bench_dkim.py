"""What DKIM signing adds to each message on the SMTP path, on the sample edition.

Compares, per message: personalize + MIME (the budget ``bench_personalize`` holds to 150 us),
the same plus our DKIM signature (RSA-2048, relaxed/relaxed) and dot-stuffing as the SMTP
transport sends it, the signature alone split into its RSA operation and the rest, and
dkimpy's own ``dkim.sign`` for scale. The SMTP sender's whole budget is 1.0 ms of CPU a
message (``bench_peers``).

    .venv/bin/python bench/bench_dkim.py [--messages N]
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from figures import figure

from newsletter.audience.recipient import Recipient
from newsletter.config import load_config
from newsletter.edition.render import render_week
from newsletter.message.outgoing import prepare
from newsletter.providers._dkim import SIGNED, DkimSigner, dns_record
from newsletter.providers._smtp_wire import unstuff

ROOT = Path(__file__).resolve().parent.parent


def per_message(fn, n: int) -> float:
    """Best of three runs of ``fn(i)`` for i in range(n), in microseconds per call."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for i in range(n):
            fn(i)
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=3000)
    args = parser.parse_args()
    n = args.messages
    config = load_config(ROOT / "newsletter.toml", environ={})
    outgoing = prepare(config, render_week(config, "2026-W47"))
    readers = [Recipient(id=i, email=f"reader{i}@example.com", name=f"José Número{i} 🎉")
               for i in range(1, 1001)]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer = DkimSigner(key, selector="bench", domain=config.sender_domain)

    def plain(i):
        return outgoing.message(outgoing.personalize(readers[i % 1000]), dot_stuffed=True)

    def signed(i):  # as the SMTP transport does it
        stuffed = outgoing.message(outgoing.personalize(readers[i % 1000]), dot_stuffed=True)
        return signer.header(unstuff(stuffed)) + stuffed

    messages = [outgoing.message(outgoing.personalize(r)) for r in readers]
    digest = hashlib.sha256(b"x").digest()

    def rsa_only(i):
        key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))

    base = per_message(plain, n)
    total = per_message(signed, n)
    header = per_message(lambda i: signer.header(messages[i % 1000]), n)
    rsa_cost = per_message(rsa_only, n)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    names = [h.encode() for h in SIGNED]
    stock = per_message(lambda i: dkim.sign(messages[i % 1000], b"bench", b"example.com", pem,
                                            canonicalize=(b"relaxed", b"relaxed"),
                                            include_headers=names), max(n // 30, 20))
    record = dns_record(key).encode()
    assert dkim.verify(unstuff(signed(0)),
                       dnsfunc=lambda name, timeout=5: record), "the signature must verify"

    size = len(messages[0]) / 1024
    print(f"sample message {size:.1f} KiB, {n} messages, best of 3")
    print(f"personalize + MIME (stuffed):          {base:7.1f} us/message")
    figure("personalize + MIME + DKIM signature (SMTP path)", total, "us/message",
           better="lower",
           line=f"  + DKIM signature (SMTP path):        {total:7.1f} us/message "
                f"(+{total - base:.1f} us)")
    figure("DKIM signature alone", header, "us/message", better="lower",
           line=f"DKIM signature alone:                  {header:7.1f} us/message")
    print(f"  of which the RSA-2048 operation:     {rsa_cost:7.1f} us (OpenSSL)")
    print(f"  canonicalize, hash, fold, the rest:  {header - rsa_cost:7.1f} us")
    figure("dkimpy's dkim.sign, for scale", stock, "us/message", better="lower",
           line=f"dkimpy's dkim.sign, for scale:         {stock:7.1f} us/message")
    print(f"signing is {(total - base) / 1000:.0%} of the SMTP sender's 1.0 ms CPU budget per "
          "message")


if __name__ == "__main__":
    main()
