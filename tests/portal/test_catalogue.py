"""The portal's translation catalogues: a language is a .po file; nothing else is needed to add one.

Every message the portal's sources mark (Python ``N_``/``t`` and template ``_``, as ``pybabel extract``
finds them with ``babel.cfg``) must have a French translation, and each translation must keep the
message's ``%(name)s`` placeholders, or a page would show English or fail to render in French.
"""

from __future__ import annotations

import re
from importlib.resources import files

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from genoshare.portal import i18n

PORTAL = files("genoshare.portal")
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def source_messages() -> set[str]:
    method_map = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
    found = extract_from_dir(
        str(PORTAL), method_map, keywords={"_": None, "gettext": None, "ngettext": (1, 2), "N_": None, "t": (2,)}
    )
    messages = set()
    for _filename, _line, message, _comments, _context in found:
        messages.add(message if isinstance(message, str) else message[0])
    return messages


def french() -> dict[str, str]:
    with PORTAL.joinpath("locale", "fr", "LC_MESSAGES", "messages.po").open("rb") as handle:
        return {message.id: message.string for message in read_po(handle) if message.id}


def test_languages_are_english_and_french_and_compile() -> None:
    assert [language.code for language in i18n.available()] == ["en", "fr"]
    assert i18n.translations("fr").gettext("Sign in") == "Se connecter"


def test_every_portal_message_has_a_french_translation() -> None:
    translated = {key for key, value in french().items() if value}
    missing = sorted(source_messages() - translated)
    assert not missing, f"{len(missing)} messages have no French translation: {missing[:20]}"


def test_translations_keep_the_placeholders() -> None:
    for message, translation in french().items():
        if translation:
            assert sorted(PLACEHOLDER.findall(message)) == sorted(PLACEHOLDER.findall(translation)), message


def test_language_negotiation() -> None:
    assert i18n.negotiate("fr-CH, fr;q=0.9, en;q=0.8") == "fr"
    assert i18n.negotiate("de-DE, en;q=0.5") == "en"
    assert i18n.negotiate("de, fr;q=0.1") == "fr"
    assert i18n.negotiate(None) == "en"
    assert i18n.negotiate("fr;q=0, en") == "en"
