"""Key rotation under a running `genoshare serve`, without a restart.

`rotate ticket-secret`: downloads already handed out go on, new tickets use the new secret, and the old secret
cannot mint a ticket that outlives the rotation. `rotate visa-key`: the old key stays in the JWKS, so what it
signed still verifies, and the new one is published and accepted at once.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OctKey

from genoshare.access.issuer import VisaIssuer

from processes import Server, run_cli

pytestmark = pytest.mark.slow

VCF = Path(__file__).resolve().parents[2] / "src" / "genoshare" / "demo" / "data" / "htsget" / "vcf"
ENV = {"GENOSHARE_DATABASE_URL": ""}


def ticket_url(client: httpx.Client, object_id: str) -> tuple[str, dict[str, str]]:
    access = client.get(f"/ga4gh/drs/v1/objects/{object_id}/access/https").json()
    return access["url"], dict(header.split(": ", 1) for header in access.get("headers", []))


def signed_by(token: str, secret: bytes) -> bool:
    try:
        jwt.decode(token, OctKey.import_key(secret), algorithms=["HS256"])
    except JoseError:
        return False
    return True


def test_rotating_the_ticket_secret_under_a_running_server(tmp_path: Path, serve: type[Server]) -> None:
    node = tmp_path / "node"
    for step in [
        ("init",),
        ("datasets", "create", "pub", "--title", "T", "--custodian", "C", "--duo", "NRES", "--access", "public"),
        ("ingest", "pub", str(VCF / "spec-v4.3.vcf.gz")),
    ]:
        assert run_cli(*step, "-d", str(node), env=ENV).returncode == 0
    old_secret = (node / "keys" / "ticket.secret").read_bytes()
    server = serve(node, ENV)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        object_id = client.get("/ga4gh/drs/v1/objects/pub").json()["contents"][0]["id"]
        url, before = ticket_url(client, object_id)
        whole = client.get(url, headers=before).content
        first = client.get(url, headers={**before, "Range": "bytes=0-99"})
        assert first.status_code == 206

        rotated = run_cli("rotate", "ticket-secret", "-d", str(node), env=ENV)
        assert rotated.returncode == 0, rotated.stderr
        new_secret = (node / "keys" / "ticket.secret").read_bytes()
        assert new_secret != old_secret
        time.sleep(1.5)  # the server looks at the file at most once a second

        # The download that was running resumes with its ticket: the rest of the bytes, the same bytes.
        rest = client.get(url, headers={**before, "Range": "bytes=100-"})
        assert rest.status_code == 206 and first.content + rest.content == whole
        # New tickets are under the new secret only.
        _, after = ticket_url(client, object_id)
        token = after["Authorization"].removeprefix("Bearer ")
        assert signed_by(token, new_secret) and not signed_by(token, old_secret)
        # Whoever kept the old secret cannot mint a ticket that outlives the rotation.
        claims = jwt.decode(before["Authorization"].removeprefix("Bearer "), OctKey.import_key(old_secret)).claims
        forged = jwt.encode(
            {"alg": "HS256"}, {**claims, "exp": int(time.time()) + 86400}, OctKey.import_key(old_secret)
        )
        refused = client.get(url, headers={"Authorization": f"Bearer {forged}"})
        assert refused.status_code == 401


def test_rotating_the_visa_key_keeps_the_old_one_in_the_jwks(tmp_path: Path, serve: type[Server]) -> None:
    node = tmp_path / "node"
    assert run_cli("init", "-d", str(node), env=ENV).returncode == 0
    server = serve(node, ENV)
    old = VisaIssuer.load_or_create(server.url, node / "keys" / "issuer.jwk.json")
    stranger = VisaIssuer(server.url, ECKey.generate_key("P-256", auto_kid=True))
    signed_before = old.passport("someone", [])
    with httpx.Client(base_url=server.url, timeout=30) as client:
        before = {key["kid"] for key in client.get("/.well-known/jwks.json").json()["keys"]}
        assert before == {old.key.kid}

        def answer(passport: str) -> int:
            return client.get("/governance/requests", headers={"Authorization": f"Bearer {passport}"}).status_code

        assert answer(signed_before) == 200 and answer(stranger.passport("someone", [])) == 401
        rotated = run_cli("rotate", "visa-key", "-d", str(node), env=ENV)
        assert rotated.returncode == 0, rotated.stderr
        time.sleep(1.5)  # the server looks at the key file at most once a second
        after = {key["kid"] for key in client.get("/.well-known/jwks.json").json()["keys"]}
        assert old.key.kid in after and len(after) == 2, "the old key stays published beside the new one"
        assert answer(signed_before) == 200, "what the old key signed still verifies"
        new = VisaIssuer.load_or_create(server.url, node / "keys" / "issuer.jwk.json")
        assert new.key.kid in after and answer(new.passport("someone", [])) == 200
