"""Rules for the DUO data use modifiers.

Three families, by what a machine can know:

* restrictions on the research itself (NMDS, GSO, NPUNCU/NPU/NCU, NPOA) are decided from the purpose;
* checkable terms (TS against the date, MOR against the publication date, GS against the location,
  RS against the topics) are decided when the purpose says enough, and otherwise sent to review;
* obligations and approvals (IRB, COL, PUB, RTN, US, PS, IS) are satisfied by the purpose declaring
  them, or else become NEEDS_REVIEW saying what to attach; US/PS/IS always need a person, because
  DUO gives these codes no list of approved users, projects or institutions to compare against.
"""

from __future__ import annotations

import calendar
import datetime as dt

from genoshare.duo.codes import ConsentCode
from genoshare.duo.context import Context, Rule, deny, permit, review
from genoshare.duo.decision import Finding
from genoshare.duo.purpose import PurposeCategory as P


def nmds(code: ConsentCode, ctx: Context) -> list[Finding]:
    """Methods development stays allowed inside the permitted scope.

    A DS purpose may build methods for its disease; what NMDS removes is methods research that is not
    tied to the consented scope (the consent-codes reading of "no general methods research").
    """
    purpose = ctx.purpose
    if not purpose.methods_development:
        return [permit("NMDS: the purpose declares no methods development")]
    if purpose.primary in (P.GRU, P.NRES):
        return [deny("NMDS forbids general methods development; develop methods only within the consented scope")]
    return [permit(f"NMDS: methods development within {purpose.primary.describe()}, the scope judged above")]


def gso(code: ConsentCode, ctx: Context) -> list[Finding]:
    if ctx.purpose.genetic_study:
        return [permit("GSO: the purpose is a genetic study")]
    return [
        deny(
            "GSO limits use to genetic studies (genotype, or genotype and phenotype research); "
            "the purpose does not declare one"
        )
    ]


def npuncu(code: ConsentCode, ctx: Context) -> list[Finding]:
    return _not_for_profit(code, ctx) + _non_commercial(code, ctx) or [
        permit("NPUNCU: not-for-profit requester and non-commercial use")
    ]


def npu(code: ConsentCode, ctx: Context) -> list[Finding]:
    return _not_for_profit(code, ctx) or [permit("NPU: the requester is not-for-profit")]


def ncu(code: ConsentCode, ctx: Context) -> list[Finding]:
    # DUO's comment: commercial organisations may use NCU data for research, not for commercial purposes.
    who = " (a for-profit requester may do non-commercial research)" if ctx.purpose.for_profit else ""
    return _non_commercial(code, ctx) or [permit(f"NCU: the use is non-commercial{who}")]


def _not_for_profit(code: ConsentCode, ctx: Context) -> list[Finding]:
    if ctx.purpose.for_profit:
        return [deny(f"{code.shorthand} limits use to not-for-profit organisations; the requester is for-profit")]
    return []


def _non_commercial(code: ConsentCode, ctx: Context) -> list[Finding]:
    if ctx.purpose.commercial:
        return [deny(f"{code.shorthand} limits use to non-commercial purposes; the use is commercial")]
    return []


def npoa(code: ConsentCode, ctx: Context) -> list[Finding]:
    if ctx.purpose.studies_ancestry:
        return [deny("NPOA prohibits population origins or ancestry research")]
    return [permit("NPOA: the purpose does not study population origins or ancestry")]


def cc(code: ConsentCode, ctx: Context) -> list[Finding]:
    if ctx.purpose.clinical_care:
        return [permit("CC allows clinical use and care")]
    return [permit("CC adds clinical care to the permitted uses and restricts nothing")]


def ts(code: ConsentCode, ctx: Context) -> list[Finding]:
    months = int(code.parameter or 0)
    start, end = time_limit(code, ctx)
    if ctx.purpose.date >= end:
        return [deny(f"TS: use was approved for {months} months from {start}, which ended on {end}")]
    return [permit(f"TS: use approved for {months} months from {start}, until {end} (exclusive)")]


def time_limit(code: ConsentCode, ctx: Context) -> tuple[dt.date, dt.date]:
    """A new request starts its period on the decision date; a running grant on its grant date."""
    start = ctx.purpose.access_granted_on or ctx.purpose.date
    return start, add_months(start, int(code.parameter or 0))


def add_months(day: dt.date, months: int) -> dt.date:
    """Calendar months, clamping to the month's end (31 January + 1 month is 28/29 February)."""
    year, month = divmod(day.month - 1 + months, 12)
    year += day.year
    month += 1
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


def mor(code: ConsentCode, ctx: Context) -> list[Finding]:
    until = dt.date.fromisoformat(code.parameter or "")
    purpose = ctx.purpose
    planned = purpose.publication_date
    if planned is not None and planned < until:
        return [deny(f"MOR: no publication before {until}; the purpose plans to publish on {planned}")]
    if planned is not None:
        return [permit(f"MOR: planned publication on {planned} is after the moratorium ({until})")]
    if purpose.date >= until:
        return [permit(f"MOR: the publication moratorium ended on {until}")]
    if not purpose.publication_planned:
        return [permit(f"MOR: no publication planned; results must not be published before {until}")]
    return [review(f"requires agreeing not to publish before {until} (MOR): give the planned publication date")]


def gs(code: ConsentCode, ctx: Context) -> list[Finding]:
    region = code.parameter or ""
    location = ctx.purpose.location
    if location is None:
        return [review(f"requires use within {region} (GS): state where the data will be used")]
    if location.strip().casefold() == region.casefold():
        return [permit(f"GS: the data will be used within {region}")]
    return [
        review(
            f"requires use within {region} (GS): a reviewer must confirm that {location} lies within it "
            "(no GAZ hierarchy offline to decide)"
        )
    ]


def rs(code: ConsentCode, ctx: Context) -> list[Finding]:
    topic = code.parameter or ""
    if topic.casefold() in {t.strip().casefold() for t in ctx.purpose.topics}:
        return [permit(f"RS: the research topic is {topic}")]
    return [review(f"requires research on {topic} (RS): a reviewer must confirm the purpose falls within this topic")]


def _obligation(declared: str, permitted: str, required: str) -> Rule:
    def rule(code: ConsentCode, ctx: Context) -> list[Finding]:
        if getattr(ctx.purpose, declared):
            return [permit(permitted.format(code=code))]
        return [review(required.format(code=code))]

    return rule


def _approved(what: str, field: str) -> Rule:
    def rule(code: ConsentCode, ctx: Context) -> list[Finding]:
        who = getattr(ctx.purpose, field)
        subject = f"{what} {who}" if who else f"the {what} (none given)"
        required = f"requires an approved {what} ({code.shorthand})"
        return [review(f"{required}: a data access committee must approve {subject}")]

    return rule


RULES: dict[str, Rule] = {
    "NMDS": nmds,
    "GSO": gso,
    "NPUNCU": npuncu,
    "NPU": npu,
    "NCU": ncu,
    "NPOA": npoa,
    "CC": cc,
    "TS": ts,
    "MOR": mor,
    "GS": gs,
    "RS": rs,
    "IRB": _obligation(
        "irb_approval",
        "IRB: the requester declares local IRB/ERB approval; keep the document on file",
        "requires IRB/ERB approval (IRB): attach the approval document",
    ),
    "COL": _obligation(
        "collaboration_agreed",
        "COL: collaboration with {code.parameter} agreed",
        "requires collaboration with {code.parameter} (COL): attach the collaboration agreement",
    ),
    "PUB": _obligation(
        "publication_planned",
        "PUB: the requester will make results available to the scientific community",
        "requires agreeing to make results available to the scientific community (PUB): declare it",
    ),
    "RTN": _obligation(
        "return_of_results",
        "RTN: the requester will return derived/enriched data to the resource",
        "requires returning derived/enriched data to the resource (RTN): agree to it",
    ),
    "US": _approved("user", "requester_id"),
    "PS": _approved("project", "project_id"),
    "IS": _approved("institution", "institution"),
}
