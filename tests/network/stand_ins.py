"""Stand-ins the network tests run as their own processes (only what a real node cannot be made to do).

``proxy TARGET --delay S``: a logging reverse proxy in front of a real node; it prints every request's
line and headers (the node's access log, as a proxy in front of it would keep one) and waits ``S`` seconds
before passing the request on, which makes a real node a slow peer. With ``--first-answer hold --hold S``
the request goes on at once and the node's first answer to each ``Idempotency-Key`` is held back ``S``
seconds (a node that did a write but answered late); with ``--first-answer drop`` that answer is never
passed back, the connection closed instead (a connection lost after the node did the write).
``examples``: a Beacon that answers every entry query with the Beacon v2 spec's own example responses
(``/api/...``), its info, map, entry types, configuration and filtering terms with the spec's examples of
those, and with garbage under ``/garbage/api/...``.

Plain asyncio streams: one request per connection (``Connection: close``), enough for these tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

EXAMPLES = (
    Path(__file__).resolve().parents[2]
    / "spec"
    / "beacon-v2"
    / "framework"
    / "json"
    / "responses"
    / "examples-fullDocuments"
)

#: The spec's examples of what a Beacon says about itself, by path.
ABOUT = {
    "/api": "beaconInfo-MAX-example.json",
    "/api/info": "beaconInfo-MAX-example.json",
    "/api/map": "beaconMapResponse-example.json",
    "/api/entry_types": "beaconEntryTypesResponse-example.json",
    "/api/configuration": "beaconConfigurationResponse-example.json",
    "/api/filtering_terms": "beaconFilteringTermsResponse-example.json",
}


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return head, body


def respond(status: int, document: object) -> bytes:
    body = json.dumps(document).encode() if not isinstance(document, bytes) else document
    reason = {200: "OK", 404: "Not Found"}.get(status, "Status")
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"Connection: close\r\n\r\n" + body


def idempotency_key(head: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"idempotency-key":
            return value.strip()
    return None


def proxy(target: str, delay: float, first_answer: str | None, hold: float):  # an asyncio connection handler
    host, port = target.removeprefix("http://").split(":")
    keys_seen: set[bytes] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await read_request(reader)
            if request is None:
                return
            head, body = request
            print(head.decode("latin-1").rstrip(), flush=True)  # the access log: request line and headers
            await asyncio.sleep(delay)
            lines = [line for line in head.split(b"\r\n") if line and not line.lower().startswith(b"connection:")]
            upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
            upstream_writer.write(b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n" + body)
            await upstream_writer.drain()
            answer = await upstream_reader.read()
            upstream_writer.close()
            key = idempotency_key(head)
            if first_answer is not None and key is not None and key not in keys_seen:
                keys_seen.add(key)  # the node has done the request; its first answer to this key is late, or lost
                print(f"{first_answer} the answer to {key.decode()}", flush=True)
                if first_answer == "drop":
                    return
                await asyncio.sleep(hold)
            writer.write(answer)
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    return handle


async def examples(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request = await read_request(reader)
    if request is not None:
        path = request[0].split(b" ")[1].decode().split("?")[0]
        if path.startswith("/garbage/"):
            writer.write(respond(200, b"<html>this is not JSON</html>"))
        elif path.rstrip("/") in ABOUT:
            writer.write(respond(200, json.loads((EXAMPLES / ABOUT[path.rstrip("/")]).read_text())))
        elif path.startswith("/api/"):
            granularity = "count" if b"count" in request[0] + request[1] else "boolean"
            name = f"beacon{granularity.capitalize()}Response-example.json"
            writer.write(respond(200, json.loads((EXAMPLES / name).read_text())))
        else:
            writer.write(respond(404, {"error": {"errorCode": 404, "errorMessage": "no such path"}}))
        await writer.drain()
    writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["proxy", "examples"])
    parser.add_argument("target", nargs="?")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--first-answer", choices=["hold", "drop"])
    parser.add_argument("--hold", type=float, default=0.0)
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    if options.mode == "proxy":
        handler = proxy(options.target, options.delay, options.first_answer, options.hold)
    else:
        handler = examples
    server = await asyncio.start_server(handler, "127.0.0.1", options.port)
    print(f"listening on {options.port}", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
