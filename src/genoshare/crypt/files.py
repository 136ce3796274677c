"""Crypt4GH files at rest: encryption, random-access decryption, header re-encryption.

What comes from the ``crypt4gh`` package (1.8.6): whole-file encryption (``crypt4gh.lib.encrypt``),
header parsing/serialisation and packet (de)construction (``crypt4gh.header``, whose X25519 runs on
crypt4gh's own libsodium binding). Data segments are decrypted with OpenSSL's ChaCha20-Poly1305-IETF
(the same construction: 12-byte nonce, 16-byte tag), measured 1.6-2x faster here than crypt4gh's
libsodium binding, into caller-supplied buffers; ``genoshare.crypt.aead`` calls it through ``cryptography``,
which releases the GIL while a segment is decrypted (a web server keeps sending meanwhile).

What is written here, because the package does not offer it:

* random access: mapping a plaintext range to the covering segments and reading those runs with
  ``os.preadv`` into a reused buffer (the package only streams a file front to back);
* a small cache of opened headers, keyed by the header's bytes and the secret key: a ticket or a
  ``/data`` request opens the file again, and the X25519 exchange behind each header packet costs
  more than the rest of opening; keying on content (not path or mtime) means a replaced file can
  never be read with stale keys;
* re-encryption for arbitrary plaintext ranges: the package's ``rearrange`` takes one range,
  re-encrypts for the same keys and refuses multi-range edit lists; here the header is rewritten
  for a recipient and an edit list is computed for any sequence of ranges, while the data
  segments are only *referenced* (byte ranges of the original file), never re-encrypted.

Layout reminder (Crypt4GH v1): header, then segments of 65 536 plaintext bytes, each stored as
12-byte nonce + ciphertext + 16-byte MAC (65 564 bytes; the last one may be shorter). Segment
``i`` therefore starts at ``header_size + i * 65564`` and holds plaintext ``[i * 65536, ...)``.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import crypt4gh.lib
from crypt4gh import CIPHER_DIFF, CIPHER_SEGMENT_SIZE, SEGMENT_SIZE, header, sodium
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from genoshare.crypt.aead import decryptor
from genoshare.crypt.errors import CorruptSegment, InvalidKey, NotDecryptable, UnsupportedFormat
from genoshare.crypt.keys import KEY_SIZE, KeyPair, NodeKeys, SecretKeys, parse_public_key, secrets_of

__all__ = [
    "CIPHER_SEGMENT_SIZE",
    "ENCRYPTED_SUFFIX",
    "SEGMENT_SIZE",
    "EncryptedFile",
    "LocalFile",
    "Positional",
    "PositionalIO",
    "Reencryption",
    "encrypt_file",
]

#: How a stored object's name says it is a Crypt4GH file (plaintext objects of public datasets lack it).
ENCRYPTED_SUFFIX = ".c4gh"

_X25519_CHACHA20 = (0).to_bytes(4, "little")  # the only header encryption method in v1
#: Headers kept per cache (a few hundred bytes each): more than the files (and recipients) a node serves at once.
_HEADER_CACHE_SIZE = 256
_K = TypeVar("_K")
_V = TypeVar("_V")


class _HeaderCache(Generic[_K, _V]):
    """A thread-safe LRU of header work: session keys of opened headers, headers re-keyed to a recipient.

    Only successes are kept, so every error is raised again on the next attempt.
    """

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._entries: OrderedDict[_K, _V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: _K) -> _V | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: _K, value: _V) -> None:
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self._maxsize:
                self._entries.popitem(last=False)


_scratch = threading.local()
#: Largest ciphertext read into the calling thread's reused buffer: a 1 MiB streaming piece's segments.
_SCRATCH_MAX = 16 * CIPHER_SEGMENT_SIZE


def _cipher_scratch(size: int) -> memoryview:
    """A buffer of ``size`` bytes for ciphertext about to be decrypted, reused by the calling thread.

    Ciphertext never leaves the call that decrypts it, so each thread keeps one buffer instead of allocating
    (and faulting in) a fresh one per read; larger reads than streaming's get a buffer of their own.
    """
    if size > _SCRATCH_MAX:
        return memoryview(bytearray(size))
    buffer: memoryview | None = getattr(_scratch, "buffer", None)
    if buffer is None or len(buffer) < size:
        buffer = _scratch.buffer = memoryview(bytearray(size))
    return buffer[:size]


#: Session keys of opened headers, keyed by (secret keys tried, raw header packets).
_opened_headers: _HeaderCache[tuple[tuple[bytes, ...], tuple[bytes, ...]], tuple[bytes, ...]] = _HeaderCache(
    _HEADER_CACHE_SIZE
)
#: Headers without an edit list re-keyed to a recipient, keyed by (secret key, session keys, recipient key).
_rekeyed_headers: _HeaderCache[tuple[bytes, tuple[bytes, ...], bytes], bytes] = _HeaderCache(_HEADER_CACHE_SIZE)


def _sealed_packet(packet: bytes, writer_public: bytes, shared_key: bytes) -> bytes:
    """One header packet sealed as crypt4gh's X25519_chacha20_ietf_poly1305 method, nonce derived, not random.

    crypt4gh draws a random nonce per packet, so the same file re-keyed to the same recipient came out as
    different bytes in another server process or after a restart, and a client resuming a download, or
    splitting it over Range requests served by several workers, joined pieces of different headers. Here the
    nonce is an HMAC of the packet under the X25519 shared key (a synthetic IV): a nonce repeats only for the
    same key and the same packet, which then seals to the same bytes -- all a repeat reveals is that two
    headers for one recipient are equal. The format is crypt4gh's (method, writer key, nonce, ciphertext,
    MAC), which ``crypt4gh decrypt`` reads; the package offers no way to pass a nonce, hence these lines.
    """
    nonce = hmac.new(shared_key, packet, hashlib.sha256).digest()[:12]
    sealed = ChaCha20Poly1305(shared_key).encrypt(nonce, bytes(packet), None)
    return _X25519_CHACHA20 + writer_public + nonce + sealed


def encrypt_file(src: Path, dst: Path, keys: KeyPair | NodeKeys) -> None:
    """Encrypt ``src`` to ``dst`` for ``keys.public``, in constant memory (one 64 KiB segment at a time).

    The header is written with a fresh ephemeral writer key rather than the node's secret key: the
    node's own files need no sender authentication, and the ephemeral key keeps the node's long-term
    secret out of the header-encryption path. The output appears atomically (temp file + rename),
    so a crash never leaves a truncated ``.c4gh`` that DRS would serve as if complete.
    """
    src, dst = Path(src), Path(dst)
    public = keys.public
    if len(public) != KEY_SIZE:
        raise InvalidKey("node public key must be 32 bytes")
    tmp = dst.with_name(f".{dst.name}.{secrets.token_hex(8)}.part")
    try:
        with open(src, "rb") as fin, open(tmp, "xb") as fout:
            crypt4gh.lib.encrypt([(0, os.urandom(KEY_SIZE), public)], fin, fout)
            fout.flush()
            os.fsync(fout.fileno())
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Reencryption:
    """What to send a recipient: ``header`` followed by the bytes of ``data_ranges`` of the original file.

    ``data_ranges`` are half-open ``(start, end)`` byte offsets into the *stored* ``.c4gh`` file, in
    sending order, always whole segments. A segment may appear twice when the requested plaintext
    ranges overlap or go backwards: that is legal Crypt4GH (segments decrypt independently) and
    keeps the edit list a simple forward walk. htsget can hand these out as ``Range`` requests
    (inclusive ends: ``end - 1``) against the stored object.
    """

    header: bytes
    data_ranges: tuple[tuple[int, int], ...]

    @property
    def size(self) -> int:
        return len(self.header) + sum(end - start for start, end in self.data_ranges)


class Positional(Protocol):
    """Stored bytes read by position, from several threads at once: a local file, or a remote object.

    The one thing readers of stored bytes need, so that a file on disk and an object in an S3 store
    (``genoshare.store.objects``: ranged GETs, never a whole copy) are read by the same code.
    ``name`` is for messages and cache keys; it never carries a credential.
    """

    name: str
    size: int

    def readinto(self, into: memoryview, offset: int) -> int:
        """Fill ``into`` from ``offset`` as far as the bytes go; the count read (0 at the end)."""
        ...

    def close(self) -> None: ...


class LocalFile:
    """A file on this machine read with ``os.preadv`` on one descriptor (safe from several threads)."""

    def __init__(self, path: Path) -> None:
        self.name = str(path)
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self.size: int = os.fstat(self.fd).st_size

    def readinto(self, into: memoryview, offset: int) -> int:
        return os.preadv(self.fd, [into], offset) if len(into) else 0

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class PositionalIO(io.RawIOBase):
    """A seekable binary handle over :class:`Positional` bytes (wrap it in ``io.BufferedReader`` to read ahead).

    Closing the handle leaves the bytes open: whoever opened them closes them.
    """

    def __init__(self, source: Positional) -> None:
        super().__init__()
        self._source = source
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._source.size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = self._source.readinto(view[: max(min(len(view), self._source.size - self._pos), 0)], self._pos)
        self._pos += n
        return n


def _positional(source: Path | Positional) -> Positional:
    return LocalFile(Path(source)) if isinstance(source, str | os.PathLike) else source


class EncryptedFile:
    """A stored Crypt4GH file, opened once with the node's secret key.

    The header is decrypted in the constructor (or found in the cache of opened headers); afterwards
    reads use ``os.preadv`` on a shared descriptor and per-call buffers, so one instance may serve
    concurrent range requests from several threads. OpenSSL's cipher, as called by ``cryptography``,
    holds the GIL while decrypting: async servers should iterate in a worker thread (Starlette's
    ``StreamingResponse`` does this for sync iterators).

    Stored files with an edit list are refused (:class:`UnsupportedFormat`): the node writes its
    files itself (:func:`encrypt_file`) and never produces one.
    """

    def __init__(self, source: Path | Positional, secret_key: SecretKeys) -> None:
        """Open ``source``: a local path, or stored bytes (which this file then owns and closes).

        ``secret_key``: the key the header is encrypted to, or the node's keys, whose every secret is tried (a
        header is encrypted to the old key or the new one while ``genoshare rotate node-key`` runs).
        """
        self._secrets = secrets_of(secret_key)
        if any(len(secret) != KEY_SIZE for secret in self._secrets):
            raise InvalidKey("node secret key must be 32 bytes")
        #: The writer of headers re-keyed for recipients: the current key.
        self._secret = self._secrets[0]
        self._file = _positional(source)
        self.path = Path(self._file.name)
        try:
            head = io.BufferedReader(PositionalIO(self._file), 1 << 16)
            self._session_keys = self._open_header(head)
            self._decryptor = decryptor(self._session_keys)
            self.header_size: int = head.tell()
            self.file_size: int = self._file.size
            full, rest = divmod(self.file_size - self.header_size, CIPHER_SEGMENT_SIZE)
            if 0 < rest <= CIPHER_DIFF:
                raise CorruptSegment(f"{self.path}: final segment truncated to {rest} bytes", full)
            self.segment_count: int = full + (1 if rest else 0)
            self.plaintext_size: int = full * SEGMENT_SIZE + (rest - CIPHER_DIFF if rest else 0)
        except BaseException:
            self._file.close()
            raise

    def _open_header(self, head: io.BufferedIOBase) -> tuple[bytes, ...]:
        try:
            raw_packets = list(header.parse(head))
        except ValueError as exc:
            raise NotDecryptable(f"{self.path}: not a readable Crypt4GH v1 header ({exc})") from exc
        cache_key = (self._secrets, tuple(bytes(packet) for packet in raw_packets))
        cached = _opened_headers.get(cache_key)
        if cached is not None:
            return cached
        session_keys = self._decrypt_packets(raw_packets)
        _opened_headers.put(cache_key, session_keys)
        return session_keys

    def _decrypt_packets(self, raw_packets: list[bytes]) -> tuple[bytes, ...]:
        # Our own loop over crypt4gh's packet decryption instead of header.decrypt(), which logs every
        # packet addressed to someone else at ERROR level.
        plain_packets = []
        for packet in raw_packets:
            if packet[:4] != _X25519_CHACHA20:
                continue
            for secret in self._secrets:
                try:
                    plain_packets.append(header.decrypt_X25519_Chacha20_Poly1305(packet[4:], secret))
                    break
                except Exception:  # noqa: S112 - a packet for another recipient is expected, not an error
                    continue
        if not plain_packets:
            raise NotDecryptable(f"{self.path}: no header packet opens with this key (wrong key?)")
        try:
            data_packets, edit_packet = header.partition_packets(plain_packets)
            session_keys = tuple(bytes(header.parse_enc_packet(p)) for p in data_packets)
        except ValueError as exc:
            raise UnsupportedFormat(f"{self.path}: {exc}") from exc
        if edit_packet is not None:
            raise UnsupportedFormat(f"{self.path}: stored files with an edit list are not served")
        if not session_keys or any(len(k) != KEY_SIZE for k in session_keys):
            raise NotDecryptable(f"{self.path}: header carries no valid session key")
        return session_keys

    def stored_header(self, public_key: bytes) -> bytes:
        """The session keys in a header for ``public_key`` alone, as :func:`encrypt_file` writes one.

        For a rotation of the node key: the header is all that changes, so the data segments stay as they are.
        A fresh ephemeral writer key, as on ingest; the same length as the header it replaces (one packet per
        session key, of fixed size), so the segments keep their offsets.
        """
        packets = [header.make_packet_data_enc(0, key) for key in self._session_keys]
        writer = os.urandom(KEY_SIZE)
        return header.serialize(
            [sealed for packet in packets for sealed in header.encrypt(packet, [(0, writer, public_key)])]
        )

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> EncryptedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EncryptedFile({str(self.path)!r}, plaintext_size={self.plaintext_size})"

    # -- plaintext ---------------------------------------------------------------------------------

    def _clamp(self, start: int, end: int | None) -> tuple[int, int]:
        """Half-open range in plaintext coordinates; an end past the file is clamped like a slice.

        Clamping (rather than raising) matches HTTP Range semantics, where a client may ask for
        more than exists; negative or inverted ranges are caller bugs and raise ``ValueError``.
        """
        if end is None:
            end = self.plaintext_size
        if start < 0 or end < start:
            raise ValueError(f"invalid plaintext range [{start}, {end})")
        return min(start, self.plaintext_size), min(end, self.plaintext_size)

    def iter_plaintext(self, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Yield exactly the plaintext bytes ``[start, end)``, decrypting only the covering segments.

        Pieces are at most ``max(64 KiB, chunk_size rounded down to whole segments)``; the first and
        last may be shorter. Arguments are checked now, not at the first ``next()``, so a web handler
        can turn a ``ValueError`` into a 416 before it starts a response.
        """
        start, end = self._clamp(start, end)
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        return self._plaintext(start, end, max(1, chunk_size // SEGMENT_SIZE))

    def read_plaintext(self, start: int, end: int) -> bytes:
        """The plaintext bytes ``[start, end)`` (clamped), decrypted in one batch of the covering segments.

        For small random reads (the range engine's BGZF edge blocks): one ``preadv`` and one decryption pass,
        where the streaming iterator would allocate its buffers and yield piece by piece.
        """
        return bytes(self._view(start, end))

    def plaintext_view(self, start: int, end: int, into: memoryview | None = None) -> memoryview:
        """Like :meth:`read_plaintext`, as a view of a buffer no one else uses (no copy).

        For streaming: the decryptor releases the GIL, so several pieces decrypt in parallel with each other
        and with the event loop sending the previous ones.  Thread-safe.  ``into``, a writable buffer of at
        least :meth:`covering_size` bytes, is decrypted into instead of a new one: a server allocates it on its
        event loop, where freed buffers are reused, while one allocated in a worker thread and freed in the
        loop came back from the kernel every time (about 250 page faults per MiB, as costly as the cipher).
        """
        return self._view(start, end, into)

    def covering_size(self, start: int, end: int) -> int:
        """Plaintext bytes of the whole segments that hold ``[start, end)`` (the buffer a read decrypts into)."""
        start, end = self._clamp(start, end)
        return 0 if start >= end else ((end - 1) // SEGMENT_SIZE - start // SEGMENT_SIZE + 1) * SEGMENT_SIZE

    def _view(self, start: int, end: int, into: memoryview | None = None) -> memoryview:
        start, end = self._clamp(start, end)
        if start >= end:
            return memoryview(b"")
        first, last = start // SEGMENT_SIZE, (end - 1) // SEGMENT_SIZE
        count = last - first + 1
        if into is None:
            into = memoryview(bytearray(count * SEGMENT_SIZE))
        elif len(into) < count * SEGMENT_SIZE:
            raise ValueError(f"{len(into)} bytes cannot hold the {count} segments of [{start}, {end})")
        cipher = _cipher_scratch(count * CIPHER_SEGMENT_SIZE)
        got = self._read_segments(first, count, cipher)
        produced = self._decrypt_segments(first, cipher[:got], into)
        base = first * SEGMENT_SIZE
        return into[start - base : min(end - base, produced)]

    def _plaintext(self, start: int, end: int, batch: int) -> Iterator[bytes]:
        if start >= end:
            return
        cipher = memoryview(bytearray(batch * CIPHER_SEGMENT_SIZE))
        plain = memoryview(bytearray(batch * SEGMENT_SIZE))
        segment, last = start // SEGMENT_SIZE, (end - 1) // SEGMENT_SIZE
        while segment <= last:
            count = min(batch, last - segment + 1)
            got = self._read_segments(segment, count, cipher)
            produced = self._decrypt_segments(segment, cipher[:got], plain)
            base = segment * SEGMENT_SIZE
            # bytes() copies out of the reused buffer: consumers (asyncio transports) may keep a
            # reference after we resume, and the copy is cheap next to the decryption.
            yield bytes(plain[max(start - base, 0) : min(end - base, produced)])
            segment += count

    def _read_segments(self, first: int, count: int, into: memoryview) -> int:
        offset = self.header_size + first * CIPHER_SEGMENT_SIZE
        want = min(count * CIPHER_SEGMENT_SIZE, self.file_size - offset)
        got = 0
        while got < want:
            n = self._file.readinto(into[got:want], offset + got)
            if n == 0:
                raise CorruptSegment(f"{self.path}: file shrank while reading", first + got // CIPHER_SEGMENT_SIZE)
            got += n
        return got

    def _decrypt_segments(self, first: int, cipher: memoryview, plain: memoryview) -> int:
        """Decrypt consecutive stored segments into ``plain``; return the plaintext length.

        A segment too short to hold a nonce and a tag fails like a forged one: both mean altered bytes.
        The decryptor releases the GIL (``genoshare.crypt.aead``), so a web server's event loop keeps sending
        while a worker is in here.
        """
        produced, failed = self._decryptor.decrypt(cipher, plain)
        if failed is not None:
            index = first + failed
            raise CorruptSegment(f"{self.path}: segment {index} fails authentication", index)
        return produced

    # -- re-encryption -----------------------------------------------------------------------------

    def _segment_plain_len(self, index: int) -> int:
        if index < self.segment_count - 1:
            return SEGMENT_SIZE
        return self.plaintext_size - index * SEGMENT_SIZE

    def _plan(self, ranges: Sequence[tuple[int, int]]) -> tuple[list[int], list[int]]:
        """Choose the segments to send and the edit list that cuts the requested bytes out of them.

        The edit list alternates skip/keep lengths over the plaintext of the segments *as sent*.
        Consecutive ranges that move forward share segments; a range that overlaps or precedes the
        previous one gets fresh copies of its segments, so every skip stays forward and shorter than
        two segments (no segment is sent only to be skipped entirely). The one thing that cannot be
        expressed is sending anything after the file's short final segment (``ValueError``); this
        only happens for overlapping/backward ranges that reach the end of the file.
        """
        sent: list[int] = []
        edits: list[int] = []
        stream_len = 0  # plaintext length of the segments chosen so far
        cursor = 0  # stream position just past the last kept byte
        prev_end = -1
        for raw_start, raw_end in ranges:
            start, end = self._clamp(raw_start, raw_end)
            if start == end:
                continue
            first, last = start // SEGMENT_SIZE, (end - 1) // SEGMENT_SIZE
            if sent and sent[-1] == first and start >= prev_end:
                pos = stream_len - self._segment_plain_len(first) + start - first * SEGMENT_SIZE
                first += 1
            else:
                pos = stream_len + start - first * SEGMENT_SIZE
            for index in range(first, last + 1):
                if sent and self._segment_plain_len(sent[-1]) < SEGMENT_SIZE:
                    # Readers frame segments by fixed size, so a short segment can only come last.
                    raise ValueError(
                        f"range [{start}, {end}) after one reaching the end of the file: "
                        "the short final segment must be the last one sent; send ascending ranges"
                    )
                sent.append(index)
                stream_len += self._segment_plain_len(index)
            skip, keep = pos - cursor, end - start
            if edits and skip == 0:
                edits[-1] += keep  # crypt4gh rejects zero skips between keeps
            else:
                edits += [skip, keep]
            cursor, prev_end = pos + keep, end
        return sent, edits

    def _byte_ranges(self, segments: Sequence[int]) -> tuple[tuple[int, int], ...]:
        runs: list[list[int]] = []
        for index in segments:
            if runs and runs[-1][1] == index:
                runs[-1][1] = index + 1
            else:
                runs.append([index, index + 1])
        return tuple(
            (
                self.header_size + a * CIPHER_SEGMENT_SIZE,
                min(self.header_size + b * CIPHER_SEGMENT_SIZE, self.file_size),
            )
            for a, b in runs
        )

    def reencrypted(
        self, recipient_public_key: bytes | str, ranges: Sequence[tuple[int, int]] | None = None
    ) -> Reencryption:
        """Header for ``recipient_public_key`` plus the stored segments to send after it.

        ``ranges`` (half-open plaintext ranges, clamped like :meth:`iter_plaintext`) select parts of
        the plaintext; the recipient then decrypts to their concatenation, in the given order (see
        :meth:`_plan` for the one ordering that is refused with ``ValueError``). With
        ``None`` the whole file is sent and no edit list is written. The header packets are
        encrypted with the node's secret key as writer, so a recipient can check the sender with
        ``crypt4gh decrypt --sender_pk node.pub``.
        """
        recipient = parse_public_key(recipient_public_key)
        edits: list[int]
        if ranges is None:
            segments, edits = list(range(self.segment_count)), []
        else:
            segments, edits = self._plan(ranges)
        return Reencryption(header=self._rekeyed_header(recipient, edits), data_ranges=self._byte_ranges(segments))

    def _rekeyed_header(self, recipient: bytes, edits: list[int]) -> bytes:
        """The session keys (and ``edits``, if any) in a header for ``recipient``.

        The same keys and edits give the same bytes in every process (``_sealed_packet``), which a client
        joining ``Range`` requests that cut through the header relies on. Without an edit list the header
        depends only on the keys, so it is also remembered: tickets and ``/data`` requests then skip the
        X25519 exchange.
        """
        cache_key = (self._secret, self._session_keys, recipient)
        if not edits and (cached := _rekeyed_headers.get(cache_key)) is not None:
            return cached
        packets = [header.make_packet_data_enc(0, key) for key in self._session_keys]
        if edits:
            packets.append(header.make_packet_data_edit_list(edits))
        public = sodium.derive_pk(self._secret)
        try:
            shared = sodium.kx_server(public, self._secret, recipient)
        except Exception as exc:  # libsodium refuses degenerate keys with a bare exception
            raise InvalidKey("cannot encrypt a header for this public key") from exc
        rekeyed = header.serialize([_sealed_packet(packet, public, shared) for packet in packets])
        if not edits:
            _rekeyed_headers.put(cache_key, rekeyed)
        return rekeyed

    def iter_reencrypted(self, reencryption: Reencryption, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Stream a :class:`Reencryption` of this file: its header, then the stored segment bytes as-is."""
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        return self._raw(reencryption, chunk_size)

    def _raw(self, reencryption: Reencryption, chunk_size: int) -> Iterator[bytes]:
        yield reencryption.header
        for start, end in reencryption.data_ranges:
            offset = start
            while offset < end:
                buffer = memoryview(bytearray(min(chunk_size, end - offset)))
                data = bytes(buffer[: self._file.readinto(buffer, offset)])
                if not data:
                    index = (offset - self.header_size) // CIPHER_SEGMENT_SIZE
                    raise CorruptSegment(f"{self.path}: file shrank while reading", index)
                yield data
                offset += len(data)
