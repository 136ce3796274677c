"""A passport that only claims its issuer: the network chooses whom to send a token by that claim alone."""

from __future__ import annotations

import base64
import json
from typing import Any


def unsigned_passport(issuer: str) -> str:
    """A token claiming ``issuer``, signed by no one: every peer that trusts ``issuer`` is sent it."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part({'iss': issuer, 'sub': 'someone'})}.c2ln"
