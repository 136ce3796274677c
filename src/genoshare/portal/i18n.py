"""Languages of the portal: gettext catalogues under ``locale/<lang>/LC_MESSAGES/messages.po``.

The ``.po`` files are read and compiled in memory when the portal starts (Babel), rather than shipping
``.mo`` files: a translator adds or fixes a language by adding or editing one text file, with no build step
and no compiled copy that can fall behind its source. ``babel.cfg`` beside this module says where
``pybabel extract`` finds the messages (``docs/portal.md``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

DEFAULT = "en"
DOMAIN = "messages"


def N_(message: str) -> str:
    """Mark a message for translation where it is defined; it is translated where it is shown."""
    return message


@dataclass(frozen=True)
class Language:
    code: str
    #: The language's own name for itself, as a language switch shows it.
    name: str


@cache
def available() -> tuple[Language, ...]:
    """English, then every language with a catalogue, by code."""
    root = files("genoshare.portal").joinpath("locale")
    codes = sorted(entry.name for entry in root.iterdir() if entry.joinpath("LC_MESSAGES", f"{DOMAIN}.po").is_file())
    return tuple(Language(code, Locale.parse(code).get_display_name(code) or code) for code in [DEFAULT, *codes])


@cache
def translations(code: str) -> NullTranslations:
    if code == DEFAULT:
        return NullTranslations()
    source = files("genoshare.portal").joinpath("locale", code, "LC_MESSAGES", f"{DOMAIN}.po").read_bytes()
    catalog = read_po(io.BytesIO(source), locale=code, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def negotiate(accept_language: str | None) -> str:
    """The best language the portal has for an ``Accept-Language`` header (RFC 9110 12.5.4), else English."""
    codes = {language.code for language in available()}
    wanted: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and quality > 0:
            wanted.append((-quality, position, tag.lower()))
    for _, _, tag in sorted(wanted):
        primary = tag.split("-", 1)[0]
        if tag in codes:
            return tag
        if primary in codes:
            return primary
    return DEFAULT
