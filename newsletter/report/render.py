"""The edition report as one HTML page, or as JSON.

The page is the template ``report.html.j2`` (the project's ``templates_dir`` first, then the
package's, as for every template), autoescaped, with the charts inlined as SVG: one file that
needs nothing else, no script, no request anywhere.
"""

from __future__ import annotations

import json

import jinja2
from markupsafe import Markup

from ..edition.templates import template_loader
from . import charts
from .model import EditionReport

TEMPLATE = "report.html.j2"


def to_html(report: EditionReport, *, name: str, templates_dir: str = "templates") -> str:
    env = jinja2.Environment(loader=template_loader(templates_dir), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    drawn = {
        "funnel": charts.funnel_chart(report.funnel),
        "domains": charts.domains_chart(report.domains) if report.domains else "",
        "growth": charts.growth_chart(report.growth),
        "unsubscribes": charts.unsubscribes_chart(report.unsubscribes),
    }
    # pygal escapes the labels it writes (domains, weeks); the SVG goes in as it is.
    svg = {key: Markup(value) for key, value in drawn.items()}
    return env.get_template(TEMPLATE).render(report=report, charts=svg, name=name)


def to_json(report: EditionReport) -> str:
    return json.dumps(report.as_dict(), ensure_ascii=False, indent=2) + "\n"
