"""Rules on what the reader sees first: HTML size, the text part, subject and preheader."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from .findings import Finding, error, note, warning
from .htmlscan import Document

KB = 1024
GMAIL_CLIP = 102 * KB     # Gmail shows "[Message clipped]" past this much HTML
SIZE_WARNING = 90 * KB
TEXT_SIMILARITY = 0.8     # share of the words the HTML and text parts should have in common
SUBJECT_MAX = 70          # most inboxes cut the subject line around here
PREHEADER_MAX = 150       # previews show 40 to 140 characters; more is never seen
_URL = re.compile(r"(?:https?|mailto):\S+", re.I)
_WORD = re.compile(r"\w+")


def check_size(html: str) -> list[Finding]:
    size = len(html.encode("utf-8"))
    shown = f"{size / KB:.1f} KB"
    fix = "Shorten or drop an item, or move long pieces to the web and link to them."
    if size > GMAIL_CLIP:
        return [error("content.html-size",
                      f"The HTML is {shown}: Gmail clips messages over 102 KB, hiding the rest "
                      "and the unsubscribe link.", fix)]
    if size > SIZE_WARNING:
        return [warning("content.html-size",
                        f"The HTML is {shown}, close to Gmail's 102 KB clipping limit.", fix)]
    return []


def check_text_part(doc: Document, text: str) -> list[Finding]:
    if not text.strip():
        return [error("content.text-missing", "The message has no plain-text part.",
                      "Keep edition.txt.j2 in the templates folder; some readers and filters "
                      "need it.")]
    share = similarity(doc.text, text)
    if share < TEXT_SIMILARITY:
        return [warning("content.text-differs",
                        f"The text part shares only {share:.0%} of its words with the HTML "
                        "part; filters treat parts that differ as a spam sign.",
                        "Make edition.txt.j2 carry the same items as the HTML template.")]
    return []


def similarity(html_text: str, text: str) -> float:
    """Words in common over the longer part's word count (links left out, case folded)."""
    a, b = _words(html_text), _words(text)
    longest = max(sum(a.values()), sum(b.values()))
    return sum((a & b).values()) / longest if longest else 1.0


def _words(text: str) -> Counter:
    return Counter(_WORD.findall(_URL.sub(" ", text).casefold()))


def check_subject(subject: str) -> list[Finding]:
    if not subject.strip():
        return [error("content.subject-empty", "The subject is empty.",
                      "Give the edition a headline or a subject in edition.md.")]
    bad = control_characters(subject)
    if bad:
        return [error("content.subject-control", f"The subject contains {bad}.",
                      "Remove it from the headline or subject in edition.md.")]
    if len(subject) > SUBJECT_MAX:
        return [warning("content.subject-long",
                        f"The subject is {len(subject)} characters; inboxes cut it at about "
                        f"{SUBJECT_MAX}, phones at about 40.",
                        "Shorten the headline or set a shorter subject in edition.md.")]
    return []


def check_preheader(preheader: str, subject: str) -> list[Finding]:
    fix_where = "Set preheader (or dek) in edition.md."
    if not preheader.strip():
        return [warning("content.preheader-missing",
                        "There is no preheader: inboxes show the first words of the body "
                        "instead.", fix_where)]
    bad = control_characters(preheader)
    if bad:
        return [error("content.preheader-control", f"The preheader contains {bad}.",
                      "Remove it from preheader (or dek) in edition.md.")]
    if len(preheader) > PREHEADER_MAX:
        return [warning("content.preheader-long",
                        f"The preheader is {len(preheader)} characters; inboxes show at most "
                        "about 140.", "Shorten preheader (or dek) in edition.md.")]
    if preheader.strip().casefold() == subject.strip().casefold():
        return [note("content.preheader-repeats",
                     "The preheader repeats the subject, wasting the preview line.", fix_where)]
    return []


_CONTROL_NAMES = {"\r": "CR", "\n": "LF", "\t": "tab", "\v": "VT", "\0": "NUL",
                  "\u2028": "line separator", "\u2029": "paragraph separator"}


def control_characters(value: str) -> str:
    """Name the first control or line-separator character in ``value``, or ''."""
    for char in value:
        if unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            code = f"U+{ord(char):04X}"
            name = _CONTROL_NAMES.get(char)
            return f"a control character ({name}, {code})" if name else \
                f"a control character ({code})"
    return ""
