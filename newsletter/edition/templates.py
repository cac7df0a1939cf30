"""Where templates come from: the project's ``templates_dir`` first, then the package's own.

Every template a message or page is made from (the edition, the confirmation mail, the web
pages and their stylesheet) is looked up here, one file at a time: a project overrides only
the files it has, and a project without the folder uses the defaults: the repository's
top-level ``templates/``, shipped inside the package as ``newsletter.templates``.
``templates_dir`` naming a file rather than a folder is an error.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

import jinja2
from jinja2 import meta

from ..errors import TemplateError

# Web pages live in this subfolder, beside the mail templates.
WEB = "web"


@cache
def package_templates() -> Path:
    """The default templates shipped with the package.

    An installed wheel carries them as package data, ``newsletter/templates/``. An editable
    install (or a checkout on ``sys.path``) runs ``newsletter/`` from the repository, where
    they sit beside the package, in ``templates/``: setuptools maps that folder into the
    wheel, but its editable finder cannot graft a folder without an ``__init__.py`` into a
    regular package.
    """
    package = Path(str(resources.files("newsletter")))
    for folder in (package / "templates", package.parent / "templates"):
        if (folder / "edition.mjml.j2").is_file():
            return folder
    raise TemplateError(f"the package's default templates are missing (looked in "
                        f"{package / 'templates'} and {package.parent / 'templates'}); "
                        "reinstall the package")


def template_loader(templates_dir: str | Path, subfolder: str = "") -> jinja2.BaseLoader:
    """A Jinja loader over ``templates_dir/subfolder``, falling back file by file to the
    package's defaults (``subfolder`` is ``"web"`` for the web pages, ``""`` for mail)."""
    project = Path(templates_dir)
    if project.exists() and not project.is_dir():
        raise TemplateError(f"config key 'templates_dir' names {project}, which is a file; "
                            "it must be a folder (or not exist, for the package's templates)")
    return jinja2.ChoiceLoader([
        jinja2.FileSystemLoader(str(project / subfolder)),
        jinja2.FileSystemLoader(str(package_templates() / subfolder)),
    ])


def read_file(loader: jinja2.BaseLoader, name: str) -> tuple[str, str]:
    """The text of a non-template file (a stylesheet, a script) found as templates are, and
    where it came from."""
    try:
        source, filename, _ = loader.get_source(jinja2.Environment(), name)
    except jinja2.TemplateNotFound:
        raise TemplateError(f"template file not found: {name} (in {where(loader)})") from None
    return source, filename or name


def where(loader: jinja2.BaseLoader) -> str:
    """The folders a loader looks in, for error messages."""
    folders: list[str] = []
    for inner in getattr(loader, "loaders", [loader]):
        folders += [str(p) for p in getattr(inner, "searchpath", [])]
    return " or ".join(folders) or "the templates"


def edition_sources(env: jinja2.Environment, roots: tuple[str, ...],
                    *files: str) -> list[tuple[str, str]]:
    """(name, text) of the templates ``roots`` are made from: themselves and, transitively,
    what they include, import or extend, plus the plain ``files`` (a stylesheet) they read.
    A reference Jinja cannot resolve statically (a name computed at render time) falls back
    to every file the loader can see, so nothing an edition may use is left out."""
    assert env.loader is not None
    seen: dict[str, str] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            source = env.loader.get_source(env, name)[0]
        except jinja2.TemplateNotFound:
            continue  # the render itself reports it, naming the template
        seen[name] = source
        try:
            found = list(meta.find_referenced_templates(env.parse(source)))
        except jinja2.TemplateSyntaxError:
            continue
        if None in found:
            return list_sources(env.loader)
        todo.extend(n for n in found if n)
    for name in files:
        seen.setdefault(name, read_file(env.loader, name)[0])
    return sorted(seen.items())


def list_sources(loader: jinja2.BaseLoader) -> list[tuple[str, str]]:
    """(name, text) of every file the loader can see, project copies shadowing defaults."""
    env = jinja2.Environment()
    return [(name, loader.get_source(env, name)[0]) for name in sorted(loader.list_templates())]
