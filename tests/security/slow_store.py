"""A slow S3 server: a TCP relay process in front of the real one that holds some requests back.

Run as a script (``python slow_store.py PORT TARGET_PORT SECONDS VERB...``) it relays loopback connections to
``TARGET_PORT`` and waits ``SECONDS`` before passing on each request that starts with one of the HTTP
``VERB``s: what a store far away, or busy, does to the node. The node's S3 client keeps connections alive, so
each request arrives as its own write, starting with its verb.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import httpx


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, held: Sequence[bytes], wait: float) -> None:
    try:
        while data := await reader.read(65536):
            if held and data.startswith(tuple(held)):
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _relay(port: int, target: int, wait: float, verbs: Sequence[str]) -> None:
    held = [f"{verb} ".encode() for verb in verbs]

    async def connected(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target)
        await asyncio.gather(
            _pipe(client_reader, server_writer, held, wait), _pipe(server_reader, client_writer, (), 0.0)
        )

    server = await asyncio.start_server(connected, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


@contextmanager
def slow_store(endpoint: str, seconds: float, verbs: Sequence[str]) -> Iterator[str]:
    """The endpoint of a relay process to ``endpoint`` that holds each request of ``verbs`` ``seconds``."""
    from processes import free_port  # not when run as the relay script, outside the test suite

    port = free_port()
    target = endpoint.rsplit(":", 1)[1]
    process = subprocess.Popen([sys.executable, __file__, str(port), target, str(seconds), *verbs])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/moto-api/", timeout=1.0)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, "the slow store did not start"
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    listen, to, delay, *methods = sys.argv[1:]
    asyncio.run(_relay(int(listen), int(to), float(delay), methods))
