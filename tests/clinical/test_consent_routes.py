"""A consent link (``GET /consent/{secret}``) never answers for the API's own ``/consent/...`` actions.

The link's route once matched any word after ``/consent/``: ``GET /consent/matchmaking`` opened "a link"
(a redirect to the invalid-link page) and other methods got a 405 that offered GET, which the API never
serves there (schemathesis ST205).
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize("action", ["narrow", "widen", "withdraw", "matchmaking"])
def test_the_apis_consent_actions_are_post_only(client: TestClient, action: str) -> None:
    for method in ("GET", "PUT", "DELETE"):
        answer = client.request(method, f"/consent/{action}", follow_redirects=False)
        assert answer.status_code == 405, (method, action, answer.status_code)
        assert answer.headers["allow"] == "POST", (method, action, answer.headers.get("allow"))


def test_a_link_shaped_secret_still_opens_the_link_route(client: TestClient) -> None:
    unknown = client.get("/consent/" + "A" * 43, follow_redirects=False)
    assert unknown.status_code == 303 and unknown.headers["location"] == "/portal/consent/invalid"
