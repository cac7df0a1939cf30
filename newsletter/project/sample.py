"""The sample edition ``newsletter init`` puts in this week's folder: it renders as it is, and
it tells a new editor how the folder works."""

from __future__ import annotations

from .week_files import ItemData, WeekData

SAMPLE = WeekData(
    headline="Your First Edition",
    dek="What a week of this newsletter looks like, and how to make the next one",
    preheader="Three short notes on writing, previewing and sending your newsletter.",
    intro=(
        "This sample was written by `newsletter init`. Each week lives in a folder like this\n"
        "one: `edition.md` holds the headline and this intro, and every item is a Markdown\n"
        "file of its own. Change anything, then run `newsletter preview` to see the result."
    ),
    items=(
        ItemData(
            title="Every item is one Markdown file in the week’s folder.",
            body=(
                "The file name sets the order (`01-`, `02-`, ...). The lines between the two\n"
                "`---` markers hold the lead sentence, your take and the source; below them\n"
                "the body is Markdown, so *emphasis* and [links](https://example.org/) work."
            ),
            take="Small files make small diffs, so each edition’s history reads like a "
                 "changelog.",
            source="The newsletter’s README",
            url="https://example.org/newsletter/readme",
        ),
        ItemData(
            title="Preview it, then try it on yourself before anyone else.",
            body=(
                "`newsletter preview` writes the edition as HTML and plain text into\n"
                "`outbox/`. Add a few readers with `newsletter subscribers add` or `import`,\n"
                "write one message per reader with `newsletter send --dry-run`, and once a\n"
                "provider is configured, mail yourself a copy with\n"
                "`newsletter send --test --to you@example.com`."
            ),
            take="A dry run costs nothing and catches the typo in the subject line.",
        ),
        ItemData(
            title="Items can arrive as data from another program.",
            body=(
                "An assistant that summarised the team’s notes can hand the week over as\n"
                "JSON: `newsletter new --from items.json` checks it against the schema that\n"
                "`newsletter schema items` prints and writes the folder in one step.\n"
                "`newsletter new` on its own writes empty stubs for next week."
            ),
            take="Whoever writes the items, the edition is files in git, reviewed like any "
                 "other change.",
        ),
    ),
)
