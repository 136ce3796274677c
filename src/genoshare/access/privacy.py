"""Beacon membership-inference defences: every allele-level answer passes through ``PrivacyGuard``.

A yes/no Beacon leaks membership (Shringarpure & Bustamante 2015; Raisaro et al. 2017): an attacker who
holds a person's genome asks about that person's rarest alleles, and "yes" answers on alleles nobody else
is likely to carry identify them as a member. Thresholds and rounding alone do not stop this; the defences
here are measured by running the attacks (``genoshare_lab.privacy.harness``, ``docs/privacy.md``).

Defences, each configurable per dataset and per access level:

- **minimum allele count**: "yes" only when at least ``min_allele_count`` copies are present;
- **per-user, per-member privacy budget** (Raisaro et al.): each "yes" on an allele a member carries spends
  ``-log(1 - D)`` of that member's budget *for this principal*, where ``D = exp(-allele count)`` is the
  large-beacon limit of the chance that no other member carries the allele (slightly above the exact
  ``(1 - AF)^2N``, so it spends a little more). A member whose budget cannot pay for an answer is left out
  of it: the answer is computed over the other carriers, as if the member were not in the dataset;
- **randomised response**: the answer on alleles with at most ``flip_max_count`` copies is flipped with
  probability ``flip_probability``; answers are cached per principal so asking again returns the same coin.
  Graded: ``flip_decay`` lowers the flip for alleles with more copies (the evidence is in singletons), and
  ``false_yes_probability`` sets the chance that a "no" becomes "yes" apart from the reverse, so answers on
  an exhausted member's alleles are affirmed exactly as often as absent alleles and carry no evidence;
- **differentially private counts**: ``count_epsilon`` decides the answer on the count plus truncated
  geometric noise (Ghosh et al. 2012; Cho et al. 2020) instead of flipping it;
- **spend pricing**: ``spend_count_scale`` prices a "yes" at a deflated count, for attackers whose reference
  panel has not seen alleles the Beacon holds a few copies of;
- **answer cache**: any stateful policy answers a repeated query from the cache, at no budget cost;
- **rate limits** per principal and dataset (``per_minute``, ``per_day``), raising ``RateLimited`` (429);
- **account linking**: accounts with the same subject at issuers configured as one login service
  (``linked_issuers``), identities a passport's LinkedIdentities visas name (an ORCID listed by several
  passports links them all), and accounts a steward linked explicitly, are one principal with one budget;
- **attack flag**: a person whose questions on rare alleles build up evidence on one member is flagged to the
  stewards (``genoshare.access.attack_watch``, ``flag_min_evidence``); it changes no answer.

Anonymous callers get no allele-level answer (``Answer.withheld``) on datasets that are not public.

Configuration lives in ``Dataset.beacon_policy["privacy"]``, next to the Beacon's disclosure settings::

    {"privacy": {"default": {"budget": 2.0},           # every access level of this dataset
                 "boolean": {"flip_probability": 0.1},  # callers with yes/no granularity
                 "count": {...}, "record": {...}}}

Keys are the fields of ``PrivacySettings``; what a dataset leaves out comes from ``NODE_DEFAULTS``.

How the Beacon service uses it (once per dataset, for every allele-level answer)::

    caller = guard.caller(identity)                           # once per request: resolves account links
    decision = policy.granularity(identity, dataset)          # AccessPolicy, as for everything else
    answer = guard.filter_answer(caller, decision, dataset, allele_key, carriers, allele_count)
    if answer.withheld: leave the dataset out of the response (no allele-level answer)
    else: respond with answer.exists; a count only from answer.allele_count/carrier_count when not None
          (then apply genoshare.access.disclosure as usual)

``allele_key`` must name the query's carrier set: the allele (assembly, contig, start, ref, alt or the
range/type asked) *and* any filters applied, so different questions are cached apart. ``carriers`` is the
bitmap of sample numbers the Beacon counted (after filters and consent withdrawals); ``allele_count`` the
copies among them. ``RateLimited`` carries ``retry_after`` seconds for a 429 response.
"""

from __future__ import annotations

import json
import math
import random
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from urllib.parse import unquote, urlsplit

from pyroaring import BitMap

from genoshare.access.attack_watch import (
    NODE_MIN_SPAN,
    NODE_SPAN_FREE_HITS,
    SqlAttackWatch,
    WatchRule,
    counting,
    spend_cost,
)
from genoshare.access.granularity import AccessLevel, Granularity
from genoshare.access.passports import Identity
from genoshare.access.policy import Decision
from genoshare.access.privacy_state import Answer, PrivacyState, SessionState, StateChanged
from genoshare.errors import GenoshareError, InvalidInput
from genoshare.store.models import Dataset

__all__ = [
    "EXACT_COUNTS_SPENT",
    "NODE_DEFAULTS",
    "Answer",
    "Caller",
    "PrivacyGuard",
    "PrivacySettings",
    "RateLimited",
    "spend_cost",
    "truncated_geometric",
]

ANONYMOUS = "anonymous"
#: The reason of an answer that gave a common allele's exact count; the cap counts the cached answers with it.
EXACT_COUNT = "exact count: a common allele"
#: Added to the reason of a count-level answer once the person's exact counts on the dataset are spent.
EXACT_COUNTS_SPENT = "exact counts spent"
LEVEL_NAMES = {Granularity.BOOLEAN: "boolean", Granularity.COUNT: "count", Granularity.RECORD: "record"}


class RateLimited(GenoshareError):
    status_code = 429
    code = "TooManyRequests"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        #: The header every API's error handler sends with the error (``genoshare.api.errors``).
        self.headers = {"Retry-After": str(max(1, round(retry_after)))}


@dataclass(frozen=True)
class PrivacySettings:
    """The defences in force for one dataset and one access level; the defaults switch everything off."""

    #: Say "yes" only when at least this many copies of the allele are left to count.
    min_allele_count: int = 1
    #: Each member's privacy budget per principal, in nats of attacker evidence; None: no budget.
    budget: float | None = None
    #: Probability that a randomised-response answer is the opposite of the truth.
    flip_probability: float = 0.0
    #: Randomise only answers on alleles with at most this many copies (None: every answer).
    flip_max_count: int | None = None
    #: Randomised response weakens with the count: an allele with ``c >= 2`` copies flips with probability
    #: ``flip_probability * flip_decay ** (c - 1)`` (absent alleles and singletons with ``flip_probability``).
    #: A "yes" on a singleton is the strongest evidence and most in need of noise; one on an allele with 5
    #: copies is weaker evidence and is more often what a benign user wants, so a single cut-off either
    #: hides too many of those or leaves singletons too clear. 1.0: the same probability up to the cut-off.
    flip_decay: float = 1.0
    #: Probability that a "no" (an absent allele, one below the minimum count, or one whose only carriers'
    #: budgets are spent) becomes "yes"; None: ``flip_probability``. A false "yes" costs a researcher a
    #: follow-up, a false "no" a finding; raising it weakens a "yes" as evidence without hiding alleles.
    #: Like ``flip_decay``, it applies only while randomised response is on (``flip_probability > 0``), so
    #: ``flip_probability = 0`` alone switches all noise off.
    false_yes_probability: float | None = None
    #: The budget a "yes" spends is priced as if the allele had ``spend_count_scale`` times its copies. An
    #: attacker's evidence comes from *its* reference panel, not the Beacon's count: an allele with 3 copies
    #: here is often seen 0-1 times in a panel of the same size, and a "yes" on it is then worth nearly as
    #: much as one on a singleton. 0.5 prices a "yes" at about the evidence it gives, on average, an attacker
    #: whose panel is as large as the dataset; 1.0 prices it at the Beacon's own count (Raisaro et al.).
    spend_count_scale: float = 1.0
    per_minute: int | None = None
    per_day: int | None = None
    #: Count-level callers get the exact count, never randomised, for alleles with at least this many copies
    #: (None: no exception). Such counts are the allele-frequency attack's material (Homer et al. 2008); the
    #: harness measures its power against counts served from each threshold (attack A3, docs/privacy.md).
    #: At N = 1,000 no threshold up to 100 copies kept A3's power at 5 % FPR <= 0.10 over 1,000 queries
    #: (0.20-0.35; <= 0.10 only up to ~100 counts), so the node default leaves it off; a steward who accepts
    #: that risk sets it per dataset. Rarer alleles keep every other defence.
    exact_count_min: int | None = None
    #: The distinct alleles one person (a principal: linked identities are one) gets exact counts for on this
    #: dataset (None: no cap). A3's evidence grows with the number of counts, not with the threshold, so the
    #: cap is what bounds it (docs/privacy.md). After it, count answers are served as the other defences
    #: serve them (yes/no under randomised response), saying why; a repeat of a counted allele is the cache's.
    exact_count_cap: int | None = None
    #: Spends below this are not recorded: common alleles cost ~0 and would write one row per carrier.
    spend_floor: float = 1e-6
    #: Flag a person to the stewards once their questions on rare alleles built up this much evidence (nats,
    #: ``spend_cost`` per question) on one member (``genoshare.access.attack_watch``; None: no flag). Needs a
    #: stateful policy: the answer cache keeps repeats from counting twice. The flag changes no answer.
    flag_min_evidence: float | None = None
    #: ... and that member's evidence is at least this share of all their questions' on rare or absent alleles.
    flag_min_share: float = 0.8
    #: ... counting a member only once the person's questions on their alleles lie on two chromosomes or this
    #: many bases apart (``WatchRule.min_span``; None: positions not read), so that a screen in genome order
    #: through a segment a patient shares with a relative in the dataset is not taken for a walk.
    flag_min_span: int | None = NODE_MIN_SPAN
    #: ... or once this many of their questions (and ``WatchRule.min_hit_share`` of them) are on one member's
    #: alleles wherever they lie (None: never), so a walk kept within ``flag_min_span`` is flagged too, later.
    flag_span_free_hits: int | None = NODE_SPAN_FREE_HITS
    #: Differentially private counts (None: off): the answer is decided on the count plus two-sided
    #: geometric noise with ``alpha = exp(-count_epsilon)``, truncated at 0 (``truncated_geometric``), the
    #: mechanism Ghosh et al. (2012) proved optimal for one count and Cho et al. (Cell Systems 2020) applied
    #: to biomedical count queries: ``count_epsilon``-DP per answer, the noise unbiased away from 0. "Yes"
    #: when the noisy count reaches ``min_allele_count``; an absent allele is affirmed with probability
    #: ``alpha / (1 + alpha)`` and a singleton denied as often (0.1 at epsilon 2.2). The answer is served as
    #: randomised yes/no (no count beside it), cached like randomised response; it replaces the flips, so it
    #: cannot be combined with ``flip_probability``.
    count_epsilon: float | None = None

    @property
    def watch_rule(self) -> WatchRule | None:
        """The attack flag's rule, or None when this policy raises no flag."""
        if self.flag_min_evidence is None or not self.stateful:
            return None
        return WatchRule(
            self.flag_min_evidence,
            self.flag_min_share,
            min_span=self.flag_min_span,
            span_free_hits=self.flag_span_free_hits,
        )

    @property
    def stateful(self) -> bool:
        """Whether answers need per-principal state (and so are cached)."""
        return (
            self.budget is not None
            or self.flip_probability > 0
            or self.count_epsilon is not None
            or self.per_minute is not None
            or self.per_day is not None
        )

    @classmethod
    def merged(cls, base: PrivacySettings, overrides: Mapping[str, object], where: str) -> PrivacySettings:
        """``base`` with a steward's overrides, checked so a typo is an error rather than a silent no-op."""
        known = {field.name for field in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise InvalidInput(f"{where}: unknown privacy settings {sorted(unknown)}; known: {sorted(known)}")
        settings = replace(base, **overrides)  # type: ignore[arg-type]
        checks = (
            ("min_allele_count", settings.min_allele_count, int, 1),
            ("budget", settings.budget, float, 0.0),
            ("flip_probability", settings.flip_probability, float, 0.0),
            ("flip_max_count", settings.flip_max_count, int, 0),
            ("per_minute", settings.per_minute, int, 1),
            ("per_day", settings.per_day, int, 1),
            ("spend_floor", settings.spend_floor, float, 0.0),
            ("exact_count_min", settings.exact_count_min, int, 1),
            ("exact_count_cap", settings.exact_count_cap, int, 1),
            ("flag_min_evidence", settings.flag_min_evidence, float, 0.0),
            ("flag_min_span", settings.flag_min_span, int, 1),
            ("flag_span_free_hits", settings.flag_span_free_hits, int, 1),
        )
        optional = (
            "budget",
            "flip_max_count",
            "per_minute",
            "per_day",
            "exact_count_min",
            "exact_count_cap",
            "flag_min_evidence",
            "flag_min_span",
            "flag_span_free_hits",
        )
        for name, value, kind, least in checks:
            if value is None and name in optional:
                continue
            allowed = (int, float) if kind is float else (int,)
            if isinstance(value, bool) or not isinstance(value, allowed) or value < least:
                raise InvalidInput(f"{where}.{name} must be a number >= {least}")
        if settings.count_epsilon is not None:
            value = settings.count_epsilon
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise InvalidInput(f"{where}.count_epsilon must be a number above 0")
            if settings.flip_probability > 0:
                raise InvalidInput(f"{where}: count_epsilon replaces randomised response; set flip_probability 0")
        if settings.flip_probability >= 0.5:
            raise InvalidInput(f"{where}.flip_probability must be below 0.5 (0.5 answers at random)")
        if settings.false_yes_probability is not None and not (
            isinstance(settings.false_yes_probability, (int, float))
            and not isinstance(settings.false_yes_probability, bool)
            and 0 <= settings.false_yes_probability < 0.5
        ):
            raise InvalidInput(f"{where}.false_yes_probability must be a number >= 0 and below 0.5")
        shares = (
            ("flip_decay", settings.flip_decay),
            ("spend_count_scale", settings.spend_count_scale),
            ("flag_min_share", settings.flag_min_share),
        )
        for name, value in shares:
            # Above 1 the decay would flip common alleles more than rare ones, the scale would under-price;
            # a share above 1 could never be met.
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise InvalidInput(f"{where}.{name} must be a number between 0 and 1")
        if settings.spend_count_scale == 0:
            raise InvalidInput(f"{where}.spend_count_scale must be above 0 (0 would price every answer infinitely)")
        return settings

    def flip_chance(self, count: int) -> float:
        """Probability that the answer on an allele with ``count`` copies (after exclusions) is flipped.

        The attack harness's likelihoods use this too, so the attackers know exactly the defence in force.
        Under ``count_epsilon`` it is the chance that the noise carries the count across the threshold:
        ``alpha^d / (1 + alpha)``, ``d`` the steps to cross (truncation at 0 keeps a noisy 0 below it).
        """
        if self.count_epsilon is not None:
            alpha = math.exp(-self.count_epsilon)
            steps = (
                count - self.min_allele_count + 1 if count >= self.min_allele_count else self.min_allele_count - count
            )
            return alpha**steps / (1 + alpha)
        if self.flip_probability <= 0 or (self.flip_max_count is not None and count > self.flip_max_count):
            return 0.0
        if count < self.min_allele_count and self.false_yes_probability is not None:
            return self.false_yes_probability
        return self.flip_probability * self.flip_decay ** max(count - 1, 0)

    def cost(self, count: int) -> float:
        """Budget one "yes" on an allele with ``count`` copies (after exclusions) spends on each carrier."""
        return spend_cost(max(count, 1) * self.spend_count_scale)


#: The node's policy where a dataset says nothing (docs/privacy.md): a budget of 1.0 and randomised response
#: graded by the count -- a present allele is denied 30 % of the time as a singleton, 12 % with 2 copies,
#: under 5 % with 3-5 copies; an absent one (or one whose only carriers' budgets are spent) is affirmed 45 %
#: of the time, so a "yes" on a rare allele is weak evidence and answers after exhaustion carry none. Chosen
#: on the mean over six seeds of the harness at N = 1,000 (best-response power at 5 % FPR over <= 1,000
#: queries ~0.10, against ~0.17-0.18 for the earlier budget 1.25 + 30 % flips on <= 2 copies; ~22 % wrong "no"
#: on alleles with <= 5 copies, none on common ones); the price is more false "yes" on absent alleles.
#: Record-level callers may read the genotypes anyway, so nothing is gained by noising their answers.
_REGISTERED = PrivacySettings(
    budget=1.0,
    flip_probability=0.3,
    flip_max_count=5,
    flip_decay=0.4,
    false_yes_probability=0.45,
    per_minute=600,
    per_day=20_000,
    flag_min_evidence=0.6,
)
NODE_DEFAULTS: dict[Granularity, PrivacySettings] = {
    Granularity.BOOLEAN: _REGISTERED,
    Granularity.COUNT: _REGISTERED,
    Granularity.RECORD: PrivacySettings(),
}


def truncated_geometric(count: int, epsilon: float, rng: random.Random) -> int:
    """``count`` plus two-sided geometric noise (``P(z) ~ alpha^|z|``, ``alpha = exp(-epsilon)``), at least 0.

    The difference of two geometric draws is the two-sided geometric; values below 0 are moved to 0 (the
    truncation of Ghosh et al. 2012), so a count of 0 reads 0 with probability ``1 / (1 + alpha)``.
    """
    log_alpha = -epsilon

    def draw() -> int:
        return math.floor(math.log(1.0 - rng.random()) / log_alpha)

    return max(0, count + draw() - draw())


@dataclass(frozen=True)
class Caller:
    """Who is asking: ``principal`` is whose budget is charged (None for anonymous callers).

    ``linked``: resolving this caller linked accounts (a passport's LinkedIdentities visa), so principals
    another caller was resolved to before may have changed, and the merged attack-watch counts are judged
    at this request's answers.
    """

    account: str | None
    principal: str | None
    linked: bool = False


#: The Passport 1.2.1 visa type saying that the visa's identity is the same person as the identities listed.
LINKED_IDENTITIES = "LinkedIdentities"
#: Identities read from one passport's LinkedIdentities visas; more are left out (each is a write when new).
MAX_LINKED_IDENTITIES = 32


def linked_identities(value: str) -> list[tuple[str, str]]:
    """The ``(sub, iss)`` pairs of a LinkedIdentities visa's value: ``sub,iss`` entries, URI-encoded, ``;``-separated.

    Malformed entries (no comma, an empty part) are skipped: they name nobody.
    """
    pairs = []
    for entry in value.split(";"):
        sub, comma, iss = entry.partition(",")
        if comma and sub and iss and "," not in iss:
            pairs.append((unquote(sub), unquote(iss)))
    return pairs


#: ORCID's issuer, in the form every ORCID identity is kept under.
ORCID_ISSUER = "https://orcid.org"
_ORCID_HOSTS = ("orcid.org", "www.orcid.org")
_ORCID_URL = re.compile(r"https?://(?:www\.)?orcid\.org/", re.IGNORECASE)
_ORCID_ID = re.compile(r"(\d{4})-?(\d{4})-?(\d{4})-?(\d{3}[\dX])")


def canonical_identity(subject: str, issuer: str) -> tuple[str, str] | None:
    """One spelling per identity, so that a person's budget is not split by how a visa writes it; None: nobody.

    An ORCID iD (issuer ``orcid.org`` by any scheme, with or without a slash; the iD bare or as its URL, with a
    slash or not) becomes ``0000-0002-1825-0097`` at ``https://orcid.org``; one whose ISO 7064 11,2 check
    digit is wrong is nobody's (a typo must not land on a stranger). An e-mail address has its domain
    lower-cased (domains are case-insensitive; the local part is kept as written, as RFC 5321 says it may
    be case-sensitive: lowering it could merge two people's budgets).
    """
    split = urlsplit(issuer if "//" in issuer else f"//{issuer}")
    if split.hostname in _ORCID_HOSTS and split.path in ("", "/") and not split.query:
        found = _ORCID_ID.fullmatch(_ORCID_URL.sub("", subject.strip(), count=1).rstrip("/").upper())
        if found is None or orcid_check_digit("".join(found.groups())[:15]) != found[4][-1]:
            return None
        return "-".join(found.groups()), ORCID_ISSUER
    local, at, domain = subject.rpartition("@")
    if at and local and domain and "@" not in local:
        return f"{local}@{domain.lower()}", issuer
    return subject, issuer


#: An issuer as passports name one (OpenID Connect's ``iss``): an absolute URL, with no ``@`` in it.
_ISSUER_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^@\s/]+[^@\s]*")


def parse_account(name: str) -> tuple[str, str]:
    """``(subject, issuer)`` of an account named ``subject@issuer``, as the audit log names it.

    A subject may itself hold an ``@`` (an e-mail address), so the split is at the last ``@``, and what follows
    it must be an issuer's URL: ``alice@uni.example`` alone would otherwise read as the subject ``alice`` at an
    issuer ``uni.example`` as readily as the e-mail address at an issuer left out. Raises ``InvalidInput``.
    """
    subject, at, issuer = name.strip().rpartition("@")
    if not at or not subject.strip() or _ISSUER_URL.fullmatch(issuer) is None:
        raise InvalidInput(
            f"{name!r}: accounts are named subject@issuer, the issuer's URL after the last '@' "
            "(e.g. alice@uni.example@https://login.example.org), as in the audit log"
        )
    return subject.strip(), issuer


def orcid_check_digit(digits: str) -> str:
    """The check character of an ORCID iD's first 15 digits (ISO 7064 MOD 11-2)."""
    total = 0
    for digit in digits:
        total = (total + int(digit)) * 2
    result = (12 - total % 11) % 11
    return "X" if result == 10 else str(result)


class PrivacyGuard:
    """Applies a dataset's defences to allele-level Beacon answers; see the module docstring for use."""

    def __init__(
        self,
        state: PrivacyState,
        *,
        linked_issuers: Iterable[Iterable[str]] = (),
        identity_link_issuers: Iterable[str] = (),
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        defaults: Mapping[Granularity, PrivacySettings] | None = None,
        watch: SqlAttackWatch | None = None,
    ) -> None:
        """``watch``: where attack flags are counted and raised (the node's); None raises none.

        ``identity_link_issuers``: issuers whose LinkedIdentities visas may link identities at *other* issuers
        (an ORCID, a verified e-mail, another login service); any other issuer's visa links only its own
        accounts, so one sloppy issuer cannot merge a stranger's budget into someone else's.
        """
        self.state = state
        self._link_asserters = frozenset(identity_link_issuers)
        self.watch = watch
        # One login service known under several issuer URLs: the same subject there is the same person.
        self._issuer_alias: dict[str, str] = {}
        for group in linked_issuers:
            members = sorted(group)
            for issuer in members:
                self._issuer_alias[issuer] = members[0]
        self._rng = rng or secrets.SystemRandom()
        self._clock = clock
        self._defaults = dict(defaults or NODE_DEFAULTS)
        self._settings: dict[tuple[Granularity, str], PrivacySettings] = {}

    # --- who -------------------------------------------------------------------------------------------

    def account_of(self, identity: Identity) -> str:
        """The account name budgets know a passport by: ``subject@issuer``, linked issuers folded.

        Spelled as ``canonical_identity`` spells it, as it is when a visa links it (as written if that is None).
        """
        return self._account(identity.subject, identity.issuer) or f"{identity.subject}@{identity.issuer}"

    def canonical_account(self, name: str) -> str:
        """The account ``subject@issuer`` names, spelled as the node spells it, or ``InvalidInput``.

        Read by ``parse_account``, then spelled by ``canonical_identity`` with linked issuers folded, so a
        steward's link lands on the budget the person's passports spend; a malformed name, or one that
        names nobody (an ORCID iD with a wrong check character), is refused.
        """
        subject, issuer = parse_account(name)
        account = self._account(subject, issuer)
        if account is None:
            raise InvalidInput(f"{name!r} names nobody: the ORCID iD's check character is wrong")
        return account

    def _account(self, subject: str, issuer: str) -> str | None:
        """``subject@issuer`` of the canonical identity; None for an identity that names nobody."""
        canonical = canonical_identity(subject, self._issuer_alias.get(issuer, issuer))
        return None if canonical is None else f"{canonical[0]}@{canonical[1]}"

    def accounts_of(self, identity: Identity) -> tuple[str, ...]:
        """The passport's account, then the accounts its LinkedIdentities visas say are the same person.

        Only accepted visas count: signed by a trusted issuer for this passport's subject (``passports``),
        so a forged or foreign visa links nobody. An ORCID or a verified e-mail address is linked the same
        way, as an identity (``0000-0002-1825-0097,https://orcid.org``) that several passports list, when
        the visa's issuer is one of ``identity_link_issuers``.
        """
        names = [self.account_of(identity)]
        for visa in identity.visas_of_type(LINKED_IDENTITIES):
            asserter = self._issuer_alias.get(visa.issuer, visa.issuer)
            for subject, issuer in linked_identities(visa.value):
                if visa.issuer not in self._link_asserters and self._issuer_alias.get(issuer, issuer) != asserter:
                    continue  # an issuer vouches for its own accounts only, unless trusted to verify others
                name = self._account(subject, issuer)
                if name is not None and name not in names and len(names) <= MAX_LINKED_IDENTITIES:
                    names.append(name)
        return tuple(names)

    def caller(self, identity: Identity | None) -> Caller:
        """Whose budget ``identity`` spends: linked identities are one person, however they ask.

        Identities a passport links are linked for good (``PrivacyState.link``) on its first question, so a
        second token of the same person finds the budget spent, whichever of them asks first and whether or
        not its own passport carries the link. A person's existing principal is kept: the new account joins it.
        """
        if identity is None:
            return Caller(None, None)
        names = self.accounts_of(identity)
        account = names[0]
        principals = [self.state.principal_of(name) for name in names]
        own = principals[0] or account
        if len(names) == 1 or all(principal == own for principal in principals):
            return Caller(account, own)
        # Keep a principal that already has history: a linked group's, else the other identity's (the asking
        # one is being resolved now), so a caller resolved before, in this process or another, is seldom left
        # on a principal that the merge removed (such a stale caller lives at most ``BeaconService.max_age``).
        linked = [name for name, principal in zip(names[1:], principals[1:], strict=True) if principal]
        keep = linked[0] if linked else account if principals[0] else names[1]
        principal = own
        for name in names:
            if name != keep:
                principal = self.state.link(keep, name, f"LinkedIdentities visa in the passport of {account}")
        return Caller(account, principal, linked=True)

    def link_accounts(self, account: str, other: str, *, by: str) -> str:
        """Record that two accounts are one person (e.g. by a steward); their budgets become one."""
        return self.state.link(account, other, by)

    # --- what ------------------------------------------------------------------------------------------

    def settings(self, dataset: Dataset, granularity: Granularity) -> PrivacySettings:
        """The dataset's settings for one access level, parsed once per distinct policy.

        A guarded answer would otherwise spend a tenth of a millisecond re-checking the same JSON.
        """
        try:
            key = (granularity, json.dumps(dataset.beacon_policy, sort_keys=True))
        except (TypeError, ValueError):
            return self._parsed_settings(dataset, granularity)
        known = self._settings.get(key)
        if known is None:
            known = self._parsed_settings(dataset, granularity)
            if len(self._settings) > 1024:
                self._settings.clear()
            self._settings[key] = known
        return known

    def _parsed_settings(self, dataset: Dataset, granularity: Granularity) -> PrivacySettings:
        level = LEVEL_NAMES.get(granularity, "boolean")
        base = self._defaults.get(granularity, self._defaults[Granularity.BOOLEAN])
        section = (dataset.beacon_policy or {}).get("privacy") or {}
        if not isinstance(section, Mapping):
            raise InvalidInput(f"dataset {dataset.id}: beacon_policy.privacy must be an object")
        for name in ("default", level):
            overrides = section.get(name) or {}
            if not isinstance(overrides, Mapping):
                raise InvalidInput(f"dataset {dataset.id}: beacon_policy.privacy.{name} must be an object")
            base = PrivacySettings.merged(base, overrides, f"beacon_policy.privacy.{name}")
        return base

    def withholds(self, caller: Caller, decision: Decision, dataset: Dataset) -> str | None:
        """Why ``dataset`` gives ``caller`` no allele-level answer at all, or None when it answers.

        Decided from who asks and the dataset's access level only, never from the data: the Beacon tells
        the caller which datasets were not consulted, and that notice must read the same whether or not
        the dataset holds the allele.
        """
        if decision.granularity <= Granularity.NONE:
            return "no access to this dataset"
        if caller.principal is None and dataset.access_level != AccessLevel.PUBLIC:
            return f"anonymous callers get no answer about alleles from {dataset.access_level} datasets"
        return None

    def filter_answer(
        self,
        caller: Caller,
        decision: Decision,
        dataset: Dataset,
        allele_key: str,
        carriers: BitMap,
        allele_count: int,
        position: tuple[str, int] | None = None,
    ) -> Answer:
        """The answer ``caller`` may get about one allele in ``dataset``; spends budget, fills the cache.

        ``position``: the allele's chromosome and start, for the attack watch (``WatchRule.min_span``); None
        when the question names no one place.
        """
        withheld = self.withholds(caller, decision, dataset)
        if withheld is not None:
            return Answer(False, None, None, withheld, withheld=True)
        settings = self.settings(dataset, decision.granularity)
        if not settings.stateful:
            return _threshold_only(settings, carriers, allele_count)
        while True:
            try:
                answer, fresh, counted_by = self._guarded(
                    caller, decision, dataset, settings, allele_key, carriers, allele_count, position
                )
                break
            except StateChanged:
                continue  # another server process answered this person first: decide again on the state it left
        rule = settings.watch_rule
        if caller.linked and rule is not None and self.watch is not None and caller.principal and caller.account:
            # The passport has just made two identities one person: a walk split over them may be complete
            # already, and judged only at the next question on the walked member it might never be.
            note = "; counted together once a passport linked them"
            self.watch.review(caller.principal, {dataset.id: rule}, caller.account, note)
        if fresh and rule is not None and self.watch is not None and caller.principal and caller.account:
            if counted_by is None:
                # After the answer's unit of work: the watch writes in a transaction of its own.
                self.watch.observe(rule, caller.principal, caller.account, dataset.id, carriers, allele_count, position)
            elif (counts := counted_by.watched()) is not None:
                # Counted in the answer's own write (PostgreSQL); a flag, once, is written on its own.
                self.watch.judge(rule, caller.principal, caller.account, dataset.id, counts)
        return answer

    def _guarded(
        self,
        caller: Caller,
        decision: Decision,
        dataset: Dataset,
        settings: PrivacySettings,
        allele_key: str,
        carriers: BitMap,
        allele_count: int,
        position: tuple[str, int] | None,
    ) -> tuple[Answer, bool, SessionState | None]:
        """The answer under a stateful policy, and whether it was new (not a repeat, not an exact count).

        Third, the unit of work if the attack watch's count of the question was made in its write.
        """
        principal = caller.principal or ANONYMOUS
        with self.state.session(principal, dataset.id) as session:
            wait = session.tick(self._clock(), settings.per_minute, settings.per_day)
            if wait is not None:
                raise RateLimited(f"query limit reached for dataset {dataset.id}; retry in {wait:.0f} s", wait)
            cached = session.cached(allele_key)
            if cached is not None:
                return replace(cached, cached=True), False, None
            spent = _exact_counts_spent(settings, decision, session)
            if not spent and _exact_count_safe(settings, decision, allele_count):
                # Common enough that exact counts are safe (measured): no coin, no budget. Cached under a cap,
                # so that the cap counts distinct alleles and a repeat is not charged again.
                exact = Answer(True, allele_count, len(carriers), EXACT_COUNT)
                if settings.exact_count_cap is not None:
                    session.remember(allele_key, exact)
                return exact, False, None
            remaining = carriers
            reason = "answered"
            if settings.budget is not None:
                remaining, reason = _within_budget(session, settings, carriers, allele_count)
            count = _estimated_count(carriers, remaining, allele_count)
            exists = count >= settings.min_allele_count
            randomised = settings.flip_probability > 0 or settings.count_epsilon is not None
            chance = settings.flip_chance(count)
            if settings.count_epsilon is not None:
                exists = truncated_geometric(count, settings.count_epsilon, self._rng) >= settings.min_allele_count
                reason = "differentially private count"
            elif chance > 0 and self._rng.random() < chance:
                exists = not exists
                reason = "randomised response"
            if exists and settings.budget is not None and remaining:
                cost = settings.cost(count)
                if cost >= settings.spend_floor:
                    session.spend(remaining, cost)
            if randomised:
                answer = Answer(exists, None, None, reason)
            elif exists:
                answer = Answer(True, count, len(remaining), reason)
            else:
                answer = Answer(False, 0, 0, reason if count else "below minimum allele count")
            if spent:
                answer = replace(answer, reason=f"{answer.reason}; {EXACT_COUNTS_SPENT}")
            session.remember(allele_key, answer)
            rule = settings.watch_rule
            watched = (
                rule is not None
                and self.watch is not None
                and bool(caller.principal and caller.account)
                and rule.counted(allele_count)
                and session.watch(counting(rule, rule.weight(allele_count), list(carriers), position))
            )
            return answer, True, session if watched else None


def _exact_count_safe(settings: PrivacySettings, decision: Decision, allele_count: int) -> bool:
    """Whether a count-level caller gets this allele's exact count (``PrivacySettings.exact_count_min``)."""
    least = settings.exact_count_min
    return least is not None and decision.granularity >= Granularity.COUNT and allele_count >= least


def _exact_counts_spent(settings: PrivacySettings, decision: Decision, session: SessionState) -> bool:
    """Whether this count-level caller has had all the exact counts ``exact_count_cap`` allows on the dataset.

    Decided from who asks, not from the allele asked about, so saying it tells nothing about the data.
    """
    cap = settings.exact_count_cap
    if cap is None or settings.exact_count_min is None or decision.granularity < Granularity.COUNT:
        return False
    return session.answered(EXACT_COUNT) >= cap


def _estimated_count(carriers: BitMap, remaining: BitMap, allele_count: int) -> int:
    """Copies among the remaining carriers.

    When some were left out, the fewest the rest can hold (each left-out carrier held one or two copies), so
    a threshold never counts a member who was taken out.
    """
    removed = len(carriers) - len(remaining)
    if removed == 0:
        return allele_count
    return max(len(remaining), allele_count - 2 * removed)


def _within_budget(
    session: SessionState, settings: PrivacySettings, carriers: BitMap, allele_count: int
) -> tuple[BitMap, str]:
    """Carriers whose budget can still pay for a "yes" on this allele, and why others were left out."""
    assert settings.budget is not None
    budget = settings.budget
    remaining = carriers - session.exhausted(budget) if carriers else carriers
    reason = "answered" if len(remaining) == len(carriers) else "budget exhausted for some carriers"
    # Leaving a member out lowers the count, which raises the price for the rest: repeat until stable.
    while remaining:
        count = _estimated_count(carriers, remaining, allele_count)
        if count < settings.min_allele_count:
            break
        cost = settings.cost(count)
        if cost < settings.spend_floor:
            break
        spent = session.spent(remaining)
        over = BitMap(member for member, used in spent.items() if used + cost > budget + 1e-12)
        if not over:
            break
        remaining = remaining - over
        reason = "budget exhausted for some carriers"
    return remaining, reason


def _threshold_only(settings: PrivacySettings, carriers: BitMap, allele_count: int) -> Answer:
    if allele_count >= settings.min_allele_count:
        return Answer(True, allele_count, len(carriers), "answered")
    return Answer(False, 0, 0, "answered" if allele_count == 0 else "below minimum allele count")
