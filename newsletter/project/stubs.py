"""The files ``newsletter new`` writes for a week to be filled in by hand.

Each stub has every field the default template uses, empty, with a comment saying what it is
for. Empty means "not given", so a stub is not an edition yet: loading it says which required
field (the headline, an item's title and body) is still missing, and nothing half-written can
be sent.
"""

from __future__ import annotations

EDITION_STUB = """\
---
# One line each. Fill in the headline at least; an empty field is left out.
headline:   # required: the edition's title (the subject is "<name> | <headline>")
dek:        # a one-line standfirst under the headline
preheader:  # the inbox's preview text (default: the dek)
subject:    # replaces the default subject
---
"""

ITEM_STUB = """\
---
# Item {number}. One line each; the body goes below the closing line, in Markdown.
title:   # required: the bold lead sentence the item opens with
take:    # your view on it, set apart below the body ("Our take is that ...")
source:  # where it comes from (the link's text)
url:     # the source's address, https://...
---
"""


def stub_files(count: int) -> dict[str, str]:
    """``edition.md`` and ``count`` numbered item stubs (``01-item.md``, ...)."""
    width = max(2, len(str(count)))
    files = {"edition.md": EDITION_STUB}
    for number in range(1, count + 1):
        files[f"{number:0{width}d}-item.md"] = ITEM_STUB.format(number=number)
    return files
