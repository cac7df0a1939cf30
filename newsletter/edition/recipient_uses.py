"""Templates may only print recipient fields, never transform or test them.

The edition is rendered once; ``recipient.*`` renders as a marker that each message fills in
later (``placeholders``). So a filter on it (``{{ recipient.first_name|upper }}``) transforms the
marker, not the name, and would mail ``Hi @@NL...:FIRST_NAME@@,`` to everyone; a test
(``{% if recipient.name %}``) sees the marker, which is always there. ``check(env, name)``
finds such uses in a template's syntax tree, before rendering, and names the template and
line. (``placeholders.FieldTemplate.split`` catches whatever still alters a marker at run time.)
"""

from __future__ import annotations

from collections.abc import Iterator

import jinja2
from jinja2 import nodes

from ..errors import TemplateError
from .placeholders import RECIPIENT_FIELDS

# Filters that hand a marker on unchanged.
HARMLESS_FILTERS = frozenset({"e", "escape", "safe", "string"})
# Where a marker stands in for a value it cannot stand for.
_TESTING = (nodes.Test, nodes.Compare, nodes.Operand, nodes.Not, nodes.And, nodes.Or, nodes.For)


def check(env: jinja2.Environment, name: str) -> None:
    """Raise TemplateError at the first use of ``recipient.*`` that cannot work."""
    source, filename, _ = env.loader.get_source(env, name)
    try:
        tree = env.parse(source, name, filename)
    except jinja2.TemplateSyntaxError:
        return  # rendering reports it, with its line
    for problem, lineno in _problems(tree, None):
        raise TemplateError(f"{filename}:{lineno}: {problem}; recipient values are filled in "
                            "per message after rendering, so print them as they are")


def _problems(node: nodes.Node, parent: nodes.Node | None) -> Iterator[tuple[str, int]]:
    chain = _recipient_chain(node)
    if chain is not None:
        yield from _judge(chain, node, parent)
        return
    for child in node.iter_child_nodes():
        yield from _problems(child, node)


def _judge(chain: str, node: nodes.Node, parent: nodes.Node | None):
    field = chain.removeprefix("recipient.")
    lineno = node.lineno
    if not (field in RECIPIENT_FIELDS or _attribute(field)):
        if any(field.startswith(f"{known}.") for known in RECIPIENT_FIELDS) or (
                field.startswith("attributes.") and field.count(".") > 1):
            yield f"{chain}: a recipient field has no attributes or methods", lineno
        return  # an unknown field: rendering reports it, with its line
    if isinstance(parent, nodes.Filter) and parent.node is node:
        if parent.name not in HARMLESS_FILTERS:
            yield f"the filter '|{parent.name}' on {chain} cannot work", lineno
    elif (isinstance(parent, (nodes.If, nodes.CondExpr)) and parent.test is node) or \
            isinstance(parent, _TESTING):
        yield f"{chain} cannot be tested or compared in a template (it is never empty there)", \
            lineno


def _attribute(field: str) -> bool:
    head, dot, key = field.partition(".")
    return head == "attributes" and bool(dot) and "." not in key


def _recipient_chain(node: nodes.Node) -> str | None:
    """``recipient.a.b`` for a Getattr/Getitem chain rooted at the name ``recipient``."""
    parts: list[str] = []
    while isinstance(node, (nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr):
            parts.append(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            parts.append(node.arg.value)
        else:
            return None
        node = node.node
    if isinstance(node, nodes.Name) and node.name == "recipient" and parts:
        return ".".join(["recipient", *reversed(parts)])
    return None
