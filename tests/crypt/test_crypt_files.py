from __future__ import annotations

import io
import random
from collections.abc import Callable
from pathlib import Path

import crypt4gh.lib
import pytest
from c4gh_testlib import DATA, Sample, c4gh_decrypt, fresh_keys

from genoshare.crypt import CorruptSegment, EncryptedFile, KeyPair, NotDecryptable, encrypt_file, load_keypair
from genoshare.crypt.files import CIPHER_SEGMENT_SIZE, SEGMENT_SIZE

SHIPPED = sorted((DATA / "c4gh").glob("*.c4gh"))
PLAIN_DIR = {".bam": "bam", ".cram": "cram", ".vcf.gz": "vcf", ".bcf": "bcf"}


def plain_of(c4gh: Path) -> Path:
    name = c4gh.name.removesuffix(".c4gh")
    folder = next(d for ext, d in PLAIN_DIR.items() if name.endswith(ext))
    return DATA / folder / name


@pytest.mark.parametrize("size", [0, 1, SEGMENT_SIZE - 1, SEGMENT_SIZE, SEGMENT_SIZE + 1, 3 * SEGMENT_SIZE + 1000])
def test_encrypt_file_round_trips_through_reference_decrypt(
    size: int, make_encrypted: Callable[[int], Sample], node_keys: KeyPair
) -> None:
    plain, path = make_encrypted(size)
    assert c4gh_decrypt(path.read_bytes(), node_keys.secret) == plain
    with EncryptedFile(path, node_keys.secret) as f:
        assert f.plaintext_size == size
        assert b"".join(f.iter_plaintext()) == plain


def test_encrypt_file_leaves_no_partial_output(tmp_path: Path, node_keys: KeyPair) -> None:
    with pytest.raises(FileNotFoundError):
        encrypt_file(tmp_path / "missing", tmp_path / "out.c4gh", node_keys)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("c4gh", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_htsget_files_decrypt_with_bob(c4gh: Path) -> None:
    bob = load_keypair(DATA / "c4gh" / "keys", "bob")
    expected = plain_of(c4gh).read_bytes()
    with EncryptedFile(c4gh, bob.secret) as f:
        assert f.plaintext_size == len(expected)
        assert b"".join(f.iter_plaintext()) == expected
        middle = len(expected) // 3
        assert b"".join(f.iter_plaintext(middle, middle + 70_000)) == expected[middle : middle + 70_000]


def boundary_pairs(size: int) -> list[tuple[int, int]]:
    points = [0, 1, SEGMENT_SIZE - 1, SEGMENT_SIZE, SEGMENT_SIZE + 1, 2 * SEGMENT_SIZE, size - 1, size]
    return [(a, b) for a in points for b in points if a <= b]


def test_iter_plaintext_matches_slices(sample: Sample, node_keys: KeyPair) -> None:
    plain, path = sample
    rng = random.Random(7)
    pairs = boundary_pairs(len(plain))
    for _ in range(300):
        a, b = sorted(rng.randrange(len(plain) + 1) for _ in range(2))
        pairs.append((a, b))
    pairs += [(0, len(plain)), (10, 10), (len(plain), len(plain))]
    with EncryptedFile(path, node_keys.secret) as f:
        for a, b in pairs:
            for chunk_size in (1 << 20, SEGMENT_SIZE, 3 * SEGMENT_SIZE + 5):
                assert b"".join(f.iter_plaintext(a, b, chunk_size)) == plain[a:b], (a, b, chunk_size)


def test_iter_plaintext_piece_sizes(sample: Sample, node_keys: KeyPair) -> None:
    _, path = sample
    with EncryptedFile(path, node_keys.secret) as f:
        pieces = [len(p) for p in f.iter_plaintext(5, f.plaintext_size, 2 * SEGMENT_SIZE)]
        assert max(pieces) == 2 * SEGMENT_SIZE and pieces[0] == 2 * SEGMENT_SIZE - 5
        assert all(len(p) <= SEGMENT_SIZE for p in f.iter_plaintext(0, None, 1))
        assert list(f.iter_plaintext(3, 3)) == []


def test_iter_plaintext_range_rules(sample: Sample, node_keys: KeyPair) -> None:
    plain, path = sample
    with EncryptedFile(path, node_keys.secret) as f:
        # An end past the file is clamped, like a slice or an HTTP Range.
        assert b"".join(f.iter_plaintext(len(plain) - 10, len(plain) + 10**9)) == plain[-10:]
        assert list(f.iter_plaintext(len(plain) + 5, len(plain) + 50)) == []
        for bad in [(-1, 5), (10, 5)]:
            with pytest.raises(ValueError):  # raised at the call, before iteration starts
                f.iter_plaintext(*bad)
        with pytest.raises(ValueError):
            f.iter_plaintext(0, 10, 0)


def test_header_size_and_layout(sample: Sample, node_keys: KeyPair) -> None:
    plain, path = sample
    with EncryptedFile(path, node_keys.secret) as f:
        assert f.segment_count == -(-len(plain) // SEGMENT_SIZE)
        assert f.file_size == f.header_size + len(plain) + 28 * f.segment_count
        rest = path.read_bytes()[f.header_size :]
        assert len(rest) == (f.segment_count - 1) * CIPHER_SEGMENT_SIZE + (len(plain) % SEGMENT_SIZE) + 28


def test_wrong_key_is_not_decryptable(sample: Sample) -> None:
    _, path = sample
    with pytest.raises(NotDecryptable, match="wrong key"):
        EncryptedFile(path, fresh_keys().secret)
    alice = load_keypair(DATA / "c4gh" / "keys", "alice")
    with pytest.raises(NotDecryptable):
        EncryptedFile(DATA / "c4gh" / "spec-v4.3.vcf.gz.c4gh", alice.secret)


@pytest.mark.parametrize("content", [b"", b"not crypt4gh at all", b"crypt4gh\x02\x00\x00\x00\x01\x00\x00\x00"])
def test_not_crypt4gh_is_not_decryptable(tmp_path: Path, content: bytes, node_keys: KeyPair) -> None:
    (tmp_path / "x.c4gh").write_bytes(content)
    with pytest.raises(NotDecryptable):
        EncryptedFile(tmp_path / "x.c4gh", node_keys.secret)


def test_corrupt_header_packet_is_not_decryptable(tmp_path: Path, sample: Sample, node_keys: KeyPair) -> None:
    data = bytearray(sample[1].read_bytes())
    data[60] ^= 0x01  # inside the only header packet's ciphertext
    (tmp_path / "x.c4gh").write_bytes(data)
    with pytest.raises(NotDecryptable):
        EncryptedFile(tmp_path / "x.c4gh", node_keys.secret)


def test_flipped_byte_is_corrupt_segment_only_where_read(tmp_path: Path, sample: Sample, node_keys: KeyPair) -> None:
    plain, path = sample
    with EncryptedFile(path, node_keys.secret) as f:
        target = f.header_size + 2 * CIPHER_SEGMENT_SIZE + 100  # in segment 2
    data = bytearray(path.read_bytes())
    data[target] ^= 0x80
    (tmp_path / "x.c4gh").write_bytes(data)
    with EncryptedFile(tmp_path / "x.c4gh", node_keys.secret) as f:
        with pytest.raises(CorruptSegment) as info:
            b"".join(f.iter_plaintext())
        assert info.value.segment == 2
        # Random access still serves the intact segments.
        assert b"".join(f.iter_plaintext(0, 2 * SEGMENT_SIZE)) == plain[: 2 * SEGMENT_SIZE]
        assert b"".join(f.iter_plaintext(3 * SEGMENT_SIZE)) == plain[3 * SEGMENT_SIZE :]


def test_truncated_file_is_corrupt(tmp_path: Path, sample: Sample, node_keys: KeyPair) -> None:
    data = sample[1].read_bytes()
    (tmp_path / "x.c4gh").write_bytes(data[: -(12_345 + 28 - 20)])  # 20 bytes of the last segment left
    with pytest.raises(CorruptSegment):
        EncryptedFile(tmp_path / "x.c4gh", node_keys.secret)
    (tmp_path / "y.c4gh").write_bytes(data[:-100])  # last segment cut: its MAC fails
    with EncryptedFile(tmp_path / "y.c4gh", node_keys.secret) as f, pytest.raises(CorruptSegment):
        b"".join(f.iter_plaintext(f.plaintext_size - 10))


def test_reference_library_agrees_on_encrypt(tmp_path: Path, node_keys: KeyPair) -> None:
    """A file made by crypt4gh.lib (not by us) for the node key opens with EncryptedFile."""
    plain = random.Random(3).randbytes(200_000)
    out = io.BytesIO()
    crypt4gh.lib.encrypt([(0, fresh_keys().secret, node_keys.public)], io.BytesIO(plain), out)
    (tmp_path / "ref.c4gh").write_bytes(out.getvalue())
    with EncryptedFile(tmp_path / "ref.c4gh", node_keys.secret) as f:
        assert b"".join(f.iter_plaintext(65_000, 140_000)) == plain[65_000:140_000]
