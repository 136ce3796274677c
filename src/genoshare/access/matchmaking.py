"""Matchmaking decisions: which peers may ask, and whose records a match may show.

Matchmaker Exchange trust is bilateral (the MME join protocol): a peer this node accepted sends the token it
was given in ``X-Auth-Token``, and every request bearing it is that peer's. Only the token's SHA-256 is
configured here; the comparison is constant-time.

A person appears in matches only with a consent that allows it, decided here and nowhere else, failing
closed: their own choice (yes or no) wins; without one, the dataset's consent codes decide, and only the
DUO modifier for clinical care (``CC``, DUO:0000043: "use is allowed for clinical use and care"), which is
what finding a diagnosis for another clinician's patient is, allows it. A withdrawn person never appears.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from genoshare.errors import Unauthenticated
from genoshare.settings import MatchmakerPeer

#: The consent code that allows matchmaking for everyone in a dataset who has not said otherwise.
CLINICAL_CARE = "CC"
ACTIVE = "active"


@dataclass(frozen=True)
class MatchmakingConsent:
    allowed: bool
    reason: str


def matchmaking_consent(status: str, choice: bool | None, dataset_codes: Sequence[str]) -> MatchmakingConsent:
    """Whether a person may appear in matchmaking answers, and why (fails closed on anything unknown)."""
    if status != ACTIVE:
        return MatchmakingConsent(False, f"consent {status}")
    if choice is True:
        return MatchmakingConsent(True, "the participant allowed matchmaking")
    if choice is False:
        return MatchmakingConsent(False, "the participant refused matchmaking")
    if any(code.strip().upper() == CLINICAL_CARE for code in dataset_codes):
        return MatchmakingConsent(True, "the dataset's consent allows clinical care use (CC)")
    return MatchmakingConsent(False, "no matchmaking consent: neither the participant's choice nor a CC code")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def trusted_peer(peers: Iterable[MatchmakerPeer], token: str | None) -> MatchmakerPeer:
    """The peer a request's ``X-Auth-Token`` belongs to; refused (401) when missing or unknown."""
    if not token:
        raise Unauthenticated("send the token this node gave your matchmaker in X-Auth-Token")
    presented = token_hash(token)
    found = None
    for peer in peers:
        # Every configured hash is compared, so the time taken does not tell which peer came close.
        if peer.token_sha256 is not None and hmac.compare_digest(peer.token_sha256, presented):
            found = peer
    if found is None:
        raise Unauthenticated("unknown X-Auth-Token: this node does not accept match requests from it")
    return found
