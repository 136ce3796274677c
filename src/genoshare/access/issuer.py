"""Signs GA4GH Passport v1.2 visas and passports with a key of its own, published as a JWKS.

The node uses it to issue ControlledAccessGrants after a committee approval; the demo and the tests use
a second instance as a stand-in for an external identity provider (real JWTs, real signatures).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey

from genoshare.access.passports import PASSPORT_TYP, VISA_TYP

ALGORITHM = "ES256"


#: Beside the key file after ``genoshare rotate visa-key``: the public keys it replaced, each published in the
#: JWKS until ``keep_until`` (the last expiry of a grant signed under it), so its visas keep verifying.
RETIRED_SUFFIX = ".retired.json"
#: How often a running server looks whether the key file was replaced (a rotation).
RELOAD_SECONDS = 1.0


class VisaIssuer:
    """The node's visa-signing key; follows a rotation of its key file without a restart."""

    def __init__(self, issuer: str, key: ECKey, retired: list[dict[str, Any]] | None = None) -> None:
        self.issuer = issuer
        self._key = key
        self._retired = retired or []
        self._key_file: Path | None = None
        self._seen: int | None = None
        self._checked = 0.0

    @classmethod
    def load_or_create(cls, issuer: str, key_file: Path) -> VisaIssuer:
        if not key_file.is_file():
            key = ECKey.generate_key("P-256", auto_kid=True)
            key_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(key.as_dict(private=True), handle)
        made = cls(issuer, ECKey.import_key(json.loads(key_file.read_text())))
        made._key_file = key_file
        made._load()
        return made

    def _load(self) -> None:
        assert self._key_file is not None
        seen = self._key_file.stat().st_mtime_ns
        self._key = ECKey.import_key(json.loads(self._key_file.read_text()))
        retired = self._key_file.with_name(self._key_file.name + RETIRED_SUFFIX)
        self._retired = json.loads(retired.read_text()) if retired.is_file() else []
        self._seen, self._checked = seen, time.monotonic()

    @property
    def key(self) -> ECKey:
        if self._key_file is not None and time.monotonic() - self._checked >= RELOAD_SECONDS:
            self._checked = time.monotonic()
            try:
                if self._key_file.stat().st_mtime_ns != self._seen:
                    self._load()
            except (OSError, ValueError):
                pass  # mid-rotation: keep the key in memory, look again next time
        return self._key

    def jwks(self) -> dict[str, Any]:
        public = self.key.as_dict(private=False)
        public.update({"use": "sig", "alg": ALGORITHM})
        now = time.time()
        kept = [
            dict(old["key"])
            for old in self._retired
            if old.get("keep_until", 0) > now and old["key"].get("kid") != public.get("kid")
        ]
        return {"keys": [public, *kept]}

    def write_jwks(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.jwks(), indent=2))

    def sign(self, claims: dict[str, Any], *, typ: str) -> str:
        """Any claims under this issuer's key (the tests also forge with it)."""
        header = {"alg": ALGORITHM, "typ": typ, "kid": self.key.kid}
        return jwt.encode(header, claims, self.key, algorithms=[ALGORITHM])

    def visa(
        self,
        subject: str,
        visa_type: str,
        value: str,
        *,
        source: str | None = None,
        by: str | None = "dac",
        asserted: object = None,
        lifetime: int = 3600,
        now: int | None = None,
        jti: str | None = None,
        conditions: list[list[dict[str, str]]] | None = None,
    ) -> str:
        """A visa document token; ``by=None`` leaves ``by`` out (an "unknown" authority)."""
        now = int(time.time()) if now is None else now
        body: dict[str, Any] = {
            "type": visa_type,
            "asserted": now if asserted is None else asserted,
            "value": value,
            "source": source or self.issuer,
        }
        if by is not None:
            body["by"] = by
        if conditions is not None:
            body["conditions"] = conditions
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "iat": now,
            "exp": now + lifetime,
            "jti": jti or str(uuid.uuid4()),
            "ga4gh_visa_v1": body,
        }
        return self.sign(claims, typ=VISA_TYP)

    def passport(self, subject: str, visas: list[str], *, lifetime: int = 3600, now: int | None = None) -> str:
        now = int(time.time()) if now is None else now
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "iat": now,
            "exp": now + lifetime,
            "jti": str(uuid.uuid4()),
            "ga4gh_passport_v1": visas,
        }
        return self.sign(claims, typ=PASSPORT_TYP)
