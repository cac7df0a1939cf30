"""Fuzzing every field that reaches a header, through the door it comes in by: the config (name,
from_name, from_address, reply_to), the edition's front matter (headline, subject) and the
subscriber's address and name. The invariant: one clear error, or a message that parses with
exactly the headers it should have, every line within limits, the text decoded back."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from newsletter.audience.addresses import parse_address
from newsletter.audience.recipient import Recipient
from newsletter.config import load_config
from newsletter.edition import frontmatter
from newsletter.edition.placeholders import FieldTemplate
from newsletter.errors import NewsletterError
from newsletter.message.mime import MessageBuilder
from newsletter.message.model import Personalized
from newsletter.message.outgoing import sender_of

# Anything at all, weighted towards what breaks headers: line breaks of every kind, NUL,
# quotes, "=?", colons, angle brackets, long runs, non-ASCII.
HOSTILE = st.sampled_from(["\r", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\x85", "\u2028",
                           "\u2029", "\x00", "\t", '"', "\\", "=?utf-8?q?x?=", ": ", "<", ">",
                           "Bcc: victim@example.com", "\u2019", "\U0001f680", "\u65e5", " "])
hostile = st.lists(st.text(max_size=12) | HOSTILE, max_size=8).map("".join)
# Printable text of every script, with the characters headers treat specially.
printable = st.lists(
    st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=12)
    | st.sampled_from(['"', "\\", "=?utf-8?q?x?=", ": ", "\u2019", "\U0001f680", " "]),
    min_size=1, max_size=8).map("".join)
FIELDS = ("name", "from_name", "headline", "to_name")
EXPECTED = ["From", "Subject", "MIME-Version", "Content-Type", "Date", "To", "Message-ID",
            "List-Id", "Reply-To"]
BODY = FieldTemplate(literals=("Hi\n",), fields=())
FUZZ = settings(max_examples=150, deadline=2000,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def config_with(tmp_path: Path, **values: str):
    path = tmp_path / "newsletter.toml"
    path.write_text("", encoding="utf-8")
    environ = {f"NEWSLETTER_{k.upper()}": v for k, v in values.items()}
    return load_config(path, environ=environ)


@FUZZ
@given(values=st.fixed_dictionaries({f: printable for f in FIELDS}),
       odd=st.none() | st.sampled_from(FIELDS), odd_value=hostile,
       local=st.sampled_from(["ada", "x.y+z", "o'neil"]),
       domain=st.sampled_from(["example.com", "b\u00fccher.example", "stra\u00dfe.de"]))
def test_any_input_is_a_clear_error_or_a_clean_message(tmp_path, values, odd, odd_value,
                                                       local, domain):
    if odd is not None:
        values[odd] = odd_value
    name, from_name, headline, to_name = (values[f] for f in FIELDS)
    try:
        config = config_with(tmp_path, name=name, from_name=from_name,
                             from_address=f"news@{domain}", reply_to=f"r@{domain}")
        meta = frontmatter.parse(Path("edition.md"), f"headline: {_yaml_quote(headline)}",
                                 {"headline": True})
        address = parse_address(f"{_phrase(to_name)} <{local}@{domain}>")
        builder = MessageBuilder(sender_of(config), f"{config.name} | {meta['headline']}",
                                 BODY, BODY)
        person = Personalized(recipient=Recipient(1, address.email, address.name or ""),
                              email=f"{local}@{_ascii(domain)}", name=address.name or "",
                              values={}, html_values={},
                              headers={"List-Id": f"{config.name} <l.example.com>"},
                              message_id="<1@example.com>")
        data = builder.build(person)
    except NewsletterError as exc:
        assert "\n" not in str(exc) and "\r" not in str(exc)
        event(f"refused: {type(exc).__name__}")
        return
    event("a message")
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    msg = email.message_from_bytes(data, policy=policy.default)
    assert sorted(msg.keys()) == sorted(EXPECTED), "no header added, none lost"
    assert str(msg["Subject"]) == f"{config.name} | {meta['headline']}"
    assert msg["To"].addresses[0].addr_spec == f"{local}@{_ascii(domain)}"


def _yaml_quote(value: str) -> str:
    """A YAML double-quoted scalar holding ``value`` exactly (control characters escaped, as
    an editor's YAML file could hold them)."""
    escaped = "".join(c if c.isprintable() and c not in '"\\' else f"\\U{ord(c):08x}"
                      for c in value)
    return f'"{escaped}"'


def _phrase(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"' if name else ""


def _ascii(domain: str) -> str:
    from newsletter.audience.addresses import ascii_domain

    return ascii_domain(domain)
