"""The report's charts as inline SVG, drawn by pygal.

pygal renders a chart to a string; these are made to sit inside a self-contained page: no
script (``js=[]``: pygal's tooltips would load one from its CDN; the inline script holding
their settings is taken out), no XML declaration, the
system's fonts, and the size as a viewBox only, so a chart takes the width of its column
(100% in the page's CSS) at 375 px as on paper. pygal's own comments (its name, its web
address, the date) are taken out: the page names no outside host.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .model import DomainFigures, EditionUnsubscribes, Funnel, WeekGrowth

_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
# pygal writes its config into a <script> for its tooltips even with js=[]; without the
# tooltip script nothing reads it.
_SCRIPT = re.compile(r"<script\b[^>]*?(?:/>|>.*?</script>)", re.DOTALL)
# The series colours, dark enough on white and told apart in grey on paper.
COLOURS = ("#1f5f8b", "#c0392b", "#7f8c8d", "#e67e22", "#27ae60", "#8e44ad")


def _config(**overrides: Any) -> Any:
    import pygal
    from pygal.style import Style

    style = Style(background="white", plot_background="white", foreground="#222",
                  foreground_strong="#111", foreground_subtle="#888",
                  font_family="system-ui, -apple-system, 'Segoe UI', sans-serif",
                  label_font_size=13, major_label_font_size=13, legend_font_size=14,
                  value_font_size=13, colors=COLOURS)
    config = pygal.Config(js=[], disable_xml_declaration=True, style=style, width=800,
                          height=360, legend_at_bottom=True, print_values=False,
                          show_y_guides=True, margin=12)
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def _svg(chart: Any) -> str:
    return _SCRIPT.sub("", _COMMENT.sub("", str(chart.render(is_unicode=True))))


def funnel_chart(funnel: Funnel) -> str:
    import pygal

    chart = pygal.HorizontalBar(_config(show_legend=False, print_values=True, height=400))
    steps = [("subscribers at start", funnel.subscribers_at_start), ("sent", funnel.sent),
             ("failed", funnel.failed), ("bounced (hard)", funnel.bounced_hard),
             ("bounced (soft)", funnel.bounced_soft), ("complained", funnel.complained),
             ("unsubscribed", funnel.unsubscribed)]
    # A horizontal bar chart draws its first label at the bottom: reversed, it reads down.
    chart.x_labels = [name for name, _ in reversed(steps)]
    chart.add("recipients", [value for _, value in reversed(steps)])
    return _svg(chart)


def domains_chart(found: Sequence[DomainFigures]) -> str:
    import pygal

    chart = pygal.HorizontalStackedBar(_config(height=max(200, 60 + 32 * len(found))))
    rows = list(reversed(found))
    chart.x_labels = [f.domain for f in rows]
    chart.add("bounced (hard)", [f.bounced for f in rows])
    chart.add("complained", [f.complained for f in rows])
    return _svg(chart)


def growth_chart(weeks: Sequence[WeekGrowth]) -> str:
    import pygal

    chart = pygal.Bar(_config(x_label_rotation=-45))
    chart.x_labels = [w.week for w in weeks]
    chart.add("joined", [w.joined for w in weeks])
    chart.add("confirmed", [w.confirmed for w in weeks])
    chart.add("left", [w.left for w in weeks])
    return _svg(chart)


def unsubscribes_chart(editions: Sequence[EditionUnsubscribes]) -> str:
    import pygal

    days = len(editions[-1].by_day) if editions else 0
    chart = pygal.Line(_config(dots_size=3))
    chart.x_labels = [f"day {n}" for n in range(1, days + 1)]
    for edition in editions:
        chart.add(edition.week, list(edition.by_day))
    return _svg(chart)
