"""``newsletter check``: the preflight report on an edition before it goes out.

``run_checks(inputs)`` takes plain values (``CheckInputs``) and returns a ``Report``;
``project.build_inputs(config, week)`` makes those inputs from this project's edition.
Rules live one area to a module: content, markers, links, images, clients, message, spam,
domain.
"""

from .checks import DEFAULT_SPAM, run_checks
from .findings import Finding, Report, Severity
from .inputs import CheckInputs, Settings
from .output import to_json, to_text

__all__ = [
    "DEFAULT_SPAM", "CheckInputs", "Finding", "Report", "Settings", "Severity", "run_checks",
    "to_json", "to_text",
]
