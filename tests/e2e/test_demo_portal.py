"""`genoshare demo` prints the portal and a ready sign-in per role; each printed link signs that person in.

The demo runs as a user would start it (one process: the node and its DEMO ONLY broker), and the printed
links are followed as a browser would, through the real OpenID Connect flow at the broker.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from processes import free_port

pytestmark = pytest.mark.slow
LINK = re.compile(r"^\s*(researcher|committee member|steward)\s+(http://\S+)$", re.MULTILINE)


def test_printed_sign_in_links_sign_each_role_in(tmp_path: Path) -> None:
    port, broker_port = free_port(), free_port()
    command = [sys.executable, "-m", "genoshare", "demo", "--data-dir", str(tmp_path / "demo")]
    command += ["--port", str(port), "--broker-port", str(broker_port)]
    env = {**os.environ, "COLUMNS": "300"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    printed = ""
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 120
        while len(LINK.findall(printed)) < 3:
            line = process.stdout.readline()
            assert line and time.monotonic() < deadline, f"the demo printed no sign-in links: {printed}"
            printed += line
        # Keep reading what the server logs: a full pipe would stop it.
        threading.Thread(target=process.stdout.read, daemon=True).start()
        url = f"http://127.0.0.1:{port}"
        assert f"{url}/portal/" in printed
        links = dict(LINK.findall(printed))
        assert set(links) == {"researcher", "committee member", "steward"}, printed
        while True:
            assert process.poll() is None and time.monotonic() < deadline, "the demo did not start serving"
            try:
                if httpx.get(f"{url}/service-info", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        expected = {
            "researcher": "Researcher: browse",
            "committee member": "Access committee member for: demo-cohort",
            "steward": "Data steward of this node",
        }
        for role, link in links.items():
            with httpx.Client(timeout=30, follow_redirects=True) as browser:
                landed = browser.get(link)
                assert landed.status_code == 200 and "Signed in as" in landed.text, (role, landed.text[:300])
                home = browser.get(f"{url}/portal/").text
                assert expected[role] in home, (role, home[home.find("<main") :][:800])
    finally:
        process.terminate()
        process.wait(timeout=20)
