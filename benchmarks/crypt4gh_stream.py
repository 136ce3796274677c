"""Throughput of EncryptedFile.iter_plaintext versus `cat file > /dev/null` on the same encrypted file.

Usage: PYTHONPATH=src python benchmarks/crypt4gh_stream.py [--size-mb 256] [--chunk-kib 1024] [--repeat 3]

Both readings are taken with the file in the page cache (one untimed read first), so the ratio is
decryption + Python overhead against pure read bandwidth. Best of --repeat runs is reported.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from genoshare.crypt import EncryptedFile, encrypt_file, generate_keypair


def best(runs: int, fn: object) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--chunk-kib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = args.size_mb << 20

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        keys = generate_keypair(folder / "keys")
        plain = folder / "random.bin"
        with open(plain, "wb") as out:
            for _ in range(args.size_mb):
                out.write(os.urandom(1 << 20))
        t0 = time.perf_counter()
        encrypt_file(plain, folder / "random.bin.c4gh", keys)
        encrypt_s = time.perf_counter() - t0
        plain.unlink()
        enc = folder / "random.bin.c4gh"

        def cat() -> None:
            subprocess.run(f"cat '{enc}' > /dev/null", shell=True, check=True)

        with EncryptedFile(enc, keys.secret) as f:

            def decrypt() -> None:
                total = 0
                for piece in f.iter_plaintext(0, None, args.chunk_kib << 10):
                    total += len(piece)
                assert total == size

            cat()  # warm the page cache
            cat_s = best(args.repeat, cat)
            dec_s = best(args.repeat, decrypt)

    mb = size / 1e6
    print(f"file: {args.size_mb} MiB plaintext, chunk {args.chunk_kib} KiB, best of {args.repeat}")
    print(f"encrypt_file (crypt4gh.lib.encrypt): {mb / encrypt_s:8.1f} MB/s")
    print(f"cat file > /dev/null:                {mb / cat_s:8.1f} MB/s")
    print(f"EncryptedFile.iter_plaintext:        {mb / dec_s:8.1f} MB/s")
    print(f"ratio iter_plaintext / cat:          {cat_s / dec_s:8.3f}")


if __name__ == "__main__":
    main()
