"""``/ready`` asks the object store itself: an S3 store that went away makes the node unready, by name.

Issue 18: a load balancer or an orchestrator takes a node out of service on a failing readiness probe. A node
whose S3 store is unreachable can answer nothing that needs bytes, so ``/ready`` must say 503 and name the
object store, while ``/health`` (the process answers) stays 200; the bucket is not told to the caller.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from genoshare.node import init_node
from genoshare.settings import load_settings
from objects_s3 import SECRET_ACCESS_KEY, s3_server

from support import PUBLIC_URL


def test_ready_is_503_naming_the_object_store_when_s3_is_unreachable(serve, tmp_path: Path) -> None:
    with s3_server(tmp_path / "moto.log") as store:
        bucket = store.new_bucket()
        settings = load_settings(
            tmp_path / "node",
            public_url=PUBLIC_URL,
            environment="test",
            objects_url=f"s3://{bucket}/node",
            s3=store.settings(),
        )
        init_node(settings).close()
        server = serve(tmp_path / "node", store.env())
        with httpx.Client(base_url=server.url, timeout=60) as client:
            ready = client.get("/ready")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"]["objects"] == "ok"

            store.process.terminate()
            store.process.wait(timeout=10)

            ready = client.get("/ready")
            health = client.get("/health")
    assert ready.status_code == 503, ready.text
    checks = ready.json()["checks"]
    assert "unreachable" in checks["objects"], checks
    assert checks["database"] == "ok" and checks["keys"] == "ok", "only the failing check is named"
    assert bucket not in ready.text and SECRET_ACCESS_KEY not in ready.text
    assert health.status_code == 200
    log = server.stop()
    assert "Traceback" not in log and SECRET_ACCESS_KEY not in log
