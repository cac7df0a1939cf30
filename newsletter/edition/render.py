"""Render an Edition once: Jinja2 -> MJML -> HTML with CSS inlined, plus the plain-text part.

Templates live in ``templates_dir``: ``edition.mjml.j2`` (autoescaped), ``edition.txt.j2`` and
``edition.css``. Classes carry the styling: css-inline applies ``edition.css`` to the HTML MJML
produces, keeping MJML's own ``<style>`` blocks and every ``@media`` rule, because the mobile
layout lives there. (mjml-python ignores ``mj-style inline="inline"``, hence css-inline.)
"""

from __future__ import annotations

import hashlib
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import jinja2
from markupsafe import Markup

from ..config import Config
from ..errors import TemplateError
from . import markdown as mdtext
from .content import Edition, load_edition, resolve_week
from .placeholders import FieldTemplate, RecipientMarkers

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


def render_edition(config: Config, edition: Edition) -> RenderedEdition:
    templates_dir = Path(config.templates_dir)
    if not templates_dir.is_dir():
        raise TemplateError(
            f"templates folder not found: {templates_dir} (config key 'templates_dir')"
        )
    env = _environment(templates_dir)
    nonce = _nonce(edition, templates_dir)
    context = _context(config, edition, RecipientMarkers(nonce))
    mjml_source = _render_template(env, HTML_TEMPLATE, context)
    text = _render_template(env, TEXT_TEMPLATE, context)
    html = _ascii(_inline_css(_mjml_to_html(mjml_source), templates_dir / CSS_FILE))
    html_t = FieldTemplate.split(html, nonce)
    text_t = FieldTemplate.split(_tidy_text(text), nonce)
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


def _environment(templates_dir: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        undefined=jinja2.StrictUndefined,
        autoescape=lambda name: bool(name) and not name.endswith(".txt.j2"),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _nonce(edition: Edition, templates_dir: Path) -> str:
    """A marker prefix that depends on every input, so content cannot contain it."""
    digest = hashlib.sha256()
    paths = [edition.folder / "edition.md", *(item.path for item in edition.items)]
    paths += sorted(p for p in templates_dir.iterdir() if p.is_file())
    for path in paths:
        digest.update(path.read_bytes())
    return "nl" + digest.hexdigest()[:12]


def _context(config: Config, edition: Edition, recipient: RecipientMarkers) -> dict:
    items = [
        SimpleNamespace(
            title=item.title,
            take=item.take,
            source=item.source,
            url=item.url,
            body_html=_lead_into_body(item.title, mdtext.to_html(item.body)),
            body_text=mdtext.to_text(item.body),
        )
        for item in edition.items
    ]
    return {
        "newsletter": SimpleNamespace(
            name=config.name,
            from_name=config.from_name or config.name,
            postal_address=config.postal_address,
            base_url=config.base_url.rstrip("/"),
        ),
        # A namespace, not a dict: ``edition.items`` must not resolve to dict.items.
        "edition": SimpleNamespace(
            week=edition.week,
            headline=edition.headline,
            dek=edition.dek,
            intro_html=Markup(mdtext.to_html(edition.intro)),
            intro_text=mdtext.to_text(edition.intro),
            items=items,
        ),
        "subject": edition.subject or f"{config.name} | {edition.headline}",
        "preheader": edition.preheader or edition.dek,
        "recipient": recipient,
    }


def _lead_into_body(title: str, body_html: str) -> Markup:
    """Open the item's first paragraph with its bold lead sentence."""
    lead = Markup('<strong class="lead-sentence">{}</strong>').format(title)
    if body_html.startswith("<p>"):
        return Markup('<p class="lead">') + lead + Markup(" " + body_html[3:])
    return Markup('<p class="lead">') + lead + Markup("</p>\n" + body_html)


def _render_template(env: jinja2.Environment, name: str, context: dict) -> str:
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateNotFound:
        folder = Path(env.loader.searchpath[0])
        raise TemplateError(f"template not found: {folder / name}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{exc.filename or name}:{exc.lineno}: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"{_template_location(exc, name)}: {exc.message}") from None


def _template_location(exc: BaseException, name: str) -> str:
    """Jinja rewrites tracebacks so template frames carry the template's file and line."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(".j2")]
    if frames:
        return f"{frames[-1].filename}:{frames[-1].lineno}"
    return name


def _mjml_to_html(source: str) -> str:
    import mjml

    try:
        return mjml.mjml2html(source)
    except Exception as exc:  # mjml-python raises plain exceptions for invalid MJML
        raise TemplateError(f"{HTML_TEMPLATE}: MJML could not render it: {exc}") from None


def _inline_css(html: str, css_path: Path) -> str:
    import css_inline

    extra_css = css_path.read_text(encoding="utf-8") if css_path.is_file() else None
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
