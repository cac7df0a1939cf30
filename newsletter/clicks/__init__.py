"""Click counts per item link, without tracking people (``click_counts``).

The links come from the render (``edition.click_links``): one signed token per link of an
item, the same in every reader's message. Here a fetch of one is judged (``fetches.py``: a
HEAD, a prefetch or a known scanner's user agent, the list in ``data/scanner_agents.txt``
read by ``scanners.py``), held a moment so that a burst of one client's fetches can be told
apart (``burst.py``), and added to the link's two counters, ``clicks`` and ``filtered``
(``counter.py``, written by ``store.py``). Who fetched is known only in memory, as a keyed
hash held for seconds; the database holds the counters alone. ``store.py`` also reads them
back for the report and ``/metrics``.
"""
