"""The data custodian is told of matches, by mail and the node's webhook (real receiver processes).

Test queries (``patient.test``) notify nobody, as the MME search API asks.
"""

from __future__ import annotations

import json
from pathlib import Path

from clinical_world import MARFAN, PEER_NAME, PEER_TOKEN, build_world, matchmaker_settings
from fastapi.testclient import TestClient

import receivers
from genoshare.api.app import create_app
from genoshare.settings import NotifySettings, SmtpSettings, WebhookSettings, load_settings
from receivers import MailServer, WebhookReceiver, wait_for

mail_server, webhook_receiver = receivers.mail_server, receivers.webhook_receiver
MEDIA = "application/vnd.ga4gh.matchmaker.v1.1+json"


def test_a_match_is_told_to_the_custodian_and_a_test_query_is_not(
    tmp_path: Path, mail_server: MailServer, webhook_receiver: WebhookReceiver
) -> None:
    hook = WebhookSettings(url=webhook_receiver.url, secret_file=webhook_receiver.secret_file)
    smtp = SmtpSettings(host="127.0.0.1", port=mail_server.port, sender="node@genetics.example")
    mme = matchmaker_settings().model_copy(update={"contact_email": "matchmaking@genetics.example"})
    settings = load_settings(tmp_path / "node", mme=mme, notify=NotifySettings(smtp=smtp, webhook=hook))
    world = build_world(tmp_path, settings)
    contact = {"name": "Dr Asker", "institution": "Far Hospital", "href": "mailto:asker@far.example"}
    body = {"patient": {"id": "theirs", "contact": contact, "features": [{"id": t} for t in MARFAN]}}
    headers = {"Content-Type": MEDIA, "X-Auth-Token": PEER_TOKEN}
    with TestClient(create_app(world.node)) as client:
        test_query = {"patient": {**body["patient"], "test": True}}
        assert client.post("/mme/match", json=test_query, headers=headers).json()["results"]
        assert client.post("/mme/match", json=body, headers=headers).json()["results"]
        posts = wait_for(lambda: [p for p in webhook_receiver.posts() if '"mme.match"' in p["body"]])
    notice = json.loads(posts[0]["body"])
    assert notice["event"] == "mme.match" and notice["peer"] == PEER_NAME
    assert notice["contact"]["name"] == "Dr Asker"
    assert {"dataset": "rare", "participant": world.pseudonyms["R01"]}.items() <= notice["matches"][0].items()
    message = mail_server.wait_for(lambda m: "Matchmaker Exchange" in str(m["Subject"]))
    assert message["To"] == "matchmaking@genetics.example"
    text = message.get_payload()
    assert "Dr Asker, Far Hospital" in text and world.pseudonyms["R01"] in text
    assert len(posts) == 1, "a test query (patient.test) notifies nobody"
    world.node.close()
