from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from c4gh_testlib import PLAIN_SIZE, Sample

from genoshare.crypt import KeyPair, encrypt_file, generate_keypair


@pytest.fixture(scope="session")
def node_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return generate_keypair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session")
def make_encrypted(tmp_path_factory: pytest.TempPathFactory, node_keys: KeyPair) -> Callable[[int], Sample]:
    """Random plaintext of a given size and its encryption to the node key, cached per size."""
    cache: dict[int, Sample] = {}

    def make(size: int) -> Sample:
        if size not in cache:
            folder = tmp_path_factory.mktemp(f"plain{size}")
            plain = random.Random(size).randbytes(size)
            (folder / "plain.bin").write_bytes(plain)
            encrypt_file(folder / "plain.bin", folder / "plain.bin.c4gh", node_keys)
            cache[size] = Sample(plain, folder / "plain.bin.c4gh")
        return cache[size]

    return make


@pytest.fixture(scope="session")
def sample(make_encrypted: Callable[[int], Sample]) -> Sample:
    return make_encrypted(PLAIN_SIZE)
