"""caniemail.com's feature data: which email clients support which HTML and CSS features.

A dated copy ships in ``data/caniemail.json`` (where it came from: ``data/README.md``);
``refresh`` replaces it with the current file, all or nothing.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

import httpx

from ..errors import NewsletterError

DATA_FILE = Path(__file__).resolve().parent / "data" / "caniemail.json"
SOURCE_URL = "https://www.caniemail.com/api/data.json"
FAMILIES = {"gmail": "Gmail", "outlook": "Outlook", "apple-mail": "Apple Mail"}
MAX_BYTES = 32 * 1024 * 1024
_PROPERTY = re.compile(r"^-?-?[a-z]+(?:-[a-z]+)*$")


class CatalogError(NewsletterError):
    """The feature data is missing, malformed, or could not be downloaded."""


@dataclass(frozen=True)
class Support:
    """One platform's latest tested support: level y (yes), a (partial), n (no), u (unknown)."""

    platform: str
    version: str
    level: str
    notes: tuple[str, ...] = ()


class Catalog:
    def __init__(self, data: dict, source: str = ""):
        try:
            self.updated = str(data["last_update_date"])
            features = {f["slug"]: f for f in data["data"]}
            self.platform_names: dict[str, str] = dict(data["nicenames"]["platform"])
        except (KeyError, TypeError) as exc:
            raise CatalogError(f"{source or 'caniemail data'}: not caniemail's feature data "
                               f"(missing {exc})") from None
        self._features = features
        self._properties = _property_index(features)

    @classmethod
    def from_file(cls, path: Path, source: str = "") -> Catalog:
        source = source or str(path)
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise CatalogError(f"{source}: cannot read: {exc.strerror}") from None
        except ValueError as exc:
            raise CatalogError(f"{source}: not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise CatalogError(f"{source}: not caniemail's feature data")
        return cls(data, source)

    @property
    def updated_on(self) -> date:
        return date.fromisoformat(self.updated[:10])

    def has(self, slug: str) -> bool:
        return slug in self._features

    def title(self, slug: str) -> str:
        return self._features[slug]["title"]

    def url(self, slug: str) -> str:
        return self._features[slug].get("url") or f"https://www.caniemail.com/features/{slug}/"

    def css_property(self, name: str) -> str | None:
        """The feature a CSS property belongs to: margin-top and margin are both css-margin."""
        if name in self._properties:
            return self._properties[name]
        sides = [p for p in name.split("-") if p not in ("top", "right", "bottom", "left")]
        return self._properties.get("-".join(sides))

    def support(self, slug: str, family: str) -> list[Support]:
        feature = self._features[slug]
        notes = feature.get("notes_by_num") or {}
        out = []
        for platform, versions in (feature["stats"].get(family) or {}).items():
            if not versions:
                continue
            version = list(versions)[-1]  # versions are listed oldest first
            value = str(versions[version])
            refs = re.findall(r"#(\d+)", value)
            out.append(Support(platform, version, value[:1],
                               tuple(notes[r] for r in refs if r in notes)))
        return out


def _property_index(features: dict[str, dict]) -> dict[str, str]:
    """CSS property name -> feature slug, from the slugs, then titles and keywords."""
    index: dict[str, str] = {}
    css = {slug: f for slug, f in features.items() if f.get("category") == "css"}
    for slug in css:
        index[slug[len("css-"):]] = slug
    for slug, feature in css.items():
        names = re.split(r"[,&]", feature.get("title") or "")
        names += (feature.get("keywords") or "").split(",")
        for name in names:
            name = name.strip().lower()
            if _PROPERTY.match(name) and ("-" in name or name in ("gap", "left", "right",
                                                                  "top", "bottom", "inset")):
                index.setdefault(name, slug)
    return index


@lru_cache(maxsize=4)
def _cached(path: str, mtime_ns: int) -> Catalog:
    return Catalog.from_file(Path(path))


def load(path: Path = DATA_FILE) -> Catalog:
    """The catalog at ``path``, parsed once per version of the file."""
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read: {exc.strerror}") from None
    return _cached(str(path), mtime)


def refresh(dest: Path = DATA_FILE, *, url: str = SOURCE_URL,
            client: httpx.Client | None = None, timeout: float = 30.0) -> Catalog:
    """Download the current data to a temporary file beside ``dest``, check it, rename it in.

    Any failure (HTTP status, network, a file that is not the feature data) raises
    CatalogError and leaves ``dest`` as it was.
    """
    dest = Path(dest)
    try:
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as exc:
        raise CatalogError(f"{dest}: cannot write there: {exc.strerror}") from None
    own = client is None
    client = client or httpx.Client(timeout=timeout, follow_redirects=True)
    try:
        with os.fdopen(fd, "wb") as out:
            _download(client, url, out)
        catalog = Catalog.from_file(Path(tmp), source=url)
        os.replace(tmp, dest)
        return catalog
    finally:
        if own:
            client.close()
        if os.path.exists(tmp):
            os.unlink(tmp)


def _download(client: httpx.Client, url: str, out) -> None:
    try:
        with client.stream("GET", url) as response:
            if response.status_code != 200:
                body = response.read()[:300].decode("utf-8", "replace").strip()
                raise CatalogError(f"{url}: HTTP {response.status_code}: {body or '(empty)'}")
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_BYTES:
                    raise CatalogError(f"{url}: more than {MAX_BYTES // 2**20} MB; not the "
                                       "feature data")
                out.write(chunk)
    except httpx.HTTPError as exc:
        raise CatalogError(f"{url}: download failed: {exc}") from None
