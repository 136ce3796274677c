"""Rules for the primary permissions NRES, GRU, HMB, DS and POA.

DUO's class tree is GRU > HMB > DS (each narrower than its parent) with POA and NRES beside them.
Two cross-cutting readings apply to all but NRES:

* Clinical care is not research. DUO made GRU-CC obsolete by splitting it into GRU + CC, so clinical
  use needs the CC modifier next to the research permission.
* Methods development alone (a GRU-category purpose that develops methods) is allowed on narrower
  permissions unless the dataset carries NMDS: DUO names NMDS "no general methods research", which
  only means something if general methods research is otherwise allowed.
"""

from __future__ import annotations

from genoshare.duo.codes import ConsentCode
from genoshare.duo.context import Context, Rule, deny, permit, review
from genoshare.duo.decision import Finding
from genoshare.duo.purpose import PurposeCategory as P


def nres(code: ConsentCode, ctx: Context) -> list[Finding]:
    # DUO's editors note that users "usually still need to be researchers"; who may access is the
    # access layer's question (passports), not the consent code's.
    return [permit("NRES places no restriction on use")]


def gru(code: ConsentCode, ctx: Context) -> list[Finding]:
    purpose = ctx.purpose
    if purpose.primary is P.NRES:
        return [deny("GRU allows research use only; use outside research needs NRES")]
    # DUO's comment on GRU lists population origins/ancestry and methods development as included.
    extras = [
        text
        for flag, text in (
            (purpose.studies_ancestry, "population origins or ancestry research"),
            (purpose.methods_development, "methods and algorithms development"),
        )
        if flag
    ]
    including = f", including {' and '.join(extras)}" if extras else ""
    return [permit(f"GRU allows any research purpose{including}"), *_clinical_care(code, ctx)]


def hmb(code: ConsentCode, ctx: Context) -> list[Finding]:
    purpose = ctx.purpose
    if purpose.primary in (P.HMB, P.DS):
        scope = [permit(f"HMB allows {purpose.primary.describe()}")]
    else:
        scope = _outside_scope(code, ctx, "HMB allows only health/medical/biomedical research")
    return [*scope, *_ancestry_exclusion(code, ctx), *_clinical_care(code, ctx)]


def ds(code: ConsentCode, ctx: Context) -> list[Finding]:
    """Judges the DS codes together: each purpose disease must fall under at least one of them."""
    purpose = ctx.purpose
    consented = f"DS {ctx.disease(code.parameter or '')}"
    if purpose.primary is not P.DS:
        scope = _outside_scope(code, ctx, f"{consented} allows only research on that disease")
    else:
        scope = _disease_scope(code, ctx, consented)
    return [*scope, *_ancestry_exclusion(code, ctx), *_clinical_care(code, ctx)]


def poa(code: ConsentCode, ctx: Context) -> list[Finding]:
    if ctx.purpose.primary is P.POA:
        scope = [permit("POA allows population origins or ancestry research")]
    else:
        scope = _outside_scope(code, ctx, "POA allows only population origins or ancestry research")
    return [*scope, *_clinical_care(code, ctx)]


def _disease_scope(code: ConsentCode, ctx: Context, consented: str) -> list[Finding]:
    allowed = code.parameter or ""
    others = [c.parameter for c in ctx.codes if c.shorthand == "DS" and c != code and c.parameter]
    findings: list[Finding] = []
    for disease in ctx.purpose.diseases:
        if ctx.mondo.is_a(disease, allowed):
            findings.append(permit(f"{consented} includes {ctx.disease(disease)}"))
        elif any(ctx.mondo.is_a(disease, other) for other in others):
            continue
        elif ctx.mondo.is_a(allowed, disease):
            findings.append(
                deny(f"{ctx.disease(disease)} is broader than {consented}; only that disease and its subtypes")
            )
        else:
            findings.append(deny(f"{consented} does not include {ctx.disease(disease)}"))
    return findings or [permit(f"{consented} is not needed: other DS codes cover the purpose")]


def _outside_scope(code: ConsentCode, ctx: Context, allows: str) -> list[Finding]:
    purpose = ctx.purpose
    if purpose.primary is P.GRU and purpose.methods_development:
        if ctx.has("NMDS"):
            return [deny(f"{allows}, and NMDS forbids methods development beyond it")]
        return [permit(f"methods development is allowed beyond {code.shorthand}'s scope: the dataset has no NMDS")]
    return [deny(f"{allows}; the purpose is {purpose.primary.describe()}")]


def _ancestry_exclusion(code: ConsentCode, ctx: Context) -> list[Finding]:
    """HMB (and DS, a kind of HMB) "does not include the study of population origins or ancestry".

    A POA purpose is denied by the scope check; health research that also studies ancestry might be
    using ancestry as a covariate or studying it, which only a person can tell.
    """
    if ctx.purpose.population_ancestry and ctx.purpose.primary is not P.POA:
        return [
            review(
                f"requires review: {code.shorthand} excludes the study of population origins or ancestry; "
                "explain how the ancestry analysis serves the health question"
            )
        ]
    return []


def _clinical_care(code: ConsentCode, ctx: Context) -> list[Finding]:
    if ctx.purpose.clinical_care and not ctx.has("CC"):
        return [deny(f"{code.shorthand} covers research use; clinical care also needs CC")]
    return []


RULES: dict[str, Rule] = {"NRES": nres, "GRU": gru, "HMB": hmb, "DS": ds, "POA": poa}
