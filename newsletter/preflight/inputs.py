"""What the checks look at: plain values, so they run on any edition, real or hand-made."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    """The parts of the configuration the rules need."""

    base_url: str = ""
    from_address: str = ""
    reply_to: str = ""
    postal_address: str = ""
    unsubscribe_mailto: str = ""
    dkim_selector: str = ""
    dkim_public_key: str = ""  # the p= of the configured signing key, for the DNS check
    provider: str = ""         # "smtp": this project signs the messages itself

    @property
    def from_domain(self) -> str:
        return self.from_address.rpartition("@")[2].strip().rstrip(".")


@dataclass(frozen=True)
class SourceImage:
    """An image as an edition's Markdown writes it: the file, its ``src`` and the alt text
    the author wrote ("" for ``![](chart.png)``)."""

    file: str
    src: str
    alt: str


@dataclass(frozen=True)
class CheckInputs:
    """One edition as a reader gets it: filled in for one (made-up) recipient.

    ``html`` and ``text`` are the two body parts, ``message`` the complete message bytes
    those parts came from, as the provider would receive it.
    """

    html: str
    text: str
    subject: str
    preheader: str
    message: bytes
    settings: Settings
    label: str = ""
    content_hash: str = ""  # the rendered edition's, when these came from one
    images: tuple[SourceImage, ...] = ()  # in the items' (and the intro's) Markdown
