"""The plain way to send a newsletter from Python: ``smtplib`` and ``EmailMessage``, one loop.

One connection; per recipient an ``EmailMessage`` with the text and HTML parts filled in by
``str.replace`` and a List-Unsubscribe header, sent with ``send_message``. Run by
``bench_peers.py`` as a process of its own, so its CPU time and memory are its own.

    python bench/peers/smtplib_loop.py --port PORT --edition edition.json --recipients list.tsv
"""

from __future__ import annotations

import argparse
import json
import smtplib
from email.message import EmailMessage
from pathlib import Path


def fill(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value)
    return template


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--edition", type=Path, required=True)
    parser.add_argument("--recipients", type=Path, required=True)
    args = parser.parse_args()
    edition = json.loads(args.edition.read_text(encoding="utf-8"))
    with smtplib.SMTP(args.host, args.port) as smtp, \
            args.recipients.open(encoding="utf-8") as lines:
        for line in lines:
            number, email, name = line.rstrip("\n").split("\t")
            url = f"{edition['base_url']}/unsubscribe/{number}"
            values = {"name": name, "first_name": name.split()[0], "email": email,
                      "unsubscribe_url": url,
                      "manage_url": f"{edition['base_url']}/manage/{number}"}
            msg = EmailMessage()
            msg["From"] = edition["from"]
            msg["To"] = f"{name} <{email}>"
            msg["Subject"] = edition["subject"]
            msg["List-Unsubscribe"] = f"<{url}>"
            msg.set_content(fill(edition["text"], values))
            msg.add_alternative(fill(edition["html"], values), subtype="html")
            smtp.send_message(msg)


if __name__ == "__main__":
    main()
