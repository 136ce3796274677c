"""The node owns one HTTP client for issuers and brokers, and closes it with itself."""

from __future__ import annotations

from genoshare.node import Node


def test_the_passport_checks_share_the_nodes_one_http_client_which_close_closes(node: Node) -> None:
    client = node.http
    assert node.passports.keys.http is client
    assert not client.is_closed
    node.close()
    assert client.is_closed
