"""Behind a proxy that serves the node under a path prefix, every portal link, form and redirect keeps it.

Issue 18 (must-have 2): with ``serve --root-path /genoshare`` behind a proxy that strips the prefix (nginx's
``location /genoshare/ { proxy_pass http://node/; }``), a link written as ``/portal/...`` or ``/docs`` leads
the visitor to the proxy's own site, outside the node: a 404. Here the proxy is an HTTP transport in front of
a real ``genoshare serve`` that routes only the prefixed paths (and strips the prefix), as nginx would; the
visitor signs in through the demo broker by OpenID Connect, and every page reachable from the portal's home,
for a visitor and for each role, is walked: each link, form action, stylesheet and redirect must keep the
prefix and answer without a 404.
"""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from portal_support import ROLES, PortalNode, portal_node

PREFIX = "/genoshare"


class StrippingProxy(httpx.BaseTransport):
    """Forwards requests under ``PREFIX`` to the node without it; answers 404 for any other path of its host."""

    def __init__(self, node_url: str) -> None:
        self.host = urlsplit(node_url).netloc
        self.inner = httpx.HTTPTransport()
        self.unrouted: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.netloc.decode() != self.host:
            return self.inner.handle_request(request)  # the passport broker, reached directly
        path = request.url.raw_path
        if not path.startswith(f"{PREFIX}/".encode()):
            self.unrouted.append(str(request.url))
            return httpx.Response(404, text="the proxy serves only /genoshare/", request=request)
        forwarded = httpx.Request(
            request.method,
            request.url.copy_with(raw_path=path[len(PREFIX) :]),
            headers=request.headers,
            stream=request.stream,
        )
        return self.inner.handle_request(forwarded)

    def close(self) -> None:
        self.inner.close()


class Links(HTMLParser):
    """The addresses a page leads to: links, form actions, stylesheets, scripts, images."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"a": "href", "link": "href", "form": "action", "script": "src", "img": "src"}.get(tag)
        values = dict(attrs)
        if wanted and values.get(wanted):
            method = (values.get("method") or "get").lower() if tag == "form" else "get"
            self.found.append((method, values[wanted] or ""))


@pytest.fixture(scope="module")
def prefixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalNode]:
    with portal_node(tmp_path_factory.mktemp("prefixed"), prefix=PREFIX) as node:
        yield node


def walk(client: httpx.Client, start: str, proxy: StrippingProxy, limit: int = 120) -> tuple[set[str], list[str]]:
    """Every page reachable from ``start`` on the node, and the problems found, one line each."""
    node = urlsplit(start).netloc
    queue, seen, problems = [start], set(), []
    while queue and len(seen) < limit:
        url = queue.pop(0)
        if url in seen:
            continue
        seen.add(url)
        answer = client.get(url)
        for hop in answer.history:
            location = hop.headers.get("location", "")
            if urlsplit(urljoin(str(hop.url), location)).netloc == node and not location.startswith(
                (PREFIX + "/", f"http://{node}{PREFIX}/")
            ):
                problems.append(f"{hop.url} redirects to {location}")
        if answer.status_code == 404 or answer.status_code >= 500:
            problems.append(f"{url}: {answer.status_code}")
            continue
        if "text/html" not in answer.headers.get("content-type", ""):
            continue
        links = Links()
        links.feed(answer.text)
        for method, link in links.found:
            target = urljoin(str(answer.url), link)
            parts = urlsplit(target)
            if parts.netloc != node or link.startswith("#"):
                continue
            if not parts.path.startswith(PREFIX + "/"):
                problems.append(f"{answer.url} links to {link}")
            elif method == "get" and "signout" not in parts.path:
                queue.append(target.split("#", 1)[0])
    assert not proxy.unrouted or problems, proxy.unrouted
    return {urlsplit(url).path for url in seen}, problems


def test_every_portal_link_keeps_the_prefix(prefixed: PortalNode, tmp_path: Path) -> None:
    public = prefixed.url + PREFIX
    walked: dict[str, set[str]] = {}
    for role in (None, *ROLES):
        proxy = StrippingProxy(prefixed.url)
        with httpx.Client(transport=proxy, follow_redirects=True, timeout=60) as client:
            if role is not None:
                signed_in = client.get(f"{public}/portal/signin/oidc", params={"login_hint": ROLES[role]})
                assert signed_in.status_code == 200, signed_in.text
                assert str(signed_in.url).startswith(f"{public}/portal/"), signed_in.url
                assert "signin" not in str(signed_in.url), f"{role} is not signed in: {signed_in.url}"
            pages, problems = walk(client, f"{public}/portal/", proxy)
        assert not problems, f"{role or 'visitor'}:\n" + "\n".join(problems)
        walked[role or "visitor"] = pages
    # Each role walked the pages only it reaches (as the navigation offers them to it).
    assert {f"{PREFIX}/portal/requests", f"{PREFIX}/portal/downloads"} <= walked["researcher"], walked
    assert f"{PREFIX}/portal/committee" in walked["committee"], walked
    assert f"{PREFIX}/portal/steward" in walked["steward"], walked
