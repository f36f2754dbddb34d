"""`memorose up` end to end: node + Dagster daemon + webserver as real processes.

Ingest over HTTP, the daemon's sensor launches a run, L1 appears in retrieve with provenance; the
Dagster UI's GraphQL endpoint shows the assets with their lineage; SIGTERM stops everything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
from conftest import free_port, wait_until

ASSET_QUERY = "{ assetNodes { assetKey { path } dependencyKeys { path } groupName } }"


def test_up_runs_the_pipeline_and_serves_the_ui(tmp_path):
    port, raft, dagster = free_port(), free_port(), free_port()
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "memorose_dagster.cli", "up", "--port", str(port),
         "--raft-port", str(raft), "--dagster-port", str(dagster),
         "--data-dir", str(tmp_path / "data")],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    api, ui = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{dagster}"
    try:
        def ready() -> bool:
            assert up.poll() is None, (tmp_path / "up.log").read_text()[-3000:]
            try:
                return httpx.get(ui + "/server_info", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, timeout=180, interval=0.5, what="memorose up")
        events = [{"user_id": "u", "stream_id": "s", "content": c, "metadata": {"n": i}}
                  for i, c in enumerate(["We adopted a dog called Biscuit", "ok"])]
        ids = httpx.post(api + "/api/v1/events/batch", json={"events": events}).json()
        memory_id = ids["event_ids"][0]

        def l1_results():
            body = httpx.post(api + "/api/v1/retrieve", json={
                "user_id": "u", "query": "dog", "layers": ["L1"]}, timeout=10).json()
            return body["results"]

        (memory,) = wait_until(l1_results, timeout=120, interval=0.5, what="L1 via the daemon")
        assert memory["provenance"][0]["event_id"] == memory_id
        assert memory["provenance"][0]["metadata"] == {"n": 0}

        nodes = httpx.post(ui + "/graphql", json={"query": ASSET_QUERY},
                           timeout=30).json()["data"]["assetNodes"]
        deps = {n["assetKey"]["path"][0]: {d["path"][0] for d in n["dependencyKeys"]}
                for n in nodes}
        lake = {"events": {"l0_events"}, "memories": {"l1_memories"},
                "access": {"l1_memories"}, "entities": {"memory_graph"},
                "relations": {"memory_graph"}, "insights": {"l2_insights"},
                "vectors": {"l0_events", "l1_memories", "l2_insights"},
                "tombstones": {"l1_memories", "l2_insights", "memory_decay"}}
        assert deps == {"l0_events": set(), "l1_memories": {"l0_events"},
                        "memory_graph": {"l1_memories"}, "l2_insights": {"memory_graph"},
                        "memory_decay": {"l2_insights"},
                        **{f"lake_{table}": parents for table, parents in lake.items()},
                        "memory_audit": {f"lake_{table}" for table in lake}}
        assert {n["groupName"] for n in nodes} == {"memory"}
        assert (tmp_path / "data" / "dagster" / "dagster.yaml").exists()
    finally:
        os.kill(up.pid, signal.SIGTERM)
        up.wait(timeout=60)
    assert up.returncode == 0
    for url in (api + "/health", ui + "/server_info"):
        try:
            httpx.get(url, timeout=1)
            raise AssertionError(f"{url} still answers after SIGTERM")
        except httpx.TransportError:
            pass
