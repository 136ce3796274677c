"""Each DUO consent code explained in one plain sentence, for participants, researchers and committees.

DUO's own definitions are written for curators ("This data use modifier indicates that ..."); people
deciding about their data or their project need a sentence they can act on. The sentences are gettext
messages, so every language of the portal explains the codes in its own words. A code without a sentence
here falls back to its DUO label, never to nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from genoshare.duo.codes import ConsentCode, parse_code
from genoshare.duo.errors import DuoError
from genoshare.portal.i18n import N_

#: Shorthand -> sentence; ``%(value)s`` is the code's parameter (a disease, a place, a date) in words.
SENTENCES = {
    "NRES": N_("Anyone may use the data for any purpose; there are no restrictions."),
    "GRU": N_("The data may be used for any kind of research, including research outside health and medicine."),
    "HMB": N_("The data may be used only for health, medical or biomedical research."),
    "DS": N_("The data may be used only for research on %(value)s."),
    "POA": N_("The data may be used only to study population origins or ancestry."),
    "RS": N_("The data may be used only for the research named: %(value)s."),
    "NMDS": N_("The data may not be used to develop general research methods unrelated to the allowed purpose."),
    "GSO": N_("The data may be used only for genetic studies."),
    "NPUNCU": N_("The data may be used only by not-for-profit organisations, and not for commercial purposes."),
    "PUB": N_("Researchers must publish or share their results."),
    "COL": N_("Researchers must collaborate with the team that collected the data."),
    "IRB": N_("Researchers need an approval from an ethics committee before using the data."),
    "GS": N_("The data may be used only in %(value)s."),
    "MOR": N_("Results may not be published before %(value)s."),
    "TS": N_("The data may be used only for a limited time: %(value)s."),
    "US": N_("The data may be used only by the people named: %(value)s."),
    "PS": N_("The data may be used only in the project named: %(value)s."),
    "IS": N_("The data may be used only by the institutions named: %(value)s."),
    "RTN": N_("Researchers must return their derived or enriched data to the resource."),
    "CC": N_("The data may also be used for the clinical care of patients."),
    "NPOA": N_("The data may not be used to study population origins or ancestry."),
    "NPU": N_("The data may be used only by not-for-profit organisations."),
    "NCU": N_("The data may not be used for commercial purposes."),
}
#: Said of a value-less code whose sentence needs one (a DS without its disease).
UNNAMED = N_("the terms set by the data access committee")


def explain(code: str | ConsentCode, gettext: Callable[[str], str]) -> str:
    """One sentence for ``code`` (``"DS:MONDO:0005015"``, ``"NCU"``), translated by ``gettext``."""
    try:
        parsed = code if isinstance(code, ConsentCode) else parse_code(code)
    except DuoError:
        return str(code)
    sentence = SENTENCES.get(parsed.shorthand)
    if sentence is None:
        return parsed.label
    value = parsed.parameter_label or parsed.parameter or gettext(UNNAMED)
    return gettext(sentence) % {"value": value} if "%(value)s" in sentence else gettext(sentence)
