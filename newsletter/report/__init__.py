"""The edition report: what became of one week's send, on one self-contained page.

``gather.edition_report(config, week)`` reads the figures into an ``EditionReport``
(``model.py``), reusing the queries ``newsletter status`` and the feedback lines use, so
that the page and those commands agree; ``render.to_html`` and ``render.to_json`` present
it, the charts drawn by pygal (``charts.py``). The figures per part: ``domains.py``,
``growth.py``, ``unsubscribes.py``; ``sparkline.py`` is the terminal's one-line chart.
"""
