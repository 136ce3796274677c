from __future__ import annotations

import base64
from pathlib import Path

import pytest
from c4gh_testlib import DATA, Sample, c4gh_decrypt, fresh_keys
from crypt4gh import header
from hypothesis import given, settings
from hypothesis import strategies as st

from genoshare.crypt import EncryptedFile, InvalidKey, KeyPair, Reencryption, load_keypair
from genoshare.crypt.files import CIPHER_SEGMENT_SIZE, SEGMENT_SIZE

S = SEGMENT_SIZE


def assemble(path: Path, r: Reencryption) -> bytes:
    """Header + the stored bytes at data_ranges, cut straight out of the original file."""
    stored = path.read_bytes()
    return r.header + b"".join(stored[a:b] for a, b in r.data_ranges)


def check(f: EncryptedFile, path: Path, plain: bytes, ranges: list[tuple[int, int]] | None) -> Reencryption:
    recipient = fresh_keys()
    r = f.reencrypted(recipient.public, ranges)
    sent = assemble(path, r)
    expected = plain if ranges is None else b"".join(plain[a:b] for a, b in ranges)
    assert c4gh_decrypt(sent, recipient.secret) == expected
    # Data blocks are sent verbatim: whole stored segments at segment-aligned offsets of the original.
    for a, b in r.data_ranges:
        assert (a - f.header_size) % CIPHER_SEGMENT_SIZE == 0
        assert b == f.file_size or (b - f.header_size) % CIPHER_SEGMENT_SIZE == 0
    assert b"".join(f.iter_reencrypted(r, chunk_size=50_000)) == sent
    assert r.size == len(sent)
    # The node's own key no longer opens the new header: it is for the recipient only.
    assert c4gh_packets_for(r.header, f) == 0
    return r


def c4gh_packets_for(raw_header: bytes, f: EncryptedFile) -> int:
    import io

    packets = list(header.parse(io.BytesIO(raw_header)))
    opened, _ = header.decrypt(packets, [(0, f._secret, None)])
    return len(opened)


def test_whole_file_no_edit_list(sample: Sample, node_keys: KeyPair) -> None:
    plain, path = sample
    with EncryptedFile(path, node_keys.secret) as f:
        r = check(f, path, plain, None)
        assert r.data_ranges == ((f.header_size, f.file_size),)
        # Only the data-encryption packet, re-written: same number of packets as the original header.
        assert r.header[12:16] == (1).to_bytes(4, "little")
        assert path.read_bytes()[f.header_size :] == assemble(path, r)[len(r.header) :]


@pytest.mark.parametrize(
    "ranges",
    [
        [(0, 10)],
        [(S - 1, S + 1)],
        [(S, 2 * S)],
        [(S + 1, 2 * S - 1)],
        [(100, 5 * S + 12_345)],
        [(0, 10), (20, 30)],  # two ranges in one segment share it
        [(0, S), (S, 2 * S)],  # touching ranges merge into one keep
        [(10, 20), (3 * S + 7, 4 * S + 9)],  # gap of whole segments: those are not sent
        [(3 * S, 3 * S + 5), (10, 20)],  # backwards
        [(100, 200), (150, 300)],  # overlapping
        [(10, 10), (50, 60)],  # empty range ignored
        [(5 * S, 10**12)],  # clamped end
        [(5 * S + 12_344, 5 * S + 12_345)],  # last byte
        [],
        [(7, 7)],
    ],
)
def test_ranges(ranges: list[tuple[int, int]], sample: Sample, node_keys: KeyPair) -> None:
    plain, path = sample
    with EncryptedFile(path, node_keys.secret) as f:
        check(f, path, plain, ranges)


def test_only_covering_segments_are_sent(sample: Sample, node_keys: KeyPair) -> None:
    plain, path = sample
    with EncryptedFile(path, node_keys.secret) as f:
        r = check(f, path, plain, [(S + 5, S + 10), (3 * S + 1, 3 * S + 2)])
        h = f.header_size
        assert r.data_ranges == (
            (h + CIPHER_SEGMENT_SIZE, h + 2 * CIPHER_SEGMENT_SIZE),
            (h + 3 * CIPHER_SEGMENT_SIZE, h + 4 * CIPHER_SEGMENT_SIZE),
        )


@settings(max_examples=60, deadline=None)
@given(
    ranges=st.lists(
        st.tuples(st.integers(0, 5 * S + 12_400), st.integers(0, 5 * S + 12_400)).map(sorted).map(tuple),
        max_size=5,
    )
)
def test_random_ranges(ranges: list[tuple[int, int]], sample: Sample, node_keys: KeyPair) -> None:
    plain, path = sample
    with EncryptedFile(path, node_keys.secret) as f:
        if expressible(ranges, len(plain)):
            check(f, path, plain, ranges)
        else:
            with pytest.raises(ValueError, match="short final segment"):
                f.reencrypted(fresh_keys().public, ranges)


def expressible(ranges: list[tuple[int, int]], size: int) -> bool:
    """Whether no segment has to follow the file's short last segment in the data stream."""
    tail = size // S * S
    if tail == size:
        return True
    reached_tail, prev_end = False, 0
    for a, b in ranges:
        a, b = min(a, size), min(b, size)
        if a == b:
            continue
        if reached_tail and not (a >= tail and a >= prev_end):
            return False
        reached_tail, prev_end = reached_tail or b > tail, b
    return True


def test_backwards_after_short_tail_is_refused(sample: Sample, node_keys: KeyPair) -> None:
    plain, path = sample
    with EncryptedFile(path, node_keys.secret) as f:
        with pytest.raises(ValueError, match="short final segment"):
            f.reencrypted(fresh_keys().public, [(len(plain) - 5, len(plain)), (0, 10)])
        check(f, path, plain, [(len(plain) - 50, len(plain) - 40), (len(plain) - 5, len(plain))])


def test_shipped_file_to_new_recipient() -> None:
    bob = load_keypair(DATA / "c4gh" / "keys", "bob")
    path = DATA / "c4gh" / "htsnexus_test_NA12878.bam.c4gh"
    plain = (DATA / "bam" / "htsnexus_test_NA12878.bam").read_bytes()
    with EncryptedFile(path, bob.secret) as f:
        check(f, path, plain, [(0, 4_000), (1_000_000, 1_200_000)])
        check(f, path, plain, None)


def test_recipient_key_forms_and_garbage(sample: Sample, node_keys: KeyPair) -> None:
    plain, path = sample
    recipient = fresh_keys()
    pem = b"-----BEGIN CRYPT4GH PUBLIC KEY-----\n" + base64.b64encode(recipient.public) + b"\n-----END"
    pem += b" CRYPT4GH PUBLIC KEY-----\n"
    with EncryptedFile(path, node_keys.secret) as f:
        r = f.reencrypted(base64.b64encode(pem).decode(), [(1, 2)])
        assert c4gh_decrypt(assemble(path, r), recipient.secret) == plain[1:2]
        for garbage in ["nope", b"\x00" * 32, ""]:
            with pytest.raises(InvalidKey):
                f.reencrypted(garbage, None)
        with pytest.raises(ValueError):
            f.reencrypted(recipient.public, [(5, 1)])


def test_a_header_without_edit_list_is_the_same_bytes_every_time(sample: Sample, node_keys: KeyPair) -> None:
    """``/data`` re-keys per request, and a client may join Range requests cutting through the header."""
    plain, path = sample
    recipient, other = fresh_keys(), fresh_keys()
    with EncryptedFile(path, node_keys.secret) as f, EncryptedFile(path, node_keys.secret) as again:
        whole = f.reencrypted(recipient.public, None).header
        assert again.reencrypted(recipient.public, []).header == whole
        assert f.reencrypted(other.public, None).header != whole
        assert c4gh_decrypt(assemble(path, again.reencrypted(recipient.public, None)), recipient.secret) == plain
        # A header with an edit list is never taken from (or put in) the remembered ones.
        for ranges in ([(1, 2)], [(5, 9)]):
            assert (
                c4gh_decrypt(assemble(path, f.reencrypted(recipient.public, ranges)), recipient.secret)
                == plain[ranges[0][0] : ranges[0][1]]
            )
        assert f.reencrypted(recipient.public, None).header == whole


def test_a_rekeyed_header_is_the_same_bytes_in_every_process_and_after_a_restart(
    sample: Sample, node_keys: KeyPair
) -> None:
    """A download resumed after a restart, or split over several server processes, joins headers made apart."""
    import subprocess
    import sys

    plain, path = sample
    recipient = fresh_keys()
    program = (
        "import sys; from pathlib import Path; from genoshare.crypt import EncryptedFile; "
        "f = EncryptedFile(Path(sys.argv[1]), bytes.fromhex(sys.argv[2])); "
        "sys.stdout.write(f.reencrypted(bytes.fromhex(sys.argv[3]), [(3, 70000), (1, 2)]).header.hex() + ' ' "
        "+ f.reencrypted(bytes.fromhex(sys.argv[3]), None).header.hex())"
    )
    made = [
        subprocess.run(
            [sys.executable, "-c", program, str(path), node_keys.secret.hex(), recipient.public.hex()],
            capture_output=True, text=True, check=True,
        ).stdout.split()
        for _ in range(2)
    ]  # fmt: skip
    assert made[0] == made[1]
    edited, whole = (bytes.fromhex(h) for h in made[0])
    with EncryptedFile(path, node_keys.secret) as f:
        r = f.reencrypted(recipient.public, [(3, 70000), (1, 2)])
        assert r.header == edited
        assert c4gh_decrypt(assemble(path, r), recipient.secret) == plain[3:70000] + plain[1:2]
        assert c4gh_decrypt(whole + path.read_bytes()[f.header_size :], recipient.secret) == plain
