"""A session left signed in elsewhere (a lost laptop, a shared computer), ended by its owner (``genoshare serve``).

The owner's "end all other sessions" must end every other session of their account, keep the one they
use, leave other people's sessions alone, and be refused from a form without this session's token.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from portal_support import PortalNode, csrf_token, portal_node

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalNode]:
    with portal_node(tmp_path_factory.mktemp("sessions-elsewhere")) as served:
        yield served


def browser(node: PortalNode) -> httpx.Client:
    return httpx.Client(timeout=30, headers={"Origin": node.url})


def test_ending_other_sessions_ends_only_the_owners_others(node: PortalNode) -> None:
    with browser(node) as here, browser(node) as lost_laptop, browser(node) as someone_else:
        for client, role in ((here, "researcher"), (lost_laptop, "researcher"), (someone_else, "committee")):
            node.sign_in_http(client, role)
        page = here.get(f"{node.url}/portal/account")
        assert page.status_code == 200 and "1 other sessions" in page.text, page.text[:2000]
        forged = here.post(f"{node.url}/portal/account/end-others", data={})
        assert forged.status_code == 403
        assert lost_laptop.get(f"{node.url}/portal/requests").status_code == 200
        ended = here.post(f"{node.url}/portal/account/end-others", data={"csrf_token": csrf_token(page.text)})
        assert ended.status_code == 303
        after = here.get(f"{node.url}/portal/account")
        assert "Other sessions ended: 1." in after.text and "signed in here only" in after.text
        gone = lost_laptop.get(f"{node.url}/portal/requests")
        assert gone.status_code == 303 and gone.headers["location"].startswith("/portal/signin")
        assert here.get(f"{node.url}/portal/requests").status_code == 200
        assert someone_else.get(f"{node.url}/portal/committee").status_code == 200
    with httpx.Client(timeout=30) as visitor:
        assert visitor.get(f"{node.url}/portal/account").status_code == 303
