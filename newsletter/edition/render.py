"""Render an Edition once: Jinja2 -> MJML -> HTML with CSS inlined, plus the plain-text part.

Templates are ``edition.mjml.j2`` (autoescaped), ``edition.txt.j2`` and ``edition.css``, each
taken from ``templates_dir`` when the project has it, else from the package (``templates.py``).
Classes carry the styling: css-inline applies ``edition.css`` to the HTML MJML produces,
keeping MJML's own ``<style>`` blocks and every ``@media`` rule: the mobile layout and the
dark-mode colours live there. (mjml-python ignores ``mj-style inline="inline"``, hence css-inline.)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import jinja2
from markupsafe import Markup

from ..config import Config
from ..errors import TemplateError
from . import markdown as mdtext
from . import masthead, recipient_uses, template_errors
from .click_links import ItemLinks
from .content import Edition, Item, load_edition, resolve_week
from .placeholders import FieldTemplate, RecipientMarkers, WebReader
from .templates import edition_sources, read_file, template_loader, where

HTML_TEMPLATE = "edition.mjml.j2"
TEXT_TEMPLATE = "edition.txt.j2"
CSS_FILE = "edition.css"


@dataclass(frozen=True)
class RenderedEdition:
    week: str
    subject: str
    preheader: str
    html: FieldTemplate
    text: FieldTemplate
    content_hash: str

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(self.html.fields) | frozenset(self.text.fields)


def render_week(config: Config, week: str | None) -> RenderedEdition:
    """Load the week's folder (default: the current week) and render it."""
    week = resolve_week(week, config.timezone)
    return render_edition(config, load_edition(config.items_dir, week))


def render_edition(config: Config, edition: Edition, audience: str = "email") -> RenderedEdition:
    """``audience="web"`` renders the archive's web version: no recipient fields at all (the
    templates see ``web`` true, and a ``recipient`` whose link is the sign-up page)."""
    env = _environment(_templates_dir(config))
    nonce = _nonce(edition, env)
    web = audience == "web"
    reader = WebReader(_links(config)["subscribe_url"]) if web else RecipientMarkers(nonce)
    context = _context(config, edition, reader)
    mjml_source = _render_template(env, HTML_TEMPLATE, context)
    text = _render_template(env, TEXT_TEMPLATE, context)
    html = _ascii(_inline_css(_mjml_to_html(mjml_source), env))
    html_t = FieldTemplate.split(html, nonce, _filename(env, HTML_TEMPLATE))
    text_t = FieldTemplate.split(_tidy_text(text), nonce, _filename(env, TEXT_TEMPLATE))
    digest = hashlib.sha256()
    for part in (context["subject"], html, text):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return RenderedEdition(
        week=edition.week,
        subject=context["subject"],
        preheader=context["preheader"],
        html=html_t,
        text=text_t,
        content_hash=digest.hexdigest(),
    )


def render_message(config: Config, html_template: str, text_template: str,
                   context: dict) -> tuple[str, str]:
    """Any template pair (e.g. the sign-up confirmation) through the edition's path: Jinja2
    -> MJML -> HTML with ``edition.css`` inlined, and the tidied text part. The templates see
    ``newsletter`` as editions do, plus ``context``; values are final (no placeholders)."""
    env = _environment(_templates_dir(config))
    context = {"newsletter": _newsletter(config), "web": False, **context}
    mjml_source = _render_template(env, html_template, context)
    text = _render_template(env, text_template, context)
    html = _ascii(_inline_css(_mjml_to_html(mjml_source, html_template), env))
    return html, _tidy_text(text)


def _templates_dir(config: Config) -> Path:
    """The project's templates; a file missing there (or the whole folder) is the package's."""
    return Path(config.templates_dir)


def _links(config: Config) -> dict[str, str]:
    """The web app's public pages, for templates (empty where there is no base_url)."""
    base = config.base_url.rstrip("/")
    archive = f"{base}/archive" if base and config.archive else ""
    return {"subscribe_url": f"{base}/subscribe" if base else "", "archive_url": archive}


def _newsletter(config: Config) -> SimpleNamespace:
    return SimpleNamespace(
        name=config.name,
        from_name=config.from_name or config.name,
        postal_address=config.postal_address,
        base_url=config.base_url.rstrip("/"),
        **_links(config),
    )


def _environment(templates_dir: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=template_loader(templates_dir),
        undefined=jinja2.StrictUndefined,
        autoescape=lambda name: bool(name) and not name.endswith(".txt.j2"),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _nonce(edition: Edition, env: jinja2.Environment) -> str:
    """A marker prefix that depends on every input, so content cannot contain it.

    The inputs are the week's files and the templates the edition is made from (its two
    templates, what they include, and the stylesheet), not every file in the templates
    folder: editing a web page or the report must not make a running send's content
    "changed"."""
    digest = hashlib.sha256()
    paths = [edition.folder / "edition.md", *(item.path for item in edition.items)]
    for path in paths:
        digest.update(path.read_bytes())
    for _name, source in edition_sources(env, (HTML_TEMPLATE, TEXT_TEMPLATE), CSS_FILE):
        digest.update(source.encode("utf-8"))
    return "nl" + digest.hexdigest()[:12]


def _filename(env: jinja2.Environment, name: str) -> str:
    """Where a template was found (the project's copy or the package's), for errors."""
    return read_file(env.loader, name)[1]


def _context(config: Config, edition: Edition,
             recipient: RecipientMarkers | WebReader) -> dict:
    counted = config.click_counts and not isinstance(recipient, WebReader)
    items = [_item(item, number, _item_links(config, edition, item, number) if counted else None)
             for number, item in enumerate(edition.items, 1)]
    archive = _links(config)["archive_url"]
    day = masthead.week_monday(edition.week)
    first_week = config.first_week or masthead.first_week_in(config.items_dir)
    return {
        "newsletter": _newsletter(config),
        # A namespace, not a dict: ``edition.items`` must not resolve to dict.items.
        "edition": SimpleNamespace(
            week=edition.week,
            # The masthead: the week's Monday, the issue number (None before the first week).
            date=day,
            date_text=masthead.date_text(day),
            issue=masthead.issue_number(edition.week, first_week, config.issue_start),
            # "View in your browser": this edition's page in the archive, when it is on.
            archive_url=f"{archive}/{edition.week}" if archive else "",
            headline=edition.headline,
            dek=edition.dek,
            intro_html=Markup(mdtext.to_html(edition.intro)),
            intro_text=mdtext.to_text(edition.intro),
            items=items,
        ),
        "subject": edition.subject or f"{config.name} | {edition.headline}",
        "preheader": edition.preheader or edition.dek,
        "recipient": recipient,
        "web": isinstance(recipient, WebReader),
    }


def _item(item: Item, number: int, links: ItemLinks | None) -> SimpleNamespace:
    """What the templates see of an item. ``url`` is where its source link goes (its counted
    link with ``click_counts``), ``original_url`` the address as written, to show."""
    return SimpleNamespace(
        title=item.title,
        take=item.take,
        source=item.source,
        body_html=_lead_into_body(item.title, mdtext.to_html(item.body, link=links)),
        body_text=mdtext.to_text(item.body, link=links),
        # After the body: the body's links are numbered first, in both parts alike.
        url=links(item.url) if links and item.url else item.url,
        original_url=item.url,
        number=number,
    )


def _item_links(config: Config, edition: Edition, item: Item, number: int) -> ItemLinks:
    """The item's counted links: one edition-wide rewrite, the same for every reader."""
    return ItemLinks(config.base_url, config.signing_key, edition.week, number, item.path)


def _lead_into_body(title: str, body_html: str) -> Markup:
    """Open the item's first paragraph with its bold lead sentence."""
    lead = Markup('<strong class="lead-sentence">{}</strong>').format(title)
    if body_html.startswith("<p>"):
        return Markup('<p class="lead">') + lead + Markup(" " + body_html[3:])
    return Markup('<p class="lead">') + lead + Markup("</p>\n" + body_html)


def _render_template(env: jinja2.Environment, name: str, context: dict) -> str:
    try:
        recipient_uses.check(env, name)
        return env.get_template(name).render(context)
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"template not found: {exc.name} (in {where(env.loader)})") from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{exc.filename or name}:{exc.lineno}: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(template_errors.undefined_message(exc, name)) from None


def _mjml_to_html(source: str, template: str = HTML_TEMPLATE) -> str:
    import mjml

    try:
        return mjml.mjml2html(source)
    except Exception as exc:  # mjml-python raises plain exceptions for invalid MJML
        raise TemplateError(f"{template}: MJML could not render it: {exc}") from None


def _inline_css(html: str, env: jinja2.Environment) -> str:
    import css_inline

    extra_css = read_file(env.loader, CSS_FILE)[0]
    inliner = css_inline.CSSInliner(
        keep_style_tags=True,
        keep_at_rules=True,
        load_remote_stylesheets=False,
        extra_css=extra_css,
    )
    return inliner.inline(html)


def _ascii(html: str) -> str:
    """Non-ASCII characters as numeric references (&#8217;): the same page in a browser, and
    Python keeps each of the send's many filled-in copies at one byte a character, not two."""
    return html.encode("ascii", "xmlcharrefreplace").decode("ascii")


def _tidy_text(text: str) -> str:
    """Strip trailing spaces and collapse runs of blank lines the template leaves behind."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out) + "\n"
