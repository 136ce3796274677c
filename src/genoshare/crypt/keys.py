"""The node's Crypt4GH key pair and parsing of keys sent by clients.

Key files use the formats of the ``crypt4gh`` tool (``crypt4gh-keygen``), so operators can
inspect or rotate them with the reference CLI. The secret key is stored unencrypted by
default and protected by file permissions (0600, created with ``O_EXCL`` so it is never
world-readable, not even briefly): a server that must restart unattended has nowhere safe
to keep a passphrase anyway. If ``GENOSHARE_NODE_KEY_PASSPHRASE`` is set, it is used to
encrypt the secret key on generation (scrypt + ChaCha20-Poly1305, done by ``crypt4gh``) and
to unlock it on load.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import io
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

from crypt4gh import sodium
from crypt4gh.keys import c4gh, get_private_key, get_public_key

from genoshare.crypt.errors import CryptError, InvalidKey

PASSPHRASE_ENV = "GENOSHARE_NODE_KEY_PASSPHRASE"  # noqa: S105 - the variable name, not a secret
KEY_SIZE = 32
_PUB_BEGIN = b"-----BEGIN CRYPT4GH PUBLIC KEY-----"
_PUB_END = b"-----END CRYPT4GH PUBLIC KEY-----"
_SEC_BEGIN = b"-----BEGIN CRYPT4GH PRIVATE KEY-----"
_SEC_END = b"-----END CRYPT4GH PRIVATE KEY-----"


@dataclass(frozen=True)
class KeyPair:
    """Raw 32-byte X25519 keys; ``secret`` is kept out of ``repr`` so it never lands in logs."""

    public: bytes
    secret: bytes = field(repr=False)


def _pem(begin: bytes, payload: bytes, end: bytes) -> bytes:
    return begin + b"\n" + base64.b64encode(payload) + b"\n" + end + b"\n"


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL: overwriting the node key would make every stored file undecryptable.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)  # the umask may have narrowed it; never widened beyond ``mode``
    finally:
        os.close(fd)


def generate_keypair(dir: Path, name: str = "node") -> KeyPair:
    """Create ``<name>.pub`` and ``<name>.sec`` in ``dir``; refuses to overwrite existing keys."""
    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)
    sec_path, pub_path = dir / f"{name}.sec", dir / f"{name}.pub"
    for path in (sec_path, pub_path):
        if path.exists():
            raise FileExistsError(f"refusing to overwrite key file {path}")
    secret = os.urandom(KEY_SIZE)
    public = sodium.derive_pk(secret)
    passphrase = os.environ.get(PASSPHRASE_ENV)
    if passphrase:
        encoded = c4gh.encode_private_key(secret, passphrase.encode(), None)
    else:
        # Same bytes as crypt4gh's unencrypted branch, without its stderr warning.
        encoded = c4gh.MAGIC_WORD + c4gh.encode_string(None) + c4gh.encode_string(None) + c4gh.encode_string(secret)
    _write_new(sec_path, _pem(_SEC_BEGIN, encoded, _SEC_END), 0o600)
    _write_new(pub_path, _pem(_PUB_BEGIN, public, _PUB_END), 0o644)
    return KeyPair(public=public, secret=secret)


def load_keypair(dir: Path, name: str = "node") -> KeyPair:
    """Load the pair written by :func:`generate_keypair` (or ``crypt4gh-keygen``) and check they match.

    A missing file raises ``FileNotFoundError`` (a deployment problem, not a bad key).
    """
    dir = Path(dir)
    sec_path, pub_path = dir / f"{name}.sec", dir / f"{name}.pub"
    for path in (sec_path, pub_path):
        if not path.is_file():
            raise FileNotFoundError(path)
    missing_passphrase = False

    def passphrase() -> str:
        nonlocal missing_passphrase
        value = os.environ.get(PASSPHRASE_ENV)
        if value is None:
            missing_passphrase = True
            raise InvalidKey(f"{sec_path} is passphrase-protected and {PASSPHRASE_ENV} is not set")
        return value

    try:
        secret = bytes(get_private_key(str(sec_path), passphrase))
        public = bytes(get_public_key(str(pub_path)))
    except SystemExit as exc:
        # crypt4gh's parse_private_key is wrapped in a decorator that calls sys.exit(2) on any error.
        reason = f"{PASSPHRASE_ENV} is not set" if missing_passphrase else "wrong passphrase or corrupt key"
        raise InvalidKey(f"cannot unlock {sec_path}: {reason}") from exc
    except (ValueError, NotImplementedError, binascii.Error) as exc:
        raise InvalidKey(f"cannot parse key files in {dir}: {exc}") from exc
    if len(secret) != KEY_SIZE or len(public) != KEY_SIZE:
        raise InvalidKey(f"keys in {dir} are not 32-byte X25519 keys")
    if sodium.derive_pk(secret) != public:
        raise InvalidKey(f"{pub_path} is not the public half of {sec_path}")
    return KeyPair(public=public, secret=secret)


#: Beside the node key while ``genoshare rotate node-key`` runs: the key being brought in (``node.next.*``) and,
#: once it has replaced the node key, the one being retired (``node.previous.*``).
NEXT = "next"
PREVIOUS = "previous"
#: How often a running process looks whether the key files changed (a rotation).
RELOAD_SECONDS = 1.0


class NodeKeys:
    """The node's key pair as ``keys/`` holds it now, and every secret a stored header may be encrypted to.

    Outside a rotation that is the node key alone. During one, a header may be encrypted to the old key or the
    new one, so readers try both (``secrets``); a running server follows the key files within
    ``RELOAD_SECONDS``, without a restart. A file replaced half-way (a rotation's swap) keeps the keys in memory
    until the next look.
    """

    def __init__(self, dir: Path, name: str = "node") -> None:
        """Load the pair now: a missing or bad key is the caller's error at once (as :func:`load_keypair`)."""
        self._dir, self._name = Path(dir), name
        self._lock = threading.Lock()
        self._pair = load_keypair(self._dir, name)
        self._others: tuple[bytes, ...] = ()
        self._seen = self._stamp()
        self._load_others()
        self._checked = time.monotonic()

    @property
    def directory(self) -> Path:
        return self._dir

    @property
    def public(self) -> bytes:
        """The public key new files are encrypted to."""
        self._follow()
        return self._pair.public

    @property
    def secret(self) -> bytes:
        """The current secret key (the writer of headers re-keyed for recipients)."""
        self._follow()
        return self._pair.secret

    def secrets(self) -> tuple[bytes, ...]:
        """Every secret to try on a stored header, the current one first."""
        self._follow()
        return (self._pair.secret, *self._others)

    def _files(self) -> list[Path]:
        return [self._dir / f"{name}.sec" for name in (self._name, *self._rotation_names())]

    def _rotation_names(self) -> tuple[str, str]:
        return f"{self._name}.{NEXT}", f"{self._name}.{PREVIOUS}"

    def _stamp(self) -> tuple[int, ...]:
        return tuple(path.stat().st_mtime_ns if path.exists() else 0 for path in self._files())

    def _load_others(self) -> None:
        others = []
        for name in self._rotation_names():
            if (self._dir / f"{name}.sec").exists():
                secret = load_keypair(self._dir, name).secret
                if secret != self._pair.secret:
                    others.append(secret)
        self._others = tuple(others)

    def _follow(self) -> None:
        if time.monotonic() - self._checked < RELOAD_SECONDS:
            return
        with self._lock:
            if time.monotonic() - self._checked < RELOAD_SECONDS:
                return
            self._checked = time.monotonic()
            try:
                stamp = self._stamp()
                if stamp != self._seen:
                    self._pair = load_keypair(self._dir, self._name)
                    self._load_others()
                    self._seen = stamp
            except (OSError, InvalidKey):
                pass  # mid-rotation: keep the keys in memory, look again next time


#: What readers of stored files take: one secret key, a key pair, or the node's keys (which follow a rotation).
SecretKeys: TypeAlias = bytes | KeyPair | NodeKeys

#: Beside the key files: held shared by every process from encrypting a file to the node key until it is stored.
WRITERS_LOCK = ".writers.lock"


class WritersBusy(CryptError):
    """A process still stores files encrypted to the key a rotation would retire."""


@contextlib.contextmanager
def storing_encrypted(keys: KeyPair | NodeKeys) -> Iterator[None]:
    """Held around "encrypt to ``keys.public``, then store": a rotation retires no key until it is let go.

    An ingest encrypts each file as it stages it and stores the batch at the end, minutes later: a rotation
    that deleted the old secret key meanwhile left it storing files no key opened (``retire_when_stored``).
    A shared ``flock``, released by the kernel when the process dies, ``kill -9`` too. A plain key pair (a
    tool or a test, no key directory) has nothing to hold.
    """
    if not isinstance(keys, NodeKeys):
        yield
        return
    with _writers_lock(keys.directory) as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        yield


def retire_when_stored(keys_dir: Path, wait: float, waiting: Callable[[], None] | None = None) -> None:
    """Return once no process is between encrypting a file and storing it (``storing_encrypted``).

    Called by a rotation after every process encrypts to the new key: a writer still holding the lock may have
    encrypted to the old one, and its files must be stored before the last re-keying pass looks for them.
    ``waiting`` is called once if some writer holds it; after ``wait`` seconds, ``WritersBusy``.
    """
    deadline = time.monotonic() + wait
    with _writers_lock(keys_dir) as lock:
        told = False
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise WritersBusy(
                        f"a process (an ingest?) still stores files encrypted to the old key after {wait:.0f} s "
                        f"({keys_dir / WRITERS_LOCK} is held)"
                    ) from None
                if not told and waiting is not None:
                    waiting()
                    told = True
                time.sleep(0.1)


@contextlib.contextmanager
def _writers_lock(keys_dir: Path) -> Iterator[int]:
    descriptor = os.open(keys_dir / WRITERS_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        yield descriptor
    finally:
        os.close(descriptor)  # releases the lock


def secrets_of(keys: SecretKeys) -> tuple[bytes, ...]:
    """The secrets to try on a stored header, the current one first."""
    if isinstance(keys, NodeKeys):
        return keys.secrets()
    return (keys.secret,) if isinstance(keys, KeyPair) else (bytes(keys),)


def _b64(data: bytes) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidKey("public key is not valid base64") from exc


def _from_pem(data: bytes) -> bytes:
    lines = [line.strip() for line in io.BytesIO(data) if line.strip()]
    if len(lines) < 3 or lines[0] != _PUB_BEGIN or lines[-1] != _PUB_END:
        raise InvalidKey("public key PEM must be a CRYPT4GH PUBLIC KEY block")
    return _b64(b"".join(lines[1:-1]))


def _check_usable(key: bytes) -> bytes:
    if len(key) != KEY_SIZE:
        raise InvalidKey(f"public key must be {KEY_SIZE} bytes, got {len(key)}")
    # A low-order point (e.g. all zeros) gives an all-zero shared secret; libsodium refuses it.
    # Finding out now turns a later server error into a clean client error.
    probe = os.urandom(KEY_SIZE)
    try:
        sodium.kx_client(sodium.derive_pk(probe), probe, key)
    except Exception as exc:  # the binding raises bare Exception subclasses of several kinds
        raise InvalidKey("public key is not a usable X25519 point") from exc
    return bytes(key)


def parse_public_key(value: str | bytes) -> bytes:
    """Return the raw 32-byte X25519 key from what a client or operator hands us.

    Accepted: the ``.pub`` file content (PEM-like), the base64 of that content (htsget clients
    put the key file in an HTTP header that way), the base64 of the raw key, or the raw 32 bytes.
    Anything else raises :class:`InvalidKey`.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        if len(data) == KEY_SIZE:
            # Cannot be text: any textual form of a 32-byte key is at least 44 characters.
            return _check_usable(data)
    elif isinstance(value, str):
        try:
            data = value.encode("ascii")
        except UnicodeEncodeError as exc:
            raise InvalidKey("public key text must be ASCII") from exc
    else:
        raise InvalidKey(f"public key must be str or bytes, not {type(value).__name__}")
    data = data.strip()
    if data.startswith(b"-----BEGIN"):
        return _check_usable(_from_pem(data))
    decoded = _b64(data)
    if decoded.lstrip().startswith(b"-----BEGIN"):
        return _check_usable(_from_pem(decoded.strip()))
    return _check_usable(decoded)
