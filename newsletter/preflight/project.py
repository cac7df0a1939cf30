"""Preflight inputs from this project: render the week and build one message for a made-up
reader, exactly as a send would.

This is the only module of the preflight package that imports the rest of ``newsletter``;
the rules themselves take plain values (see inputs.py).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from ..audience.recipient import Recipient
from ..config import Config
from ..edition.content import Edition, load_edition, resolve_week
from ..edition.markdown import images
from ..edition.render import render_edition
from ..message.outgoing import prepare
from ..providers._dkim import dns_record, signer_for
from . import caniemail
from .caniemail import Catalog
from .checks import DEFAULT_SPAM, Scorer, run_checks
from .findings import Report
from .inputs import CheckInputs, Settings, SourceImage

SAMPLE_READER = Recipient(id=0, email="reader@example.com", name="Sample Reader")
# The project's own copy of the client data, beside newsletter.toml: where
# `newsletter check --refresh-client-data` writes (an installed package may be read-only),
# and what `check` reads before the copy shipped in the package.
CLIENT_DATA = "caniemail.json"


def check_week(config: Config, week: str | None = None, *, dns: bool = False, resolver=None,
               spam: Scorer | None = DEFAULT_SPAM, client_data: Path | None = None,
               today: date | None = None) -> Report:
    """The preflight report on the week's edition, as `newsletter check` and `send` run it."""
    return run_checks(build_inputs(config, week), dns=dns, resolver=resolver, spam=spam,
                      catalog=client_catalog(config, client_data), today=today)


def check_week_hashed(config: Config, week: str | None = None) -> tuple[Report, str]:
    """``check_week`` as a send runs it, and the content hash of the edition it checked (a
    verdict is remembered only for what was really checked, ``verdicts``)."""
    inputs = build_inputs(config, week)
    return run_checks(inputs, catalog=client_catalog(config)), inputs.content_hash


def client_data_file(config: Config) -> Path:
    return config.base_dir / CLIENT_DATA


def client_catalog(config: Config, path: Path | None = None) -> Catalog | None:
    """``path``, else the project's copy if there is one; None: the shipped copy (which
    run_checks loads, and reports on if it is missing)."""
    if path is None:
        path = client_data_file(config)
        if not path.exists():
            return None
    return caniemail.load(Path(path))


def settings_from(config: Config, *, dkim_selector: str = "",
                  dkim_public_key: str = "") -> Settings:
    return Settings(
        base_url=config.base_url,
        from_address=config.from_address,
        reply_to=config.reply_to,
        postal_address=config.postal_address,
        unsubscribe_mailto=config.unsubscribe_mailto,
        dkim_selector=dkim_selector or config.dkim_selector,
        dkim_public_key=dkim_public_key,
        provider=config.provider,
    )


def build_inputs(config: Config, week: str | None = None, *, dkim_selector: str = "",
                 reader: Recipient = SAMPLE_READER) -> CheckInputs:
    """The week's edition (default: the current week) as ``reader`` would get it: signed
    as the SMTP transport signs it, where it does."""
    edition = load_edition(config.items_dir, resolve_week(week, config.timezone))
    rendered = render_edition(config, edition)
    outgoing = prepare(config, rendered)
    person = outgoing.personalize(reader)
    message = outgoing.message(person)
    signer = signer_for(config) if config.provider == "smtp" else None
    public_key = ""
    if signer is not None:
        message = signer.sign(message)
        public_key = dns_record(signer.key).rpartition("p=")[2]
    return CheckInputs(
        html=rendered.html.fill(person.html_values),
        text=rendered.text.fill(person.values),
        subject=outgoing.subject,
        preheader=rendered.preheader,
        message=message,
        settings=settings_from(config, dkim_selector=dkim_selector,
                               dkim_public_key=public_key),
        label=f"{rendered.week}: {rendered.subject}",
        content_hash=rendered.content_hash,
        images=source_images(config, edition),
    )


def source_images(config: Config, edition: Edition) -> tuple[SourceImage, ...]:
    """The images the intro and each item write in Markdown, each with its file's path as
    the project knows it (relative to newsletter.toml's folder where it can be)."""
    sources = [(edition.folder / "edition.md", edition.intro),
               *((item.path, item.body) for item in edition.items)]
    return tuple(SourceImage(_shown(config, path), src, alt)
                 for path, text in sources for src, alt in images(text))


def _shown(config: Config, path: Path) -> str:
    try:
        return str(path.resolve().relative_to(config.base_dir.resolve()))
    except ValueError:  # items_dir outside the project
        return str(path)
