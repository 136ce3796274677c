from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
from c4gh_testlib import DATA
from crypt4gh.keys import get_private_key, get_public_key

from genoshare.crypt import InvalidKey, generate_keypair, load_keypair, parse_public_key
from genoshare.crypt.keys import PASSPHRASE_ENV

KEYS = DATA / "c4gh" / "keys"


def test_generate_writes_crypt4gh_formats_with_private_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    pair = generate_keypair(tmp_path, "n1")
    assert stat.S_IMODE((tmp_path / "n1.sec").stat().st_mode) == 0o600
    # The reference implementation reads what we wrote.
    assert get_private_key(str(tmp_path / "n1.sec"), None) == pair.secret
    assert get_public_key(str(tmp_path / "n1.pub")) == pair.public
    assert load_keypair(tmp_path, "n1") == pair
    assert pair.secret.hex() not in repr(pair)


def test_generate_refuses_to_overwrite(tmp_path: Path) -> None:
    generate_keypair(tmp_path)
    with pytest.raises(FileExistsError):
        generate_keypair(tmp_path)


def test_passphrase_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse")
    pair = generate_keypair(tmp_path)
    assert b"c4gh-v1" in base64.b64decode((tmp_path / "node.sec").read_text().splitlines()[1])
    assert load_keypair(tmp_path) == pair
    monkeypatch.setenv(PASSPHRASE_ENV, "wrong")
    with pytest.raises(InvalidKey, match="passphrase"):
        load_keypair(tmp_path)
    monkeypatch.delenv(PASSPHRASE_ENV)
    with pytest.raises(InvalidKey, match="not set"):
        load_keypair(tmp_path)


def test_load_keys_made_by_crypt4gh_keygen() -> None:
    bob = load_keypair(KEYS, "bob")
    assert bob.public == get_public_key(str(KEYS / "bob.pub"))


def test_load_rejects_mismatched_pair(tmp_path: Path) -> None:
    generate_keypair(tmp_path, "a")
    generate_keypair(tmp_path, "b")
    (tmp_path / "a.pub").chmod(0o644)
    (tmp_path / "a.pub").write_bytes((tmp_path / "b.pub").read_bytes())
    with pytest.raises(InvalidKey, match="public half"):
        load_keypair(tmp_path, "a")


def test_load_missing_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_keypair(tmp_path)


def test_parse_public_key_accepted_forms() -> None:
    pem = (KEYS / "bob.pub").read_bytes()
    raw = get_public_key(str(KEYS / "bob.pub"))
    forms = [
        pem,
        pem.decode(),
        base64.b64encode(pem),
        base64.b64encode(pem).decode(),
        base64.b64encode(raw),
        raw,
    ]
    for form in forms:
        assert parse_public_key(form) == raw


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "hello",
        b"\x00" * 31,
        b"\x00" * 32,  # low-order point: X25519 with it yields an all-zero secret
        base64.b64encode(b"\x01" * 31),
        "-----BEGIN CRYPT4GH PUBLIC KEY-----\n!!!\n-----END CRYPT4GH PUBLIC KEY-----\n",
        "-----BEGIN CRYPT4GH PUBLIC KEY-----\nAAAA\n-----END CRYPT4GH PUBLIC KEY-----\n",
        "-----BEGIN CRYPT4GH PRIVATE KEY-----\nAAAA\n-----END CRYPT4GH PRIVATE KEY-----\n",
        "clé",
        12345,
    ],
)
def test_parse_public_key_rejects_garbage(garbage: object) -> None:
    with pytest.raises(InvalidKey):
        parse_public_key(garbage)  # type: ignore[arg-type]
    assert issubclass(InvalidKey, ValueError)
