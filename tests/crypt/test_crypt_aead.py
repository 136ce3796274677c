"""The segment decryptor releases the GIL, decrypts what was encrypted and refuses everything it should.

A node serving Crypt4GH files trusts it with authentication, so the checks are the ones a reviewer would ask
for: right plaintext under several session keys, and a refusal for a flipped bit anywhere in a segment, a
truncated segment, or a key that is not the file's.
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import pytest
from c4gh_testlib import Sample
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from genoshare.crypt import CorruptSegment, EncryptedFile, KeyPair
from genoshare.crypt.aead import CIPHER_SEGMENT, NONCE_SIZE, SEGMENT, decryptor


def _segments(key: bytes, plain: bytes) -> bytearray:
    out = bytearray()
    for at in range(0, len(plain), SEGMENT):
        nonce = os.urandom(NONCE_SIZE)
        out += nonce + ChaCha20Poly1305(key).encrypt(nonce, plain[at : at + SEGMENT], None)
    return out


def test_the_cipher_lets_other_threads_run_while_it_decrypts() -> None:
    """The event loop keeps sending while a worker decrypts: ``decrypt_into`` lets go of the GIL (cryptography >= 50).

    A 64 KiB segment is too short to watch, so one 64 MiB message is decrypted in a worker while the main
    thread timestamps in a loop. Holding the GIL leaves one gap nearly as long as the call (cryptography 48
    and 49 did: 0.87-1.0 of it); released, the gaps are the scheduler's. Best of three, for a busy host.
    """
    key, nonce = os.urandom(32), os.urandom(NONCE_SIZE)
    aead = ChaCha20Poly1305(key)
    sealed = aead.encrypt(nonce, bytes(64 << 20), None)
    out = bytearray(64 << 20)
    shares = []
    for _ in range(3):
        done = threading.Event()

        def decrypt(done: threading.Event = done) -> None:
            aead.decrypt_into(nonce, sealed, None, out)
            done.set()

        worker = threading.Thread(target=decrypt)
        started = last = time.perf_counter()
        gap = 0.0
        worker.start()
        while not done.is_set():
            now = time.perf_counter()
            gap, last = max(gap, now - last), now
        shares.append(gap / (time.perf_counter() - started))
        worker.join()
    assert min(shares) < 0.5, shares


@pytest.mark.parametrize("size", [0, 1, SEGMENT - 1, SEGMENT, 3 * SEGMENT + 17])
def test_what_was_encrypted_decrypts(size: int) -> None:
    keys = [os.urandom(32), os.urandom(32)]
    plain = random.Random(size).randbytes(size)
    sealed = _segments(keys[1], plain)
    out = bytearray(len(plain))
    assert decryptor(keys).decrypt(memoryview(sealed), memoryview(out)) == (len(plain), None)
    assert bytes(out) == plain


def test_tampering_and_wrong_keys_are_refused() -> None:
    key = os.urandom(32)
    plain = random.Random(1).randbytes(2 * SEGMENT + 100)
    sealed = _segments(key, plain)
    out = memoryview(bytearray(len(plain)))
    for at in (0, NONCE_SIZE, CIPHER_SEGMENT - 1, CIPHER_SEGMENT + 5000, len(sealed) - 1):
        tampered = bytearray(sealed)
        tampered[at] ^= 0x40
        assert decryptor([key]).decrypt(memoryview(tampered), out)[1] == at // CIPHER_SEGMENT
    assert decryptor([os.urandom(32)]).decrypt(memoryview(sealed), out) == (0, 0)
    assert decryptor([key]).decrypt(memoryview(sealed[: 2 * CIPHER_SEGMENT + 10]), out)[1] == 2


def test_stored_files_read_the_same_from_many_threads(sample: Sample, node_keys: KeyPair) -> None:
    rng = random.Random(3)
    spans = [sorted(rng.randrange(0, len(sample.plain) + 1) for _ in range(2)) for _ in range(40)]
    failures: list[str] = []
    kept: list[tuple[int, int, memoryview]] = []
    with EncryptedFile(sample.path, node_keys.secret) as file:

        def read(part: list[list[int]]) -> None:
            for start, end in part:
                if file.read_plaintext(start, end) != sample.plain[start:end]:
                    failures.append(f"{start}-{end}")
                if bytes(file.plaintext_view(start, end)) != sample.plain[start:end]:
                    failures.append(f"view {start}-{end}")
                # Into a caller's buffer (as /data does); kept, to show later reads on this thread reuse nothing
                # a returned view holds.
                into = memoryview(bytearray(file.covering_size(start, end)))
                kept.append((start, end, file.plaintext_view(start, end, into)))

        threads = [threading.Thread(target=read, args=(spans[i::4],)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
    assert all(bytes(view) == sample.plain[start:end] for start, end, view in kept)


def test_reads_into_a_callers_buffer(sample: Sample, node_keys: KeyPair) -> None:
    with EncryptedFile(sample.path, node_keys.secret) as file:
        size = file.plaintext_size
        assert file.covering_size(0, 0) == 0
        assert file.covering_size(0, 1) == file.covering_size(SEGMENT - 1, SEGMENT) == SEGMENT
        assert file.covering_size(SEGMENT - 1, SEGMENT + 1) == 2 * SEGMENT
        assert file.covering_size(size - 1, size + 10) == SEGMENT  # clamped like a slice
        into = bytearray(file.covering_size(SEGMENT - 1, 2 * SEGMENT + 1))
        view = file.plaintext_view(SEGMENT - 1, 2 * SEGMENT + 1, memoryview(into))
        assert view.obj is into and bytes(view) == sample.plain[SEGMENT - 1 : 2 * SEGMENT + 1]
        with pytest.raises(ValueError, match="cannot hold"):
            file.plaintext_view(SEGMENT - 1, SEGMENT + 1, memoryview(bytearray(SEGMENT)))


def test_a_forged_stored_segment_fails_with_its_number(sample: Sample, node_keys: KeyPair, tmp_path: Path) -> None:
    forged = tmp_path / "forged.c4gh"
    data = bytearray(sample.path.read_bytes())
    with EncryptedFile(sample.path, node_keys.secret) as file:
        data[file.header_size + CIPHER_SEGMENT + 100] ^= 1
    forged.write_bytes(bytes(data))
    with EncryptedFile(forged, node_keys.secret) as file, pytest.raises(CorruptSegment) as raised:
        file.read_plaintext(0, 3 * SEGMENT)
    assert raised.value.segment == 1
