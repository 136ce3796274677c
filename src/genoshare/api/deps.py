"""Request dependencies: the node, and who is calling (verified passport or nobody)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from genoshare.access.passports import Identity
from genoshare.errors import Unauthenticated
from genoshare.node import Node


def get_node(request: Request) -> Node:
    node: Node = request.app.state.node
    return node


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization header must be 'Bearer <passport JWT>'")
    return token.strip()


def identify(node: Node, token: str | None) -> Identity | None:
    return node.passports.verify(token) if token else None


def get_identity(request: Request, node: Annotated[Node, Depends(get_node)]) -> Identity | None:
    return identify(node, bearer_token(request))


NodeDep = Annotated[Node, Depends(get_node)]
IdentityDep = Annotated[Identity | None, Depends(get_identity)]
